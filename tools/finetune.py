r"""Fine-tunes a pretrained ELECTRA discriminator: GLUE, your own data, SQuAD, tagging.

    python tools/finetune.py --task=sst2 --data_dir=GLUE/SST-2 --init=MODEL_DIR \
        --output_dir=DIR [--seeds=3]
    python tools/finetune.py --task=squad --data_dir=DIR --init=MODEL_DIR \
        --output_dir=DIR   # train-v1.1.json, dev-v1.1.json (squad_v2: *-v2.0.json)
    python tools/finetune.py --task=ner --data_dir=DIR --init=MODEL_DIR \
        --output_dir=DIR   # train.txt, dev.txt[, test.txt] (CoNLL) or *.jsonl
    python tools/finetune.py --task=custom --data_dir=DIR --text_column=text \
        --label_column=label --init=MODEL_DIR --output_dir=DIR   # train/dev[/test].csv|tsv|jsonl
    python tools/finetune.py --task=mrpc --data_dir=GLUE/MRPC --init=none \
        --config=configs/electra_tiny.json --vocab=vocab.txt --output_dir=DIR

Scale-out (as tools/pretrain.py, tools/runtime_flags.py):
--strategy=auto|one_device|mirrored|multi_worker|tpu, --tpu=ADDRESS,
--precision=float32|mixed_bfloat16|mixed_float16, --[no]jit_compile, --cpu_replicas=N,
--grad_accum_steps=N; --batch_size is the global batch of one update, over all replicas
and micro-batches.

--init is a pretraining --model_dir (or its discriminator/ directory), or "none" for a
randomly initialised encoder of --config. Epochs, learning rate and layer decay default
to the ELECTRA paper's values for the task and model size. Dev is evaluated after
every epoch (metrics.jsonl, tensorboard/ in --output_dir) and the best epoch's weights
are kept. --output_dir receives the fine-tuned model (electra_tf.ElectraClassifier.
from_model_dir loads it), eval_results.json, dev_predictions.tsv and
test_predictions.tsv (ids, predictions, probabilities) and GLUE submission files for
the test split (e.g. SST-2.tsv); with --strategy=multi_worker only the chief (worker 0)
writes it and prints the results. SQuAD writes predictions.json (question id -> answer),
nbest_predictions.json (and null_odds.json for v2.0) and eval_results.json with the
official exact_match and f1 (v2.0 also HasAns_*/NoAns_*); tagging writes
dev_predictions.txt (conlleval's `word gold predicted`) and eval_results.json with
entity-level precision, recall, f1 and word accuracy.
"""

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import runtime_flags  # noqa: E402  (tools/, the script's directory)
import tool_errors  # noqa: E402
from electra_tf import config as config_lib  # noqa: E402
from electra_tf.training import finetune, runtime, tasks  # noqa: E402

flags.DEFINE_enum("task", None, list(tasks.TASK_NAMES),
                  "GLUE task; custom for --text_column/--label_column data; squad or "
                  "squad_v2 (question answering); ner, chunk or tagging (token tagging).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The task's data directory.")
flags.DEFINE_string("init", None, "Pretraining model_dir, or none (random init).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Model, results and predictions go here.")
_CONFIG = flags.DEFINE_string("config", "", "With --init=none: the model config (configs/*.json).")
flags.DEFINE_string("vocab", "", "With --init=none: the vocabulary.")
flags.DEFINE_bool("lowercase", True, "With --init=none: uncased tokenization.")
flags.DEFINE_integer("epochs", None, "Default: 3 (10 for STS-B and RTE, 2 for SQuAD).")
flags.DEFINE_float(
    "learning_rate", None,
    "Peak learning rate. Default: 1e-3 tiny (hidden < 256), 3e-4 small, 1e-4 base, 5e-5 large.")
flags.DEFINE_float(
    "dropout_rate", None, "Hidden and attention dropout of the encoder (default: the "
    "pretrained encoder's own, or the config's).")
flags.DEFINE_float(
    "layer_decay", None, "Layer-wise learning-rate decay. Default: 0.8 (0.9 for large).")
flags.DEFINE_integer(
    "batch_size", 32, "Training batch size: the global batch of one update.")
flags.DEFINE_integer(
    "grad_accum_steps", 1, "Split each update's batch into N micro-batches (the update "
    "is the same, memory that of one micro-batch); --batch_size must divide evenly.")
flags.DEFINE_integer(
    "max_seq_length", None, "Tokens per example (SQuAD: per window). Default: 128, 384 for "
    "SQuAD; at most the encoder's max_position_embeddings.")
