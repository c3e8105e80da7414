r"""Converts ELECTRA checkpoints between Hugging Face, original Google TF1 and electra_tf.

    # Hugging Face -> an electra_tf model_dir (finetune/export/explain take it)
    python tools/convert_checkpoint.py --from=hf --to=electra_tf \
        --input=electra-small-discriminator[,electra-small-generator] --output=MODEL_DIR
    # Google's released checkpoint (vocab.txt + model.ckpt-*) -> model_dir
    python tools/convert_checkpoint.py --from=google --to=electra_tf --input=electra_small \
        --output=MODEL_DIR [--hparams='{"model_size": "small"}' | --hparams=hparams.json]
    # electra_tf (a model_dir or an artifact dir) -> a Hugging Face directory
    python tools/convert_checkpoint.py --from=electra_tf --to=hf --input=MODEL_DIR \
        --output=HF_DIR [--model=generator]

Every missing, unexpected or misshapen tensor is an error that lists the names;
the output directory must be new or empty. See electra_tf/convert/.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import tool_errors  # noqa: E402  (tools/, the script's directory)
from electra_tf.convert import checkpoint  # noqa: E402

_FROM = flags.DEFINE_enum("from", None, list(checkpoint.SOURCES), "Input format.")
_TO = flags.DEFINE_enum("to", None, list(checkpoint.TARGETS), "Output format.")
_INPUT = flags.DEFINE_list(
    "input", None, "Input directory (Google: also a model.ckpt-N prefix). --from=hf takes "
    "a discriminator and a generator directory, comma-separated, into one model_dir.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to create (new or empty).")
_MODEL = flags.DEFINE_enum(
    "model", None, ["discriminator", "generator", checkpoint.FINETUNED],
    "Convert only this model. --to=hf writes one model: the discriminator by default. "
    "finetuned: a Hugging Face ElectraForSequenceClassification, ElectraForQuestionAnswering "
    "or ElectraForTokenClassification, head included, to a fine-tuned output dir.")
_TASK = flags.DEFINE_enum(
    "task", None, ["custom", "squad", "squad_v2", "ner", "chunk", "tagging"],
    "--model=finetuned: the task to record (default by the model: custom, squad, "
    "tagging; squad_v2 makes the export answer 'no answer' by the null score).")
_HPARAMS = flags.DEFINE_string(
    "hparams", None, "--from=google: Google's hparams as JSON or a JSON file (what "
    "run_pretraining.py --hparams took), e.g. model_hparam_overrides.num_attention_heads.")
_VOCAB = flags.DEFINE_string("vocab", None, "vocab.txt to use instead of the input's.")
_MAX_SEQ_LENGTH = flags.DEFINE_integer(
    "max_seq_length", None, "data.max_seq_length of the written config (default 128).")

flags.mark_flags_as_required(["from", "to", "input", "output"])


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # ConversionError (a ValueError) and missing paths: one line (tool_errors).
    written = checkpoint.convert_checkpoint(
        _FROM.value, _TO.value, _INPUT.value, _OUTPUT.value, kind=_MODEL.value,
        hparams=_HPARAMS.value, vocab=_VOCAB.value, max_seq_length=_MAX_SEQ_LENGTH.value,
        task=_TASK.value)
    for directory in written:
        print(f"wrote {directory}")
    return 0


if __name__ == "__main__":
    app.run(main)
