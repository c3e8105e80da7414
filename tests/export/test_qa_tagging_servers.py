"""The QA and tagging serving graphs on the inputs that break naive code: empty texts,
an empty batch, accents and CJK (offsets in code points of the original text), zero-
width characters. In-process (the SavedModels themselves are loaded in a bare process
by tests/training/test_finetune_qa_tagging.py)."""

import keras
import pytest
import tensorflow as tf
from helpers import BERT_VOCAB, shared_path, tiny_encoder_config

from electra_tf.export.question_answering import QuestionAnsweringServer
from electra_tf.export.tagging import TaggingServer
from electra_tf.models.question_answering import ElectraForQuestionAnswering
from electra_tf.models.token_classification import ElectraForTokenClassification
from electra_tf.text.tokenizer import WordPieceTokenizer

QUESTIONS = ["", "who?", "où est-il ?", "什么", "where?"]
CONTEXTS = ["", "", "Le café est à Paris, près de la Seine.", "北京是中国的首都。",
            "zero\u200bwidth and  \t spaces"]


@pytest.fixture(scope="module")
def tokenizer():
    shared_path("vocab", "bert-base-uncased-vocab.txt")
    return WordPieceTokenizer(str(BERT_VOCAB))


@pytest.mark.parametrize("version_2", [False, True])
def test_qa_answers_are_exact_context_text_and_empty_inputs_answer_nothing(tokenizer, version_2):
    keras.utils.set_random_seed(1)
    model = ElectraForQuestionAnswering(tiny_encoder_config(tokenizer.vocab_size, 64))
    model.build_for_length(64)
    answer = tf.function(QuestionAnsweringServer(model, tokenizer, 64, 16, 24,
                                                 version_2=version_2).answer)
    result = {k: v.numpy() for k, v in answer(tf.constant(QUESTIONS), tf.constant(CONTEXTS)).items()}
    answers = [a.decode() for a in result["answer"]]
    answered = result.get("has_answer", [True] * len(CONTEXTS))
    for context, text, start, end, has in zip(CONTEXTS, answers, result["start_char"],
                                              result["end_char"], answered):
        if context and has:
            assert text and context[start:end] == text
        else:  # nothing to answer from, or v2.0's null score won
            assert (text, start, end) == ("", -1, -1)
    assert not result["truncated"].any()
    assert ("has_answer" in result) == version_2

    empty = answer(tf.constant([], tf.string), tf.constant([], tf.string))
    assert all(v.shape[0] == 0 for v in empty.values())


def test_tagger_words_and_offsets_follow_the_original_text(tokenizer):
    model = ElectraForTokenClassification(tiny_encoder_config(tokenizer.vocab_size, 64),
                                          ("O", "B-LOC", "I-LOC")).build_for_length(64)
    tag = tf.function(TaggingServer(model, tokenizer, 64).tag)
    texts = ["", "Le café, à Paris!", "北京是中国的首都。", "zero\u200bwidth  \t spaces"]
    result = {k: v.numpy() for k, v in tag(tf.constant(texts)).items()}
    expected = [[], ["Le", "café", ",", "à", "Paris", "!"],
                list("北京是中国的首都。"), ["zero\u200bwidth", "spaces"]]
    for i, (text, words) in enumerate(zip(texts, expected)):
        n = result["num_words"][i]
        assert [w.decode() for w in result["words"][i][:n]] == words
        assert [text[a:b] for a, b in zip(result["word_starts"][i][:n],
                                          result["word_ends"][i][:n])] == words
        assert all(t.decode() in ("O", "B-LOC", "I-LOC") for t in result["tags"][i][:n])
        k = result["num_entities"][i]
        for text_k, a, b in zip(result["entity_texts"][i][:k], result["entity_starts"][i][:k],
                                result["entity_ends"][i][:k]):
            assert text[a:b] == text_k.decode()
    assert tag(tf.constant([], tf.string))["words"].shape == (0, 0)


def test_tagger_marks_words_past_max_seq_length_untagged_and_truncated(tokenizer):
    model = ElectraForTokenClassification(tiny_encoder_config(tokenizer.vocab_size, 64),
                                          ("O", "B-LOC")).build_for_length(16)
    result = tf.function(TaggingServer(model, tokenizer, 8).tag)(
        tf.constant(["one two three four five six seven eight nine", "one two"]))
    assert result["truncated"].numpy().tolist() == [True, False]
    assert result["num_words"].numpy().tolist() == [9, 2]
    # [CLS] + 6 words + [SEP] fill 8 positions: the last 3 words are "O", untagged.
    assert [t.decode() for t in result["tags"].numpy()[0][6:]] == ["O", "O", "O"]
