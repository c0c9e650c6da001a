"""Question 4's verdicts: which model is best, whether depth helped among the ResNets, where LeNet-5
stands; each from tests on the stored results, as facts and case codes.

Every comparison is a difference of mean test accuracies, tested two ways: with Welch's t-test over seeds
(unequal variances, its own degrees of freedom) and with McNemar's exact test on the same test images (the
largest p over the seeds). The comparisons behind one statement (the best model against each other, the
depth steps, LeNet-5 against each ResNet) are one family, Holm-corrected at level ``ALPHA`` for each test.
With one seed the seed-to-seed variation is unmeasured and the verdicts say so instead of calling a gap
real. The sentences that state the verdicts are in templates/q4.words.j2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from report.provenance import sourced
from report.questions import stats

Answers = dict[tuple[str, int], np.ndarray]  # (model, seed) -> per test image: classified correctly

ALPHA = 0.05  # family-wise level of the Holm-corrected tests
RESNETS = ("resnet18", "resnet50", "resnet101")
# residual blocks per stage of torchvision's ResNets (He et al. 2016, Table 1), which experiments/models.py
# builds: the depth section's facts about them (tests/test_q4_models.py checks them against torchvision)
STAGE_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
EXPANSION = 4  # a bottleneck block's output channels over its inner width (a basic block's: 1)
WITHIN, ABOVE, BELOW = "not significant", "significantly higher", "significantly lower"  # Holm-corrected
UNMEASURED = "unmeasured"  # the test could not be run (one seed, or no per-image answers)


def compare(a: pd.Series, b: pd.Series, answers: Answers | None = None) -> dict[str, Any]:
    """How ``b`` differs from ``a`` in mean test accuracy, in percentage points, with Welch's test over
    seeds and McNemar's exact test on the same test images (the verdicts are set by ``family``, which
    corrects the p-values of one statement's comparisons together)."""
    delta = float(b["acc"] - a["acc"])
    test = stats.welch(a["acc"], a["acc_std"] ** 2, a["seeds"], b["acc"], b["acc_std"] ** 2, b["seeds"])
    pair = f"{b['title']} against {a['title']}"
    seeds = f"{b['seeds']} and {a['seeds']} seeds"
    gap = f"mean test_acc of {b['title']} minus that of {a['title']}, over {seeds} (q4 table results)"
    welch = f"Welch's t-test over seeds, {pair} (q4 table results)"
    return {
        "a": a["title"],
        "b": b["title"],
        "model": b["model"],
        "delta_pp": sourced(100 * delta, gap),
        "abs_pp": sourced(100 * abs(delta), gap),
        "direction": "higher" if delta > 0 else "lower" if delta < 0 else "equal",
        **(
            {k: sourced(v, f"{k} of {welch}") for k, v in test.items()}
            if test
            else {"t": None, "df": None, "p": None}
        ),
        "images_p": sourced(
            images_p(answers or {}, a["model"], b["model"]),
            f"McNemar's exact test on the same images, {pair}, largest p over the seeds (q4 table answers)",
        ),
    }


def images_p(answers: Answers, a: str, b: str) -> float | None:
    """McNemar's exact p-value for ``a`` against ``b`` on the same test images, the largest over the seeds
    both ran (a gap counts as beyond test-set sampling only if it is so for every seed); a seed whose
    images favour the other model than the mean gap does counts as p = 1."""
    seeds = sorted({s for m, s in answers if m == a} & {s for m, s in answers if m == b})
    if not seeds:
        return None
    counts = [stats.discordant(answers[a, s], answers[b, s]) for s in seeds]
    ahead = sum(only_b - only_a for only_a, only_b in counts)  # > 0: b ahead over all seeds
    return max(
        stats.mcnemar(only_a, only_b) if (only_b - only_a) * ahead > 0 else 1.0 for only_a, only_b in counts
    )


