"""Tests for electra_tf/config.py: presets, strict loading, overrides, validation."""

import dataclasses
import functools
import json
import subprocess
import sys

import pytest

from electra_tf import config
from electra_tf.config import ConfigError

from helpers import REPO_ROOT

PRESETS = ("tiny", "small", "base", "large")


def preset(name):
    return config.load_config(str(REPO_ROOT / "configs" / f"electra_{name}.json"))


def write_json(tmp_path, d, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(d))
    return str(path)


# === Presets ===


@pytest.mark.parametrize(
    "name, gen_hidden, gen_heads, gen_ffn, max_predictions",
    [
        ("tiny", 32, 1, 128, 39),
        ("small", 64, 1, 256, 19),  # 0.155 * 128 = 19.84
        ("base", 256, 4, 1024, 79),  # 768 * 0.333333 rounds to 256, not 255
        ("large", 256, 4, 1024, 130),  # mask 0.25: 0.255 * 512 = 130.56
    ],
)
def test_preset_derives_paper_generator_and_max_predictions(
    name, gen_hidden, gen_heads, gen_ffn, max_predictions
):
    cfg = preset(name)
    gen = cfg.model.generator_encoder()
    disc = cfg.model.discriminator_encoder()
    assert (gen.hidden_size, gen.num_heads, gen.intermediate_size) == (
        gen_hidden, gen_heads, gen_ffn)
    assert cfg.max_predictions == max_predictions
    # Everything but the width is shared with the discriminator.
    assert dataclasses.replace(gen, hidden_size=disc.hidden_size, num_heads=disc.num_heads,
                               intermediate_size=disc.intermediate_size) == disc
    assert type(disc) is config.EncoderConfig
    assert cfg.data.vocab_path == ""


@pytest.mark.parametrize(
    "name, layers, hidden, heads, ffn, emb, seq, batch, lr, steps, warmup, mask",
    [
        ("tiny", 4, 128, 2, 512, 64, 128, 32, 2e-3, 1400, 100, 0.3),
        ("small", 12, 256, 4, 1024, 128, 128, 128, 5e-4, 1_000_000, 10_000, 0.15),
        ("base", 12, 768, 12, 3072, 768, 512, 256, 2e-4, 766_000, 10_000, 0.15),
        ("large", 24, 1024, 16, 4096, 1024, 512, 2048, 2e-4, 400_000, 10_000, 0.25),
    ],
)
def test_preset_values(name, layers, hidden, heads, ffn, emb, seq, batch, lr, steps, warmup,
                       mask):
    cfg = preset(name)
    m, t = cfg.model, cfg.train
    assert (m.num_layers, m.hidden_size, m.num_heads, m.intermediate_size,
            m.embedding_size) == (layers, hidden, heads, ffn, emb)
    assert (cfg.data.max_seq_length, t.batch_size, t.learning_rate, t.num_train_steps,
            t.warmup_steps, cfg.pretraining.mask_rate) == (seq, batch, lr, steps, warmup, mask)
    assert cfg.pretraining.discriminator_weight == 50.0


def test_tiny_preset_bookkeeping():
    cfg = preset("tiny")
    assert cfg.model.vocab_size == 8000
    assert (cfg.train.checkpoint_every, cfg.train.log_every) == (200, 20)
    # The CPU recipe (benchmarks/README.md, "pretraining_sweep"): a local convolution and
    # local attention from step 0, wide initial weights, no dropout, and a constant
    # temperature 2 that flattens the generator toward the data's unigram distribution.
    m, p = cfg.model, cfg.pretraining
    assert (m.local_conv_kernel, m.attention_locality, m.initializer_range) == (3, 1.0, 0.1)
    assert (m.dropout_rate, m.attention_dropout_rate) == (0.0, 0.0)
    assert (p.temperature, p.temperature_schedule, p.flatten_toward) == (
        2.0, "constant", "unigram")
    assert cfg.max_predictions == 39


def test_small_preset_is_the_defaults():
    assert preset("small") == config.ElectraConfig()


# === Round trips ===


