"""Q3's settings: the data, the search (optimizers, rates, batch sizes, halving), the schedules with their
early-stopping rule and the final models, per profile; and what a point costs to train, which decides
among tied points (``cost``: the experiment chooses by it, the report re-checks the choice by it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from report.core.config import Range, check_settings

if TYPE_CHECKING:
    import pandas as pd

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
MOMENTUM = 0.9  # "momentum" is SGD with this coefficient (experiments/stacked.py; the report says it)
STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # tensors of optimizer state per weight
# each tuning stage's successive halving keeps the best point of each value of this key for every rung, so
# the last rung compares every optimizer, and every batch size, at its full length
EACH = {"lr": "optimizer", "batch": "batch_size"}


def cost(points: pd.DataFrame) -> pd.DataFrame:
    """What a sweep point costs to train, criteria in order, cheapest first: optimizer steps per epoch
    (fewer at a larger batch), then the optimizer's state per weight (SGD none, momentum one buffer,
    Adam two)."""
    import pandas as pd  # here, not at the top: settings and commands that never choose skip its import

    return pd.DataFrame({"steps": -points["batch_size"], "state": points["optimizer"].map(STATE)})


@dataclass(frozen=True)
class Config:
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    # training images (taken after the validation images)
    n_train: Annotated[int, Range(1, 10_000_000)] = 50_000
    # held out from the training set for every choice the study makes
    n_val: Annotated[int, Range(1, 10_000_000)] = 10_000
    # test images, a seeded random subset when below the full 10k
    n_test: Annotated[int, Range(1, 10_000_000)] = 10_000
    optimizers: tuple[str, ...] = OPTIMIZERS
    lrs: Annotated[tuple[float, ...], Range(0, 10, lo_open=True)] = (
        1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0
    )  # fmt: skip
    # batch size of the learning-rate sweep and the reference for linear scaling
    base_batch: Annotated[int, Range(1, 65536)] = 128
    batch_sizes: Annotated[tuple[int, ...], Range(1, 65536)] = (32, 128, 512, 2048)
    # epochs of the sweep points that reach the last rung
    sweep_epochs: Annotated[int, Range(1, 1000)] = 10
    # each rung keeps the best 1/halving of its points (1: every point trains sweep_epochs)
    halving: Annotated[int, Range(1, 100)] = 3
    # successive-halving rungs: each trains halving times longer than the one before
    rungs: Annotated[int, Range(1, 10)] = 3
    # schedule lengths (epochs) the chosen configuration trains for, each decaying to zero: the epoch count
    # is the shortest whose mean validation accuracy over schedule_seeds is tied with the best; the longest
    # is scored after every epoch as well (the curve, and where early stopping would have ended it)
    schedules: Annotated[tuple[int, ...], Range(1, 1000)] = (3, 5, 10, 15, 20, 30)
    schedule_seeds: Annotated[int, Range(1, 100)] = 3
    # epochs without a new best validation score after which early stopping ends a run of the curve
    patience: Annotated[int, Range(1, 1000)] = 5
    monitor: Literal["val_acc", "val_loss"] = "val_acc"  # what "validation improves" means
    # final models, for the mean ± interval of test accuracy
    seeds: Annotated[int, Range(2, 100)] = 3
    # confidence level of the Student-t interval for the mean over seeds
    ci_level: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.95
    # misclassified test digits kept per final model (most confident first)
    n_misclassified: Annotated[int, Range(0, 1000)] = 24
    # points trained together as one stacked network (one unit for an executor)
    max_stack: Annotated[int, Range(1, 1024)] = 64
    # each stage is cut into about this many units, whatever the machine (see kit.split)
    units: Annotated[int, Range(1, 1024)] = 4
    # threads per unit on CPU (0: every core); more cores run more units at once
    cpu_threads: Annotated[int, Range(0, 1024)] = 1

    def validate(self) -> None:
        """The rules between fields; each field's own range is declared with it (``Range``)."""
        unknown = ", ".join(sorted(set(self.optimizers) - set(OPTIMIZERS)))
        check_settings(
            (not unknown, f"q3.optimizers: unknown {unknown}; choose from {', '.join(OPTIMIZERS)}"),
            (self.base_batch in self.batch_sizes, "q3.base_batch must be one of q3.batch_sizes (the "
             "reference for linear scaling)"),
            (len(self.lrs) >= 2, "q3.lrs: give two or more learning rates (the study compares them), e.g. "
             "q3.lrs=1e-3,1e-2"),
            (len(self.batch_sizes) >= 2, "q3.batch_sizes: give two or more batch sizes (the study compares "
             "them), e.g. q3.batch_sizes=128,512"),
            (len(self.schedules) >= 2, "q3.schedules: give two or more lengths, e.g. q3.schedules=5,10"),
            (self.patience <= max(self.schedules, default=0) - 2, "q3.patience must be at most the longest "
             "of q3.schedules minus 2, or early stopping could never end a run before its schedule does"),
        )  # fmt: skip

    def check_sizes(self, train: int, test: int, title: str) -> None:
        """The rules that need the dataset's split sizes (``experiments/datasets.py``): checked before
        anything trains, and again on the images the run loads."""
        check_settings(
            (self.n_train + self.n_val <= train, f"q3.n_train + q3.n_val = {self.n_train + self.n_val} "
             f"exceed the {train} training images of {title}: lower them to at most {train} together",
             ("q3.n_train", "q3.n_val")),
            (self.n_test <= test, f"q3.n_test={self.n_test} exceeds the {test} test images of {title}: "
             f"lower it to at most {test}", ("q3.n_test",)),
        )  # fmt: skip


# fmt: off
PROFILES: dict[str, Config] = {
    "smoke": Config(n_train=2_000, n_val=1_000, n_test=1_000, lrs=(1e-3, 1e-1), batch_sizes=(64, 256),
                    base_batch=64, sweep_epochs=2, schedules=(1, 2, 4), schedule_seeds=3, patience=2,
                    n_misclassified=8),
    "quick": Config(n_train=20_000, n_val=5_000, lrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), sweep_epochs=3,
                    schedules=(3, 5, 10, 15), schedule_seeds=2, patience=4),
    "full": Config(),
}
# fmt: on
