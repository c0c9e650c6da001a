"""Q3 context: what learning rate, batch size and epochs do to the dense MNIST classifier, measured.

Every choice the experiment made is re-checked here against the stored sweep (``q3_facts``). This
module returns facts and verdict codes; the sentences that word them are macros in
``templates/q3.words.j2``, drawings are in ``report/plots/q3.py``.
"""

from __future__ import annotations

import math
from typing import Any

from report import format as fmt
from report.core.config import profile_config
from report.core.errors import MissingResultError
from report.plots import q3 as plots
from report.questions import Figure, Results, Table, anchors, require
from report.questions.q3_facts import (
    MOMENTUM,
    MOMENTUM_FACTOR,
    MONITORS,
    OPTIMIZER_NAMES,
    batch_facts,
    confusion_facts,
    epoch_facts,
    final_facts,
    halving_facts,
    last_epochs,
    lr_facts,
    schedule_facts,
)

HEATMAP_RANGE = 10  # percentage points below the best that the heat map's colour scale spans
STAGE_NAMES = {"lr": "optimizer and rate", "batch": "batch size and rate"}


# what sizes the study
BUDGET = (
    "sweep_epochs",
    "schedules",
    "schedule_seeds",
    "patience",
    "lrs",
    "batch_sizes",
    "optimizers",
    "seeds",
)


