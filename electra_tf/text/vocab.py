"""Learning a WordPiece vocabulary from raw text, and writing it.

Text is read as a stream through tf.data (plain or `.gz` files, one line at a time;
blank lines between documents simply contribute no words), normalized in-graph by
the tokenizer's own `normalize` and split into words the way BERT splits them
(whitespace, punctuation, CJK characters). Only the per-word counts are kept in
memory, so memory grows with the number of distinct words, not with the corpus.
tensorflow-text's WordPiece learner (`wordpiece_tokenizer_learner_lib`, the one
behind `bert_vocab_from_dataset` and keras-hub's `compute_word_piece_vocabulary`)
then picks the pieces.
"""

import collections
import math
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_text.python.ops import bert_tokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from electra_tf import files
from electra_tf.files import MAX_LINE_BYTES, check_text_files, expand_inputs, line_too_long
from electra_tf.text.tokenizer import SPECIAL_TOKENS, normalize

SUFFIX_INDICATOR = "##"
_LINES_PER_BATCH = 1024


def _read_lines(files):
    """`(file index, batch of raw lines [<= _LINES_PER_BATCH])` of `files`, gzip by
    extension. The files' batches interleave, each file's in its order."""
    compression = ["GZIP" if f.endswith(".gz") else "" for f in files]
    files_ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(compression, tf.string),
         tf.range(len(files), dtype=tf.int64)))
    return files_ds.interleave(
        lambda path, compression_type, index: tf.data.TextLineDataset(
            path, compression_type=compression_type, buffer_size=1 << 20)
        .batch(_LINES_PER_BATCH).map(lambda lines: (index, lines)),
        cycle_length=2, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)


