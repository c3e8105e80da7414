"""Experiment configuration: frozen dataclasses loaded from strict JSON.

One JSON file per experiment (see `configs/`) with the sections "model", "data",
"pretraining", "train" and "diagnostics". A missing section or key takes its default; an unknown one
is an error that lists the valid names, so a typo never silently trains the default.
Derived values (the generator's size, `max_predictions`) are computed from the stored
fields and never written back, so they cannot disagree with the fields they come from.

    cfg = load_config("configs/electra_small.json", ["train.batch_size=64"])
    cfg.model.generator_encoder().hidden_size  # 64
    cfg.max_predictions                         # 19
"""

import collections
import dataclasses
import difflib
import json
import math
from typing import ClassVar, Optional

from absl import logging
import tensorflow as tf

from electra_tf import files

# Keras activation names, so the encoder can hand the string straight to Keras. "gelu"
# is the exact (erf) GELU, as in Hugging Face's ELECTRA.
HIDDEN_ACTIVATIONS = ("gelu", "relu", "silu", "swish", "tanh")


class ConfigError(ValueError):
    """A config file, override or value is invalid; the message names the key."""


def _require(condition, message):
    if not condition:
        raise ConfigError(message)


def _check_types(cfg):
    """Checks every field against its annotation; ints become floats for float fields."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{cfg.SECTION}.{f.name}"
        # bool is a subclass of int, yet `true` is never a meaningful size or rate.
        if f.type is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, f.name, float(value))
        elif not isinstance(value, f.type) or (f.type is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"{key} must be of type {f.type.__name__}, got {value!r} ({type(value).__name__})")


def _check_in(cfg, names, low, high=math.inf, low_open=False, high_open=False):
    """Checks that each field in `names` lies in the interval; NaN fails too."""
    for name in names.split():
        value = getattr(cfg, name)
        inside = ((low < value) if low_open else (low <= value)) and (
            (value < high) if high_open else (value <= high))
        if math.isinf(high):
            bound = f"{'>' if low_open else '>='} {low}"
        else:
            bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        _require(inside, f"{cfg.SECTION}.{name} must be {bound}, got {value}")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The arguments of one transformer encoder (`models/encoder.py` takes them as kwargs)."""

    SECTION: ClassVar[str] = "encoder"

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    hidden_activation: str = "gelu"
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12
    attention_locality: float = 0.0
    local_conv_kernel: int = 0

    def __post_init__(self):
        _check_types(self)
        _check_in(self, "vocab_size embedding_size hidden_size num_layers num_heads "
                  "intermediate_size max_position_embeddings type_vocab_size", 1)
        _check_in(self, "dropout_rate attention_dropout_rate", 0, 1, high_open=True)
        _check_in(self, "initializer_range layer_norm_epsilon", 0, low_open=True)
        _check_in(self, "attention_locality local_conv_kernel", 0)
        _require(self.local_conv_kernel % 2 == 1 or self.local_conv_kernel == 0,
                 f"{self.SECTION}.local_conv_kernel must be 0 (off) or odd, so the "
                 f"window is centred on its token; got {self.local_conv_kernel}")
        s = self.SECTION
        _require(self.hidden_size % self.num_heads == 0,
                 f"{s}.hidden_size={self.hidden_size} is not divisible by "
                 f"{s}.num_heads={self.num_heads}")
        _require(self.hidden_activation in HIDDEN_ACTIVATIONS,
                 f"{s}.hidden_activation={self.hidden_activation!r} is not one of "
                 f"{', '.join(HIDDEN_ACTIVATIONS)}")