@pytest.mark.parametrize("name", PRESETS)
def test_round_trip(name, tmp_path):
    cfg = preset(name)
    assert config.from_dict(config.to_dict(cfg)) == cfg
    path = str(tmp_path / "config.json")
    config.save_config(cfg, path)
    assert config.load_config(path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


def test_saved_json_has_no_derived_values(tmp_path):
    path = tmp_path / "config.json"
    config.save_config(preset("base"), str(path))
    d = json.loads(path.read_text())
    assert list(d) == ["model", "data", "pretraining", "train", "diagnostics"]
    assert "max_predictions" not in d["pretraining"]
    stored = {"generator_hidden_fraction", "generator_layers_fraction"}
    assert stored <= set(d["model"])
    assert not any("generator" in k for k in d["model"] if k not in stored)


def test_missing_sections_and_keys_take_defaults(tmp_path):
    cfg = config.load_config(write_json(tmp_path, {"train": {"batch_size": 8}}))
    assert cfg == dataclasses.replace(
        config.ElectraConfig(), train=config.TrainConfig(batch_size=8))
    assert config.load_config(write_json(tmp_path, {})) == config.ElectraConfig()


def test_ints_for_float_fields_become_floats(tmp_path):
    cfg = config.load_config(write_json(tmp_path, {"train": {"learning_rate": 1}}))
    assert type(cfg.train.learning_rate) is float and cfg.train.learning_rate == 1.0


# === Strictness ===


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path):
    path = write_json(tmp_path, {"model": {"hiden_size": 64}})
    with pytest.raises(ConfigError) as e:
        config.load_config(path)
    msg = str(e.value)
    assert path in msg and "unknown key 'model.hiden_size'" in msg
    assert "did you mean 'hidden_size'" in msg
    assert "valid keys of model: vocab_size, embedding_size, hidden_size" in msg


def test_unknown_section_names_it_and_lists_valid_sections(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'modle'.*valid sections: "
                                          "model, data, pretraining, train"):
        config.load_config(write_json(tmp_path, {"modle": {}}))


def test_derived_value_in_json_is_unknown_key():
    with pytest.raises(ConfigError, match="unknown key 'pretraining.max_predictions'"):
        config.from_dict({"pretraining": {"max_predictions": 19}})


@pytest.mark.parametrize(
    "section, key, value",
    [("model", "hidden_size", "256"), ("model", "hidden_size", 256.0),
     ("model", "hidden_size", True), ("data", "lowercase", 1), ("data", "vocab_path", None),
     ("train", "learning_rate", "5e-4"), ("train", "learning_rate", False)],
)
def test_wrong_json_type_names_the_key(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key} must be of type"):
        config.from_dict({section: {key: value}})


def test_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="must be a JSON object"):
        config.from_dict({"model": [1]})
    with pytest.raises(ConfigError, match="a config must be a JSON object"):
        config.load_config(write_json(tmp_path, [1, 2]))
    dup = tmp_path / "dup.json"
    dup.write_text('{"train": {"batch_size": 1, "batch_size": 2}}')
    with pytest.raises(ConfigError, match="duplicate key.*batch_size"):
        config.load_config(str(dup))
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": ')
    with pytest.raises(ConfigError, match="bad.json"):
        config.load_config(str(bad))
    with pytest.raises(ConfigError, match="missing.json: does not exist"):
        config.load_config(str(tmp_path / "missing.json"))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="binary.json"):
        config.load_config(str(binary))


# === Overrides ===


def test_overrides_parse_each_type():
    cfg = config.apply_overrides(config.ElectraConfig(), [
        "train.batch_size=64", "model.dropout_rate=0", "train.learning_rate=1e-4",
        "data.vocab_path=x.txt", "data.lowercase=FALSE", "model.hidden_activation=relu"])
    assert cfg.train.batch_size == 64
    assert cfg.model.dropout_rate == 0.0 and type(cfg.model.dropout_rate) is float
    assert cfg.train.learning_rate == 1e-4
    assert cfg.data.vocab_path == "x.txt"
    assert cfg.data.lowercase is False
    assert cfg.model.hidden_activation == "relu"
    # Nothing else moved.
    assert len(config.diff_configs(config.ElectraConfig(), cfg)) == 6


@pytest.mark.parametrize("text, expected", [("true", True), ("True", True), ("1", True),
                                            ("false", False), ("0", False)])
def test_bool_override_spellings(text, expected):
    cfg = config.apply_overrides(config.ElectraConfig(), [f"data.lowercase={text}"])
    assert cfg.data.lowercase is expected


