"""Q3 context: what learning rate, batch size and epochs do to the dense MNIST classifier, measured.

Every choice the experiment made is re-checked here against the stored sweep (the chosen point must be
the best validation point of its stage), and every recommendation sentence is composed from the stored
numbers with the report's own number formats, so the prose cannot drift from the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from report import format as fmt
from report.questions import Figure, Results, Table, require

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam"}
POINT = ["study", "optimizer", "lr", "batch_size", "lr_scaled"]
USABLE = 0.01  # a learning rate is "usable" within one percentage point of its optimizer's best
HEATMAP_RANGE = 10  # percentage points below the best that the heat map's colour scale spans
MONITORS = {"val_acc": "validation accuracy", "val_loss": "validation loss"}


def last_epochs(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per trained point: its metrics after its last epoch."""
    return sweep.sort_values("epoch", kind="stable").groupby(POINT, sort=False).tail(1).reset_index(drop=True)


def _words(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pp(fraction: float) -> str:
    """A difference of two accuracies in percentage points."""
    return f"{100 * fraction:.2f}".replace("-", fmt.MINUS) + " percentage points"


def lr_facts(last: pd.DataFrame, choice: pd.Series) -> dict[str, Any]:
    """The learning-rate stage: best rate and usable window per optimizer, and the chosen optimizer."""
    lr = last[last["study"] == "lr"]
    require(
        math.isclose(choice["val_acc"], lr["val_acc"].max()),
        "the chosen optimizer and learning rate have the highest validation accuracy of the sweep",
    )
    per_opt = {}
    for opt, df in lr.groupby("optimizer", sort=False):
        best = df.sort_values("val_acc", ascending=False, kind="stable").iloc[0]
        usable = df[df["val_acc"] >= best["val_acc"] - USABLE]["lr"]
        per_opt[opt] = {
            "name": OPTIMIZER_NAMES[opt],
            "lr": float(best["lr"]),
            "val_acc": float(best["val_acc"]),
            "usable_min": float(usable.min()),
            "usable_max": float(usable.max()),
            "usable_decades": float(math.log10(usable.max() / usable.min())),
        }
    ranked = sorted(per_opt, key=lambda o: per_opt[o]["val_acc"], reverse=True)
    sentence = "; ".join(_window(per_opt[o]) for o in ranked) + "."
    momentum = ""
    if "sgd" in per_opt and "momentum" in per_opt:
        ratio = per_opt["sgd"]["lr"] / per_opt["momentum"]["lr"]
        step = _grid_step(lr["lr"])
        momentum = f"The best plain-SGD rate is {fmt.num(ratio)} times the best rate with momentum"
        if step >= 10:
            momentum += "; the grid is too coarse to compare that with the factor 1/(1 − β) = 10."
        else:
            off = round(abs(math.log(ratio / 10)) / math.log(step))
            momentum += (
                ", exactly the factor 1/(1 − β) = 10 on this grid."
                if off == 0
                else f", {off} grid step{'s' if off > 1 else ''} (factors of {fmt.num(step)}) from the "
                "factor 1/(1 − β) = 10."
            )
    return {
        "by_optimizer": per_opt,
        "sentence": sentence,
        "momentum": momentum,
        "optimizer": OPTIMIZER_NAMES[choice["optimizer"]],
        "lr": float(choice["lr"]),
        "val_acc": float(choice["val_acc"]),
        "grid": sorted(lr["lr"].unique().tolist()),
        "points": len(lr),
    }


def _window(v: dict[str, Any]) -> str:
    head = f"{v['name']} peaks at {fmt.sci(v['lr'])} ({fmt.pct(v['val_acc'])})"
    if v["usable_min"] == v["usable_max"]:
        return head + " and no other rate of the grid comes within one percentage point of that"
    return (
        head + f" and stays within one percentage point of that from {fmt.sci(v['usable_min'])} to "
        f"{fmt.sci(v['usable_max'])}"
    )


def _grid_step(lrs: pd.Series) -> float:
    """The typical factor between neighbouring learning rates of the grid."""
    values = np.log10(np.sort(lrs.unique()))
    return float(10 ** np.median(np.diff(values))) if len(values) > 1 else 10.0


def batch_facts(
    last: pd.DataFrame, choice: pd.Series, base_lr: float, n_val: int, n_train: int
) -> dict[str, Any]:
    """The batch-size stage: the grid, linear scaling, epoch time, and the chosen (lr, batch) point."""
    grid = last[last["study"] == "grid"]
    scaling = last[last["study"] == "scaling"].sort_values("batch_size")
    both = pd.concat([grid, scaling])
    require(
        math.isclose(choice["val_acc"], both["val_acc"].max()),
        "the chosen batch size and learning rate have the highest validation accuracy of the grid",
    )
    fixed = grid[np.isclose(grid["lr"], base_lr)].set_index("batch_size")["val_acc"]
    table = scaling[["batch_size", "lr", "val_acc"]].rename(
        columns={"lr": "scaled_lr", "val_acc": "scaled_acc"}
    )
    table["fixed_acc"] = table["batch_size"].map(fixed)
    table["steps"] = np.ceil(n_train / table["batch_size"]).astype(int)
    timing = pd.concat([grid, scaling]).groupby("batch_size")["epoch_s"].median()
    table["epoch_s"] = table["batch_size"].map(timing)
    small, large = table.iloc[0], table.iloc[-1]
    best_lr = grid.sort_values("val_acc", ascending=False, kind="stable").groupby("batch_size")["lr"].first()
    steps = np.diff(best_lr.sort_index().to_numpy())
    se = math.sqrt(choice["val_acc"] * (1 - choice["val_acc"]) / n_val)
    points = both.drop_duplicates(["lr", "batch_size"])
    close = int((points["val_acc"] >= choice["val_acc"] - 2 * se).sum()) - 1

    direction = "falls" if large["fixed_acc"] < small["fixed_acc"] else "rises"
    b_small, b_large = fmt.integer(small["batch_size"]), fmt.integer(large["batch_size"])
    held = (
        f"With the learning rate held at {fmt.sci(base_lr)}, validation accuracy {direction} from "
        f"{fmt.pct(small['fixed_acc'])} at batch {b_small} to {fmt.pct(large['fixed_acc'])} at batch "
        f"{b_large}, which takes {fmt.integer(large['steps'])} optimizer steps per epoch instead of "
        f"{fmt.integer(small['steps'])}."
    )
    gain = large["scaled_acc"] - large["fixed_acc"]
    scaled = (
        f"Scaling the learning rate linearly with the batch size (to {fmt.sci(large['scaled_lr'])} at "
        f"batch {b_large}) gives {fmt.pct(large['scaled_acc'])} there, "
        + (
            f"{_pp(gain)} more than the held rate."
            if gain > 0
            else f"{_pp(-gain)} less than the held rate."
            if gain < 0
            else "the same as the held rate."
        )
    )
    trend = "The best learning rate of the grid " + (
        "grows with the batch size"
        if np.all(steps > 0)
        else "is the same at every batch size"
        if np.all(steps == 0)
        else "never decreases as the batch size grows"
        if np.all(steps >= 0)
        else "does not grow monotonically with the batch size"
    )
    trend += " (" + ", ".join(f"{fmt.sci(v)} at {fmt.integer(b)}" for b, v in best_lr.sort_index().items())
    trend += ")."
    speed = (
        f"One training epoch took {fmt.dur(small['epoch_s'])} at batch {b_small} "
        f"and {fmt.dur(large['epoch_s'])} at batch {b_large}, a ratio of "
        f"{small['epoch_s'] / large['epoch_s']:.1f} (median over the runs of each batch size)."
    )
    return {
        "table": table,
        "sentences": [held, scaled, trend, speed],
        "lr": float(choice["lr"]),
        "batch": int(choice["batch_size"]),
        "val_acc": float(choice["val_acc"]),
        "se": se,
        "close": close,
        "points": len(points),
        "sizes_text": _words([fmt.integer(b) for b in table["batch_size"]]),
    }


def epoch_facts(
    curve: pd.DataFrame, choice: pd.Series, patience: int, monitor: str, max_epochs: int
) -> dict[str, Any]:
    """The early-stopping run: where the monitored validation score peaked and when training stopped."""
    curve = curve.sort_values("epoch").reset_index(drop=True)
    loss = curve["val_loss"].where(np.isfinite(curve["val_loss"]), np.inf)
    by_acc, by_loss = curve.iloc[int(curve["val_acc"].idxmax())], curve.iloc[int(loss.idxmin())]
    best = by_acc if monitor == "val_acc" else by_loss
    require(
        int(best["epoch"]) == int(choice["epochs"]),
        f"the chosen epoch count is the epoch of the best {MONITORS[monitor]} in the early-stopping run",
    )
    stop = int(curve["epoch"].iloc[-1])
    stopped = (
        f"Validation accuracy was highest after epoch {by_acc['epoch']:.0f} "
        f"({fmt.pct(by_acc['val_acc'])}) and validation loss lowest after epoch "
        f"{by_loss['epoch']:.0f} ({fmt.num(by_loss['val_loss'])}). "
        + (
            f"The {MONITORS[monitor]} did not improve in the {patience} epochs after epoch "
            f"{best['epoch']:.0f}, so training stopped after epoch {stop} of {max_epochs}."
            if stop < max_epochs
            else f"Training ran the whole {max_epochs}-epoch schedule."
        )
    )
    last = curve.iloc[-1]
    gap = (
        f"At the last epoch the training loss was {fmt.num(last['train_loss'])} against a validation loss "
        f"of {fmt.num(last['val_loss'])} (training accuracy {fmt.pct(last['train_acc'])}, validation "
        f"{fmt.pct(last['val_acc'])}): the network fits the training images more closely than it "
        "generalises."
        if last["train_loss"] < last["val_loss"]
        else f"At the last epoch the training loss was {fmt.num(last['train_loss'])} and the validation loss "
        f"{fmt.num(last['val_loss'])}: no sign of overfitting yet."
    )
    return {"best": int(best["epoch"]), "sentences": [stopped, gap]}


def final_facts(
    final: pd.DataFrame, interval: pd.DataFrame, confusion: pd.DataFrame, best_epoch: int, n_test: int
) -> dict[str, Any]:
    """Test accuracy over seeds with its interval, after checking each model against its confusion matrix
    and the stored interval against the seeds it summarises."""
    final = final.sort_values("seed").reset_index(drop=True)
    require(bool((final["epochs"] == best_epoch).all()), "every final model trained for the chosen epochs")
    for seed, df in confusion.groupby("seed"):
        acc = float(final.loc[final["seed"] == seed, "test_acc"].iloc[0])
        diag = df.loc[df["true"] == df["pred"], "count"].sum()
        require(
            int(df["count"].sum()) == n_test and math.isclose(diag / n_test, acc, abs_tol=0.5 / n_test),
            f"the confusion matrix of seed {seed} matches its stored test accuracy",
        )
    ci = interval.iloc[0]
    acc = final["test_acc"]
    require(
        int(ci["n"]) == len(final)
        and math.isclose(ci["mean"], acc.mean())
        and math.isclose(ci["std"], acc.std(ddof=1))
        and ci["lo"] <= ci["mean"] <= ci["hi"],
        "the stored interval summarises the stored final models",
    )
    return {
        "mean": float(ci["mean"]),
        "std": float(ci["std"]),
        "lo": float(ci["lo"]),
        "hi": float(ci["hi"]),
        "n": len(final),
        "level": float(ci["level"]),
        "quantile": float(ci["quantile"]),
        "t": float(ci["t"]),
        "seeds": final["seed"].astype(int).tolist(),
        "test_se": math.sqrt(ci["mean"] * (1 - ci["mean"]) / n_test),
        "min": float(acc.min()),
        "max": float(acc.max()),
    }


def confusion_facts(confusion: pd.DataFrame, seed: int) -> dict[str, Any]:
    """The matrix of one model and its most frequent confusions."""
    cm = confusion[confusion["seed"] == seed].pivot(index="true", columns="pred", values="count")
    off = confusion[(confusion["seed"] == seed) & (confusion["true"] != confusion["pred"])]
    top = off.sort_values(["count", "true", "pred"], ascending=[False, True, True]).head(3)
    errors = int(off["count"].sum())
    pairs = [f"{int(t)} read as {int(p)} ({int(c)})" for t, p, c in top[["true", "pred", "count"]].to_numpy()]
    per_class = 1 - np.diag(cm.to_numpy()) / cm.sum(axis=1).to_numpy()
    worst = int(cm.index[int(np.argmax(per_class))])
    sentence = (
        f"The model of seed {seed} misclassifies {errors} test images; the most frequent confusions "
        f"are {_words(pairs)}. Its highest per-class error rate is on the digit {worst} "
        f"({fmt.pct(per_class.max())} of those test images)."
    )
    return {"matrix": cm, "sentence": sentence, "seed": seed}


def context(r: Results) -> dict[str, Any]:
    run = r.run("q3")
    cfg = run.config
    sweep = r.table("q3", "sweep")
    choice = r.table("q3", "choice").set_index("stage")
    splits = r.table("q3", "splits").set_index("split")
    layers = r.table("q3", "layers")
    n = {k: int(v) for k, v in splits["images"].items()}
    last = last_epochs(sweep)

    lr = lr_facts(last, choice.loc["lr"])
    batch = batch_facts(last, choice.loc["batch"], lr["lr"], n["val"], n["train"])
    epochs = epoch_facts(
        sweep[sweep["study"] == "epochs"],
        choice.loc["epochs"],
        int(cfg["patience"]),
        cfg["monitor"],
        int(cfg["max_epochs"]),
    )
    confusion = r.table("q3", "confusion")
    final = final_facts(
        r.table("q3", "final"), r.table("q3", "interval"), confusion, epochs["best"], n["test"]
    )
    first_seed = final["seeds"][0]
    cm = confusion_facts(confusion, first_seed)
    wrong = r.table("q3", "misclassified")
    wrong = wrong[wrong["seed"] == first_seed].sort_values("rank")

    params = int(layers["params"].sum())
    linear = layers[layers["layer"] == "Linear"]
    widths = [28 * 28, *linear["out_features"].astype(int).tolist()]
    param_terms = " + ".join(f"{a}·{b} + {b}" for a, b in zip(widths[:-1], widths[1:], strict=True))
    require(
        params == sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True)),
        "the stored parameter count equals the count implied by the layer widths",
    )

    opt_name = lr["optimizer"]
    windows = _words(
        [f"{v['usable_decades']:.1f} decades for {v['name']}" for v in lr["by_optimizer"].values()]
    )
    close, two_se = batch["close"], _pp(2 * batch["se"])
    recommendations = {
        "lr": (
            f"Learning rate: {opt_name} at {fmt.sci(lr['lr'])} had the highest validation accuracy of the "
            f"{lr['points']} optimizer and learning-rate points ({fmt.pct(lr['val_acc'])} after "
            f"{cfg['sweep_epochs']} epochs at batch {cfg['base_batch']}). Search the rate on a log grid: "
            f"the window within one percentage point of each optimizer's best spans {windows}."
        ),
        "batch": (
            f"Batch size: {batch['batch']} with learning rate {fmt.sci(batch['lr'])} had the highest "
            f"validation accuracy of the {batch['points']} batch-size and learning-rate points "
            f"({fmt.pct(batch['val_acc'])}). "
            + (
                f"{close} other point{'s are' if close != 1 else ' is'} within two standard errors "
                f"({two_se}) of it, so this validation set of {fmt.integer(n['val'])} images does not "
                "separate them."
                if close > 0
                else f"Every other point is more than two standard errors ({two_se}) below it."
            )
        ),
        "epochs": (
            f"Epochs: {epochs['best']}, the epoch of the best {MONITORS[cfg['monitor']]} on a "
            f"{cfg['max_epochs']}-epoch linearly decaying schedule with early stopping after "
            f"{cfg['patience']} epochs without improvement. The final models replay the first "
            f"{epochs['best']} epochs of that schedule on the training and validation images "
            "together."
        ),
    }

    sweep_lr = last[last["study"] == "lr"]
    lr_table = sweep_lr.pivot(index="lr", columns="optimizer", values="val_acc").reset_index()
    return {
        "run": run,
        "dataset": str(splits["dataset"].iloc[0]),
        "n": n,
        "params": params,
        "param_terms": param_terms,
        "optimizers": _words([OPTIMIZER_NAMES[o] for o in cfg["optimizers"]]),
        "sweep_epochs": int(cfg["sweep_epochs"]),
        "base_batch": int(cfg["base_batch"]),
        "max_epochs": int(cfg["max_epochs"]),
        "monitor": MONITORS[cfg["monitor"]],
        "heatmap_range": HEATMAP_RANGE,
        "patience": int(cfg["patience"]),
        "lr": lr,
        "batch": batch,
        "epochs": epochs,
        "final": final,
        "confusion": cm,
        "misclassified": len(wrong),
        "recommendations": recommendations,
        "tables": {
            "layers": Table(
                layers,
                {
                    "position": ("#", "int"),
                    "layer": ("Layer", "text"),
                    "out_features": ("Output width", "int"),
                    "params": ("Parameters", "int"),
                },
                run,
            ),
            "lr": Table(
                lr_table,
                {
                    "lr": ("Learning rate", "sci"),
                    **{o: (OPTIMIZER_NAMES[o], "pct") for o in cfg["optimizers"]},
                },
                run,
                highlight=lambda row: math.isclose(row["lr"], lr["lr"]),
            ),
            "scaling": Table(
                batch["table"],
                {
                    "batch_size": ("Batch size", "int"),
                    "steps": ("Steps per epoch", "int"),
                    "fixed_acc": (f"Val. accuracy, rate {fmt.sci(lr['lr'])}", "pct"),
                    "scaled_lr": ("Linearly scaled rate", "sci"),
                    "scaled_acc": ("Val. accuracy, scaled", "pct"),
                    "epoch_s": ("Time per epoch", "dur"),
                },
                run,
                highlight=lambda row: int(row["batch_size"]) == batch["batch"],
            ),
            "final": Table(
                r.table("q3", "final").sort_values("seed"),
                {
                    "seed": ("Seed", "int"),
                    "epochs": ("Epochs", "int"),
                    "train_s": ("Training time", "dur"),
                    "test_loss": ("Test loss", "num"),
                    "test_acc": ("Test accuracy", "pct"),
                },
                run,
            ),
        },
        "figures": {
            "lr": Figure(
                draw_lr,
                sweep_lr[["optimizer", "lr", "val_acc", "val_loss"]],
                (
                    f"Validation accuracy and loss after {cfg['sweep_epochs']} epochs against the learning "
                    "rate, one line per optimizer."
                ),
                run,
                extra={"names": OPTIMIZER_NAMES, "chosen": (choice.loc["lr", "optimizer"], lr["lr"])},
            ),
            "heatmap": Figure(
                draw_heatmap,
                last[last["study"] == "grid"][["lr", "batch_size", "val_acc"]],
                (f"Heat map of validation accuracy over learning rate and batch size for {opt_name}."),
                run,
                extra={"span": HEATMAP_RANGE},
            ),
            "scaling": Figure(
                draw_scaling,
                batch["table"],
                (
                    "Validation accuracy against batch size with the learning rate held fixed and scaled "
                    "linearly, and the time per epoch."
                ),
                run,
                extra={"base_lr": lr["lr"]},
            ),
            "curves": Figure(
                draw_curves,
                sweep[sweep["study"] == "epochs"][
                    ["epoch", "train_loss", "val_loss", "train_acc", "val_acc"]
                ],
                ("Training and validation loss and accuracy per epoch of the early-stopping run."),
                run,
                extra={"best": epochs["best"]},
            ),
            "confusion": Figure(
                draw_confusion,
                cm["matrix"],
                (f"Confusion matrix of the seed-{first_seed} model on the test set."),
                run,
            ),
            "misclassified": Figure(
                draw_misclassified,
                wrong[["true", "pred", "confidence", "pixels"]],
                (
                    f"The {len(wrong)} misclassified test digits the seed-{first_seed} model was most "
                    "confident about, with true and predicted labels."
                ),
                run,
            ),
        },
    }


