"""Tiny fine-tuned classifiers, a synthetic one-word task and tool runners, for the
attribution tests."""

import os
import random
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from helpers import REPO_ROOT
from electra_tf import config as config_lib
from electra_tf.export import signatures
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import finetune
from export.export_helpers import MAX_SEQ_LENGTH, write_vocab

LABELS = ("negative", "neutral", "positive")
ENCODER = dict(embedding_size=8, hidden_size=16, num_layers=2, num_heads=2,
               intermediate_size=32, max_position_embeddings=32, initializer_range=0.5)


def make_finetuned(root, num_labels=3, pair=False, seed=1):
    """A tools/finetune.py-style output dir of a random classifier (num_labels 1:
    regression), for single texts or pairs.

    Returns:
      (output_dir, model, tokenizer)
    """
    root = str(root)
    vocab = write_vocab(os.path.join(root, "vocab.txt"))
    tokenizer = WordPieceTokenizer(vocab)
    keras.utils.set_random_seed(seed)
    model = ElectraClassifier(dict(ENCODER, vocab_size=tokenizer.vocab_size), num_labels)
    model.build_for_length(8)
    cfg = config_lib.FinetuneConfig(
        task="custom", init="none", regression=num_labels == 1,
        label_names=LABELS[:num_labels] if num_labels > 1 else (),
        text_pair_column="b" if pair else "", max_seq_length=MAX_SEQ_LENGTH)
    out = os.path.join(root, "finetuned")
    finetune.save_finetuned(model, cfg, vocab, out)
    return out, model, tokenizer


# The synthetic task: "blue" anywhere in the text means label "blue", "red" label "red",
# neither label "none" (so the no-words baseline is "none" and both words must count);
# the other words are noise.
SYNTHETIC_LABELS = ("none", "blue", "red")
FILLERS = ("the a an of to and in is was it he she they we you that this with for on at "
           "by from as be have cat dog sat mat run big small house tree car").split()


def synthetic_texts(count, seed, key_word_only=False):
    """(texts, labels): 4-9 filler words, with one key word at a random place except in
    a third of the texts (label 0); `key_word_only`: always one."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(count):
        words = rng.choices(FILLERS, k=rng.randint(4, 9))
        label = rng.randint(1 if key_word_only else 0, 2)
        if label:
            words.insert(rng.randint(0, len(words)), SYNTHETIC_LABELS[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


def train_synthetic(vocab, seed=0, examples=1500, epochs=4):
    """A tiny classifier trained (a few seconds) on `synthetic_texts`.

    Returns:
      (model, tokenizer)
    """
    tokenizer = WordPieceTokenizer(vocab)
    keras.utils.set_random_seed(seed)
    model = ElectraClassifier(
        dict(ENCODER, vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
             initializer_range=0.02, dropout_rate=0.0, attention_dropout_rate=0.0),
        num_labels=len(SYNTHETIC_LABELS))
    model.build_for_length(MAX_SEQ_LENGTH)
    texts, labels = synthetic_texts(examples, seed)
    features, _ = signatures.TextPacker(tokenizer, MAX_SEQ_LENGTH)(tf.constant(texts))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    return model, tokenizer


def run_tool(name, *args):
    """Runs tools/`name` with `args` in a subprocess (stdout and stderr captured)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / name), *args],
                          env=env, capture_output=True, text=True, timeout=300)


def assert_one_error_line(result, message):
    """The tool failed with exit code 2 and one `error:` line holding `message`."""
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert message in line
