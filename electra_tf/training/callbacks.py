"""Checkpointing/resume, metric logging (TensorBoard + metrics.jsonl) and the NaN guard.

The global step is always `model.optimizer.iterations`: it is saved in every
checkpoint, so after a restart the step counter, the learning-rate schedule and the
logged steps continue where the last checkpoint left them.
"""

import json
import math
import os
import re
import time

import keras
import tensorflow as tf
from absl import logging

from electra_tf import files


def _rng_states(model):
    """The state variables of every Keras SeedGenerator in the model (dropout, sampling).

    They are not part of `model.weights`, and a checkpoint without them would resume
    with different dropout masks and generator samples than an uninterrupted run.
    """
    return [v for v in model.variables if "seed_generator_state" in v.path]


# What a checkpoint that cannot be restored raises: a missing or unreadable file
# (NotFoundError, DataLossError: checksum), a truncated data file (IndexError, "Read
# less bytes than requested"), objects that do not match (AssertionError).
_RESTORE_ERRORS = (tf.errors.OpError, ValueError, AssertionError, LookupError)
_CHECKPOINT_FILE = re.compile(r"^(ckpt-(\d+))\.(?:index|data-\d+-of-\d+)$")


class CheckpointRestoreError(ValueError):
    """Checkpoints exist but none of them can be restored."""


def _short_reason(error):
    """One line out of a restore error (TF's can span many, with op names first)."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).strip().split("\n")[0]
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(error).__name__}: {text}"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions); earlier ones are intact."""


# What a full or unwritable file system raises from TF's file ops.
_WRITE_ERRORS = (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                 tf.errors.FailedPreconditionError, tf.errors.UnknownError)


