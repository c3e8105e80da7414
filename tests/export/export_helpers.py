"""A tiny pretraining model_dir and its Keras reference outputs, for the export tests."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from helpers import REPO_ROOT, TINY_WORDS
from electra_tf import config as config_lib
from electra_tf import schema
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import ElectraDiscriminator
from electra_tf.text.packing import pack_single
from electra_tf.text.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer

MAX_SEQ_LENGTH = 16
# Mixed lengths: an empty text, one longer than MAX_SEQ_LENGTH, punctuation, upper case.
TEXTS = [
    "the cats sat on the mat .",
    "",
    "a big red car ran fast and the small dog ran slow , " * 4,
    "Hello world !",
]


def write_vocab(path):
    tokens = list(SPECIAL_TOKENS) + list(dict.fromkeys(TINY_WORDS))
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens += [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in tokens]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return str(path)


def make_model_dir(root, seed=0):
    """A pretraining model_dir holding only discriminator/ (all that export reads).

    Returns:
      (model_dir, discriminator, tokenizer, experiment config)
    """
    root = str(root)
    vocab = write_vocab(os.path.join(root, "vocab.txt"))
    tokenizer = WordPieceTokenizer(vocab)
    cfg = config_lib.load_config(os.path.join(REPO_ROOT, "configs", "electra_tiny.json"), [
        f"data.vocab_path={vocab}", f"data.max_seq_length={MAX_SEQ_LENGTH}",
        f"model.vocab_size={tokenizer.vocab_size}", "model.embedding_size=8",
        "model.hidden_size=16", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=32", "model.max_position_embeddings=32",
        # Wide initial weights spread the untrained scores away from 0.5.
        "model.initializer_range=0.5",
    ])
    keras.utils.set_random_seed(seed)
    disc = ElectraDiscriminator(dataclasses.asdict(cfg.model.discriminator_encoder()))
    artifacts.build_inputs(disc, seq_len=8)
    model_dir = os.path.join(root, "model_dir")
    artifacts.save_artifact(disc, os.path.join(model_dir, "discriminator"), cfg, vocab, step=7)
    return model_dir, disc, tokenizer, cfg


_EXPORTS = {}


def shared_export(tmp_path_factory):
    """One tiny model_dir and its export for the whole session (read-only for tests).

    Returns:
      dict of model_dir, disc, tokenizer, cfg, export_dir and path (of version 1).
    """
    if not _EXPORTS:
        from electra_tf.export import exporter

        root = tmp_path_factory.mktemp("shared_export")
        model_dir, disc, tokenizer, cfg = make_model_dir(root)
        export_dir = str(root / "exports")
        path = exporter.export_model(model_dir, export_dir, "electra")
        _EXPORTS.update(model_dir=model_dir, disc=disc, tokenizer=tokenizer, cfg=cfg,
                        export_dir=export_dir, path=path)
    return _EXPORTS


def reference_features(tokenizer, texts, max_seq_length=MAX_SEQ_LENGTH):
    """Packed features padded to max_seq_length, and kept WordPiece counts."""
    packed = pack_single(tokenizer.tokenize(tf.constant(texts)), max_seq_length,
                         tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    num_tokens = packed.pop("num_tokens")
    return packed, num_tokens.numpy()


def reference_scores(disc, features):
    """The Keras discriminator's replaced probabilities, 0 on padding `[batch, L]`."""
    probs = tf.sigmoid(disc(features, training=False)).numpy()
    return np.where(features[schema.PADDING_MASK].numpy(), probs, 0.0)


# Loads an export where electra_tf (and its Keras models) cannot be: every signature
# runs on the given strings (text inputs, by name) or on the saved ids (id inputs).
_BARE_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tf-text ops the graph uses

    path, ids_file, out_file = sys.argv[1:4]
    strings = json.loads(sys.argv[4])
    ids = dict(np.load(ids_file))
    model = tf.saved_model.load(path)
    results = {}
    for name, fn in model.signatures.items():
        specs = fn.structured_input_signature[1]
        feed = {k: tf.constant(strings[k]) if s.dtype == tf.string else tf.constant(ids[k])
                for k, s in specs.items()}
        for key, value in fn(**feed).items():
            value = value.numpy()
            # Fixed-width bytes, so np.savez needs no pickling.
            results[name + "/" + key] = value.astype(bytes) if value.dtype == object else value
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "electra_tf")
    assert not leaked, leaked
    np.savez(out_file, **results)
    """
)


def bare_process_outputs(export_path, tmp_path, strings, ids):
    """Runs every signature of an export in a process that imports only tensorflow and
    tensorflow_text (electra_tf is asserted absent there).

    Args:
      strings: {text input name: list of str}; ids: {id input name: int32 array}.

    Returns:
      {"<signature>/<output>": array}, strings as bytes.
    """
    np.savez(os.path.join(tmp_path, "ids.npz"), **ids)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    out_file = os.path.join(tmp_path, "out.npz")
    result = subprocess.run(
        [sys.executable, "-c", _BARE_CHILD, export_path, os.path.join(tmp_path, "ids.npz"),
         out_file, json.dumps(strings)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(np.load(out_file))
