"""Where and how training runs: tf.distribute strategy, dtype policy, local clusters.

Used by pretraining and fine-tuning alike; tools/*.py turn their flags into these
calls, in this order, before any model is built:

    runtime.split_cpu(n)                          # optional, --cpu_replicas=n
    strategy = runtime.make_strategy("auto", tpu=None)
    with runtime.precision_policy("mixed_bfloat16"), strategy.scope():
        ... model.compile(..., jit_compile=...)
    dataset = runtime.distribute(strategy, lambda ctx: make_dataset(ctx))

Strategies (`--strategy`):
  auto          TPUStrategy if a TPU address is given; else MirroredStrategy over
                all local GPUs if there are several; else over the logical CPUs if
                the CPU was split (`split_cpu`); else one device.
  one_device    the first GPU, else the CPU.
  mirrored      MirroredStrategy over all local GPUs, else all logical CPUs.
  multi_worker  MultiWorkerMirroredStrategy; the cluster comes from the standard
                TF_CONFIG environment variable (tools/launch_local_workers.py sets
                it for local processes).
  tpu           TPUStrategy on `tpu` (a name, grpc:// address or "local").

`train.batch_size` is always the global batch: each replica gets
`batch_size / num_replicas_in_sync` sequences per step.

`run_local_workers` starts a multi-worker job on one machine (one process per
worker, TF_CONFIG on free loopback ports): tools/launch_local_workers.py.
"""

import contextlib
import json
import os
import socket
import subprocess
import time

import keras
import tensorflow as tf
from absl import logging

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def split_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices (CPU:0 .. CPU:n-1).

    Lets MirroredStrategy run n replicas on one CPU-only machine, to try
    distributed training without GPUs. Must run before TensorFlow initializes
    its devices (before any op, dataset or model).

    Raises:
      ValueError: num_devices < 1.
      RuntimeError: TensorFlow's devices are already initialized.
    """
    if num_devices < 1:
        raise ValueError(f"cpu_replicas must be >= 1, got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"cannot split the CPU into {num_devices} devices: TensorFlow is already "
            "initialized; split it before creating any tensor or model"
        ) from e


def make_strategy(name="auto", tpu=None):
    """The `tf.distribute.Strategy` called `name` (see the module docstring).

    Call it first: "multi_worker" and "tpu" must be created before TensorFlow
    initializes its devices.

    Args:
      name: one of `STRATEGIES`.
      tpu: TPU name or address, for "tpu" (required) and "auto".

    Raises:
      ValueError: unknown name, or "tpu" without an address.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "auto" and tpu:
        name = "tpu"
    # These two must come before anything initializes TensorFlow's devices
    # (listing them included): collectives are configured at startup.
    if name == "tpu":
        if not tpu:
            raise ValueError("strategy 'tpu' needs a TPU name or address (--tpu)")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    elif name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            logging.warning("strategy multi_worker without TF_CONFIG: a one-worker cluster")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        if name == "auto":
            name = "mirrored" if len(devices) > 1 else "one_device"
        if name == "mirrored":
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            strategy = tf.distribute.OneDeviceStrategy(devices[0].name)
    logging.info(
        "Strategy %s: %d replicas in sync; this process is %s",
        type(strategy).__name__, strategy.num_replicas_in_sync,
        "the chief" if is_chief(strategy) else "not the chief",
    )
    return strategy


def is_chief(strategy):
    """Whether this process writes checkpoints, summaries and artifacts."""
    return strategy.extended.should_checkpoint


def task_id():
    """This worker's index in TF_CONFIG (0 without a cluster)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return int(task.get("index", 0))


def set_precision(name):
    """Sets the global Keras dtype policy; models built afterwards follow it.

    float32; mixed_bfloat16 (bfloat16 compute, float32 variables: TPUs, recent
    GPUs and CPUs); mixed_float16 (GPUs; Keras' `compile` then wraps the
    optimizer in a `LossScaleOptimizer` with dynamic loss scaling). The models
    keep logits, softmax, sampling and losses in float32 under every policy.

    Raises:
      ValueError: unknown name.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(name)
    logging.info("Keras dtype policy: %s", name)
    return keras.mixed_precision.global_policy()


