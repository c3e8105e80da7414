"""Fine-tuning runs of the QA and tagging tasks (run_finetuning and tools/finetune.py):
the output files and their agreement with the official scorers, every dev question or
sentence predicted, save/load giving the same predictions, learning on a rule-tagged
corpus, and the errors a user sees for a bad data_dir."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from export.export_helpers import bare_process_outputs
from helpers import (BERT_VOCAB, REPO_ROOT, make_discriminator_dir, shared_path,
                     tagged_sentences, write_conll)

from electra_tf.config import FinetuneConfig
from electra_tf.data import squad, squad_predictions, tagging
from electra_tf.export import exporter
from electra_tf.models import artifacts
from electra_tf.models.question_answering import ElectraForQuestionAnswering
from electra_tf.models.token_classification import ElectraForTokenClassification
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import finetune, metrics, tasks

SEQ = 64


def squad_subset(examples, document, articles, max_questions):
    """The SQuAD `document` cut to `articles` (indices) and their first questions."""
    keep = {e.id for e in examples if e.article_index in articles}
    data, left = [], max_questions
    for a in articles:
        article = json.loads(json.dumps(document["data"][a]))
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [q for q in paragraph["qas"] if q["id"] in keep][:left]
            left -= len(paragraph["qas"])
        article["paragraphs"] = [p for p in article["paragraphs"] if p["qas"]]
        data.append(article)
    return {"version": document.get("version", "1.1"), "data": data}


@pytest.fixture(scope="module")
def squad_dir(tmp_path_factory):
    """train-v1.1.json (2 articles of part A) and dev-v1.1.json (another article)."""
    path = shared_path("squad", "dev-v1.1-part-a.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    examples = squad.read_squad(str(path))
    out = tmp_path_factory.mktemp("squad")
    for name, articles, limit in (("train-v1.1.json", [0, 1], 80), ("dev-v1.1.json", [2], 30)):
        (out / name).write_text(json.dumps(squad_subset(examples, document, articles, limit)),
                                encoding="utf-8")
    return str(out)


@pytest.fixture(scope="module")
def bert_model_dir(tmp_path_factory):
    shared_path("vocab", "bert-base-uncased-vocab.txt")
    return make_discriminator_dir(tmp_path_factory.mktemp("pretrained"), str(BERT_VOCAB),
                                  max_position_embeddings=SEQ)


def squad_config(model_dir, **overrides):
    values = dict(task="squad", init=model_dir, max_seq_length=SEQ, max_query_length=16,
                  doc_stride=24, batch_size=32, epochs=1, learning_rate=1e-3)
    values.update(overrides)
    return FinetuneConfig(**values)


@pytest.fixture(scope="module")
def squad_run(tmp_path_factory, squad_dir, bert_model_dir):
    out = str(tmp_path_factory.mktemp("squad_run") / "out")
    return out, finetune.run_finetuning(squad_config(bert_model_dir), squad_dir, out)


def test_squad_run_predicts_every_dev_question_and_scores_it_officially(squad_dir, squad_run):
    out, summary = squad_run

    dev = squad.read_squad(os.path.join(squad_dir, "dev-v1.1.json"))
    predictions = json.loads(open(os.path.join(out, "predictions.json")).read())
    assert sorted(predictions) == sorted(e.id for e in dev)
    contexts = {e.id: e.context for e in dev}
    assert all(text in contexts[qid] for qid, text in predictions.items())
    nbest = json.loads(open(os.path.join(out, "nbest_predictions.json")).read())
    assert sorted(nbest) == sorted(predictions)
    for qid, entries in nbest.items():
        assert entries[0]["text"] == predictions[qid]
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0, abs=1e-5)
        start, end = entries[0]["start_char"], entries[0]["end_char"]
        assert contexts[qid][start:end] == entries[0]["text"]

    # eval_results.json: the official scores of predictions.json against the dev file.
    results = json.loads(open(os.path.join(out, "eval_results.json")).read())
    official = metrics.squad_scores({e.id: [a.text for a in e.answers] for e in dev},
                                    predictions)
    assert results["exact_match"] == pytest.approx(official["exact_match"])
    assert results["f1"] == pytest.approx(official["f1"])
    assert results["median"]["dev"] == {"exact_match": results["exact_match"],
                                        "f1": results["f1"]}
    assert summary["runs"][0]["dev"]["num_examples"] == len(dev)
    assert summary["runs"][0]["train"]["examples"] > 80  # windows, not questions

    # The saved model is a QA model that predicts the same answers after loading.
    model, cfg, vocab_path, _ = artifacts.load_finetuned(out)
    assert isinstance(model, ElectraForQuestionAnswering)
    assert cfg.max_seq_length == SEQ and cfg.task == "squad" and cfg.epochs == 1
    task = tasks.make_task(cfg, squad_dir)
    split = task.encode(task.read(cfg, squad_dir),
                        WordPieceTokenizer(vocab_path, lowercase=cfg.lowercase), cfg).evals["dev"]
    assert task.predict(model, split, cfg).answers == predictions


V2_DOCUMENT = {"version": "v2.0", "data": [{"title": "Mixed", "paragraphs": [
    {"context": "Marie Curie was born in Warsaw in 1867. She won two Nobel Prizes.", "qas": [
        {"id": "born", "question": "Where was Marie Curie born?",
         "answers": [{"text": "Warsaw", "answer_start": 24}], "is_impossible": False},
        {"id": "died", "question": "Where did Marie Curie die?", "answers": [],
         "plausible_answers": [{"text": "Warsaw", "answer_start": 24}],
         "is_impossible": True}]},
    {"context": "The Eiffel Tower, in Paris, opened in 1889 and is 330 metres tall.", "qas": [
        {"id": "opened", "question": "When did the Eiffel Tower open?",
         "answers": [{"text": "1889", "answer_start": 38}], "is_impossible": False},
        {"id": "architect", "question": "Who designed the tower?", "answers": [],
         "plausible_answers": [{"text": "The Eiffel Tower", "answer_start": 0}],
         "is_impossible": True}]},
]}]}


def test_squad_v2_run_reports_has_and_no_answer_groups(tmp_path, bert_model_dir):
    data_dir = tmp_path / "v2"
    data_dir.mkdir()
    for name in ("train-v2.0.json", "dev-v2.0.json"):
        (data_dir / name).write_text(json.dumps(V2_DOCUMENT), encoding="utf-8")
    out = str(tmp_path / "out")
    finetune.run_finetuning(squad_config(bert_model_dir, task="squad_v2", epochs=2),
                            str(data_dir), out)
    results = json.loads(open(os.path.join(out, "eval_results.json")).read())
    predictions = json.loads(open(os.path.join(out, "predictions.json")).read())
    null_odds = json.loads(open(os.path.join(out, squad_predictions.NULL_ODDS_JSON)).read())
    assert sorted(predictions) == ["architect", "born", "died", "opened"]
    gold = {"born": ["Warsaw"], "died": [], "opened": ["1889"], "architect": []}
    official = metrics.squad_scores(gold, predictions, version_2=True)
    for key in ("exact_match", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert results[key] == pytest.approx(official[key]), key
    # "" exactly where the null score beats the best span by more than the threshold 0.
    for qid, diff in null_odds.items():
        assert (predictions[qid] == "") == (diff > 0.0), qid


# === Tagging ===


@pytest.fixture(scope="module")
def conll_dir(tmp_path_factory):
    """State of the Union sentences tagged LOC/DATE/PER by a gazetteer, CoNLL layout."""
    sentences = tagged_sentences(360)
    out = tmp_path_factory.mktemp("conll")
    write_conll(out / "train.txt", sentences[:300])
    write_conll(out / "dev.txt", sentences[300:340])
    write_conll(out / "test.txt", sentences[340:], docstart=False)
    return str(out)


def read_predictions(path):
    """conlleval's `word gold predicted` file -> (gold, predicted) tag lists."""
    gold, predicted, g, p = [], [], [], []
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line:
            _, a, b = line.split(" ")
            g.append(a)
            p.append(b)
        elif g:
            gold.append(g)
            predicted.append(p)
            g, p = [], []
    return gold, predicted


