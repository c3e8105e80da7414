"""Which tokens the discriminator thinks were replaced: ELECTRA's free interpretability.

Scores come from a Keras discriminator (`replaced_token_scores`) or from an exported
SavedModel's `replaced_token_scores` signature (`saved_model_token_scores`, which needs
only TensorFlow and tensorflow-text); `to_html` renders them as a page.
"""

import dataclasses
import html

import tensorflow as tf

from electra_tf import schema
from electra_tf.export import names, versioning
from electra_tf.models import artifacts
from electra_tf.text.packing import pack_single
from electra_tf.text.tokenizer import WordPieceTokenizer


@dataclasses.dataclass(frozen=True)
class TokenScore:
    token: str
    score: float  # probability that the token was replaced


def token_scores_from_rows(tokens, scores, num_tokens):
    """Per-text TokenScore lists from packed outputs.

    Args:
      tokens: `[batch, seq]` token strings (bytes or str) of `[CLS] ... [SEP] [PAD]...`.
      scores: `[batch, seq]` replaced probabilities.
      num_tokens: `[batch]` WordPieces kept per text.

    Returns:
      One list per text of its WordPieces' scores ([CLS]/[SEP]/padding left out).
    """

    def text(token):
        return token.decode("utf-8") if isinstance(token, bytes) else str(token)

    return [
        [TokenScore(text(tokens[i][j]), float(scores[i][j])) for j in range(1, 1 + int(n))]
        for i, n in enumerate(num_tokens)
    ]


def replaced_token_scores(discriminator, tokenizer, texts, max_seq_length=128):
    """Per-token replaced probabilities for each text.

    Args:
      discriminator: an `ElectraDiscriminator` (logits `[batch, seq_len]`).
      tokenizer: the `WordPieceTokenizer` it was trained with.
      texts: list of strings.
      max_seq_length: longer texts are truncated.

    Returns:
      One list of `TokenScore` per text, for its WordPieces ([CLS]/[SEP] left out).
    """
    inputs = pack_single(
        tokenizer.tokenize(tf.constant(list(texts), dtype=tf.string)), max_seq_length,
        tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
    )
    num_tokens = inputs.pop("num_tokens").numpy()
    probs = tf.sigmoid(discriminator(inputs, training=False)).numpy()
    tokens = tokenizer.id_to_token(inputs[schema.TOKEN_IDS]).numpy()
    return token_scores_from_rows(tokens, probs, num_tokens)


def saved_model_token_scores(saved_model, texts):
    """Per-token replaced probabilities from an export's `replaced_token_scores` signature.

    Args:
      saved_model: a loaded SavedModel (`tf.saved_model.load`) of a discriminator export.
      texts: list of strings.
    """
    name = names.REPLACED_TOKEN_SCORES
    if name not in saved_model.signatures:
        raise ValueError(
            f"the SavedModel has no {name} signature (it has "
            f"{', '.join(sorted(saved_model.signatures))}); export a discriminator")
    outputs = saved_model.signatures[name](**{names.TEXT: tf.constant(list(texts), tf.string)})
    return token_scores_from_rows(*(
        outputs[key].numpy() for key in (names.TOKENS, names.SCORES, names.NUM_TOKENS)))


def model_dir_token_scores(model_dir, texts):
    """`replaced_token_scores` with the discriminator of a pretraining model_dir.

    Args:
      model_dir: a pretraining model_dir (its discriminator/ is used) or a
        discriminator artifact directory.
    """
    artifact = artifacts.load(model_dir, artifacts.DISCRIMINATOR)
    tokenizer = WordPieceTokenizer(artifact.vocab_path, lowercase=artifact.lowercase)
    return replaced_token_scores(artifact.model, tokenizer, texts, artifact.max_seq_length)


def export_token_scores(path, texts):
    """`saved_model_token_scores` of an export: a version directory, or the directory
    above the versions (the latest is used)."""
    return saved_model_token_scores(
        tf.saved_model.load(versioning.latest_version_dir(path)), texts)


def format_scores(scores, threshold=0.5, color=False):
    """One line per token: score, token, and a marker (bold red with `color`) when the
    score is above `threshold`."""
    lines = []
    for s in scores:
        flagged = s.score > threshold
        text = f"{s.score:6.3f}  {s.token}" + ("   <- replaced?" if flagged else "")
        if color and flagged:
            text = f"\033[1;31m{text}\033[0m"
        lines.append(text)
    return "\n".join(lines)


def group_wordpieces(pieces):
    """Groups WordPieces into words: a "##" piece continues the word before it.

    Args:
      pieces: objects with a `token` attribute (e.g. `TokenScore`), in text order.

    Returns:
      A list of words, each a list of its pieces.
    """
    words = []
    for piece in pieces:
        if piece.token.startswith("##") and words:
            words[-1].append(piece)
        else:
            words.append([piece])
    return words


def to_html(texts, scores_per_text, threshold=0.5, title="ELECTRA replaced-token scores"):
    """A self-contained HTML page highlighting each WordPiece by its replaced probability.

    The background's opacity is the probability; tokens above `threshold` are also bold
    and underlined; hovering shows the number.
    """
    rows = []
    for text, scores in zip(texts, scores_per_text):
        spans = []
        for pieces in group_wordpieces(scores):
            parts = []
            for k, p in enumerate(pieces):
                label = p.token.removeprefix("##") if k else p.token
                flagged = " flagged" if p.score > threshold else ""
                parts.append(
                    f'<span class="tok{flagged}" style="background: rgba(220, 38, 38, '
                    f'{p.score:.3f})" title="{p.score:.3f}">{html.escape(label)}</span>')
            spans.append("".join(parts))
        rows.append(f'<div class="text"><p class="source">{html.escape(text)}</p>'
                    f'<p class="tokens">{" ".join(spans)}</p></div>')
    return html_page(
        title,
        ".tokens{line-height:2}.tok{padding:0.1em 0.05em;border-radius:0.2em}"
        ".flagged{font-weight:bold;text-decoration:underline}",
        f"<p>Background opacity = probability that the discriminator thinks the token was "
        f"replaced; bold and underlined above {threshold:g}.</p>" + "\n".join(rows),
    )


def html_page(title, css, body):
    """A self-contained page: the shared style (plus `css`), `title` as heading, `body`.

    Args:
      title: plain text (escaped here).
      css: extra style rules.
      body: HTML, already escaped.
    """
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        f".source{{color:#555;font-size:90%}}{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
