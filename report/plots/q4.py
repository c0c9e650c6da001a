"""Question 4's drawings: each takes the data its context module prepared and returns a figure.

matplotlib is imported inside each function, so a render whose figures are all cached never imports it.
"""

from __future__ import annotations

import pandas as pd

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # one per model, in ranking order, in every figure


def draw_tradeoff(data: pd.DataFrame):
    """Test accuracy against parameters and against forward FLOPs, both on log axes.

    One colour and marker per model, named in a legend: with close accuracies (the ResNets), text
    labels beside the points would overlap.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4), sharey=True)
    for ax, col, label in ((axes[0], "params", "parameters"), (axes[1], "flops", "forward FLOPs per image")):
        for i, (_, r) in enumerate(data.iterrows()):
            ax.errorbar(
                r[col],
                100 * r["acc"],
                yerr=100 * (0 if pd.isna(r["acc_std"]) else r["acc_std"]),
                fmt=MARKERS[i % len(MARKERS)],
                color=f"C{i % 10}",
                capsize=3,
                label=r["title"],
            )
        ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def draw_curves(data: pd.DataFrame):
    """Mean training loss and validation accuracy per epoch, one line per model."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.2))
    for i, (title, d) in enumerate(data.groupby("title", sort=False)):
        style = {"marker": MARKERS[i % len(MARKERS)], "markersize": 3, "color": f"C{i % 10}", "label": title}
        left.plot(d["epoch"], d["train_loss"], **style)
        right.plot(d["epoch"], 100 * d["val_acc"], **style)
    left.set(xlabel="epoch", ylabel="training loss (smoothed labels)")
    right.set(xlabel="epoch", ylabel="validation accuracy (%)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_confusion(data: pd.DataFrame):
    """Row-normalised confusion matrix: each row is the distribution of predictions for one true class."""
    import matplotlib.pyplot as plt

    counts = data.pivot_table(index="true", columns="pred", values="count", aggfunc="sum")
    names = data.drop_duplicates("true").sort_values("true")["true_name"].tolist()
    from matplotlib.colors import LogNorm

    rates = counts.div(counts.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    floor = 1e-3  # a log scale shows the errors, which a linear one washes out beside the diagonal
    im = ax.imshow(rates.clip(lower=floor).to_numpy(), cmap="Blues", norm=LogNorm(vmin=floor, vmax=1))
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class (log scale; ≤ 0.1% at the lightest)")
    fig.tight_layout()
    return fig
