"""Stored runs in an experiment tracker (MLflow), where many people already look at results.

``build.py --track mlflow`` calls ``to_mlflow`` after a build: each current result of the profile becomes
one MLflow run in the experiment ``assignment-report/<profile>``, once (a result already logged, found by
its run id, is not logged again). A run holds the config as params, the fingerprint, device, commit and
run id as tags, the headline as a metric, the per-epoch curves the manifest names (``curves``) as metric
histories, and the rendered report as artifacts. The store stays the source of truth: the tracker is a
view of it. MLflow is an extra (``pip install -e ".[mlflow]"``); the default location is a SQLite file
and an artifact folder under ``mlruns/`` here.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from report.core import manifest
from report.core.errors import ConfigError, ReportError
from report.core.store import Store

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
# the tracking stores MLflow registers (tests/test_track.py keeps this to MLflow's own registry)
SCHEMES = frozenset(
    {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
)
RUN_TAG = "report.run_id"


def check_available() -> None:
    """MLflow that is not installed stops the build before any training, not after it."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ReportError('--track mlflow needs MLflow: pip install -e ".[mlflow]"')


def check_uri(uri: str | None) -> None:
    """A tracking location MLflow takes, checked before any training, where MLflow itself fails only when
    the first result is logged, after the build: a folder (MLflow 3's file store is in maintenance mode),
    a scheme it has no store for, an http(s) server that does not answer (MLflow retries for minutes).
    The folder of a SQLite file is made here, so ``sqlite:///PATH/mlflow.db`` works for a new PATH too."""
    uri = uri or DEFAULT_URI
    parts = urllib.parse.urlsplit(uri)
    if len(parts.scheme) <= 1 or parts.scheme == "file":  # a path (C:\… on Windows) or file: URI
        if _folders_allowed():
            return
        folder = Path(urllib.request.url2pathname(parts.path) if parts.scheme == "file" else uri)
        raise ConfigError(
            f"--tracking-uri {uri}: MLflow keeps runs in a database, not a folder (its file store is in "
            f"maintenance mode); pass --tracking-uri sqlite:///{folder / 'mlflow.db'} or an http(s):// "
            "tracking server"
        )
    scheme = parts.scheme.partition("+")[0]  # postgresql+psycopg2://… is postgresql's
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--tracking-uri {uri}: MLflow has no tracking store for {parts.scheme}://; pass "
            "sqlite:///PATH/mlflow.db, a database URI (postgresql://, mysql://, mssql://) or an http(s):// "
            "tracking server"
        )
    if scheme in ("http", "https"):  # a server that is not there fails only after the build, in minutes
        port = parts.port or (443 if scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=5).close()
        except OSError as e:
            raise ConfigError(
                f"--tracking-uri {uri}: no tracking server answers at {parts.hostname}:{port} "
                f"({e.strerror or e}); start it (mlflow server) or pass another --tracking-uri"
            ) from None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"--tracking-uri {uri}: cannot create {database.parent} ({e.strerror}); pass --tracking-uri "
                "sqlite:///PATH/mlflow.db with PATH a writable folder"
            ) from None


def _folders_allowed() -> bool:
    """Whether this MLflow writes runs to a folder: one from before the file store's maintenance mode,
    or one told to with ``MLFLOW_ALLOW_FILE_STORE=true``."""
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:
        return True
    return bool(MLFLOW_ALLOW_FILE_STORE.get())


def log_build(store: Store, profile: str, uri: str | None, artifacts: Iterable[Path]) -> str:
    """``to_mlflow`` for a build, and the line that says what it logged and where."""
    logged = to_mlflow(store, profile, uri, artifacts)
    return f"{', '.join(logged) or 'no new result'}: logged to MLflow at {uri or DEFAULT_URI}"


