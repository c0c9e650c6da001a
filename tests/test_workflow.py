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
    assert "build.py all --profile cpu" in runs
    assert any(u.startswith("actions/cache") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "build/report.pdf" in upload["with"]["path"] and "build/report.html" in upload["with"]["path"]
    full = next(s for s in steps if "--profile full" in s.get("run", ""))
    assert "experiments/reference/full.tar.gz" in full["if"] and "build.py render" in full["run"]


def test_readme_documents_the_workflow():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert ".github/workflows/report.yml" in readme and "artifact" in readme
