"""How learnable is the context probe's task at a CPU budget, and by which network?

The pretraining diagnostics' context probe (`electra_tf.training.diagnostics`) replaces
15% of held-out tokens by draws from the text's unigram distribution and asks for the
ranking AUC of "replaced". ELECTRA's discriminator stays near 0.5 on it in every recipe of
`pretraining_sweep.py`. This benchmark separates the *objective* from the *network*: it
trains on exactly the probe's task (the training batches corrupted by unigram draws, no
generator) and compares, on the same batches and the same probe:

  bigram          add-one bigram counts from the first `--count_batches` training batches;
                  score = surprise of the token given its left and right neighbours.
                  No training: the context the data offers at this size.
  conv            a one-layer convolutional detector (embedding 64, Conv1D 256 wide, kernel
                  5, GELU, linear): a network that sees neighbours from step 0.
  discriminator   the config's ELECTRA discriminator (the same encoder `pretrain.py` trains);
                  --position_init=sinusoidal, --seq_length and --override try what might
                  make it start using its neighbours.
  hf              Hugging Face's ElectraForPreTraining (PyTorch) of the same sizes and
                  optimizer on the same batches (`make install-parity`): a peer that tells
                  a property of the architecture at this scale from a defect of ours.

Trained arms log the probe every `--probe_every` steps. One JSON line per arm:

  {"arm": "conv", "lr": 0.001, "steps": 2000, "seconds": ..., "context_auc": last,
   "context_auc_max": ..., "first_step_at_0.6": ..., "first_step_at_0.7": ...,
   "train_loss_last": ..., "curve": [[step, auc], ...]}

    python benchmarks/context_ceiling.py --data_dir=/tmp/sweep/pretraining_data_128 \
        --vocab=/tmp/sweep/vocab.txt --steps=2000 --plot=/tmp/ceiling.png
"""

import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import shared_data  # noqa: E402  (benchmarks/, the script's directory)
from electra_tf import config as config_lib  # noqa: E402
from electra_tf import schema  # noqa: E402
from electra_tf.models.pretrainer import ElectraDiscriminator, scatter_at_positions  # noqa: E402
from electra_tf.training import diagnostics  # noqa: E402
from electra_tf.training import pretrain as pretrain_lib  # noqa: E402
from electra_tf.models.losses import ranking_auc  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", str(REPO_ROOT / "configs" / "electra_tiny.json"),
                    "Config of the discriminator arm (model, data, batch size).")
flags.DEFINE_string("data_dir", None, "Pretraining data (tools/build_pretraining_data.py).")
flags.DEFINE_string("vocab", None, "The data's vocabulary.")
flags.DEFINE_list("probe_text", None, "Held-out files (default: the benchmarks' held-out "
                  "speeches, shared_data.heldout_files).")
flags.DEFINE_list("arms", ["bigram", "conv", "discriminator"], "Arms to run.")
flags.DEFINE_integer("steps", 2000, "Training steps of the trained arms.")
flags.DEFINE_list("conv_lr", ["1e-3"], "Learning rates of the conv arm (one run each).")
flags.DEFINE_list("discriminator_lr", ["1e-3"], "Learning rates of the discriminator arm.")
flags.DEFINE_multi_string("override", [], "Config overrides for the discriminator arm, "
                          "e.g. model.initializer_range=0.09.")
flags.DEFINE_enum("position_init", "learned", ["learned", "sinusoidal"],
                  "Discriminator arm: the position table as initialised (learned = the "
                  "config's truncated normal; sinusoidal = sin/cos rows, still trained).")
flags.DEFINE_float("position_scale", None, "RMS of a sinusoidal position row (default: "
                   "the config's initializer_range).")
flags.DEFINE_integer("seq_length", None, "Crop the training batches and the probe's "
                     "sequences to this many tokens (default: the data's length).")
flags.DEFINE_integer("count_batches", 600, "Batches that give the unigram (and bigram) "
                     "counts. Too few, and rare tokens are never drawn as replacements, "
                     "which token identity alone then detects.")
flags.DEFINE_integer("probe_every", 100, "Probe interval of the trained arms.")
flags.DEFINE_float("rate", 0.15, "Fraction of the tokens replaced, in training and probe.")
flags.DEFINE_integer("seed", 42, "Seed of the corruption and of the networks.")
flags.DEFINE_string("plot", None, "Optional PNG of context_auc against the step.")
flags.mark_flags_as_required(["data_dir", "vocab"])


