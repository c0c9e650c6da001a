"""Q1 context: is the loss of a sigmoid unit on a linear logit convex in (w, b), for CE and for MSE?

The template derives that CE is convex and MSE is not. This module summarises the stored numerical checks
per loss, chooses the answer from that evidence, and stops the build when the evidence contradicts the
derivation. The summary helpers are shared with Q2, whose checks have the same shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from report.questions import Figure, Results, Table, require

LOSS_NAMES = {"ce": "CE", "mse": "MSE"}
OPTIONS = {"ce": {"letter": "a", "text": "CE"}, "mse": {"letter": "b", "text": "MSE"}}  # letter, option
CLOSED_FORM_RTOL = 1e-8  # autograd vs closed-form Hessian, relative to its largest entry


def summarise(hessian: pd.DataFrame, segments: pd.DataFrame, eig_tol: float, model: str) -> pd.DataFrame:
    """One row per loss: the most negative curvature found and the midpoint-test violations."""
    rows = []
    for loss in LOSS_NAMES:
        h = hessian[hessian["loss"] == loss]
        s = segments[segments["loss"] == loss]
        rows.append(
            {
                "model": model,
                "loss": loss,
                "loss_name": LOSS_NAMES[loss],
                "points": len(h),
                "min_eig": float(h["min_eig"].min()),
                "rel_min_eig": float(h["rel_min_eig"].min()),
                "negative_points": int((h["rel_min_eig"] < -eig_tol).sum()),
                "violations": int(s["violated"].sum()),
                "segments": len(s),
                "max_gap": float(s["gap"].max()),
            }
        )
    out = pd.DataFrame(rows)
    out["nonconvex"] = (out["negative_points"] > 0) | (out["violations"] > 0)
    return out


def checks_table(summary: pd.DataFrame, run: Any) -> Table:
    """The numerical checks as the report prints them (one row per model and loss)."""
    return Table(
        summary,
        {
            "model": ("Model", "text"),
            "loss_name": ("Loss", "text"),
            "points": ("Hessian points", "int"),
            "min_eig": ("Smallest eigenvalue $\\lambda_{\\min}$", "num"),
            "rel_min_eig": ("Relative $\\lambda_{\\min}/\\max|\\lambda|$", "num"),
            "negative_points": ("Points with negative curvature", "int"),
            "violations": ("Midpoint violations", "int"),
            "segments": ("Segments", "int"),
        },
        run,
        highlight=lambda row: not row["nonconvex"],
    )


def sign_change(z: np.ndarray, values: np.ndarray) -> float:
    """The midpoint of the grid interval where ``values`` changes sign (exactly one change expected)."""
    flips = np.nonzero(np.diff(np.sign(values)) != 0)[0]
    require(len(flips) == 1, f"d²ℓ/dz² changes sign exactly once on the stored grid (found {len(flips)})")
    return float((z[flips[0]] + z[flips[0] + 1]) / 2)


def context(r: Results) -> dict[str, Any]:
    run = r.run("q1")
    cfg = run.config
    task = r.table("q1", "task").iloc[0]
    hessian = r.table("q1", "hessian")
    summary = summarise(hessian, r.table("q1", "segments"), cfg["eig_tol"], "linear logit")
    by_loss = {row["loss"]: row for row in summary.to_dict("records")}

    # The answer: the losses whose checks found no sign of non-convexity; the derivation says exactly CE.
    consistent = [loss for loss in LOSS_NAMES if not by_loss[loss]["nonconvex"]]
    require(
        consistent == ["ce"],
        f"Q1 derivation: CE convex, MSE not; losses without negative curvature "
        f"or midpoint violations in the stored checks: {consistent or 'none'}",
    )
    answer = OPTIONS[consistent[0]]

    closed_err = float(hessian["closed_form_err"].max())
    require(
        closed_err <= CLOSED_FORM_RTOL,
        f"autograd Hessian equals X̃ᵀ diag(ℓ'') X̃ / N (max rel. error {closed_err:.2e})",
    )

    curv = r.table("q1", "curvature")
    ce_curv = curv[curv["loss"] == "ce"]["d2"]
    require(bool((ce_curv > 0).all()), "the CE second derivative σ(1−σ) is positive on the stored grid")
    mse = {label: curv[(curv["loss"] == "mse") & (curv["label"] == label)] for label in (0, 1)}
    crossing = {label: sign_change(df["z"].to_numpy(), df["d2"].to_numpy()) for label, df in mse.items()}
    step = float(np.diff(np.sort(curv["z"].unique())).max())
    ln2 = math.log(2)
    require(
        abs(crossing[1] + ln2) <= step and abs(crossing[0] - ln2) <= step,
        "MSE d²ℓ/dz² changes sign at z = −ln 2 (y = 1) and z = ln 2 (y = 0)",
    )

    ce_ex, mse_ex = (r.table("q1", "counterexample").set_index("loss").loc[k] for k in ("ce", "mse"))
    require(
        mse_ex["gap"] > 0 > ce_ex["gap"], "one-sample counterexample: MSE midpoint above the chord, CE below"
    )

    ray = r.table("q1", "ray")
    separable = bool(task["min_margin"] > 0)
    if separable:
        require(
            bool((np.diff(ray["loss"].to_numpy()) < 0).all()),
            "on separable data CE decreases along the ray t·θ",
        )

    slices = r.table("q1", "slice")
    concave = {
        loss: bool(_concave_steps(df["value"].to_numpy()).any()) for loss, df in slices.groupby("loss")
    }
    require(not concave["ce"] and concave["mse"], "along the plotted line CE is convex and MSE is not")
    mse_neg = hessian[hessian["loss"] == "mse"]["neg_curvature_samples"]
    params = int(task["features"]) + 1
    return {
        "run": run,
        "answer": answer,
        "ce": by_loss["ce"],
        "mse": by_loss["mse"],
        "digits": (int(task["negative_digit"]), int(task["positive_digit"])),
        "samples": int(task["samples"]),
        "positives": int(task["positives"]),
        "pool": int(task["pool"]),
        "side": 28 // int(task["pool"]),
        "features": int(task["features"]),
        "params": params,
        "rank": int(task["rank"]),
        "singular": int(task["rank"]) < params,
        "zero_features": int(task["zero_features"]),
        "scale_min": cfg["scale_min"],
        "scale_max": cfg["scale_max"],
        "rtol": cfg["rtol"],
        "eig_tol": cfg["eig_tol"],
        "closed_form_err": closed_err,
        "mse_neg_share_mean": float(mse_neg.mean()),
        "mse_neg_share_max": float(mse_neg.max()),
        "crossing_pos": crossing[1],
        "crossing_neg": crossing[0],
        "ln2": ln2,
        "grid_step": step,
        "counter": {
            "z_a": float(mse_ex["z_a"]),
            "z_b": float(mse_ex["z_b"]),
            "z_mid": float((mse_ex["z_a"] + mse_ex["z_b"]) / 2),
            "mse_a": float(mse_ex["loss_a"]),
            "mse_b": float(mse_ex["loss_b"]),
            "mse_mid": float(mse_ex["loss_mid"]),
            "mse_chord": float((mse_ex["loss_a"] + mse_ex["loss_b"]) / 2),
            "ce_mid": float(ce_ex["loss_mid"]),
            "ce_chord": float((ce_ex["loss_a"] + ce_ex["loss_b"]) / 2),
        },
        "train_steps": int(task["train_steps"]),
        "train_loss": float(task["train_loss"]),
        "train_accuracy": float(task["train_accuracy"]),
        "separable": separable,
        "min_margin": float(task["min_margin"]),
        "ray_first": (float(ray["t"].iloc[0]), float(ray["loss"].iloc[0])),
        "ray_last": (float(ray["t"].iloc[-1]), float(ray["loss"].iloc[-1])),
        "tables": {"checks": checks_table(summary, run)},
        "figures": {
            "slices": Figure(
                draw_slices,
                slices,
                "Mean cross-entropy and mean squared error along the line "
                "through the origin and a trained parameter vector.",
                run,
            ),
            "curvature": Figure(
                draw_curvature,
                curv,
                "Second derivative of each per-example loss in the "
                "logit z, for labels 0 and 1, with the negative parts shaded.",
                run,
            ),
        },
    }


def _concave_steps(values: np.ndarray) -> np.ndarray:
    """Interior grid points where the second difference is negative beyond round-off."""
    second = values[2:] - 2 * values[1:-1] + values[:-2]
    return np.concatenate([[False], second < -1e-9 * np.abs(values).max(), [False]])


def draw_slices(data: pd.DataFrame) -> Any:
    """Each loss along θ(t) = t·θ̂, one panel per loss, the trained point (t = 1) marked and the stretches
    where the curve is concave shaded."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.8))
    for ax, (loss, colour) in zip(axes, (("ce", "C0"), ("mse", "C3")), strict=True):
        df = data[data["loss"] == loss]
        ax.plot(df["t"], df["value"], color=colour)
        concave = _concave_steps(df["value"].to_numpy())
        if concave.any():
            ax.fill_between(
                df["t"], 0, df["value"], where=concave, color=colour, alpha=0.2, lw=0, label="concave stretch"
            )
        at_one = df.iloc[(df["t"] - 1).abs().argmin()]
        ax.plot([at_one["t"]], [at_one["value"]], "o", color="k", ms=4, label="trained point (t = 1)")
        ax.set_title(f"{LOSS_NAMES[loss]} along t·θ̂")
        ax.set_xlabel("t")
        ax.legend(loc="upper right", frameon=False)
    axes[0].set_ylabel("mean loss")
    fig.tight_layout()
    return fig


def draw_curvature(data: pd.DataFrame) -> Any:
    """d²ℓ/dz² for MSE (y = 0 and y = 1) and CE, with the regions of negative MSE curvature shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ce = data[(data["loss"] == "ce") & (data["label"] == 1)]
    ax.plot(ce["z"], ce["d2"], color="C0", label="CE, y = 0 or 1: σ(1−σ)")
    for label, colour in ((1, "C3"), (0, "C1")):
        df = data[(data["loss"] == "mse") & (data["label"] == label)]
        ax.plot(df["z"], df["d2"], color=colour, label=f"MSE, y = {label}")
        ax.fill_between(
            df["z"],
            0,
            df["d2"],
            where=df["d2"] < 0,
            color=colour,
            alpha=0.25,
            lw=0,
            label=f"MSE concave in z (y = {label})",
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("logit z")
    ax.set_ylabel("d²ℓ/dz²")
    ax.legend(loc="upper left", frameon=False, ncol=1, fontsize=7)
    fig.tight_layout()
    return fig
