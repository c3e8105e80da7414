"""Hugging Face ELECTRA directories <-> electra_tf models.

Reads `config.json` + `model.safetensors` (or a sharded `model.safetensors.index.json`,
or `pytorch_model.bin` when torch is installed) of

    ElectraForPreTraining              -> discriminator (encoder + RTD head)
    ElectraForMaskedLM                 -> generator (encoder + tied masked-LM head)
    ElectraModel                       -> discriminator; no RTD head in the source,
                                          so ours is zeroed and recorded as untrained
    ElectraForSequenceClassification   -> discriminator as ElectraModel; the head's
    ElectraForQuestionAnswering           tensors (classifier.*, qa_outputs.*) are
    ElectraForTokenClassification         dropped (logged), or, with
                                          `load_hf_task_model`, an `ElectraClassifier`,
                                          `ElectraForQuestionAnswering` or
                                          `ElectraForTokenClassification` with its head

and writes `config.json` + `model.safetensors` + tokenizer files that
`transformers.ElectraForPreTraining` / `ElectraForMaskedLM` load.

HF's "gelu" is the exact erf GELU, as Keras' "gelu" (and Google's ELECTRA code);
HF's generator head always uses GELU, as our `MaskedLMHead`.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.convert import mapping
from electra_tf.convert.mapping import ConversionError
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.models.question_answering import ElectraForQuestionAnswering
from electra_tf.models.token_classification import ElectraForTokenClassification
from electra_tf.text import tokenizer as tokenizer_lib

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
VOCAB = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_JSON = "tokenizer.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"

# architecture -> (our kind, whether the source holds that kind's head)
ARCHITECTURES = {
    "ElectraForPreTraining": ("discriminator", True),
    "ElectraForMaskedLM": ("generator", True),
    "ElectraModel": ("discriminator", False),
    "ElectraForSequenceClassification": ("discriminator", False),
    "ElectraForQuestionAnswering": ("discriminator", False),
    "ElectraForTokenClassification": ("discriminator", False),
}
# Tensors of a fine-tuning head, by architecture: dropped with a log line when only the
# encoder is converted (`load_hf_model`), kept by `load_hf_task_model`.
_DROPPED_PREFIXES = {"ElectraForSequenceClassification": "classifier.",
                     "ElectraForQuestionAnswering": "qa_outputs.",
                     "ElectraForTokenClassification": "classifier."}
# HF activations with an identical Keras activation of the same name.
_ACTIVATIONS = ("gelu", "relu", "silu", "swish", "tanh")
# transformers.ElectraConfig's defaults, for keys a config.json leaves out.
_HF_DEFAULTS = dict(
    vocab_size=30522, embedding_size=128, hidden_size=256, num_hidden_layers=12,
    num_attention_heads=4, intermediate_size=1024, hidden_act="gelu",
    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02,
    layer_norm_eps=1e-12, position_embedding_type="absolute",
)
# HF config key -> ElectraEncoder argument.
_CONFIG_KEYS = dict(
    vocab_size="vocab_size", embedding_size="embedding_size", hidden_size="hidden_size",
    num_hidden_layers="num_layers", num_attention_heads="num_heads",
    intermediate_size="intermediate_size", hidden_act="hidden_activation",
    hidden_dropout_prob="dropout_rate", attention_probs_dropout_prob="attention_dropout_rate",
    max_position_embeddings="max_position_embeddings", type_vocab_size="type_vocab_size",
    initializer_range="initializer_range", layer_norm_eps="layer_norm_epsilon",
)


def layout(prefix="electra"):
    """The Hugging Face `Layout`; a bare `ElectraModel` saves without the prefix."""
    return mapping.Layout(
        source="Hugging Face", sep=".", kernel="weight", bias="bias", gamma="weight",
        beta="bias", table="weight", transpose_kernels=True,
        embeddings=f"{prefix}.embeddings".lstrip("."),
        encoders={"discriminator": prefix, "generator": prefix},
        layer="encoder.layer.{}",
        rtd_dense="discriminator_predictions.dense",
        rtd_prediction="discriminator_predictions.dense_prediction",
        mlm_dense="generator_predictions.dense",
        mlm_layer_norm="generator_predictions.LayerNorm",
        mlm_output_bias="generator_lm_head.bias",
    )


# === Configs ===


def encoder_config_from_hf(hf_config, source):
    """`ElectraEncoder` kwargs from a Hugging Face `config.json` dict.

    Raises:
      ConversionError naming `source` and the key for anything electra_tf cannot
      reproduce exactly (relative positions, an activation without a Keras twin).
    """
    c = {**_HF_DEFAULTS, **{k: v for k, v in hf_config.items() if v is not None}}
    if c["position_embedding_type"] != "absolute":
        raise ConversionError(
            f"{source}: position_embedding_type={c['position_embedding_type']!r} is not "
            "supported; electra_tf has absolute learned positions only")
    if c["hidden_act"] not in _ACTIVATIONS:
        raise ConversionError(
            f"{source}: hidden_act={c['hidden_act']!r} has no exact electra_tf equivalent; "
            f"supported: {', '.join(_ACTIVATIONS)}")
    encoder_config = {ours: c[theirs] for theirs, ours in _CONFIG_KEYS.items()}
    try:
        config_lib.EncoderConfig(**encoder_config)
    except config_lib.ConfigError as e:
        raise ConversionError(f"{source}: {e}") from None
    return encoder_config


def hf_config_from_encoder(encoder_config, architecture, pad_token_id=0):
    """A Hugging Face `config.json` dict for `ElectraEncoder` kwargs.

    Arguments left out of `encoder_config` take ElectraEncoder's defaults (those of
    `config.EncoderConfig`), as they did when the model was built.
    """
    encoder_config = dataclasses.asdict(config_lib.EncoderConfig(**encoder_config))
    hf_config = {theirs: encoder_config[ours] for theirs, ours in _CONFIG_KEYS.items()}
    hf_config.update(
        architectures=[architecture], model_type="electra", pad_token_id=pad_token_id,
        position_embedding_type="absolute", tie_word_embeddings=True)
    return hf_config


# === Reading ===


def _read_json(path):
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from None


def _load_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ConversionError(
            f"reading {path} needs the safetensors package (pip install safetensors)") from None
    return load_file(path)


def _load_pytorch_bin(path):
    try:
        import torch
    except ImportError:
        raise ConversionError(
            f"{path} is a PyTorch pickle and reading it needs torch; install torch or "
            "convert it to model.safetensors") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {name: t.detach().float().numpy() for name, t in state.items()}


def read_state(directory):
    """{tensor name: numpy array} of a Hugging Face model directory (local paths)."""
    path = os.path.join(directory, SAFETENSORS)
    index = os.path.join(directory, SAFETENSORS_INDEX)
    if os.path.exists(path):
        state = _load_safetensors(path)
    elif os.path.exists(index):
        state = {}
        for shard in sorted(set(_read_json(index)["weight_map"].values())):
            state.update(_load_safetensors(os.path.join(directory, shard)))
    elif os.path.exists(os.path.join(directory, PYTORCH_BIN)):
        state = _load_pytorch_bin(os.path.join(directory, PYTORCH_BIN))
    else:
        raise ConversionError(
            f"{directory} holds no {SAFETENSORS}, {SAFETENSORS_INDEX} or {PYTORCH_BIN}")
    for name, value in state.items():
        if value.dtype.kind != "f":
            raise ConversionError(f"{directory}: tensor {name} has dtype {value.dtype}, "
                                  "expected floating point")
    return state


def _architecture(hf_config, state, directory):
    """The model class of a checkpoint: config.json's `architectures`, else its tensors."""
    names = hf_config.get("architectures") or []
    if names:
        if names[0] not in ARCHITECTURES:
            raise ConversionError(
                f"{directory}: architecture {names[0]} is not supported; supported: "
                f"{', '.join(ARCHITECTURES)}")
        return names[0]
    for prefix, architecture in (("discriminator_predictions.", "ElectraForPreTraining"),
                                 ("generator_predictions.", "ElectraForMaskedLM"),
                                 ("qa_outputs.", "ElectraForQuestionAnswering"),
                                 ("classifier.out_proj.", "ElectraForSequenceClassification"),
                                 ("classifier.", "ElectraForTokenClassification")):
        if any(n.startswith(prefix) for n in state):
            return architecture
    return "ElectraModel"


