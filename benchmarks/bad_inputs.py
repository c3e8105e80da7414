"""The fault battery's bad-inputs table: each bad input to a real tool, and what it got.

Every case runs a tool (`tools/*.py`) or a bare-TF client in a subprocess and checks
the promise a user relies on: **a clear error** (non-zero exit, exactly one `error:`
line naming the thing, no traceback) **or a counted skip** (the tool finishes and says
how many it left out), and **nothing written is lost** (a build with `--overwrite`
over good data that fails leaves that data byte-identical).

`run_cases(workdir, vocab, data_dir, pretrained_dir)` returns one row per case:

  {"case": "empty corpus", "tool": "build_pretraining_data", "expect": "error",
   "survived": true, "data_lost": false, "message": "error: ..."}

`benchmarks/fault_battery.py --families=bad_inputs` runs it on the battery's workspace.
"""

import gzip
import json
import pathlib
import shutil

from tool_runs import error_lines, one_clear_line, run_python, run_tool, tree_digest


def _row(case, tool, expect, result, survived, data_lost=False, **extra):
    message = (error_lines(result.stderr) or [""])[0] if result is not None else ""
    return {"case": case, "tool": tool, "expect": expect,
            "exit": None if result is None else result.returncode, "survived": bool(survived),
            "data_lost": bool(data_lost), "message": message[:240], **extra}


# ---------------------------------------------------------------------------
# Corpora and vocabularies, through tools/build_pretraining_data.py

def _corpus_cases(root, vocab, good_corpus):
    """Each bad corpus is built with --overwrite over a good build of `good_corpus`."""
    files = {
        "empty corpus": b"",
        "blank-lines-only corpus": b"\n\n   \n\t\n",
        "all-invalid-UTF-8 file": bytes(range(0x80, 0x100)) * 400,
        "binary file (NULs)": b"\x00\x01\x02ELF\x00" * 1000,
        "gzip data named .txt": gzip.compress(b"the cat sat on a mat .\n" * 200),
        "truncated .gz": gzip.compress(b"the cat sat on a mat .\n" * 20000)[:-300],
        # One line of 50 MB (no newline): over --max_line_bytes, named with its line.
        "50 MB single line": None,
    }
    rows = []
    out = root / "build_out"
    for case, content in files.items():
        suffix = ".gz" if case == "truncated .gz" else ".txt"
        path = root / ("bad_" + "".join(c if c.isalnum() else "_" for c in case) + suffix)
        if content is None:
            with open(path, "wb") as f:
                chunk = b"word " * 200_000  # 1 MB
                for _ in range(50):
                    f.write(chunk)
        else:
            path.write_bytes(content)
        shutil.rmtree(out, ignore_errors=True)
        good = run_tool(["tools/build_pretraining_data.py", f"--input={good_corpus}",
                         f"--vocab={vocab}", f"--output_dir={out}", "--max_seq_length=16",
                         "--num_shards=2"])
        if good.returncode:
            raise RuntimeError(f"the good build failed:\n{good.stderr[-2000:]}")
        before = tree_digest(out)
        result = run_tool(["tools/build_pretraining_data.py", f"--input={path}",
                           f"--vocab={vocab}", f"--output_dir={out}", "--max_seq_length=16",
                           "--num_shards=2", "--overwrite"])
        lost = tree_digest(out) != before
        rows.append(_row(case, "build_pretraining_data", "error", result,
                         one_clear_line(result) and not lost, lost))
        path.unlink()
    return rows


def _vocab_cases(root, vocab, good_corpus):
    tokens = vocab.read_text().split("\n")
    tokens = [t for t in tokens if t]
    variants = {
        "vocab with a repeated token": tokens + [tokens[-1]],
        "vocab without [MASK]": [t for t in tokens if t != "[MASK]"],
        "vocab without [CLS] and [SEP]": [t for t in tokens if t not in ("[CLS]", "[SEP]")],
        "empty vocab": [],
    }
    rows = []
    for case, lines in variants.items():
        path = root / "bad_vocab.txt"
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
        out = root / "vocab_case_out"
        shutil.rmtree(out, ignore_errors=True)
        result = run_tool(["tools/build_pretraining_data.py", f"--input={good_corpus}",
                           f"--vocab={path}", f"--output_dir={out}", "--max_seq_length=16"])
        # Nothing that looks like data may be left by a refused build.
        leftovers = [p for p in tree_digest(out) if p.endswith(".tfrecord")
                     or p == "manifest.json"]
        rows.append(_row(case, "build_pretraining_data", "error", result,
                         one_clear_line(result) and not leftovers, bool(leftovers)))
    return rows


