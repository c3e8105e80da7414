"""The fault battery: kills, damaged checkpoints, concurrent runs, full and read-only disks.

Every trial runs the real tools (`tools/*.py`) in subprocesses on real shards, then
checks the promises from outside:

- `pretrain_kill`: SIGKILL at random moments of training, in the middle of a checkpoint
  save (its `ckpt-N_temp` directory exists), between a checkpoint's files and the
  `checkpoint` state file, and while the final artifacts are written. The same command
  is restarted until it finishes. It must resume from the latest complete checkpoint
  (losing at most one checkpoint interval) and end with weights and metrics records
  equal to an uninterrupted run (dropout 0, so the run is a function of its seed).
- `build_kill`, `finetune_kill`, `export_kill`: SIGKILL at random moments; whatever is
  left must be either absent or whole (shards read to the end, manifests parse and
  match, models load, export versions load in a bare-TF process and serve), and a
  re-run with `--overwrite` (or the next export version) must complete.
- `corrupt_checkpoint`: the latest checkpoint truncated, its index deleted, the state
  file garbled: a warning naming it and a resume from the previous one (weights equal
  to the uninterrupted run), or one `error:` line.
- `concurrent`: a second run on a live run's model_dir is refused with one line; the
  first run is unaffected.
- `disk_full`, `read_only`: model_dir / output_dir on a tmpfs that fills up, or that is
  mounted read-only: one `error:` line, no traceback, the previous checkpoint intact
  and resumable. Needs root (mount); skipped with the reason otherwise.
- `bad_inputs`: the bad-inputs table of `bad_inputs.py`.

Prints one JSON line per trial family (`trials`, `survived`, `data_lost`, details);
with --trials_jsonl, also one line per trial.

    python benchmarks/fault_battery.py --workdir=/tmp/faults [--families=pretrain_kill]
"""

import glob
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import bad_inputs as bad_inputs_table  # noqa: E402  (benchmarks/, the script's directory)
from tool_runs import (TIMEOUT, error_lines, kill_when, one_clear_line, run_tool,  # noqa: E402
                       sha256, start_tool, tool_env)

FLAGS = flags.FLAGS
FAMILIES = ["pretrain_kill", "corrupt_checkpoint", "concurrent", "disk_full", "read_only",
            "build_kill", "finetune_kill", "export_kill", "bad_inputs"]
flags.DEFINE_string("workdir", "/tmp/electra_fault_battery", "Scratch directory (wiped).")
flags.DEFINE_list("families", FAMILIES, "Trial families to run.")
flags.DEFINE_integer("pretrain_trials", 12, "SIGKILL trials of pretraining.")
flags.DEFINE_list("pretrain_kinds", ["random", "during_save", "before_state_file", "artifacts"],
                  "Kill moments of the pretraining trials, taken in turn.")
flags.DEFINE_integer("other_trials", 4, "SIGKILL trials of each of build/finetune/export.")
flags.DEFINE_integer("steps", 120, "Pretraining steps of every run.")
flags.DEFINE_integer("seed", 0, "Seeds the kill moments.")
flags.DEFINE_string("trials_jsonl", None, "Optional file: one JSON line per trial.")

WORDS = ("the cat sat on a mat and the dog ran to big red house with small blue car "
         "it was very happy sad good bad day night").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHECKPOINT_EVERY, LOG_EVERY = 10, 5


# ---------------------------------------------------------------------------
# Inputs and processes

