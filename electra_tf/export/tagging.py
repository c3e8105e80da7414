"""Serving signatures of a token tagger: raw text in, words, tags and entities out.

`serving_default(text)`, string `[batch]`, splits each text into words inside the graph
(at whitespace, with every punctuation or symbol character and every CJK ideograph a
word of its own, as BERT's basic tokenizer and CoNLL's tokenization do), tags each word by its first
WordPiece, as training did (`data/tagging.py`), and returns, padded to the request's
longest row:

  words           string `[batch, W]`  the words ("" as padding)
  tags            string `[batch, W]`  their tags ("" as padding; "O" for words past
                                       max_seq_length, which are not tagged)
  word_starts     int32 `[batch, W]`   each word's character span in the text,
  word_ends       int32 `[batch, W]`   text[start:end] (Python code points); -1 padding
  num_words       int32 `[batch]`
  entity_types    string `[batch, E]`  entities as conlleval and seqeval find them in
  entity_starts   int32 `[batch, E]`   IOB2 tags (an I- after O or after another type
  entity_ends     int32 `[batch, E]`   starts one), as character spans and texts
  entity_texts    string `[batch, E]`
  num_entities    int32 `[batch]`
  truncated       bool `[batch]`       some words did not fit in max_seq_length

`predict_ids(token_ids, segment_ids, padding_mask)` returns the raw logits float32
`[batch, seq, num_labels]`.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from electra_tf import schema
from electra_tf.export import names
from electra_tf.export.signatures import id_features, id_specs, text_spec

# Delimiters: whitespace (dropped); punctuation, symbols and CJK ideographs (each kept
# as a word of its own, as BERT's basic tokenizer splits them).
_KEPT = r"\p{P}|\p{S}|\p{Han}"
_DELIMITERS = r"\s+|" + _KEPT


def _char_offsets(text, byte_offsets):
    """Byte offsets into UTF-8 `text` `[batch]` -> code point offsets (same ragged shape)."""
    _, char_bytes = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace")
    starts = tf.cast(char_bytes, tf.int64).to_tensor(default_value=tf.int64.max)
    dense = byte_offsets.to_tensor(default_value=0)
    chars = tf.searchsorted(starts, dense, side="left")
    return tf.RaggedTensor.from_tensor(tf.cast(chars, tf.int32),
                                       lengths=byte_offsets.row_lengths())


def _prefix_and_type(tags):
    """"B-PER" -> ("B", "PER"); "O" -> ("O", "")."""
    return tf.strings.substr(tags, 0, 1), tf.strings.regex_replace(tags, r"^(O$|[BI]-)", "")


class TaggingServer:
    """The tagging signatures' graph functions (see the module docstring).

    Args:
      model: an `ElectraForTokenClassification`.
      tokenizer: its `WordPieceTokenizer`.
      max_seq_length: pieces per text, with [CLS] and [SEP] (fine-tuning's).
    """

    def __init__(self, model, tokenizer, max_seq_length):
        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.label_names = tf.constant(list(model.label_names))

    def words(self, text):
        """(words string, starts, ends int32), ragged `[batch, None]`, char offsets."""
        words, byte_starts, byte_ends = tf_text.regex_split_with_offsets(
            text, _DELIMITERS, _KEPT)
        return words, _char_offsets(text, byte_starts), _char_offsets(text, byte_ends)

    def _entities(self, text, tags, starts, ends):
        """Entity types, char starts/ends and texts, ragged `[batch, None]`."""
        prefix, kind = _prefix_and_type(tags)
        # The previous word's tag ("O" before the first) and the next one's ("O" after
        # the last), as conlleval's chunk boundaries compare neighbours.
        o_column = tf.fill([tags.nrows(), 1], "O")
        empty_column = tf.fill([tags.nrows(), 1], "")
        prev_prefix = tf.concat([o_column, prefix], axis=1)[:, :-1]
        prev_kind = tf.concat([empty_column, kind], axis=1)[:, :-1]
        next_prefix = tf.concat([prefix, o_column], axis=1)[:, 1:]
        next_kind = tf.concat([kind, empty_column], axis=1)[:, 1:]
        inside = tf.not_equal(prefix, "O")
        # IOB2 (B/I/O) forms of `metrics._start_of_chunk` / `_end_of_chunk`.
        begins = tf.equal(prefix, "B") | (inside & (tf.equal(prev_prefix, "O")
                                                    | tf.not_equal(prev_kind, kind)))
        closes = inside & (tf.equal(next_prefix, "B") | tf.equal(next_prefix, "O")
                           | tf.not_equal(next_kind, kind))
        entity_types = tf.ragged.boolean_mask(kind, begins)
        entity_starts = tf.ragged.boolean_mask(starts, begins)
        entity_ends = tf.ragged.boolean_mask(ends, closes)
        rows = entity_starts.value_rowids()
        texts = tf.strings.substr(
            tf.gather(text, rows), entity_starts.flat_values,
            entity_ends.flat_values - entity_starts.flat_values, unit="UTF8_CHAR")
        return entity_types, entity_starts, entity_ends, entity_starts.with_flat_values(texts)

    def tag(self, text):
        """The serving_default outputs for string `[batch]` texts."""
        tok = self.tokenizer
        words, word_starts, word_ends = self.words(text)
        pieces = tf.cast(tok.tokenize(words.flat_values), tf.int32)  # [num_words, None]
        # A word of deleted characters only is one [UNK], as in training.
        counts = tf.cast(pieces.row_lengths(), tf.int32)
        with_unk = tf.concat([pieces, tf.fill([tf.shape(counts)[0], 1], tok.unk_id)], axis=1)
        pieces = tf.ragged.boolean_mask(
            with_unk, tf.ragged.range(counts + 1) < tf.maximum(counts, 1)[:, None])
        counts = tf.maximum(counts, 1)
        per_word = words.with_flat_values(counts)  # [batch, W]
        ends_at = tf.math.cumsum(per_word, axis=1)  # pieces through each word
        fits = ends_at <= self.max_seq_length - 2  # [CLS] ... [SEP]
        first_piece = ends_at - per_word + 1  # position after [CLS]
        kept = tf.ragged.boolean_mask(
            tf.RaggedTensor.from_nested_row_lengths(pieces.flat_values,
                                                    [words.row_lengths(), pieces.row_lengths()]),
            fits).merge_dims(1, 2)
        column = tf.ones([words.nrows(), 1], tf.int32)
        sequence = tf.concat([column * tok.cls_id, kept, column * tok.sep_id], axis=1)
        token_ids = sequence.to_tensor(default_value=tok.pad_id)
        lengths = tf.cast(sequence.row_lengths(), tf.int32)
        positions = tf.range(tf.shape(token_ids)[1])[None, :]
        features = {schema.TOKEN_IDS: token_ids,
                    schema.SEGMENT_IDS: tf.zeros_like(token_ids),
                    schema.PADDING_MASK: positions < lengths[:, None]}
        logits = self.model(features, training=False)
        best = tf.cast(tf.argmax(logits, axis=-1), tf.int32)  # [batch, seq]
        at_first = tf.gather(best, tf.where(fits, first_piece, 0), batch_dims=1)
        tags = tf.where(fits, tf.gather(self.label_names, at_first), "O")
        entity_types, entity_starts, entity_ends, entity_texts = self._entities(
            text, tags, word_starts, word_ends)
        return {
            names.WORDS: words.to_tensor(default_value=""),
            names.TAGS: tags.to_tensor(default_value=""),
            names.WORD_STARTS: word_starts.to_tensor(default_value=-1),
            names.WORD_ENDS: word_ends.to_tensor(default_value=-1),
            names.NUM_WORDS: tf.cast(words.row_lengths(), tf.int32),
            names.ENTITY_TYPES: entity_types.to_tensor(default_value=""),
            names.ENTITY_STARTS: entity_starts.to_tensor(default_value=-1),
            names.ENTITY_ENDS: entity_ends.to_tensor(default_value=-1),
            names.ENTITY_TEXTS: entity_texts.to_tensor(default_value=""),
            names.NUM_ENTITIES: tf.cast(entity_types.row_lengths(), tf.int32),
            names.TRUNCATED: tf.reduce_any(~fits, axis=1),
        }

    def endpoints(self):
        """{signature name: (function, input specs)} for `exporter.write_export`."""

        def serving_default(text):
            return self.tag(text)

        def predict_ids(token_ids, segment_ids, padding_mask):
            logits = self.model(id_features(token_ids, segment_ids, padding_mask),
                                training=False)
            return {names.LOGITS: tf.cast(logits, tf.float32)}

        return {
            names.SERVING_DEFAULT: (serving_default, [text_spec(names.TEXT)]),
            names.PREDICT_IDS: (predict_ids, id_specs()),
        }
