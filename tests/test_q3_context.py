"""Question 3's context on a synthetic store: the reduced-budget banner, the recommendations and sentences
computed from the stored numbers, the figures, and the checks that stop the build."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments import kit
from experiments.configs.q3 import PROFILES
from report import render
from report.core.errors import EvidenceError, MissingResultError
from report.core.manifest import Manifest
from report.core.store import Store
from report.provenance import for_print, sourced
from report.questions import q3_facts
from tests.helpers import drawing_cache
from tests.q3_results import (
    FINAL,
    GRID_ACC,
    N_TEST,
    N_VAL,
    SCALED,
    context_of,
    curve_rows,
    lr_facts,
    marked,
    remarked,
    schedule_runs,
    sweep_row,
    synthetic_tables,
)


def test_an_interval_that_does_not_match_the_final_models_stops_the_build(tmp_path: Path) -> None:
    tables = synthetic_tables()
    tables["interval"] = pd.DataFrame([kit.t_interval([0.5, 0.6, 0.7], 0.95)])
    with pytest.raises(EvidenceError, match="interval summarises"):
        context_of(tmp_path, tables)


def test_a_reduced_budget_is_said_in_a_banner_in_the_answer_and_in_the_scope(tmp_path: Path) -> None:
    def text_of(tables: dict[str, pd.DataFrame], folder: str, **cfg: object) -> str:
        context_of(tmp_path / folder, tables, **cfg)  # the same store, rendered as the report shows it
        page = render.render_html(
            Store(tmp_path / folder / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",)
        )
        return " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())

    subset = text_of(synthetic_tables(), "a")
    assert (
        "This build runs Q3 at a reduced budget: 6,000 of the 60,000 training images and 1,000 of the "
        "10,000 test images, sweep runs of at most 5 epochs instead of 10, 3 schedule lengths instead of 6, "
        "2 seeds per schedule length instead of 3, early stopping after 3 epochs without improvement "
        "instead of 5, 3 learning rates instead of 9, 3 batch sizes instead of 4 and schedules of at most "
        "10 epochs instead of 30." in subset
    )
    assert "Trained that way on 6,000 of the 60,000 training images of MNIST (this build's subset)" in subset
    assert "at this build's reduced budget (see the note above)" in subset  # the answer
    assert "and at this build's reduced budget (6,000 of the 60,000 training images" in subset  # the scope
    whole = synthetic_tables()
    whole["splits"].loc[whole["splits"]["split"] == "train_available", "images"] = 6000
    whole["splits"].loc[whole["splits"]["split"] == "test_available", "images"] = N_TEST
    full = PROFILES["full"]
    budget = {
        k: getattr(full, k)
        for k in ("sweep_epochs", "patience", "lrs", "batch_sizes", "seeds", "schedule_seeds")
    } | {"schedules": (2, 5, 10, 20, 30, 40)}  # as many lengths as the full study's
    unreduced = text_of(whole, "b", **budget)
    assert "reduced budget" not in unreduced and "Trained that way on all 6,000 training images" in unreduced
    every_test_image = synthetic_tables()
    every_test_image["splits"].loc[every_test_image["splits"]["split"] == "test_available", "images"] = N_TEST
    train_only = text_of(every_test_image, "c", **budget)  # only the training images are a subset
    assert (
        "reduced budget: 6,000 of the 60,000 training images." in train_only
        and "test images," not in train_only
    )


def test_the_answer_and_table_6_say_the_same_learning_rate_and_how_they_relate(tmp_path: Path) -> None:
    """The answer gave the rate scaled to the chosen batch while the learning-rate table highlighted the
    rate chosen at the base batch, the scaling explained pages later: both now say both."""

    def text_of(tables: dict[str, pd.DataFrame], folder: str) -> str:
        context_of(tmp_path / folder, tables)
        page = render.render_html(
            Store(tmp_path / folder / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",)
        )
        return re.sub(r" ([),;.])", r"\1", " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split()))

    grid = text_of(synthetic_tables(), "grid")  # the batch stage chose 1e-2 at 512 from the grid
    assert re.search(
        r"a learning rate of 1×10⁻² \(chosen with the batch size from the grid of Figure \d+; at batch 128 "
        r"the learning-rate stage chose 1×10⁻³, highlighted in Table \d+\), batch size 512",
        grid,
    )
    assert (
        "Highlighted: the row of the rate chosen for Adam at this batch size; the final models use 1×10⁻² "
        "at batch size 512, chosen from the batch-size grid." in grid
    )
    tables = synthetic_tables()  # the scaled point at batch 512 is the best instead
    sweep, choice = tables["sweep"], tables["choice"]
    sweep.loc[(sweep["study"] == "grid") & (sweep["batch_size"] == 512), "val_acc"] = 0.95
    chosen = {"lr": 4e-3, "lr_scaled": True, "val_acc": 0.979, "val_loss": 0.021}
    choice.loc[choice["stage"] == "batch", list(chosen)] = list(chosen.values())
    scaled = text_of(remarked(tables), "scaled")
    assert re.search(
        r"a learning rate of 4×10⁻³ \(the rate 1×10⁻³ chosen at batch 128 and highlighted in Table \d+, "
        r"scaled linearly to batch size 512 as in Table \d+\), batch size 512",
        scaled,
    )
    assert (
        "Highlighted: the row of the rate chosen for Adam at this batch size, which the final models use "
        "scaled linearly to batch size 512: 4×10⁻³." in scaled
    )


def test_context_writes_recommendations_from_the_stored_numbers(tmp_path: Path) -> None:
    c = context_of(tmp_path, synthetic_tables())
    w = render.words("q3")
    rec = {k: _say(getattr(w, f"recommend_{k}")(c)) for k in ("lr", "batch", "epochs")}
    assert rec["lr"].startswith(
        "Learning rate: Adam at 1×10⁻³ (97.80% after 5 epochs at batch 128), the highest validation "
        "accuracy of the 9 optimizer and learning-rate points."
    )
    # no other point is within 1.31 points of Adam's 97.80% (SGD and momentum peak at 96.00%)
    assert "Every other point of the last rung is more than two standard errors of a difference" in rec["lr"]
    assert rec["batch"].startswith(
        "Batch size: 512 with learning rate 1×10⁻² (98.10%), the highest validation "
        "accuracy of the 11 batch-size and learning-rate points."
    )
    se_diff = math.sqrt(2) * math.sqrt(0.981 * 0.019 / 1000)  # of a difference of two accuracies
    grid = [a for accs in GRID_ACC.values() for a in accs] + [SCALED[32][1], SCALED[512][1]]
    close = sorted((a for a in grid if 0.981 - 2 * se_diff <= a < 0.981), reverse=True)
    assert [t["val_acc"] for t in c["batch"]["tied"]] == close and len(close) == 4
    named = "Batch 512 at the linearly scaled rate 4×10⁻³ (97.90%), batch 128 at 1×10⁻³ (97.80%)"
    assert f"{named}, " in rec["batch"]
    assert "at most two standard errors of a difference of two accuracies below it" in rec["batch"]
    assert rec["batch"].endswith(
        "the study treats them as tied, and none of the others is cheaper to train by the rule's count of "
        "steps and optimizer state, so the stage keeps the most accurate."
    )
    assert rec["epochs"].startswith(
        "Epochs: 5, the shortest schedule (decaying to zero) whose mean validation accuracy over 2 seeds the "
        "validation set does not separate from the best, 10 epochs' 98.10% (5 epochs: 0.10 points below, "
        "within its tie band of"
    )
    assert "; 2 epochs fell short of it." in rec["epochs"]
    assert (
        "within one percentage point of each optimizer's best (after 5 epochs, one seed per point) are: "
        "for SGD only its best, 1×10⁻¹, at the grid's high end, so its window is open above; for SGD with "
        "momentum 0.9 only its best, 1×10⁻², so its window lies between 1×10⁻³ and 1×10⁻¹; for Adam only "
        "its best, 1×10⁻³, at the grid's low end, so its window is open below." in rec["lr"]
    )
    windows = _say(w.lr_windows(c["lr"]))
    assert windows.startswith(
        "Adam peaks at 1×10⁻³ (97.80%, the lowest rate of the grid, so its best rate"
    )  # two decimals, as in the table beside it
    assert "SGD with momentum 0.9 peaks at 1×10⁻² (96.00%)" in windows
    assert _say(w.momentum(c["lr"]["momentum"], c["momentum"])) == (
        "After 5 epochs, the best plain-SGD rate of this grid is 10 times the best rate with momentum, but "
        "one of the two is on the grid's edge, so the ratio is only a lower bound, at the grid's resolution "
        "(a step is a factor of about 10), which neither confirms nor rejects the factor 1/(1 − β) = 10."
    )
    batch = _say(w.batch(c["batch"]))
    assert batch.startswith(
        "With the learning rate held at 1×10⁻³, validation accuracy falls from 97.60% at "
        "batch 32 to 95.00% at batch 512"
    )
    assert (
        "Compared after 5 epochs with one seed per point, scaling the learning rate linearly with the batch "
        "size (to 4×10⁻³ at batch 512) gives 97.90% there, 2.90 percentage points more than the held rate "
        "(beyond the tie band of 1.28 points and, taken separately, beyond the 2.54 points, a rough 95% "
        "limit, that seeds alone can put between two single 5-epoch runs);" in batch
    )  # 95.0% held against 97.9% scaled: beyond the 1.28-point band of 1,000 images at 97.9%, and beyond
    # t(1) · √2 · 0.14 = 2.54 points of the two 5-epoch seeds (97.9% and 98.1%) and t(3) · √2 · 0.14
    assert (
        "seeds alone can put between two single 5-epoch runs); at batch 32 (rate 2.5×10⁻⁴) 0.60 percentage "
        "points less (within the tie band of 1.37 points, so not separated). Every point here is a single "
        "run, and a tie band counts only the sampling of the validation images. The variation between seeds "
        "comes from the epoch stage below, which ran the chosen configuration with 2 seeds at each of 2, 5 "
        "and 10 epochs" in batch
    )  # 97.0% scaled against 97.6% held at batch 32; batch 128 is the base, where the two rates agree
    assert (
        "The best learning rate of the grid after 5 epochs (with the rates the validation set does not "
        "separate from it) never decreases as the batch size grows (1×10⁻³ at 32, 1×10⁻³ at 128, 1×10⁻² at "
        "512)." in batch
    )
    assert "a ratio of 16 at an equal stack width of 3 points" in batch  # every synthetic stack held 3
    assert c["batch"]["at_top"] == []  # no batch size's best rate is the grid's highest, 1e-1
    edge = _say(w.batch({**c["batch"], "at_top": [512]}))
    assert "512). " not in edge and (
        "1×10⁻² at 512); at 512 the best rate is the grid's highest, so it may lie beyond the grid and the "
        "trend there is a lower bound." in edge
    )
    wider = {**c["batch"], "large": {**c["batch"]["large"], "stacked": 9}}
    assert "mixes the batch size's effect on speed with the stack width's" in _say(w.batch(wider))
    epochs = _say(w.epochs(c["epochs"], c["monitor"], c["patience"]))
    assert (  # seed 0 ends 0.1 points below CURVE, seed 1 above: their means are CURVE's
        "The mean validation accuracy over the seeds was highest after epoch 7 (98.20%); the validation set, "
        "compared paired over the same runs and images as the schedules are, does not separate it from epoch "
        "8, nor from epoch 10, up to 0.10 points below it, with a band 0.14 points wide: there the seeds' "
        "runs are up to 0.20 points apart, although every seed's run is lower there than at epoch 7. As the "
        "highest of 10 means, epoch 7's is favoured by chance" in epochs
    )
    assert "Early stopping would have ended none of the runs before the end of the schedule." in epochs
    assert "training loss was 0.0095 against a validation loss of 0.019" in epochs
    sooner = synthetic_tables()
    sooner["curve"] = curve_rows(patience=2)  # epochs 8 and 9 below 7's: stopped after 9, before the end
    stopped = context_of(tmp_path / "stopped", sooner, patience=2)["epochs"]
    assert (
        "Early stopping would have ended seed 1's run after epoch 9 (97.90% at that epoch, against 98.00% "
        "at the end of its schedule) and seed 2's run after epoch 9 (98.10% at that epoch, against 98.20% at "
        "the end of its schedule)." in _say(w.epochs(stopped, c["monitor"], 2))
    )
    one = {**stopped, "stops": [stopped["stops"][0], {**stopped["stops"][1], "epoch": None}]}
    assert "; seed 2 would have run the whole schedule." in _say(w.epochs(one, c["monitor"], 2))
    last = {**c["epochs"], "near": [], "best": {"epoch": 10, "val_acc": 0.98, "equal": []}}  # one neighbour
    assert "separates it from the epoch next to it but not from epoch 10" in _say(w.epochs(last, "x", 3))
    alone = _say(w.epochs({**c["epochs"], "near": [], "apart": []}, "x", 3))
    assert "separates it from every other epoch. As the highest of 10 means" in alone
    diverged = synthetic_tables()
    curve = diverged["curve"]
    curve.loc[(curve["seed"] == 1) & (curve["epoch"] == 10), "val_loss"] = math.nan
    e = context_of(tmp_path / "nan", diverged)["epochs"]
    said = _say(w.epochs(e, c["monitor"], 3))
    assert "a seed's validation loss was not a finite number, so the mean losses say nothing of" in said
    assert "no sign of overfitting" not in said and "fits the training images more closely" not in said
    ci = kit.t_interval(list(FINAL.values()), 0.95)
    assert (c["final"]["mean"], c["final"]["lo"], c["final"]["hi"]) == (ci["mean"], ci["lo"], ci["hi"])
    assert (  # a tie is not a ranking: all six pairs with 2 errors, not the first two of them
        "the most frequent confusions are 4 read as 9 (3); 0 read as 1, 1 read as 2, 2 read as 3, "
        "3 read as 4, 4 read as 5 and 5 read as 6 (2 each); every seed's model leads with the same pair."
        in _say(w.confusion(c["confusion"]))
    )


RUNS = pd.DataFrame({"schedule": [3, 3, 3], "val_acc": [0.972, 0.975, 0.978]})  # the epoch stage's


def _page(folder: Path, tables: dict[str, pd.DataFrame]) -> str:
    """Q3's page, as text, rendered from ``tables`` stored in ``folder``."""
    context_of(folder, tables)
    page = render.render_html(Store(folder / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",))
    return " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())


def _two_rungs(schedule: dict[int, tuple[float, ...]]) -> dict:
    """The batch stage's facts for a sweep of two rungs (1 epoch, then 3), SGD throughout: the rate 0.1 is
    chosen at batch 128 after 3 epochs although 0.3 was the best there after 1; batch 32 at 0.1 wins the
    last rung (97.50%), batch 128 at 0.3 is next (96.80%) and was 93.00% on the first rung. ``schedule``:
    the chosen configuration's validation accuracies per schedule length and seed."""
    rows = [
        sweep_row("lr", "sgd", 0.1, 128, 0.90, epoch=1),
        sweep_row("lr", "sgd", 0.3, 128, 0.93, epoch=1),
        sweep_row("lr", "sgd", 0.1, 128, 0.970, epoch=3) | {"rung": 1},
        sweep_row("lr", "sgd", 0.3, 128, 0.960, epoch=3) | {"rung": 1},
        sweep_row("grid", "sgd", 0.1, 32, 0.94, epoch=1),
        sweep_row("grid", "sgd", 0.3, 32, 0.91, epoch=1),
        sweep_row("grid", "sgd", 0.1, 128, 0.90, epoch=1),
        sweep_row("grid", "sgd", 0.3, 128, 0.93, epoch=1),
        sweep_row("scaling", "sgd", 0.025, 32, 0.92, scaled=True, epoch=1),
        sweep_row("grid", "sgd", 0.1, 32, 0.975, epoch=3) | {"rung": 1},
        sweep_row("grid", "sgd", 0.3, 128, 0.968, epoch=3) | {"rung": 1},
    ]
    sweep, bands = marked(pd.DataFrame(rows), 10_000)
    choice = pd.Series(
        {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "val_acc": 0.975, "lr_scaled": False,
         "band": bands["batch"]}
    )  # fmt: skip
    runs = pd.DataFrame([{"schedule": e, "val_acc": a} for e, accs in schedule.items() for a in accs])
    return q3_facts.batch_facts(q3_facts.last_epochs(sweep), choice, 0.1, 128, 10_000, 50_000, runs)


def test_a_lead_over_another_batch_size_is_set_beside_the_seeds_spread_and_the_held_rate_is_placed(
    tmp_path: Path,
) -> None:
    """The chosen batch size's lead over the best last-rung point of another batch size (single runs both)
    is set beside how far seeds alone move single runs of the chosen configuration in the epoch stage, at
    that length and pooled over lengths; the scaling comparison says which runs chose the held rate, and
    when that rate is not the best of the comparison's shorter runs."""
    w = render.words("q3")
    facts = _two_rungs({3: (0.972, 0.975, 0.978), 5: (0.976, 0.977, 0.978)})
    rival = facts["rival"]  # from the last rung, not 93.00% after 1 epoch
    assert (rival["batch_size"], rival["lr"], rival["val_acc"], rival["epochs"]) == (128, 0.3, 0.968, 3)
    assert math.isclose(rival["gap"], 0.007) and facts["best"] is None and rival["gap"] > facts["band"]
    noise = rival["seeds"]  # SD 0.3 points at 3 epochs (2 degrees of freedom); pooled √((2·9 + 2·1)/4)
    assert math.isclose(noise["limit"], stats.t.ppf(0.975, 2) * math.sqrt(2) * 0.003)
    assert math.isclose(noise["pooled_limit"], stats.t.ppf(0.975, 4) * math.sqrt(2) * math.sqrt(5e-6))
    assert noise["pooled_dof"] == 4 and rival["verdict"] == "within"  # 0.70 under 1.83 and 0.88
    said = _say(w.recommend_batch({"batch": facts, "halving": {"pruned": True}, "n": {"val": 10_000}}))
    assert said.endswith(
        "The most accurate point of another batch size, 128 at 3×10⁻¹ (96.80%), is 0.70 percentage points "
        "below, beyond the tie band; each is a single run, and the band leaves out the variation between "
        "seeds. The epoch stage ran the chosen configuration's 3-epoch schedule with 3 seeds (97.20% to "
        "97.80%, standard deviation 0.30 points). Assuming batch 128's seeds vary as much, two single runs "
        "that differ only by their seeds fall up to about 1.83 points apart by that spread (a rough 95% "
        "limit, Student's $t$ with 2 degrees of freedom), or 0.88 points by the seeds' standard deviation "
        "pooled over the stage's schedule lengths (0.22 points, 4 degrees of freedom). The gap is within "
        "both, so single runs do not establish that batch 32 beats batch 128."
    )
    apart = _two_rungs({3: (0.974, 0.975, 0.976), 5: (0.976, 0.977, 0.978)})["rival"]
    assert apart["verdict"] == "apart"  # 0.70 beyond 0.61 and 0.39
    settled = _say(w.recommend_batch({"batch": {**facts, "rival": apart}, "halving": {"pruned": True},
                                      "n": {"val": 10_000}}))  # fmt: skip
    assert settled.endswith(
        "so the lead of batch 32 is larger than seeds alone are likely to make it, though as the best of 2 "
        "points its accuracy is favoured by chance."
    )
    flat = {3: (0.972, 0.975, 0.978), **{e: (0.977,) * 3 for e in (5, 10, 15)}}  # pooled SD 0.15 points
    between = _two_rungs(flat)["rival"]
    assert between["verdict"] == "unsettled"  # 0.70 between 0.49 and 1.83
    torn = {"batch": {**facts, "rival": between}, "halving": {"pruned": True}, "n": {"val": 10_000}}
    assert _say(w.recommend_batch(torn)).endswith(
        "The gap exceeds the pooled limit but not the other; the two estimates disagree, so single runs do "
        "not settle whether batch 32 beats batch 128."
    )
    alike = _two_rungs({3: (0.975,) * 3, 5: (0.976, 0.977, 0.978)})["rival"]  # a spread of 0 bounds nothing
    assert alike["seeds"] is None and alike["verdict"] is None
    one = _two_rungs({3: (0.975,), 5: (0.976, 0.977)})["rival"]
    assert one["seeds"] is None and one["verdict"] is None
    unmeasured = {"batch": {**facts, "rival": one}, "halving": {"pruned": True}, "n": {"val": 10_000}}
    assert _say(w.recommend_batch(unmeasured)).endswith("the variation between seeds.")
    assert facts["anchor"] == {"batch": 128, "epochs": 3, "best": False, "rates": [0.3]}
    assert (
        "The held rate is the one the learning-rate stage chose at batch 128 after 3 epochs; after 1 epoch "
        "the best rate there was 3×10⁻¹, so the 1-epoch comparisons below, held and scaled alike, start from "
        "a rate that is not the best for runs that short, and test linear scaling from that rate only. "
        "Compared after 1 epoch" in _say(w.batch(facts))
    )
    c = context_of(tmp_path, synthetic_tables())  # one rung: the held rate is the best of its runs
    assert c["batch"]["anchor"] == {"batch": 128, "epochs": 5, "best": True, "rates": [1e-3]}
    held = _say(w.batch(c["batch"]))
    assert (
        "The held rate is the one the learning-rate stage chose at batch 128 after 5 epochs. Compared" in held
    )
    same = {
        **c["batch"],
        "anchor": {**c["batch"]["anchor"], "best": False},
    }  # not best, but as long: no clause
    assert "not the best for runs that short" not in _say(w.batch(same))
    level = {**c["batch"], "large": {**c["batch"]["large"], "fixed_acc": c["batch"]["small"]["fixed_acc"]}}
    assert "validation accuracy stays the same from" in _say(
        w.batch(level)
    )  # it "rose" from 97.80% to 97.80%
    rec = _say(w.recommend_batch(c))  # 128 at 1e-3 is 0.30 points below, within the 1.22-point band
    assert c["batch"]["rival"] is None and "another batch size" not in rec  # the ties say it
    assert "in single runs that do not settle" not in _page(tmp_path / "tied", synthetic_tables())
    tables = synthetic_tables()
    sweep = tables["sweep"]
    for size, lr, acc in ((32, 1e-3, 0.965), (128, 1e-3, 0.95), (32, 2.5e-4, 0.95)):  # 1.60 points below
        sweep.loc[(sweep["study"] != "lr") & (sweep["batch_size"] == size) & np.isclose(sweep["lr"], lr),
                  "val_acc"] = acc  # fmt: skip
    text = _page(tmp_path / "apart", remarked(tables))  # 1.60 between 0.64 (pooled) and 2.54 (5 epochs)
    assert "batch size 512 (ahead of batch 32 in single runs that do not settle which is better; see" in text


def test_the_best_rate_per_batch_size_counts_the_rates_it_is_tied_with() -> None:
    """A rate the validation set does not separate from the best is named beside it, and the direction of
    the best rate with the batch size is said only where the tied sets do not overlap (the full study's
    batch 32: 1e-1 at 96.10% and 3e-2 at 95.62% are 0.48 points apart, inside a band of 0.55)."""
    rows = [(32, 0.03, 0.9562), (32, 0.1, 0.9610), (32, 0.3, 0.90), (128, 0.1, 0.975), (128, 0.3, 0.96)]
    grid = pd.DataFrame(rows, columns=["batch_size", "lr", "val_acc"])
    best = q3_facts.best_rates(grid, 10_000)
    assert best == {32: [0.03, 0.1], 128: [0.1]}
    assert q3_facts.best_rates(grid, 100_000) == {32: [0.1], 128: [0.1]}  # more images: no tie
    assert q3_facts.trend(list(best.values())) == "never decreases"
    assert q3_facts.trend([[0.1], [0.1]]) == "same"
    assert q3_facts.trend([[0.01], [0.03, 0.1], [0.3]]) == "grows"
    assert q3_facts.trend([[0.1], [0.03, 0.1]]) == "tied"  # 0.03 would be a decrease, 0.1 none
    assert q3_facts.trend([[0.1], [0.03]]) == "not monotonic"
    assert q3_facts.trend([[0.03, 0.1], [0.1]]) == "never decreases"
    assert q3_facts.trend([[1e-3], [1e-1], [3e-2, 3e-1]]) == "tied"  # the last step shows no direction


def _recommend_lr(facts: dict) -> str:
    """The learning-rate recommendation for ``facts`` alone: 5 epochs at batch 128, one rung."""
    q = {
        "lr": facts,
        "sweep_epochs": 5,
        "base_batch": 128,
        "halving": {"pruned": False},
        "n": {"val": 10_000},
    }
    return _say(render.words("q3").recommend_lr(q))


def _say(text: str) -> str:
    """A macro's sentence with its line breaks folded, as Markdown shows it."""
    return " ".join(str(text).split())


COEFFICIENT = {"beta": q3_facts.MOMENTUM, "factor": q3_facts.MOMENTUM_FACTOR}  # as the context gives it


COARSE = (
    "; best rates found on this grid, after 5 epochs with one seed per rate, cannot fix the ratio more "
    "finely than that."
)
FACTOR = "the factor 1/(1 − β) = 10."
STEP = "(a grid step is a factor of about 3.16) from the factor 1/(1 − β) = 10"


@pytest.mark.parametrize(
    ("sgd_best", "expected"),
    [
        (
            1e-1,
            ", but one of the two is on the grid's edge, so the ratio is only a lower bound, at the grid's "
            "resolution (a step is a factor of about 3.16), which neither confirms nor rejects " + FACTOR,
        ),
        (3e-2, f", 1 grid step {STEP}{COARSE}"),
        (1e-2, f", 2 grid steps {STEP}{COARSE}"),
    ],
)
def test_momentum_sentence_counts_grid_steps_from_the_factor_ten(sgd_best: float, expected: str) -> None:
    grid = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    rows = [sweep_row("lr", "momentum", lr, 128, 0.98 if lr == 1e-2 else 0.9) for lr in grid]
    rows += [sweep_row("lr", "sgd", lr, 128, 0.97 if lr == sgd_best else 0.9) for lr in grid]
    choice = pd.Series({"optimizer": "momentum", "lr": 1e-2, "batch_size": 128, "val_acc": 0.98})
    facts = lr_facts(rows, choice)
    assert _say(render.words("q3").momentum(facts["momentum"], COEFFICIENT)).endswith(expected)


def test_context_figures_draw(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, fig in context_of(tmp_path, synthetic_tables())["figures"].items():
        drawn = fig.draw(fig.data, **fig.extra)
        assert drawn.axes, name
        plt.close(drawn)


def test_context_stops_when_the_stored_choice_is_not_the_rules(tmp_path: Path) -> None:
    tables = synthetic_tables()  # SGD at 1e-1 (96.00%) is not tied with Adam's 97.80%
    tables["choice"].loc[tables["choice"]["stage"] == "lr", ["optimizer", "lr", "val_acc"]] = [
        "sgd",
        0.1,
        0.96,
    ]
    with pytest.raises(EvidenceError, match="the cheapest to train of those tied with the best"):
        context_of(tmp_path / "a", tables)
    tables = synthetic_tables()  # tied, but batch 128 is dearer than the tied points at 512
    chosen = {"lr": 1e-3, "batch_size": 128, "val_acc": 0.978}
    tables["choice"].loc[tables["choice"]["stage"] == "batch", list(chosen)] = list(chosen.values())
    with pytest.raises(EvidenceError, match="the cheapest to train of those tied with the best"):
        context_of(tmp_path / "c", tables)
    tables = synthetic_tables()  # the choice of 10 epochs where 5 is tied with it and shorter
    tables["choice"].loc[tables["choice"]["stage"] == "epochs", "epochs"] = 10
    with pytest.raises(EvidenceError, match="it is not so that the epoch count is the shortest schedule"):
        context_of(tmp_path / "b", tables)


@pytest.mark.parametrize(
    ("kept", "why"),
    [
        ("momentum", "its optimizer keeps less state (one buffer per weight, against two buffers per weight "
                     "for Adam)"),
        ("sgd", "its optimizer keeps less state (none, against two buffers per weight for Adam)"),
    ],
)  # fmt: skip
def test_a_cheaper_point_tied_with_the_best_is_kept_and_the_sentence_says_why(kept: str, why: str) -> None:
    """Adam is the most accurate, but the validation set does not separate the others from it: the stage
    keeps the optimizer with the least state, and says so, naming the most accurate point."""
    accs = {"adam": 0.980, "momentum": 0.978, "sgd": 0.977 if kept == "sgd" else 0.96}
    rows = [sweep_row("lr", o, 1e-2, 128, a) for o, a in accs.items()]
    facts = lr_facts(rows, {"optimizer": kept, "lr": 1e-2, "batch_size": 128, "val_acc": accs[kept]})
    assert facts["best"]["name"] == "Adam" and facts["best"]["why"] == "state"
    text = _recommend_lr(facts)
    name = {"momentum": "SGD with momentum 0.9", "sgd": "SGD"}[kept]
    assert text.startswith(
        f"Learning rate: {name} at 1×10⁻² ({100 * accs[kept]:.2f}% after 5 epochs at batch 128), kept over "
        f"Adam at 1×10⁻² (98.00%), the highest validation accuracy of the 3 optimizer and learning-rate "
        f"points, as the cheaper of points the validation set does not separate: {why}."
    )
    assert "at most two standard errors of a difference of two accuracies below the best" in text
    which = "cheaper" if kept == "momentum" else "cheapest"  # two points tied with the best, or three
    assert text.split(" Search the rate")[0].endswith(
        f"the study treats them as tied, and the stage keeps the {which} to train by its count of steps and "
        "optimizer state (not a timing)."
    )


def test_a_larger_batch_tied_with_the_best_is_kept_for_its_fewer_steps(tmp_path: Path) -> None:
    tables = synthetic_tables()  # the best is 98.10% at batch 512; 97.60% at 2048 would be tied with it
    sweep = tables["sweep"]
    extra = sweep_row("grid", "adam", 1e-2, 2048, 0.976)
    tables["sweep"] = pd.concat([sweep, pd.DataFrame([extra])], ignore_index=True)
    chosen = {"lr": 1e-2, "batch_size": 2048, "val_acc": 0.976, "val_loss": 0.024}
    tables["choice"].loc[tables["choice"]["stage"] == "batch", list(chosen)] = list(chosen.values())
    c = context_of(tmp_path, remarked(tables), batch_sizes=(32, 128, 512, 2048))
    assert c["batch"]["best"] == {**c["batch"]["best"], "batch_size": 512, "why": "steps"}
    rungs = c["halving"]["table"].set_index("stage")  # the rung keeps the choice, not its best point
    assert (rungs.loc["batch", "kept"], rungs.loc["batch", "cutoff"]) == (1, 0.976)
    text = _say(render.words("q3").recommend_batch(c))
    assert text.startswith(
        "Batch size: 2,048 with learning rate 1×10⁻² (97.60%), kept over batch 512 at 1×10⁻² (98.10%), the "
        "highest validation accuracy of the 12 batch-size and learning-rate points, as the cheaper of points "
        "the validation set does not separate: it takes fewer "
        "optimizer steps per epoch (batch 2,048 against 512)."
    )


def test_the_recheck_derives_the_choice_again_and_stops_on_one_that_breaks_the_rule() -> None:
    """The report re-derives each choice from the stored points by the experiment's own rule: keeping the
    most accurate of tied points of equal batch (the old rule), a mark or a band the accuracies do not
    support, each stops the build."""
    rows = [
        sweep_row("lr", o, 1e-2, 128, a) for o, a in {"adam": 0.98, "momentum": 0.978, "sgd": 0.96}.items()
    ]
    adam = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128, "val_acc": 0.98}
    with pytest.raises(EvidenceError, match="the cheapest to train of those tied with the best"):
        lr_facts(rows, adam)
    sweep, bands = marked(pd.DataFrame(rows), 10_000)
    momentum = pd.Series({**adam, "optimizer": "momentum", "val_acc": 0.978, "band": bands["lr"]})
    assert q3_facts.lr_facts(sweep, momentum, 10_000)["best"]["name"] == "Adam"
    wrong = sweep.assign(tied=sweep["optimizer"] != "adam")
    with pytest.raises(EvidenceError, match="the points stored as tied are those within the tie band"):
        q3_facts.lr_facts(wrong, momentum, 10_000)
    with pytest.raises(EvidenceError, match="the stored tie band"):
        q3_facts.lr_facts(sweep, pd.Series({**momentum, "band": 0.001}), 10_000)


def test_a_point_kept_over_one_as_accurate_says_they_share_the_highest_accuracy() -> None:
    rows = [sweep_row("lr", o, 1e-2, 128, 0.98) for o in ("adam", "momentum")]  # equal accuracy and loss
    facts = lr_facts(rows, {"optimizer": "momentum", "lr": 1e-2, "batch_size": 128, "val_acc": 0.98})
    assert facts["best"]["equal"] and facts["tied"] == [{**facts["tied"][0], "name": "Adam", "best": True}]
    text = _recommend_lr(facts)
    assert "kept over Adam at 1×10⁻² (98.00%), which shares the highest validation accuracy of the 2 " in text
    assert "does not separate the two: the study treats them as tied, and the stage keeps the cheaper" in text


def _window_facts(rates: dict[float, float], optimizer: str = "adam") -> dict:
    rows = [sweep_row("lr", optimizer, lr, 128, acc) for lr, acc in rates.items()]
    choice = pd.Series(
        {
            "optimizer": optimizer,
            "lr": max(rates, key=rates.get),
            "batch_size": 128,
            "val_acc": max(rates.values()),
        }
    )
    return lr_facts(rows, choice)


def test_a_one_point_window_is_below_the_grid_resolution_not_zero_wide() -> None:
    facts = _window_facts({1e-3: 0.90, 1e-2: 0.98, 1e-1: 0.90})
    text = _recommend_lr(facts)
    assert (
        "best (after 5 epochs, one seed per point) are: for Adam only its best, 1×10⁻², so its window lies "
        "between 1×10⁻³ and 1×10⁻¹." in text
    )
    assert "0.0 decades" not in text
    wide = _recommend_lr(_window_facts({1e-3: 0.90, 1e-2: 0.98, 1e-1: 0.975}))
    assert "best (after 5 epochs, one seed per point) are: for Adam 1×10⁻² to 1×10⁻¹ (1 decade)." in wide
    apart = _recommend_lr(_window_facts({1e-3: 0.975, 1e-2: 0.90, 1e-1: 0.98}))  # the middle rate is not
    assert "the rates 1×10⁻³ and 1×10⁻¹ (not the rates between them), at the grid's high end" in apart


def test_an_optimum_on_the_edge_of_the_grid_is_reported_as_such_and_bounds_the_ratio() -> None:
    sgd = _window_facts({1e-2: 0.90, 1e-1: 0.95, 1.0: 0.97}, "sgd")
    assert sgd["by_optimizer"]["sgd"]["edge"] == "high"
    words = render.words("q3")
    assert "the highest rate of the grid, so its best rate may lie beyond it" in _say(words.lr_windows(sgd))
    grid = (1e-2, 1e-1, 1.0)
    rows = [sweep_row("lr", "sgd", lr, 128, 0.97 if lr == 1.0 else 0.9) for lr in grid]
    rows += [sweep_row("lr", "momentum", lr, 128, 0.98 if lr == 1e-1 else 0.9) for lr in grid]
    choice = pd.Series({"optimizer": "momentum", "lr": 1e-1, "batch_size": 128, "val_acc": 0.98})
    facts = lr_facts(rows, choice)
    assert facts["momentum"]["bound"] == "at least"
    said = _say(words.momentum(facts["momentum"], COEFFICIENT))
    assert said.startswith("After 5 epochs, the best plain-SGD rate of this grid is 10 times")
    assert "only a lower bound" in said


def test_a_result_stored_before_the_dataset_sizes_asks_for_a_rerun(tmp_path: Path) -> None:
    tables = synthetic_tables()
    tables["splits"] = tables["splits"][~tables["splits"]["split"].str.endswith("_available")]
    with pytest.raises(MissingResultError, match="rerun it: build.py run q3 --profile smoke"):
        context_of(tmp_path, tables)


def test_the_epochs_section_chooses_over_schedules_and_the_curve_chooses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count comes from the schedule lengths (table, figure, words); the longest schedule's curve is
    shown for what training longer does and where early stopping would have ended each run, and a result
    stored before the schedule stage or the curve is a rerun, not a guess."""
    context_of(tmp_path / "a", synthetic_tables())
    page = render.render_html(
        Store(tmp_path / "a" / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",)
    )
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    assert (
        "trained on schedules of 2, 5 and 10 epochs, each decaying to zero, 2 times each with different"
        in text
    )
    assert (
        "The lengths 5 and 10 are tied with the best, and the shortest, 5 (98.00%, 0.10 points below" in text
    )
    assert "These readings choose nothing: after epoch" in text
    assert "Early stopping would have ended none of the runs before the end of the schedule." in text
    assert "two single runs with different seeds, compared paired on the same images, have a band of" in text
    assert (
        "the mean validation loss was lowest at 10 epochs (0.019), where the mean validation accuracy" in text
    )
    lowest_at_5 = synthetic_tables()
    runs = lowest_at_5["schedule"]
    runs.loc[runs["schedule"] == 5, "val_loss"] = 0.01  # 5 epochs: the lowest loss, its accuracy tied
    context_of(tmp_path / "c", lowest_at_5)
    page = render.render_html(
        Store(tmp_path / "c" / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",)
    )
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    assert (
        "lowest at 5 epochs (0.01) and the mean validation accuracy highest at 10, but 5 epochs' accuracy "
        "is tied with that best: on these runs the two measures do not disagree measurably" in text
    )
    longer = synthetic_tables({2: (0.949, 0.951), 5: (0.981, 0.983), 10: (0.950, 0.952)})
    runs = longer["schedule"]
    runs.loc[runs["schedule"] == 10, "val_loss"] = 0.01  # the lowest loss at a longer, separated length
    context_of(tmp_path / "d", longer)
    store = Store(tmp_path / "d" / "results")
    text = " ".join(re.sub(r"<[^>]+>", " ", render.render_html(store, "smoke", names=("q3",))).split())
    assert "here the loss favours the longer schedule" in text and "kept improving after" not in text
    assert "Epochs (schedule length)" in text and 'id="fig:q3-schedule"' in page
    monkeypatch.setattr(Manifest, "check", lambda *args: None)  # a result stored by the code before it
    for table in ("schedule", "curve", "train_scored"):  # the last: a curve scored on all training images
        old = synthetic_tables()
        if table == "train_scored":
            old["splits"] = old["splits"][old["splits"]["split"] != table]
        else:
            del old[table]
        with pytest.raises(MissingResultError, match="predates the epoch study the report describes; rerun"):
            context_of(tmp_path / f"b-{table}", old)


def test_the_scaled_rate_is_also_compared_at_the_longer_rungs_both_points_reached() -> None:
    """The scaling table compares after the first rung; where successive halving kept both the scaled and
    the held point of a batch size, their longer runs are compared too (batch 32 here reverses)."""
    rows = [
        sweep_row("grid", "momentum", 0.1, 32, 0.9704, epoch=3) | {"rung": 1},
        sweep_row("scaling", "momentum", 0.025, 32, 0.9743, epoch=3, scaled=True) | {"rung": 1},
        sweep_row("grid", "momentum", 0.1, 32, 0.9741, epoch=10) | {"rung": 2},
        sweep_row("scaling", "momentum", 0.025, 32, 0.9801, epoch=10, scaled=True) | {"rung": 2},
        sweep_row("grid", "momentum", 0.03, 32, 0.9794, epoch=10) | {"rung": 2},  # another rate: not held
        sweep_row("lr", "momentum", 0.025, 32, 0.9990, epoch=10) | {"rung": 2},  # another stage's rung
        sweep_row("grid", "momentum", 0.1, 128, 0.9774, epoch=10) | {"rung": 2},  # the base: no pair
        sweep_row("scaling", "momentum", 0.4, 512, 0.9630, epoch=3, scaled=True) | {"rung": 1},  # alone
    ]
    no_seeds = pd.DataFrame({"schedule": [], "val_acc": []})
    later = q3_facts.later_gains(pd.DataFrame(rows), 0.1, 128, 10_000, no_seeds)
    assert [(entry["batch_size"], [g["epochs"] for g in entry["gains"]]) for entry in later] == [
        (32, [3, 10])
    ]
    assert [round(g["gain"], 4) for g in later[0]["gains"]] == [0.0039, 0.006]
    # each gain beside the tie band of its own two accuracies: 0.39 within 0.45 points, 0.60 beyond 0.40
    assert [round(100 * g["band"], 2) for g in later[0]["gains"]] == [0.45, 0.4]
    assert [g["verdict"] for g in later[0]["gains"]] == [None, "unmeasured"]  # no seeds to set it beside


def test_a_best_rate_the_longer_rungs_moved_is_said_and_the_ratio_is_not_generalised() -> None:
    """The full study's case: after 1 epoch plain SGD peaks on the grid's top rate (a bound of at least 10
    times momentum's best), but after 3 epochs a lower kept rate beats it, and the ratio there is 3; the
    report gives both and does not call the factor 10 confirmed."""
    grid = (1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    first = {"sgd": {3e-1: 0.9107, 1.0: 0.9404}, "momentum": {3e-2: 0.8994, 1e-1: 0.9496, 3e-1: 0.9379}}
    rows = [
        sweep_row("lr", o, lr, 128, first[o].get(lr, 0.5), epoch=1) for o in first for lr in grid
    ]  # fmt: skip
    rows += [
        sweep_row("lr", "sgd", 3e-1, 128, 0.9611, epoch=3) | {"rung": 1},
        sweep_row("lr", "sgd", 1.0, 128, 0.9397, epoch=3) | {"rung": 1},
        sweep_row("lr", "momentum", 1e-1, 128, 0.9722, epoch=3) | {"rung": 1},
        sweep_row("lr", "momentum", 3e-2, 128, 0.9559, epoch=3) | {"rung": 1},
    ]
    choice = {"optimizer": "momentum", "lr": 1e-1, "batch_size": 128, "val_acc": 0.9722}
    facts = lr_facts(rows, choice)
    words = render.words("q3")
    said = _say(words.momentum(facts["momentum"], COEFFICIENT))
    assert said.startswith(
        "After 1 epoch, the best plain-SGD rate of this grid is 10 times the best rate with momentum, but "
        "one of the two is on the grid's edge, so the ratio is only a lower bound, at the grid's resolution"
    )
    assert (
        "After 3 epochs, of the rates kept for that rung, plain SGD did best at 3×10⁻¹ (96.11%, against "
        "93.97% at 1×10⁰), at most 3 times momentum's best there, 1×10⁻¹ (97.22%), a bound since a best sits "
        "at an end of the rates kept." in said
    )  # 3e-1 is the lowest SGD rate kept: a lower one, pruned after 1 epoch, might do better after 3
    assert (facts["momentum"]["later"][0]["bound"], facts["momentum"]["bound"]) == ("at most", "at least")
    assert q3_facts._bound("only", None) == "unbounded" and q3_facts._bound(None, None) is None
    assert said.endswith(
        "move with the length of training, so it neither confirms nor rejects the factor 1/(1 − β) = 10."
    )
    windows = _say(words.lr_windows(facts))
    assert windows.endswith(
        "For SGD the longer runs rank the kept rates otherwise: after 3 epochs 3×10⁻¹ did better than "
        "1×10⁰, 96.11% against 93.97%."
    )  # 2.14 points apart, beyond the tie band of 0.55 points at 96.11%
    close = [r | {"val_acc": 0.9420} if r["lr"] == 3e-1 and r["rung"] == 1 else r for r in rows]
    near = _say(words.lr_windows(lr_facts(close, choice)))
    assert near.endswith("94.20% against 93.97% (within the tie band of 0.66 points, so not separated).")
    same = [r for r in rows if not (r["rung"] == 1 and r["optimizer"] == "sgd" and r["lr"] == 3e-1)]
    kept = lr_facts(same, choice)  # only the top rate kept for SGD: nothing moved, ratio 10 again
    assert kept["by_optimizer"]["sgd"]["moved"] is None and kept["momentum"]["later"] == []


def test_each_comparison_is_judged_by_the_tie_band_of_its_own_accuracies(tmp_path: Path) -> None:
    """Each stage's band is computed at that stage's best, and each comparison of a scaled and a held rate
    by the band of its two accuracies (a gain within it is not separated); the final models' extra steps
    per epoch are said beside the epoch count they train for."""
    c = context_of(tmp_path, synthetic_tables())
    page = render.render_html(Store(tmp_path / "results"), "smoke", cache_dir=drawing_cache(), names=("q3",))
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    # 2·√(2·p(1 − p)/1,000) at the stages' own bests in the synthetic tables, 97.8% and 98.1%
    assert (
        "Each stage computes this tie band at its own best accuracy: 1.31 points in the learning-rate stage, "
        "1.22 in the batch-size stage." in text
    )
    steps = c["epoch_steps"]
    assert steps == {"chosen": math.ceil(c["n"]["train"] / 512), "final": math.ceil(c["n"]["trainval"] / 512)}
    assert (steps["final"] != steps["chosen"]) == (
        f"an epoch takes {steps['final']} optimizer steps instead of {steps['chosen']}" in text
    )
    rows = [
        sweep_row("grid", "momentum", 0.1, 32, 0.9704, epoch=3) | {"rung": 1},
        sweep_row("scaling", "momentum", 0.025, 32, 0.9743, epoch=3, scaled=True) | {"rung": 1},
        sweep_row("grid", "momentum", 0.1, 32, 0.9741, epoch=10) | {"rung": 2},
        sweep_row("scaling", "momentum", 0.025, 32, 0.9801, epoch=10, scaled=True) | {"rung": 2},
        sweep_row("grid", "momentum", 0.1, 128, 0.9774, epoch=10) | {"rung": 2},
    ]
    rows += [sweep_row("grid", "momentum", lr, b, 0.9) for lr in (0.025, 0.1) for b in (32, 128)]
    rows += [sweep_row("scaling", "momentum", 0.025, 32, 0.9, scaled=True)]
    sweep, bands = marked(pd.DataFrame(rows), 10_000)
    choice = pd.Series(
        {
            "optimizer": "momentum",
            "lr": 0.1,
            "batch_size": 128,
            "val_acc": 0.9774,
            "lr_scaled": False,
            "band": bands["batch"],
        }
    )  # batch 128 is tied with the best at rung 2 and takes fewer steps: the stage's choice

    def batch_text(sweep: pd.DataFrame, runs: pd.DataFrame = RUNS) -> str:
        facts = q3_facts.batch_facts(q3_facts.last_epochs(sweep), choice, 0.1, 128, 10_000, 50_000, runs)
        return _say(render.words("q3").batch(facts))

    said = batch_text(sweep)  # the epoch stage ran 3 epochs only: the 10-epoch gap has no seeds beside it
    assert (
        "at batch 32 the scaled rate gave 0.39 percentage points more than the held rate after 3 epochs "
        "(within the tie band of 0.45 points, so not separated) and 0.60 percentage points more after 10 "
        "epochs (beyond the tie band of 0.40 points, which leaves out the variation between seeds). Every "
        "point here is a single run, and a tie band counts only the sampling of the validation images. The "
        "epoch stage ran no schedule of 10 epochs, so there the variation between seeds is not measured."
        in said
    )  # the first rung's gain was 0: nothing reversed
    assert "did not predict" not in said
    rows[-1] = sweep_row("scaling", "momentum", 0.025, 32, 0.85, scaled=True)  # 5 epochs: 5 points less
    reverses = marked(pd.DataFrame(rows), 10_000)[0]
    tight = pd.DataFrame({"schedule": [5] * 3 + [10] * 3, "val_acc": [0.97, 0.9701, 0.9702] * 2})
    said = batch_text(reverses, tight)  # seeds 0.01 points apart: both gaps are beyond what they make
    assert (
        "0.60 percentage points more after 10 epochs (beyond the tie band of 0.40 points and, taken "
        "separately, beyond the 0.06 points, a rough 95% limit, that seeds alone can put between two single "
        "10-epoch runs), the opposite of its 5-epoch comparison, both beyond their tie bands and what seeds "
        "alone can put between such runs: there the short runs did not predict the long ones" in said
    )  # t(2) · √2 · 0.01 = 0.06 points at one length, t(4) · √2 · 0.01 = 0.04 pooled: the larger is said
    loose = tight.assign(val_acc=[0.965, 0.97, 0.975] * 2)  # 0.5 points: within what seeds make
    said = batch_text(reverses, loose)
    assert "did not predict" not in said
    assert (
        "0.60 percentage points more after 10 epochs (beyond the tie band of 0.40 points, but within the "
        "1.96 points, a rough 95% limit, that seeds alone can put between two single 10-epoch runs)" in said
    )
    assert "ran the chosen configuration with 3 seeds at each of 5 and 10 epochs" in said


@pytest.mark.parametrize(("width", "said"), [(1.0, "1 decade"), (2.0, "2 decades"), (0.4771, "0.48 decades")])
def test_a_window_width_reads_as_the_page_shows_it_with_or_without_a_source(width: float, said: str) -> None:
    """The page's values carry their source (report/provenance.py), the unit tests' do not; the width reads
    the same either way, a whole number of decades without decimals."""
    decades = render.words("q3").decades
    assert str(decades(width)) == said
    assert re.sub(r"<[^>]+>", "", str(decades(sourced(width, "a test")))) == said


def test_the_epoch_count_is_the_shortest_schedule_tied_with_the_best_over_seeds() -> None:
    """Each length's gap below the best mean is set against its own band, paired over the images and with
    the seeds' variance; the shortest tied length is kept, the next shorter and a longer one beyond their
    bands are named, and one seed per length says that the seeds' variation is not measured."""
    runs, kept = schedule_runs({3: (0.960, 0.962), 5: (0.980, 0.982), 10: (0.981, 0.983), 30: (0.950, 0.954)})
    choice = pd.Series({"epochs": int(kept["schedule"]), "batch_size": 512})
    facts = q3_facts.schedule_facts(runs, choice, 5000, N_VAL)
    five = facts["table"].set_index("schedule").loc[5]
    a = np.array(runs[runs["schedule"] == 10]["correct"].tolist(), dtype=float)
    b = np.array(runs[runs["schedule"] == 5]["correct"].tolist(), dtype=float)
    z, (k, n) = a - b, a.shape  # seed by seed (both ran seeds 0 and 1), image by image
    residual = (
        (z**2).sum() - n * (z.mean(1) ** 2).sum() - k * (z.mean(0) ** 2).sum() + k * n * z.mean() ** 2
    ) / ((k - 1) * (n - 1))  # the seed × image interaction's mean square, by the sums-of-squares identity
    images, own = k * z.mean(0).var(ddof=1), n * z.mean(1).var(ddof=1)  # their mean squares
    total = images + max(0.0, own - residual)  # the seeds' own part, once, where it exceeds the interaction's
    dof = total**2 / (images**2 / (n - 1) + own**2 / (k - 1) + residual**2 / ((k - 1) * (n - 1)))
    assert math.isclose(five["band"], stats.t.ppf(0.975, dof) * math.sqrt(total / (k * n)))
    assert math.isclose(five["gap"], 0.001)
    assert (facts["chosen"], facts["best"], facts["tied"], facts["longer_untied"]) == (5, 10, [5, 10], [30])
    said = _say(render.words("q3").schedule(facts))
    assert said.startswith("The mean validation accuracy was highest with 10 epochs (98.20%).")
    assert "The lengths 5 and 10 are tied with the best, and the shortest, 5 (98.10%, 0.10 points" in said
    assert "3 epochs fell 2.10 points short, beyond its band of" in said
    assert (
        "The 30-epoch schedule also fell short of the best by more than its band. As the highest of 4 means, "
        "10 epochs' is favoured by chance, so these comparisons separate lengths from it somewhat more "
        "readily than a comparison with a length fixed in advance would." in said
    )
    assert not facts["below"] and "Tied means" not in said  # a 5-epoch seed scored above a 10-epoch one
    apart, five = schedule_runs({5: (0.979, 0.980), 10: (0.981, 0.984)})  # the seeds differ more at 10
    below = q3_facts.schedule_facts(
        apart, pd.Series({"epochs": int(five["schedule"]), "batch_size": 512}), 5000, N_VAL
    )
    assert below["tied"] == [5, 10] and below["below"]
    assert (
        "Tied means that 2 seeds on these validation images do not separate 5 epochs from 10, not that the "
        "two are equal: each 5-epoch run scored below each 10-epoch run (97.90% to 98.00% against 98.10% "
        "to 98.40%)." in _say(render.words("q3").schedule(below))
    )
    touch, five = schedule_runs({5: (0.980, 0.982), 10: (0.982, 0.983)})  # a 5-epoch seed equals one of 10
    level = q3_facts.schedule_facts(touch, pd.Series({"epochs": int(five["schedule"]), "batch_size": 512}),
                                    5000, N_VAL)  # fmt: skip
    assert level["tied"] == [5, 10] and not level["below"]
    lone, five = schedule_runs({5: (0.979,), 10: (0.981,)})  # one seed a length: no spread to speak of
    single = q3_facts.schedule_facts(lone, pd.Series({"epochs": int(five["schedule"]), "batch_size": 512}),
                                     5000, N_VAL)  # fmt: skip
    assert single["chosen"] == 5 and not single["below"]
    best_is_shortest, kept = schedule_runs({5: (0.982, 0.983), 10: (0.981, 0.983)})
    facts = q3_facts.schedule_facts(
        best_is_shortest, pd.Series({"epochs": 5, "batch_size": 512}), 5000, N_VAL
    )
    said = _say(render.words("q3").schedule(facts))
    assert (
        "The lengths 5 and 10 are tied, and the best, 5, is also the shortest of them, so it is kept." in said
    )
    recommended = _say(
        render.words("q3").recommend_epochs({"schedule": facts, "epoch_steps": {"final": 1, "chosen": 1}})
    )
    assert recommended.startswith(
        "Epochs: 5, the schedule (decaying to zero) with the highest mean validation accuracy over 2 seeds "
        "(98.25%); no shorter schedule is tied with it"
    )
    one, kept = schedule_runs({3: (0.960,), 5: (0.981,)})
    single = q3_facts.schedule_facts(
        one, pd.Series({"epochs": int(kept["schedule"]), "batch_size": 512}), 5000, N_VAL
    )
    assert single["replicate"] is None and facts["replicate"] is not None  # two seeds a length, or one
    said = _say(render.words("q3").schedule(single))
    assert "from the images alone: with one seed per length, the seeds' own effect is not measured" in said
    assert "No other length is tied with it, so 5 is kept." in said
    with pytest.raises(EvidenceError, match="the epoch count is the shortest schedule tied with the best"):
        q3_facts.schedule_facts(runs, pd.Series({**choice, "epochs": 10}), 5000, N_VAL)


def test_a_confusion_order_other_seeds_do_not_share_and_an_unseparated_worst_digit_are_said() -> None:
    def matrix(seed: int, top: tuple[int, int], wrong: dict[int, int]) -> list[dict]:
        cells = {(t, p): 0 for t in range(3) for p in range(3)}
        cells[top] = 13
        for t, n in wrong.items():  # the rest of each class's errors, read as the next digit
            cells[(t, (t + 1) % 3)] += n
        for t in range(3):
            cells[(t, t)] = 1000 - sum(n for (tt, p), n in cells.items() if tt == t and p != t)
        return [{"seed": seed, "true": t, "pred": p, "count": n} for (t, p), n in cells.items()]

    close = pd.DataFrame(matrix(0, (2, 0), {0: 20, 1: 5}) + matrix(1, (0, 2), {0: 9}))
    facts = q3_facts.confusion_facts(close, 0)
    said = _say(render.words("q3").confusion(facts))
    assert "not every seed's model leads with the same pair, so this order is not stable" in said
    assert (
        "on the digit 0 (2.00% of those test images), not separated (two standard errors of a difference) "
        "from the digit 2 (1.30%); the other seeds' models err most on the same digit." in said
    )
    apart = pd.DataFrame(matrix(0, (2, 0), {0: 60}) + matrix(1, (1, 2), {0: 40}))  # 0 read as 1 leads both
    said = _say(render.words("q3").confusion(q3_facts.confusion_facts(apart, 0)))
    assert "every seed's model leads with the same pair" in said and "not separated" not in said
    elsewhere = pd.DataFrame(
        matrix(0, (2, 0), {0: 60}) + matrix(1, (1, 2), {1: 40}) + matrix(2, (1, 2), {1: 9})
    )
    said = _say(render.words("q3").confusion(q3_facts.confusion_facts(elsewhere, 0)))
    assert said.endswith(
        "on the digit 0 (6.00% of those test images); the other seeds' models err most on 1 (seeds 1 and 2)."
    )
    # seed 0 leads with 1→2 (60); seed 1 has 0→1 and 1→2 tied at 60: it leads with 1→2 too, whatever
    # order a tie-break would put them in
    tied = pd.DataFrame(matrix(0, (1, 2), {1: 47}) + matrix(1, (1, 2), {0: 60, 1: 47}))
    assert q3_facts.confusion_facts(tied, 0)["same_top"]
    one = pd.DataFrame([{"seed": 0, "true": 0, "pred": p, "count": n} for p, n in ((0, 95), (1, 5))])
    alone = q3_facts.confusion_facts(one, 0)  # one class: no other digit to compare the worst with
    assert alone["close"] == [] and alone["others"] == 0
    assert "not separated" not in _say(render.words("q3").confusion(alone))


def test_a_point_tied_with_a_rung_s_cut_and_each_batch_size_s_best_go_on() -> None:
    """A point within the tie band of the last one a rung keeps by count goes on with it, and so does the
    best of each batch size (so every batch size reaches the last rung); the cut is re-checked against
    its rule, and the extra points are named with why they went on."""
    rows = [sweep_row("lr", "adam", lr, 128, a, epoch=1) for lr, a in
            ((1e-3, 0.970), (3e-3, 0.965), (1e-2, 0.9649), (3e-2, 0.900))]  # fmt: skip
    rows += [
        sweep_row("lr", "adam", lr, 128, a, epoch=3) | {"rung": 1}
        for lr, a in ((1e-3, 0.98), (3e-3, 0.97), (1e-2, 0.96))
    ]
    rows += [
        sweep_row("grid", "adam", 1e-3, b, a, epoch=1) for b, a in ((128, 0.97), (512, 0.968), (2048, 0.80))
    ]
    rows += [
        sweep_row("grid", "adam", 1e-3, b, a, epoch=3) | {"rung": 1}
        for b, a in ((128, 0.98), (512, 0.96), (2048, 0.90))
    ]
    sweep, bands = marked(pd.DataFrame(rows), 10_000)
    last = q3_facts.last_epochs(sweep)
    keys = {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "lr_scaled": False}
    choice = pd.DataFrame([{**keys, "stage": s, "val_acc": 0.98, "band": bands[s]} for s in ("lr", "batch")])
    facts = q3_facts.halving_facts(last, choice.set_index("stage"), 10_000, 3)
    assert [(c["stage"], c["rung"], c["tied"], c["each"]) for c in facts["extra"]] == [
        ("lr", 1, 1, 0),
        ("batch", 1, 1, 1),  # 512 for the tie, 2,048 as the best of its batch size
    ]
    cut = last[~((last["lr"] == 1e-2) & (last["rung"] == 1))]  # 1e-2 pruned though tied with the cut
    with pytest.raises(EvidenceError, match="rung 1 kept the points its rule keeps"):
        q3_facts.halving_facts(cut, choice.set_index("stage"), 10_000, 3)
    alone = last[~((last["batch_size"] == 2048) & (last["rung"] == 1))]  # batch 2,048 never reached it
    with pytest.raises(EvidenceError, match="rung 1 kept the points its rule keeps"):
        q3_facts.halving_facts(alone, choice.set_index("stage"), 10_000, 3)


def test_failed_rates_a_longer_rung_that_failed_and_momentum_beside_ten_times_plain_sgd_are_said() -> None:
    """Runs that failed above a rate that learned are worded from their final losses (a uniform guess's,
    or the range with non-finite ones counted), never as 'not diverged'; a rate that learned in a short run
    and failed in a longer one is named as two runs; below momentum's best, plain SGD at ten times each rate
    is set beside plain SGD at that rate; and plain SGD's failure at ten times momentum's best bounds their
    ratio only when that rate lies above plain SGD's own best."""
    grid = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    accs = {
        "momentum": (0.5, 0.7, 0.9, 0.95, 0.97, 0.96, 0.9),
        "sgd": (0.11, 0.15, 0.52, 0.75, 0.91, 0.95, 0.1167),  # failed at 1e0
    }
    rows = [
        sweep_row("lr", o, r, 128, a, epoch=1)
        for o, a_s in accs.items()
        for r, a in zip(grid, a_s, strict=True)
    ]
    rows[-1]["val_loss"] = 2.3015
    longer = [sweep_row("lr", "momentum", r, 128, a, epoch=3) for r, a in ((1e-1, 0.975), (1.0, 0.1167))]
    for row in longer:
        row["rung"] = 1
    longer[1]["val_loss"] = 2.3010  # learned at 1e0 in one epoch, failed in three
    choice = {"optimizer": "momentum", "lr": 1e-1, "batch_size": 128, "val_acc": 0.975}
    w = render.words("q3")
    facts = lr_facts([*rows, *longer], choice)
    assert _say(w.collapsed(facts["collapsed"])) == (
        "The 2 runs of the learning-rate grid that failed at a rate above one that learned (below 20% "
        "validation accuracy, "
        "twice a guess among ten digits; 1 on the first rung, 1 on a longer one) ended with a validation "
        "loss within 1% of ln 10 ≈ 2.30, the loss of guessing each digit with probability 1/10, and an "
        "accuracy of 11.67%: those networks no longer told the digits apart. Whether they diverged first is "
        "not recorded: the sweep keeps one loss per run and epoch."
    )
    assert (
        "for SGD with momentum 0.9, the 3-epoch run at 1×10⁰, trained from scratch on its own schedule, "
        "ended at 11.67%, where the 1-epoch run reached 90.00%." in _say(w.lr_windows(facts))
    )
    assert _say(w.momentum(facts["momentum"], COEFFICIENT)).endswith(
        "from the factor 1/(1 − β) = 10: plain SGD at 10 times momentum's best rate, 1×10⁰, failed "
        "(11.67%), so on this grid its best rate lies lower, where its training stays stable; best "
        "rates found on this grid, after 1 epoch with one seed per rate, cannot fix the ratio more finely "
        "than that."
    )
    pairs = _say(w.momentum_pairs(facts["momentum"], COEFFICIENT))
    assert pairs == (
        "Below momentum's best rate, at each rate where momentum learned, the plain-SGD rate of the grid "
        "whose accuracy came closest to momentum's was 10 times larger (at 1×10⁻³ momentum scored 50.00%, "
        "plain SGD 52.00% at 1×10⁻²; at 3×10⁻³ momentum scored 70.00%, plain SGD 75.00% at 3×10⁻²; at 1×10⁻² "
        "momentum scored 90.00%, plain SGD 91.00% at 1×10⁻¹; at 3×10⁻² momentum scored 95.00%, plain SGD "
        "95.00% at 3×10⁻¹): consistent with the argument, but only at the grid's resolution: neighbouring "
        "rates differ by a factor of about 3.2, so these single-seed 1-epoch runs cannot tell it from any "
        "factor between about 5.6 and 17.8 (one seed per rate blurs the reading further); the closest "
        "plain-SGD run still differed from momentum's by more than their tie band at 3 of these 4 rates, so "
        "momentum there comes near plain SGD at a 10 times larger rate without matching it. As the stability "
        "bound allows, at 1×10⁰ plain SGD's 1-epoch run failed (11.67%) where momentum's learned (90.00%)."
    )  # 10/√3.16 and 10·√3.16: any factor within half a grid step of 10 picks the same grid rate
    rows[3]["val_acc"] = 0.4  # momentum at 3e-2: now closest to plain SGD at 1e-2, a third of its rate
    said = _say(w.momentum_pairs(lr_facts([*rows, *longer], choice)["momentum"], COEFFICIENT))
    assert "was 10, 10, 10, 0.333 times larger (" in said and "does not single out the factor 10." in said
    sgd_runs = [sweep_row("lr", "sgd", r, 128, a, epoch=3) for r, a in ((3e-1, 0.96), (1.0, 0.93))]
    for row in sgd_runs:  # plain SGD learned at 1e0 in 3 epochs, where momentum's 3-epoch run failed
        row["rung"] = 1
    said = _say(w.momentum_pairs(lr_facts([*rows, *longer, *sgd_runs], choice)["momentum"], COEFFICIENT))
    assert said.endswith(
        "One run is at odds with the stability bound: at 1×10⁰ momentum's 3-epoch run failed (11.67%) where "
        "plain SGD's learned (93.00%); the bound is a result for a quadratic with full-batch steps, and "
        "single-seed runs do not test it."
    )
    rows[3]["val_acc"] = 0.95
    rows[-1]["val_loss"] = math.nan  # overflowed: the finite ones' loss, and a count of the others
    said = _say(w.collapsed(lr_facts([*rows, *longer], choice)["collapsed"]))
    assert "ended with validation losses of 2.30 (1 not finite), against ln 10 ≈ 2.30 for a uniform " in said
    # plain SGD's best above ten times momentum's: a low accuracy at ten times momentum's best is a rate
    # that has not learned yet, not a failure, and bounds nothing
    slow = [sweep_row("lr", o, r, 128, a, epoch=1) for o, a_s in {
        "momentum": (0.5, 0.97, 0.9, 0.8, 0.5, 0.3, 0.2), "sgd": (0.1, 0.1, 0.1, 0.12, 0.15, 0.95, 0.9),
    }.items() for r, a in zip(grid, a_s, strict=True)]  # fmt: skip
    facts = lr_facts(slow, {"optimizer": "momentum", "lr": 3e-3, "batch_size": 128, "val_acc": 0.97})
    assert facts["momentum"]["counterpart"] == {"lr": 3e-2, "val_acc": 0.12, "failed": False}
    assert "failed" not in _say(w.momentum(facts["momentum"], COEFFICIENT))


def test_an_exact_tie_for_the_highest_mean_is_said_as_one_with_what_broke_it(tmp_path: Path) -> None:
    """Means over seeds of equal counts of right images are a tie, not a ranking (the full study's epochs 20
    and 21): the text names every epoch or schedule length sharing the highest mean, and says which one
    the comparisons take and why (its lower validation loss, else the rule's order)."""
    w = render.words("q3")
    tables = synthetic_tables()
    curve = tables["curve"]
    for seed in curve["seed"].unique():  # epoch 8 right on the same images as epoch 7, at a higher loss
        at7 = curve[(curve["seed"] == seed) & (curve["epoch"] == 7)].iloc[0]
        i = curve[(curve["seed"] == seed) & (curve["epoch"] == 8)].index[0]
        curve.at[i, "val_acc"], curve.at[i, "correct"] = at7["val_acc"], at7["correct"]
        curve.at[i, "val_loss"] = at7["val_loss"] + 0.001
    c = context_of(tmp_path / "epochs", tables)
    assert c["epochs"]["best"]["equal"] == [8] and c["epochs"]["best"]["by"] == "loss"
    said = _say(w.epochs(c["epochs"], c["monitor"], c["patience"]))
    assert said.startswith(
        "The mean validation accuracy over the seeds was highest after epochs 7 and 8 alike (98.20%, the "
        "same count of right images); of these, epoch 7, with the lower mean validation loss, is the best "
        "the others are compared with: the validation set,"
    )
    assert "As the highest of 10 means, those of epochs 7 and 8 are favoured by chance" in said
    assert "separate epochs from them somewhat more readily" in said
    page = render.render_html(Store(tmp_path / "epochs" / "results"), "smoke", names=("q3",))
    assert "(of epochs 7 and 8, which share it, the one with the lower mean validation loss)." in " ".join(
        re.sub(r"<[^>]+>", " ", for_print(page)).split()
    )  # the dotted line of Figure 9's caption
    same = synthetic_tables({2: (0.949, 0.951), 5: (0.981, 0.983), 10: (0.981, 0.983)})  # loss 1 - acc too
    s = context_of(tmp_path / "lengths", same)["schedule"]
    assert (s["best"], s["equal"], s["equal_by"], s["chosen"]) == (5, [10], "order", 5)
    assert _say(w.schedule(s)).startswith(
        "The mean validation accuracy was highest with 5 and 10 epochs alike (98.20%, the same count of "
        "right images); of these, 5 epochs, the shortest of those with the lowest mean validation loss, is "
        "the best the others are compared with below."
    )
    apart = context_of(tmp_path / "apart", synthetic_tables())  # distinct means: one best, as before
    assert apart["epochs"]["best"]["equal"] == [] and apart["schedule"]["equal"] == []
    assert "alike" not in _say(w.schedule(apart["schedule"]))


def test_a_best_whose_lead_does_not_print_says_how_many_images_it_is(tmp_path: Path, monkeypatch) -> None:
    """The full study's 30 epochs led 10 by one right image in 30,000 scores, and both means print as
    98.02%: "highest with 30 epochs (98.02%)" read as a lead the table does not show."""
    import tests.q3_results as q3r

    monkeypatch.setattr(q3r, "N_VAL", 30_000)  # 1 image in 60,000 scores: a gap below the printed digits
    tables = synthetic_tables({2: (0.949, 0.951), 5: (0.9821, 0.9821), 10: (0.9821, 0.98207)})
    s = context_of(tmp_path / "close", tables)["schedule"]
    assert (s["best"], s["close"]) == (5, {"schedule": 10, "images": 1, "scores": 60_000})
    assert _say(render.words("q3").schedule(s)).startswith(
        "The mean validation accuracy was highest with 5 epochs (98.21%, 1 right image in 60,000 scores "
        "ahead of 10 epochs, whose mean prints the same)."
    )
    apart = context_of(tmp_path / "apart", synthetic_tables())["schedule"]
    assert apart["close"] is None


def test_the_final_models_caption_says_how_they_trained(tmp_path: Path) -> None:
    """Table 10 says whether the final models trained alone, each in its unit, or together in stacked
    networks (and so whether a training time is the model's own or its share), from the stored
    ``stacked`` column; a result stored before that column is refused with its rerun command."""

    def caption(tables: dict[str, pd.DataFrame], folder: str) -> str:
        context_of(tmp_path / folder, tables)
        page = render.render_html(Store(tmp_path / folder / "results"), "smoke", names=("q3",))
        assert "original.toml" not in page  # Q4's source of the original write-up's figures: not shown
        text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
        return text[text.index("The final models, one per seed") :][:700]

    alone = caption(synthetic_tables(), "alone")  # every synthetic model stacked 1
    assert (  # the smoke profile's one CPU thread a unit
        "Each trained alone, in a unit of its own, on 1 CPU thread per unit, units side by side on the "
        "machine's cores; the training time is its unit's wall-clock time, with the units sharing the cores."
        in alone
    )
    assert "Training time (share)" not in alone and "Training time" in alone
    together = synthetic_tables()
    together["final"]["stacked"] = len(together["final"])
    shared = caption(together, "together")
    assert (
        "Models of one unit trained together as one stacked network, 3 to a network, on 1 CPU thread per "
        "unit, units side by side on the machine's cores; the training time is each model's share of its "
        "unit's wall-clock time" in shared
    ) and "Training time (share)" in shared
    old = synthetic_tables()
    old["final"] = old["final"].drop(columns="stacked")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Manifest, "check", lambda *args: None)  # a result stored by the code before it
        with pytest.raises(MissingResultError, match=r"predates the epoch stage's fresh seeds .* rerun it: "):
            context_of(tmp_path / "old", old)


def test_a_tie_broken_by_a_loss_that_is_not_a_number_is_said_as_the_rule_broke_it() -> None:
    """``selection.best_first`` counts a NaN loss as the worst: the sentence says what decided among equal
    means, "loss" even where the other's loss is NaN, "order" where losses are equal, "nan" where none is
    a number."""
    nan = math.nan
    assert q3_facts.tie_break(pd.Series({5: nan, 10: 0.1}), 10, [5]) == "loss"
    assert q3_facts.tie_break(pd.Series({5: 0.1, 10: 0.1, 15: 0.2}), 5, [10, 15]) == "order"
    assert q3_facts.tie_break(pd.Series({5: nan, 10: nan}), 5, [10]) == "nan"
    assert q3_facts.tie_break(pd.Series({5: 0.1}), 5, []) is None
    w = render.words("q3")
    assert _say(w.tie_break("loss", [7], "earliest")) == "with the lower mean validation loss"
    assert _say(w.tie_break("loss", [7, 8], "earliest")) == "with the lowest mean validation loss"
    assert (
        _say(w.tie_break("nan", [7], "shortest"))
        == "the shortest (none of their mean validation losses is a number)"
    )


@pytest.mark.parametrize(
    ("accs", "why", "said"),
    [
        ({3: (0.97, 0.98)}, "length", "The epoch stage ran no schedule of 10 epochs, so"),
        ({3: (0.97, 0.98), 10: (0.97,)}, "one seed", "The epoch stage ran 10 epochs with one seed, so"),
        ({3: (0.97, 0.98), 10: (0.97, 0.97)}, "alike", "ran 10 epochs with seeds that all scored alike, so"),
    ],
)
def test_a_gap_whose_seed_spread_was_not_measured_says_why(accs: dict, why: str, said: str) -> None:
    """A gap between single runs beyond its tie band, at a length where the epoch stage measured no spread
    between seeds, says so and why: no such schedule, one seed of it, or seeds that scored alike."""
    runs = pd.DataFrame([{"schedule": e, "val_acc": a} for e, v in accs.items() for a in v])
    gain = q3_facts.scaled_gain(32, 0.975, 0.965, 10, 10_000, runs)
    assert (gain["verdict"], gain["unmeasured"]) == ("unmeasured", why)
    facts = {"large_gain": gain, "others": [], "later": [], "spread": q3_facts.seed_spread(runs)}
    assert said in _say(render.words("q3").seed_limits(facts))
