"""Q3's facts: what each stage of the stored study found, checked against the choices it made.

Every choice the experiment made is re-checked here against the stored sweep (the chosen point must be
the cheapest to train of those tied with the best of its stage's last rung, derived again by the
experiment's own rule); ``report/questions/q3.py`` assembles these facts, tables and figures for the
template.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from experiments.configs.q3 import EACH, MOMENTUM, cost
from report import format as fmt
from report.core import selection
from report.provenance import sourced
from report.questions import require
from report.questions.stats import binomial_se

MOMENTUM_FACTOR = 1 / (1 - MOMENTUM)  # momentum's steps over plain SGD's where the gradient is constant
OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": f"SGD with momentum {MOMENTUM:g}", "adam": "Adam"}
POINT = ["study", "optimizer", "lr", "batch_size", "lr_scaled", "rung"]
STAGES = {"lr": ("lr",), "batch": ("grid", "scaling")}  # each tuning stage and the studies it trains
USABLE = 0.01  # a learning rate is "usable" within one percentage point of its optimizer's best
LEARNED = (
    0.2  # validation accuracy twice a guess among MNIST's ten digits: below it, a point learned ~nothing
)
GUESS_LOSS = math.log(10)  # cross-entropy of predicting each of the ten digits with probability 1/10
GUESS_RTOL = 0.01  # a validation loss this close to GUESS_LOSS (relative) is "the loss of a uniform guess"
MONITORS = {"val_acc": "validation accuracy", "val_loss": "validation loss"}
STATE_WORDS = {"sgd": "none", "momentum": "one buffer per weight", "adam": "two buffers per weight"}


def last_epochs(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per trained point and rung: its metrics after its last epoch."""
    return sweep.sort_values("epoch", kind="stable").groupby(POINT, sort=False).tail(1).reset_index(drop=True)


def final_rung(rows: pd.DataFrame) -> pd.DataFrame:
    """The points of the last successive-halving rung among ``rows``: the longest runs, whence choices."""
    return rows[rows["rung"] == rows["rung"].max()]


def halving_facts(last: pd.DataFrame, choice: pd.DataFrame, n_val: int, share: int) -> dict[str, Any]:
    """Per tuning stage, each rung: its epochs, how many points it trained and kept, the best score and the
    lowest score that was kept (every point below it was pruned; the last rung keeps the stage's choice,
    ``choice`` indexed by stage); the training spent, in epochs of one point, against a plain grid that
    trains every point for the last rung's epochs. Each cut is re-checked against its rule
    (``selection.promoted``: the best one in ``share``, the points tied with the last of them and the best
    of each optimizer or batch size, ``EACH``), and the rungs that kept points beyond one in ``share`` are
    listed (``extra``: how many for the tie, how many as the best of their group)."""
    stages, rows, extra = {}, [], []
    for stage, studies in STAGES.items():
        df = last[last["study"].isin(studies)]
        rungs = sorted(df["rung"].unique())
        for r in rungs:
            here = df[df["rung"] == r]
            nxt = df[df["rung"] == r + 1]
            kept = here.merge(nxt[POINT[:-1]], on=POINT[:-1]) if len(nxt) else chosen(here, choice.loc[stage])
            rows.append({"stage": stage, "rung": int(r) + 1, "epochs": int(here["epoch"].max()),
                         "points": len(here), "kept": len(kept), "best": float(here["val_acc"].max()),
                         "cutoff": float(kept["val_acc"].min())})  # fmt: skip
            if len(nxt):
                rule = selection.promoted(here, POINT[:-1], n_val, share, EACH[stage])
                key = lambda df: set(map(tuple, df[POINT[:-1]].astype(str).to_numpy()))  # noqa: E731
                require(key(rule) == key(kept), f"rung {int(r) + 1} kept the points its rule keeps")
                by_count = math.ceil(len(here) / share)
                tied = len(selection.promoted(here, POINT[:-1], n_val, share)) - by_count
                if len(kept) > by_count:
                    extra.append({"stage": stage, "rung": int(r) + 1, "tied": tied,
                                  "each": len(kept) - by_count - tied})  # fmt: skip
        spent = int(df["epoch"].sum())
        grid = len(df[df["rung"] == 0]) * int(df["epoch"].max())
        stages[stage] = {"spent": spent, "share": spent / grid}
    table = pd.DataFrame(rows)
    return {
        "table": table,
        "stages": stages,
        "lengths": table[table["stage"] == "lr"]["epochs"].astype(int).tolist(),
        "pruned": len(table) > len(STAGES),  # more than one rung in some stage
        "extra": extra,
    }


def chosen(points: pd.DataFrame, choice: pd.Series) -> pd.DataFrame:
    """The rows of ``points`` that are the stored ``choice`` (one, or a duplicate of it)."""
    same = np.isclose(points["lr"], choice["lr"]) & (points["batch_size"] == choice["batch_size"])
    return points[same & (points["optimizer"] == choice["optimizer"])]


