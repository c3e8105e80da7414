"""Fine-tuning an ELECTRA discriminator on a GLUE or custom task: what tools/finetune.py calls.

    cfg = FinetuneConfig(task="sst2", init="MODEL_DIR")
    summary = run_finetuning(cfg, "glue/SST-2", "out/sst2", seeds=3)
    model, cfg, vocab_path, label_names = artifacts.load_finetuned("out/sst2")

The recipe is the ELECTRA paper's: AdamW (weight decay 0.01, not on LayerNorm or
biases), 10% linear warmup then linear decay, layer-wise learning-rate decay (top block
and head at the base rate, each block below times `layer_decay`, the embeddings
`layer_decay ** num_layers`), batch 32, max_seq_length 128; and per task and model size
(`paper_defaults`): 3 epochs (10 for STS-B and RTE), learning rate 3e-4 (small), 1e-4
(base), 5e-5 (large), layer decay 0.8 (0.9 for large). Models narrower than small
(hidden < 256, e.g. configs/electra_tiny.json) are not in the paper: they take 1e-3,
which fits SST-2 much better than 3e-4 in 3 epochs (benchmarks/README.md).

Output directory of one run (`seeds=1`):

    finetune_config.json   the resolved FinetuneConfig (hyper-parameters, seed, labels,
                           lowercase); read back by `config.load_finetune_config`
    model.json             the ElectraClassifier's Keras config
    model.weights.h5       its weights
    vocab.txt              the vocabulary (tokenize with finetune_config.lowercase)
    eval_results.json      the summary `run_finetuning` returns: medians over seeds,
                           the best seed, and each run's {"seed", "train": {examples,
                           steps, seconds, loss_per_epoch, best_epoch}, "dev": {metric:
                           value} (of the best epoch), other dev splits (MNLI
                           "dev_mismatched"), "epochs": [each epoch's record]}
    metrics.jsonl          one record per epoch: {"epoch", "step", "loss", "<split>_<metric>"
                           for every dev split, on the whole split}
    tensorboard/           the same records as TensorBoard scalars (by step)
    dev_predictions.tsv    every dev example: id, prediction, p_<label> probabilities
                           (regression: the score), true label (`glue.write_predictions`;
                           MNLI also dev_mismatched_predictions.tsv)
    test_predictions.tsv   the same for the test split(s), if data_dir has them (ids: the
                           file's index column, else 0-based row numbers)
    SST-2.tsv              GLUE submission for the test split, if data_dir has one
                           (`index<TAB>prediction`; MNLI: MNLI-m.tsv and MNLI-mm.tsv)

Every epoch ends with an evaluation on the whole dev split(s); the saved model is the
best epoch's by the task's main metric on the first dev split (`best_epoch`). With
`max_steps` training stops after that many updates (the learning-rate schedule ends
there), with a last evaluation.

With `seeds=N > 1`, each seed `s` (cfg.seed, cfg.seed + 1, ...) runs into `seed_<s>/`
with the layout above (its eval_results.json holding that run's results), and the top
level holds the summary eval_results.json and the submission and predictions files of
the best seed by the main dev metric; `artifacts.load_finetuned(output_dir)` then loads the best seed's model.

Under MultiWorkerMirroredStrategy every worker trains and evaluates (both are
collective: the dev metrics cover the whole dev set, gathered over the workers), and
only the chief writes output_dir; the others write nothing. The chief holds
output_dir's lock file (`training/lock.py`) for the whole run, so a second run on the
same output_dir is refused.
"""

import contextlib
import dataclasses
import json
import math
import os
import statistics
import time

import keras
import tensorflow as tf
from absl import logging

from electra_tf import config as config_lib
from electra_tf import files
from electra_tf.models import artifacts
from electra_tf.text.tokenizer import WordPieceTokenizer, load_vocab
from electra_tf.training import lock as lock_lib
from electra_tf.training import optimization
from electra_tf.training import runtime
from electra_tf.training import tasks as tasks_lib
from electra_tf.training.tasks import Split, TaskData, evaluate, make_task, predict_logits  # noqa: F401

# The output directory's files (the classifier's are defined with its loader).
FINETUNE_CONFIG_JSON = artifacts.FINETUNE_CONFIG_JSON
MODEL_JSON = artifacts.MODEL_JSON
WEIGHTS = artifacts.WEIGHTS
VOCAB = artifacts.VOCAB
EVAL_RESULTS_JSON = artifacts.EVAL_RESULTS_JSON
METRICS_JSONL = "metrics.jsonl"
TENSORBOARD = "tensorboard"

