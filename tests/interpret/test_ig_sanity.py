"""Sanity checks that a wrong attribution method would fail (Adebayo et al., 2018): on a
synthetic task decided by one known word, the trained model's attributions rank that
word first, and they change when the top layers are re-randomized."""

import keras
import numpy as np
import pytest
from absl import logging

from electra_tf.interpret.explainer import Explainer
from electra_tf.models.classifier import ElectraClassifier
from export.export_helpers import MAX_SEQ_LENGTH, write_vocab
from interpret.interpret_helpers import SYNTHETIC_LABELS, synthetic_texts, train_synthetic

HELD_OUT = 200


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    vocab = write_vocab(tmp_path_factory.mktemp("synthetic") / "vocab.txt")
    model, tokenizer = train_synthetic(vocab)
    # Held-out texts (another seed), each with a key word.
    texts, labels = synthetic_texts(HELD_OUT, seed=99, key_word_only=True)
    return model, tokenizer, texts, labels


def explain(model, tokenizer, texts, labels=None):
    explainer = Explainer(model, tokenizer, MAX_SEQ_LENGTH, SYNTHETIC_LABELS, steps=64)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # a random model's integrals may warn
    try:
        return explainer.explain(texts, labels=labels)
    finally:
        logging.set_verbosity(verbosity)


def spearman(a, b):
    ranks = [np.argsort(np.argsort(x)).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_the_deciding_word_ranks_first(trained):
    model, tokenizer, texts, labels = trained
    explained = explain(model, tokenizer, texts)
    assert np.mean([e.label == SYNTHETIC_LABELS[y] for e, y in zip(explained, labels)]) >= 0.95
    first = [max(e.words, key=lambda w: w.attribution).word for e in explained]
    assert np.mean([w == SYNTHETIC_LABELS[y] for w, y in zip(first, labels)]) >= 0.95
    # And it carries most of the change from the no-words baseline ("none").
    shares = [max(w.attribution for w in e.words) / (e.output - e.baseline_output)
              for e in explained]
    assert np.median(shares) > 0.5
    assert np.median([e.completeness_error for e in explained]) < 0.05


def test_re_randomized_top_layers_change_the_attributions(trained):
    model, tokenizer, texts, labels = trained
    keras.utils.set_random_seed(123)
    randomized = ElectraClassifier(model.encoder_config, model.num_labels)
    randomized.build_for_length(MAX_SEQ_LENGTH)
    top = (f"encoder/block_{model.encoder.num_layers - 1}/", "classifier/")
    copied = 0
    for new, old in zip(randomized.weights, model.weights):
        # Paths differ in the model's own name only.
        path = old.path.split("/", 1)[1]
        assert new.path.split("/", 1)[1] == path
        if not path.startswith(top):
            new.assign(old)
            copied += 1
    assert 0 < copied < len(model.weights)
    # The same output explained in both: the trained model's label (its predictions
    # are right, see above). Explaining the random model's own prediction instead still
    # ranks the key word first: its trained embedding stands out to any network.
    targets = [int(y) for y in labels[:50]]
    trained_words, random_words = (
        [[w.attribution for w in e.words] for e in explain(m, tokenizer, texts[:50], targets)]
        for m in (model, randomized))
    correlations = [spearman(a, b) for a, b in zip(trained_words, random_words)]
    assert np.mean(correlations) < 0.3, correlations
    key_first = [np.argmax(a) == np.argmax(b) for a, b in zip(trained_words, random_words)]
    assert np.mean(key_first) < 0.75
