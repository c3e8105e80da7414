"""Fine-tuning like a Trainer: a dev evaluation per epoch into metrics.jsonl and
TensorBoard, the best epoch's weights kept, max_steps, predictions files with ids and
probabilities, and a warning for labels that differ only by case."""

import json
import os

import numpy as np
import pytest
from absl import logging

from electra_tf.data import glue
from electra_tf.models import artifacts
from electra_tf.training import finetune
from training.test_finetune import NO_DROPOUT, WORDS, make_artifact, tiny_config, write_mrpc


@pytest.fixture
def pretrained(tmp_path, tiny_vocab):
    return make_artifact(tmp_path / "pretrained", tiny_vocab, **NO_DROPOUT)


def read_tsv(path):
    return [line.split("\t") for line in open(path, encoding="utf-8").read().splitlines()]


def test_one_dev_evaluation_per_epoch_and_the_best_epoch_kept(tmp_path, pretrained):
    data_dir = write_mrpc(tmp_path / "MRPC", rows=16)
    out = str(tmp_path / "out")
    cfg = tiny_config(pretrained, epochs=3, learning_rate=3e-3)
    summary = finetune.run_finetuning(cfg, data_dir, out)
    run = summary["runs"][0]

    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2, 3] and records == run["epochs"]
    assert [r["step"] for r in records] == [2, 4, 6]  # 16 examples, batch 8
    assert set(records[0]) == {"epoch", "step", "loss", "dev_accuracy", "dev_f1"}
    assert [r["loss"] for r in records] == pytest.approx(run["train"]["loss_per_epoch"],
                                                         abs=1e-5)
    events = os.listdir(os.path.join(out, "tensorboard"))
    assert any(name.startswith("events.out.tfevents") for name in events)

    # The saved model is the best epoch's, and its dev results are that epoch's.
    best = max(records, key=lambda r: r["dev_accuracy"])
    assert run["train"]["best_epoch"] == best["epoch"]
    assert run["dev"]["accuracy"] == best["dev_accuracy"]
    model, saved_cfg, vocab_path, _ = artifacts.load_finetuned(out)
    task = glue.get_task("mrpc")
    dev = glue.read_split(task, data_dir, "dev")
    from electra_tf.text.tokenizer import WordPieceTokenizer

    encoded = finetune.Split(dev, glue.ExampleEncoder(WordPieceTokenizer(vocab_path), 16)(dev))
    assert finetune.evaluate(model, task, encoded)["accuracy"] == best["dev_accuracy"]

    # Predictions: ids (the test file's index column; dev: 0-based rows), probabilities.
    dev_rows = read_tsv(os.path.join(out, "dev_predictions.tsv"))
    assert dev_rows[0] == ["id", "prediction", "p_0", "p_1", "label"]
    assert [r[0] for r in dev_rows[1:]] == [str(i) for i in range(16)]
    probs = np.array([[float(r[2]), float(r[3])] for r in dev_rows[1:]])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert [r[1] for r in dev_rows[1:]] == [str(p.argmax()) for p in probs]
    accuracy = np.mean([r[1] == r[4] for r in dev_rows[1:]])
    assert accuracy == pytest.approx(best["dev_accuracy"])
    test_rows = read_tsv(os.path.join(out, "test_predictions.tsv"))
    assert [r[0] for r in test_rows[1:]] == [str(i) for i in range(16)]
    submission = read_tsv(os.path.join(out, "MRPC.tsv"))
    assert [r[1] for r in submission[1:]] == [r[1] for r in test_rows[1:]]


def test_max_steps_stops_early_with_a_last_evaluation(tmp_path, pretrained):
    data_dir = write_mrpc(tmp_path / "MRPC", rows=16)
    out = str(tmp_path / "out")
    summary = finetune.run_finetuning(tiny_config(pretrained, epochs=5, max_steps=3),
                                      data_dir, out)
    run = summary["runs"][0]
    assert run["train"]["steps"] == 3
    assert [(r["epoch"], r["step"]) for r in run["epochs"]] == [(1, 2), (2, 3)]
    with pytest.raises(ValueError, match="max_steps must be >= 0"):
        tiny_config(pretrained, max_steps=-1)


def write_custom(data_dir, train_labels):
    os.makedirs(data_dir)
    rng = np.random.RandomState(0)
    for split, labels in (("train", train_labels), ("dev", ["negative", "positive"] * 3)):
        lines = ["text,label"] + [f"{' '.join(rng.choice(WORDS, 4))},{label}"
                                  for label in labels]
        with open(os.path.join(data_dir, f"{split}.csv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(data_dir, "test.csv"), "w", encoding="utf-8") as f:
        f.write("text\nthe cat\na dog\nred car\n")
    return str(data_dir)


def test_labels_that_differ_by_case_are_warned_about(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
    labels = ["negative"] * 60 + ["positive"] * 60 + ["Negative"] * 5 + ["neutral"]
    data_dir = write_custom(tmp_path / "reviews", labels)
    task = glue.custom_task(data_dir, "text")
    assert task.label_names == ("Negative", "negative", "neutral", "positive")
    assert len(warnings) == 2, warnings
    assert "differ only by case" in warnings[0]
    assert "{'Negative': 5, 'negative': 60}" in warnings[0]
    assert "fewer than 1% of the 126 rows: {'neutral': 1}" in warnings[1]
    # Given labels fix the set: the stray spelling is then a named error.
    with pytest.raises(glue.DataError, match="Negative"):
        glue.read_split(glue.custom_task(data_dir, "text", label_names=("negative", "positive")),
                        data_dir, "train")


def test_custom_task_predictions_have_row_ids_and_probabilities(tmp_path, pretrained):
    data_dir = write_custom(tmp_path / "reviews", ["negative", "positive"] * 8)
    out = str(tmp_path / "out")
    cfg = tiny_config(pretrained, task="custom")
    finetune.run_finetuning(cfg, data_dir, out)
    rows = read_tsv(os.path.join(out, "test_predictions.tsv"))
    assert rows[0] == ["id", "prediction", "p_negative", "p_positive"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert all(abs(float(r[2]) + float(r[3]) - 1) < 1e-5 for r in rows[1:])
    assert sorted(os.listdir(out)) == sorted([
        "dev_predictions.tsv", "eval_results.json", "finetune_config.json", "metrics.jsonl",
        "model.json", "model.weights.h5", "tensorboard", "test_predictions.tsv", "vocab.txt"])
