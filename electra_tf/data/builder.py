"""Raw text -> packed, unmasked pretraining examples -> sharded TFRecords + manifest.

Input: UTF-8 text files (plain or `.gz`), one sentence or paragraph per line,
documents separated by blank (whitespace-only) lines.

Packing follows ELECTRA's `ExampleBuilder` (google-research/electra,
build_pretraining_dataset.py), changed so that no token is ever thrown away:

* An example holds consecutive lines of ONE document, `[CLS] A [SEP] B [SEP]` with
  segment ids `0 ... 0 1 ... 1`; A and B are split at a random line boundary.
* With probability `single_segment_prob` the example is `[CLS] A [SEP]` (all segment
  ids 0); so is a two-segment example whose content has no line boundary inside.
* With probability `short_seq_prob` the example's target length is drawn uniformly
  from `[MIN_TARGET_LENGTH, max_seq_length)` instead of `max_seq_length`.
* Examples are filled to their target length; a line that does not fit in the room
  left is split and its rest starts the next example (the original truncates it).
  The last example of a document holds whatever is left, however short.

So every input token lands in exactly one example and `tokens_dropped` is 0; a
document whose lines yield no WordPiece tokens at all is counted in
`documents_skipped`.

Pipeline: tf.data reads lines (`TextLineDataset`, gzip by extension), repairs invalid
UTF-8 and tokenizes batches of lines in graph with a parallel map; the main thread
packs the token ids (list slicing per example, no per-token Python) and writes
`tf.train.Example`s round-robin over the shards under temporary names, renamed
when complete. The tokenizing map is `deterministic=True` and records are serialized
with sorted feature keys, so the bytes depend only on the inputs and the seed, not on
thread scheduling, tf.data options or the process. Nothing is held beyond a few batches of lines and one unfinished
example, so memory does not grow with the corpus. Each input file is packed with
its own seed (`file_seed`), so a multi-worker build makes the same examples as a
single-worker one.
"""

import bisect
import dataclasses
import os
import random
import time

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import schema
from electra_tf.data import manifest as manifest_lib
from electra_tf.files import (MAX_LINE_BYTES, check_text_files, expand_inputs,
                              split_patterns,
                              line_too_long)
from electra_tf.text import tokenizer as tokenizer_lib

# `[CLS] a [SEP] b [SEP]`: the shortest target that still fits two segments.
MIN_TARGET_LENGTH = 5
# Lines per tokenizer call: large enough to amortize op overhead, small enough to
# keep both cores busy (measured fastest among 256/1024/4096 on the dev corpora).
LINES_PER_BATCH = 1024
PROGRESS_EVERY_SECONDS = 30



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


# === Input ===


