"""Schedule values, AdamW decay exclusions, clipping, layer-wise LR decay."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.training.optimization import (
    LayerwiseAdamW,
    WarmupLinearDecay,
    make_optimizer,
)

BETA_2, EPSILON = 0.999, 1e-6


def _variables(values):
    """keras.Variables named (and so with `.path`) by the keys of `values`."""
    return {
        name: keras.Variable(np.asarray(value, np.float32), name=name)
        for name, value in values.items()
    }


def _apply(optimizer, variables, *steps):
    """Applies each `{name: gradient}` step; returns `{name: new value}`."""
    names = list(variables)
    for grads in steps:
        optimizer.apply([grads[n] for n in names], [variables[n] for n in names])
    return {n: variables[n].numpy() for n in names}


# === WarmupLinearDecay ===


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (50, 0.1 * 0.5 * 0.95),  # half way through warmup, times the decay
        (100, 0.1 * 0.9),  # end of warmup: peak * (1 - warmup / total)
        (550, 0.1 * 0.45),  # middle of the decay
        (1000, 0.0),
        (1500, 0.0),  # stays at 0 past the end
    ],
)
def test_schedule_is_electra_warmup_times_linear_decay(step, expected):
    schedule = WarmupLinearDecay(0.1, num_train_steps=1000, warmup_steps=100)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_schedule_without_warmup_starts_at_peak():
    schedule = WarmupLinearDecay(2e-4, num_train_steps=10, warmup_steps=0)
    assert float(schedule(0)) == pytest.approx(2e-4, rel=1e-6)
    assert float(schedule(tf.constant(5, tf.int64))) == pytest.approx(1e-4, rel=1e-6)


@pytest.mark.parametrize(
    "total, warmup, message",
    [(0, 0, "num_train_steps must be > 0"), (10, 11, "warmup_steps"), (10, -1, "warmup_steps")],
)
def test_schedule_rejects_bad_step_counts(total, warmup, message):
    with pytest.raises(ValueError, match=message):
        WarmupLinearDecay(1e-3, total, warmup)


def test_schedule_config_round_trip():
    schedule = WarmupLinearDecay(3e-4, num_train_steps=200, warmup_steps=20)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, WarmupLinearDecay)
    assert restored.get_config() == schedule.get_config()
    for step in (0, 7, 20, 150, 200):
        assert float(restored(step)) == float(schedule(step))


def test_optimizer_config_round_trip():
    optimizer = make_optimizer(
        1e-3, 100, 10, weight_decay=0.02, lr_multipliers={"a": 0.5, "b": 0.25}
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, LayerwiseAdamW)
    assert isinstance(restored._learning_rate, WarmupLinearDecay)
    config = restored.get_config()
    assert config == optimizer.get_config()
    assert config["lr_multipliers"] == {"a": 0.5, "b": 0.25}
    assert config["weight_decay"] == 0.02
    assert config["global_clipnorm"] == 1.0
    assert config["epsilon"] == EPSILON


# === Weight decay ===


def test_weight_decay_skips_layer_norm_and_biases():
    """With zero gradients Adam does not move, so only the decay shows."""
    lr, wd = 0.1, 0.01
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras_hub.layers.TokenAndPositionEmbedding(30, 4, 16)(inputs)
    hidden = keras_hub.layers.TransformerEncoder(32, num_heads=2)(hidden)
    outputs = keras.layers.Dense(3)(keras.layers.LayerNormalization()(hidden))
    model = keras.Model(inputs, outputs)
    before = [v.numpy() for v in model.trainable_variables]

    optimizer = make_optimizer(lr, num_train_steps=10, warmup_steps=0, weight_decay=wd)
    optimizer.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)

    decayed = set()
    for variable, old in zip(model.trainable_variables, before):
        if variable.name in ("gamma", "beta", "bias"):
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
        else:
            assert variable.name in ("kernel", "embeddings"), variable.path
            expected = old - old * (np.float32(lr) * np.float32(wd))
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-7, err_msg=variable.path)
            assert not np.allclose(variable.numpy(), old, rtol=1e-4)
            decayed.add(variable.name)
    assert decayed == {"kernel", "embeddings"}


# === Clipping ===


def test_global_clipping_clips_all_variables_together():
    """Step 1 gets a gradient of global norm 1300; step 2 a normal one.
    Adam's state after step 1 shows what it was fed."""
    start = {"a": [1.0, -2.0, 0.5], "b": [0.3, 0.7]}
    huge = {"a": np.array([300.0, -400.0, 0.0]), "b": np.array([1200.0, 0.0])}
    normal = {"a": np.array([0.2, 0.1, -0.3]), "b": np.array([0.05, -0.4])}
    assert np.sqrt(sum((g**2).sum() for g in normal.values())) < 1.0

    def run(clip_norm, first):
        optimizer = make_optimizer(0.1, 100, 0, weight_decay=0.0, clip_norm=clip_norm)
        return _apply(optimizer, _variables(start), first, normal)

    clipped = run(1.0, huge)
    by_hand = run(None, {k: g / 1300.0 for k, g in huge.items()})
    unclipped = run(None, huge)
    per_variable = run(None, {k: g / np.linalg.norm(g) for k, g in huge.items()})
    for name in start:
        np.testing.assert_allclose(clipped[name], by_hand[name], atol=1e-7)
    assert np.abs(clipped["a"] - unclipped["a"]).max() > 1e-3
    assert np.abs(clipped["a"] - per_variable["a"]).max() > 1e-3


