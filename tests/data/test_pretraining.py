"""make_pretraining_dataset on small shards written here (independent of builder.py)."""

import collections
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.data import manifest as manifest_lib
from electra_tf import schema
from electra_tf.data.pretraining import (
    EmptyDataError,
    ShardError,
    make_pretraining_dataset,
    shard_files_for_pipeline,
    token_counts,
)
from electra_tf.text.tokenizer import WordPieceTokenizer, vocab_sha256

L = 16


@pytest.fixture
def tokenizer(tiny_vocab):
    return WordPieceTokenizer(tiny_vocab)


def _example(token_ids, segment_ids):
    feature = {
        schema.TOKEN_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=token_ids)),
        schema.SEGMENT_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=segment_ids)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _sequences(tokenizer, rng, shard, count, max_len):
    """`[CLS] marker A [SEP] B [SEP]`; the marker word names the shard it is in."""
    words = [i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids]
    out = []
    for _ in range(count):
        n = int(rng.integers(5, max_len + 1))
        a = int(rng.integers(1, n - 3))  # words of the first segment after the marker
        body = [int(w) for w in rng.choice(words, size=n - 4)]
        tokens = [tokenizer.cls_id, words[shard]] + body[:a] + [tokenizer.sep_id]
        tokens += body[a:] + [tokenizer.sep_id]
        segments = [0] * (a + 3) + [1] * (n - a - 3)
        out.append((tokens, segments))
    return out


