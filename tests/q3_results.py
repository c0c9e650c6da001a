"""Question 3's synthetic results for the tests: stored tables shaped as a run writes them (a sweep, the
choices, the final models and their interval), and the context read from them."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import kit, q3
from experiments.configs.q3 import PROFILES
from report.core.store import Store
from report.questions import Results
from report.questions import q3 as ctx3
from tests.helpers import fake_meta

LRS = (1e-3, 1e-2, 1e-1)


LR_ACC = {"sgd": (0.80, 0.93, 0.96), "momentum": (0.93, 0.96, 0.90), "adam": (0.978, 0.96, 0.30)}


GRID_ACC = {32: (0.976, 0.95, 0.20), 128: LR_ACC["adam"], 512: (0.95, 0.981, 0.40)}  # adam, lr x batch


SCALED = {32: (2.5e-4, 0.97), 128: (1e-3, 0.978), 512: (4e-3, 0.979)}


# the longest schedule's validation accuracy per epoch, shifted per seed to end where its schedule run does
CURVE = [0.95, 0.96, 0.97, 0.975, 0.978, 0.979, 0.982, 0.981, 0.980, 0.981]


# schedule length -> validation accuracy of seeds 0 and 1: 5 epochs is tied with 10 (the best), 2 is not
SCHEDULE = {2: (0.949, 0.951), 5: (0.979, 0.981), 10: (0.980, 0.982)}


FINAL = {0: 0.981, 1: 0.983, 2: 0.982}


N_TEST = 1000


N_VAL = 1000


def sweep_row(
    study: str,
    opt: str,
    lr: float,
    batch: int,
    acc: float,
    scaled: bool = False,
    epoch: int = 5,
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


def marked(sweep: pd.DataFrame, n_val: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """``sweep`` (one rung) with the ``tied`` column the experiment stores, by the experiment's own
    ``select`` per stage; and each stage's band."""
    sweep, bands = sweep.assign(tied=False), {}
    for stage, studies in {"lr": ["lr"], "batch": ["grid", "scaling"]}.items():
        rows = sweep["study"].isin(studies)
        if rows.any():
            kept, stage_rows = q3.select(sweep[rows], n_val)
            sweep.loc[rows, "tied"] = stage_rows["tied"]
            bands[stage] = float(kept["band"])
    return sweep, bands


