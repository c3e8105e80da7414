"""Text -> packed TFRecords: packing invariants read back from real shards."""

import collections
import gzip
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from helpers import dev_corpus_files
from electra_tf import files as files_lib
from electra_tf.data import builder, example_packer
from electra_tf.data import manifest as manifest_lib
from electra_tf import schema
from electra_tf.text.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer, vocab_sha256

L = 16
CLS, SEP = 2, 3  # ids in the vocabularies below (specials first, BERT's order)
GROUPS = "abcdefgh"
WORDS_PER_GROUP = 10


# === Helpers ===


@pytest.fixture
def group_vocab(tmp_path):
    """Specials, then 10 words per group letter: `a0`..`a9`, `b0`..; 85 tokens.

    A document uses the words of one group only, so any token tells its document.
    """
    tokens = list(SPECIAL_TOKENS) + [f"{g}{k}" for g in GROUPS for k in range(WORDS_PER_GROUP)]
    path = tmp_path / "group_vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


def word_id(word):
    return len(SPECIAL_TOKENS) + GROUPS.index(word[0]) * WORDS_PER_GROUP + int(word[1:])


def group_of(token_id):
    return GROUPS[(token_id - len(SPECIAL_TOKENS)) // WORDS_PER_GROUP]


def make_documents(rng, groups, lines_per_doc, max_words=6):
    """Documents as lists of lines of words; document i uses the words of groups[i]."""
    return [[[f"{g}{rng.randrange(WORDS_PER_GROUP)}" for _ in range(rng.randint(1, max_words))]
             for _ in range(lines_per_doc)] for g in groups]


def write_text(path, documents, opener=open):
    text = "\n\n".join("\n".join(" ".join(line) for line in doc) for doc in documents) + "\n"
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def doc_ids(document):
    return [word_id(w) for line in document for w in line]


def read_shard(path):
    """[(token_ids, segment_ids)] of one shard, in file order, parsed with the schema."""
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    if not records:
        return []
    parsed = tf.io.parse_example(records, schema.TFRECORD_FEATURES)
    return list(zip(parsed[schema.TOKEN_IDS].to_list(), parsed[schema.SEGMENT_IDS].to_list()))


def read_all(output_dir, manifest):
    return {s["file"]: read_shard(os.path.join(output_dir, s["file"])) for s in manifest["shards"]}


def check_example(ids, segments, max_len, cls_id=CLS, sep_id=SEP):
    """Asserts the layout `[CLS] A [SEP] (B [SEP])` and returns the content tokens."""
    assert len(ids) == len(segments) <= max_len
    assert ids[0] == cls_id and ids[-1] == sep_id
    seps = [i for i, t in enumerate(ids) if t == sep_id]
    assert len(seps) in (1, 2)
    assert cls_id not in ids[1:]
    if len(seps) == 1:
        assert segments == [0] * len(ids)
    else:
        first = seps[0]
        assert 1 < first < len(ids) - 2, "A and B must both be non-empty"
        assert segments == [0] * (first + 1) + [1] * (len(ids) - first - 1)
    return [t for t in ids if t not in (cls_id, sep_id)]


def content_by_document(examples, max_len):
    """Concatenated content per group letter; asserts no example mixes two documents."""
    out = collections.defaultdict(list)
    for ids, segments in examples:
        content = check_example(ids, segments, max_len)
        groups = {group_of(t) for t in content}
        assert len(groups) == 1, f"example mixes documents {sorted(groups)}: {ids}"
        out[groups.pop()] += content
    return dict(out)


# === pack_documents, alone ===


def test_pack_documents_keeps_every_token_in_order_within_documents():
    rng = random.Random(0)
    documents = [[[1000 * d + rng.randrange(1, 999) for _ in range(rng.randint(0, 40))]
                  for _ in range(rng.randint(1, 30))] for d in range(1, 40)]
    stats = example_packer.PackingStats()
    examples = list(example_packer.pack_documents(documents, L, CLS, SEP, seed=1, stats=stats))

    rebuilt = collections.defaultdict(list)
    for ids, segments in examples:
        content = check_example(ids, segments, L)
        docs = {t // 1000 for t in content}
        assert len(docs) == 1
        rebuilt[docs.pop()] += content
    expected = {d + 1: [t for line in doc for t in line] for d, doc in enumerate(documents)}
    assert rebuilt == {d: toks for d, toks in expected.items() if toks}

    assert stats.examples == len(examples)
    assert stats.input_tokens == sum(len(t) for t in expected.values())
    assert stats.tokens == sum(len(ids) for ids, _ in examples)
    assert stats.examples_single_segment == sum(1 for _, s in examples if s[-1] == 0)
    assert stats.documents_read + stats.documents_skipped == len(documents)
    assert stats.documents_skipped == sum(1 for t in expected.values() if not t)


def test_long_line_is_split_across_examples_not_dropped():
    line = list(range(10, 110))  # 100 tokens, one line
    examples = list(example_packer.pack_documents([[line]], L, CLS, SEP, short_seq_prob=0.0))
    content = [t for ids, segments in examples for t in check_example(ids, segments, L)]
    assert content == line
    # One line has no inner boundary, so every example is single-segment and full.
    assert all(s == [0] * len(s) for _, s in examples)
    assert [len(ids) for ids, _ in examples[:-1]] == [L] * (len(examples) - 1)


def test_packer_output_does_not_depend_on_how_lines_are_fed():
    rng = random.Random(3)
    lines = [[rng.randrange(5, 90) for _ in range(rng.randint(0, 25))] for _ in range(200)]
    whole = list(example_packer.pack_documents([lines], L, CLS, SEP, seed=7))

    packer = example_packer.ExamplePacker(L, CLS, SEP, random.Random(7))
    chunked, i = [], 0
    while i < len(lines):
        n = rng.randint(1, 17)
        chunk = lines[i:i + n]
        chunked += packer.add_lines(np.array([t for ln in chunk for t in ln], np.int64),
                                    [len(ln) for ln in chunk])
        i += n
    chunked += packer.end_document()
    assert chunked == whole


def test_single_segment_and_short_fractions():
    rng = random.Random(5)
    # Many short lines: every full example has an inner line boundary.
    lines = [[rng.randrange(5, 90) for _ in range(rng.randint(1, 4))] for _ in range(40000)]
    examples = list(example_packer.pack_documents([lines], 32, CLS, SEP, seed=11))
    full = examples[:-1]  # the document's last example is shorter by nature
    assert len(full) > 3000
    single = np.mean([s[-1] == 0 for _, s in full])
    short = np.mean([len(ids) < 32 for ids, _ in full])
    assert abs(single - 0.1) < 0.025, single
    assert abs(short - 0.05) < 0.015, short
    # Short targets are drawn from [5, 32).
    assert min(len(ids) for ids, _ in full) >= example_packer.MIN_TARGET_LENGTH


def test_packing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_seq_length"):
        example_packer.ExamplePacker(example_packer.MIN_TARGET_LENGTH, CLS, SEP, random.Random(0))
    with pytest.raises(ValueError, match="single_segment_prob"):
        example_packer.ExamplePacker(L, CLS, SEP, random.Random(0), single_segment_prob=1.5)
    with pytest.raises(ValueError, match="line_lengths"):
        example_packer.ExamplePacker(L, CLS, SEP, random.Random(0)).add_lines([5, 6, 7], [1, 1])


# === build_pretraining_data, read back ===


@pytest.fixture
def corpus(tmp_path):
    """Two files, eight documents of disjoint words, lines of 1..6 words."""
    rng = random.Random(42)
    docs = make_documents(rng, GROUPS, lines_per_doc=60)
    inputs = tmp_path / "in"
    inputs.mkdir()
    files = [write_text(inputs / "part-0.txt", docs[:5]), write_text(inputs / "part-1.txt", docs[5:])]
    return files, docs


def test_build_round_trip_invariants_and_manifest(tmp_path, corpus, group_vocab):
    files, docs = corpus
    out = str(tmp_path / "out")
    manifest = builder.build_pretraining_data(
        os.path.join(os.path.dirname(files[0]), "*.txt"), group_vocab, out,
        max_seq_length=L, num_shards=3, seed=1)

    shards = read_all(out, manifest)
    assert sorted(os.listdir(out)) == sorted(
        list(shards) + [schema.MANIFEST_NAME, manifest_lib.VOCAB_NAME])
    # The vocabulary is copied beside the shards: the one the manifest's hash names.
    assert vocab_sha256(os.path.join(out, manifest_lib.VOCAB_NAME)) == manifest["vocab_sha256"]
    assert list(shards) == [schema.SHARD_PATTERN.format(index=j, count=3) for j in range(3)]

    # Round-robin: example k went to shard k % 3, so interleaving restores the order.
    per_shard = [shards[s["file"]] for s in manifest["shards"]]
    assert max(map(len, per_shard)) - min(map(len, per_shard)) <= 1
    ordered = [per_shard[k % 3][k // 3] for k in range(sum(map(len, per_shard)))]
    # Every token of every document, in order, exactly once, and no mixing.
    assert content_by_document(ordered, L) == {d[0][0][0][0]: doc_ids(d) for d in docs}

    for entry, examples in zip(manifest["shards"], per_shard):
        assert entry["examples"] == len(examples)
        assert entry["tokens"] == sum(len(ids) for ids, _ in examples)
        assert entry["bytes"] == os.path.getsize(os.path.join(out, entry["file"]))
    totals = manifest["totals"]
    input_tokens = sum(len(doc_ids(d)) for d in docs)
    assert totals["input_tokens"] == input_tokens
    assert totals["tokens_dropped"] == 0
    assert totals["examples"] == len(ordered)
    assert totals["tokens"] == input_tokens + 3 * len(ordered) - totals["examples_single_segment"]
    assert totals["examples_single_segment"] == sum(1 for _, s in ordered if s[-1] == 0)
    assert totals["documents_read"] == 8 and totals["documents_skipped"] == 0
    assert totals["files_read"] == 2 and totals["files_empty"] == 0
    assert totals["lines_read"] == 8 * 60 + 6  # one blank line between documents
    assert totals["lines_invalid_utf8"] == 0
    assert manifest["vocab_sha256"] == vocab_sha256(group_vocab)
    assert manifest["vocab_size"] == 85
    assert manifest["builder_version"] == schema.BUILDER_VERSION
    assert (manifest["max_seq_length"], manifest["lowercase"], manifest["seed"]) == (L, True, 1)
    assert manifest_lib.read_manifest(out) == manifest
    manifest_lib.validate_manifest(manifest, vocab_sha256=vocab_sha256(group_vocab),
                                   max_seq_length=L, lowercase=True)


def test_build_fractions_on_real_output(tmp_path, group_vocab):
    rng = random.Random(8)
    docs = make_documents(rng, "ab", lines_per_doc=13000, max_words=3)
    path = write_text(tmp_path / "long.txt", docs)
    out = str(tmp_path / "out")
    manifest = builder.build_pretraining_data([path], group_vocab, out, max_seq_length=L,
                                              num_shards=2)
    examples = [e for shard in read_all(out, manifest).values() for e in shard]
    assert len(examples) > 3000
    for ids, segments in examples:
        check_example(ids, segments, L)
    # Only the two document-final examples may be short without having drawn it.
    single = np.mean([s[-1] == 0 for _, s in examples])
    short = np.mean([len(ids) < L for ids, _ in examples])
    assert abs(single - 0.1) < 0.025, single
    assert abs(short - 0.05) < 0.015, short


def test_build_is_deterministic(tmp_path, corpus, group_vocab):
    files, _ = corpus

    def build(name, seed):
        out = str(tmp_path / name)
        builder.build_pretraining_data(files, group_vocab, out, max_seq_length=L,
                                       num_shards=4, seed=seed)
        return {n: open(os.path.join(out, n), "rb").read()
                for n in sorted(os.listdir(out)) if n.endswith(".tfrecord")}

    first, second, other = build("a", 5), build("b", 5), build("c", 6)
    assert len(first) == 4
    assert first == second
    assert first != other


def test_two_workers_split_files_and_shards(tmp_path, corpus, group_vocab):
    files, docs = corpus
    single_dir, multi_dir = str(tmp_path / "single"), str(tmp_path / "multi")
    single = builder.build_pretraining_data(files, group_vocab, single_dir,
                                            max_seq_length=L, num_shards=4)
    workers = [builder.build_pretraining_data(files, group_vocab, multi_dir, max_seq_length=L,
                                              num_shards=4, shard_index=i, num_workers=2)
               for i in range(2)]

    assert [s["file"] for s in workers[0]["shards"]] == [
        schema.SHARD_PATTERN.format(index=j, count=4) for j in (0, 2)]
    assert [s["file"] for s in workers[1]["shards"]] == [
        schema.SHARD_PATTERN.format(index=j, count=4) for j in (1, 3)]
    assert [w["totals"]["files_read"] for w in workers] == [1, 1]
    assert sorted(os.listdir(multi_dir)) == sorted(
        [schema.SHARD_PATTERN.format(index=j, count=4) for j in range(4)]
        + [manifest_lib.worker_manifest_name(i, 2) for i in range(2)]
        + [manifest_lib.VOCAB_NAME])

    # Files are packed with per-file seeds, so the examples are the same ones.
    single_examples = [e for s in read_all(single_dir, single).values() for e in s]
    merged = manifest_lib.read_manifest(multi_dir)
    multi_examples = [e for s in read_all(multi_dir, merged).values() for e in s]
    assert sorted(multi_examples) == sorted(single_examples)
    assert content_by_document(sorted(multi_examples), L).keys() == set(GROUPS)

    assert merged["totals"] == single["totals"]
    assert len(merged["shards"]) == 4
    assert sum(s["examples"] for s in merged["shards"]) == single["totals"]["examples"]


def test_workers_must_fit_shards(tmp_path, corpus, group_vocab):
    files, _ = corpus
    with pytest.raises(ValueError, match="num_shards"):
        builder.build_pretraining_data(files, group_vocab, str(tmp_path / "o"),
                                       max_seq_length=L, num_shards=1, num_workers=2)
    with pytest.raises(ValueError, match="shard_index"):
        builder.build_pretraining_data(files, group_vocab, str(tmp_path / "o"),
                                       max_seq_length=L, shard_index=2, num_workers=2)


# === Bad input ===


def test_missing_globs_are_named(tmp_path, corpus, group_vocab):
    files, _ = corpus
    missing = [str(tmp_path / "nope" / "*.txt"), str(tmp_path / "absent.txt")]
    with pytest.raises(FileNotFoundError) as error:
        builder.build_pretraining_data([files[0]] + missing, group_vocab, str(tmp_path / "o"))
    message = str(error.value)
    assert all(m in message for m in missing) and files[0] not in message
    assert not os.path.exists(tmp_path / "o")


def test_empty_invalid_gz_and_tokenless_inputs_are_counted(tmp_path, group_vocab):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "0-empty.txt").write_bytes(b"")
    (inputs / "1-blank.txt").write_bytes(b"\n  \n\t\n")
    # Two invalid lines; the bad bytes become U+FFFD, which normalization deletes.
    (inputs / "2-bad.txt").write_bytes(b"a1 \xff a2\nb1 b2\n\nc1 \xc3 c2\n")
    # A document whose only line yields no token (control characters).
    (inputs / "3-tokenless.txt").write_bytes(b"d1 d2\n\n\x01\x02\n\nd3\n")
    with gzip.open(inputs / "4-zipped.txt.gz", "wb") as f:
        f.write(b"e1 e2 e3\ne4\n")
    out = str(tmp_path / "out")
    manifest = builder.build_pretraining_data(str(inputs / "*"), group_vocab, out,
                                              max_seq_length=L, num_shards=1)
    totals = manifest["totals"]
    assert totals["files_read"] == 5
    assert totals["files_empty"] == 2
    assert totals["lines_invalid_utf8"] == 2
    assert totals["documents_skipped"] == 1
    assert totals["documents_read"] == 5  # a/b, c, d1 d2, d3, e
    contents = [check_example(ids, s, L) for ids, s in read_shard(
        os.path.join(out, manifest["shards"][0]["file"]))]
    expected = ["a1 a2 b1 b2", "c1 c2", "d1 d2", "d3", "e1 e2 e3 e4"]
    assert contents == [[word_id(w) for w in text.split()] for text in expected]


@pytest.mark.parametrize("contents", [b"", b"\n  \n\t\n", b"\x01\x02\n\n\x7f\n"],
                         ids=["empty", "blank", "tokenless"])
def test_input_without_words_fails_and_writes_nothing(tmp_path, group_vocab, contents):
    path = tmp_path / "nothing.txt"
    path.write_bytes(contents)
    out = tmp_path / "out"
    with pytest.raises(builder.EmptyCorpusError, match="no pretraining example written") as e:
        builder.build_pretraining_data([str(path)], group_vocab, str(out), max_seq_length=L,
                                       num_shards=2)
    assert str(path) in str(e.value)
    # No shard, no manifest, no temporary file: nothing that training could pick up.
    assert os.listdir(out) == []


def test_worker_without_input_file_fails_before_writing(tmp_path, corpus, group_vocab):
    files, _ = corpus
    out = tmp_path / "out"
    with pytest.raises(builder.EmptyCorpusError, match="worker 2 of 3 has no input file"):
        builder.build_pretraining_data(files, group_vocab, str(out), max_seq_length=L,
                                       num_shards=3, shard_index=2, num_workers=3)
    assert not out.exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path, corpus, group_vocab):
    files, _ = corpus
    out = tmp_path / "out"
    builder.build_pretraining_data(files, group_vocab, str(out), max_seq_length=L, num_shards=2)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    with pytest.raises(FileExistsError, match="overwrite"):
        builder.build_pretraining_data(files, group_vocab, str(out), max_seq_length=L,
                                       num_shards=2)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before

    # A different shard count must not leave the old shards beside the new ones.
    manifest = builder.build_pretraining_data(files, group_vocab, str(out), max_seq_length=L,
                                              num_shards=3, overwrite=True)
    assert sorted(os.listdir(out)) == sorted(
        [s["file"] for s in manifest["shards"]]
        + [schema.MANIFEST_NAME, manifest_lib.VOCAB_NAME])


@pytest.mark.parametrize("name, content, match", [
    ("b.txt.gz", b"this is not gzip data\n" * 10, "b.txt.gz is not a valid gzip file"),
    ("b.txt", gzip.compress(b"a1 a2\n" * 10), "gzip-compressed but not named"),
    # TF's own gzip reader would end this one early without an error.
    ("b.txt.gz", gzip.compress(b"a1 a2\n" * 100_000)[:-200], "not a valid gzip file"),
    ("b.txt", b"a1 a2\n\x00\x01\x02", "byte 6 is NUL"),
    ("b.txt", bytes(range(128, 256)) * 20, "not UTF-8 text"),
])
def test_non_text_input_is_refused_before_anything_is_written(tmp_path, group_vocab, name,
                                                              content, match):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_text(inputs / "a.txt", [[["a1", "a2"]] * 50])
    (inputs / name).write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(files_lib.NotTextError, match=match):
        builder.build_pretraining_data(str(inputs / "*"), group_vocab, str(out),
                                       max_seq_length=L, num_shards=2)
    assert not out.exists()


def test_latin1_bytes_in_text_pass_and_are_counted(tmp_path, group_vocab):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_bytes(b"a1 a2 caf\xe9 a3\n" * 50)
    manifest = builder.build_pretraining_data(str(inputs / "*"), group_vocab,
                                              str(tmp_path / "out"), max_seq_length=L,
                                              num_shards=1)
    assert manifest["totals"]["lines_invalid_utf8"] == 50


def test_overlong_line_names_file_and_line_and_keeps_old_data(tmp_path, group_vocab):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_text(inputs / "a.txt", [[["a1", "a2"]] * 50])
    out = tmp_path / "out"
    builder.build_pretraining_data(str(inputs / "*"), group_vocab, str(out),
                                   max_seq_length=L, num_shards=2)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    (inputs / "b.txt").write_text("a1 a2\n" * 3 + "a3 " * 400 + "\na1\n")
    with pytest.raises(files_lib.LineTooLongError, match=r"b.txt:4: a line of 1200 bytes"):
        builder.build_pretraining_data(str(inputs / "*"), group_vocab, str(out),
                                       max_seq_length=L, num_shards=2, overwrite=True,
                                       max_line_bytes=1000)
    # The failed --overwrite build leaves the previous data whole.
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


# === Real vocabulary and corpus ===


def test_matches_pack_documents_on_shared_corpus_with_bert_vocab(tmp_path, bert_vocab):
    source = [f for f in dev_corpus_files() if f.parent.name == "nltk_inaugural"][0]
    # A slice of a real corpus, with blank lines added as document breaks.
    lines = source.read_text(encoding="utf-8").splitlines()[:40]
    path = tmp_path / "slice.txt"
    path.write_text("\n".join(line if i % 7 else "" for i, line in enumerate(lines)) + "\n",
                    encoding="utf-8")
    out = str(tmp_path / "out")
    manifest = builder.build_pretraining_data([str(path)], bert_vocab, out, max_seq_length=64,
                                              num_shards=1, seed=3)
    built = read_shard(os.path.join(out, manifest["shards"][0]["file"]))

    tokenizer = WordPieceTokenizer(bert_vocab)
    text_lines = path.read_bytes().decode("utf-8").split("\n")[:-1]
    documents, current = [], []
    for line, ids in zip(text_lines, tokenizer.tokenize(text_lines).to_list()):
        if line.strip():
            current.append(ids)
        elif current:
            documents.append(current)
            current = []
    documents.append(current)
    expected = list(example_packer.pack_documents(documents, 64, tokenizer.cls_id, tokenizer.sep_id,
                                           seed=builder.file_seed(3, 0)))
    assert built == expected
    assert manifest["totals"]["input_tokens"] > 500
    assert manifest["vocab_size"] == 30522
