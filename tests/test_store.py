import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from report.core.errors import MissingResultError, StoreError
from report.core.store import Store
from tests.helpers import fake_meta, synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_write_then_read_roundtrip(tmp_path):
    store = Store(tmp_path / "results")
    tables = synthetic("q3", value=7)
    store.write("smoke", "q3", tables, fake_meta("q3"))
    back = store.read("smoke", "q3", "sweep")
    assert back.equals(tables["sweep"])
    assert list(store.read("smoke", "q3", "misclassified")["pixels"][1]) == [7, 7]
    meta = store.meta("smoke", "q3")
    assert meta["experiment"] == "q3" and meta["config"] == {"epochs": 1}
    # plain pandas reads every file of the run the pointer names: the store is notebook-friendly
    run = (tmp_path / "results/smoke/q3/current").read_text()
    record = pd.read_parquet(tmp_path / "results/smoke/q3" / run / "run.parquet")
    assert record["profile"][0] == "smoke" and json.loads(record["headline"][0])["value"] == 0.5
    assert store.tables("smoke", "q3") == sorted(tables)
    assert list(store.runs()["experiment"]) == ["q3"]


def test_every_run_a_store_reads_carries_its_rerun_advice(tmp_path):
    """The current, the previous and every older run: a damaged one's "rerun: …" names this store (the
    runs that ``diff`` reads by id came without it)."""
    advice = f"--store '{tmp_path}'"
    store = Store(tmp_path, advice=advice)
    for value in (1, 2):
        store.write("smoke", "q3", synthetic("q3", value=value), fake_meta("q3"))
    runs = [store.result("smoke", "q3"), store.previous("smoke", "q3"), *store.history("smoke", "q3")]
    assert len(runs) == 4 and all(r is not None and r.rerun.endswith(advice) for r in runs)


