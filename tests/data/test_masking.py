"""mask_tokens alone: ELECTRA's count formula, uniform choice, replacement split."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.config import max_predictions as default_max_predictions
from electra_tf.data.pretraining import mask_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 100


def _batch(rng, batch, seq_len, min_len=3, unk_rate=0.0):
    """`[CLS] words [SEP]` rows of random lengths, [PAD] after; some words [UNK]."""
    ids = np.full((batch, seq_len), PAD, dtype=np.int32)
    lengths = rng.integers(min_len, seq_len + 1, size=batch)
    for row, n in enumerate(lengths):
        words = rng.integers(len(SPECIAL), VOCAB, size=n - 2)
        words[rng.random(n - 2) < unk_rate] = UNK
        ids[row, :n] = [CLS, *words, SEP]
    return ids, np.arange(seq_len)[None, :] < lengths[:, None]


def _mask(ids, padding, *, mask_rate=0.15, mask_token_rate=0.85, random_token_rate=0.0,
          max_predictions=None, seed=(1, 2)):
    out = mask_tokens(
        tf.constant(ids), tf.constant(padding),
        special_ids=SPECIAL, mask_id=MASK, vocab_size=VOCAB, mask_rate=mask_rate,
        mask_token_rate=mask_token_rate, random_token_rate=random_token_rate,
        max_predictions=max_predictions or default_max_predictions(mask_rate, ids.shape[1]),
        seed=tf.constant(seed, tf.int64),
    )
    return {k: v.numpy() for k, v in out.items()}


def _candidates(ids, padding):
    return padding & ~np.isin(ids, SPECIAL)


def test_default_max_predictions_is_electra_formula():
    assert default_max_predictions(0.15, 128) == 19
    assert default_max_predictions(0.15, 512) == 79
    assert default_max_predictions(0.25, 16) == 4


@pytest.mark.parametrize(
    "mask_rate,seq_len,max_predictions",
    [(0.15, 16, None), (0.15, 64, None), (0.5, 16, None), (0.05, 32, None), (0.5, 16, 3)],
)
def test_count_is_exact_formula(mask_rate, seq_len, max_predictions):
    rng = np.random.default_rng(0)
    ids, padding = _batch(rng, 300, seq_len, min_len=2, unk_rate=0.2)
    ids[0, 2:] = PAD  # a row with no candidate at all: nothing to mask
    padding[0, 2:] = False
    ids[0, :2] = [CLS, SEP]
    cap = max_predictions or int((mask_rate + 0.005) * seq_len)
    out = _mask(ids, padding, mask_rate=mask_rate, max_predictions=max_predictions)

    n = _candidates(ids, padding).sum(axis=1)
    # np.round and tf.round both round half to even.
    expected = np.minimum(np.maximum(np.round(n * mask_rate), 1), np.minimum(n, cap))
    np.testing.assert_array_equal(out[schema.MASK_WEIGHTS].sum(axis=1), expected)
    assert out[schema.MASK_WEIGHTS].shape == (300, cap)
    # The rows exercise every branch: nothing to mask, the floor of 1, the cap.
    assert n[0] == 0 and expected[0] == 0
    assert ((np.round(n * mask_rate) == 0) & (n > 0)).any()
    if max_predictions:
        assert (np.round(n * mask_rate) > cap).any()


def test_slots_layout_and_unchanged_positions():
    rng = np.random.default_rng(1)
    ids, padding = _batch(rng, 200, 32, unk_rate=0.1)
    out = _mask(ids, padding, random_token_rate=0.1, mask_token_rate=0.8)
    weights = out[schema.MASK_WEIGHTS]
    positions = out[schema.MASK_POSITIONS]
    real = weights == 1.0
    assert set(np.unique(weights)) <= {0.0, 1.0}
    for row in range(len(ids)):
        k = real[row].sum()
        # Real slots first, positions strictly increasing (hence distinct).
        assert real[row, :k].all() and not real[row, k:].any()
        assert (np.diff(positions[row, :k]) > 0).all()
        # Unused slots: position 0, id 0.
        assert (positions[row, k:] == 0).all() and (out[schema.MASK_IDS][row, k:] == 0).all()
        chosen = positions[row, :k]
        np.testing.assert_array_equal(out[schema.MASK_IDS][row, :k], ids[row, chosen])
        # Never a special token nor padding.
        assert _candidates(ids, padding)[row, chosen].all()
        untouched = np.ones(ids.shape[1], bool)
        untouched[chosen] = False
        np.testing.assert_array_equal(out[schema.TOKEN_IDS][row, untouched], ids[row, untouched])


def test_rate_and_replacement_split():
    rng = np.random.default_rng(2)
    ids, padding = _batch(rng, 1024, 128, min_len=100)
    out = _mask(ids, padding)
    real = out[schema.MASK_WEIGHTS] == 1.0
    rate = real.sum() / _candidates(ids, padding).sum()
    assert abs(rate - 0.15) < 0.01

    new = np.take_along_axis(out[schema.TOKEN_IDS], out[schema.MASK_POSITIONS], axis=1)[real]
    original = out[schema.MASK_IDS][real]
    became_mask = np.mean(new == MASK)
    assert abs(became_mask - 0.85) < 0.015
    # Everything else is left as it was.
    np.testing.assert_array_equal(new[new != MASK], original[new != MASK])


def test_random_token_path():
    rng = np.random.default_rng(3)
    ids, padding = _batch(rng, 1024, 128, min_len=100)
    out = _mask(ids, padding, mask_token_rate=0.8, random_token_rate=0.1)
    real = out[schema.MASK_WEIGHTS] == 1.0
    new = np.take_along_axis(out[schema.TOKEN_IDS], out[schema.MASK_POSITIONS], axis=1)[real]
    original = out[schema.MASK_IDS][real]
    is_mask = new == MASK
    replaced = ~is_mask & (new != original)
    assert abs(is_mask.mean() - 0.8) < 0.015
    # A random draw equals the original 1 time in 95: 0.1 * 94/95 of the slots change.
    assert abs(replaced.mean() - 0.1 * 94 / 95) < 0.01
    assert not np.isin(new[replaced], SPECIAL).any()
    # Random replacements cover the non-special vocabulary.
    assert len(np.unique(new[replaced])) > 80


def test_positions_are_uniform_over_candidates():
    ids = np.full((4000, 16), 7, dtype=np.int32)
    ids[:, 0], ids[:, 15] = CLS, SEP
    padding = np.ones_like(ids, dtype=bool)
    out = _mask(ids, padding, mask_rate=0.15)  # 2 of the 14 words per row
    counts = np.bincount(out[schema.MASK_POSITIONS].ravel(), minlength=16)
    assert counts[15] == 0 and counts[0] == 0  # [CLS] and [SEP] never chosen
    words = counts[1:15]
    assert words.sum() == 8000
    # Each of 14 positions expects 8000/14 ~ 571 (std ~ 22).
    assert np.all(np.abs(words - 8000 / 14) < 100), words


def test_seeded_and_stateless():
    ids, padding = _batch(np.random.default_rng(5), 64, 32)
    a = _mask(ids, padding, seed=(7, 8))
    b = _mask(ids, padding, seed=(7, 8))
    c = _mask(ids, padding, seed=(7, 9))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a[schema.MASK_POSITIONS], c[schema.MASK_POSITIONS])


def test_works_in_graph_with_static_shapes():
    fn = tf.function(
        lambda ids, padding: mask_tokens(
            ids, padding, special_ids=SPECIAL, mask_id=MASK, vocab_size=VOCAB,
            mask_rate=0.15, mask_token_rate=0.85, random_token_rate=0.0,
            max_predictions=4, seed=tf.constant([1, 1], tf.int64),
        )
    )
    ids, padding = _batch(np.random.default_rng(6), 8, 24)
    graph = fn.get_concrete_function(
        tf.TensorSpec([8, 24], tf.int32), tf.TensorSpec([8, 24], tf.bool)
    )
    shapes = {k: tuple(v.shape) for k, v in graph.structured_outputs.items()}
    assert shapes == {
        schema.TOKEN_IDS: (8, 24), schema.MASK_POSITIONS: (8, 4),
        schema.MASK_IDS: (8, 4), schema.MASK_WEIGHTS: (8, 4),
    }
    out = fn(tf.constant(ids), tf.constant(padding))
    assert out[schema.TOKEN_IDS].dtype == tf.int32
    assert out[schema.MASK_POSITIONS].dtype == tf.int32
    assert out[schema.MASK_WEIGHTS].dtype == tf.float32


def test_bad_arguments():
    ids, padding = _batch(np.random.default_rng(7), 2, 8)
    with pytest.raises(ValueError, match="max_predictions"):
        _mask(ids, padding, max_predictions=9)
    with pytest.raises(ValueError, match="mask_rate"):
        _mask(ids, padding, mask_rate=0.0)
    with pytest.raises(ValueError, match="sum <= 1"):
        _mask(ids, padding, mask_token_rate=0.9, random_token_rate=0.2)


# === Whole-word masking ===

CONTINUATION = range(60, VOCAB)  # the "##" pieces of this test's vocabulary


def _word_spans(row_ids, row_padding):
    """[start, end) of each word (a piece, then the "##" pieces after it) among candidates."""
    spans, start = [], None
    for i, (token, real) in enumerate(zip(row_ids, row_padding)):
        candidate = real and token not in SPECIAL
        if candidate and token in CONTINUATION and start is not None:
            continue
        if start is not None:
            spans.append((start, i))
        start = i if candidate else None
    if start is not None:
        spans.append((start, len(row_ids)))
    return spans


def _mask_words(ids, padding, continuation_ids, mask_rate=0.3, seed=(5, 6)):
    out = mask_tokens(
        tf.constant(ids), tf.constant(padding),
        special_ids=SPECIAL, mask_id=MASK, vocab_size=VOCAB, mask_rate=mask_rate,
        mask_token_rate=1.0, random_token_rate=0.0,
        max_predictions=default_max_predictions(mask_rate, ids.shape[1]),
        seed=tf.constant(seed, tf.int64), continuation_ids=continuation_ids)
    return {k: v.numpy() for k, v in out.items()}


def test_whole_word_masking_chooses_words_whole_at_the_same_count():
    ids, padding = _batch(np.random.default_rng(3), batch=64, seq_len=48, min_len=20)
    plain = _mask(ids, padding, mask_rate=0.3, mask_token_rate=1.0)
    whole = _mask_words(ids, padding, CONTINUATION)
    np.testing.assert_array_equal(whole[schema.MASK_WEIGHTS].sum(-1),
                                  plain[schema.MASK_WEIGHTS].sum(-1))
    cut_words, multi_piece_masked = 0, 0
    for row in range(ids.shape[0]):
        chosen = set(whole[schema.MASK_POSITIONS][row][whole[schema.MASK_WEIGHTS][row] > 0])
        partial = 0
        for start, end in _word_spans(ids[row], padding[row]):
            taken = sum(p in chosen for p in range(start, end))
            partial += 0 < taken < end - start
            multi_piece_masked += end - start > 1 and taken == end - start
        # Only the word at the count's boundary may be cut.
        assert partial <= 1, row
        cut_words += partial
    assert multi_piece_masked > 50
    assert cut_words < ids.shape[0]


def test_whole_word_masking_without_continuations_is_plain_masking():
    ids, padding = _batch(np.random.default_rng(4), batch=16, seq_len=32)
    plain = _mask(ids, padding, mask_rate=0.3, mask_token_rate=1.0, seed=(5, 6))
    no_pieces = _mask_words(ids, padding, [])
    for name in plain:
        np.testing.assert_array_equal(no_pieces[name], plain[name])


def test_whole_word_masking_is_seeded():
    ids, padding = _batch(np.random.default_rng(5), batch=8, seq_len=32)
    a, b = _mask_words(ids, padding, CONTINUATION), _mask_words(ids, padding, CONTINUATION)
    c = _mask_words(ids, padding, CONTINUATION, seed=(7, 8))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a[schema.MASK_POSITIONS], c[schema.MASK_POSITIONS])
