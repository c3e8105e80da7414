"""tools/explain.py on fine-tuned classifiers: terminal view, HTML, JSON lines; user
errors are one `error:` line."""

import json


from electra_tf.interpret.explainer import Explainer
from interpret.interpret_helpers import assert_one_error_line, run_tool

STEPS = 16


def test_explain_tool_terminal_view_and_html(pair_dir, tmp_path):
    out, _, _ = pair_dir
    page = tmp_path / "report.html"
    result = run_tool("explain.py", f"--model_dir={out}", "--pair=a dog ran", "--pair=hello",
                      f"--html={page}", f"--steps={STEPS}", "the cats sat", "Hello world !")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    expected = Explainer.from_finetuned(out, steps=STEPS).explain(
        ["the cats sat", "Hello world !"], ["a dog ran", "hello"])
    # Piped: plain, one line per word with its attribution.
    assert "\033[" not in result.stdout
    assert lines[:2] == ["the cats sat", "[text_pair] a dog ran"]
    assert lines[2].startswith(f"label {expected[0].label} (p=")
    assert [line.split() for line in lines[3:6]] == [
        [f"{w.attribution:+.4f}", w.word] for w in expected[0].words[:3]]
    assert lines[6] == "[text_pair]" and lines[-1] == f"wrote {page}"
    assert page.read_text().count('class="word"') == sum(len(e.words) for e in expected)


def test_explain_tool_jsonl_and_errors(pair_dir, tmp_path):
    out, _, _ = pair_dir
    result = run_tool("explain.py", f"--model_dir={out}", "--jsonl", "--label=neutral",
                      "--pair=x", f"--steps={STEPS}", "the cats sat")
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["target"] == "neutral" and record["text_pair"] == "x"
    assert [w["word"] for w in record["words"]] == ["the", "cats", "sat", "x"]
    assert_one_error_line(run_tool("explain.py", f"--model_dir={out}", "--label=happy",
                                   "--pair=x", "a"), "unknown label 'happy'")
    assert_one_error_line(run_tool("explain.py", f"--model_dir={out}", "a", "b"),
                          "give one --pair per text (0 for 2 texts)")