def family(gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm's correction over the comparisons of one statement, for each test, and the verdicts at ``ALPHA``:
    ``verdict`` from Welch's test over seeds, ``images_verdict`` from McNemar's on the test images."""
    for key, verdict in (("p", "verdict"), ("images_p", "images_verdict")):
        adjusted = stats.holm([g[key] for g in gaps])
        for g, q in zip(gaps, adjusted, strict=True):
            how = f"{getattr(g[key], 'how', key)}, Holm-corrected over the {len(gaps)} comparisons"
            g[f"{key}_adj"] = sourced(q, how)
            g[verdict] = (
                UNMEASURED if q is None else WITHIN if q >= ALPHA else ABOVE if g["delta_pp"] > 0 else BELOW
            )
    return gaps


def answers_by_run(answers: pd.DataFrame) -> Answers:
    """Per (model, seed), which test images it classified correctly, in image order."""
    ordered = answers.sort_values(["model", "seed", "image"])
    return {
        (str(m), int(s)): g["correct"].to_numpy(dtype=bool)
        for (m, s), g in ordered.groupby(["model", "seed"])
    }


def best_claim(summary: pd.DataFrame, answers: Answers | None = None) -> dict[str, Any]:
    """Which model is best, and which others this run cannot separate from it.

    ``case`` says which sentence ``words.best`` in templates/q4.words.j2 writes: "only" (one model, no
    ranking), "unmeasured" (one seed: the runner-up's gap cannot be judged), "tied" (some models with the
    best's very accuracy, listed in ``equal``, or not significantly below it, in ``tied``) or "clear"
    (every gap significant).
    """
    best = summary.iloc[0]
    gaps = family([compare(best, row, answers) for _, row in summary.iloc[1:].iterrows()])
    equal = [g["b"] for g in gaps if g["delta_pp"] == 0]  # the same accuracy: no lead to test
    tied = [g["b"] for g in gaps if g["verdict"] == WITHIN and g["b"] not in equal]
    if not gaps:
        case = "only"
    elif gaps[0]["verdict"] == UNMEASURED:
        case = "unmeasured"
    elif tied or equal:
        case = "tied"
    else:
        case = "clear"
    return {
        "title": best["title"],
        "model": best["model"],
        "case": case,
        "equal": equal,
        "tied": tied,
        "runner_up": gaps[0] if gaps else None,
        "gaps": gaps,
        "family": len(gaps),  # the comparisons Holm's correction spans
        "alpha": ALPHA,
    }


def depth_claim(
    summary: pd.DataFrame, answers: Answers | None = None, left_out: dict[str, str] | None = None
) -> dict[str, Any] | None:
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
    steps = [compare(present[i], present[i + 1], answers) for i in range(len(present) - 1)]
    if len(present) == 3:
        steps.append(compare(present[0], present[2], answers))
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
    bottleneck = [r["model"] for r in present if STAGE_BLOCKS[r["model"]] != STAGE_BLOCKS["resnet18"]]
    pure = [s for s in steps if {s["a"], s["b"]} == {rows[m]["title"] for m in bottleneck}]
    return {
        "steps": steps,
        "case": case,
        "shallow": present[0]["title"],
        "deepest": present[-1]["title"],
        # the shallowest has basic blocks, the deepest bottleneck ones: their gap is not depth's alone
        "design_too": present[0]["model"] == "resnet18",
        # the step between the two bottleneck ResNets, which differ in depth alone (None when it is the
        # overall step or either is missing), and which way it is significant ("more", "less" or None)
        "depth_only": pure[0] if pure and pure[0] is not steps[-1] else None,
        "depth_only_side": {ABOVE: "more", BELOW: "less"}.get(pure[0]["verdict"]) if pure else None,
        # ResNets that ran but did not train, so are not compared (``left_out``: the run's failed models,
        # name to title)
        "left_out": [t for m, t in (left_out or {}).items() if m in RESNETS],
        # the steps other than the overall one that are significant, for the "mixed" case to name
        "apart": [s for s in steps[:-1] if s["verdict"] in (ABOVE, BELOW)],
        "order": by_estimate(present),
        "alpha": ALPHA,
    }


def by_estimate(rows: list[pd.Series]) -> list[list[str]]:
    """Titles by point estimate, best first, in groups of equal accuracy: a tie is not an order."""
    groups: dict[float, list[str]] = {}
    for r in sorted(rows, key=lambda r: -r["acc"]):
        groups.setdefault(float(r["acc"]), []).append(r["title"])
    return list(groups.values())


def lenet_claim(
    summary: pd.DataFrame, answers: Answers | None = None, left_out: dict[str, str] | None = None
) -> dict[str, Any] | None:
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
    gaps = family(
        [compare(rows["lenet5"], rows[m], answers) for m in RESNETS if m in rows]
    )  # positive: ResNet higher
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
        "left_out": [t for m, t in (left_out or {}).items() if m in RESNETS],  # ran, did not train
        "alpha": ALPHA,
    }


def tiers(summary: pd.DataFrame, answers: Answers | None = None) -> dict[str, Any]:
    """The models in tiers, best first: a tier ends only where every model above the cut is
    significantly more accurate than every model below it, by every test that could be run (Welch's over
    seeds, McNemar's on the same test images), Holm-corrected over all pairs as one family. So a model is
    placed below another only where the tests say so; models within one tier are not ordered.

    ``tiers`` lists each tier's models with ``unseparated`` (no pair within it significant) and, where
    some pair within it is, those ``separated`` pairs; ``case`` is "only" (one model), "unmeasured" (no
    test could be run), "one" (a single tier) or "tiers".
    """
    rows = [row for _, row in summary.iterrows()]
    pairs = family(
        [compare(rows[i], rows[j], answers) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    )
    apart = {(g["a"], g["b"]): _separated(g) for g in pairs}
    titles = [str(r["title"]) for r in rows]
    if len(rows) < 2:
        return {"case": "only", "tiers": [{"models": titles, "unseparated": True, "separated": []}]}
    if all(g["verdict"] == UNMEASURED and g["images_verdict"] == UNMEASURED for g in pairs):
        return {
            "case": "unmeasured",
            "tiers": [{"models": titles, "unseparated": True, "separated": []}],
        }
    cuts = [k for k in range(1, len(titles)) if all(apart[a, b] for a in titles[:k] for b in titles[k:])]
    bounds = [0, *cuts, len(titles)]
    groups = [titles[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    out = []
    for models in groups:
        inside = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :] if apart[a, b]]
        out.append({"models": models, "unseparated": not inside, "separated": inside})
    return {
        "case": "one" if len(out) == 1 else "tiers",
        "tiers": out,
        "pairs": len(pairs),
        "comparisons": pairs,  # the tests the tiers rest on, for the page's provenance
        "tests": [
            name
            for name, key in (("welch", "verdict"), ("mcnemar", "images_verdict"))
            if any(g[key] != UNMEASURED for g in pairs)
        ],
        "alpha": ALPHA,
    }


def _separated(g: dict[str, Any]) -> bool:
    """Significant by every test that could be run, and by at least one."""
    verdicts = [v for v in (g["verdict"], g["images_verdict"]) if v != UNMEASURED]
    return bool(verdicts) and all(v != WITHIN for v in verdicts)
