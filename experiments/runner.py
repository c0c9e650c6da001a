"""Plan and run experiments into the store: resolve configs, fingerprint, check data, train, write.

``build.py`` calls this; the store and everything after it never import this module (it imports torch).
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

import experiments
from experiments import configs, data, datasets
from experiments.kit import RunContext, device_name, resolve_device, seed_everything
from report.core import fingerprint as fp
from report.core import freshness, manifest
from report.core.atomic import atomic_write
from report.core.config import apply_overrides, config_dict
from report.core.errors import DataError, ReportError
from report.core.freshness import Request, Verdict, judge
from report.core.manifest import Experiment
from report.core.run_record import new_run_id
from report.core.store import Store


@dataclass
class Planned:
    """One experiment resolved for this build: its config, and the freshness verdict on its stored result."""

    name: str
    module: ModuleType
    config: Any
    verdict: Verdict
    force: bool = False

    @property
    def stale(self) -> list[str]:
        """Why it must run (empty when the stored result is current and not forced)."""
        if self.verdict.current:
            return ["forced"] if self.force else []
        return list(self.verdict.changed) or [self.verdict.state]

    @property
    def entry(self) -> Experiment:
        return manifest.load().get(self.name)

    @property
    def datasets(self) -> list[str]:
        return self.entry.dataset_names(config_dict(self.config))


def resolve(names: list[str], request: Request) -> list[tuple[str, ModuleType, Any]]:
    """Each named experiment with its profile's config (a stand-in's where the request says so) and the
    ``--set`` overrides applied and validated."""
    overrides = {k: dict(v) for k, v in request.overrides.items()}  # experiments checked by Request
    out = []
    for name in names:
        module = experiments.get(name)
        profile = configs.get(name).PROFILES[request.own_profile(name)]
        config = apply_overrides(name, profile, overrides.get(name, {}))
        out.append((name, module, config))
    return out


def plan(names: list[str], request: Request, store: Store, force: bool = False) -> list[Planned]:
    """Each experiment's config (validated) and the one freshness verdict on its stored result."""
    resolved = resolve(names, request)
    return [Planned(n, m, c, judge(store, n, request), force) for n, m, c in resolved]


def preflight(planned: list[Planned], data_dir: Path) -> None:
    """Every dataset the selected experiments read is present or downloaded now, before any training."""
    names = [ds for p in planned for ds in p.datasets]
    problems = data.preflight(names, data_dir)
    if problems:
        raise DataError("\n".join(problems))


def execute(
    p: Planned,
    request: Request,
    device: torch.device,
    store: Store,
    track: Callable[..., Iterable[Any]],
    log: Callable[[str], None],
    executor: Any = None,
) -> dict[str, Any]:
    """Run one experiment and store its result atomically; return the run record. Its independent units
    run on ``executor`` (experiments.executors; ``None``: here, in order)."""
    data_dir = request.data_dir.resolve()  # units may run in another folder (a Slurm job's code snapshot)
    paths = [f for ds in p.datasets for f in datasets.files(ds, data_dir)]
    cache = store.root / ".datahash.json"
    fingerprint = freshness.fingerprint(p.name, request, paths, cache, store.manifest)
    workdir = work_folder(store, request.profile, p.name, fingerprint)
    workdir.mkdir(parents=True, exist_ok=True)
    unit_device = getattr(executor, "device", None) or device.type  # remote workers resolve their own
    ctx = RunContext(device, request.seed, data_dir, workdir, track, log, executor, unit_device)
    seed_everything(request.seed)
    try:
        with Sessions(workdir) as sessions:
            output = p.module.run(p.config, ctx)
    finally:
        _prune(workdir, store.root)  # nothing to resume from: leave no empty folder behind
    commit, dirty = git_state()
    meta = {
        "run_id": new_run_id(),
        "experiment": p.name,
        "title": p.entry.title,
        "profile": request.profile,
        **({"stand_in": request.own_profile(p.name)} if p.name in request.stand_ins else {}),
        "config": config_dict(p.config),
        "seed": request.seed,
        "started": sessions.started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(sessions.duration, 3),  # every session's, without the gaps between them
        "sessions": sessions.count,
        "device": device.type,
        "device_name": device_name(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": fp.versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "fingerprint": fingerprint,
        "data_dir": str(data_dir),
        "data_files": [str(f.relative_to(data_dir)) for f in paths],
        "headline": {"label": output.headline[0], "value": float(output.headline[1])},
    }
    store.write(request.profile, p.name, output.tables, meta)  # the caller holds store.lock()
    shutil.rmtree(workdir, ignore_errors=True)
    _prune(workdir.parent, store.root)
    return meta


class Sessions:
    """The sessions a run took. A run resumed after Ctrl-C, a kill or a lost machine is recorded with the
    start of its first session and the time of all of them (not the gaps between), from a ledger in its
    work folder that each session updates every few seconds."""

    EVERY_S = 10.0

    def __init__(self, workdir: Path) -> None:
        self.ledger = workdir / "sessions.json"
        try:
            earlier = json.loads(self.ledger.read_text())
        except (OSError, ValueError):  # none yet, or damaged by a crash: count from this session
            earlier = {}
        self.started = earlier.get("started") or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.count = int(earlier.get("sessions", 0)) + 1
        self._spent, self._t0 = float(earlier.get("duration_s", 0.0)), time.perf_counter()
        self._t1: float | None = None  # when this session ended
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="sessions-ledger", daemon=True)

    @property
    def duration(self) -> float:
        return self._spent + (self._t1 or time.perf_counter()) - self._t0

    def _write(self) -> None:
        record = {"started": self.started, "sessions": self.count, "duration_s": self.duration}
        atomic_write(self.ledger, json.dumps(record), fix="pass a writable --store")

    def _keep(self) -> None:
        while not self._stop.wait(self.EVERY_S):
            with contextlib.suppress(ReportError):  # a missed update costs seconds, not the run
                self._write()

    def __enter__(self) -> Sessions:
        self._write()
        self._keeper.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self._t1 = time.perf_counter()
        self._stop.set()
        self._keeper.join()
        if any(f != self.ledger for f in self.ledger.parent.iterdir()):  # also when done: until stored,
            self._write()  # the next session resumes from what is kept, and counts this one
        elif kind is not None:
            self.ledger.unlink(missing_ok=True)  # nothing kept: nothing to resume, nothing to count


