"""Question 4 context: rank the architectures from the stored results and say how far the ranking holds.

Every comparison is a difference of mean test accuracies over seeds, tested with Welch's t-test (unequal
variances, its own degrees of freedom); the comparisons behind one statement (the best model against each
other, the depth steps, LeNet-5 against each ResNet) are one family, Holm-corrected at level ``ALPHA``.
With one seed the variation is unmeasured, and the verdicts say so instead of calling a gap real. The
claims return facts and case codes only; the sentences that state them are in templates/q4.words.j2.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from report.plots import q4 as plots
from report.questions import Figure, Results, Table, require

ALPHA = 0.05  # family-wise level of the Holm-corrected Welch tests
STALLED = 0.05  # a training loss within 5% of ln K (a uniform prediction) in every epoch made no progress
COLLAPSED = 0.9  # ...and one class predicted for at least 90% of the test images: the model did not train
WITHOUT_BATCH_NORM = ("lenet5", "alexnet")  # experiments/models.py: the two with no normalisation layers
WITHOUT_BATCH_NORM = ("lenet5", "alexnet")  # experiments/models.py: the two with no normalisation layers
RESNETS = ("resnet18", "resnet50", "resnet101")
WITHIN, ABOVE, BELOW = "not significant", "significantly higher", "significantly lower"  # Holm-corrected
UNMEASURED = "unmeasured"  # one seed: no spread to test against


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


def welch(a: pd.Series, b: pd.Series) -> tuple[float, float, float] | None:
    """Welch's t, its degrees of freedom and the two-sided p-value for equal mean accuracy of ``a`` and
    ``b`` over their seeds (``None`` with fewer than two seeds, where the spread is unmeasured)."""
    if a["seeds"] < 2 or b["seeds"] < 2:
        return None
    from scipy.special import stdtr  # imported only where a report compares models over seeds

    va, vb = a["acc_std"] ** 2 / a["seeds"], b["acc_std"] ** 2 / b["seeds"]
    delta = float(b["acc"] - a["acc"])
    if va + vb == 0:  # every seed gave the same accuracy
        return (math.inf if delta else 0.0), math.inf, (0.0 if delta else 1.0)
    t = delta / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a["seeds"] - 1) + vb**2 / (b["seeds"] - 1))
    return t, df, float(2 * stdtr(df, -abs(t)))


def compare(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """How ``b`` differs from ``a`` in mean test accuracy, in percentage points, with Welch's test (the
    verdict is set by ``family``, which corrects the p-values of one statement's comparisons together)."""
    delta = float(b["acc"] - a["acc"])
    test = welch(a, b)
    return {
        "a": a["title"],
        "b": b["title"],
        "delta_pp": 100 * delta,
        "abs_pp": 100 * abs(delta),
        "direction": "higher" if delta > 0 else "lower" if delta < 0 else "equal",
        "t": None if test is None else test[0],
        "df": None if test is None else test[1],
        "p": None if test is None else test[2],
        "p_adj": None,
        "verdict": UNMEASURED,
    }


def family(gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm's step-down correction over the comparisons of one statement, and each verdict at ``ALPHA``."""
    tested = sorted((g for g in gaps if g["p"] is not None), key=lambda g: g["p"])
    running = 0.0
    for rank, g in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * g["p"]))
        g["p_adj"] = running
        g["verdict"] = WITHIN if running >= ALPHA else ABOVE if g["delta_pp"] > 0 else BELOW
    return gaps


def best_claim(summary: pd.DataFrame) -> dict[str, Any]:
    """Which model is best, and which others this run cannot separate from it.

    ``case`` says which sentence ``words.best`` in templates/q4.words.j2 writes: "only" (one model, no
    ranking), "unmeasured" (one seed: the runner-up's gap cannot be judged), "tied" (some models within
    significantly below the best, listed in ``tied``) or "clear" (every gap significant).
    """
    best = summary.iloc[0]
    gaps = family([compare(best, row) for _, row in summary.iloc[1:].iterrows()])
    tied = [g["b"] for g in gaps if g["verdict"] == WITHIN]
    if not gaps:
        case = "only"
    elif gaps[0]["verdict"] == UNMEASURED:
        case = "unmeasured"
    elif tied:
        case = "tied"
    else:
        case = "clear"
    return {
        "title": best["title"],
        "model": best["model"],
        "case": case,
        "tied": tied,
        "runner_up": gaps[0] if gaps else None,
    }


