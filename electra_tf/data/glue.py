"""Fine-tuning data: GLUE's TSV files and users' own CSV/TSV/JSONL files -> tf.data.

A data_dir is one task's directory as GLUE distributes it. Splits are "train", "dev",
"test" (MNLI adds "dev_mismatched" and "test_mismatched"); every split whose name starts
with "dev" is evaluated, every test split gets a GLUE submission file.

  task  files (train, dev, test)              texts                  label (values)
  cola  train.tsv dev.tsv (no header:          sentence               label (0, 1)
        source, label, original, sentence);
        test.tsv (index, sentence)
  sst2  train/dev/test.tsv                    sentence               label (0, 1)
  mrpc  train/dev/test.tsv (UTF-8 BOM)        #1 String, #2 String   Quality (0, 1)
  stsb  train/dev/test.tsv                    sentence1, sentence2   score (0.0 to 5.0)
  qqp   train/dev/test.tsv (test ids: id)     question1, question2   is_duplicate (0, 1)
  mnli  train.tsv dev_matched.tsv             sentence1, sentence2   gold_label (contradiction,
        dev_mismatched.tsv test_matched.tsv                          entailment, neutral)
        test_mismatched.tsv
  qnli  train/dev/test.tsv                    question, sentence     label (entailment,
                                                                     not_entailment)
  rte   train/dev/test.tsv                    sentence1, sentence2   label (as QNLI)
  wnli  train/dev/test.tsv                    sentence1, sentence2   label (0, 1)

GLUE's files are tab-separated without quoting (their texts hold unbalanced quotes),
so they are split on tabs only. Columns are found by header name, so MNLI's train and
dev files (12 and 16 columns) read alike. Test files have no labels; their `index`
(QQP: `id`) column numbers the predictions.

`custom_task` describes users' own data: `train`, `dev` and optionally `test` files
with the extension .csv (RFC 4180 quoting), .tsv (tabs, no quoting) or .jsonl (one
object per line), each CSV/TSV with a header row naming the columns.

Bad rows (a wrong column count, a label outside the task's labels, an empty text,
invalid UTF-8 or JSON) raise `DataError` naming the file and line, or, with
`skip_bad_rows`, are skipped and counted per reason in `Examples.skipped` and the log.
"""

import collections
import csv
import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.text.packing import pack_pair, pack_single

BINARY = ("0", "1")
NLI_2 = ("entailment", "not_entailment")
SUBMISSION_HEADER = "index\tprediction"


class DataError(ValueError):
    """A data file is missing, malformed or has a bad row; the message names it."""


@dataclasses.dataclass(frozen=True)
class Task:
    """What a task's files hold and how it is scored.

    Attributes:
      name: short name ("sst2"; "custom" for users' data).
      glue_name: GLUE's name ("SST-2"), stem of the submission file.
      text_columns: one or two column names (single texts or pairs).
      label_column: column of the label.
      label_names: the labels as they appear in the files, in class-id order; None
        for regression.
      metrics: names from `electra_tf.training.metrics.METRIC_NAMES`.
      main_metric: the one the ELECTRA paper reports (medians, best seed).
      files: {split: file name}.
      submissions: {test split: submission file name}.
      headerless_columns: column names of labelled files that have no header (CoLA).
      index_column: the test files' id column.
      label_range: (low, high) of regression labels; None for no bound.
    """

    name: str
    glue_name: str
    text_columns: tuple
    label_column: str
    label_names: Optional[tuple]
    metrics: tuple
    main_metric: str
    files: dict
    submissions: dict
    headerless_columns: Optional[tuple] = None
    index_column: str = "index"
    label_range: Optional[tuple] = None

    @property
    def is_regression(self):
        return self.label_names is None

    @property
    def num_labels(self):
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self):
        return len(self.text_columns) == 2

    @property
    def eval_splits(self):
        return [s for s in self.files if s.startswith("dev")]

    @property
    def test_splits(self):
        return [s for s in self.files if s.startswith("test")]


def _glue(name, glue_name, text_columns, label_column, label_names, metrics, **kwargs):
    files = {split: f"{split}.tsv" for split in ("train", "dev", "test")}
    return Task(name, glue_name, text_columns, label_column, label_names, metrics,
                main_metric=metrics[0], files=kwargs.pop("files", files),
                submissions=kwargs.pop("submissions", {"test": f"{glue_name}.tsv"}),
                **kwargs)