def work_folder(store: Store, profile: str, experiment: str, fingerprint: dict[str, str]) -> Path:
    """Where a run keeps its finished units until its result is stored: one folder per fingerprint, so a
    resumed run finds its own work and nobody else's."""
    key = fp.digest(repr(sorted(fingerprint.items())).encode())
    return store.root.resolve() / ".work" / profile / f"{experiment}-{key}"


def _sweep_stored_work(planned: list[Planned], store: Store, profile: str) -> None:
    """Drop the work folder of a result that is stored and current: a build killed after the pointer
    swap, before it cleaned up, leaves one that nothing would ever resume from."""
    for p in planned:
        meta = p.verdict.meta
        if p.verdict.current and not p.force and meta and meta.get("fingerprint"):
            folder = work_folder(store, profile, p.name, meta["fingerprint"])
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                _prune(folder.parent, store.root)


def _prune(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty (``.work/<profile>/…``)."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def run_stale(
    names: list[str],
    request: Request,
    store: Store,
    force: bool,
    device: str,
    executor: Any,
    console: Any,
    on_wait: Callable[[], None],
) -> int:
    """Plan under the store's lock, check the data, then run each stale experiment with a progress bar of
    its units; returns how many ran. ``console`` is the CLI's rich console."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    dev = resolve_device(device)
    with store.lock(on_wait=on_wait), contextlib.closing(executor):
        planned = plan(names, request, store, force)
        _sweep_stored_work(planned, store, request.profile)
        todo = [p for p in planned if p.stale]
        if todo and hasattr(executor, "snapshot"):
            executor.snapshot()  # the code the cluster's jobs will run: as it is at planning
        for p in planned:
            if not p.stale:
                console.print(f"[dim]{p.name}: up to date[/]")
        if not todo:
            return 0
        preflight(todo, request.data_dir)
        columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        for p in todo:
            console.print(f"{p.name}: running ({', '.join(p.stale)}) on {dev.type} — {p.entry.title}")
            with Progress(*columns, console=console, transient=True) as bars:
                log = lambda msg, b=bars: b.console.print(f"  {msg}")  # noqa: E731 - bound per experiment
                meta = execute(p, request, dev, store, bars.track, log, executor)
            head = meta["headline"]
            console.print(
                f"[green]✓[/] {p.name}: {head['label']} = {head['value']:.4g} in {meta['duration_s']:.1f} s"
            )
    return len(todo)


def git_state() -> tuple[str, bool]:
    """The project's commit and whether the work tree differs from it ("unknown" outside git)."""
    root = manifest.PROJECT
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
