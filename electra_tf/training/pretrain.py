"""Runs ELECTRA pretraining end to end: what `tools/pretrain.py` calls.

Runs under any tf.distribute strategy (`training/runtime.py`): `train.batch_size` is
the global batch per optimizer update, split over the replicas and, with
`train.grad_accum_steps=N`, into N micro-batches per replica. Each worker's input
pipeline reads its own shard files (from the input context). Under a multi-worker
strategy only the chief writes config.json, vocab.txt, checkpoints, metrics and
artifacts; the other workers take part in every save (tf.distribute needs it) into a
scratch directory they delete.

model_dir layout (ARCHITECTURE.md):
    config.json       the resolved config; a restart with a different one is refused
    vocab.txt         the vocabulary (artifacts copy it)
    checkpoints/      tf.train checkpoints (step, model, optimizer, RNG states)
    metrics.jsonl     one JSON object per log interval
    tensorboard/      TensorBoard events
    discriminator/    artifacts written at the end (models/artifacts.py)
    generator/        (objective "mlm": masked_lm/, the masked LM with its head, and
                      discriminator/ holds its encoder under an untrained RTD head)

Diagnostics (`training/diagnostics.py`): every log record carries `rtd_prior_gap` and
`rtd_auc`; a warning is logged when the discriminator sits at the prior; with held-out
text (`probe_text`), `context_auc` is measured every `diagnostics.context_probe_every`
steps and at the end.
"""

import contextlib
import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.data import manifest as manifest_lib
from electra_tf.data import pretraining as data_lib
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import ElectraDiscriminator, ElectraPretrainer
from electra_tf.models.pretrainer import MaskedLMPretrainer
from electra_tf.text.tokenizer import WordPieceTokenizer, load_vocab, vocab_sha256
from electra_tf.training import callbacks as callbacks_lib
from electra_tf.training import diagnostics
from electra_tf.training import lock as lock_lib
from electra_tf.training import optimization
from electra_tf.training import runtime


class ModelDirMismatchError(ValueError):
    """The model_dir was created with another config."""


def prepare_model_dir(cfg, model_dir):
    """Creates model_dir with config.json, or checks a resumed one was made with `cfg`."""
    path = os.path.join(model_dir, "config.json")
    if tf.io.gfile.exists(path):
        saved = config_lib.load_config(path)
        diff = config_lib.diff_configs(saved, cfg)
        if diff:
            raise ModelDirMismatchError(
                f"{model_dir} was created with a different config; differing fields "
                f"(saved != requested): {'; '.join(diff)}. Use a new --model_dir, or the "
                "same config to resume."
            )
    else:
        tf.io.gfile.makedirs(model_dir)
        config_lib.save_config(cfg, path)


def vocab_from_data(cfg, data_dir):
    """`cfg` with the data's vocabulary when `data.vocab_path` is unset.

    The builder copies its vocabulary into the data directory (`manifest.VOCAB_NAME`).
    With `data.vocab_path` unset, that copy is the vocabulary and `model.vocab_size`
    its size (a config's different vocab_size, e.g. a preset's 30522, gives way; logged).
    A `data.vocab_path` that is set must be the data's vocabulary.

    Raises:
      ValueError: data.vocab_path is unset and the data has no vocabulary copy, or it
        is set to another vocabulary than the data's (both named).
    """
    data_vocab = manifest_lib.data_vocab_path(data_dir)
    if cfg.data.vocab_path:
        if (tf.io.gfile.exists(data_vocab)
                and vocab_sha256(cfg.data.vocab_path) != vocab_sha256(data_vocab)):
            raise ValueError(
                f"data.vocab_path={cfg.data.vocab_path} is not the vocabulary {data_dir} was "
                f"built with ({data_vocab}); leave data.vocab_path unset to use the data's")
        return cfg
    if not tf.io.gfile.exists(data_vocab):
        raise ValueError(
            f"data.vocab_path is unset and {data_dir} has no {manifest_lib.VOCAB_NAME} (data "
            "built before the builder copied it): set it in the config or with "
            "--override=data.vocab_path=PATH")
    vocab_size = len(load_vocab(data_vocab))
    if vocab_size != cfg.model.vocab_size:
        logging.info("model.vocab_size=%d from the data's vocabulary %s (the config has %d)",
                     vocab_size, data_vocab, cfg.model.vocab_size)
    return config_lib.apply_overrides(
        cfg, [f"data.vocab_path={data_vocab}", f"model.vocab_size={vocab_size}"])


