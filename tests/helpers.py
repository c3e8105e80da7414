"""Paths to ../shared/data and tiny word lists shared by the tests.

A plain module (not conftest.py) so tests can import it by one unambiguous
name: several conftest.py files exist, and `from conftest import` would get
whichever sys.path lists first.
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(
    os.environ.get("ELECTRA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
BERT_VOCAB = SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt"
# Corpora usable for development and tests. wikitext-2-raw and nltk_reuters are
# reserved for independent evaluation and must never be read here.
DEV_CORPORA = (
    "nltk_gutenberg",
    "nltk_state_union",
    "nltk_inaugural",
    "nltk_webtext",
    "tinyshakespeare",
    "nltk_movie_reviews",
)

TINY_WORDS = (
    "the a an of to and in is was it he she they we you i that this with for on "
    "at by from as be have has had not but or are were been will would can could "
    "cat dog sat mat run ran fast slow big small red blue green house tree car "
    "hello world , . ! ? ' -"
).split()


def shared_path(*parts):
    """A path under ../shared/data, or a pytest skip naming what is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set ELECTRA_SHARED_DATA)")
    return path


def dev_corpus_files():
    """Every text file of the development corpora (README files excluded)."""
    root = shared_path("corpus")
    files = []
    for name in DEV_CORPORA:
        files += sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.name != "README"
        )
    return files


# === Tiny models ===


def tiny_encoder_config(vocab_size, max_position_embeddings=64, **overrides):
    """ElectraEncoder kwargs of a 2-layer, 16-wide encoder: fast enough for any test."""
    config = dict(vocab_size=vocab_size, embedding_size=16, hidden_size=16, num_layers=2,
                  num_heads=2, intermediate_size=32,
                  max_position_embeddings=max_position_embeddings)
    config.update(overrides)
    return config


def make_discriminator_dir(model_dir, vocab_path, seed=0, **encoder_overrides):
    """A randomly initialised tiny discriminator saved as a pretraining model_dir is.

    Returns:
      str(model_dir), which holds discriminator/.
    """
    import keras

    from electra_tf import config as config_lib
    from electra_tf.models import artifacts
    from electra_tf.models.pretrainer import ElectraDiscriminator

    vocab_size = len(pathlib.Path(vocab_path).read_text(encoding="utf-8").splitlines())
    encoder = tiny_encoder_config(vocab_size, **encoder_overrides)
    keras.utils.set_random_seed(seed)
    discriminator = artifacts.build_inputs(ElectraDiscriminator(encoder), seq_len=8)
    experiment = config_lib.ElectraConfig(
        model=config_lib.ModelConfig(**encoder),
        data=config_lib.DataConfig(max_seq_length=encoder["max_position_embeddings"]))
    artifacts.save_artifact(discriminator, os.path.join(model_dir, "discriminator"),
                            experiment, vocab_path, step=0)
    return str(model_dir)


# === A tagged corpus: State of the Union sentences tagged by a gazetteer ===

MONTHS = ("January February March April May June July August September October "
          "November December").split()
# Multi-word names first: the longest match wins.
LOCATIONS = (("United", "States"), ("Soviet", "Union"), ("United", "Nations"),
             ("America",), ("Europe",), ("Asia",), ("Africa",), ("China",), ("Japan",),
             ("Germany",), ("Russia",), ("Korea",), ("Vietnam",), ("Mexico",),
             ("Canada",), ("Israel",), ("Iraq",), ("Iran",), ("Washington",))
PERSON_TITLES = ("Mr.", "Mrs.", "President", "Senator", "Governor")


def gazetteer_tags(words):
    """IOB2 tags of `words`: LOC for gazetteer places, DATE for a month and the day
    number after it, PER for the capitalised words after a title ("Mr. Speaker")."""
    tags, i = ["O"] * len(words), 0
    while i < len(words):
        for name in sorted(LOCATIONS, key=len, reverse=True):
            if tuple(words[i:i + len(name)]) == name:
                tags[i:i + len(name)] = ["B-LOC"] + ["I-LOC"] * (len(name) - 1)
                i += len(name)
                break
        else:
            if words[i] in MONTHS:
                tags[i] = "B-DATE"
                if i + 1 < len(words) and words[i + 1].rstrip(",").isdigit():
                    tags[i + 1] = "I-DATE"
                    i += 1
            elif words[i] in PERSON_TITLES and i + 1 < len(words) and words[i + 1][:1].isupper():
                j = i + 1
                while j < len(words) and words[j][:1].isupper() and words[j] not in PERSON_TITLES:
                    tags[j] = "B-PER" if j == i + 1 else "I-PER"
                    j += 1
                i = j - 1
            i += 1
    return tags


def tagged_sentences(limit, min_entities=1):
    """Up to `limit` (words, tags) pairs of State of the Union sentences (whitespace
    words, punctuation split off) with at least `min_entities` tagged words."""
    import re

    found = []
    for path in sorted(shared_path("corpus", "nltk_state_union").glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for sentence in re.split(r"(?<!Mr\.)(?<!Mrs\.)(?<=[.!?])\s+", text.replace("\n", " ")):
            words = re.findall(r"Mrs?\.|\w+|[^\w\s]", sentence)
            if not 4 <= len(words) <= 40:
                continue
            tags = gazetteer_tags(words)
            if sum(t != "O" for t in tags) >= min_entities:
                found.append((words, tags))
                if len(found) == limit:
                    return found
    return found


def write_conll(path, sentences, docstart=True):
    """Writes (words, tags) sentences in CoNLL-2003's layout (word POS chunk TAG)."""
    lines = ["-DOCSTART- -X- -X- O", ""] if docstart else []
    for words, tags in sentences:
        lines += [f"{w} NN I-NP {t}" for w, t in zip(words, tags)] + [""]
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def check_layer(cls, init_kwargs, inputs, expected_output_shape, tmp_path):
    """A layer or model test in the spirit of keras-hub's `run_layer_test`.

    Builds `cls(**init_kwargs)` on `inputs` and checks: the output shape (a tuple, or
    a dict of tuples for dict outputs); that `from_config(get_config())` makes an
    object with the same config; and that the weights, saved to a file and loaded into
    that object (a layer's: copied with set_weights), give the same outputs
    (inference mode).

    Returns:
      the first object, built.
    """
    import numpy as np
    import tensorflow as tf

    layer = cls(**init_kwargs)
    outputs = layer(inputs, training=False)
    if isinstance(expected_output_shape, dict):
        assert {k: tuple(v.shape) for k, v in outputs.items()} == expected_output_shape
    else:
        assert tuple(outputs.shape) == tuple(expected_output_shape)
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    again(inputs, training=False)
    if hasattr(layer, "save_weights"):  # a model: through a weights file
        path = str(pathlib.Path(tmp_path) / f"{cls.__name__}.weights.h5")
        layer.save_weights(path)
        again.load_weights(path)
    else:  # a layer: Keras saves layers' weights only inside models
        again.set_weights(layer.get_weights())
    for got, want in zip(tf.nest.flatten(again(inputs, training=False)), tf.nest.flatten(outputs)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    return layer
