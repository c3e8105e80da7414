"""`manifest.json`: what a directory of pretraining shards holds and how it was made.

Written by `builder.py` beside the shards, read by `pretraining.py`, which refuses
data that does not match the caller's vocabulary or maximum length. Layout:

    {
      "builder_version": 1,
      "vocab_sha256": "...", "vocab_size": 30522, "lowercase": true,
      "max_seq_length": 128, "seed": 12345,
      "inputs": ["glob", ...],
      "num_shards": 64, "shard_index": 0, "num_workers": 1,
      "shards": [{"file": "pretrain-00000-of-00064.tfrecord",
                  "examples": 1234, "tokens": 150000}, ...],
      "totals": {"examples": ..., "tokens": ..., "documents_read": ...,
                 "documents_skipped": ..., "lines_invalid_utf8": ...,
                 "files_read": ..., "files_empty": ...}
    }

With several workers (`--shard_index/--num_workers`) each worker writes its own
`manifest-<index>-of-<workers>.json`; `read_manifest` merges them.

Beside them, `vocab.txt` is a copy of the vocabulary the data was tokenized with (the
one whose sha256 the manifest records): pretraining uses it when its config leaves
`data.vocab_path` unset.
"""

import json
import os

import tensorflow as tf

from electra_tf import files
from electra_tf import schema


VOCAB_NAME = "vocab.txt"


class ManifestError(ValueError):
    """The data directory's manifest is missing, unreadable or does not match."""


def data_vocab_path(data_dir):
    """The copy of the data's vocabulary in `data_dir` (it may be absent in data built
    before the builder wrote it)."""
    return os.path.join(data_dir, VOCAB_NAME)


def copy_vocab(vocab_path, data_dir):
    """Copies the vocabulary into `data_dir` as `VOCAB_NAME` (temp file + rename: every
    worker of a build writes the same content)."""
    path = data_vocab_path(data_dir)
    if os.path.abspath(vocab_path) == os.path.abspath(path):
        return path
    files.copy_atomic(vocab_path, path)
    return path


def worker_manifest_name(shard_index, num_workers):
    if num_workers == 1:
        return schema.MANIFEST_NAME
    return f"manifest-{shard_index:05d}-of-{num_workers:05d}.json"


def write_manifest(output_dir, manifest):
    """Writes the manifest atomically (temp file + rename), so readers never see half."""
    name = worker_manifest_name(manifest.get("shard_index", 0), manifest.get("num_workers", 1))
    path = os.path.join(output_dir, name)
    files.write_json_atomic(path, manifest, sort_keys=True)
    return path


def _load_json(path):
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ManifestError(f"manifest {path} is not valid JSON: {e}") from e


_SAME_ACROSS_WORKERS = ("builder_version", "vocab_sha256", "vocab_size", "lowercase", "max_seq_length")


def read_manifest(data_dir):
    """Reads `manifest.json`, or merges the per-worker manifests of a multi-worker build.

    Returns:
      The manifest dict; for a merged one, `shards` is the concatenation and `totals`
      the sums over workers.

    Raises:
      ManifestError: no manifest, bad JSON, or workers that disagree.
    """
    single = os.path.join(data_dir, schema.MANIFEST_NAME)
    if tf.io.gfile.exists(single):
        return _load_json(single)
    parts = sorted(tf.io.gfile.glob(os.path.join(data_dir, "manifest-*-of-*.json")))
    if not parts:
        raise ManifestError(
            f"no {schema.MANIFEST_NAME} in {data_dir}: build the data with "
            "tools/build_pretraining_data.py first"
        )
    manifests = [_load_json(p) for p in parts]
    merged = dict(manifests[0])
    expected_workers = merged.get("num_workers", len(parts))
    if len(parts) != expected_workers:
        raise ManifestError(
            f"{data_dir} holds {len(parts)} worker manifests but the build used "
            f"{expected_workers} workers: some workers have not finished"
        )
    for path, m in zip(parts[1:], manifests[1:]):
        for key in _SAME_ACROSS_WORKERS:
            if m.get(key) != merged.get(key):
                raise ManifestError(
                    f"{path}: {key}={m.get(key)!r} differs from {parts[0]}: {merged.get(key)!r}"
                )
    merged["shards"] = [s for m in manifests for s in m["shards"]]
    merged["totals"] = {
        k: sum(m["totals"].get(k, 0) for m in manifests) for k in manifests[0]["totals"]
    }
    merged.pop("shard_index", None)
    return merged


def validate_manifest(manifest, *, vocab_sha256=None, max_seq_length=None, lowercase=None,
                      data_dir=""):
    """Checks the data was built for the caller's vocabulary, length and casing.

    Data built with a shorter max length than the model's is accepted (it is padded);
    longer is refused, as is a different vocabulary or casing.

    Raises:
      ManifestError naming every field that differs, with both values.
    """
    problems = []
    if manifest.get("builder_version") != schema.BUILDER_VERSION:
        problems.append(
            f"builder_version: data has {manifest.get('builder_version')!r}, "
            f"this code reads {schema.BUILDER_VERSION}"
        )
    if vocab_sha256 is not None and manifest.get("vocab_sha256") != vocab_sha256:
        problems.append(
            f"vocab_sha256: data has {manifest.get('vocab_sha256')!r}, expected {vocab_sha256!r} "
            "(the data was tokenized with another vocabulary)"
        )
    if max_seq_length is not None and manifest.get("max_seq_length", 0) > max_seq_length:
        problems.append(
            f"max_seq_length: data has {manifest.get('max_seq_length')}, "
            f"longer than the requested {max_seq_length}"
        )
    if lowercase is not None and manifest.get("lowercase") != lowercase:
        problems.append(f"lowercase: data has {manifest.get('lowercase')!r}, expected {lowercase!r}")
    if problems:
        raise ManifestError(f"data in {data_dir or '<data_dir>'} does not match: " + "; ".join(problems))
