"""The CLI through Typer's CliRunner and real subprocesses: options, errors, exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import build
from report import output
from report.core.store import Store
from tests.conftest import ROOT, build_cmd, in_process, render_args, smoke_all
from tests.helpers import store_with

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(build.app, list(args))


COMMANDS = (
    "all",
    "run",
    "render",
    "status",
    "export",
    "import",
    "accept",
    "diff",
    "clean",
    "preview",
    "watch",
)


def test_help_lists_every_command():
    result = _invoke("--help")
    assert result.exit_code == 0
    listing = result.output.split("Commands:")[1].split("\n\n")[0]
    assert [line.split()[0] for line in listing.strip().splitlines()] == list(COMMANDS)


def test_help_shows_no_flag_types_no_rst_and_no_source_line_breaks():
    wide = {"COLUMNS": "400"}  # wide enough that any break left in a paragraph is the docstring's own
    top = runner.invoke(build.app, ["--help"], env=wide).output
    assert "<bool>" not in top
    accept = next(line for line in top.splitlines() if "│ accept" in line)
    assert "why it was." in accept, "accept's description is one line on a wide terminal"
    for name in COMMANDS:
        result = runner.invoke(build.app, [name, "--help"], env=wide)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "``" not in result.output, name
        help_line = next(line for line in result.output.splitlines() if "--help" in line)
        assert help_line.split() == ["│", "--help", "-h", "Show", "this", "message", "and", "exit.", "│"]
    preview = runner.invoke(build.app, ["preview", "--help"], env=wide).output
    assert "a data file or the store changes (so a stale" in preview, "a paragraph breaks at the terminal"


def test_help_on_a_narrow_terminal_names_every_option_whole():
    """At 80 columns Rich's option tables cut long names short ("--strict-versio…"); there the help takes
    click's plain layout, within the width."""
    import typer

    group = typer.main.get_command(build.app)
    for name in COMMANDS:
        out = runner.invoke(build.app, [name, "--help"], env={"COLUMNS": "80"}).output
        names = [
            o for p in group.commands[name].params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")
        ]
        assert all(o in out.split() or f"{o}," in out for o in names), (name, out)
        assert "…" not in out and max(map(len, out.splitlines())) <= 80, out


