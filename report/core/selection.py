"""Choosing among validation points, shared by the experiment that chooses and the report that re-checks
the choice from the stored points: one rule in one place, so the two cannot drift apart.

A validation set ranks points only as far as its sampling error allows. ``ranked`` orders points by
validation accuracy; ``cheapest_tied`` keeps, of the points that an unpaired comparison on the validation
set does not separate from the best (``tie_band``), the one cheapest to train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd


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
    generous for points scored on the same images): an unpaired comparison on ``n_val`` images does not
    separate points closer than this."""
    return 2 * math.sqrt(2 * acc * (1 - acc) / n_val)


def cheapest_tied(
    rows: pd.DataFrame, keys: Sequence[str], n_val: int, cost: Callable[[pd.DataFrame], pd.DataFrame]
) -> tuple[pd.Series, pd.Index, float]:
    """The choice among candidates the validation set cannot rank. The candidates (``ranked``'s rows) at
    most ``tie_band`` below the best validation accuracy are tied with the best; of those, the first by
    ``cost`` (one column per criterion, sorted ascending: cheapest first) is kept, equal costs in
    ``ranked``'s order. So no tied point is cheaper than the kept one, and a cheaper point is passed over
    only where the validation set separates it from the best. Returns the kept row, the labels of the
    tied rows in ``rows`` (best first) and the band."""
    order = ranked(rows, keys)
    best = float(order["val_acc"].iloc[0])
    band = tie_band(best, n_val)
    tied = order[order["val_acc"] >= best - band]
    costs = cost(tied)
    kept = costs.assign(_rank=range(len(tied))).sort_values([*costs.columns, "_rank"], kind="stable").index[0]
    return tied.loc[kept], tied.index, band
