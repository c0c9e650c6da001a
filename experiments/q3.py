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

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import special
from torch import nn

from experiments import data
from experiments.common import Output, RunContext
from report.errors import ConfigError

TITLE = "Q3: dense MNIST classifier; learning rate, batch size and epochs"

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
    cpu_threads: int = (
        1  # intra-op threads on CPU (0: torch's default); these matrices are too small to split
    )

    def validate(self) -> None:
        unknown = sorted(set(self.optimizers) - set(OPTIMIZERS))
        if unknown:
            raise ConfigError(
                f"q3.optimizers: unknown {', '.join(unknown)}; choose from {', '.join(OPTIMIZERS)}"
            )
        if self.base_batch not in self.batch_sizes:
            raise ConfigError(
                f"q3.base_batch={self.base_batch} must be one of q3.batch_sizes "
                "(it is the reference for linear scaling)"
            )
        if min(self.lrs) <= 0 or min(self.batch_sizes) <= 0:
            raise ConfigError("q3.lrs and q3.batch_sizes must be positive")
        if min(self.n_train, self.n_val, self.n_test, self.sweep_epochs, self.max_epochs) < 1:
            raise ConfigError("q3.n_train, n_val, n_test, sweep_epochs and max_epochs must be at least 1")
        if not 1 <= self.patience < self.max_epochs:
            raise ConfigError("q3.patience must be at least 1 and below q3.max_epochs")
        if self.cpu_threads < 0:
            raise ConfigError("q3.cpu_threads must be 0 (torch's default) or a positive thread count")
        if self.seeds < 2:
            raise ConfigError("q3.seeds must be at least 2 to estimate a spread")
        if not 0 < self.ci_level < 1:
            raise ConfigError("q3.ci_level must be between 0 and 1 (e.g. 0.95)")


PROFILES: dict[str, Config] = {
    "smoke": Config(
        n_train=2_000,
        n_val=1_000,
        n_test=1_000,
        lrs=(1e-3, 1e-1),
        batch_sizes=(64, 256),
        base_batch=64,
        sweep_epochs=2,
        max_epochs=4,
        patience=2,
        n_misclassified=8,
    ),
    "quick": Config(
        n_train=20_000,
        n_val=5_000,
        lrs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0),
        sweep_epochs=3,
        max_epochs=15,
        patience=4,
    ),
    "full": Config(),
}


def datasets(cfg: Config) -> list[str]:
    return [cfg.dataset]


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


