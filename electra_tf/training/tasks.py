"""The fine-tuning tasks: what differs between classification, QA and tagging.

`training/finetune.py` runs every task the same way (initialisation, paper defaults,
seeds, `model.fit` with an evaluation after every epoch, the best epoch's weights, the
output directory). What it needs from a task is this interface, implemented once per
family:

  name, main_metric, metrics, eval_splits, label_names
  read(cfg, data_dir)              -> TaskData of raw splits (read and checked)
  encode(data, tokenizer, cfg)     -> TaskData of `Split`s (model inputs, once for all seeds)
  train_size(split)                -> rows of one training epoch
  build_model(encoder_config, max_seq_length) -> a built `ElectraTaskModel`
  loss(), fit_metrics()            -> for `model.compile` (metrics: None for none)
  train_dataset(split, cfg)        -> shuffled (inputs, labels) batches
  evaluate(model, split, cfg)      -> {metric: value, "num_examples": n}
  write_outputs(model, name, split, run_dir, cfg) -> names of the files written

Families:
- `ClassificationTask`: GLUE tasks and users' CSV/TSV/JSONL (`data/glue.py`).
- `QuestionAnsweringTask`: SQuAD v1.1 / v2.0 (`data/squad.py`), official EM/F1.
- `TaggingTask`: CoNLL / JSONL token tagging (`data/tagging.py`), entity-level F1.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.data import glue, squad, squad_predictions, tagging
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.models.question_answering import ElectraForQuestionAnswering, SpanLoss
from electra_tf.models.token_classification import ElectraForTokenClassification, TokenLoss
from electra_tf.training import metrics as metrics_lib

SQUAD_TASKS = {"squad": False, "squad_v2": True}  # name -> version_2
TAGGING_TASKS = ("ner", "chunk", "tagging")
# The official file names in a SQuAD data_dir, by version_2.
SQUAD_FILES = {False: ("train-v1.1.json", "dev-v1.1.json"),
               True: ("train-v2.0.json", "dev-v2.0.json")}
TAGGING_EXTENSIONS = (".txt", ".conll", ".jsonl")
EVAL_BATCH_SIZE = 128


@dataclasses.dataclass
class Split:
    """A split's examples and their model inputs.

    `examples` is the family's raw split (`glue.Examples`, a list of `SquadExample`s
    or of `TaggedSentence`s); `features` its encoding (a dict of arrays, or
    `SquadFeatures`).
    """

    examples: object
    features: object


@dataclasses.dataclass
class TaskData:
    train: object
    evals: dict  # {split name: split}
    tests: dict  # {split name: split}


def _sample(items, n, seed=0):
    """n of `items` drawn at random (fixed seed: every fine-tuning seed and init sees
    the same ones), in their original order."""
    if n >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
    return [items[i] for i in keep]


def _optional_file(data_dir, stem, extensions):
    found = [stem + ext for ext in extensions
             if tf.io.gfile.exists(os.path.join(data_dir, stem + ext))]
    if len(found) > 1:
        raise glue.DataError(f"{data_dir} has several {stem} files: {found}; keep one")
    return os.path.join(data_dir, found[0]) if found else None


def _check_dir(data_dir):
    if not tf.io.gfile.isdir(data_dir):
        raise glue.DataError(f"data_dir {data_dir} is not a directory")


def _listing(data_dir):
    return ", ".join(sorted(tf.io.gfile.listdir(data_dir))) or "nothing"


# === Sequence classification (GLUE, custom) ===


def predict_logits(model, split, batch_size=EVAL_BATCH_SIZE):
    """`[n, num_labels]` float32 outputs of a classifier for every example of a `Split`."""
    return model.predict(glue.batch_dataset(split.features, batch_size=batch_size), verbose=0)


def evaluate(model, task, split, batch_size=EVAL_BATCH_SIZE):
    """A `glue.Task`'s metrics over all of a labelled `Split`."""
    logits = predict_logits(model, split, batch_size)
    results = metrics_lib.compute_metrics(task.metrics, split.examples.labels, logits)
    results["num_examples"] = len(split.examples)
    return results


