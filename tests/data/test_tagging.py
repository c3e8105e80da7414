"""CoNLL/JSONL tagging reader, first-piece label alignment, and entity F1 against a
straight re-implementation of seqeval's (conlleval's) chunking."""

import json
import random

import numpy as np
import pytest

from electra_tf import schema
from electra_tf.data import tagging
from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.training import metrics

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_conll(tmp_path):
    sentences = tagging.read_conll(write(tmp_path, "train.txt", CONLL))
    assert [s.words for s in sentences] == [
        ("EU", "rejects", "German", "call", "."), ("Peter", "Blackburn")]
    assert sentences[0].tags == ("B-ORG", "O", "B-MISC", "O", "O")
    assert [s.line for s in sentences] == [3, 9]
    assert tagging.label_list(sentences) == ("O", "B-MISC", "B-ORG", "B-PER", "I-PER")


def test_unknown_dev_tag_refused_with_file_and_line(tmp_path):
    labels = set(tagging.label_list(tagging.read_conll(write(tmp_path, "train.txt", CONLL))))
    dev = write(tmp_path, "dev.txt", "Paris NNP B-LOC\n\nx NN O\n")
    with pytest.raises(tagging.TaggingFormatError, match=f"{dev}:1: tag 'B-LOC' is not in"):
        tagging.read_tagging(dev, labels)
    bad = write(tmp_path, "bad.txt", "a\n")
    with pytest.raises(tagging.TaggingFormatError, match=f"{bad}:1: expected"):
        tagging.read_conll(bad)
    not_bio = write(tmp_path, "nb.txt", "a X-PER\n")
    with pytest.raises(tagging.TaggingFormatError, match="not BIO/IOB2"):
        tagging.read_conll(not_bio)


def test_read_jsonl(tmp_path):
    path = write(tmp_path, "train.jsonl", json.dumps(
        {"tokens": ["Peter", "lives"], "tags": ["B-PER", "O"]}) + "\n\n" + json.dumps(
        {"tokens": ["x"], "tags": ["O"]}) + "\n")
    sentences = tagging.read_tagging(path)
    assert [s.tags for s in sentences] == [("B-PER", "O"), ("O",)]
    assert [s.line for s in sentences] == [1, 3]
    bad = write(tmp_path, "bad.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(tagging.TaggingFormatError, match=f"{bad}:1: needs"):
        tagging.read_tagging(bad)


def test_first_piece_alignment(tmp_path):
    vocab = write(tmp_path, "vocab.txt", "\n".join(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "peter", "black", "##burn", "eu", "."])
        + "\n")
    tokenizer = WordPieceTokenizer(vocab)
    sentences = [tagging.TaggedSentence(("Peter", "Blackburn", "."), ("B-PER", "I-PER", "O")),
                 tagging.TaggedSentence(("EU",) * 5, ("B-ORG",) * 5)]
    labels = ("O", "B-ORG", "B-PER", "I-PER")
    f = tagging.convert_to_features(sentences, tokenizer, labels, max_seq_length=6)
    np.testing.assert_array_equal(f[schema.TOKEN_IDS][0], [2, 5, 6, 7, 9, 3])
    np.testing.assert_array_equal(f["label_ids"][0], [-1, 2, 3, -1, 0, -1])
    np.testing.assert_array_equal(f["word_index"][0], [-1, 0, 1, -1, 2, -1])
    # Cut to 4 words: the fifth has neither label nor prediction.
    np.testing.assert_array_equal(f["word_index"][1], [-1, 0, 1, 2, 3, -1])
    assert f[schema.PADDING_MASK].all()


# === seqeval's chunking (seqeval/metrics/sequence_labeling.py), logic unchanged ===

def seqeval_end_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_end = False
    if prev_tag == "E":
        chunk_end = True
    if prev_tag == "S":
        chunk_end = True
    if prev_tag == "B" and tag == "B":
        chunk_end = True
    if prev_tag == "B" and tag == "S":
        chunk_end = True
    if prev_tag == "B" and tag == "O":
        chunk_end = True
    if prev_tag == "I" and tag == "B":
        chunk_end = True
    if prev_tag == "I" and tag == "S":
        chunk_end = True
    if prev_tag == "I" and tag == "O":
        chunk_end = True
    if prev_tag != "O" and prev_tag != "." and prev_type != type_:
        chunk_end = True
    return chunk_end


def seqeval_start_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_start = False
    if tag == "B":
        chunk_start = True
    if tag == "S":
        chunk_start = True
    if prev_tag == "E" and tag == "E":
        chunk_start = True
    if prev_tag == "E" and tag == "I":
        chunk_start = True
    if prev_tag == "S" and tag == "E":
        chunk_start = True
    if prev_tag == "S" and tag == "I":
        chunk_start = True
    if prev_tag == "O" and tag == "E":
        chunk_start = True
    if prev_tag == "O" and tag == "I":
        chunk_start = True
    if tag != "O" and tag != "." and prev_type != type_:
        chunk_start = True
    return chunk_start


def seqeval_get_entities(seq):
    if any(isinstance(s, list) for s in seq):
        seq = [item for sublist in seq for item in sublist + ["O"]]
    prev_tag, prev_type, begin_offset, chunks = "O", "", 0, []
    for i, chunk in enumerate(seq + ["O"]):
        tag = chunk[0]
        type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if seqeval_end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin_offset, i - 1))
        if seqeval_start_of_chunk(prev_tag, tag, prev_type, type_):
            begin_offset = i
        prev_tag, prev_type = tag, type_
    return chunks


def seqeval_prf(y_true, y_pred):
    true_entities = set(seqeval_get_entities(y_true))
    pred_entities = set(seqeval_get_entities(y_pred))
    nb_correct = len(true_entities & pred_entities)
    p = nb_correct / len(pred_entities) if pred_entities else 0.0
    r = nb_correct / len(true_entities) if true_entities else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def test_entity_spans_hand_cases():
    assert metrics.entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {
        ("PER", 0, 1), ("LOC", 3, 3)}
    # Lenient like conlleval: I- after O or another type starts an entity.
    assert metrics.entity_spans(["O", "I-PER", "I-LOC"]) == {("PER", 1, 1), ("LOC", 2, 2)}
    scores = metrics.entity_scores([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    assert scores == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 2 / 3}


def test_entity_scores_equal_seqeval_on_random_sequences():
    rng = random.Random(3)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    for _ in range(200):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))]
                for _ in range(rng.randint(1, 6))]
        pred = [[t if rng.random() < 0.6 else rng.choice(tags) for t in s] for s in gold]
        ours = metrics.entity_scores(gold, pred)
        p, r, f = seqeval_prf(gold, pred)
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))
