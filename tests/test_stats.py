"""The report's tests computed without scipy (``report/questions/stats.py``) agree with scipy's, to far more
digits than a p-value is shown with (near p = 1 scipy's own ``stdtr`` and ``betainc`` differ by ~1e-11)."""

from __future__ import annotations

import itertools

import pytest

from report.questions import stats


def test_welch_p_values_match_scipy() -> None:
    from scipy.special import stdtr

    for df, t in itertools.product(
        [0.5, 1.0, 1.7, 2.0, 3.4, 4.0, 7.9, 30.0, 250.0, 1e5], [0.0, 1e-6, 0.3, 1.0, 2.2, 5.0, 40.0, 1e3]
    ):
        expected = float(2 * stdtr(df, -t))
        assert stats._t_two_sided(t, df) == pytest.approx(expected, rel=1e-10, abs=1e-300), (df, t)
        assert stats._t_two_sided(-t, df) == pytest.approx(expected, rel=1e-10, abs=1e-300), (df, t)
    w = stats.welch(0.90, 0.01**2, 3, 0.93, 0.02**2, 4)
    assert w is not None and w["p"] == pytest.approx(float(2 * stdtr(w["df"], -abs(w["t"]))), rel=1e-12)


def test_mcnemar_p_values_match_scipy() -> None:
    from scipy.stats import binom

    for only_a, only_b in [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (40, 61), (480, 560), (1, 4000)]:
        n = only_a + only_b
        expected = 1.0 if n == 0 else min(1.0, 2 * binom.cdf(min(only_a, only_b), n, 0.5))
        assert stats.mcnemar(only_a, only_b) == pytest.approx(expected, rel=1e-12, abs=1e-300)