def load_tokenizer(cfg):
    """The tokenizer of `cfg.data`, checked against the model's vocab size."""
    if not cfg.data.vocab_path:
        raise ValueError("data.vocab_path is empty: set it in the config or with "
                         "--override=data.vocab_path=PATH")
    tokenizer = WordPieceTokenizer(cfg.data.vocab_path, lowercase=cfg.data.lowercase)
    if tokenizer.vocab_size != cfg.model.vocab_size:
        raise ValueError(
            f"model.vocab_size={cfg.model.vocab_size} but the vocabulary "
            f"{cfg.data.vocab_path} has {tokenizer.vocab_size} tokens"
        )
    return tokenizer


def build_pretrainer(cfg):
    """An uncompiled pretrainer for `cfg.pretraining.objective` (call inside the
    strategy scope): an ElectraPretrainer, or the MaskedLMPretrainer control."""
    discriminator_config = dataclasses.asdict(cfg.model.discriminator_encoder())
    if cfg.pretraining.objective == "mlm":
        return MaskedLMPretrainer(discriminator_config, seed=cfg.train.seed,
                                  grad_accum_steps=cfg.train.grad_accum_steps)
    return ElectraPretrainer(
        generator_config=dataclasses.asdict(cfg.model.generator_encoder()),
        discriminator_config=discriminator_config,
        generator_weight=cfg.pretraining.generator_weight,
        discriminator_weight=cfg.pretraining.discriminator_weight,
        disallow_correct=cfg.pretraining.disallow_correct,
        sampling_top_k=cfg.pretraining.sampling_top_k,
        sampling_passes=cfg.pretraining.sampling_passes,
        flatten_toward=cfg.pretraining.flatten_toward,
        seed=cfg.train.seed,
        grad_accum_steps=cfg.train.grad_accum_steps,
        **cfg.pretraining.temperature_kwargs(),
    )


def build_optimizer(cfg):
    t = cfg.train
    return optimization.make_optimizer(
        learning_rate=t.learning_rate,
        num_train_steps=t.num_train_steps,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        beta_1=t.adam_beta1,
        beta_2=t.adam_beta2,
        epsilon=t.adam_epsilon,
        clip_norm=t.clip_norm,
    )


def make_dataset(cfg, data_dir, tokenizer, start_step=0, input_context=None):
    """The training stream of one input pipeline, positioned at `start_step`.

    A resumed run sees the batches an uninterrupted one would have seen: the
    pipeline skips the batches its replicas consumed in `start_step` steps.

    Args:
      input_context: `tf.distribute.InputContext` (None: the whole global batch
        from all shards, as for one device).
    """
    per_step = runtime.batches_per_step(input_context) if input_context else 1
    return data_lib.make_pretraining_dataset(
        data_dir,
        tokenizer,
        batch_size=cfg.train.batch_size,
        max_seq_length=cfg.data.max_seq_length,
        mask_rate=cfg.pretraining.mask_rate,
        mask_token_rate=cfg.pretraining.mask_token_rate,
        random_token_rate=cfg.pretraining.random_token_rate,
        whole_word_masking=cfg.pretraining.whole_word_masking,
        max_predictions=cfg.max_predictions,
        shuffle_buffer=cfg.data.shuffle_buffer,
        seed=cfg.train.seed,
        input_context=input_context,
        skip_batches=start_step * per_step,
    )


