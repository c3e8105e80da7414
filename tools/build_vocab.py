r"""Text files -> WordPiece vocabulary (one token per line, BERT's special tokens first).

Input: UTF-8 text (plain or .gz), read line by line; see electra_tf/text/vocab.py.
Use the same --lowercase setting here, in build_pretraining_data.py and in training.

    python tools/build_vocab.py --input=GLOB[,GLOB] --output=vocab.txt \
        --vocab_size=30522 [--lowercase|--nolowercase] [--reserved_tokens=[unused0],...]
"""

from absl import app
from absl import flags
from absl import logging

import tool_errors  # tools/, the script's directory
from electra_tf import files as files_lib
from electra_tf.text import vocab

_INPUT = flags.DEFINE_list("input", None, "Comma-separated globs of input text files.")
_OUTPUT = flags.DEFINE_string("output", None, "Vocabulary file to write (local or gs://).")
_VOCAB_SIZE = flags.DEFINE_integer(
    "vocab_size", 30522, "Largest vocabulary size, special tokens included.")
_LOWERCASE = flags.DEFINE_bool(
    "lowercase", True, "Learn an uncased vocabulary (lower-cased, accents stripped); "
    "--nolowercase for a cased one.")
_RESERVED_TOKENS = flags.DEFINE_list(
    "reserved_tokens", [], "Extra tokens placed right after [PAD] [UNK] [CLS] [SEP] [MASK].")
_MAX_UNIQUE_CHARS = flags.DEFINE_integer(
    "max_unique_chars", 1000, "Keep tokens for at most this many distinct characters.")
_MAX_LINE_BYTES = flags.DEFINE_integer(
    "max_line_bytes", files_lib.MAX_LINE_BYTES, "A longer input line is an error (a line "
    "holds a sentence or paragraph; tokenizing one costs ~40x its size in memory).")


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    tokens = vocab.learn_wordpiece_vocab(
        _INPUT.value, _VOCAB_SIZE.value, lowercase=_LOWERCASE.value,
        reserved_tokens=_RESERVED_TOKENS.value, max_unique_chars=_MAX_UNIQUE_CHARS.value,
        max_line_bytes=_MAX_LINE_BYTES.value)
    vocab.write_vocab(tokens, _OUTPUT.value)
    logging.info("wrote %d tokens to %s", len(tokens), _OUTPUT.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["input", "output"])
    app.run(main)