@pytest.mark.parametrize(
    "override, expected",
    [("train.batch_size=6.4", "int"), ("train.batch_size=abc", "int"),
     ("train.learning_rate=fast", "float"), ("data.lowercase=yes", "bool")],
)
def test_bad_override_value_names_key_value_and_type(override, expected):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as e:
        config.apply_overrides(config.ElectraConfig(), [override])
    assert key in str(e.value) and repr(value) in str(e.value)
    assert f"expected {expected}" in str(e.value)


def test_bad_override_keys():
    cfg = config.ElectraConfig()
    with pytest.raises(ConfigError, match="unknown key 'modle.hidden'.*valid sections"):
        config.apply_overrides(cfg, ["modle.hidden=3"])
    with pytest.raises(ConfigError, match="unknown key 'train.batch'.*valid keys of train"):
        config.apply_overrides(cfg, ["train.batch=3"])
    with pytest.raises(ConfigError, match="not of the form section.key=value"):
        config.apply_overrides(cfg, ["train.batch_size"])
    with pytest.raises(ConfigError, match="'train.batch_size' is given more than once"):
        config.apply_overrides(cfg, ["train.batch_size=1", "train.batch_size=2"])


def test_a_bad_override_is_blamed_on_the_override_not_the_file():
    path = str(REPO_ROOT / "configs" / "electra_tiny.json")
    for override, expected in (("train.bogus=1", "override 'train.bogus=1': unknown key"),
                               ("train.batch_size=x", "override train.batch_size='x'"),
                               ("train.batch_size", "override 'train.batch_size' is not")):
        with pytest.raises(ConfigError) as e:
            config.load_config(path, [override])
        assert str(e.value).startswith(expected) and "electra_tiny.json" not in str(e.value)
    # A value the checks refuse: the file and the overrides together.
    with pytest.raises(ConfigError, match=r"electra_tiny.json with overrides "
                                          r"train.batch_size=0: .*batch_size"):
        config.load_config(path, ["train.batch_size=0"])


def test_overrides_are_validated_together(tmp_path):
    # Either override alone breaks max_seq_length <= max_position_embeddings.
    path = str(REPO_ROOT / "configs" / "electra_small.json")
    cfg = config.load_config(
        path, ["model.max_position_embeddings=1024", "data.max_seq_length=1024"])
    assert cfg.data.max_seq_length == 1024 and cfg.max_predictions == int(0.155 * 1024)
    with pytest.raises(ConfigError, match="data.max_seq_length=1024 exceeds"):
        config.load_config(path, ["data.max_seq_length=1024"])


# === Validation ===