def tied(points: pd.DataFrame, choice: pd.Series, n_val: int) -> dict[str, Any]:
    """A stage's choice among the points of its last rung, re-derived by the experiment's own rule
    (``report/core/selection.py`` with Q3's ``cost``) and checked against what the experiment stored: the
    points an unpaired comparison on the validation set does not separate from the best are tied with it,
    and the stage keeps the cheapest of them to train. Returns the band, the tied points other than the
    choice (best first; the best marked ``best`` when it is more accurate than the choice), the best
    point when it is not the choice with why the choice was kept over it ("steps": a larger batch;
    "state": an optimizer that keeps less state per weight; ``equal`` when their accuracies are equal),
    and the kept point."""
    kept, labels, band = selection.cheapest_tied(points, POINT[:-1], n_val, cost)
    require(
        not chosen(kept.to_frame().T, choice).empty,
        "the chosen point is the cheapest to train of those tied with the best of its stage's last rung",
    )
    require(math.isclose(band, float(choice["band"])), "the stored tie band is the one of the best accuracy")
    require(
        set(points.index[points["tied"].eq(True)]) == set(labels),
        "the points stored as tied are those within the tie band of the best",
    )
    order = points.loc[labels]  # best first
    top = order.iloc[0]

    def named(r: pd.Series) -> dict[str, Any]:
        return {
            "name": OPTIMIZER_NAMES[str(r["optimizer"])],
            "optimizer_key": str(r["optimizer"]),
            "lr": float(r["lr"]),
            "batch_size": int(r["batch_size"]),
            "scaled": bool(r["lr_scaled"]),
            "val_acc": float(r["val_acc"]),
        }

    best = None
    if top.name != kept.name:
        why = "steps" if int(kept["batch_size"]) > int(top["batch_size"]) else "state"  # cost's order
        best = {**named(top), "why": why, "equal": bool(top["val_acc"] == kept["val_acc"])}
    others = order.drop(index=kept.name).drop_duplicates(["lr", "batch_size", "optimizer"])
    return {
        "band": band,
        "tied": [{**named(r), "best": i == top.name} for i, r in others.iterrows()],
        "best": best,
        "kept": named(kept),
        "state": STATE_WORDS,
    }