def make_distributed_dataset(strategy, cfg, data_dir, tokenizer, start_step=0):
    """The training stream through `strategy`, each worker reading its own shards."""
    _, shards = data_lib.check_data_dir(data_dir, tokenizer, cfg.data.max_seq_length)

    def dataset_fn(input_context):
        files = data_lib.shard_files_for_pipeline([p for p, _ in shards], input_context)
        logging.info(
            "Input pipeline %d of %d (%d replica(s) in sync) reads %d shard(s): %s",
            input_context.input_pipeline_id, input_context.num_input_pipelines,
            input_context.num_replicas_in_sync, len(files), ", ".join(files),
        )
        return make_dataset(cfg, data_dir, tokenizer, start_step, input_context)

    return runtime.distribute(strategy, dataset_fn)


def write_artifacts(pretrainer, cfg, model_dir, vocab_path, step):
    """Writes `discriminator/` and `generator/` (MLM: `masked_lm/`) into model_dir.

    The MLM control's `discriminator/` is its encoder under a fresh, untrained RTD
    head, so fine-tuning and export take either objective's model_dir the same way.
    """
    if isinstance(pretrainer, MaskedLMPretrainer):
        discriminator = ElectraDiscriminator(pretrainer.encoder_config)
        artifacts.build_inputs(discriminator, seq_len=8)
        discriminator.encoder.set_weights(pretrainer.masked_lm.encoder.get_weights())
        meta = {"objective": "mlm", "rtd_head": "untrained"}
        parts = (("discriminator", discriminator, meta),
                 ("masked_lm", pretrainer.masked_lm, {"objective": "mlm"}))
    else:
        parts = (("discriminator", pretrainer.discriminator, None),
                 ("generator", pretrainer.generator, None))
    for name, model, meta in parts:
        artifacts.save_artifact(model, os.path.join(model_dir, name), cfg, vocab_path,
                                step=step, extra_meta=meta)
    logging.info("Wrote %s artifacts to %s", " and ".join(f"{n}/" for n, _, _ in parts),
                 model_dir)


def make_context_probe(cfg, tokenizer, probe_text):
    """A `diagnostics.ContextProbe` on the held-out files `probe_text` (None: none)."""
    if not probe_text:
        return None
    d = cfg.diagnostics
    return diagnostics.ContextProbe.from_text(
        probe_text, tokenizer, cfg.data.max_seq_length, d.context_probe_sequences,
        rate=d.context_probe_rate, seed=cfg.train.seed,
        every_n_steps=d.context_probe_every or cfg.train.checkpoint_every)


def run_pretraining(cfg, data_dir, model_dir, *, max_steps=None, strategy=None,
                    precision="float32", jit_compile="auto", verbose="auto", probe_text=()):
    """Pretrains (or resumes) until `cfg.train.num_train_steps`.

    Args:
      cfg: an `electra_tf.config.ElectraConfig`.
      data_dir: directory of shards + manifest (tools/build_pretraining_data.py).
      model_dir: created or resumed (see module docstring).
      max_steps: stop at this global step instead (the schedule still spans
        num_train_steps); artifacts are written either way.
      strategy: a tf.distribute strategy; the default strategy when None.
      precision: a Keras dtype policy name (`runtime.PRECISIONS`), set for the
        models built here and restored afterwards.
      jit_compile: XLA; see `ElectraPretrainer.compile`.
      verbose: Keras progress-bar verbosity.
      probe_text: held-out text files for the context probe (empty: no probe).

    Returns:
      The final global step.

    Raises:
      ModelDirMismatchError, ManifestError, NonFiniteLossError, ValueError (a
      global batch that does not split into replicas x micro-batches),
      lock.DirectoryLockedError (another run is using model_dir).
    """
    strategy = strategy or tf.distribute.get_strategy()
    runtime.check_global_batch(strategy, cfg.train.batch_size, cfg.train.grad_accum_steps)
    cfg = vocab_from_data(cfg, data_dir)
    tokenizer = load_tokenizer(cfg)
    # Fails fast, before anything is built, if the data does not fit the config.
    data_lib.check_data_dir(data_dir, tokenizer, cfg.data.max_seq_length)
    probe = make_context_probe(cfg, tokenizer, probe_text)
    chief = runtime.is_chief(strategy)
    # The chief writes model_dir (other workers only read it): it alone holds the
    # lock, from before config.json is written until the artifacts are.
    run_lock = lock_lib.RunLock(model_dir, "pretraining") if chief else contextlib.nullcontext()
    with run_lock:
        return _train(cfg, data_dir, model_dir, tokenizer, probe, strategy, chief,
                      max_steps=max_steps, precision=precision, jit_compile=jit_compile,
                      verbose=verbose)


