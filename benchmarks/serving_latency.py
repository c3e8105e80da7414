"""Serving latency: the exported SavedModel's text signature vs Hugging Face PyTorch.

Both sides answer the same question on the same texts with the same weights: the
replaced-token probability of every token of raw text, tokenization included.

  electra_tf_savedmodel  tools/export.py's SavedModel of an ELECTRA-small discriminator
                         (configs/electra_small.json, random weights), loaded with
                         tf.saved_model.load; `replaced_token_scores(text=...)`:
                         in-graph normalization + WordPiece + packing + model
  hf_pytorch             the same weights written by electra_tf.convert.hf, loaded as
                         transformers ElectraForPreTraining + BertTokenizerFast;
                         tokenizer(padding=True, truncation, max_length) -> model ->
                         sigmoid, under torch.inference_mode

Both pad a batch only to its longest text and truncate at --max_seq_length; our text
signature then runs the encoder's Dense/GELU/LayerNorm rows on the real tokens only
(electra_tf/export/signatures.py, RealTokenRows), Hugging Face on every padded
position, so at batch 32 of mixed-length sentences we compute about 2.6x fewer rows
(attention is [batch, seq] on both sides; the summary's padded_per_real_batch_N gives
the ratio). Texts are sentences of the development corpus nltk_movie_reviews (never the
reserved corpora).
For each batch size the systems take turns window by window (load on a shared machine
falls on both alike); each window times `--batches` calls one by one after warmup.
Median and p90 latency per call over all windows are printed, one JSON line per system
and batch size, then a summary: speedup = hf median / ours (goal: on par at batch 1,
taken as >= 0.95 since run-to-run noise is about 5%; faster, > 1, at batch 32). The
scores of both systems are compared too (max_abs_diff). PyTorch's OpenMP pool slows down
many times over when the machine is oversubscribed (other jobs on the same cores), so
on a busy machine also run --threads=1 and report the load averages printed. Both
systems get the same thread settings: --threads intra-op threads and
--inter_op_threads (TF's inter-op pool, torch.set_num_interop_threads; eager PyTorch
runs one op at a time, so 1 is the like-for-like default).

    python benchmarks/serving_latency.py [--batch_sizes=1,32 --windows=5 --threads=2]

Needs the `bench` extra (transformers, torch) and ../shared/data (vocab, corpus).
"""

import json
import os
import pathlib
import random
import statistics
import sys
import tempfile
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
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to time.")
_BATCHES = flags.DEFINE_integer("batches", 20, "Timed calls per window.")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Windows per system and batch size.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls before each window.")
_MAX_SEQ_LENGTH = flags.DEFINE_integer("max_seq_length", 128, "Truncation length.")
_THREADS = flags.DEFINE_integer("threads", os.cpu_count(), "Intra-op threads, both systems.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", None, "PyTorch threads if not --threads (its OpenMP pool degrades badly "
    "when the machine is oversubscribed; compare at --threads=1 on a busy machine).")
_INTER_OP_THREADS = flags.DEFINE_integer(
    "inter_op_threads", 1, "Inter-op threads, both systems (ops run one at a time at 1).")
_SEED = flags.DEFINE_integer("seed", 0, "Text sampling and weight seed.")
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Where to write the models (default: temp).")


def sample_texts(path, count, seed):
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if len(line.split()) >= 3]
    return random.Random(seed).sample(lines, count)


def build_models(work_dir, vocab, max_seq_length, seed):
    """An ELECTRA-small discriminator as our export and as a Hugging Face directory."""
    import dataclasses

    import keras

    from electra_tf import config as config_lib
    from electra_tf.convert import hf
    from electra_tf.export import exporter
    from electra_tf.models import artifacts
    from electra_tf.models.pretrainer import ElectraDiscriminator

    cfg = config_lib.load_config(str(REPO_ROOT / "configs" / "electra_small.json"), [
        f"data.vocab_path={vocab}", f"data.max_seq_length={max_seq_length}"])
    keras.utils.set_random_seed(seed)
    disc = ElectraDiscriminator(dataclasses.asdict(cfg.model.discriminator_encoder()))
    artifacts.build_inputs(disc, seq_len=8)
    model_dir = os.path.join(work_dir, "model_dir")
    artifacts.save_artifact(disc, os.path.join(model_dir, "discriminator"), cfg, vocab)
    export = exporter.export_model(model_dir, os.path.join(work_dir, "exports"), "electra")
    hf_dir = os.path.join(work_dir, "hf")
    hf.save_hf_model(disc, hf_dir, vocab, lowercase=True)
    return export, hf_dir


