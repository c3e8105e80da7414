"""The serving signatures: raw text in (tokenized inside the graph) or token ids in.

Names of signatures, inputs and outputs (`names.py`) are a public, stable API.
Text inputs are string tensors `[batch]`; id inputs are int32 `[batch, seq]`, with
`padding_mask` 1 on real tokens (Hugging Face's `attention_mask`). Text is packed as
`[CLS] text [SEP]` (or `[CLS] text [SEP] text_pair [SEP]`), truncated to
max_seq_length, and padded only to the longest sequence of the request: `seq` is that
length, so short requests are not charged for max_seq_length positions.

Outputs that do not depend on the encoder's values at padded positions (the text
signature's scores, which are 0 there, and a classifier's [CLS] logits) run the encoder
on the real tokens only (`RealTokenRows`): in a batch of mixed-length texts most rows
of `[batch, seq]` can be padding, and every Dense, GELU and LayerNorm skips them; only
attention sees `[batch, seq]`. Outputs holding padded positions (sequence_output,
replaced_token_scores_ids' logits) run the encoder as Keras does.
"""

import tensorflow as tf

from electra_tf import schema
from electra_tf.models import encoder as encoder_lib
from electra_tf.export.names import (
    CLS_OUTPUT, ENCODER_FEATURES, ENCODER_FEATURES_IDS, LABEL, LOGITS, NUM_TOKENS, PREDICT_IDS,
    PROBABILITIES, REPLACED_TOKEN_SCORES, REPLACED_TOKEN_SCORES_IDS, SCORE, SCORES,
    SEQUENCE_OUTPUT, SERVING_DEFAULT, TEXT, TEXT_PAIR, TOKENS, TRUNCATED)
from electra_tf.text import packing

ID_INPUTS = (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)


def text_spec(name=TEXT):
    return tf.TensorSpec([None], tf.string, name=name)


def id_specs():
    return [tf.TensorSpec([None, None], tf.int32, name=name) for name in ID_INPUTS]


def id_features(token_ids, segment_ids, padding_mask):
    """Id-signature inputs to the model's features (padding_mask as bool)."""
    return {
        schema.TOKEN_IDS: token_ids,
        schema.SEGMENT_IDS: segment_ids,
        schema.PADDING_MASK: tf.cast(padding_mask, tf.bool),
    }


def id_inputs(features):
    """Model features to id-signature inputs (all int32): the inverse of id_features."""
    return {name: tf.cast(features[name], tf.int32) for name in ID_INPUTS}


def real_token_rows(encoder, features):
    """The encoder's output at the real tokens: (rows `[N, hidden]`, RealTokenRows)."""
    layout = encoder_lib.RealTokenRows(features[schema.PADDING_MASK])
    return encoder.call_rows(features, layout, training=False), layout


class TextPacker:
    """Raw text to model features, in the graph, with core ops and tf-text 2.12 ops only.

    Args:
      tokenizer: the model's `WordPieceTokenizer`.
      max_seq_length: L, including [CLS] and [SEP]s.
    """

    def __init__(self, tokenizer, max_seq_length):
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length

    def __call__(self, text, text_pair=None):
        """Packs a batch.

        Args:
          text: string `[batch]`.
          text_pair: optional string `[batch]`, the second segment.

        Returns:
          (features, info): features holds token_ids, segment_ids int32 and
          padding_mask bool `[batch, seq]` with seq <= L the longest packed length;
          info holds num_tokens int32 `[batch]` (WordPieces kept, both texts) and
          truncated bool `[batch]` (some were cut off).
        """
        tok = self.tokenizer
        ids = tok.tokenize(text)
        total = ids.row_lengths()
        specials = (tok.cls_id, tok.sep_id, tok.pad_id)
        if text_pair is None:
            packed = packing.pack_single(ids, self.max_seq_length, *specials)
            kept = packed.pop("num_tokens")
        else:
            ids_b = tok.tokenize(text_pair)
            total += ids_b.row_lengths()
            packed = packing.pack_pair(ids, ids_b, self.max_seq_length, *specials)
            kept = tf.reduce_sum(packed.pop("num_tokens"), axis=1)
        lengths = tf.reduce_sum(tf.cast(packed[schema.PADDING_MASK], tf.int32), axis=1)
        # tf.maximum: reduce_max of an empty batch is the lowest int32.
        width = tf.maximum(tf.reduce_max(lengths), 2)
        features = {key: value[:, :width] for key, value in packed.items()}
        info = {
            NUM_TOKENS: kept,
            TRUNCATED: tf.cast(total, tf.int32) > kept,
        }
        return features, info


def _mask_int(features):
    return tf.cast(features[schema.PADDING_MASK], tf.int32)


