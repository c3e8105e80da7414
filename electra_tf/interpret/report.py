"""Views of `explainer.Explanation`s: terminal text, a self-contained HTML page, JSON lines.

Colours follow the sign of a word's attribution to the explained output: green words
raise it (they speak for the label), red words lower it; the strength is the
attribution relative to the largest |attribution| among the text's words.
"""

import html
import json

from electra_tf.interpret import replaced_tokens as explain

# Background colours of xterm's 256-colour palette, weakest to strongest.
_ANSI_FOR = (194, 157, 120, 83, 40)
_ANSI_AGAINST = (224, 217, 210, 203, 160)
_RGB_FOR = "22, 163, 74"
_RGB_AGAINST = "220, 38, 38"


def _strengths(words):
    """Each word's |attribution| relative to the text's largest, in [0, 1]."""
    largest = max((abs(w.attribution) for w in words), default=0.0)
    return [abs(w.attribution) / largest if largest > 0 else 0.0 for w in words]


def _ansi(text, attribution, strength):
    """`text` on a background coloured by sign, in 5 steps of strength (none at 0)."""
    level = min(int(strength * len(_ANSI_FOR) + 0.5), len(_ANSI_FOR))
    if level == 0:
        return text
    colour = (_ANSI_FOR if attribution > 0 else _ANSI_AGAINST)[level - 1]
    return f"\033[48;5;{colour};38;5;16m{text}\033[0m"


def answer_line(explanation):
    """The model's answer: label and probabilities (or score), and what is explained."""
    e = explanation
    if e.label is None:
        head = f"score {e.score:.4f}"
    else:
        probs = ", ".join(f"{name} {p:.3f}" for name, p in e.probabilities.items())
        head = f"label {e.label} (p={e.probabilities[e.label]:.3f}; {probs})"
    return (f"{head}; attributions to {e.target}: {e.output:.4f} at the text, "
            f"{e.baseline_output:.4f} at the baseline (completeness error "
            f"{100 * e.completeness_error:.1f}%)")


def format_explanation(explanation, color=False):
    """The terminal view of one explanation.

    Lines: the text (and `text_pair`), the answer (`answer_line`), with `color` the
    words coloured in a line, then one line per word: attribution and word ("##"
    pieces joined), the pair's words after a "[text_pair]" line.
    """
    e = explanation
    lines = [e.text] + ([f"[text_pair] {e.text_pair}"] if e.text_pair is not None else [])
    lines.append(answer_line(e) + ("  [truncated]" if e.truncated else ""))
    strengths = _strengths(e.words)
    if color:
        lines.append(" ".join(_ansi(w.word, w.attribution, s)
                              for w, s in zip(e.words, strengths)))
    segment = 0
    for word, strength in zip(e.words, strengths):
        if word.segment != segment:
            segment = word.segment
            lines.append("[text_pair]")
        text = _ansi(word.word, word.attribution, strength) if color else word.word
        lines.append(f"{word.attribution:+9.4f}  {text}")
    return "\n".join(lines)


def by_confidence(explanations):
    """Most confident first: by the predicted label's probability (regression: score)."""
    return sorted(explanations, key=lambda e: e.confidence, reverse=True)


def _word_spans(words, strengths):
    spans = []
    for word, strength in zip(words, strengths):
        rgb = _RGB_FOR if word.attribution > 0 else _RGB_AGAINST
        spans.append(
            f'<span class="word" data-attribution="{word.attribution:.6g}" '
            f'title="{word.attribution:+.4f}" style="background: rgba({rgb}, '
            f'{strength:.3f})">{html.escape(word.word)}</span>')
    return " ".join(spans)


def _text_html(e):
    strengths = _strengths(e.words)
    segments = [
        _word_spans([w for w in e.words if w.segment == segment],
                    [s for w, s in zip(e.words, strengths) if w.segment == segment])
        for segment in ((0, 1) if e.text_pair is not None else (0,))]
    separator = ' <span class="sep">/</span> '
    if e.label is None:
        answer = f'<p class="answer">score <b>{e.score:.4f}</b></p>'
    else:
        rows = "".join(
            f'<tr class="{"chosen" if name == e.label else ""}"><td>{html.escape(name)}</td>'
            f'<td>{p:.3f}</td></tr>' for name, p in e.probabilities.items())
        answer = (f'<p class="answer">label <b>{html.escape(e.label)}</b> '
                  f'p={e.probabilities[e.label]:.3f}</p>'
                  f'<table class="probabilities">{rows}</table>')
    source = separator.join(
        html.escape(t) for t in (e.text, e.text_pair) if t is not None)
    return (
        f'<div class="text">{answer}'
        f'<p class="words">{separator.join(segments)}</p>'
        f'<p class="source">{source}{" (truncated)" if e.truncated else ""}; attributions '
        f'to {html.escape(e.target)}, completeness error '
        f'{100 * e.completeness_error:.1f}%</p></div>')


def to_html(explanations, title="Why the classifier chose its label"):
    """A self-contained HTML page of explanations, the most confident first.

    Each text shows the label and all probabilities (or the score), its words
    highlighted green (for the explained label) or red (against it) with opacity
    |attribution| / the text's largest, the value on hover (title attribute, also in
    `data-attribution`), and a colour scale.
    """
    scale = (
        '<div class="scale"><span>against the label</span>'
        f'<span class="bar" style="background: linear-gradient(to right, '
        f'rgba({_RGB_AGAINST}, 1), rgba({_RGB_AGAINST}, 0), rgba({_RGB_FOR}, 0), '
        f'rgba({_RGB_FOR}, 1))"></span><span>for the label</span></div>'
        "<p>Integrated gradients: each word's share of the change in the explained "
        "output (the label's probability, or the score) from a baseline without the "
        "words to the text; opacity relative to the text's strongest word, the value on "
        "hover.</p>")
    return explain.html_page(
        title,
        ".text{border-top:1px solid #ddd;padding:0.5em 0}.words{line-height:2}"
        ".word{padding:0.1em 0.15em;border-radius:0.2em}.sep{color:#999}"
        ".probabilities td{padding:0 1em 0 0}.chosen{font-weight:bold}"
        ".scale{display:flex;gap:0.5em;align-items:center;font-size:90%}"
        ".bar{display:inline-block;width:16em;height:1em;border:1px solid #ccc}",
        scale + "\n".join(_text_html(e) for e in by_confidence(explanations)),
    )


def to_jsonl(explanations):
    """One JSON object per explanation (`Explanation.to_json`), one per line."""
    return "".join(json.dumps(e.to_json()) + "\n" for e in explanations)
