"""Question 3: a dense MNIST classifier, and what learning rate, batch size and epochs each do to it.

The network is the one the question specifies (Flatten → 128 → 64 → 32 → 10, ReLU between, inputs in
[0, 1]); it outputs logits and trains with cross-entropy, which is softmax + categorical cross-entropy on
one-hot labels in one numerically stable step. Every run decays its learning rate linearly over its
epochs (``linear_decay``). The study runs in four stages, each choice made by code from validation
accuracy on images held out from the training set:

1. ``lr``: every optimizer (SGD, SGD with momentum 0.9, Adam) over a log grid of learning rates at the
   reference batch size; picks the optimizer and learning rate.
2. ``grid`` and ``scaling``: that optimizer over learning rate × batch size, plus each batch size with the
   learning rate scaled linearly from the reference batch; picks the batch size (and learning rate).
3. ``epochs``: that configuration on a ``max_epochs`` schedule, stopped once the validation score has not
   improved for ``patience`` epochs; picks the epoch count (the best epoch).
4. ``final``: retrain on training + validation images with the first ``best epoch`` rates of that
   schedule, once per seed; only these models see the test set, once each.

Data sits on the device as float tensors for the whole run; a batch is an index slice of a per-epoch
permutation, so an epoch is a few hundred matrix products and no Python per image.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from experiments import data, datasets, kit
from experiments.kit import Output, RunContext
from report.core.config import check_settings
from report.core.errors import ConfigError

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
RUN_KEYS = ["optimizer", "lr", "batch_size", "lr_scaled"]  # what identifies one trained point


@dataclass(frozen=True)
class Config:
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    n_train: int = 50_000  # training images (taken after the validation images)
    n_val: int = 10_000  # held out from the training set for every choice the study makes
    n_test: int = 10_000  # test images, a seeded random subset when below the full 10k
    optimizers: tuple[str, ...] = OPTIMIZERS
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    base_batch: int = 128  # batch size of the learning-rate sweep and the reference for linear scaling
    batch_sizes: tuple[int, ...] = (32, 128, 512, 2048)
    sweep_epochs: int = 10  # epochs per sweep point
    max_epochs: int = 30  # length of the early-stopping run's schedule
    patience: int = 5  # epochs without a new best validation score before training stops
    monitor: Literal["val_acc", "val_loss"] = "val_acc"  # what "validation improves" means
    seeds: int = 3  # final models, for the mean ± interval of test accuracy
    ci_level: float = 0.95  # confidence level of the Student-t interval for the mean over seeds
    n_misclassified: int = 24  # misclassified test digits kept per final model (most confident first)
    cpu_threads: int = 1  # intra-op threads on CPU (0: torch's default); too little work to split

    def validate(self) -> None:
        positive = (*self.lrs, *self.batch_sizes, self.n_train, self.n_val, self.n_test, self.sweep_epochs)
        unknown = ", ".join(sorted(set(self.optimizers) - set(OPTIMIZERS)))
        check_settings(
            (not unknown, f"q3.optimizers: unknown {unknown}; choose from {', '.join(OPTIMIZERS)}"),
            (self.base_batch in self.batch_sizes, "q3.base_batch must be one of q3.batch_sizes (the "
             "reference for linear scaling)"),
            (all(math.isfinite(v) and v > 0 for v in positive), "q3.lrs, batch_sizes, n_train, n_val, n_test "
             "and sweep_epochs must be positive finite numbers"),
            (1 <= self.patience < self.max_epochs, "q3.patience must be at least 1 and below q3.max_epochs"),
            (self.cpu_threads >= 0, "q3.cpu_threads must be 0 (torch's default) or a positive thread count"),
            (self.seeds >= 2, "q3.seeds must be at least 2 to estimate a spread"),
            (0 < self.ci_level < 1, "q3.ci_level must be between 0 and 1 (e.g. 0.95)"),
        )  # fmt: skip


# fmt: off
PROFILES: dict[str, Config] = {
    "smoke": Config(n_train=2_000, n_val=1_000, n_test=1_000, lrs=(1e-3, 1e-1), batch_sizes=(64, 256),
                    base_batch=64, sweep_epochs=2, max_epochs=4, patience=2, n_misclassified=8),
    "quick": Config(n_train=20_000, n_val=5_000, lrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), sweep_epochs=3,
                    max_epochs=15, patience=4),
    "full": Config(),
}
# fmt: on


# ---- model ------------------------------------------------------------------------------------------
def mlp() -> nn.Sequential:
    """The question's network; it ends in logits because the loss applies the softmax itself."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 128),
        nn.ReLU(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def layers_table(model: nn.Sequential) -> pd.DataFrame:
    """One row per layer with its output width and parameter count, read off the module itself."""
    rows, width = [], 28 * 28
    for i, layer in enumerate(model):
        width = getattr(layer, "out_features", width)
        rows.append(
            {
                "position": i,
                "layer": type(layer).__name__,
                "out_features": width,
                "params": sum(p.numel() for p in layer.parameters()),
            }
        )
    return pd.DataFrame(rows)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, device: torch.device
) -> torch.optim.Optimizer:
    fused = device.type in ("cpu", "cuda")  # one kernel updates every parameter, no Python loop over them
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=fused)
    return torch.optim.SGD(params, lr=lr, momentum=0.9 if name == "momentum" else 0.0, fused=fused)


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class Split:
    x: torch.Tensor  # float (N, 1, 28, 28) in [0, 1], on the device
    y: torch.Tensor  # int64 (N,), on the device

    def __len__(self) -> int:
        return len(self.y)


