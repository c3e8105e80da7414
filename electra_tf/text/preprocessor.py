"""Raw text (or text pairs) -> the encoder's inputs, as one Keras layer.

    preprocessor = Preprocessor("vocab.txt", lowercase=True, max_seq_length=128)
    preprocessor(["a text", "another"])                  # single texts
    preprocessor((["a premise"], ["a hypothesis"]))      # text pairs
    dataset.map(lambda text, label: (preprocessor(text), label))

The tokenization is `WordPieceTokenizer`'s and the packing `packing.pack_single` /
`packing.pack_pair` (`[CLS] a [SEP] b [SEP]`, truncated longest-first): the inputs that
fine-tuning, export and explain build, with TensorFlow ops only, so it runs eagerly,
inside `tf.data.Dataset.map` and inside exported graphs.
"""

import keras
import numpy as np
import tensorflow as tf

from electra_tf import schema
from electra_tf.text import packing
from electra_tf.text.tokenizer import WordPieceTokenizer


def _as_strings(texts):
    """A string tensor `[batch]` from a string, a list/array of them or a string tensor."""
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, np.ndarray) and texts.dtype == object:
        texts = texts.astype(str)
    return tf.convert_to_tensor(texts, dtype=tf.string)


def is_text_input(x):
    """Whether `x` is raw text for a `Preprocessor`: a string, a list/tuple of strings,
    a string array or tensor, or a pair (2-tuple) of those."""
    if isinstance(x, tuple) and len(x) == 2 and all(not isinstance(t, str) for t in x):
        return all(is_text_input(t) for t in x)
    if isinstance(x, str):
        return True
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and all(isinstance(t, str) for t in x)
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "OUS"
    if isinstance(x, tf.Tensor):
        return x.dtype == tf.string
    return False


@keras.saving.register_keras_serializable(package="electra_tf")
class Preprocessor(keras.layers.Layer):
    """Text or text pairs -> `{token_ids, segment_ids, padding_mask}`.

    Args:
        vocab_path: the WordPiece vocabulary (one token per line).
        lowercase: uncased tokenization (lower-case, strip accents).
        max_seq_length: L, the packed length; longer inputs are truncated (pairs
            longest-first, one WordPiece at a time off the longer text).

    Call args:
        x: texts, a string tensor `[batch]` (or a list of str, or one str), or a
            2-tuple `(texts_a, texts_b)` of those, the same batch size, for pairs.

    Returns:
        dict of token_ids int32 `[batch, L]` (`[CLS] a [SEP]` or `[CLS] a [SEP] b
        [SEP]`, then [PAD]), segment_ids int32 `[batch, L]` (1 on `b [SEP]`), and
        padding_mask bool `[batch, L]` (`electra_tf.schema` names).

    Attributes:
        tokenizer: the `WordPieceTokenizer`.
    """

    def __init__(self, vocab_path, lowercase=True, max_seq_length=128, **kwargs):
        super().__init__(**kwargs)
        # Strings in, no dtype casting, no masking: as keras-hub's preprocessing layers.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True
        self.vocab_path = vocab_path
        self.lowercase = lowercase
        self.max_seq_length = max_seq_length
        self.tokenizer = WordPieceTokenizer(vocab_path, lowercase=lowercase)

    def call(self, x):
        tok = self.tokenizer
        if isinstance(x, (tuple, list)) and len(x) == 2 and not isinstance(x[0], str):
            packed = packing.pack_pair(tok(_as_strings(x[0])), tok(_as_strings(x[1])),
                                       self.max_seq_length, tok.cls_id, tok.sep_id, tok.pad_id)
        else:
            packed = packing.pack_single(tok(_as_strings(x)), self.max_seq_length,
                                         tok.cls_id, tok.sep_id, tok.pad_id)
        return {key: packed[key]
                for key in (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)}

    def dataset(self, x, batch_size=32):
        """A `tf.data.Dataset` of this layer's outputs for raw text `x` (as `call`
        takes it), in batches of `batch_size`, in order."""
        if isinstance(x, (tuple, list)) and len(x) == 2 and not isinstance(x[0], str):
            texts = (_as_strings(x[0]), _as_strings(x[1]))
        else:
            texts = _as_strings(x)
        return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(
            lambda *t: self(t if len(t) == 2 else t[0]))

    def compute_output_spec(self, x):
        shape = (None, self.max_seq_length)
        return {schema.TOKEN_IDS: keras.KerasTensor(shape, "int32"),
                schema.SEGMENT_IDS: keras.KerasTensor(shape, "int32"),
                schema.PADDING_MASK: keras.KerasTensor(shape, "bool")}

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_path": self.vocab_path,
            "lowercase": self.lowercase,
            "max_seq_length": self.max_seq_length,
        }
