"""Defects an adversarial pass found (issue 17): each has a test that failed before its fix."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from typer.testing import CliRunner

import build
from report.core.store import Store
from tests.conftest import SMOKE_SETS

runner = CliRunner()


def _invoke(*args: str, **kwargs):
    return runner.invoke(build.app, list(args), **kwargs)


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


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


@pytest.mark.slow
def test_a_pointer_of_garbage_bytes_reads_as_damaged_and_the_advised_fix_works(
    smoke_build, data_dir, tmp_path
):
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    (store / "smoke" / "q2" / "current").write_bytes(b"\xff\xfe\x00\x9c garbage")
    for args in (["status"], ["render", "--out", str(tmp_path / "out")]):
        result = _invoke(*args, *_smoke(data_dir, store))
        assert "UnicodeDecodeError" not in result.output and "--debug" not in result.output, result.output
    status = _invoke("status", *_smoke(data_dir, store))
    assert status.exit_code == 0 and "stale: files changed" in status.output, status.output
    rerun = _invoke("run", "q2", "--force", *_smoke(data_dir, store))
    assert rerun.exit_code == 0, rerun.output
    assert Store(store).meta("smoke", "q2")["experiment"] == "q2"


def test_all_checks_the_output_folder_before_training(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _invoke("all", *_smoke(data_dir, tmp_path / "r"), "--out", str(blocker / "out"))
    assert result.exit_code == 2 and f"({blocker} is a file); pass another --out" in result.output
    assert not (tmp_path / "r" / "smoke").exists(), "nothing may train before the outputs are checked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "q3.lrs=inf"], "--set q3.lrs=inf: give a finite number in (0, 10]"),
        (["--set", "q3.lrs=0.1,nan"], "--set q3.lrs=nan: give a finite number in (0, 10]"),
        (["--seed", "-1"], "--seed=-1: give an integer from 0 to 2,147,483,648"),
        (["--seed", "4294967296"], "--seed=4294967296: give an integer from 0 to 2,147,483,648"),
        (["--jobs", "-3"], "--jobs=-3: give an integer from 0 to 4,096"),
        (["--set", "q1.rtol=nan"], "--set q1.rtol=nan: give a finite number in (0, 1]"),
        (["--set", "q1.lr=nan"], "--set q1.lr=nan: give a finite number in (0, 10]"),
        (["--set", "q1.scale_max=inf"], "--set q1.scale_max=inf: give a finite number in (0, 100]"),
        (["--set", "q1.scale_max=1000"], "--set q1.scale_max=1000.0: give a finite number in (0, 100]"),
        (["--set", "q2.samples=2"], "--set q2.samples=2: give an integer from 16 to 1,000,000"),
        (["--set", "q3.seeds=100000000000000000000000"], "give an integer from 2 to 100"),
        (["--set", "q4.lr=nan"], "--set q4.lr=nan: give a finite number in (0, 10]"),
        (["--set", "q4.lr=-1"], "--set q4.lr=-1.0: give a finite number in (0, 10]"),
        (["--set", "q4.grad_clip=nan"], "--set q4.grad_clip=nan: give a finite number"),
        (["--set", "q4.label_smoothing=5"], "--set q4.label_smoothing=5.0: give a finite number in [0, 1)"),
        (["--set", "q9.epochs=1"], "unknown experiment 'q9'"),
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


def test_clean_without_a_terminal_keeps_the_results_and_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_CACHE", raising=False)  # clean would delete the run's shared cache
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    result = _invoke(
        "clean", "--results", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b"), input=""
    )
    assert result.exit_code == 2 and "pass --yes" in result.output and "Abort" not in result.output
    assert "nothing was deleted" in result.output and result.output.count("error:") == 1, result.output
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


def test_a_failed_run_leaves_no_empty_work_folder(data_dir, tmp_path, monkeypatch):
    import experiments.q1

    def broken(cfg, ctx):
        raise RuntimeError("the experiment broke")

    monkeypatch.setattr(experiments.q1, "run", broken)
    result = _invoke("run", "q1", *_smoke(data_dir, tmp_path / "r"))
    assert result.exit_code == 1 and "RuntimeError: the experiment broke" in result.output
    assert not (tmp_path / "r" / ".work").exists()


def test_a_failed_build_leaves_no_empty_output_folder(data_dir, tmp_path, monkeypatch):
    import experiments.q1

    def broken(cfg, ctx):
        raise RuntimeError("the experiment broke")

    monkeypatch.setattr(experiments.q1, "run", broken)
    out = tmp_path / "new" / "out"
    result = _invoke("all", *_smoke(data_dir, tmp_path / "r"), "--out", str(out))
    assert result.exit_code == 1 and "RuntimeError: the experiment broke" in result.output
    assert not (tmp_path / "new").exists(), "the folders --out names are made when the report is written"


def test_an_output_folder_that_is_a_link_to_nothing_is_refused_before_training(data_dir, tmp_path):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    result = _invoke("all", *_smoke(data_dir, tmp_path / "r"), "--out", str(link))
    assert result.exit_code == 2, result.output
    assert f"--out {link} is a link to nothing; pass a folder as --out" in " ".join(result.output.split())
    assert not (tmp_path / "r" / "smoke").exists(), "nothing may train before the outputs are checked"


def _without_root_powers(cmd: list[str]) -> list[str]:
    """``cmd`` run as root without the capabilities that bypass file permissions (as any other user)."""
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]


@pytest.mark.slow  # three builds of q1
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping root's file-permission override needs root")
def test_permission_errors_are_one_line_naming_the_path(data_dir, tmp_path):
    import subprocess

    from tests.conftest import build_cmd, in_process

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    args = build_cmd("run", "q1", *_smoke(data_dir, locked))
    proc = subprocess.run(_without_root_powers(args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"error: the results store {locked} is not writable; pass a writable --store" in proc.stderr

    store = tmp_path / "r"
    assert in_process(build_cmd("run", "q1", *_smoke(data_dir, store))).returncode == 0
    for folder in (store / "smoke", store / "smoke" / "q1"):
        folder.chmod(0o555)
    rerun = build_cmd("run", "q1", "--force", *_smoke(data_dir, store))
    proc = subprocess.run(_without_root_powers(rerun), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: cannot write {store / 'smoke' / 'q1'}: permission denied" in proc.stderr

    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    render = build_cmd(
        "render", "--profile", "smoke", "--store", str(store), "--out", str(out), "--format", "html"
    )
    proc = subprocess.run(_without_root_powers(render), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--out {out}: the output folder is not writable; pass a writable --out" in proc.stderr
    render[render.index("--out") + 1] = str(out / "new" / "report")
    proc = subprocess.run(_without_root_powers(render), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"the output folder cannot be created: {out} is not writable; pass a writable" in proc.stderr


@pytest.mark.slow  # two builds of q1
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")
def test_a_real_full_disk_is_one_line_leaves_no_temporary_files_and_the_rerun_recovers(data_dir, tmp_path):
    """A 1 MiB tmpfs filled to a few kilobytes short of what one run writes."""
    import subprocess

    from tests.conftest import build_cmd, in_process

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        store, filler = disk / "r", disk / "filler"
        filler.write_bytes(b"\0" * (1024 - 64) * 1024)  # leaves 64 KiB, less than a q1 result
        args = build_cmd("run", "q1", *_smoke(data_dir, store))
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"error: no space left on the device holding {store}" in proc.stderr
        assert "free some space, or pass a writable --store on a disk with space" in proc.stderr, proc.stderr
        names = [p.name for p in disk.rglob("*")]
        assert not [n for n in names if n.endswith(".tmp") or n.startswith((".tmp", ".old-"))], names
        filler.unlink()  # the fix the message advises
        proc = in_process(args)
        assert proc.returncode == 0, proc.stderr
        assert Store(store).has("smoke", "q1")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_the_printed_rerun_advice_works_as_printed(smoke_build, data_dir, tmp_path):
    """A damaged result's advice carries the command line's --store, --data-dir and --set, so running it
    exactly as printed repairs the result that this command reads (and not a default store's)."""
    import shlex
    import subprocess

    from tests.conftest import build_cmd

    store = tmp_path / "my results"
    shutil.copytree(smoke_build.store, store)
    table = Store(store).path("smoke", "q1", "segments")
    table.write_bytes(b"not parquet")
    args = ["render", *_smoke(data_dir, store), "--out", str(tmp_path / "out"), "--format", "html"]
    broken = _invoke(*args)
    assert broken.exit_code == 2, broken.output
    advice = broken.output.split("rerun: ", 1)[1].strip()
    assert advice.startswith("build.py run q1 --profile smoke --force") and "--store" in advice, advice
    fixed = subprocess.run(build_cmd(*shlex.split(advice)[1:]), cwd=tmp_path, capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert _invoke(*args).exit_code == 0


def test_a_result_that_predates_a_table_column_says_how_to_rerun_it(tmp_path):
    """Q1's context names the rerun command of a result stored before the Hessian check existed (it
    raised AttributeError: the report's Run had no rerun)."""
    from report.core.errors import MissingResultError
    from report.questions import Results
    from report.questions import q1 as ctx1
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    meta = Store(tmp_path / "r").meta("smoke", "q1")
    tables = {
        t: Store(tmp_path / "r").read("smoke", "q1", t) for t in Store(tmp_path / "r").tables("smoke", "q1")
    }
    tables["hessian"] = tables["hessian"].drop(columns="probes")
    from report.core.manifest import load, parse

    spec = {
        n: {"title": e.title, "datasets": list(e.datasets), "tables": dict(e.tables)}
        for n, e in load().experiments.items()
    }
    spec["q1"]["tables"]["hessian"] = {
        k: v for k, v in spec["q1"]["tables"]["hessian"].items() if k != "probes"
    }
    old = Store(tmp_path / "old", manifest=parse(spec, "old manifest"))
    old.write("smoke", "q1", tables, meta)
    with pytest.raises(MissingResultError, match="rerun it: build.py run q1 --profile smoke --force"):
        ctx1.autograd_check(Results(old, "smoke").run("q1"), tables["hessian"])


@pytest.mark.slow
def test_work_left_by_a_kill_after_the_pointer_swap_is_removed_by_the_next_build(
    smoke_build, data_dir, tmp_path
):
    from experiments import runner

    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    meta = Store(store).meta("smoke", "q1")
    left = runner.work_folder(Store(store), "smoke", "q1", meta["fingerprint"])  # as a kill leaves it
    left.mkdir(parents=True)
    (left / "unit.pt").write_bytes(b"finished unit")
    shutil.rmtree(store / "smoke" / "q2")  # something to run, so the build plans
    result = _invoke("run", "q1", "q2", *_smoke(data_dir, store))
    assert result.exit_code == 0, result.output
    assert not left.exists() and not (store / ".work").exists()


def _closed_port() -> int:
    """A port of this machine that nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_ray_address_is_one_line_before_training(data_dir, tmp_path, monkeypatch):
    """Ray itself retries a dead address for about 90 s, printing its own lines, before it fails."""
    import time

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address = f"127.0.0.1:{_closed_port()}"
    started = time.perf_counter()
    given = _invoke(
        "run", "q1", *_smoke(data_dir, tmp_path / "r"), "--executor", "ray", "--ray-address", address
    )
    assert time.perf_counter() - started < 30
    assert given.exit_code == 2 and _errors(given.output) == [
        f"error: cannot reach a Ray cluster at {address} (Connection refused); start one there with "
        "`ray start --head`, or leave out --ray-address to start one here for the build"
    ], given.output
    env = _invoke(
        "run", "q1", *_smoke(data_dir, tmp_path / "r"), "--executor", "ray", env={"RAY_ADDRESS": address}
    )
    assert env.exit_code == 2 and _errors(env.output)[0].startswith(
        f"error: RAY_ADDRESS={address}: cannot reach"
    )
    assert "or unset RAY_ADDRESS to start one here" in env.output
    assert not (tmp_path / "r" / "smoke").exists(), "nothing may train before the cluster is checked"


def test_a_ray_client_address_without_the_ray_client_is_one_line_before_training(
    data_dir, tmp_path, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "grpc", None)  # the Ray Client's dependency, not installed
    address = f"ray://127.0.0.1:{_closed_port()}"
    result = _invoke(
        "run", "q1", *_smoke(data_dir, tmp_path / "r"), "--executor", "ray", "--ray-address", address
    )
    assert result.exit_code == 2 and len(_errors(result.output)) == 1, result.output
    assert (
        f'--ray-address {address}: a ray:// address needs the Ray Client: pip install "ray[client]"'
        in result.output
    )
    assert not (tmp_path / "r" / "smoke").exists()


def _advised_uri(data_dir, tmp_path, monkeypatch) -> str:
    """``--tracking-uri`` of a folder, refused before training; returns the URI the message advises."""
    import re

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    folder = tmp_path / "runs"
    args = [
        "run",
        "q1",
        *_smoke(data_dir, tmp_path / "r"),
        "--track",
        "mlflow",
        "--tracking-uri",
        str(folder),
    ]
    result = _invoke(*args)
    assert result.exit_code == 2 and len(_errors(result.output)) == 1, result.output
    assert not (tmp_path / "r" / "smoke").exists(), "nothing may train before the tracking URI is checked"
    advised = re.search(r"pass --tracking-uri (\S+)", result.output)
    assert advised and advised.group(1) == f"sqlite:///{folder / 'mlflow.db'}", result.output
    return advised.group(1)


def test_a_tracking_uri_mlflow_refuses_is_one_line_before_training(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason='the mlflow extra: pip install -e ".[mlflow]"')
    from report import track

    advised = _advised_uri(data_dir, tmp_path, monkeypatch)
    track.check_uri(advised)  # the advised form passes, its folder made
    assert (tmp_path / "runs").is_dir()


@pytest.mark.slow  # MLflow creates its database: about 10 s
def test_the_advised_tracking_uri_works(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason='the mlflow extra: pip install -e ".[mlflow]"')
    from report import track
    from tests.helpers import store_with

    advised = _advised_uri(data_dir, tmp_path, monkeypatch)
    assert track.to_mlflow(store_with(tmp_path / "logged", "q1"), "smoke", advised) == ["q1"]


def test_a_render_names_every_missing_result_in_one_command_that_runs_them(tmp_path, monkeypatch):
    """It named only the first; and the failed render left an empty --out behind."""
    import shlex

    from report import steps
    from tests.helpers import store_with

    monkeypatch.delenv("REPORT_CACHE", raising=False)  # the output folder's own cache, as a user's
    store_with(tmp_path / "r", "q1")
    store_with(tmp_path / "r", "q3")
    out = tmp_path / "b"
    result = _invoke("render", "--profile", "smoke", "--store", str(tmp_path / "r"), "--out", str(out))
    assert result.exit_code == 2 and len(_errors(result.output)) == 1, result.output
    assert "the report needs q2, q4 results for profile smoke" in result.output
    assert not out.exists(), "a failed render leaves no empty output folder"
    command = result.output.split("run: ")[-1].strip()
    assert command.startswith("build.py run q2 q4 --profile smoke"), command
    ran = []
    monkeypatch.setattr(steps, "run_experiments", lambda opts, names, force: ran.append((names, opts)) or 1)
    again = _invoke(*shlex.split(command)[1:])
    assert again.exit_code == 0, again.output
    assert ran[0][0] == ["q2", "q4"] and ran[0][1].store == tmp_path / "r" and ran[0][1].chosen == "smoke"


def test_the_device_named_in_the_environment_is_named_when_it_is_missing(data_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _invoke("run", "q1", *_smoke(data_dir, tmp_path / "r"), env={"REPORT_DEVICE": "cuda"})
    assert result.exit_code == 2 and _errors(result.output) == [
        "error: REPORT_DEVICE=cuda: no CUDA device is available; use --device auto or cpu"
    ], result.output


def test_a_folder_option_below_a_file_is_one_line_for_every_command(tmp_path):
    """A store below a file once read as every result stale, with rerun advice that ``run`` then refused;
    a data folder that is a file was reported as a dataset missing from it; ``clean --out FILE`` as a
    folder without a report. Now one line names the file and the option, before anything is read."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ["--store", str(blocker / "results")]
    said = f"--store {blocker / 'results'}: no folder can be made there ({blocker} is a file); pass another "
    said += "--store"
    for command in (["status"], ["export", "-o", str(tmp_path / "b.tar.gz")], ["diff"], ["run", "q1"]):
        result = _invoke(*command, "--profile", "smoke", *store)
        assert result.exit_code == 2 and _errors(result.output) == [f"error: {said}"], (
            command,
            result.output,
        )
    data = _invoke("status", "--data-dir", str(blocker))
    assert data.exit_code == 2 and f"--data-dir {blocker} is a file, not a folder" in data.output, data.output
    clean = _invoke("clean", "--out", str(blocker))
    assert clean.exit_code == 2 and f"--out {blocker} is a file, not a folder" in clean.output, clean.output
    assert blocker.read_text() == ""


def test_a_path_name_too_long_for_the_file_system_is_bad_input_not_a_crash(tmp_path):
    long = "x" * 300  # above the 255 bytes of a name on Linux file systems
    out = _invoke(
        "render", "--profile", "smoke", "--store", str(tmp_path / "r"), "--out", str(tmp_path / long)
    )
    assert out.exit_code == 2 and "file name too long; pass another --out" in out.output, out.output
    bundle = _invoke("export", "--store", str(tmp_path / "r"), "-o", str(tmp_path / f"{long}.tar.gz"))
    assert bundle.exit_code == 2 and "longer than the file system allows (a name in it" in bundle.output


@pytest.mark.slow  # the shared smoke build
def test_nothing_of_this_command_s_is_written_into_the_store_s_profile_folders(smoke_build, tmp_path):
    """``--out`` there was refused; ``export -o`` and ``diff --html`` wrote into a run's folder."""
    smoke_store = smoke_build.store
    run = next((smoke_store / "smoke" / "q1").glob("2*"))
    bundle = _invoke("export", "--profile", "smoke", "--store", str(smoke_store), "-o", str(run / "x.tar.gz"))
    assert bundle.exit_code == 2 and "lies in the results store" in bundle.output, bundle.output
    page = _invoke("diff", "--profile", "smoke", "--store", str(smoke_store), str(smoke_store), "--html",
                   str(run / "x.html"))  # fmt: skip
    assert page.exit_code == 2 and "lies in the results store" in page.output, page.output
    assert not list(run.glob("x.*"))
    beside = _invoke(
        "export", "--profile", "smoke", "--store", str(smoke_store), "-o", str(tmp_path / "x.tgz")
    )
    assert beside.exit_code == 0, beside.output


def test_diff_html_without_a_says_it_compares_reports_and_advises_a_command_that_parses(
    tmp_path, monkeypatch
):
    """``diff --html F`` alone was told that ``--report`` needs A, and advised a relative path that held
    only from the project folder, without the --store given."""
    store = tmp_path / "r"
    monkeypatch.chdir(tmp_path)  # another folder than the project's
    result = _invoke("diff", "--profile", "full", "--store", str(store), "--html", "d.html")
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "diff --report --html d.html compares two reports and needs A" in said
    advised = said.split("build.py diff ", 1)[1].split()
    bundle = advised[0]
    assert os.path.isfile(bundle) and os.path.isabs(bundle), said  # the reference bundle, from anywhere
    assert advised[1:] == ["--report", "--html", "d.html", "--profile", "full", "--store", str(store)], said
    assert _invoke("import", "").output.startswith("error: import needs a bundle: give its path")


def test_only_the_folders_a_command_takes_are_checked_and_a_default_is_called_one(tmp_path, monkeypatch):
    """A file named ``build`` where the default --out would go must not stop ``status``, which takes no
    --out (and would refuse the option the message advised); ``render`` names it as the default."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").write_text("")
    status = _invoke("status", "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert status.exit_code == 0, status.output
    render = _invoke("render", "--profile", "smoke", "--store", str(tmp_path / "r"))
    said = "error: --out build (the default) is a file, not a folder; pass a folder as --out"
    assert render.exit_code == 2 and _errors(render.output) == [said], render.output


def test_a_refused_accept_leaves_no_store_behind(tmp_path):
    """``accept`` into a store that did not exist was refused, but left the folder with its lock file."""
    store = tmp_path / "new"
    result = _invoke("accept", "q4", "--reason", "why", "--profile", "smoke", "--store", str(store))
    said = "error: no q4 result for profile smoke to accept; run it: build.py run q4 --profile smoke --store "
    said += str(store)
    assert result.exit_code == 2 and _errors(result.output) == [said], result.output
    assert not store.exists()