def write_data(data_dir, tokenizer, *, num_shards=4, per_shard=12, max_seq_length=L,
               with_bytes=True, seed=0, **manifest_overrides):
    """Writes shards and manifest.json; returns {shard file: [(tokens, segments)]}."""
    os.makedirs(data_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    data, entries = {}, []
    for shard in range(num_shards):
        name = schema.SHARD_PATTERN.format(index=shard, count=num_shards)
        path = os.path.join(data_dir, name)
        data[name] = _sequences(tokenizer, rng, shard, per_shard, max_seq_length)
        with tf.io.TFRecordWriter(path) as writer:
            for tokens, segments in data[name]:
                writer.write(_example(tokens, segments))
        entry = {"file": name, "examples": per_shard,
                 "tokens": sum(len(t) for t, _ in data[name])}
        if with_bytes:
            entry["bytes"] = os.path.getsize(path)
        entries.append(entry)
    manifest = {
        "builder_version": schema.BUILDER_VERSION,
        "vocab_sha256": vocab_sha256(tokenizer.vocab_path),
        "vocab_size": tokenizer.vocab_size,
        "lowercase": tokenizer.lowercase,
        "max_seq_length": max_seq_length,
        "seed": seed,
        "inputs": [],
        "num_shards": num_shards,
        "shard_index": 0,
        "num_workers": 1,
        "shards": entries,
        "totals": {"examples": num_shards * per_shard,
                   "tokens": sum(e["tokens"] for e in entries)},
    }
    manifest.update(manifest_overrides)
    manifest_lib.write_manifest(data_dir, manifest)
    return data


def test_token_counts_count_every_non_special_token_of_the_shards(tmp_path, tokenizer):
    data = write_data(str(tmp_path), tokenizer, num_shards=3, per_shard=7)
    want = np.zeros(tokenizer.vocab_size, np.int64)
    for sequences in data.values():
        for tokens, _ in sequences:
            np.add.at(want, tokens, 1)
    want[list(tokenizer.special_ids)] = 0
    got = token_counts(str(tmp_path), tokenizer, L)
    np.testing.assert_array_equal(got, want)
    assert got.sum() > 0
    # A sample: the first examples in manifest order (the first shard's 7, then 3).
    first = np.zeros(tokenizer.vocab_size, np.int64)
    ordered = [seq for name in sorted(data) for seq in data[name]]
    for tokens, _ in ordered[:10]:
        np.add.at(first, tokens, 1)
    first[list(tokenizer.special_ids)] = 0
    np.testing.assert_array_equal(token_counts(str(tmp_path), tokenizer, L, max_examples=10),
                                  first)


def _unmasked(data_dir, tokenizer, batch_size=5, **kwargs):
    """Reads everything once, in order, with masking that leaves every token as is."""
    options = dict(shuffle=False, repeat=False, mask_token_rate=0.0, drop_remainder=False)
    options.update(kwargs)
    return [
        {k: v.numpy() for k, v in batch.items()}
        for batch in make_pretraining_dataset(data_dir, tokenizer, batch_size, L, **options)
    ]


def _rows(batches):
    """(tokens, segments) of every real row, unpadded."""
    rows = []
    for b in batches:
        for ids, seg, pad in zip(b[schema.TOKEN_IDS], b[schema.SEGMENT_IDS], b[schema.PADDING_MASK]):
            rows.append((tuple(ids[pad]), tuple(seg[pad])))
    return rows


def _all_written(data):
    return sorted((tuple(t), tuple(s)) for seqs in data.values() for t, s in seqs)


# === Shapes and contents ===


def test_static_shapes_and_dtypes(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 8, L)
    p = int((0.15 + 0.005) * L)
    expected = {
        schema.TOKEN_IDS: ((8, L), tf.int32),
        schema.SEGMENT_IDS: ((8, L), tf.int32),
        schema.PADDING_MASK: ((8, L), tf.bool),
        schema.MASK_POSITIONS: ((8, p), tf.int32),
        schema.MASK_IDS: ((8, p), tf.int32),
        schema.MASK_WEIGHTS: ((8, p), tf.float32),
    }
    spec = {k: (tuple(v.shape), v.dtype) for k, v in ds.element_spec.items()}
    assert spec == expected
    batch = next(iter(ds))
    assert {k: (tuple(v.shape), v.dtype) for k, v in batch.items()} == expected


def test_every_record_once_padded_with_segments(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer, num_shards=3, per_shard=7)
    batches = _unmasked(str(tmp_path), tokenizer)
    assert [len(b[schema.TOKEN_IDS]) for b in batches] == [5, 5, 5, 5, 1]
    assert sorted(_rows(batches)) == _all_written(data)
    for b in batches:
        ids, pad = b[schema.TOKEN_IDS], b[schema.PADDING_MASK]
        np.testing.assert_array_equal(pad, ids != tokenizer.pad_id)
        assert (b[schema.SEGMENT_IDS][~pad] == 0).all()
        # With mask_token_rate=0 the chosen tokens stay; mask_ids still hold them.
        real = b[schema.MASK_WEIGHTS] == 1
        chosen = np.take_along_axis(ids, b[schema.MASK_POSITIONS], axis=1)
        np.testing.assert_array_equal(chosen[real], b[schema.MASK_IDS][real])


def _restore(batch):
    """The batch as numpy, with the original ids put back at the masked positions."""
    b = {k: v.numpy() for k, v in batch.items()}
    ids, real = b[schema.TOKEN_IDS].copy(), b[schema.MASK_WEIGHTS] == 1
    rows, slots = np.nonzero(real)
    ids[rows, b[schema.MASK_POSITIONS][rows, slots]] = b[schema.MASK_IDS][rows, slots]
    return dict(b, **{schema.TOKEN_IDS: ids})


def test_masked_batches_restore_to_written_records(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 6, L, shuffle=True, repeat=False)
    rows, num_masked, num_chosen = [], 0, 0
    for batch in ds:
        real = batch[schema.MASK_WEIGHTS].numpy() == 1
        chosen = tf.gather(batch[schema.TOKEN_IDS], batch[schema.MASK_POSITIONS], batch_dims=1)
        num_masked += (chosen.numpy()[real] == tokenizer.mask_id).sum()
        num_chosen += real.sum()
        assert (real.sum(axis=1) >= 1).all()
        rows += _rows([_restore(batch)])
    assert sorted(rows) == _all_written(data)
    assert num_masked > 0.5 * num_chosen


def test_repeat_masks_each_epoch_anew(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer, num_shards=2, per_shard=5)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, shuffle=False)
    positions = collections.defaultdict(list)  # record -> its mask positions, per epoch
    for batch in ds.take(5):  # 20 rows: two epochs of 10 records
        b = _restore(batch)
        for row, record in enumerate(_rows([b])):
            positions[record].append(tuple(b[schema.MASK_POSITIONS][row]))
    assert sorted(positions) == _all_written(data)
    assert all(len(p) == 2 for p in positions.values())
    # Dynamic masking: most records are masked differently in the second epoch.
    assert sum(p[0] != p[1] for p in positions.values()) >= 7


