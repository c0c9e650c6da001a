"""Units of work on a real local Ray cluster: the same stored numbers as in-process, a worker killed mid-unit
retried, and a driver killed mid-build resumed by another executor without recomputing finished units.

The cluster tests may run beside each other (pytest-xdist): each acts only on its own build's Ray workers
and Slurm jobs, as on a cluster shared with other users."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from report.core.store import Store
from tests.conftest import ROOT, SMOKE_SETS, build_cmd, in_process

slow = pytest.mark.slow
on_ray, on_slurm = (
    pytest.mark.cluster("ray"),
    pytest.mark.cluster("slurm"),
)  # tests/conftest.py orders by these
# clocks, not results (how many Q3 points share a stack is the config's, so it must match too)
TIMING = {"epoch_s", "train_s", "train_time_s", "throughput", "peak_mem_bytes"}


def _run(data_dir: Path, store: Path, *extra: str) -> list[str]:
    return build_cmd("run", "q3", "q4", "--profile", "smoke", "--data-dir", str(data_dir), "--store",
                     str(store), *SMOKE_SETS, *extra)  # fmt: skip


def _tables(store: Path, experiment: str) -> dict[str, pd.DataFrame]:
    s = Store(store)
    return {
        t: s.read("smoke", experiment, t).drop(columns=TIMING, errors="ignore")
        for t in s.tables("smoke", experiment)
    }


@slow
@on_ray
def test_worker_processes_and_ray_store_the_same_numbers_as_one_process(data_dir, smoke_build, tmp_path):
    """The in-process build (--jobs 1) is the reference; the local build in worker processes (the smoke
    build's, --jobs 2; the units are cut for two cores whatever the machine) and a Ray build store the same
    tables, timings aside. A Ray worker is killed in the middle of a model's training: Ray runs that unit
    again, and the tables are still the same (each unit stored once)."""
    pytest.importorskip("ray", reason='the ray extra: pip install -e ".[ray]"')
    stores = {"here": tmp_path / "here", "processes": smoke_build.store, "ray": tmp_path / "ray"}
    here = in_process(_run(data_dir, stores["here"], "--jobs", "1"))
    assert here.returncode == 0, here.stderr
    ray = subprocess.Popen(_run(data_dir, stores["ray"], "--executor", "ray"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (busy := _busy_ray_workers(ray.pid)):
        assert ray.poll() is None and time.monotonic() < deadline, "no Ray worker started ResNet-50"
        time.sleep(0.05)
    assert _training(busy[0]), "ResNet-50's unit ended before the kill: nothing would be retried"
    os.kill(busy[0], signal.SIGKILL)
    out, _ = ray.communicate(timeout=900)
    assert ray.returncode == 0, out
    for experiment in ("q3", "q4"):
        reference = _tables(stores["here"], experiment)
        for way in ("processes", "ray"):
            other = _tables(stores[way], experiment)
            assert reference.keys() == other.keys()
            for name in reference:
                pd.testing.assert_frame_equal(
                    reference[name], other[name], check_exact=True, obj=f"{way}: {name}"
                )


@slow
def test_a_local_worker_killed_mid_unit_is_retried_once_and_the_others_are_kept(tmp_path):
    from experiments import executors, kit
    from tests import helpers

    units = [kit.Unit(f"sq{i}", helpers.square, (i,)) for i in range(4)]
    units.insert(1, kit.Unit("dies", helpers.die, (tmp_path / "died-once",)))
    local = executors.Local(2)
    try:
        got = {u.key: r for u, r in local.run(units, print)}
    finally:
        local.close()
    assert got == {"sq0": 0, "dies": 7, "sq1": 1, "sq2": 4, "sq3": 9}  # the killed unit ran again


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        except (OSError, ValueError, IndexError):  # gone
            return False
        if pid == ancestor:
            return True
    return False


def _busy_ray_workers(driver: int) -> list[int]:
    """The Ray workers training ResNet-50, the longest of the tests' smoke models (2.3 s of CPU), for this
    driver's build (its cluster is its own descendant)."""
    out = subprocess.run(["pgrep", "-f", r"^ray::resnet50"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split() if _descends_from(int(p), driver)]


def _training(pid: int) -> bool:
    """Whether Ray's worker ``pid`` still names ResNet-50's unit as its task (it says IDLE once done)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::resnet50")
    except OSError:
        return False


def _q4(data_dir: Path, store: Path, *extra: str) -> list[str]:
    return [a for a in _run(data_dir, store, *extra) if a != "q3"]


@slow
@on_ray
def test_a_driver_killed_mid_build_resumes_on_another_executor_without_recomputing(data_dir, tmp_path):
    pytest.importorskip("ray", reason='the ray extra: pip install -e ".[ray]"')
    store = tmp_path / "r"
    # two Ray workers take the models in order: when LeNet-5 and AlexNet are done, ResNet-18 is training
    # and ResNet-50, the longest, has just started (its 2.3 s on 2 cores are the margin for the kill)
    proc = subprocess.Popen(_q4(data_dir, store, "--executor", "ray"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    work = store / ".work" / "smoke"
    deadline = time.monotonic() + 600
    while len(done := list(work.glob("q4-*/*-seed0.pt"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "q4 did not finish two models"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the cluster it started
    proc.wait(timeout=60)
    finished = len(list(work.glob("q4-*/*-seed0.pt")))
    rerun = in_process(_q4(data_dir, store, "--executor", "local"))
    assert rerun.returncode == 0, rerun.stderr
    said = rerun.stdout + rerun.stderr
    kept = int(said.split("q4 models: ")[1].split(" of ")[0])
    assert kept >= finished >= len(done), said


@slow
@pytest.mark.parametrize("when", ["running", "starting"])
def test_local_workers_exit_when_their_driver_is_killed(tmp_path, when):
    """A driver killed outright cannot stop its worker processes; they notice and exit on their own, also
    when it dies while they are still starting."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom experiments import executors, kit\n"
        "from tests import helpers\n"
        "units = [kit.Unit(f'nap{i}', helpers.nap, (120, Path(sys.argv[1]) / f'{i}')) for i in range(2)]\n"
        "for _ in executors.Local(2).run(units, print):\n    pass\n"
    )
    root = Path(__file__).resolve().parents[1]
    driver = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root)

    def worker(pid: str) -> bool:
        try:
            return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")
        except OSError:  # gone
            return False

    def workers() -> list[str]:
        kids = subprocess.run(["pgrep", "-P", str(driver.pid)], capture_output=True, text=True).stdout
        return [k for k in kids.split() if worker(k)]

    deadline = time.monotonic() + 180
    while len(workers()) < 2 or (when == "running" and len(list(tmp_path.iterdir())) < 2):
        assert driver.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    alive = workers()
    driver.kill()
    driver.wait(timeout=30)
    deadline = time.monotonic() + 90
    while alive and time.monotonic() < deadline:
        alive = [k for k in alive if worker(k)]
        time.sleep(0.2)
    assert not alive, f"worker processes outlived their driver: {alive}"


