"""The serving graph's speed-ups keep the Keras model's values: the encoder on real tokens
only (`signatures.RealTokenRows`) and Dense layers that grappler can fuse on CPU."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.grappler import tf_optimizer

from electra_tf import schema
from electra_tf.export import names, signatures
from export.export_helpers import TEXTS, reference_features, shared_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_export(tmp_path_factory)


def _features(exported, texts):
    """Packed features cut to the longest text, as the text signatures pad them."""
    features, _ = reference_features(exported["tokenizer"], texts)
    width = max(2, int(tf.reduce_max(tf.reduce_sum(
        tf.cast(features[schema.PADDING_MASK], tf.int32), axis=1))))
    return {key: value[:, :width] for key, value in features.items()}


# Row 0 shorter than the others (padded positions copy row 0), one unpadded batch, one text.
@pytest.mark.parametrize("texts", [TEXTS[::-1], TEXTS[2:3], ["a cat", "the dog sat"]])
@pytest.mark.parametrize("graph", [False, True])
def test_real_token_rows_equal_the_keras_encoder(exported, texts, graph):
    encoder = exported["disc"].encoder
    features = _features(exported, texts)
    mask = features[schema.PADDING_MASK].numpy()
    expected = encoder(features, training=False).numpy()

    def run(features):
        rows, layout = signatures.real_token_rows(encoder, features)
        return rows, layout.from_rows(rows)

    rows, padded = (tf.function(run) if graph else run)(features)
    assert rows.shape == (mask.sum(), expected.shape[-1])
    np.testing.assert_allclose(rows.numpy(), expected[mask], atol=1e-5)
    np.testing.assert_allclose(padded.numpy()[mask], expected[mask], atol=1e-5)
    assert (padded.numpy()[~mask] == 0).all()


def test_real_token_rows_of_an_empty_batch(exported):
    features = {key: value[:0] for key, value in _features(exported, TEXTS).items()}
    rows, layout = signatures.real_token_rows(exported["disc"].encoder, features)
    assert rows.shape == (0, exported["disc"].encoder.hidden_size)
    assert layout.from_rows(rows).shape[0] == 0


def _function_nodes(export_path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(f"{export_path}/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    for function in proto.meta_graphs[0].graph_def.library.function:
        nodes = {node.name: node for node in function.node_def}
        yield function.signature.name, nodes


def test_encoder_bias_adds_follow_their_matmul(exported):
    # A Reshape between MatMul and BiasAdd (Dense on 3-D inputs) blocks the CPU fusion.
    seen = 0
    for function, nodes in _function_nodes(exported["path"]):
        for node in nodes.values():
            # The local convolution's BiasAdd follows Conv1D's Squeeze; grappler fuses
            # it (counted in the next test).
            if node.op == "BiasAdd" and "/encoder" in node.name and "/local_conv" not in node.name:
                producer = nodes[node.input[0].split(":")[0]]
                assert producer.op == "MatMul", (function, node.name, producer.op)
                seen += 1
    assert seen > 0


def _grappler_op_types(fn):
    """Op types (fused ops with their fused_ops) of `fn` after grappler, placed on CPU."""
    graph_def = fn.graph.as_graph_def()
    for node in graph_def.node:
        node.device = "/job:localhost/replica:0/task:0/device:CPU:0"
    meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph_def, graph=fn.graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(t.name for t in fn.outputs)
    meta_graph.collection_def["train_op"].CopyFrom(fetch)
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta_graph)
    return collections.Counter(
        (node.op, tuple(op.decode() for op in node.attr["fused_ops"].list.s))
        for node in optimized.node)


def test_grappler_fuses_every_encoder_dense_of_the_text_signature(exported):
    loaded = tf.saved_model.load(exported["path"])
    ops = _grappler_op_types(loaded.signatures[names.REPLACED_TOKEN_SCORES])
    if not any(op == "_FusedMatMul" for op, _ in ops):
        pytest.skip("this TensorFlow build fuses no MatMul on CPU")
    layers = exported["cfg"].model.num_layers
    # Every Dense is fused with its BiasAdd: qkv, attention output, FFN in and out per
    # block; the embedding projection and the RTD head's dense.
    fused = {fused_ops: n for (op, fused_ops), n in ops.items() if op == "_FusedMatMul"}
    assert sum(n for f, n in fused.items() if f[:1] == ("BiasAdd",)) == 4 * layers + 2
    # The GELU of the FFN and of the RTD head: TF <= 2.19 writes it as erf, which grappler
    # fuses into the matmul; TF 2.20's tf.nn.gelu writes it as erfc, which it does not.
    # A local convolution (the tiny config's) adds one fused Conv2D + BiasAdd and a GELU.
    conv = 1 if exported["cfg"].model.local_conv_kernel else 0
    assert ops.get(("_FusedConv2D", ("BiasAdd",)), 0) == conv
    gelu_fused = fused.get(("BiasAdd", "GeluExact"), 0)
    assert gelu_fused + ops.get(("Erfc", ()), 0) + ops.get(("Erf", ()), 0) == layers + 1 + conv
    # The RTD prediction Dense(1): Keras adds a 1-wide bias with AddV2, not BiasAdd.
    assert ops[("MatMul", ())] == 1
