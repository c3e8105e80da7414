"""Writes a few MB of real English from the local Python installation, for the demo.

A fresh machine has no corpus and may have no internet, but every Python ships its
standard library, whose docstrings (and the language reference kept in
`pydoc_data/topics.py`) are plain technical English. The installed packages of the
running interpreter (TensorFlow, Keras, NumPy, ...) add more of the same when the
standard library alone is smaller than `--max_bytes`.

Output format, as `build_vocab.py` and `build_pretraining_data.py` read it: one
paragraph per line (the wrapped lines of a docstring paragraph joined), documents
separated by a blank line. Sources are parsed with `ast`, never imported (importing
every module runs their side effects), and walked in sorted order, so the same
installation always gives the same bytes.

    python tools/make_demo_corpus.py --output=demo_out/corpus.txt [--max_bytes=5000000]
"""

import ast
import inspect
import os
import re
import sysconfig

from absl import app
from absl import flags
from absl import logging

import tool_errors  # tools/, the script's directory

_OUTPUT = flags.DEFINE_string("output", None, "Text file to write.")
_HELDOUT_OUTPUT = flags.DEFINE_string(
    "heldout_output", None, "Also write every --heldout_every-th document here instead "
    "of --output: held-out text for the context probe (tools/pretrain.py --probe_text).")
_HELDOUT_EVERY = flags.DEFINE_integer("heldout_every", 20, "See --heldout_output.")
_MAX_BYTES = flags.DEFINE_integer(
    "max_bytes", 5_000_000, "Stop before the output would exceed this many bytes."
)
_MIN_WORDS = flags.DEFINE_integer(
    "min_words", 10, "Documents with fewer words (after cleaning) are skipped."
)
_SITE_PACKAGES = flags.DEFINE_bool(
    "include_site_packages",
    True,
    "After the standard library, continue with the docstrings of the installed packages.",
)
_SOURCE_DIRS = flags.DEFINE_list(
    "source_dir",
    [],
    "Walk these directories instead of the standard library and site-packages.",
)

# Test suites hold fixtures and generated text rather than prose.
_SKIPPED_DIRS = frozenset(
    {"test", "tests", "testing", "idle_test", "__pycache__", "site-packages", "dist-packages"}
)
_DOCUMENTED_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
# Section underlines of the reST-like language reference ("*****", "=====").
_RULE_LINE = re.compile(r"^[\W_]+$")
# Markdown code samples (Keras, TensorFlow) are fenced rather than indented.
_FENCED_CODE = re.compile(r"^\s*```.*?^\s*```[^\n]*$", re.MULTILINE | re.DOTALL)


def is_prose(text):
    """True for a line of English: mostly letters, ASCII letters, a few words."""
    if len(text.split()) < 3:
        return False
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 0.6 * len(text.replace(" ", "")):
        return False
    # Non-English (or symbol-table) text shows up as non-ASCII letters.
    non_ascii = sum(1 for c in letters if not c.isascii())
    return non_ascii <= 0.02 * len(letters)


def paragraphs(docstring):
    """Splits a docstring into prose paragraphs, each joined into one line.

    Indented blocks (code samples, literal blocks), fenced code, doctests, reST
    directives and section underlines are dropped: they are not sentences.

    Returns:
      A list of single-line strings.
    """
    result = []
    for block in re.split(r"\n\s*\n", _FENCED_CODE.sub("", inspect.cleandoc(docstring))):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or lines[0][:1].isspace():
            continue
        if any(line.lstrip().startswith((">>>", "...", ".. ")) for line in lines):
            continue
        words = " ".join(line.strip() for line in lines if not _RULE_LINE.match(line.strip()))
        words = " ".join(words.split())
        if is_prose(words):
            result.append(words)
    return result


def _walk_python_files(root):
    """Yields the .py files under `root` in sorted order, skipping test packages."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIPPED_DIRS and not d.endswith(".dist-info")
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_"):
                yield os.path.join(dirpath, name)


def _docstrings_in_source(source):
    """Docstrings of the module, its classes and functions, in source order."""
    def visit(node):
        if isinstance(node, _DOCUMENTED_NODES):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(source))


def _topics_in_source(source):
    """The language-reference entries of `pydoc_data/topics.py` (a `topics` dict)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "topics" for t in node.targets
        ):
            topics = ast.literal_eval(node.value)
            for key in sorted(topics):
                yield topics[key]