def _slurm() -> None:
    """A real Slurm cluster must be up (.ci/run starts one with .ci/slurm-up); in CI its absence fails."""
    pytest.importorskip("submitit", reason='the slurm extra: pip install -e ".[slurm]"')
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        state = ""
    if not {"idle", "mix", "alloc"} & set(state.split()):
        if os.environ.get("SKIP_SLURM_TESTS"):  # a CI that documents why it has no cluster
            pytest.skip(os.environ["SKIP_SLURM_TESTS"])
        message = "no Slurm cluster is up: run .ci/slurm-up (as root)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)


def _no_cluster(folder: Path) -> dict[str, str]:
    """An environment whose ``sinfo`` answers that no node is up, as on a runner without Slurm, in CI."""
    (folder / "sinfo").write_text("#!/bin/sh\n")
    (folder / "sinfo").chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "CI": "true"}


def test_without_a_cluster_a_ci_run_fails_its_slurm_tests(tmp_path, monkeypatch):
    for name, value in _no_cluster(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SKIP_SLURM_TESTS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="no Slurm cluster is up"):
        _slurm()


def test_a_ci_without_a_cluster_skips_them_when_it_says_why(tmp_path):
    """Set before pytest starts, as a CI workflow sets it: the tests' isolation from the user's REPORT_*
    settings (conftest.py) must not remove it."""
    env = {**_no_cluster(tmp_path), "SKIP_SLURM_TESTS": "no Slurm on this runner"}
    test = "tests/test_executors.py::test_a_job_slurm_refuses_is_one_line_before_anything_trains"
    command = [sys.executable, "-m", "pytest", test, "-n", "0", "-p", "no:cacheprovider", "-rs", "-q"]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "1 skipped" in run.stdout, run.stdout[-2000:]
    assert "no Slurm on this runner" in run.stdout


def _running_slurm_jobs(store: Path) -> list[str]:
    """This build's running jobs: those that start in its code snapshot, under its store."""
    out = subprocess.run(["squeue", "-h", "-t", "R", "-n", "assignment-report", "-o", "%i %Z"],
                         capture_output=True, text=True).stdout  # fmt: skip
    jobs = (line.split(" ", 1) for line in out.splitlines())
    return [job for job, folder in jobs if folder.startswith(f"{store.resolve()}/")]