flags.DEFINE_integer("max_query_length", 64, "SQuAD: question WordPieces kept.")
flags.DEFINE_integer("doc_stride", 128, "SQuAD: WordPieces between the starts of windows.")
flags.DEFINE_integer("max_answer_length", 30, "SQuAD: longest answer, in WordPieces.")
flags.DEFINE_integer("n_best_size", 20, "SQuAD: candidates per window and answers kept.")
flags.DEFINE_float(
    "null_score_threshold", 0.0,
    "SQuAD v2.0: answer nothing when the null score exceeds the best span's by more.")
flags.DEFINE_float("warmup_fraction", 0.1, "Linear warmup share of steps.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
flags.DEFINE_integer("seed", 42, "Seed of the first run.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Runs with seeds seed, seed+1, ...; reports the median.")
flags.DEFINE_integer(
    "max_steps", 0, "Stop after this many updates, for quick trials (0: all epochs); the "
    "learning-rate schedule ends there and dev is evaluated at the stop.")
flags.DEFINE_integer(
    "max_train_examples", 0, "Train on a random sample of this many examples (0: all).")
flags.DEFINE_bool(
    "skip_bad_rows", False, "Skip (and count) malformed rows instead of stopping.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output_dir.")
flags.DEFINE_string("text_column", "text", "Custom task: the text column.")
flags.DEFINE_string(
    "text_pair_column", "", "Custom task: the second text column, for pairs.")
flags.DEFINE_string("label_column", "label", "Custom task: the label column.")
flags.DEFINE_list(
    "label_names", [], "Custom task: the labels in order (default: sorted train labels).")
flags.DEFINE_bool("regression", False, "Custom task: predict a number.")
_FINETUNE_CONFIG = flags.DEFINE_string(
    "finetune_config", "", "A fine-tuning config JSON: a preset (configs/finetune_*.json) or "
    "a run's finetune_config.json. Its values replace the flags' defaults; flags given on "
    "the command line and --override change them.")
_OVERRIDE = flags.DEFINE_multi_string(
    "override", [], "key=value of the fine-tuning config (config.FinetuneConfig), e.g. "
    "warmup_fraction=0.06, for settings without a flag; repeatable.")
_PROGRESS = flags.DEFINE_enum(
    "progress", "auto", ["auto", "bar", "lines", "none"],
    "auto: a Keras bar on a terminal, one line per epoch when piped; none: only the "
    "per-epoch dev evaluation lines (always logged).")

# --task and --init may come from --finetune_config instead.
flags.mark_flags_as_required(["data_dir", "output_dir"])


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    strategy = runtime_flags.make_strategy()
    progress = _PROGRESS.value
    if progress == "auto":
        progress = "bar" if sys.stdout.isatty() else "lines"
    verbose = {"bar": 1, "lines": 2, "none": 0}[progress]
    # Bad data, paths or settings (ValueError, OSError) are all raised before training
    # starts; tool_errors turns them into one error line.
    # Every flag named like a FinetuneConfig field sets it (--config: model_config): a
    # flag given on the command line always, its default unless --finetune_config has
    # the field.
    preset = (config_lib.read_finetune_values(_FINETUNE_CONFIG.value)
              if _FINETUNE_CONFIG.value else {})
    flag_names = {f.name: f.name for f in dataclasses.fields(config_lib.FinetuneConfig)
                  if f.name in flags.FLAGS}
    flag_names["model_config"] = "config"
    values = dict(preset)
    for field, flag in flag_names.items():
        if flags.FLAGS[flag].present or field not in preset:
            values[field] = flags.FLAGS[flag].value
    for required in ("task", "init"):
        if values.get(required) is None:
            raise config_lib.ConfigError(f"--{required} is required (or a --finetune_config "
                                         f"that sets {required!r})")
    cfg = config_lib.finetune_config_from(values, _OVERRIDE.value)
    summary = finetune.run_finetuning(
        cfg, _DATA_DIR.value, _OUTPUT_DIR.value, seeds=_SEEDS.value,
        overwrite=_OVERWRITE.value, verbose=verbose, strategy=strategy,
        precision=runtime_flags.PRECISION.value, jit_compile=runtime_flags.jit_compile())
    if not runtime.is_chief(strategy):
        return 0  # the chief reports and writes --output_dir
    for run in summary["runs"]:
        splits = {s: run[s] for s in summary["median"]}
        print(f"seed {run['seed']}: {json.dumps(splits)}")
    print(f"median over {len(summary['runs'])} seed(s): {json.dumps(summary['median'])}")
    print(f"best seed {summary['best_seed']} (by dev {summary['main_metric']}); "
          f"results in {os.path.join(_OUTPUT_DIR.value, finetune.EVAL_RESULTS_JSON)}")
    return 0


if __name__ == "__main__":
    app.run(main)