@functools.lru_cache(maxsize=1)  # a worker process loads the data once for all the units it runs
def load_splits(
    cfg: Config, data_dir: Path, seed: int, device: str
) -> tuple[dict[str, Split], torch.Tensor, dict[str, int]]:
    """Train / validation / test splits fixed by the run seed (``trainval`` is train + validation, for the
    final refits), the indices of the test images used in the original test set, and the dataset's sizes."""
    x, y = data.load(cfg.dataset, data_dir, train=True)
    xt, yt = data.load(cfg.dataset, data_dir, train=False)
    if cfg.n_train + cfg.n_val > len(y) or cfg.n_test > len(yt):
        raise ConfigError(
            f"q3.n_train + q3.n_val = {cfg.n_train + cfg.n_val} and q3.n_test = {cfg.n_test} "
            f"must fit the {len(y)} training and {len(yt)} test images"
        )
    device = kit.resolve_device(device)  # "auto" from a remote executor: this machine's choice
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    val, train = order[: cfg.n_val], order[cfg.n_val : cfg.n_val + cfg.n_train]
    test = torch.randperm(len(yt), generator=gen)[: cfg.n_test].sort().values

    def split(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> Split:
        return Split(images[idx].to(device).float().div_(255), labels[idx].to(device))

    splits = {
        "train": split(x, y, train),
        "val": split(x, y, val),
        "test": split(xt, yt, test),
        "trainval": split(x, y, torch.cat([train, val])),
    }
    return splits, test, {"train_available": len(y), "test_available": len(yt)}


# ---- training ---------------------------------------------------------------------------------------
def setup(
    optimizer: str, lr: float, seed: int, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    """A fresh model, optimizer and batch-order generator: every run starts from the same seed policy."""
    torch.manual_seed(seed)
    model = mlp().to(device)
    gen = torch.Generator(device).manual_seed(seed)
    return model, make_optimizer(optimizer, model.parameters(), lr, device), gen


def train_epochs(
    model: nn.Module, opt: torch.optim.Optimizer, split: Split, batch_size: int, gen: torch.Generator
) -> Iterator[float]:
    """Train one epoch per ``next()``, yielding its seconds; the caller evaluates, adjusts and stops."""
    while True:
        t0 = time.perf_counter()
        for idx in kit.batches(len(split), batch_size, split.y.device, gen):
            loss = F.cross_entropy(model(split.x[idx]), split.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        kit.sync(split.y.device)
        yield time.perf_counter() - t0


def evaluate(model: nn.Module, split: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split."""
    logits = kit.predict(model, split.x, 10_000)
    return F.cross_entropy(logits, split.y).item(), (logits.argmax(1) == split.y).float().mean().item()


def epoch_row(model: nn.Module, splits: dict[str, Split], epoch: int, lr: float, seconds: float) -> dict:
    """Metrics after ``epoch``; ``epoch_s`` is the mean training time per epoch so far (no evaluation)."""
    train_loss, train_acc = evaluate(model, splits["train"])
    val_loss, val_acc = evaluate(model, splits["val"])
    return {
        "epoch": epoch,
        "epoch_lr": lr,
        "epoch_s": seconds,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
    }


def fit(
    splits: dict[str, Split],
    optimizer: str,
    schedule: list[float],
    batch_size: int,
    seed: int,
    curve: bool = False,
    patience: int = 0,
    monitor: str = "val_acc",
) -> list[dict]:
    """Train on the training split, one epoch per scheduled rate; evaluate after the last epoch, or after
    every epoch with ``curve``. With ``patience`` (and ``curve``), stop once the monitored validation
    score has not improved for that many epochs."""
    model, opt, gen = setup(optimizer, schedule[0], seed, splits["train"].y.device)
    epochs = train_epochs(model, opt, splits["train"], batch_size, gen)
    history: list[dict] = []
    seconds = 0.0
    for epoch, lr in enumerate(schedule, start=1):
        kit.set_lr(opt, lr)
        seconds += next(epochs)
        if curve or epoch == len(schedule):
            history.append(epoch_row(model, splits, epoch, lr, seconds / epoch))
        if curve and patience and kit.epochs_since_best(kit.badness(history, monitor)) >= patience:
            break
    return history


def final_model(
    cfg: Config,
    splits: dict[str, Split],
    optimizer: str,
    schedule: list[float],
    batch_size: int,
    seed: int,
    test_index: torch.Tensor,
) -> dict:
    """Refit on training + validation images with a fixed per-epoch learning-rate schedule; test once."""
    model, opt, gen = setup(optimizer, schedule[0], seed, splits["trainval"].y.device)
    epochs = train_epochs(model, opt, splits["trainval"], batch_size, gen)
    seconds = 0.0
    for lr in schedule:
        kit.set_lr(opt, lr)
        seconds += next(epochs)
    test = splits["test"]
    logits = kit.predict(model, test.x, 10_000)
    probs, pred = logits.softmax(1), logits.argmax(1)
    wrong = (pred != test.y).nonzero().squeeze(1)
    wrong = wrong[probs[wrong, pred[wrong]].argsort(descending=True, stable=True)][: cfg.n_misclassified]
    images = (test.x[wrong] * 255).round().to(torch.uint8).flatten(1).cpu()
    return {
        "result": {
            "seed": seed,
            "epochs": len(schedule),
            "train_s": seconds,
            "test_loss": F.cross_entropy(logits, test.y).item(),
            "test_acc": (pred == test.y).float().mean().item(),
        },
        "confusion": pd.DataFrame(kit.confusion_rows(test.y, pred, 10, seed=seed)),
        "misclassified": pd.DataFrame(
            {
                "seed": seed,
                "rank": range(len(wrong)),
                "test_index": test_index[wrong.cpu()].tolist(),
                "true": test.y[wrong].tolist(),
                "pred": pred[wrong].tolist(),
                "confidence": probs[wrong, pred[wrong]].tolist(),
                "pixels": [row.tolist() for row in images],
            }
        ),
    }


def sweep_point(
    cfg: Config, data_dir: Path, seed: int, device: str, optimizer: str, lr: float, batch: int
) -> list:
    """One sweep point, as a unit any worker can run: it loads the splits itself."""
    splits = load_splits(cfg, data_dir, seed, device)[0]
    return fit(splits, optimizer, kit.linear_decay(lr, cfg.sweep_epochs), batch, seed)


def final_unit(cfg: Config, data_dir: Path, run_seed: int, device: str, optimizer: str, schedule: list,
               batch: int, seed: int) -> dict:  # fmt: skip
    """One final model, as a unit any worker can run."""
    splits, test_index, _ = load_splits(cfg, data_dir, run_seed, device)
    return final_model(cfg, splits, optimizer, schedule, batch, seed, test_index)


# ---- selection --------------------------------------------------------------------------------------
def select_best(sweep: pd.DataFrame) -> pd.Series:
    """The trained point with the highest validation accuracy at its last epoch.

    Ties go to the lower validation loss, then to the earlier row, so the choice is deterministic.
    """
    last = sweep.sort_values("epoch", kind="stable").groupby(RUN_KEYS, sort=False).tail(1)
    loss = last["val_loss"].where(last["val_loss"].notna(), math.inf)
    order = last.assign(_loss=loss).sort_values(["val_acc", "_loss"], ascending=[False, True], kind="stable")
    return order.iloc[0].drop("_loss")


# ---- the study --------------------------------------------------------------------------------------
def run(cfg: Config, ctx: RunContext) -> Output:
    cfg.validate()
    with kit.threads(cfg.cpu_threads if ctx.device.type == "cpu" else 0):
        return study(cfg, ctx)


def study(cfg: Config, ctx: RunContext) -> Output:
    """The four stages of the study: independent points run as units (``ctx.map``), choices in the driver."""
    where = (cfg, ctx.data_dir, ctx.seed, ctx.units_on)  # every unit loads the same splits from these
    splits, test_index, available = load_splits(*where)
    sizes = " / ".join(f"{len(splits[k])} {k}" for k in ("train", "val", "test"))
    ctx.log(f"q3: {sizes} images on {ctx.device}")
    threads = cfg.cpu_threads if ctx.device.type == "cpu" else 1

    def sweep(study: str, points: list[tuple[str, float, int, bool]], description: str) -> pd.DataFrame:
        units = [
            kit.Unit(f"point-{o}-lr{lr:.6g}-b{b}", sweep_point, (*where, o, lr, b), threads, gpus=1)
            for o, lr, b, _ in points
        ]
        keys = [dict(study=study, optimizer=o, lr=lr, batch_size=b, lr_scaled=sc) for o, lr, b, sc in points]
        return pd.DataFrame(
            [{**k, **h} for k, hs in zip(keys, ctx.map(units, description), strict=True) for h in hs]
        )

    # 1. optimizer and learning rate at the reference batch size
    points = [(o, lr, cfg.base_batch, False) for o in cfg.optimizers for lr in cfg.lrs]
    lr_sweep = sweep("lr", points, "q3 learning-rate sweep")
    first = select_best(lr_sweep)
    opt, base_lr = str(first["optimizer"]), float(first["lr"])
    # 2. batch size: the rate grid at every batch size, and the linearly scaled rate
    grid = sweep(
        "grid",
        [(opt, lr, b, False) for b in cfg.batch_sizes for lr in cfg.lrs],
        "q3 learning rate × batch size",
    )
    points = [(opt, base_lr * b / cfg.base_batch, b, True) for b in cfg.batch_sizes]
    scaling = sweep("scaling", points, "q3 linear scaling")
    second = select_best(pd.concat([grid, scaling], ignore_index=True))
    lr, batch = float(second["lr"]), int(second["batch_size"])
    # 3. epochs: one long schedule with early stopping
    schedule = kit.linear_decay(lr, cfg.max_epochs)
    stopping = partial(fit, splits, opt, schedule, batch, ctx.seed, True, cfg.patience, cfg.monitor)
    history = ctx.step("early-stopping", stopping)
    point = dict(study="epochs", optimizer=opt, lr=lr, batch_size=batch, lr_scaled=bool(second["lr_scaled"]))
    curve = pd.DataFrame([{**point, **h} for h in history])
    best = curve.iloc[len(curve) - 1 - kit.epochs_since_best(kit.badness(history, cfg.monitor))]
    schedule = curve["epoch_lr"].iloc[: int(best["epoch"])].tolist()  # the refit replays these epochs
    # 4. final models on training + validation images, one per seed; only they see the test set
    seeds = [ctx.seed + k for k in range(cfg.seeds)]
    finals = ctx.map(
        [
            kit.Unit(f"final-seed{s}", final_unit, (*where, opt, schedule, batch, s), threads, 1)
            for s in seeds
        ],
        "q3 final models",
    )
    final = pd.DataFrame([f["result"] for f in finals])
    choice = [
        {"stage": stage, "optimizer": opt, "lr": float(row["lr"]), "batch_size": int(row["batch_size"]),
         "lr_scaled": bool(row["lr_scaled"]), "epochs": int(row["epoch"]), "val_acc": float(row["val_acc"]),
         "val_loss": float(row["val_loss"])}
        for stage, row in (("lr", first), ("batch", second), ("epochs", best))
    ]  # fmt: skip
    title = datasets.layout(cfg.dataset).title
    return Output(
        tables={
            "sweep": pd.concat([lr_sweep, grid, scaling, curve], ignore_index=True),
            "choice": pd.DataFrame(choice),
            "final": final,
            "interval": pd.DataFrame([kit.t_interval(final["test_acc"].tolist(), cfg.ci_level)]),
            "splits": pd.DataFrame(  # the splits used, and the sizes of the dataset they were drawn from
                [{"dataset": title, "split": k, "images": len(v)} for k, v in splits.items()]
                + [{"dataset": title, "split": k, "images": v} for k, v in available.items()]
            ),
            "layers": layers_table(mlp()),
            "confusion": pd.concat([f["confusion"] for f in finals], ignore_index=True),
            "misclassified": pd.concat([f["misclassified"] for f in finals], ignore_index=True),
        },
        headline=(f"test accuracy (mean of {len(seeds)} seeds)", float(final["test_acc"].mean())),
    )