def test_diff_after_a_first_build_says_what_it_compares(tmp_path):
    store_with(tmp_path / "r", "q1")
    result = _invoke("diff", "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert result.exit_code == 0
    said = " ".join(result.output.split())
    assert "diff compares each experiment's previous run in this store" in said
    assert "with its current one, and none has run more than once here" in said
    assert "build.py diff OTHER_STORE" in said and "build.py diff BUNDLE.tar.gz" in said


def test_diff_against_a_name_that_is_nothing_says_what_it_takes(tmp_path):
    """Neither a run id of the store, a folder nor a bundle: one line naming all three."""
    store_with(tmp_path / "r", "q1")
    result = _invoke("diff", "2026-no-such-run", "--profile", "smoke", "--store", str(tmp_path / "r"))
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "2026-no-such-run is no run id in" in errors[0]
    assert "pass a run id from that store, another store's folder or a results bundle" in errors[0]


def test_unknown_profile_is_exit_2_with_one_line(tmp_path):
    result = _invoke("run", "--profile", "huge", "--store", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown profile 'huge': choose one of smoke, quick, full" in result.output
    assert "Traceback" not in result.output


def test_an_empty_profile_is_refused_not_taken_as_the_default(tmp_path):
    result = _invoke("status", "--profile", "", "--store", str(tmp_path))
    assert result.exit_code == 2 and "unknown profile '': choose one of smoke, quick, full" in result.output


def test_unknown_experiment_is_exit_2(tmp_path):
    result = _invoke("run", "q9", "--profile", "smoke", "--store", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown experiment 'q9': choose from q1, q2, q3, q4" in result.output


def test_invalid_set_key_and_value_are_exit_2(tmp_path, data_dir):
    bad_key = _invoke("run", "q3", "--profile", "smoke", "--store", str(tmp_path), "--set", "q3.epoch=5")
    assert bad_key.exit_code == 2 and "q3 has no setting 'epoch'" in bad_key.output
    bad_value = _invoke(
        "run", "q4", "--profile", "smoke", "--store", str(tmp_path), "--set", "q4.dataset=imagenet"
    )
    assert bad_value.exit_code == 2 and "choose one of" in bad_value.output
    assert not (tmp_path / "smoke").exists(), "nothing may be written on bad input"


def test_missing_svhn_fails_fast_before_training(tmp_path, data_dir):
    start = time.perf_counter()
    proc = subprocess.run(
        smoke_all(data_dir, tmp_path / "r", tmp_path / "b"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "SVHN not found in" in errors[0] and str(data_dir / "SVHN") in errors[0]
    assert "--set q4.dataset=fashion-mnist" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "r").glob("smoke/*")), "no experiment may run before the preflight passes"
    print(f"preflight failure took {elapsed:.1f} s")


def test_a_missing_dataset_names_the_setting_that_gave_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("REPORT_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr("experiments.datasets.reachable", lambda url: False)  # offline, wherever it runs
    result = _invoke("run", "q4", "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    error = " ".join(result.output.split())
    assert f"SVHN not found in {tmp_path / 'nowhere' / 'SVHN'}" in error, error
    assert error.endswith(f"(the data folder: REPORT_DATA_DIR={tmp_path / 'nowhere'})"), error


def test_render_with_empty_store_says_what_to_run(tmp_path):
    result = _invoke("render", "--profile", "smoke", "--store", str(tmp_path), "--out", str(tmp_path / "b"))
    assert result.exit_code == 2
    assert "build.py run q1 q2 q3 q4 --profile smoke" in result.output


def test_corrupt_store_file_is_exit_2_and_other_results_stay(tmp_path):
    for name in ("q2", "q3", "q4"):  # the others present: a missing one is named first
        store_with(tmp_path, name)
    store = store_with(tmp_path, "q1")
    path = store.path("smoke", "q1")
    path.write_bytes(b"garbage")
    result = _invoke("render", "--profile", "smoke", "--store", str(tmp_path), "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "corrupt or truncated" in result.output
    assert path.read_bytes() == b"garbage", "a bad file is reported, never silently replaced"


def test_unwritable_out_dir_is_exit_2(tmp_path, smoke_build):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke(*render_args(smoke_build.store, blocker / "out", "--format", "html"))
    assert result.exit_code == 2 and f"({blocker} is a file); pass another --out" in result.output


def test_clean_keeps_results_unless_confirmed(tmp_path, monkeypatch):
    """It asks before deleting anything, and a no keeps everything: a choice, not an error (as rm -i)."""
    monkeypatch.delenv("REPORT_CACHE", raising=False)  # clean would delete the run's shared cache
    store_with(tmp_path / "r", "q1")
    output.cache_dir(tmp_path / "b")  # an output folder as a render leaves it
    result = runner.invoke(
        build.app,
        ["clean", "--results", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b")],
        input="n\n",
    )
    assert result.exit_code == 0 and Store(tmp_path / "r").has("smoke", "q1")
    assert "kept everything" in result.output and "error" not in result.output, result.output
    assert (tmp_path / "b" / output.CACHE).is_dir(), "nothing is removed before the answer"
    result = _invoke(
        "clean", "--results", "--yes", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b")
    )
    assert result.exit_code == 0 and not Store(tmp_path / "r").has("smoke", "q1")


def test_unreadable_data_is_exit_2(tmp_path):
    """Damaged label files are named by the check before torch; intact labels beside damaged images, by
    torchvision's reader when the experiment loads them: one line either way, no traceback."""
    import numpy as np

    from tests.datasets import write_idx

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        for kind, n in (("images", 3), ("labels", 1)):
            (raw / f"{split}-{kind}-idx{n}-ubyte").write_bytes(b"\x00\x00\x08\x03truncated")
    args = (
        "run",
        "q1",
        "--profile",
        "smoke",
        "--data-dir",
        str(tmp_path / "data"),
        "--store",
        str(tmp_path / "r"),
        "--set",
        "q1.samples=60",  # the 0s and 1s among the 300 labels below
    )
    proc = in_process(build_cmd(*args))  # a data folder of its own: no data cache of this process holds it
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{raw / 'train-labels-idx1-ubyte'} is not a complete IDX label file" in proc.stderr
    for split, n in (("train", 300), ("t10k", 100)):
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    proc = in_process(build_cmd(*args))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "MNIST (train)" in proc.stderr and "could not be read" in proc.stderr


def test_status_refuses_a_bad_set_in_one_line_without_importing_torch(tmp_path):
    """A rule between fields (not a single value's range) is checked as ``run`` checks it, from the
    torch-free configs."""
    cmd = build_cmd("status", "--profile", "smoke", "--store", str(tmp_path / "r"), "--set", "q3.patience=90")
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, timeout=120)
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and said[-1] == (
        "error: q3.patience must be at most the longest of q3.schedules minus 2, or early stopping could "
        "never end a run before its schedule does"
    ), said
    assert [line for line in said if "error" in line or "Traceback" in line] == said[-1:], said
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_no_arguments_print_the_help_at_any_width():
    """Below 100 columns the help takes click's plain layout, which Typer's no-arguments path printed
    nowhere: ``python build.py`` said nothing at all."""
    for columns in ("80", "120"):
        result = runner.invoke(build.app, [], env={"COLUMNS": columns})
        assert result.exit_code == 2, (columns, result.output)  # Click's status for no arguments
        assert "Usage:" in result.output and "status" in result.output and "Exit status" in result.output


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["render", "--paper", "docx"], {}, "error: --paper=docx: choose a4 or letter"),
        (["render", "--format", "docx"], {}, "error: --format=docx: choose html, pdf or all"),
        (["status", "--seed", "abc"], {}, "error: --seed=abc: give an integer from 0 to 2,147,483,648"),
        (
            ["status"],
            {"REPORT_SEED": "abc"},
            "error: REPORT_SEED=abc: give an integer from 0 to 2,147,483,648",
        ),
        (
            ["status"],
            {"REPORT_STRICT_VERSIONS": "maybe"},
            "error: REPORT_STRICT_VERSIONS=maybe: give true or false (or 1 or 0, yes or no)",
        ),
        (["statu"], {}, "error: no such command 'statu'. Did you mean 'status'?"),
        (["import"], {}, "error: missing argument 'source'; see 'build.py import -h'"),
    ],
)
def test_click_usage_errors_are_one_line_naming_what_the_user_gave(args, env, line):
    result = runner.invoke(build.app, args, env=env, prog_name="build.py")
    assert result.exit_code == 2 and result.output.strip().splitlines() == [line], result.output


def test_paper_and_format_choices_take_any_case(tmp_path):
    args = render_args(tmp_path / "r", tmp_path / "b", "--paper", "A4", "--format", "HTML", "--show-settings")
    result = runner.invoke(build.app, args, env={"COLUMNS": "200"})
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines()
            if line.count("│") == 4}  # fmt: skip
    assert rows["paper"] == "a4" and rows["fmt"] == "html", result.output


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"REPORT_PROFILE": "Full"}, ["status"], "error: REPORT_PROFILE=Full: unknown profile 'Full'"),
        ({"REPORT_DEVICE": "gpu"}, ["run", "q1"], "error: REPORT_DEVICE=gpu: choose auto, cpu, cuda or mps"),
    ],
)
def test_a_bad_value_from_the_environment_names_the_variable(tmp_path, env, args, said):
    profile = [] if "REPORT_PROFILE" in env else ["--profile", "smoke"]
    result = runner.invoke(build.app, [*args, *profile, "--store", str(tmp_path / "r")], env=env)
    assert result.exit_code == 2 and _errors(result.output)[0].startswith(said), result.output
    assert not (tmp_path / "r" / "smoke").exists()


