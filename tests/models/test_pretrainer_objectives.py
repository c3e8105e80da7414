"""The pretraining objectives' new parts: the temperature schedule, disallow_correct,
the RTD diagnostics in the logs (rtd_auc, rtd_prior_gap) and the MaskedLMPretrainer
control with its token_scores; get_config round trips of both pretrainers."""

import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.models.pretrainer import (
    ElectraPretrainer,
    MaskedLMPretrainer,
    corrupt,
    sample_from_logits,
    sampler_logits,
    span_offsets,
    temperature_at,
)
from electra_tf.models.losses import binary_entropy
from electra_tf.training.optimization import make_optimizer

from test_pretrainer import B, L, MASK_ID, P, VOCAB, encoder_config, make_batch

sklearn_metrics = pytest.importorskip("sklearn.metrics")

ENCODER_INPUTS = (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)


def as_tensors(batch):
    return {k: tf.constant(v) for k, v in batch.items()}


def compile_model(model, lr=3e-3):
    model.compile(optimizer=make_optimizer(lr, num_train_steps=1000, warmup_steps=0))
    return model


def fit_steps(model, batch, steps):
    """`steps` steps on the same batch, one epoch each: one log per step."""
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(ds, epochs=steps, steps_per_epoch=1, verbose=0).history


# === temperature_at ===


def temp(step, *args):
    value = temperature_at(step, *args)
    assert value.dtype == tf.float32 and value.shape == ()
    return float(value)


def test_constant_temperature_ignores_the_schedule_fields():
    for step in (0, 1, 50, 10**6):
        assert temp(step, 1.7) == pytest.approx(1.7)
        assert temp(step, 1.7, "constant", 0.5, 0, 10) == pytest.approx(1.7)


def test_linear_temperature():
    args = (2.0, "linear", 0.5, 10, 20)  # 2.0 until step 10, 0.5 from step 30
    expected = {0: 2.0, 5: 2.0, 10: 2.0, 15: 1.625, 20: 1.25, 25: 0.875, 30: 0.5,
                31: 0.5, 1000: 0.5}
    for step, value in expected.items():
        assert temp(step, *args) == pytest.approx(value, abs=1e-6), step
    # The optimizer's int64 step variable works as the step.
    assert temp(tf.Variable(20, dtype=tf.int64), *args) == pytest.approx(1.25, abs=1e-6)
    # Rising schedules too.
    assert temp(5, 1.0, "linear", 3.0, 0, 10) == pytest.approx(2.0, abs=1e-6)


def test_cosine_temperature():
    args = (2.0, "cosine", 0.5, 10, 20)
    for step in range(0, 41):
        p = min(max((step - 10) / 20, 0.0), 1.0)
        progress = 0.5 * (1 - math.cos(math.pi * p))
        assert temp(step, *args) == pytest.approx(2.0 - 1.5 * progress, abs=1e-6), step
    # Same ends and midpoint as linear.
    for step in (0, 10, 20, 30, 40):
        assert temp(step, *args) == pytest.approx(temp(step, 2.0, "linear", 0.5, 10, 20),
                                                  abs=1e-6)
    # A quarter of the way: progress 0.1464 (linear 0.25), so the temperature has
    # moved less (1.7803 against linear 1.625); three quarters: more.
    assert temp(15, *args) == pytest.approx(2.0 - 1.5 * (1 - math.sqrt(0.5)) / 2, abs=1e-6)
    assert temp(15, *args) == pytest.approx(1.780330, abs=1e-5)
    assert temp(15, *args) > temp(15, 2.0, "linear", 0.5, 10, 20)
    assert temp(25, *args) == pytest.approx(0.719670, abs=1e-5)
    assert temp(25, *args) < temp(25, 2.0, "linear", 0.5, 10, 20)
    # Rising: below linear in the first half.
    assert temp(3, 1.0, "cosine", 3.0, 0, 12) < temp(3, 1.0, "linear", 3.0, 0, 12) == 1.5


# === corrupt(disallow_correct) ===