def ours(export_path):
    import tensorflow as tf

    fn = tf.saved_model.load(export_path).signatures["replaced_token_scores"]

    def run(texts):
        out = fn(text=tf.constant(texts))
        return out["scores"].numpy(), out["padding_mask"].numpy()

    return run


def hugging_face(hf_dir, max_seq_length):
    import torch
    import transformers

    tokenizer = transformers.BertTokenizerFast.from_pretrained(hf_dir)
    model = transformers.ElectraForPreTraining.from_pretrained(hf_dir).eval()

    def run(texts):
        with torch.inference_mode():
            enc = tokenizer(texts, padding=True, truncation=True, max_length=max_seq_length,
                            return_tensors="pt")
            scores = torch.sigmoid(model(**enc).logits) * enc["attention_mask"]
        return scores.numpy(), enc["attention_mask"].numpy()

    return run


def time_window(run, batches, warmup):
    for batch in batches[:warmup]:
        run(batch)
    times = []
    for batch in batches:
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return times


def max_abs_diff(systems, batches):
    diff = 0.0
    for batch in batches:
        (a, mask_a), (b, mask_b) = (run(batch) for run in systems.values())
        if not (mask_a == mask_b).all():
            return float("nan")  # different tokenization: scores are not comparable
        diff = max(diff, float(abs(a - b).max()))
    return diff


def padded_per_real(run, batches):
    """Positions of the padded batches per real token (1.0: no padding)."""
    masks = [run(batch)[1] for batch in batches]
    return sum(mask.size for mask in masks) / sum(int(mask.sum()) for mask in masks)


def main(argv):
    del argv
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP_THREADS.value)
    torch_threads = _TORCH_THREADS.value or _THREADS.value
    torch.set_num_threads(torch_threads)
    torch.set_num_interop_threads(_INTER_OP_THREADS.value)
    sizes = [int(s) for s in _BATCH_SIZES.value]
    texts = sample_texts(_CORPUS.value, max(sizes) * _BATCHES.value, _SEED.value)
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = _WORK_DIR.value or tmp
        export, hf_dir = build_models(work_dir, _VOCAB.value, _MAX_SEQ_LENGTH.value, _SEED.value)
        systems = {"electra_tf_savedmodel": ours(export),
                   "hf_pytorch": hugging_face(hf_dir, _MAX_SEQ_LENGTH.value)}
        summary = {"benchmark": "serving_latency", "threads": _THREADS.value,
                   "torch_threads": torch_threads, "inter_op_threads": _INTER_OP_THREADS.value,
                   "cpu_count": os.cpu_count(),
                   "load_avg_1min": round(os.getloadavg()[0], 2)}
        for size in sizes:
            batches = [texts[i:i + size] for i in range(0, size * _BATCHES.value, size)]
            times = {name: [] for name in systems}
            for _ in range(_WINDOWS.value):
                for name, run in systems.items():
                    times[name] += time_window(run, batches, _WARMUP.value)
            medians = {}
            for name, values in times.items():
                medians[name] = statistics.median(values)
                print(json.dumps({
                    "system": name, "batch_size": size, "calls": len(values),
                    "median_ms": round(1000 * medians[name], 2),
                    "p90_ms": round(1000 * statistics.quantiles(values, n=10)[-1], 2),
                    "texts_per_sec": round(size / medians[name], 1),
                }), flush=True)
            summary[f"speedup_batch_{size}"] = round(
                medians["hf_pytorch"] / medians["electra_tf_savedmodel"], 3)
            summary[f"max_abs_diff_batch_{size}"] = max_abs_diff(systems, batches[:3])
            summary[f"padded_per_real_batch_{size}"] = round(
                padded_per_real(systems["hf_pytorch"], batches), 2)
    summary["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    summary["goal"] = {"batch_1": ">= 0.95 (on par)", "batch_32": "> 1"}
    summary["met"] = {
        "batch_1": summary.get("speedup_batch_1", 0) >= 0.95,
        "batch_32": summary.get("speedup_batch_32", 0) > 1.0,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
