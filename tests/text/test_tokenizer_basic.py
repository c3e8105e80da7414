import pytest
import tensorflow as tf

from electra_tf.text.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer


def test_special_ids_and_roundtrip(tiny_vocab):
    tok = WordPieceTokenizer(tiny_vocab)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    ids = tok.tokenize(tf.constant(["The CAT sat!", ""]))
    assert isinstance(ids, tf.RaggedTensor)
    tokens = tok.id_to_token(ids).to_list()
    assert tokens == [[b"the", b"cat", b"sat", b"!"], []]
    assert tok.detokenize(ids).numpy().tolist() == [b"the cat sat !", b""]


def test_missing_special_token_is_named(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer(str(path))


def test_missing_vocab_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        WordPieceTokenizer(str(tmp_path / "nope.txt"))


def test_unknown_word_pieces(tiny_vocab):
    tok = WordPieceTokenizer(tiny_vocab)
    # "cats" = cat + ##s; a symbol absent from the vocab is [UNK].
    ids = tok.tokenize(tf.constant(["cats €"])).to_list()[0]
    assert tok.id_to_token(tf.constant(ids)).numpy().tolist() == [b"cat", b"##s", b"[UNK]"]


def test_usable_in_tf_function(tiny_vocab):
    tok = WordPieceTokenizer(tiny_vocab)
    fn = tf.function(lambda s: tok.tokenize(s).to_tensor())
    assert fn(tf.constant(["a dog"])).numpy().tolist() == [[tok.token_to_id("a"), tok.token_to_id("dog")]]


def test_repeated_token_is_named(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(list(SPECIAL_TOKENS) + ["a", "b", "a"]) + "\n")
    with pytest.raises(ValueError, match=r"1 repeated token.*'a' on line 8 repeats line 6"):
        WordPieceTokenizer(str(path))
