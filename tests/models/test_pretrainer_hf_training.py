"""ElectraPretrainer's training step is ELECTRA's: it trains like Hugging Face's models.

From the same initial weights (copied by the converter), on the same batch, with the
same replacement noise and dropout 0, three steps of `ElectraPretrainer.fit` and three
steps of a reference loop over HF `ElectraForMaskedLM` + `ElectraForPreTraining` (shared
embeddings, MLM + 50·RTD, global-norm clipping, AdamW without decay on LayerNorm and
biases) give the same losses at every step and the same discriminator afterwards.

The reference applies Keras' AdamW rule (epsilon added to the root of the
un-corrected second moment, as in Keras and Google's ELECTRA), not `torch.optim.AdamW`
(epsilon after bias correction): the two differ in the first steps for parameters
with gradients near epsilon, such as the rows of rare tokens.

This is the check behind "the discriminator does not learn in a short run": with the
step proven equal, that is the dynamics of the objective, not a bug.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from electra_tf.convert import hf as hf_convert  # noqa: E402
from electra_tf import schema  # noqa: E402
from electra_tf.models.pretrainer import sample_from_logits  # noqa: E402
from electra_tf.training.optimization import make_optimizer  # noqa: E402
from test_pretrainer import VOCAB, make_batch, make_pretrainer  # noqa: E402

pytestmark = pytest.mark.parity

LR, WEIGHT_DECAY, EPSILON, STEPS = 1e-2, 0.01, 1e-6, 3


def _hf_models(model, tmp_path):
    """HF copies of the pretrainer's generator and discriminator, sharing embeddings."""
    vocab = tmp_path / "vocab.txt"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab.write_text("\n".join(tokens + [f"w{i}" for i in range(len(tokens), VOCAB)]) + "\n")
    hf_convert.save_hf_model(model.discriminator, str(tmp_path / "disc"), str(vocab), True)
    hf_convert.save_hf_model(model.generator, str(tmp_path / "gen"), str(vocab), True)
    disc = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "disc")
    gen = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "gen")
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    return gen.train(), disc.train()


class KerasStyleAdamW:
    """Keras' AdamW update (with ELECTRA's exclusions and global clipping) in torch."""

    def __init__(self, named_parameters):
        self.params = list({id(p): (n, p) for n, p in named_parameters}.values())
        self.moments = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for _, p in self.params}

    @torch.no_grad()
    def step(self, t, lr):
        norm = torch.sqrt(sum((p.grad ** 2).sum() for _, p in self.params))
        scale = min(1.0, 1.0 / float(norm))
        alpha = lr * (1 - 0.999 ** t) ** 0.5 / (1 - 0.9 ** t)
        for name, p in self.params:
            g = p.grad * scale
            m, v = self.moments[id(p)]
            if not ("LayerNorm" in name or name.endswith("bias")):
                p -= lr * WEIGHT_DECAY * p
            m += (g - m) * 0.1
            v += (g * g - v) * 0.001
            p -= alpha * m / (v.sqrt() + EPSILON)


def _hf_losses(gen, disc, batch, uniform):
    t = {k: torch.from_numpy(np.asarray(v).astype(np.int64)) for k, v in batch.items()
         if k != schema.MASK_WEIGHTS}
    weights = torch.from_numpy(batch[schema.MASK_WEIGHTS])
    ids, positions, targets = t[schema.TOKEN_IDS], t[schema.MASK_POSITIONS], t[schema.MASK_IDS]
    attention = t[schema.PADDING_MASK]
    logits = gen(input_ids=ids, attention_mask=attention,
                 token_type_ids=t[schema.SEGMENT_IDS]).logits
    logits = torch.gather(logits, 1, positions[..., None].expand(-1, -1, logits.shape[-1]))
    mlm = (torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
           * weights).sum() / weights.sum()
    sampled = torch.from_numpy(
        sample_from_logits(tf.constant(logits.detach().numpy()), 1.0, uniform).numpy()
    ).long()
    rows = torch.arange(ids.shape[0])[:, None].expand_as(positions)
    real = weights > 0
    original, corrupted = ids.clone(), ids.clone()
    original[rows[real], positions[real]] = targets[real]
    corrupted[rows[real], positions[real]] = sampled[real]
    labels = ((corrupted != original) & (attention > 0)).float()
    rtd_logits = disc(input_ids=corrupted, attention_mask=attention,
                      token_type_ids=t[schema.SEGMENT_IDS]).logits
    rtd = (torch.nn.functional.binary_cross_entropy_with_logits(
        rtd_logits, labels, reduction="none") * attention).sum() / attention.sum()
    return mlm, rtd


def test_training_steps_match_hugging_face(tmp_path):
    keras.utils.set_random_seed(0)
    model = make_pretrainer(seed=5)
    batch, _ = make_batch()
    batch = {k: np.asarray(v) for k, v in batch.items()}
    model.compile(optimizer=make_optimizer(LR, num_train_steps=100, warmup_steps=0,
                                           weight_decay=WEIGHT_DECAY, epsilon=EPSILON))
    model.build_from_spec(tf.data.Dataset.from_tensors(batch).element_spec)
    inputs = {k: batch[k] for k in (schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK)}
    initial_logits = model.discriminator(inputs, training=False).numpy()
    gen, disc = _hf_models(model, tmp_path)
    optimizer = KerasStyleAdamW([*disc.named_parameters(), *gen.named_parameters()])

    # The noise and learning rate of each train step, read just before it runs.
    noise = []
    record = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda *_, **__: noise.append(
        (model._step_uniform(batch), float(model.optimizer.learning_rate))))
    # One step per epoch: Keras resets the metrics at each epoch, so the history
    # holds each step's own losses.
    ours = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), epochs=STEPS,
                     steps_per_epoch=1, callbacks=[record], verbose=0).history

    for step, (uniform, lr) in enumerate(noise, 1):
        mlm, rtd = _hf_losses(gen, disc, batch, uniform)
        for _, p in optimizer.params:
            p.grad = None
        (mlm + 50.0 * rtd).backward()
        optimizer.step(step, lr)
        np.testing.assert_allclose(ours["mlm_loss"][step - 1], mlm.item(), rtol=1e-4,
                                   err_msg=f"mlm_loss at step {step}")
        np.testing.assert_allclose(ours["rtd_loss"][step - 1], rtd.item(), rtol=1e-4,
                                   err_msg=f"rtd_loss at step {step}")

    ours_logits = model.discriminator(inputs, training=False).numpy()
    disc.eval()
    hf_logits = disc(input_ids=torch.from_numpy(batch[schema.TOKEN_IDS].astype(np.int64)),
                     attention_mask=torch.from_numpy(batch[schema.PADDING_MASK].astype(np.int64)),
                     token_type_ids=torch.from_numpy(batch[schema.SEGMENT_IDS].astype(np.int64))
                     ).logits.detach().numpy()
    # The weights moved (lr 1e-2), and moved the same way.
    assert np.abs(ours_logits - initial_logits).max() > 1e-2
    np.testing.assert_allclose(ours_logits, hf_logits, atol=1e-4)
