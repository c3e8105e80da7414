"""The public Python API: `import electra_tf`, the README's "Python API" examples, the
callable tokenizer, the Preprocessor, and from_model_dir / save_to_model_dir round trips."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import electra_tf
from electra_tf import config as config_lib
from electra_tf import schema
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import ElectraDiscriminator, ElectraGenerator
from electra_tf.text import packing
from helpers import REPO_ROOT, tiny_encoder_config

ENCODER = {k: v for k, v in tiny_encoder_config(0).items() if k != "vocab_size"}
TEXTS = ["the cat sat on the mat", "a big red car ran fast", ""]


def make_model_dir(model_dir, vocab_path, max_seq_length=32):
    """A tiny random pretraining model_dir: discriminator/ and generator/ artifacts."""
    vocab_size = len(open(vocab_path, encoding="utf-8").read().splitlines())
    encoder = dict(ENCODER, vocab_size=vocab_size)
    experiment = config_lib.ElectraConfig(
        model=config_lib.ModelConfig(**encoder, generator_hidden_fraction=1.0),
        data=config_lib.DataConfig(max_seq_length=max_seq_length))
    keras.utils.set_random_seed(0)
    discriminator = artifacts.build_inputs(ElectraDiscriminator(encoder), seq_len=8)
    generator = artifacts.build_inputs(ElectraGenerator(encoder), seq_len=8)
    for name, model in (("discriminator", discriminator), ("generator", generator)):
        artifacts.save_artifact(model, os.path.join(model_dir, name), experiment, vocab_path,
                                step=7)
    return str(model_dir)


@pytest.fixture
def model_dir(tmp_path, tiny_vocab):
    return make_model_dir(tmp_path / "pretrained", tiny_vocab)


def readme_python_blocks():
    """The ```python blocks of README.md's "Python API" section, in order."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)


def test_readme_python_api_examples_run(tmp_path, tiny_vocab, monkeypatch):
    blocks = readme_python_blocks()
    assert len(blocks) >= 3
    demo = tmp_path / "demo_out"
    demo.mkdir()
    (demo / "vocab.txt").write_text(open(tiny_vocab, encoding="utf-8").read(), encoding="utf-8")
    make_model_dir(demo / "model", str(demo / "vocab.txt"))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md Python API block {i + 1}", "exec"), namespace)
    # What the examples claim.
    assert namespace["features"]["token_ids"].shape == (2, 16)
    assert namespace["logits"].shape == (1, 2)
    assert namespace["again"].label_names == ("negative", "positive")
    assert namespace["replaced"].shape[0] == 1
    assert (tmp_path / "my_classifier" / "model.weights.h5").exists()


def test_import_is_cheap_and_exports_the_api():
    code = ("import sys, electra_tf; assert 'tensorflow' not in sys.modules; "
            "names = dir(electra_tf); "
            "assert {'WordPieceTokenizer', 'Preprocessor', 'ElectraClassifier', "
            "'run_finetuning'} <= set(names), names")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
    from electra_tf.models import ElectraClassifier
    from electra_tf.text import Preprocessor, WordPieceTokenizer

    assert electra_tf.WordPieceTokenizer is WordPieceTokenizer
    assert electra_tf.Preprocessor is Preprocessor
    assert electra_tf.ElectraClassifier is ElectraClassifier
    for name in ("load_config", "run_pretraining", "run_finetuning", "export_model",
                 "convert_checkpoint"):
        assert callable(getattr(electra_tf, name))
    with pytest.raises(AttributeError):
        electra_tf.NoSuchThing  # noqa: B018


def test_callable_tokenizer_equals_tokenize(bert_vocab):
    tokenizer = electra_tf.WordPieceTokenizer(bert_vocab)
    texts = ["Hello, World!", "naïve café", ""]
    assert tokenizer(texts).to_list() == tokenizer.tokenize(texts).to_list()
    assert tokenizer("one text").numpy().tolist() == tokenizer.tokenize("one text").numpy().tolist()


def test_preprocessor_packs_as_the_packing_functions_in_tf_data_too(bert_vocab):
    pre = electra_tf.Preprocessor(bert_vocab, max_seq_length=8)
    tok = pre.tokenizer
    single = pre(TEXTS)
    expected = packing.pack_single(tok.tokenize(TEXTS), 8, tok.cls_id, tok.sep_id, tok.pad_id)
    pair = pre((TEXTS, TEXTS[::-1]))
    expected_pair = packing.pack_pair(tok.tokenize(TEXTS), tok.tokenize(TEXTS[::-1]), 8,
                                      tok.cls_id, tok.sep_id, tok.pad_id)
    for key in (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK):
        np.testing.assert_array_equal(single[key], expected[key])
        np.testing.assert_array_equal(pair[key], expected_pair[key])
    assert sorted(single) == sorted([schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK])
    assert single[schema.TOKEN_IDS].dtype == tf.int32 and single[schema.PADDING_MASK].dtype == tf.bool

    # In tf.data (graph mode), and after a get_config round trip.
    restored = electra_tf.Preprocessor.from_config(pre.get_config())
    assert restored.get_config() == pre.get_config()
    batches = tf.data.Dataset.from_tensor_slices((TEXTS, TEXTS[::-1])).batch(2).map(
        lambda a, b: restored((a, b)))
    for key in pair:
        np.testing.assert_array_equal(
            np.concatenate([batch[key].numpy() for batch in batches]), pair[key])


def test_discriminator_and_generator_round_trip_through_model_dirs(model_dir, tmp_path):
    disc = electra_tf.ElectraDiscriminator.from_model_dir(model_dir)
    assert disc.preprocessor.max_seq_length == 32 and disc.step == 7
    inputs = disc.preprocessor(TEXTS)
    before = disc(inputs).numpy()
    disc.save_to_model_dir(str(tmp_path / "copy"))
    again = electra_tf.ElectraDiscriminator.from_model_dir(str(tmp_path / "copy"))
    np.testing.assert_array_equal(again(inputs).numpy(), before)

    gen = electra_tf.ElectraGenerator.from_model_dir(model_dir)
    inputs[schema.MASK_POSITIONS] = tf.constant([[1, 2]] * len(TEXTS))
    assert gen(inputs).shape == (len(TEXTS), 2, gen.encoder_config["vocab_size"])
    with pytest.raises(ValueError, match="holds a discriminator, not a generator"):
        electra_tf.ElectraGenerator.from_model_dir(os.path.join(model_dir, "discriminator"))


def test_classifier_round_trips_give_identical_predictions(model_dir, tmp_path):
    with pytest.raises(ValueError, match="give num_labels"):
        electra_tf.ElectraClassifier.from_model_dir(model_dir)
    model = electra_tf.ElectraClassifier.from_model_dir(model_dir, label_names=["no", "yes"])
    disc = electra_tf.ElectraDiscriminator.from_model_dir(model_dir)
    for ours, theirs in zip(model.encoder.weights, disc.encoder.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    logits = model.predict(TEXTS, verbose=0)
    assert logits.shape == (3, 2)
    np.testing.assert_array_equal(logits, model.predict(model.preprocessor(TEXTS), verbose=0))

    out = str(tmp_path / "clf")
    model.save_to_model_dir(out)
    again = electra_tf.ElectraClassifier.from_model_dir(out)
    np.testing.assert_array_equal(again.predict(TEXTS, verbose=0), logits)
    assert again.label_names == ("no", "yes")
    # Fine-tuning's loader reads the same directory.
    loaded, cfg, _, label_names = artifacts.load_finetuned(out)
    assert label_names == ("no", "yes") and cfg.max_seq_length == 32
    np.testing.assert_array_equal(loaded.predict(model.preprocessor(TEXTS), verbose=0), logits)
    with pytest.raises(ValueError, match="2 labels, not num_labels=3"):
        electra_tf.ElectraClassifier.from_model_dir(out, num_labels=3)

    # Keras' own format keeps the preprocessor (by its vocabulary path).
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(TEXTS, verbose=0), logits)
    assert restored.label_names == ("no", "yes")


def test_pairs_and_the_loader_record(model_dir, tmp_path):
    model = electra_tf.ElectraClassifier.from_model_dir(model_dir, num_labels=3)
    logits = model.predict((TEXTS, TEXTS[::-1]), verbose=0)
    np.testing.assert_array_equal(
        logits, model.predict(model.preprocessor((TEXTS, TEXTS[::-1])), verbose=0))
    record = electra_tf.load_model_dir(model_dir)
    assert record.kind == "discriminator" and record.meta["step"] == 7
    assert record.directory == os.path.join(model_dir, "discriminator")
    _, cfg, vocab_path, meta = record  # unpacks as (model, config, vocab_path, meta)
    assert cfg.data.max_seq_length == 32 and vocab_path.endswith("vocab.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        electra_tf.load_model_dir(str(tmp_path / "modle"))
    with pytest.raises(FileNotFoundError, match="not an electra_tf model directory"):
        electra_tf.load_model_dir(str(tmp_path))
    model.save_to_model_dir(str(tmp_path / "clf"))
    saved = json.loads((tmp_path / "clf" / "finetune_config.json").read_text())
    assert saved["init"] == model_dir and saved["label_names"] == []
    with pytest.raises(ValueError, match="holds a fine-tuned classifier, not a discriminator"):
        electra_tf.ElectraDiscriminator.from_model_dir(str(tmp_path / "clf"))
