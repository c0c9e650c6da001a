"""Defects an adversarial pass found (issue 17): each has a test that failed before its fix."""

from __future__ import annotations

import errno
import shutil

import pytest
from typer.testing import CliRunner

import build
from report.core.store import Store
from tests.conftest import SMOKE_SETS

runner = CliRunner()


def _invoke(*args: str, **kwargs):
    return runner.invoke(build.app, list(args), **kwargs)


def _smoke(data_dir, store) -> list[str]:
    return ["--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store), *SMOKE_SETS]


@pytest.mark.slow
def test_the_fix_advised_for_a_corrupt_run_record_works(smoke_build, data_dir, tmp_path):
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    Store(store).path("smoke", "q2").write_text("x\n")
    status = _invoke("status", *_smoke(data_dir, store))
    assert status.exit_code == 0 and "stale: files changed" in status.output
    rerun = _invoke("run", "q2", "--force", *_smoke(data_dir, store))
    assert rerun.exit_code == 0, rerun.output
    assert Store(store).meta("smoke", "q2")["experiment"] == "q2"


def test_all_checks_the_output_folder_before_training(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _invoke("all", *_smoke(data_dir, tmp_path / "r"), "--out", str(blocker / "out"))
    assert result.exit_code == 2 and "pass a writable --out" in result.output
    assert not (tmp_path / "r" / "smoke").exists(), "nothing may train before the outputs are checked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "q3.lrs=inf"], "q3.lrs, batch_sizes"),
        (["--set", "q3.lrs=0.1,nan"], "q3.lrs, batch_sizes"),
        (["--seed", "-1"], "--seed -1: give a seed of 0 or more"),
    ],
)
def test_bad_values_stop_before_training(data_dir, tmp_path, args, message):
    result = _invoke("run", "q3", *_smoke(data_dir, tmp_path / "r"), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "r" / "smoke").exists()


def test_a_store_path_that_is_a_file_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _invoke("status", "--profile", "smoke", "--store", str(blocker))
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


def test_clean_without_a_terminal_keeps_the_results_and_says_how(tmp_path):
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    result = _invoke(
        "clean", "--results", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b"), input=""
    )
    assert result.exit_code == 1 and "pass --yes" in result.output and "Abort" not in result.output
    assert Store(tmp_path / "r").has("smoke", "q1")


def test_a_result_copied_under_another_profile_is_not_current(tmp_path):
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1", profile="quick")
    shutil.copytree(tmp_path / "r" / "quick", tmp_path / "r" / "smoke")
    result = _invoke("status", "--profile", "smoke", "--store", str(tmp_path / "r"))
    row = next(line for line in result.output.splitlines() if line.strip().startswith("│ q1"))
    assert "stale: profile changed" in row


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_named_with_the_path_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import pandas as pd

    from report.core.atomic import atomic_write
    from report.core.errors import ReportError, StoreError
    from tests.helpers import fake_meta, synthetic

    store = Store(tmp_path / "r")
    store.write("smoke", "q1", synthetic("q1", value=1), fake_meta("q1"))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _full_disk)
    with pytest.raises(StoreError, match=r"no space left on the device holding .*/smoke/q1"):
        store.write("smoke", "q1", synthetic("q1", value=2), fake_meta("q1"))
    assert store.read("smoke", "q1", "task")["samples"][0] == 1, "the old result stays current"
    assert not list((tmp_path / "r").rglob(".tmp-*"))

    monkeypatch.setattr("os.replace", _full_disk)
    with pytest.raises(ReportError, match=r"no space left on the device holding .*report.html: free"):
        atomic_write(tmp_path / "out" / "report.html", "<html>")
    assert list((tmp_path / "out").iterdir()) == [], "no temporary file is left behind"


@pytest.mark.slow
def test_ctrl_c_during_training_is_one_line_and_exit_130(data_dir, tmp_path):
    import signal
    import subprocess
    import time

    from tests.conftest import build_cmd

    args = build_cmd("run", "q3", *_smoke(data_dir, tmp_path / "r"), "--set", "q3.sweep_epochs=40")
    for attempt in range(2):
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        seen = ""
        while "q3: running" not in seen:
            line = proc.stderr.readline()
            assert line, f"the build ended before training: {seen}"
            seen += line
        time.sleep(0.8 + 0.4 * attempt)  # a second or so into the sweep
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, rest
        assert "error: interrupted; finished experiments are stored" in rest
        assert "Traceback" not in rest and "Exception ignored" not in rest, rest