@pytest.fixture(scope="module")
def tagging_run(tmp_path_factory, conll_dir, bert_model_dir):
    out = str(tmp_path_factory.mktemp("tagging_run") / "out")
    cfg = FinetuneConfig(task="ner", init=bert_model_dir, max_seq_length=SEQ, batch_size=16,
                         epochs=4, learning_rate=1e-2, layer_decay=1.0, dropout_rate=0.0)
    return out, finetune.run_finetuning(cfg, conll_dir, out)


def test_tagging_run_learns_the_gazetteer_and_scores_it_as_conlleval(conll_dir, tagging_run):
    out, summary = tagging_run

    results = json.loads(open(os.path.join(out, "eval_results.json")).read())
    gold, predicted = read_predictions(os.path.join(out, "dev_predictions.txt"))
    dev = tagging.read_conll(os.path.join(conll_dir, "dev.txt"))
    assert gold == [list(s.tags) for s in dev]  # every dev word, in order
    recomputed = metrics.entity_scores(gold, predicted)
    for key in ("precision", "recall", "f1", "accuracy"):
        assert results[key] == pytest.approx(recomputed[key]), key
    assert os.path.exists(os.path.join(out, "test_predictions.txt"))
    # A rule on token identity: a 2-layer, 16-wide encoder learns most of it in 4 epochs.
    assert results["f1"] > 0.6, summary["runs"][0]["epochs"]
    losses = summary["runs"][0]["train"]["loss_per_epoch"]
    assert losses[-1] < losses[0] / 2

    model, saved, _, label_names = artifacts.load_finetuned(out)
    assert isinstance(model, ElectraForTokenClassification)
    assert label_names == tagging.label_list(tagging.read_conll(os.path.join(conll_dir,
                                                                             "train.txt")))
    assert model.label_names == label_names == saved.label_names
    task = tasks.make_task(saved, conll_dir)
    split = task.encode(task.read(saved, conll_dir), WordPieceTokenizer(
        str(BERT_VOCAB), lowercase=saved.lowercase), saved).evals["dev"]
    assert task.predict_tags(model, split) == predicted


