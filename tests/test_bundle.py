"""Portable results: export, verify-then-import, history and diff (issue 12)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import build
from report.core.store import Store
from tests.conftest import SMOKE_SETS, copy_project

runner = CliRunner()

# build.py in a process whose torch reports another version: a machine with other libraries
OTHER_MACHINE = """
import sys
sys.path.insert(0, sys.argv.pop(1))
from report.core import fingerprint as fp
made_here = fp.versions()
fp.versions = lambda: {**made_here, "torch": "9.9.9"}
import build
sys.argv[0] = "build.py"
build.main()
"""


def _invoke(*args: str):
    return runner.invoke(build.app, list(args))


def _fingerprint_of_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def bundle(smoke_build, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "smoke.tar.gz"
    result = _invoke("export", "--profile", "smoke", "--store", str(smoke_build.store), "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.slow
def test_results_made_elsewhere_import_current_and_render_with_their_provenance(
    bundle, smoke_build, data_dir, tmp_path
):
    project, store, out = copy_project(tmp_path), tmp_path / "results", tmp_path / "out"

    def other_machine(*args: str) -> subprocess.CompletedProcess:
        common = ["--store", str(store)]
        return subprocess.run(
            [sys.executable, "-c", OTHER_MACHINE, str(project), *args, *common],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip

    imported = other_machine("import", bundle.as_uri())
    assert imported.returncode == 0 and "imported q1, q2, q3, q4" in imported.stderr, imported.stderr
    smoke = ["--profile", "smoke", "--data-dir", str(data_dir), *SMOKE_SETS]
    status = other_machine("status", *smoke)
    rows = [line for line in status.stdout.splitlines() if line.strip().startswith("│ q")]
    assert len(rows) == 4 and all("current" in r and "stale" not in r for r in rows), status.stdout
    assert "made with torch" in status.stdout and "(here 9.9.9)" in status.stdout

    page = other_machine("render", *smoke, "--out", str(out), "--format", "html")
    assert page.returncode == 0, page.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    meta = Store(smoke_build.store).meta("smoke", "q3")
    assert (
        f"{meta['device_name']}, " in html
        and f"made with torch {meta['versions']['torch']} (here 9.9.9)" in html
    )
    assert "Stale" not in html

    again = other_machine("all", *smoke, "--out", str(out), "--format", "html")
    assert again.returncode == 0 and "running" not in again.stderr, again.stderr
    strict = other_machine("status", *smoke, "--strict-versions")
    assert strict.stdout.count("stale: versions changed") == 4, strict.stdout


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _pack(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _edit_index(members: dict[str, bytes], change) -> dict[str, bytes]:
    index = json.loads(members["bundle.json"])
    change(index)
    return {**members, "bundle.json": json.dumps(index).encode()}


def _edit_run(members: dict[str, bytes], name: str, change) -> dict[str, bytes]:
    return _edit_index(members, lambda index: change(index["experiments"][name]))


def _edit_record(members: dict[str, bytes], name: str, change) -> dict[str, bytes]:
    """A bundle whose run record of ``name`` was changed and re-listed with its new checksum: only the
    record's own check can catch it."""
    from report.core.run_record import decode_record, encode_record

    path = next(k for k in members if k.startswith(f"results/smoke/{name}/") and k.endswith("/run.parquet"))
    meta = decode_record(pd.read_parquet(io.BytesIO(members[path])))
    change(meta)
    buffer = io.BytesIO()
    encode_record(meta).to_parquet(buffer, index=False)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    return _edit_run({**members, path: data}, name, lambda r: r["files"].update({path: digest}))