def confident_batch(rows=32, seed=0):
    """A masked batch whose generator logits put almost all mass on the original."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, (rows, L)).astype("int32")
    positions = np.stack([rng.choice(np.arange(1, L - 1), P, replace=False)
                          for _ in range(rows)]).astype("int32")
    mask_ids = np.take_along_axis(ids, positions, axis=1)
    weights = np.ones((rows, P), "float32")
    weights[::3, -1] = 0.0  # padded prediction slots, pointing at position 0
    positions[::3, -1] = 0
    mask_ids[::3, -1] = 0
    masked = ids.copy()
    np.put_along_axis(masked, positions, MASK_ID, axis=1)
    masked[:, 0] = ids[:, 0]
    batch = {
        schema.TOKEN_IDS: masked,
        schema.SEGMENT_IDS: np.zeros_like(ids),
        schema.PADDING_MASK: np.ones(ids.shape, bool),
        schema.MASK_POSITIONS: positions,
        schema.MASK_IDS: mask_ids,
        schema.MASK_WEIGHTS: weights,
    }
    logits = 30.0 * tf.one_hot(mask_ids, VOCAB)
    return as_tensors(batch), logits, ids


def test_disallow_correct_replaces_every_masked_position():
    batch, logits, ids = confident_batch()
    uniform = tf.random.stateless_uniform([32, P], seed=[1, 2])
    real = batch[schema.MASK_WEIGHTS].numpy() > 0
    out = corrupt(batch, logits, 1.0, uniform, disallow_correct=True)
    sampled = out["sampled_ids"].numpy()
    mask_ids = batch[schema.MASK_IDS].numpy()
    assert (sampled[real] != mask_ids[real]).all()
    np.testing.assert_array_equal(out["original_ids"].numpy(), ids)
    labels = out["rtd_labels"].numpy()
    assert labels.sum() == real.sum()
    positions = batch[schema.MASK_POSITIONS].numpy()
    np.testing.assert_array_equal(np.take_along_axis(labels, positions, axis=1)[real], 1.0)
    # The rest of the vocabulary is equally likely: the samples spread over it.
    assert len(np.unique(sampled[real])) > 30
    # The padded slots (pointing at [CLS]'s position 0) changed nothing.
    np.testing.assert_array_equal(out["corrupted_ids"].numpy()[:, 0], ids[:, 0])

    # Allowed, the generator's confident guess is the original: nothing is replaced.
    out = corrupt(batch, logits, 1.0, uniform, disallow_correct=False)
    np.testing.assert_array_equal(out["sampled_ids"].numpy()[real], mask_ids[real])
    assert out["rtd_labels"].numpy().sum() == 0
    np.testing.assert_array_equal(out["corrupted_ids"].numpy(), ids)


def test_disallow_correct_with_a_hot_temperature_and_a_pretrainer():
    # A temperature tensor, as the schedule gives.
    batch, logits, _ = confident_batch(seed=1)
    uniform = tf.random.stateless_uniform([32, P], seed=[3, 4])
    out = corrupt(batch, logits, tf.constant(4.0), uniform, disallow_correct=True)
    real = batch[schema.MASK_WEIGHTS].numpy() > 0
    assert (out["sampled_ids"].numpy()[real] != batch[schema.MASK_IDS].numpy()[real]).all()
    # Through the model: every masked position is labelled replaced.
    model = ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), seed=0,
                              disallow_correct=True)
    data, _ = make_batch()
    outputs = model(data)
    weights = data[schema.MASK_WEIGHTS] > 0
    labels = np.take_along_axis(outputs["rtd_labels"].numpy(), data[schema.MASK_POSITIONS],
                                axis=1)
    np.testing.assert_array_equal(labels[weights], 1.0)
    assert outputs["rtd_labels"].numpy().sum() == weights.sum()


# === sampler_logits(top_k), span_offsets and sampling passes ===


def test_top_k_samples_only_the_k_most_probable_ids():
    rng = np.random.default_rng(5)
    logits = tf.constant(rng.normal(size=(6, 4, VOCAB)), tf.float32)
    original = tf.constant(rng.integers(5, VOCAB, (6, 4)), tf.int32)
    uniform = tf.random.stateless_uniform([6, 4 * 200], seed=[7, 8])
    for disallow in (False, True):
        kept = sampler_logits(logits, original, disallow_correct=disallow, top_k=5)
        scored = logits.numpy() - 1000.0 * tf.one_hot(original, VOCAB).numpy() * disallow
        allowed = np.argsort(-scored, axis=-1)[..., :5]
        # A temperature far above 1 flattens the k ids and leaves the rest at ~0.
        probs = tf.nn.softmax(kept / 50.0).numpy()
        np.testing.assert_allclose(np.take_along_axis(probs, allowed, -1).sum(-1), 1.0,
                                   atol=1e-6)
        assert np.take_along_axis(probs, allowed, -1).min() > 0.19
        # 200 draws per slot at that temperature: every one of the k ids, nothing else.
        repeated = tf.repeat(kept, 200, axis=1)
        samples = sample_from_logits(repeated, 50.0, uniform).numpy().reshape(6, 4, 200)
        for row in range(6):
            for slot in range(4):
                assert set(samples[row, slot]) <= set(allowed[row, slot])
                assert len(set(samples[row, slot])) == 5
        if disallow:
            assert (samples != original.numpy()[..., None]).all()
    # 0 keeps every id, and a k beyond the vocabulary keeps every id too.
    np.testing.assert_array_equal(sampler_logits(logits, original).numpy(), logits.numpy())
    np.testing.assert_array_equal(sampler_logits(logits, original, top_k=VOCAB + 9).numpy(),
                                  logits.numpy())


def test_span_offsets_count_the_masked_positions_just_before_each_slot():
    positions = tf.constant([[2, 3, 4, 7, 0], [1, 5, 6, 8, 9], [3, 4, 5, 6, 10]])
    weights = tf.constant([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], tf.float32)
    np.testing.assert_array_equal(span_offsets(positions, weights, 12, 3).numpy(),
                                  [[0, 1, 2, 0, 0], [0, 0, 1, 0, 1], [0, 1, 2, 3, 0]])
    # Capped: the fourth position of a run counts as the cap.
    np.testing.assert_array_equal(span_offsets(positions, weights, 12, 2).numpy()[2],
                                  [0, 1, 2, 2, 0])
    np.testing.assert_array_equal(span_offsets(positions, weights, 12, 0).numpy(), 0)
    # A padded slot (weight 0) is no masked neighbour: position 0 here is not masked.
    np.testing.assert_array_equal(
        span_offsets(tf.constant([[0, 1]]), tf.constant([[0.0, 1.0]]), 4, 3).numpy(), [[0, 0]])


class _NextIdGenerator:
    """A stand-in generator that is sure each masked position holds the id to its
    left plus one ([MASK]'s neighbour gives MASK_ID + 1)."""

    def __call__(self, inputs, training=None):
        ids = tf.cast(inputs[schema.TOKEN_IDS], tf.int32)
        left = tf.gather(ids, tf.maximum(inputs[schema.MASK_POSITIONS] - 1, 0), batch_dims=1)
        return 100.0 * tf.one_hot((left + 1) % VOCAB, VOCAB)


def sample_with_passes(batch, passes):
    sampler = types.SimpleNamespace(
        generator=_NextIdGenerator(), sampling_passes=passes, disallow_correct=False,
        sampling_top_k=0, flatten_toward="uniform", current_temperature=lambda: tf.constant(1.0))
    logits = sampler.generator(batch)
    uniform = tf.random.stateless_uniform([batch[schema.TOKEN_IDS].shape[0], P * passes],
                                          seed=[1, 1])
    return ElectraPretrainer._sample(sampler, batch, logits, uniform, training=False).numpy()


def test_sampling_passes_fill_each_run_of_masked_positions_left_to_right():
    batch, original = make_batch()  # positions 1..3 masked; row 0's third slot padded
    data = as_tensors(batch)
    cls = original[:, 0]
    # One pass: a position after a [MASK] is drawn as if its neighbour were [MASK].
    np.testing.assert_array_equal(sample_with_passes(data, 1)[1:],
                                  np.stack([cls[1:] + 1] + [np.full(B - 1, MASK_ID + 1)] * 2, 1))
    # Three passes: each position sees the samples before it, as a speller would.
    three = sample_with_passes(data, 3)
    np.testing.assert_array_equal(three[1:], np.stack([cls[1:] + k for k in (1, 2, 3)], 1))
    # Two passes: the second and third positions both read the first's sample only.
    two = sample_with_passes(data, 2)
    np.testing.assert_array_equal(two[1:], np.stack(
        [cls[1:] + 1, cls[1:] + 2, np.full(B - 1, MASK_ID + 1)], 1))
    # Row 0's third slot is padded (its position 3 holds the original): a run of two.
    np.testing.assert_array_equal(three[0, :2], [cls[0] + 1, cls[0] + 2])


def test_flattening_toward_the_unigram_samples_p_to_the_1_over_t_times_u_to_the_rest():
    rng = np.random.default_rng(3)
    rows, temperature = 2000, 2.5
    logits = rng.normal(size=(VOCAB,)) * 2.0
    counts = rng.integers(0, 500, VOCAB)
    model = ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), seed=0,
                              temperature=temperature, flatten_toward="unigram")
    model.set_unigram_counts(counts)
    prior = np.log((counts + 0.5) / (counts + 0.5).sum())
    np.testing.assert_allclose(model.unigram_log_prior.numpy(), prior, rtol=1e-5)
    # One slot of one row repeated: the empirical distribution of many draws.
    batch = {schema.MASK_IDS: tf.zeros([rows, 1], tf.int32)}
    uniform = tf.random.stateless_uniform([rows, 1], seed=[5, 6])
    drawn = model._sample(batch, tf.constant(np.tile(logits, (rows, 1, 1)), tf.float32),
                          uniform, training=False).numpy().ravel()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    u = np.exp(prior)
    want = p ** (1 / temperature) * u ** (1 - 1 / temperature)
    want /= want.sum()
    # The draws invert the CDF of `want` at each uniform.
    expected = np.searchsorted(np.cumsum(want), uniform.numpy().ravel(), side="right")
    assert (drawn == np.minimum(expected, VOCAB - 1)).mean() > 0.995
    # At temperature 1 the prior cancels: the paper's sampler.
    model.temperature = 1.0
    at_one = model._sample(batch, tf.constant(np.tile(logits, (rows, 1, 1)), tf.float32),
                           uniform, training=False).numpy().ravel()
    np.testing.assert_array_equal(
        at_one, sample_from_logits(tf.constant(np.tile(logits, (rows, 1, 1)), tf.float32),
                                   1.0, uniform).numpy().ravel())
    with pytest.raises(ValueError, match="flatten_toward must be 'uniform' or 'unigram'"):
        ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), flatten_toward="zipf")


