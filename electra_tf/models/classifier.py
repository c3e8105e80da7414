"""Fine-tuning models: an ELECTRA encoder with a sequence classification/regression head.

The head is Hugging Face's `ElectraClassificationHead` (dropout, dense + GELU, dropout,
output projection on the [CLS] vector), so fine-tuned Hugging Face checkpoints map onto
it one variable to one variable.

Variable paths keep the encoder's `block_{i}` and `embeddings` names, so
`layerwise.layerwise_lr_multipliers(model.trainable_variables, ...)` finds each
variable's depth; the head's names contain neither, so it gets the full learning rate.
"""

import keras

from electra_tf.models.encoder import truncated_normal
from electra_tf.models.task_model import ElectraTaskModel
from electra_tf.text import preprocessor as preprocessor_lib


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
class ElectraClassifier(ElectraTaskModel):
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
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        label_names = tuple(label_names or ())
        if label_names and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label_names {list(label_names)} for "
                             f"num_labels={num_labels}")
        super().__init__(encoder_config, **kwargs)
        self.num_labels = num_labels
        self.head_dropout_rate = head_dropout_rate
        self.label_names = label_names
        self.preprocessor = preprocessor

        # === Layers ===
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
            if not isinstance(model, cls):
                raise ValueError(f"{path} holds a fine-tuned {type(model).__name__}, not a "
                                 f"{cls.__name__}")
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
            "num_labels": self.num_labels,
            "head_dropout_rate": self.head_dropout_rate,
            "label_names": list(self.label_names),
        }
        if self.preprocessor is not None:
            config["preprocessor"] = keras.saving.serialize_keras_object(self.preprocessor)
        return config