def _train(cfg, data_dir, model_dir, tokenizer, probe, strategy, chief, *, max_steps,
           precision, jit_compile, verbose):
    """`run_pretraining` once its inputs are checked and model_dir is locked."""
    if chief:
        prepare_model_dir(cfg, model_dir)
        vocab_copy = os.path.join(model_dir, "vocab.txt")
        if not tf.io.gfile.exists(vocab_copy):
            files.copy_atomic(cfg.data.vocab_path, vocab_copy)
    keras.utils.set_random_seed(cfg.train.seed)
    target = min(cfg.train.num_train_steps, max_steps or cfg.train.num_train_steps)

    with runtime.precision_policy(precision), strategy.scope():
        model = build_pretrainer(cfg)
        model.compile(optimizer=build_optimizer(cfg), jit_compile=jit_compile,
                      steps_per_execution=cfg.train.steps_per_execution)
        spec_dataset = make_dataset(cfg, data_dir, tokenizer)
        # Every variable exists before the optimizer builds its slots and the
        # checkpoint is restored (the replicated step cannot create any).
        model.build_from_spec(spec_dataset.element_spec)
        model.optimizer.build(model.trainable_variables)
        if getattr(model, "flatten_toward", "uniform") == "unigram":
            # A resumed run restores the same counts from its checkpoint.
            model.set_unigram_counts(data_lib.token_counts(
                data_dir, tokenizer, cfg.data.max_seq_length))
    checkpoint = callbacks_lib.TrainingCheckpoint(
        model, os.path.join(model_dir, "checkpoints"), max_to_keep=cfg.train.keep_checkpoints,
        is_chief=chief, worker_id=runtime.task_id(),
    )
    start = checkpoint.restore_latest()
    if start < target:
        logging.info("Training from step %d to %d", start, target)
        checkpointer = callbacks_lib.CheckpointCallback(checkpoint, cfg.train.checkpoint_every)
        logger = callbacks_lib.MetricsLogger(
            callbacks_lib.metrics_jsonl_path(model_dir),
            every_n_steps=cfg.train.log_every,
            tokens_per_step=cfg.train.batch_size * cfg.data.max_seq_length,
            tensorboard_dir=os.path.join(model_dir, "tensorboard"),
            write=chief,
            probes=[probe] if probe else [],
            watchers=[diagnostics.CollapseWatch(
                cfg.diagnostics.collapse_gap, cfg.diagnostics.collapse_logs,
                after_step=cfg.train.warmup_steps)],
        )
        model.fit(
            make_distributed_dataset(strategy, cfg, data_dir, tokenizer, start_step=start),
            epochs=1,
            steps_per_epoch=target - start,
            # The logger first: a step's record is written before its checkpoint, so a
            # kill during the save loses no record that a resume would not write again.
            callbacks=[logger, checkpointer],
            verbose=verbose if chief else 0,
        )
        if checkpointer.error is not None:
            raise checkpointer.error
    step = int(model.optimizer.iterations.numpy())
    if chief:
        write_artifacts(model, cfg, model_dir, cfg.data.vocab_path, step)
    return step