def later_bests(stage: pd.DataFrame, n_val: int) -> dict[str, list[dict[str, Any]]]:
    """Per optimizer, each rung after the first that kept some of its rates: the best of those rates, the
    others with their accuracies, the tie band at the best (``selection.tie_band``), and where the best
    sits among the kept rates ("low", "high", "only" or None for inside them: a best at an end of what
    was kept bounds a ratio only one way). A best rate found after one short rung can move once the kept
    rates train longer, so the report compares the rungs rather than generalising from the first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for (opt, _), df in stage[stage["rung"] > 0].groupby(["optimizer", "rung"], sort=True):
        ranked = df.sort_values("val_acc", ascending=False, kind="stable")
        top = ranked.iloc[0]
        others = [
            {"lr": float(r["lr"]), "val_acc": float(r["val_acc"])} for _, r in ranked.iloc[1:].iterrows()
        ]
        kept = sorted(df["lr"])
        end = (
            "only"
            if len(kept) == 1
            else "low"
            if top["lr"] == kept[0]
            else "high"
            if top["lr"] == kept[-1]
            else None
        )
        out.setdefault(str(opt), []).append({
            "epochs": int(top["epoch"]), "lr": float(top["lr"]), "val_acc": float(top["val_acc"]),
            "others": others, "band": selection.tie_band(float(top["val_acc"]), n_val), "end": end,
        })  # fmt: skip
    return out


def lr_facts(last: pd.DataFrame, choice: pd.Series, n_val: int) -> dict[str, Any]:
    """The learning-rate stage: best rate and usable window per optimizer on the first rung (every point at
    the same budget), where the longer rungs moved that best, and the optimizer and rate the last rung
    chose."""
    lr = last[(last["study"] == "lr") & (last["rung"] == 0)]
    later = later_bests(last[last["study"] == "lr"], n_val)
    per_opt = {}
    grid = sorted(lr["lr"].unique())
    first_epochs = int(lr["epoch"].max())  # the first rung's: what every comparison here is judged after
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
            "usable": sorted(float(x) for x in usable),  # the grid's rates within USABLE of the best
            # every rate of the grid between the window's ends is within it: a range, not a list
            "contiguous": len(usable) == sum(usable.min() <= g <= usable.max() for g in grid),
            # one grid point in the window: its width is below the grid's resolution, not zero
            "resolved": bool(usable.max() > usable.min()),
            # an optimum on the edge of the grid: the best rate may lie beyond it
            "edge": "low" if best["lr"] == grid[0] else "high" if best["lr"] == grid[-1] else None,
            # the grid's rates on either side of the best (None past an edge): a one-rate window's bounds
            "neighbours": [
                grid[i] if 0 <= i < len(grid) else None for i in (grid.index(best["lr"]) + d for d in (-1, 1))
            ],
            # the first longer rung where another of the kept rates beat this one, head to head
            "moved": next(
                (
                    {**r, "beaten": beaten, "separated": r["val_acc"] - beaten > r["band"]}
                    for r in later.get(str(opt), [])
                    for beaten in [o["val_acc"] for o in r["others"] if o["lr"] == best["lr"]]
                    if r["lr"] != best["lr"]
                ),
                None,
            ),
        }
    stage = last[last["study"] == "lr"]
    above = stage["lr"] > stage["optimizer"].map({o: v["lr"] for o, v in per_opt.items()})
    failed = stage[above & (stage["val_acc"] < LEARNED)]  # training failed where a lower rate learned
    for opt, v in per_opt.items():  # rates that learned after the first rung and failed on a longer one
        first = lr[lr["optimizer"] == opt].set_index("lr")["val_acc"]
        v["fell"] = [
            {"lr": float(r["lr"]), "first": float(first[r["lr"]]), "first_epochs": first_epochs,
             "val_acc": float(r["val_acc"]), "epochs": int(r["epoch"])}
            for _, r in failed[(failed["optimizer"] == opt) & (failed["rung"] > 0)].iterrows()
            if first[r["lr"]] >= LEARNED
        ]  # fmt: skip
    losses = failed["val_loss"].to_numpy(dtype=float)
    collapsed = None
    if len(failed):
        finite = losses[np.isfinite(losses)]
        collapsed = {
            "runs": len(failed),
            "longer": int((failed["rung"] > 0).sum()),  # of them, runs of a rung after the first
            "not_finite": int(len(losses) - len(finite)),
            "loss_min": float(finite.min()) if len(finite) else None,
            "loss_max": float(finite.max()) if len(finite) else None,
            "acc_min": float(failed["val_acc"].min()),
            "acc_max": float(failed["val_acc"].max()),
            "learned": LEARNED,
            "guess_loss": GUESS_LOSS,
            "rtol": GUESS_RTOL,
            # every loss finite and within rtol of a uniform guess's (whether it diverged first is not kept)
            "at_guess": bool(
                len(finite) == len(losses) and np.all(abs(losses / GUESS_LOSS - 1) <= GUESS_RTOL)
            ),
        }
    ranked = sorted(per_opt, key=lambda o: per_opt[o]["val_acc"], reverse=True)
    momentum = None
    if "sgd" in per_opt and "momentum" in per_opt:
        ratio = per_opt["sgd"]["lr"] / per_opt["momentum"]["lr"]
        step = _grid_step(lr["lr"])
        off = None if step >= 10 else round(abs(math.log(ratio / MOMENTUM_FACTOR)) / math.log(step))
        bound = _bound(per_opt["sgd"]["edge"], per_opt["momentum"]["edge"])
        # the longer rungs that kept rates of both, where the ratio of their bests is not the first rung's
        sgd_later = {r["epochs"]: r for r in later.get("sgd", [])}
        rungs = [
            {"epochs": e, "sgd": sgd_later[e], "momentum": m, "ratio": sgd_later[e]["lr"] / m["lr"],
             "bound": _bound(sgd_later[e]["end"], m["end"])}
            for m in later.get("momentum", [])
            if (e := m["epochs"]) in sgd_later and not math.isclose(sgd_later[e]["lr"] / m["lr"], ratio)
        ]  # fmt: skip
        at = {o: lr[lr["optimizer"] == o].set_index("lr")["val_acc"] for o in ("sgd", "momentum")}

        def sgd_at(rate: float) -> tuple[float, float] | None:
            """Plain SGD's rate of the grid equal to ``rate`` (up to round-off) and its accuracy."""
            hits = [(float(r), float(a)) for r, a in at["sgd"].items() if math.isclose(r, rate, rel_tol=1e-6)]
            return hits[0] if hits else None

        # each rate below momentum's best where momentum learned: the plain-SGD rate of the grid whose
        # accuracy came closest to momentum's, and its ratio to the rate (the argument predicts 1/(1 - β));
        # at momentum's best itself, see counterpart
        below = [
            {
                "lr": float(r),
                "momentum": float(a),
                "closest_lr": float(c),
                "closest": float(at["sgd"][c]),
                "ratio": float(c / r),
                # the two runs themselves differ by more than their tie band: a nearest rate, not the same run
                "separated": abs(a - at["sgd"][c]) > selection.tie_band(max(a, at["sgd"][c]), n_val),
            }
            for r, a in at["momentum"].items()
            if r < per_opt["momentum"]["lr"] and a >= LEARNED
            for c in [min(at["sgd"].index, key=lambda x: (abs(at["sgd"][x] - a), x))]
        ]

        def runs(opt: str) -> dict[tuple[float, int], float]:
            """An optimizer's runs of the stage, by rate and length: their final accuracies."""
            rows = stage[stage["optimizer"] == opt]
            return {
                (float(r), int(e)): float(v)
                for r, e, v in zip(rows["lr"], rows["epoch"], rows["val_acc"], strict=True)
            }

        # the stability bound's prediction: runs of the same rate and length where one optimizer failed
        # (above its best rate) and the other learned
        mine, plain = runs("momentum"), runs("sgd")
        both = sorted(set(mine) & set(plain))
        unstable = {
            "momentum": [
                {"lr": r, "epochs": e, "momentum": mine[r, e], "sgd": plain[r, e]}
                for r, e in both
                if mine[r, e] < LEARNED <= plain[r, e] and r > per_opt["momentum"]["lr"]
            ],
            "sgd": [
                {"lr": r, "epochs": e, "momentum": mine[r, e], "sgd": plain[r, e]}
                for r, e in both
                if plain[r, e] < LEARNED <= mine[r, e] and r > per_opt["sgd"]["lr"]
            ],
        }
        counterpart = sgd_at(per_opt["momentum"]["lr"] * MOMENTUM_FACTOR)
        momentum = {  # off: grid steps from 1/(1 - β); epochs: what the best rates were judged after
            "ratio": ratio, "step": step, "off": off, "bound": bound,
            "epochs": first_epochs, "later": rungs, "below": below, "unstable": unstable,
            # how many of those pairs the validation set separates; how many runs the bound is at odds with
            "apart": sum(b["separated"] for b in below), "pairs": len(below),
            "odds": len(unstable["momentum"]),
            # plain SGD at 1/(1 - β) times each such rate came closest: the argument's prediction holds
            "closer": bool(below) and all(math.isclose(x["ratio"], MOMENTUM_FACTOR) for x in below),
            # the factors such a reading cannot tell from 1/(1 - β): the nearest grid rate to r · f is
            # r · 1/(1 - β) for every f within half a grid step of it, on the log scale
            "reads": (MOMENTUM_FACTOR / math.sqrt(step), MOMENTUM_FACTOR * math.sqrt(step)),
            "learned": LEARNED,
            # plain SGD at 1/(1 - β) times momentum's best rate, when the grid has it; "failed": below
            # LEARNED at a rate above plain SGD's own best (unstable there, not yet learning)
            "counterpart": None if counterpart is None else {
                "lr": counterpart[0], "val_acc": counterpart[1],
                "failed": counterpart[1] < LEARNED and counterpart[0] > per_opt["sgd"]["lr"],
            },
        }  # fmt: skip
    return {
        **tied(final_rung(last[last["study"] == "lr"]), choice, n_val),
        "by_optimizer": per_opt,
        "ranked": [per_opt[o] for o in ranked],
        "momentum": momentum,
        "collapsed": collapsed,
        "optimizer": OPTIMIZER_NAMES[choice["optimizer"]],
        "optimizer_key": str(choice["optimizer"]),
        "lr": float(choice["lr"]),
        "val_acc": float(choice["val_acc"]),
        "grid": sorted(lr["lr"].unique().tolist()),
        "first_epochs": first_epochs,
        "points": len(lr),
        "finalists": len(final_rung(last[last["study"] == "lr"])),
    }