GLUE_TASKS = {
    task.name: task
    for task in (
        _glue("cola", "CoLA", ("sentence",), "label", BINARY, ("mcc", "accuracy"),
              headerless_columns=("source", "label", "original_label", "sentence")),
        _glue("sst2", "SST-2", ("sentence",), "label", BINARY, ("accuracy",)),
        _glue("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", BINARY,
              ("accuracy", "f1")),
        _glue("stsb", "STS-B", ("sentence1", "sentence2"), "score", None,
              ("spearman", "pearson"), label_range=(0.0, 5.0)),
        _glue("qqp", "QQP", ("question1", "question2"), "is_duplicate", BINARY,
              ("accuracy", "f1"), index_column="id"),
        _glue("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
              ("contradiction", "entailment", "neutral"), ("accuracy",),
              files={"train": "train.tsv", "dev": "dev_matched.tsv",
                     "dev_mismatched": "dev_mismatched.tsv", "test": "test_matched.tsv",
                     "test_mismatched": "test_mismatched.tsv"},
              submissions={"test": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}),
        _glue("qnli", "QNLI", ("question", "sentence"), "label", NLI_2, ("accuracy",)),
        _glue("rte", "RTE", ("sentence1", "sentence2"), "label", NLI_2, ("accuracy",)),
        _glue("wnli", "WNLI", ("sentence1", "sentence2"), "label", BINARY, ("accuracy",)),
    )
}


def get_task(name):
    """A GLUE task by name, as "sst2", "SST-2" or "sst-2"."""
    key = name.lower().replace("-", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown task {name!r}; GLUE tasks: {', '.join(GLUE_TASKS)} "
                         "(or use a custom task for CSV/TSV/JSONL data)")
    return GLUE_TASKS[key]


# === Rows ===


class _BadRows:
    """Raises on a bad row, or counts it when skipping is allowed."""

    def __init__(self, path, skip):
        self.path = path
        self.skip = skip
        self.counts = collections.Counter()

    def report(self, line, kind, message):
        if not self.skip:
            raise DataError(f"{self.path}:{line}: {message} (pass skip_bad_rows / "
                            "--skip_bad_rows to skip such rows)")
        self.counts[kind] += 1


def _lines(path, bad):
    """(line number, text) of each line, decoded as UTF-8 (a leading BOM dropped)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.report(number, "invalid UTF-8", f"invalid UTF-8 ({e})")


def _table_records(rows, bad, needed, columns=None):
    """Dicts {column: value} from (line, fields) rows; the first row is the header
    unless `columns` are given."""
    for number, fields in rows:
        if columns is None:
            columns = fields
            missing = [c for c in needed if c not in columns]
            if missing:
                raise DataError(f"{bad.path}:{number}: the header lacks column(s) {missing}; "
                                f"it has {columns}")
            continue
        if len(fields) != len(columns):
            bad.report(number, "wrong column count",
                       f"{len(fields)} columns, expected {len(columns)} ({', '.join(columns)})")
            continue
        yield number, dict(zip(columns, fields))


def _records(path, bad, needed, headerless_columns=None):
    """(line number, {column: value}) of every well-formed row of a data file.

    A CSV/TSV header without a `needed` column is an error; a JSON line without one
    is a bad row.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension == ".tsv":
        rows = ((n, line.split("\t")) for n, line in _lines(path, bad))
        yield from _table_records(rows, bad, needed, headerless_columns)
    elif extension == ".csv":
        last_line = [0]  # of the record being parsed, in the file (not in the csv reader)

        def text_lines():
            for number, line in _lines(path, bad):
                last_line[0] = number
                # csv joins quoted multi-line fields itself; it needs the line breaks.
                yield line + "\n"

        rows = ((last_line[0], fields) for fields in csv.reader(text_lines()))
        yield from _table_records(rows, bad, needed)
    elif extension == ".jsonl":
        for number, line in _lines(path, bad):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                bad.report(number, "invalid JSON", f"invalid JSON ({e})")
                continue
            if not isinstance(record, dict):
                bad.report(number, "invalid JSON", "a JSON line must be an object")
                continue
            missing = [c for c in needed if c not in record]
            if missing:
                bad.report(number, "missing key", f"no key(s) {missing}")
                continue
            yield number, record
    else:
        raise DataError(f"{path}: unsupported file type {extension!r}; "
                        "expected .tsv, .csv or .jsonl")


# === Examples ===