def _batches_dataset(files, file_indices, tokenizer, max_line_bytes=MAX_LINE_BYTES):
    """Tokenized line batches of `files`, in file order, each file closed by a marker.

    Yields tuples `(file_index, token_ids [tokens], row_splits [lines + 1],
    blank [lines], num_invalid_utf8, end_of_file, long_bytes [lines])`; the marker has no
    lines and `end_of_file` True, so empty files are seen too and a read error can be
    blamed on the file after the last marker. `long_bytes` is the size of each line
    longer than `max_line_bytes` (0 for the others); such lines are not tokenized.
    """
    compression = ["GZIP" if f.endswith(".gz") else "" for f in files]

    @tf.autograph.experimental.do_not_convert
    def read_file(path, file_index, compression_type):
        lines = tf.data.TextLineDataset(path, compression_type=compression_type,
                                        buffer_size=1 << 20)
        batches = lines.batch(LINES_PER_BATCH).map(lambda b: (file_index, b, False))
        marker = tf.data.Dataset.from_tensors((file_index, tf.constant([], tf.string), True))
        return batches.concatenate(marker)

    @tf.autograph.experimental.do_not_convert
    def tokenize(file_index, lines, end_of_file):
        lengths = tf.strings.length(lines)
        too_long = lengths > max_line_bytes
        long_bytes = tf.where(too_long, lengths, 0)
        lines = tf.where(too_long, "", lines)
        # Transcoding is the costliest op here, so only non-ASCII lines get it.
        ascii = tf.strings.regex_full_match(lines, r"[\x00-\x7f]*")
        rows = tf.where(~ascii)
        non_ascii = tf.gather_nd(lines, rows)
        repaired_rows = tf.strings.unicode_transcode(
            non_ascii, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD,
            replace_control_characters=False)
        num_invalid = tf.reduce_sum(tf.cast(repaired_rows != non_ascii, tf.int64))
        repaired = tf.tensor_scatter_nd_update(lines, rows, repaired_rows)
        blank = tf.strings.strip(repaired) == ""
        ids = tokenizer.tokenize(repaired)
        return (file_index, ids.flat_values, ids.row_splits, blank, num_invalid, end_of_file,
                long_bytes)

    files_ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(file_indices, tf.int64),
         tf.constant(compression, tf.string)))
    return (files_ds.flat_map(read_file)
            .map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def _pack_batch(packer, token_ids, row_splits, blank):
    """Feeds one batch of lines to `packer`, closing a document at each blank line.

    Args:
      token_ids: int array `[num_tokens]`, the batch's ids; `row_splits` `[lines + 1]`
        delimits its lines, `blank` `[lines]` marks the blank ones.
    """
    tokens = token_ids.tolist()
    splits = row_splits.tolist()
    lengths = np.diff(row_splits).tolist()
    examples = []
    start = 0
    for b in np.flatnonzero(blank).tolist() + [len(lengths)]:
        if b > start:
            examples += packer.add_lines(tokens[splits[start]:splits[b]], lengths[start:b])
        if b < len(lengths):
            examples += packer.end_document()
        start = b + 1
    return examples


def _read_batches(dataset, files):
    """Iterates `_batches_dataset` as NumPy; a read error names the file being read."""
    position = 0  # index into `files` of the file being read
    iterator = dataset.as_numpy_iterator()
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            current = files[position] if position < len(files) else "the input"
            raise ValueError(f"reading {current} failed: {e.message}") from e
        yield batch
        position += bool(batch[5])  # end_of_file


def _pack_and_write(batches, new_packer, writer, files, max_line_bytes):
    """Packs tokenized batches file by file (`new_packer(file_index)`) into `writer`.

    Returns:
      (`PackingStats`, dict of line and file counts).

    Raises:
      LineTooLongError naming the first line longer than `max_line_bytes`.
    """
    stats = PackingStats()
    counts = {"lines_read": 0, "lines_invalid_utf8": 0, "files_done": 0, "files_empty": 0}
    started = time.monotonic()
    tokens_read = 0
    packer = None
    file_lines = 0  # lines of the current file before this batch
    for (file_index, token_ids, row_splits, blank, num_invalid, end_of_file,
         long_bytes) in batches:
        if long_bytes.any():
            first = int(np.argmax(long_bytes > 0))
            raise line_too_long(files[counts["files_done"]], file_lines + first + 1,
                                int(long_bytes[first]), max_line_bytes)
        file_lines = 0 if end_of_file else file_lines + blank.size
        if packer is None:
            packer = new_packer(int(file_index))
        examples = _pack_batch(packer, token_ids, row_splits, blank)
        if end_of_file:
            examples += packer.end_document()
            counts["files_done"] += 1
            counts["files_empty"] += not (packer.stats.documents_read
                                          + packer.stats.documents_skipped)
            stats.add(packer.stats)
            packer = None
        for ids, segments in examples:
            writer.write(ids, segments)
        counts["lines_read"] += blank.size
        counts["lines_invalid_utf8"] += int(num_invalid)
        tokens_read += token_ids.size
        logging.log_every_n_seconds(
            logging.INFO, "files %d/%d, documents %d, examples %d, %.0f tokens/s",
            PROGRESS_EVERY_SECONDS, counts["files_done"], len(files), stats.documents_read,
            writer.examples, tokens_read / max(time.monotonic() - started, 1e-9))
    return stats, counts


class EmptyCorpusError(ValueError):
    """The inputs yielded no example: training on such data would wait forever."""


def _describe(files, limit=3):
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


# === Output ===


def worker_shard_indices(num_shards, shard_index, num_workers):
    """Global indices of the shards worker `shard_index` writes: j % num_workers == i."""
    return list(range(shard_index, num_shards, num_workers))


def _existing_outputs(output_dir):
    names = [os.path.basename(p) for p in
             tf.io.gfile.glob(os.path.join(output_dir, schema.SHARD_GLOB))]
    names += [os.path.basename(p) for p in
              tf.io.gfile.glob(os.path.join(output_dir, "manifest*.json"))]
    return names


def _prepare_output_dir(output_dir, shard_indices, num_shards, shard_index, num_workers,
                        overwrite):
    """Creates `output_dir`; refuses conflicting files unless `overwrite`.

    Conflicting: this worker's own shards or manifest, and files of another layout
    (other shard or worker counts), which would otherwise mix with the new ones.
    Other workers' files of the same layout are left alone.

    Returns:
      The conflicting file names. They are removed (`_remove_old_outputs`) only once
      the new shards are complete, so a build that fails keeps the old data whole.

    Raises:
      FileExistsError naming the conflicting files, unless `overwrite`.
    """
    tf.io.gfile.makedirs(output_dir)
    own = {schema.SHARD_PATTERN.format(index=j, count=num_shards) for j in shard_indices}
    own.add(manifest_lib.worker_manifest_name(shard_index, num_workers))
    layout_suffixes = [f"-of-{num_shards:05d}.tfrecord"]
    if num_workers > 1:
        layout_suffixes.append(f"-of-{num_workers:05d}.json")
    conflicts = []
    for name in _existing_outputs(output_dir):
        same_layout = name != schema.MANIFEST_NAME and any(
            name.endswith(suffix) for suffix in layout_suffixes)
        if name in own or not same_layout:
            conflicts.append(name)
    conflicts.sort()
    if conflicts and not overwrite:
        shown = ", ".join(conflicts[:5])
        if len(conflicts) > 5:
            shown += f" and {len(conflicts) - 5} more"
        raise FileExistsError(f"{output_dir} already holds pretraining data ({shown}); "
                              "pass overwrite=True (--overwrite) to replace it")
    return conflicts


def _remove_old_outputs(output_dir, names, keep):
    """Removes the old files `names` except `keep` (shards the new ones replace by
    rename); the old manifest goes first, so it never describes the new shards."""
    for name in sorted(names, key=lambda n: not n.endswith(".json")):
        if name in keep:
            continue
        try:
            tf.io.gfile.remove(os.path.join(output_dir, name))
        except tf.errors.NotFoundError:
            pass  # another worker removed it first


class _ShardWriter:
    """Writes examples round-robin over shards under temporary names; `close` renames."""

    def __init__(self, output_dir, shard_indices, num_shards):
        self._names = [schema.SHARD_PATTERN.format(index=j, count=num_shards)
                       for j in shard_indices]
        self._paths = [os.path.join(output_dir, n) for n in self._names]
        # Not matching SHARD_GLOB: an interrupted build leaves nothing that looks done.
        self._tmp_paths = [p + ".incomplete" for p in self._paths]
        self._writers = [tf.io.TFRecordWriter(p) for p in self._tmp_paths]
        self._examples = [0] * len(self._writers)
        self._tokens = [0] * len(self._writers)
        self._next = 0
        # One reusable proto: building a fresh Example per record costs twice as much.
        self._proto = tf.train.Example()
        features = self._proto.features.feature
        self._token_values = features[schema.TOKEN_IDS].int64_list.value
        self._segment_values = features[schema.SEGMENT_IDS].int64_list.value

    @property
    def names(self):
        return list(self._names)

    @property
    def examples(self):
        return sum(self._examples)

    def write(self, token_ids, segment_ids):
        del self._token_values[:]
        del self._segment_values[:]
        self._token_values.extend(token_ids)
        self._segment_values.extend(segment_ids)
        k = self._next
        # `deterministic=True` writes the feature map's entries in sorted key order.
        # Without it upb writes them in the order of its hash table, whose seed
        # changes from process to process: the same example then serializes to
        # different bytes in two runs (same examples, different sha256). It costs
        # nothing measurable (~7 us per record either way).
        self._writers[k].write(self._proto.SerializeToString(deterministic=True))
        self._examples[k] += 1
        self._tokens[k] += len(token_ids)
        self._next = (k + 1) % len(self._writers)

    def close(self):
        """Closes and renames every shard; returns the manifest's per-shard entries."""
        shards = []
        for k, writer in enumerate(self._writers):
            writer.close()
            tf.io.gfile.rename(self._tmp_paths[k], self._paths[k], overwrite=True)
            shards.append({"file": self._names[k], "examples": self._examples[k],
                           "tokens": self._tokens[k],
                           "bytes": tf.io.gfile.stat(self._paths[k]).length})
        return shards

    def abort(self):
        for writer, tmp in zip(self._writers, self._tmp_paths):
            writer.close()
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)


