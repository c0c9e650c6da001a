"""Question 3's drawings: each takes the data its context module prepared and returns a figure.

matplotlib is imported inside each function, so a render whose figures are all cached never imports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from report import format as fmt


def draw_lr(data: pd.DataFrame, names: dict[str, str], chosen: tuple[str, float]) -> Any:
    """Accuracy and loss against the learning rate (log axis), per optimizer: a line through the first
    rung (every point), larger markers for the longer rungs that kept a point; the chosen point circled."""
    import matplotlib.pyplot as plt

    fig, (acc, loss) = plt.subplots(1, 2, figsize=(6.4, 2.8))
    last = data["rung"].max()
    for i, (opt, df) in enumerate(data.groupby("optimizer", sort=False)):
        first = df[df["rung"] == 0].sort_values("lr")
        epochs = int(first["epoch"].max())
        label = f"{names[opt]} ({epochs} epoch{'s' if epochs != 1 else ''})" if last else names[opt]
        acc.plot(first["lr"], 100 * first["val_acc"], "o-", ms=3, color=f"C{i}", label=label)
        loss.plot(first["lr"], first["val_loss"], "o-", ms=3, color=f"C{i}")
        for r, rung in df[df["rung"] > 0].groupby("rung"):
            acc.plot(rung["lr"], 100 * rung["val_acc"], "o", ms=3 + 2 * r, color=f"C{i}", alpha=0.6)
            loss.plot(rung["lr"], rung["val_loss"], "o", ms=3 + 2 * r, color=f"C{i}", alpha=0.6)
    final = data[data["rung"] == last]
    pick = final[(final["optimizer"] == chosen[0]) & np.isclose(final["lr"], chosen[1])]
    acc.plot(pick["lr"], 100 * pick["val_acc"], "o", ms=12, mfc="none", mec="k", label="chosen")
    acc.set_ylim(0, 100)  # every point on the chart, the collapsed rates included
    loss.set_yscale("log")
    for ax, label in ((acc, "validation accuracy (%)"), (loss, "validation loss")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(label)
    handles, labels = acc.get_legend_handles_labels()  # above the panels, where it covers no curve
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def ink_on(rgba: Sequence[float]) -> str:
    """Black ("k") or white ("w"), whichever has the higher contrast (WCAG) on a cell of colour ``rgba``:
    a number printed on a colour-mapped cell stays legible for any colour map and value range, where a
    fixed threshold on the value puts black on dark red. A transparent cell (NaN) shows the white page.
    It lives here, beside its drawings, because the figure cache is keyed by their module's source."""
    alpha = rgba[3] if len(rgba) > 3 else 1.0
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        for c in (alpha * c + 1 - alpha for c in rgba[:3])
    ]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    # contrast with black (L + 0.05) / 0.05 against with white 1.05 / (L + 0.05)
    return "k" if (luminance + 0.05) ** 2 > 0.05 * 1.05 else "w"


def draw_heatmap(data: pd.DataFrame, span: float) -> Any:
    """Validation accuracy per (learning rate, batch size) cell, annotated; the best cell boxed."""
    import matplotlib.pyplot as plt

    grid = data.pivot(index="lr", columns="batch_size", values="val_acc").sort_index(ascending=False)
    values = 100 * grid.to_numpy()
    top = np.nanmax(values)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    image = ax.imshow(values, cmap="viridis", vmin=max(top - span, 0), vmax=top, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                f"{values[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color=ink_on(image.to_rgba(values[i, j])),
            )
    i, j = np.unravel_index(np.nanargmax(values), values.shape)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_xticks(range(len(grid.columns)), [str(b) for b in grid.columns])
    ax.set_yticks(range(len(grid.index)), [fmt.sci(v) for v in grid.index])  # as the text writes rates
    ax.set_xlabel("batch size")
    ax.set_ylabel("learning rate")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    fig.tight_layout()
    return fig


def draw_scaling(data: pd.DataFrame, base_lr: float) -> Any:
    """Accuracy with a held and a linearly scaled learning rate, and seconds per epoch, against batch size."""
    import matplotlib.pyplot as plt

    fig, (acc, time) = plt.subplots(1, 2, figsize=(6.4, 2.8))
    acc.plot(
        data["batch_size"], 100 * data["fixed_acc"], "o-", ms=3, label=f"rate held at {fmt.sci(base_lr)}"
    )
    acc.plot(data["batch_size"], 100 * data["scaled_acc"], "s-", ms=3, label="rate scaled with batch")
    time.plot(data["batch_size"], data["epoch_s"], "o-", ms=3, color="C2")
    acc.set_ylabel("validation accuracy (%)")
    acc.legend(frameon=False)
    time.set_ylabel("seconds per epoch")
    time.set_ylim(0, None)
    for ax in (acc, time):
        ax.set_xscale("log", base=2)
        ax.set_xticks(data["batch_size"], [str(b) for b in data["batch_size"]])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
    fig.tight_layout()
    return fig


