"""The ELECTRA encoder: embeddings (+ projection) and post-LayerNorm transformer blocks.

Numerically the same network as Google's ELECTRA and Hugging Face's `ElectraModel`
(exact GELU, LayerNorm epsilon 1e-12, learned absolute positions), with a variable
layout a converter can fill from either: every kernel is a plain 2-D Dense kernel
(`[in, out]`, i.e. the transpose of a PyTorch `nn.Linear.weight`).

The generator and the discriminator of ELECTRA share one `ElectraEmbeddings`
instance (token, position and segment tables and the embedding LayerNorm); each
`ElectraEncoder` keeps its own projection and blocks.
"""

import keras
import keras_hub
import tensorflow as tf
from keras import ops

from electra_tf import schema

# Added to the attention scores of padded keys. Far below any real score, yet
# finite, so a fully padded row still gives a defined (uniform) softmax.
_MASKED_SCORE = -1e9


def truncated_normal(initializer_range):
    """The Google/HF initializer: truncated normal with stddev initializer_range.

    A fresh instance per layer, so seeded clones never repeat values.
    """
    return keras.initializers.TruncatedNormal(stddev=initializer_range)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEmbeddings(keras.layers.Layer):
    """Token + position + segment embeddings, then LayerNorm and dropout.

    Positions are absolute and learned (0..seq_len-1). The token table is a
    `keras_hub.layers.ReversibleEmbedding`, so `token_embedding(x, reverse=True)`
    computes `x @ E^T` for a masked-LM head tied to it.

    Args:
        vocab_size: int, rows of the token table.
        embedding_size: int, width E of every table.
        max_position_embeddings: int, rows of the position table (longest input).
        type_vocab_size: int, rows of the segment table.
        dropout_rate: float, dropout after the LayerNorm.
        initializer_range: float, stddev of the truncated-normal tables.
        layer_norm_epsilon: float.

    Call args:
        token_ids: int `[batch, seq_len]`.
        segment_ids: int `[batch, seq_len]`.
        token_scale: optional float `[batch, seq_len]` multiplying each token
            embedding before the sum: integrated gradients (`electra_tf.interpret`)
            moves it from 0 to 1 to interpolate the summed embeddings.

    Returns:
        `[batch, seq_len, embedding_size]` in the compute dtype.
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        max_position_embeddings=512,
        type_vocab_size=2,
        dropout_rate=0.1,
        initializer_range=0.02,
        layer_norm_epsilon=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

        # === Layers ===
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size,
            embedding_size,
            embeddings_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_position_embeddings,
            initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size,
            embedding_size,
            embeddings_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy,
            name="segment_embedding",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dropout = keras.layers.Dropout(
            dropout_rate, dtype=self.dtype_policy, name="dropout"
        )

    def build(self, token_ids_shape, segment_ids_shape=None):
        batch, seq_len = token_ids_shape
        embedded_shape = (batch, seq_len, self.embedding_size)
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build(embedded_shape)
        self.segment_embedding.build(token_ids_shape)
        self.layer_norm.build(embedded_shape)

    def call(self, token_ids, segment_ids, training=None, token_scale=None):
        seq_len = token_ids.shape[1]
        if seq_len is not None and seq_len > self.max_position_embeddings:
            raise ValueError(
                f"token_ids has sequence length {seq_len}, more than "
                f"max_position_embeddings={self.max_position_embeddings}"
            )
        tokens = self.token_embedding(token_ids)
        if token_scale is not None:
            tokens = tokens * ops.expand_dims(ops.cast(token_scale, tokens.dtype), -1)
        x = tokens + self.position_embedding(tokens) + self.segment_embedding(segment_ids)
        x = self.layer_norm(x)
        return self.dropout(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.embedding_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_size": self.embedding_size,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size,
                "dropout_rate": self.dropout_rate,
                "initializer_range": self.initializer_range,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerBlock(keras.layers.Layer):
    """One post-LayerNorm BERT/ELECTRA block with a fused q/k/v projection.

    `x = LN(x + Drop(Attention(x)))`, then `x = LN(x + Drop(FFN(x)))`.

    Written here rather than reusing `keras_hub.layers.TransformerEncoder`, which
    matches these numerics in float32 but (1) has one dropout rate for both the
    attention probabilities and the hidden states, where ELECTRA has two, (2)
    projects q, k and v with three separate einsums instead of one matmul, and
    (3) runs its softmax in the compute dtype (bfloat16 under mixed precision).

    Variables: `qkv` kernel `[hidden, 3 * hidden]` = `concat([Wq, Wk, Wv], 1)`
    (each `[in, out]`), `attention_output`, `attention_layer_norm`,
    `intermediate`, `output`, `output_layer_norm`.

    Args:
        hidden_size: int, width H of inputs and outputs.
        num_heads: int, attention heads; must divide hidden_size.
        intermediate_size: int, width of the feed-forward layer.
        hidden_activation: activation name of the feed-forward layer ("gelu"
            is the exact erf GELU, as Google's and HF's "gelu").
        dropout_rate: float, dropout on the attention and feed-forward outputs.
        attention_dropout_rate: float, dropout on the attention probabilities.
        initializer_range: float, stddev of the truncated-normal kernels.
        layer_norm_epsilon: float.

    Call args:
        x: `[batch, seq_len, hidden_size]`.
        padding_mask: bool/int `[batch, seq_len]`, true on real tokens; padded
            keys get no attention.

    Returns:
        `[batch, seq_len, hidden_size]`.
    """

    def __init__(
        self,
        hidden_size,
        num_heads,
        intermediate_size,
        hidden_activation="gelu",
        dropout_rate=0.1,
        attention_dropout_rate=0.1,
        initializer_range=0.02,
        layer_norm_epsilon=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size={hidden_size} is not a multiple of num_heads={num_heads}"
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_activation = hidden_activation
        self.dropout_rate = dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_size = hidden_size // num_heads

        # === Layers ===
        def dense(units, name, activation=None):
            return keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=truncated_normal(initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        def layer_norm(name):
            return keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name=name
            )

        self.qkv = dense(3 * hidden_size, "qkv")
        self.attention_probs_dropout = keras.layers.Dropout(
            attention_dropout_rate, dtype=self.dtype_policy
        )
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_dropout = keras.layers.Dropout(
            dropout_rate, dtype=self.dtype_policy
        )
        self.attention_layer_norm = layer_norm("attention_layer_norm")
        self.intermediate = dense(
            intermediate_size, "intermediate", activation=hidden_activation
        )
        self.output_dense = dense(hidden_size, "output")
        self.output_dropout = keras.layers.Dropout(dropout_rate, dtype=self.dtype_policy)
        self.output_layer_norm = layer_norm("output_layer_norm")

    def build(self, x_shape, padding_mask_shape=None):
        hidden_shape = tuple(x_shape[:-1]) + (self.hidden_size,)
        self.qkv.build(hidden_shape)
        self.attention_output.build(hidden_shape)
        self.attention_layer_norm.build(hidden_shape)
        self.intermediate.build(hidden_shape)
        self.output_dense.build(tuple(x_shape[:-1]) + (self.intermediate_size,))
        self.output_layer_norm.build(hidden_shape)

    def _attention(self, rows, layout, bias, training):
        # [N, 3H] -> q, k, v `[B, heads, L, head_size]` (one transpose for all three).
        query, key, value = layout.split_heads(
            self.qkv(rows), self.num_heads, self.head_size
        )
        scores = ops.einsum("bnqd,bnkd->bnqk", query, key)
        # Softmax in float32 even under mixed precision (as torch autocast does):
        # bfloat16's 8-bit mantissa is too coarse for a sum of exponentials.
        scores = ops.cast(scores, "float32") * (self.head_size**-0.5)
        scores += bias
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_probs_dropout(probs, training=training)
        context = ops.matmul(probs, value)
        return self.attention_output(layout.merge_heads(context, self.hidden_size))

    def call_rows(self, rows, layout, bias, training=None):
        """The block on the positions of a batch laid out as rows of a matrix.

        Args:
            rows: `[N, hidden_size]`, the positions `layout` holds.
            layout: a `PaddedRows` (every position; `call`) or a subclass that
                holds some of them (e.g. only real tokens).
            bias: float32 `[batch, 1, 1, seq_len]`, `attention_bias(padding_mask)`.
            training: bool, whether dropout is on.

        Returns:
            `[N, hidden_size]`.
        """
        attended = self.attention_dropout(
            self._attention(rows, layout, bias, training), training=training
        )
        rows = self.attention_layer_norm(rows + attended)
        ffn = self.output_dropout(
            self.output_dense(self.intermediate(rows)), training=training
        )
        return self.output_layer_norm(rows + ffn)

    def call(self, x, padding_mask, training=None):
        layout = PaddedRows(ops.shape(x)[:2])
        rows = self.call_rows(
            layout.to_rows(x), layout, attention_bias(padding_mask), training
        )
        return layout.from_rows(rows)

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_activation": self.hidden_activation,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "initializer_range": self.initializer_range,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


class PaddedRows:
    """Every position of a `[batch, seq_len]` batch as one row of a 2-D matrix.

    The blocks run their Dense layers, residuals and LayerNorms on rows
    `[batch * seq_len, width]` rather than on `[batch, seq_len, width]`: Dense on a
    3-D input is a tensordot (Reshape -> MatMul -> Reshape -> BiasAdd), and that
    Reshape between MatMul and BiasAdd keeps grappler's CPU remapper from fusing
    MatMul + BiasAdd (+ exact GELU) into one `_FusedMatMul`. The math is the same:
    tensordot multiplies the same 2-D matrix. Subclasses hold only some positions
    (`to_rows`/`from_rows`); attention always works on `[batch, heads, seq_len, d]`.

    Args:
        batch_and_seq: (batch, seq_len), ints or scalar tensors.
    """

    def __init__(self, batch_and_seq):
        self.batch_and_seq = tuple(batch_and_seq)

    def to_rows(self, x):
        """`[batch, seq_len, width]` -> `[N, width]`."""
        return ops.reshape(x, (-1, x.shape[-1]))

    def from_rows(self, rows):
        """`[N, width]` -> `[batch, seq_len, width]`."""
        return ops.reshape(rows, self.batch_and_seq + (rows.shape[-1],))

    def split_heads(self, qkv_rows, num_heads, head_size):
        """`[N, 3 * heads * head_size]` -> q, k, v `[batch, heads, seq_len, size]`."""
        qkv = ops.reshape(
            self.from_rows(qkv_rows), self.batch_and_seq + (3, num_heads, head_size)
        )
        return ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)))

    def merge_heads(self, context, width):
        """`[batch, heads, seq_len, head_size]` -> `[N, width]`."""
        context = ops.transpose(context, (0, 2, 1, 3))
        return self.to_rows(ops.reshape(context, self.batch_and_seq + (width,)))


class RealTokenRows(PaddedRows):
    """The real tokens of a `[batch, seq]` batch as rows `[N, width]`, N = real tokens.

    For `ElectraEncoder.call_rows`: rows of padded positions are never computed. The
    heads of attention are gathered straight from the rows (and back), without the
    padded `[batch * seq, width]` copy and the transposes of `PaddedRows`. Padded
    positions take the values of row 0: as keys they get the -1e9 attention bias, so
    they weigh exactly 0 as in the Keras model, and their query results are dropped.
    So the real tokens' values equal the Keras model's.

    Args:
      padding_mask: bool `[batch, seq]`, true on real tokens.
    """

    def __init__(self, padding_mask):
        shape = tf.shape(padding_mask)
        super().__init__((shape[0], shape[1]))
        flat_mask = tf.reshape(padding_mask, [-1])
        # Row-major flat index (b * seq + position) of each real token: `[N]`.
        self.positions = tf.cast(tf.where(flat_mask)[:, 0], tf.int32)
        # The row of each position `[batch, seq]` (0 for padding).
        row = tf.cumsum(tf.cast(flat_mask, tf.int32)) - 1
        self._row_of_position = tf.reshape(tf.where(flat_mask, row, 0), shape)
        self._batch, self._seq = shape[0], shape[1]

    def to_rows(self, x):
        return tf.gather(super().to_rows(x), self.positions)

    def from_rows(self, rows):
        """`[N, width]` -> `[batch, seq, width]`, zeros at padded positions."""
        shape = tf.stack([self._batch * self._seq, rows.shape[-1]])
        return super().from_rows(tf.scatter_nd(self.positions[:, None], rows, shape))

    def split_heads(self, qkv_rows, num_heads, head_size):
        """`[N, 3 * heads * head_size]` -> q, k, v `[batch, heads, seq, head_size]`."""
        slices = tf.reshape(qkv_rows, [-1, head_size])  # [N * 3 * heads, head_size]
        # Slice (row, t, head) of q/k/v t at [batch, head, seq].
        first = (self._row_of_position[:, None, :] * (3 * num_heads)
                 + tf.range(num_heads)[None, :, None])
        return [tf.gather(slices, first + t * num_heads) for t in range(3)]

    def merge_heads(self, context, width):
        """`[batch, heads, seq, head_size]` -> `[N, width]`."""
        heads, head_size = context.shape[1], context.shape[3]
        slices = tf.reshape(context, [-1, head_size])  # [batch * heads * seq, head_size]
        example, position = self.positions // self._seq, self.positions % self._seq
        index = ((example[:, None] * heads + tf.range(heads)[None, :]) * self._seq
                 + position[:, None])
        return tf.reshape(tf.gather(slices, index), [-1, width])


def attention_bias(padding_mask):
    """Additive attention bias from a padding mask.

    Args:
        padding_mask: bool or int `[batch, seq_len]`, true on real tokens.

    Returns:
        float32 `[batch, 1, 1, seq_len]`: 0 on real keys, -1e9 on padded ones,
        broadcast over heads and queries.
    """
    is_real = ops.cast(ops.cast(padding_mask, "bool"), "float32")
    return ops.expand_dims((1.0 - is_real) * _MASKED_SCORE, (1, 2))


def locality_bias(seq_len, num_heads, locality):
    """A distance penalty on attention scores (ALiBi-like, symmetric): head h adds
    `-locality * 2**-h * |query - key|`.

    Learned absolute positions start as noise, so a small encoder's attention starts
    uniform and, at a CPU budget, never learns to single out its neighbours (see
    benchmarks/README.md, context_ceiling); this bias makes attention local from step 0.
    Heads get halving slopes so the later ones still see far.

    Args:
        seq_len: int scalar (may be a tensor), the sequence length.
        num_heads: int.
        locality: float > 0, the first head's penalty per position of distance.

    Returns:
        float32 `[1, num_heads, seq_len, seq_len]`.
    """
    positions = ops.cast(ops.arange(seq_len), "float32")
    distance = ops.abs(ops.expand_dims(positions, 1) - ops.expand_dims(positions, 0))
    slopes = locality * ops.power(2.0, -ops.cast(ops.arange(num_heads), "float32"))
    return -ops.reshape(slopes, (1, num_heads, 1, 1)) * ops.expand_dims(distance, (0, 1))


@keras.saving.register_keras_serializable(package="electra_tf")
class LocalConvolution(keras.layers.Layer):
    """`LayerNorm(x + GELU(Conv1D(x)))` over a centred window of neighbours.

    A tiny post-LN transformer trained from scratch needs thousands of steps
    before its attention starts to pick out neighbours (see benchmarks/README,
    `context_ceiling.py`), and until then replaced-token detection cannot use
    context; a convolution compares each token with its neighbours from step
    0, as ConvBERT's span convolutions and the one-layer conv detector do.
    Padding is zeroed first, so real tokens never see it.

    Args:
        kernel_size: odd int, the window (token +- kernel_size // 2).
        initializer_range: float, stddev of the truncated-normal kernel.
        layer_norm_epsilon: float.

    Call args:
        x: `[batch, seq_len, width]`.
        padding_mask: bool/int `[batch, seq_len]`, true on real tokens.

    Returns:
        `[batch, seq_len, width]`.
    """

    def __init__(self, kernel_size, initializer_range=0.02, layer_norm_epsilon=1e-12,
                 **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.conv = None
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")

    def build(self, x_shape):
        self.conv = keras.layers.Conv1D(
            x_shape[-1], self.kernel_size, padding="same", activation="gelu",
            kernel_initializer=truncated_normal(self.initializer_range),
            dtype=self.dtype_policy, name="conv")
        self.conv.build(x_shape)
        self.layer_norm.build(x_shape)

    def call(self, x, padding_mask, training=None):
        keep = ops.cast(padding_mask, x.dtype)[..., None]
        return self.layer_norm(x + self.conv(x * keep))

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEncoder(keras.layers.Layer):
    """ELECTRA encoder: embeddings -> [projection] -> num_layers post-LN blocks.

    Takes every field of the encoder config as a keyword argument, so
    `ElectraEncoder(**dataclasses.asdict(encoder_config))` works.

    Args:
        vocab_size, embedding_size, max_position_embeddings, type_vocab_size:
            sizes of the embedding tables (checked against `embeddings` when
            one is given).
        hidden_size, num_layers, num_heads, intermediate_size: block sizes.
        hidden_activation: activation of the feed-forward layers.
        dropout_rate: hidden dropout (embeddings, attention and FFN outputs).
        attention_dropout_rate: dropout on attention probabilities.
        initializer_range: stddev of the truncated-normal initializers.
        layer_norm_epsilon: float.
        attention_locality: float >= 0; above 0, `locality_bias` is added to every
            block's attention scores (not part of Google's or Hugging Face's
            ELECTRA: such a model does not convert to theirs). 0 by default.
        local_conv_kernel: odd int >= 0; above 0, a `LocalConvolution` of that
            window mixes each embedding with its neighbours before the first
            block (not in Google's or Hugging Face's ELECTRA either). 0 by default.
        embeddings: optional `ElectraEmbeddings` to use as-is (the very same
            variables, e.g. shared by the generator and the discriminator);
            its own dropout, initializer and epsilon apply. Built from the
            arguments above when None.

    Call args:
        inputs: dict of `schema.TOKEN_IDS`, `schema.SEGMENT_IDS` (int
            `[batch, seq_len]`) and `schema.PADDING_MASK` (bool/int
            `[batch, seq_len]`, true on real tokens).

    Returns:
        sequence_output `[batch, seq_len, hidden_size]` in the compute dtype.
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        hidden_size,
        num_layers,
        num_heads,
        intermediate_size,
        hidden_activation="gelu",
        dropout_rate=0.1,
        attention_dropout_rate=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_epsilon=1e-12,
        attention_locality=0.0,
        local_conv_kernel=0,
        embeddings=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_activation = hidden_activation
        self.dropout_rate = dropout_rate
        self.attention_dropout_rate = attention_dropout_rate
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.attention_locality = attention_locality
        self.local_conv_kernel = local_conv_kernel

        # === Layers ===
        if embeddings is None:
            embeddings = ElectraEmbeddings(
                vocab_size=vocab_size,
                embedding_size=embedding_size,
                max_position_embeddings=max_position_embeddings,
                type_vocab_size=type_vocab_size,
                dropout_rate=dropout_rate,
                initializer_range=initializer_range,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="embeddings",
            )
        else:
            self._check_shared_embeddings(embeddings)
        self.embeddings = embeddings
        self.local_conv = None
        if local_conv_kernel:
            self.local_conv = LocalConvolution(
                kernel_size=local_conv_kernel,
                initializer_range=initializer_range,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="local_conv",
            )
        self.embeddings_project = None
        if embedding_size != hidden_size:
            self.embeddings_project = keras.layers.Dense(
                hidden_size,
                kernel_initializer=truncated_normal(initializer_range),
                dtype=self.dtype_policy,
                name="embeddings_project",
            )
        self.blocks = [
            TransformerBlock(
                hidden_size=hidden_size,
                num_heads=num_heads,
                intermediate_size=intermediate_size,
                hidden_activation=hidden_activation,
                dropout_rate=dropout_rate,
                attention_dropout_rate=attention_dropout_rate,
                initializer_range=initializer_range,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]

    def _check_shared_embeddings(self, embeddings):
        for field in (
            "vocab_size",
            "embedding_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            if getattr(embeddings, field) != getattr(self, field):
                raise ValueError(
                    f"shared embeddings have {field}={getattr(embeddings, field)} "
                    f"but this encoder was configured with {getattr(self, field)}"
                )

    def build(self, inputs_shape):
        ids_shape = tuple(inputs_shape[schema.TOKEN_IDS])
        if not self.embeddings.built:
            self.embeddings.build(ids_shape, ids_shape)
        if self.local_conv is not None:
            self.local_conv.build(ids_shape + (self.embedding_size,))
        if self.embeddings_project is not None:
            self.embeddings_project.build(ids_shape + (self.embedding_size,))
        for block in self.blocks:
            block.build(ids_shape + (self.hidden_size,))

    def call(self, inputs, training=None):
        missing = [
            key
            for key in (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)
            if key not in inputs
        ]
        if missing:
            raise ValueError(
                f"ElectraEncoder inputs lack {missing}; got keys {sorted(inputs)}"
            )
        layout = PaddedRows(ops.shape(inputs[schema.TOKEN_IDS])[:2])
        return layout.from_rows(self.call_rows(inputs, layout, training=training))

    def call_rows(self, inputs, layout, training=None, token_scale=None):
        """The encoder's output at the positions `layout` holds, as rows.

        `call` is `layout.from_rows(call_rows(inputs, PaddedRows(...)))`; a layout
        that holds only real tokens skips the padding's share of every Dense, GELU
        and LayerNorm (attention still sees `[batch, seq_len]`).

        Args:
            inputs: as for `call`.
            layout: a `PaddedRows` (or subclass) for `[batch, seq_len]`.
            training: bool, whether dropout is on.
            token_scale: optional float `[batch, seq_len]`, see `ElectraEmbeddings`.

        Returns:
            `[N, hidden_size]` in the compute dtype.
        """
        x = self.embeddings(
            inputs[schema.TOKEN_IDS], inputs[schema.SEGMENT_IDS], training=training,
            token_scale=token_scale,
        )
        if self.local_conv is not None:
            x = self.local_conv(x, inputs[schema.PADDING_MASK], training=training)
        rows = layout.to_rows(x)
        if self.embeddings_project is not None:
            rows = self.embeddings_project(rows)
        bias = attention_bias(inputs[schema.PADDING_MASK])
        if self.attention_locality:
            bias = bias + locality_bias(ops.shape(inputs[schema.TOKEN_IDS])[1],
                                        self.num_heads, self.attention_locality)
        for block in self.blocks:
            rows = block.call_rows(rows, layout, bias, training=training)
        return rows

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[schema.TOKEN_IDS]) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_size": self.embedding_size,
                "hidden_size": self.hidden_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_activation": self.hidden_activation,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "max_position_embeddings": self.max_position_embeddings,
                "type_vocab_size": self.type_vocab_size,
                "initializer_range": self.initializer_range,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "attention_locality": self.attention_locality,
                "local_conv_kernel": self.local_conv_kernel,
                "embeddings": keras.layers.serialize(self.embeddings),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # A caller restoring a shared pair passes the live layer instead.
        if isinstance(config.get("embeddings"), dict):
            config["embeddings"] = keras.layers.deserialize(config["embeddings"])
        return cls(**config)
