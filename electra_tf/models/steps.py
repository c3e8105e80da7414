"""Pieces shared by the custom train steps of `ElectraPretrainer` and the fine-tuning
models (`ElectraTaskModel`).

Both steps split their batch into micro-batches for gradient accumulation, run one
forward/backward pass per micro-batch (optionally under XLA), add the gradients up,
and apply one update under any tf.distribute strategy. What they share lives here:
the XLA setting, the split, the sequencing and summing of micro-batch gradients,
the replicas' joint decision to skip an overflowed float16 step, and logs that
Keras can reduce across workers.
"""

import keras
import tensorflow as tf


def resolve_jit_compile(jit_compile):
    """True/False as given; "auto": on when a GPU is present (XLA is slower on CPU)."""
    if jit_compile == "auto":
        return bool(tf.config.list_logical_devices("GPU"))
    return bool(jit_compile)


class ReplicaJitCompile:
    """`compile(jit_compile=...)` that puts XLA on each replica's computation only.

    `jit_compile=True` compiles each replica's forward and backward pass with XLA
    (`self.replica_jit_compile`, which the train step reads); Keras' step around it,
    which holds the cross-replica sums and the optimizer update, stays uncompiled.
    That works under every strategy (a whole-step XLA cluster spanning several
    devices fails, on CPU replicas with "Trying to access resource ... located in
    device CPU:1"), keeps random draws outside XLA, and on one CPU was faster than
    whole-step XLA. "auto": on when a GPU is present. `self.jit_compile` (Keras'
    whole step) is always False.

    A mixin before `keras.Model` in the bases of a model with its own train step.
    """

    replica_jit_compile = False

    def compile(self, optimizer="rmsprop", jit_compile="auto", **kwargs):
        self.replica_jit_compile = resolve_jit_compile(jit_compile)
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)


def split_rows(batch, num_parts):
    """Splits every tensor of `batch` into `num_parts` consecutive row blocks.

    The blocks are as equal as possible: with n rows, the first `n % num_parts`
    get one row more (an epoch's last, smaller batch need not divide evenly).

    Args:
      batch: a nest (dict, tuple, ...) of tensors `[n, ...]` with the same n;
        None entries (e.g. no sample weights) stay None.
      num_parts: int >= 1.

    Returns:
      list of `num_parts` nests like `batch`, part k `[n_k, ...]`, sum n_k = n.
    """
    if num_parts == 1:
        return [batch]
    flat = tf.nest.flatten(batch)
    rows = tf.shape(next(t for t in flat if t is not None))[0]
    sizes = rows // num_parts + tf.cast(tf.range(num_parts) < rows % num_parts, tf.int32)
    columns = [[None] * num_parts if t is None else tf.split(t, sizes) for t in flat]
    return [tf.nest.pack_sequence_as(batch, [column[k] for column in columns])
            for k in range(num_parts)]


def after_gradients(grads, features):
    """`features` (a dict of tensors) made to wait for `grads` (None: no wait).

    One micro-batch at a time: the graph would otherwise run the micro-batches
    concurrently and hold all their activations at once.
    """
    if grads is None:
        return features
    with tf.control_dependencies(tf.nest.flatten(grads, expand_composites=True)):
        return {name: tf.identity(value) for name, value in features.items()}


def _add(a, b):
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        # IndexedSlices already mean "sum of the rows", duplicates included.
        return tf.IndexedSlices(
            tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0),
            a.dense_shape,
        )
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def accumulate(grads, step_grads):
    """The running sum of micro-batch gradients (`grads` None: the first one)."""
    if grads is None:
        return step_grads
    return [_add(a, b) for a, b in zip(grads, step_grads)]


def agree_on_finiteness(optimizer, grads):
    """Makes every replica's gradients non-finite if any replica's are.

    Keras' LossScaleOptimizer checks the gradients before they are all-reduced
    (they are reduced inside the inner optimizer), so on its own each replica,
    or only the first one, decides whether to skip the step; a partial
    gradient that overflows elsewhere would reach the weights as inf/NaN.
    """
    context = tf.distribute.get_replica_context()
    if (not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            or context.num_replicas_in_sync == 1):
        return grads
    local_bad = 1.0 - tf.cast(optimizer.check_finite(grads), tf.float32)
    any_bad = context.all_reduce(tf.distribute.ReduceOp.SUM, local_bad) > 0
    poison = tf.where(any_bad, float("nan"), 0.0)
    return [
        tf.IndexedSlices(g.values + poison, g.indices, g.dense_shape)
        if isinstance(g, tf.IndexedSlices) else g + poison
        for g in grads
    ]


def reducible_logs(strategy, logs):
    """`logs` in a shape Keras can reduce across workers.

    Under multi-worker MultiWorkerMirroredStrategy, Keras 3 reduces each log
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
    ("Invalid reduction dimension 0", tensorflow/tensorflow#72388); a leading
    axis of 1 reduces to the scalar.
    """
    several_workers = (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    )
    if not several_workers:
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
