"""End to end: a real smoke build, incremental rebuilds, crash safety and concurrent builds."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from html import escape
from pathlib import Path

import pytest

from report.core.store import Store
from report.format import apply
from report.questions import Results, Table, build, questions
from tests.conftest import ROOT, SMOKE_SETS, WORKERS, build_cmd, copy_project, in_process, render_args

pytestmark = pytest.mark.slow


def expected_cells(store: Path, profile: str = "smoke") -> dict[str, list[str]]:
    """Every table cell of every question, formatted from the store exactly as the report shows it, row by
    row in reading order."""
    context = build(Results(Store(store), profile))
    cells: dict[str, list[str]] = {}
    for name in questions():
        for key, tab in context[name].get("tables", {}).items():
            assert isinstance(tab, Table)
            cells[f"{name}.{key}"] = [
                apply(fmt, row[col]) for _, row in tab.df.iterrows() for col, (_, fmt) in tab.columns.items()
            ]
    return cells


def test_smoke_build_writes_html_and_pdf_with_every_question(smoke_build):
    pypdf = pytest.importorskip("pypdf")
    html = smoke_build.html.read_text(encoding="utf-8")
    pdf_text = "\n".join(p.extract_text() for p in pypdf.PdfReader(smoke_build.pdf).pages)
    for n in range(1, 5):
        assert f"Question {n}" in html and f"Question {n}" in pdf_text
    assert "profile: smoke" in smoke_build.log
    assert "Profile" in html and "smoke" in html
    cells = expected_cells(smoke_build.store)
    assert cells, "the report shows no tables"
    for key, values in cells.items():
        for value in values:
            assert f">{escape(value)}<" in html, f"{key}: {value!r} from the store is not in the HTML"
    for name in questions():
        meta = Store(smoke_build.store).meta("smoke", name)
        assert meta["profile"] == "smoke" and meta["run_id"] in html


def test_second_all_trains_nothing_and_render_skips_torch(smoke_build, data_dir, tmp_path):
    common = ["--profile", "smoke", "--data-dir", str(data_dir), "--store", str(smoke_build.store)]
    before = {n: Store(smoke_build.store).meta("smoke", n)["run_id"] for n in questions()}
    out = tmp_path / "build"
    shutil.copytree(smoke_build.out, out)  # the smoke build's report, which other tests read meanwhile
    start = time.perf_counter()
    proc = subprocess.run(
        build_cmd("all", *common, "--out", str(out), *SMOKE_SETS),
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert all(f"{n}: up to date" in proc.stderr for n in questions()) and "running" not in proc.stderr
    assert "is up to date" in proc.stderr, "unchanged results and templates must not reprint the PDF"
    assert {n: Store(smoke_build.store).meta("smoke", n)["run_id"] for n in questions()} == before
    print(f"second all: {elapsed:.1f} s")
    render = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(ROOT / "build.py"),
            *render_args(smoke_build.store, out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in render.stderr.splitlines() if "|" in line}
    assert "torch" not in imported
    # of the experiments, only their torch-free configs (what the settings layer validates against)
    ours = {m for m in imported if m.split(".")[0] == "experiments"} - {"experiments", "experiments.configs"}
    assert all(m.startswith("experiments.configs.") for m in ours), ours


# Q3's smoke run takes a few seconds, and a fast machine finishes it within a second of its first kept sweep
# point. The tests signal the build as soon as that point is kept (polled every 50 ms), and a 60-epoch
# schedule, scored after every epoch, leaves seconds of work after it on any machine, so
# the signal lands mid-training and the rerun has something to resume (and pays only for that).
LONG_Q3 = ["--set", "q3.schedules=1,2,60", "--set", "q3.patience=58"]


def _wait_for(folder: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob(pattern)):
        assert proc.poll() is None, "the build ended before the point the test waits for"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigkill_mid_training_resumes_without_rerunning_finished_work(tmp_path, data_dir):
    """A build killed outright in its third experiment, with no chance to write anything: the rerun keeps
    the two stored results and counts the killed session in Q3's record (Q4 and the report would only
    repeat what Q3 shows). Units run in the build's process, as on a GPU; orphaned worker processes are
    tests/test_executors.py's."""
    store = tmp_path / "results"
    args = build_cmd(
        "run", "q1", "q2", "q3", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store),
        *LONG_Q3,
    )  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(store, "smoke/q2/current", proc)
    # q3 has kept a finished sweep point: a checkpoint, not any file (the session ledger's temporary file
    # before its rename is one too, and a kill under load caught it there: a session without a ledger)
    _wait_for(store, ".work/smoke/q3-*/*.pt", proc)
    ledger = list(store.glob(".work/smoke/q3-*/sessions.json"))
    assert ledger, "the session ledger is written before the run's first unit starts"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = Store(store)
    assert Store(store).has("smoke", "q1") and s.has("smoke", "q2")
    done = {n: s.meta("smoke", n)["run_id"] for n in ("q1", "q2")}
    again = in_process(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "q1: up to date" in again.stderr and "q2: up to date" in again.stderr
    assert {n: s.meta("smoke", n)["run_id"] for n in ("q1", "q2")} == done
    assert s.meta("smoke", "q3")["sessions"] == 2, "the killed session counts in the run's record"
    runs = s.runs()
    assert sorted(runs["experiment"]) == ["q1", "q2", "q3"] and runs["run_id"].is_unique
    assert not list(store.glob("smoke/*/.tmp-*")), "leftover partial result"


def _interrupted_q3(
    tmp_path: Path, data_dir: Path, stop: signal.Signals, *extra: str
) -> tuple[Path, list[str], dict]:
    """A Q3 run stopped by ``stop`` once a sweep point is kept: its store, command and session ledger."""
    store = tmp_path / "results"
    args = build_cmd(
        "run", "q3", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store), *LONG_Q3,
        *extra,
    )  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(store, ".work/smoke/q3-*/*.pt", proc)  # a sweep point is kept: there is work to resume
    proc.send_signal(stop)
    try:
        _, err = proc.communicate(timeout=60)  # up to 18 s at a load of 10
    finally:
        proc.kill()  # a build that hangs on its way out is not left behind
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().endswith("error: interrupted; finished experiments are stored, the next run resumes")
    [ledger] = store.glob(".work/smoke/q3-*/sessions.json")
    first = json.loads(ledger.read_text())
    assert first["sessions"] == 1 and first["duration_s"] > 0
    return store, args, first


