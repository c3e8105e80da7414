"""BERT/ELECTRA WordPiece tokenization, in the TensorFlow graph.

`normalize` does BERT's clean-up (and, for uncased vocabularies, NFD, accent
stripping and lower-casing) with core TensorFlow string ops and tensorflow-text's
`normalize_utf8`; tensorflow-text's `FastWordpieceTokenizer` in end-to-end mode then
splits on whitespace and punctuation, makes CJK characters words and applies
WordPiece. All of these ops exist in the tensorflow-text that TensorFlow Serving
embeds, so the same object tokenizes inside tf.data, inside training and inside
exported SavedModels.

Given the same vocabulary it produces the ids of Hugging Face's `BertTokenizerFast`
(`do_lower_case` matching `lowercase`), which is what Google's and Hugging Face's
ELECTRA checkpoints were trained with. Known differences: characters newer than
the Unicode tables of tensorflow-text's ICU/RE2, and words of multi-byte characters
that exceed `max_bytes_per_word` in bytes but not in characters (Hugging Face counts
characters; both make longer words [UNK]).
"""

import hashlib

import tensorflow as tf
import tensorflow_text as tf_text

PAD = "[PAD]"
UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
MASK = "[MASK]"
# BERT's order: a learned vocabulary starts with these, so [PAD] gets id 0.
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)


# Characters BERT's reference tokenizers delete before anything else: control
# characters other than tab/newline/CR, format characters (zero-width spaces, soft
# hyphens, byte-order marks), private-use characters and U+FFFD. Left in, they split
# words or turn them into [UNK].
_DELETED_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\p{Cf}\p{Co}\x{FFFD}"


def normalize(strings, lowercase=True):
    """BERT's text normalization, in-graph (tokenizer and vocabulary learner share it).

    Args:
      strings: string tensor of any shape, UTF-8 (invalid bytes are dropped, as BERT
        drops the U+FFFD a decoder puts there).
      lowercase: also lower-case, NFD-decompose and strip combining marks.

    Returns:
      A string tensor of the same shape.
    """
    if not lowercase:
        strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="ignore")
        return tf.strings.regex_replace(strings, f"[{_DELETED_CHARS}]", "")
    # tf_text.FastBertNormalizer would do all this in one op, but it NFKC-case-folds,
    # turning "…" into "...", "²" into "2" and "ß" into "ss"; BERT does not. The
    # order differs from BERT's (strip accents, then lower-case) to save passes;
    # the code point tests show the result is the same.
    # Deleting first also removes NUL, where ICU's lower-casing would stop.
    strings = tf.strings.regex_replace(strings, f"[{_DELETED_CHARS}]", "")
    # ICU lower-cases a word-final Σ to ς; BERT maps every Σ to σ.
    strings = tf.strings.regex_replace(strings, "Σ", "σ")
    # Also turns invalid UTF-8 into U+FFFD, deleted below.
    strings = tf.strings.lower(strings, encoding="utf-8")
    strings = tf_text.normalize_utf8(strings, "NFD")
    return tf.strings.regex_replace(strings, r"[\p{Mn}\x{FFFD}]", "")


def load_vocab(vocab_path):
    """Reads a one-token-per-line vocabulary file (local path or any tf.io.gfile URL).

    Returns:
      A list of tokens; a token's id is its line number.
    """
    if not tf.io.gfile.exists(vocab_path):
        raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
    with tf.io.gfile.GFile(vocab_path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"vocabulary {vocab_path} is not valid UTF-8: {e}") from e
    # Keep every line, even blank ones: ids are line numbers.
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t.rstrip("\r") for t in tokens]
    if not tokens:
        raise ValueError(f"vocabulary {vocab_path} is empty")
    return tokens


def vocab_sha256(vocab_path):
    """sha256 of the vocabulary's content, as recorded in data manifests."""
    h = hashlib.sha256()
    for token in load_vocab(vocab_path):
        h.update(token.encode("utf-8") + b"\n")
    return h.hexdigest()


