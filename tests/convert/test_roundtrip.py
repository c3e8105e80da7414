"""electra_tf -> Hugging Face -> electra_tf: transformers loads our models and gives
our outputs within 1e-4, and the way back restores every weight bit for bit."""

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import convert_testing as ct  # noqa: E402
from electra_tf import config as config_lib  # noqa: E402
from electra_tf.convert import convert_checkpoint, mapping  # noqa: E402
from electra_tf import schema  # noqa: E402
from electra_tf.models import artifacts  # noqa: E402
from electra_tf.text.tokenizer import WordPieceTokenizer, load_vocab  # noqa: E402

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A pretraining-style model_dir whose every weight is random (biases included)."""
    root = tmp_path_factory.mktemp("roundtrip")
    vocab = root / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in ct.vocab_tokens(100)))
    cfg = config_lib.from_dict({
        "model": dict(vocab_size=100, embedding_size=16, hidden_size=32, num_layers=2,
                      num_heads=2, intermediate_size=64, max_position_embeddings=64,
                      generator_hidden_fraction=0.5),
        "data": dict(vocab_path=str(vocab), lowercase=False, max_seq_length=32),
    })
    rng = np.random.default_rng(0)
    for kind, encoder in (("discriminator", cfg.model.discriminator_encoder()),
                          ("generator", cfg.model.generator_encoder())):
        model = mapping.new_model(kind, dataclasses.asdict(encoder))
        for weight in model.weights:
            weight.assign(0.2 * rng.standard_normal(weight.shape).astype("float32"))
        artifacts.save_artifact(model, str(root / kind), cfg, str(vocab), step=7)
    return root


def load(path):
    return artifacts.load(str(path)).model


@pytest.mark.parametrize("kind", ["discriminator", "generator"])
def test_transformers_loads_our_model_and_matches_it(model_dir, kind, tmp_path):
    convert_checkpoint("electra_tf", "hf", [str(model_dir)], str(tmp_path / "hf"), kind=kind)
    hf_class = (transformers.ElectraForPreTraining if kind == "discriminator"
                else transformers.ElectraForMaskedLM)
    hf, info = hf_class.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    hf.eval()
    ours = load(model_dir / kind)
    inputs = ct.batch(100)
    with torch.no_grad():
        out = hf(**ct.hf_inputs(torch, inputs), output_hidden_states=True)
    np.testing.assert_allclose(ours.encoder(inputs), out.hidden_states[-1],
                               atol=ct.TOLERANCE, rtol=0)
    if kind == "discriminator":
        np.testing.assert_allclose(ours(inputs), out.logits, atol=ct.TOLERANCE, rtol=0)
    else:
        logits = ours({**inputs, schema.MASK_POSITIONS: ct.MASK_POSITIONS})
        expected = np.take_along_axis(out.logits.numpy(), ct.MASK_POSITIONS[:, :, None], 1)
        np.testing.assert_allclose(logits, expected, atol=ct.TOLERANCE, rtol=0)


def test_round_trip_restores_every_weight_exactly(model_dir, tmp_path):
    for kind in ("discriminator", "generator"):
        convert_checkpoint("electra_tf", "hf", [str(model_dir)], str(tmp_path / kind), kind=kind)
    convert_checkpoint("hf", "electra_tf", [str(tmp_path / "discriminator"),
                                            str(tmp_path / "generator")], str(tmp_path / "back"))
    for kind in ("discriminator", "generator"):
        original, back = load(model_dir / kind), load(tmp_path / "back" / kind)
        # Paths without the model's own name, which Keras numbers per instance.
        paths = [w.path.split("/", 1)[1] for w in original.weights]
        assert [w.path.split("/", 1)[1] for w in back.weights] == paths
        for path, a, b in zip(paths, original.weights, back.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    before = config_lib.load_config(str(model_dir / "discriminator" / "config.json"))
    after = config_lib.load_config(str(tmp_path / "back" / "config.json"))
    assert after.model == before.model
    assert after.data.lowercase is False
    assert load_vocab(str(tmp_path / "back" / "vocab.txt")) == ct.vocab_tokens(100)


def test_hf_directory_has_a_working_tokenizer(tiny_vocab, tmp_path):
    """The tokenizer files make transformers tokenize as our WordPieceTokenizer does."""
    tokens = load_vocab(tiny_vocab)
    cfg = config_lib.from_dict({
        "model": dict(vocab_size=len(tokens), embedding_size=8, hidden_size=16, num_layers=1,
                      num_heads=1, intermediate_size=16, max_position_embeddings=32),
        "data": dict(vocab_path=tiny_vocab, max_seq_length=32),
    })
    encoder = dataclasses.asdict(cfg.model.discriminator_encoder())
    model = mapping.new_model("discriminator", encoder)
    artifacts.save_artifact(model, str(tmp_path / "md" / "discriminator"), cfg, tiny_vocab)
    convert_checkpoint("electra_tf", "hf", [str(tmp_path / "md")], str(tmp_path / "hf"))

    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())["do_lower_case"]
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    text = "The big CAT sat, fast!"
    ours = WordPieceTokenizer(tiny_vocab, lowercase=True).tokenize([text]).to_list()[0]
    assert hf_tokenizer(text, add_special_tokens=False)["input_ids"] == ours
    assert hf_tokenizer.pad_token_id == 0 and hf_tokenizer.mask_token == "[MASK]"


@pytest.mark.parametrize("extra, message", [
    ({"attention_locality": 0.5}, "attention_locality=0.5"),
    ({"local_conv_kernel": 3}, "local_conv_kernel=3"),
])
def test_a_model_beyond_hugging_faces_architecture_is_refused(tiny_vocab, tmp_path, extra,
                                                              message):
    """HF's ELECTRA has no distance bias or local conv: converting would change the function."""
    from electra_tf.convert.mapping import ConversionError

    tokens = load_vocab(tiny_vocab)
    cfg = config_lib.from_dict({
        "model": dict(vocab_size=len(tokens), embedding_size=8, hidden_size=16, num_layers=1,
                      num_heads=1, intermediate_size=16, max_position_embeddings=32,
                      **extra),
        "data": dict(vocab_path=tiny_vocab, max_seq_length=32),
    })
    encoder = dataclasses.asdict(cfg.model.discriminator_encoder())
    model = mapping.new_model("discriminator", encoder)
    artifacts.save_artifact(model, str(tmp_path / "md" / "discriminator"), cfg, tiny_vocab)
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint("electra_tf", "hf", [str(tmp_path / "md")], str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists()