@dataclasses.dataclass(frozen=True)
class ModelConfig(EncoderConfig):
    """The discriminator's encoder plus the generator's relative width and depth.

    The generator copies the discriminator's embedding size (the embeddings are shared)
    and is `generator_hidden_fraction` as wide, as in the ELECTRA paper, and
    `generator_layers_fraction` as deep (1.0, the paper's choice, by default).
    """

    SECTION: ClassVar[str] = "model"

    generator_hidden_fraction: float = 0.25
    generator_layers_fraction: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        _check_in(self, "generator_hidden_fraction generator_layers_fraction", 0, 1,
                  low_open=True)
        try:
            self.generator_encoder()
        except ConfigError as e:
            raise ConfigError(
                f"model.generator_hidden_fraction={self.generator_hidden_fraction} "
                f"gives an invalid generator: {e}") from None

    def discriminator_encoder(self):
        return EncoderConfig(**{f.name: getattr(self, f.name)
                                for f in dataclasses.fields(EncoderConfig)})

    def generator_encoder(self):
        # Rounded, not truncated: base's 768 * 0.333333 must give 256, not 255
        # (Google's code rounds the same way).
        hidden = int(round(self.hidden_size * self.generator_hidden_fraction))
        layers = max(1, int(round(self.num_layers * self.generator_layers_fraction)))
        return dataclasses.replace(self.discriminator_encoder(), hidden_size=hidden,
                                   num_heads=max(1, hidden // 64),
                                   intermediate_size=4 * hidden, num_layers=layers)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Input data; a relative `vocab_path` is resolved by the caller (working directory)."""

    SECTION: ClassVar[str] = "data"

    vocab_path: str = ""
    lowercase: bool = True
    max_seq_length: int = 128
    shuffle_buffer: int = 10000

    def __post_init__(self):
        _check_types(self)
        _check_in(self, "max_seq_length shuffle_buffer", 1)


def max_predictions(mask_rate, max_seq_length):
    """ELECTRA's prediction slots per sequence, `int((p + 0.005) * L)` (the 0.005 slack
    is Google's formula): the config's derived value and the data pipeline's default."""
    return int((mask_rate + 0.005) * max_seq_length)


def check_masking_rates(mask_rate, mask_token_rate, random_token_rate):
    """The masking rates' rule, for the config and for the data pipeline's arguments.

    Raises:
      ConfigError (a ValueError) naming the pretraining key that breaks it.
    """
    _require(0 < mask_rate < 1, f"pretraining.mask_rate must be in (0, 1), got {mask_rate}")
    for name, value in (("mask_token_rate", mask_token_rate),
                        ("random_token_rate", random_token_rate)):
        _require(0 <= value <= 1, f"pretraining.{name} must be in [0, 1], got {value}")
    _require(mask_token_rate + random_token_rate <= 1 + 1e-9,
             "pretraining.mask_token_rate + pretraining.random_token_rate must be <= 1, got "
             f"{mask_token_rate} + {random_token_rate} (they split the chosen tokens, so "
             "their sum <= 1)")


OBJECTIVES = ("electra", "mlm")
TEMPERATURE_SCHEDULES = ("constant", "linear", "cosine")
FLATTEN_TOWARD = ("uniform", "unigram")


@dataclasses.dataclass(frozen=True)
class PretrainingConfig:
    """The pretraining objective, its masking, sampling and loss weights.

    `objective` "electra" trains generator + discriminator (replaced-token detection);
    "mlm" trains the discriminator's architecture alone as a BERT-style masked LM (the
    control that tells whether replaced-token detection, or any pretraining, helps).

    The generator samples at `temperature` until step `temperature_decay_start`, then
    moves to `temperature_end` over `temperature_decay_steps` steps along
    `temperature_schedule` ("constant" ignores the last three). A temperature above 1
    flattens the generator, which keeps a small discriminator on an easier task
    while the generator learns unigram statistics; see benchmarks/README.md.
    `disallow_correct` (Google's option) never samples the original token, so every
    masked position is a replacement. `whole_word_masking` masks all WordPieces of a
    word together (Google's ELECTRA masks pieces independently), so the generator
    replaces whole multi-piece words (what that does at tiny scale: benchmarks/README.md).
    `sampling_top_k` > 0 samples among the generator's k most probable ids only, so a
    temperature above 1 flattens the plausible ids rather than the rare tail.
    `sampling_passes` > 1 draws each run of adjacent masked positions (a masked word)
    left to right, one generator pass per position, so a replaced word is spelled
    piece by piece by a generator that saw its first pieces; each pass costs one
    more generator forward pass.
    `flatten_toward` says what a temperature T flattens the generator toward: the
    paper's "uniform" samples from p^(1/T), which at T > 1 oversamples rare tokens, so
    the discriminator learns that a rare token is often a replacement; "unigram"
    samples from p^(1/T) * u^(1 - 1/T), u the data's token frequencies, which at
    T > 1 adds frequent out-of-place words instead (the same as "uniform" at T = 1).
    """

    SECTION: ClassVar[str] = "pretraining"

    objective: str = "electra"
    mask_rate: float = 0.15
    mask_token_rate: float = 0.85
    random_token_rate: float = 0.0
    temperature: float = 1.0
    temperature_schedule: str = "constant"
    temperature_end: float = 1.0
    temperature_decay_start: int = 0
    temperature_decay_steps: int = 0
    disallow_correct: bool = False
    whole_word_masking: bool = False
    sampling_top_k: int = 0
    sampling_passes: int = 1
    flatten_toward: str = "uniform"
    generator_weight: float = 1.0
    discriminator_weight: float = 50.0

    def __post_init__(self):
        _check_types(self)
        _require(self.objective in OBJECTIVES,
                 f"pretraining.objective={self.objective!r} is not one of "
                 f"{', '.join(OBJECTIVES)}")
        _require(self.temperature_schedule in TEMPERATURE_SCHEDULES,
                 f"pretraining.temperature_schedule={self.temperature_schedule!r} is not "
                 f"one of {', '.join(TEMPERATURE_SCHEDULES)}")
        _check_in(self, "temperature_end", 0, low_open=True)
        _check_in(self, "temperature_decay_start temperature_decay_steps", 0)
        _require(self.temperature_schedule == "constant" or self.temperature_decay_steps > 0,
                 f"pretraining.temperature_schedule={self.temperature_schedule!r} needs "
                 "pretraining.temperature_decay_steps > 0")
        check_masking_rates(self.mask_rate, self.mask_token_rate, self.random_token_rate)
        _check_in(self, "temperature", 0, low_open=True)
        _check_in(self, "generator_weight discriminator_weight", 0)
        _check_in(self, "sampling_top_k", 0)
        _check_in(self, "sampling_passes", 1)
        _require(self.flatten_toward in FLATTEN_TOWARD,
                 f"pretraining.flatten_toward={self.flatten_toward!r} is not one of "
                 f"{', '.join(FLATTEN_TOWARD)}")

    def max_predictions(self, max_seq_length):
        """Masked positions per sequence (`max_predictions`)."""
        return max_predictions(self.mask_rate, max_seq_length)

    def temperature_kwargs(self):
        """The temperature schedule as `ElectraPretrainer` keyword arguments."""
        return {name: getattr(self, name) for name in (
            "temperature", "temperature_schedule", "temperature_end",
            "temperature_decay_start", "temperature_decay_steps")}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    `batch_size` is the GLOBAL batch of one optimizer update, over all replicas; with
    `grad_accum_steps` = N each replica splits its share into N micro-batches, one
    forward/backward pass each, so the update is the same as without accumulation.
    """

    SECTION: ClassVar[str] = "train"

    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 10000
    num_train_steps: int = 1000000
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    clip_norm: float = 1.0  # 0 disables clipping.
    seed: int = 42
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    log_every: int = 100
    steps_per_execution: int = 1
    grad_accum_steps: int = 1

    def __post_init__(self):
        _check_types(self)
        _check_in(self, "batch_size num_train_steps checkpoint_every keep_checkpoints "
                  "log_every steps_per_execution grad_accum_steps", 1)
        _check_in(self, "warmup_steps weight_decay clip_norm seed", 0)
        _check_in(self, "learning_rate adam_epsilon", 0, low_open=True)
        _check_in(self, "adam_beta1 adam_beta2", 0, 1, high_open=True)
        _require(self.batch_size % self.grad_accum_steps == 0,
                 f"train.batch_size={self.batch_size} is not divisible by "
                 f"train.grad_accum_steps={self.grad_accum_steps}")
        _require(self.warmup_steps <= self.num_train_steps,
                 f"train.warmup_steps={self.warmup_steps} exceeds "
                 f"train.num_train_steps={self.num_train_steps}")


@dataclasses.dataclass(frozen=True)
class DiagnosticsConfig:
    """What pretraining watches to tell whether the discriminator learns.

    `collapse_gap`, `collapse_logs`: a warning is logged once when `rtd_prior_gap`
    (the entropy of the replaced fraction minus rtd_loss, in nats; 0 means the
    discriminator answers the constant prior) stays below `collapse_gap` for
    `collapse_logs` consecutive log records after warmup.
    `context_probe_every`: steps between context probes (0: at every checkpoint);
    the probe replaces `context_probe_rate` of the tokens of `context_probe_sequences`
    held-out sequences by unigram draws (`training/diagnostics.py`).
    """

    SECTION: ClassVar[str] = "diagnostics"

    collapse_gap: float = 0.02
    collapse_logs: int = 5
    context_probe_every: int = 0
    context_probe_sequences: int = 256
    context_probe_rate: float = 0.15

    def __post_init__(self):
        _check_types(self)
        _check_in(self, "collapse_gap context_probe_every", 0)
        _check_in(self, "collapse_logs context_probe_sequences", 1)
        _check_in(self, "context_probe_rate", 0, 1, low_open=True, high_open=True)


@dataclasses.dataclass(frozen=True)
class ElectraConfig:
    """The whole experiment; `to_dict`/`save_config` write its stored fields only."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    pretraining: PretrainingConfig = dataclasses.field(default_factory=PretrainingConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    diagnostics: DiagnosticsConfig = dataclasses.field(default_factory=DiagnosticsConfig)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _require(isinstance(getattr(self, f.name), f.type),
                     f"section {f.name!r} must be a {f.type.__name__}")
        _require(self.data.max_seq_length <= self.model.max_position_embeddings,
                 f"data.max_seq_length={self.data.max_seq_length} exceeds "
                 f"model.max_position_embeddings={self.model.max_position_embeddings}")
        _require(self.max_predictions >= 1,
                 f"pretraining.mask_rate={self.pretraining.mask_rate} masks no token of a "
                 f"data.max_seq_length={self.data.max_seq_length} sequence")

    @property
    def max_predictions(self):
        return self.pretraining.max_predictions(self.data.max_seq_length)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(ElectraConfig)}