class WordPieceTokenizer(tf.Module):
    """In-graph BERT WordPiece tokenizer.

    Args:
      vocab_path: one token per line; must contain [PAD] [UNK] [CLS] [SEP] [MASK],
        and no token twice.
      lowercase: lower-case and strip accents first (uncased models). False for
        cased vocabularies.
      max_bytes_per_word: longer words become [UNK], as in BERT.

    Attributes:
      vocab: the list of tokens.
      vocab_size: number of tokens.
      pad_id, unk_id, cls_id, sep_id, mask_id: special token ids.
      special_ids: the ids of all five special tokens.

    Raises:
      FileNotFoundError: no such vocabulary. ValueError: it is empty, not UTF-8,
        repeats a token or lacks a special token (the message names them).
    """

    def __init__(self, vocab_path, lowercase=True, max_bytes_per_word=100, name=None):
        super().__init__(name=name)
        self.vocab_path = vocab_path
        self.lowercase = lowercase
        self.max_bytes_per_word = max_bytes_per_word

        self.vocab = load_vocab(vocab_path)
        index, repeats = {}, []
        for i, token in enumerate(self.vocab):
            if token in index:
                repeats.append(f"{token!r} on line {i + 1} repeats line {index[token] + 1}")
            index.setdefault(token, i)
        if repeats:
            # FastWordpieceTokenizer refuses them with a bare RuntimeError, and a token
            # with two ids has no answer (Hugging Face takes the last, a dict the first).
            shown = "; ".join(repeats[:3]) + (
                f" and {len(repeats) - 3} more" if len(repeats) > 3 else "")
            raise ValueError(f"vocabulary {vocab_path} has {len(repeats)} repeated "
                             f"token(s): {shown}; every token must be unique")
        missing = [t for t in SPECIAL_TOKENS if t not in index]
        if missing:
            raise ValueError(
                f"vocabulary {vocab_path} lacks the special token(s) {', '.join(missing)}; "
                f"every ELECTRA vocabulary needs {', '.join(SPECIAL_TOKENS)}"
            )
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            index[t] for t in SPECIAL_TOKENS
        )
        self.special_ids = (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)

        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocab,
            suffix_indicator="##",
            max_bytes_per_word=max_bytes_per_word,
            token_out_type=tf.int64,
            unknown_token=UNK,
            no_pretokenization=False,
            support_detokenization=True,
        )
        self._vocab_tensor = tf.constant(self.vocab)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def get_config(self):
        return {
            "vocab_path": self.vocab_path,
            "lowercase": self.lowercase,
            "max_bytes_per_word": self.max_bytes_per_word,
        }

    def tokenize(self, strings):
        """Text to WordPiece ids, without special tokens.

        Args:
          strings: string tensor `[batch]` (or a scalar).

        Returns:
          int64 `tf.RaggedTensor` `[batch, None]` (or an int64 tensor `[None]` for a
          scalar input).
        """
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        return self._wordpiece.tokenize(normalize(strings, self.lowercase))

    def __call__(self, strings):
        """`tokenize`: a tokenizer is called on text, as keras-hub's are."""
        return self.tokenize(strings)

    def detokenize(self, token_ids):
        """Ids `[batch, None]` (ragged or dense) to strings `[batch]`, joining WordPieces."""
        return self._wordpiece.detokenize(token_ids)

    def id_to_token(self, token_ids):
        """Ids of any shape (ragged or dense) to their token strings, same shape."""
        if isinstance(token_ids, tf.RaggedTensor):
            return token_ids.with_flat_values(self.id_to_token(token_ids.flat_values))
        return tf.gather(self._vocab_tensor, token_ids)

    def token_to_id(self, token):
        """A token string to its id (Python), or a KeyError naming it."""
        try:
            return self.vocab.index(token)
        except ValueError:
            raise KeyError(f"token {token!r} is not in the vocabulary {self.vocab_path}") from None

    def tokenize_with_offsets(self, strings):
        """`tokenize`, plus each WordPiece's character span in the *original* text.

        Normalization deletes characters (control/format characters, accents) and
        changes others (lower-casing, "ﬁ" stays one character but "İ" becomes two
        before its dot is stripped), so tensorflow-text's byte offsets into the
        normalized text do not index the original. Every character is therefore
        normalized on its own (each step of `normalize` maps one code point to zero
        or more, independently of its neighbours: deletion, per-character
        lower-casing with Σ always σ, NFD, dropping combining marks); the
        normalized text is their concatenation, and a normalized byte offset maps
        back to the original character that produced it. Runs in the graph.

        Args:
          strings: string tensor `[batch]`, UTF-8.

        Returns:
          (token_ids, starts, ends): int64 `tf.RaggedTensor`s `[batch, None]`;
          `strings[i][starts[i, j]:ends[i, j]]` (Python code-point indexing) is the
          original text of WordPiece j, e.g. "Café" for "cafe" and "é" for "##e"
          in "café" split as "caf ##e". The ids are those of `tokenize`.
        """
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        # errors="replace" turns invalid bytes into U+FFFD, which normalize deletes.
        chars = tf.strings.unicode_split(strings, "UTF-8", errors="replace")
        normalized_chars = normalize(chars.flat_values, self.lowercase)
        normalized = tf.strings.reduce_join(chars.with_flat_values(normalized_chars), axis=-1)
        token_ids, byte_starts, byte_ends = self._wordpiece.tokenize_with_offsets(normalized)
        # ends_of_char[i, k]: byte offset in normalized[i] just past original char k's
        # output. A byte b comes from char k with ends_of_char[k-1] <= b < ends_of_char[k],
        # i.e. k = the number of chars whose output ends at or before b; chars that
        # normalize to nothing are passed over.
        char_bytes = chars.with_flat_values(
            tf.strings.length(normalized_chars, unit="BYTE"))
        ends_of_char = tf.math.cumsum(char_bytes, axis=-1)
        # Padded with a value above every offset so that searchsorted ignores it.
        padded_ends = ends_of_char.to_tensor(default_value=tf.int32.max)

        def to_chars(byte_offsets):
            dense = tf.cast(byte_offsets.to_tensor(default_value=0), tf.int32)
            chars_index = tf.searchsorted(padded_ends, dense, side="right")
            return tf.RaggedTensor.from_tensor(
                tf.cast(chars_index, tf.int64), lengths=byte_offsets.row_lengths())

        starts = to_chars(byte_starts)
        # The last byte of a piece (end - 1) lies in the char that ends it.
        ends = to_chars(byte_ends - 1) + 1
        return token_ids, starts, ends
