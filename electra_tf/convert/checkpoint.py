"""`convert_checkpoint`: Hugging Face / Google / electra_tf checkpoints -> electra_tf / HF.

To electra_tf, the output is a model_dir like pretraining leaves (`config.json`,
`vocab.txt`, `discriminator/` and/or `generator/` artifacts), which fine-tuning,
export and `tools/explain.py` accept. Each artifact.json records where the weights
came from ("converted_from") and any head the source lacked ("untrained_heads").

The experiment config's model section describes the discriminator (or the
generator, when converted alone). ELECTRA derives the generator from
`generator_hidden_fraction` (heads = hidden // 64, FFN = 4 * hidden, same depth);
a converted pair gets the fraction gen_hidden / disc_hidden. Pairs the fraction
cannot reproduce (other heads, FFN or depth, e.g. Hugging Face's published
generators) still convert exactly: each artifact.json holds its model's exact
encoder_config, which is what loading uses; a warning says the config's derived
generator differs, which only matters for pretraining a fresh pair from it.

A fine-tuned Hugging Face model (`ElectraForSequenceClassification`,
`ElectraForQuestionAnswering`, `ElectraForTokenClassification`) converts with
`kind="finetuned"` (`--model=finetuned`) to a fine-tuned output directory, head
included, as tools/finetune.py writes it, which export and explain take.

To Hugging Face, the output is one model directory: `--model` picks the
discriminator (default) or the generator of a model_dir.
"""

import dataclasses
import os

import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.convert import google, hf, mapping
from electra_tf.convert.mapping import ConversionError
from electra_tf.models import artifacts
from electra_tf.text import tokenizer as tokenizer_lib
from electra_tf.text import vocab as vocab_lib

SOURCES = ("hf", "google", "electra_tf")
FINETUNED = "finetuned"
# The fine-tuning task a converted Hugging Face model is recorded with, by class.
_HF_TASKS = {"ElectraClassifier": "custom", "ElectraForQuestionAnswering": "squad",
             "ElectraForTokenClassification": "tagging"}
TARGETS = ("electra_tf", "hf")
DEFAULT_MAX_SEQ_LENGTH = 128
# generator_hidden_fraction values tried, in order, after a pair's own ratio.
_FALLBACK_FRACTIONS = (config_lib.ModelConfig.generator_hidden_fraction, 0.5, 1.0)


@dataclasses.dataclass
class Imported:
    """Models read from a foreign checkpoint, with what an electra_tf model_dir needs."""

    models: dict  # kind -> ElectraDiscriminator / ElectraGenerator
    meta: dict  # kind -> extra artifact.json keys
    vocab_file: str  # a vocab.txt to copy, or None to write `tokens`
    tokens: list
    lowercase: bool
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    step: int = None


# === Reading ===


def import_hf(directories, kind=None, vocab=None):
    """Reads one Hugging Face directory, or a discriminator and a generator directory."""
    if len(directories) > 2:
        raise ConversionError(f"at most two Hugging Face directories (a discriminator and a "
                              f"generator), got {len(directories)}")
    models, meta, vocabs, lowercase = {}, {}, [], []
    for directory in directories:
        model, model_meta = hf.load_hf_model(directory, kind)
        found = mapping.kind_of(model)
        if found in models:
            raise ConversionError(f"{directories[0]} and {directory} both hold a {found}")
        models[found], meta[found] = model, model_meta
        if not vocab:
            vocabs.append(hf.read_vocab(directory))
        lowercase.append(hf.read_lowercase(directory))
    if vocab:
        vocab_file, tokens = vocab, tokenizer_lib.load_vocab(vocab)
    else:
        vocab_file, tokens = vocabs[0]
        if any(other != tokens for _, other in vocabs[1:]):
            raise ConversionError(f"{' and '.join(directories)} have different vocabularies")
    if len(set(lowercase)) > 1:
        raise ConversionError(f"{' and '.join(directories)} disagree on do_lower_case")
    return Imported(models, meta, vocab_file, tokens, lowercase[0])


def import_google(path, kind=None, hparams=None, vocab=None):
    """Reads an original ELECTRA checkpoint; vocab.txt beside it unless `vocab` is given."""
    hparams = google.parse_hparams(hparams)
    models, meta, step = google.load_google_models(path, hparams, kind)
    if not vocab:
        directory = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
        vocab = os.path.join(directory, artifacts.VOCAB)
        if not tf.io.gfile.exists(vocab):
            raise ConversionError(f"{directory} has no {artifacts.VOCAB}; pass --vocab")
    return Imported(models, meta, vocab, tokenizer_lib.load_vocab(vocab),
                    hparams.get("do_lower_case", True),
                    hparams.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH), step)


