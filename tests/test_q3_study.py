"""Question 3's study: the network, its settings, the selection and stopping rules, the interval math, and
the smoke run on generated MNIST-format digits with its determinism and resumption."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments import halving, kit, q3
from experiments.configs.q3 import PROFILES
from experiments.kit import Output, RunContext
from report.core import selection
from report.core.config import apply_overrides
from report.core.errors import ConfigError

TABLES = {
    "sweep",
    "schedule",
    "curve",
    "choice",
    "final",
    "interval",
    "splits",
    "layers",
    "confusion",
    "misclassified",
}


# ---- the network ------------------------------------------------------------------------------------
def test_model_maps_images_to_ten_logits_with_the_specified_parameter_count() -> None:
    model = q3.mlp()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    expected = 784 * 128 + 128 + 128 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected
    layers = q3.layers_table(model)
    assert layers["params"].sum() == expected
    assert layers.loc[layers["layer"] == "Linear", "out_features"].tolist() == [128, 64, 32, 10]


def test_invalid_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="rmsprop"):
        apply_overrides("q3", PROFILES["smoke"], {"optimizers": "sgd,rmsprop"})
    with pytest.raises(ConfigError, match="base_batch"):
        apply_overrides("q3", PROFILES["smoke"], {"base_batch": "100"})
    with pytest.raises(ConfigError, match="seeds"):
        apply_overrides("q3", PROFILES["smoke"], {"seeds": "1"})
    with pytest.raises(ConfigError, match="cpu_threads"):
        apply_overrides("q3", PROFILES["smoke"], {"cpu_threads": "-1"})


def test_cpu_threads_is_scoped_to_the_block() -> None:
    before = torch.get_num_threads()
    with kit.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with kit.threads(0):
        assert torch.get_num_threads() == before


# ---- selection and stopping rules -------------------------------------------------------------------
def _point(opt: str, lr: float, accs: list[float], losses: list[float], batch: int = 128) -> list[dict]:
    return [
        {
            "study": "lr",
            "optimizer": opt,
            "lr": lr,
            "batch_size": batch,
            "lr_scaled": False,
            "epoch": e,
            "val_acc": a,
            "val_loss": loss,
            "rung": 0,
        }
        for e, (a, loss) in enumerate(zip(accs, losses, strict=True), 1)
    ]


EXACT = 10**9  # validation images: a band so narrow that only equal accuracies are tied


def test_select_uses_the_last_epoch_and_breaks_exact_ties_at_equal_cost_by_loss() -> None:
    sweep = pd.DataFrame(
        _point("sgd", 0.1, [0.99, 0.95], [0.05, 0.20])  # best at an earlier epoch only: not chosen
        + _point("adam", 1e-3, [0.90, 0.97], [0.30, 0.12])  # tied last-epoch accuracy, higher loss
        + _point("adam", 3e-3, [0.91, 0.97], [0.30, 0.10])  # tied, lower loss: chosen
        + _point("momentum", 1.0, [0.50, 0.10], [2.0, math.nan])  # diverged
    )
    kept, marked = q3.select(sweep.sample(frac=1.0, random_state=0), EXACT)  # row order must not matter
    assert (kept["optimizer"], kept["lr"], kept["epoch"]) == ("adam", 3e-3, 2)
    assert sorted(marked.loc[marked["tied"], "lr"].unique()) == [1e-3, 3e-3]
    assert kept["band"] == pytest.approx(2 * math.sqrt(2 * 0.97 * 0.03 / EXACT))


def test_select_tolerates_nan_losses_among_ties() -> None:
    sweep = pd.DataFrame(_point("sgd", 1.0, [0.2], [math.nan]) + _point("sgd", 0.1, [0.2], [2.0]))
    assert q3.select(sweep, EXACT)[0]["lr"] == 0.1


def test_select_keeps_the_cheapest_of_the_points_the_validation_set_cannot_separate() -> None:
    """At 10,000 validation images the band is 0.42 points near 97.8%: within it the largest batch, then the
    optimizer with the least state, is kept; a dearer point is kept where every cheaper one is separated
    from the best."""
    assert selection.tie_band(0.978, 10_000) == pytest.approx(0.00415, abs=1e-5)
    points = (
        _point("adam", 1e-2, [0.9786], [0.12])  # the best
        + _point("momentum", 0.1, [0.9774], [0.09])  # tied, one state buffer instead of two: kept
        + _point("sgd", 0.3, [0.9740], [0.10])  # no state, but 0.46 points below: not tied
    )
    kept, marked = q3.select(pd.DataFrame(points), 10_000)
    assert (kept["optimizer"], kept["lr"]) == ("momentum", 0.1)
    assert marked.set_index("optimizer")["tied"].to_dict() == {"adam": True, "momentum": True, "sgd": False}
    batches = (
        _point("adam", 1e-2, [0.980], [0.1], batch=32)  # the best
        + _point("adam", 1e-2, [0.978], [0.1], batch=128)  # tied, a quarter of the steps
        + _point("adam", 3e-2, [0.977], [0.1], batch=128)  # tied, as cheap, less accurate
        + _point("adam", 1e-1, [0.970], [0.1], batch=2048)  # cheapest, but separated from the best
    )
    kept, _ = q3.select(pd.DataFrame(batches), 10_000)
    assert (kept["batch_size"], kept["lr"]) == (128, 1e-2)
    separated = _point("adam", 1e-2, [0.990], [0.1], batch=32) + _point("sgd", 1e-1, [0.980], [0.1])
    assert q3.select(pd.DataFrame(separated), 10_000)[0]["optimizer"] == "adam"  # 1 point apart: not tied


def test_stopping_rule_counts_epochs_since_the_best_monitored_value() -> None:
    history = [
        {"val_acc": a, "val_loss": loss}
        for a, loss in [(0.90, 0.30), (0.95, 0.20), (0.97, 0.25), (0.96, math.nan), (0.97, 0.40)]
    ]
    assert kit.epochs_since_best(kit.badness(history, "val_acc")) == 2  # ties do not count as improvement
    assert kit.epochs_since_best(kit.badness(history, "val_loss")) == 3  # NaN is never an improvement


def test_the_epoch_count_is_the_shortest_schedule_the_validation_set_does_not_separate_from_the_best() -> (
    None
):
    """Paired over the images: runs that err on nested sets of images are told apart by a gap an unpaired
    comparison would call a tie (1.1 points on 1,000 images, where the unpaired band is 1.25 points)."""
    n, rng = 1000, np.random.default_rng(0)
    order = rng.permutation(n)

    def runs(length: int, wrong: int) -> list[dict]:  # both seeds err on the first ``wrong`` images
        right = np.ones(n, dtype=int)
        right[order[:wrong]] = 0
        return [{"schedule": length, "seed": k, "val_acc": 1 - wrong / n, "val_loss": wrong / n,
                 "correct": right.tolist()} for k in (0, 1)]  # fmt: skip

    table = pd.DataFrame(runs(3, 31) + runs(5, 20) + runs(10, 20))
    kept, marked = q3.shortest_schedule(table)
    assert int(kept["schedule"]) == 5  # 5 and 10 err on the same images: no gap, the shorter is kept
    assert marked.groupby("schedule")["tied"].first().to_dict() == {3: False, 5: True, 10: True}
    gap = float(kept["val_acc"]) - 0.969
    assert gap == pytest.approx(0.011) and gap < selection.tie_band(0.98, n)  # unpaired, 3 would be tied


def test_means_of_equal_counts_tie_whatever_their_last_bit() -> None:
    """Epochs 20 and 21 of the reference's 30-epoch schedule: 29,384 right images of 30,000 over 3 seeds
    each, whose float means differ in the last bit; the tie goes to the lower loss, as the rule says."""
    means = pd.DataFrame(
        {
            "val_acc": [np.mean([0.9799, 0.9786, 0.9799]), np.mean([0.98, 0.9786, 0.9798])],
            "val_loss": [0.13, 0.14],
        },
        index=[20, 21],
    )
    assert means.loc[21, "val_acc"] > means.loc[20, "val_acc"]  # by one bit
    assert selection.best_first(means).index[0] == 20


def test_select_chooses_among_the_last_rung_only() -> None:
    """A point that shone in a short rung but was not retrained does not beat the last rung's best, nor
    is it marked as tied with it, however cheap."""
    short = _point("sgd", 0.1, [0.99], [0.05])
    long = [{**r, "rung": 1} for r in _point("adam", 1e-3, [0.90, 0.97], [0.3, 0.1])]
    kept, marked = q3.select(pd.DataFrame(short + long), 100)
    assert kept["optimizer"] == "adam" and marked["tied"].tolist() == [False, False, True]


# ---- the interval ------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[0.981, 0.983, 0.9795], [0.97, 0.99], list(np.linspace(0.9, 0.95, 7))])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    from scipy import stats  # 1 s to import: here, not in every worker's collection

    ci = kit.t_interval(values, level=0.95)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert ci["mean"] == pytest.approx(np.mean(values))
    assert ci["std"] == pytest.approx(np.std(values, ddof=1))
    assert (ci["lo"], ci["hi"]) == pytest.approx(ref)
    assert ci["t"] == pytest.approx(stats.t.ppf(0.975, len(values) - 1))


# ---- the smoke run on generated MNIST-format digits --------------------------------------------
def _run(data_dir: Path, workdir: Path) -> Output:
    ctx = RunContext(device=torch.device("cpu"), seed=0, data_dir=data_dir, workdir=workdir)
    return q3.run(PROFILES["smoke"], ctx)


@pytest.fixture(scope="module")
def smoke_runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Output, Output, Path]:
    first = tmp_path_factory.mktemp("q3-a")
    return _run(data_dir, first), _run(data_dir, tmp_path_factory.mktemp("q3-b")), first


def test_smoke_run_produces_every_table(smoke_runs) -> None:
    out, _, _ = smoke_runs
    cfg = PROFILES["smoke"]
    assert set(out.tables) == TABLES
    sweep = out.tables["sweep"]
    assert set(sweep["study"]) == {"lr", "grid", "scaling"}
    first = sweep[sweep["rung"] == 0]
    assert len(first[first["study"] == "lr"]) == len(cfg.optimizers) * len(cfg.lrs)
    assert len(first[first["study"] == "grid"]) == len(cfg.lrs) * len(cfg.batch_sizes)
    lengths = halving.rung_lengths(cfg.sweep_epochs, cfg.halving, cfg.rungs)
    lr_rungs = sweep[sweep["study"] == "lr"].groupby("rung")
    assert lr_rungs["epoch"].max().tolist() == lengths  # each rung trains its points for its epochs
    sizes = lr_rungs.size().tolist()
    assert all(b >= math.ceil(a / cfg.halving) for a, b in zip(sizes, sizes[1:], strict=False))
    schedule = out.tables["schedule"]
    assert sorted(schedule["schedule"].unique()) == sorted(cfg.schedules)
    assert (schedule.groupby("schedule")["seed"].count() == cfg.schedule_seeds).all()
    # fresh seeds: the sweep's seed (0) would rerun the chosen point's own rung runs, the best of the stage
    assert sorted(schedule["seed"].unique()) == list(range(1, cfg.schedule_seeds + 1))
    assert (schedule["correct"].map(len) == cfg.n_val).all()
    assert np.allclose(schedule["correct"].map(np.mean), schedule["val_acc"])  # the same runs, image by image
    curve, longest = out.tables["curve"], max(cfg.schedules)
    assert sorted(curve["epoch"].unique()) == list(range(1, longest + 1))
    assert (curve.groupby("epoch")["seed"].count() == cfg.schedule_seeds).all()
    end = curve[curve["epoch"] == longest].sort_values(
        "seed"
    )  # the longest schedule's runs, scored once more
    ran = schedule[schedule["schedule"] == longest].sort_values("seed")
    assert (
        end["val_acc"].tolist() == ran["val_acc"].tolist()
        and end["correct"].tolist() == ran["correct"].tolist()
    )
    for _, run in curve.sort_values("epoch").groupby("seed"):  # early stopping's rule, epoch by epoch
        history = run.to_dict("records")
        waits = [kit.epochs_since_best(kit.badness(history[:e], cfg.monitor)) for e in range(1, longest + 1)]
        first = next((e for e, w in enumerate(waits, 1) if w >= cfg.patience and e < longest), None)
        assert run.loc[run["stop"], "epoch"].tolist() == ([first] if first else [])
    final = out.tables["final"]
    assert final["seed"].tolist() == [0, 1, 2]
    for k, models in final.groupby("stacked"):  # k models a stack, each with its share of the stack's time
        assert len(models) % k == 0 and models["train_s"].value_counts().eq(k).all()
    assert (final["epochs"] == out.tables["choice"].set_index("stage").loc["epochs", "epochs"]).all()
    assert out.headline == ("test accuracy (mean of 3 seeds)", pytest.approx(final["test_acc"].mean()))
    assert out.tables["interval"].iloc[0]["mean"] == pytest.approx(final["test_acc"].mean())
    assert final["test_acc"].min() > 0.5  # a few epochs on 2,000 images already learn the digits
    confusion = out.tables["confusion"]
    assert (confusion.groupby("seed")["count"].sum() == cfg.n_test).all()
    wrong = out.tables["misclassified"]
    assert (wrong["true"] != wrong["pred"]).all()
    assert wrong["pixels"].map(len).eq(784).all()
    assert dict(zip(out.tables["splits"]["split"], out.tables["splits"]["images"], strict=True)) == {
        "train": cfg.n_train,
        "val": cfg.n_val,
        "test": cfg.n_test,
        "trainval": cfg.n_train + cfg.n_val,
        "train_scored": min(cfg.n_train, cfg.n_val),  # the curve's training scores
        "train_available": 4000,  # the MNIST stand-in's sizes (tests/conftest.py)
        "test_available": 1000,
    }


def _untimed(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in df.columns if c.endswith("_s")])


def test_smoke_run_is_deterministic(smoke_runs) -> None:
    a, b, _ = smoke_runs
    for name in TABLES:
        pd.testing.assert_frame_equal(_untimed(a.tables[name]), _untimed(b.tables[name]), check_exact=True)
    assert a.headline == b.headline


def test_rerun_in_the_same_workdir_resumes_from_checkpoints(smoke_runs, data_dir: Path) -> None:
    a, _, workdir = smoke_runs
    assert len(list(workdir.glob("lr-rung*.pt"))) > 0 and len(list(workdir.glob("final-*.pt"))) > 0
    again = _run(data_dir, workdir)
    for name in TABLES:  # timings too: every result is read back, nothing retrained
        pd.testing.assert_frame_equal(a.tables[name], again.tables[name], check_exact=True)