def test_same_seed_same_batches(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer)

    def first_batches(seed, **kwargs):
        ds = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, seed=seed, **kwargs)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.take(15)]

    a, b = first_batches(3), first_batches(3)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    c = first_batches(4)
    assert any(not np.array_equal(x[schema.TOKEN_IDS], z[schema.TOKEN_IDS]) for x, z in zip(a, c))
    # Unshuffled, the record order and the masks are fixed too.
    d, e = first_batches(0, shuffle=False), first_batches(0, shuffle=False)
    for x, y in zip(d, e):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_skip_batches_resumes_the_same_stream(tmp_path, tokenizer):
    # 48 records in batches of 4: skipping 7 crosses an epoch boundary too.
    write_data(tmp_path, tokenizer)
    full = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, seed=5)
    resumed = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, seed=5, skip_batches=7)
    expected = list(full.take(20))[7:]
    for x, y in zip(expected, resumed.take(13)):
        for key in x:
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())


# === Sharding across input pipelines ===


def test_input_context_reads_disjoint_files(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer, num_shards=5, per_shard=4)
    markers = {}  # marker word -> shard file
    for name, seqs in data.items():
        markers[seqs[0][0][1]] = name
    seen = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        batches = _unmasked(str(tmp_path), tokenizer, batch_size=4, input_context=ctx)
        # The global batch is split between the replicas.
        assert max(len(b[schema.TOKEN_IDS]) for b in batches) == 2
        rows = _rows(batches)
        seen.append({markers[tokens[1]] for tokens, _ in rows})
        # Every record of those files, and nothing else.
        assert sorted(rows) == sorted(
            (tuple(t), tuple(s)) for name in seen[-1] for t, s in data[name]
        )
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(data)


def test_fewer_files_than_pipelines(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer, num_shards=2)
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0)
    with pytest.raises(ValueError, match="2 shard files cannot feed 3 input pipelines"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 6, L, input_context=ctx)
    assert shard_files_for_pipeline(list("abcde"), None) == list("abcde")


# === Refusing bad data ===