def _bound(sgd_end: str | None, momentum_end: str | None) -> str | None:
    """What the ratio of SGD's best rate to momentum's can say when a best sits at an end of the rates
    tried ("low", "high", or "only" for a single rate): "at least" when SGD's optimum may be higher or
    momentum's lower, "at most" the other way round, "unbounded" when both apply, None when neither."""
    up = sgd_end in ("high", "only") or momentum_end in ("low", "only")
    down = sgd_end in ("low", "only") or momentum_end in ("high", "only")
    return "unbounded" if up and down else "at least" if up else "at most" if down else None


def _grid_step(lrs: pd.Series) -> float:
    """The typical factor between neighbouring learning rates of the grid."""
    values = np.log10(np.sort(lrs.unique()))
    return float(10 ** np.median(np.diff(values))) if len(values) > 1 else 10.0


def best_rates(grid: pd.DataFrame, n_val: int) -> dict[int, list[float]]:
    """Per batch size (ascending), the grid's learning rates (ascending) that the validation set does not
    separate from that batch size's most accurate one (``selection.tie_band``): its best rate, as a set."""
    best = {}
    for size, rows in sorted(grid.groupby("batch_size"), key=lambda kv: kv[0]):
        top = float(rows["val_acc"].max())
        close = rows[rows["val_acc"] >= top - selection.tie_band(top, n_val)]
        best[int(size)] = sorted({float(v) for v in close["lr"]})
    return best


def trend(rates: list[list[float]]) -> str:
    """How the best rate moves from each batch size to the next larger one, said only where the tied sets
    agree: "grows" (each set wholly above the last), "never decreases" (none below the last), "same"
    (one rate throughout), "not monotonic" (some set wholly below the last), "tied" (at some step the
    sets overlap so that neither holds). The config gives two batch sizes or more."""
    pairs = list(zip(rates, rates[1:], strict=False))
    if all(r == rates[0] and len(r) == 1 for r in rates):
        return "same"
    if all(min(b) > max(a) for a, b in pairs):
        return "grows"
    if all(min(b) >= max(a) for a, b in pairs):
        return "never decreases"
    if any(max(b) < min(a) for a, b in pairs):
        return "not monotonic"
    return "tied"


def batch_facts(
    last: pd.DataFrame,
    choice: pd.Series,
    base_lr: float,
    base_batch: int,
    n_val: int,
    n_train: int,
    runs: pd.DataFrame,
) -> dict[str, Any]:
    """The batch-size stage: the grid, linear scaling, epoch time, and the chosen (lr, batch) point. At the
    base batch the scaled rate is the base rate, a grid point, which stands for the scaled point there.

    Its choice rests on single runs, so two facts place it: ``anchor``, which runs chose the held rate of
    the scaling comparison and whether that rate is among the best at the base batch after the first rung,
    where the comparison is made; and ``rival``, the most accurate last-rung point of another batch size,
    with its gap below the choice set against how far seeds alone move single runs (``seed_noise`` of the
    chosen configuration's schedule ``runs`` at the rung's length), given only where the choice is the best
    of the rung and the gap is beyond the tie band (else the ties say it)."""
    first = last[last["rung"] == 0]
    grid = first[first["study"] == "grid"]
    scaling = first[first["study"] == "scaling"]
    base = grid[(grid["batch_size"] == base_batch) & np.isclose(grid["lr"], base_lr)]
    scaling = pd.concat([scaling, base[~base["batch_size"].isin(scaling["batch_size"])]]).sort_values(
        "batch_size"
    )
    both = final_rung(last[last["study"].isin(STAGES["batch"])])
    fixed = grid[np.isclose(grid["lr"], base_lr)].set_index("batch_size")["val_acc"]
    table = scaling[["batch_size", "lr", "val_acc"]].rename(
        columns={"lr": "scaled_lr", "val_acc": "scaled_acc"}
    )
    table["fixed_acc"] = table["batch_size"].map(fixed)
    table["steps"] = np.ceil(n_train / table["batch_size"]).astype(int)
    timing = grid.groupby("batch_size")[["epoch_s", "stacked"]].median()  # a point's share of its stack
    table["epoch_s"] = table["batch_size"].map(timing["epoch_s"])
    table["stacked"] = table["batch_size"].map(timing["stacked"]).round().astype(int)
    small, large = table.iloc[0], table.iloc[-1]
    grid_epochs = int(grid["epoch"].max())  # the first rung's: what the scaling table compares after

    # the scaled rate against the held one after the first rung, at each batch size (at the base batch the
    # two are one point); the text takes the largest batch first, then the others but the base
    first = {
        int(r["batch_size"]): {
            **scaled_gain(int(r["batch_size"]), r["scaled_acc"], r["fixed_acc"], grid_epochs, n_val, runs),
            "scaled_lr": float(r["scaled_lr"]),
        }
        for _, r in table.iterrows()
    }
    gains = [first[int(b)] for b in table["batch_size"].iloc[:-1] if int(b) != base_batch]

    best_lr = best_rates(grid, n_val)
    top = float(both["val_acc"].max())
    se = binomial_se(top, n_val)  # at the stage's best; its tie band is 2√2 times this
    ties = tied(both, choice, n_val)
    batches = sorted({int(choice["batch_size"]), *(t["batch_size"] for t in ties["tied"])})
    candidates = pd.concat([grid, scaling]).drop_duplicates(["lr", "batch_size"])
    chose = final_rung(last[last["study"].isin(STAGES["lr"])])["epoch"]  # none: no such stage in ``last``
    anchor = {
        "batch": base_batch,
        "epochs": int(chose.max()) if len(chose) else None,
        "best": any(math.isclose(base_lr, rate) for rate in best_lr[base_batch]),
        "rates": best_lr[base_batch],
    }
    others = selection.best_first(both[both["batch_size"] != int(choice["batch_size"])])
    top_other = others.iloc[0] if len(others) else None
    gap = math.nan if top_other is None else float(choice["val_acc"]) - float(top_other["val_acc"])
    rival = None  # only where the choice is the best and the validation set separates the other from it
    if top_other is not None and ties["best"] is None and gap > ties["band"]:
        noise = seed_noise(runs, int(top_other["epoch"]))
        verdict = against_seeds(gap, noise)
        rival = {
            "batch_size": int(top_other["batch_size"]),
            "lr": float(top_other["lr"]),
            "val_acc": float(top_other["val_acc"]),
            "gap": gap,
            "epochs": int(top_other["epoch"]),
            "seeds": noise,
            "verdict": verdict,
        }

    return {
        "table": table,
        "small": small.to_dict(),
        "large": large.to_dict(),
        "base_lr": base_lr,
        "anchor": anchor,
        "rival": rival,
        "trend": trend(list(best_lr.values())),
        "best_lr": list(best_lr.items()),
        # batch sizes whose best rates include the grid's highest: their best rate may lie beyond it
        "at_top": [int(b) for b, rates in best_lr.items() if math.isclose(max(rates), grid["lr"].max())],
        "grid_epochs": grid_epochs,  # the first rung's: what best_lr was judged after
        "speed_ratio": float(small["epoch_s"] / large["epoch_s"]),
        "lr": float(choice["lr"]),
        "scaled": bool(choice["lr_scaled"]),
        "batch": int(choice["batch_size"]),
        "val_acc": float(choice["val_acc"]),
        "se": se,
        "se_at": top,
        **ties,
        "batches": batches,  # the batch sizes of the points tied with the best
        "points": len(candidates),
        "finalists": len(both.drop_duplicates(["lr", "batch_size"])),
        "sizes": table["batch_size"].astype(int).tolist(),
        "large_gain": first[int(large["batch_size"])],
        "others": gains,
        "later": [
            {**g, "reversed": _reversed(first[g["batch_size"]], g["gains"][-1])}
            for g in later_gains(last, base_lr, base_batch, n_val, runs)
        ],
        # what the gaps above are set against: the epoch stage's seeds per length, the lengths it ran and
        # the seeds' standard deviation pooled over them (None with one seed per length)
        "spread": seed_spread(runs),
    }


