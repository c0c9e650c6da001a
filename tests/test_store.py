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
    # plain pandas reads every file: the store is notebook-friendly
    assert pd.read_parquet(tmp_path / "results/smoke/q3/run.parquet")["profile"][0] == "smoke"
    assert (
        json.loads(pd.read_parquet(tmp_path / "results/smoke/q3/run.parquet")["headline"][0])["value"] == 0.5
    )
    assert store.tables("smoke", "q3") == sorted(tables)
    assert list(store.runs()["experiment"]) == ["q3"]


def test_rewrite_replaces_whole_result(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q3", synthetic("q3", value=1), fake_meta("q3"))
    store.write("smoke", "q3", synthetic("q3", value=9, rows=2), fake_meta("q3"))
    expected = synthetic("q3", value=9, rows=2)
    for name in store.tables("smoke", "q3"):
        back = store.read("smoke", "q3", name).drop(columns=["pixels"], errors="ignore")
        assert back.equals(expected[name].drop(columns=["pixels"], errors="ignore")), name
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


def test_recover_after_crash_mid_swap(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q3", synthetic("q3", value=1), fake_meta("q3"))
    # a crash after moving the old result aside and before moving the new one in
    (tmp_path / "smoke/q3").rename(tmp_path / "smoke/.old-q3")
    (tmp_path / "smoke/.tmp-q3-deadbeef").mkdir()
    store.recover()
    assert store.read("smoke", "q3", "final")["seed"][0] == 1
    assert sorted(p.name for p in (tmp_path / "smoke").iterdir()) == ["q3"]


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
        print("ready", flush=True)
        while True:
            i += 1
            s.write("smoke", "q3", synthetic("q3", value=i, rows=1000), fake_meta("q3"))
    """)
    for delay in (0.3, 0.45, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        store = Store(tmp_path)
        store.recover()
        if store.has("smoke", "q3"):
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
