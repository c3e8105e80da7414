"""The base of every fine-tuning model: an ELECTRA encoder plus a task head.

`ElectraClassifier` (sequence classification / regression),
`ElectraForQuestionAnswering` (span extraction) and `ElectraForTokenClassification`
(tagging) differ only in their head, their outputs and their loss. What they share is
here, once:

- the encoder built from an `encoder_config` dict (an artifact's), and copying a
  pretrained encoder in (`load_encoder_weights`, refusing a different architecture);
- building the variables on a zero batch (`build_for_length`), so that a rebuilt
  model names its variables as the original did;
- layer-wise learning-rate multipliers (`lr_multipliers`);
- `compile` with per-replica XLA and gradient accumulation, and the `train_step` that
  makes one update of the mean loss over the whole global batch, however it is split
  over replicas and micro-batches.

Subclasses create their head in `__init__`, build it in `build`, and implement `call`.
"""

import keras
import tensorflow as tf

from electra_tf import schema
from electra_tf.models import layerwise, steps
from electra_tf.models.encoder import ElectraEncoder

# What must agree for one encoder's weights to mean the same in another (dropout
# rates may differ: fine-tuning may choose its own).
ARCHITECTURE_FIELDS = (
    "vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
    "intermediate_size", "hidden_activation", "max_position_embeddings", "type_vocab_size",
    "layer_norm_epsilon", "local_conv_kernel", "attention_locality",
)


def zero_inputs(seq_len, batch=1):
    """Encoder inputs of zeros (all positions real): `schema` names -> `[batch, seq_len]`."""
    return {
        schema.TOKEN_IDS: tf.zeros([batch, seq_len], tf.int32),
        schema.SEGMENT_IDS: tf.zeros([batch, seq_len], tf.int32),
        schema.PADDING_MASK: tf.ones([batch, seq_len], tf.bool),
    }


