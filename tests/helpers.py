"""Paths to ../shared/data and tiny word lists shared by the tests.

A plain module (not conftest.py) so tests can import it by one unambiguous
name: several conftest.py files exist, and `from conftest import` would get
whichever sys.path lists first.
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(
    os.environ.get("ELECTRA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
BERT_VOCAB = SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt"
# Corpora usable for development and tests. wikitext-2-raw and nltk_reuters are
# reserved for independent evaluation and must never be read here.
DEV_CORPORA = (
    "nltk_gutenberg",
    "nltk_state_union",
    "nltk_inaugural",
    "nltk_webtext",
    "tinyshakespeare",
    "nltk_movie_reviews",
)

TINY_WORDS = (
    "the a an of to and in is was it he she they we you i that this with for on "
    "at by from as be have has had not but or are were been will would can could "
    "cat dog sat mat run ran fast slow big small red blue green house tree car "
    "hello world , . ! ? ' -"
).split()


def shared_path(*parts):
    """A path under ../shared/data, or a pytest skip naming what is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set ELECTRA_SHARED_DATA)")
    return path


def dev_corpus_files():
    """Every text file of the development corpora (README files excluded)."""
    root = shared_path("corpus")
    files = []
    for name in DEV_CORPORA:
        files += sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.name != "README"
        )
    return files
