"""Shared test helpers: a store holding one fake run, written through the real Store API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from report import fingerprint as fp
from report.store import Store, new_run_id


def fake_meta(experiment: str, profile: str = "smoke", **extra: Any) -> dict[str, Any]:
    """A run record shaped like the runner's, with a fingerprint that matches the current code."""
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
            "code": fp.code_hash(experiment),
            "versions": fp.versions_hash(),
            "config": "c",
            "data": "d",
        },
        "headline": {"label": "accuracy", "value": 0.5},
    }
    meta.update(extra)
    return meta


def store_with(root: Path, experiment: str, tables: dict[str, pd.DataFrame], profile: str = "smoke") -> Store:
    store = Store(root)
    store.write(profile, experiment, tables, fake_meta(experiment, profile))
    return store
