"""Helpers for the converter tests: random Hugging Face models, batches, vocabularies.

Imported only by tests that have already `pytest.importorskip`-ed torch and
transformers.
"""

import json

import numpy as np

from electra_tf import schema

TOLERANCE = 1e-4

# Every config keeps ELECTRA's exact GELU and epsilon; they differ in the sizes.
BASE = dict(max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu",
            layer_norm_eps=1e-12, initializer_range=0.2)
CONFIGS = {
    # ELECTRA-Small's shape: embeddings narrower than the blocks (a projection).
    "small_like": dict(BASE, vocab_size=100, embedding_size=16, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    # Base/large's shape: embedding_size == hidden_size, no projection.
    "no_projection": dict(BASE, vocab_size=100, embedding_size=24, hidden_size=24,
                          num_hidden_layers=2, num_attention_heads=3, intermediate_size=40),
    "odd": dict(BASE, vocab_size=1000, embedding_size=40, hidden_size=96,
                num_hidden_layers=3, num_attention_heads=3, intermediate_size=200),
}
MASK_POSITIONS = np.array([[0, 3, 11], [1, 2, 8], [4, 0, 0]], dtype="int32")


def batch(vocab_size):
    """Rows of 12, 9 and 5 real tokens, each `A` (segment 0) then `B` (segment 1)."""
    rng = np.random.default_rng(0)
    lengths, seq_len = (12, 9, 5), 12
    positions = np.arange(seq_len)[None, :]
    padding_mask = positions < np.array(lengths)[:, None]
    segment_ids = (positions >= np.array([6, 4, 3])[:, None]) & padding_mask
    token_ids = np.where(padding_mask, rng.integers(5, vocab_size, size=(3, seq_len)), 0)
    return {
        schema.TOKEN_IDS: token_ids.astype("int32"),
        schema.SEGMENT_IDS: segment_ids.astype("int32"),
        schema.PADDING_MASK: padding_mask,
    }


def hf_inputs(torch, inputs):
    return dict(
        input_ids=torch.tensor(inputs[schema.TOKEN_IDS], dtype=torch.long),
        token_type_ids=torch.tensor(inputs[schema.SEGMENT_IDS], dtype=torch.long),
        attention_mask=torch.tensor(inputs[schema.PADDING_MASK], dtype=torch.long),
    )


def random_hf(torch, transformers, model_class, config, seed):
    """A random HF model in eval mode, biases and LayerNorms randomised too.

    HF zero-inits biases and sets LayerNorms to identity; randomising them makes
    a bias or LayerNorm copied to the wrong place visible.
    """
    torch.manual_seed(seed)
    hf_config = transformers.ElectraConfig(**config)
    hf_config._attn_implementation = "eager"
    model = model_class(hf_config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


def vocab_tokens(size):
    """`size` distinct WordPiece tokens, BERT's special tokens first."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return specials + [f"w{i}" for i in range(size - len(specials))]


def save_hf(model, directory, lowercase=True):
    """save_pretrained plus the tokenizer files a Hub ELECTRA directory has."""
    model.save_pretrained(str(directory))
    tokens = vocab_tokens(model.config.vocab_size)
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    return directory