class Workspace:
    """A tiny vocabulary, corpus, shards and pretraining config, all under `root`."""

    def __init__(self, root, steps):
        self.root = pathlib.Path(root)
        self.steps = steps
        self.root.mkdir(parents=True, exist_ok=True)
        self.vocab = self.root / "vocab.txt"
        self.vocab.write_text("\n".join(SPECIALS + sorted(set(WORDS)) + ["."]) + "\n")
        self.corpus = self.root / "corpus.txt"
        self.corpus.write_text(synthetic_text(np.random.RandomState(0), documents=400))
        self.data_dir = self.root / "data"
        result = run_tool(["tools/build_pretraining_data.py", f"--input={self.corpus}",
                           f"--vocab={self.vocab}", f"--output_dir={self.data_dir}",
                           "--max_seq_length=16", "--num_shards=2", "--overwrite"])
        if result.returncode:
            raise RuntimeError(f"building the battery's data failed:\n{result.stderr[-2000:]}")

    def overrides(self, **extra):
        n = len(self.vocab.read_text().split("\n")) - 1
        values = {
            "data.vocab_path": self.vocab, "data.max_seq_length": 16,
            "data.shuffle_buffer": 50, "model.vocab_size": n, "model.embedding_size": 8,
            "model.hidden_size": 16, "model.num_layers": 2, "model.num_heads": 2,
            "model.intermediate_size": 32, "model.generator_hidden_fraction": 0.5,
            "model.dropout_rate": 0, "model.attention_dropout_rate": 0,
            "train.batch_size": 4, "train.warmup_steps": 2,
            "train.num_train_steps": self.steps, "train.checkpoint_every": CHECKPOINT_EVERY,
            "train.log_every": LOG_EVERY, "train.keep_checkpoints": 3, **extra}
        return [f"--override={k}={v}" for k, v in values.items()]

    def pretrain_args(self, model_dir, data_dir=None, **extra):
        return ["tools/pretrain.py", f"--config={REPO_ROOT / 'configs' / 'electra_tiny.json'}",
                f"--data_dir={data_dir or self.data_dir}", f"--model_dir={model_dir}",
                "--progress=none", *self.overrides(**extra)]


def synthetic_text(rng, documents):
    docs = []
    for _ in range(documents):
        lines = [" ".join(rng.choice(WORDS, rng.randint(4, 12))) + " ."
                 for _ in range(rng.randint(2, 6))]
        docs.append("\n".join(lines))
    return "\n\n".join(docs) + "\n"


# ---------------------------------------------------------------------------
# What a pretraining model_dir holds

def checkpoint_steps(model_dir):
    """Steps of the checkpoints whose index and data files both exist."""
    steps = []
    for index in glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index")):
        step = int(re.search(r"ckpt-(\d+)\.index$", index).group(1))
        if glob.glob(index[: -len(".index")] + ".data-*"):
            steps.append(step)
    return sorted(steps)


def listed_checkpoint_steps(model_dir):
    """Steps the `checkpoint` state file lists (what a restore looks at first)."""
    path = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.exists(path):
        return []
    return sorted(int(s) for s in re.findall(r'ckpt-(\d+)"', pathlib.Path(path).read_text()))


def metrics_records(model_dir):
    path = pathlib.Path(model_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparable(records):
    # Throughput is wall time; everything else is a function of the seed.
    return [{k: v for k, v in r.items() if k != "tokens_per_sec"} for r in records]


# The logged total "loss" is a Keras Mean over a weighted sum of the two losses; its
# float accumulation order varies between runs of the same command (seen: 2 ulp at one
# interval in four identical fresh runs) while the component losses and the weights are
# bitwise equal. Records are therefore equal up to this relative tolerance.
METRICS_RTOL = 1e-6


def records_equal(a, b):
    """Whether two lists of metrics records hold the same steps, keys and values."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for key in x:
            u, v = x[key], y[key]
            if isinstance(u, float) or isinstance(v, float):
                if not np.isclose(u, v, rtol=METRICS_RTOL, atol=0.0):
                    return False
            elif u != v:
                return False
    return True


def training_start(log_text, target):
    """The step the (re)started run trained from, from its log."""
    match = re.search(r"Training from step (\d+) to", log_text)
    return int(match.group(1)) if match else target


_WEIGHTS_CHILD = """
import json, sys
import numpy as np
from electra_tf.models import artifacts
out = {}
for kind in ("discriminator", "generator"):
    model, *_ = artifacts.load_artifact(sys.argv[1] + "/" + kind)
    out[kind] = [float(np.sum(np.abs(w))) for w in model.get_weights()]
    np.savez(sys.argv[2] + "." + kind + ".npz", *model.get_weights())
print(json.dumps(out))
"""


def saved_weights(model_dir, dest):
    """Both artifacts' weights, loaded in a fresh process, as lists of arrays."""
    result = subprocess.run([sys.executable, "-c", _WEIGHTS_CHILD, str(model_dir), str(dest)],
                            cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True,
                            timeout=TIMEOUT)
    if result.returncode:
        return None
    weights = {}
    for kind in ("discriminator", "generator"):
        with np.load(f"{dest}.{kind}.npz") as z:
            weights[kind] = [z[f"arr_{i}"] for i in range(len(z.files))]
    return weights


def same_weights(a, b):
    return a is not None and b is not None and all(
        len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in zip(a[k], b[k]))
        for k in a)


