"""The scale-out flags of tools/pretrain.py and tools/finetune.py, defined once.

    --strategy=auto|one_device|mirrored|multi_worker|tpu  --tpu=ADDRESS
    --precision=float32|mixed_bfloat16|mixed_float16  --[no]jit_compile  --cpu_replicas=N

A tool imports this module (its directory is the script's, so on sys.path) and, first
thing in main, calls `make_strategy()`; it passes `PRECISION.value` and `jit_compile()`
to the library, which stays flag-free (electra_tf/training/runtime.py).
"""

from absl import flags

from electra_tf.training import runtime

STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(runtime.STRATEGIES),
    "auto: TPU if --tpu is given, else all local GPUs if more than one, else all "
    "logical CPUs if --cpu_replicas > 1, else one device. multi_worker reads TF_CONFIG.")
TPU = flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (or 'local').")
PRECISION = flags.DEFINE_enum(
    "precision", "float32", list(runtime.PRECISIONS), "Keras dtype policy.")
JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", None, "XLA on each replica's forward/backward pass (default: on "
    "with a GPU, off on CPU).")
CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", None, "Split the CPU into N logical devices, to try multi-replica "
    "strategies on one machine.")


def make_strategy():
    """Splits the CPU (--cpu_replicas), then builds the --strategy strategy.

    Call it before anything else touches TensorFlow: both steps need its devices
    uninitialized.
    """
    if CPU_REPLICAS.value:
        runtime.split_cpu(CPU_REPLICAS.value)
    return runtime.make_strategy(STRATEGY.value, tpu=TPU.value)


def jit_compile():
    """--jit_compile as the library takes it: True, False, or "auto" when not given."""
    return "auto" if JIT_COMPILE.value is None else JIT_COMPILE.value
