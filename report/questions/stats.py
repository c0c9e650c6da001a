"""The tests behind the report's verdicts, in one place: Welch's t-test over seeds, McNemar's exact test on
the same test images, Holm's correction over the comparisons of one statement, and the binomial standard
error of an accuracy. The context modules call these; the templates name the test a verdict came from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def welch(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> dict[str, float] | None:
    """Welch's t, its degrees of freedom and the two-sided p-value for equal means of two samples given as
    mean, variance and size (``None`` with fewer than two values on either side: the spread is unmeasured)."""
    if n_a < 2 or n_b < 2:
        return None
    va, vb = var_a / n_a, var_b / n_b
    delta = mean_b - mean_a
    if va + vb == 0:  # every seed gave the same value
        return {"t": math.inf if delta else 0.0, "df": math.inf, "p": 0.0 if delta else 1.0}
    from scipy.special import stdtr  # imported only where a report compares over seeds (not scipy.stats)

    t = delta / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return {"t": t, "df": df, "p": float(2 * stdtr(df, -abs(t)))}


def mcnemar(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value for two classifiers scored on the same images, from the images
    only ``a`` got right and those only ``b`` got right (the images both got right or wrong say nothing
    about which is better): under equal accuracy each discordant image is a fair coin."""
    n = only_a + only_b
    term = tail = 1  # C(n, i) for i = 0 … min(only_a, only_b), summed: exact integers, one rounding
    for i in range(min(only_a, only_b)):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(images only ``a`` got right, images only ``b`` got right) from per-image correctness."""
    return int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (``None`` stays ``None``): reject where adjusted < level keeps
    the chance of any false claim among these comparisons below the level."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def binomial_se(accuracy: Any, n_test: int) -> Any:
    """The standard error of an accuracy from the sampling of ``n_test`` test images alone, sqrt(p(1-p)/n):
    the part of the uncertainty that the seed-to-seed tests do not cover."""
    return (accuracy * (1 - accuracy) / n_test) ** 0.5
