"""ElectraEmbeddings / TransformerBlock / ElectraEncoder: shapes, sharing, masking, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.models import ElectraEmbeddings, ElectraEncoder, attention_bias

VOCAB, SEQ = 100, 16
# The encoder fields of the experiment config (config.EncoderConfig), tiny sizes.
ENCODER_FIELDS = dict(
    vocab_size=VOCAB,
    embedding_size=16,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    intermediate_size=32,
    hidden_activation="gelu",
    dropout_rate=0.1,
    attention_dropout_rate=0.1,
    max_position_embeddings=32,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_epsilon=1e-12,
)


def make_encoder(**overrides):
    return ElectraEncoder(**{**ENCODER_FIELDS, **overrides})


def make_batch(lengths=(16, 11, 4), seed=0):
    rng = np.random.default_rng(seed)
    padding_mask = np.arange(SEQ)[None, :] < np.array(lengths)[:, None]
    token_ids = np.where(padding_mask, rng.integers(5, VOCAB, (len(lengths), SEQ)), 0)
    segment_ids = (np.arange(SEQ)[None, :] >= np.array(lengths)[:, None] // 2) & padding_mask
    return {
        schema.TOKEN_IDS: token_ids.astype("int32"),
        schema.SEGMENT_IDS: segment_ids.astype("int32"),
        schema.PADDING_MASK: padding_mask,
    }


class Pair(keras.Model):
    """Holds a generator and a discriminator encoder, as the pretrainer does."""

    def __init__(self, gen, disc):
        super().__init__()
        self.gen, self.disc = gen, disc

    def call(self, inputs):
        return self.gen(inputs), self.disc(inputs)


def unique_variables(layer):
    return {id(v) for v in layer.weights}


def test_output_shape_and_dtype():
    encoder = make_encoder(hidden_size=24, embedding_size=8)
    out = encoder(make_batch())
    assert out.shape == (3, SEQ, 24)
    assert out.dtype == "float32"
    assert encoder.compute_output_shape({schema.TOKEN_IDS: (3, SEQ)}) == (3, SEQ, 24)


def test_embeddings_output_is_layer_normalised():
    emb = ElectraEmbeddings(VOCAB, 16, max_position_embeddings=32)
    batch = make_batch()
    out = emb(batch[schema.TOKEN_IDS], batch[schema.SEGMENT_IDS]).numpy()
    assert out.shape == (3, SEQ, 16)
    # gamma 1, beta 0 at init: every vector has mean 0 and variance 1.
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var(-1), 1.0, atol=1e-3)


def test_embeddings_sum_token_position_segment():
    emb = ElectraEmbeddings(VOCAB, 16, max_position_embeddings=32, dropout_rate=0.0)
    batch = make_batch()
    ids, seg = batch[schema.TOKEN_IDS], batch[schema.SEGMENT_IDS]
    out = emb(ids, seg).numpy()
    summed = (
        emb.token_embedding.embeddings.numpy()[ids]
        + emb.position_embedding.position_embeddings.numpy()[None, :SEQ]
        + emb.segment_embedding.embeddings.numpy()[seg]
    )
    mean = summed.mean(-1, keepdims=True)
    expected = (summed - mean) / np.sqrt(summed.var(-1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_projection_present_iff_sizes_differ():
    same = make_encoder(embedding_size=16, hidden_size=16)
    same(make_batch())
    assert same.embeddings_project is None
    assert not any("embeddings_project" in v.path for v in same.weights)

    different = make_encoder(embedding_size=8, hidden_size=16)
    different(make_batch())
    assert different.embeddings_project.kernel.shape == (8, 16)


def test_shared_embeddings_are_the_same_variables():
    disc = make_encoder(embedding_size=16, hidden_size=32, num_heads=4)
    gen = make_encoder(
        embedding_size=16, hidden_size=8, intermediate_size=16, embeddings=disc.embeddings
    )
    both = Pair(gen, disc)
    batch = make_batch()
    gen(batch), disc(batch)

    assert gen.embeddings is disc.embeddings
    shared = unique_variables(disc.embeddings)
    assert len(shared) == 5  # token, position, segment, LayerNorm gamma/beta
    assert shared <= unique_variables(gen)
    own = lambda enc: unique_variables(enc) - shared  # noqa: E731
    assert not own(gen) & own(disc)
    # Held together, nothing is counted twice: one copy of the embeddings.
    assert len(both.weights) == len(unique_variables(both))
    assert len(unique_variables(both)) == 5 + len(own(gen)) + len(own(disc))
    # Each keeps its own projection, to its own width.
    assert gen.embeddings_project.kernel.shape == (16, 8)
    assert disc.embeddings_project.kernel.shape == (16, 32)


def test_shared_embeddings_survive_save_and_load_weights(tmp_path):
    def make_pair():
        disc = make_encoder()
        gen = make_encoder(hidden_size=8, intermediate_size=16, embeddings=disc.embeddings)
        pair = Pair(gen, disc)
        pair(batch)
        return pair

    batch = make_batch()
    saved = make_pair()
    path = str(tmp_path / "pair.weights.h5")
    saved.save_weights(path)
    loaded = make_pair()
    loaded.load_weights(path)
    assert loaded.gen.embeddings is loaded.disc.embeddings
    for got, want in zip(loaded(batch), saved(batch)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_shared_embeddings_must_fit():
    disc = make_encoder()
    with pytest.raises(ValueError, match="embedding_size=16.*configured with 8"):
        make_encoder(embedding_size=8, embeddings=disc.embeddings)


def test_padding_invariance():
    """What sits at padded positions never reaches the real ones."""
    encoder = make_encoder()
    batch = make_batch()
    out = encoder(batch).numpy()

    changed = dict(batch)
    pad = ~batch[schema.PADDING_MASK]
    changed[schema.TOKEN_IDS] = np.where(pad, 7, batch[schema.TOKEN_IDS]).astype("int32")
    changed[schema.SEGMENT_IDS] = np.where(pad, 1, batch[schema.SEGMENT_IDS]).astype("int32")
    out_changed = encoder(changed).numpy()

    real = batch[schema.PADDING_MASK]
    assert not np.allclose(out[~real], out_changed[~real])  # the change took effect
    np.testing.assert_allclose(out[real], out_changed[real], atol=1e-6)


def test_padded_row_equals_unpadded_row():
    encoder = make_encoder()
    batch = make_batch(lengths=(16, 6))
    out = encoder(batch).numpy()
    alone = {k: v[1:2, :6] for k, v in batch.items()}
    np.testing.assert_allclose(out[1, :6], encoder(alone).numpy()[0], atol=1e-5)


def test_attention_bias_values():
    bias = attention_bias(np.array([[True, True, False], [True, False, False]]))
    assert bias.shape == (2, 1, 1, 3)
    assert bias.dtype == "float32"
    np.testing.assert_array_equal(bias.numpy()[:, 0, 0], [[0, 0, -1e9], [0, -1e9, -1e9]])


def test_dropout_only_in_training():
    encoder = make_encoder()
    batch = make_batch()
    inference = encoder(batch, training=False).numpy()
    np.testing.assert_array_equal(inference, encoder(batch).numpy())
    assert not np.allclose(inference, encoder(batch, training=True).numpy())


def test_initialisation():
    keras.utils.set_random_seed(0)
    encoder = make_encoder(embedding_size=8)
    encoder(make_batch())
    random = []
    for v in encoder.weights:
        value = v.numpy()
        if v.path.endswith(("bias", "beta")):
            np.testing.assert_array_equal(value, 0.0)
        elif v.path.endswith("gamma"):
            np.testing.assert_array_equal(value, 1.0)
        else:  # kernels and tables: truncated normal, stddev 0.02, cut at 2 sigma
            assert np.abs(value).max() <= 0.04 + 1e-6, v.path
            random.append(value.ravel())
    # Pooled: a 16-value segment table alone is too small for a stable std.
    assert 0.015 < np.concatenate(random).std() < 0.02  # 0.02 * 0.88 after the cut


def test_config_round_trip_gives_same_outputs():
    encoder = make_encoder(embedding_size=8)
    batch = make_batch()
    out = encoder(batch).numpy()
    config = encoder.get_config()
    assert config["embeddings"]["config"]["embedding_size"] == 8

    restored = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert isinstance(restored, ElectraEncoder)
    restored(batch)
    assert [v.shape for v in restored.weights] == [v.shape for v in encoder.weights]
    restored.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(restored(batch).numpy(), out)


def test_from_config_accepts_a_live_embeddings_layer():
    disc = make_encoder()
    config = make_encoder(hidden_size=8, intermediate_size=16).get_config()
    config["embeddings"] = disc.embeddings
    gen = ElectraEncoder.from_config(config)
    assert gen.embeddings is disc.embeddings


def test_functional_model_and_compiled_function_agree():
    encoder = make_encoder()
    inputs = {
        schema.TOKEN_IDS: keras.Input((None,), dtype="int32", name=schema.TOKEN_IDS),
        schema.SEGMENT_IDS: keras.Input((None,), dtype="int32", name=schema.SEGMENT_IDS),
        schema.PADDING_MASK: keras.Input((None,), dtype="bool", name=schema.PADDING_MASK),
    }
    model = keras.Model(inputs, encoder(inputs))
    batch = make_batch()
    eager = encoder(batch).numpy()
    np.testing.assert_allclose(model(batch).numpy(), eager, atol=1e-6)
    xla = tf.function(lambda b: encoder(b), jit_compile=True)
    np.testing.assert_allclose(xla(batch).numpy(), eager, atol=1e-5)


def test_mixed_bfloat16():
    encoder = make_encoder(dtype="mixed_bfloat16")
    batch = make_batch()
    out = encoder(batch)
    assert out.dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in encoder.weights)
    reference = make_encoder()
    reference(batch)
    reference.set_weights(encoder.get_weights())
    # bfloat16 keeps ~3 significant digits; outputs are LayerNorm-ed, O(1).
    np.testing.assert_allclose(
        tf.cast(out, "float32").numpy(), reference(batch).numpy(), atol=0.1
    )


def test_bad_inputs_are_named():
    encoder = make_encoder()
    batch = make_batch()
    del batch[schema.PADDING_MASK]
    with pytest.raises(ValueError, match=schema.PADDING_MASK):
        encoder(batch)
    too_long = {k: np.tile(v, (1, 3)) for k, v in make_batch().items()}
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        encoder(too_long)
    with pytest.raises(ValueError, match="not a multiple of num_heads"):
        make_encoder(num_heads=3)


def test_locality_bias_values():
    from electra_tf.models.encoder import locality_bias

    bias = np.asarray(locality_bias(4, 3, 2.0))
    assert bias.shape == (1, 3, 4, 4)
    distance = np.abs(np.arange(4)[:, None] - np.arange(4)[None, :])
    for head, slope in enumerate((2.0, 1.0, 0.5)):
        np.testing.assert_allclose(bias[0, head], -slope * distance)


def test_attention_locality_makes_attention_local_and_round_trips():
    batch = make_batch(lengths=(16, 16, 16))
    plain = make_encoder(num_layers=1, dropout_rate=0.0, attention_dropout_rate=0.0)
    plain(batch)
    # A penalty of 100 per position: a key 1 away gets exp(-50) of the weight of
    # the query's own position in the weaker head, i.e. the output at position 0
    # is a function of token 0 alone (up to float rounding).
    local = make_encoder(num_layers=1, dropout_rate=0.0, attention_dropout_rate=0.0,
                         attention_locality=100.0)
    local(batch)
    local.set_weights(plain.get_weights())
    changed = {k: np.array(v) for k, v in batch.items()}
    changed[schema.TOKEN_IDS][:, 5:] = (changed[schema.TOKEN_IDS][:, 5:] + 1) % VOCAB
    first = lambda enc, b: enc(b).numpy()[:, 0]  # noqa: E731
    np.testing.assert_allclose(first(local, changed), first(local, batch), atol=1e-6)
    assert np.abs(first(plain, changed) - first(plain, batch)).max() > 1e-3

    restored = keras.layers.deserialize(keras.layers.serialize(local))
    assert restored.get_config()["attention_locality"] == 100.0
    restored(batch)
    restored.set_weights(local.get_weights())
    np.testing.assert_array_equal(restored(batch).numpy(), local(batch).numpy())


def test_attention_locality_must_not_be_negative():
    from electra_tf import config as config_lib

    with pytest.raises(config_lib.ConfigError, match="attention_locality must be >= 0"):
        config_lib.EncoderConfig(attention_locality=-1.0)


def test_local_convolution_sees_its_window_and_never_the_padding():
    from electra_tf.models.encoder import LocalConvolution

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 8)).astype("float32")
    mask = np.arange(12)[None, :] < np.array([[12], [7]])
    conv = LocalConvolution(kernel_size=3, initializer_range=0.5)
    base = conv(x, mask).numpy()
    assert base.shape == (2, 12, 8)

    moved = x.copy()
    moved[:, 6] += 1.0
    out = conv(moved, mask).numpy()
    changed = np.abs(out - base).max(axis=-1) > 1e-5
    # Row 0: token 6 and its two neighbours. Row 1: token 6 is real (length 7), so
    # positions 5-7 change; position 7 is padding, its output is never read.
    np.testing.assert_array_equal(np.flatnonzero(changed[0]), [5, 6, 7])
    assert changed[1, 5] and changed[1, 6] and not changed[1, :5].any()

    padded = x.copy()
    padded[1, 7:] = 100.0
    np.testing.assert_allclose(conv(padded, mask).numpy()[1, :7], base[1, :7], atol=1e-6)


def test_encoder_with_local_conv_ignores_padding_and_round_trips():
    batch = make_batch()
    encoder = make_encoder(dropout_rate=0.0, attention_dropout_rate=0.0, local_conv_kernel=3)
    out = encoder(batch).numpy()
    junk = {k: np.array(v) for k, v in batch.items()}
    junk[schema.TOKEN_IDS] = np.where(batch[schema.PADDING_MASK], batch[schema.TOKEN_IDS], 7)
    mask = batch[schema.PADDING_MASK]
    np.testing.assert_allclose(encoder(junk).numpy()[mask], out[mask], atol=1e-5)
    plain = make_encoder()
    plain(batch)
    assert len(encoder.weights) == len(plain.weights) + 4  # conv kernel + bias, LN pair

    restored = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert restored.get_config()["local_conv_kernel"] == 3
    restored(batch)
    restored.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(restored(batch).numpy(), out)


def test_local_conv_kernel_must_be_odd():
    from electra_tf import config as config_lib

    with pytest.raises(config_lib.ConfigError, match="local_conv_kernel must be 0"):
        config_lib.EncoderConfig(local_conv_kernel=4)
    assert config_lib.EncoderConfig(local_conv_kernel=5).local_conv_kernel == 5