def test_clipping_sums_repeated_rows_of_sparse_gradients():
    """An embedding gradient with a repeated row clips like its dense sum."""
    dense = np.zeros((5, 2), np.float32)
    dense[1] = [6.0, 8.0]  # two lookups of row 1, norm 10
    dense[3] = [0.0, 1.0]
    sparse = tf.IndexedSlices(
        tf.constant([[3.0, 4.0], [0.0, 1.0], [3.0, 4.0]]),
        tf.constant([1, 3, 1]),
        tf.constant([5, 2]),
    )
    follow_up = np.full((5, 2), 0.1, np.float32)
    start = {"table": np.ones((5, 2))}
    results = []
    for first in (sparse, dense):
        optimizer = make_optimizer(0.1, 100, 0, weight_decay=0.0, clip_norm=1.0)
        results.append(_apply(optimizer, _variables(start), {"table": first}, {"table": follow_up}))
    np.testing.assert_allclose(results[0]["table"], results[1]["table"], atol=1e-7)


# === Layer-wise learning rates ===


def _first_adam_step(lr, gradient):
    """Keras' bias-corrected Adam after one step from zero moments."""
    root = np.sqrt(1 - BETA_2)
    return lr * root * gradient / (root * np.abs(gradient) + EPSILON)


def test_lr_multiplier_scales_the_adam_step_and_the_decay():
    lr, wd = 0.1, 0.01
    start = np.array([1.0, -2.0, 3.0])
    gradient = np.array([0.5, -1.5, 2.0])
    multipliers = {"top": 1.0, "middle": 0.8, "bottom": 0.64}
    names = list(multipliers)

    def step(gradient_scale):
        optimizer = make_optimizer(
            lr, 10, 0, weight_decay=wd, clip_norm=None, lr_multipliers=multipliers
        )
        grads = {n: gradient * gradient_scale for n in names}
        return _apply(optimizer, _variables({n: start for n in names}), grads)

    after = step(1.0)
    for name, m in multipliers.items():
        expected = start - m * lr * wd * start - m * _first_adam_step(lr, gradient)
        np.testing.assert_allclose(after[name], expected, rtol=1e-6, err_msg=name)
    # Differences of float32 values ~1: absolute float32 rounding.
    np.testing.assert_allclose(
        start - after["bottom"], 0.64 * (start - after["top"]), atol=1e-6
    )

    # Adam ignores the gradient's scale (up to epsilon), so a multiplier
    # implemented by scaling gradients would have no effect at all.
    after_10x = step(10.0)
    for name in names:
        np.testing.assert_allclose(
            start - after_10x[name], start - after[name], rtol=1e-4, atol=1e-6
        )


def test_lr_multipliers_must_name_known_variables():
    optimizer = make_optimizer(0.1, 10, 0, lr_multipliers={"encoder/block_9/kernel": 0.5})
    variable = keras.Variable(np.zeros(2, np.float32), name="kernel")
    with pytest.raises(ValueError, match="encoder/block_9/kernel"):
        optimizer.build([variable])


# === Two replicas vs one device ===


def check_two_replica_steps_equal_one_device():
    """Replicas hold unequal partial gradients (a sparse embedding gradient
    with overlapping rows, a kernel, a bias); the clipped, decayed,
    layer-scaled steps match one device applying their sum."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    start = {
        "table": rng.normal(size=(6, 3)),
        "kernel": rng.normal(size=(3, 2)),
        "bias": rng.normal(size=(2,)),
    }
    rows = [np.array([1, 3, 3]), np.array([3, 5])]
    steps = []
    for _ in range(2):
        steps.append(
            [
                {
                    "table": (index, rng.normal(size=(len(index), 3)) * scale),
                    "kernel": rng.normal(size=(3, 2)) * scale,
                    "bias": rng.normal(size=(2,)) * scale,
                }
                for index, scale in zip(rows, (3.0, 0.5))
            ]
        )

    def optimizer():
        return make_optimizer(
            0.1, 100, 0, weight_decay=0.01, clip_norm=1.0, lr_multipliers={"table": 0.5}
        )

    def dense(grad):
        if isinstance(grad, tuple):
            table = np.zeros((6, 3))
            np.add.at(table, grad[0], grad[1])
            return table
        return grad

    global_grads = [
        {name: sum(dense(replica[name]) for replica in step) for name in start}
        for step in steps
    ]
    norm = np.sqrt(sum((g**2).sum() for g in global_grads[0].values()))
    assert norm > 2.0, "clipping must be active"
    single = _apply(optimizer(), _variables(start), *global_grads)

    with strategy.scope():
        variables = _variables(start)
        mirrored_optimizer = optimizer()
        # Slots must exist before tracing, as in any custom training loop.
        mirrored_optimizer.build(list(variables.values()))
    names = list(variables)

    def replica_step(table_rows, table_values, kernel, bias):
        table = tf.IndexedSlices(table_values, table_rows, tf.constant([6, 3], tf.int64))
        grads = {"table": table, "kernel": kernel, "bias": bias}
        mirrored_optimizer.apply([grads[n] for n in names], [variables[n] for n in names])

    @tf.function
    def distributed_step(args):
        strategy.run(replica_step, args=args)

    for step in steps:
        def replica_args(ctx, step=step):
            grads = step[ctx.replica_id_in_sync_group]
            index, values = grads["table"]
            return (
                tf.constant(index, tf.int64),
                tf.constant(values, tf.float32),
                tf.constant(grads["kernel"], tf.float32),
                tf.constant(grads["bias"], tf.float32),
            )

        distributed_step(strategy.experimental_distribute_values_from_function(replica_args))

    for name in names:
        for replica_value in strategy.experimental_local_results(variables[name].value):
            np.testing.assert_allclose(replica_value.numpy(), single[name], atol=1e-6, err_msg=name)


def test_two_replica_steps_equal_one_device(run_on_two_cpus):
    run_on_two_cpus(check_two_replica_steps_equal_one_device)
