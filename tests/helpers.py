"""Shared test helpers: synthetic results shaped by the manifest, written through the real Store API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from report.core import fingerprint as fp
from report.core.freshness import Request, code_part
from report.core.manifest import Manifest, parse
from report.core.manifest import load as load_manifest
from report.core.run_record import new_run_id
from report.core.store import Store


def drawing_cache() -> Path:
    """The test run's one render cache (REPORT_CACHE, tests/conftest.py), for tests that call the renderer
    themselves: a figure or formula that another test already drew is read, not drawn again."""
    return Path(os.environ["REPORT_CACHE"])


def synthetic(
    experiment: str, value: int = 1, rows: int = 3, manifest: Manifest | None = None
) -> dict[str, pd.DataFrame]:
    """Every table the manifest lists for ``experiment``, ``rows`` rows each, each cell derived from
    ``value`` so two writes are told apart: ints ``value``, floats ``value + 0.5``, strings ``s<value>``."""
    manifest = manifest or load_manifest()
    make = {
        "int": lambda: value,
        "float": lambda: value + 0.5,
        "str": lambda: f"s{value}",
        "bool": lambda: value % 2 == 0,
        "list": lambda: [value, value],
    }
    return {
        name: pd.DataFrame({c: [make[kind]() for _ in range(rows)] for c, kind in columns.items()})
        for name, columns in manifest.get(experiment).tables.items()
    }


def fake_meta(
    experiment: str, profile: str = "smoke", manifest: Manifest | None = None, **extra: Any
) -> dict[str, Any]:
    """A run record shaped like the runner's, with a fingerprint current for a plain ``--profile`` request."""
    manifest = manifest or load_manifest()
    meta = {
        "run_id": new_run_id(),
        "experiment": experiment,
        "title": f"fake {experiment}",
        "profile": profile,
        "config": {"epochs": 1},
        "seed": 0,
        "started": "2026-11-26T10:00:00+00:00",
        "finished": "2026-11-26T10:00:05+00:00",
        "duration_s": 5.0,
        "device": "cpu",
        "device_name": "CPU (test)",
        "python": "3.11",
        "platform": "test",
        "versions": fp.versions(),
        "git_commit": "abc123",
        "git_dirty": False,
        "fingerprint": {
            "code": code_part(experiment, manifest),
            "config": Request(profile).config_part(experiment),
            "data": "none",
            "versions": fp.versions_hash(),
        },
        "data_dir": "data",
        "data_files": [],
        "headline": {"label": "accuracy", "value": 0.5},
    }
    meta.update(extra)
    return meta


def toy_manifest(experiment: str, tables: dict[str, pd.DataFrame]) -> Manifest:
    """A one-experiment manifest whose tables are exactly ``tables`` (for a made-up question)."""
    kinds = {"i": "int", "f": "float", "b": "bool"}
    spec = {name: {c: kinds.get(df[c].dtype.kind, "str") for c in df.columns} for name, df in tables.items()}
    return parse({experiment: {"title": f"toy {experiment}", "tables": spec}}, "test manifest")


def store_with(
    root: Path,
    experiment: str,
    tables: dict[str, pd.DataFrame] | None = None,
    profile: str = "smoke",
    manifest: Manifest | None = None,
) -> Store:
    """A store holding one current result of ``experiment`` (synthetic tables unless given)."""
    store = Store(root, manifest)
    store.write(
        profile,
        experiment,
        tables or synthetic(experiment, manifest=manifest),
        fake_meta(experiment, profile, store.manifest),
    )
    return store


def square(x: int) -> int:
    """A unit of work for executor tests (module-level, so a worker process can import it)."""
    return x * x


def die(marker: Path) -> int:
    """A unit whose worker process is killed mid-unit, the first time only (``marker`` remembers)."""
    import os
    import signal

    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return 7


def nap(seconds: float, started: Path) -> float:
    """A unit that takes ``seconds`` (an executor test's long-running unit), saying when it started."""
    import time

    started.touch()
    time.sleep(seconds)
    return seconds
