"""Extractive QA post-processing: span logits of every window -> answer texts.

For each question, every window's candidate spans compete: a candidate is a start
token among the window's `n_best_size` best-scoring context tokens where the token has
its maximum context (`SquadFeatures.max_context`, so a token seen in two windows is
judged in the one that sees more around it) and an end token among the
`n_best_size` best context tokens, with start <= end and at most
`max_answer_length` tokens; its score is start logit + end logit. The answer text
is the original context between the start token's first and the end token's last
character. Candidates giving the same text are kept once (the best), up to
`n_best_size` per question, with softmax probabilities over that list.

SQuAD v2.0: the null ("no answer") score of a window is start_logit[CLS] +
end_logit[CLS] (Hugging Face's and Google's post-processing), and a question's is the
minimum over its windows (the window most sure there is an answer). A question is
answered "" when null score - best span score > `null_score_diff_threshold`; the
differences are returned (`null_odds.json`) so the threshold can be tuned on dev.
"""

import dataclasses
import json
import os

import numpy as np

from electra_tf.files import write_text_atomic

PREDICTIONS_JSON = "predictions.json"
NBEST_PREDICTIONS_JSON = "nbest_predictions.json"
NULL_ODDS_JSON = "null_odds.json"


@dataclasses.dataclass
class SquadPredictions:
    """Post-processing results, keyed by question id.

    Attributes:
      answers: {id: answer text} ("" is "no answer"), the content of predictions.json.
      nbest: {id: [{"text", "probability", "start_logit", "end_logit", "start_char",
        "end_char"}, ...]} best first (`start_char`/`end_char`: offsets in the
        context; -1 for the "no answer" entry of v2.0).
      null_score_diffs: v2.0: {id: null score - best span score}; empty for v1.1.
    """

    answers: dict
    nbest: dict
    null_score_diffs: dict


def _softmax(scores):
    scores = np.asarray(scores, np.float64)
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def _window_candidates(features, window, start_logits, end_logits, n_best_size,
                       max_answer_length):
    """(score, start_logit, end_logit, start, end) of one window's valid spans."""
    is_context = features.char_starts[window] >= 0
    starts = np.flatnonzero(is_context & features.max_context[window])
    ends = np.flatnonzero(is_context)
    if starts.size == 0 or ends.size == 0:
        return []
    # Stable sorts: equal logits keep the earlier token first.
    starts = starts[np.argsort(-start_logits[starts], kind="stable")[:n_best_size]]
    ends = ends[np.argsort(-end_logits[ends], kind="stable")[:n_best_size]]
    length = ends[None, :] - starts[:, None] + 1
    valid = (length >= 1) & (length <= max_answer_length)
    rows, cols = np.nonzero(valid)
    s, e = starts[rows], ends[cols]
    return [(float(start_logits[a] + end_logits[b]), float(start_logits[a]),
             float(end_logits[b]), int(a), int(b)) for a, b in zip(s, e)]


def postprocess(features, start_logits, end_logits, n_best_size=20, max_answer_length=30,
                version_2=False, null_score_diff_threshold=0.0):
    """Span logits of all windows -> an answer per question.

    Args:
      features: the evaluation `SquadFeatures` the logits were computed on.
      start_logits, end_logits: float `[n, L]`, one row per window of `features`.
      n_best_size: start and end tokens tried per window, and answers kept per question.
      max_answer_length: longest answer, in WordPieces.
      version_2: questions may have no answer (see the module docstring).
      null_score_diff_threshold: v2.0: answer "" when null score - best span score
        exceeds it.

    Returns:
      `SquadPredictions` with an entry for every example of `features` (an example
      without a valid span gets "").
    """
    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    if start_logits.shape != features.token_ids.shape or end_logits.shape != start_logits.shape:
        raise ValueError(
            f"logits {start_logits.shape} and {end_logits.shape} do not match the "
            f"features' windows {features.token_ids.shape}")
    windows_of = [[] for _ in features.examples]
    for window, example_index in enumerate(features.example_index):
        windows_of[example_index].append(window)

    answers, nbest, diffs = {}, {}, {}
    for example, windows in zip(features.examples, windows_of):
        candidates, null = [], None
        for w in windows:
            null_score = float(start_logits[w, 0] + end_logits[w, 0])
            if null is None or null_score < null[0]:
                null = (null_score, float(start_logits[w, 0]), float(end_logits[w, 0]))
            for score, start_logit, end_logit, s, e in _window_candidates(
                    features, w, start_logits[w], end_logits[w], n_best_size,
                    max_answer_length):
                char_start = int(features.char_starts[w, s])
                char_end = int(features.char_ends[w, e])
                candidates.append((score, start_logit, end_logit, char_start, char_end))
        candidates.sort(key=lambda c: -c[0])

        entries, seen = [], set()
        for score, start_logit, end_logit, char_start, char_end in candidates:
            text = example.context[char_start:char_end]
            if text in seen:
                continue
            seen.add(text)
            entries.append({"text": text, "score": score, "start_logit": start_logit,
                            "end_logit": end_logit, "start_char": char_start,
                            "end_char": char_end})
            if len(entries) == n_best_size:
                break
        best = entries[0] if entries else None
        best_score = best["score"] if best else None
        if version_2 and null is not None:
            entries.append({"text": "", "score": null[0], "start_logit": null[1],
                            "end_logit": null[2], "start_char": -1, "end_char": -1})
            entries.sort(key=lambda entry: -entry["score"])
        if not entries:
            entries = [{"text": "", "score": 0.0, "start_logit": 0.0, "end_logit": 0.0,
                        "start_char": -1, "end_char": -1}]
        for entry, probability in zip(entries, _softmax([x["score"] for x in entries])):
            entry["probability"] = float(probability)
            del entry["score"]
        nbest[example.id] = entries

        if version_2 and null is not None:
            if best is None:  # no valid span in any window: "no answer", no difference
                answers[example.id] = ""
            else:
                diffs[example.id] = null[0] - best_score
                answers[example.id] = ("" if diffs[example.id] > null_score_diff_threshold
                                       else best["text"])
        else:
            answers[example.id] = best["text"] if best else ""
    return SquadPredictions(answers=answers, nbest=nbest, null_score_diffs=diffs)


def write_predictions(output_dir, predictions):
    """Writes predictions.json, nbest_predictions.json and (v2.0) null_odds.json.

    Each is written whole or not at all (temp file + rename).

    Returns:
      dict {file name: path} of the files written.
    """
    files = {PREDICTIONS_JSON: predictions.answers, NBEST_PREDICTIONS_JSON: predictions.nbest}
    if predictions.null_score_diffs:
        files[NULL_ODDS_JSON] = predictions.null_score_diffs
    paths = {}
    for name, content in files.items():
        paths[name] = os.path.join(output_dir, name)
        write_text_atomic(paths[name], json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    return paths