def test_sampling_options_are_validated_and_run_in_the_pretrainer():
    with pytest.raises(ValueError, match="sampling_top_k must be >= 0 and sampling_passes >= 1"):
        ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), sampling_passes=0)
    model = compile_model(ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), seed=2,
                                            sampling_passes=3, sampling_top_k=4))
    batch, _ = make_batch()
    data = as_tensors(batch)
    # One uniform per prediction slot and pass.
    assert model._step_uniform(data).shape == (B, P * 3)
    outputs = model._forward(data, model._step_uniform(data), training=False)
    assert outputs["sampled_ids"].shape == (B, P)
    assert outputs["mlm_logits"].shape == (B, P, VOCAB)
    history = fit_steps(model, batch, 2)
    assert np.isfinite(history["loss"]).all()


# === The temperature schedule in ElectraPretrainer ===


def scheduled_pretrainer(**kwargs):
    return ElectraPretrainer(
        encoder_config(8, 1), encoder_config(16, 2), seed=3, temperature=3.0,
        temperature_schedule="linear", temperature_end=1.0, temperature_decay_start=1,
        temperature_decay_steps=4, **kwargs)


def test_current_temperature_follows_the_optimizer_step():
    model = scheduled_pretrainer()
    assert float(model.current_temperature()) == pytest.approx(3.0)  # not compiled yet
    compile_model(model)
    assert float(model.current_temperature()) == pytest.approx(3.0)
    for step, value in ((1, 3.0), (2, 2.5), (3, 2.0), (5, 1.0), (40, 1.0)):
        model.optimizer.iterations.assign(step)
        assert float(model.current_temperature()) == pytest.approx(value, abs=1e-6)


