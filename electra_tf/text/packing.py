"""Turning tokenized text into fixed-length model inputs, with TensorFlow core ops only
(so the same code runs in tf.data and in graphs exported for TensorFlow Serving, whose
embedded tensorflow-text lacks newer ops such as `RoundRobinTrim`).

    pack_single: `[CLS] a [SEP]`
    pack_pair:   `[CLS] a [SEP] b [SEP]`, segment ids 0 up to the first [SEP], 1 after

Pairs are truncated longest-first, as BERT's `_truncate_seq_pair`: one WordPiece at a
time comes off the end of the longer text (of the second on a tie) until the pair fits.
"""

import tensorflow as tf

from electra_tf import schema


def longest_first_lengths(length_a, length_b, budget):
    """How many tokens of each text `_truncate_seq_pair` keeps, in closed form.

    The shorter text keeps everything if that leaves it at most half the budget;
    otherwise both are cut to half, the first text getting the odd token.

    Args:
      length_a, length_b: int `[batch]`, the texts' lengths.
      budget: int, tokens available for both texts together.

    Returns:
      (keep_a, keep_b), int `[batch]` each, with `keep_a + keep_b <= budget`.
    """
    keep_a = tf.minimum(length_a, tf.maximum((budget + 1) // 2, budget - length_b))
    keep_b = tf.minimum(length_b, budget - keep_a)
    return keep_a, keep_b


def _head(token_ids, lengths, keep):
    """The first `keep[i]` of the `lengths[i]` tokens of row i (ragged `[batch, None]`)."""
    positions = tf.ragged.range(lengths)
    return tf.ragged.boolean_mask(token_ids, positions < keep[:, None])


def _pack(texts, max_seq_length, cls_id, sep_id, pad_id):
    """Packs one or two ragged id tensors; see pack_single and pack_pair."""
    min_length = 1 + len(texts)
    if max_seq_length < min_length:
        raise ValueError(
            f"max_seq_length must be at least {min_length} for {len(texts)} text(s) "
            f"([CLS] and one [SEP] each), got {max_seq_length}"
        )
    texts = [tf.cast(t, tf.int32) for t in texts]
    budget = max_seq_length - min_length
    lengths = [tf.cast(t.row_lengths(), tf.int32) for t in texts]
    if len(texts) == 1:
        keeps = [tf.minimum(lengths[0], budget)]
    else:
        keeps = list(longest_first_lengths(*lengths, budget))
    kept = [_head(*args) for args in zip(texts, lengths, keeps)]

    # Dense columns for the special tokens: also right for empty texts.
    column = tf.ones([texts[0].nrows(), 1], tf.int32)
    pieces = [column * cls_id]
    segments = [column * 0]
    for segment_id, ids in enumerate(kept):
        pieces += [ids, column * sep_id]
        # The segment's [SEP] belongs to it; [CLS] to segment 0.
        segments += [tf.ones_like(ids) * segment_id, column * segment_id]
    packed = tf.concat(pieces, axis=1)
    shape = [None, max_seq_length]
    return {
        schema.TOKEN_IDS: packed.to_tensor(default_value=pad_id, shape=shape),
        schema.SEGMENT_IDS: tf.concat(segments, axis=1).to_tensor(0, shape=shape),
        schema.PADDING_MASK: tf.sequence_mask(packed.row_lengths(), max_seq_length),
        "num_tokens": tf.stack(keeps, axis=1),
    }


def pack_single(token_ids, max_seq_length, cls_id, sep_id, pad_id):
    """`[CLS] tokens [SEP]`, truncated to max_seq_length and padded.

    Args:
      token_ids: int `tf.RaggedTensor` `[batch, None]` (WordPiece ids, no specials).
      max_seq_length: L, at least 2.

    Returns:
      dict with token_ids int32 `[batch, L]`, segment_ids int32 `[batch, L]` (zeros),
      padding_mask bool `[batch, L]`, and "num_tokens" int32 `[batch]`: how many
      WordPieces of the text were kept (the rest were cut off).
    """
    packed = _pack([token_ids], max_seq_length, cls_id, sep_id, pad_id)
    packed["num_tokens"] = packed["num_tokens"][:, 0]
    return packed


def pack_pair(token_ids_a, token_ids_b, max_seq_length, cls_id, sep_id, pad_id):
    """`[CLS] a [SEP] b [SEP]`, truncated longest-first to max_seq_length and padded.

    Args:
      token_ids_a, token_ids_b: int `tf.RaggedTensor` `[batch, None]` each (WordPiece
        ids, no specials), the same batch size.
      max_seq_length: L, at least 3.

    Returns:
      dict with token_ids int32 `[batch, L]`, segment_ids int32 `[batch, L]` (0 for
      `[CLS] a [SEP]`, 1 for `b [SEP]`, 0 on padding), padding_mask bool `[batch, L]`,
      and "num_tokens" int32 `[batch, 2]`: how many WordPieces of a and of b were kept.
    """
    return _pack([token_ids_a, token_ids_b], max_seq_length, cls_id, sep_id, pad_id)