def read_vocab(directory):
    """The vocabulary of a tokenizer directory: (vocab.txt path or None, tokens).

    vocab.txt when present, else the WordPiece vocabulary inside tokenizer.json.
    """
    path = os.path.join(directory, VOCAB)
    if os.path.exists(path):
        return path, tokenizer_lib.load_vocab(path)
    tokenizer_json = os.path.join(directory, TOKENIZER_JSON)
    if os.path.exists(tokenizer_json):
        vocab = (_read_json(tokenizer_json).get("model") or {}).get("vocab")
        if isinstance(vocab, dict) and sorted(vocab.values()) == list(range(len(vocab))):
            return None, sorted(vocab, key=vocab.get)
        raise ConversionError(f"{tokenizer_json} holds no WordPiece vocabulary with ids 0..n-1")
    raise ConversionError(f"{directory} has no {VOCAB} or {TOKENIZER_JSON}; pass --vocab")


def read_lowercase(directory):
    """do_lower_case of a tokenizer directory (tokenizer_config.json, else tokenizer.json)."""
    tokenizer_config = os.path.join(directory, TOKENIZER_CONFIG)
    if os.path.exists(tokenizer_config):
        value = _read_json(tokenizer_config).get("do_lower_case")
        if value is not None:
            return bool(value)
    tokenizer_json = os.path.join(directory, TOKENIZER_JSON)
    if os.path.exists(tokenizer_json):
        value = (_read_json(tokenizer_json).get("normalizer") or {}).get("lowercase")
        if value is not None:
            return bool(value)
    logging.warning("%s does not say whether it lowercases; assuming do_lower_case=True "
                    "(ELECTRA's released models are uncased)", directory)
    return True


