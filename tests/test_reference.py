"""The full profile on a machine without a GPU: a study that needs one comes from the store or the
reference results when current, else its quick profile runs in its place and the report says so."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from report import options
from report.core import bundle, reference
from report.core.config import check_profile
from report.core.errors import ConfigError
from report.core.freshness import Request, judge
from report.core.settings import load as load_settings
from report.core.store import Store
from tests.conftest import ROOT, SMOKE_SETS, build_cmd, in_process
from tests.helpers import fake_meta, synthetic

FASHION = ["--set", "q4.dataset=fashion-mnist"]  # the setting the committed reference was made with


def _reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **meta: object) -> Path:
    """A full-profile reference bundle of synthetic q4 results, in the folder ``reference`` reads."""
    made = Store(tmp_path / "made")
    made.write("full", "q4", synthetic("q4"), fake_meta("q4", "full", **meta))
    folder = tmp_path / "reference"
    folder.mkdir()
    bundle.export(made, "full", ["q4"], folder / "full.tar.gz")
    monkeypatch.setattr(reference, "FOLDER", folder)
    return folder / "full.tar.gz"


def test_a_current_reference_result_is_imported_not_stood_in_for(tmp_path, monkeypatch):
    _reference(tmp_path, monkeypatch)
    store, study = Store(tmp_path / "results"), Request("full")
    assert reference.stand_ins(store, study, accelerator=False) == frozenset()
    assert reference.fill(store, study, ["q1", "q4"]) == ["q4"]  # q1 is not in the bundle
    assert judge(store, "q4", study).current
    assert reference.fill(store, study, ["q4"]) == [], "a current result is not imported again"


def test_without_a_current_reference_the_study_that_needs_a_gpu_gets_a_stand_in(tmp_path, monkeypatch):
    stale = fake_meta("q4", "full")
    _reference(tmp_path, monkeypatch, fingerprint={**stale["fingerprint"], "code": "older code"})
    store, study = Store(tmp_path / "results"), Request("full")
    assert reference.stand_ins(store, study, accelerator=False) == {"q4"}
    assert reference.stand_ins(store, study, accelerator=True) == frozenset(), "a GPU runs the study"
    assert reference.stand_ins(store, Request("quick"), accelerator=False) == frozenset()
    assert reference.fill(store, study, ["q4"]) == [], "a stale reference result is not imported"
    missing, make = reference.why_stand_in(store, study, "q4")
    assert "experiments/reference/full.tar.gz" not in missing  # the test's own bundle is named instead
    assert "is stale: code changed" in missing and "quick profile runs in its place" in missing
    assert make == "build.py run q4 --profile full"


def test_a_stand_in_is_its_own_config_and_never_taken_for_the_study():
    from experiments import configs, runner

    both = Request("full", stand_ins=frozenset({"q4"}))
    assert both.config_part("q4") != Request("full").config_part("q4")
    assert both.config_part("q3") == Request("full").config_part("q3")
    resolved = {name: config for name, _, config in runner.resolve(["q3", "q4"], both)}
    assert resolved == {"q3": configs.get("q3").PROFILES["full"], "q4": configs.get("q4").PROFILES["quick"]}


def test_the_retired_cpu_profile_is_one_line_saying_what_to_use(tmp_path):
    with pytest.raises(ConfigError, match="profile 'cpu' no longer exists: full .* quick") as err:
        check_profile("cpu")
    assert "\n" not in str(err.value)
    toml = tmp_path / "report.toml"
    toml.write_text('profile = "cpu"\n')
    with pytest.raises(ConfigError, match=r"report.toml:1: profile = 'cpu' no longer exists"):
        load_settings(toml)
    toml.write_text("[profiles.cpu.set.q3]\nseed = 1\n")
    with pytest.raises(ConfigError, match=r"\[profiles.cpu\] no longer exists"):
        load_settings(toml)


def test_an_old_bundle_of_the_cpu_profile_is_refused_in_one_line(tmp_path, monkeypatch):
    made = Store(tmp_path / "made")
    made.write("quick", "q1", synthetic("q1"), fake_meta("q1", "quick"))
    old = tmp_path / "old.tar.gz"
    bundle.export(made, "quick", ["q1"], old)
    with tarfile.open(old) as tar:  # the same bundle as the cpu profile wrote it
        files = {m.name: tar.extractfile(m).read() for m in tar}
    files["bundle.json"] = files["bundle.json"].replace(b'"profile": "quick"', b'"profile": "cpu"')
    with tarfile.open(old, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(bundle.BundleError, match="its profile 'cpu' no longer exists .* build.py all"):
        bundle.open_bundle(str(old), Store(tmp_path / "results"))


def _build(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return in_process(build_cmd(*args), cwd=cwd)


def test_on_a_cpu_the_full_q4_comes_from_the_committed_reference_and_is_never_retrained(tmp_path):
    """The committed reference (made on a GPU) is current for this code (tests/test_workflow.py), so
    ``run q4`` on a CPU imports it instead of training for hours, and ``--force`` keeps it."""
    store, nowhere = tmp_path / "results", tmp_path / "no-data"
    common = ["--store", str(store), "--data-dir", str(nowhere), *FASHION]
    run = _build("run", "q4", "--device", "cpu", *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "q4: imported from the reference results experiments/reference/full.tar.gz" in run.stderr
    assert "running" not in run.stderr
    forced = _build("run", "q4", "--device", "cpu", "--force", *common, cwd=tmp_path)
    assert forced.returncode == 0 and "q4: kept: its full study needs a GPU" in forced.stderr
    assert "running" not in forced.stderr
    meta = Store(store).meta("full", "q4")
    assert meta["device"] == "cuda" and "stand_in" not in meta  # the study, as made on the GPU
    # the report rendered from it, with the same settings: tests/test_workflow.py


def test_status_says_what_changed_in_a_stored_study_a_stand_in_replaces(tmp_path):
    """A study stored before a code change: its row names the code alone, not also the stand-in's config
    that the build would run in its place."""
    older = fake_meta("q4", "full")
    older["fingerprint"]["code"] = "older code"
    Store(tmp_path / "results").write("full", "q4", synthetic("q4"), older)
    common = ["--store", str(tmp_path / "results"), "--data-dir", str(tmp_path / "no-data")]
    status = _build("status", *common, cwd=tmp_path)  # the committed reference is not for these settings
    assert status.returncode == 0, status.stderr[-2000:]
    row = " ".join(status.stdout.split())
    assert "q4 │ stale: code changed (" in row and "runs in its place" in row, status.stdout


@pytest.mark.parametrize("where", ["command line", "environment", "report.toml"])
def test_status_counts_the_gpu_that_the_build_would_have(tmp_path, monkeypatch, where):
    """status answers for the build ``all`` makes: a device or a Slurm GPU set for it, wherever it was
    set, means the study is made, not stood in for. The printed run names what the result depends on
    (store, data, settings), not where it runs: that is the user's choice on the machine that runs it."""
    common = ["--store", str(tmp_path / "results"), "--data-dir", str(tmp_path / "no-data")]
    if where == "command line":
        common += ["--executor", "slurm", "--slurm-gpus", "1"]
    elif where == "environment":
        monkeypatch.setenv("REPORT_DEVICE", "cuda")
        monkeypatch.setattr(options, "cuda_present", lambda: True)  # a machine with an NVIDIA driver
    else:
        settings = tmp_path / "report.toml"
        settings.write_text('executor = "slurm"\nslurm_gpus = 1\n')
        monkeypatch.setenv("REPORT_SETTINGS", str(settings))
    status = _build("status", "q4", *common, cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-2000:]
    row = " ".join(status.stdout.split())
    assert "q4 │ missing │" in row and "needs a GPU" not in row, status.stdout
    line = f"run: build.py run q4 --profile full --store {tmp_path / 'results'} --data-dir "
    assert f"{line}{tmp_path / 'no-data'}\n" in status.stdout, status.stdout


