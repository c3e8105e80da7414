"""Integrated gradients (Sundararajan et al., 2017) for a fine-tuned `ElectraClassifier`.

Where the path runs. `ElectraEmbeddings` sums token + position + segment embeddings and
then applies a LayerNorm. We interpolate that sum, before the LayerNorm, on the straight
line from a baseline `b` to the input `x`:

    x_i = t_i + p_i + s_i              (token, position, segment embedding of token i)
    b_i = p_i + s_i                    for content tokens (a zero token embedding)
    b_i = x_i                          for [CLS], [SEP] and padding (kept)
    x_i(alpha) = alpha * t_i + p_i + s_i   on content tokens, x_i on the others

Why not a zero sum: a LayerNorm is scale-invariant, LN(alpha * x) = LN(x) for any
alpha > 0, so the model's output would be constant along the whole path and jump at
alpha = 0; the integral of the gradient would miss that jump and completeness would
fail. Keeping position and segment makes the baseline "the same frame with no words",
and attributions answer which *words* mattered. Keeping [CLS]/[SEP] (whose `x - b` is
0, so they get no attribution) leaves the model's anchors in place.

The path is implemented as a per-token scale of the token embedding (`token_scale` of
`ElectraEmbeddings`): `d f / d scale_i = t_i . grad_{x_i} f = (x_i - b_i) . grad_{x_i} f`,
so the gradient with respect to the scale is already IG's integrand, summed over the
embedding axis, and every step of every text is one row of a single batch: one forward
and one backward pass.

Rule: the trapezoid rule on `steps` intervals, nodes alpha = 0, 1/steps, ..., 1
(`steps + 1` rows per text). It evaluates both ends, so the same pass gives f(input)
(the prediction) and f(baseline) for the completeness check, which the midpoint rule
would need two extra rows for.

Target f: the softmax probability of the explained class (the predicted one unless a
class is requested), or the score of a regression model. Attributions sum to
f(input) - f(baseline) up to the quadrature error (`completeness_error`).
"""

import numpy as np
import tensorflow as tf

from electra_tf import schema
from electra_tf.models import encoder as encoder_lib

# Differences in f below this are reported relative to it: the change from the
# baseline is then too small to be worth explaining, and its relative error is noise.
MIN_DELTA = 1e-3


def trapezoid_nodes(steps):
    """Nodes and weights of the trapezoid rule on [0, 1].

    Returns:
      (alphas, weights), float32 numpy `[steps + 1]` each: alphas k / steps, weights
      1 / steps, halved at both ends (they sum to 1).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps, dtype=np.float32)
    weights[[0, -1]] /= 2
    return alphas, weights


def content_mask(features, special_ids):
    """Which tokens get attributions: real tokens other than `special_ids`.

    Args:
      features: token_ids int `[batch, seq]` and padding_mask bool `[batch, seq]`.
      special_ids: ids kept in the baseline (the tokenizer's cls_id and sep_id).

    Returns:
      bool `[batch, seq]`.
    """
    token_ids = features[schema.TOKEN_IDS]
    special = tf.reduce_any(
        tf.equal(token_ids[:, :, None], tf.constant(list(special_ids), token_ids.dtype)), -1)
    return tf.logical_and(tf.cast(features[schema.PADDING_MASK], tf.bool),
                          tf.logical_not(special))


def integrated_gradients(classifier, features, content, target=None, steps=32):
    """Attributions of each token to the classifier's output, in one forward/backward pass.

    The pass holds `batch * (steps + 1)` rows of `[seq]` tokens: callers bound its
    memory by the batch they pass. Padding does not change the result (padded keys get
    no attention), so texts of different lengths may share a batch.

    Args:
      classifier: an `ElectraClassifier` (logits `[batch, num_labels]`).
      features: token_ids, segment_ids int32 `[batch, seq]`, padding_mask bool
        `[batch, seq]` (`electra_tf.schema` names).
      content: bool `[batch, seq]` (`content_mask`): the tokens whose embedding the
        baseline zeroes.
      target: int32 `[batch]` class to explain, -1 for the predicted one; None: the
        predicted one for all. Ignored by regression models.
      steps: int, trapezoid intervals (`steps + 1` model evaluations per text).

    Returns:
      dict of float32 attributions `[batch, seq]` (0 off `content`), logits
      `[batch, num_labels]` at the input, int32 target `[batch]` (the class explained;
      0 for regression), float32 output and baseline_output `[batch]`: f at the input
      and at the baseline.
    """
    alphas, weights = trapezoid_nodes(steps)
    nodes = steps + 1
    batch, seq = tf.shape(content)[0], tf.shape(content)[1]
    # Row b * nodes + k holds text b at alpha_k.
    rows = {key: tf.repeat(features[key], nodes, axis=0)
            for key in (schema.TOKEN_IDS, schema.SEGMENT_IDS)}
    rows[schema.PADDING_MASK] = tf.repeat(
        tf.cast(features[schema.PADDING_MASK], tf.bool), nodes, axis=0)
    alpha = tf.tile(tf.constant(alphas), [batch])[:, None]
    scale = tf.where(tf.repeat(content, nodes, axis=0), alpha, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(scale)
        # The head reads [CLS] only: the encoder skips padded rows, as serving does.
        layout = encoder_lib.RealTokenRows(rows[schema.PADDING_MASK])
        hidden = classifier.encoder.call_rows(rows, layout, training=False, token_scale=scale)
        logits = tf.cast(classifier.head(layout.from_rows(hidden), training=False), tf.float32)
        at_input = logits[nodes - 1::nodes]
        if classifier.is_regression:
            explained = tf.zeros([batch], tf.int32)
            f = logits[:, 0]
        else:
            explained = tf.argmax(at_input, axis=-1, output_type=tf.int32)
            if target is not None:
                target = tf.cast(target, tf.int32)
                explained = tf.where(target < 0, explained, target)
            f = tf.gather(tf.nn.softmax(logits, axis=-1), tf.repeat(explained, nodes),
                          batch_dims=1)
        # Each row's f depends on its own scale only: one gradient gives every row's.
        total = tf.reduce_sum(f)
    grads = tf.reshape(tape.gradient(total, scale), [batch, nodes, seq])
    attributions = tf.einsum("bks,k->bs", grads, tf.constant(weights))
    f = tf.reshape(f, [batch, nodes])
    return {
        "attributions": tf.where(content, attributions, 0.0),
        "logits": at_input,
        "target": explained,
        "output": f[:, -1],
        "baseline_output": f[:, 0],
    }


def completeness_error(attributions, output, baseline_output):
    """|sum(attributions) - (f(input) - f(baseline))| / |f(input) - f(baseline)|.

    Args:
      attributions: float `[..., seq]`; output, baseline_output: float `[...]`.

    Returns:
      float numpy `[...]`; the denominator is at least `MIN_DELTA`.
    """
    delta = np.asarray(output) - np.asarray(baseline_output)
    gap = np.abs(np.sum(attributions, axis=-1) - delta)
    return gap / np.maximum(np.abs(delta), MIN_DELTA)