def test_rewrite_replaces_whole_result(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q3", synthetic("q3", value=1), fake_meta("q3"))
    store.write("smoke", "q3", synthetic("q3", value=9, rows=2), fake_meta("q3"))
    expected = synthetic("q3", value=9, rows=2)
    for name in store.tables("smoke", "q3"):
        lists = [c for c, kind in store.manifest.get("q3").tables[name].items() if kind == "list"]
        back = store.read("smoke", "q3", name)
        assert back.drop(columns=lists).equals(expected[name].drop(columns=lists)), name
        for column in lists:  # a list reads back as an array
            assert [list(v) for v in back[column]] == list(expected[name][column]), (name, column)
    assert not [p for p in (tmp_path / "smoke").iterdir() if p.name.startswith(".")]


def test_missing_result_says_what_to_run(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(MissingResultError, match="run: build.py run q4 --profile quick"):
        store.read("quick", "q4", "results")
    store.write("quick", "q4", synthetic("q4"), fake_meta("q4", "quick"))
    with pytest.raises(MissingResultError, match="no table 'summary'.*--force"):
        store.read("quick", "q4", "summary")


def test_corrupt_parquet_is_one_clear_error_and_others_survive(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q1", synthetic("q1"), fake_meta("q1"))
    store.write("smoke", "q3", synthetic("q3"), fake_meta("q3"))
    path = store.path("smoke", "q3", "final")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(StoreError, match=r"corrupt or truncated.*build.py run q3 --profile smoke --force"):
        store.read("smoke", "q3", "final")
    assert store.read("smoke", "q1", "task")["samples"][0] == 1


def test_recover_drops_what_a_crashed_write_left(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q3", synthetic("q3", value=1), fake_meta("q3"))
    home = tmp_path / "smoke" / "q3"
    (home / ".tmp-20260101-000000-abcdef").mkdir()  # a run folder being written
    (home / ".current.123.tmp").write_text("20260101-000000-abcdef")  # a pointer being replaced
    store.recover()
    assert store.read("smoke", "q3", "final")["seed"][0] == 1
    assert not [p.name for p in home.iterdir() if p.name.startswith(".")]


def test_previous_runs_are_kept_as_bounded_history(tmp_path):
    store = Store(tmp_path, keep=2)
    ids = [store.write("smoke", "q3", synthetic("q3", value=v), fake_meta("q3")).name for v in range(5)]
    history = store.history("smoke", "q3")
    assert [r.folder.name for r in history] == ids[-3:], "the current run and the 2 before it"
    assert store.result("smoke", "q3").folder.name == ids[-1]
    assert [r.read("final")["seed"][0] for r in history] == [2, 3, 4]


def test_unwritable_store_is_a_store_error(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        root = blocker / "results"
    else:
        root = tmp_path / "ro"
        root.mkdir(mode=0o500)
    with pytest.raises(StoreError, match="pass a writable --store"):
        Store(root).write("smoke", "q3", synthetic("q3"), fake_meta("q3"))


def test_killed_writer_never_leaves_a_partial_result(tmp_path):
    """SIGKILL a process that rewrites the result in a loop; every surviving state is complete."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from report.core.store import Store
        from tests.helpers import fake_meta, synthetic
        s = Store({str(tmp_path)!r})
        i = 0
        while True:
            i += 1
            s.write("smoke", "q3", synthetic("q3", value=i, rows=1000), fake_meta("q3"))
            if i == 1:
                print("wrote", flush=True)  # a complete result exists from here on
    """)
    for delay in (0.05, 0.2, 0.4):  # into a later write
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"wrote"
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        store = Store(tmp_path)
        store.recover()
        assert store.has("smoke", "q3"), "a kill must not lose the result an earlier write completed"
        a, b = store.read("smoke", "q3", "sweep"), store.read("smoke", "q3", "final")
        assert (a["epoch"] == b["seed"][0]).all(), "tables from two different writes"


def test_write_refuses_tables_that_differ_from_the_manifest(tmp_path):
    store = Store(tmp_path)
    good = synthetic("q3")
    cases = [
        ({k: v for k, v in good.items() if k != "final"}, "the manifest lists"),
        ({**good, "final": good["final"].rename(columns={"test_acc": "acc"})}, "table 'final' has columns"),
        (
            {**good, "final": good["final"].assign(seed="zero")},
            "column final.seed holds str values, the manifest says int",
        ),
    ]
    for tables, message in cases:
        with pytest.raises(StoreError, match=message):
            store.write("smoke", "q3", tables, fake_meta("q3"))
    assert not (tmp_path / "smoke" / "q3").exists(), "a refused write leaves nothing behind"


def _toy(value: int, rows: int = 100) -> dict[str, pd.DataFrame]:
    return {"a": pd.DataFrame({"x": [value] * rows}), "b": pd.DataFrame({"x": [value]})}


CRASH = """
import builtins, json, os, sys
sys.path.insert(0, {root!r})
import pandas as pd
from report.core.store import Store
from tests.helpers import fake_meta, toy_manifest

base = sys.argv[1]
toy = lambda v, rows=100: {{"a": pd.DataFrame({{"x": [v] * rows}}), "b": pd.DataFrame({{"x": [v]}})}}
manifest = toy_manifest("qt", toy(0))


def crash_at(k, folder):
    # in a fresh child: a store holding two runs, then a write stopped at its k-th file operation
    store = Store(folder, manifest, keep=1)
    for value in (0, 1):
        store.write("smoke", "qt", toy(value), fake_meta("qt", manifest=manifest))
    count = 0

    def boundary(fn):
        def stop_at_k(*args, **kwargs):
            nonlocal count
            count += 1
            if count == k:
                os._exit(9)  # a crash: no cleanup runs
            return fn(*args, **kwargs)

        return stop_at_k

    # every file operation of a write: create, write, sync, rename, replace, remove
    pd.DataFrame.to_parquet = boundary(pd.DataFrame.to_parquet)
    builtins.open = boundary(builtins.open)
    for name in ("mkdir", "rename", "replace", "fsync", "unlink", "rmdir"):
        setattr(os, name, boundary(getattr(os, name)))
    store.write("smoke", "qt", toy(2), fake_meta("qt", manifest=manifest))
    with open(os.path.join(folder, "boundaries"), "w") as fh:
        fh.write(str(count))
    os._exit(0)


def run(k):
    # each crash in its own forked child of this process, which has done no I/O with pyarrow yet
    pid = os.fork()
    if pid == 0:
        crash_at(k, os.path.join(base, f"k{{k}}"))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


assert run(0) == 0
boundaries = int(open(os.path.join(base, "k0", "boundaries")).read())
print(json.dumps({{"boundaries": boundaries, "exits": [run(k) for k in range(1, boundaries + 1)]}}))
"""


def test_a_crash_at_every_write_boundary_leaves_the_old_or_the_new_result(tmp_path):
    """Like SQLite's crash tests: stop a write after its k-th file operation, for every k."""
    from tests.helpers import toy_manifest

    done = subprocess.run(
        [sys.executable, "-c", CRASH.format(root=str(ROOT)), str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    boundaries = report["boundaries"]
    assert boundaries >= 10 and report["exits"] == [9] * boundaries, report
    manifest = toy_manifest("qt", _toy(0))
    for k in range(1, boundaries + 1):
        root = tmp_path / f"k{k}"
        store = Store(root, manifest)
        result = store.result("smoke", "qt")
        a, b = result.read("a"), result.read("b")
        value = int(b["x"][0])
        assert value in (1, 2) and (a["x"] == value).all(), f"boundary {k}: a mixed or partial result"
        assert result.damaged() == [] and result.meta["run_id"] == result.folder.name, f"boundary {k}"
        store.recover()
        assert not list(root.glob("smoke/qt/.*")), f"boundary {k}: leftovers after recovery"
        store.write("smoke", "qt", _toy(3), fake_meta("qt", manifest=manifest))
        assert store.read("smoke", "qt", "b")["x"][0] == 3
    print(f"{boundaries} write boundaries checked")


WRITER = """
import sys, time
sys.path.insert(0, {root!r})
import pandas as pd
from report.core.store import Store
from tests.helpers import fake_meta, toy_manifest

tables = lambda i: {{"a": pd.DataFrame({{"x": [i] * 500}}), "b": pd.DataFrame({{"x": [i]}})}}
store = Store(sys.argv[1], toy_manifest("qt", tables(0)))
end, i = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    i += 1
    store.write("smoke", "qt", tables(i), fake_meta("qt", manifest=store.manifest))
print(i)
"""


def test_readers_never_see_a_write_half_done(tmp_path):
    from tests.helpers import toy_manifest

    manifest = toy_manifest("qt", _toy(0))
    store = Store(tmp_path, manifest)
    store.write("smoke", "qt", _toy(0), fake_meta("qt", manifest=manifest))
    seconds = 3.0
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT)), str(tmp_path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    reads, errors, mixed = 0, [], 0
    while writer.poll() is None:
        try:
            result = store.result("smoke", "qt")
            meta, a, b = result.meta, result.read("a"), result.read("b")
            mixed += int(not (a["x"] == b["x"][0]).all() or meta["run_id"] != result.folder.name)
            reads += 1
        except Exception as e:  # any error is a failure of the promise
            errors.append(repr(e))
    writes = int(writer.communicate()[0])
    assert writer.returncode == 0 and writes > 10
    assert reads > 10 and errors == [] and mixed == 0, (reads, errors[:3], mixed)
    print(f"{reads} reads during {writes} writes: no errors, no mixed reads")


def test_the_previous_run_is_the_one_current_before_whatever_its_id_or_finish(tmp_path):
    store = Store(tmp_path)
    times = ["2026-11-26T12:00:00+00:00", "2026-11-26T09:00:00+00:00", "2026-11-26T10:00:00+00:00"]
    ids = [store.write("smoke", "q3", synthetic("q3"), fake_meta("q3", finished=t)).name for t in times]
    assert store.previous("smoke", "q3").folder.name == ids[1]
    (tmp_path / "smoke" / "q3" / "previous").unlink()  # a store from before the pointer was kept
    assert store.previous("smoke", "q3").folder.name == ids[0], "made elsewhere, earlier id, later finish"


def test_a_dangling_or_empty_pointer_reads_as_damaged_not_missing(tmp_path):
    from report.core.freshness import Request, judge

    store = Store(tmp_path)
    store.write("smoke", "q1", synthetic("q1"), fake_meta("q1"))
    pointer = tmp_path / "smoke" / "q1" / "current"
    for content in ("", "20990101-000000-000000-abcd", "../../elsewhere", b"\xff\xfe\x00garbage"):
        pointer.write_bytes(content if isinstance(content, bytes) else content.encode())
        verdict = judge(store, "q1", Request("smoke"))
        assert verdict.state == "stale" and verdict.changed == ("files",), content
        assert "build.py run q1 --profile smoke --force" in verdict.notes[0]
    store.write("smoke", "q1", synthetic("q1", value=2), fake_meta("q1"))  # what --force does
    assert judge(store, "q1", Request("smoke")).current


def test_run_records_keep_text_that_looks_like_json(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q1", synthetic("q1"), fake_meta("q1", title="[Bonus] {convexity}"))
    assert store.meta("smoke", "q1")["title"] == "[Bonus] {convexity}"


def test_a_run_placed_but_never_made_current_is_not_the_previous_run(tmp_path):
    """A kill between a run folder's rename and the pointer swap leaves a run that was never current; the
    report's "vs previous run" and ``diff`` must still compare with the run that was."""
    store = Store(tmp_path)
    first = store.write("smoke", "q3", synthetic("q3"), fake_meta("q3", finished="2026-11-26T09:00:00+00:00"))
    store.write("smoke", "q3", synthetic("q3", 2), fake_meta("q3", finished="2026-11-26T10:00:00+00:00"))
    other = Store(tmp_path / "elsewhere")  # a complete run, later than both, placed but not made current
    made = other.write(
        "smoke", "q3", synthetic("q3", 3), fake_meta("q3", finished="2026-11-26T11:00:00+00:00")
    )
    store.stage("smoke", "q3", made.name, {p.name: p.read_bytes() for p in made.iterdir()})
    assert store.history("smoke", "q3")[-1].folder == tmp_path / "smoke" / "q3" / made.name
    assert store.previous("smoke", "q3").folder.name == first.name
