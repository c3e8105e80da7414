"""Writes `EXPORT_DIR/NAME/VERSION/`: a SavedModel for TensorFlow Serving.

    EXPORT_DIR/NAME/VERSION/
      saved_model.pb, variables/       signatures of `signatures.py`
      assets/vocab.txt                 the WordPiece vocabulary (the graph embeds it too)
      assets/config.json               the resolved config: the experiment config of a
                                       discriminator, the FinetuneConfig of a classifier
      assets/export.json               kind, max_seq_length, lowercase, signatures, source
      assets/labels.txt                (classifiers, taggers) label names, one per line
      assets.extra/tf_serving_warmup_requests

The SavedModel is built with `keras.export.ExportArchive` and needs only TensorFlow and
tensorflow-text to load; before it is published, every op in it is checked against
what TensorFlow Serving can load (`opset.py`).
"""

import dataclasses
import json
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.data import glue
from electra_tf.export import names, opset, signatures, versioning, warmup
from electra_tf.export import attributions
from electra_tf.export.question_answering import QuestionAnsweringServer
from electra_tf.export.tagging import TaggingServer
from electra_tf.models import artifacts
from electra_tf.models.question_answering import ElectraForQuestionAnswering
from electra_tf.models.token_classification import ElectraForTokenClassification
from electra_tf.text.tokenizer import WordPieceTokenizer

ASSETS = "assets"
EXPORT_JSON = "export.json"
VOCAB = "vocab.txt"
CONFIG_JSON = "config.json"
LABELS = "labels.txt"
FORMAT_VERSION = 1
# What a model_dir holds (`model_dir_kind`), also the exports' "kind".
DISCRIMINATOR = artifacts.DISCRIMINATOR
CLASSIFIER = artifacts.CLASSIFIER

# Warmup texts: empty, short, and longer than any max_seq_length, so every shape path
# (including truncation) is compiled before traffic.
WARMUP_TEXTS = ("", "the quick brown fox jumps over the lazy dog .", "a long text . " * 300)
# The windows a QA export searches per context (see export/question_answering.py).
DEFAULT_MAX_WINDOWS = 8


def _warmup_logs(name, endpoints, packer):
    """One request per signature, on WARMUP_TEXTS (their packed ids for id signatures)."""
    texts = np.array(WARMUP_TEXTS, dtype=object)
    features, _ = packer(tf.constant(texts.astype(str)))
    id_values = {key: value.numpy() for key, value in signatures.id_inputs(features).items()}
    logs = []
    for signature_name, (_, specs) in endpoints.items():
        inputs = {spec.name: texts if spec.dtype == tf.string else id_values[spec.name]
                  for spec in specs}
        logs.append(warmup.predict_log(name, signature_name, inputs))
    return logs


def _with_default(endpoints):
    """`endpoints` plus "serving_default" as the first one, as ExportArchive serves it."""
    if names.SERVING_DEFAULT in endpoints:
        return dict(endpoints)
    return {**endpoints, names.SERVING_DEFAULT: next(iter(endpoints.values()))}


def write_export(model, endpoints, packer, export_dir, name, version=None,
                 config=None, labels=None, info=None):
    """Writes and publishes one export version.

    Args:
      model: the Keras model whose variables the endpoints use (it must be built).
      endpoints: {signature name: (function, [tf.TensorSpec, ...])}; the first one is
        also served as "serving_default" unless that name is given.
      packer: the `signatures.TextPacker` the endpoints use (for assets and warmup).
      export_dir, name: the export goes to export_dir/name/VERSION.
      version: int, or None for the next free version.
      config: the model's resolved config (a JSON-ready dict) for assets/config.json.
      labels: list of label names (classifiers), written as assets/labels.txt.
      info: extra fields for assets/export.json.

    Returns:
      The path of the published version directory.

    Raises:
      FileExistsError: the version exists. ValueError: the graph uses an op TensorFlow
        Serving lacks (nothing is published then).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"the export name must be a plain directory name, got {name!r}")
    base = os.path.join(export_dir, name)
    tf.io.gfile.makedirs(base)
    version = versioning.resolve_version(base, version)
    tmp = versioning.temporary_dir(base, version)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for signature_name, (function, specs) in endpoints.items():
            archive.add_endpoint(signature_name, function, specs)
        archive.write_out(tmp, verbose=False)
        opset.check_serving_ops(tmp)

        assets = os.path.join(tmp, ASSETS)
        tf.io.gfile.makedirs(assets)
        tf.io.gfile.copy(packer.tokenizer.vocab_path, os.path.join(assets, VOCAB))
        if config is not None:
            files.write_json_atomic(os.path.join(assets, CONFIG_JSON), config)
        if labels is not None:
            files.write_text_atomic(os.path.join(assets, LABELS), "".join(f"{label}\n" for label in labels))
        meta = {
            "format_version": FORMAT_VERSION,
            "max_seq_length": packer.max_seq_length,
            "lowercase": packer.tokenizer.lowercase,
            "signatures": sorted(_with_default(endpoints)),
            **(info or {}),
        }
        files.write_json_atomic(os.path.join(assets, EXPORT_JSON), meta)
        warmup.write_warmup_requests(tmp, _warmup_logs(name, _with_default(endpoints), packer))
        path = versioning.publish(tmp, base, version)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
    logging.info("Exported %s (signatures %s)", path, ", ".join(endpoints))
    return path


def export_discriminator(model_dir, export_dir, name, version=None):
    """Exports a discriminator: a pretraining model_dir's `discriminator/` artifact (or
    that artifact directory itself).

    Signatures: replaced_token_scores (also serving_default), replaced_token_scores_ids,
    encoder_features, encoder_features_ids (see `signatures.py`).
    """
    artifact = artifacts.load(model_dir, DISCRIMINATOR)
    model, cfg = artifact.model, artifact.config
    packer = signatures.TextPacker(
        WordPieceTokenizer(artifact.vocab_path, lowercase=artifact.lowercase),
        artifact.max_seq_length)
    return write_export(
        model, signatures.discriminator_endpoints(model, packer), packer, export_dir, name,
        version, config=config_lib.to_dict(cfg),
        info={"kind": DISCRIMINATOR, "source": os.path.abspath(artifact.directory),
              "step": artifact.meta.get("step")},
    )


def is_pair_task(finetune_config):
    """Whether a fine-tuned model's inputs are text pairs (its FinetuneConfig says)."""
    if finetune_config.task == "custom":
        return bool(finetune_config.text_pair_column)
    return glue.get_task(finetune_config.task).is_pair


