"""Successive halving: train every candidate briefly, keep the best fraction, train those for longer.

A tuning procedure, not only a saving: a learning rate that is hopeless after one epoch (diverged, or
barely moved) is not worth ten, and the budget goes to the candidates that are competitive. Each rung
trains its candidates from scratch on a schedule of its own length, so every rung compares finished,
settled runs; the report shows every rung (who was kept, who was pruned, at what score). The choice
made from the last rung does not pretend to rank what the validation set cannot: among the points tied
with the best, it keeps the cheapest to train (``cheapest_tied``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd


def rung_lengths(budget: int, halving: int, rungs: int) -> list[int]:
    """Epochs per rung: ``budget`` last, each earlier rung ``halving`` times shorter (at least one
    epoch; rungs that would repeat a length are merged). ``halving`` 1 is a plain grid at ``budget``."""
    if halving == 1:
        return [budget]
    return sorted({max(1, round(budget / halving ** (rungs - 1 - r))) for r in range(rungs)})


def ranked(rows: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per candidate (``keys``), its last epoch, best first: highest validation accuracy, ties to
    the lower validation loss (NaN counts as the worst), then to the earlier row: every choice is
    deterministic."""
    last = rows.sort_values("epoch", kind="stable").groupby(list(keys), sort=False).tail(1)
    loss = last["val_loss"].where(last["val_loss"].notna(), math.inf)
    order = last.assign(_loss=loss).sort_values(["val_acc", "_loss"], ascending=[False, True], kind="stable")
    return order.drop(columns="_loss")


def tie_band(acc: float, n_val: int) -> float:
    """Two binomial standard errors of a difference of two validation accuracies near ``acc`` (unpaired, so
    generous for points scored on the same images): a validation set of ``n_val`` images does not rank
    points closer than this."""
    return 2 * math.sqrt(2 * acc * (1 - acc) / n_val)


def cheapest_tied(
    rows: pd.DataFrame, keys: Sequence[str], n_val: int, cost: Callable[[pd.DataFrame], pd.DataFrame]
) -> tuple[pd.Series, pd.Index, float]:
    """The choice among candidates that the validation set cannot rank. The candidates (``ranked``'s rows)
    within ``tie_band`` of the best validation accuracy are tied with it; of those, the first by ``cost``
    (one column per criterion, sorted ascending: cheapest first) is kept, equal costs in ``ranked``'s
    order. So a more accurate but dearer point is kept only where the validation set separates it from
    every cheaper one. Returns the kept row, the labels of the tied rows in ``rows`` and the band."""
    order = ranked(rows, keys)
    best = float(order["val_acc"].iloc[0])
    band = tie_band(best, n_val)
    tied = order[order["val_acc"] >= best - band]
    costs = cost(tied)
    kept = costs.assign(_rank=range(len(tied))).sort_values([*costs.columns, "_rank"], kind="stable").index[0]
    return tied.loc[kept], tied.index, band


def search(
    candidates: list[tuple[Any, ...]],
    keys: Sequence[str],
    lengths: Sequence[int],
    halving: int,
    train: Callable[[int, list[tuple[Any, ...]], int], pd.DataFrame],
) -> pd.DataFrame:
    """Run every rung: ``train(rung, candidates, epochs)`` returns one row per candidate (its ``keys``
    columns, then its metrics); the best ``ceil(n / halving)`` go on to the next rung. All rows, with a
    ``rung`` column."""
    frames = []
    for r, epochs in enumerate(lengths):
        frames.append(train(r, candidates, epochs).assign(rung=r))
        best = ranked(frames[-1], keys).head(math.ceil(len(candidates) / halving))
        candidates = [
            tuple(getattr(v, "item", lambda v=v: v)() for v in row)
            for row in best[list(keys)].itertuples(index=False)
        ]
    return pd.concat(frames, ignore_index=True)
