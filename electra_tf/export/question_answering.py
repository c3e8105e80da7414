"""Serving signatures of an extractive QA model: question and context strings in, the
answer out, with windowing and span search inside the graph.

`serving_default(question, context)`, string `[batch]` each, returns

  answer      string `[batch]`  the answer's original text in the context ("" for none)
  start_char  int32 `[batch]`   its character span: context[start_char:end_char]
  end_char    int32 `[batch]`   (Python code points); -1 for no answer
  score       float32 `[batch]` start logit + end logit of the answer (the null score
                                 when a v2.0 model answers nothing)
  has_answer  bool `[batch]`    (SQuAD v2.0 models only) the best span beats the null
                                 score by at least the model's threshold
  truncated   bool `[batch]`    the context needs more than `max_windows` windows; the
                                 rest of it was not searched

The graph does what training features and post-processing do offline
(`data/squad.py`, `data/squad_predictions.py`), so an export answers as
predictions.json does: the question cut to `max_query_length` WordPieces; the context
cut into windows of `max_seq_length - len(question) - 3` WordPieces starting every
`doc_stride` (a window never starts past the previous one's end; the last ends at the
context's end); each window's `n_best_size` best start tokens where the token has its
maximum context and `n_best_size` best end tokens, spans of at most
`max_answer_length` tokens scored start + end; the best span over all windows. v2.0:
the null score is the minimum over windows of start + end logit at [CLS].

Contexts longer than `max_windows` windows (with BERT-base settings, 8 windows cover
about 1,200 WordPieces, some 5,000 characters) are searched in their first
`max_windows` windows only, and `truncated` says so; split longer documents into
paragraphs, as SQuAD does.

`predict_ids(token_ids, segment_ids, padding_mask)` returns the raw `start_logits` and
`end_logits` float32 `[batch, seq]` of windows the caller packed.
"""

import tensorflow as tf

from electra_tf import schema
from electra_tf.data import squad
from electra_tf.export import names
from electra_tf.export.signatures import id_features, id_specs, text_spec

NEG_INF = -1e30  # below every real score, finite so sums stay comparable


