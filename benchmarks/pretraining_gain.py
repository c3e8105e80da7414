"""Does pretraining help? Fine-tuning from a pretrained tiny ELECTRA vs from scratch.

1. Vocabulary: learned from the development corpora (`--vocab=learn`, `--vocab_size`
   tokens, what configs/electra_tiny.json is sized for), or a given file.
2. Pretraining data: the development corpora under `--corpus_dir` (nltk_gutenberg,
   nltk_state_union, nltk_inaugural, nltk_webtext, tinyshakespeare, nltk_movie_reviews;
   wikitext-2-raw and nltk_reuters are reserved for evaluation and never read) ->
   TFRecords at `--pretrain_seq_length`.
3. Pretraining of `--config` for `--pretrain_minutes` of this machine (a short probe
   run measures the step time, which sets `train.num_train_steps`, the end of the
   learning-rate schedule), or for exactly `--pretrain_steps` (reproducible: on a
   shared machine the probe's estimate moves with the load).
4. Fine-tuning on each of `--tasks` (from `--glue_dir`), `--seeds` seeds, twice with
   the same recipe and budget: from the pretrained discriminator (init "pretrained")
   and from a random encoder of the same config and vocabulary (init "scratch").

Output, one JSON line per fine-tuning run, then one per task and the whole benchmark:

  {"task": "sst2", "init": "pretrained", "seed": 42, "metric": "accuracy", "value": ...,
   "dev": {all metrics}}
  {"task": "sst2", "metric": "accuracy", "pretrained_median": ..., "scratch_median": ...,
   "margin": ..., "pretrained": [per seed], "scratch": [per seed]}
  {"benchmark": "pretraining_gain", "pretrain_steps": ..., "pretrain_seconds": ..., ...}

Everything is kept under `--work_dir` (vocab, data, model_dir, fine-tuning output dirs);
a step whose output already exists there is reused, so an interrupted run resumes.

    python benchmarks/pretraining_gain.py --work_dir=/tmp/gain --pretrain_steps=2500
        # 2 cores: ~25 min pretraining, ~4 min per SST-2 and ~2 min per MRPC run
    python benchmarks/pretraining_gain.py --work_dir=/tmp/gain_smoke --pretrain_steps=30 \
        --seeds=1 --max_train_examples=sst2=500,mrpc=500 --epochs=1           # smoke test
"""

import dataclasses
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from absl import app, flags, logging  # noqa: E402

import shared_data  # noqa: E402  (benchmarks/, the script's directory)
from shared_data import SHARED_DATA  # noqa: E402

GLUE_DIRS = {"sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B"}

_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/pretraining_gain", "Everything goes here.")
_CORPUS_DIR = flags.DEFINE_string("corpus_dir", str(SHARED_DATA / "corpus"), "Corpora root.")
_GLUE_DIR = flags.DEFINE_string("glue_dir", str(SHARED_DATA / "glue"), "GLUE root.")
_CONFIG = flags.DEFINE_string("config", str(REPO_ROOT / "configs" / "electra_tiny.json"),
                              "Model and pretraining config.")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "Pretraining config overrides.")
