"""run_pretraining end to end on real shards: resume equivalence (also with 2 replicas and
gradient accumulation), refusals, artifacts, NaN guard, the CLI with its scale-out flags."""

import glob
import json
import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf import schema
from electra_tf.data import builder
from electra_tf.data.pretraining import token_counts
from electra_tf.models import artifacts
from electra_tf.training import pretrain
from electra_tf.training.callbacks import CheckpointCallback, NonFiniteLossError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = "the cat sat on a mat and the dog ran to big red house with small blue car".split()


def write_corpus(path, documents=30, seed=0):
    rng = np.random.RandomState(seed)
    docs = []
    for _ in range(documents):
        lines = [" ".join(rng.choice(WORDS, rng.randint(4, 12))) + " ." for _ in range(rng.randint(2, 6))]
        docs.append("\n".join(lines))
    path.write_text("\n\n".join(docs) + "\n")
    return str(path)


@pytest.fixture
def data_dir(tmp_path, tiny_vocab):
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = str(tmp_path / "data")
    builder.build_pretraining_data([corpus], tiny_vocab, out, max_seq_length=16, num_shards=2)
    return out


def tiny_config(vocab_path, **train):
    with open(vocab_path) as f:
        vocab_size = sum(1 for _ in f)
    overrides = [
        f"data.vocab_path={vocab_path}", "data.max_seq_length=16", "data.shuffle_buffer=50",
        f"model.vocab_size={vocab_size}", "model.embedding_size=8", "model.hidden_size=16",
        "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=32",
        "model.generator_hidden_fraction=0.5",
        "train.batch_size=4", "train.warmup_steps=2", "train.num_train_steps=20",
        "train.checkpoint_every=2", "train.log_every=2",
    ] + [f"train.{k}={v}" for k, v in train.items()]
    return config_lib.load_config(os.path.join(REPO, "configs", "electra_tiny.json"), overrides)


def weights_of(model_dir, kind="discriminator"):
    model, *_ = artifacts.load_artifact(os.path.join(model_dir, kind))
    return [v.numpy() for v in model.weights]


def test_resume_equals_uninterrupted_run(tmp_path, tiny_vocab, data_dir):
    cfg = tiny_config(tiny_vocab)
    straight = str(tmp_path / "straight")
    assert pretrain.run_pretraining(cfg, data_dir, straight, max_steps=4, verbose=0) == 4
    resumed = str(tmp_path / "resumed")
    assert pretrain.run_pretraining(cfg, data_dir, resumed, max_steps=2, verbose=0) == 2
    # A fresh process state would be the same: the restart rebuilds everything.
    assert pretrain.run_pretraining(cfg, data_dir, resumed, max_steps=4, verbose=0) == 4
    for kind in ("discriminator", "generator"):
        for a, b in zip(weights_of(straight, kind), weights_of(resumed, kind)):
            np.testing.assert_array_equal(a, b)
    ckpt = tf.train.latest_checkpoint(os.path.join(resumed, "checkpoints"))
    assert ckpt.endswith("ckpt-4")
    # Metrics records continue the step count across the restart.
    steps = [json.loads(l)["step"] for l in open(os.path.join(resumed, "metrics.jsonl"))]
    assert steps == [2, 4]
    record = json.loads(open(os.path.join(resumed, "metrics.jsonl")).readline())
    for key in ("loss", "mlm_loss", "mlm_accuracy", "rtd_loss", "rtd_accuracy", "rtd_precision",
                "rtd_recall", "replaced_fraction", "learning_rate", "tokens_per_sec"):
        assert np.isfinite(record[key]), key
    # Google's schedule: linear decay from the peak over all 20 steps, warmup
    # overriding the first 2; logged after the update of step 2.
    assert record["learning_rate"] == pytest.approx(cfg.train.learning_rate * (1 - 2 / 20), rel=1e-5)


