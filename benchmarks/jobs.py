"""Runs benchmark jobs (tool invocations) as subprocesses, a few at a time.

Each job gets the same number of TensorFlow threads, so jobs of one batch share the
machine alike and their times compare; a 2-core machine runs two 1-thread jobs at
once faster than one 2-thread job after the other (small models split poorly).
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Job:
    """One subprocess: `command` (argv) with stdout and stderr appended to `log_path`."""

    name: str
    command: list
    log_path: str
    returncode: int = None
    seconds: float = None


def thread_env(threads):
    """The environment that limits TensorFlow (and OpenMP) to `threads` threads."""
    return dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
                OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")


def run_jobs(jobs, parallel, threads, on_done=None, poll_seconds=2.0):
    """Runs `jobs` `parallel` at a time; `on_done(job)` as each one ends.

    Returns:
      the jobs, with `returncode` and `seconds` set.
    """
    pending, running = list(jobs), []
    env = thread_env(threads)
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            os.makedirs(os.path.dirname(job.log_path), exist_ok=True)
            log = open(job.log_path, "a")
            running.append((job, log, time.time(),
                            subprocess.Popen(job.command, stdout=log, stderr=log, env=env)))
        time.sleep(poll_seconds)
        for entry in list(running):
            job, log, start, process = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            log.close()
            job.returncode, job.seconds = process.returncode, time.time() - start
            if on_done is not None:
                on_done(job)
    return jobs


def pretrain_command(config, data_dir, model_dir, vocab_path, probe_text, overrides):
    """argv of `tools/pretrain.py` with `vocab_path` (and its size) and `overrides`.

    Args:
      probe_text: held-out files for the context probe.
      overrides: "section.key=value" strings, applied after the vocabulary's.
    """
    vocab_size = sum(1 for _ in open(vocab_path, encoding="utf-8"))
    return [
        sys.executable, str(REPO_ROOT / "tools" / "pretrain.py"), f"--config={config}",
        f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--progress=none",
        f"--probe_text={','.join(probe_text)}",
        *(f"--override={o}" for o in [f"data.vocab_path={vocab_path}",
                                       f"model.vocab_size={vocab_size}", *overrides]),
    ]
