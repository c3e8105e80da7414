"""tools/convert_checkpoint.py, run as a subprocess like a user would: a Hugging Face
discriminator becomes a model_dir that tools/explain.py reads with HF's scores.
(The library tests in tests/convert/ cover the formats and the way back.)"""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

pytestmark = pytest.mark.parity

TOOLS = pathlib.Path(__file__).resolve().parents[2] / "tools"
TEXT = "the cat sat on the red mat"


def run_tool(name, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(TOOLS / name), *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def hf_discriminator(tiny_vocab, tmp_path):
    """A random HF ElectraForPreTraining over the tiny vocabulary, with its tokenizer."""
    tokens = pathlib.Path(tiny_vocab).read_text().split("\n")[:-1]
    torch.manual_seed(0)
    config = transformers.ElectraConfig(
        vocab_size=len(tokens), embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
        initializer_range=0.5)
    model = transformers.ElectraForPreTraining(config).eval()
    directory = tmp_path / "hf"
    model.save_pretrained(str(directory))
    (directory / "vocab.txt").write_text(pathlib.Path(tiny_vocab).read_text())
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    return model, directory


def hf_scores(model, directory, text):
    """Replaced-token probabilities HF gives the WordPieces of `text` ([CLS]/[SEP] left out)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(model(**encoded).logits)[0, 1:-1].numpy()
    return tokenizer.convert_ids_to_tokens(encoded["input_ids"][0, 1:-1]), probs


def test_hf_to_model_dir_that_explain_reads(hf_discriminator, tmp_path):
    model, hf_dir = hf_discriminator
    model_dir = tmp_path / "model_dir"
    done = run_tool("convert_checkpoint.py", "--from=hf", "--to=electra_tf",
                    f"--input={hf_dir}", f"--output={model_dir}")
    assert done.returncode == 0, done.stderr
    assert f"wrote {model_dir / 'discriminator'}" in done.stdout
    assert sorted(os.listdir(model_dir)) == ["config.json", "discriminator", "vocab.txt"]

    explained = run_tool("explain.py", f"--model_dir={model_dir}", "--color=never", TEXT)
    assert explained.returncode == 0, explained.stderr
    printed = re.findall(r"^\s*([0-9.]+)\s+(\S+)", explained.stdout, flags=re.M)
    tokens, probs = hf_scores(model, hf_dir, TEXT)
    assert [t for _, t in printed] == tokens
    np.testing.assert_allclose([float(s) for s, _ in printed], probs, atol=1e-3)

    # The model_dir has no generator: asking for one is an error, and nothing is written.
    wrong = run_tool("convert_checkpoint.py", "--from=electra_tf", "--to=hf",
                     f"--input={model_dir}", f"--output={tmp_path / 'gen'}", "--model=generator")
    assert wrong.returncode == 2
    assert "--model=generator: no electra_tf generator artifact" in wrong.stderr
    assert not (tmp_path / "gen").exists()