def original_ids(batch):
    """The batch's uncorrupted token ids `[batch, seq_len]` (the data holds them masked)."""
    return scatter_at_positions(batch[schema.TOKEN_IDS], batch["mask_positions"],
                                batch["mask_ids"], batch["mask_weights"]).numpy()


class Corpus:
    """The training batches, their unigram/bigram counts and the corruption of a step."""

    def __init__(self, cfg, data_dir, count_batches, rate, seed):
        self.tokenizer = pretrain_lib.load_tokenizer(cfg)
        self.dataset = pretrain_lib.make_dataset(cfg, data_dir, self.tokenizer)
        self.special = np.array(sorted(self.tokenizer.special_ids))
        self.rate = rate
        self.seed = seed
        n = self.tokenizer.vocab_size
        self.unigram = np.zeros(n)
        self.bigram = np.zeros((n, n), np.float32)
        for batch in self.dataset.take(count_batches):
            ids, real = original_ids(batch), batch[schema.PADDING_MASK].numpy()
            counted = real & ~np.isin(ids, self.special)
            self.unigram += np.bincount(ids[counted], minlength=n)
            pairs = real[:, :-1] & real[:, 1:]
            np.add.at(self.bigram, (ids[:, :-1][pairs], ids[:, 1:][pairs]), 1)

    def batches(self, steps):
        """(inputs, labels, candidates) of each step: unigram-corrupted training batches."""
        for step, batch in enumerate(self.dataset.take(steps)):
            crop = slice(None, FLAGS.seq_length)
            ids = original_ids(batch)[:, crop]
            real = batch[schema.PADDING_MASK].numpy()[:, crop]
            candidates = real & ~np.isin(ids, self.special)
            corrupted, labels = diagnostics.unigram_corruption(
                ids, candidates, self.rate, self.unigram, seed=self.seed * 100003 + step)
            inputs = {schema.TOKEN_IDS: tf.constant(corrupted),
                      schema.SEGMENT_IDS: batch[schema.SEGMENT_IDS][:, crop],
                      schema.PADDING_MASK: batch[schema.PADDING_MASK][:, crop]}
            yield inputs, tf.constant(labels), tf.constant(candidates.astype(np.float32))


def bigram_scores(corpus, token_ids):
    """Surprise of each token given both neighbours, relative to its unigram probability.

    Args:
      token_ids: int `[rows, seq_len]`.

    Returns:
      float `[rows, seq_len]`, higher = more likely replaced.
    """
    unigram = (corpus.unigram + 1.0) / (corpus.unigram.sum() + len(corpus.unigram))
    row_totals = corpus.bigram.sum(1)
    prev, nxt = np.roll(token_ids, 1, axis=1), np.roll(token_ids, -1, axis=1)
    # Add-one smoothing towards the unigram: an unseen pair costs its unigram odds.
    left = np.log((corpus.bigram[prev, token_ids] + unigram[token_ids]) / (row_totals[prev] + 1))
    right = np.log((corpus.bigram[token_ids, nxt] + unigram[nxt]) / (row_totals[token_ids] + 1))
    return -(left - np.log(unigram[token_ids])) - (right - np.log(unigram[nxt]))


class ConvDetector(keras.Model):
    """Embedding -> Conv1D(kernel 5) -> GELU -> logit: a detector that sees neighbours.

    Call args: inputs dict with token_ids `[batch, seq_len]`. Returns logits `[batch, seq_len]`.
    """

    def __init__(self, vocab_size, embedding_size=64, filters=256, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_size = vocab_size, embedding_size
        self.filters, self.kernel_size = filters, kernel_size
        self.embedding = keras.layers.Embedding(vocab_size, embedding_size)
        self.conv = keras.layers.Conv1D(filters, kernel_size, padding="same",
                                        activation="gelu")
        self.logit = keras.layers.Dense(1)

    def call(self, inputs, training=None):
        return self.logit(self.conv(self.embedding(inputs[schema.TOKEN_IDS])))[..., 0]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_size": self.embedding_size, "filters": self.filters,
                "kernel_size": self.kernel_size}


class _Scorer:
    """What ContextProbe calls: `token_scores` = the network's logits."""

    def __init__(self, model):
        self.model = model

    def token_scores(self, inputs, mask_id=None):
        del mask_id
        return self.model(inputs, training=False)


