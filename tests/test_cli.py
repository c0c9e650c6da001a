"""The CLI through Typer's CliRunner and real subprocesses: options, errors, exit codes."""

from __future__ import annotations

import subprocess
import time

from typer.testing import CliRunner

import build
from report import output
from report.core.store import Store
from tests.conftest import build_cmd, in_process, render_args, smoke_all
from tests.helpers import store_with

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(build.app, list(args))


def test_help_lists_every_command():
    result = _invoke("--help")
    assert result.exit_code == 0
    for command in (
        "all",
        "run",
        "render",
        "status",
        "clean",
        "preview",
        "watch",
        "export",
        "import",
        "diff",
    ):
        assert command in result.output


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


def test_unknown_profile_is_exit_2_with_one_line(tmp_path):
    result = _invoke("run", "--profile", "huge", "--store", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown profile 'huge': choose one of smoke, quick, full" in result.output
    assert "Traceback" not in result.output


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


def test_render_with_empty_store_says_what_to_run(tmp_path):
    result = _invoke("render", "--profile", "smoke", "--store", str(tmp_path), "--out", str(tmp_path / "b"))
    assert result.exit_code == 2
    assert "build.py run q1 --profile smoke" in result.output


def test_corrupt_store_file_is_exit_2_and_other_results_stay(tmp_path):
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
    assert result.exit_code == 2 and "pass a writable --out" in result.output


def test_clean_keeps_results_unless_confirmed(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_CACHE", raising=False)  # clean would delete the run's shared cache
    store_with(tmp_path / "r", "q1")
    output.cache_dir(tmp_path / "b")  # an output folder as a render leaves it
    result = runner.invoke(
        build.app,
        ["clean", "--results", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b")],
        input="n\n",
    )
    assert result.exit_code == 1 and Store(tmp_path / "r").has("smoke", "q1")
    assert not (tmp_path / "b").exists()
    result = _invoke(
        "clean", "--results", "--yes", "--store", str(tmp_path / "r"), "--out", str(tmp_path / "b")
    )
    assert result.exit_code == 0 and not Store(tmp_path / "r").has("smoke", "q1")


def test_unreadable_data_is_exit_2(tmp_path):
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
    )
    proc = in_process(build_cmd(*args))  # a data folder of its own: no data cache of this process holds it
    assert proc.returncode == 2, proc.stderr
    assert "MNIST (train)" in proc.stderr and "could not be read" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_refuses_a_bad_set_in_one_line_without_importing_torch(tmp_path):
    """A rule between fields (not a single value's range) is checked as ``run`` checks it, from the
    torch-free configs."""
    cmd = build_cmd("status", "--profile", "smoke", "--store", str(tmp_path / "r"), "--set", "q3.patience=90")
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, timeout=120)
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and said[-1] == "error: q3.patience must be below q3.max_epochs", said
    assert [line for line in said if "error" in line or "Traceback" in line] == said[-1:], said
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported
