"""Question 4's claims on synthetic stored results: the ranking, ties, depth and LeNet verdicts, the
tests behind them (Welch with Holm, McNemar) and the evidence checks that stop the report."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from report import render
from report.core.errors import EvidenceError
from report.format import join_and
from report.questions import q4 as ctx4
from report.questions import q4_claims as claims
from report.questions import stats
from tests.q4_results import TITLES, rendered, say, stored, summary, synthetic_tables


@pytest.fixture(scope="module")
def words() -> Any:
    """The macros of templates/q4.words.j2, loaded as the renderer loads them."""
    return render.words("q4")


def test_clear_winner_is_named_and_depth_verdict_follows_the_numbers(tmp_path: Path, words: Any) -> None:
    accs = {
        "lenet5": [0.900, 0.902, 0.898],
        "alexnet": [0.930, 0.931, 0.929],
        "vgg": [0.950, 0.951, 0.949],
        "resnet18": [0.960, 0.961, 0.959],
        "resnet50": [0.965, 0.966, 0.964],
        "resnet101": [0.970, 0.971, 0.969],
    }
    c = ctx4.context(stored(tmp_path, synthetic_tables(accs), seeds=3))
    assert c["ranking"] == ["ResNet-101", "ResNet-50", "ResNet-18", "VGG-16-BN", "AlexNet", "LeNet-5"]
    assert c["best"]["tied"] == [] and c["best"]["case"] == "clear"
    assert say(words.best, c["best"]) == (
        "ResNet-101 has the highest mean test accuracy, and its lead over every other model is significant "
        "(Welch's t-test, Holm-corrected at the 5% level)."
    )
    assert c["best"]["runner_up"]["abs_pp"] == pytest.approx(0.5)
    assert c["depth"]["case"] == "helped"
    assert (c["depth"]["shallow"], c["depth"]["deepest"]) == ("ResNet-18", "ResNet-101")
    assert say(words.depth, c["depth"]) == (
        "ResNet-101 is significantly more accurate than ResNet-18 (Welch's t-test, Holm-corrected at the 5% "
        "level), a gap of depth and block design together. ResNet-101 is significantly more accurate than "
        "ResNet-50, which differs from it in depth alone: more depth helped between those two under this "
        "recipe."
    )
    flat = summary({m: accs[m] for m in ("resnet18", "resnet50")} | {"resnet101": [0.9651, 0.9661, 0.9641]})
    assert say(words.depth, claims.depth_claim(flat)) == (  # the step that is depth alone is within noise
        "ResNet-101 is significantly more accurate than ResNet-18 (Welch's t-test, Holm-corrected at the 5% "
        "level), a gap of depth and block design together. Against ResNet-50, which differs from it in depth "
        "alone, ResNet-101's gap is not significant, so this run does not show an effect of depth alone."
    )
    two = summary({m: accs[m] for m in ("resnet18", "resnet101")})
    assert say(words.depth, claims.depth_claim(two)).endswith(
        "a gap of depth and block design together. This run has no pair of ResNets that differ in depth "
        "alone, and it cannot tell depth's part from the block design's."
    )
    deep = summary({m: accs[m] for m in ("resnet50", "resnet101")})
    assert say(words.depth, claims.depth_claim(deep)) == (
        "More depth helped under this recipe: ResNet-101 is significantly more accurate than ResNet-50, "
        "which differs from it in depth alone (Welch's t-test, Holm-corrected at the 5% level)."
    )
    assert c["lenet"]["case"] == "below"
    assert all(g["verdict"] == claims.ABOVE for g in c["lenet"]["gaps"])
    assert (
        say(words.lenet, c["lenet"])
        == "LeNet-5 is significantly less accurate than every ResNet (Welch's t-test, Holm-corrected at the "
        "5% level)."
    )
    assert c["pareto"] == ["LeNet-5", "AlexNet", "VGG-16-BN", "ResNet-18", "ResNet-50", "ResNet-101"]
    assert not c["substitute"] and not c["subset"] and c["dataset"] == "SVHN"


def test_gaps_the_test_does_not_separate_are_reported_as_ties(tmp_path: Path, words: Any) -> None:
    accs = {
        "lenet5": [0.955, 0.950, 0.945],
        "resnet18": [0.960, 0.950, 0.940],
        "resnet50": [0.958, 0.948, 0.952],
        "resnet101": [0.949, 0.953, 0.958],
    }
    c = ctx4.context(stored(tmp_path, synthetic_tables(accs), seeds=3))
    assert c["best"]["title"] == "ResNet-101" and c["best"]["case"] == "tied"
    assert set(c["best"]["tied"]) == {"LeNet-5", "ResNet-18", "ResNet-50"}
    tied = join_and(c["best"]["tied"])
    assert say(words.best, c["best"]) == (
        f"ResNet-101 has the highest mean test accuracy, but {tied} are not significantly below it "
        "(Welch's t-test, Holm-corrected at the 5% level), so this run does not separate them."
    )
    assert all(s["verdict"] == claims.WITHIN for s in c["depth"]["steps"])
    assert c["depth"]["case"] == "no_effect"
    assert say(words.depth, c["depth"]) == (
        "No gap among the ResNets survives Holm's correction (Welch's t-test at the 5% level; by point "
        "estimate ResNet-101 > ResNet-50 > ResNet-18): this run finds no significant effect of depth, which "
        "with so few seeds is not evidence that there is none."
    )
    assert c["lenet"]["case"] == "within"
    assert (
        say(words.lenet, c["lenet"])
        == "No gap between LeNet-5 and a ResNet is significant (Welch's t-test, Holm-corrected at the 5% "
        "level)."
    )


def test_single_seed_says_noise_is_unmeasured_and_flags_subset_and_substitute(
    tmp_path: Path, words: Any
) -> None:
    accs = {"lenet5": [0.91], "resnet18": [0.90], "resnet101": [0.92]}
    tables = synthetic_tables(accs, n_test=200, dataset="fashion-mnist", train_used=256)
    c = ctx4.context(stored(tmp_path, tables, seeds=1))
    assert c["single_seed"] and c["best"]["runner_up"]["p_adj"] is None
    assert c["best"]["case"] == "unmeasured" and c["best"]["runner_up"]["b"] == "LeNet-5"
    assert say(words.best, c["best"]) == (
        "ResNet-101 has the highest test accuracy in this single-seed run; how much of its lead over "
        "LeNet-5 is seed-to-seed variation is not measured. Even on the same test images the lead is within "
        "what test-set sampling produces (McNemar's exact test, Holm-corrected at the 5% level)."
    )
    assert c["depth"]["case"] == "unmeasured" and c["depth"]["order"] == [["ResNet-101"], ["ResNet-18"]]
    assert say(words.depth, c["depth"]) == (
        "With one seed the noise of these gaps is unmeasured, so the ordering of the ResNets by point "
        "estimate (ResNet-101 > ResNet-18) is not evidence that depth helped or hurt."
    )
    accuracies = [("ResNet-18", 0.4325), ("ResNet-101", 0.45), ("ResNet-50", 0.4325)]
    order = claims.by_estimate([pd.Series({"title": t, "acc": a}) for t, a in accuracies])
    tied = {**c["depth"], "order": order}
    assert "(ResNet-101 > ResNet-18 = ResNet-50)" in say(words.depth, tied)  # equal accuracies: no order
    assert c["lenet"]["case"] == "unmeasured" and c["lenet"]["higher"] == ["ResNet-101"]
    assert say(words.lenet, c["lenet"]) == (
        "In this single-seed run ResNet-101 scored above LeNet-5; seed noise is unmeasured, so the "
        "ordering is not established."
    )
    assert c["substitute"] and c["subset"] and c["dataset"] == "Fashion-MNIST"
    assert [s["verdict"] for s in c["depth"]["steps"]] == [claims.UNMEASURED]


def test_a_single_model_has_no_ranking_and_no_depth_or_lenet_claim(words: Any) -> None:
    s = summary({"resnet18": [0.90, 0.91]})
    best = claims.best_claim(s)
    assert best["case"] == "only" and best["runner_up"] is None and best["tied"] == []
    assert say(words.best, best) == ""  # the tiers say it, once
    only = claims.tiers(s)
    assert say(words.tiers, {**only, "others": ""}) == (
        "ResNet-18 is the only model compared, so there is nothing to rank."
    )
    assert claims.depth_claim(s) is None and claims.lenet_claim(s) is None


def test_one_tied_model_is_named_with_the_best_as_the_two(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.800, 0.801, 0.799],
            "resnet18": [0.950, 0.960, 0.940],
            "resnet50": [0.955, 0.965, 0.945],
        }
    )
    best = claims.best_claim(s)
    assert best["title"] == "ResNet-50" and best["case"] == "tied" and best["tied"] == ["ResNet-18"]
    assert say(words.best, best) == (
        "ResNet-50 has the highest mean test accuracy, but ResNet-18 is not significantly below it "
        "(Welch's t-test, Holm-corrected at the 5% level), so this run does not separate the two."
    )


def test_depth_that_hurts_and_lenet_above_every_resnet(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.970, 0.971, 0.969],
            "resnet18": [0.960, 0.961, 0.959],
            "resnet50": [0.950, 0.951, 0.949],
            "resnet101": [0.940, 0.941, 0.939],
        }
    )
    depth = claims.depth_claim(s)
    assert [st["verdict"] for st in depth["steps"]] == [claims.BELOW] * 3 and depth["case"] == "hurt"
    assert say(words.depth, depth) == (
        "ResNet-101 is significantly less accurate than ResNet-18 (Welch's t-test, Holm-corrected at the 5% "
        "level), a gap of depth and block design together. ResNet-101 is significantly less accurate than "
        "ResNet-50, which differs from it in depth alone: more depth hurt between those two under this "
        "recipe."
    )
    lenet = claims.lenet_claim(s)
    assert all(g["verdict"] == claims.BELOW for g in lenet["gaps"]) and lenet["case"] == "above"
    assert (
        say(words.lenet, lenet)
        == "LeNet-5 is significantly more accurate than every ResNet (Welch's t-test, Holm-corrected at the "
        "5% level)."
    )
    best = claims.best_claim(s)
    assert best["case"] == "clear" and best["title"] == "LeNet-5"


def test_mixed_depth_steps_and_mixed_lenet_standing_are_spelled_out(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.953, 0.954, 0.952],
            "resnet18": [0.950, 0.951, 0.949],
            "resnet50": [0.960, 0.961, 0.959],
            "resnet101": [0.948, 0.950, 0.952],
        }
    )
    depth = claims.depth_claim(s)
    assert [st["verdict"] for st in depth["steps"]] == [claims.ABOVE, claims.BELOW, claims.WITHIN]
    assert depth["case"] == "mixed"
    assert say(words.depth, depth) == (
        "The gap between ResNet-101 and ResNet-18 is not significant, although those of ResNet-50 against "
        "ResNet-18 and ResNet-101 against ResNet-50 are (Welch's t-test, Holm-corrected at the 5% level); "
        "ResNet-18 differs from the others in block design as well as depth. ResNet-101 is significantly "
        "less accurate than ResNet-50, which differs from it in depth alone: more depth hurt between those "
        "two under this recipe."
    )
    lenet = claims.lenet_claim(s)
    assert [g["verdict"] for g in lenet["gaps"]] == [claims.BELOW, claims.ABOVE, claims.WITHIN]
    assert [g["side"] for g in lenet["gaps"]] == ["below", "above", "within"] and lenet["case"] == "mixed"
    assert say(words.lenet, lenet) == (
        "LeNet-5's standing against the ResNets is mixed: ResNet-18 is significantly below it; ResNet-50 is "
        "significantly above it; ResNet-101 is not significantly different from it."
    )


def test_single_seed_lenet_wording_lists_every_resnet_above_it_or_none(words: Any) -> None:
    s = summary({"lenet5": [0.90], "resnet18": [0.95], "resnet50": [0.92], "resnet101": [0.93]})
    lenet = claims.lenet_claim(s)
    assert lenet["case"] == "unmeasured" and lenet["higher"] == ["ResNet-18", "ResNet-50", "ResNet-101"]
    assert say(words.lenet, lenet) == (
        "In this single-seed run ResNet-18, ResNet-50 and ResNet-101 scored above LeNet-5; seed noise is "
        "unmeasured, so the ordering is not established."
    )
    s = summary({"lenet5": [0.95], "resnet18": [0.90], "resnet50": [0.91]})
    lenet = claims.lenet_claim(s)
    assert lenet["case"] == "unmeasured" and lenet["higher"] == []
    assert say(words.lenet, lenet) == (
        "In this single-seed run no ResNet scored above LeNet-5; seed noise is unmeasured, so the ordering "
        "is not established."
    )
    best = claims.best_claim(s)
    assert best["case"] == "unmeasured" and best["runner_up"]["b"] == "ResNet-50"
    assert say(words.best, best) == (
        "LeNet-5 has the highest test accuracy in this single-seed run; how much of its lead over "
        "ResNet-50 is seed-to-seed variation is not measured."
    )


def test_inconsistent_evidence_stops_the_report(tmp_path: Path) -> None:
    tables = synthetic_tables({"lenet5": [0.9, 0.91], "resnet18": [0.95, 0.96]})
    tables["results"].loc[0, "test_acc"] = 0.99  # disagrees with its confusion matrix
    with pytest.raises(EvidenceError, match="diagonals"):
        ctx4.context(stored(tmp_path, tables, seeds=2))


def test_a_model_that_did_not_train_is_flagged_and_left_out_of_every_comparison(tmp_path: Path) -> None:
    accs = {"lenet5": [0.80, 0.81], "alexnet": [0.10, 0.10], "vgg": [0.90, 0.91], "resnet18": [0.92, 0.93]}
    tables = synthetic_tables(accs)
    _fail(tables, "alexnet", 3, loss=math.log(10) * 0.999)  # never left the uniform prediction
    results = stored(tmp_path, tables, seeds=2)
    c = ctx4.context(results)
    assert [m["title"] for m in c["untrained"]] == ["AlexNet"] and "AlexNet" not in c["ranking"]
    (outcome,) = c["untrained"][0]["outcomes"]
    assert outcome["share"] == 1.0 and outcome["class"] == "3" and outcome["seeds"] == [0, 1]
    gaps = [g["b"] for g in (c["lenet"]["gaps"] if c["lenet"] else [])] + c["pareto"]
    assert "AlexNet" not in gaps and c["best"]["title"] == "ResNet-18"
    page, text = rendered(results)
    assert (
        "AlexNet did not train: in every seed it ended with a training loss of 2.30 and predicted “3” for "
        "100% of the test images. A last training loss no lower than 2.19 (95% of ln K = 2.30" in text
    )
    assert "does not test why it did not train" in text  # no cause the run did not test
    assert "AlexNet (did not train)" in text
    assert "test accuracy among the models that trained in every seed: ResNet-18, VGG-16-BN, LeNet-5." in text
    answer = text[text.index("Answer.") : text.index("That answers")]
    assert "AlexNet did not train and is left out." in answer  # the answer does not drop it unsaid
    trained = stored(tmp_path / "b", synthetic_tables(accs | {"alexnet": [0.85, 0.86]}), seeds=2)
    assert ctx4.context(trained)["untrained"] == []


def _fail(
    tables: dict[str, pd.DataFrame],
    model: str,
    label: int,
    seed: int | None = None,
    loss: float | None = math.log(10),
) -> None:
    """``model`` (in ``seed``, or every seed) failed to train: it predicts ``label`` for every test image
    (the stored confusion counts, per-image answers and test accuracy all say so) and, unless ``loss`` is
    None, its training loss stays at ``loss`` (ln K: the uniform prediction) in every epoch."""
    conf, res, ans, curves = tables["confusion"], tables["results"], tables["answers"], tables["curves"]

    def of(df: pd.DataFrame) -> pd.Series:
        return (df["model"] == model) & ((df["seed"] == seed) if seed is not None else True)

    conf.loc[of(conf), "count"] = np.where(conf.loc[of(conf), "pred"] == label, 100, 0)  # 100 images a class
    res.loc[of(res), "test_acc"] = 0.1
    ans.loc[of(ans), "correct"] = ans.loc[of(ans), "image"] // 100 == label
    if loss is not None:
        curves.loc[of(curves), "train_loss"] = loss


def test_one_seed_that_diverged_sets_its_model_apart_and_says_how(tmp_path: Path) -> None:
    """A loss that fell and then became NaN ends at chance: judged per seed, the failed seed is said and its
    model left out of every comparison, rather than averaged into a mean of 63 ± 46%."""
    accs = {m: [0.85 + 0.01 * i, 0.86 + 0.01 * i, 0.85 + 0.01 * i] for i, m in enumerate(TITLES)}
    tables = synthetic_tables(accs)
    curves = tables["curves"]
    curves.loc[
        (curves["model"] == "resnet101") & (curves["seed"] == 1) & (curves["epoch"] >= 2), "train_loss"
    ] = float("nan")
    _fail(tables, "resnet101", 0, seed=1, loss=None)  # its loss fell, then became NaN (above)
    results = stored(tmp_path, tables, seeds=3)
    c = ctx4.context(results)
    assert [(m["title"], m["partial"], m["diverged"]) for m in c["untrained"]] == [("ResNet-101", True, True)]
    assert "ResNet-101" not in c["ranking"] and c["best"]["title"] == "ResNet-50"
    _, text = rendered(results)
    assert (
        "ResNet-101 did not train in 1 of its 3 seeds: in seed 1 it diverged (its last training loss is not "
        "a finite number) and predicted “0” for 100% of the test images." in text
    )
    assert (
        "the loss of predicting every class with equal probability), or one that is not a finite number (a "
        "training that diverged), with one class predicted for at least 90% of the test images, marks a "
        "failed training." in text
    )
    assert "ResNet-101 (did not train in 1 of 3 seeds)" in text
    assert "a mean over seeds that include a failed one would mix a failure with trainings" in text
    assert "ResNet-101 (in 1 of its 3 seeds) did not train and is left out." in text


def test_comparisons_are_welch_tests_holm_corrected_within_a_statement() -> None:
    from scipy import stats

    accs = {
        "resnet101": [0.97, 0.975, 0.96],
        "resnet50": [0.95, 0.96, 0.958],
        "resnet18": [0.94, 0.93, 0.955],
    }
    s = summary(accs)
    gaps = claims.best_claim(s)
    assert gaps["title"] == "ResNet-101"
    raw = {
        m: stats.ttest_ind(accs[m], accs["resnet101"], equal_var=False).pvalue
        for m in ("resnet50", "resnet18")
    }
    tested = claims.family([claims.compare(s.iloc[0], row) for _, row in s.iloc[1:].iterrows()])
    by_title = {g["b"]: g for g in tested}
    assert by_title["ResNet-50"]["p"] == pytest.approx(raw["resnet50"])
    assert by_title["ResNet-18"]["p"] == pytest.approx(raw["resnet18"])
    low, high = sorted(raw.values())
    assert sorted(g["p_adj"] for g in tested) == pytest.approx([2 * low, max(2 * low, high)])
    assert all((g["verdict"] == claims.WITHIN) == (g["p_adj"] >= claims.ALPHA) for g in tested)


def test_mcnemar_on_the_same_test_images_matches_scipy_and_words_a_single_seed_lead(
    tmp_path: Path, words: Any
) -> None:
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    a, b = rng.random(1000) < 0.90, rng.random(1000) < 0.93
    only_a, only_b = stats.discordant(a, b)
    assert only_a == int((a & ~b).sum()) and only_b == int((~a & b).sum())
    assert stats.mcnemar(only_a, only_b) == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert stats.mcnemar(0, 0) == 1.0

    tables = synthetic_tables({"lenet5": [0.85], "resnet18": [0.95]}, n_test=1000)
    c = ctx4.context(stored(tmp_path, tables, seeds=1))
    gap = c["best"]["runner_up"]
    assert gap["p"] is None and gap["verdict"] == claims.UNMEASURED  # one seed: Welch cannot run
    assert gap["images_p"] == pytest.approx(binomtest(0, 100, 0.5).pvalue)  # 100 images only ResNet-18 got
    assert gap["images_verdict"] == claims.BELOW
    assert say(words.best, c["best"]).endswith(
        "On the same test images the lead is larger than test-set sampling explains (McNemar's exact test, "
        "Holm-corrected at the 5% level), which says nothing about another seed."
    )
    shown = c["tables"]["comparison"]
    assert shown.columns["p_images"][1] == "pval" and "p_seeds" not in shown.columns


def test_per_image_answers_that_disagree_with_the_accuracies_stop_the_build(tmp_path: Path) -> None:
    tables = synthetic_tables({"lenet5": [0.9], "resnet18": [0.95]})
    tables["answers"].loc[0, "correct"] = not tables["answers"].loc[0, "correct"]
    with pytest.raises(EvidenceError, match="per-image answers"):
        ctx4.context(stored(tmp_path, tables, seeds=1))


def test_a_seed_whose_images_favour_the_other_model_makes_the_gap_not_significant() -> None:
    right, wrong = np.ones(200, dtype=bool), np.zeros(200, dtype=bool)
    mixed = np.arange(200) < 100
    answers = {("a", 0): right, ("b", 0): mixed, ("a", 1): mixed, ("b", 1): right}  # each seed disagrees
    assert claims.images_p(answers, "a", "b") == 1.0
    same_way = {("a", 0): right, ("b", 0): mixed, ("a", 1): right, ("b", 1): wrong}
    assert claims.images_p(same_way, "a", "b") < 1e-6


def test_a_pair_only_one_test_separates_is_not_called_apart_by_the_tests_and_one_tier_has_no_best(
    tmp_path: Path, words: Any
) -> None:
    """Two seeds: Welch's test separates no pair after Holm, McNemar's separates several. A pair counts as
    apart only when both do, so the words say "by both tests" rather than "no two significantly apart"; and
    a single tier whose chain of unseparated pairs links every model names no model the most accurate."""
    two = {m: [0.85 + 0.01 * i, 0.86 + 0.01 * i] for i, m in enumerate(TITLES)}
    c = ctx4.context(stored(tmp_path / "two", synthetic_tables(two), seeds=2))
    assert c["tiers"]["case"] == "one" and c["tiers"]["tiers"][0]["unseparated"]
    assert any(g["images_verdict"] != claims.WITHIN for g in c["tiers"]["comparisons"])  # McNemar's does
    assert "(no pair that both tests separate) form one tier" in say(words.tiers, c["tiers"])
    assert _plain(say(words.answer, c)).startswith(
        "On SVHN, with one shared recipe of 12 epochs and nothing tuned per model, the tests separate none "
        "of ResNet-101, ResNet-50, ResNet-18, VGG-16-BN, AlexNet and LeNet-5: a pair counts as separated "
        "only where both tests find it significant. That answers"
    )
    # ResNet-50's wide spread links the top two to LeNet-5: only they are apart from it
    chain = {
        "resnet101": [0.96, 0.961, 0.959],
        "resnet18": [0.961, 0.962, 0.96],
        "lenet5": [0.9, 0.901, 0.899],
    }
    chain |= {"resnet50": [0.90, 0.96, 0.93]}
    c = ctx4.context(stored(tmp_path / "chain", synthetic_tables(chain, n_test=10_000), seeds=3))
    assert c["tiers"]["case"] == "one"
    assert (
        "ResNet-50 and LeNet-5 (within which only ResNet-18 above LeNet-5 and ResNet-101 above LeNet-5 are "
        "significant by both tests) form one tier" in say(words.tiers, c["tiers"])
    )
    assert _plain(say(words.answer, c)).startswith(  # not "… and LeNet-5 are the most accurate as a group"
        "On SVHN, with one shared recipe of 12 epochs and nothing tuned per model, the tests find no model, "
        "or group of models, more accurate than all the others: of ResNet-18, ResNet-101, ResNet-50 and "
        "LeNet-5 they order only ResNet-18 above LeNet-5 and ResNet-101 above LeNet-5 (significant by both "
        "tests)."
    )


def test_models_of_the_very_same_accuracy_share_the_highest_and_no_lead_is_said(words: Any) -> None:
    """An exact tie at the top read as "LeNet-5 has the highest mean test accuracy, but AlexNet … are not
    significantly below it", and with one seed as a lead whose noise is unmeasured."""
    same = {m: [0.90, 0.91, 0.92] for m in ("lenet5", "alexnet", "vgg")} | {"resnet18": [0.80, 0.81, 0.79]}
    best = claims.best_claim(summary(same))
    assert best["equal"] == ["AlexNet", "VGG-16-BN"] and best["tied"] == [] and best["case"] == "tied"
    assert (
        say(words.best, best) == "LeNet-5, AlexNet and VGG-16-BN have the same, highest mean test accuracy."
    )
    near = same | {"resnet50": [0.895, 0.905, 0.915]}
    assert say(words.best, claims.best_claim(summary(near))) == (  # tested against LeNet-5 only: named
        "LeNet-5, AlexNet and VGG-16-BN have the same, highest mean test accuracy, but ResNet-50 is not "
        "significantly below LeNet-5 (Welch's t-test, Holm-corrected at the 5% level), so this run does not "
        "separate the two."
    )
    # 2,578 right images of 3,000 each, whose means over seeds differ in the last bit as floats
    bits = {"lenet5": [0.857, 0.861, 0.860], "alexnet": [0.896, 0.871, 0.811]}
    raw = synthetic_tables(bits)["results"].groupby("model")["test_acc"].mean()
    assert raw["lenet5"] != raw["alexnet"]  # what broke the tie: "AlexNet has the highest …, but LeNet-5 …"
    ranked = summary(bits | {"resnet18": [0.8, 0.81, 0.79]})
    assert list(ranked["title"][:2]) == ["LeNet-5", "AlexNet"]  # equal: the fewer FLOPs first, as sorted
    last_bit = claims.best_claim(ranked)
    assert last_bit["title"] == "LeNet-5" and last_bit["equal"] == ["AlexNet"] and last_bit["tied"] == []
    assert claims.by_estimate([r for _, r in summary(bits).iterrows()]) == [["LeNet-5", "AlexNet"]]
    assert ctx4.pareto(ranked) == ["LeNet-5"]  # AlexNet beats it on nothing
    one = claims.best_claim(summary({"lenet5": [0.9], "alexnet": [0.9], "vgg": [0.8]}))
    assert (
        say(words.best, one)
        == "LeNet-5 and AlexNet have the same, highest test accuracy in this single-seed run."
    )


