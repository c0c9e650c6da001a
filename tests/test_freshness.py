"""One freshness rule: ``status``, ``all`` and the report's stale flags agree on every kind of change."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

import build
from report.core import fingerprint as fp
from report.core.store import Store
from tests.conftest import SMOKE_SETS

pytestmark = pytest.mark.slow
runner = CliRunner()

# case -> what status says about q1; all reruns exactly what it calls missing or stale
CASES = {
    "current": "current",
    "code": "stale: code changed",
    "config": "stale: config changed",
    "data": "stale: data changed",
    "versions": "current (made with torch",
    "strict versions": "stale: versions changed",
    "files": "stale: files changed",
    "missing": "missing",
}


def _invoke(*args: str):
    return runner.invoke(build.app, list(args))


@pytest.mark.parametrize("case", list(CASES))
def test_status_all_and_report_agree(case, smoke_build, data_dir, tmp_path, monkeypatch):
    store, data = tmp_path / "results", tmp_path / "data"
    shutil.copytree(smoke_build.store, store)
    shutil.copytree(data_dir, data)
    extra: list[str] = []
    if case == "code":  # the same experiments with one edit to q1's module
        roots = tmp_path / "experiments"
        shutil.copytree(fp.CODE_ROOTS["experiments"], roots)
        (roots / "q1.py").write_text((roots / "q1.py").read_text() + "\n# an edit\n")
        monkeypatch.setitem(fp.CODE_ROOTS, "experiments", roots)
    elif case == "config":
        extra = ["--set", "q1.segments=300"]
    elif case == "data":
        labels = data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
        raw = bytearray(labels.read_bytes())
        raw[-1] ^= 1
        labels.write_bytes(bytes(raw))
    elif case in ("versions", "strict versions"):  # this machine has another torch than the results
        made_with = fp.versions()
        monkeypatch.setattr(fp, "versions", lambda: {**made_with, "torch": "0.0.1"})
        extra = ["--strict-versions"] if case == "strict versions" else []
    elif case == "files":
        table = Store(store).path("smoke", "q1", "segments")
        table.write_bytes(table.read_bytes()[:-100])
    elif case == "missing":
        shutil.rmtree(store / "smoke" / "q1")
    common = ["--profile", "smoke", "--data-dir", str(data), "--store", str(store), *SMOKE_SETS, *extra]
    expected = CASES[case]

    status = _invoke("status", *common)
    assert status.exit_code == 0, status.output
    row = next(line for line in status.output.splitlines() if line.strip().startswith("│ q1"))
    assert expected in row, row
    others = [line for line in status.output.splitlines() if line.strip().startswith(("│ q2", "│ q4"))]
    assert all("current" in line for line in others) == (case not in ("data", "strict versions")), others

    out = tmp_path / "out"
    shutil.copytree(smoke_build.out / ".cache", out / ".cache")  # figures and math of the smoke build
    page = _invoke("render", *common, "--out", str(out), "--format", "html")
    if case == "missing":
        assert page.exit_code == 2 and "run: build.py run q1 --profile smoke" in page.output
    elif case == "files":
        assert page.exit_code == 2 and "corrupt or truncated" in page.output
    else:
        assert page.exit_code == 0, page.output
        html = (out / "report.html").read_text(encoding="utf-8")
        flagged = f"q1 ({expected.removeprefix('stale: ')})" in html
        assert flagged == expected.startswith("stale"), "the report's stale flag must match status"
        if case == "versions":  # provenance, not staleness: the footnotes name the versions used
            assert f"made with torch {made_with['torch']} (here 0.0.1)" in html

    built = _invoke("all", *common, "--out", str(out), "--format", "html")
    assert built.exit_code == 0, built.output
    if case in ("current", "versions"):
        assert "q1: up to date" in built.output and "running" not in built.output
    else:
        assert "q1: running" in built.output
    again = _invoke("status", *common)
    assert "│ q1" in again.output and "stale" not in again.output and "missing" not in again.output