@pytest.fixture(scope="module")
def scheduled_run():
    """A fresh scheduled pretrainer: the forward pass its first step will take,
    recomputed before it; then 3 steps on one batch, one log each; then evaluate."""
    keras.utils.set_random_seed(1)
    model = compile_model(scheduled_pretrainer())
    batch, _ = make_batch()
    data = as_tensors(batch)
    # The step's sampling noise is drawn from (seed, step 0); dropout is 0, so the
    # training pass is this one.
    outputs = model._forward(data, model._step_uniform(data), training=False)
    real = batch[schema.PADDING_MASK]
    labels = outputs["rtd_labels"].numpy()[real]
    logits = outputs["rtd_logits"].numpy()[real].astype(np.float64)
    first_step = {
        "replaced_fraction": labels.mean(),
        "rtd_loss": np.mean(np.logaddexp(0.0, logits) - labels * logits),
        "rtd_auc": sklearn_metrics.roc_auc_score(labels, logits),
    }
    history = fit_steps(model, batch, 3)
    evaluated = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0,
                               return_dict=True)
    return model, first_step, history, evaluated


def test_fit_logs_the_temperature_and_the_diagnostics(scheduled_run):
    model, _, history, _ = scheduled_run
    assert int(model.optimizer.iterations) == 3
    assert float(model.current_temperature()) == pytest.approx(2.0, abs=1e-6)
    # Like learning_rate, the logged value is read after the step's update: the
    # temperature of the next step, temperature_at(1..3).
    np.testing.assert_allclose(history["temperature"], [3.0, 2.5, 2.0], atol=1e-6)
    assert set(history) >= {"temperature", "rtd_auc", "rtd_prior_gap", "replaced_fraction",
                            "rtd_loss", "mlm_loss", "learning_rate"}
    for name in ("rtd_auc", "rtd_prior_gap"):
        assert np.isfinite(history[name]).all(), name
    assert all(0.0 <= v <= 1.0 for v in history["rtd_auc"])
    for step in range(3):
        entropy = float(binary_entropy(history["replaced_fraction"][step]))
        assert history["rtd_prior_gap"][step] == pytest.approx(
            entropy - history["rtd_loss"][step], abs=1e-5)


