"""Fine-tuning runs: learning on SST-2, output layout, seeds, save/load, defaults, errors,
gradient accumulation and XLA (one device; tests/training/test_distribute.py has the
multi-replica checks)."""

import dataclasses
import json
import os
import pathlib

import keras
import numpy as np
import pytest
from helpers import REPO_ROOT, make_discriminator_dir

from electra_tf import config as config_lib
from electra_tf.data import glue
from electra_tf.models import artifacts
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import finetune
from electra_tf.config import FinetuneConfig

SEQ = 16
WORDS = "the a cat dog sat mat run ran fast slow big small red blue green house tree car".split()


def make_artifact(model_dir, vocab_path, **encoder_overrides):
    """A tiny randomly initialised discriminator saved as a pretraining model_dir would
    (`helpers.make_discriminator_dir`); `encoder_overrides`, e.g. dropout_rate=0.0."""
    return make_discriminator_dir(model_dir, vocab_path, **encoder_overrides)


def sentence(rng, n=5):
    return " ".join(rng.choice(WORDS, n))


def write_mrpc(data_dir, seed=0, rows=24):
    """MRPC's layout with a learnable rule: a paraphrase repeats the first sentence."""
    rng = np.random.RandomState(seed)
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    lines = {"train": [header], "dev": [header],
             "test": ["index\t#1 ID\t#2 ID\t#1 String\t#2 String"]}
    for split in lines:
        for i in range(rows):
            a = sentence(rng)
            label = i % 2
            b = a if label else sentence(rng)
            first = str(i) if split == "test" else str(label)
            lines[split].append(f"{first}\t{i}\t{i + 1}\t{a}\t{b}")
    os.makedirs(data_dir, exist_ok=True)
    for split, split_lines in lines.items():
        with open(os.path.join(data_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\ufeff" + "\n".join(split_lines) + "\n")
    return str(data_dir)


def write_stsb(data_dir, rows=16):
    rng = np.random.RandomState(1)
    columns = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    os.makedirs(data_dir, exist_ok=True)
    for split in ("train", "dev"):
        lines = [columns + "\tscore"] + [
            f"{i}\tg\tf\t2012\t{i}\tnone\tnone\t{sentence(rng)}\t{sentence(rng)}\t{i % 6:.3f}"
            for i in range(rows)]
        with open(os.path.join(data_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return str(data_dir)


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_vocab):
    return make_artifact(tmp_path / "pretrained", tiny_vocab)


# Keras draws dropout masks per micro-batch and per replica: exact comparisons need none.
NO_DROPOUT = dict(dropout_rate=0.0, attention_dropout_rate=0.0)


def tiny_config(model_dir, task="mrpc", **kwargs):
    values = dict(task=task, init=model_dir, max_seq_length=SEQ, batch_size=8, epochs=1,
                  learning_rate=1e-3)
    return FinetuneConfig(**{**values, **kwargs})


# === Learning ===


def test_finetuning_on_an_sst2_slice_beats_the_untrained_model(tmp_path, bert_vocab):
    """From a random tiny encoder, 3 epochs on 2,000 SST-2 sentences: well above the
    untrained model (which predicts one class: 50.9% of dev)."""
    data_dir = pathlib.Path(bert_vocab).parents[1] / "glue" / "SST-2"
    if not data_dir.exists():
        pytest.skip(f"shared data not found at {data_dir}")
    data_dir = str(data_dir)
    model_dir = make_artifact(tmp_path / "pretrained", bert_vocab)
    cfg = FinetuneConfig(task="sst2", init=model_dir, max_seq_length=32, epochs=3,
                         learning_rate=3e-3, max_train_examples=2000, seed=3)
    summary = finetune.run_finetuning(cfg, data_dir, str(tmp_path / "out"))

    task = glue.get_task("sst2")
    init = finetune.load_init(cfg)
    tokenizer = WordPieceTokenizer(init.vocab_path, lowercase=init.lowercase)
    dev = glue.read_split(task, data_dir, "dev")
    dev = finetune.Split(dev, glue.ExampleEncoder(tokenizer, 32)(dev))
    keras.utils.set_random_seed(cfg.seed)
    untrained = finetune.evaluate(finetune.build_model(init, task, 32), task, dev)
    trained = summary["runs"][0]["dev"]
    assert trained["num_examples"] == untrained["num_examples"] == 872
    assert trained["accuracy"] >= untrained["accuracy"] + 0.08, (trained, untrained)
    assert summary["runs"][0]["train"]["steps"] == 3 * 63  # ceil(2000 / 32) per epoch

    # The submission covers the whole test split, in GLUE's format.
    rows = open(tmp_path / "out" / "SST-2.tsv").read().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1 + 1821
    assert rows[1:3] == [f"0\t{rows[1][2:]}", f"1\t{rows[2][2:]}"]
    assert {r.split("\t")[1] for r in rows[1:]} <= {"0", "1"}


# === Output directory, seeds, save/load ===


def test_two_seeds_write_runs_medians_and_the_best_model(tmp_path, tiny_model_dir):
    data_dir = write_mrpc(tmp_path / "MRPC")
    out = str(tmp_path / "out")
    summary = finetune.run_finetuning(tiny_config(tiny_model_dir, seed=7), data_dir, out,
                                      seeds=2)
    assert summary["seeds"] == [7, 8]
    # The best seed's predictions at the top level.
    assert sorted(os.listdir(out)) == [
        "MRPC.tsv", "dev_predictions.tsv", "eval_results.json", "seed_7", "seed_8",
        "test_predictions.tsv"]
    assert sorted(os.listdir(os.path.join(out, "seed_7"))) == sorted(
        ["MRPC.tsv", "eval_results.json", "finetune_config.json", "model.json",
         "model.weights.h5", "vocab.txt", "metrics.jsonl", "tensorboard",
         "dev_predictions.tsv", "test_predictions.tsv"])
    assert json.load(open(os.path.join(out, "eval_results.json"))) == summary
    per_seed = [r["dev"] for r in summary["runs"]]
    for metric in ("accuracy", "f1"):
        assert summary["median"]["dev"][metric] == pytest.approx(
            np.median([r[metric] for r in per_seed]))
    best = max(summary["runs"], key=lambda r: r["dev"]["accuracy"])
    assert summary["best_seed"] == best["seed"] and summary["best_run"] == f"seed_{best['seed']}"
    assert json.load(open(os.path.join(out, summary["best_run"], "eval_results.json"))) == best

    # load_finetuned(output_dir) is the best seed's model: it reproduces that run's dev
    # metrics and the submission copied to the top level.
    model, cfg, vocab_path, label_names = artifacts.load_finetuned(out)
    assert (cfg.seed, label_names, cfg.lowercase) == (best["seed"], ("0", "1"), True)
    task = glue.get_task("mrpc")
    tokenizer = WordPieceTokenizer(vocab_path, lowercase=cfg.lowercase)
    encoder = glue.ExampleEncoder(tokenizer, SEQ)
    dev, test = (glue.read_split(task, data_dir, split) for split in ("dev", "test"))
    dev, test = finetune.Split(dev, encoder(dev)), finetune.Split(test, encoder(test))
    assert finetune.evaluate(model, task, dev) == best["dev"]
    glue.write_submission(str(tmp_path / "again.tsv"), task, test.examples.ids,
                          finetune.predict_logits(model, test))
    assert open(tmp_path / "again.tsv").read() == open(os.path.join(out, "MRPC.tsv")).read()

    with pytest.raises(FileExistsError, match="not empty"):
        finetune.run_finetuning(tiny_config(tiny_model_dir), data_dir, out)


def test_save_load_round_trip_gives_identical_predictions(tmp_path, tiny_model_dir):
    cfg = tiny_config(tiny_model_dir, task="stsb", label_names=())
    init = finetune.load_init(cfg)
    keras.utils.set_random_seed(1)
    model = finetune.build_model(init, glue.get_task("stsb"), SEQ)
    rng = np.random.RandomState(0)
    inputs = {"token_ids": rng.randint(5, 60, (4, SEQ)).astype("int32"),
              "segment_ids": np.zeros((4, SEQ), "int32"),
              "padding_mask": np.ones((4, SEQ), bool)}
    finetune.save_finetuned(model, cfg, init.vocab_path, str(tmp_path / "run"))
    loaded, loaded_cfg, vocab_path, label_names = artifacts.load_finetuned(str(tmp_path / "run"))
    assert loaded_cfg == cfg and label_names == ()
    assert open(vocab_path).read() == open(init.vocab_path).read()
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0),
                                  model.predict(inputs, verbose=0))
    with pytest.raises(FileNotFoundError, match="not an electra_tf model directory"):
        artifacts.load_finetuned(str(tmp_path))


def test_regression_with_the_papers_defaults_and_layerwise_rates(tmp_path, tiny_model_dir):
    data_dir = write_stsb(tmp_path / "STS-B", rows=8)
    out = str(tmp_path / "out")
    cfg = tiny_config(tiny_model_dir, task="stsb", epochs=None, learning_rate=None,
                      max_train_examples=4)
    summary = finetune.run_finetuning(cfg, data_dir, out)
    run = summary["runs"][0]
    assert set(run["dev"]) == {"spearman", "pearson", "num_examples"}
    assert summary["main_metric"] == "spearman" and summary["best_run"] == "."
    assert all(-1.0 <= run["dev"][m] <= 1.0 for m in ("spearman", "pearson"))
    # STS-B trains 10 epochs; 4 sampled examples are 1 batch of 8 per epoch.
    assert (run["train"]["examples"], run["train"]["steps"]) == (4, 10)
    # No test.tsv: no submission, and nothing else is missing.
    assert sorted(os.listdir(out)) == [
        "dev_predictions.tsv", "eval_results.json", "finetune_config.json", "metrics.jsonl",
        "model.json", "model.weights.h5", "tensorboard", "vocab.txt"]
    header = open(os.path.join(out, "dev_predictions.tsv")).readline().split()
    assert header == ["id", "prediction", "label"]  # regression: the score

    model, saved, _, label_names = artifacts.load_finetuned(out)
    assert model.num_labels == 1 and label_names == ()
    # The test model is narrower than ELECTRA-small: the "tiny" rates.
    assert (saved.epochs, saved.learning_rate, saved.layer_decay) == (10, 1e-3, 0.8)
    finetune.compile_model(model, saved, glue.get_task("stsb"), num_train_steps=10)
    rates = {path.split("/", 1)[1]: m for path, m in model.optimizer.lr_multipliers.items()}
    assert rates["encoder/block_1/qkv/kernel"] == rates["classifier/out_proj/kernel"] == 1.0
    assert rates["encoder/block_0/qkv/kernel"] == pytest.approx(0.8)
    assert rates["encoder/embeddings/token_embedding/embeddings"] == pytest.approx(0.64)
    assert isinstance(model.loss, keras.losses.MeanSquaredError)


# === Gradient accumulation and XLA ===


def finetuned_weights(out, cfg, data_dir, **kwargs):
    """run_finetuning into `out`: (that run's results, the saved model's weights)."""
    summary = finetune.run_finetuning(cfg, data_dir, str(out), **kwargs)
    return summary["runs"][0], [w.numpy() for w in artifacts.load_finetuned(str(out))[0].weights]


def assert_same_run(got, want, atol=1e-5):
    (got_run, got_weights), (want_run, want_weights) = got, want
    assert got_run["train"]["steps"] == want_run["train"]["steps"]
    np.testing.assert_allclose(got_run["train"]["loss_per_epoch"],
                               want_run["train"]["loss_per_epoch"], atol=atol)
    assert got_run["dev"] == pytest.approx(want_run["dev"], abs=atol)
    assert len(got_weights) == len(want_weights)
    for a, b in zip(got_weights, want_weights):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def test_gradient_accumulation_equals_one_big_batch(tmp_path, tiny_vocab):
    """Batch 8 as 2 micro-batches of 4 against one pass over 8, for 3 steps. 21
    examples: the epoch's last batch holds 5, split 3 + 2, which a mean of the
    micro-batch means would weigh wrongly."""
    model_dir = make_artifact(tmp_path / "pretrained", tiny_vocab, **NO_DROPOUT)
    data_dir = write_mrpc(tmp_path / "MRPC", rows=21)
    cfg = tiny_config(model_dir, learning_rate=1e-2)
    want = finetuned_weights(tmp_path / "one", cfg, data_dir)
    got = finetuned_weights(tmp_path / "accum", dataclasses.replace(cfg, grad_accum_steps=2),
                            data_dir)
    assert want[0]["train"]["steps"] == 3
    assert_same_run(got, want)
    # Training moved the encoder well beyond the tolerance.
    initial = finetune.load_init(cfg).encoder.get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(want[1], initial)) > 1e-3
    saved = config_lib.load_finetune_config(str(tmp_path / "accum" / finetune.FINETUNE_CONFIG_JSON))
    assert saved.grad_accum_steps == 2