@pytest.mark.parametrize(
    "section, changes, message",
    [
        ("model", {"hidden_size": 250}, "model.hidden_size=250 is not divisible by"),
        # 300 * 0.43 = 129 wide with 129 // 64 = 2 heads.
        ("model", {"hidden_size": 300, "generator_hidden_fraction": 0.43},
         "generator_hidden_fraction=0.43 gives an invalid generator.*hidden_size=129"),
        ("model", {"generator_hidden_fraction": 0.0}, "generator_hidden_fraction must be in"),
        ("model", {"generator_hidden_fraction": 1.5}, "generator_hidden_fraction must be in"),
        ("model", {"hidden_activation": "gleu"}, "hidden_activation='gleu' is not one of"),
        ("model", {"num_layers": 0}, "model.num_layers must be >= 1"),
        ("model", {"vocab_size": -3}, "model.vocab_size must be >= 1"),
        ("model", {"dropout_rate": 1.0}, r"model.dropout_rate must be in \[0, 1\)"),
        ("model", {"layer_norm_epsilon": 0.0}, "model.layer_norm_epsilon must be > 0, got 0.0"),
        ("data", {"max_seq_length": 0}, "data.max_seq_length must be >= 1"),
        ("pretraining", {"mask_rate": 0.0}, r"mask_rate must be in \(0, 1\)"),
        ("pretraining", {"mask_rate": 1.0}, r"mask_rate must be in \(0, 1\)"),
        ("pretraining", {"mask_rate": float("nan")}, r"mask_rate must be in \(0, 1\)"),
        ("pretraining", {"mask_token_rate": 1.2}, r"mask_token_rate must be in \[0, 1\]"),
        ("pretraining", {"random_token_rate": -0.1}, "random_token_rate must be in"),
        ("pretraining", {"mask_token_rate": 0.8, "random_token_rate": 0.3},
         r"mask_token_rate \+ pretraining.random_token_rate must be <= 1"),
        ("pretraining", {"temperature": 0.0}, "temperature must be > 0"),
        ("train", {"batch_size": 0}, "train.batch_size must be >= 1"),
        ("train", {"num_train_steps": 0}, "train.num_train_steps must be >= 1"),
        ("train", {"warmup_steps": 11, "num_train_steps": 10},
         "train.warmup_steps=11 exceeds train.num_train_steps=10"),
        ("train", {"learning_rate": 0.0}, "learning_rate must be > 0"),
        ("train", {"adam_beta2": 1.0}, "adam_beta2 must be in"),
        ("train", {"weight_decay": -0.01}, "weight_decay must be >= 0"),
        ("train", {"grad_accum_steps": 0}, "train.grad_accum_steps must be >= 1"),
        ("train", {"batch_size": 12, "grad_accum_steps": 5},
         "train.batch_size=12 is not divisible by train.grad_accum_steps=5"),
    ],
)
def test_validation_rule(section, changes, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict({section: changes})


def test_boundary_values_are_accepted():
    cfg = config.from_dict({
        "pretraining": {"mask_token_rate": 0.8, "random_token_rate": 0.2},
        "train": {"warmup_steps": 10, "num_train_steps": 10, "clip_norm": 0.0},
        "data": {"max_seq_length": 512},
        "model": {"hidden_size": 64, "num_heads": 1, "intermediate_size": 256,
                  "generator_hidden_fraction": 1.0}})
    assert cfg.model.generator_encoder() == cfg.model.discriminator_encoder()


def test_grad_accum_steps_defaults_to_one_and_overrides():
    assert config.ElectraConfig().train.grad_accum_steps == 1
    cfg = config.apply_overrides(config.ElectraConfig(), ["train.grad_accum_steps=4"])
    assert cfg.train.grad_accum_steps == 4 and cfg.train.batch_size == 128


def test_cross_section_rules():
    with pytest.raises(ConfigError, match="data.max_seq_length=513 exceeds "
                                          "model.max_position_embeddings=512"):
        config.from_dict({"data": {"max_seq_length": 513}})
    with pytest.raises(ConfigError, match="masks no token"):
        config.from_dict({"data": {"max_seq_length": 4}})


def test_configs_are_frozen():
    cfg = config.ElectraConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.batch_size = 3


def test_encoder_config_is_what_the_encoder_takes():
    enc = preset("tiny").model.generator_encoder()
    assert set(dataclasses.asdict(enc)) == {
        "vocab_size", "embedding_size", "hidden_size", "num_layers", "num_heads",
        "intermediate_size", "hidden_activation", "dropout_rate", "attention_dropout_rate",
        "max_position_embeddings", "type_vocab_size", "initializer_range",
        "layer_norm_epsilon", "attention_locality", "local_conv_kernel"}
    assert enc.embedding_size == 64 and enc.num_layers == 4 and enc.vocab_size == 8000


# === diff_configs ===


def test_diff_configs():
    a = config.ElectraConfig()
    b = config.apply_overrides(a, ["train.batch_size=64", "data.vocab_path=v.txt",
                                   "model.dropout_rate=0.0"])
    assert config.diff_configs(a, a) == []
    assert config.diff_configs(a, b) == [
        "model.dropout_rate: 0.1 != 0.0",
        'data.vocab_path: "" != "v.txt"',
        "train.batch_size: 128 != 64",
    ]


# === Objective, temperature schedule, generator depth, diagnostics ===


def test_objective_defaults_to_electra_and_overrides_to_mlm():
    assert config.ElectraConfig().pretraining.objective == "electra"
    cfg = config.apply_overrides(config.ElectraConfig(), ["pretraining.objective=mlm"])
    assert cfg.pretraining.objective == "mlm"
    assert config.diff_configs(config.ElectraConfig(), cfg) == [
        'pretraining.objective: "electra" != "mlm"']
    cfg = config.load_config(str(REPO_ROOT / "configs" / "electra_tiny.json"),
                             ["pretraining.objective=mlm", "diagnostics.collapse_logs=3"])
    assert cfg.pretraining.objective == "mlm" and cfg.diagnostics.collapse_logs == 3


@pytest.mark.parametrize("value", ["bert", "MLM", "", "electra "])
def test_unknown_objective_names_the_key(value):
    with pytest.raises(ConfigError, match=r"pretraining\.objective=.* is not one of "
                                          "electra, mlm"):
        config.apply_overrides(config.ElectraConfig(), [f"pretraining.objective={value}"])
    with pytest.raises(ConfigError, match=r"pretraining\.objective"):
        config.from_dict({"pretraining": {"objective": value}})


def test_objective_must_be_a_string(tmp_path):
    with pytest.raises(ConfigError, match="pretraining.objective must be of type str"):
        config.load_config(write_json(tmp_path, {"pretraining": {"objective": 1}}))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_temperature_schedules(schedule):
    cfg = config.apply_overrides(config.ElectraConfig(), [
        "pretraining.temperature=2.0", f"pretraining.temperature_schedule={schedule}",
        "pretraining.temperature_end=0.5", "pretraining.temperature_decay_start=100",
        "pretraining.temperature_decay_steps=1000"])
    assert cfg.pretraining.temperature_kwargs() == {
        "temperature": 2.0, "temperature_schedule": schedule, "temperature_end": 0.5,
        "temperature_decay_start": 100, "temperature_decay_steps": 1000}
    with pytest.raises(ConfigError, match=f"temperature_schedule='{schedule}' needs "
                                          r"pretraining.temperature_decay_steps > 0"):
        config.from_dict({"pretraining": {"temperature_schedule": schedule}})


def test_temperature_schedule_defaults_and_validation():
    p = config.ElectraConfig().pretraining
    assert p.temperature_kwargs() == {
        "temperature": 1.0, "temperature_schedule": "constant", "temperature_end": 1.0,
        "temperature_decay_start": 0, "temperature_decay_steps": 0}
    assert p.disallow_correct is False
    # A constant schedule needs no decay steps.
    assert config.from_dict({"pretraining": {"temperature": 3.0}}).pretraining.temperature == 3.0
    with pytest.raises(ConfigError, match="temperature_schedule='exponential' is not one of "
                                          "constant, linear, cosine"):
        config.apply_overrides(config.ElectraConfig(),
                               ["pretraining.temperature_schedule=exponential"])
    with pytest.raises(ConfigError, match="pretraining.temperature_end must be > 0, got 0.0"):
        config.from_dict({"pretraining": {"temperature_end": 0.0}})
    with pytest.raises(ConfigError, match="temperature_decay_start must be >= 0, got -1"):
        config.from_dict({"pretraining": {"temperature_decay_start": -1}})
    with pytest.raises(ConfigError, match="temperature_decay_steps must be >= 0"):
        config.from_dict({"pretraining": {"temperature_schedule": "linear",
                                          "temperature_decay_steps": -5}})


def test_disallow_correct_is_a_bool():
    cfg = config.apply_overrides(config.ElectraConfig(), ["pretraining.disallow_correct=true"])
    assert cfg.pretraining.disallow_correct is True
    with pytest.raises(ConfigError, match="pretraining.disallow_correct must be of type bool"):
        config.from_dict({"pretraining": {"disallow_correct": 1}})
    with pytest.raises(ConfigError, match=r"override pretraining.disallow_correct='maybe': "
                                          r"expected bool"):
        config.apply_overrides(config.ElectraConfig(), ["pretraining.disallow_correct=maybe"])


def test_whole_word_masking_is_off_by_default_and_reaches_the_data_stream(monkeypatch):
    from electra_tf.training import pretrain as pretrain_lib
    assert config.ElectraConfig().pretraining.whole_word_masking is False
    cfg = config.apply_overrides(config.ElectraConfig(), ["pretraining.whole_word_masking=true"])
    seen = {}
    monkeypatch.setattr(pretrain_lib.data_lib, "make_pretraining_dataset",
                        lambda *args, **kwargs: seen.update(kwargs))
    pretrain_lib.make_dataset(cfg, "unused", tokenizer=None)
    assert seen["whole_word_masking"] is True
    with pytest.raises(ConfigError, match="pretraining.whole_word_masking must be of type bool"):
        config.from_dict({"pretraining": {"whole_word_masking": "yes"}})


def test_sampling_options_default_to_the_paper_and_reach_the_pretrainer():
    from electra_tf.training import pretrain as pretrain_lib
    p = config.ElectraConfig().pretraining
    assert (p.sampling_top_k, p.sampling_passes) == (0, 1)
    cfg = config.apply_overrides(config.ElectraConfig(), [
        "pretraining.sampling_top_k=50", "pretraining.sampling_passes=3",
        "pretraining.flatten_toward=unigram",
        "model.num_layers=2", "model.hidden_size=16", "model.num_heads=2",
        "model.intermediate_size=32", "model.embedding_size=8", "model.vocab_size=40"])
    model = pretrain_lib.build_pretrainer(cfg)
    assert (model.sampling_top_k, model.sampling_passes) == (50, 3)
    assert model.draws_per_prediction == 3 and model.flatten_toward == "unigram"
    with pytest.raises(ConfigError, match="pretraining.sampling_passes must be >= 1, got 0"):
        config.from_dict({"pretraining": {"sampling_passes": 0}})
    with pytest.raises(ConfigError, match="pretraining.sampling_top_k must be >= 0, got -2"):
        config.from_dict({"pretraining": {"sampling_top_k": -2}})
    assert p.flatten_toward == "uniform"
    with pytest.raises(ConfigError, match="pretraining.flatten_toward='zipf' is not one of "
                                          "uniform, unigram"):
        config.from_dict({"pretraining": {"flatten_toward": "zipf"}})


@pytest.mark.parametrize(
    "num_layers, fraction, generator_layers",
    [(12, 1.0, 12), (12, 0.5, 6), (12, 1 / 3, 4), (12, 0.25, 3), (4, 0.3, 1),
     (4, 0.4, 2), (2, 0.1, 1), (1, 0.01, 1), (24, 0.75, 18)],
)
def test_generator_layers_fraction(num_layers, fraction, generator_layers):
    cfg = config.from_dict({"model": {"num_layers": num_layers,
                                      "generator_layers_fraction": fraction}})
    assert cfg.model.generator_encoder().num_layers == generator_layers
    # The discriminator keeps its depth; the width rule is unchanged.
    assert cfg.model.discriminator_encoder().num_layers == num_layers
    assert cfg.model.generator_encoder().hidden_size == 64


def test_generator_layers_fraction_default_and_override():
    assert config.ElectraConfig().model.generator_layers_fraction == 1.0
    assert preset("small").model.generator_encoder().num_layers == 12
    cfg = config.apply_overrides(preset("small"), ["model.generator_layers_fraction=0.5"])
    assert cfg.model.generator_encoder().num_layers == 6
    assert cfg.model.discriminator_encoder() == preset("small").model.discriminator_encoder()


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.01, 2.0, float("nan")])
def test_generator_layers_fraction_out_of_range_is_rejected(fraction):
    with pytest.raises(ConfigError, match=r"model.generator_layers_fraction must be in "
                                          r"\(0, 1\]"):
        config.from_dict({"model": {"generator_layers_fraction": fraction}})


