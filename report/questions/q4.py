"""Question 4 context: rank the architectures from the stored results and say how far the ranking holds.

Every comparison is a difference of mean test accuracies judged against seed-to-seed variation: a gap
counts as real only when it exceeds ``NOISE_SE`` standard errors of the difference. With one seed that
variation is unmeasured, and the sentences here say so instead of calling a gap real.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from report.questions import Figure, Results, Table, require

NOISE_SE = 2.0  # gaps within this many standard errors of the difference are "within seed noise"
RESNETS = ("resnet18", "resnet50", "resnet101")
WITHIN, ABOVE, BELOW, UNMEASURED = "within seed noise", "above seed noise", "below seed noise", "unmeasured"


def summarise(results: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """One row per model, best first: mean and std of test accuracy over seeds, and the cost measurements."""
    per_model = results.groupby("model").agg(
        acc=("test_acc", "mean"),
        acc_std=("test_acc", "std"),
        seeds=("seed", "count"),
        train_time_s=("train_time_s", "mean"),
        throughput=("throughput", "mean"),
        peak_mem_bytes=("peak_mem_bytes", "max"),
    )
    out = models.set_index("model").join(per_model, how="inner").reset_index()
    return out.sort_values(["acc", "flops"], ascending=[False, True], ignore_index=True)


def compare(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """How ``b`` differs from ``a`` in mean test accuracy, in percentage points, against seed noise."""
    delta = float(b["acc"] - a["acc"])
    band = None
    if a["seeds"] >= 2 and b["seeds"] >= 2:
        band = NOISE_SE * math.sqrt(a["acc_std"] ** 2 / a["seeds"] + b["acc_std"] ** 2 / b["seeds"])
    if band is None:
        verdict = UNMEASURED
    elif abs(delta) <= band:
        verdict = WITHIN
    else:
        verdict = ABOVE if delta > 0 else BELOW
    return {
        "a": a["title"],
        "b": b["title"],
        "delta_pp": 100 * delta,
        "abs_pp": 100 * abs(delta),
        "direction": "higher" if delta > 0 else "lower" if delta < 0 else "equal",
        "band_pp": None if band is None else 100 * band,
        "verdict": verdict,
    }


def best_claim(summary: pd.DataFrame) -> dict[str, Any]:
    """Which model is best, and which others this run cannot separate from it."""
    best = summary.iloc[0]
    gaps = [compare(best, row) for _, row in summary.iloc[1:].iterrows()]
    tied = [g["b"] for g in gaps if g["verdict"] == WITHIN]
    if not gaps:
        text = f"{best['title']} is the only model in this run, so there is no ranking to report."
    elif gaps[0]["verdict"] == UNMEASURED:
        text = (
            f"{best['title']} has the highest test accuracy in this single-seed run; how much of its "
            f"lead over {gaps[0]['b']} is seed-to-seed variation is not measured."
        )
    elif tied:
        text = (
            f"{best['title']} has the highest mean test accuracy, but {_join(tied)} "
            f"{'is' if len(tied) == 1 else 'are'} within seed noise of it, so this run does not separate "
            f"{'the two' if len(tied) == 1 else 'them'}."
        )
    else:
        text = (
            f"{best['title']} has the highest mean test accuracy, and its lead over every other model "
            f"exceeds seed noise."
        )
    return {
        "title": best["title"],
        "model": best["model"],
        "text": text,
        "tied": tied,
        "runner_up": gaps[0] if gaps else None,
    }


def depth_claim(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Whether more depth among the ResNets changed accuracy beyond seed noise (None with under two)."""
    rows = {r["model"]: r for _, r in summary.iterrows()}
    present = [rows[m] for m in RESNETS if m in rows]
    if len(present) < 2:
        return None
    steps = [compare(present[i], present[i + 1]) for i in range(len(present) - 1)]
    if len(present) == 3:
        steps.append(compare(present[0], present[2]))
    verdicts = {s["verdict"] for s in steps}
    shallow, deepest, overall = present[0]["title"], present[-1]["title"], steps[-1]["verdict"]
    order = " > ".join(r["title"] for r in sorted(present, key=lambda r: -r["acc"]))
    if verdicts == {UNMEASURED}:
        text = (
            f"With one seed the noise of these gaps is unmeasured, so the ordering of the ResNets by "
            f"point estimate ({order}) is not evidence that depth helped or hurt."
        )
    elif verdicts == {WITHIN}:
        text = "Every gap among the ResNets is within seed noise: this run shows no effect of depth."
    elif overall == ABOVE:
        text = f"More depth helped: {deepest} is more accurate than {shallow} by more than seed noise."
    elif overall == BELOW:
        text = (
            f"More depth hurt under this budget: {deepest} is less accurate than {shallow} by more than "
            f"seed noise."
        )
    else:
        text = (
            f"{deepest} and {shallow} are within seed noise of each other, although an intermediate "
            f"step differs by more than seed noise; depth had no consistent effect here."
        )
    return {"steps": steps, "text": text}


