r"""Pretrains ELECTRA (generator + discriminator) on TFRecords from build_pretraining_data.py.

    python tools/pretrain.py --config=configs/electra_small.json --data_dir=DIR \
        --model_dir=DIR [--override=train.batch_size=64 ...] \
        [--strategy=auto|one_device|mirrored|multi_worker|tpu] [--tpu=ADDRESS] \
        [--precision=float32|mixed_bfloat16|mixed_float16] [--jit_compile] \
        [--grad_accum_steps=N] [--cpu_replicas=N]

train.batch_size is the global batch of one update, over all replicas and
micro-batches. Re-running the same command after a kill resumes from the latest
checkpoint in --model_dir. At the end, --model_dir holds discriminator/ and
generator/ artifacts. Multi-worker: run one process per worker with TF_CONFIG set
(tools/launch_local_workers.py does it on one machine).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import runtime_flags  # noqa: E402  (tools/, the script's directory)
import tool_errors  # noqa: E402
from electra_tf import config as config_lib  # noqa: E402
from electra_tf.training import callbacks, diagnostics, pretrain, runtime  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Experiment config JSON (configs/*.json).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory of shards + manifest.json.")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints, logs and artifacts go here.")
_OVERRIDE = flags.DEFINE_multi_string(
    "override", [], "section.key=value, e.g. train.batch_size=64 (repeatable).")
_MAX_STEPS = flags.DEFINE_integer(
    "max_steps", None, "Stop at this global step (the LR schedule still spans "
    "train.num_train_steps); artifacts are written either way.")
_PROGRESS = flags.DEFINE_enum(
    "progress", "auto", ["auto", "bar", "none"], "Keras progress bar.")
_PROBE_TEXT = flags.DEFINE_list(
    "probe_text", [], "Held-out text file(s), not in the training data: the context probe "
    "(context_auc in the logs) replaces 15% of their tokens by unigram draws and measures "
    "how well the discriminator finds them.")
_GRAD_ACCUM_STEPS = flags.DEFINE_integer(
    "grad_accum_steps", None, "Split each update's batch into N micro-batches (sets "
    "train.grad_accum_steps; the update is the same, memory that of one micro-batch).")

flags.mark_flags_as_required(["config", "data_dir", "model_dir"])


@tool_errors.exit_on_user_error
def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    overrides = list(_OVERRIDE.value)
    if _GRAD_ACCUM_STEPS.value is not None:
        overrides.append(f"train.grad_accum_steps={_GRAD_ACCUM_STEPS.value}")
    cfg = config_lib.load_config(_CONFIG.value, overrides)
    strategy = runtime_flags.make_strategy()
    verbose = {"auto": "auto", "bar": 1, "none": 0}[_PROGRESS.value]
    step = pretrain.run_pretraining(
        cfg, _DATA_DIR.value, _MODEL_DIR.value, max_steps=_MAX_STEPS.value, strategy=strategy,
        precision=runtime_flags.PRECISION.value, jit_compile=runtime_flags.jit_compile(),
        verbose=verbose, probe_text=_PROBE_TEXT.value,
    )
    if not runtime.is_chief(strategy):
        return
    print(f"Pretraining stopped at step {step}. Model directory: {_MODEL_DIR.value}")
    for name in ("discriminator", "generator", "masked_lm"):
        if os.path.isdir(os.path.join(_MODEL_DIR.value, name)):
            print(f"  {name + ':':15s}{os.path.join(_MODEL_DIR.value, name)}")
    records = callbacks.read_metrics(_MODEL_DIR.value)
    if records:
        print(diagnostics.describe(records))


if __name__ == "__main__":
    app.run(main)