@dataclasses.dataclass
class Examples:
    """One split of a task, as Python lists.

    Attributes:
      path: the file read.
      texts_a: list of str.
      texts_b: list of str for pair tasks, else None.
      labels: int32 class ids or float32 scores `[n]`; None for unlabelled (test) splits.
      ids: list of str, the file's index column (GLUE test files, MNLI dev files),
        else the 0-based row numbers (of the rows read, bad ones included).
      skipped: {reason: rows skipped}.
    """

    path: str
    texts_a: list
    texts_b: Optional[list]
    labels: Optional[np.ndarray]
    ids: list
    skipped: dict

    def __len__(self):
        return len(self.texts_a)

    def sample(self, n, seed=0):
        """At most n examples drawn at random (without replacement), in file order."""
        if n >= len(self):
            return self
        keep = np.sort(np.random.RandomState(seed).choice(len(self), n, replace=False))

        def pick(values):
            return None if values is None else [values[i] for i in keep]

        return dataclasses.replace(
            self, texts_a=pick(self.texts_a), texts_b=pick(self.texts_b),
            labels=None if self.labels is None else self.labels[keep], ids=pick(self.ids))


def _label(task, value):
    """(class id or score, None), or (None, (kind, message)) for a bad label."""
    value = str(value).strip()
    if not task.is_regression:
        if value in task.label_names:
            return task.label_names.index(value), None
        return None, ("bad label", f"label {value!r} is not one of the task's labels "
                      f"{list(task.label_names)}")
    try:
        score = float(value)
    except ValueError:
        return None, ("bad label", f"label {value!r} is not a number")
    low, high = task.label_range or (-np.inf, np.inf)
    if not low <= score <= high:  # also rejects NaN
        return None, ("bad label", f"label {score} is outside [{low}, {high}]")
    return score, None


def read_split(task, data_dir, split, skip_bad_rows=False):
    """Reads one split of `task` from `data_dir`.

    Test splits are read without labels, every other split with them.

    Returns:
      `Examples`.

    Raises:
      DataError: the file is missing, lacks a needed column, or has a bad row (unless
        `skip_bad_rows`).
    """
    if split not in task.files:
        raise ValueError(f"task {task.name} has no split {split!r}; splits: {list(task.files)}")
    path = os.path.join(data_dir, task.files[split])
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path} not found: task {task.name} expects "
                        f"{', '.join(task.files.values())} in {data_dir}")
    labelled = not split.startswith("test")
    needed = list(task.text_columns) + ([task.label_column] if labelled else [])
    headerless = task.headerless_columns if labelled else None

    bad = _BadRows(path, skip_bad_rows)
    texts = [[] for _ in task.text_columns]
    labels, ids = [], []
    for row, (line, record) in enumerate(_records(path, bad, needed, headerless)):
        row_texts = [record[c] for c in task.text_columns]
        problem = next((("empty text", f"empty text in column {c!r}")
                        for c, t in zip(task.text_columns, row_texts)
                        if not isinstance(t, str) or not t.strip()), None)
        label = None
        if problem is None and labelled:
            label, problem = _label(task, record[task.label_column])
        if problem is not None:
            bad.report(line, *problem)
            continue
        for column, text in zip(texts, row_texts):
            column.append(text)
        labels.append(label)
        ids.append(str(record.get(task.index_column, row)))
    if bad.counts:
        logging.warning("%s: skipped %d bad row(s): %s", path, sum(bad.counts.values()),
                        dict(bad.counts))
    if not texts[0]:
        raise DataError(f"{path} has no usable examples")
    logging.info("%s: %d examples", path, len(texts[0]))
    dtype = np.float32 if task.is_regression else np.int32
    return Examples(
        path=path,
        texts_a=texts[0],
        texts_b=texts[1] if task.is_pair else None,
        labels=np.asarray(labels, dtype) if labelled else None,
        ids=ids,
        skipped=dict(bad.counts),
    )


def check_data_dir(task, data_dir):
    """Fails fast, naming what is missing, unless the train and dev files exist.

    Returns:
      The test splits whose files exist (test files are optional).
    """
    if not tf.io.gfile.isdir(data_dir):
        raise DataError(f"data_dir {data_dir} is not a directory")
    missing = [f for s, f in task.files.items()
               if not s.startswith("test") and not tf.io.gfile.exists(os.path.join(data_dir, f))]
    if missing:
        raise DataError(
            f"{data_dir} lacks {', '.join(missing)} for task {task.name} "
            f"(found: {', '.join(sorted(tf.io.gfile.listdir(data_dir))) or 'nothing'})")
    return [s for s in task.test_splits
            if tf.io.gfile.exists(os.path.join(data_dir, task.files[s]))]


# === Users' data ===

CUSTOM_EXTENSIONS = (".csv", ".tsv", ".jsonl")