def test_tagging_jsonl_data_dir_trains_like_conll(tmp_path, bert_model_dir):
    sentences = tagged_sentences(40)
    for split, part in (("train", sentences[:30]), ("dev", sentences[30:])):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for words, tags in part:
                f.write(json.dumps({"tokens": words, "tags": tags}) + "\n")
    cfg = FinetuneConfig(task="tagging", init=bert_model_dir, max_seq_length=SEQ, epochs=1)
    summary = finetune.run_finetuning(cfg, str(tmp_path), str(tmp_path / "out"))
    assert summary["runs"][0]["dev"]["num_examples"] == 10
    assert summary["runs"][0]["train"]["examples"] == 30


def test_tool_refuses_missing_files_and_unknown_dev_tags_in_one_line(tmp_path, bert_model_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def run(task, data_dir):
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "tools" / "finetune.py"), f"--task={task}",
             f"--data_dir={data_dir}", f"--init={bert_model_dir}",
             f"--output_dir={tmp_path / ('out_' + task)}"],
            capture_output=True, text=True, env=env, timeout=300)

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("squad", empty)
    assert result.returncode != 0
    assert "lacks train-v1.1.json, dev-v1.1.json for task squad" in result.stderr
    assert "Traceback" not in result.stderr

    bad = tmp_path / "bad"
    bad.mkdir()
    write_conll(bad / "train.txt", [(["Paris", "is", "big"], ["B-LOC", "O", "O"])])
    write_conll(bad / "dev.txt", [(["Bob", "is", "here"], ["B-PER", "O", "O"])])
    result = run("ner", bad)
    assert result.returncode != 0
    assert f"{bad / 'dev.txt'}:3: tag 'B-PER' is not in the training file's labels" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_token_loss_is_each_sentence_mean_over_labelled_tokens():
    from electra_tf.models.token_classification import TokenLoss

    logits = np.log(np.array([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]],
                              [[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]]], np.float32))
    labels = np.array([[0, -1, 1], [1, -1, -1]])
    per_sentence = TokenLoss(reduction=None)(labels, logits).numpy()
    np.testing.assert_allclose(per_sentence, [-(np.log(0.5) + np.log(0.8)) / 2, -np.log(0.75)],
                               rtol=1e-6)
    # A sentence without labels adds 0, not NaN.
    assert TokenLoss(reduction=None)(np.full((1, 3), -1), logits[:1]).numpy()[0] == 0.0


