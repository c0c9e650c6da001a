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
from tests.helpers import fake_meta

ROOT = Path(__file__).resolve().parents[1]


def test_write_then_read_roundtrip(tmp_path):
    store = Store(tmp_path / "results")
    df = pd.DataFrame({"lr": [0.1, 0.01], "acc": [0.9, 0.95], "pixels": [[1, 2], [3, 4]]})
    store.write("smoke", "q3", {"sweep": df}, fake_meta("q3"))
    back = store.read("smoke", "q3", "sweep")
    assert back[["lr", "acc"]].equals(df[["lr", "acc"]])
    assert list(back["pixels"][1]) == [3, 4]
    meta = store.meta("smoke", "q3")
    assert meta["experiment"] == "q3" and meta["config"] == {"epochs": 1}
    # plain pandas reads every file: the store is notebook-friendly
    assert pd.read_parquet(tmp_path / "results/smoke/q3/run.parquet")["profile"][0] == "smoke"
    assert (
        json.loads(pd.read_parquet(tmp_path / "results/smoke/q3/run.parquet")["headline"][0])["value"] == 0.5
    )
    assert store.tables("smoke", "q3") == ["sweep"]
    assert list(store.runs()["experiment"]) == ["q3"]


def test_rewrite_replaces_whole_result(tmp_path):
    store = Store(tmp_path)
    store.write(
        "smoke", "q3", {"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame({"x": [2]})}, fake_meta("q3")
    )
    store.write("smoke", "q3", {"a": pd.DataFrame({"x": [9]})}, fake_meta("q3"))
    assert store.tables("smoke", "q3") == ["a"]
    assert store.read("smoke", "q3", "a")["x"][0] == 9
    assert not [p for p in (tmp_path / "smoke").iterdir() if p.name.startswith(".")]


def test_missing_result_says_what_to_run(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(MissingResultError, match="run: build.py run q4 --profile quick"):
        store.read("quick", "q4", "summary")
    store.write("quick", "q4", {"summary": pd.DataFrame({"x": [1]})}, fake_meta("q4", "quick"))
    with pytest.raises(MissingResultError, match="no table 'curves'.*--force"):
        store.read("quick", "q4", "curves")


def test_corrupt_parquet_is_one_clear_error_and_others_survive(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q1", {"t": pd.DataFrame({"x": [1]})}, fake_meta("q1"))
    store.write("smoke", "q3", {"t": pd.DataFrame({"x": [2]})}, fake_meta("q3"))
    path = store.path("smoke", "q3", "t")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(StoreError, match=r"corrupt or truncated.*build.py run q3 --profile smoke --force"):
        store.read("smoke", "q3", "t")
    assert store.read("smoke", "q1", "t")["x"][0] == 1


def test_recover_after_crash_mid_swap(tmp_path):
    store = Store(tmp_path)
    store.write("smoke", "q3", {"t": pd.DataFrame({"x": [1]})}, fake_meta("q3"))
    # a crash after moving the old result aside and before moving the new one in
    (tmp_path / "smoke/q3").rename(tmp_path / "smoke/.old-q3")
    (tmp_path / "smoke/.tmp-q3-deadbeef").mkdir()
    store.recover()
    assert store.read("smoke", "q3", "t")["x"][0] == 1
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
        Store(root).write("smoke", "q3", {"t": pd.DataFrame({"x": [1]})}, fake_meta("q3"))


def test_killed_writer_never_leaves_a_partial_result(tmp_path):
    """SIGKILL a process that rewrites the result in a loop; every surviving state is complete."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        import pandas as pd
        from report.core.store import Store
        from tests.helpers import fake_meta
        s = Store({str(tmp_path)!r})
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            tables = {{"a": pd.DataFrame({{"x": [i] * 1000}}), "b": pd.DataFrame({{"x": [i]}})}}
            s.write("smoke", "q3", tables,
                    fake_meta("q3"))
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
            a, b = store.read("smoke", "q3", "a"), store.read("smoke", "q3", "b")
            assert (a["x"] == b["x"][0]).all(), "tables from two different writes"
