"""What a pretrained discriminator holds, against a random one of the same config.

For a pretraining model_dir (tools/pretrain.py or benchmarks/pretraining_gain.py) and a
random initialisation of its discriminator config, one JSON line each:

  probe_sst2_features    dev accuracy of a logistic regression on FROZEN features of a
                         fixed SST-2 training sample: the final token states mean-pooled
                         over real tokens, concatenated with the [CLS] state
  probe_sst2_embeddings  the same on the mean of the token embeddings: does the shared
                         embedding table carry sentiment (lexical semantics) at all?
  token_state_cosine     mean pairwise cosine of the final states of real tokens in a
                         pretraining batch: near 1, every token looks alike
  rtd_auc                ROC AUC of the discriminator's logits on that batch, corrupted by
                         the model_dir's own generator (0.5: cannot tell replaced tokens)

Fine-tuning (pretraining_gain.py) says whether pretraining helps; these say why not, in a
minute and without training.

    python benchmarks/pretraining_diagnostics.py --model_dir=/tmp/gain/pretrained \
        --data_dir=/tmp/gain/pretraining_data

Needs scikit-learn (the `test` extra) and ../shared/data/glue/SST-2.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import json  # noqa: E402

from absl import app, flags  # noqa: E402

from shared_data import SHARED_DATA  # noqa: E402  (benchmarks/, the script's directory)

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Pretraining model_dir.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Its pretraining data (for the batch "
                                "statistics; skipped when unset).")
_GLUE_DIR = flags.DEFINE_string("glue_dir", str(SHARED_DATA / "glue" / "SST-2"), "SST-2.")
_TRAIN_EXAMPLES = flags.DEFINE_integer("train_examples", 8000, "SST-2 probe training sample.")
_MAX_SEQ_LENGTH = flags.DEFINE_integer("max_seq_length", 64, "SST-2 probe length.")
_SEED = flags.DEFINE_integer("seed", 0, "Random init, sample and batch seed.")


def pooled_features(encoder, features, batch_size=512):
    """Frozen features `[n, 3 * hidden]` and mean token embeddings `[n, embedding]`."""
    import numpy as np
    import tensorflow as tf

    from electra_tf import schema

    table = encoder.embeddings.token_embedding.embeddings
    states, embeddings = [], []
    for start in range(0, len(features[schema.TOKEN_IDS]), batch_size):
        batch = {key: value[start:start + batch_size] for key, value in features.items()}
        mask = batch[schema.PADDING_MASK].astype("float32")[..., None]
        count = mask.sum(axis=1)
        sequence = encoder(batch, training=False).numpy()
        embedded = tf.gather(table, batch[schema.TOKEN_IDS]).numpy()
        states.append(np.concatenate([(sequence * mask).sum(1) / count, sequence[:, 0]], 1))
        embeddings.append((embedded * mask).sum(1) / count)
    return np.concatenate(states), np.concatenate(embeddings)


def probe_accuracy(train_x, train_y, dev_x, dev_y):
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    classifier = LogisticRegression(max_iter=2000).fit((train_x - mean) / std, train_y)
    return float(classifier.score((dev_x - mean) / std, dev_y))


def sst2_probes(encoder, tokenizer):
    from electra_tf.data import glue

    task = glue.get_task("sst2")
    train = glue.read_split(task, _GLUE_DIR.value, "train").sample(_TRAIN_EXAMPLES.value,
                                                                     seed=_SEED.value)
    dev = glue.read_split(task, _GLUE_DIR.value, "dev")
    encode = glue.ExampleEncoder(tokenizer, _MAX_SEQ_LENGTH.value)
    (train_states, train_emb), (dev_states, dev_emb) = (
        pooled_features(encoder, encode(split)) for split in (train, dev))
    return {
        "probe_sst2_features": probe_accuracy(train_states, train.labels, dev_states, dev.labels),
        "probe_sst2_embeddings": probe_accuracy(train_emb, train.labels, dev_emb, dev.labels),
    }


def batch_statistics(discriminator, generator, tokenizer, config):
    """Token-state cosine and RTD AUC on one pretraining batch corrupted by `generator`."""
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from electra_tf import schema

    from electra_tf.data import pretraining
    from electra_tf.models import pretrainer

    batch = next(iter(pretraining.make_pretraining_dataset(
        _DATA_DIR.value, tokenizer, 64, config.data.max_seq_length, seed=_SEED.value)))
    uniform = tf.random.stateless_uniform(tf.shape(batch[schema.MASK_POSITIONS]),
                                          seed=[_SEED.value, 1])
    p = config.pretraining
    log_prior = None
    if p.flatten_toward == "unigram":
        log_prior = pretrainer.unigram_log_prior(pretraining.token_counts(
            _DATA_DIR.value, tokenizer, config.data.max_seq_length))
    # The start temperature, one pass (the schedule and extra passes are left out).
    corrupted = pretrainer.corrupt(batch, generator(batch), p.temperature, uniform,
                                   disallow_correct=p.disallow_correct,
                                   top_k=p.sampling_top_k, log_prior=log_prior)
    inputs = corrupted["disc_inputs"]
    real = inputs[schema.PADDING_MASK].numpy()
    labels = corrupted["rtd_labels"].numpy()[real]
    logits = discriminator(inputs, training=False).numpy()[real]
    states = discriminator.encoder(inputs, training=False).numpy()[real]
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    sample = np.random.default_rng(_SEED.value).choice(len(states), min(len(states), 1000),
                                                       replace=False)
    cosines = states[sample] @ states[sample].T
    off_diagonal = cosines[~np.eye(len(sample), dtype=bool)]
    return {"token_state_cosine": float(off_diagonal.mean()),
            "rtd_auc": float(roc_auc_score(labels, logits)),
            "replaced_fraction": float(labels.mean())}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import keras

    from electra_tf.models import artifacts
    from electra_tf.models.pretrainer import ElectraDiscriminator
    from electra_tf.text.tokenizer import WordPieceTokenizer

    model_dir = _MODEL_DIR.value
    discriminator, config, vocab_path, meta = artifacts.load_artifact(
        os.path.join(model_dir, "discriminator"), expected_kind="discriminator")
    generator = None
    if _DATA_DIR.value:  # Batch statistics need the generator (not in an MLM model_dir).
        generator, *_ = artifacts.load_artifact(os.path.join(model_dir, "generator"),
                                                expected_kind="generator")
    tokenizer = WordPieceTokenizer(vocab_path, lowercase=config.data.lowercase)
    keras.utils.set_random_seed(_SEED.value)
    random_init = artifacts.build_inputs(ElectraDiscriminator(meta["encoder_config"]), 8)

    for init, model in (("pretrained", discriminator), ("random", random_init)):
        record = {"model_dir": model_dir, "init": init,
                  "pretraining_step": meta.get("step") if init == "pretrained" else 0}
        record.update(sst2_probes(model.encoder, tokenizer))
        if _DATA_DIR.value:
            record.update(batch_statistics(model, generator, tokenizer, config))
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in record.items()}), flush=True)


if __name__ == "__main__":
    app.run(main)
