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
    generator/
"""

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf.data import pretraining as data_lib
from electra_tf.models import artifacts
from electra_tf.models.pretrainer import ElectraPretrainer
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import callbacks as callbacks_lib
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
    """An uncompiled ElectraPretrainer for `cfg` (call inside the strategy scope)."""
    return ElectraPretrainer(
        generator_config=dataclasses.asdict(cfg.model.generator_encoder()),
        discriminator_config=dataclasses.asdict(cfg.model.discriminator_encoder()),
        temperature=cfg.pretraining.temperature,
        generator_weight=cfg.pretraining.generator_weight,
        discriminator_weight=cfg.pretraining.discriminator_weight,
        seed=cfg.train.seed,
        grad_accum_steps=cfg.train.grad_accum_steps,
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
    """Writes `discriminator/` and `generator/` into model_dir."""
    for name, model in (("discriminator", pretrainer.discriminator),
                        ("generator", pretrainer.generator)):
        artifacts.save_artifact(model, os.path.join(model_dir, name), cfg, vocab_path, step=step)
    logging.info("Wrote discriminator/ and generator/ artifacts to %s", model_dir)


def run_pretraining(cfg, data_dir, model_dir, *, max_steps=None, strategy=None,
                    precision="float32", jit_compile="auto", verbose="auto"):
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

    Returns:
      The final global step.

    Raises:
      ModelDirMismatchError, ManifestError, NonFiniteLossError, ValueError (a
      global batch that does not split into replicas x micro-batches).
    """
    strategy = strategy or tf.distribute.get_strategy()
    runtime.check_global_batch(strategy, cfg.train.batch_size, cfg.train.grad_accum_steps)
    tokenizer = load_tokenizer(cfg)
    # Fails fast, before anything is built, if the data does not fit the config.
    data_lib.check_data_dir(data_dir, tokenizer, cfg.data.max_seq_length)
    chief = runtime.is_chief(strategy)
    if chief:
        prepare_model_dir(cfg, model_dir)
        vocab_copy = os.path.join(model_dir, "vocab.txt")
        if not tf.io.gfile.exists(vocab_copy):
            tf.io.gfile.copy(cfg.data.vocab_path, vocab_copy)
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
        )
        model.fit(
            make_distributed_dataset(strategy, cfg, data_dir, tokenizer, start_step=start),
            epochs=1,
            steps_per_epoch=target - start,
            callbacks=[checkpointer, logger],
            verbose=verbose if chief else 0,
        )
        if checkpointer.error is not None:
            raise checkpointer.error
    step = int(model.optimizer.iterations.numpy())
    if chief:
        write_artifacts(model, cfg, model_dir, cfg.data.vocab_path, step)
    return step