@on_slurm
def test_a_job_slurm_refuses_is_one_line_before_anything_trains(data_dir, tmp_path):
    """Asked of Slurm (sbatch --test-only) before Q1 trains in the build's own process: once, the refusal
    came only when Q3's first stage was submitted, and left a copy of the code behind."""
    _slurm()
    store = tmp_path / "s"
    args = build_cmd("run", "q1", "q3", "--profile", "smoke", "--data-dir", str(data_dir), "--store",
                     str(store), "--executor", "slurm", "--slurm-partition", "no-such-partition")  # fmt: skip
    result = in_process(args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Slurm refuses this build's jobs (invalid partition specified: no-such-partition" in errors[0]
    said = "change --slurm-partition no-such-partition or --slurm-time 120 (the default) to what the cluster"
    assert said in errors[0], "the default time is named as a default, not as something the user gave"
    assert not (store / "smoke").exists() and not list(store.glob(".slurm/code-*")), (
        "nothing ran or was copied"
    )


@on_slurm
def test_a_controller_that_does_not_answer_is_not_blamed_on_the_options(data_dir, tmp_path, monkeypatch):
    """Slurm's own configuration, pointing at a port where no controller listens: the refusal names what
    Slurm said and the cluster, not --slurm-partition or --slurm-time."""
    _slurm()
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    lines = [line for line in conf.read_text().splitlines() if not line.startswith("SlurmctldPort")]
    (tmp_path / "slurm.conf").write_text("\n".join([*lines, "SlurmctldPort=6999"]) + "\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    store = tmp_path / "s"
    result = in_process(build_cmd("run", "q1", "--profile", "smoke", "--data-dir", str(data_dir), "--store",
                                  str(store), "--executor", "slurm"))  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Unable to contact slurm controller" in errors[0]
    assert errors[0].endswith("check that the cluster is up and takes jobs from this machine (sinfo)")
    assert not (store / "smoke").exists()


@slow
@on_slurm
def test_slurm_stores_the_same_numbers_as_local(data_dir, tmp_path):
    """With relative --data-dir and --store, as users type them: the jobs start in the code snapshot. Each
    stage in two units, not four, and in one rung (a plain grid, ``q3.halving=1``): two array tasks a
    stage, 6 jobs instead of 14 (a job is a fresh Python that imports torch), the same split here and
    there. One job is cancelled while it runs: it is submitted again, and the tables are still the same
    (each unit stored once)."""
    _slurm()
    (tmp_path / "data").symlink_to(data_dir)

    def build(executor: str, *extra: str) -> list[str]:
        args = _run(Path("data"), Path(executor), "--set", "q3.units=2", "--set", "q3.halving=1", *extra)
        return [a for a in args if a != "q4"]

    local = in_process(build("local", "--jobs", "1"), cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    slurm = subprocess.Popen(build("slurm", "--executor", "slurm"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (running := _running_slurm_jobs(tmp_path / "slurm")):
        assert slurm.poll() is None and time.monotonic() < deadline, "no Slurm job started"
        time.sleep(0.2)
    subprocess.run(["scancel", running[0]], check=True)
    out, _ = slurm.communicate(timeout=900)
    assert slurm.returncode == 0, out
    assert "no result; submitted again" in out, out
    here, there = _tables(tmp_path / "local", "q3"), _tables(tmp_path / "slurm", "q3")
    for name in here:
        pd.testing.assert_frame_equal(here[name], there[name], check_exact=True, obj=f"q3.{name}")
    assert list((tmp_path / "slurm" / ".slurm").glob("code-*/experiments/q3.py")), "jobs ran a snapshot"


@slow
@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=on_ray)])
def test_a_failing_unit_is_named_in_one_line_and_the_others_are_kept(data_dir, tmp_path, executor):
    import dataclasses

    import torch

    from experiments import executors, kit, q3
    from experiments.configs.q3 import PROFILES

    if executor == "ray":
        pytest.importorskip("ray", reason='the ray extra: pip install -e ".[ray]"')
    cfg = dataclasses.replace(PROFILES["smoke"], sweep_epochs=1)
    good = [
        kit.Unit(f"good-{i}", q3.sweep_unit, (cfg, data_dir, 0, "cpu", [("lr", "adam", lr, 32, False)], 1))
        for i, lr in enumerate((1e-3, 1e-2))
    ]
    point = [("lr", "adam", 1e-3, 32, False)]
    bad = kit.Unit("bad", q3.sweep_unit, (cfg, tmp_path / "nowhere", 0, "cpu", point, 1))
    ctx = kit.RunContext(
        torch.device("cpu"), 0, data_dir, tmp_path / "work", executor=executors.make(executor)
    )
    (tmp_path / "work").mkdir()
    try:
        with pytest.raises(kit.UnitError) as failed:
            ctx.map([good[0], bad, good[1]], "test units")
    finally:
        ctx.executor.close()
    lines = str(failed.value).splitlines()
    assert lines[0].startswith("1 of 3 units failed") and len(lines) == 2
    assert lines[1].startswith("bad: DataError: MNIST (train) in ") and "nowhere" in lines[1]
    assert sorted(p.name for p in (tmp_path / "work").glob("*.pt")) == ["good-0.pt", "good-1.pt"]


def test_a_failed_slurm_job_is_named_by_its_error_not_its_log_paths():
    from submitit.core.utils import FailedJobError

    from experiments.executors import Failed, SlurmExecutor

    class Job:
        job_id = "7_1"

        def result(self):
            raise FailedJobError(
                "Job (task=1) failed during processing with trace:\n----------------------\nTraceback (most "
                "recent call last):\n  File x\nValueError: the unit broke\n\n----------------------\nYou can "
                "check full logs with 'job.stderr(1)' and 'job.stdout(1)'or at paths:\n  - /s/7_1_log.err\n"
                "  - /s/7_1_log.out"
            )

    assert SlurmExecutor._outcome(Job()) == Failed("ValueError: the unit broke")
