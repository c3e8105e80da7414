"""Why a fine-tuned classifier chose its label: integrated-gradients attributions for raw
text, per WordPiece and summed to words.

    explainer = Explainer.from_finetuned("out/sst2")          # a tools/finetune.py output
    [e] = explainer.explain(["a gripping , funny film"])
    e.label, e.probabilities, [(w.word, w.attribution) for w in e.words]

Texts are tokenized and packed exactly as the exported serving signature does
(`signatures.TextPacker`); the attribution math is `integrated_gradients.py`.
"""

import collections
import dataclasses
import functools
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf.interpret import replaced_tokens as explain
from electra_tf import schema
from electra_tf.export import exporter, signatures
from electra_tf.models import integrated_gradients as ig
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.models import artifacts
from electra_tf.models.classifier import ElectraClassifier

DEFAULT_STEPS = 32
# Token positions (rows x sequence length) of one forward/backward pass: about what one
# 128-token text at steps=32 needs. Bounds the activation memory, not the result.
DEFAULT_MAX_TOKENS_PER_PASS = 4352
# Completeness misses above this (relative) are logged as warnings.
COMPLETENESS_WARNING = 0.05
REGRESSION_TARGET = "score"


@dataclasses.dataclass(frozen=True)
class WordAttribution:
    """One word and the sum of its WordPieces' attributions.

    Attributes:
      word: its WordPieces joined ("##" dropped), in the tokenizer's normalized form
        (lower-cased, accents stripped for uncased models).
      attribution: float, positive when the word raises the explained output.
      segment: 0 for `text`, 1 for `text_pair`.
      pieces: its WordPieces.
    """

    word: str
    attribution: float
    segment: int
    pieces: tuple


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The classifier's answer for one text (or pair) and its attributions.

    Attributes:
      text, text_pair: the input (text_pair None for single-text tasks).
      tokens: the packed WordPieces `[CLS] ... [SEP]` (pairs: two segments), no padding.
      token_attributions: one float per token (0 on [CLS]/[SEP]).
      words: `WordAttribution`s of the text's words, then the pair's.
      target: the label explained ("score" for regression).
      label: the predicted label (None for regression).
      probabilities: {label: probability} in the model's label order (empty for
        regression).
      score: the regression output (None for classification).
      output, baseline_output: f at the input and at the baseline: the target's
        probability, or the score.
      completeness_error: |sum of attributions - (output - baseline_output)| relative
        to |output - baseline_output| (`integrated_gradients.completeness_error`).
      truncated: WordPieces were cut off to fit max_seq_length.
    """

    text: str
    text_pair: Optional[str]
    tokens: tuple
    token_attributions: tuple
    words: tuple
    target: str
    label: Optional[str]
    probabilities: dict
    score: Optional[float]
    output: float
    baseline_output: float
    completeness_error: float
    truncated: bool

    @property
    def confidence(self):
        """The predicted label's probability; for regression, the score."""
        return self.score if self.label is None else self.probabilities[self.label]

    def to_json(self):
        """A JSON-ready dict (`words` as {"word", "attribution", "segment"} dicts)."""
        value = dataclasses.asdict(self)
        value["tokens"] = list(self.tokens)
        value["token_attributions"] = list(self.token_attributions)
        value["words"] = [{"word": w.word, "attribution": w.attribution, "segment": w.segment}
                          for w in self.words]
        return value


_Piece = collections.namedtuple("_Piece", ["token", "attribution"])


def _words(tokens, attributions, content, segments):
    """`WordAttribution`s of one packed text: content WordPieces grouped per segment."""
    words = []
    for segment in (0, 1):
        pieces = [_Piece(tokens[j], attributions[j]) for j in range(len(tokens))
                  if content[j] and segments[j] == segment]
        for group in explain.group_wordpieces(pieces):
            words.append(WordAttribution(
                word="".join(p.token.removeprefix("##") if k else p.token
                             for k, p in enumerate(group)),
                attribution=float(sum(p.attribution for p in group)),
                segment=segment,
                pieces=tuple(p.token for p in group)))
    return tuple(words)


