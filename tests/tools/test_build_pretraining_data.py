"""tools/build_pretraining_data.py, run as a subprocess like a user would."""

import json
import os
import subprocess
import sys

from helpers import REPO_ROOT, TINY_WORDS
from electra_tf import schema

TOOL = str(REPO_ROOT / "tools" / "build_pretraining_data.py")


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_builds_shards_and_manifest_then_refuses_to_overwrite(tmp_path, tiny_vocab):
    corpus = tmp_path / "corpus.txt"
    words = [w for w in TINY_WORDS if w.isalpha()]
    docs = ["\n".join(" ".join(words[(d + i + k) % len(words)] for k in range(7))
                      for i in range(20)) for d in range(3)]
    corpus.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    (tmp_path / "also-1.txt").write_text("cat dog\n", encoding="utf-8")
    out = tmp_path / "data"
    # Each run imports TensorFlow (seconds): two runs cover the flags and the refusal.
    args = [f"--input={corpus},{tmp_path / 'also-*.txt'}", f"--vocab={tiny_vocab}",
            f"--output_dir={out}", "--max_seq_length=16", "--num_shards=2", "--seed=3",
            "--nolowercase"]

    done = run_tool(*args)
    assert done.returncode == 0, done.stderr
    assert "totals:" in done.stderr and "documents_read=4" in done.stderr

    manifest = json.loads((out / schema.MANIFEST_NAME).read_text())
    names = [schema.SHARD_PATTERN.format(index=j, count=2) for j in range(2)]
    assert sorted(os.listdir(out)) == sorted(names + [schema.MANIFEST_NAME, "vocab.txt"])
    assert [s["file"] for s in manifest["shards"]] == names
    assert (manifest["max_seq_length"], manifest["seed"], manifest["lowercase"]) == (16, 3, False)
    totals = manifest["totals"]
    assert totals["input_tokens"] == 3 * 20 * 7 + 2
    assert totals["files_read"] == 2
    assert totals["examples"] == sum(s["examples"] for s in manifest["shards"]) > 0

    shards = {n: (out / n).read_bytes() for n in names}
    again = run_tool(*args)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    assert {n: (out / n).read_bytes() for n in names} == shards
