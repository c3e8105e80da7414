"""Data-stage throughput: text -> shards, shards -> masked batches, against HF tokenizers.

Prints one JSON line per system (the fastest of `--repeats` runs), then a summary
line with the goals:

  electra_tf_build           build_pretraining_data end to end (read, normalize,
                             tokenize, pack, write shards + manifest), tokens/s
  electra_tf_input_pipeline  make_pretraining_dataset (read, parse, pad, mask, batch),
                             batch x seq_length tokens/s after a warm-up
  hf_tokenizers_encode_batch Hugging Face `tokenizers` BertWordPieceTokenizer.encode_batch
                             on the same lines, tokenization only (skipped when absent)

Only the development corpora are read; wikitext-2-raw and nltk_reuters are reserved
for evaluation. See benchmarks/README.md.

    .venv/bin/python benchmarks/data_throughput.py [--repeats=3] [--pipeline_batches=200]
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shared_data  # noqa: E402  (benchmarks/, the script's directory)

BUILD_GOAL_VS_HF = 1.5
PIPELINE_GOAL_TOKENS_PER_SEC = 2e6


def parse_args(argv):
    shared = shared_data.SHARED_DATA
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus_dir", default=str(shared / "corpus"),
                        help="Holds the development corpora (one directory each).")
    parser.add_argument("--vocab", default=str(shared / "vocab" / "bert-base-uncased-vocab.txt"))
    parser.add_argument("--work_dir", default=None,
                        help="Where the shards go (default: a temporary directory, removed).")
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--warmup_batches", type=int, default=5)
    parser.add_argument("--pipeline_batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3,
                        help="Time each system this many times and keep the fastest run.")
    return parser.parse_args(argv)


def corpus_files(corpus_dir):
    """Every file of the development corpora, README files excluded, sorted."""
    try:
        return shared_data.dev_corpus_files(corpus_dir)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")


def fastest(repeats, run):
    """Calls `run()` -> (seconds, result) `repeats` times; returns the fastest pair.

    The minimum is the run least disturbed by other processes on a shared machine.
    """
    return min((run() for _ in range(repeats)), key=lambda pair: pair[0])


def emit(system, tokens, seconds, **extra):
    record = {"benchmark": "data_throughput", "system": system,
              "tokens_per_sec": round(tokens / seconds, 1), "seconds": round(seconds, 3),
              "tokens": int(tokens), **extra}
    print(json.dumps(record), flush=True)
    return record


def bench_build(files, vocab, data_dir, args):
    from electra_tf.data.builder import build_pretraining_data

    def run():
        start = time.perf_counter()
        manifest = build_pretraining_data(files, vocab, data_dir, max_seq_length=args.seq_length,
                                          num_shards=args.num_shards, lowercase=True,
                                          overwrite=True)
        return time.perf_counter() - start, manifest["totals"]

    seconds, totals = fastest(args.repeats, run)
    # The text's own WordPieces (no [CLS]/[SEP]), the same count the peer produces.
    return emit("electra_tf_build", totals["input_tokens"], seconds, examples=totals["examples"],
                tokens_with_specials=totals["tokens"],
                files=len(files), corpus_bytes=sum(os.path.getsize(f) for f in files),
                repeats=args.repeats)


def bench_pipeline(data_dir, vocab, args):
    import tensorflow as tf

    from electra_tf import schema
    from electra_tf.data.pretraining import make_pretraining_dataset
    from electra_tf.text.tokenizer import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(vocab, lowercase=True)
    dataset = make_pretraining_dataset(data_dir, tokenizer, args.batch_size, args.seq_length,
                                       shuffle=True, repeat=True, seed=0)
    batches = iter(dataset)
    for _ in range(args.warmup_batches):
        next(batches)

    def run():
        real_tokens = 0
        start = time.perf_counter()
        for _ in range(args.pipeline_batches):
            batch = next(batches)
            real_tokens += int(tf.reduce_sum(tf.cast(batch[schema.PADDING_MASK], tf.int64)))
        return time.perf_counter() - start, real_tokens

    seconds, real_tokens = fastest(args.repeats, run)
    # The model consumes batch x seq_length slots whatever the padding, so that is the
    # throughput that must keep up with training; real_tokens shows how full they are.
    slots = args.pipeline_batches * args.batch_size * args.seq_length
    return emit("electra_tf_input_pipeline", slots, seconds, batches=args.pipeline_batches,
                batch_size=args.batch_size, seq_length=args.seq_length, real_tokens=real_tokens,
                repeats=args.repeats)


def bench_hf(files, vocab, repeats):
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        print("hf_tokenizers_encode_batch skipped: `tokenizers` is not installed",
              file=sys.stderr)
        return None
    lines = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [line.strip() for line in f if line.strip()]
    tokenizer = BertWordPieceTokenizer(vocab, lowercase=True)
    def run():
        start = time.perf_counter()
        encodings = tokenizer.encode_batch(lines, add_special_tokens=False)
        return time.perf_counter() - start, sum(len(e.ids) for e in encodings)

    seconds, tokens = fastest(repeats, run)
    return emit("hf_tokenizers_encode_batch", tokens, seconds, lines=len(lines),
                repeats=repeats)


def main(argv=None):
    args = parse_args(argv)
    files = corpus_files(args.corpus_dir)
    # Before TensorFlow is imported, so the peer's process holds no other thread pools.
    hf = bench_hf(files, args.vocab, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(args.work_dir or tmp, "pretraining_data")
        build = bench_build(files, args.vocab, data_dir, args)
        pipeline = bench_pipeline(data_dir, args.vocab, args)

    ratio = build["tokens_per_sec"] / hf["tokens_per_sec"] if hf else None
    print(json.dumps({
        "benchmark": "data_throughput",
        "ratio_build_vs_hf": round(ratio, 3) if ratio is not None else None,
        "goal": BUILD_GOAL_VS_HF,
        "pipeline_goal_tokens_per_sec": PIPELINE_GOAL_TOKENS_PER_SEC,
        "met": {
            "build_vs_hf": ratio >= BUILD_GOAL_VS_HF if ratio is not None else None,
            "pipeline": pipeline["tokens_per_sec"] >= PIPELINE_GOAL_TOKENS_PER_SEC,
        },
    }), flush=True)


if __name__ == "__main__":
    main()
