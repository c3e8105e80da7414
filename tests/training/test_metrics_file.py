"""metrics.jsonl after a kill: a torn last line and records past the checkpoint."""

import json

import pytest

from electra_tf.training import callbacks


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_torn_last_line_is_dropped(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", ['{"step": 2}', '{"step": 4}', '{"step": 6, "lo'])
    assert callbacks.read_metrics(str(tmp_path)) == [{"step": 2}, {"step": 4}]


def test_bad_line_before_the_end_is_an_error(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", ['{"step": 2}', "garbage", '{"step": 6}'])
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not JSON"):
        callbacks.read_metrics(str(tmp_path))


def test_truncate_keeps_records_up_to_the_restored_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines(path, ['{"step": 2, "loss": 1.0}', '{"step": 4}', '{"step": 6}', '{"st'])
    callbacks.truncate_records(str(path), 4)
    assert path.read_text() == '{"step": 2, "loss": 1.0}\n{"step": 4}\n'
    # Nothing past the step and no torn line: the file is left byte for byte.
    before = path.stat().st_mtime_ns
    callbacks.truncate_records(str(path), 4)
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temp file left


def test_truncate_to_step_zero_empties_and_missing_file_is_fine(tmp_path):
    path = tmp_path / "metrics.jsonl"
    callbacks.truncate_records(str(path), 0)
    assert not path.exists()
    write_lines(path, [json.dumps({"step": 3})])
    callbacks.truncate_records(str(path), 0)
    assert path.read_text() == ""
