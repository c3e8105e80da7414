"""Which pretraining recipe makes the tiny config learn context? Runs and compares recipes.

Each run is `tools/pretrain.py` on the tiny config (`--config`) with the overrides of
one entry of RUNS, on the development corpora (held-out speeches excluded: they are
the context probe's text), logging every `--log_every` steps and probing context every
`--probe_every` steps. Runs go `--parallel` at a time, each on `--threads` CPU threads,
so runs of one batch share the machine alike. A run whose model_dir holds its final
artifacts is not run again (delete it to re-run).

Output: one JSON line per run, then a summary line; with `--plot`, a PNG of
rtd_prior_gap, context_auc and mlm_loss against the step for every run.

  {"run": "t2", "overrides": [...], "steps": 1000, "seconds": ...,
   "rtd_prior_gap": last 4 records' mean, "rtd_auc": ..., "mlm_loss": ...,
   "context_auc": at the last probe, "context_auc_max": ..., "context_auc_curve": [[step, auc], ...]}

    python benchmarks/pretraining_sweep.py --work_dir=/tmp/sweep --runs=t1,t2,mlm \
        --steps=1000 --plot=/tmp/sweep/curves.png
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from absl import app, flags  # noqa: E402

import jobs as jobs_lib  # noqa: E402  (benchmarks/, the script's directory)
import shared_data  # noqa: E402

# Every run starts from the paper's sampling (temperature 1, constant), whatever the
# base config's schedule, so that a run's name says all it changes.
BASE_OVERRIDES = {"pretraining.temperature": "1", "pretraining.temperature_schedule": "constant",
                  "pretraining.flatten_toward": "uniform"}

_F_TEMPERATURE = ["pretraining.temperature=2", "pretraining.temperature_schedule=cosine",
                  "pretraining.temperature_end=1.25", "pretraining.temperature_decay_start=400",
                  "pretraining.temperature_decay_steps=600"]

# name -> (pretraining sequence length, config overrides). "t" is the sampling
# temperature; "anneal" runs hold it, then move it to 1 once the generator has left
# its unigram plateau.
RUNS = {
    "t1": (128, []),
    "t1.5": (128, ["pretraining.temperature=1.5"]),
    "t2": (128, ["pretraining.temperature=2"]),
    "t3": (128, ["pretraining.temperature=3"]),
    "t2_anneal": (128, ["pretraining.temperature=2", "pretraining.temperature_schedule=cosine",
                        "pretraining.temperature_decay_start=400",
                        "pretraining.temperature_decay_steps=600"]),
    "t3_anneal": (128, ["pretraining.temperature=3", "pretraining.temperature_schedule=cosine",
                        "pretraining.temperature_decay_start=400",
                        "pretraining.temperature_decay_steps=600"]),
    "t2_lr5e-4": (128, ["pretraining.temperature=2", "train.learning_rate=5e-4",
                        "train.warmup_steps=300"]),
    "t2_lr2e-4": (128, ["pretraining.temperature=2", "train.learning_rate=2e-4",
                        "train.warmup_steps=300"]),
    "t2_gen1/8": (128, ["pretraining.temperature=2", "model.generator_hidden_fraction=0.125"]),
    "t2_gen1/4_depth1/2": (128, ["pretraining.temperature=2",
                                 "model.generator_layers_fraction=0.5"]),
    "t2_gen1/8_depth1/2": (128, ["pretraining.temperature=2",
                                 "model.generator_hidden_fraction=0.125",
                                 "model.generator_layers_fraction=0.5"]),
    "t2_mask0.25": (128, ["pretraining.temperature=2", "pretraining.mask_rate=0.25"]),
    "t2_disallow": (128, ["pretraining.temperature=2", "pretraining.disallow_correct=true"]),
    "t2_b64": (128, ["pretraining.temperature=2", "train.batch_size=64"]),
    "t2_seq64_b128": (64, ["pretraining.temperature=2", "train.batch_size=128"]),
    "t2_seq64_b64": (64, ["pretraining.temperature=2", "train.batch_size=64"]),
    "t2_nodrop": (128, ["pretraining.temperature=2", "model.dropout_rate=0",
                        "model.attention_dropout_rate=0"]),
    "t2_nodrop_lr2e-3": (128, ["pretraining.temperature=2", "model.dropout_rate=0",
                               "model.attention_dropout_rate=0", "train.learning_rate=2e-3"]),
    "t2_seq64_b64_nodrop_lr2e-3": (64, ["pretraining.temperature=2", "train.batch_size=64",
                                        "model.dropout_rate=0", "model.attention_dropout_rate=0",
                                        "train.learning_rate=2e-3"]),
    # Local attention from step 0 and a 5x wider initialisation: the one change that
    # made the discriminator learn the context probe's own task (context_ceiling.py).
    "t2_local_init0.1": (128, ["pretraining.temperature=2", "model.attention_locality=1.0",
                               "model.initializer_range=0.1"]),
    # Plus a kernel-3 convolution over the embeddings (model.local_conv_kernel): the
    # best discriminator of context_ceiling.py (0.68 on the probe's task in 2,000 steps).
    "t2_conv3_local_init0.1": (128, ["pretraining.temperature=2", "model.local_conv_kernel=3",
                                     "model.attention_locality=1.0",
                                     "model.initializer_range=0.1"]),
    # The recipe shipped until the ninth session (temperature 2, cosine to 1.25 over
    # steps 400-1,000, flattened toward uniform) and the batch shapes the issue asks
    # about, on it (for its other question, the BERT vocabulary, pass --vocab with run f).
    "f": (128, _F_TEMPERATURE),
    "f_b64": (128, _F_TEMPERATURE + ["train.batch_size=64"]),
    "f_seq64_b128": (64, _F_TEMPERATURE + ["train.batch_size=128"]),
    # The shipped recipe (configs/electra_tiny.json): temperature 2, constant,
    # flattening the generator toward the data's unigram distribution.
    "u": (128, ["pretraining.temperature=2", "pretraining.flatten_toward=unigram"]),
    "mlm": (128, ["pretraining.objective=mlm"]),
    "mlm_nodrop_lr2e-3": (128, ["pretraining.objective=mlm", "model.dropout_rate=0",
                                "model.attention_dropout_rate=0", "train.learning_rate=2e-3"]),
    "mlm_seq64_b64": (64, ["pretraining.objective=mlm", "train.batch_size=64"]),
    "mlm_local_init0.1": (128, ["pretraining.objective=mlm", "model.attention_locality=1.0",
                                "model.initializer_range=0.1"]),
    "mlm_conv3_local_init0.1": (128, ["pretraining.objective=mlm", "model.local_conv_kernel=3",
                                      "model.attention_locality=1.0",
                                      "model.initializer_range=0.1"]),
}

_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/pretraining_sweep", "Everything goes here.")
_CORPUS_DIR = flags.DEFINE_string("corpus_dir", str(shared_data.SHARED_DATA / "corpus"),
                                  "Corpora root.")
_CONFIG = flags.DEFINE_string("config", str(REPO_ROOT / "configs" / "electra_tiny.json"),
                              "Base config of every run.")
_VOCAB = flags.DEFINE_string("vocab", "learn", "A vocabulary file, or learn one (8k).")
_RUNS = flags.DEFINE_list("runs", ["t1", "t2", "mlm"], f"Runs, of: {', '.join(RUNS)}.")
_EXTRA = flags.DEFINE_multi_string("override", [], "Overrides added to every run.")
_SUFFIX = flags.DEFINE_string("suffix", "", "Appended to the run names (model dirs).")
_STEPS = flags.DEFINE_integer("steps", 1000, "Steps per run (also num_train_steps).")
_LOG_EVERY = flags.DEFINE_integer("log_every", 25, "Steps per log record.")
_PROBE_EVERY = flags.DEFINE_integer("probe_every", 100, "Steps per context probe.")
_PARALLEL = flags.DEFINE_integer("parallel", 2, "Runs at once.")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow intra-op threads per run.")
_PLOT = flags.DEFINE_string("plot", None, "Write the curves of all runs here (PNG).")


def emit(record):
    print(json.dumps(record), flush=True)


def merged_overrides(overrides, extra=()):
    """BASE_OVERRIDES, then `overrides`, then `extra` (--override): one "key=value" per key."""
    merged = dict(BASE_OVERRIDES)
    for override in list(overrides) + list(extra):
        key, _, value = override.partition("=")
        merged[key] = value
    return [f"{key}={value}" for key, value in merged.items()]


def run_command(name, seq_len, overrides, vocab_path, data_dir):
    model_dir = os.path.join(_WORK_DIR.value, "runs", name.replace("/", "_"))
    return model_dir, jobs_lib.pretrain_command(
        _CONFIG.value, data_dir, model_dir, vocab_path,
        shared_data.heldout_files(_CORPUS_DIR.value), [
            f"data.max_seq_length={seq_len}", f"train.num_train_steps={_STEPS.value}",
            f"train.log_every={_LOG_EVERY.value}",
            f"train.checkpoint_every={max(_PROBE_EVERY.value, _STEPS.value // 4)}",
            f"diagnostics.context_probe_every={_PROBE_EVERY.value}",
            *merged_overrides(overrides, _EXTRA.value)])


def summarize(name, overrides, model_dir, seconds):
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    last = records[-4:]

    def mean(key):
        values = [r[key] for r in last if key in r]
        return round(sum(values) / len(values), 4) if values else None

    probes = [(r["step"], round(r["context_auc"], 4)) for r in records if "context_auc" in r]
    return {
        "run": name, "overrides": overrides, "steps": records[-1]["step"],
        "seconds": None if seconds is None else round(seconds),
        "rtd_prior_gap": mean("rtd_prior_gap"), "rtd_auc": mean("rtd_auc"),
        "rtd_loss": mean("rtd_loss"), "rtd_recall": mean("rtd_recall"),
        "mlm_loss": mean("mlm_loss"), "mlm_accuracy": mean("mlm_accuracy"),
        "context_auc": probes[-1][1] if probes else None,
        "context_auc_max": max(a for _, a in probes) if probes else None,
        "context_auc_curve": probes,
    }, records


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("rtd_prior_gap", "context_auc", "mlm_loss")
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5))
    colors = plt.get_cmap("tab20").colors
    for i, (name, records) in enumerate(curves.items()):
        for ax, key in zip(axes, keys):
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points), label=name, color=colors[i % len(colors)],
                        ls="--" if "mlm" in name else "-",
                        marker="." if key == "context_auc" else None)
    for ax, key in zip(axes, keys):
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[-1].legend(fontsize=7)  # Every run has an MLM loss.
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = [r for r in _RUNS.value if r not in RUNS]
    if unknown:
        raise app.UsageError(f"unknown run(s) {unknown}; known: {', '.join(RUNS)}")
    work_dir = _WORK_DIR.value
    os.makedirs(work_dir, exist_ok=True)
    files = shared_data.dev_corpus_files(_CORPUS_DIR.value)
    vocab_path = (shared_data.prepare_vocab(work_dir, files, 8000) if _VOCAB.value == "learn"
                  else _VOCAB.value)
    tag = "" if _VOCAB.value == "learn" else "_" + pathlib.Path(_VOCAB.value).stem

    jobs, finished = [], []
    for name in _RUNS.value:
        seq_len, overrides = RUNS[name]
        data_dir = shared_data.prepare_data(work_dir, files, vocab_path, seq_len,
                                            f"pretraining_data_{seq_len}{tag}")
        model_dir, command = run_command(name + _SUFFIX.value, seq_len, overrides, vocab_path,
                                         data_dir)
        job = jobs_lib.Job(name + _SUFFIX.value, command, os.path.join(model_dir, "run.log"))
        job.overrides, job.model_dir = overrides, model_dir
        if os.path.exists(os.path.join(model_dir, "discriminator", "artifact.json")):
            finished.append(job)  # Done before: summarized, not run again.
        else:
            jobs.append(job)
    curves = {}

    def report(job):
        if job.returncode:
            emit({"run": job.name, "error": f"exit {job.returncode}", "log": job.log_path})
            return
        summary, curves[job.name] = summarize(job.name, job.overrides, job.model_dir,
                                              job.seconds)
        emit(summary)

    for job in finished:
        report(job)
    jobs_lib.run_jobs(jobs, _PARALLEL.value, _THREADS.value, on_done=report)
    if _PLOT.value and curves:
        plot(curves, _PLOT.value)
    emit({"benchmark": "pretraining_sweep", "runs": list(curves), "steps": _STEPS.value,
          "threads": _THREADS.value, "parallel": _PARALLEL.value, "plot": _PLOT.value})


if __name__ == "__main__":
    app.run(main)