class TrainingCheckpoint:
    """Model, optimizer and RNG states in `directory`, the last `max_to_keep` kept.

    tf.train.CheckpointManager writes the data and index files first and then
    atomically replaces the `checkpoint` state file, so a kill at any moment leaves
    the previous complete checkpoint as the latest one. A checkpoint damaged later
    (a truncated data file, a deleted index, flipped bits) is skipped on restore
    with a warning naming it, for the newest one that restores; if none does,
    `restore_latest` refuses rather than silently starting over from step 0.

    The model and its optimizer must be built before `restore_latest`, so that every
    variable exists and is restored eagerly (no deferred restoration).

    Multi-worker: every worker restores from `directory`, and every worker must
    take part in each save, since reading a distributed variable may need the
    other workers (a collective). Only the chief writes `directory`; the others
    write into `directory/workertemp_<worker_id>` and delete it at once (the
    pattern of TensorFlow's multi-worker guide).

    Args:
      model: a built Keras model with a built optimizer.
      directory: checkpoint directory (shared by all workers).
      max_to_keep: checkpoints kept.
      is_chief: whether this process writes `directory`.
      worker_id: this worker's index, naming its scratch directory.
    """

    def __init__(self, model, directory, max_to_keep=5, is_chief=True, worker_id=0):
        self.directory = directory
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, rng=_rng_states(model)
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=max_to_keep, checkpoint_name="ckpt"
        )
        self._scratch = os.path.join(directory, f"workertemp_{worker_id}")
        self._step = model.optimizer.iterations

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def candidates(self):
        """Checkpoint prefixes in `directory`, newest (highest step) first.

        Those the state file lists, plus any `ckpt-N` whose files are there but which
        it does not list (e.g. the state file was lost), so that losing the state
        file does not silently restart training from step 0.
        """
        prefixes = set(self.manager.checkpoints)
        if tf.io.gfile.isdir(self.directory):
            for name in tf.io.gfile.listdir(self.directory):
                match = _CHECKPOINT_FILE.match(name)
                if match:
                    prefixes.add(os.path.join(self.directory, match.group(1)))

        def step_of(prefix):
            return int(prefix.rsplit("-", 1)[1])

        return sorted(prefixes, key=step_of, reverse=True)

    def restore_latest(self):
        """Restores the newest checkpoint that restores; returns its global step.

        Returns 0 if `directory` holds no checkpoint. A checkpoint that fails to
        restore is skipped with a warning naming it and the reason.

        Raises:
          CheckpointRestoreError: checkpoints exist but none restores (each is named
            with its reason); training from step 0 over them would be silent data loss.
        """
        candidates = self.candidates()
        failures = []
        for i, path in enumerate(candidates):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except _RESTORE_ERRORS as e:
                reason = _short_reason(e)
                failures.append(f"{os.path.basename(path)} ({reason})")
                logging.warning("Checkpoint %s cannot be restored (%s)%s", path, reason,
                                "; trying the previous one" if i + 1 < len(candidates) else "")
                continue
            step = int(self._step.numpy())
            if failures:
                logging.warning("Resuming from %s at step %d instead of the damaged %s",
                                path, step, candidates[0])
            else:
                logging.info("Restored %s at step %d", path, step)
            return step
        if failures:
            raise CheckpointRestoreError(
                f"no checkpoint in {self.directory} can be restored: {'; '.join(failures)}. "
                "Move them away (or use a new model_dir) to start over from step 0")
        return 0

    def save(self):
        """Saves at the current step. Returns the path (None on a non-chief worker)."""
        step = int(self._step.numpy())
        if not self.is_chief:
            self.checkpoint.write(os.path.join(self._scratch, "ckpt"))
            tf.io.gfile.rmtree(self._scratch)
            return None
        try:
            path = self.manager.save(checkpoint_number=step)
        except _WRITE_ERRORS as e:
            # The partial files would only hold on to the space a resume needs.
            for leftover in tf.io.gfile.glob(os.path.join(self.directory, f"ckpt-{step}[._]*")):
                if tf.io.gfile.isdir(leftover):
                    tf.io.gfile.rmtree(leftover)
                else:
                    tf.io.gfile.remove(leftover)
            raise CheckpointWriteError(
                f"cannot write the step-{step} checkpoint in {self.directory} "
                f"({_short_reason(e)}); the latest complete checkpoint is "
                f"{self.latest or 'none'}, and a re-run resumes from it") from None
        logging.info("Saved checkpoint %s", path)
        return path


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or Inf loss."""


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every_n_steps` global steps and at the end; stops on a non-finite loss.

    The loss is checked before saving, so a NaN step never reaches a checkpoint: the
    last good one stays the latest.
    """

    def __init__(self, checkpoint, every_n_steps, loss_key="loss"):
        super().__init__()
        self.checkpoint = checkpoint
        self.every_n_steps = every_n_steps
        self.loss_key = loss_key
        self._last_saved = None
        self.error = None

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self._last_saved = self._step()

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        loss = (logs or {}).get(self.loss_key)
        if loss is not None and not math.isfinite(float(loss)):
            self.error = NonFiniteLossError(
                f"{self.loss_key} is {float(loss)} at step {step}; stopping. The last good "
                f"checkpoint is {self.checkpoint.latest}"
            )
            logging.error("%s", self.error)
            self.model.stop_training = True
            return
        if step - self._last_saved >= self.every_n_steps:
            self.checkpoint.save()
            self._last_saved = step

    def on_train_end(self, logs=None):
        if self.error is None and self._step() != self._last_saved:
            self.checkpoint.save()
            self._last_saved = self._step()


