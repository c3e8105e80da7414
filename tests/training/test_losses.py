"""Losses: NumPy reference values, ignored weights, 2 replicas == 1 device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.models import losses

VOCAB, HIDDEN, SEQ, PREDS = 20, 8, 6, 3


def _np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _np_sigmoid_ce(logits, labels):
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def test_weighted_global_mean_is_weighted_mean_without_strategy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 5)).astype(np.float32)
    weights = (rng.random((3, 5)) > 0.4).astype(np.float32)
    weights[0, 0] = 2.0  # non-binary weights count proportionally
    expected = (values * weights).sum() / weights.sum()
    got = losses.weighted_global_mean(values, weights)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_mlm_loss_matches_numpy_and_ignores_zero_weights():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, PREDS, VOCAB)).astype(np.float32)
    targets = rng.integers(0, VOCAB, size=(2, PREDS))
    weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    nll = -np.take_along_axis(_np_log_softmax(logits), targets[..., None], -1)[..., 0]
    expected = (nll * weights).sum() / 3.0
    got = losses.mlm_loss(logits, targets, weights).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    # Padding predictions may hold anything: the loss does not see them.
    logits[weights == 0] = 1e4 * rng.normal(size=(3, VOCAB))
    targets[weights == 0] = 0
    assert losses.mlm_loss(logits, targets, weights).numpy() == pytest.approx(got, rel=1e-6)


def test_rtd_loss_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, SEQ)).astype(np.float32) * 3
    labels = rng.integers(0, 2, size=(2, SEQ))
    padding_mask = np.array([[1] * 6, [1, 1, 0, 0, 0, 0]])
    expected = (_np_sigmoid_ce(logits, labels) * padding_mask).sum() / 8.0
    got = losses.rtd_loss(logits, labels, padding_mask).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    logits[padding_mask == 0] = -1e4
    labels[padding_mask == 0] = 1
    assert losses.rtd_loss(logits, labels, padding_mask).numpy() == pytest.approx(got, rel=1e-6)


def test_rtd_gradient_is_weighted_residual_over_token_count():
    logits = tf.constant([[0.5, -1.0, 2.0], [0.0, 1.0, 3.0]])
    labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    weights = np.array([[1, 1, 1], [1, 0, 0]], np.float32)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = losses.rtd_loss(logits, labels, weights)
    expected = (tf.sigmoid(logits).numpy() - labels) * weights / weights.sum()
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(), expected, atol=1e-7)


def test_low_precision_logits_are_computed_in_float32():
    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(size=(2, PREDS, VOCAB)) * 4, tf.bfloat16)
    targets = rng.integers(0, VOCAB, size=(2, PREDS))
    weights = np.ones((2, PREDS), np.float32)
    loss = losses.mlm_loss(logits, targets, weights)
    assert loss.dtype == tf.float32
    as_float32 = tf.cast(logits, tf.float32).numpy()
    nll = -np.take_along_axis(_np_log_softmax(as_float32), targets[..., None], -1)
    np.testing.assert_allclose(loss.numpy(), nll.mean(), rtol=1e-6)

    rtd = losses.rtd_loss(tf.cast(logits[:, :, 0], tf.float16), np.ones((2, PREDS)), weights)
    assert rtd.dtype == tf.float32


def test_no_real_items_gives_zero_loss_and_zero_gradient():
    logits = tf.Variable([[1.0, 2.0]])
    with tf.GradientTape() as tape:
        loss = losses.rtd_loss(logits, [[1, 0]], [[0, 0]])
    assert loss.numpy() == 0.0
    np.testing.assert_array_equal(tape.gradient(loss, logits).numpy(), [[0.0, 0.0]])


def test_mismatched_weights_shape_is_an_error():
    with pytest.raises(ValueError, match=r"weights shape \(2, 3\) does not match values shape \(2, 4\)"):
        losses.weighted_global_mean(tf.zeros((2, 4)), tf.ones((2, 3)))


def test_metric_value_is_the_loss_without_strategy():
    loss = losses.rtd_loss([[0.3, -0.2]], [[1, 0]], [[1, 1]])
    assert losses.num_replicas_in_sync() == 1
    assert losses.metric_value(loss).numpy() == loss.numpy()


# === Two replicas vs one device ===


class TinyElectraHeads(keras.Model):
    """Embedding -> Dense, with MLM logits `[batch, PREDS, VOCAB]` and RTD logits `[batch, SEQ]`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(VOCAB, HIDDEN)
        self.hidden = keras.layers.Dense(HIDDEN, activation="tanh")
        self.rtd_head = keras.layers.Dense(1)
        self.mlm_head = keras.layers.Dense(VOCAB)

    def call(self, token_ids, mask_positions):
        hidden = self.hidden(self.embedding(token_ids))
        rtd_logits = tf.squeeze(self.rtd_head(hidden), -1)
        mlm_logits = self.mlm_head(tf.gather(hidden, mask_positions, batch_dims=1))
        return mlm_logits, rtd_logits


