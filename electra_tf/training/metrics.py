"""GLUE metrics, exact over a whole evaluation set.

Every metric here is a Keras metric whose state is a sum over examples (a confusion
matrix, or the moments of two variables), so `model.evaluate` over many batches, or
over several replicas, gives the value of the whole set, never a mean of per-batch
values. The same objects compute the final numbers in `compute_metrics`, so there is
one implementation of each formula.

  accuracy  `keras.metrics.SparseCategoricalAccuracy` on the logits
  f1        F1 of class 1 (MRPC, QQP)
  mcc       Matthews correlation, multi-class (CoLA)
  pearson   Pearson correlation (STS-B)
  spearman  Pearson correlation of the ranks (STS-B); ranks need the whole set at
            once, so it exists only in `compute_metrics`, not as a streaming metric

Undefined values (F1 with no positive label or prediction, a correlation with a
constant input) are reported as 0.0, as scikit-learn does for F1 and MCC.

The pretraining metrics (MLM/RTD accuracy, `models/losses.py`'s binary_entropy and
ranking_auc) are computed in the pretrainer's `train_step`.

Extractive question answering: `squad_scores`, the official SQuAD v1.1 and v2.0
evaluation scripts' exact match and F1 (`squad_normalize_answer`, `squad_f1`).
"""

import collections
import re
import string

import keras
import numpy as np
import tensorflow as tf
from keras import ops

METRIC_NAMES = ("accuracy", "f1", "mcc", "pearson", "spearman")


def _safe_divide(numerator, denominator):
    return ops.where(denominator > 0, numerator / ops.maximum(denominator, 1e-300), 0.0)