def test_batch_not_divisible_by_grad_accum_steps_is_an_error(tiny_model_dir):
    with pytest.raises(ValueError, match="batch_size=8 must be divisible by grad_accum_steps=3"):
        tiny_config(tiny_model_dir, grad_accum_steps=3)
    with pytest.raises(ValueError, match="grad_accum_steps must be >= 1"):
        tiny_config(tiny_model_dir, grad_accum_steps=0)


def test_xla_equals_the_plain_step(tmp_path, tiny_vocab, monkeypatch):
    model_dir = make_artifact(tmp_path / "pretrained", tiny_vocab, **NO_DROPOUT)
    data_dir = write_mrpc(tmp_path / "MRPC", rows=21)
    cfg = tiny_config(model_dir, learning_rate=1e-2)
    models = []
    compile_model = finetune.compile_model

    def recording(model, *args, **kwargs):
        models.append(compile_model(model, *args, **kwargs))
        return models[-1]

    monkeypatch.setattr(finetune, "compile_model", recording)
    want = finetuned_weights(tmp_path / "plain", cfg, data_dir, jit_compile=False)
    got = finetuned_weights(tmp_path / "xla", cfg, data_dir, jit_compile=True)
    assert [m.replica_jit_compile for m in models] == [False, True]
    assert not any(m.jit_compile for m in models)  # never Keras' whole-step XLA
    assert_same_run(got, want)


