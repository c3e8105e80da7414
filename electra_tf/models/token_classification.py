"""Token classification (NER, chunking): an ELECTRA encoder with a per-token head.

The equivalent of Hugging Face's `ElectraForTokenClassification`: dropout, then one
Dense(num_labels) layer (`classifier`) on every token's final hidden state, so
fine-tuned Hugging Face checkpoints map onto it one variable to one variable.

Labels are per WordPiece with `IGNORE` (-1) off each word's first piece
(`electra_tf.data.tagging`): a word is labelled and predicted once.
"""

import keras
from keras import ops

from electra_tf.models.encoder import truncated_normal
from electra_tf.models.task_model import ElectraTaskModel

IGNORE = -1  # label of positions without a loss (electra_tf.data.tagging.IGNORE)


@keras.saving.register_keras_serializable(package="electra_tf")
class TokenLoss(keras.losses.Loss):
    """Softmax cross-entropy over labelled tokens: each sentence's mean over its
    labelled tokens (label >= 0), then Keras' mean over sentences.

    Per sentence rather than over all tokens of the batch, so that a sentence's
    weight does not depend on which others share its batch: the update of a global
    batch is the same however it is split over replicas and micro-batches.

    Call args:
        y_true: int `[batch, seq_len]` label ids, `IGNORE` where there is no label.
        y_pred: float32 logits `[batch, seq_len, num_labels]`.

    Returns:
        per-sentence losses `[batch]` (0 for a sentence without a label), reduced by
        the Loss (mean over the batch by default).
    """

    def __init__(self, name="token_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        labelled = ops.cast(y_true >= 0, "float32")
        losses = keras.losses.sparse_categorical_crossentropy(
            ops.maximum(y_true, 0), y_pred, from_logits=True)
        return ops.sum(losses * labelled, axis=-1) / ops.maximum(
            ops.sum(labelled, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraForTokenClassification(ElectraTaskModel):
    """ELECTRA encoder + dropout + Dense(num_labels) on every token.

    Args:
        encoder_config: dict of `ElectraEncoder` keyword arguments.
        label_names: the tags in output order (e.g. ("O", "B-PER", "I-PER")).
        head_dropout_rate: the head's dropout; None takes the encoder's `dropout_rate`.

    Call args:
        inputs: dict of token_ids, segment_ids int `[batch, seq_len]` and
            padding_mask bool `[batch, seq_len]` (`electra_tf.schema` names).

    Returns:
        float32 logits `[batch, seq_len, num_labels]`.

    Training: `model.compile(optimizer, loss=TokenLoss())`, then `model.fit` on
    (inputs, label_ids) batches.
    """

    def __init__(self, encoder_config, label_names, head_dropout_rate=None, **kwargs):
        label_names = tuple(label_names)
        if not label_names:
            raise ValueError("a token classifier needs at least one label")
        super().__init__(encoder_config, **kwargs)
        self.label_names = label_names
        self.head_dropout_rate = head_dropout_rate

        # === Layers ===
        self.dropout = keras.layers.Dropout(
            self.encoder.dropout_rate if head_dropout_rate is None else head_dropout_rate,
            name="dropout")
        # float32 logits under mixed precision: the softmax cross-entropy needs them.
        self.classifier = keras.layers.Dense(
            len(label_names),
            kernel_initializer=truncated_normal(self.encoder.initializer_range),
            dtype="float32",
            name="classifier",
        )

    @property
    def num_labels(self):
        return len(self.label_names)

    def build(self, inputs_shape):
        # Explicit, so that a rebuilt model names its variables as the original did.
        self.encoder.build(inputs_shape)
        self.classifier.build(self.encoder.compute_output_shape(inputs_shape))

    def call(self, inputs, training=None):
        hidden = self.encoder(inputs, training=training)
        return self.classifier(self.dropout(hidden, training=training))

    def get_config(self):
        return {**super().get_config(), "label_names": list(self.label_names),
                "head_dropout_rate": self.head_dropout_rate}
