"""Plan and run experiments into the store: resolve configs, fingerprint, check data, train, write.

``build.py`` calls this; the store and everything after it never import this module (it imports torch).
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

import experiments
from experiments import data
from experiments.common import RunContext, device_name, seed_everything
from report import fingerprint as fp
from report.config import apply_overrides, config_dict
from report.errors import ConfigError, DataError
from report.store import Store, new_run_id


@dataclass
class Planned:
    """One experiment resolved for this build: its config, fingerprint and why it must run (if it must)."""

    name: str
    module: ModuleType
    config: Any
    fingerprint: dict[str, str]
    stale: list[str]  # empty when the stored result is current
    request: str  # fp.request_hash: lets build.py find a current result without importing torch

    @property
    def datasets(self) -> list[str]:
        return self.module.datasets(self.config)


def resolve(
    names: list[str], profile: str, overrides: dict[str, dict[str, str]]
) -> list[tuple[str, ModuleType, Any]]:
    """Each named experiment with its profile config and ``--set`` overrides applied and validated."""
    for exp in overrides:
        if exp not in experiments.NAMES:
            raise ConfigError(
                f"--set {exp}.…: unknown experiment {exp!r}; choose from {', '.join(experiments.NAMES)}"
            )
    out = []
    for name in names:
        module = experiments.get(name)
        config = apply_overrides(name, module.PROFILES[profile], overrides.get(name, {}))
        out.append((name, module, config))
    return out


def plan(
    names: list[str],
    profile: str,
    overrides: dict[str, dict[str, str]],
    seed: int,
    data_dir: Path,
    store: Store,
    force: bool = False,
) -> list[Planned]:
    """Fingerprint each experiment and compare it with the stored result's fingerprint."""
    planned = []
    for name, module, config in resolve(names, profile, overrides):
        current = {
            "code": fp.code_hash(name),
            "config": fp.config_hash(config_dict(config), seed),
            "versions": fp.versions_hash(),
        }
        paths = [p for ds in module.datasets(config) for p in data.files(ds, data_dir)]
        if paths and all(p.is_file() for p in paths):
            current["data"] = fp.data_hash(
                paths, store.root / ".datahash.json" if store.root.is_dir() else None
            )
        meta = store.meta(profile, name)
        stale = fp.stale_parts(meta["fingerprint"] if meta else None, current)
        if force and not stale:
            stale = ["forced"]
        request = fp.request_hash(name, profile, overrides.get(name, {}), seed, data_dir)
        planned.append(Planned(name, module, config, current, stale, request))
    return planned


def preflight(planned: list[Planned], data_dir: Path) -> None:
    """Every dataset the selected experiments read is present or downloaded now, before any training."""
    names = [ds for p in planned for ds in p.datasets]
    problems = data.preflight(names, data_dir)
    if problems:
        raise DataError("\n".join(problems))


def execute(
    p: Planned,
    profile: str,
    seed: int,
    device: torch.device,
    data_dir: Path,
    store: Store,
    track: Callable[..., Iterator[Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run one experiment and store its result atomically; return the run record."""
    paths = [f for ds in p.datasets for f in data.files(ds, data_dir)]
    if "data" not in p.fingerprint:
        p.fingerprint["data"] = fp.data_hash(paths, store.root / ".datahash.json") if paths else "none"
    workdir = store.root / ".work" / profile / f"{p.name}-{fp.config_hash(p.fingerprint, seed)}"
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(device=device, seed=seed, data_dir=data_dir, workdir=workdir, track=track, log=log)
    seed_everything(seed)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    output = p.module.run(p.config, ctx)
    duration = time.perf_counter() - t0
    commit, dirty = git_state()
    meta = {
        "run_id": new_run_id(),
        "experiment": p.name,
        "title": p.module.TITLE,
        "profile": profile,
        "config": config_dict(p.config),
        "seed": seed,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "device": device.type,
        "device_name": device_name(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": fp.versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "fingerprint": p.fingerprint,
        "request": p.request,
        "data_files": [str(f.resolve()) for f in paths],
        "headline": {"label": output.headline[0], "value": float(output.headline[1])},
    }
    store.write(profile, p.name, output.tables, meta)  # the caller holds store.lock()
    shutil.rmtree(workdir, ignore_errors=True)
    return meta


def git_state() -> tuple[str, bool]:
    """The project's commit and whether the work tree differs from it ("unknown" outside git)."""
    root = fp.PROJECT
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
