"""Hugging Face -> electra_tf: random HF models of several shapes, converted into a
model_dir and loaded back as artifacts, give HF's outputs within 1e-4 (fp32)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import convert_testing as ct  # noqa: E402
from electra_tf import config as config_lib  # noqa: E402
from electra_tf.convert import ConversionError, convert_checkpoint  # noqa: E402
from electra_tf.convert import hf as hf_convert  # noqa: E402
from electra_tf.convert import mapping  # noqa: E402
from electra_tf import schema  # noqa: E402
from electra_tf.models import artifacts  # noqa: E402

pytestmark = pytest.mark.parity


def convert(hf_dirs, output, **kwargs):
    return convert_checkpoint("hf", "electra_tf", [str(d) for d in hf_dirs], str(output), **kwargs)


def assert_close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=ct.TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", sorted(ct.CONFIGS))
def test_discriminator_and_generator_match_hf(name, tmp_path):
    config = ct.CONFIGS[name]
    inputs = ct.batch(config["vocab_size"])
    disc = ct.random_hf(torch, transformers, transformers.ElectraForPreTraining, config, 1)
    gen = ct.random_hf(torch, transformers, transformers.ElectraForMaskedLM, config, 2)
    with torch.no_grad():
        disc_out = disc(**ct.hf_inputs(torch, inputs), output_hidden_states=True)
        gen_out = gen(**ct.hf_inputs(torch, inputs), output_hidden_states=True)
    ct.save_hf(disc, tmp_path / "disc")
    ct.save_hf(gen, tmp_path / "gen")

    written = convert([tmp_path / "disc", tmp_path / "gen"], tmp_path / "out")
    assert sorted(written) == [str(tmp_path / "out" / k) for k in ("discriminator", "generator")]

    ours, cfg, _, meta = artifacts.load_artifact(str(tmp_path / "out" / "discriminator"))
    assert meta["converted_from"]["architecture"] == "ElectraForPreTraining"
    assert "untrained_heads" not in meta
    assert cfg.model.hidden_size == config["hidden_size"]
    assert_close(ours.encoder(inputs), disc_out.hidden_states[-1])
    assert_close(ours(inputs), disc_out.logits)

    ours, _, _, meta = artifacts.load_artifact(str(tmp_path / "out" / "generator"))
    assert meta["converted_from"]["architecture"] == "ElectraForMaskedLM"
    assert_close(ours.encoder(inputs), gen_out.hidden_states[-1])
    logits = ours({**inputs, schema.MASK_POSITIONS: ct.MASK_POSITIONS})
    expected = np.take_along_axis(gen_out.logits.numpy(), ct.MASK_POSITIONS[:, :, None], axis=1)
    assert logits.shape == expected.shape
    assert_close(logits, expected)


def test_pair_config_records_the_generator_fraction(tmp_path):
    """A pair whose generator ELECTRA's rule derives gets the exact fraction; one it
    cannot derive still converts, every artifact with its own exact sizes."""
    disc_config = dict(ct.BASE, vocab_size=100, embedding_size=16, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    fitting = dict(disc_config, hidden_size=8, num_attention_heads=1, intermediate_size=32)
    unfitting = dict(fitting, num_attention_heads=2, intermediate_size=20)
    disc = ct.random_hf(torch, transformers, transformers.ElectraForPreTraining, disc_config, 3)
    ct.save_hf(disc, tmp_path / "disc")
    for name, gen_config in (("fit", fitting), ("nofit", unfitting)):
        gen = ct.random_hf(torch, transformers, transformers.ElectraForMaskedLM, gen_config, 4)
        ct.save_hf(gen, tmp_path / f"gen_{name}")
        convert([tmp_path / "disc", tmp_path / f"gen_{name}"], tmp_path / name)
        cfg = config_lib.load_config(str(tmp_path / name / "config.json"))
        assert cfg.model.generator_hidden_fraction == 0.25
        assert cfg.model.hidden_size == 32
        meta = json.loads((tmp_path / name / "generator" / "artifact.json").read_text())
        assert (meta["encoder_config"]["num_heads"], meta["encoder_config"]["intermediate_size"]) \
            == (gen_config["num_attention_heads"], gen_config["intermediate_size"])
        derived = cfg.model.generator_encoder()
        assert (derived.num_heads == gen_config["num_attention_heads"]) == (name == "fit")


@pytest.mark.parametrize("model_class", ["ElectraModel", "ElectraForSequenceClassification"])
def test_encoder_only_models_convert_with_an_untrained_rtd_head(model_class, tmp_path):
    config = ct.CONFIGS["small_like"]
    inputs = ct.batch(config["vocab_size"])
    hf = ct.random_hf(torch, transformers, getattr(transformers, model_class), config, 5)
    hf_encoder = hf if model_class == "ElectraModel" else hf.electra
    with torch.no_grad():
        expected = hf_encoder(**ct.hf_inputs(torch, inputs)).last_hidden_state
    ct.save_hf(hf, tmp_path / "hf")

    convert([tmp_path / "hf"], tmp_path / "out")
    ours, _, _, meta = artifacts.load_artifact(str(tmp_path / "out" / "discriminator"))
    assert_close(ours.encoder(inputs), expected)
    assert meta["untrained_heads"] == ["rtd_head"]
    assert all(not np.any(w.numpy()) for w in ours.rtd_head.weights)
    dropped = meta["converted_from"].get("dropped_tensors", [])
    if model_class == "ElectraForSequenceClassification":
        assert dropped == ["classifier.dense.bias", "classifier.dense.weight",
                           "classifier.out_proj.bias", "classifier.out_proj.weight"]
    else:
        assert dropped == []

    # Back to HF: a head that never existed is left out, so it is an ElectraModel again.
    convert_checkpoint("electra_tf", "hf", [str(tmp_path / "out")], str(tmp_path / "back"))
    back, info = transformers.ElectraModel.from_pretrained(
        str(tmp_path / "back"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert_close(back.eval()(**ct.hf_inputs(torch, inputs)).last_hidden_state, expected)


def test_sequence_classifier_converts_with_its_head(tmp_path):
    config = dict(ct.CONFIGS["odd"], num_labels=3)
    inputs = ct.batch(config["vocab_size"])
    hf = ct.random_hf(torch, transformers, transformers.ElectraForSequenceClassification,
                      config, 8)
    with torch.no_grad():
        expected = hf(**ct.hf_inputs(torch, inputs)).logits
    ct.save_hf(hf, tmp_path / "hf")

    ours = hf_convert.load_hf_task_model(str(tmp_path / "hf"))
    assert ours.num_labels == 3
    assert_close(ours(inputs, training=False), expected)
    with pytest.raises(ConversionError, match="holds an ElectraForMaskedLM, not a fine-tuned"):
        gen = ct.random_hf(torch, transformers, transformers.ElectraForMaskedLM,
                           ct.CONFIGS["small_like"], 9)
        hf_convert.load_hf_task_model(str(ct.save_hf(gen, tmp_path / "gen")))


def test_question_answering_model_converts_with_qa_outputs(tmp_path):
    config = ct.CONFIGS["odd"]
    inputs = ct.batch(config["vocab_size"])
    hf = ct.random_hf(torch, transformers, transformers.ElectraForQuestionAnswering, config, 10)
    with torch.no_grad():
        expected = hf(**ct.hf_inputs(torch, inputs))
    ct.save_hf(hf, tmp_path / "hf")

    ours = hf_convert.load_hf_task_model(str(tmp_path / "hf"))
    outputs = ours(inputs, training=False)
    # HF leaves padded positions' logits as they are; ours masks them.
    real = np.asarray(inputs["padding_mask"])
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(np.asarray(outputs[name])[real],
                                   getattr(expected, name).numpy()[real], atol=1e-4)
        assert np.all(np.asarray(outputs[name])[~real] == -1e9)


def test_token_classifier_converts_with_its_head_and_label_names(tmp_path):
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = dict(ct.CONFIGS["odd"], num_labels=5,
                  id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    inputs = ct.batch(config["vocab_size"])
    hf = ct.random_hf(torch, transformers, transformers.ElectraForTokenClassification, config, 11)
    with torch.no_grad():
        expected = hf(**ct.hf_inputs(torch, inputs)).logits
    ct.save_hf(hf, tmp_path / "hf")

    ours = hf_convert.load_hf_task_model(str(tmp_path / "hf"))
    assert ours.label_names == tuple(labels)
    assert_close(ours(inputs, training=False), expected)


@pytest.mark.parametrize("storage", ["pytorch_model.bin", "sharded safetensors"])
def test_other_weight_files_give_the_same_tensors(storage, tmp_path):
    config = ct.CONFIGS["small_like"]
    hf = ct.random_hf(torch, transformers, transformers.ElectraForPreTraining, config, 7)
    other = ct.save_hf(hf, tmp_path / "other")
    state = safetensors_numpy.load_file(str(other / "model.safetensors"))
    (other / "model.safetensors").unlink()
    if storage == "pytorch_model.bin":
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, other / storage)
    else:
        names = sorted(state)
        shards = {"model-00001-of-00002.safetensors": names[::2],
                  "model-00002-of-00002.safetensors": names[1::2]}
        for shard, shard_names in shards.items():
            safetensors_numpy.save_file({n: state[n] for n in shard_names}, str(other / shard))
        weight_map = {n: shard for shard, shard_names in shards.items() for n in shard_names}
        (other / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))

    # Past reading, every storage takes the same path as model.safetensors.
    read = hf_convert.read_state(str(other))
    assert sorted(read) == sorted(state)
    for name, value in state.items():
        assert read[name].dtype == np.float32
        np.testing.assert_array_equal(read[name], value, err_msg=name)


# === Errors ===


@pytest.fixture(scope="module")
def saved_generator(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gen")
    gen = ct.random_hf(torch, transformers, transformers.ElectraForMaskedLM,
                       ct.CONFIGS["small_like"], 6)
    return ct.save_hf(gen, directory)


def copy_with(source, destination, drop=(), add=None, config=None, vocab_size=None):
    """A copy of an HF directory with tensors dropped/added and config keys changed."""
    destination.mkdir()
    state = safetensors_numpy.load_file(str(source / "model.safetensors"))
    state = {k: v for k, v in state.items() if k not in drop}
    state.update(add or {})
    safetensors_numpy.save_file(state, str(destination / "model.safetensors"),
                                metadata={"format": "pt"})
    hf_config = json.loads((source / "config.json").read_text())
    hf_config.update(config or {})
    (destination / "config.json").write_text(json.dumps(hf_config))
    tokens = ct.vocab_tokens(vocab_size or hf_config["vocab_size"])
    (destination / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    return destination


def test_wrong_model_is_an_error(saved_generator, tmp_path):
    with pytest.raises(ConversionError, match=r"--model=discriminator .*ElectraForMaskedLM"):
        convert([saved_generator], tmp_path / "out", kind="discriminator")
    with pytest.raises(ConversionError, match="--model='encoder' is not one of"):
        convert([saved_generator], tmp_path / "out", kind="encoder")
    assert not (tmp_path / "out").exists()


def test_missing_and_extra_tensors_are_listed(saved_generator, tmp_path):
    broken = copy_with(
        saved_generator, tmp_path / "broken",
        drop={"electra.encoder.layer.1.attention.self.key.weight", "generator_lm_head.bias"},
        add={"electra.encoder.layer.2.output.dense.weight": np.zeros((32, 64), np.float32)})
    with pytest.raises(ConversionError) as error:
        convert([broken], tmp_path / "out")
    message = str(error.value)
    assert "2 missing tensor(s): electra.encoder.layer.1.attention.self.key.weight, " \
           "generator_lm_head.bias" in message
    assert "1 unexpected tensor(s): electra.encoder.layer.2.output.dense.weight" in message
    assert not (tmp_path / "out").exists()


def test_config_and_vocab_size_mismatches_are_errors(saved_generator, tmp_path):
    # config.json says 3 layers and a wider FFN than the tensors hold.
    wrong_config = copy_with(saved_generator, tmp_path / "config",
                             config={"num_hidden_layers": 3, "intermediate_size": 80})
    with pytest.raises(ConversionError) as error:
        convert([wrong_config], tmp_path / "out1")
    message = str(error.value)
    assert "missing tensor(s): electra.encoder.layer.2." in message
    assert "electra.encoder.layer.0.intermediate.dense.weight [64, 32] (expected [80, 32])" \
        in message

    short_vocab = copy_with(saved_generator, tmp_path / "vocab", vocab_size=90)
    with pytest.raises(ConversionError, match="has 90 tokens but the generator has "
                                              "vocab_size=100"):
        convert([short_vocab], tmp_path / "out2")


def test_untied_generator_output_layer_is_an_error(saved_generator, tmp_path):
    state = safetensors_numpy.load_file(str(saved_generator / "model.safetensors"))
    untied = state["electra.embeddings.word_embeddings.weight"] + 1.0
    broken = copy_with(saved_generator, tmp_path / "untied",
                       add={"generator_lm_head.weight": untied})
    with pytest.raises(ConversionError, match="generator_lm_head.weight differs"):
        convert([broken], tmp_path / "out")


def test_a_weight_without_a_mapping_is_an_error(monkeypatch):
    """A weight the mapping forgets must not stay random silently."""
    model = mapping.new_model("discriminator", hf_convert.encoder_config_from_hf(
        ct.CONFIGS["small_like"], "small_like"))
    slots = mapping.model_slots(hf_convert.layout(), model)
    assert {id(s.variable) for s in slots} == {id(w) for w in model.weights}
    # As if a layer were added to the RTD head without a mapping for it.
    monkeypatch.setattr(mapping, "head_slots", lambda layout, model: slots[-2:])
    with pytest.raises(ConversionError,
                       match=r"no Hugging Face tensor maps to .*rtd_head/dense/kernel"):
        mapping.model_slots(hf_convert.layout(), model)


def test_finetuned_hf_qa_model_converts_exports_and_serves_hf_logits(tmp_path):
    from export.export_helpers import bare_process_outputs

    from electra_tf.export import exporter
    from electra_tf.models.question_answering import ElectraForQuestionAnswering

    config = ct.CONFIGS["small_like"]
    hf = ct.random_hf(torch, transformers, transformers.ElectraForQuestionAnswering, config, 12)
    inputs = ct.batch(config["vocab_size"])
    with torch.no_grad():
        expected = hf(**ct.hf_inputs(torch, inputs))
    ct.save_hf(hf, tmp_path / "hf")
    out = tmp_path / "finetuned"
    assert convert([tmp_path / "hf"], out, kind="finetuned") == [str(out)]
    model, cfg, _, _ = artifacts.load_finetuned(str(out))
    assert isinstance(model, ElectraForQuestionAnswering)
    assert (cfg.task, cfg.max_seq_length) == ("squad", 64)  # 384, capped at the positions

    path = exporter.export_model(str(out), str(tmp_path / "exports"), "qa")
    ids = {k: np.asarray(v, np.int32) for k, v in inputs.items()}
    context = "w3 w4 w5 w6, w7."
    outputs = bare_process_outputs(path, str(tmp_path),
                                   {"question": ["w1 w2?"], "context": [context]}, ids)
    real = inputs[schema.PADDING_MASK]
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(outputs[f"predict_ids/{name}"][real],
                                   getattr(expected, name).numpy()[real], atol=ct.TOLERANCE)
    start, end = outputs["serving_default/start_char"][0], outputs["serving_default/end_char"][0]
    assert context[start:end] == outputs["serving_default/answer"][0].decode() != ""

    with pytest.raises(ConversionError, match="--model=finetuned converts one Hugging Face"):
        convert_checkpoint("google", "electra_tf", [str(tmp_path / "hf")],
                           str(tmp_path / "x"), kind="finetuned")