# (learning rate, layer decay) by model size, from the ELECTRA paper's appendix; "tiny"
# is ours: at 3e-4 a 4-layer, 128-wide model still underfits SST-2 after 3 epochs.
RATES_BY_SIZE = {"tiny": (1e-3, 0.8), "small": (3e-4, 0.8), "base": (1e-4, 0.8),
                 "large": (5e-5, 0.9)}
# The paper's epochs: 3, but 10 for the two small GLUE tasks and 2 for SQuAD.
EPOCHS = {"stsb": 10, "rte": 10, "squad": 2, "squad_v2": 2}
DEFAULT_EPOCHS = 3
# Tokens per example: 128, but 384 for SQuAD's windows (BERT's and ELECTRA's), both
# capped at the encoder's max_position_embeddings.
MAX_SEQ_LENGTHS = {"squad": 384, "squad_v2": 384}
DEFAULT_MAX_SEQ_LENGTH = 128


def model_size(encoder_config):
    """"tiny", "small", "base" or "large", by hidden size, for the learning rates."""
    hidden = encoder_config["hidden_size"]
    for size, min_hidden in (("large", 1024), ("base", 768), ("small", 256)):
        if hidden >= min_hidden:
            return size
    return "tiny"


def paper_defaults(task_name, encoder_config):
    """{"epochs", "learning_rate", "layer_decay"} for this task and size (the ELECTRA
    paper's, and ours for "tiny")."""
    learning_rate, layer_decay = RATES_BY_SIZE[model_size(encoder_config)]
    return {"epochs": EPOCHS.get(task_name, DEFAULT_EPOCHS),
            "learning_rate": learning_rate, "layer_decay": layer_decay}


def default_max_seq_length(task_name, encoder_config):
    """The task's usual length, at most the encoder's max_position_embeddings."""
    return min(MAX_SEQ_LENGTHS.get(task_name, DEFAULT_MAX_SEQ_LENGTH),
               encoder_config["max_position_embeddings"])


# === Initialisation ===


@dataclasses.dataclass
class Init:
    """Where the encoder comes from."""

    encoder_config: dict
    vocab_path: str
    lowercase: bool
    encoder: object = None  # a pretrained ElectraEncoder, or None (random init)


def load_init(cfg):
    """The pretrained discriminator encoder, or the config of a random one, with
    `cfg.dropout_rate` (when set) as its hidden and attention dropout."""
    init = _load_init(cfg)
    if cfg.dropout_rate is not None:
        # Pretraining may run without dropout (short budgets learn faster); fine-tuning
        # on a small task still wants it. The weights do not depend on the rates.
        init.encoder_config.update(dropout_rate=cfg.dropout_rate,
                                   attention_dropout_rate=cfg.dropout_rate)
    return init


def _load_init(cfg):
    if cfg.init != "none":
        artifact = artifacts.load(cfg.init, artifacts.DISCRIMINATOR)
        logging.info("Fine-tuning the discriminator of %s (pretraining step %s)",
                     cfg.init, artifact.meta.get("step"))
        return Init(dict(artifact.model.encoder_config), artifact.vocab_path,
                    artifact.lowercase, artifact.model.encoder)
    if not cfg.model_config or not cfg.vocab:
        raise ValueError("init 'none' needs a model config (configs/*.json) and a vocabulary")
    experiment = config_lib.load_config(cfg.model_config)
    encoder_config = dataclasses.asdict(experiment.model.discriminator_encoder())
    vocab_size = len(load_vocab(cfg.vocab))
    if vocab_size != encoder_config["vocab_size"]:
        logging.info("Random init: vocab_size %d from %s instead of the config's %d",
                     vocab_size, cfg.vocab, encoder_config["vocab_size"])
        encoder_config["vocab_size"] = vocab_size
    return Init(encoder_config, cfg.vocab, cfg.lowercase)


# === Training and evaluation ===


def _check_length(init, max_seq_length):
    if max_seq_length > init.encoder_config["max_position_embeddings"]:
        raise ValueError(
            f"max_seq_length={max_seq_length} exceeds the encoder's "
            f"max_position_embeddings={init.encoder_config['max_position_embeddings']}")