def sinusoid_table(rows, width, rms):
    """`[rows, width]` sin/cos rows (Vaswani et al.) rescaled to row RMS `rms`.

    Any fixed offset is a linear map of such rows, so one query/key product can
    pick "the token before" at every position; a random table has to learn it
    separately for each of its rows.
    """
    position = np.arange(rows)[:, None]
    freq = np.exp(-np.log(10000.0) * (np.arange(0, width, 2) / width))
    table = np.zeros((rows, width), np.float32)
    table[:, 0::2] = np.sin(position * freq)
    table[:, 1::2] = np.cos(position * freq)[:, : width // 2]
    return table * (rms / np.sqrt(np.mean(table ** 2)))


def set_sinusoidal_positions(model, corpus, rms):
    """Builds `model` on one batch and overwrites its position table."""
    inputs, _, _ = next(iter(corpus.batches(1)))
    model(inputs)
    table = model.encoder.embeddings.position_embedding.position_embeddings
    table.assign(sinusoid_table(*table.shape, rms))


def train_arm(name, model, optimizer, corpus, probe, steps, probe_every):
    """Trains `model` on the corrupted batches; returns the arm's JSON record."""

    @tf.function
    def step(inputs, labels, weights):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(inputs, training=True), tf.float32)
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)
                                 * weights) / tf.reduce_sum(weights)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    curve, losses, start = [], [], time.time()
    for i, (inputs, labels, weights) in enumerate(corpus.batches(steps), 1):
        losses.append(float(step(inputs, labels, weights)))
        if i % probe_every == 0 or i == steps:
            auc = probe(_Scorer(model))["context_auc"]
            curve.append([i, round(auc, 4)])
            logging.info("%s step %d: train loss %.4f, context_auc %.4f", name, i,
                         np.mean(losses[-probe_every:]), auc)
    return _summary(curve, losses, steps, probe_every, start)


def _summary(curve, losses, steps, probe_every, start):
    aucs = [auc for _, auc in curve]
    return {"steps": steps, "seconds": round(time.time() - start, 1),
            "context_auc": aucs[-1], "context_auc_max": max(aucs),
            "first_step_at_0.6": next((s for s, a in curve if a >= 0.6), None),
            "first_step_at_0.7": next((s for s, a in curve if a >= 0.7), None),
            "train_loss_last": round(float(np.mean(losses[-probe_every:])), 4),
            "curve": curve}


class _TorchScorer:
    """`token_scores` of a Hugging Face ElectraForPreTraining (its RTD logits)."""

    def __init__(self, model):
        self.model = model

    def token_scores(self, inputs, mask_id=None):
        import torch

        del mask_id
        self.model.eval()
        with torch.no_grad():
            logits = self.model(**_torch_inputs(inputs)).logits
        self.model.train()
        return tf.constant(logits.numpy())


def _torch_inputs(inputs):
    import torch

    return {"input_ids": torch.from_numpy(np.asarray(inputs[schema.TOKEN_IDS], np.int64)),
            "token_type_ids": torch.from_numpy(np.asarray(inputs[schema.SEGMENT_IDS],
                                                          np.int64)),
            "attention_mask": torch.from_numpy(np.asarray(inputs[schema.PADDING_MASK],
                                                          np.int64))}


def train_hf_arm(cfg, corpus, probe, steps, probe_every, lr):
    """The discriminator arm with Hugging Face's own ELECTRA (PyTorch) on the same batches.

    Same sizes, initializer range, AdamW (no decay on biases and LayerNorms), warmup,
    linear decay and clipping as our optimizer: a peer that tells a property of the
    architecture at this scale from a defect of ours.
    """
    import torch
    import transformers

    torch.manual_seed(FLAGS.seed)
    m, t = cfg.model, cfg.train
    model = transformers.ElectraForPreTraining(transformers.ElectraConfig(
        vocab_size=corpus.tokenizer.vocab_size, embedding_size=m.embedding_size,
        hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads, intermediate_size=m.intermediate_size,
        hidden_act="gelu", hidden_dropout_prob=m.dropout_rate,
        attention_probs_dropout_prob=m.attention_dropout_rate,
        max_position_embeddings=m.max_position_embeddings, type_vocab_size=m.type_vocab_size,
        initializer_range=m.initializer_range, layer_norm_eps=m.layer_norm_epsilon))
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    rest = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr, betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_epsilon)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, t.warmup_steps, steps)
    curve, losses, start = [], [], time.time()
    for i, (inputs, labels, weights) in enumerate(corpus.batches(steps), 1):
        logits = model(**_torch_inputs({k: v.numpy() for k, v in inputs.items()})).logits
        w = torch.from_numpy(weights.numpy())
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(labels.numpy().astype(np.float32)), reduction="none")
            * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
        if i % probe_every == 0 or i == steps:
            auc = probe(_TorchScorer(model))["context_auc"]
            curve.append([i, round(auc, 4)])
            logging.info("hf step %d: train loss %.4f, context_auc %.4f", i,
                         np.mean(losses[-probe_every:]), auc)
    return _summary(curve, losses, steps, probe_every, start)


def plot(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in records:
        label = r["arm"] + (f" lr {r['lr']:g}" if "lr" in r else "")
        if r.get("curve"):
            ax.plot(*zip(*r["curve"]), label=label)
        else:
            ax.axhline(r["context_auc"], linestyle="--", color="gray", label=label)
    ax.axhline(0.5, color="black", linewidth=0.5)
    ax.set_xlabel("training step (batches of the probe's own task)")
    ax.set_ylabel("context_auc on held-out text")
    ax.set_title("Who learns the context probe's task at a CPU budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    del argv
    cfg = config_lib.load_config(FLAGS.config, [
        f"data.vocab_path={FLAGS.vocab}",
        f"model.vocab_size={sum(1 for _ in open(FLAGS.vocab, encoding='utf-8'))}",
        f"train.num_train_steps={FLAGS.steps}", *FLAGS.override])
    probe_text = FLAGS.probe_text or shared_data.heldout_files(shared_data.SHARED_DATA / "corpus")
    corpus = Corpus(cfg, FLAGS.data_dir, FLAGS.count_batches, FLAGS.rate, FLAGS.seed)
    probe = diagnostics.ContextProbe.from_text(
        probe_text, corpus.tokenizer, FLAGS.seq_length or cfg.data.max_seq_length,
        cfg.diagnostics.context_probe_sequences, rate=FLAGS.rate, seed=FLAGS.seed)
    records = []

    def emit(record):
        records.append(record)
        print(json.dumps(record), flush=True)

    for arm in FLAGS.arms:
        if arm == "bigram":
            scores = bigram_scores(corpus, probe.token_ids)
            auc, _ = ranking_auc(scores, probe.labels, probe.candidates)
            emit({"arm": "bigram", "count_batches": FLAGS.count_batches,
                  "context_auc": round(float(auc), 4)})
        elif arm == "hf":
            for lr in map(float, FLAGS.discriminator_lr):
                record = train_hf_arm(cfg, corpus, probe, FLAGS.steps, FLAGS.probe_every, lr)
                emit({"arm": "hf", "lr": lr, "overrides": FLAGS.override,
                      "seq_length": FLAGS.seq_length, **record})
        elif arm in ("conv", "discriminator"):
            for lr in map(float, getattr(FLAGS, f"{arm}_lr")):
                keras.utils.set_random_seed(FLAGS.seed)
                if arm == "conv":
                    model = ConvDetector(corpus.tokenizer.vocab_size)
                    optimizer = keras.optimizers.Adam(lr)
                else:
                    model = ElectraDiscriminator(
                        dataclasses.asdict(cfg.model.discriminator_encoder()))
                    if FLAGS.position_init == "sinusoidal":
                        set_sinusoidal_positions(
                            model, corpus, FLAGS.position_scale or cfg.model.initializer_range)
                    # The pretraining optimizer itself (warmup, decay, clipping, AdamW).
                    optimizer = pretrain_lib.build_optimizer(
                        config_lib.apply_overrides(cfg, [f"train.learning_rate={lr}"]))
                record = train_arm(arm, model, optimizer, corpus, probe, FLAGS.steps,
                                   FLAGS.probe_every)
                extra = ({"overrides": FLAGS.override, "position_init": FLAGS.position_init,
                          "position_scale": FLAGS.position_scale,
                          "seq_length": FLAGS.seq_length}
                         if arm == "discriminator" else {})
                emit({"arm": arm, "lr": lr, **extra, **record})
        else:
            raise app.UsageError(f"unknown arm {arm!r} (bigram, conv, discriminator, hf)")
    if FLAGS.plot:
        plot(records, FLAGS.plot)


if __name__ == "__main__":
    app.run(main)
