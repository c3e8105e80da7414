"""Pretraining input pipeline: TFRecord shards -> padded, dynamically masked batches.

    manifest check -> files (sharded per input pipeline) -> [shuffle] -> [repeat]
      -> parallel interleave of per-file readers (each checks its record count)
      -> [shuffle records] -> batch serialized records -> parse_example (vectorized)
      -> pad to max_seq_length -> mask the whole batch (stateless, seeded) -> prefetch

Masking happens here, not in the builder, so every epoch sees new masks (RoBERTa's
"dynamic masking", which ELECTRA's generator also relies on).

Corrupt data: tf.data's DataLossError does not say which file it came from, and a
shard truncated exactly at a record boundary reads as a clean, shorter file. So each
shard is read on its own, errors inside it end that shard, and the number of records
read is compared with the manifest's count; a mismatch fails with an error naming the
shard. Shard sizes are also compared with the manifest's "bytes" up front.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf import schema
from electra_tf.data import manifest as manifest_lib
from electra_tf.text import tokenizer as tokenizer_lib


class ShardError(ValueError):
    """A shard listed in the manifest is missing or does not have the recorded size."""


class EmptyDataError(ValueError):
    """The data (or one input pipeline's part of it) holds no record.

    A repeating pipeline over shards without a record never yields a batch and never
    ends, so training would hang on its first step; this is raised instead.
    """


# === Masking ===


def mask_tokens(token_ids, padding_mask, *, special_ids, mask_id, vocab_size, mask_rate,
                mask_token_rate, random_token_rate, max_predictions, seed,
                continuation_ids=None):
    """ELECTRA/BERT masking of a padded batch, with stateless random ops.

    For each sequence, with `n` its number of non-special, non-padding tokens,
    `min(max(1, round(n * mask_rate)), max_predictions, n)` positions are chosen
    uniformly among those tokens (`round` is TensorFlow's, half to even). Of the
    chosen tokens, a fraction `mask_token_rate` (in expectation) become `mask_id`,
    `random_token_rate` a uniformly drawn non-special id, and the rest stay unchanged.

    keras-hub's `MaskedLMMaskGenerator` (tf-text `mask_language_model`) draws with
    stateful ops and a per-token selection count, so it can neither reproduce a batch
    from a seed nor give ELECTRA's exact count; hence this function.

    Args:
      token_ids: int tensor `[batch, seq_len]`, padded.
      padding_mask: bool tensor `[batch, seq_len]`, True on real tokens.
      special_ids: ids never chosen for masking nor drawn as random replacements.
      mask_id: id of `[MASK]`.
      vocab_size: number of ids; random replacements are drawn from `[0, vocab_size)`
        minus `special_ids`.
      mask_rate: fraction of candidate tokens to predict.
      mask_token_rate: probability that a chosen token becomes `mask_id`.
      random_token_rate: probability that a chosen token becomes a random token.
      max_predictions: `P`, the number of prediction slots (<= seq_len).
      seed: int tensor `[2]`; the same seed gives the same result.
      continuation_ids: ids of word-continuing ("##") pieces, or None to choose
        pieces independently (Google's ELECTRA).

    Returns:
      Dict (names from `schema`):
        token_ids: `[batch, seq_len]`, same dtype as the input, with replacements.
        mask_positions: int32 `[batch, P]`, chosen positions in increasing order.
        mask_ids: `[batch, P]`, the original ids at `mask_positions`.
        mask_weights: float32 `[batch, P]`, 1.0 for chosen positions.
      Unused slots (weight 0) have position 0 and id 0, so gathers on them stay in
      range; losses must weight them out.
    """
    config_lib.check_masking_rates(mask_rate, mask_token_rate, random_token_rate)
    token_ids = tf.convert_to_tensor(token_ids)
    padding_mask = tf.convert_to_tensor(padding_mask, dtype=tf.bool)
    dtype = token_ids.dtype
    seq_len = token_ids.shape[-1]
    if max_predictions < 1 or (seq_len is not None and max_predictions > seq_len):
        raise ValueError(f"max_predictions must be in [1, seq_len={seq_len}], got {max_predictions}")
    special_ids = sorted(set(int(i) for i in special_ids))
    non_special = [i for i in range(vocab_size) if i not in set(special_ids)]
    if random_token_rate > 0 and not non_special:
        raise ValueError("random_token_rate > 0 needs a vocabulary with non-special tokens")

    select_seed, action_seed, random_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    shape = tf.shape(token_ids)
    is_special = tf.reduce_any(
        token_ids[..., tf.newaxis] == tf.constant(special_ids, dtype=dtype), axis=-1
    )
    candidates = padding_mask & ~is_special
    num_candidates = tf.reduce_sum(tf.cast(candidates, tf.int32), axis=-1)
    num_to_mask = tf.cast(tf.round(tf.cast(num_candidates, tf.float32) * mask_rate), tf.int32)
    num_to_mask = tf.minimum(tf.maximum(num_to_mask, 1), tf.minimum(num_candidates, max_predictions))

    # The k largest of i.i.d. uniform scores are a uniform k-subset; non-candidates
    # score below every candidate, and k <= number of candidates.
    uniform = tf.random.stateless_uniform(shape, select_seed)
    if continuation_ids is not None:
        # A vocabulary-sized lookup, not a comparison with every "##" id: this runs in
        # the tf.data map, and a vocabulary holds thousands of such ids.
        lookup = np.zeros([vocab_size], dtype=bool)
        lookup[list(continuation_ids)] = True
        is_continuation = tf.gather(tf.constant(lookup), token_ids)
        # Word k of a row (counting word starts) takes that row's k-th uniform, so
        # all its pieces tie and top_k (stable on ties) takes them together.
        word_index = tf.maximum(tf.cumsum(tf.cast(~is_continuation, tf.int32), axis=-1) - 1, 0)
        uniform = tf.gather(uniform, word_index, batch_dims=1)
    scores = tf.where(candidates, uniform, -1.0)
    _, top = tf.math.top_k(scores, k=max_predictions, sorted=True)
    is_real = tf.range(max_predictions)[tf.newaxis, :] < num_to_mask[:, tf.newaxis]
    # Sorting with unused slots pushed past the end keeps real slots first.
    positions = tf.sort(tf.where(is_real, top, tf.int32.max), axis=-1)
    positions = tf.where(is_real, positions, 0)
    original = tf.gather(token_ids, positions, batch_dims=1)

    slots_shape = tf.shape(positions)
    action = tf.random.stateless_uniform(slots_shape, action_seed)
    if random_token_rate > 0:
        random_ids = tf.gather(
            tf.constant(non_special, dtype=dtype),
            tf.random.stateless_uniform(
                slots_shape, random_seed, minval=0, maxval=len(non_special), dtype=tf.int32
            ),
        )
    else:
        random_ids = original
    replacement = tf.where(
        action < mask_token_rate,
        tf.cast(mask_id, dtype),
        tf.where(action < mask_token_rate + random_token_rate, random_ids, original),
    )
    # scatter_nd adds duplicates: unused slots all point at position 0 but add 0.
    delta = tf.where(is_real, replacement - original, tf.zeros_like(original))
    batch_index = tf.broadcast_to(tf.range(slots_shape[0])[:, tf.newaxis], slots_shape)
    indices = tf.stack([batch_index, positions], axis=-1)
    masked = token_ids + tf.scatter_nd(indices, delta, tf.cast(shape, tf.int32))
    return {
        schema.TOKEN_IDS: masked,
        schema.MASK_POSITIONS: positions,
        schema.MASK_IDS: tf.where(is_real, original, tf.zeros_like(original)),
        schema.MASK_WEIGHTS: tf.cast(is_real, tf.float32),
    }


# === Shards ===


def _checked_shards(data_dir, manifest):
    """Paths and record counts of the manifest's shards, after checking they exist.

    Raises:
      ManifestError: a shard entry lacks "file" or "examples".
      ShardError: naming every missing shard, every empty one the manifest says
        holds examples, and every one whose size differs from the manifest's "bytes".
    """
    entries = manifest.get("shards")
    if not entries:
        raise manifest_lib.ManifestError(f"the manifest in {data_dir} lists no shards")
    shards, problems = [], []
    for i, entry in enumerate(entries):
        for key in ("file", "examples"):
            if key not in entry:
                raise manifest_lib.ManifestError(
                    f"the manifest in {data_dir}: shard entry {i} lacks {key!r}"
                )
        path = os.path.join(data_dir, entry["file"])
        if not tf.io.gfile.exists(path):
            problems.append(f"{path} is missing")
            continue
        size = tf.io.gfile.stat(path).length
        if size == 0 and int(entry["examples"]) > 0:
            problems.append(f"{path} is empty but the manifest lists {entry['examples']} "
                            "examples in it")
        elif "bytes" in entry and size != entry["bytes"]:
            problems.append(
                f"{path} is {size} bytes but the manifest records {entry['bytes']} "
                "(truncated or rewritten)"
            )
        shards.append((path, int(entry["examples"])))
    if problems:
        raise ShardError(f"bad shards in {data_dir}: " + "; ".join(problems))
    return shards


def shard_files_for_pipeline(files, input_context):
    """The disjoint subset of `files` read by this input pipeline (every n-th file).

    Raises:
      ValueError: fewer files than input pipelines, which would leave some empty.
    """
    if input_context is None:
        return list(files)
    num_pipelines = input_context.num_input_pipelines
    if len(files) < num_pipelines:
        raise ValueError(
            f"{len(files)} shard files cannot feed {num_pipelines} input pipelines: "
            "rebuild the data with at least as many shards as input pipelines"
        )
    return list(files)[input_context.input_pipeline_id :: num_pipelines]


# Records are counted in blocks: a per-record check costs more than reading them.
_COUNT_BLOCK = 256


def _read_shard(path, expected, file_index):
    """Records of one shard, each as `(serialized, file_index)`.

    Any read error ends the shard; the record count check after its last record then
    fails naming the file instead of an anonymous DataLossError.
    """
    blocks = (
        tf.data.TFRecordDataset(path)
        .ignore_errors(log_warning=True)
        .batch(_COUNT_BLOCK)
        # batch() never emits an empty block, so an empty one marks the end.
        .concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)))
    )

    def count(total, block):
        size = tf.size(block, out_type=tf.int64)
        check = tf.debugging.Assert(
            tf.logical_or(size > 0, tf.equal(total, expected)),
            [tf.strings.format(
                "shard {} yielded {} records but its manifest lists {}: the file is "
                "truncated, corrupt (TFRecord length/CRC check failed) or not the one "
                "the manifest describes",
                (path, total, expected),
            )],
        )
        with tf.control_dependencies([check]):
            return total + size, (block, tf.fill(tf.shape(block), file_index))

    return blocks.scan(tf.constant(0, tf.int64), count).unbatch()


# === Pipeline ===


def _parse_padded(serialized, file_index, *, file_names, max_seq_length, pad_id,
                  static_batch):
    """Parses a batch of records at once and pads it.

    Args:
      serialized: string `[batch]` of serialized `tf.train.Example`s.
      file_index: int32 `[batch]`, each record's index into `file_names`.

    Returns:
      token_ids, segment_ids: int32 `[batch, max_seq_length]`, padded with `pad_id`
        and 0; padding_mask: bool `[batch, max_seq_length]`.
    """
    parsed = tf.io.parse_example(serialized, schema.TFRECORD_FEATURES)
    token_ids, segment_ids = parsed[schema.TOKEN_IDS], parsed[schema.SEGMENT_IDS]
    lengths, segment_lengths = token_ids.row_lengths(), segment_ids.row_lengths()
    # to_tensor() would silently cut records longer than max_seq_length.
    bad = (lengths == 0) | (lengths > max_seq_length) | (lengths != segment_lengths)
    first_bad = tf.argmax(bad)
    check = tf.debugging.Assert(
        ~tf.reduce_any(bad),
        [tf.strings.format(
            "a record in shard {} has {} token_ids and {} segment_ids; expected the "
            "same number, between 1 and max_seq_length={}",
            (
                tf.gather(file_names, tf.gather(file_index, first_bad)),
                tf.gather(lengths, first_bad),
                tf.gather(segment_lengths, first_bad),
                max_seq_length,
            ),
        )],
    )
    with tf.control_dependencies([check]):
        dense_shape = [static_batch, max_seq_length]
        token_ids = tf.cast(token_ids, tf.int32).to_tensor(
            default_value=pad_id, shape=dense_shape
        )
        segment_ids = tf.cast(segment_ids, tf.int32).to_tensor(default_value=0, shape=dense_shape)
        padding_mask = tf.sequence_mask(lengths, max_seq_length)
    return token_ids, segment_ids, padding_mask


_PREDICTION_FEATURES = (schema.MASK_POSITIONS, schema.MASK_IDS, schema.MASK_WEIGHTS)


def check_data_dir(data_dir, tokenizer, max_seq_length):
    """Validates data_dir's manifest against the tokenizer and length, and its shards.

    Cheap (no record is read), so callers run it before building any model.

    Returns:
      (manifest, [(shard path, expected examples), ...])

    Raises:
      ManifestError naming the differing field; ShardError naming a missing or
      wrongly sized shard; EmptyDataError if the shards hold no example at all.
    """
    manifest = manifest_lib.read_manifest(data_dir)
    manifest_lib.validate_manifest(
        manifest,
        vocab_sha256=tokenizer_lib.vocab_sha256(tokenizer.vocab_path),
        max_seq_length=max_seq_length,
        lowercase=tokenizer.lowercase,
        data_dir=data_dir,
    )
    shards = _checked_shards(data_dir, manifest)
    if not sum(n for _, n in shards):
        raise EmptyDataError(
            f"{data_dir} holds no pretraining example: its manifest lists 0 examples in "
            f"{len(shards)} shard(s); rebuild it from a corpus with text "
            "(tools/build_pretraining_data.py)")
    return manifest, shards


def token_counts(data_dir, tokenizer, max_seq_length, max_examples=200_000):
    """How often each id occurs in the data: the unigram distribution a sampler can
    be flattened toward (`pretraining.flatten_toward`).

    Reads the first `max_examples` examples of the shards in manifest order (a sample
    of a large corpus is enough for a unigram estimate). Special tokens count 0.

    Returns:
      int64 numpy `[vocab_size]`.

    Raises:
      as `check_data_dir`.
    """
    _, shards = check_data_dir(data_dir, tokenizer, max_seq_length)
    records = tf.data.Dataset.from_tensor_slices(
        (tf.constant([p for p, _ in shards]), tf.constant([n for _, n in shards], tf.int64),
         tf.range(len(shards)))
    ).flat_map(_read_shard).take(max_examples).batch(1024)
    counts = np.zeros(tokenizer.vocab_size, np.int64)
    for serialized, _ in records:
        ids = tf.io.parse_example(serialized, schema.TFRECORD_FEATURES)[schema.TOKEN_IDS]
        counts += np.bincount(ids.values.numpy(), minlength=tokenizer.vocab_size)[
            :tokenizer.vocab_size]
    counts[list(tokenizer.special_ids)] = 0
    return counts


def make_pretraining_dataset(data_dir, tokenizer, batch_size, max_seq_length, *,
                             mask_rate=0.15, mask_token_rate=0.85, random_token_rate=0.0,
                             max_predictions=None, shuffle=True, repeat=True, seed=0,
                             input_context=None, shuffle_buffer=10000, cycle_length=8,
                             drop_remainder=True, skip_batches=0, whole_word_masking=False):
    """Masked pretraining batches from a directory of shards and its manifest.

    Args:
      data_dir: directory holding `manifest.json` (or per-worker manifests) and shards.
      tokenizer: `electra_tf.text.tokenizer.WordPieceTokenizer` the data was built with.
      batch_size: GLOBAL batch size; with `input_context` each pipeline yields
        `input_context.get_per_replica_batch_size(batch_size)` sequences per batch.
      max_seq_length: `L`; sequences are padded to it.
      mask_rate, mask_token_rate, random_token_rate: see `mask_tokens`.
      max_predictions: `P`; defaults to `config.max_predictions(mask_rate, L)`.
      shuffle: shuffle files and records (seeded).
      repeat: repeat forever.
      seed: seeds shuffling and masking; the same seed and config give the same batches.
      input_context: `tf.distribute.InputContext`; each pipeline reads a disjoint
        subset of the shard files.
      shuffle_buffer: records held by the shuffle buffer.
      cycle_length: files read concurrently.
      drop_remainder: drop a last partial batch, making the batch dimension static.
      skip_batches: start after this many batches, exactly where a stream built with
        the same arguments would be then (same records, same masks): a resumed run
        passes its global step. Skipped batches are read but not parsed or masked.
      whole_word_masking: mask all WordPieces of a word together (see `mask_tokens`).

    Returns:
      `tf.data.Dataset` of dicts (names from `schema`), `B` the per-pipeline batch:
        token_ids int32 `[B, L]` (masked), segment_ids int32 `[B, L]`,
        padding_mask bool `[B, L]`, mask_positions int32 `[B, P]`,
        mask_ids int32 `[B, P]`, mask_weights float32 `[B, P]`.

    Raises:
      ManifestError: no manifest, or one built for another vocabulary, casing or a
        longer max_seq_length (naming the field).
      ShardError: a listed shard is missing or has the wrong size (naming it).
      EmptyDataError: the data, or this pipeline's shards, hold no example (a
        repeating stream over them would block forever).
      ValueError: bad arguments, or fewer shard files than input pipelines.
    At iteration time, a corrupt or truncated shard, or a record that is empty,
    longer than `L` or has mismatched feature lengths, fails with
    `tf.errors.InvalidArgumentError` naming the shard.
    """
    manifest, shards = check_data_dir(data_dir, tokenizer, max_seq_length)

    config_lib.check_masking_rates(mask_rate, mask_token_rate, random_token_rate)
    if max_predictions is None:
        max_predictions = config_lib.max_predictions(mask_rate, max_seq_length)
    if not 1 <= max_predictions <= max_seq_length:
        raise ValueError(
            f"max_predictions must be in [1, max_seq_length={max_seq_length}], got {max_predictions}"
        )
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        pipeline_id = input_context.input_pipeline_id
    else:
        pipeline_id = 0
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shards = shard_files_for_pipeline(shards, input_context)
    if not sum(n for _, n in shards):
        raise EmptyDataError(
            f"input pipeline {pipeline_id} would read only empty shards of {data_dir} "
            f"({', '.join(os.path.basename(p) for p, _ in shards)}): rebuild the data with "
            "fewer shards or more text")
    paths = [p for p, _ in shards]
    logging.info(
        "pretraining data %s: pipeline %d reads %d of %d shards, batch %d, L=%d, P=%d",
        data_dir, pipeline_id, len(shards), len(manifest["shards"]), batch_size,
        max_seq_length, max_predictions,
    )

    files = tf.data.Dataset.from_tensor_slices(
        (paths, tf.constant([n for _, n in shards], tf.int64), tf.range(len(paths)))
    )
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    records = files.interleave(
        _read_shard,
        cycle_length=min(cycle_length, len(paths)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = records.batch(batch_size, drop_remainder=drop_remainder).enumerate()
    if skip_batches:
        # After enumerate: the mask seed of each batch is its index, kept by the skip.
        batches = batches.skip(skip_batches)

    continuation_ids = None
    if whole_word_masking:
        continuation_ids = [i for i, piece in enumerate(tokenizer.vocab)
                            if piece.startswith("##")]
    file_names = tf.constant(paths)
    static_batch = batch_size if drop_remainder else None
    # Each pipeline draws its own masks; each batch folds its index into the seed.
    mask_seed = tf.constant([seed, pipeline_id], dtype=tf.int64)

    def to_features(step, serialized_and_file):
        token_ids, segment_ids, padding_mask = _parse_padded(
            *serialized_and_file, file_names=file_names, max_seq_length=max_seq_length,
            pad_id=tokenizer.pad_id, static_batch=static_batch,
        )
        features = mask_tokens(
            token_ids,
            padding_mask,
            special_ids=tokenizer.special_ids,
            mask_id=tokenizer.mask_id,
            vocab_size=tokenizer.vocab_size,
            mask_rate=mask_rate,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            max_predictions=max_predictions,
            seed=tf.random.experimental.stateless_fold_in(mask_seed, step),
            continuation_ids=continuation_ids,
        )
        features[schema.SEGMENT_IDS] = segment_ids
        features[schema.PADDING_MASK] = padding_mask
        for name, value in features.items():
            width = max_predictions if name in _PREDICTION_FEATURES else max_seq_length
            features[name] = tf.ensure_shape(value, [static_batch, width])
        return features

    return batches.map(
        to_features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).prefetch(tf.data.AUTOTUNE)
