"""Choosing among validation points, shared by the experiment that chooses and the report that re-checks
the choice from the stored points: one rule in one place, so the two cannot drift apart.

A validation set ranks points only as far as its sampling error allows. ``ranked`` orders points by
validation accuracy; ``cheapest_tied`` keeps, of the points that an unpaired comparison on the validation
set does not separate from the best (``tie_band``), the one cheapest to train; ``promoted`` is the
successive-halving cut, which never separates points that set cannot. Where each point is trained with
several seeds and its per-image results are kept, ``shortest_tied`` compares them paired over the images,
paired by seed too, and the seeds' variation counted (``paired_band``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd


def ranked(rows: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per candidate (``keys``), its last epoch, best first: highest validation accuracy, ties to
    the lower validation loss (NaN counts as the worst), then to the earlier row: every choice is
    deterministic."""
    return best_first(rows.sort_values("epoch", kind="stable").groupby(list(keys), sort=False).tail(1))


def best_first(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` by validation accuracy, highest first, ties to the lower validation loss (NaN counts as the
    worst), then in their order: the one ranking every rule here uses. Accuracies are compared to 12
    decimals: a mean over seeds of equal counts of right images can differ in its last bit with the order
    of the sum (3 seeds: 0.9794666666666666 against ...67), and no validation set resolves 1e-12."""
    loss = rows["val_loss"].where(rows["val_loss"].notna(), math.inf)
    keys = rows.assign(_acc=rows["val_acc"].round(12), _loss=loss)
    order = keys.sort_values(["_acc", "_loss"], ascending=[False, True], kind="stable")
    return order.drop(columns=["_acc", "_loss"])


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


def promoted(
    rows: pd.DataFrame, keys: Sequence[str], n_val: int, share: int, each: str | None = None
) -> pd.DataFrame:
    """A successive-halving rung's points that go on to the next rung: the best ``ceil(n / share)`` by
    ``ranked``, every other point within the tie band of the lowest of them (a cut the validation set
    cannot make is not made) and, with ``each`` (a key), the best point of each of its values (so every
    batch size, say, is compared at the last rung's length). In ``ranked``'s order."""
    order = ranked(rows, keys)
    top = order.head(math.ceil(len(order) / share))
    if top.empty:
        return top
    cutoff = float(top["val_acc"].min())
    kept = order["val_acc"] >= cutoff - tie_band(cutoff, n_val)
    if each is not None:
        kept |= ~order[each].duplicated()  # ``ranked`` puts each value's best first
    return order[kept]


def paired_band(a: np.ndarray, b: np.ndarray) -> float:
    """The half-width of a 95% interval for the difference between two points' mean validation accuracies,
    where both points ran with the same seeds and scored the same images (``a``, ``b``: seeds × images, 1
    where a run is right, seeds in the same order). The difference ``a - b`` is a seeds × images table
    whose mean varies with the images, with the seeds and with their interaction; its variance is
    estimated from the two-way analysis of variance, (MS_images + MS_seeds - MS_error) / (seeds × images),
    which counts each once (the seeds' own part floored at zero, and not measured with one seed). A few
    seeds estimate their part poorly, so the multiplier is Student's t at Satterthwaite's degrees of
    freedom for that sum of mean squares (the seeds' terms in it even where the floor applies), not 2."""
    from scipy.special import stdtrit  # here: rendering a report without this stage never imports scipy

    z = a - b
    seeds, images = z.shape
    by_seed, by_image = z.mean(1), z.mean(0)
    squares = [(seeds * float(by_image.var(ddof=1)), images - 1)]  # (mean square, degrees of freedom)
    variance = squares[0][0]
    if seeds > 1:
        rest = z - by_seed[:, None] - by_image[None, :] + z.mean()
        error = (float((rest**2).sum()) / ((seeds - 1) * (images - 1)), (seeds - 1) * (images - 1))
        own = (images * float(by_seed.var(ddof=1)), seeds - 1)
        variance += max(0.0, own[0] - error[0])
        # the seeds' two mean squares count towards the degrees of freedom whether or not their difference
        # was floored: an estimate of the seeds' part near zero is as uncertain as one just above it
        squares += [own, error]
    if variance <= 0:  # the two points got the same images right in every seed
        return 0.0
    dof = variance**2 / sum(ms**2 / df for ms, df in squares)
    return float(stdtrit(dof, 0.975)) * math.sqrt(variance / (seeds * images))


def shortest_tied(runs: pd.DataFrame, length: str) -> pd.DataFrame:
    """One row per value of ``length`` (a schedule's epochs, or the epochs of one schedule), shortest
    first, from ``runs`` (one per seed, with ``val_acc``, ``val_loss`` and ``correct``, its per-image
    results): the mean validation accuracy and loss over seeds, the ``gap`` below the best mean
    (``best_first``, then the shorter), that gap's ``paired_band`` against the best (NaN for the best
    itself) and whether the length is ``tied`` with the best (its gap at most its band). The first tied
    row is the choice."""
    # a seed whose loss went NaN makes its length's mean loss NaN (the worst), not the other seeds' mean
    means = runs.groupby(length)[["val_acc", "val_loss"]].agg(lambda v: v.mean(skipna=False))
    best_length = best_first(means).index[0]
    right = {
        e: np.array(g.sort_values("seed")["correct"].tolist(), dtype=float) for e, g in runs.groupby(length)
    }
    band = [math.nan if e == best_length else paired_band(right[best_length], right[e]) for e in means.index]
    acc = means["val_acc"].round(12)  # as best_first compares them: an exact tie is a gap of 0, not -1e-16
    out = means.assign(gap=acc[best_length] - acc, band=band)
    return out.assign(tied=(out.index == best_length) | (out["gap"] <= out["band"])).reset_index()
