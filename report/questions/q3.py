"""Q3 context: what learning rate, batch size and epochs do to the dense MNIST classifier, measured.

Every choice the experiment made is re-checked here against the stored sweep (the chosen point must be
the best validation point of its stage). This module returns facts and verdict codes; the sentences that
word them are macros in ``templates/q3.words.j2``, drawings are in ``report/plots/q3.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from report import format as fmt
from report.core.errors import MissingResultError
from report.plots import q3 as plots
from report.questions import Figure, Results, Table, anchors, require

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam"}
POINT = ["study", "optimizer", "lr", "batch_size", "lr_scaled"]
USABLE = 0.01  # a learning rate is "usable" within one percentage point of its optimizer's best
HEATMAP_RANGE = 10  # percentage points below the best that the heat map's colour scale spans
MONITORS = {"val_acc": "validation accuracy", "val_loss": "validation loss"}


def last_epochs(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per trained point: its metrics after its last epoch."""
    return sweep.sort_values("epoch", kind="stable").groupby(POINT, sort=False).tail(1).reset_index(drop=True)


def lr_facts(last: pd.DataFrame, choice: pd.Series) -> dict[str, Any]:
    """The learning-rate stage: best rate and usable window per optimizer, and the chosen optimizer."""
    lr = last[last["study"] == "lr"]
    require(
        math.isclose(choice["val_acc"], lr["val_acc"].max()),
        "the chosen optimizer and learning rate have the highest validation accuracy of the sweep",
    )
    per_opt = {}
    grid = sorted(lr["lr"].unique())
    step_decades = math.log10(_grid_step(lr["lr"]))
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
            # one grid point in the window: its width is below the grid's resolution, not zero
            "resolved": bool(usable.max() > usable.min()),
            "step_decades": step_decades,
            # an optimum on the edge of the grid: the best rate may lie beyond it
            "edge": "low" if best["lr"] == grid[0] else "high" if best["lr"] == grid[-1] else None,
        }
    ranked = sorted(per_opt, key=lambda o: per_opt[o]["val_acc"], reverse=True)
    momentum = None
    if "sgd" in per_opt and "momentum" in per_opt:
        ratio = per_opt["sgd"]["lr"] / per_opt["momentum"]["lr"]
        step = _grid_step(lr["lr"])
        off = None if step >= 10 else round(abs(math.log(ratio / 10)) / math.log(step))
        # an optimum on the grid's edge makes the ratio a bound: "at least" when the true SGD optimum may be
        # higher or the momentum one lower, "at most" the other way round, nothing when both apply
        up = per_opt["sgd"]["edge"] == "high" or per_opt["momentum"]["edge"] == "low"
        down = per_opt["sgd"]["edge"] == "low" or per_opt["momentum"]["edge"] == "high"
        bound = "unbounded" if up and down else "at least" if up else "at most" if down else None
        momentum = {"ratio": ratio, "step": step, "off": off, "bound": bound}  # off: steps from 1/(1 - β)
    return {
        "by_optimizer": per_opt,
        "ranked": [per_opt[o] for o in ranked],
        "momentum": momentum,
        "optimizer": OPTIMIZER_NAMES[choice["optimizer"]],
        "optimizer_key": str(choice["optimizer"]),
        "lr": float(choice["lr"]),
        "val_acc": float(choice["val_acc"]),
        "grid": sorted(lr["lr"].unique().tolist()),
        "points": len(lr),
    }


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
    se_diff = (
        math.sqrt(2) * se
    )  # of a difference of two accuracies, unpaired: an upper bound on one image set
    points = both.drop_duplicates(["lr", "batch_size"])
    close = int((points["val_acc"] >= choice["val_acc"] - 2 * se_diff).sum()) - 1

    trend = (
        "grows"
        if np.all(steps > 0)
        else "same"
        if np.all(steps == 0)
        else "never decreases"
        if np.all(steps >= 0)
        else "not monotonic"
    )
    return {
        "table": table,
        "small": small.to_dict(),
        "large": large.to_dict(),
        "base_lr": base_lr,
        "trend": trend,
        "best_lr": [(int(b), float(v)) for b, v in best_lr.sort_index().items()],
        "speed_ratio": float(small["epoch_s"] / large["epoch_s"]),
        "lr": float(choice["lr"]),
        "batch": int(choice["batch_size"]),
        "val_acc": float(choice["val_acc"]),
        "se": se,
        "se_diff": se_diff,
        "close": close,
        "points": len(points),
        "sizes": table["batch_size"].astype(int).tolist(),
    }


