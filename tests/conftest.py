"""Fixtures shared across test files: generated datasets and one smoke build of the whole report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.datasets import write_dataset

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see build.py: set before torch is imported


def _isolate_from_the_users_settings() -> None:
    """The tests describe the project, not this machine: a user's report.toml (beside build.py or in the
    current folder) and REPORT_* variables would change what a command does, so every test, and every
    build.py it starts, reads an empty settings file and no REPORT_* value."""
    import tempfile

    for name in [n for n in os.environ if n.startswith("REPORT_")]:
        del os.environ[name]
    empty = Path(tempfile.mkdtemp(prefix="report-settings-")) / "report.toml"
    empty.write_text("# the tests' settings: none (tests/conftest.py)\n")
    os.environ["REPORT_SETTINGS"] = str(empty)


_isolate_from_the_users_settings()

ROOT = Path(__file__).resolve().parents[1]
SMOKE_SETS = ["--set", "q4.dataset=fashion-mnist"]


def build_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "build.py"), *args]


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


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """MNIST and Fashion-MNIST stand-ins in torchvision's format, sized for the smoke profiles."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, "MNIST", n_train=4000, n_test=1000, seed=0)
    write_dataset(root, "FashionMNIST", n_train=1200, n_test=1000, seed=1)
    return root


@dataclass(frozen=True)
class Build:
    store: Path
    out: Path
    html: Path
    pdf: Path
    log: str


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, data_dir) -> Build:
    """``build.py all --profile smoke`` once, in a temporary store and output folder."""
    tmp = tmp_path_factory.mktemp("smoke")
    store, out = tmp / "results", tmp / "build"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        smoke_all(data_dir, store, out, *SMOKE_SETS),
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Build(store, out, out / "report.html", out / "report.pdf", proc.stderr)