class _ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates a `[num_classes, num_classes]` confusion matrix (rows: labels).

    update_state args:
        y_true: int `[batch]` (or `[batch, 1]`) class ids.
        y_pred: float `[batch, num_classes]` logits or probabilities.
        sample_weight: optional float `[batch]`.
    """

    def __init__(self, num_classes=2, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float64",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        predictions = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        weights = None if sample_weight is None else tf.reshape(sample_weight, [-1])
        self.confusion.assign_add(tf.math.confusion_matrix(
            labels, predictions, self.num_classes, weights=weights, dtype=tf.float64))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="electra_tf")
class F1Score(_ConfusionMatrixMetric):
    """F1 of class 1 (the "positive" class of binary GLUE tasks), over all examples."""

    def __init__(self, num_classes=2, name="f1", **kwargs):
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def result(self):
        true_positive = self.confusion[1, 1]
        # Row 1: labelled positive; column 1: predicted positive.
        denominator = ops.sum(self.confusion[1, :]) + ops.sum(self.confusion[:, 1])
        return ops.cast(_safe_divide(2.0 * true_positive, denominator), "float32")


@keras.saving.register_keras_serializable(package="electra_tf")
class MatthewsCorrelation(_ConfusionMatrixMetric):
    """Matthews correlation coefficient (Gorodkin's multi-class R_K), over all examples."""

    def __init__(self, num_classes=2, name="mcc", **kwargs):
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def result(self):
        c = self.confusion
        n = ops.sum(c)
        correct = ops.trace(c)
        labelled = ops.sum(c, axis=1)
        predicted = ops.sum(c, axis=0)
        covariance = correct * n - ops.sum(labelled * predicted)
        denominator = ops.sqrt(
            (n * n - ops.sum(predicted * predicted)) * (n * n - ops.sum(labelled * labelled))
        )
        return ops.cast(_safe_divide(covariance, denominator), "float32")


@keras.saving.register_keras_serializable(package="electra_tf")
class PearsonCorrelation(keras.metrics.Metric):
    """Pearson correlation of predictions and labels, from running sums (float64).

    update_state args:
        y_true: float `[batch]` (or `[batch, 1]`).
        y_pred: float `[batch]` or `[batch, 1]` (a regression head's output).
        sample_weight: optional float `[batch]` (weighted moments).
    """

    def __init__(self, name="pearson", **kwargs):
        super().__init__(name=name, **kwargs)
        # n, sum x, sum y, sum xx, sum yy, sum xy.
        self.moments = self.add_variable(
            shape=(6,), initializer="zeros", dtype="float64", name="moments"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        x = tf.reshape(tf.cast(y_pred, tf.float64), [-1])
        y = tf.reshape(tf.cast(y_true, tf.float64), [-1])
        w = tf.ones_like(x) if sample_weight is None else tf.reshape(
            tf.cast(sample_weight, tf.float64), [-1])
        terms = tf.stack([tf.ones_like(x), x, y, x * x, y * y, x * y])
        self.moments.assign_add(tf.reduce_sum(terms * w, axis=1))

    def result(self):
        n, sx, sy, sxx, syy, sxy = ops.unstack(self.moments)
        covariance = n * sxy - sx * sy
        # Clipped at 0: rounding can make the variance of a constant slightly negative.
        variance_x = ops.maximum(n * sxx - sx * sx, 0.0)
        variance_y = ops.maximum(n * syy - sy * sy, 0.0)
        # Relative floors, so a constant input reads 0.0 rather than rounding noise.
        defined = ops.logical_and(variance_x > 1e-12 * n * sxx, variance_y > 1e-12 * n * syy)
        correlation = _safe_divide(covariance, ops.sqrt(variance_x * variance_y))
        return ops.cast(ops.where(defined, correlation, 0.0), "float32")

    def reset_state(self):
        self.moments.assign(ops.zeros_like(self.moments))


def streaming_metrics(metric_names, num_labels):
    """Keras metrics to pass to `model.compile` for a task's metric names.

    Spearman is left out (it has no streaming form); `compute_metrics` reports it.
    """
    factories = {
        "accuracy": lambda: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        "f1": lambda: F1Score(num_classes=num_labels),
        "mcc": lambda: MatthewsCorrelation(num_classes=num_labels),
        "pearson": PearsonCorrelation,
    }
    unknown = [m for m in metric_names if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(METRIC_NAMES)}")
    return [factories[m]() for m in metric_names if m in factories]


def rankdata(values):
    """Ranks 1..n of a 1-D array, ties sharing their average rank (scipy's default)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start and end index of each run of equal values, in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(average_rank, ends - starts)
    return ranks


def compute_metrics(metric_names, labels, predictions):
    """Task metrics over a whole evaluation set.

    Args:
      metric_names: names from `METRIC_NAMES`.
      labels: `[n]` class ids (classification) or floats (regression).
      predictions: `[n, num_labels]` logits (classification) or `[n]` / `[n, 1]`
        scores (regression).

    Returns:
      dict {name: float}, in the order of `metric_names`.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if len(labels) != len(predictions):
        raise ValueError(
            f"{len(labels)} labels but {len(predictions)} predictions")
    if "spearman" in metric_names:
        ranked_labels = rankdata(labels)
        ranked_predictions = rankdata(predictions.reshape(len(predictions), -1)[:, 0])
    num_labels = predictions.shape[-1] if predictions.ndim == 2 else 1
    results = {}
    for name in metric_names:
        if name == "spearman":
            metric = PearsonCorrelation()
            metric.update_state(ranked_labels, ranked_predictions)
        else:
            (metric,) = streaming_metrics([name], num_labels)
            metric.update_state(labels, predictions)
        results[name] = float(metric.result())
    return results


# === SQuAD ===

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize_answer(text):
    """The official scripts' normalization: lower-case, drop ASCII punctuation, drop
    the articles a/an/the, collapse whitespace (in that order; v1.1 and v2.0 agree)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction, gold):
    """1.0 when the normalized texts are equal, else 0.0."""
    return float(squad_normalize_answer(prediction) == squad_normalize_answer(gold))


def squad_f1(prediction, gold, version_2=False):
    """Bag-of-tokens F1 of the normalized texts.

    The scripts differ when a side normalizes to nothing: v1.1 scores 0.0 (no token in
    common), v2.0 scores 1.0 when both are empty (a correct "no answer") and 0.0 when
    one is.
    """
    prediction_tokens = squad_normalize_answer(prediction).split()
    gold_tokens = squad_normalize_answer(gold).split()
    if version_2 and (not prediction_tokens or not gold_tokens):
        return float(prediction_tokens == gold_tokens)
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(gold_answers, predictions, version_2=False):
    """The official SQuAD evaluation of predictions, in percent.

    Each question scores the maximum over its gold answers. v1.1: a question without
    a prediction scores 0 and counts. v2.0: gold answers that normalize to nothing are
    dropped and a question left without any (an unanswerable one) has the single gold
    answer "", which only the empty prediction matches; every question needs a
    prediction (the official v2.0 script fails without one, so this refuses too).
    Predictions for ids not in `gold_answers` are ignored, as by both scripts.

    Args:
      gold_answers: dict {question id: list of gold answer texts} (empty list:
        unanswerable).
      predictions: dict {question id: predicted text} ("" predicts "no answer").
      version_2: score as the v2.0 script does.

    Returns:
      dict with `exact_match` and `f1` (v2.0: the script's `exact` and `f1`) and
      `total`; v2.0 also `HasAns_exact`, `HasAns_f1`, `HasAns_total`, `NoAns_exact`,
      `NoAns_f1`, `NoAns_total` for the groups that have questions.
    """
    if not gold_answers:
        raise ValueError("no gold answers to score")
    exact, f1 = {}, {}
    missing = [qid for qid in gold_answers if qid not in predictions]
    if version_2 and missing:
        raise ValueError(f"{len(missing)} of {len(gold_answers)} questions have no "
                         f"prediction (e.g. {missing[0]}); SQuAD v2.0 scores every question")
    for qid, answers in gold_answers.items():
        if qid not in predictions:
            exact[qid] = f1[qid] = 0.0
            continue
        if version_2:
            answers = [a for a in answers if squad_normalize_answer(a)] or [""]
        prediction = predictions[qid]
        exact[qid] = max(squad_exact_match(prediction, a) for a in answers)
        f1[qid] = max(squad_f1(prediction, a, version_2) for a in answers)

    def percent(scores, ids):
        return 100.0 * sum(scores[qid] for qid in ids) / len(ids)

    ids = list(gold_answers)
    results = {"exact_match": percent(exact, ids), "f1": percent(f1, ids), "total": len(ids)}
    if version_2:
        for name, group in (("HasAns", [q for q in ids if gold_answers[q]]),
                            ("NoAns", [q for q in ids if not gold_answers[q]])):
            if group:
                results[f"{name}_exact"] = percent(exact, group)
                results[f"{name}_f1"] = percent(f1, group)
                results[f"{name}_total"] = len(group)
    return results


# === Token classification ===


def _split_tag(tag):
    # seqeval's parsing: "B-PER" -> ("B", "PER"); "O" -> ("O", "_").
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag, tag, prev_type, type_):
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag in ("B", "I") and tag in ("I", "E") and prev_type != type_)
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _start_of_chunk(prev_tag, tag, prev_type, type_):
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def entity_spans(tags):
    """Entities of one tag sequence as conlleval and seqeval's default mode find them.

    Lenient as they are: an `I-X` after `O` or after another type starts an entity.

    Returns:
      set of (type, first, last) with inclusive word indices.
    """
    spans, prev_tag, prev_type, begin = set(), "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        tag, type_ = _split_tag(tag)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            spans.add((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return spans


def entity_scores(gold_sequences, predicted_sequences):
    """Entity-level precision/recall/F1 (micro, seqeval's default) and word accuracy.

    Args:
      gold_sequences, predicted_sequences: lists of tag lists, one per sentence, of
        equal lengths.

    Returns:
      dict {precision, recall, f1, accuracy} as fractions (0.0 where undefined).
    """
    if len(gold_sequences) != len(predicted_sequences):
        raise ValueError(f"{len(gold_sequences)} gold but {len(predicted_sequences)} "
                         f"predicted sentences")
    gold, predicted, correct_words, words = 0, 0, 0, 0
    found = 0
    for n, (g, p) in enumerate(zip(gold_sequences, predicted_sequences)):
        if len(g) != len(p):
            raise ValueError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted")
        gold_spans, predicted_spans = entity_spans(g), entity_spans(p)
        gold += len(gold_spans)
        predicted += len(predicted_spans)
        found += len(gold_spans & predicted_spans)
        correct_words += sum(a == b for a, b in zip(g, p))
        words += len(g)
    precision = found / predicted if predicted else 0.0
    recall = found / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": correct_words / words if words else 0.0}
