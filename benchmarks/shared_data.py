"""Where the benchmarks find ../shared/data, and which corpora they may read.

wikitext-2-raw and nltk_reuters (and GLUE CoLA/RTE, SQuAD) are reserved for
independent evaluation: no benchmark reads them.
"""

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(
    os.environ.get("ELECTRA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEV_CORPORA = ("nltk_gutenberg", "nltk_state_union", "nltk_inaugural", "nltk_webtext",
               "tinyshakespeare", "nltk_movie_reviews")


def dev_corpus_files(corpus_dir):
    """Every file of the development corpora under `corpus_dir` (README files excluded).

    Raises:
      FileNotFoundError naming a development corpus missing from `corpus_dir`.
    """
    files = []
    for name in DEV_CORPORA:
        root = pathlib.Path(corpus_dir) / name
        if not root.is_dir():
            raise FileNotFoundError(
                f"corpus {root} not found (set ELECTRA_SHARED_DATA or --corpus_dir)")
        files += sorted(str(p) for p in root.rglob("*") if p.is_file() and p.name != "README")
    return files
