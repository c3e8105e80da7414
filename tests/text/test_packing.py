import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.text.packing import pack_pair, pack_single


def test_pack_single_truncates_pads_and_counts():
    ids = tf.ragged.constant([[10, 11, 12, 13, 14, 15], [], [20]], dtype=tf.int64)
    out = pack_single(ids, 5, cls_id=2, sep_id=3, pad_id=0)
    np.testing.assert_array_equal(
        out[schema.TOKEN_IDS].numpy(),
        [[2, 10, 11, 12, 3], [2, 3, 0, 0, 0], [2, 20, 3, 0, 0]],
    )
    np.testing.assert_array_equal(out[schema.PADDING_MASK].numpy(),
                                  [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(out[schema.SEGMENT_IDS].numpy(), np.zeros((3, 5)))
    np.testing.assert_array_equal(out["num_tokens"].numpy(), [3, 0, 1])
    assert out[schema.TOKEN_IDS].dtype == tf.int32


# === Pairs ===

CLS, SEP, PAD = 2, 3, 0


def truncate_seq_pair(a, b, budget):
    """BERT's `_truncate_seq_pair`, the reference for longest-first truncation."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def test_pack_pair_layout_segments_and_padding():
    a = tf.ragged.constant([[10, 11], [], [12]], dtype=tf.int64)
    b = tf.ragged.constant([[20], [21, 22], []], dtype=tf.int64)
    out = pack_pair(a, b, 8, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    np.testing.assert_array_equal(
        out[schema.TOKEN_IDS].numpy(),
        [[2, 10, 11, 3, 20, 3, 0, 0], [2, 3, 21, 22, 3, 0, 0, 0], [2, 12, 3, 3, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(
        out[schema.SEGMENT_IDS].numpy(),
        [[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(out[schema.PADDING_MASK].numpy().sum(1), [6, 5, 4])
    np.testing.assert_array_equal(out["num_tokens"].numpy(), [[2, 1], [0, 2], [1, 0]])
    assert out[schema.SEGMENT_IDS].dtype == tf.int32


def test_pack_pair_truncates_longest_first_like_bert():
    rng = np.random.RandomState(0)
    max_seq_length = 9
    lengths = [(la, lb) for la in range(0, 10) for lb in range(0, 10)]
    a_rows = [list(range(100, 100 + la)) for la, _ in lengths]
    b_rows = [list(range(200, 200 + lb)) for _, lb in lengths]
    order = rng.permutation(len(lengths))  # rows mixed, so no row depends on its neighbours
    a_rows, b_rows = [a_rows[i] for i in order], [b_rows[i] for i in order]
    out = pack_pair(tf.ragged.constant(a_rows, dtype=tf.int64, ragged_rank=1),
                    tf.ragged.constant(b_rows, dtype=tf.int64, ragged_rank=1),
                    max_seq_length, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    for i, (a, b) in enumerate(zip(a_rows, b_rows)):
        ka, kb = truncate_seq_pair(a, b, max_seq_length - 3)
        expected = [CLS] + ka + [SEP] + kb + [SEP]
        expected += [PAD] * (max_seq_length - len(expected))
        assert out[schema.TOKEN_IDS][i].numpy().tolist() == expected, (a, b)
        assert out["num_tokens"][i].numpy().tolist() == [len(ka), len(kb)]
        # Whatever fits is kept: truncation only happens when the pair is too long.
        assert len(ka) + len(kb) == min(len(a) + len(b), max_seq_length - 3)


def test_pack_pair_in_a_graph_and_too_short_length():
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int64)] * 2)
    def pack(a, b):
        return pack_pair(a, b, 5, cls_id=CLS, sep_id=SEP, pad_id=PAD)[schema.TOKEN_IDS]

    a = tf.ragged.constant([[10, 11, 12, 13]], dtype=tf.int64)
    b = tf.ragged.constant([[20, 21, 22]], dtype=tf.int64)
    np.testing.assert_array_equal(pack(a, b).numpy(), [[2, 10, 3, 20, 3]])
    with pytest.raises(ValueError, match="at least 3"):
        pack_pair(a, b, 2, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    with pytest.raises(ValueError, match="at least 2"):
        pack_single(a, 1, cls_id=CLS, sep_id=SEP, pad_id=PAD)