def _as_task(task):
    """A task object (`training/tasks.py`); a `glue.Task` is wrapped."""
    return task if hasattr(task, "build_model") else tasks_lib.ClassificationTask(task)


def build_model(init, task, max_seq_length):
    """The task's model, built for `max_seq_length`, with the pretrained encoder
    copied in (if any). `task`: a task object or a `glue.Task`."""
    _check_length(init, max_seq_length)
    model = _as_task(task).build_model(init.encoder_config, max_seq_length)
    if init.encoder is not None:
        model.load_encoder_weights(init.encoder)
    return model




def compile_model(model, cfg, task, num_train_steps, jit_compile="auto"):
    """Compiles `model` with the resolved cfg's optimizer (AdamW, warmup, layer-wise
    decay), the task's loss and metrics, cfg.grad_accum_steps and `jit_compile` (see
    `ElectraTaskModel.compile`). `task`: a task object or a `glue.Task`."""
    task = _as_task(task)
    optimizer = optimization.make_optimizer(
        cfg.learning_rate,
        num_train_steps=num_train_steps,
        warmup_steps=int(cfg.warmup_fraction * num_train_steps),
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm,
        lr_multipliers=model.lr_multipliers(cfg.layer_decay),
    )
    model.compile(optimizer=optimizer, loss=task.loss(), metrics=task.fit_metrics(),
                  jit_compile=jit_compile, grad_accum_steps=cfg.grad_accum_steps)
    return model


def save_finetuned(model, cfg, vocab_path, directory):
    """Writes a fine-tuned model (see the module docstring for the files)."""
    artifacts.save_classifier(model, directory, dataclasses.asdict(cfg), vocab_path)


def _tensorboard_writer(directory):
    return tf.summary.create_file_writer(directory)


