"""Question 3: the network, the study's selection and stopping rules, the smoke run on generated
MNIST-format digits, its determinism, the interval math, and the context's computed recommendations."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from experiments import halving, kit, q3
from experiments.configs.q3 import PROFILES
from experiments.kit import Output, RunContext
from report import render
from report.core.config import apply_overrides
from report.core.errors import ConfigError, EvidenceError
from report.core.store import Store
from report.provenance import for_print
from report.questions import Results
from report.questions import q3 as ctx3
from tests.helpers import fake_meta

TABLES = {"sweep", "choice", "final", "interval", "splits", "layers", "confusion", "misclassified"}


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


def test_select_best_uses_the_last_epoch_and_breaks_ties_by_loss() -> None:
    sweep = pd.DataFrame(
        _point("sgd", 0.1, [0.99, 0.95], [0.05, 0.20])  # best at an earlier epoch only: not chosen
        + _point("adam", 1e-3, [0.90, 0.97], [0.30, 0.12])  # tied last-epoch accuracy, higher loss
        + _point("adam", 3e-3, [0.91, 0.97], [0.30, 0.10])  # tied, lower loss: chosen
        + _point("momentum", 1.0, [0.50, 0.10], [2.0, math.nan])  # diverged
    )
    best = q3.select_best(sweep.sample(frac=1.0, random_state=0))  # row order must not matter
    assert (best["optimizer"], best["lr"], best["epoch"]) == ("adam", 3e-3, 2)


def test_select_best_tolerates_nan_losses_among_ties() -> None:
    sweep = pd.DataFrame(_point("sgd", 1.0, [0.2], [math.nan]) + _point("sgd", 0.1, [0.2], [2.0]))
    assert q3.select_best(sweep)["lr"] == 0.1


def test_stopping_rule_counts_epochs_since_the_best_monitored_value() -> None:
    history = [
        {"val_acc": a, "val_loss": loss}
        for a, loss in [(0.90, 0.30), (0.95, 0.20), (0.97, 0.25), (0.96, math.nan), (0.97, 0.40)]
    ]
    assert kit.epochs_since_best(kit.badness(history, "val_acc")) == 2  # ties do not count as improvement
    assert kit.epochs_since_best(kit.badness(history, "val_loss")) == 3  # NaN is never an improvement


def test_the_epoch_count_is_the_smallest_within_one_standard_error_of_the_best() -> None:
    accs = [0.95, 0.975, 0.978, 0.9805, 0.981, 0.979]  # one SE at 98.1% of 10,000 images: 0.137 points
    history = [{"val_acc": a, "val_loss": 1 - a} for a in accs]
    assert q3.chosen_epoch(history, "val_acc", 10_000) == 4  # 98.05% is within 0.137 of 98.1%; 97.8% not
    assert q3.chosen_epoch(history, "val_acc", 100) == 2  # a small validation set separates less
    assert q3.chosen_epoch(history, "val_loss", 10_000) == 5  # the loss: its lowest epoch


def test_select_best_chooses_among_the_last_rung_only() -> None:
    """A point that shone in a short rung but was not retrained does not beat the last rung's best."""
    short = _point("sgd", 0.1, [0.99], [0.05])
    long = [{**r, "rung": 1} for r in _point("adam", 1e-3, [0.90, 0.97], [0.3, 0.1])]
    assert q3.select_best(pd.DataFrame(short + long))["optimizer"] == "adam"


# ---- the interval ------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[0.981, 0.983, 0.9795], [0.97, 0.99], list(np.linspace(0.9, 0.95, 7))])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    ci = kit.t_interval(values, level=0.95)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert ci["mean"] == pytest.approx(np.mean(values))
    assert ci["std"] == pytest.approx(np.std(values, ddof=1))
    assert (ci["lo"], ci["hi"]) == pytest.approx(ref)
    assert ci["t"] == pytest.approx(stats.t.ppf(0.975, len(values) - 1))