def test_diagnostics_section_defaults_round_trip_and_overrides(tmp_path):
    d = config.ElectraConfig().diagnostics
    assert (d.collapse_gap, d.collapse_logs, d.context_probe_every, d.context_probe_sequences,
            d.context_probe_rate) == (0.02, 5, 0, 256, 0.15)
    cfg = config.apply_overrides(config.ElectraConfig(), [
        "diagnostics.collapse_gap=0.1", "diagnostics.collapse_logs=2",
        "diagnostics.context_probe_every=50", "diagnostics.context_probe_sequences=16",
        "diagnostics.context_probe_rate=0.3"])
    assert cfg.diagnostics == config.DiagnosticsConfig(0.1, 2, 50, 16, 0.3)
    path = str(tmp_path / "config.json")
    config.save_config(cfg, path)
    assert json.loads(open(path).read())["diagnostics"]["context_probe_every"] == 50
    assert config.load_config(path) == cfg
    # Configs written before the section existed load with its defaults.
    assert preset("small").diagnostics == config.DiagnosticsConfig()
    # Ints become floats.
    cfg = config.from_dict({"diagnostics": {"collapse_gap": 0}})
    assert type(cfg.diagnostics.collapse_gap) is float


@pytest.mark.parametrize(
    "changes, message",
    [({"collapse_gap": -0.01}, "diagnostics.collapse_gap must be >= 0"),
     ({"collapse_logs": 0}, "diagnostics.collapse_logs must be >= 1"),
     ({"context_probe_every": -1}, "diagnostics.context_probe_every must be >= 0"),
     ({"context_probe_sequences": 0}, "diagnostics.context_probe_sequences must be >= 1"),
     ({"context_probe_rate": 0.0}, r"diagnostics.context_probe_rate must be in \(0, 1\)"),
     ({"context_probe_rate": 1.0}, r"diagnostics.context_probe_rate must be in \(0, 1\)"),
     ({"collapse_logs": 2.5}, "diagnostics.collapse_logs must be of type int"),
     ({"collapse_gap": "small"}, "diagnostics.collapse_gap must be of type float")],
)
def test_diagnostics_validation(changes, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict({"diagnostics": changes})


def test_diagnostics_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="unknown key 'diagnostics.colapse_gap'.*did you mean "
                                          "'collapse_gap'.*valid keys of diagnostics: "
                                          "collapse_gap, collapse_logs"):
        config.apply_overrides(config.ElectraConfig(), ["diagnostics.colapse_gap=0.1"])
    with pytest.raises(ConfigError, match="valid sections: model, data, pretraining, train, "
                                          "diagnostics"):
        config.from_dict({"diagnostic": {}})


