"""Every model directory electra_tf writes, and the ONE loader that reads them.

A pretraining model_dir ends with `discriminator/` and `generator/` (the MLM control:
`masked_lm/`) artifacts that fine-tuning, export and conversion start from:

    artifact.json      {"kind": "discriminator" | "generator", "format_version": 1,
                        "encoder_config": {...ElectraEncoder kwargs...}, "step": N}
    config.json        the resolved experiment config (electra_tf.config) it came from
    model.weights.h5   Keras weights of the ElectraDiscriminator / ElectraGenerator
    vocab.txt          the vocabulary the model was trained with

A generator artifact holds its own copy of the (shared) embeddings, so it loads alone.

A fine-tuned classifier directory (`training/finetune.py`'s output, or
`ElectraClassifier.save_to_model_dir`):

    finetune_config.json   the resolved FinetuneConfig (task, labels, lowercase,
                           max_seq_length, ...)
    model.json             the ElectraClassifier's Keras config
    model.weights.h5       its weights
    vocab.txt              the vocabulary
    eval_results.json      (fine-tuning) the results; with several seeds the top level
                           holds only this and the best seed's run is `best_run`/

`load(path, kind=None)` takes any of these (a model_dir, an artifact directory, a
fine-tuned output dir) and returns an `Artifact`.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf import schema
from electra_tf.models import task_model
# model.json names one of the fine-tuning models; importing them registers them.
from electra_tf.models.classifier import ElectraClassifier  # noqa: F401
from electra_tf.models.question_answering import ElectraForQuestionAnswering  # noqa: F401
from electra_tf.models.token_classification import ElectraForTokenClassification  # noqa: F401
from electra_tf.models.pretrainer import ElectraDiscriminator, ElectraGenerator
from electra_tf.text.preprocessor import Preprocessor

FORMAT_VERSION = 1
ARTIFACT_JSON = "artifact.json"
CONFIG_JSON = "config.json"
WEIGHTS = "model.weights.h5"
VOCAB = "vocab.txt"
# A fine-tuned classifier's files (besides WEIGHTS and VOCAB).
FINETUNE_CONFIG_JSON = "finetune_config.json"
MODEL_JSON = "model.json"
EVAL_RESULTS_JSON = "eval_results.json"

DISCRIMINATOR = "discriminator"
GENERATOR = "generator"
CLASSIFIER = "classifier"
_CLASSES = {DISCRIMINATOR: ElectraDiscriminator, GENERATOR: ElectraGenerator}


def save_artifact(model, directory, experiment_config, vocab_path, step=None, extra_meta=None):
    """Writes `model` (an ElectraDiscriminator or ElectraGenerator) as an artifact.

    `extra_meta` adds keys to artifact.json (e.g. the converter's provenance);
    loading ignores them.

    The weights go to a temporary file first, so an interrupted save never leaves a
    directory that looks complete with half-written weights.
    """
    kind = next((k for k, cls in _CLASSES.items() if isinstance(model, cls)), None)
    if kind is None:
        raise TypeError(f"cannot save {type(model).__name__} as an artifact")
    tf.io.gfile.makedirs(directory)
    files.copy_atomic(vocab_path, os.path.join(directory, VOCAB))
    config_lib.save_config(experiment_config, os.path.join(directory, CONFIG_JSON))
    with files.atomic_output(os.path.join(directory, WEIGHTS), keep_name_ending=True) as tmp:
        model.save_weights(tmp)
    meta = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "encoder_config": model.encoder_config,
        "step": step,
        **(extra_meta or {}),
    }
    # Written last: its presence marks a complete artifact.
    files.write_json_atomic(os.path.join(directory, ARTIFACT_JSON), meta)
    return directory


@dataclasses.dataclass
class Artifact:
    """A loaded model directory.

    Attributes:
      model: the Keras model (`ElectraDiscriminator`, `ElectraGenerator` or
        `ElectraClassifier`), built.
      config: an `electra_tf.config.ElectraConfig` (discriminator, generator), or the
        fine-tuning config as a dict (classifier; `config.FinetuneConfig`
        fields).
      vocab_path: the directory's vocab.txt.
      meta: artifact.json's content (classifier: {"kind", "label_names"}).
      kind: "discriminator", "generator" or "classifier".
      directory: the directory the files were read from (e.g. `model_dir/discriminator`,
        a multi-seed output's best run).

    Unpacks as the 4-tuple `(model, config, vocab_path, meta)`.
    """

    model: keras.Model
    config: object
    vocab_path: str
    meta: dict
    kind: str
    directory: str

    def __iter__(self):
        return iter((self.model, self.config, self.vocab_path, self.meta))

    @property
    def lowercase(self):
        """Whether the model's text is lower-cased (uncased vocabulary)."""
        if self.kind == CLASSIFIER:
            return self.config["lowercase"]
        return self.config.data.lowercase

    @property
    def max_seq_length(self):
        """The sequence length the model was trained with."""
        if self.kind == CLASSIFIER:
            return self.config["max_seq_length"]
        return self.config.data.max_seq_length

    @property
    def label_names(self):
        """A classifier's labels in output order (empty for regression and the others)."""
        return tuple(self.meta.get("label_names", ()))

    def preprocessor(self, max_seq_length=None):
        """A `Preprocessor` for this model's vocabulary and casing (its training length
        unless `max_seq_length` is given)."""
        return Preprocessor(self.vocab_path, lowercase=self.lowercase,
                            max_seq_length=max_seq_length or self.max_seq_length)


def _exists(directory, name):
    return tf.io.gfile.exists(os.path.join(directory, name))


def is_finetuned_dir(directory):
    """Whether `directory` is a fine-tuned classifier's (one run or several seeds)."""
    return _exists(directory, FINETUNE_CONFIG_JSON) or _exists(directory, EVAL_RESULTS_JSON)


def resolve(path, kind=None):
    """Which model directory `path` means, and what it holds.

    Args:
      path: an artifact directory, a pretraining model_dir (its `kind`/ artifact,
        default discriminator/), or a fine-tuned output dir (its best seed's run).
      kind: None (whatever is there), "discriminator", "generator" or "classifier".

    Returns:
      (directory, kind): the directory holding the model files and what they are.

    Raises:
      FileNotFoundError: `path` does not exist or holds no model (both named).
      ValueError: it holds another kind than `kind`.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    candidates = [path]
    if kind != CLASSIFIER:
        candidates.append(os.path.join(path, kind or DISCRIMINATOR))
    for directory in candidates:
        if _exists(directory, ARTIFACT_JSON):
            found = _read_json(os.path.join(directory, ARTIFACT_JSON)).get("kind")
            if kind is not None and found != kind:
                raise ValueError(f"{directory} holds a {found}, not a {kind}")
            return directory, found
    if is_finetuned_dir(path):
        if kind not in (None, CLASSIFIER):
            raise ValueError(f"{path} holds a fine-tuned classifier, not a {kind}")
        if _exists(path, WEIGHTS):
            return path, CLASSIFIER
        if not _exists(path, EVAL_RESULTS_JSON):
            raise FileNotFoundError(f"fine-tuned model {path} lacks {WEIGHTS}")
        best = _read_json(os.path.join(path, EVAL_RESULTS_JSON))["best_run"]
        return os.path.normpath(os.path.join(path, best)), CLASSIFIER
    if kind in _CLASSES:
        raise FileNotFoundError(f"no electra_tf {kind} artifact at {path} or {candidates[1]} "
                                f"(no {ARTIFACT_JSON})")
    raise FileNotFoundError(
        f"{path} is not an electra_tf model directory: expected a pretraining model_dir "
        f"(with discriminator/{ARTIFACT_JSON}), an artifact directory (with {ARTIFACT_JSON}) "
        f"or a fine-tuning output (with {FINETUNE_CONFIG_JSON})")


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def load(path, kind=None):
    """Loads any electra_tf model directory (see `resolve` for `path` and `kind`).

    Returns:
      An `Artifact`.

    Raises:
      FileNotFoundError naming the missing path or file; ValueError for a wrong kind
      or an unknown format version.
    """
    directory, found = resolve(path, kind)
    if found == CLASSIFIER:
        return _load_classifier(directory)
    meta_path = os.path.join(directory, ARTIFACT_JSON)
    meta = _read_json(meta_path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: unknown format_version {meta.get('format_version')!r}")
    if found not in _CLASSES:
        raise ValueError(f"{meta_path}: unknown kind {found!r}; expected one of {sorted(_CLASSES)}")
    for name in (CONFIG_JSON, WEIGHTS, VOCAB):
        if not _exists(directory, name):
            raise FileNotFoundError(f"artifact {directory} lacks {name}")
    experiment_config = config_lib.load_config(os.path.join(directory, CONFIG_JSON))
    model = _CLASSES[found](meta["encoder_config"])
    build_inputs(model, seq_len=8)
    model.load_weights(os.path.join(directory, WEIGHTS))
    return Artifact(model, experiment_config, os.path.join(directory, VOCAB), meta, found,
                    directory)


def load_artifact(directory, expected_kind=None):
    """`load(directory, expected_kind)` (kept for callers that unpack 4 values)."""
    return load(directory, expected_kind)


def _load_classifier(directory):
    for name in (FINETUNE_CONFIG_JSON, MODEL_JSON, WEIGHTS, VOCAB):
        if not _exists(directory, name):
            raise FileNotFoundError(f"fine-tuned model {directory} lacks {name}")
    config = _read_json(os.path.join(directory, FINETUNE_CONFIG_JSON))
    label_names = tuple(config.get("label_names", ()))
    architecture = _read_json(os.path.join(directory, MODEL_JSON))
    if "label_names" in architecture["config"]:  # classifiers and taggers
        architecture["config"]["label_names"] = label_names
    model = keras.saving.deserialize_keras_object(architecture)
    model.build_for_length(config["max_seq_length"])
    model.load_weights(os.path.join(directory, WEIGHTS))
    return Artifact(model, config, os.path.join(directory, VOCAB),
                    {"kind": CLASSIFIER, "label_names": list(label_names)}, CLASSIFIER, directory)


def save_classifier(model, directory, finetune_config, vocab_path):
    """Writes a fine-tuned classifier directory (see the module docstring).

    Args:
      model: a built `ElectraClassifier`.
      finetune_config: dict of `FinetuneConfig` fields (at least task, init,
        lowercase, max_seq_length, label_names).
      vocab_path: copied in as vocab.txt.
    """
    tf.io.gfile.makedirs(directory)
    files.copy_atomic(vocab_path, os.path.join(directory, VOCAB))
    files.write_json_atomic(os.path.join(directory, FINETUNE_CONFIG_JSON), finetune_config)
    architecture = keras.saving.serialize_keras_object(model)
    # The architecture only: export and further training bring their own optimizer,
    # and loading brings the preprocessor of the directory's own vocab.txt.
    architecture.pop("compile_config", None)
    architecture["config"].pop("preprocessor", None)
    files.write_json_atomic(os.path.join(directory, MODEL_JSON), architecture)
    # Weights last, via a temporary name: their presence marks a complete model.
    with files.atomic_output(os.path.join(directory, WEIGHTS), keep_name_ending=True) as tmp:
        model.save_weights(tmp)
    return directory


# === from_model_dir / save_to_model_dir of the pretraining models ===
# ElectraClassifier defines its own. These two classes live in pretrainer.py; the
# methods are attached here, where the directory format is, so that
# `ElectraDiscriminator.from_model_dir(path)` works like keras-hub's `from_preset`.


def _pretraining_model_from_model_dir(cls, path, max_seq_length=None):
    """A pretrained model with a `Preprocessor` for its vocabulary attached.

    Args:
      path: a pretraining model_dir (its `discriminator/` or `generator/`
        artifact, by class) or the artifact directory itself.
      max_seq_length: the preprocessor's length (default: the pretraining length).

    Returns:
      The model, built, with `.preprocessor` (a `Preprocessor`) and
      `.experiment_config` (the `ElectraConfig` it was trained with).
    """
    kind = next(k for k, c in _CLASSES.items() if c is cls)
    artifact = load(path, kind)
    # Untracked attributes: the model is built, and they hold no variables.
    object.__setattr__(artifact.model, "preprocessor", artifact.preprocessor(max_seq_length))
    object.__setattr__(artifact.model, "experiment_config", artifact.config)
    object.__setattr__(artifact.model, "step", artifact.meta.get("step"))
    return artifact.model


def _pretraining_model_save_to_model_dir(self, path):
    """Writes this model as an artifact directory (`from_model_dir` reads it back);
    needs the `experiment_config` and `preprocessor` that `from_model_dir` attaches."""
    config = getattr(self, "experiment_config", None)
    preprocessor = getattr(self, "preprocessor", None)
    if config is None or preprocessor is None:
        raise ValueError("save_to_model_dir needs the model's experiment_config and "
                         "preprocessor (a model from from_model_dir has both)")
    return save_artifact(self, path, config, preprocessor.vocab_path,
                         step=getattr(self, "step", None))


for _cls in _CLASSES.values():
    _cls.from_model_dir = classmethod(_pretraining_model_from_model_dir)
    _cls.save_to_model_dir = _pretraining_model_save_to_model_dir


def build_inputs(model, seq_len, batch=1):
    """Creates the model's variables by calling it once on zeros `[batch, seq_len]`."""
    inputs = task_model.zero_inputs(seq_len, batch)
    if isinstance(model, ElectraGenerator):
        inputs[schema.MASK_POSITIONS] = tf.zeros([batch, 1], tf.int32)
    model(inputs)
    return model


def load_finetuned(output_dir):
    """Loads a fine-tuned model from a run directory or a multi-seed output_dir
    (`artifacts.load(output_dir, "classifier")`, with the config as a FinetuneConfig).

    Returns:
      (model, finetune_config, vocab_path, label_names): an `ElectraClassifier` built
      for `finetune_config.max_seq_length`; tokenize with
      `WordPieceTokenizer(vocab_path, lowercase=finetune_config.lowercase)`;
      `label_names` are the classes in output order (empty for regression).
    """
    artifact = load(output_dir, CLASSIFIER)
    cfg = config_lib.load_finetune_config(os.path.join(artifact.directory, FINETUNE_CONFIG_JSON))
    return artifact.model, cfg, artifact.vocab_path, cfg.label_names