def lenet_claim(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Where LeNet-5 stands against each ResNet (None when either is missing from the run)."""
    rows = {r["model"]: r for _, r in summary.iterrows()}
    if "lenet5" not in rows or not any(m in rows for m in RESNETS):
        return None
    gaps = [compare(rows["lenet5"], rows[m]) for m in RESNETS if m in rows]  # positive: the ResNet is higher
    verdicts = {g["verdict"] for g in gaps}
    if verdicts == {ABOVE}:
        text = "LeNet-5 is less accurate than every ResNet, each gap beyond seed noise."
    elif verdicts == {BELOW}:
        text = "LeNet-5 is more accurate than every ResNet, each gap beyond seed noise."
    elif verdicts == {WITHIN}:
        text = "LeNet-5 is within seed noise of every ResNet."
    elif UNMEASURED in verdicts:
        higher = [g["b"] for g in gaps if g["delta_pp"] > 0]
        who = f"{_join(higher)} scored above LeNet-5" if higher else "no ResNet scored above LeNet-5"
        text = f"In this single-seed run {who}; seed noise is unmeasured, so the ordering is not established."
    else:
        where = {ABOVE: "above", BELOW: "below", WITHIN: "within seed noise of"}
        text = (
            "LeNet-5's standing against the ResNets is mixed: "
            + "; ".join(f"{g['b']} is {where[g['verdict']]} it" for g in gaps)
            + "."
        )
    return {"gaps": gaps, "text": text}


def pareto(summary: pd.DataFrame) -> list[str]:
    """Models that no other model beats on accuracy at equal or lower FLOPs, cheapest first."""
    rows = [r for _, r in summary.iterrows()]
    keep = [r for r in rows if not any(o["acc"] > r["acc"] and o["flops"] <= r["flops"] for o in rows)]
    return [r["title"] for r in sorted(keep, key=lambda r: r["flops"])]


def class_accuracy(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per model and class: test images and accuracy, pooled over seeds, from the confusion counts."""
    c = confusion.assign(correct=confusion["count"].where(confusion["true"] == confusion["pred"], 0))
    out = c.groupby(["model", "true", "true_name"], as_index=False)[["count", "correct"]].sum()
    out = out.rename(columns={"true": "label", "true_name": "class", "count": "n"})
    return out.assign(accuracy=out["correct"] / out["n"].where(out["n"] > 0))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check(results: pd.DataFrame, confusion: pd.DataFrame, test_used: int, seeds: int) -> None:
    """Stop if the stored tables disagree with each other: the ranking would rest on broken evidence."""
    counts = results.groupby("model")["seed"].nunique()
    require(bool((counts == seeds).all()), f"every model has one result per configured seed ({seeds})")
    hits = confusion.assign(hit=confusion["count"].where(confusion["true"] == confusion["pred"], 0))
    per_run = hits.groupby(["model", "seed"])[["count", "hit"]].sum()
    require(bool((per_run["count"] == test_used).all()), "each confusion matrix counts every test image used")
    merged = results.set_index(["model", "seed"]).join(per_run)
    require(
        bool(((merged["hit"] / merged["count"] - merged["test_acc"]).abs() < 1e-6).all()),
        "stored test accuracies equal the diagonals of the stored confusion matrices",
    )


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
    rates = counts.div(counts.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    im = ax.imshow(rates.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    return fig


def _tables(
    summary: pd.DataFrame, per_class: pd.DataFrame, seeds: int, cuda: bool, best: str, run: Any
) -> dict[str, Table]:
    shown = summary.assign(
        params_m=summary["params"] / 1e6,
        mflops=summary["flops"] / 1e6,
        acc_pm=list(zip(summary["acc"], summary["acc_std"], strict=True)),
        peak_mib=summary["peak_mem_bytes"] / 2**20,
    )
    acc_col = ("acc_pm", "pm") if seeds > 1 else ("acc", "pct")
    columns = {
        "title": ("Model", "text"),
        "params_m": ("Parameters (M)", "num"),
        "mflops": ("MFLOPs / image", "num"),
        acc_col[0]: ("Test accuracy", acc_col[1]),
        "train_time_s": ("Training time", "dur"),
        "throughput": ("Training images/s", "num"),
    }
    if cuda:
        columns["peak_mib"] = ("Peak GPU memory above the data (MiB)", "num")
    wide = per_class.pivot_table(index=["label", "class"], columns="model", values="accuracy")
    counts = per_class.groupby(["label", "class"])["n"].first() // seeds  # test images of one run
    wide = wide.join(counts)[lambda d: d["n"] > 0].reset_index()
    titles = dict(zip(summary["model"], summary["title"], strict=True))
    return {
        "comparison": Table(shown, columns, run, highlight=lambda row: row["model"] == best),
        "adaptations": Table(
            summary, {"title": ("Model", "text"), "adaptation": ("Adaptation to 32×32 inputs", "text")}, run
        ),
        "per_class": Table(
            wide,
            {
                "class": ("Class", "text"),
                "n": ("Test images", "int"),
                **{m: (t, "pct") for m, t in titles.items()},
            },
            run,
        ),
    }


def context(r: Results) -> dict[str, Any]:
    run = r.run("q4")
    cfg = run.config
    seeds, cuda = int(cfg["seeds"]), run.device == "cuda"
    results, models = r.table("q4", "results"), r.table("q4", "models")
    confusion, curves = r.table("q4", "confusion"), r.table("q4", "curves")
    setup = r.table("q4", "setup").iloc[0]
    n = r.table("q4", "splits").set_index("split")
    check(results, confusion, int(n.loc["test", "used"]), seeds)

    summary = summarise(results, models)
    best = best_claim(summary)
    top = summary.iloc[0]
    per_class = class_accuracy(confusion)
    best_classes = per_class[(per_class["model"] == best["model"]) & (per_class["n"] > 0)]
    weakest = best_classes.sort_values("accuracy").iloc[0]
    errors = confusion[(confusion["model"] == best["model"]) & (confusion["true"] != confusion["pred"])]
    errors = errors.groupby(["true_name", "pred_name"], as_index=False)["count"].sum()
    top_error = errors.loc[errors["count"].idxmax()] if errors["count"].sum() > 0 else None

    order = {m: i for i, m in enumerate(summary["model"])}
    mean_curves = (
        curves.groupby(["model", "epoch"], as_index=False)[["train_loss", "val_acc"]]
        .mean()
        .merge(summary[["model", "title"]], on="model")
        .sort_values(["model", "epoch"], key=lambda c: c.map(order) if c.name == "model" else c)
    )
    fastest = summary.loc[summary["throughput"].idxmax()]
    slowest = summary.loc[summary["throughput"].idxmin()]
    dataset = str(setup["dataset_title"])
    sizes = {
        "train": int(n.loc["train", "used"]),
        "train_available": int(n.loc["train", "available"]),
        "val": int(n.loc["val", "used"]),
        "test": int(n.loc["test", "used"]),
        "test_available": int(n.loc["test", "available"]),
    }
    return {
        "run": run,
        "dataset": dataset,
        "substitute": setup["dataset"] != "svhn",
        "grey": setup["dataset"] in ("mnist", "fashion-mnist"),
        "subset": sizes["train"] < sizes["train_available"] or sizes["test"] < sizes["test_available"],
        "cuda": cuda,
        "seeds": seeds,
        "single_seed": seeds == 1,
        "noise_se": NOISE_SE,
        "n": sizes,
        "recipe": {
            k: cfg[k]
            for k in (
                "epochs",
                "batch_size",
                "lr",
                "warmup",
                "momentum",
                "weight_decay",
                "label_smoothing",
                "grad_clip",
            )
        },
        "augment": {"pad": int(setup["crop_pad"]), "flip": bool(setup["hflip"])},
        "ranking": summary["title"].tolist(),
        "best": {**best, "acc": float(top["acc"]), "acc_std": float(top["acc_std"]) if seeds > 1 else None},
        "depth": depth_claim(summary),
        "lenet": lenet_claim(summary),
        "pareto": pareto(summary),
        "speed": {
            "fastest": fastest["title"],
            "fastest_ips": float(fastest["throughput"]),
            "slowest": slowest["title"],
            "slowest_ips": float(slowest["throughput"]),
            "ratio": float(fastest["throughput"] / slowest["throughput"]),
        },
        "weakest_class": {"name": str(weakest["class"]), "acc": float(weakest["accuracy"])},
        "top_error": None
        if top_error is None
        else {
            "true": str(top_error["true_name"]),
            "pred": str(top_error["pred_name"]),
            "count": int(top_error["count"]),
        },
        "tables": _tables(summary, per_class, seeds, cuda, best["model"], run),
        "figures": {
            "tradeoff": Figure(
                draw_tradeoff,
                summary[["title", "params", "flops", "acc", "acc_std"]],
                f"Test accuracy of each model on {dataset} against its parameter count and "
                f"its forward FLOPs per image, both on logarithmic axes.",
                run,
            ),
            "curves": Figure(
                draw_curves,
                mean_curves,
                "Training loss and validation accuracy after each epoch, one line per model.",
                run,
            ),
            "confusion": Figure(
                draw_confusion,
                confusion[confusion["model"] == best["model"]],
                f"Row-normalised confusion matrix of {best['title']} on the {dataset} test images.",
                run,
            ),
        },
    }