def export_finetuned(output_dir, export_dir, name, version=None, explain_steps=None,
                     max_windows=DEFAULT_MAX_WINDOWS):
    """Exports a fine-tuned model (a tools/finetune.py output dir; its best seed).

    Signatures, by model:
      classifier: serving_default (text, plus text_pair for pair tasks), predict_ids,
        encoder_features, encoder_features_ids (`signatures.py`), and with
        `explain_steps` (an int) `explain`: integrated-gradients attributions of the
        predicted label over that many steps (`electra_tf.export.attributions`);
      question answering: serving_default (question, context -> answer, character
        span, score; has_answer for SQuAD v2.0 models), searching up to `max_windows`
        windows per context, and predict_ids (`export/question_answering.py`);
      tagger: serving_default (text -> words, tags, entities) and predict_ids
        (`export/tagging.py`).
    """
    model, cfg, vocab_path, label_names = artifacts.load_finetuned(output_dir)
    tokenizer = WordPieceTokenizer(vocab_path, lowercase=cfg.lowercase)
    packer = signatures.TextPacker(tokenizer, cfg.max_seq_length)
    info = {"kind": CLASSIFIER, "task": cfg.task, "source": os.path.abspath(output_dir)}
    if explain_steps is not None and not hasattr(model, "head"):
        raise ValueError(f"{output_dir} holds a {type(model).__name__}; the explain "
                         "signature attributes a sequence classifier's decision")
    labels = None
    if isinstance(model, ElectraForQuestionAnswering):
        version_2 = cfg.task == "squad_v2"
        endpoints = QuestionAnsweringServer(
            model, tokenizer, cfg.max_seq_length, cfg.max_query_length, cfg.doc_stride,
            cfg.max_answer_length, cfg.n_best_size, version_2, cfg.null_score_threshold,
            max_windows).endpoints()
        info.update(model="question_answering", version_2=version_2, max_windows=max_windows)
    elif isinstance(model, ElectraForTokenClassification):
        endpoints = TaggingServer(model, tokenizer, cfg.max_seq_length).endpoints()
        info["model"] = "tagging"
        labels = list(label_names)
    else:
        pair = is_pair_task(cfg)
        endpoints = signatures.classifier_endpoints(model, packer, label_names, pair)
        info.update(model="classification", regression=model.is_regression, text_pair=pair)
        labels = None if model.is_regression else list(label_names)
        if explain_steps is not None:
            endpoints.update(
                attributions.explain_endpoint(model, packer, label_names, pair, explain_steps))
            info["explain_steps"] = explain_steps
    return write_export(model, endpoints, packer, export_dir, name, version,
                        config=dataclasses.asdict(cfg), labels=labels, info=info)


def export_model(model_dir, export_dir, name, version=None, explain_steps=None,
                 max_windows=DEFAULT_MAX_WINDOWS):
    """Exports whatever `model_dir` holds: a pretraining model_dir or discriminator
    artifact (`export_discriminator`), or a fine-tuning output (`export_finetuned`:
    a classifier, with the `explain` signature if `explain_steps` is given, a QA model
    searching `max_windows` windows per context, or a tagger).

    Returns:
      The published version directory.

    Raises:
      ValueError: `explain_steps` for a discriminator (only classifiers explain).
    """
    if model_dir_kind(model_dir) == CLASSIFIER:
        return export_finetuned(model_dir, export_dir, name, version, explain_steps,
                                max_windows)
    if explain_steps is not None:
        raise ValueError(
            f"{model_dir} holds a pretrained discriminator; the explain signature "
            "attributes a fine-tuned classifier's decision (export a tools/finetune.py "
            "output dir)")
    return export_discriminator(model_dir, export_dir, name, version)


def model_dir_kind(model_dir):
    """DISCRIMINATOR for a pretraining model_dir or discriminator artifact, CLASSIFIER
    for a tools/finetune.py output dir (the discriminator wins if both match).

    Raises:
      FileNotFoundError: it does not exist or holds no model. ValueError: it holds
        another kind of model (a generator).
    """
    directory, kind = artifacts.resolve(model_dir)
    if kind not in (DISCRIMINATOR, CLASSIFIER):
        raise ValueError(f"{directory} holds a {kind}; export and explain take a "
                         "discriminator or a fine-tuned classifier")
    return kind


def load_export_info(export_path):
    """assets/export.json of an export version directory."""
    path = os.path.join(export_path, ASSETS, EXPORT_JSON)
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def load_experiment_config(export_path):
    """The resolved experiment config saved with an export."""
    return config_lib.load_config(os.path.join(export_path, ASSETS, CONFIG_JSON))