class Reference:
    """The uninterrupted run every pretraining trial is compared with."""

    def __init__(self, ws):
        self.dir = ws.root / "reference"
        shutil.rmtree(self.dir, ignore_errors=True)
        start = time.time()
        result = run_tool(ws.pretrain_args(self.dir))
        if result.returncode:
            raise RuntimeError(f"the reference run failed:\n{result.stderr[-3000:]}")
        self.seconds = time.time() - start
        self.weights = saved_weights(self.dir, ws.root / "reference_weights")
        self.records = comparable(metrics_records(self.dir))


# ---------------------------------------------------------------------------
# Families

KILL_KINDS = ("random", "during_save", "before_state_file", "artifacts")


def pretrain_kill(ws, ref, trials, rng, kinds=KILL_KINDS):
    """SIGKILL trials of tools/pretrain.py; see the module docstring."""
    rows = []
    for trial in range(trials):
        kind = kinds[trial % len(kinds)]
        model_dir = ws.root / f"kill_{trial}"
        shutil.rmtree(model_dir, ignore_errors=True)
        ckpts = model_dir / "checkpoints"
        # Where in the run the kill goes: not the first checkpoint, so a kill must
        # resume rather than restart from step 0.
        after = CHECKPOINT_EVERY * int(rng.randint(2, ws.steps // CHECKPOINT_EVERY))
        # A random moment of training: past a random logged step, plus a random part
        # of a log interval.
        logged = LOG_EVERY * int(rng.randint(1, ws.steps // LOG_EVERY - 1))
        delay = float(rng.uniform(0, 0.2))
        reached = [None]

        def random_point():
            if reached[0] is None and any(r["step"] >= logged
                                          for r in metrics_records_safe(model_dir)):
                reached[0] = time.time()
            return reached[0] is not None and time.time() - reached[0] >= delay

        def during_save():
            return (ckpts / f"ckpt-{after}_temp").exists()

        def before_state_file():
            return (after in checkpoint_steps(model_dir)
                    and after not in listed_checkpoint_steps(model_dir))

        def artifacts():
            # The artifact directory exists from its first file; its weights come last.
            return (model_dir / "discriminator").exists()

        ready = {"random": random_point, "during_save": during_save,
                 "before_state_file": before_state_file, "artifacts": artifacts}[kind]
        row = {"trial": trial, "kind": kind}
        log = ws.root / f"kill_{trial}.log"
        proc = start_tool(ws.pretrain_args(model_dir), log)
        row["killed"] = kill_when(proc, ready)
        row["complete_at_kill"] = max(checkpoint_steps(model_dir), default=0)
        row["listed_at_kill"] = max(listed_checkpoint_steps(model_dir), default=0)
        row["logged_at_kill"] = max((r["step"] for r in metrics_records_safe(model_dir)),
                                    default=0)
        result = run_tool(ws.pretrain_args(model_dir))
        row["restart_exit"] = result.returncode
        row["resumed_from"] = training_start(result.stderr, ws.steps)
        # Resumed from the newest checkpoint that was whole at the kill (a
        # checkpoint missing from the state file is whole too: TF restores it
        # only through the state file, so it counts as lost and must be the only loss).
        row["lost_steps"] = max(row["logged_at_kill"] - row["resumed_from"], 0)
        row["resumed_from_latest"] = row["resumed_from"] >= row["listed_at_kill"]
        weights = saved_weights(model_dir, ws.root / f"kill_{trial}_weights")
        row["weights_equal"] = same_weights(weights, ref.weights)
        records = comparable(metrics_records(model_dir))
        row["metrics_equal"] = records_equal(records, ref.records)
        if not row["metrics_equal"]:
            row["metrics_steps"] = [r["step"] for r in records]
            row["metrics_differ_at"] = [a["step"] for a, b in zip(records, ref.records)
                                        if not records_equal([a], [b])][:3]
        row["survived"] = (row["restart_exit"] == 0 and row["resumed_from_latest"]
                           and row["lost_steps"] <= CHECKPOINT_EVERY
                           and row["weights_equal"] and row["metrics_equal"])
        row["data_lost"] = not row["survived"]
        rows.append(row)
        logging.info("pretrain_kill %s", row)
        if row["survived"]:  # a failure's directory stays for a post-mortem
            shutil.rmtree(model_dir, ignore_errors=True)
    return rows


def metrics_records_safe(model_dir):
    """metrics.jsonl as a reader sees it mid-run (a torn last line ignored)."""
    path = pathlib.Path(model_dir) / "metrics.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def corrupt_checkpoint(ws, ref):
    """The latest checkpoint damaged three ways, then the same command re-run."""
    half = ws.steps // 2
    damages = {
        "truncated_data": lambda d: _truncate(glob.glob(str(d / f"ckpt-{half}.data-*"))[0]),
        "deleted_index": lambda d: os.remove(d / f"ckpt-{half}.index"),
        "garbled_state_file": lambda d: (d / "checkpoint").write_text("not a checkpoint state"),
    }
    rows = []
    for name, damage in damages.items():
        model_dir = ws.root / f"corrupt_{name}"
        shutil.rmtree(model_dir, ignore_errors=True)
        first = run_tool(ws.pretrain_args(model_dir) + [f"--max_steps={half}"])
        damage(model_dir / "checkpoints")
        result = run_tool(ws.pretrain_args(model_dir))
        named = f"ckpt-{half}" in result.stderr and ("cannot be restored" in result.stderr
                                                      or "damaged" in result.stderr)
        weights = saved_weights(model_dir, ws.root / f"corrupt_{name}_weights")
        row = {"trial": name, "first_exit": first.returncode, "exit": result.returncode,
               "resumed_from": training_start(result.stderr, ws.steps),
               "warning_names_it": named or name == "garbled_state_file",
               "traceback": "Traceback" in result.stderr,
               "weights_equal": same_weights(weights, ref.weights)}
        refused = one_clear_line(result)
        row["survived"] = (first.returncode == 0 and not row["traceback"] and (
            refused or (result.returncode == 0 and row["resumed_from"] > 0
                        and row["warning_names_it"] and row["weights_equal"])))
        row["data_lost"] = not row["survived"]
        rows.append(row)
        logging.info("corrupt_checkpoint %s", row)
    return rows


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def concurrent(ws, ref):
    """A second run started on a live run's model_dir, and a stale lock."""
    model_dir = ws.root / "concurrent"
    shutil.rmtree(model_dir, ignore_errors=True)
    first = start_tool(ws.pretrain_args(model_dir), ws.root / "concurrent_first.log")
    # Paused once it has checkpointed (a stopped process keeps its lock), so the
    # second run meets a live holder however slowly it starts.
    deadline = time.time() + TIMEOUT
    while not checkpoint_steps(model_dir) and first.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)
    before = sorted(p.name for p in (model_dir / "checkpoints").iterdir())
    second = run_tool(ws.pretrain_args(model_dir))
    untouched = sorted(p.name for p in (model_dir / "checkpoints").iterdir()) == before
    first.send_signal(signal.SIGCONT)
    first.wait(TIMEOUT)
    weights = saved_weights(model_dir, ws.root / "concurrent_weights")
    refused = one_clear_line(second) and "pid" in error_lines(second.stderr)[0]
    rows = [{"trial": "second_run_refused", "first_exit": first.returncode,
             "second_exit": second.returncode, "second_refused": refused,
             "second_message": (error_lines(second.stderr) or [""])[0][:200],
             "second_wrote_nothing": untouched,
             "weights_equal": same_weights(weights, ref.weights)}]
    rows[0]["survived"] = (refused and untouched and first.returncode == 0
                           and rows[0]["weights_equal"])
    rows[0]["data_lost"] = not rows[0]["weights_equal"]
    return rows


def _mount_tmpfs(path, size, options=""):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True).returncode == 0


def _umount(path):
    subprocess.run(["umount", str(path)], capture_output=True)


def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None


def disk_full(ws, ref):
    """model_dir on a tmpfs that fills up mid-run; then space is freed and the run resumed."""
    mount = ws.root / "full_fs"
    ckpt_bytes = sum(os.path.getsize(p) for p in
                     glob.glob(str(ref.dir / "checkpoints" / f"ckpt-{ws.steps}.*")))
    # Room for the config, the first few checkpoints and the logs, not for the run.
    if not _mount_tmpfs(mount, "4m"):
        return [{"trial": "disk_full", "skipped": "mount -t tmpfs failed"}]
    try:
        model_dir = mount / "model"
        filler = mount / "filler"
        free = shutil.disk_usage(mount).free
        filler.write_bytes(b"\0" * max(free - 2 * ckpt_bytes - 100_000, 0))
        result = run_tool(ws.pretrain_args(model_dir))
        listed = listed_checkpoint_steps(model_dir)
        intact = bool(listed) and _restorable(model_dir, max(listed))
        filler.unlink()
        resumed = run_tool(ws.pretrain_args(model_dir))
        weights = saved_weights(model_dir, ws.root / "disk_full_weights")
        row = {"trial": "disk_full", "exit": result.returncode,
               "clear_error": one_clear_line(result),
               "message": (error_lines(result.stderr) or [result.stderr[-300:]])[0][:200],
               "latest_listed": max(listed, default=0), "latest_intact": intact,
               "resume_exit": resumed.returncode,
               "resumed_from": training_start(resumed.stderr, ws.steps),
               "weights_equal": same_weights(weights, ref.weights)}
        row["survived"] = (row["clear_error"] and intact and resumed.returncode == 0
                           and row["weights_equal"])
        row["data_lost"] = not (intact and row["weights_equal"])
        return [row]
    finally:
        _umount(mount)


def _restorable(model_dir, step):
    child = ("import sys, tensorflow as tf\nr = tf.train.load_checkpoint(sys.argv[1])\n"
             "[r.get_tensor(n) for n in r.get_variable_to_shape_map()]")
    path = pathlib.Path(model_dir) / "checkpoints" / f"ckpt-{step}"
    return subprocess.run([sys.executable, "-c", child, str(path)], env=tool_env(),
                          capture_output=True, timeout=TIMEOUT).returncode == 0


def read_only(ws, ref):
    """Every writing tool pointed at a read-only file system: one clear line each."""
    mount = ws.root / "ro_fs"
    if not _mount_tmpfs(mount, "16m"):
        return [{"trial": "read_only", "skipped": "mount -t tmpfs failed"}]
    try:
        # A finished run on it first, so "nothing lost" can be checked after the refusals.
        shutil.copytree(ref.dir, mount / "model")
        before = {p: sha256(p) for p in glob.glob(str(mount / "model" / "**"), recursive=True)
                  if os.path.isfile(p)}
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        commands = {
            "pretrain_resume": ws.pretrain_args(mount / "model", **{
                "train.num_train_steps": ws.steps + CHECKPOINT_EVERY}),
            "pretrain_new": ws.pretrain_args(mount / "new_model"),
            "build_pretraining_data": [
                "tools/build_pretraining_data.py", f"--input={ws.corpus}",
                f"--vocab={ws.vocab}", f"--output_dir={mount / 'data'}",
                "--max_seq_length=16", "--num_shards=2"],
            "export": ["tools/export.py", f"--model_dir={ref.dir / 'discriminator'}",
                       f"--export_dir={mount / 'serving'}", "--name=m"],
        }
        rows = []
        for name, args in commands.items():
            result = run_tool(args)
            row = {"trial": name, "exit": result.returncode,
                   "clear_error": one_clear_line(result),
                   "message": (error_lines(result.stderr) or [result.stderr[-300:]])[0][:200]}
            row["survived"] = row["clear_error"]
            rows.append(row)
        after = {p: sha256(p) for p in before if os.path.exists(p)}
        for row in rows:
            row["data_lost"] = after != before
            row["survived"] = row["survived"] and not row["data_lost"]
        return rows
    finally:
        _umount(mount)


def build_kill(ws, trials, rng):
    """SIGKILL of tools/build_pretraining_data.py on a multi-megabyte corpus."""
    corpus = ws.root / "big_corpus.txt"
    if not corpus.exists():
        corpus.write_text(synthetic_text(np.random.RandomState(1), documents=40000))
    args = lambda out: ["tools/build_pretraining_data.py", f"--input={corpus}",  # noqa: E731
                        f"--vocab={ws.vocab}", f"--output_dir={out}", "--max_seq_length=32",
                        "--num_shards=4"]
    reference = ws.root / "build_reference"
    shutil.rmtree(reference, ignore_errors=True)
    start = time.time()
    if run_tool(args(reference)).returncode:
        raise RuntimeError("the reference build failed")
    seconds = time.time() - start
    expected = {p.name: sha256(p) for p in reference.iterdir() if p.name.endswith(".tfrecord")}
    rows = []
    for trial in range(trials):
        out = ws.root / f"build_kill_{trial}"
        shutil.rmtree(out, ignore_errors=True)
        delay = float(rng.uniform(0.3, 1.0)) * seconds
        t0 = time.time()
        proc = start_tool(args(out), ws.root / f"build_kill_{trial}.log")
        killed = kill_when(proc, lambda: time.time() - t0 >= delay)
        whole, looks = _data_dir_whole(out, expected)
        rerun = run_tool(args(out) + ["--overwrite"])
        final = {p.name: sha256(p) for p in out.iterdir() if p.name.endswith(".tfrecord")}
        row = {"trial": trial, "killed": killed, "kill_at_s": round(delay, 2),
               "left_behind": looks, "left_whole": whole, "rerun_exit": rerun.returncode,
               "rerun_identical": final == expected}
        row["survived"] = whole and rerun.returncode == 0 and row["rerun_identical"]
        row["data_lost"] = not whole
        rows.append(row)
        logging.info("build_kill %s", row)
    return rows


def _data_dir_whole(out, expected):
    """(whether everything left that looks final is whole, what was left)."""
    if not out.exists():
        return True, []
    looks = sorted(p.name for p in out.iterdir())
    # A shard being written is named *.tfrecord.incomplete; only *.tfrecord looks final.
    shards = [p for p in out.iterdir() if p.name.endswith(".tfrecord")
              and not p.name.startswith(".")]
    whole = all(sha256(p) == expected.get(p.name) for p in shards)
    manifest = out / "manifest.json"
    if manifest.exists():
        try:
            listed = json.loads(manifest.read_text())
            whole = whole and len(shards) == len(expected) and bool(listed)
        except ValueError:
            whole = False
    return whole, looks


def finetune_kill(ws, ref, trials, rng):
    """SIGKILL of tools/finetune.py (custom CSV task) and of a re-run over its output."""
    data = ws.root / "csv_task"
    data.mkdir(exist_ok=True)
    sample = np.random.RandomState(2)
    for split, n in (("train", 200), ("dev", 40)):
        rows = ["text,label"]
        for _ in range(n):
            label = int(sample.randint(2))
            words = sample.choice(WORDS[:10], 6).tolist() + [["sad", "bad"], ["happy", "good"]][label]
            rows.append(f"{' '.join(words)},{['neg', 'pos'][label]}")
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n")
    args = lambda out: ["tools/finetune.py", "--task=custom", f"--data_dir={data}",  # noqa
                        f"--init={ref.dir}", f"--output_dir={out}", "--epochs=2",
                        "--max_seq_length=16", "--batch_size=8", "--progress=none"]
    reference = ws.root / "finetune_reference"
    shutil.rmtree(reference, ignore_errors=True)
    start = time.time()
    first = run_tool(args(reference))
    if first.returncode:
        raise RuntimeError(f"the reference fine-tuning failed:\n{first.stderr[-3000:]}")
    seconds = time.time() - start
    rows = []
    for trial in range(trials):
        out = ws.root / f"finetune_kill_{trial}"
        shutil.rmtree(out, ignore_errors=True)
        delay = float(rng.uniform(0.3, 1.0)) * seconds
        t0 = time.time()
        proc = start_tool(args(out), ws.root / f"finetune_kill_{trial}.log")
        killed = kill_when(proc, lambda: time.time() - t0 >= delay)
        whole, bad = _outputs_whole(out)
        rerun = run_tool(args(out) + ["--overwrite"])
        whole_after, _ = _outputs_whole(out)
        row = {"trial": trial, "killed": killed, "kill_at_s": round(delay, 2),
               "left_whole": whole, "not_whole": bad[:5], "rerun_exit": rerun.returncode,
               "rerun_whole": whole_after}
        row["survived"] = whole and rerun.returncode == 0 and whole_after
        row["data_lost"] = not whole
        rows.append(row)
        logging.info("finetune_kill %s", row)
    return rows


_LOAD_CHILD = """
import sys
from electra_tf.models import artifacts
artifacts.load_artifact(sys.argv[1])
"""


def _outputs_whole(out):
    """Every model directory with weights loads; every JSON file parses."""
    if not out.exists():
        return True, []
    bad = []
    for path in out.rglob("*"):
        if path.suffix == ".json" and path.is_file():
            try:
                json.loads(path.read_text())
            except ValueError:
                bad.append(str(path.relative_to(out)))
        if path.is_file() and path.name.endswith(".weights.h5") and not path.name.startswith("tmp."):
            result = subprocess.run([sys.executable, "-c", _LOAD_CHILD, str(path.parent)],
                                    cwd=REPO_ROOT, env=tool_env(), capture_output=True,
                                    timeout=TIMEOUT)
            if result.returncode:
                bad.append(str(path.parent.relative_to(out)))
    return not bad, bad


_SERVE_CHILD = """
import sys
import tensorflow as tf
import tensorflow_text  # registers the tf-text ops (TF Serving links them in)
loaded = tf.saved_model.load(sys.argv[1])
fn = loaded.signatures["serving_default"]
(name,) = fn.structured_input_signature[1].keys()
fn(**{name: tf.constant(["the cat sat on a mat ."])})
"""


def export_kill(ws, ref, trials, rng):
    """SIGKILL of tools/export.py; every version left must load and serve in bare TF."""
    base = ws.root / "serving"
    shutil.rmtree(base, ignore_errors=True)
    args = ["tools/export.py", f"--model_dir={ref.dir / 'discriminator'}",
            f"--export_dir={base}", "--name=m"]
    start = time.time()
    first = run_tool(args)
    if first.returncode:
        raise RuntimeError(f"the reference export failed:\n{first.stderr[-3000:]}")
    seconds = time.time() - start
    rows = []
    for trial in range(trials):
        delay = float(rng.uniform(0.3, 1.0)) * seconds
        t0 = time.time()
        proc = start_tool(args, ws.root / f"export_kill_{trial}.log")
        killed = kill_when(proc, lambda: time.time() - t0 >= delay)
        versions = sorted(p for p in (base / "m").iterdir() if p.name.isdigit())
        serving = [subprocess.run([sys.executable, "-c", _SERVE_CHILD, str(v)], env=tool_env(),
                                  capture_output=True, timeout=TIMEOUT).returncode == 0
                   for v in versions]
        row = {"trial": trial, "killed": killed, "kill_at_s": round(delay, 2),
               "versions": [v.name for v in versions], "all_serve": all(serving)}
        rerun = run_tool(args)
        row["rerun_exit"] = rerun.returncode
        row["survived"] = row["all_serve"] and rerun.returncode == 0
        row["data_lost"] = not row["all_serve"]
        rows.append(row)
        logging.info("export_kill %s", row)
    return rows


def bad_inputs(ws, ref):
    """The bad-inputs table (`bad_inputs.py`) on the battery's vocabulary and data."""
    return bad_inputs_table.run_cases(
        ws.root / "bad_inputs", ws.vocab, ws.corpus, ws.data_dir,
        lambda data_dir, model_dir: ws.pretrain_args(model_dir, data_dir=data_dir),
        ref.dir, max_seq_length=16)


# ---------------------------------------------------------------------------

def summarize(family, rows, seconds, **extra):
    ran = [r for r in rows if "skipped" not in r]
    return {"family": family, "trials": len(ran),
            "survived": sum(bool(r.get("survived")) for r in ran),
            "data_lost": sum(bool(r.get("data_lost")) for r in ran),
            "skipped": [r["skipped"] for r in rows if "skipped" in r],
            "seconds": round(seconds, 1), **extra,
            "failures": [r for r in ran if not r.get("survived")][:5]}


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    unknown = set(FLAGS.families) - set(FAMILIES)
    if unknown:
        raise app.UsageError(f"unknown families {sorted(unknown)} (known: {FAMILIES})")
    root = pathlib.Path(FLAGS.workdir)
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace(root, FLAGS.steps)
    needs_ref = set(FLAGS.families) - {"build_kill"}
    ref = Reference(ws) if needs_ref else None
    rng = np.random.RandomState(FLAGS.seed)
    trials_out = open(FLAGS.trials_jsonl, "w") if FLAGS.trials_jsonl else None
    for family in FLAGS.families:
        start = time.time()
        if family in ("disk_full", "read_only") and not can_mount():
            rows = [{"trial": family, "skipped": "needs root and mount(8)"}]
        elif family == "pretrain_kill":
            rows = pretrain_kill(ws, ref, FLAGS.pretrain_trials, rng, FLAGS.pretrain_kinds)
        elif family in ("build_kill",):
            rows = build_kill(ws, FLAGS.other_trials, rng)
        elif family in ("finetune_kill", "export_kill"):
            rows = globals()[family](ws, ref, FLAGS.other_trials, rng)
        else:
            rows = globals()[family](ws, ref)
        extra = {"reference_seconds": round(ref.seconds, 1)} if ref else {}
        if trials_out:
            for row in rows:
                trials_out.write(json.dumps({"family": family, **row}, default=str) + "\n")
            trials_out.flush()
        print(json.dumps(summarize(family, rows, time.time() - start, **extra), default=str),
              flush=True)


if __name__ == "__main__":
    app.run(main)
