"""Multi-worker pretraining and fine-tuning: 2 local processes with MultiWorkerMirroredStrategy.

Through tools/launch_local_workers.py on free 127.0.0.1 ports. Each pretraining test
starts TF in several processes on 2 cores (about a minute per launch), so they are
slow: `make test-all` runs them, CI does not (BUILD.md). The fine-tuning test, with a
1-layer model, takes about 20 s and runs in the fast suite. Every launch is bounded in
time and its whole process group is killed if a test fails.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf.data import builder
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.models import artifacts
from electra_tf.training import finetune
from helpers import TINY_WORDS

from test_pretrain_run import write_corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_SHARDS = 4
LAUNCH_TIMEOUT = 420


@pytest.fixture
def job(tmp_path, tiny_vocab):
    """Paths and the worker command of a tiny multi-worker pretraining job."""
    corpus = write_corpus(tmp_path / "corpus.txt", documents=60)
    data = str(tmp_path / "data")
    builder.build_pretraining_data([corpus], tiny_vocab, data, max_seq_length=16,
                                   num_shards=NUM_SHARDS)
    with open(tiny_vocab) as f:
        vocab_size = sum(1 for _ in f)
    overrides = [
        f"data.vocab_path={tiny_vocab}", "data.max_seq_length=16", "data.shuffle_buffer=10",
        f"model.vocab_size={vocab_size}", "model.embedding_size=8", "model.hidden_size=16",
        "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=32",
        "train.batch_size=4", "train.warmup_steps=1", "train.num_train_steps=400",
        "train.checkpoint_every=2", "train.log_every=2",
    ]
    model_dir = str(tmp_path / "model")

    def command(max_steps):
        return [sys.executable, "tools/pretrain.py", "--config=configs/electra_tiny.json",
                f"--data_dir={data}", f"--model_dir={model_dir}", "--progress=none",
                "--strategy=multi_worker", f"--max_steps={max_steps}"] + [
                    f"--override={o}" for o in overrides]

    return {"data": data, "model_dir": model_dir, "logs": str(tmp_path / "logs"),
            "command": command}


def launch(job, max_steps, attempt):
    """Starts the 2-worker pretraining job; returns (Popen, logs dir)."""
    logs = f"{job['logs']}_{attempt}"
    return launch_command(job["command"](max_steps), logs), logs


def launch_command(command, logs):
    """Starts the 2-worker launcher of `command` in its own process group."""
    return subprocess.Popen(
        [sys.executable, "tools/launch_local_workers.py", "--num_workers=2",
         f"--logs_dir={logs}", "--grace_seconds=5", "--"] + command,
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(process, timeout=LAUNCH_TIMEOUT):
    """Waits for the launcher; kills its process group (workers included) on timeout."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the launcher did not finish in {timeout}s:\n{output[-3000:]}")
    return process.returncode, output


def worker_log(logs, index):
    with open(os.path.join(logs, f"worker_{index}.log")) as f:
        return f.read()


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


@pytest.mark.slow
def test_two_workers_train_on_disjoint_files_and_only_the_chief_writes(job):
    process, logs = launch(job, max_steps=4, attempt=0)
    code, output = finish(process)
    assert code == 0, output[-3000:] + worker_log(logs, 0)[-3000:] + worker_log(logs, 1)[-3000:]
    assert "workers exited with [0, 0]" in output

    model_dir = job["model_dir"]
    assert latest_step(model_dir) == 4
    checkpoints = os.listdir(os.path.join(model_dir, "checkpoints"))
    assert not [name for name in checkpoints if name.startswith("workertemp")]
    steps = [json.loads(line)["step"] for line in open(os.path.join(model_dir, "metrics.jsonl"))]
    assert steps == [2, 4]  # one writer
    for kind in ("discriminator", "generator"):
        assert os.path.exists(os.path.join(model_dir, kind, "model.weights.h5"))

    read = []
    for index in range(2):
        text = worker_log(logs, index)
        assert json.loads(text.splitlines()[0].split("TF_CONFIG=", 1)[1])["task"]["index"] == index
        match = re.search(rf"Input pipeline {index} of 2 \(2 replica\(s\) in sync\) reads "
                          r"\d+ shard\(s\): (.*)", text)
        assert match, text[-3000:]
        read.append(set(match.group(1).split(", ")))
    assert not read[0] & read[1]
    assert read[0] | read[1] == set(tf.io.gfile.glob(os.path.join(job["data"], "*.tfrecord")))
    assert "Pretraining stopped at step 4" in worker_log(logs, 0)
    assert "Pretraining stopped" not in worker_log(logs, 1)


