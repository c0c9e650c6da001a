"""report.toml: one precedence rule (command line > environment > file > defaults) for every command."""

from __future__ import annotations

import re
import shutil
import textwrap

import pytest
from typer.testing import CliRunner

import build
from report.core.freshness import Request
from report.core.store import Store
from tests.conftest import ROOT, SMOKE_Q4

runner = CliRunner()


def _invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(build.app, list(args), env=env)


def _settings(folder, text: str) -> None:
    (folder / "report.toml").write_text(textwrap.dedent(text))


def _rows(output: str) -> dict[str, str]:
    return {line.split("│")[1].strip(): line for line in output.splitlines() if line.startswith("│")}


def _value(row: str) -> str:
    """The value cell of a --show-settings row."""
    return row.split("│")[2].strip()


@pytest.fixture
def project_folder(smoke_build, data_dir, tmp_path, monkeypatch):
    """A folder with a copy of the smoke results and a report.toml that says how they were built."""
    shutil.copytree(smoke_build.store, tmp_path / "results")
    _settings(
        tmp_path,
        f"""
        profile = "smoke"
        data_dir = "{data_dir}"
        out = "{tmp_path / "build"}"

        [set.q4]
        dataset = "{SMOKE_Q4["dataset"]}"
        models = "{SMOKE_Q4["models"]}"
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPORT_SETTINGS")  # found in the current folder, as a user's is
    return tmp_path


@pytest.mark.slow
def test_plain_commands_answer_for_the_build_the_file_describes(project_folder):
    built = _invoke("all", "--format", "html")
    assert built.exit_code == 0, built.output
    assert all(f"q{n}: up to date" in built.output for n in range(1, 5)), built.output
    status = _invoke("status")
    rows = [line for line in status.output.splitlines() if line.strip().startswith("│ q")]
    assert len(rows) == 4 and all("current" in r for r in rows), status.output
    assert (project_folder / "build" / "report.html").is_file()


def test_the_command_line_beats_the_environment_which_beats_the_file(project_folder, data_dir):
    shown = _invoke("status", "--show-settings")
    rows = _rows(shown.output)
    assert "report.toml:3" in rows["data_dir"] and "report.toml:7" in rows["set q4.dataset"]
    assert "default" in rows["seed"]
    env = {"REPORT_DATA_DIR": str(data_dir / "elsewhere"), "REPORT_SEED": "4"}
    shown = _invoke("status", "--show-settings", "--set", "q4.dataset=mnist", "--seed", "5", env=env)
    rows = _rows(shown.output)
    assert "elsewhere" in rows["data_dir"] and "environment (REPORT_DATA_DIR)" in rows["data_dir"]
    assert " 5 " in rows["seed"] and "command line" in rows["seed"]
    assert _value(rows["set q4.dataset"]) == "mnist" and "command line" in rows["set q4.dataset"]


@pytest.mark.slow
def test_the_stored_config_and_fingerprint_record_values_from_the_file(project_folder):
    (project_folder / "report.toml").write_text(
        (project_folder / "report.toml").read_text() + "\n[profiles.smoke.set.q1]\nsegments = 300\n"
    )
    ran = _invoke("run", "q1")
    assert ran.exit_code == 0, ran.output
    meta = Store(project_folder / "results").meta("smoke", "q1")
    assert meta["config"]["segments"] == 300
    request = Request("smoke", {"q1": {"segments": "300"}, "q4": {"dataset": "fashion-mnist"}})
    assert meta["fingerprint"]["config"] == request.config_part("q1"), (
        "the same hash as --set q1.segments=300"
    )
    quick = _invoke("status", "--profile", "quick", "--show-settings")
    assert "set q1.segments" not in quick.output, "a profile's set table applies to that profile only"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('profile = "smoke"\nprofil = "quick"\n', "report.toml:2: unknown setting 'profil'; valid: profile"),
        ('seed = "one"\n', "report.toml:1: seed = 'one': give a whole number of 0 or more"),
        ('profile = "huge"\n', "report.toml:1: profile = 'huge': choose smoke, quick, full"),
        ("\n[set.q3]\nsweep_epoch = 5\n", "report.toml:3: q3 has no setting 'sweep_epoch'; valid: "),
        ("[set.q9]\nx = 1\n", "report.toml:1: [set.q9]: no such experiment; choose from q1, q2, q3, q4"),
        (  # a choice is checked against the real Config when the file is read (it was once left to the run)
            '[set.q4]\ndataset = "imagenet"\n',
            "report.toml:2: dataset: choose one of svhn, fashion-mnist, mnist, cifar10",
        ),
        (
            "[profiles.huge.set.q3]\nseeds = 2\n",
            "[profiles.huge]: choose a profile of smoke, quick, full",
        ),
        ("profile = \n", "report.toml:1: Invalid value; write it as TOML (key = value, texts in quotes)"),
        # each table where a value stands names the table it should be, in a form the file then accepts
        (
            "[profiles]\nfull = 5\n",
            "profiles.full must be a table: [profiles.full.set.q3], then its settings",
        ),
        ("[set]\nq3 = 5\n", "report.toml:1: set.q3 must be a table: [set.q3], then key = value lines"),
        (
            "[set.q3]\nlrs = []\n",
            "report.toml:2: q3.lrs: give one or more values, none empty, e.g. lrs = [0.0001, ",
        ),
        (
            '[set.q3]\nlrs = [0.1, ""]\n',
            "report.toml:2: q3.lrs: give one or more values, none empty, e.g. lrs = [",
        ),
        ("[set.q3]\nseeds = []\n", "report.toml:2: q3.seeds: give one value, not a list, e.g. seeds = 3"),
        (
            "[set.q3]\nseeds = 3\nseeds = 4\n",
            "report.toml:3: Cannot overwrite a value; remove the repeated key",
        ),
    ],
)
def test_a_broken_settings_file_is_one_line_with_file_and_line(tmp_path, monkeypatch, text, message):
    _settings(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPORT_SETTINGS")  # found in the current folder, as a user's is
    for command in ("status", "render", "all"):
        result = _invoke(command)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], (command, result.output)
    assert not (tmp_path / "results").exists(), "nothing may run on a broken settings file"


def test_paths_in_the_file_are_relative_to_it_and_flags_turn_off(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    _settings(folder, 'store = "../results"\nstrict_versions = true\n')
    monkeypatch.chdir(tmp_path)  # another folder: the file is named, not found
    env = {"REPORT_SETTINGS": str(folder / "report.toml")}
    rows = _rows(_invoke("status", "--profile", "smoke", "--show-settings", env=env).output)
    assert str(tmp_path / "results") in rows["store"]
    assert "True" in rows["strict_versions"]
    rows = _rows(
        _invoke("status", "--profile", "smoke", "--show-settings", "--no-strict-versions", env=env).output
    )
    assert "False" in rows["strict_versions"] and "command line" in rows["strict_versions"]


def test_one_value_in_two_spellings_is_one_config():
    def part(**sets: str) -> str:
        return Request("smoke", {"q3": sets}).config_part("q3")

    assert part(lrs="1e-3,0.1") == part(lrs="0.001, 0.1")
    assert part(ci_level="0.950") == part(ci_level="0.95")
    assert part(seeds="3") == part(seeds="03") != part(seeds="4")


def test_an_experiment_s_set_table_takes_its_name_in_any_case(tmp_path):
    (tmp_path / "report.toml").write_text("[set.Q3]\nseeds = 2\n")
    env = {"REPORT_SETTINGS": str(tmp_path / "report.toml")}
    result = _invoke("status", "q3", "--profile", "smoke", "--show-settings", env=env)
    assert result.exit_code == 0, result.output
    assert _value(_rows(result.output)["set q3.seeds"]) == "2", "[set.Q3] is [set.q3], as --set Q3.seeds is"


def test_a_choice_in_the_file_takes_any_case_as_the_command_line_does(tmp_path):
    (tmp_path / "report.toml").write_text('paper = "A4"\nformat = "HTML"\n')
    env = {"REPORT_SETTINGS": str(tmp_path / "report.toml")}
    result = _invoke(
        "render", "--profile", "smoke", "--store", str(tmp_path / "r"), "--show-settings", env=env
    )
    assert "error: the report needs" in result.output, "the file is read; the store is empty"
    rows = _rows(result.output)
    assert _value(rows["paper"]) == "a4" and _value(rows["fmt"]) == "html", result.output


def test_a_bad_value_in_the_file_s_set_table_is_one_line_naming_its_line_before_anything_runs(tmp_path):
    """status checks report.toml's [set] values as it checks --set (its advice would otherwise fail), and
    status and run name the file's line; a --set for the same key wins, as it does in a build."""
    (tmp_path / "report.toml").write_text("# mine\n[set.q1]\nscale_min = 50.0\n")
    env = {"REPORT_SETTINGS": str(tmp_path / "report.toml")}
    store = ["--store", str(tmp_path / "results"), "--profile", "quick"]
    said = f"error: {tmp_path / 'report.toml'}:3: q1.scale_min and scale_max: need scale_min < scale_max"
    for command in (["status", "--check"], ["run", "q1"]):
        result = _invoke(*command, *store, env=env)
        assert result.exit_code == 2 and said in result.output, result.output
    assert not (tmp_path / "results").exists(), "nothing ran"
    result = _invoke("status", *store, "--set", "q1.scale_min=0.5", env=env)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_users_settings_change_no_test_outcome(tmp_path):
    """The README's offline report.toml beside build.py and REPORT_* values in the environment, as a user
    has them: the two tests they broke still pass (tests/conftest.py isolates every test from both)."""
    import os
    import subprocess
    import sys

    from tests.conftest import copy_project

    project = copy_project(tmp_path)
    (project / "report.toml").write_text(
        'data_dir = "../shared/data"\nprofile = "quick"\n\n[set.q4]\ndataset = "fashion-mnist"\n'
    )
    env = {
        **os.environ,
        "REPORT_PROFILE": "full",
        "REPORT_SEED": "7",
        "REPORT_STORE": str(tmp_path / "theirs"),
    }
    env.pop("REPORT_SETTINGS", None)
    tests = [
        "tests/test_cli.py::test_missing_svhn_fails_fast_before_training",
        "tests/test_data_check.py::test_a_missing_dataset_is_reported_before_torch_is_imported",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *tests],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout


def test_a_command_says_where_its_settings_came_from(tmp_path, monkeypatch):
    """As the file is found: in the current folder, by its name, as the docs show it (report.toml:4)."""
    _settings(tmp_path, 'seed = 3\n\n[set.q4]\ndataset = "fashion-mnist"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPORT_SETTINGS")
    monkeypatch.setenv("REPORT_STORE", str(tmp_path / "r"))
    out = _invoke("status", "--profile", "smoke", "--show-settings").output
    assert "settings from report.toml (q4.dataset, seed) and the environment (REPORT_STORE)" in out
    assert "report.toml:4" in _rows(out)["set q4.dataset"], out


def test_the_settings_page_names_every_shared_option_its_key_and_its_variable():
    """docs/settings.md is where the README sends readers for the options the commands share: each one's
    flag, its report.toml key and its environment variable are named there (held to report/options.py)."""
    from report.options import SHARED

    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [
        name
        for option in SHARED.values()
        for name in (option.names[0].split("/")[0], option.key, option.envvar)
        if name and not re.search(re.escape(f"`{name}") + r"[`\s=]", page)  # `track`, not `tracking_uri`
    ]
    assert not missing, f"docs/settings.md does not name {missing}"


def test_the_tables_a_broken_file_is_told_to_use_are_accepted(tmp_path, monkeypatch):
    """The fixes those messages advise, and a file an editor saved with a byte-order mark."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPORT_SETTINGS")
    for text in (
        "[profiles.full.set.q3]\nseeds = 4\n",
        "[set.q3]\nseeds = 4\n",
        "[set.q3]\nlrs = [0.0001, 0.001]\n",
    ):
        _settings(tmp_path, text)
        result = _invoke("status", "--profile", "full", "--store", str(tmp_path / "r"))
        assert result.exit_code == 0 and "settings from report.toml (q3." in result.output, (
            text,
            result.output,
        )
    (tmp_path / "report.toml").write_bytes("\ufeff[set.q3]\nseeds = 4\n".encode())
    result = _invoke("status", "--store", str(tmp_path / "r"))
    assert result.exit_code == 0 and "settings from report.toml (q3.seeds)" in result.output, result.output
