"""Question 4 context: the stored results checked against each other, the models that did not train set
apart, the verdicts of ``q4_claims`` on the rest, and the tables and figures that show them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from report.core.config import profile_config
from report.plots import q4 as plots
from report.provenance import sourced
from report.questions import Figure, Results, Table, anchors, require, stats
from report.questions.q4_claims import (
    ALPHA,
    EXPANSION,
    STAGE_BLOCKS,
    answers_by_run,
    best_claim,
    by_estimate,
    depth_claim,
    lenet_claim,
    tiers,
)

# a training whose last loss was no lower than (1 - STALLED) ln K (a uniform prediction's), or not a finite
# number, and that predicted one class for at least COLLAPSED of the test images did not train
STALLED = 0.05
COLLAPSED = 0.9
# a first training this much slower than the median of a model's others is said beside the cost table's
# medians; below it, clock noise on a shared machine (several percent) could be the whole difference
FIRST_SLOWER = 1.2


def summarise(results: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """One row per model, best first: mean and std of test accuracy over seeds, and the cost measurements
    (time, throughput and memory as medians over seeds: one slow or large first training does not move
    them)."""
    per_model = results.groupby("model").agg(
        acc=("test_acc", "mean"),
        acc_std=("test_acc", "std"),
        seeds=("seed", "count"),
        train_time_s=("train_time_s", "median"),
        throughput=("throughput", "median"),
        peak_mem_bytes=("peak_mem_bytes", "median"),
    )
    # to 12 digits: means of equal counts of right images over seeds can differ in the last bit, which
    # would break a tie in the order, the best, the Pareto set and every comparison
    per_model["acc"] = per_model["acc"].round(12)
    out = models.set_index("model").join(per_model, how="inner").reset_index()
    return out.sort_values(["acc", "flops"], ascending=[False, True], ignore_index=True)


def untrained(curves: pd.DataFrame, confusion: pd.DataFrame, classes: int) -> dict[str, dict[str, Any]]:
    """Models with a training (a seed) that did not train, from the stored evidence: its last epoch's
    (label-smoothed) training loss was not below ``1 - STALLED`` of ln K, the loss of predicting every
    class with probability 1/K, or was not a number (it diverged), and it predicted one class for at least
    ``COLLAPSED`` of the test images. Judged per seed: one failed seed among trained ones would otherwise
    vanish into its model's mean (and a loss that fell, then diverged, still ends at chance)."""
    out: dict[str, dict[str, Any]] = {}
    uniform = math.log(classes)
    for (model, seed), c in curves.sort_values("epoch").groupby(["model", "seed"], sort=False):
        mine = confusion[(confusion["model"] == model) & (confusion["seed"] == seed)]
        predicted = mine.groupby("pred_name")["count"].sum()
        share = float(predicted.max() / predicted.sum()) if predicted.sum() else 0.0
        last = float(c["train_loss"].iloc[-1])
        if not last < (1 - STALLED) * uniform and share >= COLLAPSED:
            failed = {"seed": int(seed), "loss": last, "diverged": not math.isfinite(last), "share": share}
            entry = out.setdefault(str(model), {"seeds": [], "of": 0})
            entry["seeds"].append({**failed, "class": str(predicted.idxmax())})
    for model, entry in out.items():
        entry["of"] = int(curves.loc[curves["model"] == model, "seed"].nunique())
        alike: dict[tuple[Any, ...], list[int]] = {}  # seeds that failed the same way are said together
        for f in sorted(entry["seeds"], key=lambda f: f["seed"]):
            loss = None if f["diverged"] else f["loss"]
            alike.setdefault((f["diverged"], loss, f["class"], f["share"]), []).append(f["seed"])
        entry["outcomes"] = [
            {"seeds": seeds, "diverged": d, "loss": loss, "class": c, "share": share}
            for (d, loss, c, share), seeds in alike.items()
        ]
    return out