def seed_spread(runs: pd.DataFrame) -> dict[str, Any] | None:
    """The epoch stage's measure of seed-to-seed variation (``runs``: the chosen configuration's
    schedule runs): its seeds per length, its lengths, and the pooled standard deviation with its degrees
    of freedom; None where no length ran two seeds."""
    sd, dof = pooled_seed_sd(runs)
    if not dof:
        return None
    seeds = int(runs.groupby("schedule")["val_acc"].count().min())  # runs per length, one per seed
    return {"seeds": seeds, "lengths": sorted(int(e) for e in runs["schedule"].unique()), "pooled_sd": sd,
            "pooled_dof": dof}  # fmt: skip


def against_seeds(gap: float, noise: dict[str, Any] | None) -> str | None:
    """Where a gap between two single runs, already beyond its tie band (which counts the validation
    images only), stands against how far seeds alone move single runs (``seed_noise``): beyond both of
    its limits ("apart"), within both ("within") or between them ("unsettled": the two estimates of the
    spread disagree); None without seeds measured at that length."""
    if noise is None:
        return None
    lower, upper = sorted((noise["limit"], noise["pooled_limit"]))
    return "apart" if gap > upper else "within" if gap <= lower else "unsettled"


def _reversed(first: dict[str, Any], last: dict[str, Any]) -> str | None:
    """Whether the first rung's gain of the scaled rate at a batch size (``scaled_gain``) and its last
    longer rung's have opposite signs, each beyond its tie band and neither within what seeds alone can
    make it: "apart" where both are beyond that too, "unmeasured" where a gap's seed variation is not
    measured (the text says so); None otherwise."""
    verdicts = {first["verdict"], last["verdict"]}
    if first["gain"] * last["gain"] >= 0 or not verdicts <= {"apart", "unmeasured"}:
        return None
    return "apart" if verdicts == {"apart"} else "unmeasured"


def scaled_gain(
    size: int, scaled: float, held: float, epochs: int, n_val: int, runs: pd.DataFrame
) -> dict[str, Any]:
    """The scaled rate's gain over the held one at a batch size after ``epochs`` epochs, with the tie band
    of the two accuracies and, beyond it, where the gap stands against the seeds' spread in the chosen
    configuration's schedule ``runs`` at that length (``against_seeds``; "unmeasured" without one)."""
    band = selection.tie_band(max(scaled, held), n_val)
    noise = seed_noise(runs, epochs)
    verdict = None  # within the band: the band says it
    if abs(scaled - held) > band:
        verdict = against_seeds(abs(scaled - held), noise) or "unmeasured"
    # why the seeds' spread is not measured there (``seed_noise`` is None): the epoch stage ran no schedule
    # of that length, one seed of it, or seeds that all scored alike (a spread of zero bounds nothing)
    here = runs.loc[runs["schedule"] == epochs, "val_acc"]
    why = None if noise else "length" if here.empty else "one seed" if len(here) < 2 else "alike"
    return {
        "batch_size": size,
        "gain": float(scaled - held),
        "band": band,
        "epochs": epochs,
        "seeds": noise,
        "verdict": verdict,
        "unmeasured": why,
    }


