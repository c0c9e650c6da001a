"""What every experiment shares: the run context, its output type, seeding and device choice."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from report.errors import ConfigError

T = TypeVar("T")


@dataclass
class Output:
    """What an experiment returns: tidy tables for the store and one headline number for ``status``."""

    tables: dict[str, pd.DataFrame]
    headline: tuple[str, float]


def _no_progress(items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
    yield from items


@dataclass
class RunContext:
    """Everything an experiment needs from the outside world, passed explicitly."""

    device: torch.device
    seed: int
    data_dir: Path
    workdir: Path  # checkpoints of this run; kept until the result is stored
    track: Callable[..., Iterator[Any]] = _no_progress
    log: Callable[[str], None] = field(default=lambda msg: None)

    def step(self, key: str, compute: Callable[[], T]) -> T:
        """Run ``compute`` once per ``key`` per run, keeping its result on disk so a crashed or
        interrupted build resumes here instead of recomputing (sweep points, models)."""
        path = self.workdir / f"{key}.pt"
        if path.exists():
            try:
                return torch.load(path, weights_only=False)
            except Exception:
                path.unlink()  # a checkpoint cut short by a crash: recompute it
        value = compute()
        save_atomic(value, path)
        return value


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit choice that is unavailable is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA device is available; use --device auto or cpu")
    if name == "mps" and not mps:
        raise ConfigError("--device mps: no Apple MPS device is available; use --device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name}: choose auto, cpu, cuda or mps")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