def load_splits(cfg: Config, ctx: RunContext) -> tuple[dict[str, Split], torch.Tensor]:
    """Train / validation / test splits fixed by the run seed (``trainval`` is train + validation, for the
    final refits), and the indices of the test images used in the original test set."""
    x, y = data.load(cfg.dataset, ctx.data_dir, train=True)
    xt, yt = data.load(cfg.dataset, ctx.data_dir, train=False)
    if cfg.n_train + cfg.n_val > len(y) or cfg.n_test > len(yt):
        raise ConfigError(
            f"q3.n_train + q3.n_val = {cfg.n_train + cfg.n_val} and q3.n_test = {cfg.n_test} "
            f"must fit the {len(y)} training and {len(yt)} test images"
        )
    gen = torch.Generator().manual_seed(ctx.seed)
    order = torch.randperm(len(y), generator=gen)
    val, train = order[: cfg.n_val], order[cfg.n_val : cfg.n_val + cfg.n_train]
    test = torch.randperm(len(yt), generator=gen)[: cfg.n_test].sort().values

    def split(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> Split:
        return Split(images[idx].to(ctx.device).float().div_(255), labels[idx].to(ctx.device))

    splits = {
        "train": split(x, y, train),
        "val": split(x, y, val),
        "test": split(xt, yt, test),
        "trainval": split(x, y, torch.cat([train, val])),
    }
    return splits, test


# ---- training ---------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        for idx in torch.randperm(len(split), device=split.y.device, generator=gen).split(batch_size):
            loss = F.cross_entropy(model(split.x[idx]), split.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(split.y.device)
        yield time.perf_counter() - t0


@torch.inference_mode()
def predict(model: nn.Module, split: Split, chunk: int = 10_000) -> torch.Tensor:
    return torch.cat([model(xs) for xs in split.x.split(chunk)])


def evaluate(model: nn.Module, split: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split."""
    logits = predict(model, split)
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


def linear_decay(lr: float, epochs: int) -> list[float]:
    """Per-epoch learning rates falling linearly from ``lr`` to ``lr / epochs``.

    Every run ends at a small rate, so a sweep compares settled models rather than snapshots of a noisy
    constant-rate trajectory, and the final models are trained the same way as the points that chose them.
    """
    return [lr * (epochs - e) / epochs for e in range(epochs)]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def badness(history: list[dict], monitor: str) -> list[float]:
    """The monitored validation metric per epoch as "lower is better" (a NaN loss is the worst)."""
    values = [h["val_loss"] if monitor == "val_loss" else -h["val_acc"] for h in history]
    return [v if math.isfinite(v) else math.inf for v in values]


def epochs_since_best(values: list[float]) -> int:
    """How many epochs have passed since the first occurrence of the lowest value so far."""
    return len(values) - 1 - values.index(min(values))


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
        set_lr(opt, lr)
        seconds += next(epochs)
        if curve or epoch == len(schedule):
            history.append(epoch_row(model, splits, epoch, lr, seconds / epoch))
        if curve and patience and epochs_since_best(badness(history, monitor)) >= patience:
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
        set_lr(opt, lr)
        seconds += next(epochs)
    test = splits["test"]
    logits = predict(model, test)
    probs, pred = logits.softmax(1), logits.argmax(1)
    confusion = torch.zeros(10, 10, dtype=torch.int64, device=pred.device)
    confusion.index_put_((test.y, pred), torch.ones_like(pred), accumulate=True)
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
        "confusion": pd.DataFrame(
            [
                {"seed": seed, "true": t, "pred": p, "count": int(confusion[t, p])}
                for t in range(10)
                for p in range(10)
            ]
        ),
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
@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block (0 leaves the setting alone), then restore the old count.

    A 128-unit layer at batch 32 does too little work per matrix product to repay splitting it across
    threads; on a small CPU the synchronisation costs more than it saves (see benchmarks/q3_epoch_time.py).
    """
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def t_interval(values: Sequence[float], level: float) -> dict[str, Any]:
    """Mean, sample standard deviation and the two-sided Student-t interval for the mean over seeds.

    The t quantile (not the normal 1.96) because the spread is estimated from a handful of seeds.
    It is computed here rather than in the report so that rendering never imports scipy (~0.2 s).
    """
    x = np.asarray(values, dtype=float)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    quantile = 0.5 + level / 2
    t = float(special.stdtrit(len(x) - 1, quantile))
    half = t * std / math.sqrt(len(x))
    return {
        "n": len(x),
        "level": level,
        "quantile": quantile,
        "t": t,
        "mean": mean,
        "std": std,
        "lo": mean - half,
        "hi": mean + half,
    }


def run(cfg: Config, ctx: RunContext) -> Output:
    cfg.validate()
    with cpu_threads(cfg.cpu_threads if ctx.device.type == "cpu" else 0):
        return study(cfg, ctx)


def study(cfg: Config, ctx: RunContext) -> Output:
    """The four stages of the study, each point memoised with ``ctx.step``."""
    splits, test_index = load_splits(cfg, ctx)
    ctx.log(
        f"q3: {len(splits['train'])} train / {len(splits['val'])} validation / "
        f"{len(splits['test'])} test images on {ctx.device}"
    )

    def sweep(study: str, points: list[tuple[str, float, int, bool]], description: str) -> pd.DataFrame:
        rows = []
        for optimizer, lr, batch, scaled in ctx.track(points, total=len(points), description=description):
            schedule = linear_decay(lr, cfg.sweep_epochs)
            history = ctx.step(
                f"point-{optimizer}-lr{lr:.6g}-b{batch}",
                partial(fit, splits, optimizer, schedule, batch, ctx.seed),
            )
            point = {
                "study": study,
                "optimizer": optimizer,
                "lr": lr,
                "batch_size": batch,
                "lr_scaled": scaled,
            }
            rows += [{**point, **h} for h in history]
        return pd.DataFrame(rows)

    lr_sweep = sweep(
        "lr",
        [(o, lr, cfg.base_batch, False) for o in cfg.optimizers for lr in cfg.lrs],
        "q3 learning-rate sweep",
    )
    first = select_best(lr_sweep)
    opt, base_lr = str(first["optimizer"]), float(first["lr"])
    grid = sweep(
        "grid",
        [(opt, lr, b, False) for b in cfg.batch_sizes for lr in cfg.lrs],
        "q3 learning rate × batch size",
    )
    scaling = sweep(
        "scaling",
        [(opt, base_lr * b / cfg.base_batch, b, True) for b in cfg.batch_sizes],
        "q3 linear scaling",
    )
    second = select_best(pd.concat([grid, scaling], ignore_index=True))
    lr, batch = float(second["lr"]), int(second["batch_size"])

    history = ctx.step(
        "early-stopping",
        partial(
            fit,
            splits,
            opt,
            linear_decay(lr, cfg.max_epochs),
            batch,
            ctx.seed,
            curve=True,
            patience=cfg.patience,
            monitor=cfg.monitor,
        ),
    )
    curve = pd.DataFrame(
        [
            {
                "study": "epochs",
                "optimizer": opt,
                "lr": lr,
                "batch_size": batch,
                "lr_scaled": bool(second["lr_scaled"]),
                **h,
            }
            for h in history
        ]
    )
    best = curve.iloc[len(curve) - 1 - epochs_since_best(badness(history, cfg.monitor))]
    schedule = curve["epoch_lr"].iloc[: int(best["epoch"])].tolist()  # the refit replays these epochs

    seeds = [ctx.seed + k for k in range(cfg.seeds)]
    finals = [
        ctx.step(f"final-seed{s}", partial(final_model, cfg, splits, opt, schedule, batch, s, test_index))
        for s in ctx.track(seeds, total=len(seeds), description="q3 final models")
    ]
    final = pd.DataFrame([f["result"] for f in finals])
    interval = pd.DataFrame([t_interval(final["test_acc"].tolist(), cfg.ci_level)])

    choice = pd.DataFrame(
        [
            {
                "stage": stage,
                "optimizer": opt,
                "lr": float(row["lr"]),
                "batch_size": int(row["batch_size"]),
                "lr_scaled": bool(row["lr_scaled"]),
                "epochs": int(row["epoch"]),
                "val_acc": float(row["val_acc"]),
                "val_loss": float(row["val_loss"]),
            }
            for stage, row in (("lr", first), ("batch", second), ("epochs", best))
        ]
    )
    return Output(
        tables={
            "sweep": pd.concat([lr_sweep, grid, scaling, curve], ignore_index=True),
            "choice": choice,
            "final": final,
            "interval": interval,
            "splits": pd.DataFrame(
                [
                    {"dataset": data.SPECS[cfg.dataset].title, "split": k, "images": len(v)}
                    for k, v in splits.items()
                ]
            ),
            "layers": layers_table(mlp()),
            "confusion": pd.concat([f["confusion"] for f in finals], ignore_index=True),
            "misclassified": pd.concat([f["misclassified"] for f in finals], ignore_index=True),
        },
        headline=(f"test accuracy (mean of {len(seeds)} seeds)", float(final["test_acc"].mean())),
    )