def test_sampler_options_resume_exactly_and_checkpoint_the_unigram(tmp_path, tiny_vocab,
                                                                    data_dir):
    cfg = config_lib.apply_overrides(tiny_config(tiny_vocab), [
        "pretraining.flatten_toward=unigram", "pretraining.sampling_passes=2",
        "pretraining.sampling_top_k=12", "pretraining.temperature=2.0"])
    straight = str(tmp_path / "straight")
    assert pretrain.run_pretraining(cfg, data_dir, straight, max_steps=4, verbose=0) == 4
    resumed = str(tmp_path / "resumed")
    assert pretrain.run_pretraining(cfg, data_dir, resumed, max_steps=2, verbose=0) == 2
    assert pretrain.run_pretraining(cfg, data_dir, resumed, max_steps=4, verbose=0) == 4
    for a, b in zip(weights_of(straight), weights_of(resumed)):
        np.testing.assert_array_equal(a, b)
    # The checkpoint holds the data's unigram distribution the sampler used.
    ckpt = tf.train.latest_checkpoint(os.path.join(resumed, "checkpoints"))
    (name,) = [n for n, _ in tf.train.list_variables(ckpt) if "unigram_log_prior" in n]
    counts = token_counts(data_dir, pretrain.load_tokenizer(cfg), 16) + 0.5
    np.testing.assert_allclose(tf.train.load_variable(ckpt, name),
                               np.log(counts / counts.sum()), rtol=1e-5)


def pretrain_with_damaged_latest(tmp_path, tiny_vocab, data_dir):
    """4 steps (checkpoints 2 and 4), then ckpt-4's data file truncated to half."""
    cfg = tiny_config(tiny_vocab)
    model_dir = tmp_path / "model"
    assert pretrain.run_pretraining(cfg, data_dir, str(model_dir), max_steps=4, verbose=0) == 4
    checkpoints = model_dir / "checkpoints"
    (data,) = glob.glob(str(checkpoints / "ckpt-4.data-*"))
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    return cfg, model_dir, checkpoints


def test_truncated_latest_checkpoint_resumes_from_the_previous(tmp_path, tiny_vocab, data_dir,
                                                              caplog):
    cfg, model_dir, checkpoints = pretrain_with_damaged_latest(tmp_path, tiny_vocab, data_dir)
    with caplog.at_level(logging.WARNING):
        assert pretrain.run_pretraining(cfg, data_dir, str(model_dir), max_steps=6,
                                        verbose=0) == 6
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "absl"]
    assert any(w.startswith(f"Checkpoint {checkpoints / 'ckpt-4'} cannot be restored")
               for w in warnings), warnings
    assert f"Resuming from {checkpoints / 'ckpt-2'} at step 2 instead of the damaged " \
           f"{checkpoints / 'ckpt-4'}" in warnings
    # Resumed at step 2 (not 0): the first run's step-4 record went with its
    # checkpoint, and the second run logged steps 4 and 6.
    steps = [json.loads(l)["step"] for l in open(model_dir / "metrics.jsonl")]
    assert steps == [2, 4, 6]
    # ckpt-4 was written again, whole (every tensor reads), on the way to 6.
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-6")
    reader = tf.train.load_checkpoint(str(checkpoints / "ckpt-4"))
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


@pytest.mark.slow
def test_cli_refuses_when_no_checkpoint_restores(tmp_path, tiny_vocab, data_dir):
    _, model_dir, checkpoints = pretrain_with_damaged_latest(tmp_path, tiny_vocab, data_dir)
    os.remove(checkpoints / "ckpt-2.index")
    metrics = (model_dir / "metrics.jsonl").read_text()
    files = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "tools/pretrain.py", f"--config={model_dir / 'config.json'}",
         f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--max_steps=8",
         "--progress=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error: no checkpoint in {checkpoints} can be restored: "
                                "ckpt-4 (")
    assert "; ckpt-2 (" in errors[0]
    # Nothing was trained, saved or logged over the old run.
    assert (model_dir / "metrics.jsonl").read_text() == metrics
    assert {p.name: p.read_bytes() for p in checkpoints.iterdir()} == files


