"""ElectraPretrainer: the pure functions, variable sharing, the objective, fit and artifacts."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from electra_tf import schema
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import (
    ElectraPretrainer,
    replaced_token_labels,
    sample_from_logits,
    scatter_at_positions,
)
from electra_tf.training.optimization import make_optimizer
from electra_tf.models.steps import split_rows as split_batch

VOCAB, L, P, B = 50, 12, 3, 4
MASK_ID, CLS_ID, SEP_ID = 4, 2, 3


def encoder_config(hidden, heads, embedding=8, dropout=0.0):
    return dict(
        vocab_size=VOCAB, embedding_size=embedding, hidden_size=hidden, num_layers=2,
        num_heads=heads, intermediate_size=2 * hidden, dropout_rate=dropout,
        attention_dropout_rate=dropout, max_position_embeddings=32,
    )


def make_pretrainer(seed=1, dropout=0.0):
    return ElectraPretrainer(
        generator_config=encoder_config(8, 1, dropout=dropout),
        discriminator_config=encoder_config(16, 2, dropout=dropout),
        seed=seed,
    )


def make_batch(seed=0):
    """A masked batch as the input pipeline makes it: positions 1..3 masked."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, VOCAB, (B, L)).astype("int32")
    ids[:, 0] = CLS_ID
    ids[:, -1] = SEP_ID
    ids[-1, 8:] = 0  # one padded sequence
    ids[-1, 7] = SEP_ID
    positions = np.tile(np.arange(1, P + 1, dtype="int32"), (B, 1))
    mask_ids = np.take_along_axis(ids, positions, axis=1)
    masked = ids.copy()
    np.put_along_axis(masked, positions, MASK_ID, axis=1)
    weights = np.ones((B, P), "float32")
    weights[0, 2] = 0.0  # a padded prediction slot
    positions[0, 2] = 0
    mask_ids[0, 2] = 0
    masked[0, 3] = ids[0, 3]
    return {
        schema.TOKEN_IDS: masked,
        schema.SEGMENT_IDS: np.zeros((B, L), "int32"),
        schema.PADDING_MASK: ids != 0,
        schema.MASK_POSITIONS: positions,
        schema.MASK_IDS: mask_ids,
        schema.MASK_WEIGHTS: weights,
    }, ids


def test_scatter_restores_originals_and_ignores_padded_slots():
    batch, original = make_batch()
    restored = scatter_at_positions(
        tf.constant(batch[schema.TOKEN_IDS]), tf.constant(batch[schema.MASK_POSITIONS]),
        tf.constant(batch[schema.MASK_IDS]), tf.constant(batch[schema.MASK_WEIGHTS]),
    )
    np.testing.assert_array_equal(restored.numpy(), original)
    # The padded slot of row 0 points at position 0 ([CLS]) and must leave it alone.
    assert restored.numpy()[0, 0] == CLS_ID


def test_labels_sample_equal_to_original_is_original():
    original = tf.constant([[2, 10, 11, 12, 3, 0]])
    # Position 1 sampled the original id back; position 2 was really replaced.
    corrupted = tf.constant([[2, 10, 30, 12, 3, 0]])
    padding = tf.constant([[True] * 5 + [False]])
    labels = replaced_token_labels(corrupted, original, padding).numpy()
    np.testing.assert_array_equal(labels, [[0, 0, 1, 0, 0, 0]])
    # Padding is never "replaced", even if the ids differ there.
    labels = replaced_token_labels(corrupted + 1, original, padding).numpy()
    np.testing.assert_array_equal(labels, [[1, 1, 1, 1, 1, 0]])


def test_sampling_follows_the_softmax():
    logits = tf.math.log(tf.constant([[[0.7, 0.2, 0.1]]]))
    logits = tf.tile(logits, [1, 20000, 1])
    uniform = tf.random.stateless_uniform([1, 20000], seed=[3, 4])
    samples = sample_from_logits(logits, 1.0, uniform).numpy().ravel()
    freq = np.bincount(samples, minlength=3) / samples.size
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.015)
    # A low temperature concentrates on the argmax.
    cold = sample_from_logits(logits, 0.05, uniform).numpy()
    assert (cold == 0).mean() > 0.999


def test_sampling_inverts_the_cdf_exactly_at_interval_ends():
    probs = np.array([0.25, 0.0, 0.5, 0.25, 0.0], np.float32)
    logits = tf.constant(np.log(np.maximum(probs, 1e-45))[None, None, :])
    # The CDF is [.25, .25, .75, 1, 1]: id 1 and id 4 have empty intervals.
    uniform = [0.0, 0.2499, 0.25, 0.7499, 0.75, 0.9999999]
    drawn = [int(sample_from_logits(logits, 1.0, tf.constant([[u]]))[0, 0]) for u in uniform]
    assert drawn == [0, 0, 2, 2, 3, 3]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_sampling_is_sound_for_extreme_and_low_precision_logits(dtype):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 100)).astype("float32") * 30.0
    logits[:, :, 7] = 60000.0 if dtype == "float16" else 1e30
    uniform = tf.random.stateless_uniform([4, 5], seed=[1, 2], maxval=1.0)
    drawn = sample_from_logits(tf.cast(logits, dtype), 1.0, uniform).numpy()
    # The huge logit takes all the mass; no overflow to NaN sends a sample elsewhere.
    np.testing.assert_array_equal(drawn, 7)
    edge = sample_from_logits(tf.cast(logits, dtype), 1.0, tf.fill([4, 5], 1.0 - 2**-24))
    np.testing.assert_array_equal(edge.numpy(), 7)


