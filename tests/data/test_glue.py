"""GLUE and custom-data readers, bad rows, tf.data batches and submission files."""

import json

import numpy as np
import pytest
import tensorflow as tf

from helpers import shared_path
from electra_tf import schema
from electra_tf.data import glue
from electra_tf.export import signatures
from electra_tf.text.tokenizer import WordPieceTokenizer


def write(path, lines, bom=False):
    text = "".join(line + "\n" for line in lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# === The shared GLUE data (SST-2, MRPC, STS-B) ===


@pytest.mark.parametrize("name, train, dev, test", [
    ("sst2", 67349, 872, 1821), ("mrpc", 3668, 408, 1725), ("stsb", 5749, 1500, 1379)])
def test_shared_glue_counts_and_contents(name, train, dev, test):
    task = glue.get_task(name)
    data_dir = shared_path("glue", task.glue_name)
    assert glue.check_data_dir(task, str(data_dir)) == ["test"]
    splits = {s: glue.read_split(task, str(data_dir), s) for s in ("train", "dev", "test")}
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [train, dev, test]
    assert all(not e.skipped for e in splits.values())
    assert splits["test"].labels is None
    assert splits["test"].ids[:3] == ["0", "1", "2"]  # the test files' index column
    labels = splits["train"].labels
    if task.is_regression:
        assert labels.dtype == np.float32 and labels.min() == 0.0 and labels.max() == 5.0
    else:
        assert labels.dtype == np.int32 and set(labels) == {0, 1}
    assert (splits["train"].texts_b is not None) == task.is_pair


def test_shared_mrpc_bom_and_quotes_are_read_as_text():
    task = glue.get_task("MRPC")
    dev = glue.read_split(task, str(shared_path("glue", "MRPC")), "dev")
    # Row 1; the BOM is not part of the "Quality" column name, and the unbalanced
    # quote is kept as a character.
    assert dev.labels[0] == 1
    assert dev.texts_a[0].startswith("He said the foodservice pie business")
    assert dev.texts_b[0].startswith('"The foodservice pie business')


# === Synthetic files in the other tasks' layouts ===


def test_cola_labelled_files_have_no_header_but_its_test_file_has(tmp_path):
    write(tmp_path / "train.tsv", ["gj04\t1\t\tThe cat sat.", "gj04\t0\t*\tCat the sat."])
    write(tmp_path / "dev.tsv", ["gj04\t1\t\tThe dog ran."])
    write(tmp_path / "test.tsv", ["index\tsentence", "0\tA sentence.", "1\tAnother."])
    task = glue.get_task("cola")
    train = glue.read_split(task, str(tmp_path), "train")
    assert train.texts_a == ["The cat sat.", "Cat the sat."]
    assert train.labels.tolist() == [1, 0] and train.texts_b is None
    test = glue.read_split(task, str(tmp_path), "test")
    assert test.texts_a == ["A sentence.", "Another."] and test.ids == ["0", "1"]
    assert task.main_metric == "mcc"


def test_mnli_reads_by_column_name_across_layouts(tmp_path):
    parse = ["( x )"] * 4
    train_header = ["index", "promptID", "pairID", "genre", "s1b", "s2b", "s1p", "s2p",
                    "sentence1", "sentence2", "label1", "gold_label"]
    dev_header = train_header[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
    write(tmp_path / "train.tsv", ["\t".join(train_header),
                                   "\t".join(["0", "1", "1e", "fiction", *parse, "A b.", "C d.",
                                              "neutral", "neutral"])])
    for name in ("dev_matched.tsv", "dev_mismatched.tsv"):
        write(tmp_path / name, ["\t".join(dev_header),
                                "\t".join(["7", "1", "1e", "slate", *parse, "E f.", "G h.",
                                           *["entailment"] * 5, "entailment"])])
    test_header = train_header[:10]
    for name in ("test_matched.tsv", "test_mismatched.tsv"):
        write(tmp_path / name, ["\t".join(test_header),
                                "\t".join(["11", "1", "1e", "slate", *parse, "I j.", "K l."])])
    task = glue.get_task("mnli")
    assert glue.check_data_dir(task, str(tmp_path)) == ["test", "test_mismatched"]
    assert task.eval_splits == ["dev", "dev_mismatched"]
    train = glue.read_split(task, str(tmp_path), "train")
    assert (train.texts_a, train.texts_b, train.labels.tolist()) == (["A b."], ["C d."], [2])
    dev = glue.read_split(task, str(tmp_path), "dev_mismatched")
    assert dev.labels.tolist() == [1]
    test = glue.read_split(task, str(tmp_path), "test_mismatched")
    assert (test.texts_a, test.ids, test.labels) == (["I j."], ["11"], None)
    assert task.submissions == {"test": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}


@pytest.mark.parametrize("name, header, row, test_header, test_row, label", [
    ("qqp", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "5\t1\t2\tQ1?\tQ2?\t1",
     "id\tquestion1\tquestion2", "9\tQ1?\tQ2?", 1),
    ("qnli", "index\tquestion\tsentence\tlabel", "0\tQ1?\tS.\tnot_entailment",
     "index\tquestion\tsentence", "9\tQ1?\tS.", 1),
    ("rte", "index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment",
     "index\tsentence1\tsentence2", "9\tA.\tB.", 0),
    ("wnli", "index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\t1",
     "index\tsentence1\tsentence2", "9\tA.\tB.", 1),
])
def test_other_pair_tasks(tmp_path, name, header, row, test_header, test_row, label):
    write(tmp_path / "train.tsv", [header, row])
    write(tmp_path / "dev.tsv", [header, row])
    write(tmp_path / "test.tsv", [test_header, test_row])
    task = glue.get_task(name)
    dev = glue.read_split(task, str(tmp_path), "dev")
    assert dev.labels.tolist() == [label] and len(dev.texts_b) == 1
    assert glue.read_split(task, str(tmp_path), "test").ids == ["9"]


# === Bad input ===


def sst2_dir(tmp_path, train_rows):
    write(tmp_path / "train.tsv", ["sentence\tlabel", *train_rows])
    write(tmp_path / "dev.tsv", ["sentence\tlabel", "good .\t1"])
    return str(tmp_path)


@pytest.mark.parametrize("row, line_message, kind", [
    ("fine .\t2", "label '2' is not one of the task's labels", "bad label"),
    ("fine .\t1\textra", "3 columns, expected 2", "wrong column count"),
    ("   \t1", "empty text in column 'sentence'", "empty text"),
])
def test_bad_rows_raise_with_file_and_line_or_are_skipped_and_counted(
        tmp_path, row, line_message, kind):
    data_dir = sst2_dir(tmp_path, ["nice .\t1", row, "bad .\t0"])
    task = glue.get_task("sst2")
    with pytest.raises(glue.DataError, match=rf"train.tsv:3: {line_message}"):
        glue.read_split(task, data_dir, "train")
    train = glue.read_split(task, data_dir, "train", skip_bad_rows=True)
    assert train.texts_a == ["nice .", "bad ."] and train.labels.tolist() == [1, 0]
    assert train.skipped == {kind: 1}


def test_stsb_scores_outside_the_range_and_invalid_utf8(tmp_path):
    header = "index genre filename year old_index source1 source2 sentence1 sentence2 score"
    rows = [f"{i}\tg\tf\t2012\t{i}\tnone\tnone\tA.\tB.\t{score}"
            for i, score in enumerate(["5.000", "5.5", "nan"])]
    write(tmp_path / "train.tsv", [header.replace(" ", "\t"), *rows])
    with open(tmp_path / "train.tsv", "ab") as f:
        f.write(b"3\tg\tf\t2012\t3\tnone\tnone\t\xff.\tB.\t1.0\n")
    task = glue.get_task("stsb")
    with pytest.raises(glue.DataError, match=r"train.tsv:3: label 5.5 is outside \[0.0, 5.0\]"):
        glue.read_split(task, str(tmp_path), "train")
    train = glue.read_split(task, str(tmp_path), "train", skip_bad_rows=True)
    assert train.labels.tolist() == [5.0]
    assert train.skipped == {"bad label": 2, "invalid UTF-8": 1}


def test_missing_files_and_columns_are_named(tmp_path):
    task = glue.get_task("mrpc")
    write(tmp_path / "train.tsv", ["Quality\t#1 String\t#2 String", "1\ta\tb"])
    with pytest.raises(glue.DataError, match=r"lacks dev.tsv for task mrpc \(found: train.tsv\)"):
        glue.check_data_dir(task, str(tmp_path))
    with pytest.raises(glue.DataError, match="not a directory"):
        glue.check_data_dir(task, str(tmp_path / "nope"))
    with pytest.raises(glue.DataError, match="dev.tsv not found"):
        glue.read_split(task, str(tmp_path), "dev")
    write(tmp_path / "dev.tsv", ["Quality\t#1 Text\t#2 String", "1\ta\tb"])
    with pytest.raises(glue.DataError,
                       match=r"dev.tsv:1: the header lacks column\(s\) \['#1 String'\]"):
        glue.read_split(task, str(tmp_path), "dev")
    with pytest.raises(ValueError, match="unknown task 'glue'"):
        glue.get_task("glue")


# === Users' data ===


def test_custom_csv_with_quotes_and_inferred_labels(tmp_path):
    (tmp_path / "train.csv").write_text(
        'id,text,category\n1,"Hello, world",billing\n2,"two\nlines",shipping\n3,x,billing\n',
        encoding="utf-8")
    (tmp_path / "dev.csv").write_text("id,text,category\n1,y,shipping\n", encoding="utf-8")
    task = glue.custom_task(str(tmp_path), "text", label_column="category")
    assert task.label_names == ("billing", "shipping") and task.files == {
        "train": "train.csv", "dev": "dev.csv"}
    train = glue.read_split(task, str(tmp_path), "train")
    assert train.texts_a == ["Hello, world", "two\nlines", "x"]
    assert train.labels.tolist() == [0, 1, 0] and train.ids == ["0", "1", "2"]
    assert task.metrics == ("accuracy", "f1", "mcc") and not task.test_splits
    with open(tmp_path / "dev.csv", "ab") as f:
        f.write(b'3,"multi\nline",refunds\n2,"\xff",billing\n')
    # A record's line is where it ends.
    with pytest.raises(glue.DataError, match=r"dev.csv:4: label 'refunds' is not one"):
        glue.read_split(task, str(tmp_path), "dev")
    dev = glue.read_split(task, str(tmp_path), "dev", skip_bad_rows=True)
    assert dev.skipped == {"invalid UTF-8": 1, "bad label": 1} and dev.texts_a == ["y"]


def test_custom_jsonl_pairs_numeric_labels_and_bad_lines(tmp_path):
    rows = [{"q": "a?", "d": "b.", "y": 10}, {"q": "c?", "d": "e.", "y": 2},
            {"q": "f?", "d": "g.", "y": 2}]
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n{not json\n", encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(json.dumps({"q": "h?", "d": "i."}) + "\n",
                                         encoding="utf-8")
    task = glue.custom_task(str(tmp_path), "q", "d", label_column="y")
    assert task.label_names == ("2", "10") and task.is_pair  # numeric order
    with pytest.raises(glue.DataError, match="train.jsonl:4: invalid JSON"):
        glue.read_split(task, str(tmp_path), "train")
    train = glue.read_split(task, str(tmp_path), "train", skip_bad_rows=True)
    assert train.labels.tolist() == [1, 0, 0] and train.texts_b == ["b.", "e.", "g."]
    assert glue.read_split(task, str(tmp_path), "test").texts_a == ["h?"]


def test_custom_regression_tsv_and_missing_files(tmp_path):
    write(tmp_path / "train.tsv", ["text\tscore", "a\t0.5", "b\t2"])
    write(tmp_path / "dev.tsv", ["text\tscore", "c\t1.5"])
    task = glue.custom_task(str(tmp_path), "text", label_column="score", regression=True)
    assert task.is_regression and task.main_metric == "spearman"
    assert glue.read_split(task, str(tmp_path), "train").labels.tolist() == [0.5, 2.0]
    with pytest.raises(glue.DataError, match="has no train file"):
        glue.custom_task(str(tmp_path / "x"), "text")
    write(tmp_path / "train.csv", ["text,score", "a,1"])
    with pytest.raises(glue.DataError, match="several train files"):
        glue.custom_task(str(tmp_path), "text")


# === tf.data and submissions ===


def _dataset(examples, tokenizer, max_seq_length, batch_size, *, shuffle=False, seed=None,
             with_labels=True):
    """What fine-tuning feeds model.fit: encoded once, then batched (and shuffled)."""
    features = glue.ExampleEncoder(tokenizer, max_seq_length)(examples)
    return glue.batch_dataset(features, examples.labels if with_labels else None,
                              batch_size=batch_size, shuffle=shuffle, seed=seed)


def test_encoded_batches_pack_pairs_and_shuffle_by_seed(tmp_path, tiny_vocab):
    tokenizer = WordPieceTokenizer(tiny_vocab)
    examples = glue.Examples(
        path="x", texts_a=["the cat sat", "a dog", "hello world", "the red car"],
        texts_b=["on the mat", "ran fast", "!", "is big"],
        labels=np.array([0, 1, 0, 1], np.int32), ids=["0", "1", "2", "3"], skipped={})
    features, labels = next(iter(_dataset(examples, tokenizer, 8, batch_size=4)))
    assert features[schema.TOKEN_IDS].shape == (4, 8) and labels.numpy().tolist() == [0, 1, 0, 1]
    vocab = tokenizer.vocab
    first = [vocab[i] for i in features[schema.TOKEN_IDS][0].numpy()]
    # 3 + 3 tokens do not fit in 8 - 3: the second text loses its last one.
    assert first == ["[CLS]", "the", "cat", "sat", "[SEP]", "on", "the", "[SEP]"]
    assert features[schema.SEGMENT_IDS][0].numpy().tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert features[schema.PADDING_MASK][1].numpy().sum() == 7
    # The in-graph packer of an exported model gives the same inputs.
    direct, _ = signatures.TextPacker(tokenizer, 8)(tf.constant(examples.texts_a),
                                                    tf.constant(examples.texts_b))
    for key, value in features.items():
        np.testing.assert_array_equal(direct[key].numpy(), value.numpy())

    def two_epochs(seed):
        dataset = _dataset(examples, tokenizer, 8, 2, shuffle=True, seed=seed)
        return [[ids[1] for f, _ in dataset for ids in f[schema.TOKEN_IDS].numpy().tolist()]
                for _ in range(2)]

    epochs = two_epochs(seed=3)
    # Reshuffled every epoch, the same way for the same seed.
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])
    assert two_epochs(seed=3) == epochs
    unlabelled = _dataset(examples, tokenizer, 8, 3, with_labels=False)
    assert [f[schema.TOKEN_IDS].shape[0] for f in unlabelled] == [3, 1]


