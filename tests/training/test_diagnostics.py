"""Pretraining diagnostics: binary_entropy and ranking_auc (against scikit-learn),
CollapseWatch, the probe's packing and unigram corruption, and ContextProbe on fake
models and on text files."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import diagnostics
from electra_tf.models.losses import binary_entropy, ranking_auc

from helpers import TINY_WORDS

sklearn_metrics = pytest.importorskip("sklearn.metrics")


# === binary_entropy ===


def test_binary_entropy_values():
    p = np.array([0.0, 1.0, 0.5, 0.1, 0.9, 0.25], np.float32)
    got = binary_entropy(tf.constant(p)).numpy()
    assert got.dtype == np.float32 and got.shape == p.shape
    assert got[0] == 0.0 and got[1] == 0.0  # no NaN from 0 * log 0
    assert got[2] == pytest.approx(math.log(2.0), abs=1e-6)
    expected = -(p[3:] * np.log(p[3:]) + (1 - p[3:]) * np.log(1 - p[3:]))
    np.testing.assert_allclose(got[3:], expected, rtol=1e-6)
    assert got[3] == pytest.approx(got[4], abs=1e-6)  # symmetric about 1/2
    # Any shape; ints and float64 are cast.
    assert binary_entropy(tf.constant([[0.5, 0.5]], tf.float64)).shape == (1, 2)
    assert float(binary_entropy(1)) == 0.0


# === ranking_auc ===


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_auc_equals_sklearn_with_masked_items(seed):
    rng = np.random.default_rng(seed)
    shape = (6, 40)
    labels = (rng.random(shape) < 0.3).astype(np.float32)
    # Scores that are informative but far from perfect, no ties.
    scores = (rng.normal(size=shape) + 0.8 * labels).astype(np.float32)
    weights = (rng.random(shape) < 0.7).astype(np.float32)
    # Masked items are scored to wreck the AUC if they counted: masked positives
    # very low, masked negatives very high.
    scores = np.where(weights == 0, np.where(labels == 1, -50.0, 50.0), scores).astype(
        np.float32)
    auc, defined = ranking_auc(tf.constant(scores), tf.constant(labels), tf.constant(weights))
    keep = weights.ravel() == 1
    expected = sklearn_metrics.roc_auc_score(labels.ravel()[keep], scores.ravel()[keep])
    assert bool(defined)
    assert auc.dtype == tf.float32
    assert float(auc) == pytest.approx(expected, abs=1e-6)
    assert 0.55 < expected < 0.95  # the data is neither random nor separable
    # Without the weights the masked items drag it far down.
    everything, _ = ranking_auc(scores, labels, np.ones(shape, np.float32))
    assert float(everything) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels.ravel(), scores.ravel()), abs=1e-6)
    assert float(everything) < expected - 0.1


def test_ranking_auc_perfect_reversed_and_undefined():
    labels = tf.constant([[0.0, 1.0, 0.0, 1.0, 0.0]])
    weights = tf.ones_like(labels)
    auc, defined = ranking_auc(labels * 3.0 - 1.0, labels, weights)
    assert bool(defined) and float(auc) == 1.0
    auc, defined = ranking_auc(-labels, labels, weights)
    assert bool(defined) and float(auc) == 0.0
    # No positive at all.
    auc, defined = ranking_auc(tf.constant([0.3, 0.1, 0.2]), tf.zeros([3]), tf.ones([3]))
    assert not bool(defined) and float(auc) == 0.5
    # No negative.
    auc, defined = ranking_auc(tf.constant([0.3, 0.1]), tf.ones([2]), tf.ones([2]))
    assert not bool(defined) and float(auc) == 0.5
    # Positives exist only where the weight is 0: undefined too.
    auc, defined = ranking_auc(tf.constant([0.3, 0.1, 0.2]), tf.constant([1.0, 0.0, 0.0]),
                               tf.constant([0.0, 1.0, 1.0]))
    assert not bool(defined) and float(auc) == 0.5


# === CollapseWatch ===


@pytest.fixture
def warnings_logged(monkeypatch):
    """The messages `diagnostics` logs with logging.warning, formatted."""
    logged = []
    monkeypatch.setattr(diagnostics.logging, "warning",
                        lambda msg, *args: logged.append(msg % args))
    return logged


def feed(watch, records):
    return [watch.observe(r) for r in records]


def test_collapse_watch_warns_once_after_patience(warnings_logged):
    watch = diagnostics.CollapseWatch(gap=0.02, patience=3)
    triggered = feed(watch, [{"step": s, "rtd_prior_gap": 0.001} for s in (2, 4, 6, 8, 10)])
    assert triggered == [False, False, True, False, False]
    assert watch.warned_at == 6
    assert len(warnings_logged) == 1
    assert "not learning" in warnings_logged[0] and "to step 6" in warnings_logged[0]
    assert "last 3 log records" in warnings_logged[0]


def test_collapse_watch_good_record_resets_the_run(warnings_logged):
    watch = diagnostics.CollapseWatch(gap=0.02, patience=3)
    gaps = [0.0, 0.01, 0.5, 0.0, 0.019]  # the good record at step 3 breaks the run
    assert feed(watch, [{"step": s, "rtd_prior_gap": g} for s, g in enumerate(gaps, 1)]) == [
        False] * 5
    assert watch.warned_at is None and watch.run == 2 and not warnings_logged
    # Exactly at the gap is not below it.
    assert watch.observe({"step": 6, "rtd_prior_gap": 0.02}) is False
    assert watch.run == 0
    # A record without the metric neither counts nor resets.
    for step in (7, 8):
        watch.observe({"step": step, "rtd_prior_gap": -0.1})
    assert watch.observe({"step": 9, "loss": 1.0}) is False and watch.run == 2
    assert watch.observe({"step": 10, "rtd_prior_gap": -0.1}) is True
    assert watch.warned_at == 10 and len(warnings_logged) == 1


def test_collapse_watch_ignores_warmup_records(warnings_logged):
    watch = diagnostics.CollapseWatch(gap=0.05, patience=2, after_step=10)
    records = [{"step": s, "rtd_prior_gap": 0.0} for s in (4, 8, 10)]
    assert feed(watch, records) == [False, False, False]
    assert watch.run == 0 and watch.warned_at is None
    assert feed(watch, [{"step": 12, "rtd_prior_gap": 0.0},
                        {"step": 14, "rtd_prior_gap": 0.0}]) == [False, True]
    assert watch.warned_at == 14 and len(warnings_logged) == 1


def test_collapse_watch_never_warns_when_learning(warnings_logged):
    watch = diagnostics.CollapseWatch(gap=0.02, patience=1)
    assert not any(feed(watch, [{"step": s, "rtd_prior_gap": 0.1} for s in range(1, 50)]))
    assert watch.warned_at is None and not warnings_logged


def test_collapse_watch_logs_through_absl(caplog):
    # Without the monkeypatch: the warning really reaches the logging system.
    watch = diagnostics.CollapseWatch(gap=0.02, patience=1)
    with caplog.at_level("WARNING"):
        watch.observe({"step": 5, "rtd_prior_gap": 0.0})
        watch.observe({"step": 6, "rtd_prior_gap": 0.0})
    messages = [r.getMessage() for r in caplog.records if "not learning" in r.getMessage()]
    assert len(messages) == 1 and "to step 5" in messages[0]


# === pack_probe_sequences ===

CLS, SEP, PAD = 2, 3, 0


def test_pack_probe_sequences_rows_are_spread_over_the_stream():
    stream = np.arange(10, 110)  # 100 tokens, no special id
    ids, mask = diagnostics.pack_probe_sequences(stream, 8, 4, CLS, SEP, PAD)
    assert ids.dtype == np.int32 and ids.shape == (4, 8) and mask.dtype == bool
    assert (ids[:, 0] == CLS).all() and (ids[:, -1] == SEP).all()
    # 16 chunks of 6 tokens; rows from chunks 0, 5, 10, 15: start, middle, end.
    for row, chunk in zip(ids, (0, 5, 10, 15)):
        np.testing.assert_array_equal(row[1:-1], stream[chunk * 6:chunk * 6 + 6])
    assert mask.all()
    # Asking for more rows than the stream holds gives every chunk once, in order.
    ids, mask = diagnostics.pack_probe_sequences(stream, 8, 100, CLS, SEP, PAD)
    assert ids.shape == (16, 8)
    np.testing.assert_array_equal(ids[:, 1:-1].ravel(), stream[:96])
    # One row: the stream's start.
    ids, _ = diagnostics.pack_probe_sequences(stream, 8, 1, CLS, SEP, PAD)
    np.testing.assert_array_equal(ids, [[CLS, 10, 11, 12, 13, 14, 15, SEP]])


def test_pack_probe_sequences_short_streams():
    ids, mask = diagnostics.pack_probe_sequences(np.arange(10, 16), 8, 3, CLS, SEP, PAD)
    np.testing.assert_array_equal(ids, [[CLS, 10, 11, 12, 13, 14, 15, SEP]])
    assert mask.all()
    with pytest.raises(ValueError, match="5 tokens is shorter than one probe sequence "
                                         r"\(6 tokens\)"):
        diagnostics.pack_probe_sequences(np.arange(10, 15), 8, 3, CLS, SEP, PAD)
    with pytest.raises(ValueError, match="0 tokens"):
        diagnostics.pack_probe_sequences(np.zeros([0], np.int64), 8, 3, CLS, SEP, PAD)


# === unigram_corruption ===


def test_unigram_corruption_changes_only_candidates_at_the_rate():
    rng = np.random.default_rng(0)
    ids = rng.integers(20, 50, size=(1000, 64)).astype(np.int32)
    candidates = rng.random(ids.shape) < 0.6
    # Draws only from ids 0..9 (never an original), with counts 1..10.
    counts = np.zeros(50)
    counts[:10] = np.arange(1, 11)
    corrupted, labels = diagnostics.unigram_corruption(ids, candidates, 0.2, counts, seed=3)
    assert corrupted.dtype == np.int32 and labels.dtype == np.float32
    np.testing.assert_array_equal(labels, (corrupted != ids).astype(np.float32))
    changed = labels == 1
    assert not changed[~candidates].any()
    np.testing.assert_array_equal(corrupted[~changed], ids[~changed])
    # Every chosen position changed here, so the changed fraction is the rate.
    assert changed[candidates].mean() == pytest.approx(0.2, abs=0.01)
    # The replacements follow the counts.
    freq = np.bincount(corrupted[changed], minlength=50) / changed.sum()
    np.testing.assert_allclose(freq[:10], counts[:10] / counts.sum(), atol=0.02)
    assert freq[10:].sum() == 0


def test_unigram_corruption_draws_equal_to_the_original_are_not_replaced():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 4, size=(400, 50)).astype(np.int32)
    candidates = np.ones(ids.shape, bool)
    corrupted, labels = diagnostics.unigram_corruption(ids, candidates, 0.5, np.ones(4), seed=0)
    np.testing.assert_array_equal(labels, (corrupted != ids).astype(np.float32))
    # Chosen half the time, and then the draw is the original a quarter of the time.
    assert labels.mean() == pytest.approx(0.5 * 0.75, abs=0.01)


def test_unigram_corruption_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    ids = rng.integers(5, 40, size=(20, 16)).astype(np.int32)
    candidates = rng.random(ids.shape) < 0.8
    counts = np.bincount(ids[candidates], minlength=40).astype(np.float64)
    a = diagnostics.unigram_corruption(ids, candidates, 0.15, counts, seed=7)
    b = diagnostics.unigram_corruption(ids, candidates, 0.15, counts, seed=7)
    c = diagnostics.unigram_corruption(ids, candidates, 0.15, counts, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any()


# === ContextProbe ===

SPECIALS = (0, 1, 2, 3, 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASK = 4


def probe_batch(rows=400, seq_len=32, vocab=100, seed=0):
    """Zipfian text in [CLS] ... [SEP] rows, some of them padded.

    Its random stream is not the probe's for the same seed: the probe's uniforms
    would then pick the positions of the most frequent token."""
    rng = np.random.default_rng([seed, 1234])
    p = 1.0 / np.arange(1, vocab - 5 + 1)
    ids = rng.choice(np.arange(5, vocab), size=(rows, seq_len), p=p / p.sum()).astype(np.int32)
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    # Every 4th row padded after position 20.
    ids[::4, 20] = SEP
    ids[::4, 21:] = PAD
    return ids, ids != PAD


class OracleModel:
    """Scores 1 where the token differs from the uncorrupted text, 0 elsewhere, and
    a huge score at [CLS]/[SEP]/padding, which must not count."""

    def __init__(self, original):
        self.original = original
        self.next_row = 0
        self.calls = []

    def token_scores(self, inputs, mask_id=None):
        ids = inputs[schema.TOKEN_IDS].numpy()
        self.calls.append((ids.shape, mask_id,
                           inputs[schema.SEGMENT_IDS].numpy(),
                           inputs[schema.PADDING_MASK].numpy()))
        rows = self.original[self.next_row:self.next_row + len(ids)]
        self.next_row += len(ids)
        scores = (ids != rows).astype(np.float32)
        scores[np.isin(ids, SPECIALS)] = 100.0
        return tf.constant(scores)


class TokenIdModel:
    """Knows only which token it sees: score = the token id."""

    def token_scores(self, inputs, mask_id=None):
        return tf.cast(inputs[schema.TOKEN_IDS], tf.float32)


def test_context_probe_oracle_scores_one():
    ids, mask = probe_batch(rows=200)
    probe = diagnostics.ContextProbe(ids, mask, SPECIALS, vocab_size=100, mask_id=MASK,
                                     rate=0.15, seed=0, every_n_steps=7, batch_size=64)
    assert probe.every_n_steps == 7
    # Candidates: real, non-special tokens; labels only there.
    np.testing.assert_array_equal(probe.candidates, mask & ~np.isin(ids, SPECIALS))
    assert not probe.labels[~probe.candidates].any()
    np.testing.assert_array_equal(probe.labels, (probe.token_ids != ids).astype(np.float32))
    # 15% chosen, less the draws that hit the original (Zipfian text: often).
    unigram = np.bincount(ids[probe.candidates], minlength=100) / probe.candidates.sum()
    expected = 0.15 * (1.0 - (unigram ** 2).sum())
    assert 0.1 < expected < 0.145
    assert probe.labels[probe.candidates].mean() == pytest.approx(expected, abs=0.02)
    # Special tokens and padding are never replaced.
    np.testing.assert_array_equal(probe.token_ids[~probe.candidates], ids[~probe.candidates])

    model = OracleModel(ids)
    result = probe(model)
    assert result == {"context_auc": 1.0}
    # 200 rows in batches of 64: 64, 64, 64, 8, in order, with the probe's mask id,
    # zero segments and the padding mask.
    assert [c[0][0] for c in model.calls] == [64, 64, 64, 8] and model.next_row == 200
    assert all(c[1] == MASK for c in model.calls)
    assert all((c[2] == 0).all() for c in model.calls)
    np.testing.assert_array_equal(np.concatenate([c[3] for c in model.calls]), mask)
    # scores() is the raw concatenation.
    model.next_row = 0
    scores = probe.scores(model)
    assert scores.shape == ids.shape and scores.dtype == np.float32


def test_context_probe_token_identity_alone_scores_one_half():
    ids, mask = probe_batch(rows=400, seed=1)
    probe = diagnostics.ContextProbe(ids, mask, SPECIALS, vocab_size=100, mask_id=MASK,
                                     rate=0.15, seed=0, batch_size=128)
    assert probe.labels.sum() > 1000
    auc = probe(TokenIdModel())["context_auc"]
    # Not exactly 0.5 in expectation: a draw equal to the original counts as
    # original, so replaced tokens are drawn in proportion to p(1 - p), slightly
    # rarer than the text (about +0.02 for this 95-word Zipfian vocabulary).
    assert auc == pytest.approx(0.5, abs=0.05)
    # The same fixed seed: the same corruption and the same AUC again.
    again = diagnostics.ContextProbe(ids, mask, SPECIALS, vocab_size=100, mask_id=MASK,
                                     rate=0.15, seed=0, batch_size=64)
    np.testing.assert_array_equal(again.token_ids, probe.token_ids)
    assert again(TokenIdModel())["context_auc"] == pytest.approx(auc, abs=1e-6)


def test_context_probe_a_frequency_detector_is_not_rewarded():
    """Replacements come from the text's own unigram distribution, so scoring rare
    tokens as replaced (what a discriminator facing a uniform sampler would learn)
    does not help either."""
    ids, mask = probe_batch(rows=400, seed=2)
    probe = diagnostics.ContextProbe(ids, mask, SPECIALS, vocab_size=100, mask_id=MASK,
                                     rate=0.15, seed=1, batch_size=400)
    counts = np.bincount(ids[probe.candidates], minlength=100).astype(np.float32)

    class RarityModel:
        def token_scores(self, inputs, mask_id=None):
            return tf.constant(-np.log(counts[inputs[schema.TOKEN_IDS].numpy()] + 1.0))

    assert probe(RarityModel())["context_auc"] == pytest.approx(0.5, abs=0.05)


# === ContextProbe.from_text ===


def tiny_text(rng, lines=40):
    words = [w for w in TINY_WORDS if w.isalpha()]
    return "\n".join(" ".join(rng.choice(words, 10)) for _ in range(lines)) + "\n"


def test_context_probe_from_text(tmp_path, tiny_vocab):
    tokenizer = WordPieceTokenizer(tiny_vocab)
    text = tiny_text(np.random.default_rng(0))
    path = tmp_path / "heldout.txt"
    path.write_text(text, encoding="utf-8")
    probe = diagnostics.ContextProbe.from_text([str(path)], tokenizer, 16, 8, rate=0.2,
                                               seed=3, every_n_steps=5)
    stream = tokenizer.tokenize(tf.constant(text.splitlines())).flat_values.numpy()
    assert len(stream) == 400  # one id per word: every word is in the vocabulary
    original = np.where(probe.labels == 1, -1, probe.token_ids)
    assert probe.token_ids.shape == (8, 16) and probe.every_n_steps == 5
    assert (probe.token_ids[:, 0] == tokenizer.cls_id).all()
    assert (probe.token_ids[:, -1] == tokenizer.sep_id).all()
    assert probe.padding_mask.all()
    # 28 chunks of 14 tokens; rows spread from the first chunk to the last.
    starts = np.linspace(0, 27, 8).astype(int) * 14
    for row, start in zip(original, starts):
        kept = row[1:-1] != -1
        np.testing.assert_array_equal(row[1:-1][kept], stream[start:start + 14][kept])
    assert probe.labels.sum() > 0
    # Never [CLS]/[SEP] replaced; replacements are words of the text.
    assert not probe.labels[:, [0, -1]].any()
    assert set(probe.token_ids[probe.labels == 1]) <= set(stream)


def test_context_probe_from_several_files_and_invalid_utf8(tmp_path, tiny_vocab):
    tokenizer = WordPieceTokenizer(tiny_vocab)
    rng = np.random.default_rng(1)
    first, second = tiny_text(rng, 10), tiny_text(rng, 10)
    clean = tmp_path / "clean.txt"
    clean.write_text(first + second, encoding="utf-8")
    a = tmp_path / "a.txt"
    a.write_text(first, encoding="utf-8")
    b = tmp_path / "b.txt"
    # Invalid UTF-8 between two words; empty lines too.
    raw = second.encode("utf-8")
    cut = raw.index(b" ")
    b.write_bytes(raw[:cut] + b" \xff\xfe\xc3" + raw[cut:] + b"\n\n")
    kwargs = dict(max_seq_length=12, num_sequences=50, rate=0.3, seed=4)
    from_clean = diagnostics.ContextProbe.from_text([str(clean)], tokenizer, **kwargs)
    from_two = diagnostics.ContextProbe.from_text([str(a), str(b)], tokenizer, **kwargs)
    # The bad bytes are dropped: the same probe as the clean text.
    np.testing.assert_array_equal(from_two.token_ids, from_clean.token_ids)
    np.testing.assert_array_equal(from_two.labels, from_clean.labels)
    assert from_two.token_ids.shape == (20, 12)  # 200 words / 10 per row


def test_context_probe_from_text_errors(tmp_path, tiny_vocab):
    tokenizer = WordPieceTokenizer(tiny_vocab)
    missing = str(tmp_path / "nowhere" / "heldout.txt")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        diagnostics.ContextProbe.from_text([missing], tokenizer, 16, 8)
    short = tmp_path / "short.txt"
    short.write_text("the cat sat\n")
    with pytest.raises(ValueError, match="3 tokens is shorter than one probe sequence"):
        diagnostics.ContextProbe.from_text([str(short)], tokenizer, 16, 8)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n  \n\xff\n")
    with pytest.raises(ValueError, match="0 tokens"):
        diagnostics.ContextProbe.from_text([str(blank)], tokenizer, 16, 8)


def test_unigram_corruption_of_text_without_ordinary_tokens_says_why():
    token_ids = np.full([2, 6], 7, np.int32)
    with pytest.raises(ValueError, match="no token but special ones"):
        diagnostics.unigram_corruption(token_ids, np.zeros([2, 6], bool), 0.15,
                                       np.zeros(10), seed=0)