def _id_buffers(state):
    """The position/segment id buffers older transformers versions saved (not weights)."""
    return {n for n in state if n.endswith((".position_ids", ".token_type_ids"))}


def load_hf_state(model, state, source, with_head=True, ignored=()):
    """Copies a Hugging Face state dict into our built model, every tensor checked.

    Args:
      model: a built `ElectraDiscriminator` / `ElectraGenerator` (`mapping.new_model`).
      state: {HF tensor name: array}, e.g. `{k: v.numpy() for k, v in
        hf_model.state_dict().items()}`.
      source: what to call the state in error messages.
      with_head: whether the state holds the model's head.
      ignored: names to leave unused on purpose.

    Raises:
      ConversionError listing every missing, unexpected or misshapen tensor, and
      for a generator output layer that is not tied to the word embeddings.
    """
    # A bare ElectraModel saves its tensors without the "electra." prefix.
    hf_layout = layout("" if "embeddings.word_embeddings.weight" in state else "electra")
    ignored = set(ignored) | _id_buffers(state)
    tied = "generator_lm_head.weight"
    if mapping.kind_of(model) == "generator" and tied in state:
        ignored.add(tied)
        word_embeddings = state[hf_layout.join(hf_layout.embeddings, "word_embeddings.weight")]
        if not np.array_equal(state[tied], word_embeddings):
            raise ConversionError(
                f"{source}: {tied} differs from the word embeddings; electra_tf's "
                "generator ties its output layer to the token embedding table")
    mapping.assign(mapping.model_slots(hf_layout, model, with_head),
                   {n: np.shape(v) for n, v in state.items()}, state.__getitem__, source, ignored)


def _read_directory(directory):
    """(config.json dict, state dict, architecture) of a Hugging Face directory."""
    config_path = os.path.join(directory, CONFIG)
    if not os.path.exists(config_path):
        raise ConversionError(f"{directory} is not a Hugging Face model directory (no {CONFIG})")
    hf_config = _read_json(config_path)
    state = read_state(directory)
    return hf_config, state, _architecture(hf_config, state, directory)