def count_words(files, lowercase=True, max_line_bytes=MAX_LINE_BYTES):
    """Counts the words of `files` after the tokenizer's normalization.

    Args:
      files: a list of file globs or one comma-separated string of them.
      lowercase: normalize as an uncased tokenizer does.
      max_line_bytes: a longer line is refused before it is split into words.

    Returns:
      A `collections.Counter` {word (str): count}.

    Raises:
      FileNotFoundError listing every glob that matched no file.
      files.NotTextError: a file is binary, gzip without a .gz name, or not UTF-8.
      files.LineTooLongError: a line is longer than `max_line_bytes`.
    """
    paths = expand_inputs(files)
    check_text_files(paths)
    # Normalization already deleted control characters and folded case as needed;
    # the basic tokenizer is only asked to split.
    splitter = bert_tokenizer.BasicTokenizer(lower_case=False)

    def words_of(file_index, lines):
        lengths = tf.strings.length(lines)
        long_bytes = tf.where(lengths > max_line_bytes, lengths, 0)
        lines = tf.where(long_bytes > 0, "", lines)
        # `normalize` drops invalid UTF-8 as the tokenizer does; count it so that
        # is not silent.
        repaired = tf.strings.unicode_transcode(
            lines, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        num_invalid = tf.reduce_sum(tf.cast(repaired != lines, tf.int64))
        text = normalize(lines, lowercase)
        # The word splitter's \s only knows ASCII spaces; the tokenizer knows them all.
        text = tf.strings.regex_replace(text, r"\p{Z}", " ")
        unique = tf.unique_with_counts(splitter.tokenize(text).flat_values)
        return unique.y, unique.count, file_index, long_bytes, num_invalid

    counts = collections.Counter()
    num_invalid = 0
    file_lines = [0] * len(paths)
    start = time.time()
    batches = _read_lines(paths).map(words_of, num_parallel_calls=tf.data.AUTOTUNE)
    for words, word_counts, file_index, long_bytes, batch_invalid in batches.prefetch(
            tf.data.AUTOTUNE):
        file_index, long_bytes = int(file_index), long_bytes.numpy()
        if long_bytes.any():
            first = int(np.argmax(long_bytes > 0))
            raise line_too_long(paths[file_index], file_lines[file_index] + first + 1,
                                int(long_bytes[first]), max_line_bytes)
        file_lines[file_index] += long_bytes.size
        counts.update(dict(zip(words.numpy().tolist(), word_counts.numpy().tolist())))
        num_invalid += int(batch_invalid)
    logging.info("read %d lines of %d file(s) in %.1fs: %d words, %d distinct",
                 sum(file_lines), len(paths), time.time() - start, sum(counts.values()), len(counts))
    if num_invalid:
        logging.warning("%d line(s) held invalid UTF-8; the bad bytes were dropped", num_invalid)
    return collections.Counter({w.decode("utf-8"): c for w, c in counts.items()})


def learn_wordpiece_vocab(files, vocab_size, lowercase=True, reserved_tokens=(),
                          max_unique_chars=1000, max_token_length=50, num_iterations=4,
                          slack_ratio=0.05, max_line_bytes=MAX_LINE_BYTES):
    """Learns a WordPiece vocabulary that `WordPieceTokenizer` can load.

    Args:
      files: a list of file globs or one comma-separated string of them; plain text
        or `.gz`, one sentence or paragraph per line.
      vocab_size: the largest vocabulary to return, special tokens included.
      lowercase: learn an uncased vocabulary (use the same flag in the tokenizer).
      reserved_tokens: extra tokens to keep right after the special ones, e.g.
        `[unused0]`.
      max_unique_chars: at most this many distinct characters (the most frequent)
        get tokens; words with any other character are not learned from.
      max_token_length: words longer than this many characters are not learned from.
      num_iterations: refinement passes of the learner.
      slack_ratio: a vocabulary within `vocab_size * (1 - slack_ratio)` and
        `vocab_size` is accepted.
      max_line_bytes: a longer line is refused (see `count_words`).

    Returns:
      The tokens: `[PAD] [UNK] [CLS] [SEP] [MASK]`, `reserved_tokens`, the kept
      characters, then the learned pieces (among them every kept character's `##`
      form), most frequent first.

    Raises:
      FileNotFoundError: a glob matched no file (all such globs are named).
      files.NotTextError, files.LineTooLongError: see `count_words`.
      ValueError: the text has no words, or `vocab_size` cannot hold the special
        tokens and the characters.
    """
    reserved = list(SPECIAL_TOKENS) + [t for t in reserved_tokens if t not in SPECIAL_TOKENS]
    if vocab_size <= len(reserved):
        raise ValueError(f"vocab_size {vocab_size} leaves no room after the "
                         f"{len(reserved)} special and reserved tokens")
    word_counts = count_words(files, lowercase, max_line_bytes)
    if not word_counts:
        raise ValueError(f"no words found in {files}: the files are empty or blank")

    params = learner.Params(
        upper_thresh=None, lower_thresh=None, num_iterations=num_iterations,
        max_input_tokens=None, max_token_length=max_token_length,
        max_unique_chars=max_unique_chars, vocab_size=vocab_size, slack_ratio=slack_ratio,
        include_joiner_token=True, joiner=SUFFIX_INDICATOR, reserved_tokens=reserved)
    words = learner.get_input_words(word_counts.items(), reserved, max_token_length)
    words = learner.filter_input_words(
        words, learner.get_allowed_chars(words, max_unique_chars), -1)
    if not words:
        raise ValueError(f"no word of {files} is at most {max_token_length} characters long")
    if len(words) < len(word_counts):
        logging.info("not learning from %d of %d distinct words (too long or rare characters)",
                     len(word_counts) - len(words), len(word_counts))
    start = time.time()
    vocab = _learn_to_size(words, params)
    logging.info("learned %d tokens in %.1fs", len(vocab), time.time() - start)
    return _fit(vocab, vocab_size, num_reserved=len(reserved))


def _learn_to_size(words, params):
    """Runs the learner at count thresholds until its vocabulary fits `vocab_size`.

    tensorflow-text's `learn` bisects thresholds linearly, ~17 full learner passes
    for 8k tokens from 5 MB of text. Vocabulary size falls roughly as a power of the
    threshold, so interpolating in log-log space within a shrinking bracket gets
    there in a handful of passes.

    Args:
      words: (word, count) pairs, most frequent first.
      params: `learner.Params`.

    Returns:
      The vocabulary of the first threshold within the slack; else, when no
      threshold lands there, that of the largest threshold found too big (for
      `_fit` to trim its rarest pieces: closer to `vocab_size` than the next
      threshold's), or the one that fits if none was too big.
    """
    target = params.vocab_size
    lowest_ok = target * (1 - params.slack_ratio)
    too_big, fits = None, None  # (threshold, size, vocab) at the bracket's ends
    # The target-th most frequent word's count: its substrings are at least as
    # frequent, so the answer is at or above it, usually close.
    threshold = max(1, words[min(target, len(words)) - 1][1])
    tried = set()
    while threshold not in tried:
        tried.add(threshold)
        vocab = learner.learn_with_thresh(words, threshold, params)
        size = len(vocab)
        logging.info("threshold %d: %d tokens", threshold, size)
        if lowest_ok <= size <= target:
            return vocab
        if size > target:
            too_big = (threshold, size, vocab)
        else:
            fits = (threshold, size, vocab)
        low = too_big[0] + 1 if too_big else 1
        high = fits[0] - 1 if fits else max(c for _, c in words)
        if low > high:
            break
        threshold = min(high, max(low, _interpolate(too_big, fits, target, lowest_ok)))
    return too_big[2] if too_big else fits[2]


def _interpolate(too_big, fits, target, lowest_ok):
    """The next threshold to try, from a straight line through log(size) vs log(t)."""
    goal = math.log((target + lowest_ok) / 2)
    points = [p for p in (too_big, fits) if p]
    if len(points) == 2 and points[0][1] != points[1][1]:
        (t0, s0, _), (t1, s1, _) = points
        slope = (math.log(s1) - math.log(s0)) / (math.log(t1) - math.log(t0))
    else:
        slope = -0.7  # typical of English text
    t, s, _ = points[0]
    # Capped so a nearly flat line cannot overflow; the caller clamps to the bracket.
    return round(math.exp(min(40.0, math.log(t) + (goal - math.log(s)) / slope)))


def _fit(vocab, vocab_size, num_reserved):
    """Cuts `vocab` down to `vocab_size` without losing any character token.

    The learner's threshold search can end above the target when few words repeat;
    dropping a `##c` token there would turn every word needing it into [UNK].
    """
    if len(vocab) <= vocab_size:
        return vocab
    learned = vocab[num_reserved:]
    chars = {t for t in learned if len(t) == 1}
    essential = {t for t in learned if t in chars or
                 (t.startswith(SUFFIX_INDICATOR) and t[len(SUFFIX_INDICATOR):] in chars)}
    room = vocab_size - num_reserved - len(essential)
    if room < 0:
        raise ValueError(
            f"vocab_size {vocab_size} is too small for the {len(chars)} distinct "
            f"characters of the text (each needs a token and a {SUFFIX_INDICATOR} token); "
            f"raise vocab_size or lower max_unique_chars")
    # The learner orders pieces most frequent first, so the tail is the least useful.
    dropped = set([t for t in learned if t not in essential][room:])
    logging.info("dropped the %d least frequent pieces to fit vocab_size %d",
                 len(dropped), vocab_size)
    return vocab[:num_reserved] + [t for t in learned if t not in dropped]


def write_vocab(tokens, path):
    """Writes one token per line (UTF-8) to a local path or any tf.io.gfile URL.

    Raises:
      ValueError naming the first token that is empty or holds whitespace (it would
      break the one-per-line format or never come out of word splitting) or that
      repeats (it would shadow an id).
    """
    seen = set()
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"token {i} ({token!r}) is empty or holds whitespace")
        if token in seen:
            raise ValueError(f"token {i} ({token!r}) repeats an earlier token")
        seen.add(token)
    files.write_text_atomic(path, "".join(f"{t}\n" for t in tokens))
