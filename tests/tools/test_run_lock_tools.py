"""tools/pretrain.py and tools/finetune.py refuse a directory another process is using:
one `error:` line naming the holder's pid and host, before anything is written."""

import os
import socket
import subprocess
import sys
import textwrap

from helpers import REPO_ROOT, TINY_WORDS
from electra_tf.data import builder
from electra_tf.training.lock import LOCK_NAME

TIMEOUT = 240

_HOLDER = textwrap.dedent(
    """
    import sys
    from electra_tf.training.lock import RunLock
    with RunLock(sys.argv[1], sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def start_holder(directory, purpose):
    """A real process holding `directory`'s lock until its stdin closes."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory), purpose],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    assert process.stdout.readline() == "locked\n"
    return process


def start_tool(tool, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "tools" / tool), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO_ROOT)


def finish(process):
    try:
        return process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def test_pretrain_and_finetune_refuse_a_directory_in_use(tmp_path, tiny_vocab):
    words = [w for w in TINY_WORDS if w.isalpha()]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(" ".join(words[(d + i + k) % len(words)]
                                                     for k in range(8)) for i in range(6))
                                  for d in range(20)) + "\n", encoding="utf-8")
    data = tmp_path / "data"
    builder.build_pretraining_data([str(corpus)], tiny_vocab, str(data), max_seq_length=16,
                                   num_shards=2)
    glue = tmp_path / "SST-2"
    glue.mkdir()
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{w} {w}\t{i % 2}\n" for i, w in enumerate(words)),
            encoding="utf-8")

    model_dir, output_dir = tmp_path / "model", tmp_path / "finetuned"
    holders = [start_holder(model_dir, "pretraining"), start_holder(output_dir, "fine-tuning")]
    try:
        vocab_size = len(open(tiny_vocab).read().splitlines())
        overrides = [f"data.vocab_path={tiny_vocab}", "data.max_seq_length=16",
                     f"model.vocab_size={vocab_size}", "model.num_layers=1",
                     "model.hidden_size=16", "model.num_heads=1", "model.intermediate_size=16",
                     "model.embedding_size=8", "train.batch_size=4", "train.num_train_steps=3",
                     "train.warmup_steps=1"]
        tools = [
            start_tool("pretrain.py", "--config=configs/electra_tiny.json",
                       f"--data_dir={data}", f"--model_dir={model_dir}", "--progress=none",
                       *[f"--override={o}" for o in overrides]),
            start_tool("finetune.py", "--task=sst2", f"--data_dir={glue}", "--init=none",
                       "--config=configs/electra_tiny.json", f"--vocab={tiny_vocab}",
                       f"--output_dir={output_dir}", "--max_seq_length=16", "--epochs=1",
                       "--progress=none"),
        ]
        outputs = [finish(tool) for tool in tools]
        for holder, tool, (_, stderr), purpose in zip(
                holders, tools, outputs, ("pretraining", "fine-tuning")):
            assert tool.returncode != 0
            assert "Traceback" not in stderr, stderr[-3000:]
            errors = [l for l in stderr.splitlines() if l.startswith("error:")]
            assert len(errors) == 1, stderr[-3000:]
            assert f"pid {holder.pid} on host {socket.gethostname()}" in errors[0]
            assert f"in use by another {purpose}" in errors[0]
        # Neither wrote anything beside the holder's lock file.
        assert sorted(os.listdir(model_dir)) == [LOCK_NAME]
        assert sorted(os.listdir(output_dir)) == [LOCK_NAME]
    finally:
        for holder in holders:
            holder.kill()
            holder.communicate(timeout=TIMEOUT)
