"""One freshness rule: ``status``, ``all`` and the report's stale flags agree on every kind of change."""

from __future__ import annotations

import re
import shutil

import pandas as pd
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
    "runner": "stale: code changed",
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
    elif case == "runner":  # the code that runs every experiment: a seed off by one changes every result
        roots = tmp_path / "experiments"
        shutil.copytree(fp.CODE_ROOTS["experiments"], roots)
        runner_py = roots / "runner.py"
        edited = runner_py.read_text().replace(
            "RunContext(device, request.seed,", "RunContext(device, request.seed + 1,"
        )
        assert edited != runner_py.read_text()
        runner_py.write_text(edited)
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
    if case == "config":  # which setting, from what the run used to what this request asks
        assert re.search(r"stale: config changed \(segments \d+ → 300\)", row), row
    others = [line for line in status.output.splitlines() if line.strip().startswith(("│ q2", "│ q4"))]
    everything = ("data", "strict versions", "runner")  # changes that reach every experiment
    assert all("current" in line for line in others) == (case not in everything), others

    out = tmp_path / "out"
    page = _invoke("render", *common, "--out", str(out), "--format", "html")
    if case == "missing":
        assert page.exit_code == 2 and "run: build.py run q1 --profile smoke" in page.output
    elif case == "files":
        assert page.exit_code == 2 and "corrupt or truncated" in page.output
    else:
        assert page.exit_code == 0, page.output
        html = (out / "report.html").read_text(encoding="utf-8")
        said = re.escape(expected.removeprefix("stale: "))
        flagged = re.search(rf"q1 \({said}[);]", html) is not None
        if case == "config":  # the settings, as status names them
            assert re.search(r"q1 \(config changed; settings: segments \d+ → 300\)", html)
            assert re.search(
                r"Stale: the config changed since this run \(settings: segments \d+ → 300\)", html
            )
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


def test_accept_carries_results_over_a_code_change_and_says_so(smoke_build, data_dir, tmp_path, monkeypatch):
    """``accept`` (dvc commit's idea): only a code change, only with a reason, and the report tells."""
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    roots = tmp_path / "experiments"
    shutil.copytree(fp.CODE_ROOTS["experiments"], roots)
    monkeypatch.setitem(fp.CODE_ROOTS, "experiments", roots)
    (roots / "q1.py").write_text((roots / "q1.py").read_text() + "\n# an edit\n")
    common = ["--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store), *SMOKE_SETS]

    def tree() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in store.rglob("*") if p.name != ".lock"}

    shutil.rmtree(store / "smoke" / "q2")
    before = tree()
    for refused, words in [
        (["q1", "--reason", " "], "accept needs a --reason"),
        (["q1", "--reason", "x", "--set", "q1.segments=300"], "its code, config changed"),
        (["q1", "--reason", "x", "--seed", "7"], "its code, config changed"),
        (["q1", "q2", "--reason", "x"], "run it: build.py run q2 --profile smoke"),
    ]:
        result = _invoke("accept", *common, *refused)
        assert result.exit_code == 2 and words in result.output, result.output
    assert tree() == before, "a refused accept wrote nothing"
    shutil.copytree(smoke_build.store / "smoke" / "q2", store / "smoke" / "q2")
    old = Store(store).meta("smoke", "q1")

    accepted = _invoke("accept", *common, "q1", "q2", "--reason", "a comment [only]")
    assert accepted.exit_code == 0, accepted.output
    assert "q1: accepted as current" in accepted.output and "q2: already current" in accepted.output
    new = Store(store).meta("smoke", "q1")
    assert new["run_id"] != old["run_id"] and new["finished"] == old["finished"]
    assert new["accepted"][-1]["reason"] == "a comment [only]"
    assert new["accepted"][-1]["run_id"] == old["run_id"]
    s, made = Store(store), Store(smoke_build.store)
    for table in s.tables("smoke", "q1"):  # the same results, in a new run of their own
        pd.testing.assert_frame_equal(s.read("smoke", "q1", table), made.read("smoke", "q1", table))

    status = _invoke("status", *common)
    row = " ".join(line for line in status.output.splitlines() if "│ q1" in line or "accepted" in line)
    assert "current" in row and "stale" not in row and "code changed after this run; accepted on" in row, row
    out = tmp_path / "out"
    page = _invoke("render", *common, "--out", str(out), "--format", "html")
    assert page.exit_code == 0, page.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "The code changed after this run; accepted on" in html and "a comment [only]" in html
    assert "current (code change accepted)" in html
    built = _invoke("all", *common, "--out", str(out), "--format", "html")
    assert built.exit_code == 0 and "q1: up to date" in built.output, built.output

    (roots / "q1.py").write_text((roots / "q1.py").read_text() + "\n# another edit\n")
    again = _invoke("status", *common)
    row = next(line for line in again.output.splitlines() if line.strip().startswith("│ q1"))
    assert "stale: code changed" in row and "accepted" not in again.output, again.output

    second = _invoke("accept", *common, "q1", "--reason", "another comment.")
    assert second.exit_code == 0, second.output
    status = _invoke("status", *common)  # a row says how often and when; the report gives every reason
    row = " ".join(" ".join(status.output.split()).split("│ q2")[0].split("│ q1")[1:])
    assert "accepted 2 times on 20" in row and "comment" not in row, status.output
    page = _invoke("render", *common, "--out", str(out), "--format", "html")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert ": a comment [only]; on " in html and ": another comment." in html  # both, in order