# === Build ===


def file_seed(seed, file_index):
    """The packing seed of the `file_index`-th input file (in sorted order).

    Seeding per file makes a file pack the same way whichever worker reads it.
    """
    return f"{seed}:{file_index}"


def build_pretraining_data(input_patterns, vocab_path, output_dir, max_seq_length=128,
                           num_shards=64, lowercase=True, seed=12345, shard_index=0,
                           num_workers=1, overwrite=False, short_seq_prob=0.05,
                           single_segment_prob=0.1, max_line_bytes=MAX_LINE_BYTES):
    """Tokenizes and packs text files into sharded TFRecords plus a manifest.

    Args:
      input_patterns: list of file globs, or one comma-separated string of them.
      vocab_path: WordPiece vocabulary, one token per line.
      output_dir: where shards and the manifest go (created if absent).
      max_seq_length: length of a full example, special tokens included.
      num_shards: total shards over all workers.
      lowercase: lower-case and strip accents (uncased vocabularies).
      seed: seeds packing; same inputs + seed give byte-identical shards.
      shard_index, num_workers: this worker reads sorted input files
        `[shard_index::num_workers]` and writes the shards `j` with
        `j % num_workers == shard_index`, plus its own manifest.
      overwrite: replace this build's existing shards/manifest instead of refusing;
        they are replaced only once the new shards are complete (a failed build
        leaves them as they were).
      short_seq_prob, single_segment_prob: see the module docstring.
      max_line_bytes: a longer input line fails the build (`LineTooLongError`).

    Returns:
      The manifest dict written (see `electra_tf.data.manifest`), with extra fields
      `short_seq_prob`, `single_segment_prob`, per-shard `bytes` and totals
      `input_tokens`, `tokens_dropped`, `examples_single_segment`, `lines_read`.

    Raises:
      FileNotFoundError: an input glob matched nothing (all such globs are named).
      FileExistsError: output files exist and `overwrite` is False.
      NotTextError: an input is binary, gzip without a .gz name, or not UTF-8.
      LineTooLongError: an input line is longer than `max_line_bytes`.
      EmptyCorpusError: the inputs hold no word (empty, blank or untokenizable
        files), or this worker got no input file; no shard or manifest is written.
      ValueError: inconsistent sharding arguments.
    """
    if num_workers < 1 or not 0 <= shard_index < num_workers:
        raise ValueError(f"need 0 <= shard_index < num_workers, got {shard_index} and {num_workers}")
    if num_shards < num_workers:
        raise ValueError(f"num_shards ({num_shards}) must be >= num_workers ({num_workers}) "
                         "so that every worker writes at least one shard")
    patterns = split_patterns(input_patterns)
    all_files = expand_inputs(patterns)
    file_indices = list(range(shard_index, len(all_files), num_workers))
    files = [all_files[i] for i in file_indices]
    if not files:
        raise EmptyCorpusError(
            f"worker {shard_index} of {num_workers} has no input file: the inputs "
            f"{', '.join(patterns)} match {len(all_files)} file(s); use at most that many workers")
    check_packing_args(max_seq_length, short_seq_prob, single_segment_prob)
    check_text_files(files)
    tokenizer = tokenizer_lib.WordPieceTokenizer(vocab_path, lowercase=lowercase)

    shard_indices = worker_shard_indices(num_shards, shard_index, num_workers)
    old_outputs = _prepare_output_dir(output_dir, shard_indices, num_shards, shard_index,
                                      num_workers, overwrite)
    logging.info("worker %d/%d: %d of %d input files -> %d of %d shards in %s",
                 shard_index, num_workers, len(files), len(all_files), len(shard_indices),
                 num_shards, output_dir)

    def new_packer(file_index):
        return ExamplePacker(max_seq_length, tokenizer.cls_id, tokenizer.sep_id,
                             random.Random(file_seed(seed, file_index)),
                             short_seq_prob=short_seq_prob,
                             single_segment_prob=single_segment_prob)

    writer = _ShardWriter(output_dir, shard_indices, num_shards)
    started = time.monotonic()
    try:
        batches = _read_batches(
            _batches_dataset(files, file_indices, tokenizer, max_line_bytes), files)
        stats, counts = _pack_and_write(batches, new_packer, writer, files, max_line_bytes)
        # Shards without a record would make every training step wait forever for a
        # batch; fail here, where the cause (the input) is known, and write nothing.
        if not stats.examples:
            raise EmptyCorpusError(
                f"no pretraining example written: {_describe(files)} hold(s) no text that "
                f"tokenizes to a word ({len(files)} file(s), {counts['files_empty']} empty, "
                f"{counts['lines_read']} line(s) read)")
    except BaseException:
        writer.abort()
        raise
    _remove_old_outputs(output_dir, old_outputs, keep=set(writer.names))
    shards = writer.close()
    manifest_lib.copy_vocab(vocab_path, output_dir)
    elapsed = time.monotonic() - started

    manifest = {
        "builder_version": schema.BUILDER_VERSION,
        "vocab_sha256": tokenizer_lib.vocab_sha256(vocab_path),
        "vocab_size": tokenizer.vocab_size,
        "lowercase": bool(lowercase),
        "max_seq_length": max_seq_length,
        "seed": seed,
        "short_seq_prob": short_seq_prob,
        "single_segment_prob": single_segment_prob,
        "inputs": patterns,
        "num_shards": num_shards,
        "shard_index": shard_index,
        "num_workers": num_workers,
        "shards": shards,
        "totals": {
            "examples": stats.examples,
            "examples_single_segment": stats.examples_single_segment,
            "tokens": stats.tokens,
            "input_tokens": stats.input_tokens,
            "tokens_dropped": 0,
            "documents_read": stats.documents_read,
            "documents_skipped": stats.documents_skipped,
            "lines_read": counts["lines_read"],
            "lines_invalid_utf8": counts["lines_invalid_utf8"],
            "files_read": len(files),
            "files_empty": counts["files_empty"],
        },
    }
    path = manifest_lib.write_manifest(output_dir, manifest)
    logging.info("wrote %d examples (%d tokens from %d documents) to %d shards in %.1fs "
                 "(%.0f input tokens/s); manifest %s", stats.examples, stats.tokens,
                 stats.documents_read, len(shards), elapsed,
                 stats.input_tokens / max(elapsed, 1e-9), path)
    return manifest