class MetricsLogger(keras.callbacks.Callback):
    """Every `every_n_steps`: one JSON line in `jsonl_path`, TensorBoard scalars, a log line.

    The model's metrics are reset after each write, so every record holds the means
    over its own interval rather than since the start of `fit`.

    Args:
      jsonl_path: file appended to (a resumed run continues the same file).
      tensorboard_dir: where summary events go (None: no TensorBoard).
      tokens_per_step: global batch × sequence length, for tokens/s.
      write: False on non-chief workers: they reset the metrics on the same
        schedule, so all workers report the same intervals, but write nothing.
      probes: callables `probe(model) -> {name: float}` with an `every_n_steps`
        attribute (e.g. `diagnostics.ContextProbe`); their values join the first
        record at or past each multiple of it, and the last one.
      watchers: objects with `observe(record)` (e.g. `diagnostics.CollapseWatch`),
        shown every written record.
    """

    def __init__(self, jsonl_path, every_n_steps, tokens_per_step, tensorboard_dir=None,
                 write=True, probes=(), watchers=()):
        super().__init__()
        self.jsonl_path = jsonl_path
        self.every_n_steps = every_n_steps
        self.tokens_per_step = tokens_per_step
        self.tensorboard_dir = tensorboard_dir
        self.write = write
        self.probes = list(probes)
        self.watchers = list(watchers)
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.tensorboard_dir and self.write:
            self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
        self._last_step = int(self.model.optimizer.iterations.numpy())
        self._last_time = time.perf_counter()
        self._last_epoch = True
        if self.write:
            truncate_records(self.jsonl_path, self._last_step)

    def on_epoch_begin(self, epoch, logs=None):
        self._last_epoch = epoch + 1 >= (self.params or {}).get("epochs", 1)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step - self._last_step >= self.every_n_steps:
            # The run's last batch: its record gets the probes even off their schedule.
            steps = (self.params or {}).get("steps")
            last = self._last_epoch and steps is not None and batch + 1 >= steps
            self._end_interval(step, logs, last=last)

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step != self._last_step:
            self._end_interval(step, logs, last=True)
        if self._writer is not None:
            self._writer.close()

    def _end_interval(self, step, logs, last=False):
        now = time.perf_counter()
        if self.write:
            self._write_record(step, logs, now, last)
        for metric in self.model.metrics:
            metric.reset_state()
        # The probes' time is not the interval's training time.
        self._last_step, self._last_time = step, time.perf_counter()

    def _write_record(self, step, logs, now, last):
        record = {"step": step}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        record["tokens_per_sec"] = (
            (step - self._last_step) * self.tokens_per_step / max(now - self._last_time, 1e-9)
        )
        for probe in self.probes:
            # The first record at or past each multiple of the probe's interval, so an
            # interval that is not a multiple of every_n_steps still probes on time.
            if last or step // probe.every_n_steps > self._last_step // probe.every_n_steps:
                record.update(probe(self.model))
        for watcher in self.watchers:
            watcher.observe(record)
        with tf.io.gfile.GFile(self.jsonl_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            with self._writer.as_default(step=step):
                for key, value in record.items():
                    if key != "step":
                        tf.summary.scalar(key, value)
            self._writer.flush()
        logging.info(
            "step %d: %s", step,
            ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step"),
        )


def metrics_jsonl_path(model_dir):
    return os.path.join(model_dir, "metrics.jsonl")


def _read_records(path):
    """Parsed lines of a JSON-lines file; a torn last line (a kill mid-append) is dropped.

    A bad line anywhere else is damage, not a kill, and raises ValueError naming it.
    """
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                logging.warning("%s: torn last line dropped (the run was killed mid-write)",
                                path)
                break
            raise ValueError(f"{path}: line {number} is not JSON") from None
    return records


def truncate_records(path, step):
    """Keeps the records of `path` up to `step` (the restored checkpoint's), atomically.

    After a kill, the file may hold records past the checkpoint the run resumes
    from (they are trained again and would appear twice) and a torn last line.
    """
    if not tf.io.gfile.exists(path):
        return
    records = _read_records(path)
    kept = [r for r in records if r.get("step", 0) <= step]
    with tf.io.gfile.GFile(path) as f:
        clean = f.read() == "".join(json.dumps(r) + "\n" for r in records)
    if len(kept) == len(records) and clean:
        return
    logging.info("%s: %d record(s) past the restored step %d dropped", path,
                 len(records) - len(kept), step)
    files.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(model_dir):
    """The records of model_dir's metrics.jsonl, oldest first ([] if there is none)."""
    return _read_records(metrics_jsonl_path(model_dir))
