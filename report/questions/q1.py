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

from report.core.config import profile_config
from report.core.errors import MissingResultError
from report.plots import q1 as plots
from report.provenance import sourced
from report.questions import Figure, Results, Table, require

LOSS_NAMES = {"ce": "CE", "mse": "MSE"}
OPTIONS = {  # the losses the evidence leaves possibly convex -> the multiple-choice option (Q1 and Q2)
    (): {"letter": "d", "text": "none"},
    ("ce",): {"letter": "a", "text": "CE"},
    ("mse",): {"letter": "b", "text": "MSE"},
    ("ce", "mse"): {"letter": "c", "text": "both"},
}
CLOSED_FORM_RTOL = 1e-8  # autograd vs closed-form Hessian, relative to the largest entry compared
ROUNDOFF = 1e3  # a violation margin (rtol) this many machine epsilons or more stands above round-off


CHECKS = ("samples", "points", "segments", "train_steps", "hidden", "surface_points")  # what sizes a study


def reduced(experiment: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """How this run's checks fall short of the full study (the ``full`` profile's config, from the
    experiment's torch-free config module): one item per shortfall, none for a full run."""
    out = []
    for name in CHECKS:
        full = getattr(profile_config(experiment, "full"), name, None)
        if name in cfg and full is not None and cfg[name] < full:
            out.append({"what": name, "have": cfg[name], "full": full})
    full = profile_config(experiment, "full").pool
    if cfg["pool"] > full:
        out.append({"what": "pool", "have": 28 // cfg["pool"], "full": 28 // full})
    return out


def autograd_check(run: Any, hessian: pd.DataFrame) -> dict[str, Any]:
    """The closed-form Hessians against autograd's Hessian-vector products at every point: in how many
    random directions, and the largest relative difference (round-off, or the build stops)."""
    if "probes" not in hessian:  # stored before the Hessians had this check: rerun, do not guess
        raise MissingResultError(
            f"the stored {run.experiment} result predates the Hessian check the report describes; "
            f"rerun it: {run.rerun}"
        )
    err = float(hessian["autograd_err"].max())
    require(
        len(hessian) > 0 and err <= CLOSED_FORM_RTOL,
        f"the closed-form Hessians agree with autograd at every point (max rel. difference {err:.2e})",
    )
    return {"probes": int(hessian["probes"].min()), "err": err}


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


CHECK_SOURCES = {  # how each number of ``summarise`` comes from the stored tables, for the page's provenance
    "points": "rows of {exp} table hessian with loss={loss}, one per random parameter point",
    "min_eig": "smallest min_eig over the rows of {exp} table hessian with loss={loss}",
    "rel_min_eig": "smallest rel_min_eig over the rows of {exp} table hessian with loss={loss}",
    "negative_points": "rows of {exp} table hessian with loss={loss} and rel_min_eig below −eig_tol",
    "violations": "rows of {exp} table segments with loss={loss} and violated true",
    "segments": "rows of {exp} table segments with loss={loss}, one per random segment",
    "max_gap": "largest gap over the rows of {exp} table segments with loss={loss}",
}


def described(row: dict[str, Any], experiment: str) -> dict[str, Any]:
    """One loss's row of ``summarise``, each number saying how it was computed from the stored tables."""
    how = {k: v.format(exp=experiment, loss=row["loss"]) for k, v in CHECK_SOURCES.items()}
    return {k: sourced(v, how[k]) if k in how else v for k, v in row.items()}


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
        sources={k: v.replace("{exp}", run.experiment) for k, v in CHECK_SOURCES.items()},
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
    by_loss = {row["loss"]: described(row, "q1") for row in summary.to_dict("records")}

    # The answer: the losses whose checks found no sign of non-convexity; the derivation says exactly CE.
    consistent = tuple(loss for loss in LOSS_NAMES if not by_loss[loss]["nonconvex"])
    require(
        consistent == ("ce",),
        f"Q1 derivation: CE convex, MSE not; losses without negative curvature "
        f"or midpoint violations in the stored checks: {', '.join(consistent).upper() or 'none'}",
    )
    answer = OPTIONS[consistent]

    exact = autograd_check(run, hessian)

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
    concave = {loss: bool(concave_steps(df["value"].to_numpy()).any()) for loss, df in slices.groupby("loss")}
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
        "reduced": reduced("q1", cfg),
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
        # the violation margin stands above float64 round-off only well above the machine epsilon: the
        # midpoint excess is a difference of means over many terms, which round by several epsilons
        "float_eps": float(np.finfo(np.float64).eps),
        "roundoff_margin": ROUNDOFF * float(np.finfo(np.float64).eps),
        "eig_tol": cfg["eig_tol"],
        "exact": exact,
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
                plots.draw_slices,
                slices,
                "Mean cross-entropy and mean squared error along the line "
                "through the origin and a trained parameter vector.",
                run,
            ),
            "curvature": Figure(
                plots.draw_curvature,
                curv,
                "Second derivative of each per-example loss in the "
                "logit z, for labels 0 and 1, with the negative parts shaded.",
                run,
            ),
        },
    }


def concave_steps(values: np.ndarray) -> np.ndarray:
    """Interior grid points where the second difference is negative beyond round-off."""
    second = values[2:] - 2 * values[1:-1] + values[:-2]
    return np.concatenate([[False], second < -1e-9 * np.abs(values).max(), [False]])