# ---- figures ----------------------------------------------------------------------------------------
def draw_lr(data: pd.DataFrame, names: dict[str, str], chosen: tuple[str, float]) -> Any:
    """Accuracy and loss against the learning rate (log axis), per optimizer; the chosen point circled."""
    import matplotlib.pyplot as plt

    fig, (acc, loss) = plt.subplots(1, 2, figsize=(6.4, 2.8))
    for opt, df in data.groupby("optimizer", sort=False):
        df = df.sort_values("lr")
        acc.plot(df["lr"], 100 * df["val_acc"], "o-", ms=3, label=names[opt])
        loss.plot(df["lr"], df["val_loss"], "o-", ms=3, label=names[opt])
    pick = data[(data["optimizer"] == chosen[0]) & np.isclose(data["lr"], chosen[1])]
    acc.plot(pick["lr"], 100 * pick["val_acc"], "o", ms=10, mfc="none", mec="k", label="chosen")
    acc.set_ylim(max(0, 100 * data["val_acc"].max() - 20), 100)
    loss.set_yscale("log")
    for ax, label in ((acc, "validation accuracy (%)"), (loss, "validation loss")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(label)
    acc.legend(frameon=False)
    fig.tight_layout()
    return fig


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
                color="k" if values[i, j] > top - span / 2 else "w",
            )
    i, j = np.unravel_index(np.nanargmax(values), values.shape)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_xticks(range(len(grid.columns)), [str(b) for b in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
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
    acc.plot(data["batch_size"], 100 * data["fixed_acc"], "o-", ms=3, label=f"rate held at {base_lr:g}")
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
    """Loss and accuracy per epoch, training and validation, with the chosen epoch marked."""
    import matplotlib.pyplot as plt

    fig, (loss, acc) = plt.subplots(1, 2, figsize=(6.4, 2.8))
    for split, style in (("train", "-"), ("val", "--")):
        label = "training" if split == "train" else "validation"
        loss.plot(data["epoch"], data[f"{split}_loss"], style, label=label)
        acc.plot(data["epoch"], 100 * data[f"{split}_acc"], style, label=label)
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
            )
    ax.set_xticks(range(10), [str(c) for c in matrix.columns])
    ax.set_yticks(range(10), [str(c) for c in matrix.index])
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="misclassified test images", shrink=0.8)
    fig.tight_layout()
    return fig


def draw_misclassified(data: pd.DataFrame) -> Any:
    """Each image with "true → predicted (confidence)" above it."""
    import matplotlib.pyplot as plt

    cols = 8
    rows = max(1, math.ceil(len(data) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.4, 1.0 * rows + 0.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, data.iterrows(), strict=False):
        ax.imshow(np.asarray(row["pixels"], dtype=np.uint8).reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{row['true']}→{row['pred']} ({100 * row['confidence']:.0f}%)", fontsize=7)
    fig.tight_layout()
    return fig
