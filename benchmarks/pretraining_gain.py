"""Does pretraining help? ELECTRA, the MLM control and scratch, fine-tuned on GLUE.

Three arms of one encoder config (`--config` with `--override`):
  electra   replaced-token detection (`pretraining.objective=electra`), the discriminator
  mlm       the same encoder trained as a BERT-style masked LM on the same data, for
            the same wall-clock time (`pretraining.objective=mlm`)
  scratch   a random initialisation

1. Vocabulary and data: a WordPiece vocabulary learned from the development corpora
   (`--vocab=learn`, 8k) or a given file; TFRecords at `--pretrain_seq_length`. The
   held-out speeches (`shared_data.heldout_files`) are not trained on: they are the
   context probe's text (`context_auc` in each arm's metrics.jsonl).
2. Pretraining: both pretrained arms at once, `--threads` threads each, for
   `--pretrain_minutes` each (a 40-step probe of each arm, run side by side, sets its
   step count, so both get the same wall-clock), or exactly `--pretrain_steps`
   ("electra=N,mlm=M"; reproducible on a shared machine).
3. A frozen-encoder linear probe of SST-2 per arm (`pretraining_diagnostics.py`).
4. Fine-tuning (`tools/finetune.py`) on each of `--tasks`: per arm and task, every
   (learning rate, layer decay) of the grid with the first seed, then `--seeds` - 1
   more seeds at the arm's best grid point; each arm is reported at its own best point
   (the paper tunes per model), as the median over the seeds.

Output: one JSON line per fine-tuning run, per (arm, task), per task (margins against
scratch) and a summary. Everything is kept under `--work_dir`; a step whose output
exists there is reused, so an interrupted run resumes.

    python benchmarks/pretraining_gain.py --work_dir=/tmp/gain --pretrain_minutes=60 \
        --override=pretraining.temperature=2
    python benchmarks/pretraining_gain.py --work_dir=/tmp/gain_smoke --pretrain_steps=electra=30,mlm=30 \
        --seeds=1 --learning_rates=1e-3 --layer_decays=1.0 \
        --max_train_examples=sst2=500,mrpc=500 --epochs=1                      # smoke test
"""

import itertools
import json
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from absl import app, flags  # noqa: E402

import jobs as jobs_lib  # noqa: E402  (benchmarks/, the script's directory)
import shared_data  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402

GLUE_DIRS = {"sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B"}
# SQuAD (`--tasks=squad`): part A of the dev set split by article (shared_data.squad_split),
# with windows that suit max_seq_length 128.
SQUAD_FLAGS = ["--max_query_length=32", "--doc_stride=48"]
PRETRAINED_ARMS = ("electra", "mlm")

_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/pretraining_gain", "Everything goes here.")
_CORPUS_DIR = flags.DEFINE_string("corpus_dir", str(SHARED_DATA / "corpus"), "Corpora root.")
_GLUE_DIR = flags.DEFINE_string("glue_dir", str(SHARED_DATA / "glue"), "GLUE root.")
_CONFIG = flags.DEFINE_string("config", str(REPO_ROOT / "configs" / "electra_tiny.json"),
                              "Model and pretraining config.")
_OVERRIDE = flags.DEFINE_multi_string(
    "override", [], "Config overrides of both pretrained arms (and of scratch's encoder).")
