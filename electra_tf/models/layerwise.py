"""Which encoder depth each variable lives at, and layer-wise learning-rate multipliers.

The depth is read from variable paths, so it is a fact about the models' naming
(`block_{i}`, `embeddings`), kept here beside them; `training/optimization.py`'s
`LayerwiseAdamW` applies the multipliers.
"""

import re

# Layer index of the embeddings in `layer_index_from_path`: one below layer 0.
EMBEDDINGS_LAYER = -1

# `block_{i}` is electra_tf.models.encoder's name, `transformer_layer_{i}`
# keras-hub's.
_TRANSFORMER_LAYER = re.compile(r"(?:^|/)(?:block|transformer_layer)_(\d+)(?:/|$)")
# Matches electra_tf's embeddings/..., embeddings_project and keras-hub's
# token_embedding, position_embedding, embeddings_layer_norm, ...
_EMBEDDINGS = re.compile(r"(?:^|/)[^/]*embedding")


def layer_index_from_path(path):
    """The encoder depth of a variable, parsed from its path.

    Naming assumed: transformer block `i` lives under a path component
    `block_{i}` (electra_tf.models.encoder) or `transformer_layer_{i}`
    (keras-hub backbones); embedding variables (token/position/segment
    embeddings, their LayerNorm and the embedding projection) under a
    component containing `embedding`. Checked in that order.

    Args:
        path: a variable's `.path`, e.g. "encoder/block_3/qkv/kernel".

    Returns:
        `i` for transformer layer `i`, `EMBEDDINGS_LAYER` (-1) for the
        embeddings, `None` for anything else (heads, pooler).
    """
    match = _TRANSFORMER_LAYER.search(path)
    if match:
        return int(match.group(1))
    if _EMBEDDINGS.search(path):
        return EMBEDDINGS_LAYER
    return None


def layerwise_lr_multipliers(
    variables, num_layers, decay, layer_of=layer_index_from_path
):
    """Learning-rate multipliers that shrink towards the input.

    Depth convention, for `num_layers = L`: everything above the encoder
    (heads, pooler) and the top transformer layer `L-1` get 1.0; layer `i`
    (0-based) gets `decay ** (L-1-i)`; the embeddings get `decay ** L`.
    (google-research/electra gives the top layer `decay ** 2` and heads 1;
    that gap is the off-by-one of its issue 51.)

    Args:
        variables: variables with a `.path`, e.g. `model.trainable_variables`.
        num_layers: number of transformer layers `L` in the encoder.
        decay: factor in (0, 1] between adjacent layers.
        layer_of: `path -> int | None`, the variable's layer index, with
            `EMBEDDINGS_LAYER` for embeddings and None for heads.

    Returns:
        dict `{variable path: multiplier}` for every variable.

    Raises:
        ValueError: `decay` out of range, or a path parsed to a layer
            outside `[EMBEDDINGS_LAYER, num_layers)`.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    multipliers = {}
    for variable in variables:
        layer = layer_of(variable.path)
        if layer is None:
            multipliers[variable.path] = 1.0
            continue
        if not EMBEDDINGS_LAYER <= layer < num_layers:
            raise ValueError(
                f"variable {variable.path!r} is in layer {layer}, outside an "
                f"encoder of num_layers={num_layers}"
            )
        multipliers[variable.path] = decay ** (num_layers - 1 - layer)
    return multipliers