def load_electra_tf(path, kind=None):
    """An artifact from a model_dir (its `kind`/ subdirectory) or an artifact directory.

    Returns:
      An `artifacts.Artifact` (unpacks as (model, experiment_config, vocab_path, meta)).

    Raises:
      ConversionError: no such artifact, or another kind (named with --model).
    """
    try:
        directory, found = artifacts.resolve(path, kind)
    except FileNotFoundError as e:
        raise ConversionError(f"--model={kind or 'discriminator'}: {e}") from None
    except ValueError as e:
        raise ConversionError(f"--model={kind}: {e}") from None
    if found == artifacts.CLASSIFIER:
        raise ConversionError(f"{path} holds a fine-tuned classifier; conversion takes "
                              "pretraining artifacts")
    return artifacts.load(directory)


# === Writing ===


def experiment_config(encoder_configs, lowercase, max_seq_length, vocab_path):
    """The `ElectraConfig` stored with converted artifacts (see the module docstring)."""
    main = encoder_configs.get("discriminator") or encoder_configs["generator"]
    pair = encoder_configs.get("generator") if "discriminator" in encoder_configs else None
    fractions = ((pair["hidden_size"] / main["hidden_size"],) if pair else ()) + _FALLBACK_FRACTIONS
    errors = []
    for fraction in fractions:
        try:
            model = config_lib.ModelConfig(**main, generator_hidden_fraction=fraction)
            break
        except config_lib.ConfigError as e:
            errors.append(str(e))
    else:
        raise ConversionError("no generator_hidden_fraction gives a valid config: "
                              + "; ".join(errors))
    if pair and dataclasses.asdict(model.generator_encoder()) != pair:
        logging.warning(
            "The generator (%s) is not the one model.generator_hidden_fraction=%s derives "
            "(%s); its artifact.json keeps its exact sizes", pair, model.generator_hidden_fraction,
            dataclasses.asdict(model.generator_encoder()))
    data = config_lib.DataConfig(
        vocab_path=vocab_path, lowercase=lowercase,
        max_seq_length=min(max_seq_length, main["max_position_embeddings"]))
    return config_lib.ElectraConfig(model=model, data=data)


def _require_empty(output):
    if tf.io.gfile.exists(output) and tf.io.gfile.listdir(output):
        raise ConversionError(f"output directory {output} is not empty; choose a new one")


def _check_vocab_size(tokens, vocab_name, models):
    for kind, model in models.items():
        if len(tokens) != model.encoder_config["vocab_size"]:
            raise ConversionError(
                f"vocabulary {vocab_name} has {len(tokens)} tokens but the {kind} has "
                f"vocab_size={model.encoder_config['vocab_size']}")


def write_model_dir(imported, output):
    """Writes `imported` as an electra_tf model_dir; returns the artifact directories."""
    _check_vocab_size(imported.tokens, imported.vocab_file or "(tokenizer.json)", imported.models)
    _require_empty(output)
    tf.io.gfile.makedirs(output)
    vocab_path = os.path.join(output, artifacts.VOCAB)
    if imported.vocab_file:
        files.copy_atomic(imported.vocab_file, vocab_path)
    else:
        vocab_lib.write_vocab(imported.tokens, vocab_path)
    cfg = experiment_config({k: m.encoder_config for k, m in imported.models.items()},
                            imported.lowercase, imported.max_seq_length,
                            os.path.abspath(vocab_path))
    config_lib.save_config(cfg, os.path.join(output, artifacts.CONFIG_JSON))
    written = []
    for kind, model in imported.models.items():
        written.append(artifacts.save_artifact(
            model, os.path.join(output, kind), cfg, vocab_path, step=imported.step,
            extra_meta=imported.meta[kind]))
    logging.info("Wrote %s to %s", ", ".join(imported.models), output)
    return written


def write_hf(model, meta, vocab_path, lowercase, output):
    """Writes one model as a Hugging Face directory; a head never trained is left out."""
    _check_vocab_size(tokenizer_lib.load_vocab(vocab_path), vocab_path,
                      {mapping.kind_of(model): model})
    _require_empty(output)
    with_head = "rtd_head" not in meta.get("untrained_heads", [])
    return hf.save_hf_model(model, output, vocab_path, lowercase, with_head)


