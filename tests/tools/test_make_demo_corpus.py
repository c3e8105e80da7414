"""tools/make_demo_corpus.py, run as the demo runs it (a subprocess)."""

import os
import pathlib
import subprocess
import sys
import textwrap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "make_demo_corpus.py"


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def documents(path):
    text = pathlib.Path(path).read_text(encoding="utf-8")
    return text, text.rstrip("\n").split("\n\n")


def write(path, source):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


def test_fake_tree_keeps_prose_and_drops_the_rest(tmp_path):
    src = tmp_path / "src"
    write(src / "alpha.py", '''
        """The alpha module reads records from a file and
        writes them somewhere else, one record at a time.

            code_sample = "indented blocks are code"

        >>> doctest_line()

        A second paragraph that is long enough to keep.
        ======
        """

        class Reader:
            """Reads one record per call until the file is exhausted, then stops."""

            def short(self):
                """Too short."""

        def dup():
            """Reads one record per call until the file is exhausted, then stops."""
        ''')
    write(src / "beta.py", '''
        def f():
            """Ceci est une phrase écrite en français, avec beaucoup d’accents: éèàçôûîé."""
        ''')
    write(src / "tests" / "gamma.py", '"""A test package docstring that must never be read at all."""\n')
    write(src / "test_delta.py", '"""A test module docstring that must never be read at all."""\n')
    write(src / "broken.py", "def broken(:\n    pass\n")

    out = tmp_path / "out" / "corpus.txt"
    run_tool(f"--output={out}", f"--source_dir={src}", "--min_words=8")

    text, docs = documents(out)
    assert docs == [
        "The alpha module reads records from a file and writes them somewhere else, "
        "one record at a time.\n"
        "A second paragraph that is long enough to keep.",
        "Reads one record per call until the file is exhausted, then stops.",
    ]
    assert text.endswith("stops.\n")


def test_stdlib_corpus_is_large_clean_and_deterministic(tmp_path):
    max_bytes = 400_000
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    run_tool(f"--output={first}", f"--max_bytes={max_bytes}", "--include_site_packages=false")
    run_tool(f"--output={second}", f"--max_bytes={max_bytes}", "--include_site_packages=false")

    assert first.read_bytes() == second.read_bytes()

    text, docs = documents(first)
    size = len(text.encode("utf-8"))
    # Stops before the first document that would not fit, so it ends just under the cap.
    assert max_bytes - 10_000 < size <= max_bytes
    assert len(docs) > 500
    assert len(set(docs)) == len(docs)
    assert "\n\n\n" not in text and not text.startswith("\n")
    for doc in docs:
        assert doc.strip() and len(doc.split()) >= 10
        for line in doc.split("\n"):
            assert line == " ".join(line.split()), repr(line)
            assert not line.startswith((">>>", "```"))