def test_one_step_logs_match_a_recomputed_forward_pass(scheduled_run):
    """One step, one log: replaced_fraction, rtd_loss, rtd_auc and rtd_prior_gap are the
    values of the step's own forward pass (before its update)."""
    _, expected, history, _ = scheduled_run
    logs = {k: v[0] for k, v in history.items()}
    replaced = expected["replaced_fraction"]
    assert 0 < replaced < 1
    assert logs["replaced_fraction"] == pytest.approx(replaced, abs=1e-6)
    assert logs["rtd_loss"] == pytest.approx(expected["rtd_loss"], abs=1e-5)
    assert logs["rtd_auc"] == pytest.approx(expected["rtd_auc"], abs=1e-5)
    entropy = float(binary_entropy(logs["replaced_fraction"]))
    assert entropy == pytest.approx(-(replaced * np.log(replaced)
                                      + (1 - replaced) * np.log(1 - replaced)), abs=1e-6)
    assert logs["rtd_prior_gap"] == pytest.approx(entropy - logs["rtd_loss"], abs=1e-5)


def test_evaluate_reports_the_diagnostics_too(scheduled_run):
    *_, result = scheduled_run
    assert result["rtd_prior_gap"] == pytest.approx(
        float(binary_entropy(result["replaced_fraction"])) - result["rtd_loss"], abs=1e-5)
    assert 0.0 <= result["rtd_auc"] <= 1.0


# === MaskedLMPretrainer ===


def masked_lm(seed=0):
    keras.utils.set_random_seed(seed)
    return MaskedLMPretrainer(encoder_config(16, 2), seed=seed)


@pytest.fixture(scope="module")
def trained_masked_lm():
    """A masked LM before and after 20 steps on one batch."""
    model = compile_model(masked_lm(), lr=5e-3)
    batch, _ = make_batch()
    ds = tf.data.Dataset.from_tensors(batch)
    before = model.evaluate(ds, verbose=0, return_dict=True)
    history = model.fit(ds.repeat(), epochs=1, steps_per_epoch=20, verbose=0).history
    after = model.evaluate(ds, verbose=0, return_dict=True)
    return model, before, history, after