class QuestionAnsweringServer:
    """The QA signatures' graph functions (see the module docstring).

    Args:
      model: an `ElectraForQuestionAnswering`.
      tokenizer: its `WordPieceTokenizer`.
      max_seq_length, max_query_length, doc_stride, max_answer_length, n_best_size,
      version_2, null_score_threshold: as fine-tuning used them (its FinetuneConfig).
      max_windows: windows searched per context.
    """

    def __init__(self, model, tokenizer, max_seq_length, max_query_length=64, doc_stride=128,
                 max_answer_length=30, n_best_size=20, version_2=False,
                 null_score_threshold=0.0, max_windows=8):
        if max_seq_length < 5:
            raise ValueError(f"max_seq_length={max_seq_length} leaves no room for a "
                             "question and context")
        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        # As fine-tuning cut it (a short max_seq_length keeps room for context).
        self.max_query_length = squad.query_length_for(max_seq_length, max_query_length)
        self.doc_stride = doc_stride
        self.max_answer_length = max_answer_length
        self.n_best_size = n_best_size
        self.version_2 = version_2
        self.null_score_threshold = null_score_threshold
        self.max_windows = max_windows

    # === Windows ===

    def _windows(self, query_lengths, context_lengths):
        """Every example's windows as `window_spans` makes them, up to max_windows.

        Returns:
          starts, lengths int32 `[batch, K]` and valid bool `[batch, K]`; truncated
          bool `[batch]`.
        """
        window_length = self.max_seq_length - query_lengths - 3  # [CLS] q [SEP] ... [SEP]
        # A full window advances by min(window, stride); the last one ends at the end.
        step = tf.minimum(window_length, self.doc_stride)
        k = tf.range(self.max_windows)[None, :]
        starts = k * step[:, None]
        # Window k exists if window k-1 did not reach the end (window 0 always).
        previous_end = (k - 1) * step[:, None] + window_length[:, None]
        valid = (k == 0) | (previous_end < context_lengths[:, None])
        lengths = tf.maximum(tf.minimum(context_lengths[:, None] - starts,
                                        window_length[:, None]), 0)
        last = (self.max_windows - 1) * step + window_length
        truncated = last < context_lengths
        return starts, tf.where(valid, lengths, 0), valid, truncated

    def _max_context(self, starts, lengths, valid, example, token):
        """int32 `[T]`: for each window token, the window k of its example where it
        has its maximum context, BERT's rule (`squad.max_context_mask`).

        Args:
          starts, lengths, valid: `[batch, K]` windows.
          example, token: int32 `[T]`, each window token's example and its index in
            that example's context.
        """
        s = tf.cast(tf.gather(starts, example), tf.float64)  # [T, K]
        n = tf.cast(tf.gather(lengths, example), tf.float64)
        p = tf.cast(token, tf.float64)[:, None]
        inside = tf.gather(valid, example) & (p >= s) & (p < s + n)
        score = tf.minimum(p - s, s + n - 1 - p) + 0.01 * n
        # Scores differ by multiples of 0.01: the tiny per-window penalty makes the
        # first of tied windows win, as BERT's strict comparison does.
        k = tf.cast(tf.range(self.max_windows), tf.float64)[None, :]
        score = tf.where(inside, score - 1e-5 * k, -1e9)
        return tf.cast(tf.argmax(score, axis=1), tf.int32)

    # === The graph ===

    def answer(self, question, context):
        """The serving_default outputs for string `[batch]` questions and contexts."""
        tok = self.tokenizer
        batch = tf.shape(question)[0]
        query = tok.tokenize(question)[:, :self.max_query_length]
        query = tf.cast(query, tf.int32)
        context_ids, char_starts, char_ends = tok.tokenize_with_offsets(context)
        context_ids = tf.cast(context_ids, tf.int32)
        query_lengths = tf.cast(query.row_lengths(), tf.int32)
        context_lengths = tf.cast(context_ids.row_lengths(), tf.int32)
        starts, lengths, valid, truncated = self._windows(query_lengths, context_lengths)

        # The valid windows, flattened: window w of example ex[w], number kw[w].
        where = tf.cast(tf.where(valid), tf.int32)  # [N, 2]
        ex, kw = where[:, 0], where[:, 1]
        w_start = tf.gather_nd(starts, where)
        w_length = tf.gather_nd(lengths, where)
        # Context token indices of each window, ragged [N, None].
        tokens = tf.ragged.range(w_start, w_start + w_length)
        row_offsets = tf.cast(context_ids.row_starts(), tf.int32)
        flat = tf.gather(row_offsets, ex)[:, None] + tokens
        window_ids = tf.gather(context_ids.flat_values, flat)
        window_query = tf.gather(query, ex)
        column = tf.ones([tf.shape(ex)[0], 1], tf.int32)
        sequence = tf.concat([column * tok.cls_id, window_query, column * tok.sep_id,
                              window_ids, column * tok.sep_id], axis=1)
        offset = tf.cast(window_query.row_lengths(), tf.int32) + 2  # [CLS] q [SEP]
        length = tf.cast(sequence.row_lengths(), tf.int32)
        token_ids = _dense(sequence, tok.pad_id, 1)
        width = tf.shape(token_ids)[1]
        positions = tf.range(width)[None, :]
        features = {
            schema.TOKEN_IDS: token_ids,
            schema.SEGMENT_IDS: tf.cast(positions >= offset[:, None], tf.int32)
            * tf.cast(positions < length[:, None], tf.int32),
            schema.PADDING_MASK: positions < length[:, None],
        }
        outputs = self.model(features, training=False)
        start_logits = tf.cast(outputs["start_logits"], tf.float32)
        end_logits = tf.cast(outputs["end_logits"], tf.float32)

        # Logits of each window's context tokens, ragged [N, None], and max context.
        in_sequence = offset[:, None] + tf.ragged.range(w_length)
        start_ctx = tf.gather(start_logits, in_sequence, batch_dims=1)
        end_ctx = tf.gather(end_logits, in_sequence, batch_dims=1)
        token_example = tf.gather(ex, tokens.value_rowids())
        best_window = self._max_context(starts, lengths, valid, token_example, tokens.flat_values)
        is_max = tokens.with_flat_values(
            best_window == tf.gather(kw, tokens.value_rowids()))

        # n-best starts (max-context tokens) and ends of each window.
        n_best = self.n_best_size
        masked_starts = _dense(tf.where(is_max, start_ctx, NEG_INF), NEG_INF, n_best)
        dense_ends = _dense(end_ctx, NEG_INF, n_best)
        top_start, start_index = tf.math.top_k(masked_starts, k=n_best)
        top_end, end_index = tf.math.top_k(dense_ends, k=n_best)
        span = end_index[:, None, :] - start_index[:, :, None] + 1  # [N, n, n]
        ok = ((span >= 1) & (span <= self.max_answer_length)
              & (top_start[:, :, None] > NEG_INF / 2) & (top_end[:, None, :] > NEG_INF / 2))
        pair_score = tf.where(ok, top_start[:, :, None] + top_end[:, None, :], NEG_INF)
        flat_score = tf.reshape(pair_score, [-1, n_best * n_best])
        best_pair = tf.cast(tf.argmax(flat_score, axis=1), tf.int32)
        window_score = tf.reduce_max(flat_score, axis=1)
        window_first = tf.gather(start_index, best_pair // n_best, batch_dims=1) + w_start
        window_last = tf.gather(end_index, best_pair % n_best, batch_dims=1) + w_start

        # The best window of each example ([batch, K], invalid windows at -inf).
        shape = [batch, self.max_windows]
        dense = tf.tensor_scatter_nd_update(tf.fill(shape, NEG_INF), where, window_score)
        best_k = tf.cast(tf.argmax(dense, axis=1), tf.int32)
        best_score = tf.reduce_max(dense, axis=1)
        chosen = tf.stack([tf.range(batch), best_k], axis=1)
        first = tf.gather_nd(tf.scatter_nd(where, window_first, shape), chosen)
        last = tf.gather_nd(tf.scatter_nd(where, window_last, shape), chosen)
        found = best_score > NEG_INF / 2

        # Character offsets of the answer's first and last WordPiece.
        safe_first = tf.where(found, first, 0)
        safe_last = tf.where(found, last, 0)
        has_tokens = context_lengths > 0
        start_char = _gather_rows(char_starts, safe_first, has_tokens)
        end_char = _gather_rows(char_ends, safe_last, has_tokens)

        has_answer = found
        score = best_score
        if self.version_2:
            null = start_logits[:, 0] + end_logits[:, 0]  # [N]
            null_score = tf.reduce_min(tf.tensor_scatter_nd_update(
                tf.fill(shape, -NEG_INF), where, null), axis=1)  # the minimum over windows
            has_answer = found & (null_score - best_score <= self.null_score_threshold)
            score = tf.where(has_answer, best_score, null_score)
        start_char = tf.where(has_answer, start_char, -1)
        end_char = tf.where(has_answer, end_char, -1)
        answer = tf.where(has_answer, tf.strings.substr(
            context, tf.maximum(start_char, 0), tf.maximum(end_char - start_char, 0),
            unit="UTF8_CHAR"), "")
        result = {names.ANSWER: answer, names.START_CHAR: start_char,
                  names.END_CHAR: end_char, names.SCORE: tf.where(found | self.version_2,
                                                                 score, 0.0),
                  names.TRUNCATED: truncated}
        if self.version_2:
            result[names.HAS_ANSWER] = has_answer
        return result

    def endpoints(self):
        """{signature name: (function, input specs)} for `exporter.write_export`."""

        def serving_default(question, context):
            return self.answer(question, context)

        def predict_ids(token_ids, segment_ids, padding_mask):
            outputs = self.model(id_features(token_ids, segment_ids, padding_mask),
                                 training=False)
            return {names.START_LOGITS: tf.cast(outputs["start_logits"], tf.float32),
                    names.END_LOGITS: tf.cast(outputs["end_logits"], tf.float32)}

        return {
            names.SERVING_DEFAULT: (serving_default,
                                    [text_spec(names.QUESTION), text_spec(names.CONTEXT)]),
            names.PREDICT_IDS: (predict_ids, id_specs()),
        }


def _dense(ragged, default, min_width):
    """A ragged `[n, None]` tensor as dense `[n, max(longest row, min_width)]`."""
    dense = ragged.to_tensor(default_value=default)
    extra = tf.maximum(min_width - tf.shape(dense)[1], 0)
    return tf.pad(dense, [[0, 0], [0, extra]], constant_values=default)


def _gather_rows(ragged, index, has_tokens):
    """ragged[i, index[i]] as int32 `[batch]` (0 where row i is empty)."""
    row_starts = tf.cast(ragged.row_starts(), tf.int32)
    flat = tf.cast(ragged.flat_values, tf.int32)
    safe = tf.where(has_tokens, row_starts + index, 0)
    return tf.where(has_tokens, tf.gather(tf.concat([flat, [0]], 0),
                                          tf.where(has_tokens, safe, tf.size(flat))), 0)