def epoch_facts(curve: pd.DataFrame, choice: pd.Series, monitor: str) -> dict[str, Any]:
    """The early-stopping run: where the monitored validation score peaked and when training stopped."""
    curve = curve.sort_values("epoch").reset_index(drop=True)
    loss = curve["val_loss"].where(np.isfinite(curve["val_loss"]), np.inf)
    by_acc, by_loss = curve.iloc[int(curve["val_acc"].idxmax())], curve.iloc[int(loss.idxmin())]
    best = by_acc if monitor == "val_acc" else by_loss
    require(
        int(best["epoch"]) == int(choice["epochs"]),
        f"the chosen epoch count is the epoch of the best {MONITORS[monitor]} in the early-stopping run",
    )
    return {
        "best": int(best["epoch"]),
        "by_acc": by_acc.to_dict(),
        "by_loss": by_loss.to_dict(),
        "stop": int(curve["epoch"].iloc[-1]),
        "last": curve.iloc[-1].to_dict(),
    }


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
    per_class = 1 - np.diag(cm.to_numpy()) / cm.sum(axis=1).to_numpy()
    worst = int(cm.index[int(np.argmax(per_class))])
    return {
        "matrix": cm,
        "seed": seed,
        "errors": errors,
        "pairs": [tuple(int(v) for v in row) for row in top[["true", "pred", "count"]].to_numpy()],
        "worst": worst,
        "worst_rate": float(per_class.max()),
    }


def context(r: Results) -> dict[str, Any]:
    run = r.run("q3")
    cfg = run.config
    sweep = r.table("q3", "sweep")
    choice = r.table("q3", "choice").set_index("stage")
    splits = r.table("q3", "splits").set_index("split")
    layers = r.table("q3", "layers")
    n = {k: int(v) for k, v in splits["images"].items()}
    if "train_available" not in n:  # stored before Q3 recorded the dataset's size: rerun, do not guess
        raise MissingResultError(
            f"the stored q3 result predates the dataset sizes the report states; rerun it: "
            f"build.py run q3 --profile {run.profile}"
        )
    last = last_epochs(sweep)

    lr = lr_facts(last, choice.loc["lr"])
    batch = batch_facts(last, choice.loc["batch"], lr["lr"], n["val"], n["train"])
    epochs = epoch_facts(sweep[sweep["study"] == "epochs"], choice.loc["epochs"], cfg["monitor"])
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
    sweep_lr = last[last["study"] == "lr"]
    lr_table = sweep_lr.pivot(index="lr", columns="optimizer", values="val_acc").reset_index()
    return {
        "run": run,
        "dataset": str(splits["dataset"].iloc[0]),
        "n": n,
        # the training and test images used are a subset of the dataset's: said where the numbers are
        "subset": n["trainval"] < n["train_available"] or n["test"] < n["test_available"],
        "params": params,
        "param_terms": param_terms,
        "optimizers": [OPTIMIZER_NAMES[o] for o in cfg["optimizers"]],
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
        "anchors": anchors.beside("q3", cfg["dataset"], {"mlp": ("This network", final["mean"])}),
        "confusion": cm,
        "misclassified": len(wrong),
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
                plots.draw_lr,
                sweep_lr[["optimizer", "lr", "val_acc", "val_loss"]],
                (
                    f"Validation accuracy and loss after {cfg['sweep_epochs']} epochs against the learning "
                    "rate, one line per optimizer."
                ),
                run,
                extra={"names": OPTIMIZER_NAMES, "chosen": (choice.loc["lr", "optimizer"], lr["lr"])},
            ),
            "heatmap": Figure(
                plots.draw_heatmap,
                last[last["study"] == "grid"][["lr", "batch_size", "val_acc"]],
                (f"Heat map of validation accuracy over learning rate and batch size for {opt_name}."),
                run,
                extra={"span": HEATMAP_RANGE},
            ),
            "scaling": Figure(
                plots.draw_scaling,
                batch["table"],
                (
                    "Validation accuracy against batch size with the learning rate held fixed and scaled "
                    "linearly, and the time per epoch."
                ),
                run,
                extra={"base_lr": lr["lr"]},
            ),
            "curves": Figure(
                plots.draw_curves,
                sweep[sweep["study"] == "epochs"][
                    ["epoch", "train_loss", "val_loss", "train_acc", "val_acc"]
                ],
                ("Training and validation loss and accuracy per epoch of the early-stopping run."),
                run,
                extra={"best": epochs["best"]},
            ),
            "confusion": Figure(
                plots.draw_confusion,
                cm["matrix"],
                (f"Confusion matrix of the seed-{first_seed} model on the test set."),
                run,
            ),
            "misclassified": Figure(
                plots.draw_misclassified,
                wrong[["true", "pred", "confidence", "pixels"]],
                (
                    f"The {len(wrong)} misclassified test digits the seed-{first_seed} model was most "
                    "confident about, with true and predicted labels."
                ),
                run,
            ),
        },
    }
