"""Every tool shows a user's mistake the same way: one `error: ...` line naming the
file, flag or key, exit status 2, no traceback (tools/tool_errors.py)."""

import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

TINY_CONFIG = str(REPO_ROOT / "configs" / "electra_tiny.json")


def run_tool(tool, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / tool), *args],
                          capture_output=True, text=True, env=env, timeout=240, cwd=cwd)


def write_vocab_without_mask(path):
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\n", encoding="utf-8")
    return path


# (tool, arguments, what the one error line must contain); paths are relative to a
# fresh tmp dir, where "missing" and "modle" do not exist.
CASES = {
    "pretrain_bad_override": (
        "pretrain.py", [f"--config={TINY_CONFIG}", "--data_dir=data", "--model_dir=m",
                        "--override=train.bogus=1"],
        ["override 'train.bogus=1': unknown key 'train.bogus'"]),
    "pretrain_missing_config": (
        "pretrain.py", ["--config=missing.json", "--data_dir=data", "--model_dir=m"],
        ["missing.json", "does not exist"]),
    "finetune_missing_init": (
        "finetune.py", ["--task=sst2", "--data_dir=data", "--init=modle", "--output_dir=out"],
        ["modle does not exist"]),
    "export_missing_model_dir": (
        "export.py", ["--model_dir=modle", "--export_dir=exports", "--name=x"],
        ["modle does not exist"]),
    "explain_missing_model_dir": (
        "explain.py", ["--model_dir=modle", "some text"], ["modle does not exist"]),
    "explain_empty_text": (
        "explain.py", ["--model_dir=modle", "a text", ""], ["text 2 of 2 is empty"]),
    "convert_missing_input": (
        "convert_checkpoint.py", ["--from=electra_tf", "--to=hf", "--input=modle",
                                  "--output=hf"], ["modle does not exist"]),
    "build_vocab_no_input": (
        "build_vocab.py", ["--input=missing/*.txt", "--output=vocab.txt", "--vocab_size=50"],
        ["missing/*.txt"]),
    "build_data_vocab_without_mask": (
        "build_pretraining_data.py", ["--input=corpus.txt", "--vocab=novocab.txt",
                                      "--output_dir=data"], ["novocab.txt", "[MASK]"]),
    "serving_client_no_server": (
        "serving_client.py", ["--server=http://127.0.0.1:9", "--model_name=x", "--timeout=5",
                              "a text"], ["cannot reach", "127.0.0.1:9"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_user_error_is_one_line_and_exit_status_2(case, tmp_path):
    tool, args, expected = CASES[case]
    (tmp_path / "corpus.txt").write_text("the cat\n", encoding="utf-8")
    write_vocab_without_mask(tmp_path / "novocab.txt")
    result = run_tool(tool, *args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    assert result.returncode == 2, result.stderr[-3000:]


def test_file_system_errors_of_tensorflow_are_one_line_without_the_op_name():
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import tensorflow as tf
    import tool_errors

    for error in (tf.errors.PermissionDeniedError(None, None, "/ro/x; Read-only file system"),
                  tf.errors.ResourceExhaustedError(
                      None, None, "{{function_node __wrapped__SaveV2}} /d/ckpt-3_temp/part; "
                      "No space left on device\n[Op:SaveV2]")):
        assert isinstance(error, tool_errors.USER_ERRORS)
    assert tool_errors.error_line(error) == ("error: /d/ckpt-3_temp/part; No space left on "
                                             "device [Op:SaveV2]")