# ---------------------------------------------------------------------------
# Pretraining data edited by hand, through tools/pretrain.py

def _edited_data_cases(root, data_dir, pretrain_args):
    def edit_manifest(change):
        def apply(d):
            path = d / "manifest.json"
            manifest = json.loads(path.read_text())
            change(manifest)
            path.write_text(json.dumps(manifest))
        return apply

    def truncate_shard(d):
        shard = sorted(d.glob("*.tfrecord"))[0]
        shard.write_bytes(shard.read_bytes()[:-7])

    def empty_shard(d):
        sorted(d.glob("*.tfrecord"))[0].write_bytes(b"")

    edits = {
        "manifest not JSON": lambda d: (d / "manifest.json").write_text("{not json"),
        "manifest lists no shards": edit_manifest(lambda m: m.update(shards=[])),
        "manifest names another vocab": edit_manifest(
            lambda m: m.update(vocab_sha256="0" * 64)),
        "manifest with a longer max_seq_length": edit_manifest(
            lambda m: m.update(max_seq_length=4096)),
        "manifest naming a missing shard": edit_manifest(
            lambda m: m["shards"][0].update(file="pretrain-99999-of-99999.tfrecord")),
        "manifest with 0 examples": edit_manifest(
            lambda m: [s.update(examples=0) for s in m["shards"]]),
        "shard truncated": truncate_shard,
        "shard emptied": empty_shard,
    }
    rows = []
    for case, edit in edits.items():
        edited = root / "edited_data"
        shutil.rmtree(edited, ignore_errors=True)
        shutil.copytree(data_dir, edited)
        edit(edited)
        model_dir = root / "edited_model"
        shutil.rmtree(model_dir, ignore_errors=True)
        result = run_tool(pretrain_args(edited, model_dir), timeout=300)
        # A refusal must come before training: no checkpoint may exist.
        trained = (model_dir / "checkpoints").exists() and any(
            (model_dir / "checkpoints").glob("ckpt-*.index"))
        rows.append(_row(case, "pretrain", "error", result,
                         one_clear_line(result) and not trained))
    return rows


# ---------------------------------------------------------------------------
# GLUE rows and SQuAD answers

def _glue_cases(root, pretrained_dir):
    data = root / "sst2_bad"
    data.mkdir(exist_ok=True)
    good = ["sentence\tlabel"] + [f"the cat sat on a mat {'good' if i % 2 else 'bad'}\t{i % 2}"
                                  for i in range(40)]
    # Line 5: three columns; line 9: one column; line 12: a label outside {0, 1}.
    bad = list(good)
    bad[4] = "a\tb\t1"
    bad[8] = "no tab here"
    bad[11] = "the dog ran\t7"
    (data / "train.tsv").write_text("\n".join(bad) + "\n")
    (data / "dev.tsv").write_text("\n".join(good[:11]) + "\n")
    args = ["tools/finetune.py", "--task=sst2", f"--data_dir={data}",
            f"--init={pretrained_dir}", "--epochs=1", "--max_seq_length=16",
            "--batch_size=8", "--progress=none"]
    rows = []
    out = root / "glue_out"
    shutil.rmtree(out, ignore_errors=True)
    refused = run_tool(args + [f"--output_dir={out}"])
    message = (error_lines(refused.stderr) or [""])[0]
    rows.append(_row("GLUE rows with wrong column counts", "finetune", "error", refused,
                     one_clear_line(refused) and ":5:" in message))
    shutil.rmtree(out, ignore_errors=True)
    skipped = run_tool(args + [f"--output_dir={out}", "--skip_bad_rows"])
    counted = "skipped 3 bad row(s)" in skipped.stderr
    rows.append(_row("GLUE rows with wrong column counts, --skip_bad_rows", "finetune",
                     "counted skip", skipped, skipped.returncode == 0 and counted))
    return rows


