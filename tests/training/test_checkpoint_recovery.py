"""TrainingCheckpoint.restore_latest with damaged checkpoints: the newest one that
restores is used, with a warning naming the damaged one; if none restores it refuses
(never a silent restart from step 0)."""

import glob
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.training.callbacks import (CheckpointRestoreError, CheckpointWriteError,
                                         TrainingCheckpoint)


def make_model():
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    model.build((None, 16))
    model.optimizer.build(model.trainable_variables)
    return model


def saved_steps(directory, steps=(1, 2, 3)):
    """Checkpoints at `steps`, each with every weight equal to its step."""
    model = make_model()
    checkpoint = TrainingCheckpoint(model, str(directory))
    for step in steps:
        model.optimizer.iterations.assign(step)
        for v in model.trainable_variables:
            v.assign(tf.fill(v.shape, float(step)))
        checkpoint.save()
    return {step: str(directory / f"ckpt-{step}") for step in steps}


def damage(prefix, how):
    data = glob.glob(prefix + ".data-*")[0]
    if how == "truncated data":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    elif how == "flipped byte":
        raw = bytearray(open(data, "rb").read())
        raw[len(raw) // 2] ^= 0xFF
        open(data, "wb").write(raw)
    elif how == "deleted index":
        os.remove(prefix + ".index")
    elif how == "deleted data":
        os.remove(data)
    else:
        raise ValueError(how)


def restore(directory):
    model = make_model()
    step = TrainingCheckpoint(model, str(directory)).restore_latest()
    return step, model


def weights_equal(model, value):
    return all(np.all(v.numpy() == value) for v in model.trainable_variables)


@pytest.mark.parametrize("how", ["truncated data", "flipped byte", "deleted index",
                                 "deleted data"])
def test_damaged_latest_falls_back_to_the_previous(tmp_path, caplog, how):
    paths = saved_steps(tmp_path)
    damage(paths[3], how)
    with caplog.at_level(logging.WARNING):
        step, model = restore(tmp_path)
    assert step == 2 and weights_equal(model, 2.0)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "absl"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"Checkpoint {paths[3]} cannot be restored")
    assert "\n" not in warnings[0]
    assert warnings[1] == f"Resuming from {paths[2]} at step 2 instead of the damaged {paths[3]}"


def test_two_damaged_fall_back_to_the_oldest_good_one(tmp_path):
    paths = saved_steps(tmp_path)
    damage(paths[3], "deleted index")
    damage(paths[2], "truncated data")
    step, model = restore(tmp_path)
    assert step == 1 and weights_equal(model, 1.0)


def test_no_restorable_checkpoint_is_refused_naming_each(tmp_path):
    paths = saved_steps(tmp_path)
    for prefix, how in zip(paths.values(), ["truncated data", "deleted index", "flipped byte"]):
        damage(prefix, how)
    with pytest.raises(CheckpointRestoreError) as error:
        restore(tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"no checkpoint in {tmp_path} can be restored: ckpt-3 (")
    assert "; ckpt-2 (" in message and "; ckpt-1 (" in message
    assert "start over from step 0" in message


def test_lost_state_file_does_not_restart_from_zero(tmp_path):
    saved_steps(tmp_path)
    os.remove(tmp_path / "checkpoint")
    step, model = restore(tmp_path)
    assert step == 3 and weights_equal(model, 3.0)


def test_resaving_the_damaged_step_replaces_it(tmp_path):
    paths = saved_steps(tmp_path)
    damage(paths[3], "truncated data")
    model = make_model()
    checkpoint = TrainingCheckpoint(model, str(tmp_path))
    assert checkpoint.restore_latest() == 2
    model.optimizer.iterations.assign(3)  # as training on from step 2 would
    for v in model.trainable_variables:
        v.assign(tf.fill(v.shape, 7.0))
    assert checkpoint.save() == paths[3]
    step, restored = restore(tmp_path)
    assert step == 3 and weights_equal(restored, 7.0)


def test_empty_directory_starts_at_zero(tmp_path):
    assert restore(tmp_path / "none")[0] == 0


def test_a_failed_save_names_the_latest_good_checkpoint_and_leaves_no_partial_files(
        tmp_path, monkeypatch):
    directory = tmp_path / "ckpts"
    saved_steps(directory, steps=(1, 2))
    model = make_model()
    checkpoint = TrainingCheckpoint(model, str(directory))
    model.optimizer.iterations.assign(3)
    real_save = checkpoint.manager.save

    def full_disk(checkpoint_number):
        # What a full disk leaves: the temp dir of the step, then TF's error.
        (directory / f"ckpt-{checkpoint_number}_temp").mkdir()
        (directory / f"ckpt-{checkpoint_number}_temp" / "part-0").write_bytes(b"x")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(checkpoint.manager, "save", full_disk)
    with pytest.raises(CheckpointWriteError) as raised:
        checkpoint.save()
    message = str(raised.value)
    assert message.startswith(f"cannot write the step-3 checkpoint in {directory} "
                              "(ResourceExhaustedError: No space left on device)")
    assert message.endswith(f"the latest complete checkpoint is {directory / 'ckpt-2'}, "
                            "and a re-run resumes from it")
    assert isinstance(raised.value, OSError)  # tools show it as one `error:` line
    assert not glob.glob(str(directory / "ckpt-3*"))
    monkeypatch.setattr(checkpoint.manager, "save", real_save)
    assert checkpoint.restore_latest() == 2