def _did_you_mean(name, valid):
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section_fields(section, what):
    """{name: field} of `section`, or an error about `what` listing the valid sections."""
    if section not in _SECTIONS:
        raise ConfigError(f"unknown {what}{_did_you_mean(section, _SECTIONS)}; "
                          f"valid sections: {', '.join(_SECTIONS)}")
    return {f.name: f for f in dataclasses.fields(_SECTIONS[section])}


def _field(key):
    """The field named by "section.key", or an error listing the valid names."""
    section, _, name = key.partition(".")
    fields = _section_fields(section, f"key {key!r}")
    if name not in fields:
        raise ConfigError(f"unknown key {key!r}{_did_you_mean(name, fields)}; "
                          f"valid keys of {section}: {', '.join(fields)}")
    return fields[name]


def _check_keys(d):
    """Checks that `d` is {section: {key: value}} with known sections and keys only."""
    _require(isinstance(d, dict), f"a config must be a JSON object, got {type(d).__name__}")
    for section, values in d.items():
        _section_fields(section, f"section {section!r}")
        _require(isinstance(values, dict),
                 f"section {section!r} must be a JSON object, got {type(values).__name__}")
        for name in values:
            _field(f"{section}.{name}")


def from_dict(d):
    """Builds an ElectraConfig from {"model": {...}, ...}; missing keys take defaults."""
    _check_keys(d)
    return ElectraConfig(**{s: cls(**d.get(s, {})) for s, cls in _SECTIONS.items()})