@pytest.mark.parametrize("where", ["command line", "environment"])
def test_a_gpu_named_for_a_machine_without_one_is_refused_as_all_refuses_it(tmp_path, monkeypatch, where):
    """``--device cuda`` where no NVIDIA driver is: status and render give the error ``all`` gives once
    torch loads (experiments.kit's words), not an answer for a GPU that is not there; the advised
    ``--device auto`` works."""
    from experiments import kit

    monkeypatch.setattr(options, "cuda_present", lambda: False)
    monkeypatch.setattr(options, "CUDA_SIGNS", ())
    monkeypatch.setattr(options.sys, "platform", "linux")
    monkeypatch.setattr(kit.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(kit.torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError) as torch_side:
        kit.resolve_device("cuda")
    for name in ("cuda", "mps"):  # the words status gives are those all gives once torch has loaded
        with pytest.raises(ConfigError) as torch_says:
            kit.resolve_device(name)
        assert options.missing_here(name) == str(torch_says.value)
    device = ["--device", "cuda"] if where == "command line" else []
    if where == "environment":
        monkeypatch.setenv("REPORT_DEVICE", "cuda")
    common = ["--store", str(tmp_path / "results"), "--data-dir", str(tmp_path / "no-data")]
    said = "--device cuda" if where == "command line" else "REPORT_DEVICE=cuda"
    for command in ("status", "render"):
        refused = _build(command, *device, *common, cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout[-2000:]
        assert f"error: {said}{str(torch_side.value).removeprefix('--device cuda')}\n" in refused.stdout
    (tmp_path / "kfd").touch()  # ROCm's driver, say: torch's "cuda" may be there, so torch decides
    monkeypatch.setattr(options, "CUDA_SIGNS", (tmp_path / "kfd",))
    assert options.missing_here("cuda") is None
    advised = _build("status", *common, "--device", "auto", cwd=tmp_path)
    assert advised.returncode == 0 and "q1 │ missing" in " ".join(advised.stdout.split()), advised.stdout


@pytest.mark.slow
def test_without_a_current_reference_the_build_runs_the_stand_in_and_the_report_says_so(tmp_path, data_dir):
    """Settings the reference was not made with leave it stale: Q4's quick profile runs in its place
    (shrunk further here by --set), and status, the banner and Q4's note say what is missing and how to
    make it."""
    tiny = [f"q4.{k}={v}" for k, v in dict(epochs=1, batch_size=8, val_size=8, train_subset=8, test_subset=16,
                                           eval_batch_size=16, models="lenet5,alexnet").items()]  # fmt: skip
    store, out = tmp_path / "results", tmp_path / "out"
    common = [
        "--store",
        str(store),
        "--data-dir",
        str(data_dir),
        *FASHION,
        *[a for s in tiny for a in ("--set", s)],
    ]
    run = _build("run", "q4", "--device", "cpu", *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "q4: its full study needs a GPU" in run.stderr and "quick profile runs in its place" in run.stderr
    meta = Store(store).meta("full", "q4")
    assert meta["stand_in"] == "quick" and meta["config"]["epochs"] == 1 and meta["config"]["seeds"] == 1
    status = _build("status", *common, cwd=tmp_path)
    row = " ".join(status.stdout.split())
    assert "q4 │ current (its full study needs a GPU" in row and "build.py run q4 --profile full" in row
    render = _build("render", "--format", "html", "--out", str(out), *common, cwd=tmp_path)
    assert render.returncode == 0, render.stderr[-2000:]
    html = " ".join((out / "report.html").read_text(encoding="utf-8").split())
    assert "<strong>Q4 is not the full study:</strong> its full study needs a GPU" in html
    assert "<code>build.py run q4 --profile full --store" in html
    assert "full (Q4: quick in its place)" in html
    assert "It ran in place of the full study, which needs a GPU" in html


def test_the_readme_and_the_docs_name_no_cpu_profile():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        assert "--profile cpu" not in text and "`cpu` profile" not in text, page


def test_the_gpu_study_benchmark_reads_the_committed_reference_against_its_targets(tmp_path):
    """benchmarks/gpu_study.py (issue #24's targets) on the committed bundle: one row per model with the
    stored mean accuracy and median throughput, and an exit status that says whether every target was met."""
    import pandas as pd

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_study.py"), str(reference.path("full"))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    lines = proc.stdout.splitlines()
    opened = bundle.open_bundle(str(reference.path("full")), Store(tmp_path / "store"))
    made = bundle.as_store(opened, tmp_path / "b")
    table: pd.DataFrame = made.read("full", "q4", "results")
    for model, rows in table.groupby("model"):
        [row] = [line.split() for line in lines if line.startswith(f"{model} ")]
        assert row[1] == f"{rows['test_acc'].mean():.2%}" and row[4] == f"{rows['throughput'].median():,.0f}"
    assert (proc.returncode == 1) == lines[-1].startswith("missed: "), lines[-1]
    assert proc.returncode == 1 or lines[-1] == "every target met"


@pytest.mark.slow
def test_the_gpu_script_dry_runs_on_a_cpu_and_returns_a_bundle_of_all_four(smoke_build, data_dir, tmp_path):
    """``benchmarks/gpu_full.sh`` is what a borrowed GPU machine runs, once, with minutes to spare: its
    smoke dry run here takes the data as an archive, finds Q1 and Q2 done in their own store (the CPU's)
    and brings them over, finds Q3 and Q4 done in the GPU's (copies of the smoke build's store: as a
    second call finds them), and leaves a bundle that imports as current, the GPU facts and a throughput."""
    archive, out, store = tmp_path / "data.tar.gz", tmp_path / "out", tmp_path / "store"
    with tarfile.open(archive, "w:gz") as tar:
        for folder in ("MNIST", "FashionMNIST"):
            tar.add(data_dir / folder / "raw", arcname=f"{folder}/raw")
    for where in (store, Path(f"{store}-cpu")):  # every result current: the script's own steps are tested
        shutil.copytree(smoke_build.store, where)
    env = {**os.environ, "STORE": str(store), "PYTHON": sys.executable, "BUDGET_S": "600"}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_full.sh"), str(archive), str(out), "smoke",
         "-s", SMOKE_SETS[1], *SMOKE_SETS[2:], "--seed", "0", "--jobs", "1"],  # run options status refuses
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "q3: up to date" in done.stdout and "q4: up to date" in done.stdout  # resumed, not retrained
    for name in ("q1", "q2"):  # from the CPU's store, which holds the very runs the GPU's does here
        assert f"{name}: already in the store, the bundle's own runs; nothing imported" in done.stdout
    judged = [line.split()[3] for line in done.stdout.splitlines() if re.match(r"│ q[1-4] ", line)]
    assert judged == ["current"] * 4, done.stdout  # its status judges by the run's -s/--set and --seed
    assert "torch" in (out / "gpu.txt").read_text()
    rows = (out / "throughput.txt").read_text().splitlines()
    assert [r.split()[0] for r in rows[2:]] == ["lenet5"]  # a dry run times one model
    fresh = tmp_path / "imported"
    imported = _build("import", str(out / "results.tar.gz"), "--store", str(fresh), cwd=tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    status = _build(
        "status", "--profile", "smoke", "--store", str(fresh), "--data-dir", str(data_dir), *SMOKE_SETS,
        cwd=tmp_path,
    )  # fmt: skip
    assert [line.split()[3] for line in status.stdout.splitlines() if re.match(r"│ q[1-4] ", line)] == [
        "current"
    ] * 4, status.stdout