def reduced(cfg: dict[str, Any], n: dict[str, int]) -> list[dict[str, Any]]:
    """How this run's budget falls short of the full study (the ``full`` profile's config, from the
    experiment's torch-free config module): one item per shortfall (``what``, this run's
    size ``have``, the full size ``full``; counts for lists), none for a full run."""
    out = []
    if n["trainval"] < n["train_available"] or n["test"] < n["test_available"]:
        out.append({"what": "data"})
    for name in BUDGET:
        full = getattr(profile_config("q3", "full"), name)
        size = (lambda v: len(v)) if isinstance(full, list | tuple) else (lambda v: v)
        if size(cfg[name]) < size(full):
            out.append({"what": name, "have": size(cfg[name]), "full": size(full)})
    longest = max(profile_config("q3", "full").schedules)  # schedules that stop short search less
    if max(cfg["schedules"]) < longest:
        out.append({"what": "longest_schedule", "have": max(cfg["schedules"]), "full": longest})
    full = profile_config("q3", "full").halving  # keeping fewer at each rung searches less
    if cfg["halving"] > full:
        out.append({"what": "halving", "have": cfg["halving"], "full": full})
    return out


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
            f"the stored q3 result predates the dataset sizes the report states; rerun it: {run.rerun}"
        )
    if "rung" not in sweep:  # stored before Q3 tuned by successive halving: rerun, do not guess
        raise MissingResultError(f"the stored q3 result predates the tuning procedure the report describes; "
                                 f"rerun it: {run.rerun}")  # fmt: skip
    if "tied" not in sweep:  # stored before a stage kept the cheapest of its tied points: rerun, do not guess
        raise MissingResultError(f"the stored q3 result predates the selection rule the report describes; "
                                 f"rerun it: {run.rerun}")  # fmt: skip
    # stored before the epoch study of §3.5, or before its curve scored 10,000 training images
    if not r.has("q3", "schedule") or not r.has("q3", "curve") or "train_scored" not in n:
        raise MissingResultError(f"the stored q3 result predates the epoch study the report describes; "
                                 f"rerun it: {run.rerun}")  # fmt: skip
    if "stacked" not in r.table("q3", "final"):  # stored before the epoch stage left out the sweep's seed
        raise MissingResultError(
            f"the stored q3 result predates the epoch stage's fresh seeds and the "
            f"record of how its final models trained; rerun it: {run.rerun}"
        )
    last = last_epochs(sweep)
    halving = halving_facts(last, choice, n["val"], int(cfg["halving"]))

    lr = lr_facts(last, choice.loc["lr"], n["val"])
    runs = r.table("q3", "schedule")
    batch = batch_facts(
        last, choice.loc["batch"], lr["lr"], int(cfg["base_batch"]), n["val"], n["train"], runs
    )
    require(  # a sweep run of the chosen point trained again would weigh the best of its stage twice
        run.seed is None or run.seed not in set(runs["seed"]),
        "the epoch stage's seeds leave out the sweep's seed",
    )
    schedule = schedule_facts(runs, choice.loc["epochs"], n["train"], n["val"])
    curve = r.table("q3", "curve")
    epochs = epoch_facts(curve, schedule["runs"])
    confusion = r.table("q3", "confusion")
    final = final_facts(
        r.table("q3", "final"), r.table("q3", "interval"), confusion, schedule["chosen"], n["test"]
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
    first_lr = sweep_lr[sweep_lr["rung"] == 0]
    lr_table = first_lr.pivot(index="lr", columns="optimizer", values="val_acc").reset_index()
    reached = sweep_lr.groupby(["lr", "optimizer"])["epoch"].max().unstack()  # the longest run of each point
    for o in cfg["optimizers"]:
        lr_table[f"{o}_epochs"] = lr_table["lr"].map(reached[o])
    return {
        "run": run,
        "dataset": str(splits["dataset"].iloc[0]),
        "n": n,
        # the training and test images used are a subset of the dataset's: said where the numbers are
        "subset": n["trainval"] < n["train_available"] or n["test"] < n["test_available"],
        "reduced": reduced(cfg, n),
        # a shortfall that bears on the accuracy reached (fewer final seeds only widen its interval): what
        # makes a published figure's gap no measure of the network, as Q4's "short"
        "short": [r for r in reduced(cfg, n) if r["what"] != "seeds"],
        "params": params,
        "param_terms": param_terms,
        "optimizers": [OPTIMIZER_NAMES[o] for o in cfg["optimizers"]],
        "momentum": {"beta": MOMENTUM, "factor": MOMENTUM_FACTOR},
        "sweep_epochs": int(cfg["sweep_epochs"]),
        "halving": halving,
        "eta": int(cfg["halving"]),
        "base_batch": int(cfg["base_batch"]),
        "monitor": MONITORS[cfg["monitor"]],
        "heatmap_range": HEATMAP_RANGE,
        # threads per unit of stacked networks on a CPU (units run side by side): what its times are per
        "cpu_threads": int(cfg.get("cpu_threads", 0)) if run.device == "cpu" else None,
        "patience": int(cfg["patience"]),
        "lr": lr,
        "batch": batch,
        "epochs": epochs,
        "schedule": schedule,
        # optimizer steps per epoch of the schedule runs (training images) and of the final models
        # (training and validation images): the same epoch count is more steps for the final models
        "epoch_steps": {
            "chosen": math.ceil(n["train"] / batch["batch"]),
            "final": math.ceil(n["trainval"] / batch["batch"]),
        },
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
                sources={c: f"column {c} of q3 table layers, row position={{position}}" for c in layers},
            ),
            "lr": Table(
                lr_table,
                {
                    "lr": ("Learning rate", "sci"),
                    **{o: (OPTIMIZER_NAMES[o], "pct") for o in cfg["optimizers"]},
                    **{
                        f"{o}_epochs": (f"{OPTIMIZER_NAMES[o]}: epochs reached", "int")
                        for o in cfg["optimizers"]
                    },
                },
                run,
                highlight=lambda row: math.isclose(row["lr"], lr["lr"]),
                sources={
                    "lr": "column lr of q3 table sweep, learning-rate stage",
                    **{
                        o: f"val_acc after the first rung of {OPTIMIZER_NAMES[o]} at this rate "
                        "(q3 table sweep, learning-rate stage, last epoch of the run)"
                        for o in cfg["optimizers"]
                    },
                    **{
                        f"{o}_epochs": f"the last epoch any run of {OPTIMIZER_NAMES[o]} at this rate reached "
                        "(q3 table sweep, learning-rate stage)"
                        for o in cfg["optimizers"]
                    },
                },
            ),
            "scaling": Table(
                batch["table"],
                {
                    "batch_size": ("Batch size", "int"),
                    "steps": ("Steps per epoch", "int"),
                    "fixed_acc": (f"Val. accuracy, rate {fmt.sci(lr['lr'])}", "pct"),
                    "scaled_lr": ("Linearly scaled rate", "sci"),
                    "scaled_acc": ("Val. accuracy, scaled", "pct"),
                    "epoch_s": ("Time per epoch, per point", "dur"),
                },
                run,
                highlight=lambda row: int(row["batch_size"]) == batch["batch"],
                sources={
                    "batch_size": "column batch_size of q3 table sweep, batch-size stage",
                    "steps": "training images over the batch size, rounded up (q3 table splits)",
                    "fixed_acc": "val_acc of the grid run at this batch size and the base rate "
                    "(q3 table sweep, first rung, last epoch)",
                    "scaled_lr": "column lr of the scaling study's run at this batch size (q3 table sweep)",
                    "scaled_acc": "val_acc of the scaling study's run at this batch size "
                    "(q3 table sweep, first rung, last epoch)",
                    "epoch_s": "median epoch_s of the grid runs at this batch size, each a point's share of "
                    "its stack's time (q3 table sweep)",
                },
            ),
            "halving": Table(
                halving["table"].assign(stage=lambda df: df["stage"].map(STAGE_NAMES)),
                {
                    "stage": ("Stage", "text"),
                    "rung": ("Rung", "int"),
                    "epochs": ("Epochs", "int"),
                    "points": ("Points trained", "int"),
                    "kept": ("Kept", "int"),
                    "best": ("Best val. accuracy", "pct"),
                    "cutoff": ("Lowest kept", "pct"),
                },
                run,
                sources={
                    "rung": "successive-halving rung {rung} of this stage's rows of q3 table sweep",
                    "epochs": "the most epochs a run of rung {rung} trained (q3 table sweep)",
                    "points": "runs of rung {rung} (q3 table sweep)",
                    "kept": "runs of rung {rung} that the next rung trained again (q3 table sweep)",
                    "best": "highest last-epoch val_acc among the runs of rung {rung} (q3 table sweep)",
                    "cutoff": "lowest last-epoch val_acc among the runs rung {rung} kept (q3 table sweep)",
                },
            ),
            "schedule": Table(
                schedule["table"],
                {
                    "schedule": ("Epochs (schedule length)", "int"),
                    "steps": ("Optimizer steps", "int"),
                    "val_acc": (f"Val. accuracy, mean of {schedule['seeds']}", "pct"),
                    "sd": ("SD over seeds", "pp"),
                    "gap": ("Below the best", "pp"),
                    "band": ("Its tie band", "pp"),
                },
                run,
                highlight=lambda row: int(row["schedule"]) == schedule["chosen"],
                sources={
                    "schedule": "column schedule of q3 table schedule",
                    "steps": "epochs × training images over the batch size, rounded up (q3 tables schedule, "
                    "splits)",
                    "val_acc": "mean over seeds of val_acc at this schedule length (q3 table schedule)",
                    "sd": "sample standard deviation over seeds of val_acc at this length "
                    "(q3 table schedule)",
                    "gap": "the best length's mean val_acc less this length's (q3 table schedule)",
                    "band": "half-width of a 95% interval for that gap: its standard error from the "
                    "seed-by-image differences (paired_band in report/core/selection.py; q3 table schedule, "
                    "column correct) times Student's t at Satterthwaite's degrees of freedom",
                },
            ),
            "final": Table(
                r.table("q3", "final").sort_values("seed"),
                {
                    "seed": ("Seed", "int"),
                    "epochs": ("Epochs", "int"),
                    "train_s": ("Training time" + (" (share)" if final["stacked"] != [1] else ""), "dur"),
                    "test_loss": ("Test loss", "num"),
                    "test_acc": ("Test accuracy", "pct"),
                },
                run,
                sources={
                    c: f"column {c} of q3 table final, row seed={{seed}}"
                    for c in ("seed", "epochs", "train_s", "test_loss", "test_acc")
                },
            ),
        },
        "figures": {
            "lr": Figure(
                plots.draw_lr,
                sweep_lr[["optimizer", "lr", "rung", "epoch", "val_acc", "val_loss"]],
                (
                    "Validation accuracy and loss against the learning rate, one line per optimizer after "
                    "the first rung's epochs, and the points kept for the longer rungs."
                ),
                run,
                extra={"names": OPTIMIZER_NAMES, "chosen": (choice.loc["lr", "optimizer"], lr["lr"])},
            ),
            "heatmap": Figure(
                plots.draw_heatmap,
                last[(last["study"] == "grid") & (last["rung"] == 0)][["lr", "batch_size", "val_acc"]],
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
                curve[["epoch", "seed", "train_loss", "val_loss", "train_acc", "val_acc", "stop"]],
                (
                    "Training and validation loss and accuracy after each epoch of the longest schedule, "
                    "the mean over seeds and each seed's validation run, with where early stopping would "
                    "have ended each."
                ),
                run,
                extra={"best": epochs["best"]["epoch"]},
            ),
            "schedule": Figure(
                plots.draw_schedule,
                schedule["runs"][["schedule", "seed", "val_acc", "tied"]],
                (
                    "Validation accuracy against the schedule's length in epochs, each seed's run and the "
                    "mean, the lengths tied with the best marked."
                ),
                run,
                extra={"chosen": schedule["chosen"]},
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
