"""Files in and out, for every stage: input text files (globs, a text-or-not check,
the line-length limit) and writes that readers never see half of.

Imports nothing from the package, so `config`, `text`, `data` and everything above
can use it.
"""

import codecs
import contextlib
import gzip
import json
import os
import uuid

import tensorflow as tf


@contextlib.contextmanager
def atomic_output(path, keep_name_ending=False):
    """The one way the project writes a file: into a temporary name beside `path`,
    renamed to `path` only when the block exits cleanly (removed if it raises).

    Readers see the old file or the new one whole, never half of one, and a kill leaves
    at most a temporary file. The temporary name is unique per call, so two writers of
    one path never write into each other's file; the last rename wins whole.

    Args:
      path: the final path (local or any tf.io.gfile URL).
      keep_name_ending: name the temporary `tmp.<unique>.<name>` (for writers that
        insist on an extension, like Keras' `save_weights` and `.weights.h5`);
        otherwise `<name>.tmp-<unique>`, which no reader of `*.json` mistakes for one.

    Yields:
      the temporary path to write.
    """
    directory, name = os.path.split(path)
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = os.path.join(directory, f"tmp.{unique}.{name}" if keep_name_ending
                       else f"{name}.tmp-{unique}")
    try:
        yield tmp
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def write_text_atomic(path, text):
    """Writes the string `text` to `path` through `atomic_output`."""
    with atomic_output(path) as tmp:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)


def write_json_atomic(path, value, sort_keys=False):
    """Writes `value` as indented JSON (and a final newline) through `atomic_output`."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def copy_atomic(source, path):
    """Copies the file `source` to `path` through `atomic_output`."""
    with atomic_output(path) as tmp:
        tf.io.gfile.copy(source, tmp, overwrite=True)


# === Input text files ===

# A line is one sentence or paragraph. A longer one is a file without line breaks (or
# not text at all), and tokenizing it holds ~40 bytes of memory per byte of the line
# (2 GB for 50 MB), so it is refused before it is tokenized.
MAX_LINE_BYTES = 1 << 20
# Bytes read from the start of each input to tell UTF-8 text from anything else.
SNIFF_BYTES = 1 << 16


def split_patterns(input_patterns):
    if isinstance(input_patterns, str):
        input_patterns = input_patterns.split(",")
    return [p.strip() for p in input_patterns if p.strip()]


def expand_inputs(input_patterns):
    """Expands globs to a sorted, de-duplicated list of files.

    Raises:
      FileNotFoundError listing every pattern that matched no file.
    """
    patterns = split_patterns(input_patterns)
    if not patterns:
        raise ValueError("no input given: pass one or more file globs")
    files, unmatched = set(), []
    for pattern in patterns:
        matched = [p for p in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(p)]
        if not matched:
            unmatched.append(pattern)
        files.update(matched)
    if unmatched:
        raise FileNotFoundError(f"input glob(s) matched no file: {', '.join(unmatched)}")
    return sorted(files)


class NotTextError(ValueError):
    """An input file is binary, gzip-compressed without a .gz name, or not UTF-8."""


class LineTooLongError(ValueError):
    """An input line is longer than `max_line_bytes` (the message names file and line)."""


def line_too_long(path, line, size, max_line_bytes):
    return LineTooLongError(
        f"{path}:{line}: a line of {size} bytes, longer than max_line_bytes={max_line_bytes} "
        "(--max_line_bytes); a line should hold one sentence or paragraph: break the "
        "file into lines, or raise the limit")


def check_text_file(path):
    """Refuses a file that is not UTF-8 text, judged from its first `SNIFF_BYTES`, and a
    truncated or corrupt gzip file.

    As Perl's -T test does: a NUL byte means binary, and so does a sample of which
    more than a third is odd (here: bytes of invalid UTF-8). A few bad bytes in text
    (a Latin-1 "é" in an English file) pass; reading repairs and counts them.

    Raises:
      NotTextError naming the file and what is wrong with it.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        if path.endswith(".gz"):
            try:
                stream = gzip.GzipFile(fileobj=f)
                sample = stream.read(SNIFF_BYTES)
                # TF's GZIP reader ends a truncated stream without an error, which
                # would drop the file's tail silently; only reading it to the end
                # finds the cut (one extra decompression, ~10% of a build's time).
                while stream.read(1 << 24):
                    pass
            except (OSError, EOFError) as e:
                raise NotTextError(f"{path} is not a valid gzip file: {e}") from e
        else:
            sample = f.read(SNIFF_BYTES)
    if sample.startswith(b"\x1f\x8b") and not path.endswith(".gz"):
        raise NotTextError(f"{path} is gzip-compressed but not named *.gz (inputs are "
                           "decompressed by their .gz extension): rename it")
    nul = sample.find(b"\x00")
    if nul >= 0:
        raise NotTextError(f"{path} is not text: byte {nul} is NUL (a binary file?)")
    # surrogateescape turns each invalid byte into one U+DC80..U+DCFF; final=False
    # leaves out a character cut by the end of the sample.
    text = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(sample)
    invalid = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    if 3 * invalid > len(sample):
        raise NotTextError(f"{path} is not UTF-8 text: {invalid} of its first {len(sample)} "
                           "bytes are invalid UTF-8 (convert it to UTF-8)")


def check_text_files(files):
    """`check_text_file` on each of `files`."""
    for path in files:
        check_text_file(path)