def _task_model(architecture, encoder_config, hf_config, state, directory):
    """(our model, its head's slots) for a fine-tuned HF architecture."""
    hf_layout = layout()

    def require(name):
        if name not in state:
            raise ConversionError(f"{directory} lacks {name}")
        return state[name]

    if architecture == "ElectraForSequenceClassification":
        if encoder_config["hidden_activation"] != "gelu":
            raise ConversionError(
                f"{directory}: hidden_act={encoder_config['hidden_activation']!r}; HF's "
                "classification head uses gelu whatever it is, electra_tf's uses the encoder's")
        model = ElectraClassifier(
            encoder_config, num_labels=require("classifier.out_proj.weight").shape[0],
            head_dropout_rate=hf_config.get("classifier_dropout"))
        model.build_for_length(min(8, encoder_config["max_position_embeddings"]))
        return model, (mapping.dense_slots(hf_layout, model.head.dense, "classifier.dense")
                       + mapping.dense_slots(hf_layout, model.head.out_proj, "classifier.out_proj"))
    if architecture == "ElectraForQuestionAnswering":
        if require("qa_outputs.weight").shape[0] != 2:
            raise ConversionError(f"{directory}: qa_outputs has "
                                  f"{state['qa_outputs.weight'].shape[0]} outputs, not 2 "
                                  "(start and end)")
        model = ElectraForQuestionAnswering(encoder_config)
        model.build_for_length(min(8, encoder_config["max_position_embeddings"]))
        return model, mapping.dense_slots(hf_layout, model.qa_outputs, "qa_outputs")
    num_labels = require("classifier.weight").shape[0]
    id2label = hf_config.get("id2label") or {}
    names = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)]
    model = ElectraForTokenClassification(encoder_config, names,
                                          head_dropout_rate=hf_config.get("classifier_dropout"))
    model.build_for_length(min(8, encoder_config["max_position_embeddings"]))
    return model, mapping.dense_slots(hf_layout, model.classifier, "classifier")


def load_hf_task_model(directory):
    """A fine-tuned model, head included, from a Hugging Face fine-tuned ELECTRA:

      ElectraForSequenceClassification -> `ElectraClassifier` (HF's
          `ElectraClassificationHead`, classifier.dense + GELU + classifier.out_proj,
          maps one to one onto `ClassificationHead`; num_labels from out_proj)
      ElectraForQuestionAnswering      -> `ElectraForQuestionAnswering` (qa_outputs)
      ElectraForTokenClassification    -> `ElectraForTokenClassification` (classifier;
          label names from config.json's id2label)

    Raises:
      ConversionError for another architecture, a sequence classifier with a non-GELU
      encoder (HF's head always uses GELU, ours the encoder's activation), or any
      tensor mismatch (every missing, unexpected or misshapen tensor listed).
    """
    hf_config, state, architecture = _read_directory(directory)
    if architecture not in TASK_ARCHITECTURES:
        raise ConversionError(f"{directory} holds an {architecture}, not a fine-tuned model "
                              f"({', '.join(TASK_ARCHITECTURES)})")
    encoder_config = encoder_config_from_hf(hf_config, directory)
    model, head_slots = _task_model(architecture, encoder_config, hf_config, state, directory)
    slots = mapping.encoder_slots(layout(), model.encoder, "discriminator") + head_slots
    mapping.assign(slots, {n: np.shape(v) for n, v in state.items()}, state.__getitem__,
                   directory, _id_buffers(state))
    return model


TASK_ARCHITECTURES = tuple(_DROPPED_PREFIXES)


