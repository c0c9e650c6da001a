"""``clean`` deletes what the build wrote and nothing else: a folder of the user's files named by
``--out``, by ``out`` in a settings file or as ``--store`` is refused in one line, with nothing touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import build
from report import output
from report.core.store import Store
from tests.conftest import render_args
from tests.helpers import store_with

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the run's shared ``--cache`` (tests/conftest.py): clean would delete it under the other tests."""
    monkeypatch.delenv("REPORT_CACHE", raising=False)


def _users_files(folder: Path) -> dict[Path, bytes]:
    """A folder of someone's work, returned as path -> bytes to compare afterwards."""
    files = {
        folder / "thesis.tex": b"precious\n",
        folder / "figures" / "plot.pdf": b"%PDF-1.7 mine\n",
        folder / ".git" / "HEAD": b"ref: refs/heads/main\n",
        folder / "report.html": b"<p>my own report, not the build's</p>\n",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_clean_refuses_a_folder_of_the_users_files(tmp_path):
    victim = tmp_path / "victim"
    _users_files(victim)
    before = _snapshot(victim)
    result = runner.invoke(build.app, ["clean", "--out", str(victim)])
    assert result.exit_code == 2, result.output
    assert "nothing was deleted" in result.output and len(result.output.strip().splitlines()) == 1
    assert _snapshot(victim) == before


def test_out_dot_in_a_settings_file_never_deletes_the_project(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _users_files(project)
    (project / "report.toml").write_text('out = "."\n')
    before = _snapshot(project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("REPORT_SETTINGS", str(project / "report.toml"))
    for args in (["clean"], ["clean", "--results", "--yes", "--store", "."]):
        result = runner.invoke(build.app, args)
        assert result.exit_code == 2 and "nothing was deleted" in result.output, result.output
        assert _snapshot(project) == before


def test_clean_removes_only_what_a_render_wrote_beside_the_users_files(tmp_path, smoke_build, monkeypatch):
    """A report rendered into a folder of the user's: clean takes the report and its cache, keeps the rest."""
    shared = tmp_path / "shared"
    _users_files(shared)
    (shared / "report.html").unlink()  # the render writes its own here
    before = _snapshot(shared)
    rendered = runner.invoke(build.app, render_args(smoke_build.store, shared, "--format", "html"))
    assert rendered.exit_code == 0, rendered.output
    assert (shared / "report.html").is_file() and (shared / output.CACHE / output.TAG).is_file()
    result = runner.invoke(build.app, ["clean", "--out", str(shared)])
    assert result.exit_code == 0, result.output
    assert _snapshot(shared) == before  # the user's files, byte for byte, and nothing of the build's
    assert not (shared / output.CACHE).exists()


def test_clean_removes_a_build_folder_it_wrote(tmp_path, smoke_build):
    out = tmp_path / "build"
    shutil.copytree(smoke_build.out, out)
    result = runner.invoke(build.app, ["clean", "--out", str(out)])
    assert result.exit_code == 0 and not out.exists(), result.output


def test_clean_results_refuses_a_store_that_holds_other_files(tmp_path):
    store = tmp_path / "r"
    store_with(store, "q1")
    (store / "notes.txt").write_text("mine")
    out = tmp_path / "b"
    output.cache_dir(out)
    result = runner.invoke(
        build.app, ["clean", "--results", "--yes", "--store", str(store), "--out", str(out)]
    )
    assert result.exit_code == 2 and "nothing was deleted" in result.output, result.output
    assert (store / "notes.txt").read_text() == "mine" and Store(store).has("smoke", "q1")
    os.remove(store / "notes.txt")
    result = runner.invoke(
        build.app, ["clean", "--results", "--yes", "--store", str(store), "--out", str(out)]
    )
    assert result.exit_code == 0 and not Store(store).has("smoke", "q1"), result.output


def test_a_store_lookalike_holding_user_files_is_refused_and_nothing_else_is_cleaned(tmp_path):
    """A folder shaped like profile/experiment/current where `current` is a folder of the user's, and a
    cache folder that is a symlink: both refused before anything (the report files included) goes."""
    store = tmp_path / "r"
    (store / "a" / "b" / "current").mkdir(parents=True)
    (store / "a" / "b" / "current" / "notes.md").write_text("mine")
    out = tmp_path / "b"
    output.cache_dir(out)
    (out / "report.html").write_text("<p>a report</p>")
    (out / output.CACHE / "report.html.sha256").write_text("x")
    result = runner.invoke(
        build.app, ["clean", "--results", "--yes", "--store", str(store), "--out", str(out)]
    )
    assert result.exit_code == 2 and "nothing was deleted" in result.output, result.output
    assert (store / "a" / "b" / "current" / "notes.md").read_text() == "mine" and (
        out / "report.html"
    ).exists()
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / output.CACHE, elsewhere)
    (out / output.CACHE).symlink_to(elsewhere)
    result = runner.invoke(build.app, ["clean", "--out", str(out)])
    assert result.exit_code == 2 and (out / "report.html").exists() and (elsewhere / output.TAG).exists()


def test_a_shared_cache_serves_two_output_folders_and_clean_cache_empties_only_it(tmp_path, smoke_build):
    cache, first, second = tmp_path / "cache", tmp_path / "a", tmp_path / "b"
    drawn: dict[str, int] = {}
    for out in (first, second):
        result = runner.invoke(
            build.app, render_args(smoke_build.store, out, "--format", "html", "--cache", str(cache))
        )
        assert result.exit_code == 0, result.output
        assert not (out / output.CACHE / "figures").exists()  # drawn into the shared cache
        svgs = {p.name: p.stat().st_mtime_ns for p in (cache / "figures").glob("*.svg")}
        drawn = drawn or svgs
    assert svgs == drawn and len(drawn) >= 5  # drawn once: the second render rewrote none
    assert (first / "report.html").read_bytes() == (second / "report.html").read_bytes()
    mine = cache / "notes.txt"  # a file someone left there after the renders: clean keeps it
    mine.write_text("mine")
    result = runner.invoke(build.app, ["clean", "--out", str(first), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert not first.exists() and (second / "report.html").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    mine.unlink()
    assert runner.invoke(build.app, ["clean", "--out", str(second), "--cache", str(cache)]).exit_code == 0
    assert not cache.exists() and not second.exists()


def test_a_cache_that_overlaps_the_store_or_the_output_is_refused_before_anything_runs(tmp_path, smoke_build):
    """clean empties the cache: a cache that is (or holds, or sits in) the store would take results."""
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    before = _snapshot(store)
    for cache, option in ((store, "--store"), (store / "smoke", "--store"), (tmp_path / "out", "--out")):
        result = runner.invoke(build.app, render_args(store, tmp_path / "out", "--cache", str(cache)))
        assert result.exit_code == 2 and f"overlaps {option}" in result.output, result.output
        clean = ["clean", "--store", str(store), "--out", str(tmp_path / "out"), "--cache", str(cache)]
        result = runner.invoke(build.app, clean)
        assert result.exit_code == 2 and f"overlaps {option}" in result.output, result.output
    assert _snapshot(store) == before
    own = tmp_path / "out" / output.CACHE  # --out's own cache folder may be named
    result = runner.invoke(
        build.app, render_args(store, tmp_path / "out", "--format", "html", "--cache", str(own))
    )
    assert result.exit_code == 0, result.output


def test_builds_starting_together_on_a_new_cache_accept_each_others_writes_in_progress(tmp_path):
    """A second build sees the first's temporary tag file (atomic_write's) before it is renamed."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f".{output.TAG}.4242.tmp").write_bytes(b"Signature")
    (cache / "figures").mkdir()
    assert output.drawings(tmp_path / "out", cache) == cache and (cache / output.TAG).is_file()


def test_a_cache_folder_of_other_files_is_refused_before_anything_is_written_or_deleted(
    tmp_path, smoke_build
):
    """Another tool's cache carries the same CACHEDIR.TAG signature: not ours to fill or delete."""
    pip = tmp_path / "pip-cache"
    pip.mkdir()
    (pip / output.TAG).write_bytes(
        output.SIGNATURE + b"\n# This file is a cache directory tag created by pip.\n"
    )
    (pip / "wheel.whl").write_bytes(b"precious")
    before = _snapshot(pip)
    out = tmp_path / "out"
    result = runner.invoke(build.app, render_args(smoke_build.store, out, "--cache", str(pip)))
    assert result.exit_code == 2 and "give a new or empty folder" in result.output, result.output
    assert not (out / "report.html").exists()
    output.cache_dir(out)
    result = runner.invoke(build.app, ["clean", "--out", str(out), "--cache", str(pip)])
    assert result.exit_code == 2 and "nothing was deleted" in result.output, result.output
    assert _snapshot(pip) == before and (out / output.CACHE).is_dir()


def test_an_out_that_holds_someone_else_s_report_or_lies_in_the_store_is_refused(tmp_path, smoke_build):
    """A render would overwrite a report.html no build wrote (and clean would then delete it), and an --out
    in the store would mix reports into results: both refused before anything is written; a cache given in
    the environment is named as given."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("<p>my own page</p>", encoding="utf-8")
    result = runner.invoke(build.app, render_args(smoke_build.store, out, "--format", "html"))
    assert result.exit_code == 2 and "holds a report.html that no build wrote there" in result.output
    assert (out / "report.html").read_text(encoding="utf-8") == "<p>my own page</p>"
    (out / "report.html").unlink()  # the advice: a folder without it renders
    assert runner.invoke(build.app, render_args(smoke_build.store, out, "--format", "html")).exit_code == 0
    assert runner.invoke(build.app, render_args(smoke_build.store, out, "--format", "html")).exit_code == 0
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    before = _snapshot(store)
    for inside in (store, store / "smoke"):
        result = runner.invoke(build.app, render_args(store, inside, "--format", "html"))
        assert result.exit_code == 2 and "is the results store" in result.output, result.output
    assert _snapshot(store) == before
    result = runner.invoke(
        build.app, render_args(store, tmp_path / "o2", "--format", "html"), env={"REPORT_CACHE": str(store)}
    )
    assert result.exit_code == 2 and f"REPORT_CACHE={store} overlaps --store" in result.output, result.output