def test_an_interval_that_does_not_match_the_final_models_stops_the_build(tmp_path: Path) -> None:
    tables = synthetic_tables()
    tables["interval"] = pd.DataFrame([kit.t_interval([0.5, 0.6, 0.7], 0.95)])
    with pytest.raises(EvidenceError, match="interval summarises"):
        _context(tmp_path, tables)


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
    assert set(sweep["study"]) == {"lr", "grid", "scaling", "epochs"}
    first = sweep[sweep["rung"] == 0]
    assert len(first[first["study"] == "lr"]) == len(cfg.optimizers) * len(cfg.lrs)
    assert len(first[first["study"] == "grid"]) == len(cfg.lrs) * len(cfg.batch_sizes)
    lengths = halving.rung_lengths(cfg.sweep_epochs, cfg.halving, cfg.rungs)
    lr_rungs = sweep[sweep["study"] == "lr"].groupby("rung")
    assert lr_rungs["epoch"].max().tolist() == lengths  # each rung trains its points for its epochs
    sizes = lr_rungs.size().tolist()
    assert all(b == math.ceil(a / cfg.halving) for a, b in zip(sizes, sizes[1:], strict=False))
    final = out.tables["final"]
    assert final["seed"].tolist() == [0, 1, 2]
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


# ---- the context layer on a synthetic store ----------------------------------------------------------
LRS = (1e-3, 1e-2, 1e-1)
LR_ACC = {"sgd": (0.80, 0.93, 0.97), "momentum": (0.93, 0.975, 0.90), "adam": (0.978, 0.96, 0.30)}
GRID_ACC = {32: (0.976, 0.95, 0.20), 128: LR_ACC["adam"], 512: (0.95, 0.981, 0.40)}  # adam, lr x batch
SCALED = {32: (2.5e-4, 0.97), 128: (1e-3, 0.978), 512: (4e-3, 0.979)}
CURVE = [0.95, 0.96, 0.97, 0.975, 0.978, 0.979, 0.982, 0.981, 0.980, 0.981]  # best 7; 5 is within 1 SE
FINAL = {0: 0.981, 1: 0.983, 2: 0.982}
N_TEST = 1000


def _row(
    study: str,
    opt: str,
    lr: float,
    batch: int,
    acc: float,
    scaled: bool = False,
    epoch: int = 5,
    train: float = 0.99,
) -> dict:
    loss = math.nan if acc < 0.35 else 1 - acc
    return {
        "study": study,
        "optimizer": opt,
        "lr": lr,
        "batch_size": batch,
        "lr_scaled": scaled,
        "epoch": epoch,
        "epoch_lr": lr,
        "epoch_s": 0.5 * 128 / batch,
        "stacked": 3,
        "train_loss": 1 - train,
        "train_acc": train,
        "val_loss": loss,
        "val_acc": acc,
        "rung": 0,
    }