class ElectraTaskModel(steps.ReplicaJitCompile, keras.Model):
    """An `ElectraEncoder` (`self.encoder`) under a task head, trained with `fit`.

    Args:
        encoder_config: dict of `ElectraEncoder` keyword arguments.

    Call args (every subclass):
        inputs: dict of token_ids, segment_ids int `[batch, seq_len]` and
            padding_mask bool `[batch, seq_len]` (`electra_tf.schema` names).
    """

    def __init__(self, encoder_config, **kwargs):
        super().__init__(**kwargs)
        self.encoder_config = dict(encoder_config)
        self.grad_accum_steps = 1  # set by `compile`
        self.encoder = ElectraEncoder(**self.encoder_config, name="encoder")

    def build_for_length(self, seq_len, batch=1):
        """Creates the variables by calling the model once on zeros `[batch, seq_len]`."""
        self(zero_inputs(seq_len, batch))
        return self

    def load_encoder_weights(self, encoder):
        """Copies a pretrained `ElectraEncoder` (e.g. a discriminator's) into this model.

        Raises:
            ValueError: the architectures differ (each differing field named).
        """
        differing = [
            f"{field} ({getattr(encoder, field)!r} != {getattr(self.encoder, field)!r})"
            for field in ARCHITECTURE_FIELDS
            if getattr(encoder, field, None) != getattr(self.encoder, field, None)
        ]
        if differing:
            raise ValueError(
                "the pretrained encoder differs from this model's in: " + ", ".join(differing)
            )
        if not self.built:
            self.build_for_length(8)
        self.encoder.set_weights(encoder.get_weights())

    def lr_multipliers(self, layer_decay):
        """Layer-wise learning-rate multipliers for `optimization.make_optimizer`.

        The head and the top block get 1.0, block `i` `layer_decay ** (L-1-i)`, the
        embeddings `layer_decay ** L` (`layerwise.layerwise_lr_multipliers`): the
        head's variable paths contain neither `block_` nor `embeddings`.
        """
        return layerwise.layerwise_lr_multipliers(
            self.trainable_variables, self.encoder.num_layers, layer_decay
        )

    # === Training ===

    def compile(self, optimizer="rmsprop", jit_compile="auto", grad_accum_steps=1, **kwargs):
        """`keras.Model.compile`, with per-replica XLA and gradient accumulation.

        Args:
            optimizer, **kwargs: as `keras.Model.compile` (loss: a Keras loss, which
                scales itself for tf.distribute replicas).
            jit_compile: XLA on each replica's forward and backward pass only
                (`steps.ReplicaJitCompile`); "auto": on when a GPU is present.
            grad_accum_steps: each train step splits its (per-replica) batch into
                this many micro-batches, one forward/backward pass each, and applies
                one update: the update of the whole batch, with the activation
                memory of one micro-batch.
        """
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.grad_accum_steps = grad_accum_steps
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def get_compile_config(self):
        """Keras' compile config, with this `compile`'s own arguments."""
        config = super().get_compile_config()
        if config:
            config.update(jit_compile=self.replica_jit_compile,
                          grad_accum_steps=self.grad_accum_steps)
        return config

    def compile_from_config(self, config):
        # Keras' own skips a custom `compile` (with a warning), so that
        # `keras.models.load_model` would return the model uncompiled.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _forward(self, x):
        return self(x, training=True)

    def _micro_batch_shares(self, rows):
        """Factors that turn Keras' per-micro-batch losses into shares of the step's mean.

        Keras' loss on replica r, micro-batch k is `mean_rk / replicas`; times
        `replicas * n_rk / N` (N: the rows of the whole global batch) it is
        `sum_rk / N`, so the replicas' and micro-batches' losses add up to the
        mean over the global batch, whatever the split (uneven last batches too).

        Args:
            rows: list of int32 scalars, each micro-batch's rows n_rk.

        Returns:
            float32 `[num_micro_batches]`.
        """
        context = tf.distribute.get_replica_context()
        rows = tf.cast(tf.stack(rows), tf.float32)
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(rows))
        return tf.math.divide_no_nan(context.num_replicas_in_sync * rows, total)

    def train_step(self, data):
        """Keras' train step, over `grad_accum_steps` micro-batches and with the
        forward pass under XLA if `replica_jit_compile`."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        forward = self._forward
        if self.replica_jit_compile:
            # The gradient of a jit-compiled function is compiled too.
            forward = tf.function(self._forward, jit_compile=True)
        micro_batches = steps.split_rows((x, y, sample_weight), self.grad_accum_steps)
        rows = [tf.shape(part[0][schema.TOKEN_IDS])[0] for part in micro_batches]
        context = tf.distribute.get_replica_context()
        if self.grad_accum_steps == 1 and context.num_replicas_in_sync == 1:
            shares = tf.ones([1])
        else:
            shares = self._micro_batch_shares(rows)
        grads, predictions = None, []
        for k, (part_x, part_y, part_weight) in enumerate(micro_batches):
            part_x = steps.after_gradients(grads, part_x)
            with tf.GradientTape() as tape:
                y_pred = forward(part_x)
                loss = self._compute_loss(x=part_x, y=part_y, y_pred=y_pred,
                                          sample_weight=part_weight, training=True)
                scaled = self.optimizer.scale_loss(loss * shares[k])
            variables = self.trainable_variables
            grads = steps.accumulate(grads, tape.gradient(scaled, variables))
            # As Keras tracks it: this replica's mean loss, weighted by its rows.
            self._loss_tracker.update_state(loss * context.num_replicas_in_sync,
                                            sample_weight=rows[k])
            predictions.append(y_pred)
        # Keras' LossScaleOptimizer would let each replica decide alone whether to
        # skip an overflowed step; scalar logs fail Keras' cross-worker reduction.
        self.optimizer.apply(steps.agree_on_finiteness(self.optimizer, grads), variables)
        y_pred = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *predictions)
        return steps.reducible_logs(self.distribute_strategy, self.compute_metrics(
            x, y, y_pred, sample_weight=sample_weight))

    def test_step(self, data):
        return steps.reducible_logs(self.distribute_strategy, super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy Keras averages a first batch over the replicas
        # to build the model symbolically, which fails on the bool padding_mask; a model
        # built by `build_for_length` needs no such build.
        if not self.built:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def get_config(self):
        return {**super().get_config(), "encoder_config": self.encoder_config}
