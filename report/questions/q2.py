"""Q2 context: with a hidden layer of linear units, is CE or MSE convex in the weights?

The template derives that neither is (the loss depends on a product of weights). This module summarises
the stored checks, picks the option that matches the evidence, and stops the build if the closed-form
Hessian at the origin, the sign-flip counterexample or the loss surface disagree with the derivation.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from report.plots import q2 as plots
from report.questions import Figure, Results, Table, require
from report.questions.q1 import (
    LOSS_NAMES,
    OPTIONS,
    autograd_check,
    checks_table,
    described,
    reduced,
    summarise,
)

ORIGIN_RTOL = 1e-8  # autograd vs closed-form Hessian at the origin, relative to its largest entry
FLIP_RTOL = 1e-9  # θ and its sign flip θ′ compute the same function: equal losses up to round-off


def context(r: Results) -> dict[str, Any]:
    run = r.run("q2")
    cfg = run.config
    task = r.table("q2", "task").iloc[0]
    hessian = r.table("q2", "hessian")
    hidden = int(task["hidden"])
    model = f"{hidden} linear hidden units"
    summary = summarise(hessian, r.table("q2", "segments"), cfg["eig_tol"], model)
    by_loss = {row["loss"]: described(row, "q2") for row in summary.to_dict("records")}
    consistent = tuple(loss for loss in LOSS_NAMES if not by_loss[loss]["nonconvex"])
    require(
        consistent == (),
        "Q2 derivation: neither loss is convex in the weights; losses without "
        f"negative curvature or midpoint violations in the stored checks: {', '.join(consistent).upper()}",
    )
    answer = OPTIONS[consistent]

    origin = r.table("q2", "origin").set_index("loss")
    for loss, row in origin.iterrows():
        require(
            row["matrix_err"] <= ORIGIN_RTOL and row["spectrum_err"] <= ORIGIN_RTOL,
            f"autograd Hessian at the origin equals the closed form ({loss})",
        )
        require(row["min_eig"] < 0 < row["max_eig"], f"the Hessian at the origin is indefinite ({loss})")
        counted = (int(row["negative"]), int(row["positive"]))  # the closed form's: H, and H of +‖g‖ with c
        require(
            counted == (hidden, hidden + 1),
            f"the eigenvalues counted at the origin, {counted[0]} negative and {counted[1]} positive beyond "
            f"the run's eig_tol, are the closed form's {hidden} and {hidden + 1} ({loss})",
        )

    exact = autograd_check(run, hessian)

    sym = r.table("q2", "symmetry").set_index("loss")
    for loss, row in sym.iterrows():
        require(
            abs(row["loss_theta"] - row["loss_flipped"]) <= FLIP_RTOL * row["loss_theta"],
            f"L(θ) = L(θ′) at the trained point ({loss})",
        )
        require(row["loss_mid"] > row["loss_theta"], f"L at the midpoint of θ and θ′ exceeds L(θ) ({loss})")

    surface = r.table("q2", "surface")
    saddle = {loss: _saddle(surface[surface["loss"] == loss]) for loss in LOSS_NAMES}
    for loss, is_saddle in saddle.items():
        require(
            is_saddle,
            f"the two-weight surface has a saddle at the origin ({loss}): it falls along one "
            "diagonal and rises along the other",
        )

    def facts(loss: str) -> dict[str, Any]:
        o, s = origin.loc[loss], sym.loc[loss]
        return {
            **by_loss[loss],
            "g_norm": float(o["g_norm"]),
            "bias_curvature": float(o["bias_curvature"]),
            "origin_min": float(o["min_eig"]),
            "origin_max": float(o["max_eig"]),
            "origin_negative": int(o["negative"]),
            "origin_positive": int(o["positive"]),
            "loss_theta": float(s["loss_theta"]),
            "loss_flipped": float(s["loss_flipped"]),
            "loss_mid": float(s["loss_mid"]),
            "best_constant": float(s["best_constant"]),
            "bias": float(s["bias"]),
        }

    ce, mse = facts("ce"), facts("mse")
    a, b = ce["rel_min_eig"], mse["rel_min_eig"]
    origin_rows = origin.reset_index().assign(loss_name=lambda df: df["loss"].map(LOSS_NAMES))
    sym_rows = sym.reset_index().assign(loss_name=lambda df: df["loss"].map(LOSS_NAMES))
    return {
        "run": run,
        "answer": answer,
        "ce": ce,
        "mse": mse,
        # the gap between the two losses' most negative relative eigenvalues when they differ but read alike
        # at three significant digits (−0.99972 and −1: "−1.00" and "−1"), else None: the text prints them
        # to its precision then
        "rel_gap": abs(a - b) if a != b and float(f"{a:.3g}") == float(f"{b:.3g}") else None,
        "digits": (int(task["negative_digit"]), int(task["positive_digit"])),
        "samples": int(task["samples"]),
        "reduced": reduced("q2", cfg),
        "pool": int(task["pool"]),
        "side": 28 // int(task["pool"]),
        "features": int(task["features"]),
        "hidden": int(task["hidden"]),
        "parameters": int(task["parameters"]),
        "exact": exact,
        "train_steps": int(task["train_steps"]),
        "scale_min": cfg["scale_min"],
        "scale_max": cfg["scale_max"],
        "rtol": cfg["rtol"],
        "eig_tol": cfg["eig_tol"],
        "zero_eigs": int(task["hidden"]) * int(task["features"]),
        "matrix_err": float(origin["matrix_err"].max()),  # over both losses, as the text says
        "spectrum_err": float(origin["spectrum_err"].max()),
        "tables": {
            "checks": checks_table(summary, run),
            "origin": Table(
                origin_rows,
                {
                    "loss_name": ("Loss", "text"),
                    "g_norm": ("$\\lVert g\\rVert$", "num"),
                    "bias_curvature": ("$c$", "num"),
                    "min_eig": ("$\\lambda_{\\min}$ (autograd)", "num"),
                    "max_eig": ("$\\lambda_{\\max}$ (autograd)", "num"),
                    "negative": ("Negative eigenvalues", "int"),
                    "positive": ("Positive eigenvalues", "int"),
                    "spectrum_err": ("Spectrum vs closed form (rel.)", "sci"),
                },
                run,
            ),
            "symmetry": Table(
                sym_rows,
                {
                    "loss_name": ("Loss", "text"),
                    "loss_theta": ("$L(\\theta)$", "num"),
                    "loss_flipped": ("$L(\\theta')$", "num"),
                    "loss_mid": ("$L(\\tfrac12(\\theta+\\theta'))$", "num"),
                    "best_constant": ("Best constant predictor", "num"),
                },
                run,
            ),
        },
        "figures": {
            "surface": Figure(
                plots.draw_surface,
                surface,
                "Contour plots of the mean CE and MSE of the scalar "
                "model z = w2·w1·s over the weights w1 and w2, with the origin marked.",
                run,
            ),
            "path": Figure(
                plots.draw_path,
                r.table("q2", "path"),
                "Mean loss along the straight segment from a "
                "trained parameter vector to its sign-flipped copy, for CE and MSE.",
                run,
            ),
        },
    }


def _saddle(df: pd.DataFrame) -> bool:
    """Whether the loss at the grid point nearest the origin lies strictly between its values one grid step
    away along the two diagonals (the grid is symmetric about 0)."""
    value = df.pivot(index="w1", columns="w2", values="value").sort_index().sort_index(axis=1).to_numpy()
    i = len(value) // 2
    return bool(
        min(value[i + 1, i + 1], value[i + 1, i - 1])
        < value[i, i]
        < max(value[i + 1, i + 1], value[i + 1, i - 1])
    )