# === Fine-tuning config ===


def test_finetune_config_from_values_and_overrides():
    cfg = config.finetune_config_from(
        {"task": "sst2", "init": "none", "label_names": ["neg", "pos"]},
        ["learning_rate=3e-4", "text_column=sentence", "epochs=2", "regression=false"])
    assert (cfg.learning_rate, cfg.text_column, cfg.epochs, cfg.regression) == (
        3e-4, "sentence", 2, False)
    assert cfg.label_names == ("neg", "pos")


def test_finetune_config_refuses_unknown_keys_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown fine-tuning key 'learning_rat' "
                                          r"\(did you mean 'learning_rate'\?\)"):
        config.finetune_config_from({"task": "sst2", "init": "none"}, ["learning_rat=1e-3"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        config.finetune_config_from({"task": "sst2", "init": "none"}, ["epochs"])
    with pytest.raises(ConfigError, match="batch_size=8 must be divisible by grad_accum_steps=3"):
        config.finetune_config_from({"task": "sst2", "init": "none", "batch_size": 8,
                                     "grad_accum_steps": 3})


def test_finetune_config_round_trips_through_its_file(tmp_path):
    cfg = config.FinetuneConfig(task="custom", init="none", label_names=("a", "b"), seed=7)
    path = str(tmp_path / "finetune_config.json")
    config.save_finetune_config(cfg, path)
    assert config.load_finetune_config(path) == cfg
    assert config.load_finetune_config(path, ["seed=8"]).seed == 8
    (tmp_path / "bad.json").write_text('{"task": "sst2", "init": "none", "epoch": 3}')
    with pytest.raises(ConfigError, match=r"bad.json: unknown fine-tuning key 'epoch'"):
        config.load_finetune_config(str(tmp_path / "bad.json"))


# === The sweep's recipes ===


@functools.cache
def _sweep_runs():
    """{run: [seq_len, merged overrides]} of benchmarks/pretraining_sweep.py.

    Read in a subprocess: the script defines absl flags at import, and other benchmark
    scripts that tests import define flags of the same names in this process.
    """
    code = ("import json, pretraining_sweep as s; print(json.dumps({n: [q, s.merged_overrides(o)] "
            "for n, (q, o) in s.RUNS.items()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT / "benchmarks",
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_sweep_run_is_a_valid_tiny_config():
    # A typo in a run's overrides would only surface minutes into a sweep.
    runs = _sweep_runs()
    assert {"u", "f", "f_b64", "f_seq64_b128", "t1", "mlm"} <= set(runs)
    for name, (seq_len, overrides) in runs.items():
        config.apply_overrides(preset("tiny"), [f"data.max_seq_length={seq_len}", *overrides])


def test_sweep_run_u_is_the_shipped_tiny_recipe():
    seq_len, overrides = _sweep_runs()["u"]
    assert seq_len == preset("tiny").data.max_seq_length
    assert config.apply_overrides(preset("tiny"), overrides) == preset("tiny")
    # Run f is the recipe shipped before it: the same but for the temperature.
    f = config.apply_overrides(preset("tiny"), _sweep_runs()["f"][1]).pretraining
    assert (f.temperature_end, f.flatten_toward) == (1.25, "uniform")