def test_sample_keeps_rows_aligned(tmp_path):
    examples = glue.Examples(path="x", texts_a=list("abcdef"), texts_b=None,
                             labels=np.arange(6, dtype=np.int32), ids=list("012345"), skipped={})
    sample = examples.sample(3, seed=0)
    assert len(sample) == 3 and sample.texts_a == [s for s in "abcdef" if s in sample.texts_a]
    assert [ord(t) - ord("a") for t in sample.texts_a] == sample.labels.tolist()
    assert examples.sample(10) is examples


def test_write_submission_formats(tmp_path):
    path = str(tmp_path / "MNLI-m.tsv")
    glue.write_submission(path, glue.get_task("mnli"), ["4", "9"],
                          np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0]]))
    assert open(path).read() == "index\tprediction\n4\tentailment\n9\tcontradiction\n"
    path = str(tmp_path / "STS-B.tsv")
    glue.write_submission(path, glue.get_task("stsb"), ["0", "1"], np.array([[4.23456], [0.5]]))
    assert open(path).read() == "index\tprediction\n0\t4.235\n1\t0.500\n"
    with pytest.raises(ValueError, match="3 ids but 2 predictions"):
        glue.write_submission(path, glue.get_task("sst2"), ["0", "1", "2"], np.zeros((2, 2)))