def to_dict(cfg):
    """The stored fields, section by section; derived values are not included."""
    return dataclasses.asdict(cfg)


def _parse_value(key, field, text):
    """Parses an override's text as the field's type."""
    try:
        if field.type is bool:
            return {"true": True, "1": True, "false": False, "0": False}[text.strip().lower()]
        return field.type(text)
    except (KeyError, ValueError):
        expected = "bool (true/false/1/0)" if field.type is bool else field.type.__name__
        raise ConfigError(f"override {key}={text!r}: expected {expected}") from None


def _with_overrides(d, overrides):
    """Returns a copy of the checked nested dict `d` with each "section.key=value" set."""
    d = {section: dict(values) for section, values in d.items()}
    seen = set()
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        _require(sep == "=", f"override {override!r} is not of the form section.key=value")
        _require(key not in seen, f"override {key!r} is given more than once")
        seen.add(key)
        try:
            value = _parse_value(key, _field(key), text)
        except ConfigError as e:
            message = str(e)
            # Every error names the override it comes from.
            raise ConfigError(message if message.startswith("override")
                              else f"override {override!r}: {message}") from None
        section, _, name = key.partition(".")
        d.setdefault(section, {})[name] = value
    return d


def apply_overrides(cfg, overrides):
    """Returns `cfg` with overrides like "train.batch_size=64" applied.

    All overrides are set before validating, so dependent fields (e.g.
    model.max_position_embeddings and data.max_seq_length) can change together.
    """
    return from_dict(_with_overrides(to_dict(cfg), overrides))


