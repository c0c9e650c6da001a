"""Fixtures shared across test files: generated datasets and one smoke build of the whole report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from tests.datasets import write_dataset

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see build.py: set before torch is imported


def _isolate_from_the_users_settings() -> None:
    """The tests describe the project, not this machine: a user's report.toml (beside build.py or in the
    current folder) and REPORT_* variables would change what a command does, so every test, and every
    build.py it starts, reads an empty settings file and none of the user's REPORT_* values (only the
    tests' own: REPORT_SETTINGS, REPORT_JOBS and REPORT_CACHE)."""
    import atexit
    import tempfile

    for name in [n for n in os.environ if n.startswith("REPORT_")]:
        del os.environ[name]
    folder = tempfile.mkdtemp(prefix="report-settings-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # each test process makes one
    empty = Path(folder) / "report.toml"
    empty.write_text("# the tests' settings: none (tests/conftest.py)\n")
    os.environ["REPORT_SETTINGS"] = str(empty)
    # Units run in the build's own process: each worker process imports torch and torchvision (about 4 s
    # of CPU) for a smoke unit that trains for a fraction of that. The tests of worker processes, and of
    # signals to a build that has them, say --jobs 2 (WORKERS), which the command line sets over this.
    os.environ["REPORT_JOBS"] = "1"


_isolate_from_the_users_settings()


def _let_ctrl_c_through() -> None:
    """The interrupt tests send SIGINT to the builds they start. A shell runs a background job (``pytest &``,
    ``nohup``, some CI runners) with SIGINT ignored, and an ignored signal stays ignored across exec, so
    every build would ignore the test's Ctrl-C; Python's own handler here makes the builds get the default."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_let_ctrl_c_through()

ROOT = Path(__file__).resolve().parents[1]
# The tests' smoke builds: Fashion-MNIST for SVHN (which they cannot download), and Q4's cheaper models, one
# of each kind the report compares (a plain CNN, AlexNet, a shallow and a deeper ResNet): VGG-16-BN and
# ResNet-101 are 5.3 of the 9.8 s of CPU Q4's smoke run takes on a 2-core machine, in each of the suite's
# builds. Every model trains through the whole pipeline apart (tests/test_q4_training.py).
SMOKE_Q4 = {"dataset": "fashion-mnist", "models": "lenet5,alexnet,resnet18,resnet50"}
SMOKE_SETS = [a for key, value in SMOKE_Q4.items() for a in ("--set", f"q4.{key}={value}")]
SMOKE_TOML = "[set.q4]\n" + "".join(f'{key} = "{value}"\n' for key, value in SMOKE_Q4.items())
WORKERS = ["--jobs", "2"]  # two worker processes on any machine, as a 2-core machine runs by default


def build_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "build.py"), *args]


def in_process(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cmd``, a ``build_cmd`` list, run by build.py's app in this process (click's runner): its exit
    status, and its output (both streams, as stdout and as stderr). Starting a process costs about 5 s of
    CPU (Python, torch, torchvision) that this one has paid; a test of signals or processes starts its own.
    Unlike a process of its own, it shares this one's data caches (experiments.q3.load_splits,
    experiments.q4.prepare: a test that edits data files must not use it) and warnings; the random
    generators it seeds are restored."""
    import random
    import traceback

    import numpy as np
    import torch
    from typer.testing import CliRunner

    import build

    here, states = Path.cwd(), (random.getstate(), np.random.get_state(), torch.get_rng_state())
    os.chdir(cwd or here)
    try:
        result = CliRunner().invoke(build.app, cmd[2:])
    finally:
        os.chdir(here)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        out += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(cmd, result.exit_code, out, out)


def smoke_all(data_dir: Path, store: Path, out: Path, *extra: str) -> list[str]:
    """``build.py all`` on the smoke profile into a given store and output folder."""
    return build_cmd(
        "all",
        "--profile",
        "smoke",
        "--data-dir",
        str(data_dir),
        "--store",
        str(store),
        "--out",
        str(out),
        *extra,
    )


def render_args(store: Path, out: Path, *extra: str) -> list[str]:
    """``render`` of the smoke profile from a given store into a given output folder."""
    return ["render", "--profile", "smoke", "--store", str(store), "--out", str(out), *extra]


def copy_project(tmp_path: Path) -> Path:
    """A copy of the project's files (no git, data, results or outputs) to edit in a test."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns(".git", "results", "build", "data", "__pycache__", ".pytest_cache")
    shutil.copytree(ROOT, project, ignore=ignore)
    return project


DURATIONS = "assignment-report/durations"  # pytest's cache (.pytest_cache): each test's seconds when last run
_timed: dict[str, float] = {}


def _durations(config: pytest.Config) -> dict[str, float]:
    """Each test's seconds in the last run that ran it: read from pytest's cache by the process that runs
    the session, which hands them to each xdist worker (one read, so every worker orders alike)."""
    if hasattr(config, "workerinput"):
        return config.workerinput.get("durations", {})
    cache = getattr(config, "cache", None)  # none with -p no:cacheprovider
    kept = cache.get(DURATIONS, {}) if cache is not None else {}
    if not isinstance(kept, dict):  # not this file's
        return {}
    return {k: float(v) for k, v in kept.items() if isinstance(v, int | float)}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # pytest-xdist's, in the controller, for each worker
    node.workerinput["durations"] = _durations(node.config)


def _estimate(item: pytest.Item) -> float:
    """A test's seconds on a 2-core machine before a run in this checkout has timed it."""
    return 60.0 if item.get_closest_marker("cluster") else 15.0 if item.get_closest_marker("slow") else 0.3


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """A test that reads the smoke build needs one (half a minute of training and printing): it is slow,
    marked before ``-m`` and ``-k`` select the tests to run, which are then put in order.

    The order, for pytest-xdist, which hands each worker two tests and then one at a time as it finishes
    (``--maxschedchunk 1``): the Slurm tests first, so the first worker runs them one after the other (the
    cluster has as many cores as this machine; side by side they would queue each other's jobs and leave
    the cores idle), then the Ray tests, then the files with the most test time (their selected tests'
    seconds in the last run that timed them, else an estimate), so the run does not end on a lone long
    test; the first test that reads the smoke build comes third, the second worker's first. A file's own
    order is kept otherwise, so a module's fixtures are made at most once a worker."""
    for item in items:
        if "smoke_build" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    yield  # the other plugins' hooks: -m and -k deselect here
    timed = _durations(config)
    seconds: dict[str, float] = {}
    for item in items:
        file = item.nodeid.split("::")[0]
        seconds[file] = seconds.get(file, 0.0) + timed.get(item.nodeid, _estimate(item))

    def order(item: pytest.Item) -> tuple[int, float]:
        cluster = item.get_closest_marker("cluster")
        kind = cluster.args[0] if cluster and cluster.args else None
        return {"slurm": 0, "ray": 1}.get(kind, 2), -seconds[item.nodeid.split("::")[0]]

    items.sort(key=order)  # stable
    # Unless the first worker's first test reads the smoke build, the second worker's first one does: the
    # build starts at once, beside the Slurm tests, and no worker waits for it later (one waited 28 s).
    first = next((i for i, item in enumerate(items) if "smoke_build" in getattr(item, "fixturenames", ())), 0)
    if first and len(items) > 2:
        items.insert(2, items.pop(first))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _timed[report.nodeid] = _timed.get(report.nodeid, 0.0) + report.duration  # setup, call and teardown


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep each test's seconds for the next run's order (by pytest-xdist's controller, which sees every
    worker's reports), forgetting the tests of files that are gone."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _timed:
        return
    root = session.config.rootpath
    kept = {k: v for k, v in _durations(session.config).items() if (root / k.split("::")[0]).exists()}
    cache.set(DURATIONS, {**kept, **_timed})


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """``make(folder)`` once per test run, in a folder every pytest-xdist worker of the run shares: the first
    worker to ask makes it, the others wait for it and reuse it (each worker's session fixtures would
    otherwise repeat the work, a whole smoke build each)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not the worker's
    folder, made = shared / name, shared / f"{name}.made"
    with FileLock(str(shared / f"{name}.lock")):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_drawing_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every build.py the tests start keeps its drawn figures, typeset math and compiled templates in one
    folder of the run (``--cache``, by REPORT_CACHE), so each is made once per run rather than once per
    output folder: about 4 s of CPU for each of the suite's renders. Tests of ``clean``, which would
    delete that folder, and of the default layout unset it."""
    from report import output

    os.environ["REPORT_CACHE"] = str(made_once(tmp_path_factory, "drawings", lambda f: output.drawings(f, f)))


def _write_data(root: Path) -> None:
    write_dataset(root, "MNIST", n_train=4000, n_test=1000, seed=0)
    write_dataset(root, "FashionMNIST", n_train=1200, n_test=1000, seed=1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """MNIST and Fashion-MNIST stand-ins in torchvision's format, sized for the smoke profiles; written once
    per run and only read by the tests."""
    return made_once(tmp_path_factory, "data", _write_data)


@dataclass(frozen=True)
class Build:
    store: Path
    out: Path
    html: Path
    pdf: Path
    log: str


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, data_dir) -> Build:
    """``build.py all --profile smoke`` once per run, in a temporary store and output folder that the tests
    read or copy, never change (every worker shares them). Two worker processes (``--jobs 2``) on any
    machine, so tests/test_executors.py compares its tables with an in-process build and a Ray one."""

    def build(tmp: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run(
            smoke_all(data_dir, tmp / "results", tmp / "build", *SMOKE_SETS, *WORKERS),
            capture_output=True,
            text=True,
            cwd=tmp,
            env=env,
            timeout=600,
        )
        (tmp / "outcome.json").write_text(json.dumps({"returncode": proc.returncode, "log": proc.stderr}))

    tmp = made_once(tmp_path_factory, "smoke", build)
    outcome = json.loads((tmp / "outcome.json").read_text())
    assert outcome["returncode"] == 0, outcome["log"][-3000:]
    store, out = tmp / "results", tmp / "build"
    return Build(store, out, out / "report.html", out / "report.pdf", outcome["log"])
