"""Every figure of a real smoke build: no data drawn outside its axes, every colour bar labelled, no tick
label repeated on an axis (the referee's findings on Figures 4, 5 and 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from report.core.store import Store
from report.plots.q3 import confidence
from report.questions import Figure, Results, build

pytestmark = pytest.mark.slow


def _figures(store) -> list[tuple[str, Figure]]:
    context = build(Results(Store(store), "smoke"))
    return [(f"{q}.{name}", fig) for q, c in context.items() for name, fig in c.get("figures", {}).items()]


def _outside(values: np.ndarray, limits: tuple[float, float], log: bool) -> np.ndarray:
    lo, hi = sorted(limits)
    values = values[np.isfinite(values)]
    if log:
        values = values[values > 0]
    slack = 1e-9 * max(abs(lo), abs(hi), 1)
    return values[(values < lo - slack) | (values > hi + slack)]


def test_every_figure_shows_all_its_data_labels_its_colour_bars_and_repeats_no_tick(smoke_build):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = []
    for name, fig in _figures(smoke_build.store):
        drawn = fig.draw(fig.data, **fig.extra)
        drawn.canvas.draw()
        for ax in drawn.axes:
            if ax.get_label() == "<colorbar>":
                if not (ax.get_ylabel() or ax.get_xlabel()):
                    problems.append(f"{name}: a colour bar without a label")
            else:
                for line in ax.lines:
                    if line.get_transform() != ax.transData:  # axvline/axhline span the axes by design
                        continue
                    x, y = (np.asarray(v, dtype=float) for v in line.get_data())
                    if len(_outside(y, ax.get_ylim(), ax.get_yscale() == "log")):
                        problems.append(f"{name}: {line.get_label()} has points above or below the axes")
                    if len(_outside(x, ax.get_xlim(), ax.get_xscale() == "log")):
                        problems.append(f"{name}: {line.get_label()} has points left or right of the axes")
            for axis in (ax.xaxis, ax.yaxis):
                labels = [t.get_text() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                if len(labels) != len(set(labels)):
                    problems.append(f"{name}: repeated tick labels {labels}")
        plt.close(drawn)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("p", "shown"), [(0.5, "50%"), (0.9951, "99.51%"), (0.99962, "99.962%")])
def test_confidences_near_one_keep_the_digits_that_tell_them_apart(p, shown):
    assert confidence(p) == shown and math.isfinite(p)