def _bad_bundles(bundle: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    data, members = bundle.read_bytes(), _members(bundle)
    table = next(n for n in members if n.endswith("/final.parquet"))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    altered = {**members, table: members[table][:-1] + bytes([members[table][-1] ^ 1])}
    cases = {
        "truncated": (data[: len(data) // 2], "truncated or damaged"),
        "byte flipped": (bytes(flipped), "is not a usable results bundle"),  # whichever check sees it
        "table altered": (altered, "fails its sha256 checksum"),
        "file missing": ({k: v for k, v in members.items() if k != table}, "is missing from the bundle"),
        "unlisted file": ({**members, "results/smoke/q3/extra.parquet": b"x"}, "is not listed in"),
        "parent path": ({**members, "../x": b"x"}, "not a plain file inside the bundle"),
        "absolute path": ({**members, "/tmp/x": b"x"}, "not a plain file inside the bundle"),
        "no index": ({k: v for k, v in members.items() if k != "bundle.json"}, "no readable bundle.json"),
        "another project": (
            _edit_index(members, lambda i: i.update(project="someone-elses-report")),
            "someone-elses-report bundle",
        ),
        "run id with a slash": (_edit_run(members, "q2", lambda r: r.update(run_id="a/b")), "run_id: 'a/b'"),
        "run id 'current'": (
            _edit_run(members, "q2", lambda r: r.update(run_id="current")),
            "run_id: 'current'",
        ),
        "hidden run id": (
            _edit_run(members, "q2", lambda r: r.update(run_id=".tmp-zz")),
            "run_id: '.tmp-zz'",
        ),
        "device name null": (
            _edit_run(members, "q2", lambda r: r.update(device_name=None)),
            r"q2 in its bundle.json has a bad field \(device_name: None\)",
        ),
        "finished a number": (_edit_run(members, "q2", lambda r: r.update(finished=5)), r"finished: 5\)"),
        "no experiments": (_edit_index(members, lambda i: i.update(experiments={})), "holds no results"),
        "index not the record": (
            _edit_run(members, "q2", lambda r: r.update(finished="2099-01-01T00:00:00+00:00")),
            r"q2's run record does not match bundle.json \(finished\)",
        ),
        "record finished a number": (
            _edit_record(members, "q2", lambda m: m.update(finished=5)),
            r"q2's run record has a bad field \(finished: 5\)",
        ),
        "record without a device": (
            _edit_record(members, "q2", lambda m: m.pop("device")),
            r"q2's run record has a bad field \(device: missing\)",
        ),
        "profile outside": (
            _edit_index(members, lambda i: i.update(profile="evil/nested")),
            "profile 'evil/nested'",
        ),
        "unknown experiment": (
            _edit_index(members, lambda i: i["experiments"].update(q9=i["experiments"].pop("q4"))),
            "manifest does not list",
        ),
    }
    out = {}
    for name, (content, message) in cases.items():
        path = tmp / f"{name.replace(' ', '-')}.tar.gz"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            _pack(path, content)
        out[name] = (path, message)
    return out


def test_bad_bundles_are_refused_with_one_line_and_the_store_untouched(bundle, smoke_build, tmp_path):
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    before = _fingerprint_of_tree(store)
    for name, (path, message) in _bad_bundles(bundle, tmp_path).items():
        result = _invoke("import", str(path), "--store", str(store))
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1, (name, result.output)
        assert re.search(message, errors[0]), (name, errors[0])
        assert _fingerprint_of_tree(store) == before, f"{name}: the store changed"
        empty = tmp_path / f"empty-{name.replace(' ', '-')}"  # nor does an empty store take a bad record
        result = _invoke("import", str(path), "--store", str(empty))
        assert result.exit_code == 2 and not any(empty.rglob("*.parquet")), (name, result.output)


def test_a_bundle_older_than_the_store_is_refused_unless_asked(bundle, smoke_build, tmp_path):
    store = Store(tmp_path / "results")
    shutil.copytree(smoke_build.store, store.root)
    meta = store.meta("smoke", "q1")
    store.write("smoke", "q1", {n: store.read("smoke", "q1", n) for n in store.tables("smoke", "q1")},
                {**meta, "run_id": None, "finished": "2099-01-01T00:00:00+00:00"})  # fmt: skip
    before = _fingerprint_of_tree(store.root)
    refused = _invoke("import", str(bundle), "--store", str(store.root))
    assert refused.exit_code == 2 and "would replace newer results: q1" in refused.output
    assert _fingerprint_of_tree(store.root) == before
    forced = _invoke("import", str(bundle), "--store", str(store.root), "--replace-newer")
    assert forced.exit_code == 0, forced.output
    assert store.meta("smoke", "q1")["run_id"] == meta["run_id"]


@pytest.mark.slow
def test_diff_after_a_changed_setting_names_the_key_and_the_metric_delta(
    bundle, smoke_build, data_dir, tmp_path
):
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    smoke = ["--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store), *SMOKE_SETS]
    rerun = _invoke("run", "q3", *smoke, "--set", "q3.sweep_epochs=1")
    assert rerun.exit_code == 0, rerun.output
    result = _invoke("diff", "--profile", "smoke", "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    changes = {c["experiment"]: c for c in json.loads(result.output[result.output.index("[") :])}
    assert list(changes) == ["q3"], "only q3 has a previous run"
    q3 = changes["q3"]
    assert q3["config"]["sweep_epochs"] == [2, 1] and q3["fingerprint"] == ["config"]
    store_ = Store(store)
    old, new = (r.meta["headline"]["value"] for r in store_.history("smoke", "q3")[-2:])
    assert q3["headline"]["delta"] == pytest.approx(new - old)
    assert any(row["table"] == "sweep" for row in q3["tables"])
    against_bundle = _invoke(
        "diff", str(bundle), "--profile", "smoke", "--store", str(store), "-e", "q3", "--json"
    )
    assert json.loads(against_bundle.output[against_bundle.output.index("[") :])[0]["config"][
        "sweep_epochs"
    ] == [2, 1]
    status = _invoke("status", *smoke, "--set", "q3.sweep_epochs=1")
    row = next(line for line in status.output.splitlines() if line.strip().startswith("│ q3"))
    assert "config sweep_epochs" in row


def test_render_says_that_it_imports_reference_results_into_the_store(bundle, tmp_path):
    """render never trains, but it does write: what the store lacks comes from the reference bundle, and
    both the command's output and its --help say so."""
    project = copy_project(tmp_path)
    shutil.copy(bundle, project / "experiments" / "reference" / "smoke.tar.gz")
    store, out = tmp_path / "results", tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(project / "build.py"), "render", "--profile", "smoke", "--store", str(store),
         "--out", str(out), "--format", "html", *SMOKE_SETS],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "imported from the reference results experiments/reference/smoke.tar.gz" in done.stderr
    assert Store(store).has("smoke", "q1"), "render wrote the reference results into the store"
    helped = subprocess.run([sys.executable, str(project / "build.py"), "render", "--help"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "imported into it from the project's reference bundle" in " ".join(helped.stdout.split())


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_export_takes_only_a_tar_gz_name_and_the_advised_one_works(tmp_path):
    """``-o results.zip`` wrote a tar.gz under a .zip name."""
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    args = ["export", "q1", "--profile", "smoke", "--store", str(tmp_path / "r"), "-o"]
    for name, advised in (("results.zip", "results.tar.gz"), ("results", "results.tar.gz"),
                          ("r.tar.bz2", "r.tar.gz")):  # fmt: skip
        refused = _invoke(*args, str(tmp_path / name))
        assert refused.exit_code == 2 and _errors(refused.output) == [
            f"error: -o {tmp_path / name}: a bundle is a gzipped tar archive; name it {tmp_path / advised} "
            "(or .tgz)"
        ], refused.output
        assert not (tmp_path / name).exists()
    assert _invoke(*args, str(tmp_path / "results.tar.gz")).exit_code == 0
    assert _invoke(*args, str(tmp_path / "results.TGZ")).exit_code == 0


def test_export_keeps_an_existing_file_unless_forced_and_says_it_replaced_it(tmp_path):
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    dest = tmp_path / "made-on-the-gpu.tar.gz"
    dest.write_bytes(b"the only copy")
    args = ["export", "q1", "--profile", "smoke", "--store", str(tmp_path / "r"), "-o", str(dest)]
    refused = _invoke(*args)
    assert refused.exit_code == 2 and _errors(refused.output) == [
        f"error: -o {dest} exists; pass --force to replace it, or another -o"
    ], refused.output
    assert dest.read_bytes() == b"the only copy"
    forced = _invoke(*args, "--force")
    assert forced.exit_code == 0 and f"✓ replaced {dest}: q1 (smoke)" in forced.output, forced.output
    assert _members(dest)["bundle.json"], "a bundle now"


def test_export_names_every_missing_result_in_one_command_that_runs_them(tmp_path):
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    store_with(tmp_path / "r", "q3")
    result = _invoke(
        "export", "--profile", "smoke", "--store", str(tmp_path / "r"), "-o", str(tmp_path / "b.tgz")
    )
    assert result.exit_code == 2 and _errors(result.output) == [
        f"error: no q2, q4 results for profile smoke in {tmp_path / 'r'} to export; run: build.py run q2 q4 "
        f"--profile smoke --store {tmp_path / 'r'}"
    ], result.output
    assert not (tmp_path / "b.tgz").exists()


def test_importing_a_bundle_the_store_already_holds_says_so(tmp_path):
    """It said "imported q1, q2" though nothing changed."""
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    store_with(tmp_path / "r", "q2")
    path = tmp_path / "b.tar.gz"
    exported = _invoke(
        "export", "--profile", "smoke", "--store", str(tmp_path / "r"), "-o", str(path), "q1", "q2"
    )
    assert exported.exit_code == 0, exported.output
    before = _fingerprint_of_tree(tmp_path / "r")
    again = _invoke("import", str(path), "--store", str(tmp_path / "r"))
    assert again.exit_code == 0 and again.output.strip().splitlines() == [
        "q1, q2: already in the store, the bundle's own runs; nothing imported"
    ], again.output
    after = _fingerprint_of_tree(tmp_path / "r")
    assert {k: v for k, v in after.items() if k != ".lock"} == before, "only the lock it took is new"
    other = tmp_path / "other"
    store_with(other, "q1")  # a run of its own: the bundle's replaces it
    fresh = _invoke("import", str(path), "--store", str(other))
    assert fresh.exit_code == 0 and fresh.output.strip().splitlines() == [
        "✓ imported q1, q2 (smoke, made on CPU (test))"
    ], fresh.output
    half = tmp_path / "half"
    shutil.copytree(tmp_path / "r", half)
    shutil.rmtree(half / "smoke" / "q2")
    partly = _invoke("import", str(path), "--store", str(half))
    assert partly.output.strip().splitlines() == [
        "✓ imported q2 (smoke, made on CPU (test))",
        "q1: already in the store, the bundle's own runs",
    ], partly.output


def _without_table(members: dict[str, bytes], name: str) -> dict[str, bytes]:
    """The bundle as an older version of ``name``'s code stored it: one of its tables missing, the index
    and its run record listing what is left (so only the manifest tells)."""
    folder = next(k for k in members if k.startswith(f"results/smoke/{name}/")).rsplit("/", 1)[0]
    table = sorted(k for k in members if k.startswith(folder) and not k.endswith("/run.parquet"))[0]
    members = {k: v for k, v in members.items() if k != table}
    members = _edit_record(
        members, name, lambda meta: meta["files"].pop(table.rsplit("/", 1)[1].split(".")[0])
    )
    return _edit_run(members, name, lambda run: run["files"].pop(table))


def test_an_experiment_made_for_another_manifest_is_left_out_and_the_rest_imported(tmp_path):
    """Once, one experiment's table added or dropped refused the whole bundle: every build that took
    anything from the project's reference results failed until all of it was made again."""
    from tests.helpers import store_with

    store_with(tmp_path / "r", "q1")
    store_with(tmp_path / "r", "q2")
    path = tmp_path / "b.tar.gz"
    exported = _invoke(
        "export", "q1", "q2", "--profile", "smoke", "--store", str(tmp_path / "r"), "-o", str(path)
    )
    assert exported.exit_code == 0, exported.output
    older = _pack(tmp_path / "older.tar.gz", _without_table(_members(path), "q2"))
    result = _invoke("import", str(older), "--store", str(tmp_path / "new"))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("q2: left out: made for another version of the manifest (q2 (see ")
    assert lines[0].endswith(f"; run: build.py run q2 --profile smoke --store {tmp_path / 'new'}")
    assert lines[1].startswith("✓ imported q1 (smoke, made on ")
    assert Store(tmp_path / "new").result("smoke", "q2") is None
    compared = _invoke("diff", str(older), "--profile", "smoke", "--store", str(tmp_path / "r"))
    said = " ".join(compared.output.split())
    assert compared.exit_code == 0 and "q1:" in said, compared.output  # q1 compared, q2 said, not dropped
    assert "q3: not compared" not in said  # on neither side: nothing to say
    assert (
        f"q2: not compared: {older} left it out, made for another version of the manifest: q2 (see " in said
    )
    elsewhere = _invoke("diff", str(tmp_path / "new"), "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert f"q2: not compared: {tmp_path / 'new'} has no smoke result of it" in " ".join(
        elsewhere.output.split()
    )
    none_fit = _pack(tmp_path / "none.tar.gz", _without_table(_members(older), "q1"))
    refused = _invoke("import", str(none_fit), "--store", str(tmp_path / "new2"))
    assert refused.exit_code == 2 and "all of it was made for another version of the manifest (q1 (see " in (
        refused.output
    )