def _global_batch():
    """4 rows; rows 0-1 (replica 0) hold 11 real tokens and 5 predictions,
    rows 2-3 (replica 1) hold 3 real tokens and 1 prediction."""
    rng = np.random.default_rng(4)
    lengths = np.array([6, 5, 2, 1])
    padding_mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
    mask_weights = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)
    return {
        "token_ids": rng.integers(1, VOCAB, size=(4, SEQ)).astype(np.int32) * padding_mask,
        "padding_mask": padding_mask,
        "rtd_labels": rng.integers(0, 2, size=(4, SEQ)).astype(np.int32),
        "mask_positions": rng.integers(0, SEQ, size=(4, PREDS)).astype(np.int32),
        "mask_ids": rng.integers(0, VOCAB, size=(4, PREDS)).astype(np.int32),
        "mask_weights": mask_weights,
    }


def _losses_and_gradients(model, batch):
    with tf.GradientTape() as tape:
        mlm_logits, rtd_logits = model(batch["token_ids"], batch["mask_positions"])
        mlm = losses.mlm_loss(mlm_logits, batch["mask_ids"], batch["mask_weights"])
        rtd = losses.rtd_loss(rtd_logits, batch["rtd_labels"], batch["padding_mask"])
        total = mlm + 50.0 * rtd
    grads = tape.gradient(total, model.trainable_variables)
    return mlm, rtd, [tf.convert_to_tensor(g) for g in grads]


def check_two_replicas_equal_one_device():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    batch = _global_batch()
    keras.utils.set_random_seed(0)
    single = TinyElectraHeads()
    single(batch["token_ids"], batch["mask_positions"])
    with strategy.scope():
        mirrored = TinyElectraHeads()
        mirrored(batch["token_ids"], batch["mask_positions"])
        metric = keras.metrics.Mean()
    mirrored.set_weights(single.get_weights())

    ref_mlm, ref_rtd, ref_grads = tf.function(_losses_and_gradients)(single, batch)

    def replica_step(local_batch):
        mlm, rtd, grads = _losses_and_gradients(mirrored, local_batch)
        metric.update_state(losses.metric_value(rtd))
        # Exactly what the optimizer does with per-replica gradients.
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        return mlm, rtd, grads, metric.result()

    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: {
            k: v[2 * ctx.replica_id_in_sync_group : 2 * ctx.replica_id_in_sync_group + 2]
            for k, v in batch.items()
        }
    )
    @tf.function
    def distributed_step(per_replica_batch):
        return strategy.run(replica_step, args=(per_replica_batch,))

    mlm, rtd, grads, results = distributed_step(halves)
    mlm_parts = [t.numpy() for t in strategy.experimental_local_results(mlm)]
    rtd_parts = [t.numpy() for t in strategy.experimental_local_results(rtd)]

    np.testing.assert_allclose(sum(mlm_parts), ref_mlm.numpy(), atol=1e-6)
    np.testing.assert_allclose(sum(rtd_parts), ref_rtd.numpy(), atol=1e-6)
    # The shares are unequal, so per-replica means over R would differ.
    assert abs(rtd_parts[0] - rtd_parts[1]) > 0.1
    assert mlm_parts[1] < mlm_parts[0]
    for replica_grads in strategy.experimental_local_results(grads):
        for got, want in zip(replica_grads, ref_grads):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)

    # Both ways of reading the metric give the global loss.
    np.testing.assert_allclose(metric.result().numpy(), ref_rtd.numpy(), atol=1e-6)
    per_replica_results = [r.numpy() for r in strategy.experimental_local_results(results)]
    np.testing.assert_allclose(np.mean(per_replica_results), ref_rtd.numpy(), atol=1e-6)


def test_two_replicas_equal_one_device(run_on_two_cpus):
    run_on_two_cpus(check_two_replicas_equal_one_device)