class ClassificationTask:
    """A `glue.Task` (GLUE, or users' data through `glue.custom_task`)."""

    def __init__(self, task):
        self.task = task
        self.name = task.name
        self.metrics = tuple(task.metrics)
        self.main_metric = task.main_metric
        self.eval_splits = tuple(task.eval_splits)
        self.label_names = tuple(task.label_names or ())

    def read(self, cfg, data_dir):
        test_splits = glue.check_data_dir(self.task, data_dir)

        def read(split):
            return glue.read_split(self.task, data_dir, split, skip_bad_rows=cfg.skip_bad_rows)

        train = read("train")
        if cfg.max_train_examples:
            train = train.sample(cfg.max_train_examples, seed=0)
        return TaskData(train, {s: read(s) for s in self.task.eval_splits},
                        {s: read(s) for s in test_splits})

    def encode(self, data, tokenizer, cfg):
        encoder = glue.ExampleEncoder(tokenizer, cfg.max_seq_length)

        def encode(examples):
            return Split(examples, encoder(examples))

        return TaskData(encode(data.train), {s: encode(e) for s, e in data.evals.items()},
                        {s: encode(e) for s, e in data.tests.items()})

    def train_size(self, split):
        return len(split.examples)

    def build_model(self, encoder_config, max_seq_length):
        model = ElectraClassifier(encoder_config, self.task.num_labels,
                                  label_names=self.label_names)
        return model.build_for_length(max_seq_length)

    def loss(self):
        # Keras' built-in losses: they scale for tf.distribute replicas themselves.
        if self.task.is_regression:
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def fit_metrics(self):
        return metrics_lib.streaming_metrics(self.task.metrics, self.task.num_labels)

    def train_dataset(self, split, cfg):
        return glue.batch_dataset(split.features, split.examples.labels,
                                  batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)

    def evaluate(self, model, split, cfg):
        return evaluate(model, self.task, split)

    def write_outputs(self, model, name, split, run_dir, cfg, write=True):
        # Every worker predicts (a collective); the chief writes.
        logits = predict_logits(model, split)
        if not write:
            return []
        written = [f"{name}_predictions.tsv"]
        glue.write_predictions(os.path.join(run_dir, written[0]), self.task,
                               split.examples.ids, logits, split.examples.labels)
        if name in self.task.submissions:
            written.append(self.task.submissions[name])
            glue.write_submission(os.path.join(run_dir, written[-1]), self.task,
                                  split.examples.ids, logits)
        return written


# === Extractive question answering (SQuAD) ===


def gold_answers(examples):
    """{question id: [gold answer texts]} (empty for an unanswerable question)."""
    return {e.id: [a.text for a in e.answers] for e in examples}


