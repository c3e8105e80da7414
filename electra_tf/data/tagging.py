"""Token classification data (NER, chunking): CoNLL and JSONL files -> WordPiece labels.

CoNLL layout (CoNLL-2000/2003 files as distributed): one word per line, columns
separated by whitespace, the tag in the *last* column (the other columns, POS or chunk
tags, are ignored); blank lines end sentences; `-DOCSTART-` lines are skipped. JSONL:
one `{"tokens": [...], "tags": [...]}` object per line. Tags are BIO/IOB2 (`O`,
`B-TYPE`, `I-TYPE`); the label set comes from the training file, and a tag of a dev or
test file outside it is refused with `TaggingFormatError` naming file:line.

WordPiece alignment: a word's label goes on its first WordPiece; its other pieces, the
special tokens and padding get `IGNORE` (-1) and no loss (a label per word, as the
metrics count words; Google's ELECTRA and Hugging Face's token-classification examples
make the same choice). Predictions map back to words through `word_index`.
"""

import dataclasses
import json
import re

import numpy as np
import tensorflow as tf

from electra_tf import schema

IGNORE = -1
DOCSTART = "-DOCSTART-"
_TAG = re.compile(r"^(O|[BI]-.+)$")


class TaggingFormatError(ValueError):
    """A tagging file is missing or malformed; the message names file:line."""


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """Words and their tags; `line` is where the sentence starts in its file (1-based)."""

    words: tuple
    tags: tuple
    line: int = 0


def _check_tag(tag, labels, where):
    if not _TAG.match(tag):
        raise TaggingFormatError(f"{where}: tag {tag!r} is not BIO/IOB2 (O, B-X, I-X)")
    if labels is not None and tag not in labels:
        raise TaggingFormatError(
            f"{where}: tag {tag!r} is not in the training file's labels {sorted(labels)}")


def _read_lines(path):
    if not tf.io.gfile.exists(path):
        raise TaggingFormatError(f"tagging file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise TaggingFormatError(f"{path}: not UTF-8: {e}") from None


def read_conll(path, labels=None):
    """Reads a CoNLL-layout file; `labels` (a set) refuses tags outside it."""
    sentences, words, tags, start = [], [], [], 0
    for number, line in enumerate(_read_lines(path) + [""], start=1):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            if words:
                sentences.append(TaggedSentence(tuple(words), tuple(tags), start))
            words, tags = [], []
            continue
        if len(columns) < 2:
            raise TaggingFormatError(f"{path}:{number}: expected 'word ... TAG', got {line!r}")
        _check_tag(columns[-1], labels, f"{path}:{number}")
        if not words:
            start = number
        words.append(columns[0])
        tags.append(columns[-1])
    return sentences


def read_jsonl(path, labels=None):
    """Reads `{"tokens": [...], "tags": [...]}` lines; `labels` refuses other tags."""
    sentences = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaggingFormatError(f"{where}: not JSON: {e}") from None
        words, tags = (record.get("tokens"), record.get("tags")) if isinstance(
            record, dict) else (None, None)
        if (not isinstance(words, list) or not isinstance(tags, list) or not words
                or len(words) != len(tags)
                or not all(isinstance(x, str) and x for x in words + tags)):
            raise TaggingFormatError(
                f"{where}: needs non-empty 'tokens' and 'tags' lists of strings of equal "
                f"length")
        for tag in tags:
            _check_tag(tag, labels, where)
        sentences.append(TaggedSentence(tuple(words), tuple(tags), number))
    return sentences


def read_tagging(path, labels=None):
    """`read_jsonl` for *.jsonl, else `read_conll`."""
    return read_jsonl(path, labels) if path.endswith(".jsonl") else read_conll(path, labels)


def label_list(sentences):
    """The labels of (training) sentences: "O" first, then sorted, as a tuple."""
    tags = {tag for s in sentences for tag in s.tags}
    return tuple(["O"] * ("O" in tags) + sorted(tags - {"O"}))


def convert_to_features(sentences, tokenizer, labels, max_seq_length=128):
    """Sentences -> `[CLS] pieces [SEP]` inputs with first-piece labels.

    Words are tokenized one by one (a word never merges with its neighbour); a
    sentence longer than `max_seq_length - 2` pieces is cut (its last words get no
    label and no prediction; `word_index` tells which words are present).

    Returns:
      dict of numpy arrays: `schema` inputs `[n, L]`, `label_ids` int32 `[n, L]`
      (`IGNORE` off first pieces), `word_index` int32 `[n, L]` (the word a first
      piece starts, -1 elsewhere).
    """
    label_ids = {label: i for i, label in enumerate(labels)}
    words = [w for s in sentences for w in s.words]
    pieces = tokenizer.tokenize(tf.constant(words)).to_list() if words else []
    n, L = len(sentences), max_seq_length
    arrays = {
        schema.TOKEN_IDS: np.zeros((n, L), np.int32),
        schema.SEGMENT_IDS: np.zeros((n, L), np.int32),
        schema.PADDING_MASK: np.zeros((n, L), bool),
        "label_ids": np.full((n, L), IGNORE, np.int32),
        "word_index": np.full((n, L), -1, np.int32),
    }
    k = 0
    for row, sentence in enumerate(sentences):
        ids = [tokenizer.cls_id]
        for w, tag in enumerate(sentence.tags):
            # A word of deleted characters only has no piece: [UNK] keeps its label.
            word_pieces = pieces[k + w] or [tokenizer.unk_id]
            if len(ids) + len(word_pieces) > L - 1:
                break
            arrays["label_ids"][row, len(ids)] = label_ids[tag]
            arrays["word_index"][row, len(ids)] = w
            ids += word_pieces
        k += len(sentence.words)
        ids.append(tokenizer.sep_id)
        arrays[schema.TOKEN_IDS][row, :len(ids)] = ids
        arrays[schema.PADDING_MASK][row, :len(ids)] = True
    return arrays
