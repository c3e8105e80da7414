"""The span model: shapes, padding mask, config round trip, the loss, and an overfit
run (a tiny encoder learns 20 SQuAD questions with `model.fit`)."""

import re

import keras
import numpy as np
import pytest

from electra_tf import schema
from electra_tf.data import squad, squad_predictions
from electra_tf.models import question_answering as qa
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training.metrics import squad_scores
from helpers import shared_path, tiny_encoder_config

VOCAB = 50


def encoder_config(vocab_size=VOCAB, max_position_embeddings=32, **overrides):
    return tiny_encoder_config(vocab_size, max_position_embeddings,
                               **{"dropout_rate": 0.0, "attention_dropout_rate": 0.0, **overrides})


def batch(batch_size=3, seq_len=12, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, seq_len + 1, batch_size)
    padding_mask = np.arange(seq_len)[None, :] < lengths[:, None]
    return {
        schema.TOKEN_IDS: np.where(padding_mask, rng.integers(5, VOCAB, (batch_size, seq_len)),
                                   0).astype("int32"),
        schema.SEGMENT_IDS: (np.arange(seq_len)[None, :] >= 3).astype("int32")
        * padding_mask,
        schema.PADDING_MASK: padding_mask,
    }


def test_outputs_shapes_and_padding_mask():
    keras.utils.set_random_seed(1)
    model = qa.ElectraForQuestionAnswering(encoder_config())
    inputs = batch()
    out = model(inputs)
    assert set(out) == {qa.START_LOGITS, qa.END_LOGITS}
    for logits in out.values():
        assert logits.shape == (3, 12) and logits.dtype == "float32"
        logits = np.asarray(logits)
        assert (logits[~inputs[schema.PADDING_MASK]] == qa.MASKED_LOGIT).all()
        assert (np.abs(logits[inputs[schema.PADDING_MASK]]) < 100).all()
    np.testing.assert_allclose(
        qa.null_scores(out), np.asarray(out[qa.START_LOGITS])[:, 0]
        + np.asarray(out[qa.END_LOGITS])[:, 0])
    # Padding does not change the real positions' logits.
    longer = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in inputs.items()}
    np.testing.assert_allclose(np.asarray(model(longer)[qa.START_LOGITS])[:, :12],
                               np.asarray(out[qa.START_LOGITS]), atol=1e-5)
    names = [v.path for v in model.trainable_variables]
    assert any("block_1" in n for n in names) and any("qa_outputs" in n for n in names)


def test_config_round_trip_and_saving(tmp_path):
    keras.utils.set_random_seed(2)
    model = qa.ElectraForQuestionAnswering(encoder_config(), initializer_range=0.05)
    inputs = batch()
    expected = model(inputs)
    clone = qa.ElectraForQuestionAnswering.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = str(tmp_path / "qa.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(restored(inputs)[qa.END_LOGITS]),
                               np.asarray(expected[qa.END_LOGITS]), atol=1e-6)


def test_span_loss_is_mean_of_start_and_end_cross_entropy():
    rng = np.random.default_rng(3)
    start, end = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    labels = {schema.START_POSITIONS: np.array([0, 2, 5, 1]),
              schema.END_POSITIONS: np.array([0, 3, 5, 4])}

    def cross_entropy(logits, positions):
        log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -log_softmax[np.arange(len(positions)), positions]

    expected = np.mean((cross_entropy(start, labels[schema.START_POSITIONS])
                        + cross_entropy(end, labels[schema.END_POSITIONS])) / 2)
    loss = qa.SpanLoss()(labels, {qa.START_LOGITS: start, qa.END_LOGITS: end})
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_fit_and_evaluate_report_the_span_loss():
    keras.utils.set_random_seed(4)
    model = qa.ElectraForQuestionAnswering(encoder_config())
    model.compile(keras.optimizers.Adam(1e-3), loss=qa.SpanLoss())
    inputs = batch(batch_size=4)
    labels = {schema.START_POSITIONS: np.array([3, 4, 0, 3]),
              schema.END_POSITIONS: np.array([3, 5, 0, 3])}
    before = model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"]
    expected = float(qa.SpanLoss()(labels, model(inputs)))
    assert before == pytest.approx(expected, rel=1e-5)
    model.fit(inputs, labels, epochs=20, batch_size=4, verbose=0)
    assert model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"] < before


def test_overfit_twenty_questions(tmp_path):
    """A hidden-32, 2-layer encoder from scratch learns 20 part-A questions (several
    windows each) to EM >= 0.9 through features, fit, predict and post-processing
    (EM 1.0 in ~10 s on one core; not marked slow)."""
    examples = squad.read_squad(str(shared_path("squad", "dev-v1.1-part-a.json")))
    texts = {e.context for e in examples[:60]} | {e.question for e in examples[:60]}
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
                     + "\n", encoding="utf-8")
    tokenizer = WordPieceTokenizer(str(vocab))
    window = dict(max_seq_length=128, max_query_length=32, doc_stride=48)
    # The first 20 questions whose first answer aligns (an unalignable one cannot be
    # learnt exactly).
    probe = squad.convert_to_features(examples[:60], tokenizer, training=True, **window)
    chosen = [e for e in examples[:60] if e.id not in probe.skipped_ids][:20]
    train = squad.convert_to_features(chosen, tokenizer, training=True, **window)
    evaluation = squad.convert_to_features(chosen, tokenizer, **window)
    assert len(evaluation) > len(chosen)  # several windows per question

    keras.utils.set_random_seed(0)
    model = qa.ElectraForQuestionAnswering(encoder_config(
        vocab_size=tokenizer.vocab_size, embedding_size=32, hidden_size=32,
        intermediate_size=64, max_position_embeddings=128))
    model.compile(keras.optimizers.Adam(3e-3), loss=qa.SpanLoss())
    model.fit(train.to_dataset(8, shuffle=True, seed=0), epochs=150, verbose=0)
    out = model.predict(evaluation.to_dataset(16, with_labels=False), verbose=0)
    predictions = squad_predictions.postprocess(evaluation, out[qa.START_LOGITS],
                                                out[qa.END_LOGITS])
    scores = squad_scores({e.id: [a.text for a in e.answers] for e in chosen},
                          predictions.answers)
    assert scores["exact_match"] >= 90.0, scores
