"""Extractive question answering data: the SQuAD JSON layout -> windowed features.

Reader. `read_squad` reads the official SQuAD files, v1.1 and v2.0 (unanswerable
questions: `is_impossible`, with `plausible_answers`); any file in that layout is also
how users bring their own QA data:

  {"version": ..., "data": [{"title": ..., "paragraphs": [
      {"context": ..., "qas": [{"id": ..., "question": ...,
                                "answers": [{"text": ..., "answer_start": <char>}],
                                "is_impossible": false}]}]}]}

Offsets are in characters (Python code points) of `context`. A structurally malformed
entry (a missing or mistyped field, an offset outside the context, an answerable
question without answers, a repeated id) raises `SquadFormatError` naming the file and
the question id.

Features, as BERT and ELECTRA build them: `[CLS] question [SEP] context [SEP]`, the
question cut to `max_query_length` WordPieces, a context longer than the rest of
`max_seq_length` cut into windows that start every `doc_stride` WordPieces (the last
window ends at the context's end). Every context WordPiece keeps the character span
of the original context it came from (`WordPieceTokenizer.tokenize_with_offsets`), so a
predicted token span maps back to exact original text, accents, CJK and punctuation
included.

Labels are the first answer's WordPiece span (BERT's and Hugging Face's choice). An
answer is *aligned* when its character span, less uncovered characters at its ends
(whitespace, deleted control characters), starts at the first character of a WordPiece
and ends at the last character of one; otherwise it is unalignable (its offsets do not
match its text, it cuts a WordPiece such as "1990" in "1990s", or it covers no
WordPiece), never labelled with a neighbouring span. In training, examples whose
answer is unalignable are skipped and counted by reason (`SquadFeatures.skipped`);
windows that do not contain the answer point at [CLS] (position 0), or are dropped
with `drop_windows_without_answer` (BERT's v1.1 training). In evaluation every window
of every example is kept, so every question gets a prediction.
"""

import collections
import dataclasses
import json

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import schema

# Reasons an answer is not aligned to WordPieces (keys of `SquadFeatures.skipped`).
OFFSET_MISMATCH = "offset_mismatch"  # context[start:start + len(text)] != text
PARTIAL_WORDPIECE = "partial_wordpiece"  # a boundary falls inside a WordPiece
NO_WORDPIECE = "no_wordpiece"  # the span covers no WordPiece (whitespace, deleted chars)


class SquadFormatError(ValueError):
    """A SQuAD file is missing or malformed; the message names the file and question id."""


