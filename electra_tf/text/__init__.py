"""WordPiece tokenization (in-graph, tensorflow-text), vocabularies and the text
preprocessor (text -> the encoder's inputs)."""

from electra_tf.text.tokenizer import WordPieceTokenizer
from electra_tf.text.tokenizer import load_vocab
from electra_tf.text.preprocessor import Preprocessor
