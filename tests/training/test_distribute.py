"""Training under tf.distribute: 2 replicas == 1 device (pretraining and fine-tuning),
gradient accumulation == one big batch, per-replica XLA, precision policies and
float16 loss scaling. (Fine-tuning's one-device accumulation and XLA checks are in
test_finetune.py.)

The 2-replica checks run where CPU:0 and CPU:1 exist (`run_on_two_cpus`, see
conftest.py). Dropout is 0 throughout: Keras draws dropout masks per replica, so
only the rest of the step can be split-invariant. The one-device references run
eagerly (the same math, without the graph build), and the XLA checks are slow:
compiling two encoders takes most of a minute on 2 cores.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf.models import artifacts
from electra_tf import schema
from electra_tf.models.pretrainer import ElectraPretrainer
from electra_tf.models import steps
from electra_tf.training.optimization import make_optimizer

VOCAB, L, P = 60, 12, 3
STEPS = 3


def encoder_config(hidden, heads):
    return dict(vocab_size=VOCAB, embedding_size=8, hidden_size=hidden, num_layers=2,
                num_heads=heads, intermediate_size=2 * hidden, dropout_rate=0.0,
                attention_dropout_rate=0.0, max_position_embeddings=32)


def make_pretrainer(grad_accum_steps=1, **options):
    return ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), seed=11,
                             grad_accum_steps=grad_accum_steps, **options)


def global_batches(batch_size, steps=STEPS, seed=0):
    """Masked batches with unequal real-token and prediction counts per row, so
    that per-replica or per-micro-batch means would differ from the global one."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        lengths = rng.integers(3, L + 1, batch_size)
        padding_mask = np.arange(L)[None, :] < lengths[:, None]
        ids = np.where(padding_mask, rng.integers(5, VOCAB, (batch_size, L)), 0).astype("int32")
        ids[:, 0] = 2
        num_predictions = np.minimum(rng.integers(0, P + 1, batch_size), lengths - 2)
        weights = (np.arange(P)[None, :] < num_predictions[:, None]).astype("float32")
        positions = np.where(weights > 0, np.arange(1, P + 1)[None, :], 0).astype("int32")
        mask_ids = np.where(weights > 0, np.take_along_axis(ids, positions, 1), 0)
        masked = ids.copy()
        np.put_along_axis(masked, positions, np.where(weights > 0, 4, mask_ids), 1)
        masked[:, 0] = 2
        batches.append({
            schema.TOKEN_IDS: masked,
            schema.SEGMENT_IDS: np.zeros((batch_size, L), "int32"),
            schema.PADDING_MASK: padding_mask,
            schema.MASK_POSITIONS: positions,
            schema.MASK_IDS: mask_ids.astype("int32"),
            schema.MASK_WEIGHTS: weights,
        })
    return batches


def _stack(parts):
    return {name: np.stack([p[name] for p in parts]) for name in parts[0]}


def train(strategy, batches, initial_weights=None, grad_accum_steps=1, jit_compile=False,
          run_eagerly=False, options=None):
    """Fits `len(batches)` steps on the global `batches` through `strategy`.

    Replica r gets rows `[r * b, (r + 1) * b)` of each global batch, dealt out
    by `distribute_datasets_from_function` as the real input pipeline is.

    Returns:
      (trainable weights as numpy, history dict, model)
    """
    replicas = strategy.num_replicas_in_sync
    spec = tf.data.Dataset.from_tensors(batches[0]).element_spec
    with strategy.scope():
        model = make_pretrainer(grad_accum_steps, **(options or {}))
        model.compile(optimizer=make_optimizer(1e-2, 100, 0, weight_decay=0.01),
                      jit_compile=jit_compile, run_eagerly=run_eagerly)
        model.build_from_spec(spec)
        model.optimizer.build(model.trainable_variables)
    if initial_weights is not None:
        model.set_weights(initial_weights)

    def dataset_fn(context):
        rows = context.get_per_replica_batch_size(len(batches[0][schema.TOKEN_IDS]))
        parts = [{name: value[r * rows:(r + 1) * rows] for name, value in batch.items()}
                 for batch in batches for r in range(replicas)]
        return tf.data.Dataset.from_tensor_slices(_stack(parts))

    history = model.fit(strategy.distribute_datasets_from_function(dataset_fn), epochs=1,
                        steps_per_epoch=len(batches), verbose=0).history
    return [v.numpy() for v in model.trainable_variables], history, model


def assert_same_training(got, want, atol=1e-5):
    (got_weights, got_history, _), (want_weights, want_history, _) = got, want
    assert len(got_weights) == len(want_weights)
    for a, b in zip(got_weights, want_weights):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    for name, values in want_history.items():
        np.testing.assert_allclose(got_history[name], values, atol=atol, rtol=1e-5, err_msg=name)


def initial_weights(batches, options=None):
    keras.utils.set_random_seed(0)
    model = make_pretrainer(**(options or {}))
    model.build_from_spec(tf.data.Dataset.from_tensors(batches[0]).element_spec)
    return model.get_weights()