@contextlib.contextmanager
def precision_policy(name):
    """`set_precision(name)` for the models built inside; the previous policy after."""
    previous = keras.mixed_precision.global_policy()
    try:
        yield set_precision(name)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_global_batch(strategy, global_batch_size, grad_accum_steps=1, key="train.batch_size"):
    """Checks that the global batch splits evenly into replicas and micro-batches.

    Args:
      key: the setting's name in the message (pretraining's `train.batch_size`,
        fine-tuning's `batch_size`).

    Raises:
      ValueError: naming the sizes.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % (replicas * grad_accum_steps):
        raise ValueError(
            f"{key}={global_batch_size} (the global batch) must be divisible "
            f"by replicas ({replicas}) x grad_accum_steps ({grad_accum_steps})"
        )


def distribute(strategy, dataset_fn):
    """`strategy.distribute_datasets_from_function(dataset_fn)`.

    `dataset_fn(input_context)` builds one worker's pipeline: it reads the files of
    `input_context.input_pipeline_id` only and batches
    `input_context.get_per_replica_batch_size(global_batch)`; the worker's replicas
    take its consecutive batches in turn.
    """
    return strategy.distribute_datasets_from_function(dataset_fn)


def batches_per_step(input_context):
    """Batches one input pipeline yields per global step: one per replica it feeds."""
    return input_context.num_replicas_in_sync // input_context.num_input_pipelines


# === A multi-worker job on one machine ===


def free_loopback_ports(count):
    """`count` distinct TCP ports free on 127.0.0.1 right now.

    All sockets stay bound until every port is chosen, so the ports differ; a
    port can still be taken by someone else before the worker binds it.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_configs(ports):
    """The TF_CONFIG value of each worker of a cluster on 127.0.0.1:`ports`.

    Worker 0 is the chief (MultiWorkerMirroredStrategy's rule without a "chief" job).
    """
    workers = [f"127.0.0.1:{port}" for port in ports]
    return [
        json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        for i in range(len(workers))
    ]


def _exit_code(returncode):
    # A process killed by signal N reports -N; shells report 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run_local_workers(command, num_workers, log_dir=None, grace_seconds=10.0,
                      poll_seconds=0.2):
    """Runs `command` as `num_workers` local processes forming one TF cluster.

    Each process gets TF_CONFIG for its index (worker 0 is the chief). When one
    exits with an error the others would wait for it forever in a collective, so
    they are terminated (SIGTERM, then SIGKILL after `grace_seconds`); rerunning
    the job then resumes from the last checkpoint.

    Args:
      command: argv list, e.g. `[sys.executable, "tools/pretrain.py", ...,
        "--strategy=multi_worker"]`.
      num_workers: int >= 1.
      log_dir: if set, worker i's stdout and stderr go to `log_dir/worker_<i>.log`,
        whose first line records its pid and TF_CONFIG; else they are inherited.
      grace_seconds: how long terminated workers get before SIGKILL.
      poll_seconds: how often the workers are checked.

    Returns:
      (job exit code, [exit code of each worker]): the job's code is the first
      failing worker's, 0 if all succeeded. A worker killed by signal N counts
      as 128 + N; one terminated here after another failed counts as it exits.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    configs = local_tf_configs(free_loopback_ports(num_workers))
    processes, logs = [], []
    first_failure = None
    try:
        for index, tf_config in enumerate(configs):
            log = open(os.path.join(log_dir, f"worker_{index}.log"), "w") if log_dir else None
            logs.append(log)
            process = subprocess.Popen(
                command, env=dict(os.environ, TF_CONFIG=tf_config),
                stdout=log, stderr=subprocess.STDOUT if log else None,
            )
            processes.append(process)
            if log:
                log.write(f"# pid {process.pid} TF_CONFIG={tf_config}\n")
                log.flush()
            logging.info("worker %d: pid %d, TF_CONFIG=%s", index, process.pid, tf_config)
        while True:
            # Every worker polled each round (no short-circuit), in index order.
            returncodes = [process.poll() for process in processes]
            failed = [(i, code) for i, code in enumerate(returncodes) if code]
            if failed:
                index, first_failure = failed[0][0], _exit_code(failed[0][1])
                logging.error("worker %d exited with %d; stopping the others",
                              index, first_failure)
                break
            if all(code is not None for code in returncodes):
                break
            time.sleep(poll_seconds)
    finally:
        _stop(processes, grace_seconds)
        for log in logs:
            if log:
                log.close()
    codes = [_exit_code(p.returncode) for p in processes]
    if first_failure is None:
        first_failure = next((code for code in codes if code), 0)
    return first_failure, codes


def _stop(processes, grace_seconds):
    """Terminates the processes still running; kills those that outlive the grace."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace_seconds
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
