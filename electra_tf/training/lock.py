"""One run per directory: a lock file in a pretraining model_dir or fine-tuning output_dir.

Two runs writing the same directory interleave checkpoints, metrics and artifacts, and
the result is neither run. `RunLock` refuses the second one:

    with RunLock(model_dir):
        ...  # train, checkpoint, write artifacts

The lock is an exclusive `fcntl.flock` on `<directory>/.run.lock`, held for the
run. The kernel drops a flock when its process dies, however it dies (SIGKILL
included), so a crashed run never blocks the next one. The file's content (pid,
host, start time) is there to tell people who holds the lock. A normal exit or an
exception deletes the file. A file still holding content when its flock is free was
left by a run that did not exit cleanly: that is a stale lock, taken over with a warning.

Limits: flock works on local file systems and on NFS (Linux maps it to POSIX
locks); when a left-over lock file names another host, this host cannot tell
whether that run is alive, so it refuses and says which file to delete. Paths
with a scheme (`gs://...`) cannot be locked and are not.
"""

import datetime
import fcntl
import json
import os
import socket

from absl import logging

LOCK_NAME = ".run.lock"


class DirectoryLockedError(OSError):
    """Another live run holds the directory's lock (or may: see the message)."""


def _holder_text(holder):
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
            f" (since {holder.get('started', '?')})")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    if not raw.strip():
        return None
    try:
        holder = json.loads(raw)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """Context manager holding `<directory>/.run.lock` for one run (see module docstring).

    Args:
      directory: the run's directory; created if absent.
      purpose: a word for messages, e.g. "pretraining".

    Raises (on enter):
      DirectoryLockedError naming the holder's pid and host.
    """

    def __init__(self, directory, purpose="run"):
        self.directory = directory
        self.purpose = purpose
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd = None

    @staticmethod
    def supported(directory):
        """False for paths with a scheme (gs://, s3://...), which flock cannot lock."""
        return "://" not in directory

    def __enter__(self):
        if not self.supported(self.directory):
            logging.info("%s is not a local path: not locking it against concurrent runs",
                         self.directory)
            return self
        os.makedirs(self.directory, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "purpose": self.purpose}
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd) or {}
                os.close(fd)
                raise DirectoryLockedError(
                    f"{self.directory} is in use by another {holder.get('purpose', 'run')}: "
                    f"{_holder_text(holder)} holds {self.path}; wait for it to finish or "
                    "use another directory") from None
            # A holder that was releasing may have deleted the file between our open
            # and our flock: then we locked an orphan inode; start again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            self._take_over_stale(_read_holder(fd), me)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(me) + "\n").encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _take_over_stale(self, holder, me):
        if holder is None:
            return
        if holder.get("host") not in (None, me["host"]):
            # Its host may be running it still (on a shared file system without
            # working locks); only a person can tell.
            raise DirectoryLockedError(
                f"{self.directory} may be in use: {self.path} names "
                f"{_holder_text(holder)}, which cannot be checked from host {me['host']}; "
                "if that run is over, delete the lock file")
        pid = holder.get("pid")
        state = ("is still running but does not hold the lock (its pid was reused?)"
                 if isinstance(pid, int) and _pid_alive(pid) else "is gone")
        logging.warning("Taking over the stale lock %s: its holder, %s, %s (it did not exit "
                        "cleanly)", self.path, _holder_text(holder), state)

    def __exit__(self, *exc_info):
        if self._fd is None:
            return False
        try:
            # Delete while still holding the flock, so nobody locks a file we delete.
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None
        return False