def check_resume_with_two_replicas_and_accumulation():
    """The exact-resume property under MirroredStrategy on 2 CPUs, 2 micro-batches each.

    Paths come from the environment (the check may run in a fresh interpreter).
    """
    paths = json.loads(os.environ["ELECTRA_RESUME_CHECK"])
    cfg = tiny_config(paths["vocab"], grad_accum_steps=2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def run(name, steps):
        return pretrain.run_pretraining(cfg, paths["data"], os.path.join(paths["out"], name),
                                        max_steps=steps, strategy=strategy, verbose=0)

    assert run("straight", 4) == 4
    assert run("resumed", 2) == 2
    assert run("resumed", 4) == 4
    for kind in ("discriminator", "generator"):
        straight = weights_of(os.path.join(paths["out"], "straight"), kind)
        for a, b in zip(straight, weights_of(os.path.join(paths["out"], "resumed"), kind)):
            np.testing.assert_array_equal(a, b)
    steps = [json.loads(l)["step"]
             for l in open(os.path.join(paths["out"], "resumed", "metrics.jsonl"))]
    assert steps == [2, 4]


@pytest.mark.slow
def test_resume_with_two_replicas_and_accumulation(tmp_path, tiny_vocab, data_dir,
                                                   monkeypatch, run_on_two_cpus):
    monkeypatch.setenv("ELECTRA_RESUME_CHECK", json.dumps(
        {"vocab": tiny_vocab, "data": data_dir, "out": str(tmp_path)}))
    run_on_two_cpus(check_resume_with_two_replicas_and_accumulation)


def test_resumed_stream_skips_the_batches_of_every_replica(tiny_vocab, data_dir):
    """With 2 replicas per input pipeline a step takes 2 of its batches, so a run
    resumed at step 2 starts at the pipeline's batch 4."""
    cfg = tiny_config(tiny_vocab)
    tokenizer = pretrain.load_tokenizer(cfg)
    context = tf.distribute.InputContext(
        num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    full = list(pretrain.make_dataset(cfg, data_dir, tokenizer, 0, context).take(6))
    resumed = list(pretrain.make_dataset(cfg, data_dir, tokenizer, 2, context).take(2))
    assert full[0][schema.TOKEN_IDS].shape[0] == cfg.train.batch_size // 2
    for got, want in zip(resumed, full[4:]):
        for name in want:
            np.testing.assert_array_equal(got[name].numpy(), want[name].numpy())


def test_global_batch_that_does_not_split_is_refused(tmp_path, tiny_vocab, data_dir):
    cfg = tiny_config(tiny_vocab, grad_accum_steps=2)
    four_replicas = types.SimpleNamespace(num_replicas_in_sync=4)
    with pytest.raises(ValueError, match=r"batch_size=4 .* replicas \(4\) x grad_accum_steps \(2\)"):
        pretrain.run_pretraining(cfg, data_dir, str(tmp_path / "m"), max_steps=1,
                                 strategy=four_replicas, verbose=0)
    assert not os.path.exists(tmp_path / "m")


def test_model_dir_with_other_config_is_refused(tmp_path, tiny_vocab, data_dir):
    model_dir = str(tmp_path / "m")
    pretrain.run_pretraining(tiny_config(tiny_vocab), data_dir, model_dir, max_steps=1, verbose=0)
    with pytest.raises(pretrain.ModelDirMismatchError, match=r"train\.learning_rate"):
        pretrain.run_pretraining(tiny_config(tiny_vocab, learning_rate=0.5), data_dir, model_dir,
                                 max_steps=2, verbose=0)


def test_data_for_another_length_is_refused_before_building(tmp_path, tiny_vocab, data_dir):
    cfg = config_lib.apply_overrides(tiny_config(tiny_vocab), ["data.max_seq_length=8"])
    with pytest.raises(ValueError, match="max_seq_length"):
        pretrain.run_pretraining(cfg, data_dir, str(tmp_path / "m"), max_steps=1, verbose=0)
    assert not os.path.exists(tmp_path / "m")


def test_vocab_size_mismatch_is_named(tmp_path, tiny_vocab, data_dir):
    cfg = config_lib.apply_overrides(tiny_config(tiny_vocab), ["model.vocab_size=1000"])
    with pytest.raises(ValueError, match="vocab_size=1000"):
        pretrain.run_pretraining(cfg, data_dir, str(tmp_path / "m"), max_steps=1, verbose=0)


class _FakeCheckpoint:
    latest = "ckpt-2"

    def __init__(self):
        self.saved = 0

    def save(self):
        self.saved += 1


def test_nan_loss_stops_without_saving():
    import keras

    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.build((None, 1))
    model.optimizer.build(model.trainable_variables)
    ckpt = _FakeCheckpoint()
    cb = CheckpointCallback(ckpt, every_n_steps=1)
    cb.set_model(model)
    cb.on_train_begin()
    model.optimizer.iterations.assign(3)
    cb.on_train_batch_end(0, {"loss": float("nan")})
    cb.on_train_end()
    assert isinstance(cb.error, NonFiniteLossError) and "step 3" in str(cb.error)
    assert "ckpt-2" in str(cb.error)
    assert model.stop_training and ckpt.saved == 0


def test_tools_smoke(tmp_path, tiny_vocab):
    """Text -> shards -> pretrain a few steps (2 CPU replicas, bfloat16) -> artifacts,
    through the CLIs."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    data = str(tmp_path / "data")
    model_dir = str(tmp_path / "model")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "tools/build_pretraining_data.py", f"--input={corpus}",
         f"--vocab={tiny_vocab}", f"--output_dir={data}", "--max_seq_length=16", "--num_shards=2"],
        cwd=REPO, env=env, check=True, capture_output=True,
    )
    with open(tiny_vocab) as f:
        vocab_size = sum(1 for _ in f)
    overrides = [f"data.vocab_path={tiny_vocab}", "data.max_seq_length=16",
                 f"model.vocab_size={vocab_size}", "model.num_layers=1", "model.hidden_size=16",
                 "model.num_heads=1", "model.intermediate_size=16", "model.embedding_size=8",
                 "train.batch_size=4", "train.warmup_steps=1", "train.num_train_steps=3",
                 "train.log_every=1", "data.shuffle_buffer=10"]
    result = subprocess.run(
        [sys.executable, "tools/pretrain.py", "--config=configs/electra_tiny.json",
         f"--data_dir={data}", f"--model_dir={model_dir}", "--progress=none",
         "--cpu_replicas=2", "--strategy=mirrored", "--precision=mixed_bfloat16"]
        + [f"--override={o}" for o in overrides],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 3" in result.stdout
    assert "MirroredStrategy: 2 replicas in sync" in result.stderr
    assert "Keras dtype policy: mixed_bfloat16" in result.stderr
    for kind in ("discriminator", "generator"):
        for name in ("artifact.json", "config.json", "model.weights.h5", "vocab.txt"):
            assert os.path.exists(os.path.join(model_dir, kind, name)), (kind, name)
    assert len(open(os.path.join(model_dir, "metrics.jsonl")).readlines()) == 3
    assert tf.io.gfile.glob(os.path.join(model_dir, "tensorboard", "events.out.tfevents.*"))


def test_a_non_chief_worker_saves_to_scratch_and_logs_nothing(tmp_path):
    import keras

    from electra_tf.training.callbacks import MetricsLogger, TrainingCheckpoint

    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.build((None, 1))
    model.optimizer.build(model.trainable_variables)
    directory = tmp_path / "checkpoints"
    worker = TrainingCheckpoint(model, str(directory), is_chief=False, worker_id=1)
    assert worker.save() is None
    # It took part in the save, then removed its scratch copy; the chief's files only.
    assert not directory.exists() or not list(directory.iterdir())
    chief = TrainingCheckpoint(model, str(directory))
    assert chief.save().endswith("ckpt-0")
    assert worker.restore_latest() == 0  # every worker restores from the chief's files

    logger = MetricsLogger(str(tmp_path / "metrics.jsonl"), every_n_steps=1, tokens_per_step=4,
                           tensorboard_dir=str(tmp_path / "tb"), write=False)
    logger.set_model(model)
    metric = model.metrics[0]  # Keras' loss tracker, a Mean
    metric.update_state(3.0)
    assert float(metric.result()) == 3.0
    logger.on_train_begin()
    model.optimizer.iterations.assign(1)
    logger.on_train_batch_end(0, {"loss": 1.0})
    logger.on_train_end()
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tb").exists()
    # Metrics are still reset on the chief's schedule.
    assert float(metric.result()) == 0.0