def reference(batches, options=None):
    """One device, whole batches, eagerly: (its training result, the initial weights)."""
    initial = initial_weights(batches, options)
    return (train(tf.distribute.get_strategy(), batches, initial, run_eagerly=True,
                  options=options), initial)


# === Two replicas == one device ===


def check_two_replicas_equal_one_device():
    batches = global_batches(batch_size=4)
    want, initial = reference(batches)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    got = train(strategy, batches, initial_weights=initial)
    assert_same_training(got, want)
    # Training moved the weights well beyond the tolerance.
    assert max(np.abs(a - b).max() for a, b in zip(want[0], initial)) > 1e-3
    # Both replicas hold the same weights.
    for variable in got[2].trainable_variables:
        first, second = (t.numpy() for t in strategy.experimental_local_results(variable.value))
        np.testing.assert_array_equal(first, second)
    check_float16_replicas_skip_a_step_together(strategy)


def check_float16_replicas_skip_a_step_together(strategy):
    """An overflow on one replica only: every replica must see non-finite
    gradients, so the LossScaleOptimizer skips the step everywhere."""
    batches = global_batches(4, steps=1)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = make_pretrainer()
            model.compile(optimizer=make_optimizer(1e-2, 100, 0))
            model.build_from_spec(tf.data.Dataset.from_tensors(batches[0]).element_spec)
            model.optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)

    def finite_after_agreement(overflow_on_replica_1):
        context = tf.distribute.get_replica_context()
        grads = [tf.ones_like(v) for v in model.trainable_variables]
        if overflow_on_replica_1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.float32)
            grads[0] = grads[0] * tf.where(replica > 0, float("inf"), 1.0)
        agreed = steps.agree_on_finiteness(model.optimizer, grads)
        return tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in agreed])

    for overflow in (False, True):
        finite = tf.function(lambda: strategy.run(finite_after_agreement, args=(overflow,)))()
        for replica_flags in strategy.experimental_local_results(finite):
            # Every variable's gradient, on both replicas, finite unless any overflowed.
            expected = [not overflow] * len(model.trainable_variables)
            assert replica_flags.numpy().tolist() == expected


def check_two_replicas_with_accumulation_and_xla_equal_one_device():
    batches = global_batches(batch_size=8)
    want, initial = reference(batches)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    got = train(strategy, batches, initial_weights=initial, grad_accum_steps=2,
                jit_compile=True)
    assert got[2].replica_jit_compile and got[2].jit_compile is False
    # XLA fuses and reorders float math: a looser, still tight, tolerance.
    assert_same_training(got, want, atol=1e-4)


def test_two_replicas_equal_one_device(run_on_two_cpus):
    run_on_two_cpus(check_two_replicas_equal_one_device)


@pytest.mark.slow
def test_two_replicas_with_accumulation_and_xla_equal_one_device(run_on_two_cpus):
    run_on_two_cpus(check_two_replicas_with_accumulation_and_xla_equal_one_device)


# === Gradient accumulation ===


def test_two_micro_batches_equal_one_batch_of_twice_the_size():
    """Micro-batches with very unequal prediction and token counts: a mean of
    the micro-batch means would weigh them alike; the step must not."""
    batches = global_batches(batch_size=6)
    first = batches[0][schema.MASK_WEIGHTS]
    first[:3] = 0.0
    first[0, 0] = 1.0
    first[3:] = 1.0
    batches[0][schema.PADDING_MASK][3:, 4:] = True
    want, initial = reference(batches)
    got = train(tf.distribute.get_strategy(), batches, initial, grad_accum_steps=2)
    assert_same_training(got, want)


def test_micro_batches_equal_one_batch_with_multi_pass_top_k_sampling():
    """Each sampling pass draws its own noise from (seed, step, global row): the
    passes' samples do not depend on the split either."""
    options = {"sampling_passes": 3, "sampling_top_k": 7}
    batches = global_batches(batch_size=6)
    want, initial = reference(batches, options)
    got = train(tf.distribute.get_strategy(), batches, initial, grad_accum_steps=2,
                options=options)
    assert_same_training(got, want)
    # The options changed the training: one pass over all ids takes another path.
    one_pass, _ = reference(batches)
    assert max(np.abs(a - b).max() for a, b in zip(want[0], one_pass[0])) > 1e-4


def test_batch_not_divisible_by_micro_batches_is_an_error():
    batches = global_batches(batch_size=3, steps=1)
    with pytest.raises(Exception, match="split|divisible|evenly"):
        train(tf.distribute.get_strategy(), batches, grad_accum_steps=2)


# === XLA and precision on one device ===