_ARMS = flags.DEFINE_list("arms", ["electra", "mlm", "scratch"], "Arms to compare.")
_VOCAB = flags.DEFINE_string("vocab", "learn", "A vocabulary file, or learn one.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8000, "Size of a learned vocabulary.")
_PRETRAIN_SEQ_LENGTH = flags.DEFINE_integer("pretrain_seq_length", 128, "Pretraining length.")
_PRETRAIN_MINUTES = flags.DEFINE_float("pretrain_minutes", 25.0,
                                       "Pretraining wall-clock budget of each arm.")
_PRETRAIN_STEPS = flags.DEFINE_list(
    "pretrain_steps", [], "arm=steps, instead of --pretrain_minutes (e.g. electra=3000,mlm=3700).")
_PROBE_STEPS = flags.DEFINE_integer("probe_steps", 40, "Steps timed to size the budget.")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow threads per job.")
_PARALLEL = flags.DEFINE_integer("parallel", 2, "Fine-tuning jobs at once.")
_TASKS = flags.DEFINE_list(
    "tasks", ["sst2", "mrpc"], "Tasks to fine-tune on: sst2, mrpc, stsb, squad (SQuAD dev "
    "part A split by article; exact match and F1).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Fine-tuning seeds at the best grid point.")
_LEARNING_RATES = flags.DEFINE_list("learning_rates", ["1e-4", "3e-4", "1e-3"],
                                    "Fine-tuning learning-rate grid.")
_LAYER_DECAYS = flags.DEFINE_list("layer_decays", ["0.8", "1.0"],
                                  "Fine-tuning layer-wise decay grid (1.0: none).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Fine-tuning epochs (default: the paper's).")
_FINETUNE_DROPOUT = flags.DEFINE_float(
    "finetune_dropout", 0.1, "Fine-tuning dropout of every arm, whatever pretraining used.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Fine-tuning batch size.")
_MAX_SEQ_LENGTHS = flags.DEFINE_list(
    "max_seq_lengths", ["sst2=64", "mrpc=128", "stsb=128", "squad=128"],
    "Fine-tuning length per task (SST-2's single sentences fit in 64 tokens).")
_MAX_TRAIN_EXAMPLES = flags.DEFINE_list(
    "max_train_examples", ["sst2=8000"],
    "Per task, fine-tune on a random sample of this many examples (unlisted: all). The "
    "sample is the same for every seed and arm.")

FIRST_SEED = 42


def emit(record):
    print(json.dumps(record), flush=True)


def per_key(entries, key, default):
    """The value of `key` in ["key=value", ...], or `default`."""
    return dict(entry.split("=", 1) for entry in entries).get(key, default)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def check(jobs):
    failed = [job for job in jobs if job.returncode != 0]
    if failed:
        raise RuntimeError("failed: " + "; ".join(f"{j.name} (log {j.log_path})" for j in failed))
    return jobs


def pretrain_command(arm, model_dir, data_dir, vocab_path, steps, log_every, probe_every):
    return jobs_lib.pretrain_command(
        _CONFIG.value, data_dir, model_dir, vocab_path,
        shared_data.heldout_files(_CORPUS_DIR.value), [
            f"data.max_seq_length={_PRETRAIN_SEQ_LENGTH.value}",
            f"train.num_train_steps={steps}",
            f"train.warmup_steps={max(1, min(steps // 10, 1000))}",
            f"train.checkpoint_every={max(1, steps // 10)}",
            f"train.log_every={log_every}",
            f"diagnostics.context_probe_every={probe_every}",
            *_OVERRIDE.value, f"pretraining.objective={arm}"])


def pretrain_steps(work_dir, data_dir, vocab_path, arms):
    """{arm: steps}: given, or what fits --pretrain_minutes by a side-by-side probe."""
    if _PRETRAIN_STEPS.value:
        return {arm: int(per_key(_PRETRAIN_STEPS.value, arm, 0)) for arm in arms}
    steps = _PROBE_STEPS.value
    probes = {arm: os.path.join(work_dir, "probe", arm) for arm in arms}
    check(jobs_lib.run_jobs([
        jobs_lib.Job(f"probe_{arm}", pretrain_command(
            arm, probes[arm], data_dir, vocab_path, steps, steps // 4, 10**6),
            os.path.join(probes[arm], "run.log"))
        for arm in arms if not os.path.exists(os.path.join(probes[arm], "discriminator"))],
        parallel=len(arms), threads=_THREADS.value))
    result = {}
    for arm in arms:
        records = read_jsonl(os.path.join(probes[arm], "metrics.jsonl"))[1:]  # no tracing
        tokens_per_sec = statistics.median(r["tokens_per_sec"] for r in records)
        step_seconds = 32 * _PRETRAIN_SEQ_LENGTH.value / tokens_per_sec
        result[arm] = max(1, int(_PRETRAIN_MINUTES.value * 60 / step_seconds))
    return result


def pretrain_arms(work_dir, data_dir, vocab_path, arms):
    """Pretrains `arms` side by side. Returns {arm: {"steps", "seconds", "final"}}."""
    record_path = os.path.join(work_dir, "pretraining.json")
    if os.path.exists(record_path):
        with open(record_path) as f:
            return json.load(f)
    steps = pretrain_steps(work_dir, data_dir, vocab_path, arms)
    jobs = check(jobs_lib.run_jobs([
        jobs_lib.Job(arm, pretrain_command(
            arm, os.path.join(work_dir, arm), data_dir, vocab_path, steps[arm],
            max(1, min(50, steps[arm] // 40)), max(1, steps[arm] // 10)),
            os.path.join(work_dir, arm, "run.log"))
        for arm in arms], parallel=len(arms), threads=_THREADS.value))
    result = {}
    for job in jobs:
        records = read_jsonl(os.path.join(work_dir, job.name, "metrics.jsonl"))
        probes = [r["context_auc"] for r in records if "context_auc" in r]
        result[job.name] = {"steps": records[-1]["step"], "seconds": round(job.seconds),
                            "final": records[-1], "context_auc": probes[-1] if probes else None}
    with open(record_path, "w") as f:
        json.dump(result, f)
    return result


def linear_probes(work_dir, arms):
    """{arm: SST-2 probe record} from pretraining_diagnostics.py ("scratch": its random init)."""
    out = {}
    for arm in arms:
        path = os.path.join(work_dir, f"linear_probe_{arm}.jsonl")
        if not os.path.exists(path):
            check(jobs_lib.run_jobs([jobs_lib.Job(
                f"linear_probe_{arm}",
                [sys.executable, str(REPO_ROOT / "benchmarks" / "pretraining_diagnostics.py"),
                 f"--model_dir={os.path.join(work_dir, arm)}",
                 f"--glue_dir={os.path.join(_GLUE_DIR.value, 'SST-2')}"],
                path + ".log")], parallel=1, threads=_THREADS.value))
            with open(path + ".log") as f:
                lines = [line for line in f if line.startswith("{")]
            with open(path, "w") as f:
                f.writelines(lines)
        for record in read_jsonl(path):
            out[arm if record["init"] == "pretrained" else "scratch"] = record
    return out


def finetune_job(work_dir, arm, task, learning_rate, layer_decay, seed, seeds, vocab_path):
    output_dir = os.path.join(work_dir, "finetune", task, arm,
                              f"lr{learning_rate}_ld{layer_decay}_seed{seed}")
    init = (["--init=none", f"--config={os.path.join(work_dir, 'electra', 'config.json')}",
             f"--vocab={vocab_path}"] if arm == "scratch"
            else [f"--init={os.path.join(work_dir, arm)}"])
    data_dir = (shared_data.squad_split(work_dir) if task == "squad"
                else os.path.join(_GLUE_DIR.value, GLUE_DIRS[task]))
    command = [
        sys.executable, str(REPO_ROOT / "tools" / "finetune.py"), f"--task={task}",
        f"--data_dir={data_dir}", *init, *(SQUAD_FLAGS if task == "squad" else []),
        f"--output_dir={output_dir}", "--overwrite", "--progress=none",
        f"--learning_rate={learning_rate}", f"--layer_decay={layer_decay}",
        f"--dropout_rate={_FINETUNE_DROPOUT.value}",
        f"--seed={seed}", f"--seeds={seeds}", f"--batch_size={_BATCH_SIZE.value}",
        f"--max_seq_length={per_key(_MAX_SEQ_LENGTHS.value, task, 128)}",
        f"--max_train_examples={per_key(_MAX_TRAIN_EXAMPLES.value, task, 0)}",
        *([f"--epochs={_EPOCHS.value}"] if _EPOCHS.value else []),
    ]
    return output_dir, jobs_lib.Job(f"{task}/{arm}/{os.path.basename(output_dir)}", command,
                                    output_dir + ".log")


def run_finetuning(work_dir, specs, vocab_path):
    """Runs (arm, task, lr, decay, seed, seeds) specs not done yet; {spec: summary}."""
    todo, dirs = [], {}
    for spec in specs:
        output_dir, job = finetune_job(work_dir, *spec, vocab_path)
        dirs[spec] = output_dir
        if not os.path.exists(os.path.join(output_dir, "eval_results.json")):
            todo.append(job)
    check(jobs_lib.run_jobs(todo, parallel=_PARALLEL.value, threads=_THREADS.value))
    out = {}
    for spec, output_dir in dirs.items():
        with open(os.path.join(output_dir, "eval_results.json")) as f:
            out[spec] = json.load(f)
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    work_dir = _WORK_DIR.value
    os.makedirs(work_dir, exist_ok=True)
    arms = list(_ARMS.value)
    pretrained = [arm for arm in arms if arm in PRETRAINED_ARMS]
    if "electra" not in arms:
        raise app.UsageError("--arms must include electra (scratch takes its config)")
    files = shared_data.dev_corpus_files(_CORPUS_DIR.value)
    vocab_path = (shared_data.prepare_vocab(work_dir, files, _VOCAB_SIZE.value)
                  if _VOCAB.value == "learn" else _VOCAB.value)
    data_dir = shared_data.prepare_data(work_dir, files, vocab_path, _PRETRAIN_SEQ_LENGTH.value)
    pretraining = pretrain_arms(work_dir, data_dir, vocab_path, pretrained)
    for arm, record in pretraining.items():
        final = record["final"]
        emit({"arm": arm, "pretrain_steps": record["steps"], "pretrain_seconds": record["seconds"],
              "context_auc": record["context_auc"],
              **{k: round(final[k], 4) for k in ("mlm_loss", "rtd_loss", "rtd_prior_gap",
                                                  "rtd_auc") if k in final}})
    probes = linear_probes(work_dir, pretrained)
    for arm, record in probes.items():
        emit({"arm": arm, "linear_probe_sst2": record["probe_sst2_features"],
              "linear_probe_sst2_embeddings": record["probe_sst2_embeddings"]})

    grid = list(itertools.product(_LEARNING_RATES.value, _LAYER_DECAYS.value))
    results = {}
    for task in _TASKS.value:
        first = run_finetuning(work_dir, [(arm, task, lr, ld, FIRST_SEED, 1)
                                          for arm in arms for lr, ld in grid], vocab_path)
        best = {}
        for arm in arms:
            scores = {}
            for lr, ld in grid:
                summary = first[(arm, task, lr, ld, FIRST_SEED, 1)]
                metric = summary["main_metric"]
                scores[(lr, ld)] = summary["runs"][0]["dev"][metric]
            best[arm] = max(grid, key=lambda point: scores[point])
            results[(arm, task)] = {"metric": metric, "grid": {f"lr={lr},ld={ld}": v for
                                                                (lr, ld), v in scores.items()}}
        more = run_finetuning(work_dir, [(arm, task, *best[arm], FIRST_SEED + 1, _SEEDS.value - 1)
                                         for arm in arms if _SEEDS.value > 1], vocab_path)
        medians, all_medians = {}, {}
        for arm in arms:
            lr, ld = best[arm]
            runs = first[(arm, task, lr, ld, FIRST_SEED, 1)]["runs"]
            if _SEEDS.value > 1:
                runs = runs + more[(arm, task, lr, ld, FIRST_SEED + 1, _SEEDS.value - 1)]["runs"]
            metric = results[(arm, task)]["metric"]
            values = [run["dev"][metric] for run in runs]
            medians[arm] = statistics.median(values)
            all_medians[arm] = {k: statistics.median(run["dev"][k] for run in runs)
                                for k in runs[0]["dev"] if k != "num_examples"}
            record = {"task": task, "arm": arm, "metric": metric, "learning_rate": float(lr),
                      "layer_decay": float(ld), "seeds": [run["seed"] for run in runs],
                      "values": values, "median": medians[arm],
                      "median_dev": all_medians[arm],
                      "dev": [run["dev"] for run in runs], **results[(arm, task)]}
            emit(record)
        emit({"task": task, "metric": metric, "medians": medians,
              "margins_vs_scratch": {
                  arm: {k: round(v - all_medians["scratch"][k], 4)
                        for k, v in all_medians[arm].items()}
                  for arm in arms if arm != "scratch"} if "scratch" in arms else None})
    emit({"benchmark": "pretraining_gain", "config": _CONFIG.value, "overrides": _OVERRIDE.value,
          "arms": arms, "pretraining": {arm: {k: v for k, v in r.items() if k != "final"}
                                        for arm, r in pretraining.items()},
          "seeds": _SEEDS.value, "grid": grid, "max_train_examples": _MAX_TRAIN_EXAMPLES.value,
          "max_seq_lengths": _MAX_SEQ_LENGTHS.value, "threads": _THREADS.value,
          "cpu_count": os.cpu_count()})


if __name__ == "__main__":
    app.run(main)
