"""The encoder, the pretraining models and the three fine-tuning models pass
`check_layer` (output shapes, config round trip, weights reload). The fine-tuning
models share `ElectraTaskModel`: each copies a pretrained encoder in
(refusing another architecture), gives its head the full rate under layer-wise decay,
and trains the same weights with gradient accumulation as without (the token loss is
a per-sentence mean, so the split does not change the update)."""

import keras
import numpy as np
import pytest
from helpers import check_layer, tiny_encoder_config

from electra_tf import schema
from electra_tf.models import artifacts
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.models.encoder import ElectraEncoder
from electra_tf.models.pretrainer import ElectraDiscriminator, ElectraGenerator
from electra_tf.models.question_answering import ElectraForQuestionAnswering, SpanLoss
from electra_tf.models.token_classification import ElectraForTokenClassification, TokenLoss
from electra_tf.training import optimization

VOCAB = 60
LABELS = ("O", "B-LOC", "I-LOC")
ENCODER = tiny_encoder_config(VOCAB, 32, dropout_rate=0.0, attention_dropout_rate=0.0)


def batch(n=4, seq_len=10, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq_len + 1, n)
    mask = np.arange(seq_len)[None, :] < lengths[:, None]
    return {schema.TOKEN_IDS: np.where(mask, rng.integers(5, VOCAB, (n, seq_len)), 0).astype("int32"),
            schema.SEGMENT_IDS: np.zeros((n, seq_len), "int32"),
            schema.PADDING_MASK: mask}


MODELS = {
    "classifier": (ElectraClassifier, dict(encoder_config=ENCODER, num_labels=3), (4, 3)),
    "qa": (ElectraForQuestionAnswering, dict(encoder_config=ENCODER),
           {"start_logits": (4, 10), "end_logits": (4, 10)}),
    "tagger": (ElectraForTokenClassification, dict(encoder_config=ENCODER, label_names=LABELS),
               (4, 10, 3)),
}


LOCAL = dict(ENCODER, local_conv_kernel=3, attention_locality=1.0)
PRETRAINING = {
    "encoder": (ElectraEncoder, ENCODER, (4, 10, 16)),
    "encoder_conv_locality": (ElectraEncoder, LOCAL, (4, 10, 16)),
    "discriminator": (ElectraDiscriminator, dict(encoder_config=ENCODER), (4, 10)),
}


@pytest.mark.parametrize("name", sorted(PRETRAINING))
def test_check_layer_pretraining_models(name, tmp_path):
    cls, kwargs, shape = PRETRAINING[name]
    check_layer(cls, kwargs, batch(), shape, tmp_path)


def test_check_layer_generator(tmp_path):
    inputs = {**batch(), schema.MASK_POSITIONS: np.array([[1, 2]] * 4, "int32")}
    check_layer(ElectraGenerator, dict(encoder_config=ENCODER), inputs, (4, 2, VOCAB), tmp_path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_check_layer(name, tmp_path):
    cls, kwargs, shape = MODELS[name]
    check_layer(cls, kwargs, batch(), shape, tmp_path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pretrained_encoder_is_copied_and_another_architecture_refused(name):
    cls, kwargs, _ = MODELS[name]
    keras.utils.set_random_seed(1)
    discriminator = artifacts.build_inputs(ElectraDiscriminator(ENCODER), seq_len=8)
    model = cls(**kwargs).build_for_length(10)
    model.load_encoder_weights(discriminator.encoder)
    for ours, theirs in zip(model.encoder.weights, discriminator.encoder.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    wider = artifacts.build_inputs(ElectraDiscriminator({**ENCODER, "local_conv_kernel": 3}), 8)
    with pytest.raises(ValueError, match="local_conv_kernel"):
        model.load_encoder_weights(wider.encoder)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_head_gets_the_full_rate_and_embeddings_the_deepest_decay(name):
    cls, kwargs, _ = MODELS[name]
    model = cls(**kwargs).build_for_length(10)
    multipliers = model.lr_multipliers(0.5)
    head = [v.path for v in model.trainable_variables if "encoder" not in v.path]
    assert head and all(multipliers[p] == 1.0 for p in head)
    embeddings = [v.path for v in model.trainable_variables if "embeddings" in v.path]
    assert embeddings and all(multipliers[p] == 0.5 ** 2 for p in embeddings)


def labels_for(name, n=4, seq_len=10, seed=0):
    rng = np.random.default_rng(seed)
    if name == "classifier":
        return rng.integers(0, 3, n).astype("int32")
    if name == "qa":
        return {schema.START_POSITIONS: rng.integers(0, 3, n).astype("int32"),
                schema.END_POSITIONS: rng.integers(3, 6, n).astype("int32")}
    labels = rng.integers(0, 3, (n, seq_len)).astype("int32")
    labels[:, ::2] = -1  # unlabelled pieces
    return labels


LOSSES = {"classifier": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
          "qa": SpanLoss, "tagger": TokenLoss}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_accumulation_trains_the_same_weights(name):
    cls, kwargs, _ = MODELS[name]
    x, y = batch(n=6), labels_for(name, n=6)
    weights = []
    for accum in (1, 3):
        keras.utils.set_random_seed(0)
        model = cls(**kwargs).build_for_length(10)
        model.compile(optimizer=optimization.make_optimizer(1e-2, num_train_steps=4,
                                                           warmup_steps=0),
                      loss=LOSSES[name](), grad_accum_steps=accum, jit_compile=False)
        model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
        weights.append([w.numpy() for w in model.trainable_weights])
    # Adam moves a weight ~1e-2 per step here, so a wrong accumulation shows at that size.
    # The tolerance sits well below it and above rounding noise: a parameter whose true
    # gradient is 0 (a bias of the QA head: a span softmax ignores a constant shift) ends
    # at float noise amplified by Adam; its start bias differed by ~3e-6 between the two
    # summation orders on an AVX2-only AMD EPYC (not on an AVX-512 Xeon).
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=2e-5)