def test_jit_compile_auto_is_on_only_with_a_gpu(tiny_model_dir):
    import tensorflow as tf

    cfg = tiny_config(tiny_model_dir, layer_decay=0.8)
    model = finetune.build_model(finetune.load_init(cfg), glue.get_task("mrpc"), SEQ)
    finetune.compile_model(model, cfg, glue.get_task("mrpc"), num_train_steps=1)
    assert model.replica_jit_compile == bool(tf.config.list_logical_devices("GPU"))


# === Defaults and errors ===


def test_paper_defaults_by_task_and_size():
    tiny, small, base, large = ({"hidden_size": h} for h in (128, 256, 768, 1024))
    assert finetune.paper_defaults("sst2", tiny) == {
        "epochs": 3, "learning_rate": 1e-3, "layer_decay": 0.8}
    assert finetune.paper_defaults("sst2", small) == {
        "epochs": 3, "learning_rate": 3e-4, "layer_decay": 0.8}
    assert finetune.paper_defaults("rte", base) == {
        "epochs": 10, "learning_rate": 1e-4, "layer_decay": 0.8}
    assert finetune.paper_defaults("stsb", large) == {
        "epochs": 10, "learning_rate": 5e-5, "layer_decay": 0.9}


def test_bad_setups_fail_before_training(tmp_path, tiny_model_dir, tiny_vocab):
    data_dir = write_mrpc(tmp_path / "MRPC", rows=4)
    os.remove(os.path.join(data_dir, "dev.tsv"))
    with pytest.raises(glue.DataError, match="lacks dev.tsv for task mrpc"):
        finetune.run_finetuning(tiny_config(tiny_model_dir), data_dir, str(tmp_path / "a"))
    write_mrpc(data_dir, rows=4)
    with pytest.raises(FileNotFoundError, match="no electra_tf discriminator artifact"):
        finetune.run_finetuning(tiny_config(str(tmp_path)), data_dir, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="max_seq_length=128 exceeds"):
        finetune.run_finetuning(tiny_config(tiny_model_dir, max_seq_length=128), data_dir,
                                str(tmp_path / "c"))
    with pytest.raises(ValueError, match="needs a model config"):
        finetune.run_finetuning(tiny_config("none"), data_dir, str(tmp_path / "d"))
    with pytest.raises(ValueError, match="layer_decay must be in"):
        tiny_config(tiny_model_dir, layer_decay=1.5)
    assert not any(os.path.exists(tmp_path / d) for d in "abcd")