def _reject_duplicate_keys(pairs):
    # json's default keeps the last of duplicate keys, silently dropping the others.
    counts = collections.Counter(k for k, _ in pairs)
    duplicates = sorted(k for k, n in counts.items() if n > 1)
    _require(not duplicates, f"duplicate key(s) {', '.join(duplicates)}")
    return dict(pairs)


def load_config(path, overrides=()):
    """Reads a JSON config file, then applies `overrides` ("section.key=value").

    Raises:
      ConfigError: naming the file (missing, bad JSON, unknown keys), the override
        (unknown key, bad value), or, for a value the checks refuse, the file and the
        overrides together.
    """
    try:
        _require(tf.io.gfile.exists(path), "does not exist")
        with tf.io.gfile.GFile(path, "r") as f:
            d = json.loads(f.read(), object_pairs_hook=_reject_duplicate_keys)
        _check_keys(d)
    except ValueError as e:  # ConfigError, bad JSON, bad UTF-8.
        raise ConfigError(f"config {path}: {e}") from None
    d = _with_overrides(d, overrides)  # its errors name the override, not the file
    try:
        cfg = from_dict(d)
    except ValueError as e:
        where = f"config {path}" + (f" with overrides {', '.join(overrides)}" if overrides else "")
        raise ConfigError(f"{where}: {e}") from None
    logging.info("Loaded config %s with overrides %s", path, list(overrides))
    return cfg


def save_config(cfg, path):
    """Writes `cfg` as JSON, atomically (`files.atomic_output`)."""
    files.write_json_atomic(path, to_dict(cfg))


def diff_configs(a, b):
    """Lists the stored fields that differ, as "section.key: a_value != b_value"."""
    da, db = to_dict(a), to_dict(b)
    return [f"{section}.{name}: {json.dumps(value)} != {json.dumps(db[section][name])}"
            for section, values in da.items()
            for name, value in values.items() if value != db[section][name]]


