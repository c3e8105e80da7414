"""Fine-tuning models: an ELECTRA encoder with a sequence classification/regression head.

The head is Hugging Face's `ElectraClassificationHead` (dropout, dense + GELU, dropout,
output projection on the [CLS] vector), so fine-tuned Hugging Face checkpoints map onto
it one variable to one variable.

Variable paths keep the encoder's `block_{i}` and `embeddings` names, so
`layerwise.layerwise_lr_multipliers(model.trainable_variables, ...)` finds each
variable's depth; the head's names contain neither, so it gets the full learning rate.
"""

import keras
import tensorflow as tf
from keras import ops

from electra_tf import schema
from electra_tf.models.encoder import ElectraEncoder, truncated_normal
from electra_tf.text import preprocessor as preprocessor_lib
from electra_tf.models import layerwise, steps

# What must agree for one encoder's weights to mean the same in another (dropout
# rates may differ: fine-tuning may choose its own).
_ARCHITECTURE_FIELDS = (
    "vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
    "intermediate_size", "hidden_activation", "max_position_embeddings", "type_vocab_size",
    "layer_norm_epsilon",
)


@keras.saving.register_keras_serializable(package="electra_tf")
class ClassificationHead(keras.layers.Layer):
    """`[CLS]` vector -> dropout -> dense + activation -> dropout -> dense(num_labels).

    Args:
        num_labels: int, outputs (1 for regression).
        hidden_size: int, width of the inner dense layer (the encoder's hidden size).
        hidden_activation: activation name of the inner dense layer.
        dropout_rate: float, dropout before each dense layer.
        initializer_range: float, stddev of the truncated-normal kernels.

    Call args:
        sequence_output: `[batch, seq_len, hidden]`.

    Returns:
        float32 `[batch, num_labels]`.
    """

    def __init__(
        self,
        num_labels,
        hidden_size,
        hidden_activation="gelu",
        dropout_rate=0.1,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.hidden_size = hidden_size
        self.hidden_activation = hidden_activation
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range

        # === Layers ===
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(
            hidden_size,
            activation=hidden_activation,
            kernel_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )
        # float32 logits under mixed precision: softmax cross-entropy and MSE need them.
        self.out_proj = keras.layers.Dense(
            num_labels,
            kernel_initializer=truncated_normal(initializer_range),
            dtype="float32",
            name="out_proj",
        )

    def build(self, sequence_output_shape):
        cls_shape = (sequence_output_shape[0], sequence_output_shape[-1])
        self.dense.build(cls_shape)
        self.out_proj.build(cls_shape[:-1] + (self.hidden_size,))

    def call(self, sequence_output, training=None):
        x = self.dropout(sequence_output[:, 0, :], training=training)
        x = self.dropout(self.dense(x), training=training)
        return self.out_proj(x)

    def compute_output_shape(self, sequence_output_shape):
        return (sequence_output_shape[0], self.num_labels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_labels": self.num_labels,
                "hidden_size": self.hidden_size,
                "hidden_activation": self.hidden_activation,
                "dropout_rate": self.dropout_rate,
                "initializer_range": self.initializer_range,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraClassifier(keras.Model):
    """ELECTRA encoder + `ClassificationHead`, for `compile`/`fit`/`evaluate`/`predict`.

    Args:
        encoder_config: dict of `ElectraEncoder` keyword arguments (an artifact's
            `encoder_config`, or `dataclasses.asdict(EncoderConfig(...))`).
        num_labels: int, classes; 1 makes it a regression model (one score).
        head_dropout_rate: float, the head's dropout; None takes the encoder's
            `dropout_rate` (0.1 in every ELECTRA size).
        label_names: the classes' names in output order (empty: unnamed or regression).
        preprocessor: a `Preprocessor` (or its config); with it, `predict` also takes
            raw text (strings, or a 2-tuple of string lists for pairs). It has no
            variables and is not part of the weights.

    Loading and saving: `ElectraClassifier.from_model_dir(path, num_labels=...)`
    (a fine-tuned output dir, or a pretrained discriminator with a new head) and
    `save_to_model_dir(path)`, which `from_model_dir` reads back.

    Call args:
        inputs: dict of token_ids, segment_ids int `[batch, seq_len]` and
            padding_mask bool `[batch, seq_len]` (`electra_tf.schema` names).

    Returns:
        float32 logits `[batch, num_labels]` (regression: scores `[batch, 1]`).

    Training (`compile`/`fit`) takes XLA on each replica's pass and gradient
    accumulation; the update is the mean loss over the whole global batch, whatever
    its split over replicas and micro-batches, so with dropout 0 any split trains
    the same weights as one device on the whole batch.
    """

    def __init__(self, encoder_config, num_labels, head_dropout_rate=None, label_names=(),
                 preprocessor=None, **kwargs):
        super().__init__(**kwargs)
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        label_names = tuple(label_names or ())
        if label_names and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label_names {list(label_names)} for "
                             f"num_labels={num_labels}")
        self.encoder_config = dict(encoder_config)
        self.num_labels = num_labels
        self.head_dropout_rate = head_dropout_rate
        self.label_names = label_names
        self.preprocessor = preprocessor
        # Training settings, set by `compile`.
        self.replica_jit_compile = False
        self.grad_accum_steps = 1

        # === Layers ===
        self.encoder = ElectraEncoder(**self.encoder_config, name="encoder")
        self.head = ClassificationHead(
            num_labels=num_labels,
            hidden_size=self.encoder.hidden_size,
            hidden_activation=self.encoder.hidden_activation,
            dropout_rate=(self.encoder.dropout_rate if head_dropout_rate is None
                          else head_dropout_rate),
            initializer_range=self.encoder.initializer_range,
            name="classifier",
        )

    @property
    def preprocessor(self):
        """The attached `Preprocessor`, or None."""
        return self._preprocessor

    @preprocessor.setter
    def preprocessor(self, value):
        if isinstance(value, dict):
            value = keras.saving.deserialize_keras_object(value)
        object.__setattr__(self, "_preprocessor", value)

    def __setattr__(self, name, value):
        if name == "preprocessor":
            # Untracked (it has no variables and is not in the weights), so it can be
            # attached to a built model and weights files do not depend on it.
            object.__setattr__(self, name, value)  # the property's setter
        else:
            super().__setattr__(name, value)

    @property
    def is_regression(self):
        return self.num_labels == 1

    def build(self, inputs_shape):
        # Explicit, so that a model rebuilt by `keras.models.load_model` names its
        # variables as the original did (lr_multipliers are keyed by those paths).
        self.encoder.build(inputs_shape)
        self.head.build(self.encoder.compute_output_shape(inputs_shape))

    def call(self, inputs, training=None):
        return self.head(self.encoder(inputs, training=training), training=training)

    def build_for_length(self, seq_len, batch=1):
        """Creates the variables by calling the model once on zeros `[batch, seq_len]`."""
        self({
            schema.TOKEN_IDS: ops.zeros((batch, seq_len), "int32"),
            schema.SEGMENT_IDS: ops.zeros((batch, seq_len), "int32"),
            schema.PADDING_MASK: ops.ones((batch, seq_len), "bool"),
        })
        return self

    def compile(self, optimizer="rmsprop", jit_compile="auto", grad_accum_steps=1, **kwargs):
        """`keras.Model.compile`, with per-replica XLA and gradient accumulation.

        Args:
            optimizer, **kwargs: as `keras.Model.compile` (loss: a Keras built-in
                loss, which scales itself for tf.distribute replicas).
            jit_compile: True compiles each replica's forward and backward pass
                with XLA (`replica_jit_compile`); the step around it, which holds
                the cross-replica sums and the optimizer update, stays uncompiled,
                as in `ElectraPretrainer.compile`: a whole-step XLA cluster spanning
                several devices fails on CPU replicas ("Trying to access resource
                ... located in device CPU:1"). "auto": on when a GPU is present.
                `self.jit_compile` (Keras' whole step) is always False.
            grad_accum_steps: each train step splits its (per-replica) batch into
                this many micro-batches, one forward/backward pass each, and applies
                one update: the update of the whole batch, with the activation
                memory of one micro-batch.
        """
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        self.replica_jit_compile = steps.resolve_jit_compile(jit_compile)
        self.grad_accum_steps = grad_accum_steps
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)

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
        return steps.reducible_logs(self.distribute_strategy, self.compute_metrics(
            x, y, tf.concat(predictions, 0), sample_weight=sample_weight))

    def test_step(self, data):
        return steps.reducible_logs(self.distribute_strategy, super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy Keras averages a first batch over the replicas
        # to build the model symbolically, which fails on the bool padding_mask; a model
        # built by `build_for_length` needs no such build.
        if not self.built:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def load_encoder_weights(self, encoder):
        """Copies a pretrained `ElectraEncoder` (e.g. a discriminator's) into this model.

        Raises:
            ValueError: the architectures differ (each differing field named).
        """
        differing = [
            f"{field} ({getattr(encoder, field)!r} != {getattr(self.encoder, field)!r})"
            for field in _ARCHITECTURE_FIELDS
            if getattr(encoder, field) != getattr(self.encoder, field)
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
        embeddings `layer_decay ** L` (`layerwise.layerwise_lr_multipliers`).
        """
        return layerwise.layerwise_lr_multipliers(
            self.trainable_variables, self.encoder.num_layers, layer_decay
        )

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict`; with a `preprocessor`, `x` may also be raw text: a
        list of strings (or a string array/tensor `[n]`), or `(texts_a, texts_b)` for
        pairs. Returns float32 `[n, num_labels]` logits."""
        if self.preprocessor is not None and preprocessor_lib.is_text_input(x):
            x = self.preprocessor.dataset(x, batch_size=batch_size or 32)
            batch_size = None
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=callbacks)

    @classmethod
    def from_model_dir(cls, path, num_labels=None, label_names=(), max_seq_length=None,
                       **kwargs):
        """A classifier with its `preprocessor` attached, from a model directory.

        Args:
          path: a fine-tuned output dir (`tools/finetune.py`, `save_to_model_dir`):
            the trained classifier; or a pretraining model_dir / discriminator
            artifact: its encoder under a new, randomly initialised head.
          num_labels, label_names: for a pretrained discriminator, the head's outputs
            (one of them is enough; 1 for regression). For a fine-tuned dir they must
            agree with it, if given.
          max_seq_length: the preprocessor's length (default: the model's training
            length).
          **kwargs: for a new head, further constructor arguments (head_dropout_rate).

        Raises:
          FileNotFoundError: `path` does not exist or holds no model.
          ValueError: missing or contradictory num_labels.
        """
        from electra_tf.models import artifacts  # noqa: PLC0415 (it imports this module)

        artifact = artifacts.load(path)
        label_names = tuple(label_names or ())
        if artifact.kind == artifacts.CLASSIFIER:
            model = artifact.model
            if num_labels is not None and num_labels != model.num_labels:
                raise ValueError(f"{path} holds a classifier with {model.num_labels} labels, "
                                 f"not num_labels={num_labels}")
            if label_names and label_names != model.label_names:
                raise ValueError(f"{path} holds labels {list(model.label_names)}, not "
                                 f"{list(label_names)}")
        elif artifact.kind == artifacts.DISCRIMINATOR:
            num_labels = num_labels or len(label_names)
            if not num_labels:
                raise ValueError(f"{path} holds a pretrained discriminator: give num_labels "
                                 "(or label_names) for the new classification head")
            model = cls(artifact.model.encoder_config, num_labels, label_names=label_names,
                        **kwargs)
            model.build_for_length(artifact.max_seq_length)
            model.load_encoder_weights(artifact.model.encoder)
        else:
            raise ValueError(f"{path} holds a {artifact.kind}; a classifier starts from a "
                             "discriminator or a fine-tuned classifier")
        model.preprocessor = artifact.preprocessor(max_seq_length)
        # What save_to_model_dir writes back as finetune_config.json.
        object.__setattr__(model, "_finetune_config",
                           artifact.config if artifact.kind == artifacts.CLASSIFIER
                           else {"task": "custom", "init": path})
        return model

    def save_to_model_dir(self, path):
        """Writes a fine-tuned classifier directory that `from_model_dir` (and
        fine-tuning's `load_finetuned`, export and explain) read. Needs the
        `preprocessor` (its vocabulary, casing and length are saved).

        Returns:
          `path`.
        """
        from electra_tf.models import artifacts  # noqa: PLC0415 (it imports this module)

        if self.preprocessor is None:
            raise ValueError("save_to_model_dir needs the classifier's preprocessor (its "
                             "vocabulary); attach one: model.preprocessor = Preprocessor(...)")
        config = dict(getattr(self, "_finetune_config", None) or {"task": "custom", "init": ""})
        config.update(lowercase=self.preprocessor.lowercase,
                      max_seq_length=self.preprocessor.max_seq_length,
                      label_names=list(self.label_names), regression=self.is_regression)
        return artifacts.save_classifier(self, path, config, self.preprocessor.vocab_path)

    def get_config(self):
        config = {
            **super().get_config(),
            "encoder_config": self.encoder_config,
            "num_labels": self.num_labels,
            "head_dropout_rate": self.head_dropout_rate,
            "label_names": list(self.label_names),
        }
        if self.preprocessor is not None:
            config["preprocessor"] = keras.saving.serialize_keras_object(self.preprocessor)
        return config
