"""Writing pretraining examples: sharded TFRecords under temporary names, renamed when
complete, and the output directory's bookkeeping (which shards a worker writes, which
old files conflict, removing them only once the new ones exist).
"""

import os

import tensorflow as tf

from electra_tf import schema
from electra_tf.data import manifest as manifest_lib

def worker_shard_indices(num_shards, shard_index, num_workers):
    """Global indices of the shards worker `shard_index` writes: j % num_workers == i."""
    return list(range(shard_index, num_shards, num_workers))


def _existing_outputs(output_dir):
    names = [os.path.basename(p) for p in
             tf.io.gfile.glob(os.path.join(output_dir, schema.SHARD_GLOB))]
    names += [os.path.basename(p) for p in
              tf.io.gfile.glob(os.path.join(output_dir, "manifest*.json"))]
    return names


def prepare_output_dir(output_dir, shard_indices, num_shards, shard_index, num_workers,
                        overwrite):
    """Creates `output_dir`; refuses conflicting files unless `overwrite`.

    Conflicting: this worker's own shards or manifest, and files of another layout
    (other shard or worker counts), which would otherwise mix with the new ones.
    Other workers' files of the same layout are left alone.

    Returns:
      The conflicting file names. They are removed (`remove_old_outputs`) only once
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


def remove_old_outputs(output_dir, names, keep):
    """Removes the old files `names` except `keep` (shards the new ones replace by
    rename); the old manifest goes first, so it never describes the new shards."""
    for name in sorted(names, key=lambda n: not n.endswith(".json")):
        if name in keep:
            continue
        try:
            tf.io.gfile.remove(os.path.join(output_dir, name))
        except tf.errors.NotFoundError:
            pass  # another worker removed it first


class ShardWriter:
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
