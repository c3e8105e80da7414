"""run_pretraining with the diagnostics: context_auc from held-out text, rtd_prior_gap
and rtd_auc in every record, the collapse warning; the MLM control's artifacts; and
MetricsLogger's probe schedule."""

import json
import math
import os
import types

import keras
import numpy as np
import pytest

from electra_tf import config as config_lib
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import MaskedLMPretrainer
from electra_tf.training import diagnostics, pretrain
from electra_tf.training.callbacks import MetricsLogger, read_metrics
from electra_tf.models.losses import binary_entropy

from test_pretrain_run import data_dir, tiny_config, write_corpus  # noqa: F401 (fixture)


@pytest.fixture
def heldout(tmp_path):
    return write_corpus(tmp_path / "heldout.txt", documents=20, seed=1)


def diagnostics_config(vocab, objective="electra", **diag):
    overrides = [f"pretraining.objective={objective}", "diagnostics.context_probe_sequences=16",
                 "diagnostics.context_probe_every=2", "train.log_every=2"]
    overrides += [f"diagnostics.{k}={v}" for k, v in diag.items()]
    return config_lib.apply_overrides(tiny_config(vocab), overrides)


def final_probe_auc(cfg, heldout, model):
    """The context AUC the run's probe gives `model` (anything with token_scores)."""
    probe = pretrain.make_context_probe(cfg, pretrain.load_tokenizer(cfg), [heldout])
    return probe(model)["context_auc"]


def test_electra_run_records_the_diagnostics(tmp_path, tiny_vocab, data_dir, heldout,
                                             monkeypatch):
    warnings = []
    monkeypatch.setattr(diagnostics.logging, "warning",
                        lambda msg, *args: warnings.append(msg % args))
    # Any record after warmup (2 steps) is "at the prior" with a 10-nat gap.
    cfg = diagnostics_config(tiny_vocab, collapse_gap=10.0, collapse_logs=1)
    model_dir = str(tmp_path / "m")
    assert pretrain.run_pretraining(cfg, data_dir, model_dir, max_steps=5, verbose=0,
                                    probe_text=[heldout]) == 5
    records = read_metrics(model_dir)
    # Logged every 2 steps, and at the end; probed every 2 steps, and at the end.
    assert [r["step"] for r in records] == [2, 4, 5]
    assert [("context_auc" in r) for r in records] == [True, True, True]
    for r in records:
        assert 0.0 <= r["context_auc"] <= 1.0
        assert 0.0 <= r["rtd_auc"] <= 1.0
        assert np.isfinite(r["rtd_prior_gap"]) and np.isfinite(r["temperature"])
        # The entropy is concave: an interval's mean gap is at most the entropy of
        # its mean replaced fraction, itself at most ln 2.
        assert r["rtd_prior_gap"] <= float(binary_entropy(r["replaced_fraction"])) + 1e-6
        assert r["rtd_prior_gap"] <= math.log(2) + 1e-6
    # The last interval is one step (5): there it is exactly H(replaced) - rtd_loss.
    last = records[-1]
    assert last["rtd_prior_gap"] == pytest.approx(
        float(binary_entropy(last["replaced_fraction"])) - last["rtd_loss"], abs=1e-5)
    # The last probe ran on the final weights, which the artifact holds.
    disc, *_ = artifacts.load_artifact(os.path.join(model_dir, "discriminator"),
                                       "discriminator")
    scorer = types.SimpleNamespace(
        token_scores=lambda inputs, mask_id=None: disc(inputs, training=False))
    assert last["context_auc"] == pytest.approx(final_probe_auc(cfg, heldout, scorer),
                                                abs=1e-5)
    # The collapse warning: once, at the first record after warmup.
    assert len(warnings) == 1 and "to step 4" in warnings[0]
    assert os.path.isdir(os.path.join(model_dir, "generator"))
    assert not os.path.exists(os.path.join(model_dir, "masked_lm"))


