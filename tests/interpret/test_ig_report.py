"""Views of explanations: the HTML page (parsed; rendered in chromium when installed),
the terminal view and JSON lines."""

import html.parser
import json
import shutil
import subprocess

import pytest

from electra_tf.interpret import report
from electra_tf.interpret.explainer import Explanation, WordAttribution


def explanation(text, label, p, values, text_pair=None, pair_values=()):
    words = tuple(WordAttribution(w, a, 0, (w,)) for w, a in values)
    words += tuple(WordAttribution(w, a, 1, (w,)) for w, a in pair_values)
    other = "negative" if label == "positive" else "positive"
    return Explanation(
        text=text, text_pair=text_pair, tokens=(), token_attributions=(), words=words,
        target=label, label=label, probabilities={other: 1 - p, label: p}, score=None,
        output=p, baseline_output=0.5, completeness_error=0.01, truncated=False)


EXPLANATIONS = [
    explanation("a dull film", "negative", 0.7, [("a", 0.01), ("dull", 0.15), ("film", -0.02)]),
    explanation("<b>great</b> fun", "positive", 0.95,
                [("<", 0.0), ("b", 0.01), (">", 0.0), ("great", 0.4), ("fun", -0.1)]),
    explanation("it is", "positive", 0.6, [("it", 0.05)], text_pair="so", pair_values=[("so", 0.05)]),
]


class Spans(html.parser.HTMLParser):
    """Collects (data-attribution, title, text, style) of every word span, per text div."""

    def __init__(self):
        super().__init__()
        self.texts, self.open_span, self.tables = [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "text":
            self.texts.append([])
        if tag == "span" and attrs.get("class") == "word":
            self.open_span = [attrs["data-attribution"], attrs["title"], "", attrs["style"]]
        if tag == "table":
            self.tables += 1

    def handle_data(self, data):
        if self.open_span is not None:
            self.open_span[2] += data

    def handle_endtag(self, tag):
        if tag == "span" and self.open_span is not None:
            self.texts[-1].append(tuple(self.open_span))
            self.open_span = None


def test_html_has_every_word_with_its_value_sorted_by_confidence():
    page = report.to_html(EXPLANATIONS)
    parser = Spans()
    parser.feed(page)
    # Most confident first: 0.95, 0.7, 0.6.
    expected = [EXPLANATIONS[1], EXPLANATIONS[0], EXPLANATIONS[2]]
    assert len(parser.texts) == 3 and parser.tables == 3
    for spans, e in zip(parser.texts, expected):
        assert [(float(v), float(t), text) for v, t, text, _ in spans] == [
            (pytest.approx(w.attribution), pytest.approx(w.attribution, abs=1e-4), w.word)
            for w in e.words]
    # Colour by sign, opacity relative to the strongest word.
    assert parser.texts[0][3][3] == "background: rgba(22, 163, 74, 1.000)"
    assert parser.texts[0][4][3] == "background: rgba(220, 38, 38, 0.250)"
    assert page.startswith("<!DOCTYPE html>") and "<b>great" not in page
    assert "&lt;b&gt;great&lt;/b&gt; fun" in page and 'class="scale"' in page
    assert "<script" not in page and "http" not in page  # self-contained


def test_terminal_view_plain_and_coloured():
    plain = report.format_explanation(EXPLANATIONS[2])
    assert plain.splitlines() == [
        "it is", "[text_pair] so",
        "label positive (p=0.600; negative 0.400, positive 0.600); attributions to positive: "
        "0.6000 at the text, 0.5000 at the baseline (completeness error 1.0%)",
        "  +0.0500  it", "[text_pair]", "  +0.0500  so"]
    coloured = report.format_explanation(EXPLANATIONS[0], color=True).splitlines()
    assert "\033[" not in plain
    # Strongest word: the strongest green; a weak negative one: the weakest red.
    assert "\033[48;5;40;38;5;16mdull\033[0m" in coloured[2]
    assert coloured[-1] == "  -0.0200  \033[48;5;224;38;5;16mfilm\033[0m"


def test_jsonl_is_one_object_per_explanation():
    lines = report.to_jsonl(EXPLANATIONS).splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["label"] == "negative" and first["words"][1] == {
        "word": "dull", "attribution": 0.15, "segment": 0}


@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium or chromium-browser on PATH: the page is checked "
                    "structurally only (test_html_has_every_word_with_its_value...)")
    page = tmp_path / "report.html"
    page.write_text(report.to_html(EXPLANATIONS), encoding="utf-8")
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1000,800", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 5000  # a rendered page, not a blank image
