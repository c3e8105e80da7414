"""The proof that the architecture is ELECTRA: Hugging Face's weights give HF's outputs.

A random tiny HF `ElectraForPreTraining` (discriminator) and `ElectraForMaskedLM`
(generator) are copied into our models by the converter's mapping
(`electra_tf.convert.hf.load_hf_state`); sequence output, RTD logits and MLM
logits must agree within 1e-4 in float32 on a batch with padding and two
segments. (tests/convert/ covers more shapes, files and the way back.)
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from convert import convert_testing as ct  # noqa: E402
from electra_tf.convert import hf as hf_convert  # noqa: E402
from electra_tf.convert import mapping  # noqa: E402
from electra_tf import schema  # noqa: E402

pytestmark = pytest.mark.parity

TOLERANCE = 1e-4
HF_CONFIG = dict(
    vocab_size=99,
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    # Far above ELECTRA's 0.02 so pre-activations reach the range where exact
    # and tanh GELU differ by more than the tolerance (at 0.02 they agree to 1e-6).
    initializer_range=0.5,
)


def _state_dict(hf_model):
    return {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}


def _converted(kind, hf_model):
    """Our model of `kind`, built from HF's config and filled with HF's tensors."""
    encoder_config = hf_convert.encoder_config_from_hf(HF_CONFIG, "HF_CONFIG")
    assert encoder_config["num_layers"] == 2 and encoder_config["hidden_activation"] == "gelu"
    model = mapping.new_model(kind, encoder_config)
    hf_convert.load_hf_state(model, _state_dict(hf_model), type(hf_model).__name__)
    return model


# === Fixtures ===


@pytest.fixture(scope="module")
def batch():
    """Rows of 12, 9 and 5 real tokens, each `A` (segment 0) then `B` (segment 1)."""
    rng = np.random.default_rng(0)
    lengths, seq_len = (12, 9, 5), 12
    positions = np.arange(seq_len)[None, :]
    padding_mask = positions < np.array(lengths)[:, None]
    segment_ids = ((positions >= np.array([6, 4, 3])[:, None]) & padding_mask)
    token_ids = rng.integers(5, HF_CONFIG["vocab_size"], size=(3, seq_len))
    token_ids = np.where(padding_mask, token_ids, 0)
    return {
        schema.TOKEN_IDS: token_ids.astype("int32"),
        schema.SEGMENT_IDS: segment_ids.astype("int32"),
        schema.PADDING_MASK: padding_mask,
    }


def _hf_inputs(batch):
    return dict(
        input_ids=torch.tensor(batch[schema.TOKEN_IDS], dtype=torch.long),
        token_type_ids=torch.tensor(batch[schema.SEGMENT_IDS], dtype=torch.long),
        attention_mask=torch.tensor(batch[schema.PADDING_MASK], dtype=torch.long),
    )


def _random_hf(model_class, seed):
    return ct.random_hf(torch, transformers, model_class, HF_CONFIG, seed)


# === Tests ===


def test_discriminator_matches_hf(batch):
    hf = _random_hf(transformers.ElectraForPreTraining, seed=1)
    with torch.no_grad():
        hf_out = hf(**_hf_inputs(batch), output_hidden_states=True)

    ours = _converted("discriminator", hf)
    np.testing.assert_allclose(
        ours.encoder(batch, training=False).numpy(),
        hf_out.hidden_states[-1].numpy(),
        atol=TOLERANCE,
        rtol=0,
    )
    logits = ours(batch, training=False)
    assert logits.dtype == "float32"
    np.testing.assert_allclose(
        logits.numpy(), hf_out.logits.numpy(), atol=TOLERANCE, rtol=0
    )


def test_generator_matches_hf(batch):
    hf = _random_hf(transformers.ElectraForMaskedLM, seed=2)
    with torch.no_grad():
        hf_logits = hf(**_hf_inputs(batch)).logits.numpy()

    ours = _converted("generator", hf)
    mask_positions = np.array([[0, 3, 11], [1, 2, 8], [4, 0, 0]], dtype="int32")
    logits = ours({**batch, schema.MASK_POSITIONS: mask_positions}, training=False).numpy()
    expected = np.take_along_axis(hf_logits, mask_positions[:, :, None], axis=1)
    assert logits.shape == (3, 3, HF_CONFIG["vocab_size"])
    np.testing.assert_allclose(logits, expected, atol=TOLERANCE, rtol=0)
