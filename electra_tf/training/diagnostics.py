"""Is the discriminator learning, and does it use context? Pretraining diagnostics.

Two instruments that `training/pretrain.py` attaches to `callbacks.MetricsLogger`:

* `CollapseWatch` reads each log record's `rtd_prior_gap` (the entropy of the
  replaced fraction minus rtd_loss, in nats) and warns once, in plain words, when it
  has stayed below a threshold for several consecutive records after warmup: the
  discriminator answers the constant prior and learns nothing. At small scale this
  happens when the generator reaches unigram statistics (benchmarks/README.md).
* `ContextProbe` measures, on held-out text, whether the model uses context: it
  replaces a fraction of the tokens by draws from the held-out text's own unigram
  distribution, so a replaced and an original token are alike by identity (a
  detector that only knows which token it sees scores AUC 0.5, up to the sampling
  noise of the counts and a bias of about +0.01 at an 8k vocabulary: a draw equal to
  the original counts as original, so replaced tokens are slightly rarer), and reports the ranking AUC of the model's per-token scores
  (`context_auc`). The pretrainers' `token_scores` give those scores: the
  discriminator's logits, or a masked LM's surprisal of each token with it masked.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import schema
from electra_tf.models.losses import ranking_auc


class CollapseWatch:
    """Warns once when `rtd_prior_gap` stays below `gap` for `patience` records.

    Args:
      gap: nats; below it a record counts as "at the prior".
      patience: consecutive records at the prior before the warning.
      after_step: records at or before this step (warmup) are not counted.
    """

    def __init__(self, gap, patience, after_step=0):
        self.gap = gap
        self.patience = patience
        self.after_step = after_step
        self.run = 0
        self.warned_at = None

    def observe(self, record):
        """Looks at one log record ({"step": ..., "rtd_prior_gap": ...}).

        Returns:
          True when this record triggered the warning.
        """
        value = record.get("rtd_prior_gap")
        if value is None or record["step"] <= self.after_step:
            return False
        self.run = self.run + 1 if value < self.gap else 0
        if self.run < self.patience or self.warned_at is not None:
            return False
        self.warned_at = record["step"]
        logging.warning(
            "The discriminator is not learning: for the last %d log records (to step %d) "
            "its loss has been within %.3g nats of the constant answer 'nothing replaced' "
            "(rtd_prior_gap %.4f). At small scale this happens once the generator samples "
            "plain word frequencies, which token identity cannot tell apart; a generator "
            "sampling temperature above 1 (pretraining.temperature, or a schedule) keeps "
            "the task learnable. See benchmarks/README.md, 'pretraining_sweep'.",
            self.patience, record["step"], self.gap, value)
        return True


def pack_probe_sequences(token_stream, max_seq_length, num_sequences, cls_id, sep_id,
                         pad_id):
    """Cuts a token stream into `[CLS] chunk [SEP]` rows, spread evenly over it.

    Args:
      token_stream: int array `[n]` of WordPiece ids (no special tokens).
      max_seq_length: row length.
      num_sequences: rows wanted (fewer when the stream is short).

    Returns:
      (token_ids, padding_mask): int32 and bool arrays `[rows, max_seq_length]`.
    """
    chunk = max_seq_length - 2
    available = len(token_stream) // chunk
    if available == 0:
        raise ValueError(f"held-out text of {len(token_stream)} tokens is shorter than "
                         f"one probe sequence ({chunk} tokens)")
    starts = np.linspace(0, available - 1, min(num_sequences, available)).astype(int) * chunk
    rows = np.full([len(starts), max_seq_length], pad_id, np.int32)
    for r, start in enumerate(starts):
        rows[r, 0] = cls_id
        rows[r, 1:chunk + 1] = token_stream[start:start + chunk]
        rows[r, chunk + 1] = sep_id
    return rows, rows != pad_id


def unigram_corruption(token_ids, candidates, rate, counts, seed):
    """Replaces about `rate` of the candidate tokens by draws from `counts`.

    Args:
      token_ids: int32 `[rows, seq_len]`.
      candidates: bool `[rows, seq_len]`, the positions that may be replaced.
      rate: fraction of the candidates chosen.
      counts: float `[vocab]`, the unigram counts to draw from.
      seed: numpy seed.

    Returns:
      (corrupted_ids int32, labels float32): labels are 1.0 where the token changed
      (a draw equal to the original counts as original, as in pretraining).
    """
    if not counts.sum() > 0:
        raise ValueError("the held-out text has no token but special ones ([UNK] and the "
                         "like): is it in the vocabulary's language?")
    rng = np.random.default_rng(seed)
    chosen = candidates & (rng.random(token_ids.shape) < rate)
    draws = rng.choice(len(counts), size=token_ids.shape, p=counts / counts.sum())
    corrupted = np.where(chosen, draws, token_ids).astype(np.int32)
    return corrupted, (corrupted != token_ids).astype(np.float32)


class ContextProbe:
    """Context AUC of a pretrainer's `token_scores` on unigram-corrupted held-out text.

    Args:
      token_ids: int32 `[rows, seq_len]` held-out sequences (`pack_probe_sequences`).
      padding_mask: bool `[rows, seq_len]`.
      special_ids: ids never replaced nor scored ([CLS], [SEP], [PAD], ...).
      vocab_size: size of the vocabulary.
      mask_id: the [MASK] id (a masked LM scores each token with it masked).
      rate: fraction of the other tokens replaced.
      seed: the corruption's seed (the same probe batch at every evaluation).
      every_n_steps: how often `MetricsLogger` runs it.
      batch_size: rows per forward pass.
    """

    def __init__(self, token_ids, padding_mask, special_ids, vocab_size, mask_id, rate=0.15,
                 seed=0, every_n_steps=100, batch_size=32):
        self.mask_id = mask_id
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.padding_mask = np.asarray(padding_mask, bool)
        self.candidates = self.padding_mask & ~np.isin(token_ids, list(special_ids))
        counts = np.bincount(np.asarray(token_ids)[self.candidates], minlength=vocab_size)
        self.token_ids, self.labels = unigram_corruption(
            np.asarray(token_ids, np.int32), self.candidates, rate,
            counts.astype(np.float64), seed)

    @classmethod
    def from_text(cls, paths, tokenizer, max_seq_length, num_sequences, **kwargs):
        """Builds the probe from held-out text files (read whole, in order).

        Raises:
          FileNotFoundError naming a missing file; ValueError for too little text.
        """
        pieces = []
        for path in paths:
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(f"held-out probe text {path} does not exist")
            with tf.io.gfile.GFile(path, "rb") as f:
                raw = f.read()
            text = raw.decode("utf-8", errors="ignore")
            if len(text.encode("utf-8")) != len(raw):
                # As the data builder does: the bad bytes are dropped, and said so.
                logging.warning("%s: invalid UTF-8 bytes dropped", path)
            lines = [line for line in text.splitlines() if line.strip()]
            if lines:
                pieces.append(tokenizer.tokenize(tf.constant(lines)).flat_values.numpy())
        stream = np.concatenate(pieces) if pieces else np.zeros([0], np.int64)
        token_ids, padding_mask = pack_probe_sequences(
            stream, max_seq_length, num_sequences, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.pad_id)
        return cls(token_ids, padding_mask, tokenizer.special_ids, tokenizer.vocab_size,
                   tokenizer.mask_id, **kwargs)

    def scores(self, model):
        """The model's `token_scores` on the probe batch, float32 `[rows, seq_len]`."""
        out = []
        for start in range(0, len(self.token_ids), self.batch_size):
            rows = slice(start, start + self.batch_size)
            out.append(model.token_scores({
                schema.TOKEN_IDS: tf.constant(self.token_ids[rows]),
                schema.SEGMENT_IDS: tf.zeros_like(self.token_ids[rows]),
                schema.PADDING_MASK: tf.constant(self.padding_mask[rows]),
            }, mask_id=self.mask_id).numpy())
        return np.concatenate(out)

    def __call__(self, model):
        """Returns {"context_auc": float} for `model` (a pretrainer)."""
        auc, _ = ranking_auc(self.scores(model), self.labels, self.candidates)
        return {"context_auc": float(auc)}


def describe(records):
    """Plain words on the last log record and the last context probe, for a person.

    Args:
      records: metrics.jsonl records, oldest first.

    Returns:
      a few lines of text.
    """
    last = records[-1]
    lines = [f"Last log (step {last['step']}):"]
    if "rtd_prior_gap" in last:
        lines.append(
            f"  rtd_prior_gap {last['rtd_prior_gap']:.3f} nats (0: the discriminator answers "
            f"the constant prior), rtd_auc {last['rtd_auc']:.3f} on its own replacements")
    if "mlm_loss" in last:
        lines.append(f"  mlm_loss {last['mlm_loss']:.3f}")
    probes = [r for r in records if "context_auc" in r]
    if probes:
        lines.append(
            f"  context probe on held-out text (step {probes[-1]['step']}): AUC "
            f"{probes[-1]['context_auc']:.3f} at finding words replaced by random frequent "
            "words (0.5: no use of context)")
    return "\n".join(lines)
