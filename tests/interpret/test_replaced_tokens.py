import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import REPO_ROOT
from electra_tf.interpret import replaced_tokens as explain
from electra_tf.models.pretrainer import ElectraDiscriminator
from electra_tf.text.tokenizer import WordPieceTokenizer
from export.export_helpers import MAX_SEQ_LENGTH, TEXTS, shared_export


def test_one_score_per_wordpiece(tiny_vocab):
    keras.utils.set_random_seed(0)
    tok = WordPieceTokenizer(tiny_vocab)
    disc = ElectraDiscriminator(dict(
        vocab_size=tok.vocab_size, embedding_size=8, hidden_size=8, num_layers=1, num_heads=1,
        intermediate_size=8, max_position_embeddings=16))
    texts = ["the cats sat", "", "a dog " * 20]
    scores = explain.replaced_token_scores(disc, tok, texts, max_seq_length=10)
    assert [s.token for s in scores[0]] == ["the", "cat", "##s", "sat"]
    assert scores[1] == []
    assert len(scores[2]) == 8  # truncated to max_seq_length - 2
    flat = [s.score for row in scores for s in row]
    assert all(0.0 <= s <= 1.0 for s in flat) and np.std(flat) > 0


@pytest.fixture(scope="module")
def model_and_export(tmp_path_factory):
    shared = shared_export(tmp_path_factory)
    return (shared["model_dir"], os.path.dirname(shared["path"]), shared["disc"],
            shared["tokenizer"])


def test_saved_model_scores_equal_the_keras_model(model_and_export):
    model_dir, export_base, disc, tokenizer = model_and_export
    keras_scores = explain.replaced_token_scores(disc, tokenizer, TEXTS, MAX_SEQ_LENGTH)
    served = explain.export_token_scores(export_base, TEXTS)  # the latest version
    assert explain.model_dir_token_scores(model_dir, TEXTS) == keras_scores
    assert [len(row) for row in served] == [8, 0, MAX_SEQ_LENGTH - 2, 3]
    for a, b in zip(keras_scores, served):
        assert [s.token for s in a] == [s.token for s in b]
        np.testing.assert_allclose([s.score for s in a], [s.score for s in b], atol=1e-5)


def test_html_highlights_every_token_and_escapes_text():
    scores = [[explain.TokenScore("the", 0.1), explain.TokenScore("cat", 0.9),
               explain.TokenScore("##s", 0.7), explain.TokenScore("<", 0.2)]]
    page = explain.to_html(["the cats <"], scores, threshold=0.5)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    spans = re.findall(r'<span class="tok( flagged)?" style="background: rgba\(220, 38, 38, '
                       r'([0-9.]+)\)" title="([0-9.]+)">([^<]*)</span>', page)
    assert [(flag != "", float(alpha), text) for flag, alpha, _, text in spans] == [
        (False, 0.1, "the"), (True, 0.9, "cat"), (True, 0.7, "s"), (False, 0.2, "&lt;")]
    # WordPieces of one word are adjacent spans; words are separated by spaces.
    assert '>cat</span><span class="tok flagged"' in page
    assert "the cats &lt;" in page and "<script" not in page


def test_format_scores_marks_tokens_above_the_threshold():
    scores = [explain.TokenScore("the", 0.25), explain.TokenScore("car", 0.75)]
    assert explain.format_scores(scores, 0.5) == " 0.250  the\n 0.750  car   <- replaced?"
    coloured = explain.format_scores(scores, 0.5, color=True).splitlines()
    assert coloured[0] == " 0.250  the"
    assert coloured[1] == "\033[1;31m 0.750  car   <- replaced?\033[0m"


def test_explain_tool_with_saved_model_writes_html(model_and_export, tmp_path):
    _, export_base, _, _ = model_and_export
    html_path = tmp_path / "out.html"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "explain.py"), f"--saved_model={export_base}",
         f"--html={html_path}", "--threshold=0", "the cats sat"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    # Piped: plain text, no ANSI colours, even for flagged tokens.
    assert lines[0] == "the cats sat" and "\033[" not in result.stdout
    assert [line.split()[1] for line in lines[1:5]] == ["the", "cat", "##s", "sat"]
    assert all(line.endswith("<- replaced?") for line in lines[1:5])
    assert lines[-1] == f"wrote {html_path}"
    assert html_path.read_text().count('class="tok flagged"') == 4
