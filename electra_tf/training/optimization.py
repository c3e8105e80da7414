"""AdamW with ELECTRA's learning-rate schedule and layer-wise LR decay.

Matches google-research/electra `model/optimization.py` where it matters:
warmup times linear decay, decoupled weight decay that skips LayerNorm
parameters and biases, global-norm clipping at 1.0, epsilon 1e-6, and
per-layer learning rates for fine-tuning; but with the layer depths fixed
(google-research/electra issue 51) and with gradients clipped after the
cross-replica all-reduce. One difference is kept on purpose: Keras' Adam
applies bias correction, Google's `AdamWeightDecayOptimizer` does not.

Keras 3 with the TensorFlow backend only (the optimizer hooks into the
tf.distribute all-reduce).
"""


import keras
import tensorflow as tf
from absl import logging
from keras import ops

# Keras' AdamW matches these with `re.search` against the variable name:
# `gamma`/`beta` are keras `LayerNormalization` (as used by keras-hub's
# TransformerEncoder and embeddings), `bias` covers Dense/EinsumDense biases
# and head output biases. TF-level names ("layer/gamma:0") match too.
DEFAULT_WEIGHT_DECAY_EXCLUSIONS = ("gamma", "beta", "bias")

@keras.saving.register_keras_serializable(package="electra_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """ELECTRA's learning rate: linear warmup times linear decay to zero.

    Exactly the shape of google-research/electra `create_optimizer` (a
    power-1 `polynomial_decay` to 0 over `num_train_steps`, multiplied by
    `min(1, step / warmup_steps)`):

        lr(step) = peak * min(1, step / warmup_steps)
                        * max(0, 1 - step / num_train_steps)

    Note the warmup multiplies the decay rather than replacing it (as BERT's
    schedule does), so the largest rate, reached at `warmup_steps`, is
    `peak * (1 - warmup_steps / num_train_steps)`. `lr(0) == 0` and
    `lr(step) == 0` from `num_train_steps` on. With `warmup_steps == 0`
    there is no warmup.

    Args:
        peak_learning_rate: float, the rate the schedule is scaled by.
        num_train_steps: int > 0, step at which the rate reaches 0.
        warmup_steps: int in `[0, num_train_steps]`.
    """

    def __init__(self, peak_learning_rate, num_train_steps, warmup_steps):
        if num_train_steps <= 0:
            raise ValueError(
                f"num_train_steps must be > 0, got {num_train_steps}"
            )
        if not 0 <= warmup_steps <= num_train_steps:
            raise ValueError(
                f"warmup_steps must be in [0, num_train_steps={num_train_steps}]"
                f", got {warmup_steps}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.num_train_steps = num_train_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decay = ops.maximum(0.0, 1.0 - step / float(self.num_train_steps))
        if self.warmup_steps > 0:
            decay = decay * ops.minimum(1.0, step / float(self.warmup_steps))
        return self.peak_learning_rate * decay

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "num_train_steps": self.num_train_steps,
            "warmup_steps": self.warmup_steps,
        }


def _sum_duplicate_rows(slices):
    """The same IndexedSlices gradient with each index appearing once."""
    indices, positions = tf.unique(slices.indices)
    values = tf.math.unsorted_segment_sum(
        slices.values, positions, tf.shape(indices)[0]
    )
    return tf.IndexedSlices(values, indices, slices.dense_shape)


@keras.saving.register_keras_serializable(package="electra_tf")
class LayerwiseAdamW(keras.optimizers.AdamW):
    """Keras AdamW with per-variable learning-rate multipliers.

    For a variable with multiplier `m` (1.0 when not listed), one step is
    Google's `AdamWeightDecayOptimizer` rule with Keras' bias-corrected Adam:

        w -= m * lr * (adam_update + weight_decay * w)

    i.e. the multiplier scales that variable's learning rate, including its
    weight-decay term. Scaling gradients instead would do nothing, since
    Adam is invariant to gradient scale.

    Two fixes to stock Keras 3 `global_clipnorm` (TF backend):
    - gradients are all-reduced across replicas *before* clipping; Keras
      clips each replica's partial gradient and only then sums them, which
      neither bounds the applied gradient nor matches one device;
    - IndexedSlices gradients (embedding lookups) have repeated rows summed
      before the norm is taken; Keras counts each repeat as its own row.

    Args:
        lr_multipliers: optional dict mapping a variable's `.path` to its
            learning-rate multiplier (see `layerwise_lr_multipliers`).
            Every path must belong to a variable the optimizer is built
            with; variables sharing a path share the multiplier.
        weight_decay_exclusions: regexes; a variable whose name matches
            any of them gets no weight decay (Keras
            `exclude_from_weight_decay(var_names=...)` semantics).
        **kwargs: `keras.optimizers.AdamW` arguments.
    """

    def __init__(
        self,
        lr_multipliers=None,
        weight_decay_exclusions=DEFAULT_WEIGHT_DECAY_EXCLUSIONS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self.weight_decay_exclusions = list(weight_decay_exclusions)
        self.exclude_from_weight_decay(var_names=self.weight_decay_exclusions)
        self._lr_multiplier_by_key = {}

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        paths = {variable.path for variable in var_list}
        unknown = sorted(set(self.lr_multipliers) - paths)
        if unknown:
            raise ValueError(
                "lr_multipliers names variables this optimizer is not built "
                f"with: {unknown}"
            )
        for variable in var_list:
            self._lr_multiplier_by_key[self._var_key(variable)] = float(
                self.lr_multipliers.get(variable.path, 1.0)
            )
        decayed = (
            sum(self._use_weight_decay(v) for v in var_list)
            if self.weight_decay
            else 0
        )
        logging.info(
            "LayerwiseAdamW: %d variables, %d with weight decay, %d with an "
            "LR multiplier other than 1",
            len(var_list),
            decayed,
            sum(m != 1.0 for m in self._lr_multiplier_by_key.values()),
        )

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Keras clips inside this method but all-reduces later, in
        # `_backend_update_step`; reduce first so clipping sees the global
        # gradient, and make the later reduction a no-op below.
        reduced = super()._all_reduce_sum_gradients(
            list(zip(grads, trainable_variables))
        )
        super()._backend_apply_gradients(
            [grad for grad, _ in reduced], trainable_variables
        )

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            # Keras' global norm squares IndexedSlices values row by row, so
            # a row repeated in `indices` (a token seen twice in the batch,
            # or slices concatenated by the all-reduce) would be counted as
            # separate rows instead of their sum.
            grads = [
                _sum_duplicate_rows(g) if isinstance(g, tf.IndexedSlices) else g
                for g in grads
            ]
        return super()._clip_gradients(grads)

    def _apply_weight_decay(self, variables):
        # Decay happens in `update_step`, where the per-variable learning
        # rate is known.
        return

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = learning_rate * self._lr_multiplier_by_key[
            self._var_key(variable)
        ]
        if self.weight_decay and self._use_weight_decay(variable):
            # Adam's update does not read `variable`, so decaying first
            # equals Google's single `w -= lr * (update + wd * w)`.
            rate = ops.cast(learning_rate, variable.dtype) * ops.cast(
                self.weight_decay, variable.dtype
            )
            self.assign_sub(variable, ops.multiply(variable, rate))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lr_multipliers": dict(self.lr_multipliers),
                "weight_decay_exclusions": list(self.weight_decay_exclusions),
            }
        )
        return config


def make_optimizer(
    learning_rate,
    num_train_steps,
    warmup_steps,
    weight_decay=0.01,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
    clip_norm=1.0,
    lr_multipliers=None,
):
    """ELECTRA's optimizer: `LayerwiseAdamW` on a `WarmupLinearDecay` schedule.

    Args:
        learning_rate: peak learning rate.
        num_train_steps: steps until the rate reaches 0.
        warmup_steps: linear warmup steps.
        weight_decay: decoupled weight decay rate; LayerNorm parameters and
            biases are excluded (`DEFAULT_WEIGHT_DECAY_EXCLUSIONS`).
        beta_1, beta_2, epsilon: Adam hyper-parameters.
        clip_norm: global gradient norm bound, applied to the all-reduced
            gradients of all variables together; `None` or 0 disables it.
        lr_multipliers: optional `{variable path: factor}`, e.g. from
            `layerwise_lr_multipliers`.

    Returns:
        A `LayerwiseAdamW`.
    """
    return LayerwiseAdamW(
        learning_rate=WarmupLinearDecay(
            learning_rate, num_train_steps, warmup_steps
        ),
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clip_norm or None,
        lr_multipliers=lr_multipliers,
    )
