"""Same inputs + seed give byte-identical shards, whatever the scheduling or process.

The defect these guard (issue 14): upb serializes a protobuf map in the order of its
hash table, whose seed changes from process to process, so two builds wrote the
`token_ids` and `segment_ids` features of every `tf.train.Example` in different orders
(same examples, different bytes). An in-process comparison cannot see that, so the
tests below also check the wire order of the keys directly and compare builds made
by separate processes. Without the fix each such check fails only in the processes
whose hash order is unsorted (about half), which is why there are several.
"""

import hashlib
import os
import random
import subprocess
import sys

import pytest
import tensorflow as tf

from helpers import REPO_ROOT, TINY_WORDS, shared_path
from electra_tf.data import builder
from electra_tf import schema

TOOL = str(REPO_ROOT / "tools" / "build_pretraining_data.py")
SUBPROCESS_TIMEOUT = 300


def write_corpus(path, num_documents=60, lines_per_document=80, seed=0):
    """About 5000 lines of TINY_WORDS in documents separated by blank lines."""
    rng = random.Random(seed)
    words = [w for w in TINY_WORDS if w.isalpha()]
    docs = ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
                      for _ in range(lines_per_document)) for _ in range(num_documents)]
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


def shard_digests(output_dir):
    """{shard file name: sha256} of a build's shards."""
    return {name: hashlib.sha256((output_dir / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(output_dir)) if name.endswith(".tfrecord")}


def _varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def feature_keys_in_wire_order(record):
    """The feature names of a serialized `tf.train.Example`, in the order written.

    Hand-parses the wire format (Example.features = field 1, Features.feature = map
    field 1, entry key = field 1) so that it does not depend on protobuf's own order.
    """
    tag, pos = _varint(record, 0)
    assert tag == (1 << 3) | 2, "Example.features"
    length, pos = _varint(record, pos)
    features, keys, pos = record[pos:pos + length], [], 0
    while pos < len(features):
        tag, pos = _varint(features, pos)
        assert tag == (1 << 3) | 2, "Features.feature entry"
        length, pos = _varint(features, pos)
        entry = features[pos:pos + length]
        pos += length
        tag, at = _varint(entry, 0)
        assert tag == (1 << 3) | 2, "map entry key"
        key_length, at = _varint(entry, at)
        keys.append(entry[at:at + key_length].decode())
    return keys


def assert_sorted_feature_keys(output_dir):
    """Every record writes its features in sorted key order (deterministic protobuf)."""
    count = 0
    for name in sorted(os.listdir(output_dir)):
        if name.endswith(".tfrecord"):
            for record in tf.data.TFRecordDataset(str(output_dir / name)).as_numpy_iterator():
                assert feature_keys_in_wire_order(record) == sorted(
                    [schema.SEGMENT_IDS, schema.TOKEN_IDS]), name
                count += 1
    assert count > 0


def run_tool(args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
    return subprocess.Popen([sys.executable, TOOL, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_ok(process):
    try:
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]


def _options(threadpool_size=None, deterministic=None, autotune=None, intra_op=None):
    options = tf.data.Options()
    if threadpool_size is not None:
        options.threading.private_threadpool_size = threadpool_size
    if intra_op is not None:
        options.threading.max_intra_op_parallelism = intra_op
    if deterministic is not None:
        options.deterministic = deterministic
    if autotune is not None:
        options.autotune.enabled = autotune
    return options


def test_shards_do_not_depend_on_tf_data_threading(tmp_path, tiny_vocab, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.txt")
    # Small batches put many tokenizer calls in flight at once, so a parallel stage
    # that let its order follow completion would show here.
    monkeypatch.setattr(builder, "LINES_PER_BATCH", 16)

    original = builder._batches_dataset

    def build(name, options):
        # The builder's own pipeline, with `options` applied on top of it.
        monkeypatch.setattr(builder, "_batches_dataset", lambda *args: (
            original(*args) if options is None else original(*args).with_options(options)))
        out = tmp_path / name
        manifest = builder.build_pretraining_data([corpus], tiny_vocab, str(out),
                                                  max_seq_length=16, num_shards=3, seed=7)
        return manifest, shard_digests(out)

    reference_manifest, reference = build("default", None)
    assert reference_manifest["totals"]["examples"] > 1000
    assert len(reference) == 3
    variants = {
        "one_thread": _options(threadpool_size=1, intra_op=1),
        "many_threads_nondeterministic": _options(threadpool_size=8, deterministic=False),
        "no_autotune_nondeterministic": _options(deterministic=False, autotune=False),
    }
    for name, options in variants.items():
        manifest, digests = build(name, options)
        assert digests == reference, name
        assert manifest["totals"] == reference_manifest["totals"], name
    assert_sorted_feature_keys(tmp_path / "default")


def test_separate_processes_write_identical_bytes(tmp_path, tiny_vocab):
    corpus = write_corpus(tmp_path / "corpus.txt", num_documents=20)
    outs = [tmp_path / f"out{i}" for i in range(2)]
    # Concurrently (the two compete for the cores) and with different hash seeds.
    processes = [run_tool([f"--input={corpus}", f"--vocab={tiny_vocab}", f"--output_dir={out}",
                           "--max_seq_length=16", "--num_shards=2", "--seed=3"],
                          env_extra={"PYTHONHASHSEED": str(i)})
                 for i, out in enumerate(outs)]
    for process in processes:
        wait_ok(process)
    first, second = (shard_digests(out) for out in outs)
    assert len(first) == 2
    assert first == second
    for out in outs:
        assert_sorted_feature_keys(out)


@pytest.mark.slow
def test_multi_megabyte_build_is_identical_under_cpu_load(tmp_path, bert_vocab):
    """The issue's reproduction: ~3 MB of Gutenberg text, two builds while other
    processes keep both cores busy (the defect showed on a loaded 2-core machine)."""
    corpus_dir = shared_path("corpus", "nltk_gutenberg")
    corpus = tmp_path / "gutenberg-3mb.txt"
    with open(corpus, "wb") as f:
        for name in ("melville-moby_dick.txt", "austen-emma.txt", "austen-sense.txt",
                     "austen-persuasion.txt"):
            f.write((corpus_dir / name).read_bytes())
    with open(corpus, "r+b") as f:
        f.truncate(3_000_000)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2)]
    try:
        outs = [tmp_path / f"out{i}" for i in range(2)]
        for out in outs:
            wait_ok(run_tool([f"--input={corpus}", f"--vocab={bert_vocab}",
                              f"--output_dir={out}", "--max_seq_length=128",
                              "--num_shards=2", "--lowercase"]))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=30)
    first, second = (shard_digests(out) for out in outs)
    assert len(first) == 2
    assert first == second
    assert_sorted_feature_keys(outs[0])