def default_source_dirs(include_site_packages=True):
    """The standard library, then (optionally) the interpreter's site-packages."""
    paths = sysconfig.get_paths()
    dirs = [paths["stdlib"]]
    if include_site_packages and paths["purelib"] not in dirs:
        dirs.append(paths["purelib"])
    return dirs


def iter_documents(source_dirs, stats, min_words=10):
    """Yields documents (lists of paragraph lines) from the Python sources in `source_dirs`.

    Files that cannot be read or parsed, short, non-English and duplicate documents
    are skipped and counted in `stats` (a dict of counters updated in place).
    """
    seen = set()
    for root in source_dirs:
        for path in _walk_python_files(root):
            try:
                with open(path, encoding="utf-8") as f:
                    source = f.read()
                is_topics = path.endswith(os.path.join("pydoc_data", "topics.py"))
                texts = list((_topics_in_source if is_topics else _docstrings_in_source)(source))
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as e:
                logging.info("skipping %s: %s", path, e)
                stats["files_unparsable"] += 1
                continue
            stats["files_read"] += 1
            for text in texts:
                doc = paragraphs(text)
                if sum(len(p.split()) for p in doc) < min_words:
                    stats["documents_too_short"] += 1
                    continue
                key = "\n".join(doc)
                if key in seen:
                    stats["documents_duplicate"] += 1
                    continue
                seen.add(key)
                yield doc


def write_corpus(output, source_dirs, max_bytes=5_000_000, min_words=10, heldout_output=None,
                 heldout_every=20):
    """Writes documents until the next one would pass `max_bytes`.

    With `heldout_output`, every `heldout_every`-th document goes there instead (text
    never trained on, for the context probe of tools/pretrain.py --probe_text); it
    does not count towards `max_bytes`.

    Returns:
      A dict of counters: documents, bytes, heldout_documents, heldout_bytes,
      files_read, files_unparsable, documents_too_short, documents_duplicate.
    """
    stats = dict.fromkeys(
        ("documents", "bytes", "heldout_documents", "heldout_bytes", "files_read",
         "files_unparsable", "documents_too_short", "documents_duplicate"),
        0,
    )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    heldout = open(heldout_output, "w", encoding="utf-8", newline="\n") if heldout_output \
        else None
    try:
        with open(output, "w", encoding="utf-8", newline="\n") as f:
            for index, doc in enumerate(iter_documents(source_dirs, stats, min_words=min_words)):
                chunk = "\n".join(doc) + "\n"
                if heldout and index % heldout_every == heldout_every - 1:
                    heldout.write(("\n" if stats["heldout_documents"] else "") + chunk)
                    stats["heldout_documents"] += 1
                    stats["heldout_bytes"] += len(chunk.encode("utf-8"))
                    continue
                if stats["documents"]:
                    chunk = "\n" + chunk
                size = len(chunk.encode("utf-8"))
                if stats["bytes"] + size > max_bytes:
                    break
                f.write(chunk)
                stats["documents"] += 1
                stats["bytes"] += size
    finally:
        if heldout:
            heldout.close()
    return stats


@tool_errors.exit_on_user_error
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    source_dirs = _SOURCE_DIRS.value or default_source_dirs(_SITE_PACKAGES.value)
    stats = write_corpus(
        _OUTPUT.value, source_dirs, max_bytes=_MAX_BYTES.value, min_words=_MIN_WORDS.value,
        heldout_output=_HELDOUT_OUTPUT.value, heldout_every=_HELDOUT_EVERY.value,
    )
    logging.info("wrote %s from %s: %s", _OUTPUT.value, ", ".join(source_dirs), stats)
    if not stats["documents"]:
        raise ValueError(f"no documents found under {', '.join(source_dirs)}")


if __name__ == "__main__":
    flags.mark_flag_as_required("output")
    app.run(main)