def test_masked_lm_learns_and_logs_no_rtd_metrics(trained_masked_lm):
    model, before, history, after = trained_masked_lm
    assert set(history) == {"loss", "mlm_loss", "mlm_accuracy", "learning_rate"}
    assert set(before) == set(after) == {"loss", "mlm_loss", "mlm_accuracy"}
    assert np.isfinite(history["loss"]).all()
    assert int(model.optimizer.iterations) == 20
    # The only loss, with weight 1.
    assert history["loss"] == pytest.approx(history["mlm_loss"], rel=1e-6)
    assert after["loss"] == pytest.approx(after["mlm_loss"], rel=1e-6)
    assert before["mlm_loss"] == pytest.approx(math.log(VOCAB), rel=0.2)  # about uniform
    assert after["mlm_loss"] < 0.8 * before["mlm_loss"]
    assert after["mlm_accuracy"] > before["mlm_accuracy"]
    assert not hasattr(model, "generator") and not hasattr(model, "discriminator")


def reference_surprisal(model, batch, mask_id, num_passes):
    """-log p(token_i) with position i masked together with every position j such that
    j % num_passes == i % num_passes; logits at all positions from one masked_lm call
    per pass."""
    ids = batch[schema.TOKEN_IDS]
    rows, seq_len = ids.shape
    scores = np.zeros(ids.shape, np.float32)
    all_positions = np.tile(np.arange(seq_len, dtype=np.int32), (rows, 1))
    for k in range(min(num_passes, seq_len)):
        masked = np.arange(seq_len) % num_passes == k
        logits = model.masked_lm({
            schema.TOKEN_IDS: tf.constant(np.where(masked, mask_id, ids)),
            schema.SEGMENT_IDS: tf.constant(batch[schema.SEGMENT_IDS]),
            schema.PADDING_MASK: tf.constant(batch[schema.PADDING_MASK]),
            schema.MASK_POSITIONS: tf.constant(all_positions),
        }, training=False).numpy().astype(np.float64)
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        surprisal = -np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
        scores[:, masked] = surprisal[:, masked]
    return scores


@pytest.mark.parametrize("num_passes", [1, 5, 8, 12, 20])
def test_masked_lm_token_scores_are_masked_surprisals(trained_masked_lm, num_passes):
    model = trained_masked_lm[0]  # trained: far from uniform
    _, original = make_batch()
    batch = {schema.TOKEN_IDS: original, schema.SEGMENT_IDS: np.zeros_like(original),
             schema.PADDING_MASK: original != 0}
    kwargs = {} if num_passes == 8 else {"num_passes": num_passes}
    scores = model.token_scores(as_tensors(batch), mask_id=MASK_ID, **kwargs).numpy()
    assert scores.shape == (B, L) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and (scores > 0).all()
    expected = reference_surprisal(model, batch, MASK_ID, num_passes)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_masked_lm_token_scores_do_not_see_the_scored_token(trained_masked_lm):
    """With one pass per position, changing token i changes every score but score i's
    context; score i then is the surprisal of the new token in the same context."""
    model = trained_masked_lm[0]
    _, original = make_batch()
    batch = {schema.TOKEN_IDS: original, schema.SEGMENT_IDS: np.zeros_like(original),
             schema.PADDING_MASK: original != 0}
    scores = model.token_scores(as_tensors(batch), MASK_ID, num_passes=L).numpy()
    changed = original.copy()
    changed[:, 5] = np.where(original[:, 5] == 7, 8, 7)
    new_scores = model.token_scores(
        as_tensors({**batch, schema.TOKEN_IDS: changed}), MASK_ID, num_passes=L).numpy()
    # Position 5's context is the same, so its distribution is the same: the two
    # surprisals differ by the log-ratio of the two tokens' probabilities there.
    logits = model.masked_lm({
        schema.TOKEN_IDS: tf.constant(np.where(np.arange(L) == 5, MASK_ID, original)),
        schema.SEGMENT_IDS: tf.constant(batch[schema.SEGMENT_IDS]),
        schema.PADDING_MASK: tf.constant(batch[schema.PADDING_MASK]),
        schema.MASK_POSITIONS: tf.fill([B, 1], 5),
    }, training=False).numpy()[:, 0].astype(np.float64)
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    rows = np.arange(B)
    np.testing.assert_allclose(scores[:, 5], -log_probs[rows, original[:, 5]], rtol=1e-4)
    np.testing.assert_allclose(new_scores[:, 5], -log_probs[rows, changed[:, 5]], rtol=1e-4)