class QuestionAnsweringTask:
    """SQuAD v1.1 (`squad`) or v2.0 (`squad_v2`): data_dir holds the official files,
    train-v1.1.json and dev-v1.1.json (v2.0: train-v2.0.json and dev-v2.0.json).

    Training windows label the first gold answer (or [CLS]); evaluation predicts every
    dev question from all its windows (`squad_predictions.postprocess`) and scores it
    with the official definitions (`metrics.squad_scores`).
    """

    eval_splits = ("dev",)
    label_names = ()

    def __init__(self, name):
        self.name = name
        self.version_2 = SQUAD_TASKS[name]
        self.main_metric = "f1"
        self.metrics = ("exact_match", "f1")
        if self.version_2:
            self.metrics += ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")

    def read(self, cfg, data_dir):
        _check_dir(data_dir)
        names = SQUAD_FILES[self.version_2]
        missing = [n for n in names if not tf.io.gfile.exists(os.path.join(data_dir, n))]
        if missing:
            raise glue.DataError(f"{data_dir} lacks {', '.join(missing)} for task "
                                 f"{self.name} (found: {_listing(data_dir)})")
        train, dev = (squad.read_squad(os.path.join(data_dir, n)) for n in names)
        if cfg.max_train_examples:
            train = _sample(train, cfg.max_train_examples)
        if self.version_2:
            # HasAns/NoAns are reported for the groups the dev file has.
            self.metrics = ("exact_match", "f1") + tuple(
                f"{group}_{m}" for group, present in (
                    ("HasAns", any(not e.is_impossible for e in dev)),
                    ("NoAns", any(e.is_impossible for e in dev)))
                if present for m in ("exact", "f1"))
        return TaskData(train, {"dev": dev}, {})

    def _features(self, examples, tokenizer, cfg, training):
        return squad.convert_to_features(
            examples, tokenizer, max_seq_length=cfg.max_seq_length,
            max_query_length=squad.query_length_for(cfg.max_seq_length, cfg.max_query_length),
            doc_stride=cfg.doc_stride, training=training,
            drop_windows_without_answer=training and cfg.drop_windows_without_answer)

    def encode(self, data, tokenizer, cfg):
        train = self._features(data.train, tokenizer, cfg, training=True)
        if train.skipped:
            logging.warning("Skipped %d training question(s) whose answer does not align "
                            "with WordPieces: %s (e.g. %s)", sum(train.skipped.values()),
                            dict(train.skipped), train.skipped_ids[:3])
        logging.info("SQuAD training: %d questions -> %d windows (%d without the answer "
                     "dropped)", len(data.train), len(train), train.dropped_windows)
        return TaskData(Split(data.train, train),
                        {s: Split(e, self._features(e, tokenizer, cfg, training=False))
                         for s, e in data.evals.items()}, {})

    def train_size(self, split):
        return len(split.features)

    def build_model(self, encoder_config, max_seq_length):
        return ElectraForQuestionAnswering(encoder_config).build_for_length(max_seq_length)

    def loss(self):
        return SpanLoss()

    def fit_metrics(self):
        return None  # scored on whole dev files after each epoch, not per batch

    def train_dataset(self, split, cfg):
        return split.features.to_dataset(cfg.batch_size, shuffle=True, seed=cfg.seed)

    def predict(self, model, split, cfg):
        """`SquadPredictions` for every question of an evaluation `Split`."""
        outputs = model.predict(split.features.to_dataset(EVAL_BATCH_SIZE, with_labels=False),
                                verbose=0)
        return squad_predictions.postprocess(
            split.features, outputs["start_logits"], outputs["end_logits"],
            n_best_size=cfg.n_best_size, max_answer_length=cfg.max_answer_length,
            version_2=self.version_2, null_score_diff_threshold=cfg.null_score_threshold)

    def evaluate(self, model, split, cfg):
        predictions = self.predict(model, split, cfg)
        scores = metrics_lib.squad_scores(gold_answers(split.examples), predictions.answers,
                                          version_2=self.version_2)
        results = {m: scores[m] for m in self.metrics}
        results["num_examples"] = scores["total"]
        return results

    def write_outputs(self, model, name, split, run_dir, cfg, write=True):
        predictions = self.predict(model, split, cfg)
        if not write:
            return []
        return list(squad_predictions.write_predictions(run_dir, predictions))


# === Token classification (NER, chunking) ===