_SQUAD_CHILD = """
import sys
from electra_tf.data import squad
try:
    squad.read_squad(sys.argv[1])
except squad.SquadFormatError as e:
    print("error:", e, file=sys.stderr)
    sys.exit(2)
"""


def _squad_cases(root):
    # No tool fine-tunes SQuAD yet; its reader is what meets the file.
    context = "The cat sat on the mat."
    document = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": context,
        "qas": [{"id": "q1", "question": "Where did the cat sit?",
                 "answers": [{"text": "the mat", "answer_start": 15}]},
                {"id": "q2", "question": "Who sat?",
                 "answers": [{"text": "The cat", "answer_start": 40}]}]}]}]}
    path = root / "squad_bad.json"
    path.write_text(json.dumps(document))
    result = run_python(_SQUAD_CHILD, str(path))
    message = (error_lines(result.stderr) or [""])[0]
    return [_row("SQuAD answer out of range", "data.squad.read_squad", "error", result,
                 one_clear_line(result) and "q2" in message)]


# ---------------------------------------------------------------------------
# Serving requests, through an export loaded in bare TensorFlow

_SERVE_CHILD = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tf-text ops (TF Serving links them in)
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
(name,) = fn.structured_input_signature[1].keys()
texts = ["", "   ", "word " * 20000, "the cat sat on a mat ."]
out = {k: v.numpy() for k, v in fn(**{name: tf.constant(texts)}).items()}
print(json.dumps({k: {"shape": list(v.shape),
                      "finite": bool(np.all(np.isfinite(v))) if v.dtype.kind == "f" else True,
                      "values": v.tolist() if v.ndim == 1 else None}
                  for k, v in out.items()}))
"""


def _serving_cases(root, pretrained_dir, max_seq_length):
    base = root / "serving"
    shutil.rmtree(base, ignore_errors=True)
    export = run_tool(["tools/export.py", f"--model_dir={pretrained_dir / 'discriminator'}",
                       f"--export_dir={base}", "--name=m"])
    if export.returncode:
        raise RuntimeError(f"the export failed:\n{export.stderr[-2000:]}")
    (version,) = [p for p in (base / "m").iterdir() if p.name.isdigit()]
    result = run_python(_SERVE_CHILD, str(version))
    detail, ok = {}, False
    if result.returncode == 0:
        detail = json.loads(result.stdout.strip().splitlines()[-1])
        num_tokens = (detail.get("num_tokens") or {}).get("values") or []
        truncated = (detail.get("truncated") or {}).get("values") or []
        # Empty and blank texts have no word token (just [CLS] [SEP]); the 100k-character
        # one is cut to max_seq_length and says so; every float output is finite.
        ok = (num_tokens[:3] == [0, 0, max_seq_length - 2]
              and truncated[:3] == [False, False, True]
              and all(v["finite"] for v in detail.values()))
    return [_row("serving request: empty, blank and 100k-character texts", "export+bare TF",
                 "served (truncated, flagged)", result, ok,
                 outputs={k: v["shape"] for k, v in detail.items()})]


def run_cases(workdir, vocab, good_corpus, data_dir, pretrain_args, pretrained_dir,
              max_seq_length):
    """All cases; see the module docstring.

    Args:
      workdir: scratch directory (created).
      vocab, good_corpus: a vocabulary and a text file that builds.
      data_dir: good pretraining data of that vocabulary.
      pretrain_args: f(data_dir, model_dir) -> the tools/pretrain.py argument list.
      pretrained_dir: a finished tools/pretrain.py model_dir (its artifacts).
      max_seq_length: the pretrained model's sequence length.
    """
    root = pathlib.Path(workdir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    vocab, pretrained_dir = pathlib.Path(vocab), pathlib.Path(pretrained_dir)
    return (_corpus_cases(root, vocab, good_corpus) + _vocab_cases(root, vocab, good_corpus)
            + _edited_data_cases(root, pathlib.Path(data_dir), pretrain_args)
            + _glue_cases(root, pretrained_dir) + _squad_cases(root)
            + _serving_cases(root, pretrained_dir, max_seq_length))
