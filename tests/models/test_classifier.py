"""ElectraClassifier: shapes, pretrained weights, layer-wise LR per variable, fit, save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.models.classifier import ClassificationHead, ElectraClassifier
from electra_tf.models.pretrainer import ElectraDiscriminator
from electra_tf.training import metrics
from electra_tf.training.optimization import make_optimizer

VOCAB, L, B = 100, 16, 8
DECAY = 0.5


def encoder_config(num_layers=2, dropout=0.0):
    return dict(
        vocab_size=VOCAB, embedding_size=8, hidden_size=16, num_layers=num_layers,
        num_heads=2, intermediate_size=32, dropout_rate=dropout,
        attention_dropout_rate=dropout, max_position_embeddings=32,
    )


def make_inputs(seed=0, batch=B):
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, VOCAB, (batch, L)).astype("int32")
    ids[:, 0] = 2
    lengths = rng.randint(3, L + 1, batch)
    mask = np.arange(L)[None, :] < lengths[:, None]
    return {
        schema.TOKEN_IDS: np.where(mask, ids, 0).astype("int32"),
        schema.SEGMENT_IDS: (np.arange(L)[None, :] > lengths[:, None] // 2).astype("int32") * mask,
        schema.PADDING_MASK: mask,
    }


def test_outputs_logits_per_label_from_the_cls_vector():
    keras.utils.set_random_seed(0)
    model = ElectraClassifier(encoder_config(), num_labels=3)
    inputs = make_inputs()
    logits = model(inputs)
    assert logits.shape == (B, 3) and logits.dtype == tf.float32
    # Only the [CLS] position feeds the head.
    sequence = model.encoder(inputs)
    np.testing.assert_allclose(model.head(sequence).numpy(), logits.numpy(), rtol=1e-6)
    moved = sequence.numpy().copy()
    moved[:, 1:] += 1.0
    np.testing.assert_allclose(model.head(moved).numpy(), logits.numpy(), rtol=1e-6)
    regression = ElectraClassifier(encoder_config(), num_labels=1)
    assert regression(inputs).shape == (B, 1) and regression.is_regression
    with pytest.raises(ValueError, match="num_labels"):
        ElectraClassifier(encoder_config(), num_labels=0)


def test_head_dropout_defaults_to_the_encoders_and_configs_round_trip():
    model = ElectraClassifier(encoder_config(dropout=0.1), num_labels=2)
    assert model.head.dropout_rate == 0.1
    assert ElectraClassifier(encoder_config(), 2, head_dropout_rate=0.3).head.dropout_rate == 0.3
    clone = ElectraClassifier.from_config(model.get_config())
    assert (clone.num_labels, clone.encoder_config) == (2, model.encoder_config)
    head = ClassificationHead(num_labels=4, hidden_size=16, dropout_rate=0.2)
    assert ClassificationHead.from_config(head.get_config()).get_config() == head.get_config()


def test_load_encoder_weights_from_a_discriminator():
    keras.utils.set_random_seed(1)
    discriminator = ElectraDiscriminator(encoder_config())
    inputs = make_inputs()
    discriminator(inputs)
    model = ElectraClassifier(encoder_config(), num_labels=2)
    model.load_encoder_weights(discriminator.encoder)
    np.testing.assert_array_equal(model.encoder(inputs).numpy(),
                                  discriminator.encoder(inputs).numpy())
    deeper = ElectraClassifier(encoder_config(num_layers=3), num_labels=2)
    with pytest.raises(ValueError, match=r"num_layers \(2 != 3\)"):
        deeper.load_encoder_weights(discriminator.encoder)


def test_layerwise_multipliers_per_variable():
    model = ElectraClassifier(encoder_config(num_layers=3), num_labels=2).build_for_length(L)
    table = model.lr_multipliers(DECAY)
    assert set(table) == {v.path for v in model.trainable_variables}
    expected = {"classifier": 1.0, "block_2": 1.0, "block_1": DECAY, "block_0": DECAY**2,
                "embeddings": DECAY**3, "embeddings_project": DECAY**3}
    for path, multiplier in table.items():
        group = path.split("/")[2]  # electra_classifier/{encoder|classifier}/...
        group = path.split("/")[1] if group in ("dense", "out_proj") else group
        assert multiplier == pytest.approx(expected[group]), path
    counts = {g: sum(1 for p in table if f"/{g}/" in p) for g in expected}
    # Every layer is covered: 5 embedding variables, 12 per block, 4 in the head.
    assert counts == {"classifier": 4, "block_2": 12, "block_1": 12, "block_0": 12,
                      "embeddings": 5, "embeddings_project": 2}


def test_first_adam_step_moves_each_variable_by_its_own_rate():
    """Adam's first step moves each weight by ~lr (times the multiplier), whatever
    its gradient's size: so the multipliers, not gradient scaling, set the rates."""
    keras.utils.set_random_seed(2)
    model = ElectraClassifier(encoder_config(), num_labels=2).build_for_length(L)
    lr = 1e-3
    model.compile(
        # A tiny epsilon: some embedding gradients are not far above the default 1e-6.
        optimizer=make_optimizer(lr, num_train_steps=10, warmup_steps=0, weight_decay=0.0,
                                 epsilon=1e-12, lr_multipliers=model.lr_multipliers(DECAY)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = {v.path: v.numpy() for v in model.trainable_variables}
    model.train_on_batch(make_inputs(), np.arange(B) % 2)
    largest_step = {v.path: np.abs(v.numpy() - before[v.path]).max()
                    for v in model.trainable_variables}
    for path, step in largest_step.items():
        if "position_embedding" in path or "segment_embedding" in path:
            continue  # rows of unused positions get no gradient; checked by their max anyway
        rate = lr * (DECAY**2 if "embedding" in path else DECAY if "block_0" in path else 1.0)
        assert step == pytest.approx(rate, rel=0.02), path


def test_fit_evaluate_predict_with_callbacks():
    """A learnable toy task (positives start with token 7): the loss falls;
    evaluate's metrics equal compute_metrics on predict's output."""
    keras.utils.set_random_seed(3)
    inputs = make_inputs(seed=4, batch=64)
    labels = np.zeros(64, "int32")
    labels[::2] = 1
    inputs[schema.TOKEN_IDS][::2, 0] = 7
    model = ElectraClassifier(encoder_config(), num_labels=2)
    model.compile(
        optimizer=make_optimizer(1e-2, num_train_steps=40, warmup_steps=4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics.streaming_metrics(["accuracy", "f1"], 2),
    )
    seen = []
    history = model.fit(
        inputs, labels, batch_size=16, epochs=10, verbose=0, shuffle=True,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))],
    )
    losses = history.history["loss"]
    assert seen == list(range(10)) and losses[-1] < 0.5 * losses[0]
    result = model.evaluate(inputs, labels, batch_size=16, verbose=0, return_dict=True)
    logits = model.predict(inputs, batch_size=16, verbose=0)
    expected = metrics.compute_metrics(["accuracy", "f1"], labels, logits)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["f1"] == pytest.approx(expected["f1"], abs=1e-6)
    assert expected["accuracy"] >= 0.9


def test_keras_save_and_load_model_give_identical_predictions(tmp_path):
    keras.utils.set_random_seed(5)
    model = ElectraClassifier(encoder_config(dropout=0.1), num_labels=1).build_for_length(L)
    # The optimizer's layer-wise rates name the variables: they must load alike.
    model.compile(optimizer=make_optimizer(1e-3, 10, 1, lr_multipliers=model.lr_multipliers(0.8)),
                  loss="mse")
    inputs = make_inputs()
    model.fit(inputs, np.linspace(0, 5, B).astype("float32"), epochs=1, verbose=0)
    path = str(tmp_path / "classifier.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ElectraClassifier) and loaded.num_labels == 1
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    assert loaded.optimizer.lr_multipliers == model.optimizer.lr_multipliers
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0),
                                  model.predict(inputs, verbose=0))