class TaggingTask:
    """Token tagging (`ner`, `chunk`, `tagging`: the same model and metrics): data_dir
    holds train and dev files, and optionally test, in CoNLL layout (`train.txt`,
    `dev.txt`, `test.txt`; `.conll` also) or as JSONL (`train.jsonl`, ...). Labels
    come from the training file; entity-level precision/recall/F1 and word accuracy
    (`metrics.entity_scores`, as conlleval/seqeval compute them).
    """

    eval_splits = ("dev",)
    metrics = ("precision", "recall", "f1", "accuracy")
    main_metric = "f1"

    def __init__(self, name, label_names=()):
        self.name = name
        self.label_names = tuple(label_names)

    def read(self, cfg, data_dir):
        _check_dir(data_dir)
        paths = {split: _optional_file(data_dir, split, TAGGING_EXTENSIONS)
                 for split in ("train", "dev", "test")}
        missing = [s for s in ("train", "dev") if paths[s] is None]
        if missing:
            raise glue.DataError(
                f"{data_dir} lacks {' and '.join(missing)} files for task {self.name} "
                f"({', '.join(s + e for s in missing for e in TAGGING_EXTENSIONS)}; "
                f"found: {_listing(data_dir)})")
        train = tagging.read_tagging(paths["train"])
        if not train:
            raise glue.DataError(f"{paths['train']} holds no sentence")
        # A fine-tuned model's labels (cfg.label_names) are kept, else the train file's.
        self.label_names = tuple(cfg.label_names) or tagging.label_list(train)
        labels = set(self.label_names)
        dev = tagging.read_tagging(paths["dev"], labels)
        tests = {"test": tagging.read_tagging(paths["test"], labels)} if paths["test"] else {}
        if cfg.max_train_examples:
            train = _sample(train, cfg.max_train_examples)
        return TaskData(train, {"dev": dev}, tests)

    def encode(self, data, tokenizer, cfg):
        def encode(sentences):
            features = tagging.convert_to_features(sentences, tokenizer, self.label_names,
                                                   cfg.max_seq_length)
            cut = sum(int(np.sum(row >= 0)) < len(s.words)
                      for s, row in zip(sentences, features["word_index"]))
            if cut:
                logging.warning("%d sentence(s) are longer than max_seq_length=%d pieces: "
                                "their last words get no label and no prediction (counted "
                                "as 'O' predictions in evaluation)", cut, cfg.max_seq_length)
            return Split(sentences, features)

        return TaskData(encode(data.train), {s: encode(e) for s, e in data.evals.items()},
                        {s: encode(e) for s, e in data.tests.items()})

    def train_size(self, split):
        return len(split.examples)

    def build_model(self, encoder_config, max_seq_length):
        model = ElectraForTokenClassification(encoder_config, self.label_names)
        return model.build_for_length(max_seq_length)

    def loss(self):
        return TokenLoss()

    def fit_metrics(self):
        return None  # scored on whole dev files after each epoch, not per batch

    @staticmethod
    def _inputs(features):
        return {k: v for k, v in features.items() if k not in ("label_ids", "word_index")}

    def train_dataset(self, split, cfg):
        return glue.batch_dataset(self._inputs(split.features), split.features["label_ids"],
                                  batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)

    def predict_tags(self, model, split):
        """Each sentence's predicted tags, one per word ("O" for words cut off)."""
        logits = model.predict(glue.batch_dataset(self._inputs(split.features),
                                                  batch_size=EVAL_BATCH_SIZE), verbose=0)
        best = np.argmax(logits, axis=-1)
        predicted = []
        for sentence, row, word_index in zip(split.examples, best, split.features["word_index"]):
            tags = ["O"] * len(sentence.words)
            for position in np.flatnonzero(word_index >= 0):
                tags[word_index[position]] = self.label_names[row[position]]
            predicted.append(tags)
        return predicted

    def evaluate(self, model, split, cfg):
        predicted = self.predict_tags(model, split)
        results = metrics_lib.entity_scores([list(s.tags) for s in split.examples], predicted)
        results["num_examples"] = len(split.examples)
        return results

    def write_outputs(self, model, name, split, run_dir, cfg, write=True):
        """`<split>_predictions.txt` in conlleval's layout: `word gold predicted` per
        line, a blank line after each sentence."""
        predicted = self.predict_tags(model, split)
        if not write:
            return []
        lines = []
        for sentence, tags in zip(split.examples, predicted):
            lines += [f"{w} {g} {p}" for w, g, p in zip(sentence.words, sentence.tags, tags)]
            lines.append("")
        name = f"{name}_predictions.txt"
        files.write_text_atomic(os.path.join(run_dir, name), "\n".join(lines) + "\n")
        return [name]


def make_task(cfg, data_dir):
    """The task object of `cfg.task` (see the module docstring)."""
    if cfg.task in SQUAD_TASKS:
        return QuestionAnsweringTask(cfg.task)
    if cfg.task in TAGGING_TASKS:
        return TaggingTask(cfg.task, cfg.label_names)
    if cfg.task == "custom":
        return ClassificationTask(glue.custom_task(
            data_dir, cfg.text_column, cfg.text_pair_column or None, cfg.label_column,
            label_names=cfg.label_names or None, regression=cfg.regression))
    return ClassificationTask(glue.get_task(cfg.task))


TASK_NAMES = tuple(glue.GLUE_TASKS) + ("custom",) + tuple(SQUAD_TASKS) + TAGGING_TASKS