def draw_curves(data: pd.DataFrame, best: int) -> Any:
    """Loss and accuracy per epoch: the mean over seeds on the training and validation images, each seed's
    validation run thin, a triangle where early stopping would have ended it, the best mean epoch marked."""
    import matplotlib.pyplot as plt

    fig, (loss, acc) = plt.subplots(1, 2, figsize=(6.4, 2.8))
    # as the text's means: a NaN loss of one seed is a gap in the mean's line, not the other seeds' mean
    scores = ["train_loss", "val_loss", "train_acc", "val_acc"]
    means = data.groupby("epoch")[scores].agg(lambda v: v.mean(skipna=False)).reset_index()
    for split, style in (("train", "-"), ("val", "--")):
        label = "training (mean)" if split == "train" else "validation (mean)"
        loss.plot(means["epoch"], means[f"{split}_loss"], style, label=label)
        acc.plot(means["epoch"], 100 * means[f"{split}_acc"], style, label=label)
    for _, run in data.sort_values("epoch").groupby("seed"):
        stop = run[run["stop"]]
        for ax, column, scale in ((loss, "val_loss", 1), (acc, "val_acc", 100)):
            ax.plot(run["epoch"], scale * run[column], color="0.6", lw=0.6, zorder=1)
            ax.plot(stop["epoch"], scale * stop[column], "v", color="k", ms=4, zorder=3)
    for ax in (loss, acc):
        ax.axvline(best, color="k", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
    loss.set_yscale("log")
    loss.set_ylabel("loss")
    acc.set_ylabel("accuracy (%)")
    acc.set_ylim(max(0, 100 * data["val_acc"].min() - 1), 100)
    loss.legend(frameon=False, title=f"dotted: epoch {best}", title_fontsize=7)
    fig.tight_layout()
    return fig


def draw_confusion(matrix: pd.DataFrame) -> Any:
    """Counts per (true, predicted) digit; colour shows only the off-diagonal errors so they stay visible."""
    import matplotlib.pyplot as plt

    counts = matrix.to_numpy()
    errors = np.where(np.eye(len(counts), dtype=bool), np.nan, counts)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    image = ax.imshow(errors, cmap="Reds", vmin=0)
    for i in range(len(counts)):
        for j in range(len(counts)):
            ax.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                fontsize=6.5,
                weight="bold" if i == j else "normal",
                color=ink_on(image.to_rgba(errors[i, j])),
            )
    ax.set_xticks(range(10), [str(c) for c in matrix.columns])
    ax.set_yticks(range(10), [str(c) for c in matrix.index])
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="misclassified test images", shrink=0.8)
    fig.tight_layout()
    return fig


def confidence(p: float) -> str:
    """A softmax probability with the digits that tell close values apart: whole percents below 99.5%,
    three decimals above, where the misclassified images' confidences crowd (0.9996 → 99.960%, not 100%),
    one format for every label of the figure; "> 99.999%" for what rounds to 100, never a "100.000%" no
    model means."""
    if p < 0.995:
        return f"{100 * p:.0f}%"
    shown = f"{100 * p:.3f}"
    return "> 99.999%" if shown == "100.000" else f"{shown}%"


def draw_misclassified(data: pd.DataFrame) -> Any:
    """Each image with "true → predicted (confidence)" above it."""
    import matplotlib.pyplot as plt

    cols = 8
    rows = max(1, math.ceil(len(data) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.4, 1.15 * rows + 0.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, data.iterrows(), strict=False):
        ax.imshow(np.asarray(row["pixels"], dtype=np.uint8).reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(
            f"{row['true']}→{row['pred']}\n{confidence(row['confidence'])}", fontsize=7, linespacing=1.1
        )
    fig.tight_layout()
    return fig


def draw_schedule(data: pd.DataFrame, chosen: int) -> Any:
    """Validation accuracy per schedule length: each seed's run as a dot, the mean as a line (its markers
    filled where the length is tied with the best), the chosen length circled."""
    import matplotlib.pyplot as plt

    means = data.groupby("schedule")["val_acc"].mean()
    tied = data.groupby("schedule")["tied"].first()
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    ax.plot(data["schedule"], 100 * data["val_acc"], ".", ms=4, color="0.55", label="one seed")
    ax.plot(means.index, 100 * means.to_numpy(), "-", lw=1.2, color="C0")
    ax.plot(
        means.index[tied], 100 * means[tied].to_numpy(), "o", ms=5, color="C0", label="mean, tied with best"
    )
    ax.plot(means.index[~tied], 100 * means[~tied].to_numpy(), "o", ms=5, mfc="white", color="C0",
            label="mean, separated")  # fmt: skip
    ax.plot([chosen], [100 * means[chosen]], "o", ms=11, mfc="none", mec="k", label=f"chosen: {chosen}")
    ax.set_xscale("log")
    ax.set_xticks(list(means.index), [str(int(e)) for e in means.index])
    ax.minorticks_off()
    ax.set_xlabel("epochs (schedule length, decaying to zero)")
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig
