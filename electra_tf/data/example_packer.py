"""Packing WordPiece ids of documents into pretraining examples (ELECTRA's
`ExampleBuilder`, changed so that no token is thrown away; see `data/builder.py` for
the whole pipeline).

`ExamplePacker` turns one document's tokenized lines into `[CLS] A [SEP] B [SEP]` (or
`[CLS] A [SEP]`) examples of target lengths drawn as the original does; every token
lands in exactly one example. `pack_documents` packs a list of documents in memory.
"""

import bisect
import dataclasses
import random

import numpy as np

# `[CLS] a [SEP] b [SEP]`: the shortest target that still fits two segments.
MIN_TARGET_LENGTH = 5

@dataclasses.dataclass
class PackingStats:
    """Counts kept by `ExamplePacker`; they add up across packers."""

    examples: int = 0
    examples_single_segment: int = 0
    tokens: int = 0
    input_tokens: int = 0
    documents_read: int = 0
    documents_skipped: int = 0

    def add(self, other):
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def check_packing_args(max_seq_length, short_seq_prob, single_segment_prob):
    """Raises ValueError naming the first packing argument out of range."""
    if max_seq_length <= MIN_TARGET_LENGTH:
        raise ValueError(
            f"max_seq_length must be > {MIN_TARGET_LENGTH} to fit "
            f"[CLS] A [SEP] B [SEP] and shorter variants, got {max_seq_length}"
        )
    for name, p in (("short_seq_prob", short_seq_prob),
                    ("single_segment_prob", single_segment_prob)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")


class ExamplePacker:
    """Packs the token ids of a stream of documents into pretraining examples.

    Feed each document's lines with `add_lines` (any number of calls) and close it
    with `end_document`; both return the finished examples as `(token_ids,
    segment_ids)` pairs of Python int lists of equal length `<= max_seq_length`.
    The result depends only on the token stream, its line boundaries and `rng`,
    not on how the lines are chunked into calls.

    Works on Python lists: examples are a few hundred tokens, where list slicing and
    `bisect` beat NumPy's per-call overhead several times over.

    Args:
      max_seq_length: length of a full example, special tokens included.
      cls_id, sep_id: ids of `[CLS]` and `[SEP]`.
      rng: a `random.Random`; all packing choices draw from it, in stream order.
      short_seq_prob: probability that an example gets a shorter random target.
      single_segment_prob: probability that an example is `[CLS] A [SEP]`.
    """

    def __init__(self, max_seq_length, cls_id, sep_id, rng, short_seq_prob=0.05,
                 single_segment_prob=0.1):
        check_packing_args(max_seq_length, short_seq_prob, single_segment_prob)
        self.max_seq_length = max_seq_length
        self.cls_id = cls_id
        self.sep_id = sep_id
        self.rng = rng
        self.short_seq_prob = short_seq_prob
        self.single_segment_prob = single_segment_prob
        self.stats = PackingStats()

        # The unfinished example: its tokens so far and the ends of its lines.
        self._pending = []
        self._pending_ends = []
        # (target length, single segment) of the example being filled; drawn when its
        # first token arrives, so the draws depend on the token stream only.
        self._plan = None
        self._in_document = False
        self._document_tokens = 0

    def add_lines(self, token_ids, line_lengths):
        """Adds consecutive lines of the current document.

        Args:
          token_ids: ints `[num_tokens]` (list or array), the lines' ids concatenated.
          line_lengths: ints `[num_lines]`, tokens per line (0 for a line that yields
            no tokens); sums to `num_tokens`.

        Returns:
          The examples completed by these lines.
        """
        if len(line_lengths) == 0:
            return []
        if sum(line_lengths) != len(token_ids):
            raise ValueError(
                f"line_lengths sum to {sum(line_lengths)} but there are {len(token_ids)} tokens")
        tokens = self._pending
        ends = self._pending_ends
        end = len(tokens)
        tokens += token_ids.tolist() if isinstance(token_ids, np.ndarray) else token_ids
        for length in line_lengths:
            if length:
                end += int(length)
                ends.append(end)
        self._in_document = True
        self._document_tokens += len(token_ids)
        self.stats.input_tokens += len(token_ids)

        examples = []
        start = 0
        while start < len(tokens):
            if self._plan is None:
                self._plan = self._draw_plan()
            target, single = self._plan
            end = start + target - 3
            if not single:
                splits = self._inner_ends(ends, start, end)
                # Nothing to split at: one segment, which has room for one more token.
                single = splits[0] == splits[1]
            if single:
                end = start + target - 2
                splits = None
            if end > len(tokens):
                break
            examples.append(self._make_example(tokens, ends, start, end, splits))
            start = end
        if start:
            self._pending = tokens[start:]
            self._pending_ends = [e - start for e in ends[bisect.bisect_right(ends, start):]]
        return examples

    def end_document(self):
        """Closes the current document; returns its last (possibly short) example."""
        if not self._in_document:
            return []
        examples = []
        size = len(self._pending)
        if size:
            splits = None
            if not self._plan[1]:
                splits = self._inner_ends(self._pending_ends, 0, size)
                if splits[0] == splits[1]:
                    splits = None
            examples.append(
                self._make_example(self._pending, self._pending_ends, 0, size, splits))
        if self._document_tokens:
            self.stats.documents_read += 1
        else:
            self.stats.documents_skipped += 1
        self._pending = []
        self._pending_ends = []
        self._in_document = False
        self._document_tokens = 0
        return examples

    def _draw_plan(self):
        target = self.max_seq_length
        if self.rng.random() < self.short_seq_prob:
            target = self.rng.randrange(MIN_TARGET_LENGTH, self.max_seq_length)
        return target, self.rng.random() < self.single_segment_prob

    @staticmethod
    def _inner_ends(ends, start, end):
        """Index range of the line ends strictly inside (start, end): the A/B splits."""
        return bisect.bisect_right(ends, start), bisect.bisect_left(ends, end)

    def _make_example(self, tokens, ends, start, end, splits):
        """`tokens[start:end]` as one example: one segment if `splits` is None, else
        two, split at a random line end among `ends[splits[0]:splits[1]]`."""
        self._plan = None
        if splits is None:
            ids = [self.cls_id] + tokens[start:end] + [self.sep_id]
            segments = [0] * len(ids)
            self.stats.examples_single_segment += 1
        else:
            split = ends[self.rng.randrange(*splits)]
            ids = ([self.cls_id] + tokens[start:split] + [self.sep_id] + tokens[split:end]
                   + [self.sep_id])
            segments = [0] * (split - start + 2) + [1] * (end - split + 1)
        self.stats.examples += 1
        self.stats.tokens += len(ids)
        return ids, segments


def pack_documents(documents, max_seq_length, cls_id, sep_id, seed=12345,
                   short_seq_prob=0.05, single_segment_prob=0.1, stats=None):
    """Packs documents given as lists of token-id lines into examples.

    Args:
      documents: iterable of documents; a document is a list of lines, a line a
        sequence of int token ids (without special tokens).
      max_seq_length, cls_id, sep_id, short_seq_prob, single_segment_prob: as for
        `ExamplePacker`.
      seed: seeds the packing choices (anything `random.Random` accepts).
      stats: optional `PackingStats`, incremented with this call's counts.

    Yields:
      `(token_ids, segment_ids)`: equal-length int lists, `[seq_len]` with
      `seq_len <= max_seq_length`.
    """
    packer = ExamplePacker(max_seq_length, cls_id, sep_id, random.Random(seed),
                           short_seq_prob=short_seq_prob,
                           single_segment_prob=single_segment_prob)
    for document in documents:
        lines = [[int(t) for t in line] for line in document]
        yield from packer.add_lines([t for line in lines for t in line],
                                    [len(line) for line in lines])
        yield from packer.end_document()
    if stats is not None:
        stats.add(packer.stats)