def load_hf_model(directory, kind=None):
    """Builds our model from a Hugging Face directory and loads every tensor.

    Args:
      directory: local directory with config.json and the weights.
      kind: "discriminator" / "generator" to insist on; None accepts either.

    Returns:
      (model, meta): an `ElectraDiscriminator` or `ElectraGenerator`, and the
      artifact.json keys recording it: "converted_from" (format, path,
      architecture, dropped_tensors) and "untrained_heads" when the source had none.

    Raises:
      ConversionError listing every missing, unexpected or misshapen tensor, or
      for a `kind` the directory does not hold.
    """
    hf_config, state, architecture = _read_directory(directory)
    source_kind, has_head = ARCHITECTURES[architecture]
    if kind is not None and kind != source_kind:
        raise ConversionError(
            f"--model={kind} but {directory} holds an {architecture}, which converts to a "
            f"{source_kind}")
    model = mapping.new_model(source_kind, encoder_config_from_hf(hf_config, directory))
    drop = _DROPPED_PREFIXES.get(architecture)
    dropped = sorted(n for n in state if drop and n.startswith(drop))
    load_hf_state(model, state, directory, with_head=has_head, ignored=dropped)

    source = {"format": "hf", "path": os.path.abspath(directory), "architecture": architecture}
    meta = {"converted_from": source}
    if not has_head:
        mapping.zero_rtd_head(model)
        meta["untrained_heads"] = ["rtd_head"]
        logging.warning("%s (%s) has no replaced-token head: the discriminator's rtd_head is "
                        "zeros (p=0.5 for every token); the encoder is fully converted",
                        directory, architecture)
    if dropped:
        source["dropped_tensors"] = dropped
        logging.warning("Dropped %d tensors of the %s head (electra_tf has no matching "
                        "layer to hold them): %s", len(dropped), architecture, ", ".join(dropped))
    return model, meta


# === Writing ===


def save_hf_model(model, directory, vocab_path, lowercase, with_head=True):
    """Writes `model` as a Hugging Face directory `transformers` loads.

    An `ElectraDiscriminator` becomes an `ElectraForPreTraining` (or, with
    `with_head=False`, an `ElectraModel`), an `ElectraGenerator` an
    `ElectraForMaskedLM` whose output layer is tied to the word embeddings.
    Tokenizer files (vocab.txt, tokenizer_config.json, special_tokens_map.json)
    are written beside it.
    """
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise ConversionError("writing Hugging Face checkpoints needs the safetensors "
                              "package (pip install safetensors)") from None
    kind = mapping.kind_of(model)
    architecture = ("ElectraForMaskedLM" if kind == "generator"
                    else "ElectraForPreTraining" if with_head else "ElectraModel")
    # transformers saves a bare ElectraModel without the base-model prefix.
    prefix = "" if architecture == "ElectraModel" else "electra"
    tensors = mapping.collect(mapping.model_slots(layout(prefix), model, with_head))

    tokens = tokenizer_lib.load_vocab(vocab_path)
    pad_token_id = tokens.index(tokenizer_lib.PAD) if tokenizer_lib.PAD in tokens else 0
    tf.io.gfile.makedirs(directory)
    # "format": "pt" tells transformers the tensors follow PyTorch's layout.
    save_file(tensors, os.path.join(directory, SAFETENSORS), metadata={"format": "pt"})
    files.write_json_atomic(
        os.path.join(directory, CONFIG),
        hf_config_from_encoder(model.encoder_config, architecture, pad_token_id), sort_keys=True)
    files.copy_atomic(vocab_path, os.path.join(directory, VOCAB))
    special = dict(unk_token=tokenizer_lib.UNK, sep_token=tokenizer_lib.SEP,
                   pad_token=tokenizer_lib.PAD, cls_token=tokenizer_lib.CLS,
                   mask_token=tokenizer_lib.MASK)
    files.write_json_atomic(os.path.join(directory, TOKENIZER_CONFIG), dict(
        tokenizer_class="ElectraTokenizer", do_lower_case=lowercase, strip_accents=None,
        tokenize_chinese_chars=True,
        model_max_length=model.encoder_config["max_position_embeddings"], **special),
        sort_keys=True)
    files.write_json_atomic(os.path.join(directory, SPECIAL_TOKENS_MAP), special, sort_keys=True)
    logging.info("Wrote %s (%d tensors) to %s", architecture, len(tensors), directory)
    return architecture