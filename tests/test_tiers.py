"""Q4's ranking in tiers: a model is placed below another only where the tests say so; ties are ties."""

from __future__ import annotations

from typing import Any

import pytest

from report import render
from report.questions import q4_claims as claims
from tests.q4_results import say, summary


@pytest.fixture(scope="module")
def words() -> Any:
    return render.words("q4")


def _question(t: dict) -> dict:
    """What words.answer reads of Q4's context besides the tiers."""
    return {
        "tiers": t,
        "subset": False,
        "dataset": "SVHN",
        "substitute": False,
        "recipe": {"epochs": 12},
        "untrained": [],
    }


def test_tied_neighbours_share_a_tier_and_a_clear_gap_starts_the_next(words: Any) -> None:
    accs = {
        "vgg": [0.9500, 0.9510, 0.9490],
        "resnet18": [0.9505, 0.9495, 0.9500],  # level with VGG-16-BN
        "lenet5": [0.9000, 0.9010, 0.8990],
    }
    t = claims.tiers(summary(accs))
    assert t["case"] == "tiers" and t["pairs"] == 3
    assert [tier["models"] for tier in t["tiers"]] == [["VGG-16-BN", "ResNet-18"], ["LeNet-5"]]
    assert t["tiers"][0]["unseparated"]
    said = say(words.tiers, t)
    assert "VGG-16-BN and ResNet-18 (not significantly apart); then LeNet-5." in said
    assert said.endswith(
        "LeNet-5. Models the tests do not separate are not thereby shown to be equally accurate: a real "
        "gap too small for these tests to detect goes unseen."
    )
    assert (
        "VGG-16-BN and ResNet-18, which the tests do not order, are the most accurate and LeNet-5 the least"
        in say(words.answer, _question(t))
    )


def test_a_top_tier_of_three_with_one_pair_apart_is_said_to_be_ordered_only_in_part(words: Any) -> None:
    """A is significantly above C, B ties both, D is far below all three: two tiers, the first neither a
    tie nor an order."""
    accs = {
        "vgg": [0.9600, 0.9602, 0.9598],
        "resnet18": [0.9550, 0.9450, 0.9650],  # wide: level with both neighbours
        "alexnet": [0.9500, 0.9502, 0.9498],
        "lenet5": [0.8000, 0.8002, 0.7998],  # far below: apart from ResNet-18 too, after Holm over 6
    }
    t = claims.tiers(summary(accs))
    assert [tier["models"] for tier in t["tiers"]] == [["VGG-16-BN", "ResNet-18", "AlexNet"], ["LeNet-5"]]
    said = say(words.tiers, t)
    assert (
        "VGG-16-BN, ResNet-18 and AlexNet (within which only VGG-16-BN above AlexNet is significant)" in said
    )
    assert "not thereby shown to be equally accurate" in said
    assert (
        "VGG-16-BN, ResNet-18 and AlexNet, which the tests order only in part, are the most accurate and "
        "LeNet-5 the least" in say(words.answer, _question(t))
    )
    level = {**accs, "alexnet": [0.9590, 0.9610, 0.9600]}  # now no pair of the three apart (AlexNet first)
    said = say(words.tiers, claims.tiers(summary(level)))
    assert "AlexNet, VGG-16-BN and ResNet-18 (no two significantly apart); then LeNet-5." in said


def test_a_chain_of_ties_is_one_tier_that_names_the_pairs_the_tests_do_separate(words: Any) -> None:
    """A is significantly above C, but B ties both: no cut holds, so one tier, with A above C said."""
    accs = {
        "vgg": [0.9600, 0.9602, 0.9598],
        "resnet18": [0.9550, 0.9400, 0.9700],  # wide: level with both neighbours
        "alexnet": [0.9500, 0.9502, 0.9498],
    }
    t = claims.tiers(summary(accs))
    assert t["case"] == "one" and len(t["tiers"]) == 1
    assert t["tiers"][0]["separated"] == [("VGG-16-BN", "AlexNet")]
    assert "(within which only VGG-16-BN above AlexNet is significant)" in say(words.tiers, t)
    answer = say(words.answer, _question(t))
    assert (  # not "VGG-16-BN, ResNet-18 and AlexNet are the most accurate as a group"
        "the tests find no model, or group of models, more accurate than all the others: of VGG-16-BN, "
        "ResNet-18 and AlexNet they order only VGG-16-BN above AlexNet. That answers" in answer
    )
    assert "separate none" not in answer and "place no model below another" not in say(words.tiers, t)


def test_every_gap_significant_gives_a_tier_per_model() -> None:
    accs = {
        "resnet18": [0.9700, 0.9701, 0.9699],
        "vgg": [0.9600, 0.9601, 0.9599],
        "lenet5": [0.9000, 0.9001, 0.8999],
    }
    t = claims.tiers(summary(accs))
    assert [tier["models"] for tier in t["tiers"]] == [["ResNet-18"], ["VGG-16-BN"], ["LeNet-5"]]


def test_one_seed_without_per_image_answers_ranks_nothing(words: Any) -> None:
    t = claims.tiers(summary({"vgg": [0.95], "lenet5": [0.90]}))
    assert t["case"] == "unmeasured"
    assert (
        say(words.tiers, t) == "No test could be run on these results, so the order above is not a ranking."
    )


def test_the_tiers_name_only_the_tests_that_could_be_run(words: Any) -> None:
    """Over seeds with no per-image answers: Welch's test alone. One seed with per-image answers:
    McNemar's alone, and the sentence says why there is no test over seeds."""
    t = claims.tiers(summary({"vgg": [0.95, 0.951, 0.949], "lenet5": [0.90, 0.901, 0.899]}))
    assert t["tests"] == ["welch"]
    assert "(by Welch's $t$-test over seeds, Holm-corrected over the one pair" in say(words.tiers, t)
    one_seed = {**t, "tests": ["mcnemar"]}
    assert (
        "(by McNemar's test on the same test images alone, as one seed allows no test over seeds, "
        "Holm-corrected" in say(words.tiers, one_seed)
    )
