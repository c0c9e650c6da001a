"""What a result's code and data parts cover: everything that can change what a run computes."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from report.core import fingerprint as fp
from report.core import manifest as mf
from report.core.freshness import code_part


@pytest.mark.parametrize("experiment", ["q1", "q2", "q3", "q4"])
def test_every_experiment_covers_the_code_that_runs_it(experiment):
    names = {str(p.relative_to(fp.PROJECT)) for p in fp.code_files(experiment)}
    assert {
        f"experiments/{experiment}.py",
        "experiments/runner.py",
        "experiments/kit.py",
        "experiments/executors.py",  # imported inside a function: nested imports count
        "report/core/store.py",
        "report/core/config.py",
        "report/core/__init__.py",
    } <= names
    assert not any(n.startswith(("report/questions", "report/render", "templates")) for n in names), names


def test_an_edit_to_the_base_layer_changes_every_code_part(tmp_path, monkeypatch):
    manifest = mf.load()
    before = {e: code_part(e, manifest) for e in manifest.names}
    roots = {name: tmp_path / name for name in fp.CODE_ROOTS}
    for name, root in fp.CODE_ROOTS.items():
        shutil.copytree(root, roots[name], ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.setitem(fp.CODE_ROOTS, name, roots[name])
    assert {e: code_part(e, manifest) for e in manifest.names} == before  # the same code, wherever it is
    config = roots["report"] / "core" / "config.py"
    config.write_text(config.read_text() + "\n# an edit\n")
    after = {e: code_part(e, manifest) for e in manifest.names}
    assert all(after[e] != before[e] for e in manifest.names)


def test_the_manifest_entry_is_part_of_the_code():
    manifest = mf.load()
    entry = manifest.get("q4")
    other = not entry.needs_accelerator
    changed = dataclasses.replace(manifest, experiments={**manifest.experiments,
                                  "q4": dataclasses.replace(entry, needs_accelerator=other)})  # fmt: skip
    assert code_part("q4", changed) != code_part("q4", manifest)


def test_a_data_edit_that_keeps_size_and_mtime_is_seen(tmp_path):
    data, cache = tmp_path / "labels.bin", tmp_path / ".datahash.json"
    data.write_bytes(bytes(range(256)))
    first = fp.data_hash([data], cache)
    st = data.stat()
    raw = bytearray(data.read_bytes())
    raw[7] ^= 1
    data.write_bytes(bytes(raw))
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and modification time
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    assert fp.data_hash([data], cache) != first


def test_a_set_that_repeats_the_profiles_own_value_is_no_config_change():
    from experiments.configs.q1 import PROFILES
    from report.core.freshness import Request

    plain = Request("smoke").config_part("q1")
    own = PROFILES["smoke"].segments
    assert Request("smoke", {"q1": {"segments": str(own)}}).config_part("q1") == plain
    assert Request("smoke", {"q1": {"segments": str(own + 1)}}).config_part("q1") != plain
    assert Request("full", {"q4": {"dataset": "svhn"}}).config_part("q4") == Request("full").config_part("q4")


def test_the_code_part_is_the_same_wherever_the_code_lies(tmp_path, monkeypatch):
    """The roots copied where report/ sorts before experiments/ (unlike in the project) give the same
    hashes: files are hashed by their names inside the project, not by their paths on this machine."""
    manifest = mf.load()
    before = {e: code_part(e, manifest) for e in manifest.names}
    for name, folder in (("report", "a"), ("experiments", "b")):
        moved = tmp_path / folder / name
        shutil.copytree(fp.CODE_ROOTS[name], moved, ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.setitem(fp.CODE_ROOTS, name, moved)
    assert {e: code_part(e, manifest) for e in manifest.names} == before