@pytest.mark.slow
def test_xla_step_matches_the_plain_step():
    batches = global_batches(batch_size=4)
    want, initial = reference(batches)
    got = train(tf.distribute.get_strategy(), batches, initial, jit_compile=True)
    assert got[2].replica_jit_compile
    assert_same_training(got, want, atol=1e-4)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_each_precision_trains_finite_steps(policy):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        weights, history, model = train(tf.distribute.get_strategy(),
                                        global_batches(4, steps=2))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.dtype_policy.name == policy
    assert model.discriminator.encoder.compute_dtype == policy.replace("mixed_", "")
    assert all(w.dtype == np.float32 for w in weights)
    assert all(np.isfinite(w).all() for w in weights)
    for name in ("loss", "mlm_loss", "rtd_loss"):
        assert np.isfinite(history[name]).all(), name
    assert history["loss"][-1] > 0
    is_scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_scaled == (policy == "mixed_float16")
    # Logits and the outputs the losses and sampling read stay float32.
    batch = {k: tf.constant(v) for k, v in global_batches(4, steps=1)[0].items()}
    outputs = model(batch)
    assert outputs["mlm_logits"].dtype == tf.float32
    assert outputs["rtd_logits"].dtype == tf.float32


# === Fine-tuning ===


def _finetuning_equals_one_device(**two_replica_settings):
    """run_finetuning end to end (train, evaluate, save) on 2 replicas with
    `two_replica_settings` (FinetuneConfig fields and run_finetuning arguments) and on
    1 device: the same steps, losses, dev metrics and weights.

    Paths come from the environment (the check may run in a fresh interpreter).
    Returns (the config, the 2-replica strategy, the paths).
    """
    from electra_tf.training import finetune

    paths = json.loads(os.environ["ELECTRA_FINETUNE_CHECK"])
    # 21 examples, batch 8: 3 global steps, of 4 examples per replica, and a last
    # step of 5 that splits unevenly.
    cfg = config_lib.FinetuneConfig(task="mrpc", init=paths["init"], max_seq_length=16,
                                  batch_size=8, epochs=1, learning_rate=1e-2)
    fields = {f.name for f in dataclasses.fields(cfg)}
    two_cpus = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    runs = {}
    for name, strategy, settings in (("one", None, {}),
                                     ("two", two_cpus, two_replica_settings)):
        run_cfg = dataclasses.replace(cfg, **{k: v for k, v in settings.items() if k in fields})
        out = os.path.join(paths["out"], name)
        summary = finetune.run_finetuning(
            run_cfg, paths["data"], out, strategy=strategy,
            **{k: v for k, v in settings.items() if k not in fields})
        model = artifacts.load_finetuned(out)[0]
        runs[name] = summary["runs"][0], [v.numpy() for v in model.weights]
    (one, one_weights), (two, two_weights) = runs["one"], runs["two"]
    assert one["train"]["steps"] == two["train"]["steps"] == 3
    np.testing.assert_allclose(two["train"]["loss_per_epoch"], one["train"]["loss_per_epoch"],
                               atol=1e-5)
    for metric, value in one["dev"].items():
        assert two["dev"][metric] == pytest.approx(value, abs=1e-5), metric
    assert max(np.abs(w).max() for w in one_weights) > 0
    for a, b in zip(two_weights, one_weights):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    return cfg, two_cpus, paths


def check_finetuning_on_two_replicas_equals_one_device():
    from electra_tf.training import finetune

    cfg, two_cpus, paths = _finetuning_equals_one_device()
    # The batch must split into replicas x micro-batches: refused before training.
    with pytest.raises(ValueError, match=r"batch_size=6 \(the global batch\) must be "
                       r"divisible by replicas \(2\) x grad_accum_steps \(2\)"):
        finetune.run_finetuning(dataclasses.replace(cfg, batch_size=6, grad_accum_steps=2),
                                paths["data"], os.path.join(paths["out"], "uneven"),
                                strategy=two_cpus)
    assert not os.path.exists(os.path.join(paths["out"], "uneven"))


def check_finetuning_on_two_replicas_with_accumulation_and_xla_equals_one_device():
    # 2 micro-batches of 2 examples per replica; the last step's 5 split unevenly
    # over replicas, then micro-batches.
    _finetuning_equals_one_device(grad_accum_steps=2, jit_compile=True)


@pytest.fixture
def finetune_check_paths(tmp_path, tiny_vocab, monkeypatch):
    """A dropout-free tiny init and 21-row MRPC data, for the fine-tuning checks."""
    from test_finetune import NO_DROPOUT, make_artifact, write_mrpc

    init = make_artifact(tmp_path / "pretrained", tiny_vocab, max_position_embeddings=32,
                         **NO_DROPOUT)
    monkeypatch.setenv("ELECTRA_FINETUNE_CHECK", json.dumps({
        "init": init, "data": write_mrpc(tmp_path / "mrpc", rows=21),
        "out": str(tmp_path / "out")}))


def test_finetuning_on_two_replicas_equals_one_device(finetune_check_paths, run_on_two_cpus):
    run_on_two_cpus(check_finetuning_on_two_replicas_equals_one_device)


@pytest.mark.slow
def test_finetuning_on_two_replicas_with_accumulation_and_xla_equals_one_device(
        finetune_check_paths, run_on_two_cpus):
    run_on_two_cpus(check_finetuning_on_two_replicas_with_accumulation_and_xla_equals_one_device)