@pytest.mark.slow
def test_killed_worker_then_restarted_job_resumes_from_the_last_checkpoint(job):
    process, logs = launch(job, max_steps=400, attempt=0)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while latest_step(job["model_dir"]) < 4:
            assert process.poll() is None, finish(process)[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint at step 4 in time"
            time.sleep(0.5)
        pid = int(worker_log(logs, 1).split()[2])
        os.kill(pid, signal.SIGKILL)
        code, output = finish(process, timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # Worker 0 may notice the lost peer and fail within the same poll: the job
    # fails either way, with worker 1 reported as killed.
    assert code != 0 and "workers exited with [" in output, output[-3000:]
    assert re.search(rf"workers exited with \[-?\d+, {128 + signal.SIGKILL}\]", output), output
    saved = latest_step(job["model_dir"])
    assert 4 <= saved < 400

    process, logs = launch(job, max_steps=saved + 2, attempt=1)
    code, output = finish(process)
    chief = worker_log(logs, 0)
    assert code == 0, output[-3000:] + chief[-3000:]
    for index in range(2):
        assert f"at step {saved}\n" in worker_log(logs, index).replace("\r", "")
    assert f"Training from step {saved} to {saved + 2}" in chief
    assert latest_step(job["model_dir"]) == saved + 2


# === Fine-tuning ===

# A tiny fine-tuning model (a 1-layer encoder without dropout) that learns
# `write_reviews`' rule in a dozen epochs of 6 steps.
TINY_CLASSIFIER = [
    "model.embedding_size=16", "model.hidden_size=16", "model.num_layers=1",
    "model.num_heads=2", "model.intermediate_size=32", "model.max_position_embeddings=32",
    "model.dropout_rate=0.0", "model.attention_dropout_rate=0.0", "data.max_seq_length=16",
]
FINETUNED_FILES = ["dev_predictions.tsv", "eval_results.json", "finetune_config.json",
                   "metrics.jsonl", "model.json", "model.weights.h5", "tensorboard",
                   "test_predictions.tsv", "vocab.txt"]
DEV_ROWS = 301  # 3 prediction batches of 128; the last one splits 23/22 over the workers

# Runs the worker's command (argv[2:]) in DIR/worker_<task index> (DIR = argv[1]): a
# relative --output_dir then points into each worker's own directory, so whatever a
# worker other than the chief writes shows there instead of mixing with the chief's.
IN_OWN_DIRECTORY = """
import json, os, runpy, sys
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
os.chdir(os.path.join(sys.argv[1], f"worker_{index}"))
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def write_reviews(data_dir):
    """A generic CSV task (text,label; test: text) that a tiny model learns: the
    "pos" texts start with "the" and are a word longer."""
    words = [w for w in TINY_WORDS if w.isalpha()]
    rng = random.Random(0)
    data_dir.mkdir()
    for split, rows in (("train", 48), ("dev", DEV_ROWS), ("test", 7)):
        lines = ["text" if split == "test" else "text,label"]
        for i in range(rows):
            label = ["neg", "pos"][i % 2]
            text = " ".join(["the"] * (label == "pos") + rng.choices(words, k=5))
            lines.append(text if split == "test" else f"{text},{label}")
        (data_dir / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(data_dir)


def test_two_workers_finetune_the_chief_writes_alone_and_evaluates_the_whole_dev_set(
        tmp_path, tiny_vocab):
    data = write_reviews(tmp_path / "reviews")
    config = str(tmp_path / "tiny.json")
    config_lib.save_config(config_lib.load_config(
        os.path.join(REPO, "configs", "electra_tiny.json"), TINY_CLASSIFIER), config)
    for index in range(2):
        (tmp_path / f"worker_{index}").mkdir()
    command = [
        sys.executable, "-c", IN_OWN_DIRECTORY, str(tmp_path),
        os.path.join(REPO, "tools", "finetune.py"), "--task=custom", f"--data_dir={data}",
        "--init=none", f"--config={config}", f"--vocab={tiny_vocab}", "--output_dir=out",
        "--max_seq_length=16", "--batch_size=8", "--epochs=12", "--learning_rate=1e-2",
        "--layer_decay=1", "--progress=none", "--strategy=multi_worker",
    ]
    logs = str(tmp_path / "logs")
    code, output = finish(launch_command(command, logs))
    assert code == 0, output[-3000:] + worker_log(logs, 0)[-3000:] + worker_log(logs, 1)[-3000:]
    assert "workers exited with [0, 0]" in output
    assert "median over 1 seed(s)" in worker_log(logs, 0)
    assert "median over" not in worker_log(logs, 1)  # the chief reports

    out = str(tmp_path / "worker_0" / "out")
    assert sorted(os.listdir(out)) == FINETUNED_FILES
    assert os.listdir(tmp_path / "worker_1") == []  # worker 1 wrote nothing at all

    # The dev metrics, computed over both workers' predictions, are those of the saved
    # model evaluated in one process.
    dev = json.loads(open(os.path.join(out, "eval_results.json")).read())["runs"][0]["dev"]
    model, cfg, vocab_path, _ = artifacts.load_finetuned(out)
    task = finetune.make_task(cfg, data)
    split = task.encode(task.read(cfg, data),
                        WordPieceTokenizer(vocab_path, lowercase=cfg.lowercase), cfg).evals["dev"]
    expected = task.evaluate(model, split, cfg)
    assert dev == pytest.approx(expected, abs=1e-6)
    assert dev["num_examples"] == DEV_ROWS
    # Both classes predicted: the equality checks which prediction met which label.
    assert dev["mcc"] > 0