class EpochEvaluation(keras.callbacks.Callback):
    """Evaluates the task's metrics on whole dev splits after every epoch, writes one
    record per epoch to metrics.jsonl and TensorBoard, keeps the best epoch's weights
    (by the main metric on the first split) and restores them when training ends; stops
    training after `max_steps` updates (0: never).

    Every worker of a multi-worker job runs it (the evaluation is collective); only a
    `write` one writes.

    Attributes:
      records: the epochs' records, {"epoch", "step", "loss", "<split>_<metric>"}.
      results: {split: {metric: value}} of the best epoch.
      best_epoch: 1-based.
    """

    def __init__(self, task, cfg, evals, run_dir, write=True, max_steps=0):
        super().__init__()
        self.task = task
        self.cfg = cfg
        self.evals = evals
        self.run_dir = run_dir
        self.write = write
        self.max_steps = max_steps
        self.records, self.results, self.best_epoch = [], {}, None
        self._best_value, self._best_weights, self._writer = None, None, None

    def on_train_batch_end(self, batch, logs=None):
        if self.max_steps and int(self.model.optimizer.iterations.numpy()) >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        record = {"epoch": epoch + 1, "step": step, "loss": float((logs or {}).get("loss", 0))}
        results = {name: self.task.evaluate(self.model, split, self.cfg)
                   for name, split in self.evals.items()}
        for name, metrics in results.items():
            record.update({f"{name}_{m}": float(metrics[m]) for m in self.task.metrics})
        self.records.append(record)
        logging.info("epoch %d (step %d): %s", epoch + 1, step, ", ".join(
            f"{k}={v:.4g}" for k, v in record.items() if k not in ("epoch", "step")))
        first = next(iter(results))
        value = results[first][self.task.main_metric]
        if self._best_value is None or value > self._best_value:
            self._best_value, self.best_epoch, self.results = value, epoch + 1, results
            self._best_weights = self.model.get_weights()
        if self.write:
            self._write(record)

    def _write(self, record):
        tf.io.gfile.makedirs(self.run_dir)
        with tf.io.gfile.GFile(os.path.join(self.run_dir, METRICS_JSONL), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is None:
            self._writer = _tensorboard_writer(os.path.join(self.run_dir, TENSORBOARD))
        with self._writer.as_default(step=record["step"]):
            for key, value in record.items():
                if key != "step":
                    tf.summary.scalar(key, value)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._best_weights is not None and self.best_epoch != len(self.records):
            logging.info("Keeping the weights of epoch %d (best dev %s)", self.best_epoch,
                         self.task.main_metric)
            self.model.set_weights(self._best_weights)
        if self._writer is not None:
            self._writer.close()


def num_train_steps(cfg, num_train):
    """Updates of the whole run: all epochs, or cfg.max_steps if fewer."""
    steps = math.ceil(num_train / cfg.batch_size) * cfg.epochs
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def train_one(cfg, task, data, init, run_dir, verbose=0, strategy=None, precision="float32",
              jit_compile="auto", write=True):
    """Fine-tunes one seed (cfg.seed, cfg resolved) on encoded `TaskData`; writes
    run_dir if `write` (a worker other than the chief computes the same results and
    writes nothing); returns its results and the names of the prediction files it
    wrote. `task`: a task object (`training/tasks.py`). `strategy`, `precision` and
    `jit_compile`: see `run_finetuning`."""
    keras.utils.set_random_seed(cfg.seed)
    num_train = task.train_size(data.train)
    with runtime.precision_policy(precision), (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(init, task, cfg.max_seq_length)
        compile_model(model, cfg, task, num_train_steps(cfg, num_train), jit_compile)
        # Built before fit, so the train function is traced once, not again after its
        # first call creates the optimizer's variables.
        model.optimizer.build(model.trainable_variables)
    evaluation = EpochEvaluation(task, cfg, dict(data.evals), run_dir, write=write,
                                 max_steps=cfg.max_steps)
    start = time.time()
    # The dataset reshuffles itself every epoch.
    history = model.fit(task.train_dataset(data.train, cfg), epochs=cfg.epochs,
                        verbose=verbose, shuffle=False, callbacks=[evaluation])
    seconds = time.time() - start
    results = {
        "task": task.name,
        "main_metric": task.main_metric,
        "seed": cfg.seed,
        "train": {"examples": num_train, "steps": int(model.optimizer.iterations.numpy()),
                  "seconds": round(seconds, 1),
                  "loss_per_epoch": [round(v, 5) for v in history.history["loss"]],
                  "best_epoch": evaluation.best_epoch},
        **evaluation.results,
        "epochs": evaluation.records,
    }
    for name in data.evals:
        logging.info("seed %d %s (epoch %d): %s", cfg.seed, name, evaluation.best_epoch,
                     results[name])
    if write:
        save_finetuned(model, cfg, init.vocab_path, run_dir)
    written = []
    for name, split in {**data.evals, **data.tests}.items():
        written += task.write_outputs(model, name, split, run_dir, cfg, write=write)
    return results, written


def prepare_output_dir(output_dir, overwrite, create=True):
    """Creates output_dir (if `create`); refuses a non-empty one unless `overwrite`
    (files of the new run then replace the old ones; nothing else is deleted).

    Every worker of a multi-worker job checks, so all refuse alike before training;
    only the chief creates. The chief's lock file does not count as content."""
    content = tf.io.gfile.listdir(output_dir) if tf.io.gfile.isdir(output_dir) else []
    if [name for name in content if name != lock_lib.LOCK_NAME] and not overwrite:
        raise FileExistsError(
            f"{output_dir} is not empty; choose another output directory or pass "
            "overwrite (--overwrite)")
    if create:
        tf.io.gfile.makedirs(output_dir)


def summarize(task, runs):
    """The median of each metric over seeds, the best seed, and every run's results."""
    best = max(runs, key=lambda r: r["dev"][task.main_metric])
    return {
        "task": task.name,
        "main_metric": task.main_metric,
        "seeds": [r["seed"] for r in runs],
        "median": {split: {m: statistics.median(r[split][m] for r in runs)
                           for m in task.metrics}
                   for split in task.eval_splits},
        "best_seed": best["seed"],
        "best_run": f"seed_{best['seed']}" if len(runs) > 1 else ".",
        "runs": runs,
        # The first dev split's medians once more at the top, e.g. SQuAD's
        # {"exact_match", "f1"} and tagging's {"precision", "recall", "f1", "accuracy"}.
        **{m: statistics.median(r[task.eval_splits[0]][m] for r in runs)
           for m in task.metrics},
    }


def run_finetuning(cfg, data_dir, output_dir, *, seeds=1, overwrite=False, verbose=0,
                   strategy=None, precision="float32", jit_compile="auto"):
    """Fine-tunes `seeds` seeds and writes output_dir (see the module docstring).

    Args:
      cfg: a `FinetuneConfig`; its None fields take the paper's defaults.
      data_dir: the task's data directory.
      output_dir: created; refused if it holds results, unless `overwrite`.
      seeds: number of runs, with seeds cfg.seed, cfg.seed + 1, ...
      verbose: Keras progress-bar verbosity.
      strategy: a tf.distribute strategy (`runtime.make_strategy`); cfg.batch_size
        is then the global batch. The default strategy when None. Under
        MultiWorkerMirroredStrategy only the chief (`runtime.is_chief`) writes
        output_dir; every worker returns the same summary.
      precision: a Keras dtype policy name (`runtime.PRECISIONS`).
      jit_compile: XLA on each replica's forward and backward pass: True, False, or
        "auto" (on with a GPU); see `ElectraClassifier.compile`.

    Returns:
      The summary written to output_dir/eval_results.json: {"task", "main_metric",
      "seeds", "median": {dev split: {metric: median}}, "best_seed", "best_run",
      "runs": [each seed's results: {"seed", "train", dev split: {metric: value}}]}.

    Raises:
      glue.DataError for missing or bad data, FileNotFoundError for a bad init,
      ValueError for inconsistent settings, lock.DirectoryLockedError if another
      run is using output_dir; all before any training.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    strategy = strategy or tf.distribute.get_strategy()
    chief = runtime.is_chief(strategy)
    if cfg.grad_accum_steps > 1:  # without it, replicas may hold uneven shares
        runtime.check_global_batch(strategy, cfg.batch_size, cfg.grad_accum_steps, "batch_size")
    task = make_task(cfg, data_dir)
    init = load_init(cfg)
    defaults = paper_defaults(task.name, init.encoder_config)
    if cfg.max_seq_length is None:
        defaults["max_seq_length"] = default_max_seq_length(task.name, init.encoder_config)
    cfg = dataclasses.replace(
        cfg,
        **{k: v for k, v in defaults.items() if getattr(cfg, k) is None},
        lowercase=init.lowercase,
    )
    _check_length(init, cfg.max_seq_length)
    tokenizer = WordPieceTokenizer(init.vocab_path, lowercase=init.lowercase)
    if tokenizer.vocab_size != init.encoder_config["vocab_size"]:
        raise ValueError(f"the vocabulary {init.vocab_path} has {tokenizer.vocab_size} tokens, "
                         f"the encoder {init.encoder_config['vocab_size']}")
    data = task.read(cfg, data_dir)
    # Known once the data is read (tagging takes its labels from the training file).
    cfg = dataclasses.replace(cfg, label_names=task.label_names or ())
    # Locked before the emptiness check, so a concurrent run is named as such.
    run_lock = lock_lib.RunLock(output_dir, "fine-tuning") if chief else contextlib.nullcontext()
    with run_lock:
        return _finetune(cfg, task, data, init, tokenizer, output_dir, seeds=seeds,
                         overwrite=overwrite, verbose=verbose, strategy=strategy,
                         precision=precision, jit_compile=jit_compile, chief=chief)


def _finetune(cfg, task, data, init, tokenizer, output_dir, *, seeds, overwrite, verbose,
              strategy, precision, jit_compile, chief):
    """`run_finetuning` once its inputs are read and output_dir is locked."""
    prepare_output_dir(output_dir, overwrite, create=chief)
    logging.info("Fine-tuning %s on %d examples: %s", task.name, len(data.train), cfg)
    data = task.encode(data, tokenizer, cfg)

    runs = []
    for i in range(seeds):
        run_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
        run_dir = output_dir if seeds == 1 else os.path.join(output_dir, f"seed_{run_cfg.seed}")
        results, written = train_one(run_cfg, task, data, init, run_dir, verbose, strategy,
                                     precision, jit_compile, write=chief)
        runs.append(results)
        if seeds > 1 and chief:
            files.write_json_atomic(os.path.join(run_dir, EVAL_RESULTS_JSON), runs[-1])
    summary = summarize(task, runs)
    if not chief:
        return summary
    if seeds > 1:
        for name in written:  # every seed writes the same names
            files.copy_atomic(os.path.join(output_dir, summary["best_run"], name),
                              os.path.join(output_dir, name))
    files.write_json_atomic(os.path.join(output_dir, EVAL_RESULTS_JSON), summary)
    return summary