def pareto(summary: pd.DataFrame) -> list[str]:
    """Models that no other model dominates (as accurate at no more FLOPs, and better in one), cheapest
    first."""
    rows = [r for _, r in summary.iterrows()]

    def beats(o: pd.Series, r: pd.Series) -> bool:
        no_worse = o["acc"] >= r["acc"] and o["flops"] <= r["flops"]
        return bool(no_worse and (o["acc"] > r["acc"] or o["flops"] < r["flops"]))

    keep = [r for r in rows if not any(beats(o, r) for o in rows)]
    return [r["title"] for r in sorted(keep, key=lambda r: r["flops"])]


def class_accuracy(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per model and class: test images and accuracy, pooled over seeds, from the confusion counts."""
    c = confusion.assign(correct=confusion["count"].where(confusion["true"] == confusion["pred"], 0))
    out = c.groupby(["model", "true", "true_name"], as_index=False)[["count", "correct"]].sum()
    out = out.rename(columns={"true": "label", "true_name": "class", "count": "n"})
    return out.assign(accuracy=out["correct"] / out["n"].where(out["n"] > 0))


def check(
    results: pd.DataFrame, confusion: pd.DataFrame, answers: pd.DataFrame, test_used: int, seeds: int
) -> None:
    """Stop if the stored tables disagree with each other: the ranking would rest on broken evidence."""
    counts = results.groupby("model")["seed"].nunique()
    require(bool((counts == seeds).all()), f"every model has one result per configured seed ({seeds})")
    timed = results[["train_time_s", "throughput"]]
    require(
        bool((timed.notna() & (timed > 0)).all().all()), "every training recorded its time and throughput"
    )
    hits = confusion.assign(hit=confusion["count"].where(confusion["true"] == confusion["pred"], 0))
    per_run = hits.groupby(["model", "seed"])[["count", "hit"]].sum()
    require(bool((per_run["count"] == test_used).all()), "each confusion matrix counts every test image used")
    merged = results.set_index(["model", "seed"]).join(per_run)
    require(
        bool(((merged["hit"] / merged["count"] - merged["test_acc"]).abs() < 1e-6).all()),
        "stored test accuracies equal the diagonals of the stored confusion matrices",
    )
    right = answers.groupby(["model", "seed"])["correct"].agg(["count", "mean"])
    merged = results.set_index(["model", "seed"]).join(right)
    require(
        bool(
            (merged["count"] == test_used).all()
            and ((merged["mean"] - merged["test_acc"]).abs() < 1e-6).all()
        ),
        "the stored per-image answers cover every test image and agree with the stored test accuracies",
    )


def _tables(
    summary: pd.DataFrame,
    per_class: pd.DataFrame,
    seeds: int,
    cuda: bool,
    best: dict[str, Any],
    run: Any,
    order: list[str],
    failed: dict[str, Any],
    n_test: int,
) -> dict[str, Table]:
    marked = [
        t
        if m not in failed
        else f"{t} (did not train)"
        if len(failed[m]["seeds"]) == failed[m]["of"]
        else f"{t} (did not train in {len(failed[m]['seeds'])} of {failed[m]['of']} seeds)"
        for m, t in zip(summary["model"], summary["title"], strict=True)
    ]
    gaps = {g["model"]: g for g in best["gaps"]}
    top = {best["model"], *(g["model"] for g in best["gaps"] if g["b"] in best["equal"])}

    def highest(row: pd.Series) -> bool:  # the best, and any model of the very same accuracy
        return bool(row["model"] in top)

    vs_best = {
        k: [gaps.get(m, {}).get(k) for m in summary["model"]] for k in ("delta_pp", "p_adj", "images_p_adj")
    }
    shown = summary.assign(
        gap_pp=[None if d is None else d / 100 for d in vs_best["delta_pp"]],
        p_seeds=vs_best["p_adj"],
        p_images=vs_best["images_p_adj"],
        title=marked,
        acc_pm=list(zip(summary["acc"], summary["acc_std"], strict=True)),
        peak_mib=summary["peak_mem_bytes"] / 2**20,
        test_se=stats.binomial_se(summary["acc"], n_test),
    )
    acc_col = ("acc_pm", "pm") if seeds > 1 else ("acc", "pct")
    columns = {  # accuracy and the tests against the best; the cost in a table of its own, so neither wraps
        "title": ("Model", "text"),
        acc_col[0]: ("Test accuracy", acc_col[1]),
        "test_se": ("Test-set SE", "pct"),
        "gap_pp": ("Gap to the best (points)", "pp"),
        **({"p_seeds": ("p over seeds (Welch, Holm)", "pval")} if seeds > 1 else {}),
        "p_images": ("p on the test images (McNemar, Holm)", "pval"),
    }
    cost = {
        "title": ("Model", "text"),
        "params": ("Parameters", "si"),
        "flops": ("FLOPs / image", "si"),
        "train_time_s": ("Training time", "dur"),
        "throughput": ("Training images/s", "timed"),
        **({"peak_mib": ("Peak GPU memory (MiB)", "num")} if cuda else {}),
    }
    wide = per_class.pivot_table(index=["label", "class"], columns="model", values="accuracy")
    counts = per_class.groupby(["label", "class"])["n"].first() // seeds  # test images of one run
    wide = wide.join(counts)[lambda d: d["n"] > 0].reset_index()
    titles = dict(zip(summary["model"], summary["title"], strict=True))
    over = "over its {seeds} seeds (q4 table results, rows model={model})"
    against = f"against {best['title']}, Holm-corrected over the {len(best['gaps'])} comparisons with it"
    sources = {
        "acc_pm": f"mean ± standard deviation of test_acc {over}",
        "acc": f"test_acc {over}",
        "test_se": f"binomial standard error sqrt(p(1−p)/n) of the mean test_acc p, n = {n_test} test images",
        "gap_pp": f"mean test_acc minus that of {best['title']}, {over}",
        "p_seeds": f"Welch's t-test over seeds {against} (q4 table results)",
        "p_images": f"McNemar's exact test on the same images {against}, largest p over seeds "
        "(q4 table answers)",
        "params": "column params of q4 table models, row model={model}",
        "flops": "column flops of q4 table models, row model={model}",
        "train_time_s": f"median of train_time_s {over}",
        "throughput": f"median of throughput {over}",
        "peak_mib": f"median of peak_mem_bytes {over}, in MiB",
    }
    pooled = "share of this class's test images {title} got right, pooled over seeds (q4 table confusion)"
    return {
        "comparison": Table(shown, columns, run, highlight=highest, sources=sources),
        "cost": Table(shown, cost, run, highlight=highest, sources=sources),
        "adaptations": Table(  # in the order the models were configured (by architecture), not by accuracy
            summary.set_index("model").loc[order].reset_index(),
            {"title": ("Model", "text"), "adaptation": ("Adaptation to 32×32 inputs", "text")},
            run,
        ),
        "per_class": Table(
            wide,
            {
                "class": ("Class", "text"),
                "n": ("Test images", "int"),
                **{m: (t, "pct") for m, t in titles.items()},
            },
            run,
            sources={
                "n": f"test images of this class in one run: its confusion rows summed over seeds, / {seeds}",
                **{m: pooled.replace("{title}", t) for m, t in titles.items()},
            },
        ),
    }


def fit(curves: pd.DataFrame, summary: pd.DataFrame, smoothing: float, classes: int) -> dict[str, Any]:
    """How close each model's last training loss (mean over seeds) came to the lowest loss smoothed labels
    allow, their entropy. No verdict: that loss is taken on augmented batches in training mode, so its
    distance from the floor does not say whether the model fitted its clean training images."""
    on, off = 1 - smoothing + smoothing / classes, smoothing / classes
    floor = -on * math.log(on) - ((classes - 1) * off * math.log(off) if off > 0 else 0.0)
    last = curves[curves["epoch"] == curves["epoch"].max()].groupby("model")["train_loss"].mean()
    mean = "mean over seeds of train_loss in the last epoch, q4 table curves, rows model="
    final = [
        {"title": t, "loss": sourced(float(last[m]), mean + m)}
        for m, t in summary[["model", "title"]].itertuples(index=False)
    ]
    final.sort(key=lambda f: f["loss"])
    gap = final[0]["loss"] - floor
    return {"floor": floor, "final": final, "closest": final[0]["title"], "gap": gap}


def first_slower(results: pd.DataFrame, everyone: pd.DataFrame) -> dict[str, Any] | None:
    """The model whose first seed's training took longest against the median of its other seeds, with that
    ratio: the table gives medians, and the text says how far the first training stood out. None with
    fewer than three seeds (no median of the others to hold it against) or below ``FIRST_SLOWER``."""
    ratios = {}
    for model, rows in results.sort_values("seed").groupby("model"):
        if len(rows) >= 3:
            ratios[model] = float(rows["train_time_s"].iloc[0] / rows["train_time_s"].iloc[1:].median())
    model = max(ratios, key=ratios.__getitem__, default=None)
    if model is None or ratios[model] < FIRST_SLOWER:
        return None
    return {
        "title": everyone.set_index("model").loc[model, "title"],
        "ratio": sourced(
            ratios[model],
            f"train_time_s of the lowest seed over the median of the other seeds, model={model}, the largest "
            "such ratio among the models (q4 table results)",
        ),
    }


def top_error(confusion: pd.DataFrame, model: str, title: str) -> dict[str, Any] | None:
    """A model's largest error cell summed over seeds, with its smallest and largest count in one seed, and
    the next cell (never an empty one) with whether the top cell is the larger in every seed: the seeds
    share the test images, so the text gives these rather than a test of the order. None without errors."""
    per_seed = confusion[(confusion["model"] == model) & (confusion["true"] != confusion["pred"])]
    cells = per_seed.groupby(["true_name", "pred_name"], as_index=False)["count"].sum()
    cells = cells[cells["count"] > 0].sort_values(
        ["count", "true_name", "pred_name"], ascending=[False, True, True]
    )
    if cells.empty:
        return None

    def counts(row: pd.Series) -> pd.Series:
        same = (per_seed["true_name"] == row["true_name"]) & (per_seed["pred_name"] == row["pred_name"])
        return per_seed[same].set_index("seed")["count"]

    def named(row: pd.Series, how: str) -> dict[str, Any]:
        summed = (
            f"the {how} off-diagonal count of {title}'s confusion, summed over seeds (q4 table confusion)"
        )
        return {"true": str(row["true_name"]), "pred": str(row["pred_name"]),
                "count": sourced(int(row["count"]), summed)}  # fmt: skip

    top, cell = cells.iloc[0], counts(cells.iloc[0])
    out = {
        **named(top, "largest"),
        "per_seed": [
            sourced(int(n), f"{how} count of that cell in one seed (q4 table confusion)")
            for n, how in ((cell.min(), "smallest"), (cell.max(), "largest"))
        ],
        "next": None,
    }
    if len(cells) > 1:
        second = cells.iloc[1]
        ahead = cell > counts(second).reindex(cell.index, fill_value=0)
        out["next"] = {**named(second, "second largest"), "behind_every_seed": bool(ahead.all())}
    return out


def context(r: Results) -> dict[str, Any]:
    run = r.run("q4")
    cfg = run.config
    seeds, cuda = int(cfg["seeds"]), run.device == "cuda"
    results, models = r.table("q4", "results"), r.table("q4", "models")
    confusion, curves = r.table("q4", "confusion"), r.table("q4", "curves")
    setup = r.table("q4", "setup").iloc[0]
    n = r.table("q4", "splits").set_index("split")
    answers = r.table("q4", "answers")
    check(results, confusion, answers, int(n.loc["test", "used"]), seeds)
    by_run = answers_by_run(answers)

    everyone = summarise(results, models)
    classes = confusion["true"].nunique() if len(confusion) else 10
    n_classes = max(classes, int(confusion["pred"].max()) + 1)
    failed = untrained(curves, confusion, n_classes)
    summary = everyone[~everyone["model"].isin(failed)].reset_index(drop=True)  # ranked and compared
    require(
        len(summary) > 0,
        "at least one model trained in every seed (each has a training that ended at chance: its loss at "
        "ln K or diverged, one class predicted)",
    )
    best = best_claim(summary, by_run)
    titles = dict(zip(everyone["model"], everyone["title"], strict=True))
    left_out = {m: titles[m] for m in failed}  # ran, not compared
    zero = summary[(summary["seeds"] > 1) & (summary["acc_std"] == 0)]
    top = summary.iloc[0]
    per_class = class_accuracy(confusion)
    best_classes = per_class[(per_class["model"] == best["model"]) & (per_class["n"] > 0)]
    lowest = best_classes["accuracy"].min()
    weakest = best_classes[best_classes["accuracy"] == lowest]  # a tie for the lowest is named whole
    order = {m: i for i, m in enumerate(everyone["model"])}
    mean_curves = (
        curves.groupby(["model", "epoch"], as_index=False)[["train_loss", "val_acc"]]
        .mean()
        .merge(everyone[["model", "title"]], on="model")  # a model that did not train shows why
        .sort_values(["model", "epoch"], key=lambda c: c.map(order) if c.name == "model" else c)
    )
    ours = {
        m: (t, sourced(a, f"mean test_acc over seeds (q4 table results, rows model={m})"))
        for m, t, a in summary[["model", "title", "acc"]].itertuples(index=False)
    }
    of_best = (
        f"of {top['title']} over its {int(top['seeds'])} seeds (q4 table results, rows model={top['model']})"
    )
    fastest = everyone.loc[everyone["throughput"].idxmax()]  # speed is measured whether or not it learned
    by_model = "over seeds, among the models (q4 table results)"
    slowest = everyone.loc[everyone["throughput"].idxmin()]
    dataset = str(setup["dataset_title"])
    split = "column {} of q4 table splits, row split={}"
    sizes = {
        "train": sourced(int(n.loc["train", "used"]), split.format("used", "train")),
        "train_available": sourced(int(n.loc["train", "available"]), split.format("available", "train")),
        "val": sourced(int(n.loc["val", "used"]), split.format("used", "val")),
        "test": sourced(int(n.loc["test", "used"]), split.format("used", "test")),
        "test_available": sourced(int(n.loc["test", "available"]), split.format("available", "test")),
    }
    full = profile_config("q4", "full")
    subset = sizes["train"] < sizes["train_available"] or sizes["test"] < sizes["test_available"]
    steps = int(cfg["epochs"]) * (int(n.loc["train", "used"]) // int(cfg["batch_size"]))
    full_steps = full.epochs * (int(n.loc["train", "available"]) // full.batch_size)
    short = subset or steps < full_steps  # fewer epochs, or a larger batch: fewer optimiser steps
    return {
        "run": run,
        "caveats": run.caveats(),
        "dataset": dataset,
        "substitute": setup["dataset"] != "svhn",
        "grey": setup["dataset"] in ("mnist", "fashion-mnist"),
        "subset": subset,
        # fewer images or optimiser steps than the full study: a pipeline check, not a comparison
        "short": short,
        # short, or fewer seeds: the report says so beside the numbers
        "reduced": short or seeds < full.seeds,
        # fewer architectures than the full study: said in a note of its own, as the ranking covers these only
        "models_ran": {"titles": everyone["title"].tolist(), "of": len(full.models)}
        if len(everyone) < len(full.models)
        else None,
        "cuda": cuda,
        "seeds": sourced(seeds, "setting seeds of the run's configuration (q4 run record)"),
        "single_seed": seeds == 1,
        # every seed of these scored the same: Welch's test between two of them with different means has t
        # infinite and p = 0 (said only where two such means differ)
        "zero_spread": list(zero["title"]) if zero["acc"].nunique() > 1 else [],
        "alpha": ALPHA,
        "n": sizes,
        "recipe": {
            k: sourced(cfg[k], f"setting {k} of the run's configuration (q4 run record)")
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
        "full": {  # what the full profile trains, for a reduced run's note (experiments/configs/q4.py)
            k: getattr(full, k) for k in ("epochs", "seeds", "batch_size", "val_size")
        },
        "augment": {
            "pad": sourced(int(setup["crop_pad"]), "column crop_pad of q4 table setup"),
            "flip": bool(setup["hflip"]),
        },
        "ranking": summary["title"].tolist(),  # by point estimate: the order, not a ranking
        "ranking_groups": by_estimate([r for _, r in summary.iterrows()]),  # equal accuracies together
        "tiers": tiers(summary, by_run),
        "untrained": [
            {
                "title": titles[m],
                **facts,
                "partial": len(facts["seeds"]) < facts["of"],
                "diverged": any(f["diverged"] for f in facts["seeds"]),
            }
            for m, facts in failed.items()
        ],
        "stalled": {  # the rule untrained() applies, for the text that explains it
            "uniform": math.log(n_classes),
            "fraction": 1 - STALLED,
            "bound": (1 - STALLED) * math.log(n_classes),
            "collapsed": COLLAPSED,
        },
        "steps": steps,
        "best": {
            **best,
            "acc": sourced(float(top["acc"]), f"mean test_acc {of_best}"),
            "acc_std": sourced(float(top["acc_std"]), f"standard deviation of test_acc {of_best}")
            if seeds > 1
            else None,
        },
        "depth": depth_claim(summary, by_run, left_out),
        "blocks": STAGE_BLOCKS,
        "expansion": EXPANSION,
        "lenet": lenet_claim(summary, by_run, left_out),
        "original": anchors.original(),
        "pareto": pareto(summary),
        "fit": fit(curves, summary, float(cfg["label_smoothing"]), int(classes)),
        "anchors": anchors.beside("q4", str(setup["dataset"]), ours),
        "speed": {
            "fastest": fastest["title"],
            "fastest_ips": sourced(float(fastest["throughput"]), f"highest median throughput {by_model}"),
            "slowest": slowest["title"],
            "slowest_ips": sourced(float(slowest["throughput"]), f"lowest median throughput {by_model}"),
            "ratio": sourced(
                float(fastest["throughput"] / slowest["throughput"]),
                f"highest over lowest median throughput {by_model}",
            ),
            "trainings": sourced(len(results), "rows of q4 table results, one per model and seed"),
            # the record's wall-clock time is less than the trainings' sum: units trained side by side, or
            # (a record that did not count sessions) a resumed run whose last session alone it covers
            "record_short": float(run.duration_s) < float(results["train_time_s"].sum()),
            "train_s": sourced(  # more than the run's wall time: see template
                float(results["train_time_s"].sum()), "sum of train_time_s over all rows of q4 table results"
            ),
            "first": first_slower(results, everyone),
        },
        "weakest_class": {
            "names": [str(c) for c in weakest["class"]],
            "every": len(weakest) == len(best_classes),  # no class weaker than another
            "acc": sourced(
                float(lowest),
                f"lowest share of a class's test images {best['title']} got right, pooled over seeds "
                "(q4 table confusion)",
            ),
        },
        "top_error": top_error(confusion, best["model"], best["title"]),
        "test_se": sourced(
            float(stats.binomial_se(top["acc"], sizes["test"])),
            f"binomial standard error sqrt(p(1−p)/n) of the mean test_acc p {of_best}, "
            f"n = {sizes['test']} test images (q4 table splits)",
        ),
        "tables": _tables(
            everyone,
            per_class,
            seeds,
            cuda,
            best,
            run,
            models["model"].tolist(),
            failed,
            sizes["test"],
        ),
        "figures": {
            "tradeoff": Figure(
                plots.draw_tradeoff,
                summary[["title", "params", "flops", "acc", "acc_std"]],
                f"Test accuracy of each model on {dataset} against its parameter count and "
                f"its forward FLOPs per image, both on logarithmic axes.",
                run,
            ),
            "curves": Figure(
                plots.draw_curves,
                mean_curves,
                "Training loss and validation accuracy after each epoch, one line per model.",
                run,
            ),
            "confusion": Figure(
                plots.draw_confusion,
                confusion[confusion["model"] == best["model"]],
                f"Row-normalised confusion matrix of {best['title']} on the {dataset} test images.",
                run,
            ),
        },
    }
