"""SQuAD reader and features: counts and alignment on part A of the dev set, the
malformed-entry errors, windows and strides at their edges, v2.0 fixtures."""

import collections
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import schema
from electra_tf.data import squad
from electra_tf.text.tokenizer import WordPieceTokenizer
from helpers import shared_path

PART_A = ("squad", "dev-v1.1-part-a.json")


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(str(shared_path("vocab", "bert-base-uncased-vocab.txt")))


@pytest.fixture(scope="module")
def part_a():
    return squad.read_squad(str(shared_path(*PART_A)))


def write_json(tmp_path, document, name="squad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def squad_document(qas, context="The cat sat on the mat in Paris.", version="v2.0"):
    return {"version": version, "data": [
        {"title": "Cats", "paragraphs": [{"context": context, "qas": qas}]}]}


# A hand-written v2.0 file: answerable and unanswerable questions on two paragraphs.
V2_CONTEXT_1 = "Marie Curie was born in Warsaw in 1867. She won two Nobel Prizes."
V2_CONTEXT_2 = "The Eiffel Tower, in Paris, opened in 1889 and is 330 metres tall."
V2_FIXTURE = {"version": "v2.0", "data": [{"title": "Mixed", "paragraphs": [
    {"context": V2_CONTEXT_1, "qas": [
        {"id": "born", "question": "Where was Marie Curie born?",
         "answers": [{"text": "Warsaw", "answer_start": 24}], "is_impossible": False},
        {"id": "died", "question": "Where did Marie Curie die?", "answers": [],
         "plausible_answers": [{"text": "Warsaw", "answer_start": 24}],
         "is_impossible": True},
    ]},
    {"context": V2_CONTEXT_2, "qas": [
        {"id": "opened", "question": "When did the Eiffel Tower open?",
         "answers": [{"text": "1889", "answer_start": 38}], "is_impossible": False},
        {"id": "architect", "question": "Who designed the tower?", "answers": [],
         "plausible_answers": [{"text": "The Eiffel Tower", "answer_start": 0}],
         "is_impossible": True},
    ]},
]}]}


# === Reader ===

def test_part_a_counts(part_a):
    assert len(part_a) == 7235
    assert len({e.article_index for e in part_a}) == 32
    assert len({e.context for e in part_a}) == 1379
    assert len({e.id for e in part_a}) == 7235
    assert not any(e.is_impossible for e in part_a)
    first = part_a[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.title == "Super_Bowl_50"
    assert first.answers[0] == squad.SquadAnswer(text="Denver Broncos", start=177)
    assert first.context[177:191] == "Denver Broncos"
    # Dev questions have several gold answers each.
    assert sum(len(e.answers) for e in part_a) > 2 * len(part_a)


def test_v2_fixture_reads(tmp_path):
    examples = squad.read_squad(write_json(tmp_path, V2_FIXTURE))
    assert [e.id for e in examples] == ["born", "died", "opened", "architect"]
    assert [e.is_impossible for e in examples] == [False, True, False, True]
    died = examples[1]
    assert died.answers == ()
    assert died.plausible_answers == (squad.SquadAnswer("Warsaw", 24),)
    assert V2_CONTEXT_2[38:42] == "1889"


@pytest.mark.parametrize("qa, message", [
    ({"question": "q?", "answers": []}, "needs a string 'id'"),
    ({"id": "x", "answers": [{"text": "cat", "answer_start": 4}]}, "question x: needs a non-empty string 'question'"),
    ({"id": "x", "question": "q?", "answers": [{"text": "cat", "answer_start": 40}]},
     "question x: answers\\[0\\] \\[40, 43\\) lies outside the context"),
    ({"id": "x", "question": "q?", "answers": [{"text": "cat", "answer_start": "4"}]},
     "question x: answers\\[0\\] needs an integer 'answer_start'"),
    ({"id": "x", "question": "q?", "answers": [{"text": "", "answer_start": 4}]},
     "question x: answers\\[0\\] needs a non-empty string 'text'"),
    ({"id": "x", "question": "q?", "answers": []}, "question x: has no answers and is not"),
    ({"id": "x", "question": "q?", "is_impossible": True,
      "answers": [{"text": "cat", "answer_start": 4}]}, "question x: is impossible but has"),
    ({"id": "x", "question": "q?", "is_impossible": "no", "answers": []},
     "question x: 'is_impossible' must be true or false"),
])
def test_malformed_entries_name_file_and_question(tmp_path, qa, message):
    path = write_json(tmp_path, squad_document([qa]))
    with pytest.raises(squad.SquadFormatError, match=f"{path}: .*{message}"):
        squad.read_squad(path)


def test_malformed_files(tmp_path):
    with pytest.raises(squad.SquadFormatError, match="not found"):
        squad.read_squad(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(squad.SquadFormatError, match="not UTF-8 JSON"):
        squad.read_squad(str(bad))
    with pytest.raises(squad.SquadFormatError, match="'data' list"):
        squad.read_squad(write_json(tmp_path, {"version": "1.1"}))
    repeated = [{"id": "x", "question": "q?", "answers": [{"text": "cat", "answer_start": 4}]}] * 2
    with pytest.raises(squad.SquadFormatError, match="question x: the id appears twice"):
        squad.read_squad(write_json(tmp_path, squad_document(repeated)))


def test_split_by_article(part_a):
    train, held_out = squad.split_by_article(part_a, eval_fraction=0.25)
    assert len(train) + len(held_out) == len(part_a)
    train_articles = {e.article_index for e in train}
    held_out_articles = {e.article_index for e in held_out}
    assert not train_articles & held_out_articles
    assert len(held_out_articles) == 8


# === Alignment on part A ===

def every_answer(examples):
    """One example per gold answer, so that each answer becomes the label once."""
    return [dataclasses.replace(e, id=f"{e.id}/{k}", answers=(a,))
            for e in examples for k, a in enumerate(e.answers)]


@pytest.mark.parametrize("max_seq_length, doc_stride", [(384, 128), (96, 24)])
def test_part_a_answers_recovered_through_windows(part_a, tokenizer, max_seq_length,
                                                  doc_stride):
    """Every answer's text is the context slice of its label's tokens, in every window
    that holds it, except the few counted as unalignable."""
    examples = every_answer(part_a)
    features = squad.convert_to_features(
        examples, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride,
        training=True, drop_windows_without_answer=True)
    skipped = sum(features.skipped.values())
    # Annotations that cut a WordPiece ("gold" in "golden", "10." in "2010."): 0.3%.
    assert set(features.skipped) == {squad.PARTIAL_WORDPIECE}
    assert skipped == 58, features.skipped
    assert skipped / len(examples) < 0.005

    answered = collections.Counter()
    for window in range(len(features)):
        example = examples[features.example_index[window]]
        start, end = features.start_positions[window], features.end_positions[window]
        assert 0 < start <= end, example.id
        text = squad.window_answer_text(features, window, start, end)
        assert text == example.answers[0].text.strip(), example.id
        assert features.segment_ids[window, start] == 1
        answered[example.id] += 1
    # Every aligned answer is labelled in at least one window; the skipped ones in none.
    assert set(answered) == {e.id for e in examples} - set(features.skipped_ids)
    if max_seq_length == 96:
        assert features.dropped_windows > 0 and max(answered.values()) > 1


def test_evaluation_features_keep_every_window(part_a, tokenizer):
    examples = part_a[:300]
    features = squad.convert_to_features(examples, tokenizer, max_seq_length=128,
                                         doc_stride=64)
    assert sorted(set(features.example_index)) == list(range(300))
    assert features.skipped == collections.Counter()
    # The windows of an example, in order, cover each context token once as max context.
    for index in range(300):
        windows = np.flatnonzero(features.example_index == index)
        starts = np.concatenate([features.char_starts[w][features.max_context[w]]
                                 for w in windows])
        context_starts = np.unique(np.concatenate(
            [features.char_starts[w][features.char_starts[w] >= 0] for w in windows]))
        np.testing.assert_array_equal(starts, context_starts)
    # Unalignable answers keep their windows, without a label.
    unlabelled = features.start_positions < 0
    assert 0 < unlabelled.sum() < 0.05 * len(features)
    with pytest.raises(ValueError, match="have no label"):
        features.to_dataset(8)


# === Windows ===

@pytest.mark.parametrize("num_tokens, length, stride, expected", [
    (0, 5, 2, [(0, 0)]),
    (5, 5, 2, [(0, 5)]),
    (6, 5, 2, [(0, 5), (2, 4)]),
    (10, 4, 4, [(0, 4), (4, 4), (8, 2)]),
    (10, 3, 5, [(0, 3), (3, 3), (6, 3), (9, 1)]),  # stride > window: no token skipped
    (7, 4, 1, [(0, 4), (1, 4), (2, 4), (3, 4)]),
])
def test_window_spans(num_tokens, length, stride, expected):
    assert squad.window_spans(num_tokens, length, stride) == expected


def test_window_spans_refuse_empty_windows():
    with pytest.raises(ValueError, match="must be >= 1"):
        squad.window_spans(5, 0, 2)


def test_max_context_each_token_once():
    spans = squad.window_spans(23, 8, 3)
    owners = collections.Counter()
    for index, (start, length) in enumerate(spans):
        mask = squad.max_context_mask(spans, index)
        owners.update(np.arange(start, start + length)[mask].tolist())
    assert sorted(owners) == list(range(23)) and set(owners.values()) == {1}
    # The middle of a window wins over its edge in the next one.
    assert squad.max_context_mask(spans, 0)[:4].all()


@pytest.fixture
def word_vocab(tmp_path):
    words = ("the cat sat on mat in paris . where did ? who what a b c d e f g h "
             "i j k l m n o p q r s t u v w x y z").split()
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n",
                    encoding="utf-8")
    return WordPieceTokenizer(str(path))


def make_example(question, context, answer=None, start=None, qid="q"):
    answers = () if answer is None else (squad.SquadAnswer(answer, start),)
    return squad.SquadExample(id=qid, question=question, context=context, answers=answers,
                              is_impossible=answer is None)


def test_layout_of_one_window(word_vocab):
    context = "the cat sat on the mat in paris ."
    example = make_example("where did the cat sit ?", context, "on the mat", 12)
    f = squad.convert_to_features([example], word_vocab, max_seq_length=20,
                                  max_query_length=4, training=True)
    assert len(f) == 1
    tokens = [word_vocab.vocab[i] for i in f.token_ids[0][f.padding_mask[0]]]
    # The question is cut to 4 WordPieces ("sit" is [UNK]).
    assert tokens == ["[CLS]", "where", "did", "the", "cat", "[SEP]", "the", "cat", "sat",
                      "on", "the", "mat", "in", "paris", ".", "[SEP]"]
    np.testing.assert_array_equal(f.segment_ids[0][:16], [0] * 6 + [1] * 10)
    assert not f.padding_mask[0][16:].any() and (f.token_ids[0][16:] == 0).all()
    assert (f.start_positions[0], f.end_positions[0]) == (9, 11)
    assert squad.window_answer_text(f, 0, 9, 11) == "on the mat"
    # Non-context positions carry no offsets.
    assert (f.char_starts[0][:6] == -1).all() and f.char_starts[0][15] == -1
    assert f.char_starts[0][6] == 0 and f.char_ends[0][14] == len(context)
    assert squad.window_answer_text(f, 0, 2, 3) is None


def test_answer_at_the_edges_of_windows(word_vocab):
    # 12 context tokens, windows of 5 every 3 tokens: [0,5) [3,8) [6,11) [9,12).
    context = "a b c d e f g h i j k l"
    question = "what ?"
    common = dict(max_seq_length=5 + 2 + 3, max_query_length=2, doc_stride=3, training=True)
    last = make_example(question, context, "l", 22)
    f = squad.convert_to_features([last], word_vocab, **common)
    assert len(f) == 4
    assert [f.start_positions[w] for w in range(4)] == [0, 0, 0, 4 + 2]
    # "e f" crosses window 0's end: only window 1 holds it (tokens 1, 2 of its context,
    # after [CLS] what ? [SEP]); the others point at [CLS].
    across = make_example(question, context, "e f", 8)
    f = squad.convert_to_features([across], word_vocab, **common)
    np.testing.assert_array_equal(f.start_positions, [0, 1 + 4, 0, 0])
    np.testing.assert_array_equal(f.end_positions, [0, 2 + 4, 0, 0])
    # "d e f g" is longer than the windows' overlap: only window 1 holds it whole.
    wide = make_example(question, context, "d e f g", 6)
    f = squad.convert_to_features([wide], word_vocab, drop_windows_without_answer=True,
                                  **common)
    assert len(f) == 1 and f.dropped_windows == 3
    assert squad.window_answer_text(f, 0, f.start_positions[0], f.end_positions[0]) == "d e f g"


def test_empty_context_gets_one_window(word_vocab):
    f = squad.convert_to_features([make_example("who ?", "   ")], word_vocab,
                                  max_seq_length=8, max_query_length=2)
    assert len(f) == 1 and f.padding_mask[0].sum() == 5  # [CLS] who ? [SEP] [SEP]
    assert (f.char_starts[0] == -1).all()


def test_unalignable_answers_are_counted_not_mislabelled(word_vocab):
    context = "the cat sat on the mat"
    examples = [
        make_example("who ?", context, "cat", 4, "ok"),
        make_example("who ?", context, "ca", 4, "partial"),  # cuts the WordPiece "cat"
        make_example("who ?", context, "dog", 4, "mismatch"),  # text is not at offset
        make_example("who ?", context, " ", 3, "blank"),
        make_example("who ?", context, "cat ", 4, "trailing_space"),  # aligned: "cat"
    ]
    f = squad.convert_to_features(examples, word_vocab, max_seq_length=16, max_query_length=4,
                                  training=True)
    assert f.skipped == collections.Counter({squad.PARTIAL_WORDPIECE: 1,
                                             squad.OFFSET_MISMATCH: 1,
                                             squad.NO_WORDPIECE: 1})
    assert f.skipped_ids == ["partial", "mismatch", "blank"]
    assert [examples[i].id for i in f.example_index] == ["ok", "trailing_space"]
    assert all(squad.window_answer_text(f, w, f.start_positions[w], f.end_positions[w])
               == "cat" for w in range(2))


def test_bad_lengths_refused(word_vocab):
    example = make_example("who ?", "the cat")
    with pytest.raises(ValueError, match="leaves no room for context"):
        squad.convert_to_features([example], word_vocab, max_seq_length=10,
                                  max_query_length=8)
    with pytest.raises(ValueError, match="for training features"):
        squad.convert_to_features([example], word_vocab, drop_windows_without_answer=True)


# === v2.0 ===

def test_v2_fixture_features(tmp_path, tokenizer):
    examples = squad.read_squad(write_json(tmp_path, V2_FIXTURE))
    f = squad.convert_to_features(examples, tokenizer, max_seq_length=20,
                                  max_query_length=12, doc_stride=2, training=True)
    by_id = collections.defaultdict(list)
    for w in range(len(f)):
        by_id[examples[f.example_index[w]].id].append(w)
    # Unanswerable questions: every window points at [CLS].
    for qid in ("died", "architect"):
        assert len(by_id[qid]) > 1
        assert (f.start_positions[by_id[qid]] == 0).all()
        assert (f.end_positions[by_id[qid]] == 0).all()
    # Answerable ones: windows with the answer label it, the others point at [CLS].
    without_answer = 0
    for qid, answer in (("born", "Warsaw"), ("opened", "1889")):
        labelled = [w for w in by_id[qid] if f.start_positions[w] > 0]
        assert labelled
        without_answer += len(by_id[qid]) - len(labelled)
        for w in labelled:
            assert squad.window_answer_text(
                f, w, f.start_positions[w], f.end_positions[w]) == answer
    assert without_answer > 0


def test_to_dataset(tmp_path, tokenizer):
    examples = squad.read_squad(write_json(tmp_path, V2_FIXTURE))
    f = squad.convert_to_features(examples, tokenizer, max_seq_length=32,
                                  max_query_length=12, doc_stride=8, training=True)
    inputs, labels = next(iter(f.to_dataset(3)))
    assert set(inputs) == {schema.TOKEN_IDS, schema.SEGMENT_IDS, schema.PADDING_MASK}
    assert inputs[schema.TOKEN_IDS].shape == (3, 32)
    assert inputs[schema.TOKEN_IDS].dtype == tf.int32
    assert inputs[schema.PADDING_MASK].dtype == tf.bool
    np.testing.assert_array_equal(labels[schema.START_POSITIONS], f.start_positions[:3])
    shuffled = [b[schema.TOKEN_IDS].numpy() for b in f.to_dataset(len(f), False, True, 1)]
    assert sorted(map(bytes, shuffled[0])) == sorted(map(bytes, f.token_ids))
    assert list(f.example_ids[:2]) == [examples[f.example_index[0]].id,
                                       examples[f.example_index[1]].id]
