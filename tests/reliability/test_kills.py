"""The fault battery's families on a few trials each (benchmarks/fault_battery.py runs
the full counts): SIGKILL at each kind of moment, damaged checkpoints, a second run,
full and read-only disks, killed builds, fine-tunings and exports, and the bad-inputs table.
Every check runs the real tools in subprocesses."""

import importlib.util
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _battery():
    spec = importlib.util.spec_from_file_location(
        "fault_battery", REPO / "benchmarks" / "fault_battery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


battery = _battery()
STEPS = 60


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = battery.Workspace(tmp_path_factory.mktemp("faults"), STEPS)
    return ws, battery.Reference(ws)


def assert_all_survived(rows):
    failures = [r for r in rows if not r.get("survived")]
    assert not failures, failures


@pytest.mark.slow
def test_sigkill_at_each_kind_of_moment_resumes_exactly(workspace):
    ws, ref = workspace
    rows = battery.pretrain_kill(ws, ref, trials=4, rng=np.random.RandomState(0))
    assert [r["kind"] for r in rows] == ["random", "during_save", "before_state_file",
                                         "artifacts"]
    assert all(r["killed"] for r in rows), rows
    assert_all_survived(rows)
    # The kill between a checkpoint's files and the state file loses that checkpoint
    # (TF restores through the state file) but nothing more.
    assert all(r["lost_steps"] <= battery.CHECKPOINT_EVERY for r in rows)


@pytest.mark.slow
def test_damaged_latest_checkpoint_and_second_run(workspace):
    ws, ref = workspace
    rows = battery.corrupt_checkpoint(ws, ref) + battery.concurrent(ws, ref)
    assert_all_survived(rows)


@pytest.mark.slow
@pytest.mark.skipif(not battery.can_mount(), reason="needs root and mount(8) for a tmpfs")
def test_full_and_read_only_disks_give_one_line_and_keep_the_checkpoint(workspace):
    ws, ref = workspace
    rows = battery.disk_full(ws, ref) + battery.read_only(ws, ref)
    assert not any("skipped" in r for r in rows), rows
    assert_all_survived(rows)


@pytest.mark.slow
def test_killed_build_finetune_and_export_leave_nothing_half_written(workspace):
    ws, ref = workspace
    rng = np.random.RandomState(1)
    rows = (battery.build_kill(ws, 2, rng) + battery.finetune_kill(ws, ref, 2, rng)
            + battery.export_kill(ws, ref, 2, rng))
    assert_all_survived(rows)


@pytest.mark.slow
def test_bad_inputs_get_one_clear_line_or_a_counted_skip_and_lose_nothing(workspace):
    ws, ref = workspace
    rows = battery.bad_inputs(ws, ref)
    assert len(rows) >= 20
    assert {r["case"] for r in rows} >= {"empty corpus", "50 MB single line",
                                         "vocab with a repeated token",
                                         "manifest names another vocab",
                                         "GLUE rows with wrong column counts",
                                         "SQuAD answer out of range"}
    assert not any(r["data_lost"] for r in rows), rows
    assert_all_survived(rows)