def _find_split_file(data_dir, split, required):
    found = [split + ext for ext in CUSTOM_EXTENSIONS
             if tf.io.gfile.exists(os.path.join(data_dir, split + ext))]
    if len(found) > 1:
        raise DataError(f"{data_dir} has several {split} files: {found}; keep one")
    if not found and required:
        raise DataError(f"{data_dir} has no {split} file "
                        f"({' or '.join(split + e for e in CUSTOM_EXTENSIONS)})")
    return found[0] if found else None


def _sorted_labels(values):
    """Label strings in a natural order: by value if all are numbers."""
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(sorted(values))


def suspicious_labels(counts, rare_fraction=0.01):
    """Labels that look like mistakes: spellings of one label that differ only by case
    (or surrounding space), and labels of fewer than `rare_fraction` of the rows.

    Args:
      counts: {label: rows}.

    Returns:
      (case_groups, rare): lists of {label: rows} dicts (one per group of spellings)
      and {label: rows} of the rare labels.
    """
    groups = collections.defaultdict(dict)
    for label, n in counts.items():
        groups[label.strip().casefold()][label] = n
    case_groups = [dict(sorted(group.items())) for _, group in sorted(groups.items())
                   if len(group) > 1]
    total = sum(counts.values())
    rare = {label: n for label, n in sorted(counts.items()) if n < rare_fraction * total}
    return case_groups, rare


def warn_suspicious_labels(path, label_column, counts):
    """Logs a warning listing the counts of `suspicious_labels`, if there are any."""
    case_groups, rare = suspicious_labels(counts)
    for group in case_groups:
        logging.warning("%s: column %r has labels that differ only by case, each a class of "
                        "its own: %s; fix the file or give the labels (--label_names)",
                        path, label_column, group)
    if rare:
        logging.warning("%s: column %r has labels on fewer than 1%% of the %d rows: %s",
                        path, label_column, sum(counts.values()), rare)


def custom_task(data_dir, text_column, text_pair_column=None, label_column="label",
                label_names=None, regression=False, name="custom"):
    """A `Task` for users' own CSV/TSV/JSONL files `train.*`, `dev.*` (and `test.*`).

    Args:
      data_dir: directory of the files.
      text_column, text_pair_column: the text (and optional second text) columns.
      label_column: the label column (test files need not have it).
      label_names: the labels in class-id order; None takes the distinct labels of
        the train file, sorted (numerically when all are numbers).
      regression: float labels and one output instead of classes.
    """
    files = {"train": _find_split_file(data_dir, "train", True),
             "dev": _find_split_file(data_dir, "dev", True)}
    test = _find_split_file(data_dir, "test", False)
    if test:
        files["test"] = test
    if regression:
        label_names = None
        metrics = ("spearman", "pearson")
    else:
        if not label_names:
            path = os.path.join(data_dir, files["train"])
            # Lenient: read_split reports the bad rows later.
            counts = collections.Counter(
                str(record[label_column]).strip()
                for _, record in _records(path, _BadRows(path, skip=True), [label_column]))
            counts.pop("", None)
            if len(counts) < 2:
                raise DataError(f"{path}: column {label_column!r} has {len(counts)} distinct "
                                "label(s); classification needs at least 2")
            label_names = _sorted_labels(counts)
            logging.info("labels from %s: %s", path, list(label_names))
            warn_suspicious_labels(path, label_column, counts)
        metrics = ("accuracy", "f1", "mcc") if len(label_names) == 2 else ("accuracy", "mcc")
    text_columns = (text_column,) + ((text_pair_column,) if text_pair_column else ())
    return Task(name=name, glue_name=name, text_columns=text_columns,
                label_column=label_column,
                label_names=None if regression else tuple(label_names),
                metrics=metrics, main_metric=metrics[0], files=files,
                # Its predictions (with probabilities) are fine-tuning's
                # test_predictions.tsv; GLUE's submission format is for GLUE.
                submissions={})


# === tf.data ===


def _tokenize_and_pack(tokenizer, max_seq_length, texts_a, texts_b):
    """Packed inputs, and per example whether WordPieces were cut off to fit."""
    token_ids = [tokenizer.tokenize(texts_a)]
    if texts_b is not None:
        token_ids.append(tokenizer.tokenize(texts_b))
    specials = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    pack = pack_single if texts_b is None else pack_pair
    packed = pack(*token_ids, max_seq_length, **specials)
    kept = tf.reshape(packed.pop("num_tokens"), [tf.shape(texts_a)[0], -1])
    total = tf.add_n([tf.cast(ids.row_lengths(), tf.int32) for ids in token_ids])
    return packed, tf.reduce_sum(kept, axis=1) < total