def _confusion(seed: int, acc: float) -> list[dict]:
    """Counts with the stored accuracy on the diagonal; "4 read as 9" (3 times) is the top confusion."""
    errors = round((1 - acc) * N_TEST)
    counts = np.zeros((10, 10), dtype=int)
    np.fill_diagonal(counts, N_TEST // 10)
    for t, p in [(4, 9)] * 3 + [(t % 10, (t + 1) % 10) for t in range(errors - 3)]:
        counts[t, t] -= 1
        counts[t, p] += 1
    return [
        {"seed": seed, "true": t, "pred": p, "count": int(counts[t, p])} for t in range(10) for p in range(10)
    ]


def synthetic_tables(best_epoch: int = 5) -> dict[str, pd.DataFrame]:
    sweep = [_row("lr", o, lr, 128, a) for o, accs in LR_ACC.items() for lr, a in zip(LRS, accs, strict=True)]
    sweep += [
        _row("grid", "adam", lr, b, a)
        for b, accs in GRID_ACC.items()
        for lr, a in zip(LRS, accs, strict=True)
    ]
    sweep += [_row("scaling", "adam", lr, b, a, scaled=True) for b, (lr, a) in SCALED.items()]
    sweep += [
        _row("epochs", "adam", 1e-2, 512, a, epoch=e, train=min(1.0, a + 0.01 * e))
        for e, a in enumerate(CURVE, 1)
    ]
    choice = pd.DataFrame(
        [
            {
                "stage": "lr",
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 128,
                "lr_scaled": False,
                "epochs": 5,
                "val_acc": 0.978,
                "val_loss": 0.022,
            },
            {
                "stage": "batch",
                "optimizer": "adam",
                "lr": 1e-2,
                "batch_size": 512,
                "lr_scaled": False,
                "epochs": 5,
                "val_acc": 0.981,
                "val_loss": 0.019,
            },
            {
                "stage": "epochs",
                "optimizer": "adam",
                "lr": 1e-2,
                "batch_size": 512,
                "lr_scaled": False,
                "epochs": best_epoch,
                "val_acc": CURVE[best_epoch - 1],
                "val_loss": 1 - CURVE[best_epoch - 1],
            },
        ]
    )
    final = pd.DataFrame(
        [{"seed": s, "epochs": 5, "train_s": 3.0, "test_loss": 0.07, "test_acc": a} for s, a in FINAL.items()]
    )
    layers = pd.DataFrame(
        {
            "position": range(8),
            "layer": ["Flatten"] + ["Linear", "ReLU"] * 3 + ["Linear"],
            "out_features": [784, 128, 128, 64, 64, 32, 32, 10],
            "params": [0, 100480, 0, 8256, 0, 2080, 0, 330],
        }
    )
    wrong = pd.DataFrame(
        {
            "seed": 0,
            "rank": [0, 1],
            "test_index": [17, 3],
            "true": [4, 7],
            "pred": [9, 1],
            "confidence": [0.99, 0.8],
            "pixels": [[0] * 784, [255] * 784],
        }
    )
    splits = pd.DataFrame(
        {
            "dataset": "MNIST",
            "split": ["train", "val", "test", "trainval", "train_available", "test_available"],
            "images": [5000, 1000, N_TEST, 6000, 60_000, 10_000],
        }
    )
    return {
        "sweep": pd.DataFrame(sweep),
        "choice": choice,
        "final": final,
        "interval": pd.DataFrame([kit.t_interval(list(FINAL.values()), 0.95)]),
        "layers": layers,
        "misclassified": wrong,
        "splits": splits,
        "confusion": pd.DataFrame([r for s, a in FINAL.items() for r in _confusion(s, a)]),
    }


def _context(tmp_path: Path, tables: dict[str, pd.DataFrame], **overrides: object) -> dict:
    cfg = dataclasses.replace(
        PROFILES["smoke"],
        lrs=LRS,
        base_batch=128,
        batch_sizes=(32, 128, 512),
        sweep_epochs=5,
        halving=1,
        max_epochs=10,
        patience=3,
    )
    cfg = dataclasses.replace(cfg, **overrides)
    store = Store(tmp_path / "results")
    store.write("smoke", "q3", tables, fake_meta("q3", config=dataclasses.asdict(cfg)))
    return ctx3.context(Results(store, "smoke"))


def test_a_reduced_budget_is_said_in_a_banner_in_the_answer_and_in_the_scope(tmp_path: Path) -> None:
    def text_of(tables: dict[str, pd.DataFrame], folder: str, **cfg: object) -> str:
        _context(tmp_path / folder, tables, **cfg)  # the same store, rendered as the report shows it
        page = render.render_html(Store(tmp_path / folder / "results"), "smoke", names=("q3",))
        return " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())

    subset = text_of(synthetic_tables(), "a")
    assert (
        "This build runs Q3 at a reduced budget: 6,000 of the 60,000 training images and 1,000 of the "
        "10,000 test images, sweep runs of at most 5 epochs instead of 10, an early-stopping schedule of "
        "10 epochs instead of 30, 3 learning rates instead of 9 and 3 batch sizes instead of 4." in subset
    )
    assert "Trained that way on 6,000 of the 60,000 training images of MNIST (this build's subset)" in subset
    assert "at this build's reduced budget (see the note above)" in subset  # the answer
    assert "and at this build's reduced budget (6,000 of the 60,000 training images" in subset  # the scope
    whole = synthetic_tables()
    whole["splits"].loc[whole["splits"]["split"] == "train_available", "images"] = 6000
    whole["splits"].loc[whole["splits"]["split"] == "test_available", "images"] = N_TEST
    full = PROFILES["full"]
    budget = {k: getattr(full, k) for k in ("sweep_epochs", "max_epochs", "lrs", "batch_sizes", "seeds")}
    unreduced = text_of(whole, "b", **budget)
    assert "reduced budget" not in unreduced and "Trained that way on all 6,000 training images" in unreduced


def test_the_answer_and_table_6_say_the_same_learning_rate_and_how_they_relate(tmp_path: Path) -> None:
    """The answer gave the rate scaled to the chosen batch while the learning-rate table highlighted the
    rate chosen at the base batch, the scaling explained pages later: both now say both."""

    def text_of(tables: dict[str, pd.DataFrame], folder: str) -> str:
        _context(tmp_path / folder, tables)
        page = render.render_html(Store(tmp_path / folder / "results"), "smoke", names=("q3",))
        return re.sub(r" ([),;.])", r"\1", " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split()))

    grid = text_of(synthetic_tables(), "grid")  # the batch stage chose 1e-2 at 512 from the grid
    assert re.search(
        r"a learning rate of 1×10⁻² \(chosen with the batch size from the grid of Figure \d+; at batch 128 "
        r"the learning-rate stage chose 1×10⁻³, highlighted in Table \d+\), batch size 512",
        grid,
    )
    assert (
        "Highlighted: the rate chosen for Adam at this batch size; the final models use 1×10⁻² at batch "
        "size 512, chosen from the batch-size grid." in grid
    )
    tables = synthetic_tables()  # the scaled point at batch 512 is the best instead
    sweep, choice = tables["sweep"], tables["choice"]
    sweep.loc[(sweep["study"] == "grid") & (sweep["batch_size"] == 512), "val_acc"] = 0.95
    chosen = {"lr": 4e-3, "lr_scaled": True, "val_acc": 0.979, "val_loss": 0.021}
    choice.loc[choice["stage"] == "batch", list(chosen)] = list(chosen.values())
    scaled = text_of(tables, "scaled")
    assert re.search(
        r"a learning rate of 4×10⁻³ \(the rate 1×10⁻³ chosen at batch 128 and highlighted in Table \d+, "
        r"scaled linearly to batch size 512 as in Table \d+\), batch size 512",
        scaled,
    )
    assert (
        "Highlighted: the rate chosen for Adam at this batch size, which the final models use scaled "
        "linearly to batch size 512: 4×10⁻³." in scaled
    )


def test_context_writes_recommendations_from_the_stored_numbers(tmp_path: Path) -> None:
    c = _context(tmp_path, synthetic_tables())
    w = render.words("q3")
    rec = {k: _say(getattr(w, f"recommend_{k}")(c)) for k in ("lr", "batch", "epochs")}
    assert rec["lr"].startswith("Learning rate: Adam at 1×10⁻³ had the highest validation accuracy of the 9 ")
    assert "(97.80% after 5 epochs at batch 128)" in rec["lr"]
    # momentum at 1e-2 (97.50%) and SGD at 1e-1 (97.00%) are within 1.31 points of Adam's 97.80%: ties
    assert (
        "SGD with momentum 0.9 at 1×10⁻² (97.50%) and SGD at 1×10⁻¹ (97.00%) are within two standard"
        in rec["lr"]
    )
    assert "they are tied, and the choice among them is the tie-break rule's" in rec["lr"]
    assert rec["batch"].startswith(
        "Batch size: 512 with learning rate 1×10⁻² had the highest validation "
        "accuracy of the 11 batch-size and learning-rate points (98.10%)."
    )
    se_diff = math.sqrt(2) * math.sqrt(0.981 * 0.019 / 1000)  # of a difference of two accuracies
    grid = [a for accs in GRID_ACC.values() for a in accs] + [SCALED[32][1], SCALED[512][1]]
    close = sorted((a for a in grid if 0.981 - 2 * se_diff <= a < 0.981), reverse=True)
    assert [t["val_acc"] for t in c["batch"]["tied"]] == close and len(close) == 4
    named = "Adam at 4×10⁻³ and batch 512 (97.90%), Adam at 1×10⁻³ and batch 128 (97.80%)"
    assert f"{named}, " in rec["batch"] and "within two standard errors of a difference" in rec["batch"]
    assert "they are tied" in rec["batch"] and "Any batch size from 32 to 512" in rec["batch"]
    assert rec["epochs"].startswith(
        "Epochs: 5, the smallest epoch count whose validation accuracy is within one binomial standard error"
    )
    assert "was still at 50% of the peak rate after that epoch" in rec["epochs"]
    windows = _say(w.lr_windows(c["lr"]))
    assert windows.startswith(
        "Adam peaks at 1×10⁻³ (97.8%, the lowest rate of the grid, so its best rate"
    )  # 1,000 validation images: one decimal
    assert "SGD with momentum 0.9 peaks at 1×10⁻² (97.5%)" in windows
    assert _say(w.momentum(c["lr"]["momentum"])) == (
        "The best plain-SGD rate is at least 10 times the best rate with momentum; the "
        "grid is too coarse to compare that with the factor 1/(1 − β) = 10."
    )
    batch = _say(w.batch(c["batch"]))
    assert batch.startswith(
        "With the learning rate held at 1×10⁻³, validation accuracy falls from 97.6% at "
        "batch 32 to 95.0% at batch 512"
    )
    assert "gives 97.9% there, 2.90 percentage points more than the held rate." in batch
    assert "The best learning rate of the grid never decreases as the batch size grows" in batch
    assert "a ratio of 16 at an equal stack width of 3 points" in batch  # every synthetic stack held 3
    wider = {**c["batch"], "large": {**c["batch"]["large"], "stacked": 9}}
    assert "mixes the batch size's effect on speed with the stack width's" in _say(w.batch(wider))
    epochs = _say(w.epochs(c["epochs"], c["monitor"], c["patience"], c["max_epochs"]))
    assert "training stopped after epoch 10 of 10" not in epochs
    assert "Training ran the whole 10-epoch schedule." in epochs
    ci = kit.t_interval(list(FINAL.values()), 0.95)
    assert (c["final"]["mean"], c["final"]["lo"], c["final"]["hi"]) == (ci["mean"], ci["lo"], ci["hi"])
    assert "4 read as 9 (3)" in _say(w.confusion(c["confusion"]))


def _say(text: str) -> str:
    """A macro's sentence with its line breaks folded, as Markdown shows it."""
    return " ".join(str(text).split())


@pytest.mark.parametrize(
    ("sgd_best", "expected"),
    [
        (1e-1, ", exactly the factor 1/(1 − β) = 10 on this grid."),
        (3e-2, ", 1 grid step (factors of 3.16) from the factor 1/(1 − β) = 10."),
        (1e-2, ", 2 grid steps (factors of 3.16) from the factor 1/(1 − β) = 10."),
    ],
)
def test_momentum_sentence_counts_grid_steps_from_the_factor_ten(sgd_best: float, expected: str) -> None:
    grid = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    rows = [_row("lr", "momentum", lr, 128, 0.98 if lr == 1e-2 else 0.9) for lr in grid]
    rows += [_row("lr", "sgd", lr, 128, 0.97 if lr == sgd_best else 0.9) for lr in grid]
    choice = pd.Series({"optimizer": "momentum", "lr": 1e-2, "batch_size": 128, "val_acc": 0.98})
    facts = ctx3.lr_facts(pd.DataFrame(rows), choice, 10_000)
    assert _say(render.words("q3").momentum(facts["momentum"])).endswith(expected)


def test_context_figures_draw(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, fig in _context(tmp_path, synthetic_tables())["figures"].items():
        drawn = fig.draw(fig.data, **fig.extra)
        assert drawn.axes, name
        plt.close(drawn)


def test_context_stops_when_the_stored_choice_is_not_the_best(tmp_path: Path) -> None:
    tables = synthetic_tables()
    tables["choice"].loc[tables["choice"]["stage"] == "lr", ["optimizer", "val_acc"]] = ["sgd", 0.97]
    with pytest.raises(EvidenceError, match="highest validation accuracy"):
        _context(tmp_path / "a", tables)
    with pytest.raises(
        EvidenceError, match="fail a check the report rests on: it is not so that the chosen epoch count"
    ):
        _context(tmp_path / "b", synthetic_tables(best_epoch=9))


def _window_facts(rates: dict[float, float], optimizer: str = "adam") -> dict:
    rows = [_row("lr", optimizer, lr, 128, acc) for lr, acc in rates.items()]
    choice = pd.Series(
        {
            "optimizer": optimizer,
            "lr": max(rates, key=rates.get),
            "batch_size": 128,
            "val_acc": max(rates.values()),
        }
    )
    return ctx3.lr_facts(pd.DataFrame(rows), choice, 10_000)


def test_a_one_point_window_is_below_the_grid_resolution_not_zero_wide() -> None:
    facts = _window_facts({1e-3: 0.90, 1e-2: 0.98, 1e-1: 0.90})
    words = render.words("q3")
    text = _say(
        words.recommend_lr(
            {
                "lr": facts,
                "sweep_epochs": 5,
                "base_batch": 128,
                "halving": {"pruned": False},
                "n": {"val": 10_000},
            }
        )
    )
    assert "less than one grid step (1 decade) for Adam" in text and "0.0 decades" not in text


def test_an_optimum_on_the_edge_of_the_grid_is_reported_as_such_and_bounds_the_ratio() -> None:
    sgd = _window_facts({1e-2: 0.90, 1e-1: 0.95, 1.0: 0.97}, "sgd")
    assert sgd["by_optimizer"]["sgd"]["edge"] == "high"
    words = render.words("q3")
    assert "the highest rate of the grid, so its best rate may lie beyond it" in _say(words.lr_windows(sgd))
    grid = (1e-2, 1e-1, 1.0)
    rows = [_row("lr", "sgd", lr, 128, 0.97 if lr == 1.0 else 0.9) for lr in grid]
    rows += [_row("lr", "momentum", lr, 128, 0.98 if lr == 1e-1 else 0.9) for lr in grid]
    choice = pd.Series({"optimizer": "momentum", "lr": 1e-1, "batch_size": 128, "val_acc": 0.98})
    facts = ctx3.lr_facts(pd.DataFrame(rows), choice, 10_000)
    assert facts["momentum"]["bound"] == "at least"
    assert _say(words.momentum(facts["momentum"])).startswith("The best plain-SGD rate is at least 10 times")


def test_a_result_stored_before_the_dataset_sizes_asks_for_a_rerun(tmp_path: Path) -> None:
    from report.core.errors import MissingResultError

    tables = synthetic_tables()
    tables["splits"] = tables["splits"][~tables["splits"]["split"].str.endswith("_available")]
    with pytest.raises(MissingResultError, match="rerun it: build.py run q3 --profile smoke"):
        _context(tmp_path, tables)
