"""``--track mlflow`` against a real local MLflow store (SQLite), read back with MLflow's own client: the
params, metrics and curves of each logged run equal the store's, each result is logged once, and the
report is attached."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from report import track
from report.core.store import Store
from tests.conftest import SMOKE_SETS, build_cmd

pytestmark = pytest.mark.slow


def test_a_smoke_build_leaves_runs_equal_to_the_store(smoke_build, data_dir, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason='the mlflow extra: pip install -e ".[mlflow]"')
    store = tmp_path / "results"
    shutil.copytree(smoke_build.store, store)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    args = build_cmd("all", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store),
                     "--out", str(tmp_path / "out"), "--format", "html", "--track", "mlflow",
                     "--tracking-uri", uri, *SMOKE_SETS)  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "q1, q2, q3, q4: logged to MLflow" in first.stdout + first.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert "no new result: logged to MLflow" in again.stdout + again.stderr

    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("assignment-report/smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4, "each result logged once, however many builds"
    results = Store(store)
    for run in runs:
        name = run.data.tags["report.experiment"]
        meta = results.meta("smoke", name)
        assert run.data.tags[track.RUN_TAG] == meta["run_id"]
        params = run.data.params
        assert set(params) == {*meta["config"], "seed"} and params["seed"] == str(meta["seed"])
        for key, value in meta["config"].items():  # lists as JSON, the rest as text
            assert (json.loads(params[key]) if isinstance(value, list) else params[key]) == (
                value if isinstance(value, list) else str(value)
            ), key
        assert run.data.metrics["headline"] == pytest.approx(meta["headline"]["value"])
        assert run.data.tags["report.fingerprint.code"] == meta["fingerprint"]["code"]
        assert "report.html" in [a.path for a in client.list_artifacts(run.info.run_id)]

        def history(key: str, run_id: str = run.info.run_id) -> dict[int, float]:
            return {m.step: m.value for m in client.get_metric_history(run_id, key)}

        if name == "q4":  # one curve per model, seed and float column of the curves table
            rows = results.read("smoke", "q4", "curves")
            assert len(rows) > 0
            for row in rows.itertuples(index=False):
                for column in ("train_loss", "val_acc"):
                    logged = history(f"model:{row.model}/seed:{row.seed}/{column}")
                    assert logged[row.epoch] == pytest.approx(getattr(row, column)), (row, column)
        if name == "q3":  # one curve per seed and float column of the longest schedule's curve table
            rows = results.read("smoke", "q3", "curve")
            assert rows["seed"].nunique() > 1
            for seed, runs in rows.groupby("seed"):
                for column in ("train_loss", "val_acc", "val_loss", "epoch_lr"):
                    logged = history(f"seed:{seed}/{column}")
                    assert logged == pytest.approx(dict(zip(runs["epoch"], runs[column], strict=True)))


def test_track_without_mlflow_installed_stops_before_training(data_dir, tmp_path):
    import sys

    script = (
        "import sys, importlib.util; real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'mlflow' else real(n, *a)\n"
        f"sys.path.insert(0, {str(build_cmd()[1].rsplit('/', 1)[0])!r}); import build\n"
        f"sys.argv = ['build.py', 'run', 'q1', '--profile', 'smoke', '--data-dir', {str(data_dir)!r},"
        f" '--store', {str(tmp_path / 'r')!r}, '--track', 'mlflow']\nbuild.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and '--track mlflow needs MLflow: pip install -e ".[mlflow]"' in proc.stderr
    assert not (tmp_path / "r" / "smoke").exists()


def test_a_tracking_location_mlflow_cannot_use_is_refused_before_the_build():
    """A scheme MLflow has no store for, or an http(s) server that does not answer, is a ConfigError
    from check_uri (before any training), not a failure minutes after the build; a server that answers,
    and database URIs with a driver, pass."""
    import socket

    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from report.core.errors import ConfigError

    assert set(_tracking_store_registry._registry) - {"", "file"} == track.SCHEMES  # paths: checked apart
    with pytest.raises(ConfigError, match="MLflow has no tracking store for bogus://; pass sqlite:///"):
        track.check_uri("bogus://x")
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    try:
        track.check_uri(f"http://127.0.0.1:{port}")
    finally:
        listening.close()
    with pytest.raises(ConfigError, match=f"no tracking server answers at 127.0.0.1:{port}"):
        track.check_uri(f"http://127.0.0.1:{port}")
    track.check_uri("postgresql+psycopg2://user@db.example/runs")  # not contacted: MLflow connects later
