"""tools/build_vocab.py, run as a subprocess like a user would."""

import gzip
import os
import random
import subprocess
import sys

import tensorflow as tf

from helpers import REPO_ROOT, TINY_WORDS
from electra_tf.text.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer, load_vocab

TOOL = str(REPO_ROOT / "tools" / "build_vocab.py")


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def tiny_corpus(tmp_path):
    """A plain and a gzipped file of capitalised sentences over TINY_WORDS."""
    rng = random.Random(0)
    words = [w for w in TINY_WORDS if w.isalpha()] + ["Zürich", "café"]
    docs = ["\n".join(" ".join(rng.choices(words, k=8)).capitalize() + "."
                      for _ in range(30)) for _ in range(4)]
    plain = tmp_path / "part-1.txt"
    plain.write_text("\n\n".join(docs[:2]) + "\n", encoding="utf-8")
    (tmp_path / "part-2.txt.gz").write_bytes(
        gzip.compress(("\n\n".join(docs[2:]) + "\n").encode("utf-8")))
    lines = [line for doc in docs for line in doc.split("\n")]
    return str(tmp_path / "part-*"), lines


def test_cli_writes_a_loadable_cased_vocab(tmp_path):
    pattern, lines = tiny_corpus(tmp_path)
    output = tmp_path / "out" / "vocab.txt"
    os.makedirs(output.parent)
    done = run_tool(f"--input={pattern}", f"--output={output}", "--vocab_size=120",
                    "--nolowercase", "--reserved_tokens=[unused0],[unused1]")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr

    tokens = load_vocab(str(output))
    assert tokens[:7] == list(SPECIAL_TOKENS) + ["[unused0]", "[unused1]"]
    assert len(tokens) <= 120 and len(set(tokens)) == len(tokens)
    # Cased: capitals and accents are kept as learned.
    assert "Z" in tokens and "##ü" in tokens
    tok = WordPieceTokenizer(str(output), lowercase=False)
    ids = tok.tokenize(tf.constant(lines)).flat_values.numpy()
    assert ids.size > 1000 and (ids == tok.unk_id).sum() == 0


def test_cli_names_globs_that_matched_nothing(tmp_path):
    pattern, _ = tiny_corpus(tmp_path)
    missing = str(tmp_path / "nothing-*.txt")
    done = run_tool(f"--input={pattern},{missing}", f"--output={tmp_path / 'v.txt'}",
                    "--vocab_size=100")
    assert done.returncode != 0
    assert missing in done.stderr and "matched no file" in done.stderr
    assert not (tmp_path / "v.txt").exists()