def test_sigterm_ends_a_build_as_ctrl_c_does(tmp_path, data_dir):
    """SIGTERM (``timeout``, a scheduler's time limit) ends a build with Ctrl-C's one line and status 130, its
    session counted in the ledger; from there on nothing depends on the signal (the resume test below).
    Its units run in worker processes, as a 2-core machine runs them by default."""
    _interrupted_q3(tmp_path, data_dir, signal.SIGTERM, *WORKERS)


def test_a_run_resumed_after_an_interrupt_records_the_time_of_both_sessions(tmp_path, data_dir):
    """The run record's start and duration cover the whole run, not only the session that finished it.
    Units run in the build's process, as on a GPU (Ctrl-C with worker processes: tests/test_interrupts.py)."""
    store, args, first = _interrupted_q3(tmp_path, data_dir, signal.SIGINT)
    again = in_process(args)
    assert again.returncode == 0, again.stderr[-3000:]
    meta = Store(store).meta("smoke", "q3")
    assert meta["sessions"] == 2 and meta["started"] == first["started"]
    assert meta["duration_s"] > first["duration_s"]
    assert not list(store.glob(".work/smoke/q3-*")), "the finished run leaves no work folder"


def test_an_interrupt_between_the_last_unit_and_the_stored_result_keeps_the_sessions_time(
    tmp_path, data_dir, monkeypatch
):
    """The experiment has returned but its result is not stored yet (git, the store's writes): an interrupt
    there leaves its kept work to resume, so the ledger must hold this session's time, not its first
    write's (the SIGTERM test above landed there under load: a run of 8 s recorded as 0)."""
    import torch

    import experiments.q1
    from experiments import kit, runner
    from report.core.freshness import Request
    from tests.helpers import synthetic

    def run(cfg, ctx):
        ctx.step("kept", lambda: 1)  # a finished unit, kept on disk for the next session
        time.sleep(0.5)
        return kit.Output(synthetic("q1"), ("loss", 0.5))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.q1, "run", run)
    store, request = Store(tmp_path / "results"), Request("smoke", {}, 0, data_dir)
    [planned] = runner.plan(["q1"], request, store)
    with store.lock(), monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(store, "write", interrupted)
        runner.execute(planned, request, torch.device("cpu"), store, track=lambda it, **_: it, log=print)
    [ledger] = store.root.glob(".work/smoke/q1-*/sessions.json")
    first = json.loads(ledger.read_text())
    assert first["sessions"] == 1 and first["duration_s"] >= 0.5, first
    with store.lock():
        runner.execute(planned, request, torch.device("cpu"), store, track=lambda it, **_: it, log=print)
    meta = store.meta("smoke", "q1")
    assert meta["sessions"] == 2 and meta["started"] == first["started"] and meta["duration_s"] >= 1.0


def test_two_concurrent_builds_share_one_store(tmp_path, data_dir):
    store = tmp_path / "results"
    args = build_cmd(
        "run", "q1", "q2", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store)
    )
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    logs = "".join(err for _, err in outs)
    assert logs.count("✓ q1") == 1 and logs.count("✓ q2") == 1, "the second build must not redo the work"
    assert "waiting" in logs or "nothing to run" in logs
    runs = Store(store).runs()
    assert sorted(runs["experiment"]) == ["q1", "q2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{{ q2.answer | pct ) }}", "unexpected ')'"),
        ("{{ q2.no_such_value }}", "has no attribute 'no_such_value'"),
    ],
)
def test_template_error_via_cli_names_file_and_line(smoke_build, tmp_path, line, message):
    """An author's syntax error or missing value: exit status 2, file:line, and the store untouched."""
    project = copy_project(tmp_path)
    template = project / "templates" / "q2.md.j2"
    lines = template.read_text().splitlines()
    lines[2] = line
    template.write_text("\n".join(lines) + "\n")
    before = sorted(p.stat().st_mtime_ns for p in smoke_build.store.rglob("*.parquet"))
    proc = subprocess.run(
        [sys.executable, str(project / "build.py"), *render_args(smoke_build.store, tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: templates/q2.md.j2:3: " in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.stat().st_mtime_ns for p in smoke_build.store.rglob("*.parquet")) == before
    assert not (tmp_path / "out" / "report.html").exists()


def test_watch_rerenders_when_a_template_changes(smoke_build, tmp_path):
    project = copy_project(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(project / "build.py"),
            "watch",
            "--profile",
            "smoke",
            "--store",
            str(smoke_build.store),
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        html = out / "report.html"
        _wait_for(out, "report.html", proc, timeout=120)
        template = project / "templates" / "q1.md.j2"
        template.write_text(template.read_text() + "\nA sentence the author just added.\n")
        deadline = time.monotonic() + 120
        while "A sentence the author just added." not in html.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "watch did not re-render after the template changed"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
