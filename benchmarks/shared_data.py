"""Where the benchmarks find ../shared/data, and which corpora they may read.

wikitext-2-raw and nltk_reuters (and GLUE CoLA/RTE, SQuAD beyond part A of its dev
set) are reserved for independent evaluation: no benchmark reads them.
"""

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(
    os.environ.get("ELECTRA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEV_CORPORA = ("nltk_gutenberg", "nltk_state_union", "nltk_inaugural", "nltk_webtext",
               "tinyshakespeare", "nltk_movie_reviews")


# Every HELDOUT_EVERY-th file (sorted) of these corpora is held out of pretraining
# for the context probe: ~30 speeches, ~300 KB of text never trained on.
HELDOUT_CORPORA = ("nltk_state_union", "nltk_inaugural")
HELDOUT_EVERY = 5


def _corpus_files(corpus_dir):
    """{corpus name: its sorted files} (README files excluded)."""
    files = {}
    for name in DEV_CORPORA:
        root = pathlib.Path(corpus_dir) / name
        if not root.is_dir():
            raise FileNotFoundError(
                f"corpus {root} not found (set ELECTRA_SHARED_DATA or --corpus_dir)")
        files[name] = sorted(
            str(p) for p in root.rglob("*") if p.is_file() and p.name != "README")
    return files


def _is_heldout(name, index):
    return name in HELDOUT_CORPORA and index % HELDOUT_EVERY == HELDOUT_EVERY - 1


def dev_corpus_files(corpus_dir):
    """The pretraining files of the development corpora (held-out files excluded).

    Raises:
      FileNotFoundError naming a development corpus missing from `corpus_dir`.
    """
    return [path for name, paths in _corpus_files(corpus_dir).items()
            for i, path in enumerate(paths) if not _is_heldout(name, i)]


def heldout_files(corpus_dir):
    """The held-out files of the development corpora (the context probe's text)."""
    return [path for name, paths in _corpus_files(corpus_dir).items()
            for i, path in enumerate(paths) if _is_heldout(name, i)]


def prepare_vocab(work_dir, files, vocab_size):
    """`work_dir/vocab.txt`, a WordPiece vocabulary learned from `files` (kept if present)."""
    from electra_tf.text import vocab

    path = os.path.join(work_dir, "vocab.txt")
    if not os.path.exists(path):
        vocab.write_vocab(vocab.learn_wordpiece_vocab(files, vocab_size), path)
    return path


def prepare_data(work_dir, files, vocab_path, max_seq_length, name="pretraining_data"):
    """Pretraining TFRecords of `files` in `work_dir/name` (kept if complete)."""
    from electra_tf import schema
    from electra_tf.data import builder

    data_dir = os.path.join(work_dir, name)
    if not os.path.exists(os.path.join(data_dir, schema.MANIFEST_NAME)):
        builder.build_pretraining_data(files, vocab_path, data_dir,
                                       max_seq_length=max_seq_length, num_shards=8,
                                       overwrite=True)
    return data_dir


SQUAD_PART_A = ("squad", "dev-v1.1-part-a.json")


def squad_split(work_dir, eval_fraction=0.25):
    """`work_dir/squad/` with train-v1.1.json and dev-v1.1.json: SQuAD dev part A split
    by whole articles (the last `eval_fraction` of them are dev, as
    `electra_tf.data.squad.split_by_article` splits), kept if present."""
    import json

    from electra_tf import files

    out = os.path.join(work_dir, "squad")
    train_path, dev_path = (os.path.join(out, n) for n in ("train-v1.1.json", "dev-v1.1.json"))
    if not os.path.exists(dev_path):
        source = SHARED_DATA.joinpath(*SQUAD_PART_A)
        if not source.exists():
            raise FileNotFoundError(f"{source} not found (set ELECTRA_SHARED_DATA)")
        document = json.loads(source.read_text(encoding="utf-8"))
        articles = document["data"]
        num_eval = max(1, int(round(len(articles) * eval_fraction)))
        os.makedirs(out, exist_ok=True)
        for path, part in ((train_path, articles[:-num_eval]), (dev_path, articles[-num_eval:])):
            files.write_json_atomic(path, {"version": document.get("version", "1.1"),
                                           "data": part})
    return out