def test_missing_manifest(tmp_path, tokenizer):
    with pytest.raises(manifest_lib.ManifestError, match="no manifest.json"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


@pytest.mark.parametrize(
    "override,field",
    [({"vocab_sha256": "0" * 64}, "vocab_sha256"),
     ({"max_seq_length": 2 * L}, "max_seq_length"),
     ({"lowercase": False}, "lowercase")],
)
def test_manifest_mismatch_names_field(tmp_path, tokenizer, override, field):
    write_data(tmp_path, tokenizer, **override)
    with pytest.raises(manifest_lib.ManifestError, match=field):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


def test_missing_shard_named(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer)
    name = sorted(data)[2]
    os.remove(tmp_path / name)
    with pytest.raises(ShardError, match=re.escape(name) + " is missing"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


def test_shard_size_differs_from_manifest(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer)
    name = sorted(data)[1]
    with open(tmp_path / name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ShardError, match=re.escape(name) + r" is \d+ bytes"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


def _write_empty_data(data_dir, tokenizer, num_shards=2):
    """What the builder wrote for an empty corpus before it refused to: empty shards
    and a manifest listing 0 examples."""
    write_data(data_dir, tokenizer, num_shards=num_shards, per_shard=0,
               totals={"examples": 0, "tokens": 0})


def test_manifest_without_examples_is_refused(tmp_path, tokenizer):
    _write_empty_data(tmp_path, tokenizer)
    assert all(os.path.getsize(tmp_path / n) == 0 for n in os.listdir(tmp_path)
               if n.endswith(".tfrecord"))
    with pytest.raises(EmptyDataError, match=re.escape(str(tmp_path)) + " holds no pretraining"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


def test_empty_shard_with_examples_in_manifest_is_refused(tmp_path, tokenizer):
    data = write_data(tmp_path, tokenizer, with_bytes=False)
    name = sorted(data)[3]
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ShardError, match=re.escape(name) + " is empty but the manifest lists 12"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L)


def test_pipeline_with_only_empty_shards_is_refused(tmp_path, tokenizer):
    """Pipeline 1 of 2 reads shards 1 and 3; with both empty its stream would never
    yield a batch, whatever the other pipeline holds."""
    data = write_data(tmp_path, tokenizer, num_shards=4)
    manifest = manifest_lib.read_manifest(str(tmp_path))
    for j in (1, 3):
        (tmp_path / sorted(data)[j]).write_bytes(b"")
        manifest["shards"][j].update(examples=0, tokens=0, bytes=0)
    manifest_lib.write_manifest(str(tmp_path), manifest)

    ctx = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                      num_replicas_in_sync=2) for i in range(2)]
    batch = next(iter(make_pretraining_dataset(str(tmp_path), tokenizer, 8, L,
                                               input_context=ctx[0])))
    assert batch[schema.TOKEN_IDS].shape == (4, L)
    with pytest.raises(EmptyDataError, match="input pipeline 1 would read only empty shards"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 8, L, input_context=ctx[1])


def _damage(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncated mid-record":
        raw = raw[: len(raw) // 2 + 3]
    elif how == "truncated at a record boundary":
        # Drops the last record whole: a clean EOF that TFRecordDataset cannot notice.
        last = tf.data.TFRecordDataset(str(path)).reduce(b"", lambda _, r: r).numpy()
        raw = raw[: len(raw) - (len(last) + 16)]
    elif how == "flipped payload byte":
        raw[len(raw) // 2] ^= 0xFF
    elif how == "flipped length byte":
        raw[0] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "how",
    ["truncated mid-record", "truncated at a record boundary", "flipped payload byte",
     "flipped length byte"],
)
def test_corrupt_shard_named_while_reading(tmp_path, tokenizer, how):
    # No "bytes" in the manifest, so the damage is only found by reading.
    data = write_data(tmp_path, tokenizer, with_bytes=False)
    name = sorted(data)[3]
    _damage(tmp_path / name, how)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(name) + ".*manifest lists 12"):
        for _ in ds:
            pass


def test_intact_shards_read_without_error(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer, with_bytes=False)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, repeat=False)
    assert sum(int(b[schema.TOKEN_IDS].shape[0]) for b in ds) == 48


@pytest.mark.parametrize("defect", ["segment_ids shorter", "longer than L"])
def test_bad_record_named(tmp_path, tokenizer, defect):
    data = write_data(tmp_path, tokenizer, num_shards=2, per_shard=3)
    name = sorted(data)[1]
    with tf.io.TFRecordWriter(str(tmp_path / name)) as writer:
        for tokens, segments in data[name]:
            if defect == "segment_ids shorter":
                segments = segments[:-1]
            else:
                tokens, segments = tokens + [tokenizer.sep_id] * L, segments + [1] * L
            writer.write(_example(tokens, segments))
    manifest = manifest_lib.read_manifest(str(tmp_path))
    manifest["shards"][1]["bytes"] = os.path.getsize(tmp_path / name)
    manifest_lib.write_manifest(str(tmp_path), manifest)
    ds = make_pretraining_dataset(str(tmp_path), tokenizer, 2, L, repeat=False, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="record in shard .*" + re.escape(name)):
        for _ in ds:
            pass


def test_bad_arguments(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer)
    with pytest.raises(ValueError, match="max_predictions"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, max_predictions=L + 1)
    with pytest.raises(ValueError, match="mask_rate"):
        make_pretraining_dataset(str(tmp_path), tokenizer, 4, L, mask_rate=1.5)


def test_whole_word_masking_masks_the_pieces_of_a_word_together(tmp_path, tokenizer):
    write_data(tmp_path, tokenizer, max_seq_length=L)
    continuing = {i for i, piece in enumerate(tokenizer.vocab) if piece.startswith("##")}
    special = set(tokenizer.special_ids)
    options = dict(shuffle=False, repeat=False, drop_remainder=False, mask_token_rate=1.0,
                   mask_rate=0.3)
    plain = list(make_pretraining_dataset(str(tmp_path), tokenizer, 6, L, **options))
    whole = list(make_pretraining_dataset(str(tmp_path), tokenizer, 6, L,
                                          whole_word_masking=True, **options))
    masked_multi_piece = 0
    for p, w in zip(plain, whole):
        np.testing.assert_array_equal(p[schema.MASK_WEIGHTS].numpy().sum(-1),
                                      w[schema.MASK_WEIGHTS].numpy().sum(-1))
        ids = w[schema.TOKEN_IDS].numpy()
        originals = p[schema.TOKEN_IDS].numpy().copy()
        # Unmask the plain batch's view of the row: the original ids come back from mask_ids.
        for row in range(ids.shape[0]):
            pos = p[schema.MASK_POSITIONS].numpy()[row][p[schema.MASK_WEIGHTS].numpy()[row] > 0]
            originals[row, pos] = p[schema.MASK_IDS].numpy()[row][:len(pos)]
            words, current = [], []
            for i, token in enumerate(originals[row]):
                if token in special:
                    current = []
                    continue
                if token in continuing and current:
                    current.append(i)
                else:
                    current = [i]
                    words.append(current)
            is_masked = ids[row] == tokenizer.mask_id
            cut = [wd for wd in words if 0 < is_masked[wd].sum() < len(wd)]
            assert len(cut) <= 1, (originals[row], ids[row])
            masked_multi_piece += sum(len(wd) > 1 and is_masked[wd].all() for wd in words)
    assert masked_multi_piece > 0