def to_mlflow(store: Store, profile: str, uri: str | None, artifacts: Iterable[Path] = ()) -> list[str]:
    """Log every current result of ``profile`` not logged yet (and attach ``artifacts`` to each result
    logged or found); returns the experiments newly logged."""
    try:
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # not "Creating initial MLflow database tables"
    except ImportError:
        raise ReportError('--track mlflow needs MLflow: pip install -e ".[mlflow]"') from None
    check_uri(uri)
    uri = uri or DEFAULT_URI
    client = MlflowClient(uri)
    name = f"assignment-report/{profile}"
    try:
        found = client.get_experiment_by_name(name)
        experiment = (
            found.experiment_id
            if found
            else client.create_experiment(name, artifact_location=_artifacts(uri))
        )
    except Exception as e:  # MLflow raises its own types for unreachable servers and bad locations
        raise ReportError(
            f"--track mlflow: cannot use the tracking location {uri}: {e}; pass --tracking-uri"
        ) from None
    logged = []
    for exp in manifest.load().names:
        result = store.result(profile, exp)
        if result is None:
            continue
        meta = result.meta
        runs = client.search_runs([experiment], f"tags.`{RUN_TAG}` = '{meta['run_id']}'", max_results=1)
        if runs:
            run_id = runs[0].info.run_id
        else:
            run_id = _log(client, experiment, exp, result.read, meta)
            logged.append(exp)
        for path in artifacts:
            if path.is_file():
                client.log_artifact(run_id, str(path))
    return logged


def _log(client: Any, experiment: str, name: str, read: Any, meta: dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    started = _ms(meta["started"])
    finished = _ms(meta["finished"])
    tags = {
        "report.experiment": name,
        "report.profile": meta["profile"],
        "report.device": meta["device_name"],
        "report.commit": meta["git_commit"] + (" (uncommitted changes)" if meta["git_dirty"] else ""),
        "report.headline": meta["headline"]["label"],
        **{f"report.fingerprint.{k}": str(v) for k, v in meta["fingerprint"].items()},
        **{f"report.version.{k}": str(v) for k, v in meta["versions"].items()},
    }
    run = client.create_run(experiment, start_time=started, tags=tags, run_name=f"{name} {meta['run_id']}")
    run_id = run.info.run_id
    params = [Param(k, param(v)) for k, v in {**meta["config"], "seed": meta["seed"]}.items()]
    metrics = [Metric("headline", float(meta["headline"]["value"]), finished, 0)]
    metrics += [Metric(key, value, finished, step) for key, step, value in curves(name, read)]
    for i in range(0, max(len(params), len(metrics)), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100], tags=[])
    client.log_batch(run_id, tags=[RunTag("mlflow.note.content", meta["headline"]["label"])])
    client.set_terminated(run_id, end_time=finished)
    client.set_tag(run_id, RUN_TAG, meta["run_id"])  # last: a run cut short is not taken as logged
    return run_id


def param(value: Any) -> str:
    """A config value as MLflow stores a param: lists as JSON, everything else as text."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def curves(experiment: str, read: Any) -> list[tuple[str, int, float]]:
    """(metric name, epoch, value) for the per-epoch curves the manifest names for ``experiment``:
    one metric per float column and combination of key values, e.g. ``model:resnet18/seed:0/val_acc``."""
    spec = manifest.load().get(experiment).curves
    if not spec:
        return []
    table = read(spec["table"])
    for column, value in spec.get("where", {}).items():
        table = table[table[column] == value]
    keys = list(spec.get("keys", []))
    columns = [
        c for c, kind in manifest.load().get(experiment).tables[spec["table"]].items() if kind == "float"
    ]
    out = []
    for row in table.itertuples(index=False):
        prefix = "".join(f"{k}:{_clean(getattr(row, k))}/" for k in keys)
        out += [(f"{prefix}{c}", int(row.epoch), float(getattr(row, c))) for c in columns]
    return out


def _clean(value: Any) -> str:
    return re.sub(r"[^\w.\- ]", "_", str(value))


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _artifacts(uri: str) -> str | None:
    """Beside a local SQLite file, artifacts go to a folder next to it; elsewhere the server decides."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    return None
