import collections
import gzip
import random
import time

import pytest
import tensorflow as tf

from helpers import shared_path
from electra_tf.text import vocab as vocab_lib
from electra_tf.text.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer, load_vocab

SYLLABLES = ["ka", "to", "ri", "mu", "sen", "la", "po", "di", "ne", "gor", "bel", "xu"]


def generated_documents(seed=0, num_docs=40, words=300):
    """Documents of sentences over a Zipf-distributed made-up lexicon.

    Capitalised sentence starts, punctuation and a few accented words, so the
    learner sees cased, accented and multi-piece words.
    """
    rng = random.Random(seed)
    lexicon = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(words)})
    lexicon += ["café", "naïve", "zürich"]
    weights = [1 / (rank + 1) for rank in range(len(lexicon))]
    docs = []
    for _ in range(num_docs):
        lines = []
        for _ in range(rng.randint(5, 15)):
            sentence = rng.choices(lexicon, weights, k=rng.randint(4, 12))
            sentence[0] = sentence[0].capitalize()
            lines.append(" ".join(sentence) + rng.choice([".", "!", "?", ", so."]))
        docs.append(lines)
    return docs


def write_corpus(path, docs, compress=False):
    text = "\n\n".join("\n".join(lines) for lines in docs) + "\n"
    data = text.encode("utf-8")
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def corpus(tmp_path):
    """Two files, one plain and one gzipped, of generated documents."""
    docs = generated_documents()
    plain = write_corpus(tmp_path / "a.txt", docs[:20])
    gz = write_corpus(tmp_path / "b.txt.gz", docs[20:], compress=True)
    return [plain, gz], docs


def unk_rate(vocab_path, lines, lowercase=True):
    tok = WordPieceTokenizer(vocab_path, lowercase=lowercase)
    ids = tok.tokenize(tf.constant(lines)).flat_values
    return float(tf.reduce_mean(tf.cast(ids == tok.unk_id, tf.float32))), int(tf.size(ids))


def test_learned_vocab_layout_and_low_unk(corpus, tmp_path):
    files, docs = corpus
    tokens = vocab_lib.learn_wordpiece_vocab(files, vocab_size=150)

    assert tuple(tokens[:5]) == SPECIAL_TOKENS
    assert len(tokens) <= 150
    assert len(tokens) >= 150 * 0.9, "the learner should use most of the room it has"
    assert len(set(tokens)) == len(tokens)
    # Uncased: no capitals, no accents survive normalization.
    assert not any(c.isupper() for t in tokens for c in t if t not in SPECIAL_TOKENS)
    assert "é" not in "".join(tokens) and "e" in tokens and "##e" in tokens
    # Whole frequent words were learned, not only characters.
    assert sum(len(t.lstrip("#")) >= 3 for t in tokens) >= 20

    path = str(tmp_path / "vocab.txt")
    vocab_lib.write_vocab(tokens, path)
    assert load_vocab(path) == tokens
    rate, n = unk_rate(path, [line for doc in docs for line in doc])
    assert n > 1000 and rate == 0.0, f"[UNK] rate {rate:.2%} on the training text"


def test_cased_vocab_keeps_case_and_accents(corpus, tmp_path):
    files, docs = corpus
    tokens = vocab_lib.learn_wordpiece_vocab(files, vocab_size=200, lowercase=False)
    assert any(t[0].isupper() for t in tokens[5:])
    assert "é" in tokens and "##é" in tokens
    path = str(tmp_path / "cased.txt")
    vocab_lib.write_vocab(tokens, path)
    rate, _ = unk_rate(path, [line for doc in docs for line in doc], lowercase=False)
    assert rate == 0.0


