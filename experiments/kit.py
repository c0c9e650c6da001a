"""The experiment kit: what every experiment shares, in one place.

The run context and its unit of work (``RunContext.step``: computed once, kept on disk, resumed after a
crash), the output type, seeding and device choice, thread scoping, device sync, tensor-resident batching,
prediction in chunks, confusion counts, and the Student-t interval over seeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from scipy import special

from report.core import store
from report.core.atomic import atomic_write
from report.core.errors import ConfigError

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
    track: Callable[..., Iterable[Any]] = _no_progress
    log: Callable[[str], None] = field(default=lambda msg: None)

    executor: Any = None  # experiments.executors: runs independent units (None: in this process, in order)
    unit_device: str = ""  # the device units are given: as asked for remote workers (empty: this device's)

    @property
    def units_on(self) -> str:
        return self.unit_device or self.device.type

    def step(self, key: str, compute: Callable[[], T]) -> T:
        """Run ``compute`` once per ``key`` per run, keeping its result on disk so a crashed or
        interrupted build resumes here instead of recomputing (a stage that depends on earlier ones)."""
        done, value = _restored(self.workdir / f"{key}.pt")
        if not done:
            value = compute()
            save_atomic(value, self.workdir / f"{key}.pt")
        return value

    def map(self, units: Sequence[Unit], description: str = "") -> list[Any]:
        """Run independent units through the executor and return their results in order.

        Each finished unit is kept on disk as it arrives (as ``step`` does), so a build killed at any
        point resumes with every finished unit, whichever executor ran it. A unit that fails is named
        with its error in one line after the others have finished and been kept.
        """
        from experiments.executors import Failed, Local

        results, todo = {}, []
        for unit in units:
            done, value = _restored(self.workdir / f"{unit.key}.pt")
            if done:
                results[unit.key] = value
            else:
                todo.append(unit)
        if len(todo) < len(units):
            self.log(
                f"{description}: {len(units) - len(todo)} of {len(units)} units already done (kept on disk)"
            )
        failed = []
        outcomes = (self.executor or Local()).run(todo, self.log)
        with contextlib.closing(outcomes):  # an error here still cancels the work the executor has out
            for unit, outcome in self.track(outcomes, total=len(todo), description=description):
                if isinstance(outcome, Failed):
                    failed.append(f"{unit.key}: {outcome.error}")
                    continue
                save_atomic(outcome, self.workdir / f"{unit.key}.pt")
                results[unit.key] = outcome
        if failed:
            raise UnitError(
                f"{len(failed)} of {len(todo)} units failed (the rest are kept):\n" + "\n".join(failed)
            )
        return [results[u.key] for u in units]


class UnitError(RuntimeError):
    """Units of work that raised; their keys and errors, one per line."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of work, ``fn(*args)``, that any process can run: ``fn`` is a module-level
    function and ``args`` plain data (configs, paths, numbers), so a worker loads its own data."""

    key: str  # unique within the run: the checkpoint's name and the prefix of its log lines
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    threads: int = 1  # CPU threads it trains with (the executor reserves as many cores)
    gpus: float = 0.0  # GPUs it needs on a CUDA machine


_say: ContextVar[Callable[[str], None]] = ContextVar("say", default=lambda msg: None)


def split(groups: dict[Any, list[T]], cost: Callable[[Any], float], units: int, most: int) -> list[list[T]]:
    """Cut groups of items that train together (one stacked network per chunk) into about ``units``
    units: each group into about its share by ``cost(key)`` per item, at most ``most`` items per chunk,
    the costliest chunks first (they start first).

    ``units`` comes from the config, never from the cores at hand: a stack's width changes the order of
    float32 sums in its batched products (round-off, ``tests/test_stacked.py``), so a cut that followed
    the machine would let the executor change results.
    """
    total = sum(cost(k) * len(g) for k, g in groups.items()) or 1.0
    chunks = []
    for key, group in groups.items():
        n = max(-(-len(group) // most), min(len(group), round(cost(key) * len(group) / total * units)), 1)
        size = -(-len(group) // n)
        chunks += [
            (cost(key) * len(group[i : i + size]), group[i : i + size]) for i in range(0, len(group), size)
        ]
    return [chunk for _, chunk in sorted(chunks, key=lambda c: -c[0])]


def digest(value: Any) -> str:
    """A short name for plain data (a unit's points or seeds): the same data, the same name."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:10]


def say(message: str) -> None:
    """A log line from inside a unit: the executor prefixes it with the unit's key and shows it."""
    _say.get()(message)


def call(unit: Unit, log: Callable[[str], None]) -> Any:
    """Run one unit here with its thread count, its log lines going to ``log``: what every worker runs."""
    token = _say.set(log)
    try:
        with threads(unit.threads):
            return unit.fn(*unit.args)
    finally:
        _say.reset(token)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through the one atomic write: a crash never leaves a half-written checkpoint."""
    buffer = io.BytesIO()  # torch's zip writer reports a full disk as "unexpected pos"; plain writes name it
    torch.save(obj, buffer)
    atomic_write(path, buffer.getbuffer(), fix=store.FIX)


def _restored(path: Path) -> tuple[bool, Any]:
    """(True, value) for a finished unit's checkpoint; (False, None) when absent or cut short by a crash."""
    if path.exists():
        try:
            return True, torch.load(path, weights_only=False)
        except Exception:
            path.unlink()  # a checkpoint cut short by a crash: recompute it
    return False, None


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


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op CPU threads inside the block (0 leaves the setting alone), then restore it.

    Small matrix products (a 128-unit layer at batch 32, float64 problems of tens of columns) gain little
    from a second thread, and on a CPU shared with other jobs OpenMP's spin-waiting made them 10-30x
    slower in our measurements.
    """
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(
    n: int, size: int, device: torch.device, gen: torch.Generator | None = None, drop_last: bool = False
) -> list[torch.Tensor]:
    """One epoch of batch indices: a fresh permutation of ``n`` examples on the device, cut into slices,
    so the data stay resident and a batch is one index operation."""
    order = torch.randperm(n, device=device, generator=gen)
    return [order[i : i + size] for i in range(0, (n // size) * size if drop_last else n, size)]


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    x: torch.Tensor,
    chunk: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: bool = False,
) -> torch.Tensor:
    """Logits for all of ``x`` in eval mode, ``chunk`` rows at a time (``prepare`` maps a raw chunk to
    model input; ``autocast`` runs in bf16 on CUDA)."""
    training = model.training
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast and x.is_cuda):
        out = torch.cat([model(prepare(xs) if prepare else xs) for xs in x.split(chunk)])
    model.train(training)
    return out


def confusion_rows(true: torch.Tensor, pred: torch.Tensor, classes: int, **keys: Any) -> list[dict[str, Any]]:
    """The confusion counts of one model as tidy rows ``{**keys, true, pred, count}``."""
    counts = torch.bincount(true.cpu() * classes + pred.cpu(), minlength=classes * classes).view(classes, -1)
    return [
        {**keys, "true": t, "pred": p, "count": int(counts[t, p])}
        for t in range(classes)
        for p in range(classes)
    ]


def t_interval(values: Sequence[float], level: float) -> dict[str, Any]:
    """Mean, sample standard deviation and the two-sided Student-t interval for the mean over seeds.

    The t quantile (not the normal 1.96) because the spread is estimated from a handful of seeds.
    It is computed here rather than in the report so that rendering never imports scipy (~0.2 s).
    """
    x = np.asarray(values, dtype=float)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    quantile = 0.5 + level / 2
    t = float(special.stdtrit(len(x) - 1, quantile))
    half = t * std / math.sqrt(len(x))
    return {
        "n": len(x),
        "level": level,
        "quantile": quantile,
        "t": t,
        "mean": mean,
        "std": std,
        "lo": mean - half,
        "hi": mean + half,
    }


# ---- schedules and early stopping ----------------------------------------------------------------
def linear_decay(peak: float, done: float, length: float) -> float:
    """The learning rate after ``done`` of a schedule's ``length`` epochs: linear from ``peak`` to zero.

    Applied per step (``done`` counts fractions of an epoch), so every run, a one-epoch rung included,
    ends at about zero: a sweep compares settled models rather than snapshots of a noisy constant-rate
    trajectory.
    """
    return peak * max(0.0, 1.0 - done / length)


def badness(history: list[dict[str, float]], monitor: str) -> list[float]:
    """The monitored validation metric per epoch as "lower is better" (a NaN loss is the worst)."""
    values = [h["val_loss"] if monitor == "val_loss" else -h["val_acc"] for h in history]
    return [v if math.isfinite(v) else math.inf for v in values]


def epochs_since_best(values: list[float]) -> int:
    """How many epochs have passed since the first occurrence of the lowest value so far."""
    return len(values) - 1 - values.index(min(values))
