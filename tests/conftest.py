"""Shared fixtures: paths to ../shared/data and tiny vocabularies."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import TINY_WORDS, shared_path  # noqa: E402


@pytest.fixture
def bert_vocab():
    return str(shared_path("vocab", "bert-base-uncased-vocab.txt"))


@pytest.fixture
def tiny_vocab(tmp_path):
    """A ~100-token vocabulary: specials, words, their ## suffix forms, letters."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(TINY_WORDS)
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens += list("abcdefghijklmnopqrstuvwxyz")
    seen = []
    for t in tokens:
        if t not in seen:
            seen.append(t)
    path = tmp_path / "tiny_vocab.txt"
    path.write_text("\n".join(seen) + "\n", encoding="utf-8")
    return str(path)
