"""Successive halving: train every candidate briefly, keep the best fraction, train those for longer.

A tuning procedure, not only a saving: a learning rate that is hopeless after one epoch (diverged, or
barely moved) is not worth ten, and the budget goes to the candidates that are competitive. Each rung
trains its candidates from scratch on a schedule of its own length, so every rung compares finished,
settled runs; the report shows every rung (who was kept, who was pruned, at what score). Pruning keeps
the most accurate points of a rung, those its validation set does not separate from the last of them and
the best of each group a stage compares (each optimizer, each batch size: ``selection.promoted``); the
choice made from the last rung is the caller's (``selection.cheapest_tied``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from report.core.selection import promoted


def rung_lengths(budget: int, halving: int, rungs: int) -> list[int]:
    """Epochs per rung: ``budget`` last, each earlier rung ``halving`` times shorter (at least one
    epoch; rungs that would repeat a length are merged). ``halving`` 1 is a plain grid at ``budget``."""
    if halving == 1:
        return [budget]
    return sorted({max(1, round(budget / halving ** (rungs - 1 - r))) for r in range(rungs)})


def search(
    candidates: list[tuple[Any, ...]],
    keys: Sequence[str],
    lengths: Sequence[int],
    halving: int,
    n_val: int,
    train: Callable[[int, list[tuple[Any, ...]], int], pd.DataFrame],
    each: str | None = None,
) -> pd.DataFrame:
    """Run every rung: ``train(rung, candidates, epochs)`` returns one row per candidate (its ``keys``
    columns, then its metrics); the best ``ceil(n / halving)``, those tied with the last of them on
    ``n_val`` validation images and the best of each value of the key ``each`` go on to the next rung
    (``selection.promoted``). All rows, with a ``rung`` column."""
    frames = []
    for r, epochs in enumerate(lengths):
        frames.append(train(r, candidates, epochs).assign(rung=r))
        best = promoted(frames[-1], keys, n_val, halving, each)
        candidates = [
            tuple(getattr(v, "item", lambda v=v: v)() for v in row)
            for row in best[list(keys)].itertuples(index=False)
        ]
    return pd.concat(frames, ignore_index=True)