def encoder_endpoints(encoder, packer):
    """`encoder_features` (text) and `encoder_features_ids`, for users' own heads.

    Outputs: sequence_output float32 `[batch, seq, hidden]`, cls_output float32
    `[batch, hidden]` (the [CLS] position's vector); the text variant also returns
    token_ids and padding_mask int32 `[batch, seq]`.
    """

    def features_out(features):
        sequence = tf.cast(encoder(features, training=False), tf.float32)
        return {SEQUENCE_OUTPUT: sequence, CLS_OUTPUT: sequence[:, 0, :]}

    def encoder_features(text):
        features, _ = packer(text)
        return {
            **features_out(features),
            schema.TOKEN_IDS: features[schema.TOKEN_IDS],
            schema.PADDING_MASK: _mask_int(features),
        }

    def encoder_features_ids(token_ids, segment_ids, padding_mask):
        return features_out(id_features(token_ids, segment_ids, padding_mask))

    return {
        ENCODER_FEATURES: (encoder_features, [text_spec()]),
        ENCODER_FEATURES_IDS: (encoder_features_ids, id_specs()),
    }


def discriminator_endpoints(discriminator, packer):
    """Replaced-token detection signatures, plus the encoder's.

    `replaced_token_scores` (text) returns tokens string `[batch, seq]` ([CLS], the
    WordPieces, [SEP], then "[PAD]"), scores float32 `[batch, seq]` (probability each
    token was replaced; 0 on padding), token_ids and padding_mask int32 `[batch, seq]`,
    num_tokens int32 `[batch]` and truncated bool `[batch]`. `replaced_token_scores_ids`
    returns scores and logits float32 `[batch, seq]`.
    """

    def score(features, logits):
        logits = tf.cast(logits, tf.float32)
        scores = tf.where(features[schema.PADDING_MASK], tf.sigmoid(logits), 0.0)
        return logits, scores

    def replaced_token_scores(text):
        features, info = packer(text)
        rows, layout = real_token_rows(discriminator.encoder, features)
        # [N] -> [batch, seq]; padded positions get logit 0, masked to score 0.
        logits = layout.from_rows(discriminator.rtd_head(rows)[:, None])[:, :, 0]
        _, scores = score(features, logits)
        return {
            TOKENS: packer.tokenizer.id_to_token(features[schema.TOKEN_IDS]),
            SCORES: scores,
            schema.TOKEN_IDS: features[schema.TOKEN_IDS],
            schema.PADDING_MASK: _mask_int(features),
            **info,
        }

    def replaced_token_scores_ids(token_ids, segment_ids, padding_mask):
        features = id_features(token_ids, segment_ids, padding_mask)
        logits, scores = score(features, discriminator(features, training=False))
        return {SCORES: scores, LOGITS: logits}

    return {
        REPLACED_TOKEN_SCORES: (replaced_token_scores, [text_spec()]),
        REPLACED_TOKEN_SCORES_IDS: (replaced_token_scores_ids, id_specs()),
        **encoder_endpoints(discriminator.encoder, packer),
    }


def resolve_label_names(num_labels, label_names=()):
    """A classifier's label names as strings: `label_names`, or "0", "1", ... when empty.

    Raises:
      ValueError: their number is not `num_labels`.
    """
    label_names = [str(n) for n in label_names] or [str(i) for i in range(num_labels)]
    if len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names for {num_labels} outputs: "
                         f"{label_names}")
    return label_names


def classifier_endpoints(classifier, packer, label_names=(), pair=False):
    """Fine-tuned classifier signatures, plus the encoder's.

    `serving_default` takes `text` (and `text_pair` for a pair task) and returns, for
    classification, probabilities float32 `[batch, num_labels]` and label string
    `[batch]` (the most probable of `label_names`), for regression score float32
    `[batch]`; and num_tokens int32 `[batch]` (WordPieces kept of both texts) and
    truncated bool `[batch]`. `predict_ids` returns logits float32 `[batch, num_labels]`.

    Args:
      classifier: an `ElectraClassifier` (logits `[batch, num_labels]`).
      packer: a `TextPacker` with the classifier's tokenizer and max_seq_length.
      label_names: class names in output order; "0", "1", ... when empty.
      pair: whether the task's inputs are text pairs.
    """
    regression = classifier.is_regression
    if not regression:
        label_names = resolve_label_names(classifier.num_labels, label_names)

    def logits_of(features):
        # The head reads the [CLS] position only: padded rows are not needed.
        rows, layout = real_token_rows(classifier.encoder, features)
        return tf.cast(classifier.head(layout.from_rows(rows), training=False), tf.float32)

    def answer(features, info):
        logits = logits_of(features)
        if regression:
            return {SCORE: logits[:, 0], **info}
        probabilities = tf.nn.softmax(logits, axis=-1)
        label = tf.gather(tf.constant(label_names), tf.argmax(probabilities, axis=-1))
        return {PROBABILITIES: probabilities, LABEL: label, **info}

    if pair:
        def serving_default(text, text_pair):
            return answer(*packer(text, text_pair))

        specs = [text_spec(TEXT), text_spec(TEXT_PAIR)]
    else:
        def serving_default(text):
            return answer(*packer(text))

        specs = [text_spec(TEXT)]

    def predict_ids(token_ids, segment_ids, padding_mask):
        return {LOGITS: logits_of(id_features(token_ids, segment_ids, padding_mask))}

    return {
        SERVING_DEFAULT: (serving_default, specs),
        PREDICT_IDS: (predict_ids, id_specs()),
        **encoder_endpoints(classifier.encoder, packer),
    }
