r"""Runs a command as N local workers of one TensorFlow cluster (multi-worker on one machine).

    python tools/launch_local_workers.py --num_workers=2 [--logs_dir=DIR] -- \
        python tools/pretrain.py --config=... --data_dir=... --model_dir=... \
        --strategy=multi_worker

Each worker gets TF_CONFIG on free 127.0.0.1 ports (worker 0 is the chief). If a
worker fails, the others are stopped and the launcher exits with the failing
worker's code (128 + N for a signal N); running the same line again resumes from the
last checkpoint. With --logs_dir each worker writes DIR/worker_<i>.log, whose first
line holds its pid (kill one to try fault tolerance).
"""

import signal
import sys

from absl import app, flags, logging  # noqa: E402

from electra_tf.training import runtime  # noqa: E402

_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Worker processes to start.")
_LOGS_DIR = flags.DEFINE_string(
    "logs_dir", None, "Write each worker's output to LOGS_DIR/worker_<i>.log (default: "
    "inherit this terminal).")
_GRACE_SECONDS = flags.DEFINE_float(
    "grace_seconds", 10.0, "After a worker fails, seconds the others get to exit "
    "after SIGTERM before SIGKILL.")


def main(argv):
    command = argv[1:]
    if not command:
        raise app.UsageError("give the worker command after --, e.g. -- python tools/pretrain.py ...")
    logging.set_verbosity(logging.INFO)
    # SIGTERM to the launcher unwinds through run_local_workers, which stops the workers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    code, codes = runtime.run_local_workers(
        command, _NUM_WORKERS.value, log_dir=_LOGS_DIR.value,
        grace_seconds=_GRACE_SECONDS.value,
    )
    print(f"workers exited with {codes}; job exit code {code}")
    sys.exit(code)


if __name__ == "__main__":
    app.run(main)