def later_gains(
    last: pd.DataFrame, base_lr: float, base_batch: int, n_val: int, runs: pd.DataFrame
) -> list[dict[str, Any]]:
    """The scaled rate against the held one at the longer rungs of successive halving, where both points
    of a batch size reached them: the first rung's comparison (the scaling table's) can reverse after
    more epochs, so the text gives both. One entry per batch size, smallest first, with each rung's
    ``scaled_gain``."""
    stage = last[last["study"].isin(STAGES["batch"]) & (last["rung"] > 0)]
    scaled = stage[stage["study"] == "scaling"]
    held = stage[(stage["study"] == "grid") & np.isclose(stage["lr"], base_lr)]
    pairs = scaled.merge(held, on=["batch_size", "rung"], suffixes=("_scaled", "_held"))
    out = []
    for size, rows in pairs[pairs["batch_size"] != base_batch].groupby("batch_size"):
        gains = [
            scaled_gain(
                int(size), r["val_acc_scaled"], r["val_acc_held"], int(r["epoch_scaled"]), n_val, runs
            )
            for _, r in rows.sort_values("rung").iterrows()
        ]
        out.append({"batch_size": int(size), "gains": gains})
    return out


def seed_noise(runs: pd.DataFrame, epochs: int) -> dict[str, Any] | None:
    """How far two single runs that differ only by their seeds fall apart, from the chosen configuration's
    schedule ``runs``: the runs of the ``epochs``-long schedule (their range and standard deviation), and a
    rough 95% limit for the difference of two single runs, t · √2 · SD, from that length's seeds alone
    (``limit``, n − 1 degrees of freedom) and from the seeds' variance pooled over every length
    (``pooled_limit``, the sum of their degrees of freedom): the first assumes less, the second has more
    runs behind it, so the report says where they disagree. None with fewer than two seeds at that length
    (or no such length), or where they all scored alike: a spread of zero bounds nothing."""
    from scipy.special import stdtrit  # here: rendering a report without this stage never imports scipy

    here = runs.loc[runs["schedule"] == epochs, "val_acc"]
    if len(here) < 2 or here.nunique() == 1:
        return None
    sd, pooled_sd, dof = float(here.std(ddof=1)), *pooled_seed_sd(runs)
    return {
        "seeds": len(here),
        "lo": float(here.min()),
        "hi": float(here.max()),
        "sd": sd,
        "limit": float(stdtrit(len(here) - 1, 0.975)) * math.sqrt(2) * sd,
        "pooled_sd": pooled_sd,
        "pooled_dof": dof,
        "pooled_limit": float(stdtrit(dof, 0.975)) * math.sqrt(2) * pooled_sd,
    }


def pooled_seed_sd(runs: pd.DataFrame) -> tuple[float, int]:
    """The standard deviation of validation accuracy between seeds of one configuration, pooled over the
    schedule lengths (each length's variance weighted by its degrees of freedom), and those degrees of
    freedom (0, with a NaN deviation, where no length has two seeds)."""
    by = runs.groupby("schedule")["val_acc"]
    dof = (by.count() - 1).clip(lower=0)
    total = int(dof.sum())
    if not total:
        return math.nan, 0
    return math.sqrt(float((dof * by.var(ddof=1).fillna(0)).sum()) / total), total


def schedule_facts(runs: pd.DataFrame, choice: pd.Series, n_train: int, n_val: int) -> dict[str, Any]:
    """The schedule lengths the chosen configuration trained for, over seeds: each length's mean validation
    accuracy, spread, gap below the best mean and that gap's paired band; the choice re-checked against
    its rule (the shortest length tied with the best, ``selection.shortest_tied``). Also what these runs
    say of the first stages' unpaired band: the paired band of two single runs of one configuration (two
    seeds of one length; the median over lengths and pairs of seeds) beside the unpaired band there."""
    lengths = selection.shortest_tied(runs, "schedule")
    kept = lengths[lengths["tied"]].iloc[0]
    chosen = int(kept["schedule"])
    require(chosen == int(choice["epochs"]), "the epoch count is the shortest schedule tied with the best")
    tied = [int(e) for e in lengths.loc[lengths["tied"], "schedule"]]
    require(
        tied == sorted(int(e) for e in runs[runs["tied"]]["schedule"].unique()),
        "the stored schedules tied with the best are the rule's",
    )
    stats = runs.groupby("schedule")["val_acc"].agg(["std", "min", "max"]).reset_index()
    table = lengths.merge(stats, on="schedule").rename(columns={"std": "sd"})
    table = table.assign(steps=table["schedule"] * math.ceil(n_train / int(choice["batch_size"])))
    best = table[table["band"].isna()].iloc[0]  # the rule's best: the one length with no band against itself
    shorter = table[table["schedule"] < chosen]
    # lengths whose mean accuracy equals the best's (the same count of right images): a tie, which the
    # rule breaks by validation loss, then length; the text names them with the best
    equal = [int(e) for e in table.loc[(table["gap"] == 0) & table["band"].notna(), "schedule"]]
    # the next length below the best by a gap too small to print: how many right images apart they are
    second = table[table["gap"] > 0].sort_values(["gap", "schedule"]).head(1)
    seeds = int(runs.groupby("schedule")["seed"].count().min())
    close = None
    if len(second) and fmt.pct(float(second["val_acc"].iloc[0])) == fmt.pct(float(best["val_acc"])):
        fewer = round(float(second["gap"].iloc[0]) * n_val * seeds)
        close = {"schedule": int(second["schedule"].iloc[0]), "images": fewer, "scores": n_val * seeds}
    pairs = []
    for _, g in runs.groupby("schedule"):
        rows = [np.array([r], dtype=float) for r in g.sort_values("seed")["correct"]]
        pairs += [selection.paired_band(x, y) for i, x in enumerate(rows) for y in rows[i + 1 :]]
    return {
        "lengths": [int(e) for e in table["schedule"]],
        "count": len(table),  # how many lengths
        "seeds": seeds,
        "runs": runs,
        "table": table,
        "chosen": chosen,
        "chosen_acc": float(kept["val_acc"]),
        "best": int(best["schedule"]),
        "best_acc": float(best["val_acc"]),
        "equal": equal,
        "close": close,
        "equal_by": tie_break(table.set_index("schedule")["val_loss"], int(best["schedule"]), equal),
        "kept": table[table["schedule"] == chosen].iloc[0].to_dict(),  # its gap and band (NaN: the best)
        "tied": tied,
        # every seed's run of the kept length scored below every seed's run of the best (a tie that is not
        # an equality); False where the kept length is the best, or with one seed a length
        "below": chosen != int(best["schedule"])
        and bool(pairs)
        and bool(runs.loc[runs["schedule"] == chosen, "val_acc"].max() < best["min"]),
        # the next shorter length, which the validation set separates from the best: why not fewer epochs
        "shorter": shorter.iloc[-1].to_dict() if len(shorter) else None,
        # longer lengths separated from the best: more epochs than those did measurably worse
        "longer_untied": [int(e) for e in table["schedule"] if e > chosen and int(e) not in tied],
        "replicate": float(np.median(pairs)) if pairs else None,  # None: one seed per length
        # each length's lowest and highest validation accuracy over seeds: how far seeds alone moved it
        "range": {int(e): (float(lo), float(hi)) for e, lo, hi in table[["schedule", "min", "max"]].values},
        # the length of the lowest mean validation loss (None when every length's loss is NaN)
        "lowest_loss": table.loc[table["val_loss"].idxmin()].to_dict()
        if table["val_loss"].notna().any()
        else None,
        # the spread of validation accuracy between seeds of one configuration, pooled over the lengths
        "seed_sd": pooled_seed_sd(runs)[0] if pairs else None,
        "unpaired": selection.tie_band(float(best["val_acc"]), n_val),
    }


