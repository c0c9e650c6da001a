"""Question 2's drawings: each takes the data its context module prepared and returns a figure.

matplotlib is imported inside each function, so a render whose figures are all cached never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from report.questions import q1  # names and facts shared with the context; read at draw time


def draw_surface(data: pd.DataFrame) -> Any:
    """Filled contours of each loss over (w1, w2); the product structure puts a saddle at the origin."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0), sharey=True)
    for ax, loss in zip(axes, q1.LOSS_NAMES, strict=True):
        grid = data[data["loss"] == loss].pivot(index="w2", columns="w1", values="value")
        levels = np.quantile(grid.to_numpy(), np.linspace(0, 1, 16))
        levels = np.unique(levels)
        filled = ax.contourf(grid.columns, grid.index, grid.to_numpy(), levels=levels, cmap="viridis")
        filled.set_rasterized(True)  # the fill as one image; contour lines, axes and text stay vector
        ax.contour(grid.columns, grid.index, grid.to_numpy(), levels=levels, colors="k", linewidths=0.3)
        ax.plot([0], [0], "x", color="w", ms=7, mew=2)
        ax.annotate("saddle", (0, 0), xytext=(6, 6), textcoords="offset points", color="w")
        ax.set_title(f"{q1.LOSS_NAMES[loss]}: L(w1, w2)")
        ax.set_xlabel("w1")
        ax.set_aspect("equal")
        ax.grid(False)
        bar = fig.colorbar(filled, ax=ax, shrink=0.8, label=f"mean {q1.LOSS_NAMES[loss]}")
        # the levels are quantiles, evenly spaced on the bar: ticks at every fifth level stay apart
        ticks = levels[:: max(1, len(levels) // 4)]
        bar.set_ticks(ticks, labels=[f"{v:.2g}" for v in ticks])
    axes[0].set_ylabel("w2")
    fig.tight_layout()
    return fig


def draw_path(data: pd.DataFrame) -> Any:
    """L along θ(s) = (sW1, sw2, b2): θ at s = 1, its flip at s = −1, the midpoint at s = 0, with chords."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for loss, colour in (("ce", "C0"), ("mse", "C3")):
        df = data[data["loss"] == loss]
        ax.plot(df["s"], df["value"], color=colour, label=q1.LOSS_NAMES[loss])
        ends = df.iloc[[(df["s"] + 1).abs().argmin(), (df["s"] - 1).abs().argmin()]]
        ax.plot(
            ends["s"],
            ends["value"],
            "--o",
            color=colour,
            ms=4,
            lw=0.8,
            label=f"chord from θ′ to θ ({q1.LOSS_NAMES[loss]})",
        )
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("s   (s = 1: trained θ;  s = −1: θ′ = flipped θ;  s = 0: midpoint)")
    ax.set_ylabel("mean loss")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
