"""Layer depths parsed from variable paths, and the layer-wise LR multipliers."""

import keras
import keras_hub
import numpy as np
import pytest

from electra_tf.models import layerwise
from electra_tf.models.layerwise import layer_index_from_path, layerwise_lr_multipliers


@pytest.mark.parametrize(
    "path, layer",
    [
        ("discriminator/encoder/block_3/qkv/kernel", 3),
        ("encoder/block_12/output_layer_norm/gamma", 12),
        ("transformer_layer_10/self_attention_layer/query/kernel", 10),
        ("encoder/embeddings/token_embedding/embeddings", layerwise.EMBEDDINGS_LAYER),
        ("encoder/embeddings/layer_norm/beta", -1),
        ("encoder/embeddings_project/kernel", -1),
        ("embeddings_layer_norm/gamma", -1),
        ("rtd_head/dense/kernel", None),
        ("mlm_head/output_bias", None),
        ("pooled_dense/kernel", None),
        ("classifier/block_list/kernel", None),
    ],
)
def test_layer_index_from_path(path, layer):
    assert layer_index_from_path(path) == layer


def test_layerwise_multipliers_for_three_layers():
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=50,
        num_layers=3,
        num_heads=2,
        hidden_dim=16,
        embedding_dim=8,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    head = keras.layers.Dense(2, name="classifier")
    head.build((None, 16))
    variables = backbone.trainable_variables + head.trainable_variables
    table = layerwise_lr_multipliers(variables, num_layers=3, decay=0.8)

    assert set(table) == {v.path for v in variables}
    by_group = {}
    for path, multiplier in table.items():
        group = path.split("/")[0]
        by_group.setdefault(group, set()).add(round(multiplier, 9))
    assert by_group == {
        "classifier": {1.0},
        "pooled_dense": {1.0},
        "transformer_layer_2": {1.0},
        "transformer_layer_1": {0.8},
        "transformer_layer_0": {0.64},
        "token_embedding": {0.512},
        "position_embedding": {0.512},
        "segment_embedding": {0.512},
        "embeddings_layer_norm": {0.512},
        "embeddings_projection": {0.512},
    }


def test_layerwise_multipliers_reject_bad_layers_and_decay():
    variable = keras.Variable(np.zeros(2, np.float32), name="kernel")
    variable_in_layer_3 = type("V", (), {"path": "encoder/block_3/qkv/kernel"})()
    with pytest.raises(ValueError, match="'encoder/block_3/qkv/kernel' is in layer 3"):
        layerwise_lr_multipliers([variable_in_layer_3], num_layers=3, decay=0.8)
    for decay in (0.0, 1.5):
        with pytest.raises(ValueError, match="decay must be in"):
            layerwise_lr_multipliers([variable], num_layers=3, decay=decay)
