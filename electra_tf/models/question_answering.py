"""Extractive question answering: an ELECTRA encoder with a span head.

The equivalent of Hugging Face's `ElectraForQuestionAnswering`: one Dense(2) layer
(`qa_outputs`, no dropout, no hidden layer) on every token's final hidden state gives
a start and an end logit per token. Padded positions get `MASKED_LOGIT`, so they are
never predicted and a softmax over the sequence puts no mass there.

SQuAD v2.0 ("no answer"): the model has no separate answerability output; as in
Hugging Face's and Google's post-processing, a window's null score is
`start_logits[:, 0] + end_logits[:, 0]` (the [CLS] position, where windows without
the answer are labelled), compared with the best span's score
(`electra_tf.data.squad_predictions`). This keeps Hugging Face QA checkpoints
loadable one variable to one variable (Google's ELECTRA code adds a separate
answerability classifier on [CLS]; it is not used here).

Variable paths keep the encoder's `block_{i}` and `embeddings` names, so layer-wise
learning-rate decay finds each variable's depth; the head's names contain neither,
so it gets the full learning rate.
"""

import keras
from keras import ops

from electra_tf import schema
from electra_tf.models.encoder import truncated_normal
from electra_tf.models.task_model import ElectraTaskModel

START_LOGITS = "start_logits"
END_LOGITS = "end_logits"
# Far below any real logit, finite so that a softmax over it stays defined.
MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="electra_tf")
class SpanLoss(keras.losses.Loss):
    """Mean of the start and end sparse softmax cross-entropies (BERT's SQuAD loss).

    Call args:
        y_true: dict of `schema.START_POSITIONS` and `schema.END_POSITIONS`, int
            `[batch]` token positions (0, [CLS], for "not in this window").
        y_pred: the model's dict of `START_LOGITS` and `END_LOGITS`, float32
            `[batch, seq_len]`.

    Returns:
        per-example losses `[batch]`, reduced by the Loss (mean over the batch by
        default); as a built-in Keras loss it is scaled for `tf.distribute` replicas
        by `keras.losses.Loss.__call__`, in that one place.
    """

    def __init__(self, name="span_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        start = keras.losses.sparse_categorical_crossentropy(
            ops.cast(y_true[schema.START_POSITIONS], "int32"), y_pred[START_LOGITS],
            from_logits=True)
        end = keras.losses.sparse_categorical_crossentropy(
            ops.cast(y_true[schema.END_POSITIONS], "int32"), y_pred[END_LOGITS],
            from_logits=True)
        return (start + end) / 2.0


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraForQuestionAnswering(ElectraTaskModel):
    """ELECTRA encoder + span head: start/end logits for every token.

    Args:
        encoder_config: dict of `ElectraEncoder` keyword arguments (an artifact's
            `encoder_config`, or `dataclasses.asdict(EncoderConfig(...))`).
        initializer_range: stddev of the head's truncated-normal kernel; None takes
            the encoder's.

    Call args:
        inputs: dict of token_ids, segment_ids int `[batch, seq_len]` and
            padding_mask bool `[batch, seq_len]` (`electra_tf.schema` names).

    Returns:
        dict of `START_LOGITS` and `END_LOGITS`, float32 `[batch, seq_len]`
        (`MASKED_LOGIT` on padding).

    Training (with per-replica XLA and gradient accumulation, `ElectraTaskModel`):
    `model.compile(optimizer, loss=SpanLoss())` then `model.fit` on
    `SquadFeatures.to_dataset()` (inputs, {start_positions, end_positions}). Keras
    pairs each output with the label of the same name; the span loss needs both
    outputs and both labels at once, so `compute_loss` hands them to a `SpanLoss`
    whole (any other loss goes through Keras's usual path).
    """

    def __init__(self, encoder_config, initializer_range=None, **kwargs):
        super().__init__(encoder_config, **kwargs)
        self.initializer_range = initializer_range

        # === Layers ===
        # float32 logits under mixed precision: the softmax cross-entropy needs them.
        self.qa_outputs = keras.layers.Dense(
            2,
            kernel_initializer=truncated_normal(
                self.encoder.initializer_range if initializer_range is None
                else initializer_range),
            dtype="float32",
            name="qa_outputs",
        )

    def build(self, inputs_shape):
        # Explicit, so that a rebuilt model names its variables as the original did.
        self.encoder.build(inputs_shape)
        self.qa_outputs.build(self.encoder.compute_output_shape(inputs_shape))

    def call(self, inputs, training=None):
        logits = self.qa_outputs(self.encoder(inputs, training=training))
        is_real = ops.cast(inputs[schema.PADDING_MASK], "bool")
        start_logits, end_logits = ops.unstack(logits, 2, axis=-1)
        return {
            START_LOGITS: ops.where(is_real, start_logits, MASKED_LOGIT),
            END_LOGITS: ops.where(is_real, end_logits, MASKED_LOGIT),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(self.loss, SpanLoss):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        total = self.loss(y, y_pred, sample_weight)
        for loss in self.losses:  # regularizers, add_loss
            total = total + self._aggregate_additional_loss(loss)
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"initializer_range": self.initializer_range})
        return config


def null_scores(outputs):
    """SQuAD v2.0 null ("no answer") score of each window: start + end logit at [CLS].

    Args:
        outputs: the model's dict, `START_LOGITS`/`END_LOGITS` `[batch, seq_len]`.

    Returns:
        float32 `[batch]`.
    """
    return outputs[START_LOGITS][:, 0] + outputs[END_LOGITS][:, 0]
