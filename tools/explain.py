"""Explains a model's view of the given texts.

A fine-tuned classifier (a tools/finetune.py output dir): which words made it choose
its label, by integrated gradients (electra_tf.interpret):

    python tools/explain.py --model_dir=FINETUNED "a gripping , funny film" ["more" ...]
    python tools/explain.py --model_dir=MNLI_DIR --pair="a man sleeps" "a man snores"
    python tools/explain.py --model_dir=FINETUNED --label=negative --html=report.html "..."
    python tools/explain.py --model_dir=FINETUNED --jsonl "..." > explanations.jsonl

A discriminator (a pretraining model_dir, a discriminator artifact, or with
--saved_model a discriminator export): for each token, the probability that it was
replaced:

    python tools/explain.py --model_dir=DIR "the cat sat on the car"
    python tools/explain.py --saved_model=EXPORT_DIR/NAME "some text" --html=out.html

Pair tasks take one --pair per text, in order. --label explains that label for every
text instead of the predicted one. --html writes a page (classifiers: sorted by
confidence); --jsonl prints one JSON object per text instead of the terminal view.
Colours are used when stdout is a terminal (--color=always|never overrides).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import tool_errors  # noqa: E402  (tools/, the script's directory)
from electra_tf.interpret import replaced_tokens as explain  # noqa: E402
from electra_tf.export import exporter  # noqa: E402
from electra_tf.interpret import explainer as explainer_lib  # noqa: E402
from electra_tf.interpret import report  # noqa: E402

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Fine-tuning output dir, pretraining model_dir or discriminator/ dir.")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "Discriminator export: EXPORT_DIR/NAME (latest version) or a version dir.")
_PAIR = flags.DEFINE_multi_string("pair", None, "Classifiers of pair tasks: the second text, "
                                  "once per text.")
_LABEL = flags.DEFINE_string("label", None, "Classifiers: explain this label (default: the "
                             "predicted one).")
_STEPS = flags.DEFINE_integer("steps", explainer_lib.DEFAULT_STEPS,
                              "Classifiers: integrated-gradients steps.")
_JSONL = flags.DEFINE_bool("jsonl", False, "Classifiers: print JSON lines instead.")
_HTML = flags.DEFINE_string("html", None, "Also write an HTML page here.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "Discriminators: scores above this are "
                                "marked as replaced.")
_COLOR = flags.DEFINE_enum("color", "auto", ["auto", "always", "never"], "ANSI colours.")
flags.mark_flags_as_mutual_exclusive(["model_dir", "saved_model"], required=True)

_CLASSIFIER_FLAGS = ("pair", "label", "jsonl")


def write_html(page, quiet):
    with open(_HTML.value, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {_HTML.value}", file=sys.stderr if quiet else sys.stdout)


def explain_classifier(texts, color):
    explainer = explainer_lib.Explainer.from_finetuned(_MODEL_DIR.value, steps=_STEPS.value)
    pairs = _PAIR.value
    if explainer.pair and len(pairs or ()) != len(texts):
        raise ValueError(f"the model takes text pairs: give one --pair per text "
                         f"({len(pairs or ())} for {len(texts)} texts)")
    if not explainer.pair and pairs:
        raise ValueError("the model takes single texts: --pair is for pair tasks")
    labels = None if _LABEL.value is None else [_LABEL.value] * len(texts)
    explanations = explainer.explain(texts, pairs, labels)
    if _JSONL.value:
        print(report.to_jsonl(explanations), end="")
    else:
        print("\n\n".join(report.format_explanation(e, color) for e in explanations))
    if _HTML.value:
        write_html(report.to_html(explanations), quiet=_JSONL.value)


def explain_discriminator(texts, color):
    used = [f"--{name}" for name in _CLASSIFIER_FLAGS if flags.FLAGS[name].present]
    if used:
        raise ValueError(f"{' and '.join(used)} apply to fine-tuned classifiers; the model "
                         "is a discriminator")
    if _MODEL_DIR.value:
        all_scores = explain.model_dir_token_scores(_MODEL_DIR.value, texts)
    else:
        all_scores = explain.export_token_scores(_SAVED_MODEL.value, texts)
    for text, scores in zip(texts, all_scores):
        print(f"\n{text}")
        print(explain.format_scores(scores, _THRESHOLD.value, color))
    if _HTML.value:
        print()
        write_html(explain.to_html(texts, all_scores, _THRESHOLD.value), quiet=False)


@tool_errors.exit_on_user_error
def main(argv):
    texts = argv[1:]
    if not texts:
        raise app.UsageError("give at least one text to explain")
    empty = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise ValueError(f"text {', '.join(map(str, empty))} of {len(texts)} is empty: "
                         "there are no words to explain")
    color = _COLOR.value == "always" or (_COLOR.value == "auto" and sys.stdout.isatty())
    # Wrong paths, flags or labels: one line, no traceback (tool_errors).
    if _MODEL_DIR.value and exporter.model_dir_kind(_MODEL_DIR.value) == exporter.CLASSIFIER:
        explain_classifier(texts, color)
    else:
        explain_discriminator(texts, color)
    return 0


if __name__ == "__main__":
    app.run(main)
