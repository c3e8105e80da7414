"""tools/finetune.py, run as a subprocess like a user would."""

import json
import os
import subprocess
import sys

from helpers import REPO_ROOT, TINY_WORDS

TOOL = str(REPO_ROOT / "tools" / "finetune.py")
TINY_CONFIG = str(REPO_ROOT / "configs" / "electra_tiny.json")
WORDS = [w for w in TINY_WORDS if w.isalpha()]


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def write_sst2(data_dir, rows=16):
    data_dir.mkdir()
    sentences = [" ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(4)) for i in range(rows)]
    for split in ("train", "dev"):
        (data_dir / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(sentences)),
            encoding="utf-8")
    (data_dir / "test.tsv").write_text(
        "index\tsentence\n" + "".join(f"{i}\t{s}\n" for i, s in enumerate(sentences[:5])),
        encoding="utf-8")
    return data_dir


def common_args(tiny_vocab, out):
    return ["--init=none", f"--config={TINY_CONFIG}", f"--vocab={tiny_vocab}",
            f"--output_dir={out}", "--max_seq_length=16", "--batch_size=8", "--epochs=1",
            "--progress=none"]


def test_glue_task_with_two_seeds_writes_model_results_and_submission(tmp_path, tiny_vocab):
    data_dir = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "out"
    done = run_tool("--task=sst2", f"--data_dir={data_dir}", "--seeds=2", "--seed=5",
                    *common_args(tiny_vocab, out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "seed 5: " in done.stdout and "seed 6: " in done.stdout
    assert "median over 2 seed(s)" in done.stdout

    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["seeds"] == [5, 6] and summary["best_run"] in ("seed_5", "seed_6")
    assert summary["runs"][0]["train"]["steps"] == 2  # 16 examples, batch 8, 1 epoch
    rows = (out / "SST-2.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and [r.split("\t")[0] for r in rows[1:]] == list("01234")
    config = json.loads((out / summary["best_run"] / "finetune_config.json").read_text())
    # The "tiny" rate (electra_tiny is narrower than ELECTRA-small); the random encoder
    # takes the vocabulary's size.
    assert (config["learning_rate"], config["layer_decay"], config["init"]) == (1e-3, 0.8, "none")
    model = json.loads((out / summary["best_run"] / "model.json").read_text())
    assert model["config"]["encoder_config"]["vocab_size"] == len(
        open(tiny_vocab).read().splitlines())


def test_custom_jsonl_task_skips_and_counts_bad_rows(tmp_path, tiny_vocab):
    data_dir = tmp_path / "reviews"
    data_dir.mkdir()
    rows = [{"review": " ".join(WORDS[i:i + 4]), "stars": ["low", "high"][i % 2]}
            for i in range(12)]
    bad = {"review": "   ", "stars": "low"}
    (data_dir / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows + [bad]) + "\n", encoding="utf-8")
    (data_dir / "dev.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows[:6]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--task=custom", f"--data_dir={data_dir}", "--text_column=review",
            "--label_column=stars", "--label_names=low,high", *common_args(tiny_vocab, out)]

    failed = run_tool(*args)
    assert failed.returncode == 2
    assert "train.jsonl:13: empty text in column 'review'" in failed.stderr
    assert not out.exists()

    done = run_tool(*args, "--skip_bad_rows")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 1 bad row(s): {'empty text': 1}" in done.stderr
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["runs"][0]["train"]["examples"] == 12
    assert set(summary["median"]["dev"]) == {"accuracy", "f1", "mcc"}
    config = json.loads((out / "finetune_config.json").read_text())
    assert config["label_names"] == ["low", "high"] and config["text_column"] == "review"



def test_scale_out_flags_split_the_batch_over_replicas_and_micro_batches(tmp_path, tiny_vocab):
    """The flags reach the run. (XLA itself, and the refusal of a batch that does not
    split: test_finetune.py and test_distribute.py; XLA takes a minute to compile on 2
    CPU replicas.)"""
    data_dir = write_sst2(tmp_path / "SST-2")
    out = tmp_path / "out"
    done = run_tool("--task=sst2", f"--data_dir={data_dir}", *common_args(tiny_vocab, out),
                    "--cpu_replicas=2", "--strategy=mirrored", "--precision=mixed_bfloat16",
                    "--grad_accum_steps=2", "--nojit_compile")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas in sync" in done.stderr
    assert "Keras dtype policy: mixed_bfloat16" in done.stderr
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["runs"][0]["train"]["steps"] == 2  # 16 examples, global batch 8
    config = json.loads((out / "finetune_config.json").read_text())
    assert (config["batch_size"], config["grad_accum_steps"]) == (8, 2)


def test_finetune_config_preset_gives_defaults_and_command_line_flags_win(tmp_path, tiny_vocab):
    data = write_sst2(tmp_path / "SST-2")
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"task": "sst2", "epochs": 2, "batch_size": 4,
                                  "warmup_fraction": 0.25}), encoding="utf-8")
    out = tmp_path / "out"
    result = run_tool(f"--finetune_config={preset}", f"--data_dir={data}",
                      *common_args(tiny_vocab, out))  # common_args has --batch_size=8
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((out / "finetune_config.json").read_text())
    assert (saved["task"], saved["epochs"], saved["batch_size"], saved["warmup_fraction"]) == (
        "sst2", 1, 8, 0.25)  # --epochs=1 and --batch_size=8 given, warmup from the preset

    preset.write_text(json.dumps({"task": "sst2", "epoch": 2}), encoding="utf-8")
    result = run_tool(f"--finetune_config={preset}", f"--data_dir={data}",
                      *common_args(tiny_vocab, tmp_path / "out2"))
    assert result.returncode == 2
    assert "unknown fine-tuning key 'epoch'" in result.stderr
    assert "did you mean 'epochs'" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_tool(f"--data_dir={data}", *common_args(tiny_vocab, tmp_path / "out3"))
    assert result.returncode == 2 and "--task is required" in result.stderr


def test_shipped_finetune_presets_load():
    from electra_tf import config as config_lib

    for name in ("finetune_squad.json", "finetune_squad_v2.json", "finetune_conll.json"):
        values = config_lib.read_finetune_values(str(REPO_ROOT / "configs" / name))
        cfg = config_lib.finetune_config_from({**values, "init": "none"})
        assert cfg.task in ("squad", "squad_v2", "ner")
