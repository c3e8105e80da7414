"""ELECTRA losses, and the one place where replica scaling happens.

Every loss here is a *global weighted mean*. On each replica

    loss_r = sum_r(weights * per_item_loss) / sum_over_all_replicas(weights)

so the per-replica losses add up to the exact weighted mean over the global
batch. Gradients follow the same rule: the optimizer all-reduces per-replica
gradients with a SUM (Keras 3 on tf.distribute), so the reduced gradient is the
gradient of the global mean. This holds even when replicas hold different
numbers of real tokens (masked positions, padding), which dividing each replica
by its own token count and by `num_replicas_in_sync` would get wrong.

Without a strategy, or under the default strategy, the all-reduce is the
identity and these are plain weighted means. In a cross-replica context the
inputs are assumed to be the whole global batch, so nothing is reduced either.

Keras built-in losses divide by `num_replicas_in_sync` themselves; never mix
them with these functions in one train step.

All arithmetic is float32, whatever the dtype of the logits (bfloat16/float16
under mixed precision).
"""

import tensorflow as tf


def _global_sum(value):
    """Sums a scalar over all replicas in sync (identity outside a strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        # Cross-replica context: the caller holds the whole batch already.
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def num_replicas_in_sync():
    """Replicas taking part in the current step (1 outside a replica context)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def weighted_global_mean(values, weights):
    """The weighted mean of `values` over the global batch, per replica.

    Args:
        values: float tensor of any shape, e.g. `[batch, seq_len]`: the
            per-item losses of this replica's share of the batch.
        weights: tensor of the same shape as `values` (cast to float32); 0
            removes an item, e.g. padding or unmasked positions.

    Returns:
        float32 scalar `sum(weights * values) / global_sum(weights)`, where
        `global_sum` all-reduces over the replicas in sync. Summing the
        returned value over replicas gives the global weighted mean. When
        the global weight is 0 (no real items anywhere) it is 0, with zero
        gradients, rather than NaN.

    Raises:
        ValueError: the shapes of `values` and `weights` differ.
    """
    values = tf.cast(values, tf.float32)
    weights = tf.cast(weights, tf.float32)
    if not values.shape.is_compatible_with(weights.shape):
        # Broadcasting would silently weight the wrong items.
        raise ValueError(
            f"weights shape {weights.shape} does not match values shape "
            f"{values.shape}"
        )
    numerator = tf.reduce_sum(values * weights)
    # The token count is data, not a function of the parameters.
    denominator = _global_sum(tf.stop_gradient(tf.reduce_sum(weights)))
    return tf.math.divide_no_nan(numerator, denominator)


def mlm_loss(logits, target_ids, weights):
    """Masked-language-model loss (sparse softmax cross-entropy).

    Args:
        logits: `[batch, num_predictions, vocab_size]` generator logits at
            the masked positions.
        target_ids: int `[batch, num_predictions]` original token ids.
        weights: `[batch, num_predictions]`, 1 for real predictions and 0
            for padding predictions (`mask_weights`).

    Returns:
        float32 scalar, this replica's share of the global mean
        cross-entropy (see `weighted_global_mean`).
    """
    per_prediction = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(target_ids, tf.int32), logits=tf.cast(logits, tf.float32)
    )
    return weighted_global_mean(per_prediction, weights)


def rtd_loss(logits, labels, weights):
    """Replaced-token-detection loss (sigmoid cross-entropy).

    Args:
        logits: `[batch, seq_len]` discriminator logits; positive means
            "replaced".
        labels: `[batch, seq_len]`, 1 where the token was replaced by the
            generator, 0 where it is original.
        weights: `[batch, seq_len]`, 1 for real tokens and 0 for padding
            (`padding_mask`).

    Returns:
        float32 scalar, this replica's share of the global mean binary
        cross-entropy (see `weighted_global_mean`).
    """
    per_token = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=tf.cast(logits, tf.float32)
    )
    return weighted_global_mean(per_token, weights)


def metric_value(replica_loss):
    """The value to feed a `keras.metrics.Mean` so it reports the global loss.

    A replica's loss from this module is only its share of the global mean,
    so averaging those shares over replicas would report `loss / replicas`.
    This returns `replica_loss * num_replicas_in_sync` (unchanged with one
    replica or outside a replica context). Fed to a `keras.metrics.Mean`
    inside the replica step, both ways of reading the metric give the
    global mean: the metric's SUM-aggregated variables read in a
    cross-replica context, and the mean over replicas of each replica's
    `result()` (what Keras' `fit` reports). This is the same convention as
    Keras' own `unscale_loss_for_distribution`.

    Args:
        replica_loss: scalar returned by a loss of this module.

    Returns:
        float32 scalar.
    """
    return tf.cast(replica_loss, tf.float32) * float(num_replicas_in_sync())


# === Statistics of the replaced-token task (logged by the pretrainer) ===


def binary_entropy(p):
    """Entropy in nats of a Bernoulli(p): the loss of always answering p.

    Args:
      p: float32 tensor of any shape in [0, 1].

    Returns:
      float32 tensor of the same shape (0 at p = 0 and p = 1).
    """
    p = tf.cast(p, tf.float32)
    q = 1.0 - p
    return -(tf.math.xlogy(p, p) + tf.math.xlogy(q, q))


def ranking_auc(scores, labels, weights):
    """Area under the ROC curve: P(a positive item scores above a negative one).

    Computed from one sort (Mann-Whitney U); tied scores are ordered arbitrarily,
    which float logits make rare.

    Args:
      scores: float tensor of any shape, e.g. `[batch, seq_len]` logits.
      labels: same shape, 1.0 for positives, 0.0 for negatives.
      weights: same shape, 1.0 for items that count, 0.0 for the others (padding).

    Returns:
      (auc, defined): float32 scalar and bool scalar; `defined` is False (and auc
      0.5) when there is no positive or no negative item.
    """
    scores = tf.reshape(tf.cast(scores, tf.float32), [-1])
    order = tf.argsort(scores, stable=True)
    weights = tf.reshape(tf.cast(weights, tf.float32), [-1])
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    positives = tf.gather(labels * weights, order)
    negatives = tf.gather((1.0 - labels) * weights, order)
    negatives_below = tf.cumsum(negatives, exclusive=True)
    pairs = tf.reduce_sum(positives) * tf.reduce_sum(negatives)
    defined = pairs > 0
    auc = tf.where(defined, tf.math.divide_no_nan(
        tf.reduce_sum(positives * negatives_below), pairs), 0.5)
    return auc, defined