# === get_config round trips ===


def test_electra_pretrainer_config_round_trip():
    keras.utils.set_random_seed(3)
    model = ElectraPretrainer(
        encoder_config(8, 1), encoder_config(16, 2), temperature=2.5,
        temperature_schedule="cosine", temperature_end=0.8, temperature_decay_start=3,
        temperature_decay_steps=9, disallow_correct=True, generator_weight=0.5,
        discriminator_weight=20.0, seed=11, grad_accum_steps=2, sampling_top_k=6,
        sampling_passes=2, flatten_toward="unigram")
    config = model.get_config()
    for key, value in {"temperature": 2.5, "temperature_schedule": "cosine",
                       "temperature_end": 0.8, "temperature_decay_start": 3,
                       "temperature_decay_steps": 9, "disallow_correct": True,
                       "generator_weight": 0.5, "discriminator_weight": 20.0, "seed": 11,
                       "grad_accum_steps": 2, "sampling_top_k": 6,
                       "sampling_passes": 2, "flatten_toward": "unigram"}.items():
        assert config[key] == value, key
    assert config["generator_config"] == encoder_config(8, 1)
    assert config["discriminator_config"] == encoder_config(16, 2)
    clone = ElectraPretrainer.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, ElectraPretrainer) and restored.get_config() == config
    assert float(clone.current_temperature()) == pytest.approx(2.5)
    assert temp(7, *[config[k] for k in ("temperature", "temperature_schedule",
                                         "temperature_end", "temperature_decay_start",
                                         "temperature_decay_steps")]) == pytest.approx(
        2.5 + (0.8 - 2.5) * 0.5 * (1 - math.cos(math.pi * 4 / 9)), abs=1e-6)
    # An equivalent model: same variables; with the same weights, the same outputs.
    batch, _ = make_batch()
    uniform = tf.random.stateless_uniform([B, 2 * P], seed=[0, 1])
    model._forward(as_tensors(batch), uniform, training=False)
    clone._forward(as_tensors(batch), uniform, training=False)
    assert [v.shape for v in clone.weights] == [v.shape for v in model.weights]
    clone.set_weights(model.get_weights())
    a = model._forward(as_tensors(batch), uniform, training=False)
    b = clone._forward(as_tensors(batch), uniform, training=False)
    for name in ("mlm_logits", "rtd_logits", "corrupted_ids"):
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-6, atol=1e-6)


def test_masked_lm_pretrainer_config_round_trip():
    keras.utils.set_random_seed(4)
    model = MaskedLMPretrainer(encoder_config(16, 2), seed=9, grad_accum_steps=2)
    config = model.get_config()
    assert config["encoder_config"] == encoder_config(16, 2)
    assert (config["seed"], config["grad_accum_steps"]) == (9, 2)
    clone = MaskedLMPretrainer.from_config(config)
    assert clone.get_config() == config
    assert clone.grad_accum_steps == 2 and clone.seed == 9
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(restored, MaskedLMPretrainer) and restored.get_config() == config
    batch, original = make_batch()
    model(batch)
    clone(batch)
    assert [v.shape for v in clone.weights] == [v.shape for v in model.weights]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(model(batch)["mlm_logits"].numpy(),
                               clone(batch)["mlm_logits"].numpy(), rtol=1e-6, atol=1e-6)
    inputs = as_tensors({schema.TOKEN_IDS: original,
                         schema.SEGMENT_IDS: np.zeros_like(original),
                         schema.PADDING_MASK: original != 0})
    np.testing.assert_allclose(model.token_scores(inputs, MASK_ID).numpy(),
                               clone.token_scores(inputs, MASK_ID).numpy(), rtol=1e-6)


@pytest.mark.parametrize("args, message", [
    ((2.0, "cosin", 1.0, 0, 10), "unknown temperature_schedule"),
    ((2.0, "linear", 1.0, 1, 0), "temperature_decay_steps > 0"),
])
def test_temperature_at_rejects_bad_schedules(args, message):
    with pytest.raises(ValueError, match=message):
        temperature_at(1, *args)