def depth_claim(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Whether more depth among the ResNets changed accuracy significantly (None with under two).

    ``case`` says which sentence ``words.depth`` writes: "unmeasured" (one seed; ``order`` lists the
    ResNets by point estimate), "no_effect" (no gap significant), "helped" or "hurt" (the
    deepest against the shallowest significant) or "mixed" (those two not significantly apart, an
    intermediate step significant).
    """
    rows = {r["model"]: r for _, r in summary.iterrows()}
    present = [rows[m] for m in RESNETS if m in rows]
    if len(present) < 2:
        return None
    steps = [compare(present[i], present[i + 1]) for i in range(len(present) - 1)]
    if len(present) == 3:
        steps.append(compare(present[0], present[2]))
    steps = family(steps)
    verdicts = {s["verdict"] for s in steps}
    overall = steps[-1]["verdict"]
    if verdicts == {UNMEASURED}:
        case = "unmeasured"
    elif verdicts == {WITHIN}:
        case = "no_effect"
    elif overall == ABOVE:
        case = "helped"
    elif overall == BELOW:
        case = "hurt"
    else:
        case = "mixed"
    return {
        "steps": steps,
        "case": case,
        "shallow": present[0]["title"],
        "deepest": present[-1]["title"],
        "order": [r["title"] for r in sorted(present, key=lambda r: -r["acc"])],
    }


def lenet_claim(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Where LeNet-5 stands against each ResNet (None when either is missing from the run).

    ``case`` says which sentence ``words.lenet`` writes, from LeNet-5's side: "below" or "above" (every
    ResNet significantly on the same side), "within" (no gap significant),
    "unmeasured" (one seed; ``higher`` lists the ResNets that scored above LeNet-5) or "mixed" (each
    ResNet's ``side`` in ``gaps`` says whether it is significantly "above" or "below" LeNet-5, or "within").
    """
    rows = {r["model"]: r for _, r in summary.iterrows()}
    if "lenet5" not in rows or not any(m in rows for m in RESNETS):
        return None
    side = {ABOVE: "above", BELOW: "below", WITHIN: "within", UNMEASURED: "unmeasured"}
    gaps = family([compare(rows["lenet5"], rows[m]) for m in RESNETS if m in rows])  # positive: ResNet higher
    gaps = [{**g, "side": side[g["verdict"]]} for g in gaps]
    verdicts = {g["verdict"] for g in gaps}
    if verdicts == {ABOVE}:
        case = "below"
    elif verdicts == {BELOW}:
        case = "above"
    elif verdicts == {WITHIN}:
        case = "within"
    elif UNMEASURED in verdicts:
        case = "unmeasured"
    else:
        case = "mixed"
    return {
        "gaps": gaps,
        "case": case,
        "higher": [g["b"] for g in gaps if g["delta_pp"] > 0],
        "above_all": all(g["delta_pp"] < 0 for g in gaps),  # LeNet-5's point estimate tops every ResNet
    }


def untrained(curves: pd.DataFrame, confusion: pd.DataFrame, classes: int) -> dict[str, dict[str, Any]]:
    """Models that did not train, from the stored evidence: in every epoch the (label-smoothed) training
    loss stayed within ``STALLED`` of ln K, the loss of predicting every class with probability 1/K, and on
    the test images they predicted one class for at least ``COLLAPSED`` of them."""
    out = {}
    uniform = math.log(classes)
    for model, c in curves.groupby("model"):
        predicted = confusion[confusion["model"] == model].groupby("pred_name")["count"].sum()
        share = float(predicted.max() / predicted.sum()) if predicted.sum() else 0.0
        if (c["train_loss"] >= (1 - STALLED) * uniform).all() and share >= COLLAPSED:
            last = c.sort_values("epoch")["train_loss"].iloc[-1]
            out[model] = {
                "loss": float(last),
                "uniform": uniform,
                "share": share,
                "class": predicted.idxmax(),
                "batch_norm": model not in WITHOUT_BATCH_NORM,
            }
    return out


def binomial_se(accuracy: pd.Series | float, n_test: int) -> Any:
    """The standard error of an accuracy from the sampling of ``n_test`` test images alone, sqrt(p(1-p)/n):
    the part of the uncertainty that the seed-to-seed tests do not cover."""
    return (accuracy * (1 - accuracy) / n_test) ** 0.5


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


def _tables(
    summary: pd.DataFrame,
    per_class: pd.DataFrame,
    seeds: int,
    cuda: bool,
    best: str,
    run: Any,
    order: list[str],
    failed: dict[str, Any],
    n_test: int,
) -> dict[str, Table]:
    marked = [
        f"{t} (did not train)" if m in failed else t
        for m, t in zip(summary["model"], summary["title"], strict=True)
    ]
    shown = summary.assign(
        title=marked,
        params_m=summary["params"] / 1e6,
        mflops=summary["flops"] / 1e6,
        acc_pm=list(zip(summary["acc"], summary["acc_std"], strict=True)),
        peak_mib=summary["peak_mem_bytes"] / 2**20,
        test_se=binomial_se(summary["acc"], n_test),
    )
    acc_col = ("acc_pm", "pm") if seeds > 1 else ("acc", "pct")
    columns = {
        "title": ("Model", "text"),
        "params_m": ("Parameters (M)", "num"),
        "mflops": ("MFLOPs / image", "num"),
        acc_col[0]: ("Test accuracy", acc_col[1]),
        "test_se": ("Test-set SE", "pct"),
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

    everyone = summarise(results, models)
    classes = confusion["true"].nunique() if len(confusion) else 10
    failed = untrained(curves, confusion, max(classes, int(confusion["pred"].max()) + 1))
    summary = everyone[~everyone["model"].isin(failed)].reset_index(drop=True)  # ranked and compared
    require(len(summary) > 0, "at least one model trained (every training loss stayed at ln K)")
    best = best_claim(summary)
    top = summary.iloc[0]
    per_class = class_accuracy(confusion)
    best_classes = per_class[(per_class["model"] == best["model"]) & (per_class["n"] > 0)]
    weakest = best_classes.sort_values("accuracy").iloc[0]
    errors = confusion[(confusion["model"] == best["model"]) & (confusion["true"] != confusion["pred"])]
    errors = errors.groupby(["true_name", "pred_name"], as_index=False)["count"].sum()
    top_error = errors.loc[errors["count"].idxmax()] if errors["count"].sum() > 0 else None

    order = {m: i for i, m in enumerate(everyone["model"])}
    mean_curves = (
        curves.groupby(["model", "epoch"], as_index=False)[["train_loss", "val_acc"]]
        .mean()
        .merge(everyone[["model", "title"]], on="model")  # a model that did not train shows why
        .sort_values(["model", "epoch"], key=lambda c: c.map(order) if c.name == "model" else c)
    )
    fastest = everyone.loc[everyone["throughput"].idxmax()]  # speed is measured whether or not it learned
    slowest = everyone.loc[everyone["throughput"].idxmin()]
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
        "alpha": ALPHA,
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
        "untrained": [
            {"title": everyone.set_index("model").loc[m, "title"], **facts} for m, facts in failed.items()
        ],
        "steps": int(cfg["epochs"]) * (int(n.loc["train", "used"]) // int(cfg["batch_size"])),
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
        "test_se": float(binomial_se(top["acc"], sizes["test"])),
        "tables": _tables(
            everyone,
            per_class,
            seeds,
            cuda,
            best["model"],
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