@dataclasses.dataclass(frozen=True)
class SquadAnswer:
    """An answer: `context[start:start + len(text)]` should be `text`."""

    text: str
    start: int

    @property
    def end(self):
        return self.start + len(self.text)


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question on one context.

    Attributes:
      id: the question id (the key of predictions.json).
      question: the question text.
      context: the paragraph the answer is taken from.
      answers: gold answers (v1.1 dev has up to 3 or more per question; empty when
        `is_impossible`).
      is_impossible: v2.0: the context does not answer the question.
      plausible_answers: v2.0: wrong answers annotators marked for impossible questions
        (not used for training or scoring; kept for analysis).
      title: the article's title.
      article_index: position of the article in the file (for splits by article).
    """

    id: str
    question: str
    context: str
    answers: tuple = ()
    is_impossible: bool = False
    plausible_answers: tuple = ()
    title: str = ""
    article_index: int = 0


def _check(condition, path, qid, message):
    if not condition:
        raise SquadFormatError(f"{path}: question {qid}: {message}")


def _read_answers(path, qid, entries, context, field):
    _check(isinstance(entries, list), path, qid, f"'{field}' must be a list")
    answers = []
    for k, entry in enumerate(entries):
        where = f"{field}[{k}]"
        _check(isinstance(entry, dict), path, qid, f"{where} must be an object")
        text, start = entry.get("text"), entry.get("answer_start")
        _check(isinstance(text, str) and text, path, qid,
               f"{where} needs a non-empty string 'text', got {text!r}")
        # bool is an int in Python; an offset of True is a mistake.
        _check(isinstance(start, int) and not isinstance(start, bool), path, qid,
               f"{where} needs an integer 'answer_start', got {start!r}")
        _check(0 <= start and start + len(text) <= len(context), path, qid,
               f"{where} [{start}, {start + len(text)}) lies outside the context "
               f"({len(context)} characters)")
        answers.append(SquadAnswer(text=text, start=start))
    return tuple(answers)


def read_squad(path):
    """Reads a SQuAD v1.1 or v2.0 JSON file (local path or any tf.io.gfile URL).

    Returns:
      A list of `SquadExample`, in file order.

    Raises:
      SquadFormatError: the file is missing, is not JSON in the SQuAD layout, or an
        entry is malformed (the message names the question id).
    """
    if not tf.io.gfile.exists(path):
        raise SquadFormatError(f"SQuAD file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SquadFormatError(f"{path}: not UTF-8 JSON: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadFormatError(f"{path}: expected an object with a 'data' list of articles")
    examples, seen = [], set()
    for a, article in enumerate(document["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise SquadFormatError(f"{path}: article {a} has no 'paragraphs' list")
        title = article.get("title", "")
        for p, paragraph in enumerate(paragraphs):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not isinstance(qas, list):
                raise SquadFormatError(
                    f"{path}: article {a} paragraph {p} needs a string 'context' and a "
                    f"'qas' list")
            for q, qa in enumerate(qas):
                qid = qa.get("id") if isinstance(qa, dict) else None
                _check(isinstance(qid, str) and qid, path,
                       f"#{q} of article {a} paragraph {p}", "needs a string 'id'")
                _check(qid not in seen, path, qid, "the id appears twice")
                seen.add(qid)
                question = qa.get("question")
                _check(isinstance(question, str) and question.strip(), path, qid,
                       f"needs a non-empty string 'question', got {question!r}")
                is_impossible = qa.get("is_impossible", False)
                _check(isinstance(is_impossible, bool), path, qid,
                       f"'is_impossible' must be true or false, got {is_impossible!r}")
                answers = _read_answers(path, qid, qa.get("answers", []), context, "answers")
                plausible = _read_answers(
                    path, qid, qa.get("plausible_answers", []), context, "plausible_answers")
                if is_impossible:
                    _check(not answers, path, qid, "is impossible but has answers")
                else:
                    _check(answers, path, qid, "has no answers and is not marked "
                           "'is_impossible'")
                examples.append(SquadExample(
                    id=qid, question=question, context=context, answers=answers,
                    is_impossible=is_impossible, plausible_answers=plausible,
                    title=title, article_index=a))
    logging.info("%s: %d questions in %d articles (%d impossible)", path, len(examples),
                 len(document["data"]), sum(e.is_impossible for e in examples))
    return examples


def split_by_article(examples, eval_fraction=0.25):
    """Splits examples into (train, eval) by whole articles (the last ones go to eval).

    Questions on one article share its vocabulary and often its answers, so a split by
    question would leak; by article it does not.
    """
    articles = sorted({e.article_index for e in examples})
    num_eval = max(1, int(round(len(articles) * eval_fraction)))
    if num_eval >= len(articles):
        raise ValueError(f"{len(articles)} article(s) cannot be split with "
                         f"eval_fraction={eval_fraction}")
    eval_articles = set(articles[-num_eval:])
    train = [e for e in examples if e.article_index not in eval_articles]
    held_out = [e for e in examples if e.article_index in eval_articles]
    return train, held_out


# === Alignment ===


def align_answer(context, token_starts, token_ends, answer):
    """An answer's WordPiece span in a tokenized context, or why there is none.

    Args:
      context: the original context string.
      token_starts, token_ends: int `[num_tokens]`, each context WordPiece's
        character span (`tokenize_with_offsets`), in order.
      answer: a `SquadAnswer`.

    Returns:
      ((first, last), None) with inclusive WordPiece indices, where
      `context[token_starts[first]:token_ends[last]]` is the answer less uncovered
      characters at its ends; or (None, reason) with a reason constant.
    """
    if context[answer.start:answer.end] != answer.text:
        return None, OFFSET_MISMATCH
    token_starts = np.asarray(token_starts)
    token_ends = np.asarray(token_ends)
    overlapping = np.flatnonzero((token_ends > answer.start) & (token_starts < answer.end))
    if overlapping.size == 0:
        return None, NO_WORDPIECE
    first, last = int(overlapping[0]), int(overlapping[-1])
    # Characters of the answer outside every WordPiece (spaces, deleted characters)
    # may be cut from its ends; a WordPiece reaching outside the answer may not.
    if token_starts[first] < answer.start or token_ends[last] > answer.end:
        return None, PARTIAL_WORDPIECE
    return (first, last), None


# === Features ===


@dataclasses.dataclass
class SquadFeatures:
    """Windows of examples: model inputs, labels and what post-processing needs.

    n windows of L = max_seq_length positions:

      token_ids        int32 [n, L]  `[CLS] question [SEP] context window [SEP]` + [PAD]
      segment_ids      int32 [n, L]  0 for `[CLS] question [SEP]`, 1 after
      padding_mask     bool  [n, L]  True on real tokens
      start_positions  int32 [n]     the answer's first token; 0 ([CLS]) when the
      end_positions    int32 [n]     window holds no answer; -1 for no label
                                     (evaluation features of unalignable answers)
      example_index    int32 [n]     index of the window's example in `examples`
      char_starts      int32 [n, L]  a context token's character span in its
      char_ends        int32 [n, L]  example's context; -1 on every other position
      max_context      bool  [n, L]  the token has more context on both sides in this
                                     window than in any other (BERT's
                                     `token_is_max_context`): answers start only there

    Attributes besides the arrays:
      examples: the examples the windows were made from (an example of which every
        window was dropped is still there, and has no window).
      skipped: Counter {reason: count} of training examples left out because their
        answer is unalignable.
      skipped_ids: their ids.
      dropped_windows: windows without the answer left out in training.
    """

    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    char_starts: np.ndarray
    char_ends: np.ndarray
    max_context: np.ndarray
    examples: list
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_ids: list = dataclasses.field(default_factory=list)
    dropped_windows: int = 0

    def __len__(self):
        return len(self.token_ids)

    @property
    def example_ids(self):
        """The question id of each window, `[n]` (object array of str)."""
        ids = np.array([e.id for e in self.examples], dtype=object)
        return ids[self.example_index]

    def inputs(self):
        """The model inputs: dict of `schema` names to `[n, L]` arrays."""
        return {
            schema.TOKEN_IDS: self.token_ids,
            schema.SEGMENT_IDS: self.segment_ids,
            schema.PADDING_MASK: self.padding_mask,
        }

    def labels(self):
        """dict of `schema.START_POSITIONS`/`END_POSITIONS` to `[n]` arrays."""
        return {schema.START_POSITIONS: self.start_positions,
                schema.END_POSITIONS: self.end_positions}

    def to_dataset(self, batch_size, with_labels=True, shuffle=False, seed=None):
        """A `tf.data.Dataset` of `inputs()` (and `labels()`) batches of `batch_size`.

        Shuffling (training) happens before batching, over all windows.
        """
        if with_labels and np.any(self.start_positions < 0):
            raise ValueError(
                f"{int(np.sum(self.start_positions < 0))} window(s) have no label "
                f"(unalignable answers in evaluation features); build training "
                f"features with training=True, or use with_labels=False")
        elements = (self.inputs(), self.labels()) if with_labels else self.inputs()
        dataset = tf.data.Dataset.from_tensor_slices(elements)
        if shuffle:
            dataset = dataset.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def query_length_for(max_seq_length, max_query_length):
    """The question WordPieces kept with windows of `max_seq_length`: `max_query_length`,
    less if that would leave no context position ([CLS] q [SEP] c [SEP], >= 1 c)."""
    return min(max_query_length, max_seq_length - 4)


def window_spans(num_tokens, window_length, doc_stride):
    """BERT's context windows: (start, length) pairs covering `num_tokens` tokens.

    Windows start every `doc_stride` tokens and the last one ends at the context's
    end; a window never starts past the previous window's end, so no token is left
    out. An empty context gets one empty window, so its question is still answered.
    """
    if window_length < 1 or doc_stride < 1:
        raise ValueError(f"window_length ({window_length}) and doc_stride ({doc_stride}) "
                         f"must be >= 1")
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, window_length)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def max_context_mask(spans, span_index):
    """bool `[length]`: which tokens of window `span_index` have their max context there.

    BERT's score: min(left context, right context) + 0.01 * window length; the first
    window with the best score wins.
    """
    start, length = spans[span_index]
    positions = np.arange(start, start + length)
    best_score = np.full(length, -np.inf)
    best_index = np.full(length, -1)
    for index, (other_start, other_length) in enumerate(spans):
        inside = (positions >= other_start) & (positions < other_start + other_length)
        score = np.minimum(positions - other_start, other_start + other_length - 1 - positions)
        score = score + 0.01 * other_length
        # Strictly better only: the first window wins ties.
        better = inside & (score > best_score)
        best_score = np.where(better, score, best_score)
        best_index = np.where(better, index, best_index)
    return best_index == span_index


def _tokenize_unique(tokenizer, texts, with_offsets, batch_size=256):
    """{text: ids} or {text: (ids, starts, ends)} as numpy, each distinct text once."""
    unique = list(dict.fromkeys(texts))
    result = {}
    for i in range(0, len(unique), batch_size):
        batch = unique[i:i + batch_size]
        if with_offsets:
            ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(batch))
            for text, a, b, c in zip(batch, ids.numpy(), starts.numpy(), ends.numpy()):
                result[text] = (a, b, c)
        else:
            for text, a in zip(batch, tokenizer.tokenize(tf.constant(batch)).numpy()):
                result[text] = a
    return result


def convert_to_features(
    examples,
    tokenizer,
    max_seq_length=384,
    max_query_length=64,
    doc_stride=128,
    training=False,
    drop_windows_without_answer=False,
):
    """Examples -> `SquadFeatures` (windows, labels and post-processing metadata).

    Args:
      examples: `SquadExample`s.
      tokenizer: a `WordPieceTokenizer` (the vocabulary and casing of the model).
      max_seq_length: L, tokens per window including [CLS] and two [SEP].
      max_query_length: questions are cut to this many WordPieces.
      doc_stride: context WordPieces between the starts of consecutive windows.
      training: skip examples whose answer is unalignable (counted in `skipped`),
        label every window. False (evaluation): keep every window of every example.
      drop_windows_without_answer: training only: leave out windows that do not
        contain the answer instead of pointing them at [CLS] (BERT's v1.1 training;
        v2.0 needs them, and impossible questions always keep theirs).

    Returns:
      `SquadFeatures`.
    """
    if max_seq_length < max_query_length + 4:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for context "
                         f"after a question of max_query_length={max_query_length} "
                         f"WordPieces and [CLS] [SEP] [SEP]")
    if drop_windows_without_answer and not training:
        raise ValueError("drop_windows_without_answer is for training features; "
                         "evaluation needs every window")
    questions = _tokenize_unique(tokenizer, [e.question for e in examples], False)
    contexts = _tokenize_unique(tokenizer, [e.context for e in examples], True)

    rows = collections.defaultdict(list)
    skipped, skipped_ids, dropped = collections.Counter(), [], 0
    for index, example in enumerate(examples):
        query = questions[example.question][:max_query_length]
        context_ids, starts, ends = contexts[example.context]
        span = None
        if not example.is_impossible:
            span, reason = align_answer(example.context, starts, ends, example.answers[0])
            if span is None:
                if training:
                    skipped[reason] += 1
                    skipped_ids.append(example.id)
                    continue
                logging.debug("%s: answer unalignable (%s)", example.id, reason)

        offset = len(query) + 2  # [CLS] question [SEP]
        spans = window_spans(len(context_ids), max_seq_length - offset - 1, doc_stride)
        for span_index, (start, length) in enumerate(spans):
            if example.is_impossible:
                label = (0, 0)
            elif span is None:
                label = (-1, -1)
            elif start <= span[0] and span[1] < start + length:
                label = (span[0] - start + offset, span[1] - start + offset)
            elif drop_windows_without_answer:
                dropped += 1
                continue
            else:
                label = (0, 0)
            token_ids = np.zeros(max_seq_length, np.int32)
            segment_ids = np.zeros(max_seq_length, np.int32)
            char_starts = np.full(max_seq_length, -1, np.int32)
            char_ends = np.full(max_seq_length, -1, np.int32)
            max_context = np.zeros(max_seq_length, bool)
            window = slice(offset, offset + length)
            sequence = ([tokenizer.cls_id] + list(query) + [tokenizer.sep_id]
                        + list(context_ids[start:start + length]) + [tokenizer.sep_id])
            token_ids[:len(sequence)] = sequence
            segment_ids[offset:len(sequence)] = 1
            char_starts[window] = starts[start:start + length]
            char_ends[window] = ends[start:start + length]
            max_context[window] = max_context_mask(spans, span_index)
            rows[schema.TOKEN_IDS].append(token_ids)
            rows[schema.SEGMENT_IDS].append(segment_ids)
            rows[schema.PADDING_MASK].append(np.arange(max_seq_length) < len(sequence))
            rows[schema.START_POSITIONS].append(label[0])
            rows[schema.END_POSITIONS].append(label[1])
            rows["example_index"].append(index)
            rows["char_starts"].append(char_starts)
            rows["char_ends"].append(char_ends)
            rows["max_context"].append(max_context)

    def stacked(name, dtype, shape):
        return np.array(rows[name], dtype).reshape(shape)

    matrix = (-1, max_seq_length)
    features = SquadFeatures(
        token_ids=stacked(schema.TOKEN_IDS, np.int32, matrix),
        segment_ids=stacked(schema.SEGMENT_IDS, np.int32, matrix),
        padding_mask=stacked(schema.PADDING_MASK, bool, matrix),
        start_positions=stacked(schema.START_POSITIONS, np.int32, (-1,)),
        end_positions=stacked(schema.END_POSITIONS, np.int32, (-1,)),
        example_index=stacked("example_index", np.int32, (-1,)),
        char_starts=stacked("char_starts", np.int32, matrix),
        char_ends=stacked("char_ends", np.int32, matrix),
        max_context=stacked("max_context", bool, matrix),
        examples=list(examples),
        skipped=skipped,
        skipped_ids=skipped_ids,
        dropped_windows=dropped,
    )
    logging.info(
        "SQuAD features: %d examples -> %d windows (max_seq_length %d, doc_stride %d); "
        "skipped %d unalignable answer(s) %s; dropped %d window(s) without the answer",
        len(examples), len(features), max_seq_length, doc_stride, sum(skipped.values()),
        dict(skipped), dropped)
    return features


def window_answer_text(features, window, start, end):
    """The original context text of tokens `start..end` (inclusive) of a window.

    Returns None when either token is not a context token of the window.
    """
    char_start = features.char_starts[window, start]
    char_end = features.char_ends[window, end]
    if char_start < 0 or char_end < 0 or end < start:
        return None
    context = features.examples[features.example_index[window]].context
    return context[char_start:char_end]