def _passes(lengths, rows_per_text, max_tokens):
    """Groups texts of similar length into passes of at most `max_tokens` positions.

    Args:
      lengths: int `[n]`, packed lengths.
      rows_per_text: rows each text takes in a pass (steps + 1).
      max_tokens: budget of rows x (longest length in the pass); a text too long for
        it alone gets a pass of its own.

    Returns:
      A list of index arrays covering range(n) once.
    """
    order = np.argsort(lengths, kind="stable")
    passes, current = [], []
    for i in order:
        # Sorted ascending: the newcomer is the longest of the pass.
        if current and (len(current) + 1) * rows_per_text * lengths[i] > max_tokens:
            passes.append(np.array(current))
            current = []
        current.append(i)
    if current:
        passes.append(np.array(current))
    return passes


class Explainer:
    """Integrated-gradients explanations of an `ElectraClassifier`'s outputs on raw text.

    Args:
      classifier: a fine-tuned `ElectraClassifier` (num_labels 1: regression).
      tokenizer: its `WordPieceTokenizer`.
      max_seq_length: L, as in fine-tuning (longer inputs are truncated).
      label_names: class names in output order ("0", "1", ... when empty).
      pair: whether inputs are text pairs.
      steps: trapezoid intervals of the integral (`steps + 1` evaluations per text).
      max_tokens_per_pass: rows x sequence length of one forward/backward pass; texts
        of similar length share a pass up to this budget.
    """

    def __init__(self, classifier, tokenizer, max_seq_length, label_names=(), pair=False,
                 steps=DEFAULT_STEPS, max_tokens_per_pass=DEFAULT_MAX_TOKENS_PER_PASS):
        ig.trapezoid_nodes(steps)  # validates steps
        self.classifier = classifier
        self.tokenizer = tokenizer
        self.packer = signatures.TextPacker(tokenizer, max_seq_length)
        self.regression = classifier.is_regression
        self.label_names = ([] if self.regression
                            else signatures.resolve_label_names(classifier.num_labels,
                                                                label_names))
        self.pair = pair
        self.steps = steps
        self.max_tokens_per_pass = max_tokens_per_pass
        ids = tf.TensorSpec([None, None], tf.int32)
        # One trace for every pass shape: passes differ in batch and length only.
        self._attribute = tf.function(
            functools.partial(ig.integrated_gradients, classifier, steps=steps),
            input_signature=[
                {schema.TOKEN_IDS: ids, schema.SEGMENT_IDS: ids,
                 schema.PADDING_MASK: tf.TensorSpec([None, None], tf.bool)},
                tf.TensorSpec([None, None], tf.bool),
                tf.TensorSpec([None], tf.int32),
            ])

    @classmethod
    def from_finetuned(cls, output_dir, **kwargs):
        """An Explainer of a tools/finetune.py output dir (its best seed); `kwargs` as
        for the constructor (steps, max_tokens_per_pass)."""
        model, cfg, vocab_path, label_names = artifacts.load_finetuned(output_dir)
        if not isinstance(model, ElectraClassifier):
            raise ValueError(f"{output_dir} holds a {type(model).__name__} (task {cfg.task}); "
                             "explanations attribute a sequence classifier's decision")
        tokenizer = WordPieceTokenizer(vocab_path, lowercase=cfg.lowercase)
        return cls(model, tokenizer, cfg.max_seq_length, label_names,
                   pair=exporter.is_pair_task(cfg), **kwargs)

    def target_index(self, label):
        """The class index of `label` (a label name or an int index); -1 for None.

        Raises:
          ValueError: an unknown label, or any label for a regression model.
        """
        if label is None:
            return -1
        if self.regression:
            raise ValueError("a regression model explains its score: it takes no label")
        if isinstance(label, (int, np.integer)) and 0 <= label < len(self.label_names):
            return int(label)
        if str(label) in self.label_names:
            return self.label_names.index(str(label))
        raise ValueError(f"unknown label {label!r}; the model's labels are "
                         f"{', '.join(self.label_names)}")

    def _check_inputs(self, texts, text_pairs, labels):
        if self.pair and text_pairs is None:
            raise ValueError("the model takes text pairs: give a text_pair for every text")
        if not self.pair and text_pairs is not None:
            raise ValueError("the model takes single texts, not pairs")
        for name, values in (("text_pairs", text_pairs), ("labels", labels)):
            if values is not None and len(values) != len(texts):
                raise ValueError(f"{len(values)} {name} for {len(texts)} texts")

    def explain(self, texts, text_pairs=None, labels=None):
        """Explains the model's output for each text.

        Args:
          texts: list of str.
          text_pairs: list of str, one per text, for pair tasks (else None).
          labels: optional list, one per text, of the label to explain (a name, an
            index, or None for the predicted one); None: the predicted ones.

        Returns:
          One `Explanation` per text, in order.
        """
        texts = list(texts)
        self._check_inputs(texts, text_pairs, labels)
        if not texts:
            return []
        targets = np.array([self.target_index(label) for label in labels or [None] * len(texts)],
                           np.int32)
        features, info = self.packer(tf.constant(texts, tf.string),
                                     None if text_pairs is None
                                     else tf.constant(list(text_pairs), tf.string))
        features = {key: np.asarray(value) for key, value in features.items()}
        content = ig.content_mask(features, (self.tokenizer.cls_id, self.tokenizer.sep_id)).numpy()
        lengths = features[schema.PADDING_MASK].sum(axis=1)
        results = {}
        for index in _passes(lengths, self.steps + 1, self.max_tokens_per_pass):
            width = int(lengths[index].max())
            out = self._attribute(
                {key: tf.constant(value[index, :width]) for key, value in features.items()},
                tf.constant(content[index, :width]), tf.constant(targets[index]))
            for k, i in enumerate(index):
                results[i] = {key: value[k].numpy() for key, value in out.items()}
        tokens = self.tokenizer.id_to_token(features[schema.TOKEN_IDS]).numpy()
        truncated = info[signatures.TRUNCATED].numpy()
        return [
            self._explanation(texts[i], None if text_pairs is None else text_pairs[i],
                              [t.decode("utf-8") for t in tokens[i, :lengths[i]]],
                              content[i, :lengths[i]],
                              features[schema.SEGMENT_IDS][i, :lengths[i]],
                              results[i], bool(truncated[i]))
            for i in range(len(texts))
        ]

    def _explanation(self, text, text_pair, tokens, content, segments, result, truncated):
        attributions = result["attributions"][:len(tokens)]
        error = float(ig.completeness_error(
            attributions, result["output"], result["baseline_output"]))
        if error > COMPLETENESS_WARNING:
            logging.warning(
                "integrated gradients for %r: the attributions sum to %.4g but f(input) - "
                "f(baseline) is %.4g (%.1f%% off); more steps (now %d) make them agree",
                text[:60], attributions.sum(), result["output"] - result["baseline_output"],
                100 * error, self.steps)
        if self.regression:
            label, probabilities, score = None, {}, float(result["logits"][0])
            target = REGRESSION_TARGET
        else:
            probs = tf.nn.softmax(result["logits"]).numpy()
            probabilities = {name: float(p) for name, p in zip(self.label_names, probs)}
            label, score = self.label_names[int(np.argmax(probs))], None
            target = self.label_names[int(result["target"])]
        return Explanation(
            text=text, text_pair=text_pair, tokens=tuple(tokens),
            token_attributions=tuple(float(a) for a in attributions),
            words=_words(tokens, attributions, content, segments),
            target=target, label=label, probabilities=probabilities, score=score,
            output=float(result["output"]), baseline_output=float(result["baseline_output"]),
            completeness_error=error, truncated=truncated)
