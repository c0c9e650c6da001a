"""McNemar's exact test, summed in integers without importing scipy.stats (0.9 s of every render), agrees
with scipy's binomial tail to far more digits than a p-value is shown with."""

from __future__ import annotations

import pytest

from report.questions import stats


def test_mcnemar_p_values_match_scipy() -> None:
    from scipy.stats import binom

    for only_a, only_b in [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (40, 61), (480, 560), (1, 4000)]:
        n = only_a + only_b
        expected = 1.0 if n == 0 else min(1.0, 2 * binom.cdf(min(only_a, only_b), n, 0.5))
        assert stats.mcnemar(only_a, only_b) == pytest.approx(expected, rel=1e-12, abs=1e-300)
