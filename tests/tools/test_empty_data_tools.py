"""An empty corpus: the build tool fails with one line, and pretraining on empty data
(as the builder used to write it) fails with one line instead of hanging.

Run as subprocesses with timeouts, so a hang fails the test instead of blocking it.
"""

import os
import subprocess
import sys

from helpers import REPO_ROOT
from electra_tf.data import manifest as manifest_lib
from electra_tf import schema
from electra_tf.text.tokenizer import vocab_sha256

# Generous for a loaded machine; the refusals come before any model is built.
TIMEOUT = 240


def run_tool(tool, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / tool), *args],
                          capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          cwd=REPO_ROOT)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error_line(result, *expected):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]


def test_build_tool_refuses_an_empty_corpus(tmp_path, tiny_vocab):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "data"
    result = run_tool("build_pretraining_data.py", f"--input={empty}", f"--vocab={tiny_vocab}",
                      f"--output_dir={out}", "--max_seq_length=16", "--num_shards=2")
    assert_one_error_line(result, str(empty), "no pretraining example")
    assert os.listdir(out) == []


def write_empty_data(data_dir, vocab_path, num_shards=2):
    """The builder's old output for an empty corpus: empty shards and a valid manifest
    listing 0 examples."""
    data_dir.mkdir()
    shards = []
    for j in range(num_shards):
        name = schema.SHARD_PATTERN.format(index=j, count=num_shards)
        (data_dir / name).write_bytes(b"")
        shards.append({"file": name, "examples": 0, "tokens": 0, "bytes": 0})
    with open(vocab_path) as f:
        vocab_size = sum(1 for _ in f)
    manifest_lib.write_manifest(str(data_dir), {
        "builder_version": schema.BUILDER_VERSION, "vocab_sha256": vocab_sha256(vocab_path),
        "vocab_size": vocab_size, "lowercase": True, "max_seq_length": 16, "seed": 1,
        "inputs": ["empty.txt"], "num_shards": num_shards, "shard_index": 0,
        "num_workers": 1, "shards": shards, "totals": {"examples": 0, "tokens": 0}})
    return vocab_size


def test_pretrain_tool_refuses_empty_data_instead_of_hanging(tmp_path, tiny_vocab):
    data = tmp_path / "data"
    vocab_size = write_empty_data(data, tiny_vocab)
    model_dir = tmp_path / "model"
    overrides = [f"data.vocab_path={tiny_vocab}", "data.max_seq_length=16",
                 f"model.vocab_size={vocab_size}", "model.num_layers=1", "model.hidden_size=16",
                 "model.num_heads=1", "model.intermediate_size=16", "model.embedding_size=8",
                 "train.batch_size=4", "train.warmup_steps=1", "train.num_train_steps=3"]
    result = run_tool("pretrain.py", "--config=configs/electra_tiny.json",
                      f"--data_dir={data}", f"--model_dir={model_dir}", "--progress=none",
                      *[f"--override={o}" for o in overrides])
    assert_one_error_line(result, str(data), "holds no pretraining example")
    # Refused before the model_dir was created: nothing to clean up or resume.
    assert not model_dir.exists()