def remarked(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``tables`` after a test changed its sweep: the ties marked again and the choices' bands updated, as
    the experiment would have stored them (the choices themselves are the test's)."""
    sweep, bands = marked(tables["sweep"].drop(columns="tied"), N_VAL)
    choice = tables["choice"].copy()
    for stage, band in bands.items():
        choice.loc[choice["stage"] == stage, "band"] = band
    return {**tables, "sweep": sweep, "choice": choice}


def lr_facts(rows: list[dict], choice: dict, n_val: int = 10_000) -> dict:
    """The learning-rate facts of sweep rows, ties marked, for a stored ``choice``."""
    sweep, bands = marked(pd.DataFrame(rows), n_val)
    return ctx3.lr_facts(sweep, pd.Series({**choice, "band": bands["lr"]}), n_val)


def correct(acc: float, seed: int) -> list[int]:
    """Which of the N_VAL validation images a run of accuracy ``acc`` got right: the first of an order of
    the images fixed by ``seed``, so one seed's longer and shorter runs err on nested sets, as runs that
    share their initial weights and data order mostly do."""
    right = np.zeros(N_VAL, dtype=int)
    right[np.random.default_rng(seed).permutation(N_VAL)[: round(acc * N_VAL)]] = 1
    return right.tolist()


def schedule_runs(accs: dict[int, tuple[float, ...]] = SCHEDULE) -> tuple[pd.DataFrame, pd.Series]:
    """The schedule stage's runs, ties marked by the experiment's own rule, and the length it keeps; their
    seeds start after the sweep's (0), as the experiment's do."""
    runs = pd.DataFrame(
        [
            {"study": "epochs", "optimizer": "adam", "lr": 1e-2, "batch_size": 512, "lr_scaled": False,
             "schedule": e, "seed": k + 1, "val_acc": a, "val_loss": 1 - a, "train_s": 0.1 * e,
             "correct": correct(a, k)}
            for e, seeds in accs.items()
            for k, a in enumerate(seeds)
        ]
    )  # fmt: skip
    kept, runs = q3.shortest_schedule(runs)
    return runs, kept


def curve_rows(schedule: dict[int, tuple[float, ...]] = SCHEDULE, patience: int = 3) -> pd.DataFrame:
    """The longest schedule's runs after every epoch (``CURVE``, each seed's shifted to end at its schedule
    run's accuracy), where early stopping would have ended each marked by the experiment's own rule."""
    length = max(schedule)
    rows = []
    for k, end in enumerate(schedule[length]):
        history: list[dict] = []
        for e, a in enumerate(np.interp(np.linspace(0, 1, length), np.linspace(0, 1, 10), CURVE), 1):
            acc = round(a + end - CURVE[-1], 6)
            row = {"epoch": e, "seed": k + 1, "val_acc": acc, "val_loss": 1 - acc, "correct": correct(acc, k),
                   "epoch_lr": 1e-2 * (1 - e / length), "train_loss": 0.5 * (1 - acc),
                   "train_acc": min(1.0, acc + 0.01 * e)}  # fmt: skip
            history.append(row)
            waited = kit.epochs_since_best(kit.badness(history, "val_acc"))
            row["stop"] = waited >= patience and e < length and not any(r["stop"] for r in history[:-1])
            rows.append(row)
    return pd.DataFrame(rows)


def synthetic_tables(schedule: dict[int, tuple[float, ...]] = SCHEDULE) -> dict[str, pd.DataFrame]:
    sweep = [
        sweep_row("lr", o, lr, 128, a) for o, accs in LR_ACC.items() for lr, a in zip(LRS, accs, strict=True)
    ]
    sweep += [
        sweep_row("grid", "adam", lr, b, a)
        for b, accs in GRID_ACC.items()
        for lr, a in zip(LRS, accs, strict=True)
    ]
    sweep += [sweep_row("scaling", "adam", lr, b, a, scaled=True) for b, (lr, a) in SCALED.items()]
    sweep, bands = marked(pd.DataFrame(sweep), N_VAL)
    runs, kept = schedule_runs(schedule)
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
                "band": bands["lr"],
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
                "band": bands["batch"],
            },
            {
                "stage": "epochs",
                "optimizer": "adam",
                "lr": 1e-2,
                "batch_size": 512,
                "lr_scaled": False,
                "epochs": int(kept["schedule"]),
                "val_acc": float(kept["val_acc"]),
                "val_loss": float(kept["val_loss"]),
                "band": float(kept["band"]),
            },
        ]
    )
    final = pd.DataFrame(
        [
            {
                "seed": s,
                "epochs": int(kept["schedule"]),
                "train_s": 3.0,
                "stacked": 1,
                "test_loss": 0.07,
                "test_acc": a,
            }
            for s, a in FINAL.items()
        ]
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
            "split": [
                "train",
                "val",
                "test",
                "trainval",
                "train_scored",
                "train_available",
                "test_available",
            ],
            "images": [5000, N_VAL, N_TEST, 6000, N_VAL, 60_000, 10_000],
        }
    )
    return {
        "sweep": sweep,
        "schedule": runs,
        "curve": curve_rows(schedule),
        "choice": choice,
        "final": final,
        "interval": pd.DataFrame([kit.t_interval(list(FINAL.values()), 0.95)]),
        "layers": layers,
        "misclassified": wrong,
        "splits": splits,
        "confusion": pd.DataFrame([r for s, a in FINAL.items() for r in _confusion(s, a)]),
    }


def context_of(tmp_path: Path, tables: dict[str, pd.DataFrame], **overrides: object) -> dict:
    cfg = dataclasses.replace(
        PROFILES["smoke"],
        lrs=LRS,
        base_batch=128,
        batch_sizes=(32, 128, 512),
        sweep_epochs=5,
        halving=1,
        schedules=tuple(SCHEDULE),
        schedule_seeds=2,
        patience=3,
    )
    cfg = dataclasses.replace(cfg, **overrides)
    store = Store(tmp_path / "results")
    store.write("smoke", "q3", tables, fake_meta("q3", config=dataclasses.asdict(cfg)))
    return ctx3.context(Results(store, "smoke"))