def test_an_output_folder_that_is_a_file_says_so_and_names_where_it_was_given(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    given = runner.invoke(build.app, render_args(tmp_path / "r", blocker))
    assert given.exit_code == 2
    assert _errors(given.output) == [
        f"error: --out {blocker} is a file, not a folder; pass a folder as --out"
    ]
    env = runner.invoke(build.app, ["render", "--profile", "smoke"], env={"REPORT_OUT": str(blocker)})
    assert env.exit_code == 2 and _errors(env.output)[0].startswith(f"error: REPORT_OUT={blocker} is a file")


def test_preview_refuses_a_port_out_of_range_before_rendering(tmp_path):
    result = _invoke(
        "preview", "--no-browser", "--port", "99999", *render_args(tmp_path / "r", tmp_path / "b")[1:]
    )
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == ["error: --port=99999: give an integer from 0 to 65,535"]
    assert not (tmp_path / "b").exists()


def test_preview_blames_the_host_or_the_port_as_the_bind_error_says(tmp_path):
    import socket

    args = ["preview", "--no-browser", *render_args(tmp_path / "r", tmp_path / "b")[1:]]
    nowhere = _invoke(*args, "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: no machine's own address
    assert nowhere.exit_code == 2 and "pass a --host of this machine" in nowhere.output, nowhere.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = _invoke(*args, "--port", str(taken.getsockname()[1]))
    assert busy.exit_code == 2 and "pass another --port" in busy.output, busy.output


def test_import_says_what_it_takes(tmp_path):
    readme = _invoke("import", str(output.TEMPLATES.parent / "README.md"), "--store", str(tmp_path))
    assert readme.exit_code == 2 and "truncated" not in readme.output, readme.output
    assert "is not a results bundle (a .tar.gz written by build.py export)" in readme.output
    ftp = _invoke("import", "ftp://x/y", "--store", str(tmp_path))
    assert ftp.exit_code == 2 and "only file paths, file:// and https:// URLs are supported" in ftp.output


@pytest.mark.parametrize("name", ["export", "import", "clean"])
def test_every_command_takes_show_settings(tmp_path, name, monkeypatch):
    """docs/settings.md lists it among the options every command shares."""
    monkeypatch.delenv("REPORT_CACHE", raising=False)  # clean would empty the run's shared cache
    monkeypatch.chdir(tmp_path)  # and its default --out, build/, would be the project's
    own = {"export": ["--profile", "smoke"], "import": [str(tmp_path / "none.tar.gz")], "clean": []}[name]
    result = _invoke(name, *own, "--show-settings", "--store", str(tmp_path / "r"))
    assert "effective settings" in result.output and "no such option" not in result.output, result.output


def test_the_help_says_what_exit_status_1_means():
    said = " ".join(runner.invoke(build.app, ["--help"], env={"COLUMNS": "400"}).output.split())
    assert "1 an unexpected failure (an experiment that raised, a lost cluster or worker, a bug" in said


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_package_version_in_one_line(flag):
    from importlib import metadata

    result = runner.invoke(build.app, [flag])
    assert result.exit_code == 0, result.output
    assert result.output == f"assignment-report {metadata.version('assignment-report')}\n"


def test_status_check_fails_ci_on_a_missing_result_and_prints_the_run_that_fixes_it(tmp_path, monkeypatch):
    """status always exited 0, and said nothing of how to make the missing results."""
    import shlex

    from report import steps

    store = tmp_path / "r"
    for name in ("q1", "q2"):
        store_with(store, name)
    checked = _invoke("status", "--check", "--profile", "smoke", "--store", str(store))
    assert checked.exit_code == 3 and not _errors(checked.output), checked.output
    runs = [line for line in checked.output.splitlines() if line.startswith("run: ")]
    assert runs == [f"run: build.py run q3 q4 --profile smoke --store {store}"], checked.output
    assert (
        _invoke("status", "q1", "q2", "--check", "--profile", "smoke", "--store", str(store)).exit_code == 0
    )
    assert _invoke("status", "--profile", "smoke", "--store", str(store)).exit_code == 0, "only with --check"
    ran = []
    monkeypatch.setattr(steps, "run_experiments", lambda opts, names, force: ran.append((names, opts)) or 1)
    again = _invoke(*shlex.split(runs[0].removeprefix("run: "))[1:])
    assert again.exit_code == 0, again.output
    assert ran[0][0] == ["q3", "q4"] and ran[0][1].store == store and ran[0][1].chosen == "smoke"


def test_status_json_gives_each_row_as_diff_json_names_a_run(tmp_path):
    import json

    store = store_with(tmp_path / "r", "q1")
    result = _invoke("status", "q1", "q3", "--json", "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    rows = {row["experiment"]: row for row in json.loads(result.stdout)}
    meta = store.meta("smoke", "q1")
    assert rows["q1"] == {
        "experiment": "q1",
        "profile": "smoke",
        "state": "current",
        "changed": [],
        "reasons": [],
        "run_id": meta["run_id"],
        "finished": meta["finished"],
        "duration_s": meta["duration_s"],
        "device": meta["device_name"],
        "headline": meta["headline"],
    }
    assert (
        rows["q3"]["state"] == "missing" and rows["q3"]["run_id"] is None and rows["q3"]["headline"] is None
    )
    assert "run: build.py run q3 --profile smoke" in result.output, "the fix, on stderr beside the JSON"


@pytest.mark.parametrize("option", ["--store", "--data-dir"])
def test_an_empty_folder_name_is_one_line_not_the_current_folder(tmp_path, monkeypatch, option):
    """``--store ""`` meant "." and wrote the store's data-hash cache into the current folder."""
    monkeypatch.chdir(tmp_path)
    result = _invoke("status", "--profile", "smoke", option, "")
    assert result.exit_code == 2 and _errors(result.output) == [
        f"error: {option}='': an empty path names no folder; give a folder, or leave it out for the default "
        f"({'results' if option == '--store' else 'data'})"
    ], result.output
    assert not list(tmp_path.iterdir()), "nothing written in the current folder"


def test_an_empty_folder_name_in_report_toml_names_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.toml").write_text('profile = "smoke"\nout = ""\n')
    monkeypatch.setenv("REPORT_SETTINGS", str(tmp_path / "report.toml"))
    result = _invoke("render")
    assert result.exit_code == 2 and _errors(result.output) == [
        f"error: {tmp_path / 'report.toml'}:2: out = '': an empty path names no folder; give a folder ('.' "
        "for this file's), or remove the line for the default"
    ], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.toml"]


def test_experiment_names_take_any_case(tmp_path, monkeypatch):
    from report import steps

    ran = []
    monkeypatch.setattr(steps, "run_experiments", lambda opts, names, force: ran.append(names) or 1)
    result = _invoke("run", "Q3", "q1", "Q1", "--profile", "smoke", "--store", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert ran == [["q3", "q1"]]
    status = _invoke(
        "status", "q3", "--profile", "smoke", "--store", str(tmp_path / "r"), "--set", "Q3.seeds=2"
    )
    assert status.exit_code == 0, status.output
    assert "run: build.py run q3 --profile smoke --store" in status.output
    assert status.output.rstrip().endswith("--set q3.seeds=2"), "recorded as the manifest spells it"


def test_clean_with_nothing_to_remove_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_CACHE", raising=False)  # clean would empty the run's shared cache
    out = tmp_path / "b"
    result = _invoke("clean", "--out", str(out))
    assert result.exit_code == 0 and result.output.strip() == f"nothing to remove in {out}", result.output
    with_results = _invoke("clean", "--results", "--out", str(out), "--store", str(tmp_path / "r"))
    assert with_results.output.strip() == f"nothing to remove in {out} or {tmp_path / 'r'}"


def test_the_run_status_advises_for_a_result_stale_by_its_versions_reruns_it(tmp_path, monkeypatch):
    """Versions are provenance unless --strict-versions: the advised run carries it, else it would find
    the result current and run nothing."""
    import shlex

    from report import steps
    from report.core.freshness import judge
    from tests.helpers import fake_meta, synthetic

    meta = fake_meta("q1")
    elsewhere = {**meta, "fingerprint": {**meta["fingerprint"], "versions": "made-elsewhere"}}
    Store(tmp_path / "r").write("smoke", "q1", synthetic("q1"), elsewhere)
    args = ["q1", "--profile", "smoke", "--store", str(tmp_path / "r"), "--strict-versions"]
    checked = _invoke("status", "--check", *args)
    assert checked.exit_code == 3 and "stale: versions changed" in checked.output, checked.output
    advised = next(line for line in checked.output.splitlines() if line.startswith("run: "))
    assert advised == f"run: build.py run q1 --profile smoke --store {tmp_path / 'r'} --strict-versions"
    stale = []

    def run_experiments(opts, names, force):  # what the advised run would train
        stale.extend(n for n in names if not judge(opts.results, n, opts.request).current)
        return len(stale)

    monkeypatch.setattr(steps, "run_experiments", run_experiments)
    assert _invoke(*shlex.split(advised.removeprefix("run: "))[1:]).exit_code == 0
    assert stale == ["q1"], "the advised run finds it stale, so it runs it"


def test_ctrl_c_at_clean_s_question_cancels_with_exit_130_and_deletes_nothing(tmp_path):
    """Ctrl-C at the terminal's [y/N] is a cancel (exit 130), not 'nothing answered; pass --yes'."""
    import pty
    import select

    store_with(tmp_path / "r", "q1")
    output.cache_dir(tmp_path / "b")
    pid, fd = pty.fork()
    if pid == 0:  # the child: build.py on the pseudo-terminal, its controlling terminal
        os.execvpe(sys.executable, [sys.executable, str(ROOT / "build.py"), "clean", "--results", "--store",
                   str(tmp_path / "r"), "--out", str(tmp_path / "b")], dict(os.environ))  # fmt: skip
    said, deadline = b"", time.monotonic() + 60
    while b"[y/N]" not in said and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            said += os.read(fd, 4096)
    assert b"[y/N]" in said, said
    status, deadline, sent = None, time.monotonic() + 60, 0.0
    try:
        while status is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # OSError: the child has closed the terminal
                if time.monotonic() - sent > 10:  # Ctrl-C: the terminal sends SIGINT (again after 10 s,
                    os.write(fd, b"\x03")  # should the first have landed before the prompt read)
                    sent = time.monotonic()
                if select.select([fd], [], [], 0.2)[0]:
                    said += os.read(fd, 4096)
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        if status is None:  # never left hanging: the assertion below says what went wrong
            os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
    with contextlib.suppress(OSError):
        while select.select([fd], [], [], 0.5)[0] and (chunk := os.read(fd, 4096)):
            said += chunk
    assert os.waitstatus_to_exitcode(status) == 130, said
    assert b"cancelled: nothing was deleted" in said and b"--yes" not in said.split(b"[y/N]")[1], said
    assert Store(tmp_path / "r").has("smoke", "q1") and (tmp_path / "b" / output.CACHE).is_dir()
