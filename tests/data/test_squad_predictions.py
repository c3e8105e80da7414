"""SQuAD post-processing: n-best span search over the windows of a question, the v2.0
null threshold, and the prediction files."""

import json
import os

import numpy as np
import pytest

from electra_tf.data import squad, squad_predictions
from electra_tf.text.tokenizer import WordPieceTokenizer


@pytest.fixture
def tokenizer(tmp_path):
    words = "the cat sat on mat in paris . who what where ? a b c d e f g h i j k l".split()
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n",
                    encoding="utf-8")
    return WordPieceTokenizer(str(path))


def example(qid, context, question="what ?"):
    return squad.SquadExample(id=qid, question=question, context=context, is_impossible=True)


def logits_for(features, spans, low=-5.0):
    """Logits peaked at given (window, start, end, value) tuples; -5 elsewhere."""
    start = np.full(features.token_ids.shape, low, np.float32)
    end = np.full(features.token_ids.shape, low, np.float32)
    for window, s, e, value in spans:
        start[window, s] = value
        end[window, e] = value
    return start, end


def test_best_span_across_windows_maps_to_original_text(tokenizer):
    # Windows of 5 context tokens every 3: [0,5) [3,8) [6,11) [9,12).
    context = "a b c d e f g h i j K l"
    features = squad.convert_to_features([example("q", context)], tokenizer,
                                         max_seq_length=10, max_query_length=2, doc_stride=3)
    assert len(features) == 4
    # Window 3 (context from token 9, "j", at position 4): "K l" scores 8, window 0's
    # "a b" 6. ("j" itself has more context in window 2, so window 3 may not start there.)
    start, end = logits_for(features, [(3, 5, 6, 4.0), (0, 4, 5, 3.0)])
    result = squad_predictions.postprocess(features, start, end)
    assert result.answers == {"q": "K l"}  # original case kept
    best = result.nbest["q"][0]
    assert (best["start_char"], best["end_char"]) == (20, 23)
    assert best["start_logit"] == 4.0 and best["end_logit"] == 4.0
    assert [e["text"] for e in result.nbest["q"][:2]] == ["K l", "a b"]
    assert sum(e["probability"] for e in result.nbest["q"]) == pytest.approx(1.0)
    assert len({e["text"] for e in result.nbest["q"]}) == len(result.nbest["q"])
    assert result.null_score_diffs == {}


def test_spans_obey_limits(tokenizer):
    context = "a b c d e f g h"
    features = squad.convert_to_features([example("q", context)], tokenizer,
                                         max_seq_length=16, max_query_length=2)
    assert len(features) == 1
    offset = 4  # [CLS] what ? [SEP]
    # The best start ("f") is after the best end ("c"), question tokens score highest,
    # "a".."c" and "f".."h" are 3 tokens, too long for max_answer_length=2: the best
    # span left is "f" alone (9 + 1).
    start, end = logits_for(features, [])
    start[0, 1] = end[0, 2] = 50.0  # question tokens
    start[0, offset + 5], end[0, offset + 2] = 9.0, 9.0
    start[0, offset + 0], end[0, offset + 7] = 8.0, 8.5
    start[0, offset + 4], end[0, offset + 5] = 1.0, 1.0
    result = squad_predictions.postprocess(features, start, end, max_answer_length=2,
                                           n_best_size=4)
    assert result.answers["q"] == "f"
    assert len(result.nbest["q"]) <= 4
    assert all(len(e["text"].split()) <= 2 for e in result.nbest["q"])
    # Longer answers allowed: "f g h" (9 + 8.5) beats "a b c" (8 + 9).
    assert squad_predictions.postprocess(features, start, end, max_answer_length=3
                                         ).answers["q"] == "f g h"


def test_max_context_decides_between_windows(tokenizer):
    # "d" (token 3) is in windows 0 and 1; it has more context in window 1? Windows
    # [0,5) and [3,8): "d" is 3 from window 0's start, 1 from its end (score 1);
    # in window 1 it is first (score 0). Window 0 owns it: window 1 may not start there.
    context = "a b c d e f g h"
    features = squad.convert_to_features([example("q", context)], tokenizer,
                                         max_seq_length=10, max_query_length=2, doc_stride=3)
    assert len(features) == 2
    start, end = logits_for(features, [(1, 4, 4, 9.0), (0, 7, 7, 2.0)])
    result = squad_predictions.postprocess(features, start, end)
    assert result.answers["q"] == "d"
    assert result.nbest["q"][0]["start_logit"] == 2.0  # from window 0, not window 1's 9


def test_v2_null_threshold(tokenizer):
    examples = [example("no", "a b c"), example("yes", "d e f")]
    features = squad.convert_to_features(examples, tokenizer, max_seq_length=12,
                                         max_query_length=2)
    offset = 4
    start, end = logits_for(features, [(0, 0, 0, 3.0), (0, offset + 1, offset + 1, 2.0),
                                       (1, 0, 0, 1.0), (1, offset, offset + 2, 2.0)])
    result = squad_predictions.postprocess(features, start, end, version_2=True)
    assert result.answers == {"no": "", "yes": "d e f"}
    assert result.null_score_diffs == {"no": pytest.approx(2.0), "yes": pytest.approx(-2.0)}
    assert result.nbest["no"][0]["text"] == "" and result.nbest["no"][0]["start_char"] == -1
    # A threshold above the difference answers anyway.
    lenient = squad_predictions.postprocess(features, start, end, version_2=True,
                                            null_score_diff_threshold=2.5)
    assert lenient.answers["no"] == "b"
    # v1.1 ignores the null score.
    assert squad_predictions.postprocess(features, start, end).answers["no"] == "b"


def test_mismatched_logits_refused(tokenizer):
    features = squad.convert_to_features([example("q", "a b")], tokenizer, max_seq_length=8,
                                         max_query_length=2)
    with pytest.raises(ValueError, match="do not match"):
        squad_predictions.postprocess(features, np.zeros((2, 8)), np.zeros((2, 8)))


def test_write_predictions(tmp_path, tokenizer):
    features = squad.convert_to_features([example("q", "a b c")], tokenizer,
                                         max_seq_length=12, max_query_length=2)
    start, end = logits_for(features, [(0, 0, 0, 1.0), (0, 5, 6, 3.0)])
    result = squad_predictions.postprocess(features, start, end, version_2=True)
    paths = squad_predictions.write_predictions(str(tmp_path), result)
    assert set(paths) == {"predictions.json", "nbest_predictions.json", "null_odds.json"}
    with open(paths["predictions.json"], encoding="utf-8") as f:
        assert json.load(f) == {"q": "b c"}
    with open(paths["nbest_predictions.json"], encoding="utf-8") as f:
        assert json.load(f)["q"][0]["text"] == "b c"
    # Temp files are gone: only the three results remain.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["predictions.json", "nbest_predictions.json", "null_odds.json", "vocab.txt"])
