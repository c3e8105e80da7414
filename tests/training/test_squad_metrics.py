"""SQuAD EM/F1: `metrics.squad_scores` against straight re-implementations of the
official evaluation scripts (evaluate-v1.1.py and evaluate-v2.0.py), on hand-made cases
and on random ones built from tricky pieces."""

import collections
import random
import re
import string

import pytest

from electra_tf.training import metrics


# === The official v1.1 script (evaluate-v1.1.py), logic unchanged ===

def v1_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def v1_f1_score(prediction, ground_truth):
    prediction_tokens = v1_normalize_answer(prediction).split()
    ground_truth_tokens = v1_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def v1_exact_match_score(prediction, ground_truth):
    return v1_normalize_answer(prediction) == v1_normalize_answer(ground_truth)


def v1_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def v1_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                ground_truths = [x["text"] for x in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += v1_metric_max_over_ground_truths(
                    v1_exact_match_score, prediction, ground_truths)
                f1 += v1_metric_max_over_ground_truths(v1_f1_score, prediction, ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# === The official v2.0 script (evaluate-v2.0.py), no na_prob file, logic unchanged ===

ARTICLES_REGEX = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def v2_normalize_answer(s):
    def remove_articles(text):
        return ARTICLES_REGEX.sub(" ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def v2_get_tokens(s):
    if not s:
        return []
    return v2_normalize_answer(s).split()


def v2_compute_exact(a_gold, a_pred):
    return int(v2_normalize_answer(a_gold) == v2_normalize_answer(a_pred))


def v2_compute_f1(a_gold, a_pred):
    gold_toks = v2_get_tokens(a_gold)
    pred_toks = v2_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def v2_evaluate(dataset, preds):
    qid_to_has_ans = {}
    exact_scores, f1_scores = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid_to_has_ans[qa["id"]] = bool(qa["answers"])
                gold_answers = [a["text"] for a in qa["answers"] if v2_normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]
                a_pred = preds[qa["id"]]
                exact_scores[qa["id"]] = max(v2_compute_exact(a, a_pred) for a in gold_answers)
                f1_scores[qa["id"]] = max(v2_compute_f1(a, a_pred) for a in gold_answers)
    # na_prob_thresh 1.0 with na_probs 0.0: the thresholded scores are the raw ones.

    def make_eval_dict(qid_list):
        total = len(qid_list)
        return {"exact": 100.0 * sum(exact_scores[k] for k in qid_list) / total,
                "f1": 100.0 * sum(f1_scores[k] for k in qid_list) / total, "total": total}

    out = make_eval_dict(list(exact_scores))
    has_ans = [k for k, v in qid_to_has_ans.items() if v]
    no_ans = [k for k, v in qid_to_has_ans.items() if not v]
    if has_ans:
        out.update({f"HasAns_{k}": v for k, v in make_eval_dict(has_ans).items()})
    if no_ans:
        out.update({f"NoAns_{k}": v for k, v in make_eval_dict(no_ans).items()})
    return out


# === Helpers ===

def as_dataset(gold):
    """{id: [answer texts]} in the SQuAD JSON layout (one article, one paragraph)."""
    qas = [{"id": qid, "question": "q?", "answers": [{"text": t, "answer_start": 0}
                                                       for t in answers]}
           for qid, answers in gold.items()]
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def assert_v1_equal(gold, predictions):
    ours = metrics.squad_scores(gold, predictions)
    theirs = v1_evaluate(as_dataset(gold), predictions)
    assert ours["exact_match"] == pytest.approx(theirs["exact_match"], abs=1e-12)
    assert ours["f1"] == pytest.approx(theirs["f1"], abs=1e-12)
    assert ours["total"] == len(gold)
    return ours


def assert_v2_equal(gold, predictions):
    ours = metrics.squad_scores(gold, predictions, version_2=True)
    theirs = v2_evaluate(as_dataset(gold), predictions)
    renamed = {("exact_match" if k == "exact" else k): v for k, v in theirs.items()}
    assert set(ours) == set(renamed)
    for key, value in renamed.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    return ours


# === Hand-made cases ===

def test_normalization_examples():
    norm = metrics.squad_normalize_answer
    assert norm("The  Denver Broncos!") == "denver broncos"
    assert norm("an apple, a pear") == "apple pear"
    assert norm("theory of the atom") == "theory of atom"  # "the" inside a word stays
    assert norm("U.S.A.") == "usa"
    assert norm("“quoted” — dash") == "“quoted” — dash"  # only ASCII punctuation goes
    assert norm("Ä  b\tc\n") == "ä b c"
    assert norm("the") == ""


def test_v1_hand_cases():
    gold = {
        "exact": ["Denver Broncos"],
        "article": ["the Denver Broncos", "Broncos"],
        "partial": ["Carolina Panthers"],
        "wrong": ["Santa Clara"],
        "empty_prediction": ["Levi's Stadium"],
        "missing": ["gold"],
        "only_article_gold": ["the"],
        "repeat": ["a a b"],
    }
    predictions = {
        "exact": "denver broncos.",
        "article": "Denver Broncos",
        "partial": "the Panthers of Carolina",
        "wrong": "Levi's Stadium",
        "empty_prediction": "",
        "only_article_gold": "",
        "repeat": "a b b",
        "not_asked": "ignored",
    }
    scores = assert_v1_equal(gold, predictions)
    # partial: pred {panthers, of, carolina} vs gold {carolina, panthers}: P 2/3, R 1.
    # repeat: pred [b, b] vs gold [b] after dropping articles: P 1/2, R 1.
    # only_article_gold: EM 1 ("" == ""), F1 0 in v1.1 (no common token).
    expected_em = [1, 1, 0, 0, 0, 0, 1, 0]
    expected_f1 = [1, 1, 0.8, 0, 0, 0, 0, 2 / 3]
    assert scores["exact_match"] == pytest.approx(100 * sum(expected_em) / 8)
    assert scores["f1"] == pytest.approx(100 * sum(expected_f1) / 8)


def test_v2_hand_cases():
    gold = {
        "has_right": ["Denver Broncos", "Broncos"],
        "has_wrong": ["Carolina"],
        "has_abstained": ["Santa Clara"],
        "no_right": [],
        "no_wrong": [],
        "only_article_gold": ["The", "an"],  # normalizes to nothing: counts as unanswerable text
    }
    predictions = {
        "has_right": "broncos",
        "has_wrong": "Carolina Panthers",
        "has_abstained": "",
        "no_right": "",
        "no_wrong": "Levi's Stadium",
        "only_article_gold": "",
    }
    scores = assert_v2_equal(gold, predictions)
    assert scores["NoAns_total"] == 2 and scores["HasAns_total"] == 4
    assert scores["NoAns_exact"] == 50.0 and scores["NoAns_f1"] == 50.0
    # HasAns: right (1, 1), wrong (0, 2/3), abstained (0, 0), article-only gold with ""
    # (1, 1: its only gold answer is "").
    assert scores["HasAns_exact"] == pytest.approx(50.0)
    assert scores["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 1) / 4)
    assert scores["exact_match"] == pytest.approx(100 * 3 / 6)


def test_v2_requires_every_prediction_v1_scores_missing_zero():
    gold = {"a": ["x"], "b": []}
    with pytest.raises(ValueError, match="1 of 2 questions have no prediction"):
        metrics.squad_scores(gold, {"a": "x"}, version_2=True)
    assert metrics.squad_scores({"a": ["x"], "c": ["y"]}, {"a": "x"})["exact_match"] == 50.0


def test_v2_without_unanswerable_questions_has_no_noans_keys():
    scores = assert_v2_equal({"a": ["x y"]}, {"a": "x"})
    assert "NoAns_total" not in scores and scores["HasAns_f1"] == pytest.approx(100 * 2 / 3)


# === Random cases from tricky pieces ===

PIECES = ["the", "a", "an", "The", "Denver", "broncos", "Broncos", ",", ".", "!", "'s",
          "1990", "1990s", "théâtre", "東京", "an-", "(", ")", "  ", "\t", "x", "x"]


def random_text(rng, allow_empty):
    n = rng.randint(0 if allow_empty else 1, 5)
    return "".join(rng.choice(PIECES) + rng.choice(["", " ", ""]) for _ in range(n))


@pytest.mark.parametrize("version_2", [False, True])
def test_random_cases_equal_official(version_2):
    rng = random.Random(7 + version_2)
    for trial in range(40):
        gold, predictions = {}, {}
        for q in range(rng.randint(1, 12)):
            qid = f"q{trial}-{q}"
            unanswerable = version_2 and rng.random() < 0.3
            gold[qid] = [] if unanswerable else [
                random_text(rng, False) for _ in range(rng.randint(1, 3))]
            if version_2 or rng.random() < 0.9:
                predictions[qid] = random_text(rng, True)
        if version_2:
            assert_v2_equal(gold, predictions)
        else:
            assert_v1_equal(gold, predictions)
