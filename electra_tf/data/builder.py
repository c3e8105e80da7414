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

This module reads the input and runs the build (`build_pretraining_data`); packing is
`example_packer.py`, and the shards and the output directory's bookkeeping are
`shards.py`.
"""

import random
import time

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import schema
from electra_tf.data import example_packer, shards
from electra_tf.data import manifest as manifest_lib
from electra_tf.files import (MAX_LINE_BYTES, check_text_files, expand_inputs,
                              split_patterns,
                              line_too_long)
from electra_tf.text import tokenizer as tokenizer_lib

# Lines per tokenizer call: large enough to amortize op overhead, small enough to
# keep both cores busy (measured fastest among 256/1024/4096 on the dev corpora).
LINES_PER_BATCH = 1024
PROGRESS_EVERY_SECONDS = 30


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
    stats = example_packer.PackingStats()
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
    example_packer.check_packing_args(max_seq_length, short_seq_prob, single_segment_prob)
    check_text_files(files)
    tokenizer = tokenizer_lib.WordPieceTokenizer(vocab_path, lowercase=lowercase)

    shard_indices = shards.worker_shard_indices(num_shards, shard_index, num_workers)
    old_outputs = shards.prepare_output_dir(output_dir, shard_indices, num_shards,
                                            shard_index, num_workers, overwrite)
    logging.info("worker %d/%d: %d of %d input files -> %d of %d shards in %s",
                 shard_index, num_workers, len(files), len(all_files), len(shard_indices),
                 num_shards, output_dir)

    def new_packer(file_index):
        return example_packer.ExamplePacker(
            max_seq_length, tokenizer.cls_id, tokenizer.sep_id,
            random.Random(file_seed(seed, file_index)), short_seq_prob=short_seq_prob,
            single_segment_prob=single_segment_prob)

    writer = shards.ShardWriter(output_dir, shard_indices, num_shards)
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
    shards.remove_old_outputs(output_dir, old_outputs, keep=set(writer.names))
    shard_entries = writer.close()
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
        "shards": shard_entries,
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
                 stats.documents_read, len(shard_entries), elapsed,
                 stats.input_tokens / max(elapsed, 1e-9), path)
    return manifest