def test_mlm_run_writes_discriminator_and_masked_lm(tmp_path, tiny_vocab, data_dir, heldout):
    cfg = diagnostics_config(tiny_vocab, objective="mlm")
    model_dir = str(tmp_path / "m")
    assert pretrain.run_pretraining(cfg, data_dir, model_dir, max_steps=3, verbose=0,
                                    probe_text=[heldout]) == 3
    assert sorted(os.listdir(model_dir)) == sorted(
        ["checkpoints", "config.json", "discriminator", "masked_lm", "metrics.jsonl",
         "tensorboard", "vocab.txt"])
    assert not os.path.exists(os.path.join(model_dir, "generator"))

    disc, disc_cfg, vocab, meta = artifacts.load_artifact(
        os.path.join(model_dir, "discriminator"), "discriminator")
    assert meta["kind"] == "discriminator" and meta["step"] == 3
    assert (meta["objective"], meta["rtd_head"]) == ("mlm", "untrained")
    assert disc_cfg == cfg and disc_cfg.pretraining.objective == "mlm"
    assert open(vocab).read() == open(tiny_vocab).read()
    mlm, _, _, mlm_meta = artifacts.load_artifact(os.path.join(model_dir, "masked_lm"),
                                                  "generator")
    assert mlm_meta["objective"] == "mlm" and mlm_meta["step"] == 3
    # The masked LM has the discriminator's size, and its encoder is the
    # discriminator artifact's encoder.
    assert mlm.encoder_config == disc.encoder_config
    assert mlm.encoder_config["hidden_size"] == cfg.model.hidden_size
    mlm_weights = mlm.encoder.get_weights()
    disc_weights = disc.encoder.get_weights()
    assert len(mlm_weights) == len(disc_weights) > 0
    for a, b in zip(mlm_weights, disc_weights):
        np.testing.assert_array_equal(a, b)
    # Trained: not the initialization of a fresh encoder with the same seed.
    keras.utils.set_random_seed(cfg.train.seed)
    fresh = MaskedLMPretrainer(mlm.encoder_config)
    artifacts.build_inputs(fresh.masked_lm, seq_len=8)
    assert any(not np.array_equal(a, b)
               for a, b in zip(mlm_weights, fresh.masked_lm.encoder.get_weights()))

    records = read_metrics(model_dir)
    assert [r["step"] for r in records] == [2, 3]
    for r in records:
        assert np.isfinite(r["mlm_loss"]) and 0.0 <= r["context_auc"] <= 1.0
        assert not any(k.startswith("rtd_") for k in r) and "temperature" not in r
    # The probe scored with the masked LM's surprisals, on the final weights.
    scorer = types.SimpleNamespace(
        token_scores=lambda inputs, mask_id: MaskedLMPretrainer.token_scores(
            types.SimpleNamespace(masked_lm=mlm), inputs, mask_id))
    assert records[-1]["context_auc"] == pytest.approx(
        final_probe_auc(cfg, heldout, scorer), abs=1e-5)


def test_missing_probe_text_fails_before_anything_is_written(tmp_path, tiny_vocab, data_dir):
    model_dir = tmp_path / "m"
    missing = str(tmp_path / "no_such_heldout.txt")
    with pytest.raises(FileNotFoundError, match="no_such_heldout.txt"):
        pretrain.run_pretraining(diagnostics_config(tiny_vocab), data_dir, str(model_dir),
                                 max_steps=1, verbose=0, probe_text=[missing])
    assert not model_dir.exists()


# === MetricsLogger's probe schedule (no training) ===


class CountingProbe:
    def __init__(self, every_n_steps):
        self.every_n_steps = every_n_steps
        self.steps = []

    def __call__(self, model):
        step = int(model.optimizer.iterations.numpy())
        self.steps.append(step)
        return {"context_auc": float(step)}


def drive_logger(tmp_path, log_every, probe_every, final_step):
    """Runs MetricsLogger over `final_step` fake steps; returns the records."""
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.build((None, 1))
    model.optimizer.build(model.trainable_variables)
    probe = CountingProbe(probe_every)
    watch = diagnostics.CollapseWatch(gap=0.5, patience=2)
    path = tmp_path / f"metrics-{log_every}-{probe_every}-{final_step}.jsonl"
    logger = MetricsLogger(str(path), every_n_steps=log_every, tokens_per_step=4,
                           probes=[probe], watchers=[watch])
    logger.set_model(model)
    logger.set_params({"epochs": 1, "steps": final_step})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for step in range(1, final_step + 1):
        model.optimizer.iterations.assign(step)
        logger.on_train_batch_end(step - 1, {"loss": 1.0, "rtd_prior_gap": 0.1})
    logger.on_train_end({"loss": 1.0, "rtd_prior_gap": 0.1})
    return [json.loads(line) for line in open(path)], probe, watch


def test_logger_probes_on_schedule_and_at_an_odd_end(tmp_path):
    records, probe, watch = drive_logger(tmp_path, log_every=2, probe_every=4, final_step=9)
    assert [r["step"] for r in records] == [2, 4, 6, 8, 9]
    assert probe.steps == [4, 8, 9]
    assert [r.get("context_auc") for r in records] == [None, 4.0, None, 8.0, 9.0]
    # The watcher saw every written record (with the probe's values).
    assert watch.warned_at == 4


def test_logger_probes_at_the_end_when_the_end_is_a_log_step(tmp_path):
    records, probe, _ = drive_logger(tmp_path, log_every=2, probe_every=4, final_step=6)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert probe.steps == [4, 6]
    assert "context_auc" in records[-1]


def test_logger_probes_when_the_probe_interval_is_not_a_multiple_of_the_log_interval(tmp_path):
    records, probe, _ = drive_logger(tmp_path, log_every=4, probe_every=6, final_step=21)
    assert [r["step"] for r in records] == [4, 8, 12, 16, 20, 21]
    # Past 6 at 8, 12 at 12, 18 at 20, and the end.
    assert probe.steps == [8, 12, 20, 21]