def test_random_init_from_a_named_config_takes_the_vocabularys_size(tmp_path, tiny_vocab):
    cfg = FinetuneConfig(task="mrpc", init="none", vocab=tiny_vocab, lowercase=False,
                         model_config=str(REPO_ROOT / "configs" / "electra_tiny.json"))
    init = finetune.load_init(cfg)
    assert init.encoder is None and not init.lowercase
    assert init.encoder_config["vocab_size"] == WordPieceTokenizer(tiny_vocab).vocab_size
    assert init.encoder_config["hidden_size"] == 128  # the rest is electra_tiny's
    assert dataclasses.replace(cfg, seed=1).seed == 1


def test_dropout_rate_overrides_the_encoders_own(tmp_path, tiny_vocab, tiny_model_dir):
    random_init = finetune.load_init(FinetuneConfig(
        task="mrpc", init="none", vocab=tiny_vocab, dropout_rate=0.0,
        model_config=str(REPO_ROOT / "configs" / "electra_tiny.json")))
    assert random_init.encoder_config["dropout_rate"] == 0.0
    assert random_init.encoder_config["attention_dropout_rate"] == 0.0
    pretrained = finetune.load_init(tiny_config(tiny_model_dir, dropout_rate=0.3))
    assert pretrained.encoder_config["dropout_rate"] == 0.3
    assert pretrained.encoder_config["attention_dropout_rate"] == 0.3
    # The weights are the pretrained ones all the same.
    model = finetune.build_model(pretrained, glue.get_task("mrpc"), 16)
    assert all(np.array_equal(a, b) for a, b in zip(
        model.encoder.get_weights(), pretrained.encoder.get_weights()))
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        tiny_config(tiny_model_dir, dropout_rate=1.0)
