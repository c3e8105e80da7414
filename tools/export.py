"""Exports a model as a SavedModel for TensorFlow Serving: EXPORT_DIR/NAME/VERSION/.

    python tools/export.py --model_dir=DIR --export_dir=DIR --name=NAME [--version=N]

--model_dir is a pretraining model_dir (its discriminator is exported), a discriminator
artifact, or a tools/finetune.py output dir (the fine-tuned classifier, QA model or
tagger; its best seed). A QA export takes question and context strings and searches up
to --max_windows windows of each context (README "Export and serving").
Without --version the next free version number is used; an existing version is never
overwritten. Prints the version directory and its signatures. --with_explain adds a
classifier's `explain` signature (integrated-gradients attributions of the predicted
label over --explain_steps steps).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import tool_errors  # noqa: E402  (tools/, the script's directory)
from electra_tf.export import exporter  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Pretraining model_dir, discriminator artifact or fine-tuning output.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Base directory TF Serving reads.")
_NAME = flags.DEFINE_string("name", None, "Model name: the export goes to EXPORT_DIR/NAME/VERSION.")
_VERSION = flags.DEFINE_integer("version", None, "Version number; default: the next free one.")
_WITH_EXPLAIN = flags.DEFINE_bool(
    "with_explain", False, "Classifiers: add the explain signature (token attributions).")
_EXPLAIN_STEPS = flags.DEFINE_integer(
    "explain_steps", 32, "Integrated-gradients steps of the explain signature.")
_MAX_WINDOWS = flags.DEFINE_integer(
    "max_windows", exporter.DEFAULT_MAX_WINDOWS,
    "QA models: context windows searched per request (longer contexts are flagged "
    "truncated).")
flags.mark_flags_as_required(["model_dir", "export_dir", "name"])


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Wrong paths, an existing version, --with_explain for a discriminator: one line.
    path = exporter.export_model(
        _MODEL_DIR.value, _EXPORT_DIR.value, _NAME.value, _VERSION.value,
        explain_steps=_EXPLAIN_STEPS.value if _WITH_EXPLAIN.value else None,
        max_windows=_MAX_WINDOWS.value)
    info = exporter.load_export_info(path)
    print(path)
    print(f"kind: {info['kind']}  signatures: {', '.join(info['signatures'])}")


if __name__ == "__main__":
    app.run(main)
