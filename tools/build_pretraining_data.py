r"""Text files -> packed pretraining TFRecords + manifest.json.

Input: UTF-8 text (plain or .gz), one sentence or paragraph per line, documents
separated by blank lines. See electra_tf/data/builder.py for the packing and
electra_tf/data/manifest.py for the manifest.

    python tools/build_pretraining_data.py --input=GLOB[,GLOB] --vocab=vocab.txt \
        --output_dir=DIR --max_seq_length=128 --num_shards=64 [--lowercase] \
        [--shard_index=i --num_workers=n] [--seed=12345] [--overwrite]
"""

from absl import app
from absl import flags
from absl import logging

import tool_errors  # tools/, the script's directory
from electra_tf import files as files_lib
from electra_tf.data import builder

_INPUT = flags.DEFINE_list("input", None, "Comma-separated globs of input text files.")
_VOCAB = flags.DEFINE_string("vocab", None, "WordPiece vocabulary, one token per line.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where shards and manifest go.")
_MAX_SEQ_LENGTH = flags.DEFINE_integer(
    "max_seq_length", 128, "Tokens per full example, [CLS]/[SEP] included.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 64, "Shards over all workers.")
_LOWERCASE = flags.DEFINE_bool(
    "lowercase", True, "Lower-case and strip accents (uncased vocabulary); "
    "--nolowercase for cased vocabularies.")
_SEED = flags.DEFINE_integer("seed", 12345, "Seeds the packing; same seed, same shards.")
_SHARD_INDEX = flags.DEFINE_integer("shard_index", 0, "This worker's index in [0, num_workers).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Workers sharing the input files.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing shards and manifest.")
_SHORT_SEQ_PROB = flags.DEFINE_float(
    "short_seq_prob", 0.05, "Probability of a shorter random target length.")
_SINGLE_SEGMENT_PROB = flags.DEFINE_float(
    "single_segment_prob", 0.1, "Probability of a [CLS] A [SEP] example.")
_MAX_LINE_BYTES = flags.DEFINE_integer(
    "max_line_bytes", files_lib.MAX_LINE_BYTES, "A longer input line is an error (a line "
    "holds a sentence or paragraph; tokenizing one costs ~40x its size in memory).")


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    manifest = builder.build_pretraining_data(
        _INPUT.value, _VOCAB.value, _OUTPUT_DIR.value,
        max_seq_length=_MAX_SEQ_LENGTH.value, num_shards=_NUM_SHARDS.value,
        lowercase=_LOWERCASE.value, seed=_SEED.value, shard_index=_SHARD_INDEX.value,
        num_workers=_NUM_WORKERS.value, overwrite=_OVERWRITE.value,
        short_seq_prob=_SHORT_SEQ_PROB.value, single_segment_prob=_SINGLE_SEGMENT_PROB.value,
        max_line_bytes=_MAX_LINE_BYTES.value)
    logging.info("totals: %s", ", ".join(f"{k}={v}" for k, v in sorted(manifest["totals"].items())))


if __name__ == "__main__":
    flags.mark_flags_as_required(["input", "vocab", "output_dir"])
    app.run(main)