def test_count_words_uses_the_tokenizers_normalization(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(
        "Café, CAFÉ café\n"
        "\n"
        "some\u200bthing non\u00a0breaking a\x12b 北京\n".encode("utf-8")
    )
    counts = vocab_lib.count_words([str(path)])
    assert counts == collections.Counter(
        {"cafe": 3, ",": 1, "something": 1, "non": 1, "breaking": 1, "ab": 1, "北": 1, "京": 1}
    )
    cased = vocab_lib.count_words([str(path)], lowercase=False)
    assert cased["Café"] == 1 and cased["CAFÉ"] == 1 and cased["café"] == 1


def test_plain_and_gzip_read_alike(tmp_path):
    docs = generated_documents(seed=1, num_docs=5)
    plain = write_corpus(tmp_path / "c.txt", docs)
    gz = write_corpus(tmp_path / "c.txt.gz", docs, compress=True)
    assert vocab_lib.count_words(plain) == vocab_lib.count_words(gz)
    once = vocab_lib.count_words(plain)
    assert vocab_lib.count_words(f"{plain},{gz}") == once + once


def test_invalid_utf8_is_dropped_not_fatal(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9 ok\n\xff\xfe ok\nok\n")
    counts = vocab_lib.count_words(str(path))
    assert counts == collections.Counter({"caf": 1, "ok": 3})
    tokens = vocab_lib.learn_wordpiece_vocab(str(path), vocab_size=30)
    assert "\ufffd" not in "".join(tokens)


def test_overlong_line_is_named_by_file_and_line(tmp_path):
    # Two files, so the line number must follow its own file through interleaving.
    (tmp_path / "a.txt").write_text("ok ok\n" * 3000)
    (tmp_path / "b.txt").write_text("ok\n" * 2500 + "x" * 600 + "\nok\n")
    with pytest.raises(ValueError, match=r"b.txt:2501: a line of 600 bytes"):
        vocab_lib.count_words(str(tmp_path / "*.txt"), max_line_bytes=500)
    assert vocab_lib.count_words(str(tmp_path / "*.txt"), max_line_bytes=600)["ok"] == 8501


def test_binary_input_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("ok\n")
    (tmp_path / "model.bin").write_bytes(b"\x00\x01" * 100)
    with pytest.raises(ValueError, match=r"model.bin is not text: byte 0 is NUL"):
        vocab_lib.learn_wordpiece_vocab(str(tmp_path / "*"), vocab_size=30)


def test_missing_globs_are_all_named(corpus, tmp_path):
    files, _ = corpus
    missing_a = str(tmp_path / "nope*.txt")
    missing_b = str(tmp_path / "absent" / "*.gz")
    with pytest.raises(FileNotFoundError) as err:
        vocab_lib.learn_wordpiece_vocab([files[0], missing_a, missing_b], vocab_size=100)
    assert missing_a in str(err.value) and missing_b in str(err.value)
    assert files[0] not in str(err.value)


def test_blank_input_and_tiny_vocab_size_are_errors(corpus, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    with pytest.raises(ValueError, match="no words"):
        vocab_lib.learn_wordpiece_vocab(str(blank), vocab_size=100)
    with pytest.raises(ValueError, match="leaves no room"):
        vocab_lib.learn_wordpiece_vocab(corpus[0], vocab_size=5)
    # 20-odd distinct characters need 40-odd tokens with their ## forms.
    with pytest.raises(ValueError, match="characters"):
        vocab_lib.learn_wordpiece_vocab(corpus[0], vocab_size=20)


def test_fit_drops_rarest_pieces_but_never_characters():
    vocab = list(SPECIAL_TOKENS) + ["a", "b", "##a", "##b", "ab", "ba", "##ab", "aab"]
    fitted = vocab_lib._fit(vocab, vocab_size=11, num_reserved=5)
    assert fitted == list(SPECIAL_TOKENS) + ["a", "b", "##a", "##b", "ab", "ba"]
    assert vocab_lib._fit(vocab, vocab_size=20, num_reserved=5) == vocab
    with pytest.raises(ValueError, match="2 distinct characters"):
        vocab_lib._fit(vocab, vocab_size=8, num_reserved=5)


def test_reserved_tokens_follow_the_specials(corpus):
    tokens = vocab_lib.learn_wordpiece_vocab(
        corpus[0], vocab_size=120, reserved_tokens=["[unused0]", "[MASK]", "[unused1]"])
    assert tokens[:7] == list(SPECIAL_TOKENS) + ["[unused0]", "[unused1]"]
    assert tokens.count("[MASK]") == 1


def test_write_vocab_rejects_tokens_that_break_the_format(tmp_path):
    with pytest.raises(ValueError, match="'a b'"):
        vocab_lib.write_vocab(["[PAD]", "a b"], str(tmp_path / "v.txt"))
    with pytest.raises(ValueError, match="repeats"):
        vocab_lib.write_vocab(["x", "y", "x"], str(tmp_path / "v.txt"))


def test_hugging_face_agrees_on_a_learned_vocab(corpus, tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="needs Hugging Face tokenizers")
    files, docs = corpus
    path = str(tmp_path / "vocab.txt")
    vocab_lib.write_vocab(vocab_lib.learn_wordpiece_vocab(files, vocab_size=150), path)
    lines = [line for doc in docs for line in doc]
    hf = tokenizers.BertWordPieceTokenizer(path, lowercase=True)
    theirs = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    ours = WordPieceTokenizer(path).tokenize(tf.constant(lines)).to_list()
    assert ours == theirs


def test_shared_corpus_vocab(tmp_path):
    text = shared_path("corpus", "tinyshakespeare", "input.txt")
    start = time.time()
    tokens = vocab_lib.learn_wordpiece_vocab(str(text), vocab_size=2000)
    seconds = time.time() - start
    assert 1900 <= len(tokens) <= 2000
    path = str(tmp_path / "vocab.txt")
    vocab_lib.write_vocab(tokens, path)
    lines = text.read_text(encoding="utf-8").splitlines()
    rate, n = unk_rate(path, lines)
    assert n > 250_000 and rate < 0.01, f"[UNK] rate {rate:.3%} over {n} tokens"
    assert seconds < 60, f"learning 2k tokens from 1 MB took {seconds:.0f}s"


@pytest.mark.slow
def test_8k_vocab_from_5mb(tmp_path):
    # Measured ~8 s on 2 cores (tf-text's own bisecting `learn` takes ~60 s).
    files = str(shared_path("corpus", "nltk_gutenberg")) + "/*.txt"
    start = time.time()
    tokens = vocab_lib.learn_wordpiece_vocab(files, vocab_size=8000)
    seconds = time.time() - start
    assert 7600 <= len(tokens) <= 8000
    path = str(tmp_path / "vocab.txt")
    vocab_lib.write_vocab(tokens, path)
    lines = [line.decode("utf-8", "replace") for f in tf.io.gfile.glob(files)
             for line in open(f, "rb").read().splitlines()]
    rate, _ = unk_rate(path, lines)
    assert rate < 0.001
    assert seconds < 120, f"took {seconds:.0f}s"
