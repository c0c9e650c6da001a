"""Question 1's drawings: each takes the data its context module prepared and returns a figure.

matplotlib is imported inside each function, so a render whose figures are all cached never imports it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from report.questions import q1  # names and facts shared with the context; read at draw time


def draw_slices(data: pd.DataFrame) -> Any:
    """Each loss along θ(t) = t·θ̂, one panel per loss, the trained point (t = 1) marked and the stretches
    where the curve is concave shaded."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.8))
    for ax, (loss, colour) in zip(axes, (("ce", "C0"), ("mse", "C3")), strict=True):
        df = data[data["loss"] == loss]
        ax.plot(df["t"], df["value"], color=colour)
        concave = q1.concave_steps(df["value"].to_numpy())
        if concave.any():
            ax.fill_between(
                df["t"], 0, df["value"], where=concave, color=colour, alpha=0.2, lw=0, label="concave stretch"
            )
        at_one = df.iloc[(df["t"] - 1).abs().argmin()]
        ax.plot([at_one["t"]], [at_one["value"]], "o", color="k", ms=4, label="trained point (t = 1)")
        ax.set_title(q1.LOSS_NAMES[loss])  # the line itself is named in the caption (an accent in SVG text
        ax.set_xlabel("t")  # needs a font with combining marks, which the PDF's may lack)
    axes[0].set_ylabel("mean loss")
    handles, labels = axes[1].get_legend_handles_labels()  # below the panels, where it covers no curve
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def draw_curvature(data: pd.DataFrame) -> Any:
    """d²ℓ/dz² for MSE (y = 0 and y = 1) and CE, with the regions of negative MSE curvature shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ce = data[(data["loss"] == "ce") & (data["label"] == 1)]
    ax.plot(ce["z"], ce["d2"], color="C0", label="CE, y = 0 or 1: σ(1−σ)")
    for label, colour in ((1, "C3"), (0, "C1")):
        df = data[(data["loss"] == "mse") & (data["label"] == label)]
        ax.plot(df["z"], df["d2"], color=colour, label=f"MSE, y = {label}")
        ax.fill_between(
            df["z"],
            0,
            df["d2"],
            where=df["d2"] < 0,
            color=colour,
            alpha=0.25,
            lw=0,
            label=f"MSE concave in z (y = {label})",
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("logit z")
    ax.set_ylabel("d²ℓ/dz²")
    ax.legend(loc="upper left", frameon=False, ncol=1, fontsize=7)
    fig.tight_layout()
    return fig