# === Fine-tuning ===
# A flat config (one experiment of tools/finetune.py); stored as finetune_config.json in
# every fine-tuned output, read with the same strictness as the pretraining config.


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning experiment. None fields take `paper_defaults` when resolved.

    Attributes:
      task: a GLUE task name (`glue.GLUE_TASKS`), "custom" (users' classification
        data), "squad" / "squad_v2" (extractive QA) or "ner" / "chunk" / "tagging"
        (token tagging); see `training/tasks.py`.
      max_seq_length: tokens per example (SQuAD: per window); None: 128, 384 for
        SQuAD, at most the encoder's max_position_embeddings.
      init: a pretraining model_dir (or its `discriminator/` artifact), or "none" for a
        randomly initialised encoder of `model_config` with the vocabulary `vocab`.
      model_config, vocab, lowercase: for init "none" only (a pretrained init brings
        its own vocabulary and casing).
      text_column, text_pair_column, label_column, label_names, regression: the custom
        task's columns and labels (see `glue.custom_task`); `label_names` is filled with
        the task's labels when resolved.
      batch_size: the global batch of one update (over replicas and micro-batches).
      grad_accum_steps: split each update's batch into this many micro-batches (one
        forward/backward pass each): the same update, the memory of one micro-batch.
        batch_size must be divisible by it (and by replicas x grad_accum_steps under
        a multi-replica strategy).
    """

    task: str
    init: str
    model_config: str = ""
    vocab: str = ""
    lowercase: bool = True
    max_seq_length: Optional[int] = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    epochs: Optional[int] = None
    learning_rate: Optional[float] = None
    layer_decay: Optional[float] = None
    dropout_rate: Optional[float] = None  # None: the encoder's own (hidden and attention)
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    seed: int = 42
    max_train_examples: int = 0  # 0: all; else a random sample (seeded, the same for every seed)
    max_steps: int = 0  # 0: all epochs; else stop after this many updates
    skip_bad_rows: bool = False
    text_column: str = "text"
    text_pair_column: str = ""
    label_column: str = "label"
    label_names: tuple = ()
    regression: bool = False
    # Question answering (SQuAD): BERT's and ELECTRA's settings.
    max_query_length: int = 64  # question WordPieces kept
    doc_stride: int = 128  # WordPieces between the starts of a context's windows
    max_answer_length: int = 30  # longest answer, in WordPieces
    n_best_size: int = 20  # start/end candidates per window; answers in nbest_predictions
    null_score_threshold: float = 0.0  # v2.0: "no answer" when null - best span exceeds it
    drop_windows_without_answer: bool = False  # training: drop them (else label [CLS])

    def __post_init__(self):
        for name in ("max_seq_length", "batch_size", "grad_accum_steps", "epochs",
                     "max_query_length", "doc_stride", "max_answer_length", "n_best_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(f"batch_size={self.batch_size} must be divisible by "
                             f"grad_accum_steps={self.grad_accum_steps}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.dropout_rate is not None and not 0 <= self.dropout_rate < 1:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if not 0 <= self.warmup_fraction <= 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction}")
        if self.max_steps < 0:
            raise ConfigError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.max_train_examples < 0:
            raise ConfigError(f"max_train_examples must be >= 0, got {self.max_train_examples}")
        object.__setattr__(self, "label_names", tuple(self.label_names))


def finetune_config_from(values, overrides=()):
    """A FinetuneConfig from `values` ({field: value}), then `overrides` ("key=value",
    values as JSON, else plain strings): how tools/finetune.py maps its flags.

    Raises:
      ConfigError: an unknown key (with a did-you-mean), a malformed override, or a
        value the checks refuse.
    """
    values = dict(values)
    for override in overrides:
        key, sep, text = override.partition("=")
        _require(sep == "=", f"override {override!r} is not of the form key=value")
        try:
            values[key.strip()] = json.loads(text)
        except ValueError:
            values[key.strip()] = text
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    for key in values:
        _require(key in known, f"unknown fine-tuning key {key!r}{_did_you_mean(key, known)}; "
                               f"valid keys: {', '.join(sorted(known))}")
    if isinstance(values.get("label_names"), list):
        values["label_names"] = tuple(values["label_names"])
    try:
        return FinetuneConfig(**values)
    except TypeError as e:  # a required key missing
        raise ConfigError(str(e)) from None


def read_finetune_values(path):
    """The {field: value} of a fine-tuning config file: a run's finetune_config.json or
    a preset holding some of the fields (`configs/finetune_*.json`). Unknown keys are
    refused (with a did-you-mean), as duplicate keys and malformed JSON are.

    Raises:
      ConfigError: naming the file, and the key or value at fault.
    """
    try:
        _require(tf.io.gfile.exists(path), "does not exist")
        with tf.io.gfile.GFile(path, "r") as f:
            values = json.loads(f.read(), object_pairs_hook=_reject_duplicate_keys)
        _require(isinstance(values, dict), "a fine-tuning config must be a JSON object")
        known = {f.name for f in dataclasses.fields(FinetuneConfig)}
        for key in values:
            _require(key in known, f"unknown fine-tuning key {key!r}"
                                   f"{_did_you_mean(key, known)}")
        return values
    except ValueError as e:  # ConfigError, bad JSON, bad UTF-8.
        raise ConfigError(f"fine-tuning config {path}: {e}") from None


def load_finetune_config(path, overrides=()):
    """Reads a finetune_config.json, then applies `overrides` (as `finetune_config_from`).

    Raises:
      ConfigError: naming the file, and the key or value at fault.
    """
    values = read_finetune_values(path)
    try:
        return finetune_config_from(values, overrides)
    except ConfigError as e:
        raise ConfigError(f"fine-tuning config {path}: {e}") from None


def save_finetune_config(cfg, path):
    """Writes a FinetuneConfig as JSON, atomically (`files.atomic_output`)."""
    files.write_json_atomic(path, dataclasses.asdict(cfg))