class ExampleEncoder:
    """Turns `Examples` into model inputs, tracing the tokenizer once for all splits.

    (Tracing the tokenizer costs about a second; a tf.data map would pay it for every
    dataset, and again for every epoch's iterator.)

    Args:
      tokenizer: a `WordPieceTokenizer`.
      max_seq_length: L; pairs are truncated longest-first.
      batch_size: texts tokenized per call.
    """

    def __init__(self, tokenizer, max_seq_length, batch_size=1024):
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        spec = tf.TensorSpec([None], tf.string)
        self._encode_single = tf.function(
            lambda a: _tokenize_and_pack(tokenizer, max_seq_length, a, None),
            input_signature=[spec], autograph=False)
        self._encode_pair = tf.function(
            lambda a, b: _tokenize_and_pack(tokenizer, max_seq_length, a, b),
            input_signature=[spec, spec], autograph=False)

    def __call__(self, examples):
        """Model inputs of every example: dict of NumPy arrays `[n, max_seq_length]`
        (token_ids, segment_ids int32, padding_mask bool). Logs how many were truncated."""
        parts, truncated = [], 0
        for start in range(0, len(examples), self.batch_size):
            stop = start + self.batch_size
            if examples.texts_b is None:
                features, cut = self._encode_single(examples.texts_a[start:stop])
            else:
                features, cut = self._encode_pair(examples.texts_a[start:stop],
                                                  examples.texts_b[start:stop])
            parts.append({key: value.numpy() for key, value in features.items()})
            truncated += int(tf.reduce_sum(tf.cast(cut, tf.int32)))
        if truncated:
            logging.info("%s: %d of %d examples truncated to max_seq_length=%d", examples.path,
                         truncated, len(examples), self.max_seq_length)
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def batch_dataset(features, labels=None, *, batch_size, shuffle=False, seed=None):
    """Batches of encoded examples for `model.fit`/`evaluate`/`predict`.

    Args:
      features: an `ExampleEncoder`'s dict of arrays `[n, max_seq_length]`.
      labels: optional `[n]` int32 class ids or float32 scores.
      batch_size: examples per batch; the last batch may be smaller.
      shuffle: reshuffle all n examples every epoch (training), from `seed`.

    Returns:
      A `tf.data.Dataset` of `features` or `(features, labels)` batches.
    """
    dataset = tf.data.Dataset.from_tensor_slices(
        features if labels is None else (features, labels))
    if shuffle:
        num_examples = len(next(iter(features.values())))
        dataset = dataset.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def write_predictions(path, task, ids, logits, labels=None):
    """Writes every example's prediction with its probabilities (regression: its score).

    Columns: `id` (`Examples.ids`), `prediction` (a label name, or the score), then for
    classification one `p_<label>` column per label (softmax probabilities), and `label`
    (the true one) when `labels` are given.

    Args:
      logits: `[n, num_labels]` logits, or `[n]`/`[n, 1]` scores (regression).
      labels: optional `[n]` true class ids or scores.
    """
    logits = np.asarray(logits, np.float64)
    if len(logits) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(logits)} predictions")
    header = ["id", "prediction"]
    if task.is_regression:
        scores = logits.reshape(len(logits), -1)[:, 0]
        rows = [[i, f"{s:.6g}"] for i, s in zip(ids, scores)]
    else:
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        probs = shifted / shifted.sum(-1, keepdims=True)
        header += [f"p_{name}" for name in task.label_names]
        rows = [[i, task.label_names[p.argmax()]] + [f"{v:.6f}" for v in p]
                for i, p in zip(ids, probs)]
    if labels is not None:
        header.append("label")
        for row, y in zip(rows, labels):
            row.append(f"{y:.6g}" if task.is_regression else task.label_names[int(y)])
    files.write_text_atomic(
        path, "".join("\t".join(map(str, row)) + "\n" for row in [header] + rows))


def write_submission(path, task, ids, predictions):
    """Writes GLUE's submission format: `index<TAB>prediction`, one row per example.

    Args:
      ids: the test file's ids (`Examples.ids`).
      predictions: `[n, num_labels]` logits, or `[n]`/`[n, 1]` scores (regression).
    """
    predictions = np.asarray(predictions)
    if task.is_regression:
        values = [f"{score:.3f}" for score in predictions.reshape(len(predictions), -1)[:, 0]]
    else:
        values = [task.label_names[i] for i in predictions.argmax(-1)]
    if len(values) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(values)} predictions")
    files.write_text_atomic(
        path, SUBMISSION_HEADER + "\n" + "".join(f"{i}\t{v}\n" for i, v in zip(ids, values)))