def test_sampling_does_not_depend_on_how_rows_are_split():
    logits = tf.random.stateless_normal([6, 3, 40], seed=[5, 6])
    uniform = tf.random.stateless_uniform([6, 3], seed=[7, 8])
    whole = sample_from_logits(logits, 1.0, uniform).numpy()
    halves = [sample_from_logits(logits[i:i + 3], 1.0, uniform[i:i + 3]).numpy() for i in (0, 3)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)


def test_generator_and_discriminator_share_embedding_variables():
    model = make_pretrainer()
    batch, _ = make_batch()
    model(batch)
    disc_emb = model.discriminator.embeddings
    assert model.generator.encoder.embeddings is disc_emb
    gen_ids = {id(v) for v in model.generator.trainable_variables}
    disc_ids = {id(v) for v in model.discriminator.trainable_variables}
    shared = gen_ids & disc_ids
    emb_ids = {id(v) for v in disc_emb.trainable_variables}
    # token, position, segment tables + LayerNorm gamma/beta, and nothing else.
    assert shared == emb_ids and len(emb_ids) == 5
    all_ids = [id(v) for v in model.trainable_variables]
    assert len(all_ids) == len(set(all_ids)) == len(gen_ids) + len(disc_ids) - 5


def test_forward_shapes_and_labels_match_the_sampled_ids():
    model = make_pretrainer()
    batch, original = make_batch()
    out = model(batch)
    assert out["mlm_logits"].shape == (B, P, VOCAB)
    assert out["rtd_logits"].shape == (B, L)
    assert out["mlm_logits"].dtype == tf.float32 and out["rtd_logits"].dtype == tf.float32
    np.testing.assert_array_equal(out["original_ids"].numpy(), original)
    corrupted = out["corrupted_ids"].numpy()
    sampled = out["sampled_ids"].numpy()
    labels = out["rtd_labels"].numpy()
    for b in range(B):
        for j in range(P):
            if batch[schema.MASK_WEIGHTS][b, j] > 0:
                pos = batch[schema.MASK_POSITIONS][b, j]
                assert corrupted[b, pos] == sampled[b, j]
                assert labels[b, pos] == float(sampled[b, j] != original[b, pos])
    # Outside the masked positions the discriminator sees the original text.
    masked_positions = np.zeros((B, L), bool)
    for b in range(B):
        for j in range(P):
            if batch[schema.MASK_WEIGHTS][b, j] > 0:
                masked_positions[b, batch[schema.MASK_POSITIONS][b, j]] = True
    np.testing.assert_array_equal(corrupted[~masked_positions], original[~masked_positions])
    assert labels[~masked_positions].sum() == 0


def fit(model, batch, steps, lr=3e-3):
    model.compile(optimizer=make_optimizer(lr, num_train_steps=1000, warmup_steps=0))
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0).history


def test_overfits_one_batch():
    keras.utils.set_random_seed(0)
    model = make_pretrainer()
    batch, _ = make_batch()
    model.compile(optimizer=make_optimizer(3e-3, num_train_steps=1000, warmup_steps=0))
    before = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    history = fit(model, batch, 80)
    after = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert np.isfinite(history["loss"]).all()
    assert after["mlm_loss"] < 0.65 * before["mlm_loss"]
    assert after["rtd_loss"] < 0.65 * before["rtd_loss"]
    assert after["loss"] < before["loss"]
    assert set(history) >= {"loss", "mlm_loss", "mlm_accuracy", "rtd_loss", "rtd_accuracy",
                            "rtd_precision", "rtd_recall", "replaced_fraction", "learning_rate"}


def test_same_seed_gives_identical_weights():
    def train():
        keras.utils.set_random_seed(7)
        model = make_pretrainer(seed=5, dropout=0.1)
        batch, _ = make_batch()
        fit(model, batch, 5)
        return [v.numpy() for v in model.trainable_variables]

    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["discriminator", "generator"])
def test_artifact_round_trip(tmp_path, tiny_vocab, kind):
    from electra_tf import config as config_lib

    keras.utils.set_random_seed(0)
    model = make_pretrainer()
    batch, _ = make_batch()
    model(batch)
    sub = getattr(model, kind)
    cfg = config_lib.ElectraConfig()
    artifacts.save_artifact(sub, str(tmp_path / kind), cfg, tiny_vocab, step=3)
    loaded, loaded_cfg, vocab, meta = artifacts.load_artifact(str(tmp_path / kind), kind)
    assert meta["step"] == 3 and loaded_cfg == cfg
    assert open(vocab).read() == open(tiny_vocab).read()
    inputs = {k: v for k, v in batch.items() if k in (
        schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK, schema.MASK_POSITIONS)}
    if kind == "discriminator":
        inputs.pop(schema.MASK_POSITIONS)
    np.testing.assert_allclose(loaded(inputs).numpy(), sub(inputs).numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not a"):
        artifacts.load_artifact(str(tmp_path / kind),
                                "generator" if kind == "discriminator" else "discriminator")


def test_split_batch_keeps_rows_in_order():
    batch, _ = make_batch()
    parts = split_batch({k: tf.constant(v) for k, v in batch.items()}, 2)
    assert len(parts) == 2 and set(parts[0]) == set(batch)
    for name, value in batch.items():
        np.testing.assert_array_equal(
            np.concatenate([p[name].numpy() for p in parts]), value)
        assert parts[0][name].shape[0] == B // 2
    assert split_batch(batch, 1) == [batch]


def test_grad_accum_steps_is_validated_and_serialized():
    with pytest.raises(ValueError, match="grad_accum_steps must be >= 1, got 0"):
        ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), grad_accum_steps=0)
    model = ElectraPretrainer(encoder_config(8, 1), encoder_config(16, 2), seed=3,
                              grad_accum_steps=4)
    config = model.get_config()
    assert config["grad_accum_steps"] == 4 and config["seed"] == 3
    assert ElectraPretrainer.from_config(config).grad_accum_steps == 4
