"""Q4's settings: the one training recipe and budget every model gets, per profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from report.core.config import Range, check_settings
from report.core.errors import ConfigError

Dataset = Literal["svhn", "fashion-mnist", "mnist", "cifar10"]
MODELS: tuple[str, ...] = ("lenet5", "alexnet", "vgg", "resnet18", "resnet50", "resnet101")  # report order


@dataclass(frozen=True)
class Config:
    dataset: Dataset = "svhn"
    models: tuple[str, ...] = MODELS
    # independent trainings per model; seed i uses ctx.seed + i
    seeds: Annotated[int, Range(1, 100)] = 3
    epochs: Annotated[int, Range(1, 1000)] = 12
    batch_size: Annotated[int, Range(1, 65536)] = 512
    # peak of the triangular one-cycle schedule (linear warm-up, then linear decay to 0)
    lr: Annotated[float, Range(0, 10, lo_open=True)] = 0.1
    warmup: Annotated[float, Range(0, 1, hi_open=True)] = 0.2  # fraction of steps spent warming up
    momentum: Annotated[float, Range(0, 1, hi_open=True)] = 0.9  # SGD with Nesterov momentum
    # on weights only, not on biases or batch-norm parameters
    weight_decay: Annotated[float, Range(0, 1)] = 5e-4
    label_smoothing: Annotated[float, Range(0, 1, hi_open=True)] = 0.1
    # max global gradient norm: keeps the models without batch norm from diverging
    grad_clip: Annotated[float, Range(0, 1e6, lo_open=True)] = 2.0
    # held out from the training split, used for the per-epoch curves
    val_size: Annotated[int, Range(1, 10_000_000)] = 5000
    # training images used (0 = all that remain after the validation hold-out)
    train_subset: Annotated[int, Range(0, 10_000_000)] = 0
    # test images used (0 = the whole test split)
    test_subset: Annotated[int, Range(0, 10_000_000)] = 0
    eval_batch_size: Annotated[int, Range(1, 65536)] = 500

    def validate(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(
                f"q4.models: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(MODELS)}"
            )
        if self.train_subset and self.train_subset < self.batch_size:
            raise ConfigError(
                f"q4.train_subset={self.train_subset} is smaller than one batch "
                f"(batch_size={self.batch_size})"
            )

    def check_sizes(self, train: int, test: int, title: str) -> None:
        """As Q3's: the rules that need the split sizes, before anything trains and on the images loaded."""
        left = train - self.val_size  # training images after the validation hold-out
        check_settings(
            (left > 0, f"q4.val_size={self.val_size} leaves none of the {train} training images of {title} "
             "to train on: lower q4.val_size", ("q4.val_size",)),
            (self.train_subset <= left, f"q4.train_subset={self.train_subset} exceeds the {left} training "
             f"images of {title} left after q4.val_size={self.val_size}: lower one of them "
             "(q4.train_subset=0 takes all that are left)", ("q4.train_subset", "q4.val_size")),
            (bool(self.train_subset) or left >= self.batch_size, f"q4.batch_size={self.batch_size} exceeds "
             f"the {left} training images of {title} left after q4.val_size={self.val_size}: lower one of "
             "them", ("q4.batch_size", "q4.val_size")),
            (self.test_subset <= test, f"q4.test_subset={self.test_subset} exceeds the {test} test images "
             f"of {title}: lower it, or 0 for all of them", ("q4.test_subset",)),
        )  # fmt: skip


# fmt: off
PROFILES: dict[str, Config] = {
    # CPU-sized: ResNet-101 trains at a few images per second on two cores, so these are pipeline checks
    "smoke": Config(seeds=1, epochs=1, batch_size=8, lr=0.02, val_size=8, train_subset=8, test_subset=16,
                    eval_batch_size=16),
    "quick": Config(seeds=1, epochs=3, batch_size=32, lr=0.05, val_size=100, train_subset=400,
                    test_subset=400, eval_batch_size=100),
    "full": Config(),
}
# fmt: on