# === Exports, loaded in a process without electra_tf ===


def test_qa_export_answers_as_predictions_json(tmp_path, squad_dir, squad_run):
    out, _ = squad_run
    path = exporter.export_model(out, str(tmp_path / "exports"), "qa", max_windows=16)
    info = exporter.load_export_info(path)
    assert info["model"] == "question_answering" and info["version_2"] is False
    dev = squad.read_squad(os.path.join(squad_dir, "dev-v1.1.json"))
    predictions = json.loads(open(os.path.join(out, "predictions.json")).read())
    questions, contexts = [e.question for e in dev], [e.context for e in dev]
    ids = {k: np.zeros((1, 8), np.int32) for k in ("token_ids", "segment_ids")}
    ids["padding_mask"] = np.ones((1, 8), np.int32)
    outputs = bare_process_outputs(path, str(tmp_path),
                                   {"question": questions, "context": contexts}, ids)
    assert not outputs["serving_default/truncated"].any()
    answers = [a.decode() for a in outputs["serving_default/answer"]]
    assert answers == [predictions[e.id] for e in dev]
    for e, a, start, end in zip(dev, answers, outputs["serving_default/start_char"],
                                outputs["serving_default/end_char"]):
        assert e.context[start:end] == a
    assert outputs["predict_ids/start_logits"].shape == (1, 8)

    # A context longer than the windows searched: answered from its start, flagged.
    short = exporter.export_model(out, str(tmp_path / "exports"), "qa_short", max_windows=1)
    flagged = bare_process_outputs(short, str(tmp_path), {
        "question": questions[:1], "context": [contexts[0] * 3]}, ids)
    assert flagged["serving_default/truncated"].tolist() == [True]


def test_tagging_export_tags_raw_text_as_dev_predictions(tmp_path, conll_dir, tagging_run):
    out, _ = tagging_run
    path = exporter.export_model(out, str(tmp_path / "exports"), "tagger")
    assert exporter.load_export_info(path)["model"] == "tagging"
    gold, predicted = read_predictions(os.path.join(out, "dev_predictions.txt"))
    dev = tagging.read_conll(os.path.join(conll_dir, "dev.txt"))
    texts = [" ".join(s.words) for s in dev]
    ids = {k: np.zeros((1, 8), np.int32) for k in ("token_ids", "segment_ids")}
    ids["padding_mask"] = np.ones((1, 8), np.int32)
    outputs = bare_process_outputs(path, str(tmp_path), {"text": texts}, ids)
    compared = 0
    for i, sentence in enumerate(dev):
        n = outputs["serving_default/num_words"][i]
        words = [w.decode() for w in outputs["serving_default/words"][i][:n]]
        if words != list(sentence.words):  # "Mr." is one word in the file, two here
            continue
        compared += 1
        tags = [t.decode() for t in outputs["serving_default/tags"][i][:n]]
        assert tags == predicted[i], sentence.words
        starts = outputs["serving_default/word_starts"][i][:n]
        ends = outputs["serving_default/word_ends"][i][:n]
        assert [texts[i][a:b] for a, b in zip(starts, ends)] == words
        spans = sorted((t, int(starts[a]), int(ends[b])) for t, a, b in metrics.entity_spans(tags))
        k = outputs["serving_default/num_entities"][i]
        got = sorted(zip([t.decode() for t in outputs["serving_default/entity_types"][i][:k]],
                         outputs["serving_default/entity_starts"][i][:k].tolist(),
                         outputs["serving_default/entity_ends"][i][:k].tolist()))
        assert got == spans
        for text, (_, a, b) in zip(outputs["serving_default/entity_texts"][i][:k], got):
            assert text.decode() == texts[i][a:b]
    assert compared >= 30, compared


def test_classifier_and_explain_refuse_a_qa_model_dir_in_one_line(squad_run):
    from electra_tf.interpret.explainer import Explainer
    from electra_tf.models.classifier import ElectraClassifier

    out, _ = squad_run
    with pytest.raises(ValueError, match="holds a fine-tuned ElectraForQuestionAnswering"):
        ElectraClassifier.from_model_dir(out)
    with pytest.raises(ValueError, match="attribute a sequence classifier's decision"):
        Explainer.from_finetuned(out)
