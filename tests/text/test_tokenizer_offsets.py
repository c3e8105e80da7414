"""`WordPieceTokenizer.tokenize_with_offsets`: the ids of `tokenize`, and character
spans into the original (un-normalized) text."""

import pytest
import tensorflow as tf

from electra_tf.text.tokenizer import WordPieceTokenizer
from helpers import dev_corpus_files, shared_path


@pytest.fixture(scope="module")
def uncased():
    return WordPieceTokenizer(str(shared_path("vocab", "bert-base-uncased-vocab.txt")))


def pieces(tokenizer, text):
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant([text]))
    tokens = [tokenizer.vocab[i] for i in ids[0].numpy()]
    spans = [text[a:b] for a, b in zip(starts[0].numpy(), ends[0].numpy())]
    return list(zip(tokens, spans))


def test_accents_case_and_deleted_characters(uncased):
    assert pieces(uncased, "Café  İstanbul's\u200b wine") == [
        ("cafe", "Café"), ("istanbul", "İstanbul"), ("'", "'"), ("s", "s"),
        ("wine", "wine")]
    # A zero-width space inside a word is deleted: one word, its span covers it.
    assert pieces(uncased, "ab\u200bout x") == [("about", "ab\u200bout"), ("x", "x")]


def test_cjk_punctuation_and_subwords(uncased):
    got = pieces(uncased, "東京 (1990s)! ΣΑΣ")
    assert got[:2] == [("東", "東"), ("京", "京")]
    assert ("(", "(") in got and (")", ")") in got and ("!", "!") in got
    assert got[-3:] == [("σ", "Σ"), ("##α", "Α"), ("##σ", "Σ")]
    # Subword pieces split a word; their spans tile it.
    text = "unaffable"
    assert "".join(span for _, span in pieces(uncased, text)) == text


def test_empty_and_whitespace_only(uncased):
    assert pieces(uncased, "") == []
    assert pieces(uncased, " \t\n") == []


def test_cased_tokenizer_offsets(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Café", "é", "C", "##a", "##f", "##é"])
        + "\n", encoding="utf-8")
    tokenizer = WordPieceTokenizer(str(vocab), lowercase=False)
    assert pieces(tokenizer, "Café é") == [("Café", "Café"), ("é", "é")]
    # NFD input (e + combining acute) is not recomposed when cased: the word is [UNK],
    # and its span is still the whole original word.
    assert pieces(tokenizer, "Cafe\u0301") == [("[UNK]", "Cafe\u0301")]


def test_same_ids_as_tokenize_on_dev_corpora(uncased):
    """On real text, the per-character normalization gives exactly `tokenize`'s ids,
    and every span's text normalizes to its pieces."""
    lines = []
    for path in dev_corpus_files()[:6]:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [line for line in f.read().splitlines() if line.strip()][:150]
    texts = tf.constant(lines)
    ids, starts, ends = uncased.tokenize_with_offsets(texts)
    assert ids.to_list() == uncased.tokenize(texts).to_list()
    for text, row_starts, row_ends in zip(lines, starts.to_list(), ends.to_list()):
        assert all(0 <= a < b <= len(text) for a, b in zip(row_starts, row_ends))
        # Spans are in order and never overlap.
        assert all(b <= a2 for b, a2 in zip(row_ends, row_starts[1:]))