def write_hf_finetuned(directory, output, task=None, vocab=None, max_seq_length=None):
    """A Hugging Face fine-tuned ELECTRA -> a fine-tuned output directory.

    Args:
      task: the FinetuneConfig task to record: by default "custom" (sequence
        classification), "squad" (QA; "squad_v2" makes the export answer "no
        answer" by the null score) or "tagging".
      max_seq_length: default 128 (QA: 384), at most max_position_embeddings.
    """
    _require_empty(output)
    model = hf.load_hf_task_model(directory)
    task = task or _HF_TASKS[type(model).__name__]
    encoder_config = model.encoder_config
    default_length = 384 if task.startswith("squad") else DEFAULT_MAX_SEQ_LENGTH
    length = min(max_seq_length or default_length, encoder_config["max_position_embeddings"])
    vocab_file, tokens = (vocab, tokenizer_lib.load_vocab(vocab)) if vocab \
        else hf.read_vocab(directory)
    _check_vocab_size(tokens, vocab or directory, {"model": model})
    tf.io.gfile.makedirs(output)
    if vocab_file is None:  # the vocabulary came from tokenizer.json
        vocab_file = os.path.join(output, artifacts.VOCAB)
        files.write_text_atomic(vocab_file, "".join(t + "\n" for t in tokens))
    label_names = tuple(getattr(model, "label_names", ()) or ())
    cfg = config_lib.FinetuneConfig(task=task, init=f"hf:{os.path.abspath(directory)}",
                                    lowercase=hf.read_lowercase(directory),
                                    max_seq_length=length, label_names=label_names,
                                    regression=getattr(model, "is_regression", False))
    artifacts.save_classifier(model, output, dataclasses.asdict(cfg), vocab_file)
    logging.info("Converted the fine-tuned %s of %s to %s (task %s)", type(model).__name__,
                 directory, output, task)
    return [output]


# === Entry point ===


def convert_checkpoint(source, target, inputs, output, kind=None, hparams=None, vocab=None,
                       max_seq_length=None, task=None):
    """Converts `inputs` (format `source`) to `output` (format `target`).

    Args:
      source: "hf", "google" or "electra_tf".
      target: "electra_tf" or "hf".
      inputs: list of input paths: one, or for "hf" a discriminator and a
        generator directory converted into one model_dir.
      output: directory to create (must be new or empty).
      kind: "discriminator" / "generator": the one model to convert (to hf, the
        default is the discriminator); "finetuned": a Hugging Face fine-tuned model,
        head included (`write_hf_finetuned`).
      hparams: Google hparams (dict, JSON string or JSON file) for "google".
      vocab: a vocab.txt to use instead of the source's.
      max_seq_length: data.max_seq_length of the electra_tf config written (default
        128, or Google's hparams); capped at max_position_embeddings.
      task: with kind "finetuned", the fine-tuning task to record.

    Returns:
      The directories written.
    """
    if source not in SOURCES or target not in TARGETS:
        raise ConversionError(f"cannot convert {source!r} to {target!r}: sources are "
                              f"{', '.join(SOURCES)}, targets {', '.join(TARGETS)}")
    if source == target:
        raise ConversionError(f"--from and --to are both {source}: nothing to convert")
    if kind == FINETUNED:
        if (source, target) != ("hf", "electra_tf") or len(inputs) != 1:
            raise ConversionError("--model=finetuned converts one Hugging Face fine-tuned "
                                  "directory --from=hf --to=electra_tf")
        return write_hf_finetuned(inputs[0], output, task, vocab, max_seq_length)
    if task:
        raise ConversionError("--task only applies to --model=finetuned")
    if kind not in (None, *mapping.KINDS):
        raise ConversionError(f"--model={kind!r} is not one of "
                              f"{', '.join((*mapping.KINDS, FINETUNED))}")
    if source != "hf" and len(inputs) != 1:
        raise ConversionError(f"--from={source} takes one --input, got {len(inputs)}")
    if hparams and source != "google":
        raise ConversionError("--hparams only applies to --from=google")

    if source == "electra_tf":
        model, cfg, vocab_path, meta = load_electra_tf(inputs[0], kind)
        extras = [f"model.{name}={getattr(cfg.model, name)}"
                  for name in ("attention_locality", "local_conv_kernel")
                  if getattr(cfg.model, name)]
        if extras:
            raise ConversionError(
                f"{inputs[0]} was trained with {', '.join(extras)}, which Hugging Face's "
                "ELECTRA has no counterpart for: its weights would compute another "
                "function there")
        write_hf(model, meta, vocab or vocab_path, cfg.data.lowercase, output)
        return [output]

    if source == "hf":
        imported = import_hf(inputs, kind, vocab)
    else:
        # Hugging Face directories hold one model: read only the one written.
        one = kind or ("discriminator" if target == "hf" else None)
        imported = import_google(inputs[0], one, hparams, vocab)
    if max_seq_length:
        imported.max_seq_length = max_seq_length
    if target == "electra_tf":
        return write_model_dir(imported, output)

    # Google -> Hugging Face: one model per directory.
    chosen = kind or "discriminator"
    if chosen not in imported.models:
        raise ConversionError(f"--model={chosen} but {inputs[0]} holds only "
                              f"{', '.join(imported.models)}")
    write_hf(imported.models[chosen], imported.meta[chosen], imported.vocab_file,
             imported.lowercase, output)
    return [output]
