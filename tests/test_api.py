"""``from report import open_store``: the results from Python, and the example notebook run against a real
smoke store (nbclient executes every cell in a real kernel), so neither can rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from report import open_store
from report.core.errors import MissingResultError
from report.core.store import Store
from tests.conftest import ROOT, SMOKE_TOML

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, store: Path, data_dir: Path) -> Path:
    path = tmp_path / "report.toml"
    lines = [
        'profile = "smoke"',
        f'store = "{store}"',
        f'data_dir = "{data_dir}"',
    ]
    path.write_text("\n".join(lines) + "\n" + SMOKE_TOML)
    return path


def test_open_store_reads_tables_with_their_provenance_and_the_report_s_context(
    smoke_build, data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORT_SETTINGS", str(_settings(tmp_path, smoke_build.store, data_dir)))
    results = open_store()
    store = Store(smoke_build.store)
    assert results.profile == "smoke" and results.experiments() == ["q1", "q2", "q3", "q4"]
    final = results.table("q3", "final")
    assert final.equals(store.read("smoke", "q3", "final"))
    assert final.attrs["run_id"] == store.meta("smoke", "q3")["run_id"]
    assert final.attrs["config"] == store.meta("smoke", "q3")["config"]
    runs = results.runs("q4")
    assert runs["current"].sum() == 1 and runs.loc[runs["current"], "state"].item() == "current"
    assert sorted(results.tables("q4")) == store.tables("smoke", "q4")
    q4 = results.context("q4")
    assert q4["ranking"][0] == q4["best"]["title"]
    with pytest.raises(MissingResultError, match=r"see \.runs\('q3'\)"):
        results.table("q3", "final", run="20000101-000000-000000-0000")


def test_the_example_notebook_runs(smoke_build, data_dir, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("REPORT_SETTINGS", str(_settings(tmp_path, smoke_build.store, data_dir)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(ROOT / "examples" / "results.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    mean = Store(smoke_build.store).read("smoke", "q3", "final")["test_acc"].mean()
    assert "mean test accuracy over" in printed and f"{mean:.4f}" in printed
    assert "ranking:" in printed


def api_reference() -> str:
    """The README's API list, generated from the docstrings: the first paragraph of each."""
    import inspect

    from report import api

    def first(obj: object) -> str:
        return " ".join(inspect.getdoc(obj).split("\n\n")[0].split())

    lines = [
        f"- `open_store(root=None, profile=None, data_dir=None, overrides=None)`: {first(api.open_store)}"
    ]
    for name in ("profiles", "experiments", "tables", "runs", "meta", "table", "context"):
        method = getattr(api.OpenStore, name)
        params = ", ".join(p for p in inspect.signature(method).parameters if p != "self")
        lines.append(f"- `.{name}({params})`: {first(method)}")
    return "\n".join(lines)


def test_the_documented_api_reference_is_the_docstrings():
    docs = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert api_reference() in docs, "regenerate docs/results.md's list from tests/test_api.py:api_reference()"


def test_runs_of_an_experiment_never_run_is_an_empty_table(tmp_path):
    runs = open_store(tmp_path / "empty", profile="smoke", data_dir=tmp_path).runs("q2")
    assert runs.empty and "run_id" in runs.columns


def test_the_environment_beats_the_settings_file_as_it_does_for_build_py(tmp_path, monkeypatch):
    """open_store() takes REPORT_PROFILE, REPORT_STORE and REPORT_DATA_DIR before report.toml's values."""
    settings = tmp_path / "report.toml"
    settings.write_text(f'profile = "full"\nstore = "{tmp_path / "file-store"}"\ndata_dir = "{tmp_path}"\n')
    monkeypatch.setenv("REPORT_SETTINGS", str(settings))
    assert open_store().store.root == tmp_path / "file-store"
    monkeypatch.setenv("REPORT_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("REPORT_PROFILE", "smoke")
    monkeypatch.setenv("REPORT_DATA_DIR", str(tmp_path / "env-data"))
    opened = open_store()
    assert (opened.store.root, opened.profile) == (tmp_path / "env-store", "smoke")
    assert opened.request.data_dir == tmp_path / "env-data"
