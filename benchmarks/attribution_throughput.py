"""Attribution throughput: integrated-gradients explanations per second on CPU.

For each config (configs/electra_tiny.json, configs/electra_small.json; random weights,
a 2-label classifier head), times `Explainer.explain` (electra_tf.interpret: packing,
one forward/backward pass per group of texts, words) at --steps on --num_texts
sentences of the development corpus nltk_movie_reviews, and the same texts through one
prediction (the classifier's logits on the same packed batches, `predict_batch` texts
at a time). Prints one JSON line per config:

    {"benchmark": "attribution_throughput", "config": "electra_small", "steps": 32,
     "texts": N, "mean_tokens": ..., "explain_texts_per_sec": ..., "predict_texts_per_sec":
     ..., "cost_vs_predict": predict / explain throughput}

IG costs about (steps + 1) forward and backward passes per text, so cost_vs_predict
is expected near 3 x (steps + 1) on compute-bound configs and lower where per-call
overhead dominates prediction. Each measurement is the fastest of --repeats runs after
one untimed warmup (tracing), as on a shared machine the minimum is the least disturbed.

    python benchmarks/attribution_throughput.py [--num_texts=64 --steps=32 --repeats=3]

Needs ../shared/data (vocab, corpus).
"""

import dataclasses
import json
import os
import pathlib
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from absl import app, flags  # noqa: E402

from shared_data import SHARED_DATA as SHARED  # noqa: E402  (benchmarks/, the script's directory)

_VOCAB = flags.DEFINE_string("vocab", str(SHARED / "vocab" / "bert-base-uncased-vocab.txt"),
                             "Uncased BERT vocabulary.")
_CORPUS = flags.DEFINE_string(
    "corpus", str(SHARED / "corpus" / "nltk_movie_reviews" / "movie_reviews_all_docs.txt"),
    "One sentence per line (a development corpus).")
_CONFIGS = flags.DEFINE_list("configs", ["electra_tiny", "electra_small"], "configs/*.json names.")
_NUM_TEXTS = flags.DEFINE_integer("num_texts", 64, "Texts explained per run.")
_STEPS = flags.DEFINE_integer("steps", 32, "Integrated-gradients steps.")
_MAX_SEQ_LENGTH = flags.DEFINE_integer("max_seq_length", 128, "Truncation length.")
_PREDICT_BATCH = flags.DEFINE_integer("predict_batch", 32, "Texts per prediction call.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the fastest is reported.")
_SEED = flags.DEFINE_integer("seed", 0, "Text sampling and weight seed.")


def sample_texts(path, count, seed):
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if len(line.split()) >= 3]
    return random.Random(seed).sample(lines, count)


def fastest(run, repeats):
    run()  # traces the functions
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(config_name, texts):
    import keras
    import numpy as np
    import tensorflow as tf

    from electra_tf import config as config_lib
    from electra_tf import schema
    from electra_tf.interpret.explainer import Explainer
    from electra_tf.models.classifier import ElectraClassifier
    from electra_tf.text.tokenizer import WordPieceTokenizer

    cfg = config_lib.load_config(str(REPO_ROOT / "configs" / f"{config_name}.json"))
    tokenizer = WordPieceTokenizer(_VOCAB.value, lowercase=True)
    encoder_config = dataclasses.asdict(cfg.model.discriminator_encoder())
    encoder_config["vocab_size"] = tokenizer.vocab_size
    keras.utils.set_random_seed(_SEED.value)
    model = ElectraClassifier(encoder_config, num_labels=2)
    model.build_for_length(_MAX_SEQ_LENGTH.value)
    explainer = Explainer(model, tokenizer, _MAX_SEQ_LENGTH.value, ("negative", "positive"),
                          steps=_STEPS.value)

    batches = [explainer.packer(tf.constant(texts[i:i + _PREDICT_BATCH.value]))[0]
               for i in range(0, len(texts), _PREDICT_BATCH.value)]
    # The prediction baseline runs the classifier as a compiled function, as serving does.
    logits = tf.function(lambda features: model(features, training=False), reduce_retracing=True)

    def predict():
        for features in batches:
            logits(features).numpy()

    explain_seconds = fastest(lambda: explainer.explain(texts), _REPEATS.value)
    predict_seconds = fastest(predict, _REPEATS.value)
    tokens = sum(int(np.sum(b[schema.PADDING_MASK])) for b in batches)
    return {
        "benchmark": "attribution_throughput",
        "config": config_name,
        "steps": _STEPS.value,
        "texts": len(texts),
        "mean_tokens": round(tokens / len(texts), 1),
        "explain_texts_per_sec": round(len(texts) / explain_seconds, 2),
        "predict_texts_per_sec": round(len(texts) / predict_seconds, 2),
        "cost_vs_predict": round(explain_seconds / predict_seconds, 1),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    texts = sample_texts(_CORPUS.value, _NUM_TEXTS.value, _SEED.value)
    for name in _CONFIGS.value:
        print(json.dumps(measure(name, texts)), flush=True)


if __name__ == "__main__":
    app.run(main)