_VOCAB = flags.DEFINE_string("vocab", "learn", "A vocabulary file, or learn one.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8000, "Size of a learned vocabulary.")
_PRETRAIN_SEQ_LENGTH = flags.DEFINE_integer("pretrain_seq_length", 128, "Pretraining length.")
_PRETRAIN_MINUTES = flags.DEFINE_float("pretrain_minutes", 25.0, "Pretraining time budget.")
_PRETRAIN_STEPS = flags.DEFINE_integer(
    "pretrain_steps", 0, "Pretrain exactly this many steps instead of --pretrain_minutes.")
_PROBE_STEPS = flags.DEFINE_integer("probe_steps", 40, "Steps timed to size the budget.")
_TASKS = flags.DEFINE_list("tasks", ["sst2", "mrpc"], "GLUE tasks to fine-tune on.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Fine-tuning seeds per task and init.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Fine-tuning epochs (default: the paper's).")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Fine-tuning learning rate (default: the paper's for the size).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Fine-tuning batch size.")
_MAX_SEQ_LENGTHS = flags.DEFINE_list(
    "max_seq_lengths", ["sst2=64", "mrpc=128", "stsb=128"],
    "Fine-tuning length per task (SST-2's single sentences fit in 64 tokens).")
_MAX_TRAIN_EXAMPLES = flags.DEFINE_list(
    "max_train_examples", ["sst2=8000"],
    "Per task, fine-tune on a random sample of this many examples (unlisted: all). The "
    "sample is the same for every seed and init.")


def emit(record):
    print(json.dumps(record), flush=True)


def per_task(entries, task, default):
    """The value of `task` in ["task=value", ...], as an int, or `default`."""
    values = dict(entry.split("=", 1) for entry in entries)
    return int(values.get(task, default))


def prepare_vocab(work_dir, files):
    from electra_tf.text import vocab

    if _VOCAB.value != "learn":
        return _VOCAB.value
    path = os.path.join(work_dir, "vocab.txt")
    if not os.path.exists(path):
        vocab.write_vocab(vocab.learn_wordpiece_vocab(files, _VOCAB_SIZE.value), path)
    return path


def prepare_data(work_dir, files, vocab_path):
    from electra_tf.data import builder, schema

    data_dir = os.path.join(work_dir, "pretraining_data")
    if not os.path.exists(os.path.join(data_dir, schema.MANIFEST_NAME)):
        builder.build_pretraining_data(files, vocab_path, data_dir,
                                       max_seq_length=_PRETRAIN_SEQ_LENGTH.value, num_shards=8)
    return data_dir


def pretraining_config(vocab_path, num_train_steps):
    from electra_tf import config as config_lib
    from electra_tf.text.tokenizer import WordPieceTokenizer

    vocab_size = WordPieceTokenizer(vocab_path).vocab_size
    return config_lib.load_config(_CONFIG.value, [
        f"model.vocab_size={vocab_size}", f"data.vocab_path={vocab_path}",
        f"data.max_seq_length={_PRETRAIN_SEQ_LENGTH.value}",
        f"train.num_train_steps={num_train_steps}",
        f"train.warmup_steps={max(1, num_train_steps // 10)}",
        f"train.checkpoint_every={max(1, num_train_steps // 5)}",
        f"train.log_every={max(1, min(100, num_train_steps // 20))}",
        *_OVERRIDE.value,
    ])


def seconds_per_step(work_dir, data_dir, vocab_path):
    """Times a short run; the first logged interval (tracing) is left out."""
    from electra_tf.training import callbacks, pretrain

    probe_dir = os.path.join(work_dir, "probe")
    steps = _PROBE_STEPS.value
    cfg = pretraining_config(vocab_path, steps)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, log_every=steps // 4))
    pretrain.run_pretraining(cfg, data_dir, probe_dir, verbose=0)
    with open(callbacks.metrics_jsonl_path(probe_dir)) as f:
        records = [json.loads(line) for line in f][1:]
    tokens_per_sec = statistics.median(r["tokens_per_sec"] for r in records)
    return cfg.train.batch_size * cfg.data.max_seq_length / tokens_per_sec


def pretrain_model(work_dir, data_dir, vocab_path):
    from electra_tf.training import pretrain

    model_dir = os.path.join(work_dir, "pretrained")
    record_path = os.path.join(work_dir, "pretraining.json")
    if os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
        return model_dir, record["steps"], record["seconds"]
    steps = _PRETRAIN_STEPS.value
    if not steps:
        step_time = seconds_per_step(work_dir, data_dir, vocab_path)
        steps = max(1, int(_PRETRAIN_MINUTES.value * 60 / step_time))
        logging.info("%.3f s/step: %d steps fit in %.1f minutes", step_time, steps,
                     _PRETRAIN_MINUTES.value)
    start = time.time()
    done = pretrain.run_pretraining(pretraining_config(vocab_path, steps), data_dir,
                                    model_dir, verbose=0)
    seconds = time.time() - start
    with open(record_path, "w") as f:
        json.dump({"steps": done, "seconds": seconds}, f)
    return model_dir, done, seconds


def finetune_task(work_dir, task, init_name, model_dir, vocab_path):
    from electra_tf.training import finetune

    output_dir = os.path.join(work_dir, "finetune", f"{task}_{init_name}")
    summary_path = os.path.join(output_dir, finetune.EVAL_RESULTS_JSON)
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            return json.load(f)
    init = dict(init=model_dir) if init_name == "pretrained" else dict(
        init="none", model_config=_CONFIG.value, vocab=vocab_path)
    cfg = finetune.FinetuneConfig(
        task=task, max_seq_length=per_task(_MAX_SEQ_LENGTHS.value, task, 128),
        batch_size=_BATCH_SIZE.value, epochs=_EPOCHS.value, learning_rate=_LEARNING_RATE.value,
        max_train_examples=per_task(_MAX_TRAIN_EXAMPLES.value, task, 0), **init)
    return finetune.run_finetuning(cfg, os.path.join(_GLUE_DIR.value, GLUE_DIRS[task]),
                                   output_dir, seeds=_SEEDS.value, overwrite=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    work_dir = _WORK_DIR.value
    os.makedirs(work_dir, exist_ok=True)
    files = shared_data.dev_corpus_files(_CORPUS_DIR.value)
    vocab_path = prepare_vocab(work_dir, files)
    data_dir = prepare_data(work_dir, files, vocab_path)
    model_dir, pretrain_steps, pretrain_seconds = pretrain_model(work_dir, data_dir, vocab_path)

    margins = {}
    for task in _TASKS.value:
        medians, values = {}, {}
        for init_name in ("pretrained", "scratch"):
            summary = finetune_task(work_dir, task, init_name, model_dir, vocab_path)
            metric = summary["main_metric"]
            values[init_name] = [run["dev"][metric] for run in summary["runs"]]
            medians[init_name] = summary["median"]["dev"][metric]
            for run in summary["runs"]:
                emit({"task": task, "init": init_name, "seed": run["seed"], "metric": metric,
                      "value": run["dev"][metric], "dev": run["dev"],
                      "train_seconds": run["train"]["seconds"]})
        margins[task] = medians["pretrained"] - medians["scratch"]
        emit({"task": task, "metric": metric, "pretrained_median": medians["pretrained"],
              "scratch_median": medians["scratch"], "margin": margins[task],
              "pretrained": values["pretrained"], "scratch": values["scratch"]})
    emit({"benchmark": "pretraining_gain", "config": _CONFIG.value,
          "pretrain_steps": pretrain_steps, "pretrain_seconds": round(pretrain_seconds),
          "seeds": _SEEDS.value, "max_train_examples": _MAX_TRAIN_EXAMPLES.value,
          "max_seq_lengths": _MAX_SEQ_LENGTHS.value,
          "margins": margins, "cpu_count": os.cpu_count()})


if __name__ == "__main__":
    app.run(main)