def tie_break(losses: pd.Series, best: int, equal: list[int]) -> str | None:
    """How ``selection.best_first`` made ``best`` the best of the lengths (or epochs) whose mean accuracy
    equals its own (``equal``; ``losses``: mean validation loss by length): "loss" (its loss is the lowest
    of them), "order" (others share that loss, and it comes first: the shortest), "nan" (no loss among
    them is a number); None without such lengths."""
    if not equal:
        return None
    loss = losses.where(np.isfinite(losses), np.inf)  # NaN counts as the worst, as best_first counts it
    if not np.isfinite(loss[best]):
        return "nan"
    return "loss" if bool((loss[equal] > loss[best]).all()) else "order"


def epoch_facts(curve: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
    """The longest schedule's runs scored after every epoch, which choose nothing: the epoch of the best
    mean validation accuracy over seeds and the epochs the validation set does not separate from it
    (paired over seeds and images, as the schedules are: ``selection.shortest_tied``), the run of tied
    epochs around it apart from tied epochs elsewhere (with their largest gap, band, spread between seeds,
    and whether every seed was below its own run at the best epoch there), the lowest mean validation
    loss, where early stopping would have ended each seed's run (``stop``) and the mean scores after the
    last epoch. Every seed is scored after every epoch, and the curve's last epoch is the schedule table's
    run of that length, image by image: both checked."""
    length = int(curve["epoch"].max())
    every = curve.groupby("seed")["epoch"].apply(lambda e: sorted(e.tolist()) == list(range(1, length + 1)))
    require(bool(every.all()), f"every seed of the curve is scored once after each of its {length} epochs")
    end = curve[curve["epoch"] == length].sort_values("seed")
    ran = runs[runs["schedule"] == length].sort_values("seed")
    require(
        end["seed"].tolist() == ran["seed"].tolist()
        and np.allclose(end["val_acc"], ran["val_acc"], rtol=0, atol=1e-12)
        and [list(c) for c in end["correct"]] == [list(c) for c in ran["correct"]],
        "the curve's last epoch is the longest schedule's runs, image by image",
    )
    epochs = selection.shortest_tied(curve, "epoch")
    best = epochs[epochs["band"].isna()].iloc[0]  # shortest_tied's best: no band against itself
    # epochs whose mean accuracy equals the best's (the same count of right images): tied with it exactly;
    # ``selection.best_first`` picked the best of them by validation loss, then order (``tie_break``)
    equal = [int(e) for e in epochs.loc[(epochs["gap"] == 0) & epochs["band"].notna(), "epoch"]]
    spans = _runs([int(e) for e in epochs.loc[epochs["tied"], "epoch"]])
    around = next(r for r in spans if r[0] <= int(best["epoch"]) <= r[1])
    away = epochs[epochs["tied"] & ~epochs["epoch"].between(*around)]
    acc = curve.pivot(index="epoch", columns="seed", values="val_acc")
    apart = acc.max(axis=1) - acc.min(axis=1)  # how far apart the seeds' runs are at each epoch
    below = (acc.loc[away["epoch"]] < acc.loc[int(best["epoch"])]).all(axis=None)  # every seed, every epoch
    # a seed whose loss went NaN makes that epoch's mean loss NaN (then the worst), not the others' mean
    means = curve.groupby("epoch")[["train_loss", "train_acc", "val_loss", "val_acc"]].agg(
        lambda v: v.mean(skipna=False)
    )
    loss = means["val_loss"].where(np.isfinite(means["val_loss"]), np.inf)
    stops = []
    for seed, g in curve.sort_values("epoch").groupby("seed"):
        at = g[g["stop"]]
        require(len(at) <= 1, f"early stopping ends seed {seed}'s run at most once")
        stops.append(
            {
                "seed": int(seed),
                "epoch": int(at["epoch"].iloc[0]) if len(at) else None,  # None: it ran the whole schedule
                "val_acc": float(at["val_acc"].iloc[0]) if len(at) else None,  # at that epoch
                "end_acc": float(g["val_acc"].iloc[-1]),
            }
        )
    return {
        "length": length,
        "seeds": int(curve["seed"].nunique()),
        "best": {
            "epoch": int(best["epoch"]),
            "val_acc": float(best["val_acc"]),
            "equal": equal,
            "by": tie_break(means["val_loss"], int(best["epoch"]), equal),
        },
        # the other epochs of the run of consecutive epochs tied with the best around it, and the other runs
        # of tied epochs, as runs (first, last)
        "near": _runs([e for e in range(around[0], around[1] + 1) if e != int(best["epoch"])]),
        "apart": [(a, b) for a, b in spans if (a, b) != around],
        "apart_gap": float(away["gap"].max()) if len(away) else None,
        "apart_band": float(away["band"].max()) if len(away) else None,
        "apart_spread": float(apart[away["epoch"]].max()) if len(away) else None,
        "apart_below": bool(below) if len(away) else None,
        "by_loss": {"epoch": int(loss.idxmin()), "val_loss": float(means.loc[loss.idxmin(), "val_loss"])},
        "stops": stops,
        "last": means.loc[length].to_dict(),
        # which mean loss after the last epoch is not a number (a seed's diverged), if either
        "last_nan": next(
            (k for k in ("train_loss", "val_loss") if not np.isfinite(means.loc[length, k])), None
        ),
    }


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as runs of consecutive ones, (first, last) each: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        out = [*out[:-1], (out[-1][0], v)] if out and v == out[-1][1] + 1 else [*out, (v, v)]
    return out


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
    seeds = f"the {len(final)} final models' test_acc (q3 table final, one row per seed)"
    stored = "column {} of q3 table interval, checked against " + seeds
    return {
        "mean": sourced(float(ci["mean"]), f"mean of {seeds}"),
        "std": sourced(float(ci["std"]), f"sample standard deviation of {seeds}"),
        "lo": sourced(float(ci["lo"]), stored.format("lo") + ": Student-t interval for the mean"),
        "hi": sourced(float(ci["hi"]), stored.format("hi") + ": Student-t interval for the mean"),
        "n": sourced(len(final), f"rows of q3 table final: {seeds}"),
        "level": sourced(float(ci["level"]), "column level of q3 table interval"),
        "quantile": sourced(float(ci["quantile"]), "column quantile of q3 table interval"),
        "t": sourced(float(ci["t"]), "column t of q3 table interval: Student's t quantile, n − 1 df"),
        "seeds": [sourced(s, "column seed of q3 table final") for s in final["seed"].astype(int).tolist()],
        "test_se": sourced(
            binomial_se(float(ci["mean"]), n_test),
            f"binomial standard error sqrt(p(1−p)/n) of the mean of {seeds}, n = {n_test} test images",
        ),
        # how many final models trained together in one stacked network: 1, each alone in its unit
        "stacked": sorted(int(k) for k in final["stacked"].unique()),
        "min": sourced(float(acc.min()), f"lowest of {seeds}"),
        "max": sourced(float(acc.max()), f"highest of {seeds}"),
    }


def confusion_facts(confusion: pd.DataFrame, seed: int, most: int = 3) -> dict[str, Any]:
    """The matrix of one model and its ``most`` most frequent confusions, with every pair as frequent as
    the last of them (a tie is not a ranking), grouped by count, most frequent first; whether the other
    seeds' models share the top pair; and the worst digit, with the digits its error rate is not
    separated from (two standard errors of the difference of two binomial rates: ``close``) and the other
    seeds' worst digits."""
    cm = confusion[confusion["seed"] == seed].pivot(index="true", columns="pred", values="count")
    off = confusion[(confusion["seed"] == seed) & (confusion["true"] != confusion["pred"])]
    off = off[off["count"] > 0].sort_values(["count", "true", "pred"], ascending=[False, True, True])
    top = off[off["count"] >= off["count"].iloc[min(most, len(off)) - 1]] if len(off) else off
    errors = int(off["count"].sum())
    counts = cm.sum(axis=1).to_numpy()
    per_class = 1 - np.diag(cm.to_numpy()) / counts
    order = np.argsort(-per_class, kind="stable")
    worst = int(order[0])

    def apart(i: int) -> bool:
        """Whether the worst digit's error rate is more than two standard errors of the difference of two
        binomial rates above digit ``i``'s."""
        se = math.hypot(*(binomial_se(per_class[j], counts[j]) for j in (worst, i)))
        return bool(per_class[worst] - per_class[i] > 2 * se)

    close = [(int(cm.index[i]), float(per_class[i])) for i in order[1:] if not apart(int(i))]

    def leading(rows: pd.DataFrame) -> set[tuple[int, int]]:
        """The pairs with a model's largest error count: several when they tie."""
        rows = rows[rows["count"] > 0]
        return set(
            map(tuple, rows[rows["count"] == rows["count"].max()][["true", "pred"]].astype(int).to_numpy())
        )

    wrong = confusion[confusion["true"] != confusion["pred"]]
    tops = [leading(rows) for _, rows in wrong.groupby("seed")]
    ours = leading(off)
    worst_of = {}  # the other seeds' models' worst digits
    for other, rows in confusion[confusion["seed"] != seed].groupby("seed"):
        m = rows.pivot(index="true", columns="pred", values="count")
        worst_of[int(other)] = int(m.index[np.argmax(1 - np.diag(m.to_numpy()) / m.sum(axis=1).to_numpy())])
    return {
        "seeds": len(tops),
        "same_top": bool(ours) and all(ours <= t for t in tops),  # every seed leads with this one's pairs
        # the digits whose error rates the worst one's is not separated from, highest first
        "close": close,
        "n_close": len(close),
        "others": len(per_class) - 1,
        # the other seeds' models' worst digits, each with the seeds whose worst it is
        "worst_elsewhere": [
            {"digit": d, "seeds": [s for s, w in worst_of.items() if w == d]}
            for d in sorted(set(worst_of.values()))
        ],
        "matrix": cm,
        "seed": seed,
        "errors": errors,
        "groups": [
            (int(n), [(int(t), int(p)) for t, p in rows[["true", "pred"]].to_numpy()])
            for n, rows in top.groupby("count", sort=False)
        ],
        "worst": int(cm.index[worst]),
        "worst_rate": float(per_class[worst]),
    }
