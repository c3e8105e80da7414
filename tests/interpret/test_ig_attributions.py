"""Integrated gradients on tiny random classifiers: completeness, padding invariance,
only content tokens attributed, pass batching, pairs, regression, requested labels."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.export import signatures
from electra_tf.interpret import explainer as explainer_lib
from electra_tf.models import integrated_gradients as ig
from export.export_helpers import MAX_SEQ_LENGTH, TEXTS
from interpret.interpret_helpers import LABELS, make_finetuned

PAIRS = ["a dog ran", "the small cat was slow " * 5, "", "hello"]


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    return make_finetuned(tmp_path_factory.mktemp("pair"), num_labels=3, pair=True)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return make_finetuned(tmp_path_factory.mktemp("single"), num_labels=3, pair=False)


def packed(tokenizer, texts, length):
    features, _ = signatures.TextPacker(tokenizer, length)(tf.constant(texts))
    pad = length - features[schema.TOKEN_IDS].shape[1]
    features = {k: tf.pad(v, [[0, 0], [0, pad]]) for k, v in features.items()}
    return features, ig.content_mask(features, (tokenizer.cls_id, tokenizer.sep_id))


def test_trapezoid_nodes():
    alphas, weights = ig.trapezoid_nodes(4)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])
    with pytest.raises(ValueError, match="steps must be >= 1"):
        ig.trapezoid_nodes(0)


def test_completeness_on_a_random_model(single):
    _, model, tok = single
    features, content = packed(tok, TEXTS, MAX_SEQ_LENGTH)
    errors = {}
    for steps in (8, 64):
        out = ig.integrated_gradients(model, features, content, steps=steps)
        errors[steps] = ig.completeness_error(out["attributions"].numpy(), out["output"].numpy(),
                                              out["baseline_output"].numpy())
    delta = (out["output"] - out["baseline_output"]).numpy()
    # Changes above MIN_DELTA: errors relative to the change itself.
    assert np.all(np.abs(delta[[0, 2, 3]]) > ig.MIN_DELTA)
    assert errors[64].max() < 0.03, errors
    # The trapezoid rule converges: 8x the steps, far less error.
    assert errors[64].sum() < errors[8].sum() / 4
    # f(input) is the model's own prediction.
    probs = tf.nn.softmax(model(features, training=False)).numpy()
    np.testing.assert_allclose(out["output"], probs[np.arange(4), probs.argmax(1)], atol=1e-6)


def test_padding_does_not_change_attributions_and_specials_get_none(single):
    _, model, tok = single
    texts = TEXTS[:1] + TEXTS[3:]
    outs = [ig.integrated_gradients(model, *packed(tok, texts, length), steps=16)
            for length in (16, 32)]
    a16, a32 = (out["attributions"].numpy() for out in outs)
    np.testing.assert_allclose(a32[:, :16], a16, atol=1e-5)
    assert not a32[:, 16:].any()
    features, content = packed(tok, texts, 16)
    assert not a16[~content.numpy()].any() and np.abs(a16[content.numpy()]).min() > 0
    np.testing.assert_allclose(outs[0]["logits"], outs[1]["logits"], atol=1e-5)


def test_passes_group_similar_lengths_within_the_budget():
    passes = explainer_lib._passes(np.array([5, 30, 6, 12, 29]), rows_per_text=3,
                                   max_tokens=200)
    # Sorted by length: 3 texts x 3 rows x 12 = 108; adding 29 would make 348; 2 x 3 x 30.
    assert [list(p) for p in passes] == [[0, 2, 3], [4, 1]]
    assert sorted(np.concatenate(passes)) == list(range(5))


def test_pair_explanations_per_word_and_requested_label(pair_dir):
    out, model, tok = pair_dir
    # A small pass budget: each text gets a pass of its own.
    small = explainer_lib.Explainer.from_finetuned(out, steps=64, max_tokens_per_pass=1)
    one_pass = explainer_lib.Explainer.from_finetuned(out, steps=64)
    assert small.pair and small.label_names == list(LABELS)
    explained = small.explain(TEXTS, PAIRS)
    for a, b in zip(explained, one_pass.explain(TEXTS, PAIRS)):
        np.testing.assert_allclose(a.token_attributions, b.token_attributions, atol=1e-5)
    first = explained[0]
    assert first.tokens[:5] == ("[CLS]", "the", "cat", "##s", "sat")
    assert [(w.word, w.segment, w.pieces) for w in first.words[:2]] == [
        ("the", 0, ("the",)), ("cats", 0, ("cat", "##s"))]
    assert [w.word for w in first.words if w.segment == 1] == ["a", "dog", "ran"]
    np.testing.assert_allclose(first.words[1].attribution, sum(first.token_attributions[2:4]),
                               rtol=1e-6)
    for e in explained:
        assert e.target == e.label and sum(e.probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert e.output == pytest.approx(e.probabilities[e.label], abs=1e-6)
        assert e.completeness_error < 0.05
    assert [e.truncated for e in explained] == [False, True, True, False]
    other = [name for name in LABELS if name != first.label][0]
    [requested] = small.explain(TEXTS[:1], PAIRS[:1], labels=[other])
    assert requested.target == other and requested.label == first.label
    assert requested.output == pytest.approx(first.probabilities[other], abs=1e-6)
    assert not np.allclose(requested.token_attributions, first.token_attributions)
    [by_index] = small.explain(TEXTS[:1], PAIRS[:1], labels=[LABELS.index(other)])
    assert by_index.token_attributions == requested.token_attributions


def test_regression_explains_the_score(tmp_path):
    out, model, tok = make_finetuned(tmp_path, num_labels=1)
    explainer = explainer_lib.Explainer.from_finetuned(out, steps=64)
    explained = explainer.explain(TEXTS)
    features, _ = packed(tok, TEXTS, MAX_SEQ_LENGTH)
    scores = model(features, training=False).numpy()[:, 0]
    for e, score in zip(explained, scores):
        assert (e.target, e.label, e.probabilities) == ("score", None, {})
        assert e.score == pytest.approx(score, abs=1e-5) and e.output == e.score
        assert e.completeness_error < 0.05
    assert explained[1].words == () and explained[1].token_attributions == (0.0, 0.0)
    with pytest.raises(ValueError, match="regression model explains its score"):
        explainer.explain(TEXTS[:1], labels=["positive"])


def test_input_errors_name_the_problem(pair_dir, single):
    pair = explainer_lib.Explainer.from_finetuned(pair_dir[0], steps=2)
    with pytest.raises(ValueError, match="give a text_pair for every text"):
        pair.explain(["a"])
    with pytest.raises(ValueError, match="1 text_pairs for 2 texts"):
        pair.explain(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="unknown label 'happy'; the model's labels are "
                                         "negative, neutral, positive"):
        pair.explain(["a"], ["b"], labels=["happy"])
    alone = explainer_lib.Explainer.from_finetuned(single[0], steps=2)
    with pytest.raises(ValueError, match="single texts, not pairs"):
        alone.explain(["a"], ["b"])
    assert alone.explain([]) == []


def test_an_incomplete_integral_is_logged(single, caplog):
    explainer = explainer_lib.Explainer.from_finetuned(single[0], steps=1)
    with caplog.at_level(logging.WARNING):
        [e] = explainer.explain(TEXTS[:1])
    assert e.completeness_error > 0.05
    assert "more steps (now 1) make them agree" in caplog.text
