"""RunLock: one run per model_dir/output_dir; a real second process is refused, a
killed holder's lock is taken over, the lock goes away on exit and on exceptions."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO_ROOT
from electra_tf.training import finetune
from electra_tf.training.lock import LOCK_NAME, DirectoryLockedError, RunLock

TIMEOUT = 120

# Takes the lock, says so on stdout, holds it until stdin closes, then releases it.
_HOLDER = textwrap.dedent(
    """
    import sys
    from electra_tf.training.lock import RunLock
    with RunLock(sys.argv[1], "pretraining"):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


class Holder:
    """A separate process holding the lock of `directory` (synchronised by pipes)."""

    def __init__(self, directory):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(directory)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # Blocks until the child holds the lock (or fails: then the line is empty).
        line = self.process.stdout.readline()
        assert line == "locked\n", self.process.communicate(timeout=TIMEOUT)

    @property
    def pid(self):
        return self.process.pid

    def release(self):
        _, stderr = self.process.communicate("", timeout=TIMEOUT)
        assert self.process.returncode == 0, stderr

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=TIMEOUT)

    def cleanup(self):
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def holder_factory():
    holders = []

    def start(directory):
        holders.append(Holder(directory))
        return holders[-1]

    yield start
    for holder in holders:
        holder.cleanup()


def test_second_process_is_refused_naming_pid_and_host(tmp_path, holder_factory):
    holder = holder_factory(tmp_path / "model")
    with pytest.raises(DirectoryLockedError) as error:
        with RunLock(str(tmp_path / "model")):
            pytest.fail("acquired a lock another process holds")
    message = str(error.value)
    assert f"pid {holder.pid} on host {socket.gethostname()}" in message
    assert "in use by another pretraining" in message
    assert "\n" not in message

    holder.release()
    assert not (tmp_path / "model" / LOCK_NAME).exists()
    with RunLock(str(tmp_path / "model")):  # free again
        pass


def test_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, holder_factory,
                                                                  caplog):
    directory = tmp_path / "model"
    holder = holder_factory(directory)
    holder.kill()
    left = json.loads((directory / LOCK_NAME).read_text())
    assert left["pid"] == holder.pid  # SIGKILL left the file, not the flock

    with caplog.at_level(logging.WARNING):
        with RunLock(str(directory)) as lock:
            mine = json.loads((directory / LOCK_NAME).read_text())
            assert (mine["pid"], mine["host"]) == (os.getpid(), socket.gethostname())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert lock.path in warnings[0] and f"pid {holder.pid}" in warnings[0]
    assert "is gone" in warnings[0]
    assert not (directory / LOCK_NAME).exists()


def test_lock_file_naming_another_host_is_refused(tmp_path):
    lock_file = tmp_path / LOCK_NAME
    content = json.dumps({"pid": 4242, "host": "elsewhere.example", "started": "then"})
    lock_file.write_text(content)
    with pytest.raises(DirectoryLockedError, match="pid 4242 on host elsewhere.example") as e:
        with RunLock(str(tmp_path)):
            pass
    assert "delete the lock file" in str(e.value)
    assert lock_file.read_text() == content  # left for a person to judge


def test_released_on_normal_exit_and_on_exception(tmp_path):
    lock_file = tmp_path / "run" / LOCK_NAME
    with RunLock(str(tmp_path / "run"), "fine-tuning"):
        holder = json.loads(lock_file.read_text())
        assert (holder["pid"], holder["purpose"]) == (os.getpid(), "fine-tuning")
        # Another RunLock, even in this process, is refused while this one holds.
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"):
            with RunLock(str(tmp_path / "run")):
                pass
    assert not lock_file.exists()

    with pytest.raises(KeyError, match="boom"):
        with RunLock(str(tmp_path / "run")):
            raise KeyError("boom")
    assert not lock_file.exists()
    with RunLock(str(tmp_path / "run")):
        assert lock_file.exists()


def test_remote_paths_are_not_locked():
    with RunLock("gs://some-bucket/model") as lock:
        assert not RunLock.supported(lock.directory)


def test_finetune_output_dir_check_ignores_its_own_lock(tmp_path):
    out = tmp_path / "out"
    with RunLock(str(out)):
        finetune.prepare_output_dir(str(out), overwrite=False)
        (out / "eval_results.json").write_text("{}")
        with pytest.raises(FileExistsError, match="is not empty"):
            finetune.prepare_output_dir(str(out), overwrite=False)
