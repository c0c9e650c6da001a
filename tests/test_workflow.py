"""The GitHub Actions workflow users copy: valid YAML with the steps the README promises."""

from pathlib import Path


def test_github_workflow_installs_tests_builds_and_uploads():
    import yaml

    workflow = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / ".github/workflows/report.yml").read_text()
    )
    steps = workflow["jobs"]["build"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    uses = [s.get("uses", "") for s in steps]
    assert 'pip install -e ".[test]"' in runs and "python -m pytest" in runs
    assert "python build.py all" in runs and "--profile" not in runs  # the default: the full report
    assert any(u.startswith("actions/cache") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "build/report.pdf" in upload["with"]["path"] and "build/report.html" in upload["with"]["path"]
    diff = next(
        s["run"] for s in steps if "build.py diff" in s.get("run", "")
    )  # the change against the reference
    assert "--report" in diff and "--html build/report-diff.html" in diff
    assert "build/report-diff.html" in upload["with"]["path"]


def test_the_docs_document_the_workflow():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    assert ".github/workflows/report.yml" in docs and "artifact" in docs


def test_the_workflow_renders_the_committed_reference_results_current(tmp_path):
    """The workflow's build takes Q4 from experiments/reference/full.tar.gz, with the workflow's settings;
    every result in it must be current for this code, or the build would retrain (Q4: its stand-in) and
    the reference would be of no use. Rendered (the same request, no training) with all four imported."""
    import shlex
    import subprocess
    import sys

    import yaml

    from report.core.store import Store
    from tests.conftest import ROOT

    workflow = yaml.safe_load((ROOT / ".github/workflows/report.yml").read_text())
    build = next(s for s in workflow["jobs"]["build"]["steps"] if "build.py all" in s.get("run", ""))
    args = shlex.split(build["run"])
    assert args[:3] == ["python", "build.py", "all"], build["run"]
    store, out = tmp_path / "results-full", tmp_path / "full"
    args = [sys.executable, str(ROOT / "build.py"), "render", *args[3:], "--store", str(store), "--out",
            str(out), "--format", "html", "--data-dir", str(out)]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported from the reference results experiments/reference/full.tar.gz" in proc.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    stale = html.count('class="stale"')
    assert stale == 0, (
        f"{stale} stale flags: the reference results are stale for this code. Rerun the full profile on a "
        "GPU (benchmarks/gpu_full.sh), or, if the change leaves the results as they are, `build.py accept` "
        "them with a reason and export the bundle again (experiments/reference/README.md)"
    )
    for name in ("q1", "q2", "q3", "q4"):
        assert Store(store).meta("full", name)["device_name"] in html
    assert "is not the full study" not in html and "in its place" not in html  # no stand-in, no banner