def _plain(text: str) -> str:
    """A sentence without the source spans of its numbers, as printed."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def test_the_weakest_class_names_every_class_at_the_lowest_and_a_missing_time_stops_the_report(
    tmp_path: Path,
) -> None:
    """The best model's classes 5 to 9 at one accuracy read as "the weakest class is “5”"; and a training
    without a recorded time summed as if it had none ("The 18 trainings took …" over 15 of them)."""
    accs = {"resnet18": [0.953, 0.953], "lenet5": [0.80, 0.81]}  # classes 3 to 9: 95 of 100 right, 0 to 2: 96
    tables = synthetic_tables(accs)
    c = ctx4.context(stored(tmp_path / "a", tables, seeds=2))
    per_class = ctx4.class_accuracy(tables["confusion"]).query("model == 'resnet18'")
    lowest = per_class[per_class["accuracy"] == per_class["accuracy"].min()]["class"].tolist()
    assert len(lowest) > 1 and c["weakest_class"]["names"] == lowest and not c["weakest_class"]["every"]
    _, text = rendered(stored(tmp_path / "b", tables, seeds=2))
    quoted = join_and([f"“{n}”" for n in lowest])
    assert (
        f"For ResNet-18, the weakest classes are {quoted} (95.00% of each one's test images correct)" in text
    )
    tables["results"].loc[0, "train_time_s"] = float("nan")
    with pytest.raises(EvidenceError, match="every training recorded its time and throughput"):
        ctx4.context(stored(tmp_path / "c", tables, seeds=2))


def test_depth_alone_is_read_off_the_bottleneck_pair_whichever_way_it_goes(words: Any) -> None:
    """ResNet-50 far above both others: ResNet-101 above ResNet-18 (design and depth) while depth alone,
    ResNet-50 to ResNet-101, hurt; the text said that step was not significant."""
    s = summary(
        {"resnet18": [0.80, 0.801, 0.799], "resnet50": [0.95, 0.951, 0.949], "resnet101": [0.9, 0.901, 0.899]}
    )
    depth = claims.depth_claim(s)
    assert depth["case"] == "helped" and depth["depth_only_side"] == "less"
    assert say(words.depth, depth).endswith(
        "a gap of depth and block design together. ResNet-101 is significantly less accurate than ResNet-50, "
        "which differs from it in depth alone: more depth hurt between those two under this recipe."
    )


def test_lenet_against_the_one_resnet_left_says_compared_not_ran(tmp_path: Path, words: Any) -> None:
    """ResNet-50 ran and did not train: ResNet-18 is the one ResNet compared, not the one in the run."""
    tables = synthetic_tables({"lenet5": [0.80, 0.81], "resnet18": [0.92, 0.93], "resnet50": [0.1, 0.1]})
    _fail(tables, "resnet50", 4)
    c = ctx4.context(stored(tmp_path, tables, seeds=2))
    assert say(words.lenet, c["lenet"]).startswith(
        "LeNet-5 is significantly less accurate than ResNet-18, the one ResNet compared"
    )


def test_seeds_that_failed_in_different_ways_are_each_said_and_the_answer_counts_them(tmp_path: Path) -> None:
    accs = {m: [0.85 + 0.01 * i] * 3 for i, m in enumerate(TITLES)}
    tables = synthetic_tables(accs)
    _fail(tables, "resnet101", 0, seed=1, loss=float("inf"))
    _fail(tables, "resnet101", 0, seed=2)
    _fail(tables, "alexnet", 3)
    _, text = rendered(stored(tmp_path, tables, seeds=3))
    assert (
        "ResNet-101 did not train in 2 of its 3 seeds: in seed 1 it diverged (its last training loss is not "
        "a finite number) and predicted “0” for 100% of the test images; in seed 2 it ended with a training "
        "loss of 2.30 and predicted “0” for 100% of the test images." in text
    )
    assert "AlexNet did not train: in every seed it ended with a training loss of 2.30" in text
    assert "AlexNet and ResNet-101 (in 2 of its 3 seeds) did not train and are left out." in text


def test_two_models_the_tests_do_not_separate_are_said_as_a_pair(tmp_path: Path, words: Any) -> None:
    c = ctx4.context(
        stored(tmp_path, synthetic_tables({"vgg": [0.90, 0.91], "lenet5": [0.895, 0.905]}), seeds=2)
    )
    said = _plain(say(words.answer, c))
    assert "the tests do not separate VGG-16-BN and LeNet-5: a pair counts as separated only where both " \
        "tests find it significant." in said  # fmt: skip
    assert "VGG-16-BN and LeNet-5 (not a pair that both tests separate)" in say(words.tiers, c["tiers"])


def test_an_anchor_without_a_field_of_the_file_header_is_one_line_naming_it(
    monkeypatch, tmp_path: Path
) -> None:
    from report.core.errors import ReportError
    from report.questions import anchors

    broken = tmp_path / "anchors.toml"
    broken.write_text(
        anchors.PATH.read_text(encoding="utf-8").replace("same = false\n", "", 1), encoding="utf-8"
    )
    monkeypatch.setattr(anchors, "PATH", broken)
    anchors._all.cache_clear()
    try:
        with pytest.raises(
            ReportError, match="anchor 1 lacks same; give every field the file's header lists"
        ):
            anchors.beside("q3", "mnist", {})
    finally:
        anchors._all.cache_clear()


def test_resnets_that_ran_and_failed_are_not_counted_among_those_compared(tmp_path: Path, words: Any) -> None:
    """ResNet-50 ran and did not train: "every ResNet" and "this run has no pair of ResNets that differ
    in depth alone" were false of the run."""
    accs = {
        "lenet5": [0.80, 0.81],
        "resnet18": [0.90, 0.91],
        "resnet101": [0.95, 0.96],
        "resnet50": [0.1, 0.1],
    }
    tables = synthetic_tables(accs)
    _fail(tables, "resnet50", 4)
    c = ctx4.context(stored(tmp_path, tables, seeds=2))
    assert say(words.lenet, c["lenet"]).startswith(
        "LeNet-5 is significantly less accurate than every ResNet compared"
    )
    assert say(words.depth, c["depth"]).endswith(
        "ResNet-50 did not train, so no pair compared here differs in depth alone, and it cannot tell "
        "depth's part from the block design's."
    )


def test_one_model_left_says_which_did_not_train_and_how_many_seeds(tmp_path: Path, words: Any) -> None:
    tables = synthetic_tables({"vgg": [0.90, 0.91], "alexnet": [0.85, 0.86], "resnet18": [0.92, 0.93]})
    _fail(tables, "alexnet", 4)
    _fail(tables, "resnet18", 2, seed=1, loss=float("nan"))
    c = ctx4.context(stored(tmp_path, tables, seeds=2))
    assert _plain(say(words.answer, c)) == (
        "VGG-16-BN is the only model compared, so there is nothing to rank: AlexNet and ResNet-18 (in 1 of "
        "its 2 seeds) did not train."
    )
