"""Question 3: a dense MNIST classifier, and what learning rate, batch size and epochs each do to it.

The network is the one the question specifies (Flatten → 128 → 64 → 32 → 10, ReLU between, inputs in
[0, 1]); it outputs logits and trains with cross-entropy, which is softmax + categorical cross-entropy on
one-hot labels in one numerically stable step. Every run decays its learning rate linearly, step by step,
to about zero at the end of its schedule (``kit.linear_decay``). The study runs in four stages, each choice
made by code from validation accuracy on images held out from the training set; where that set cannot
separate points from the best, the cheapest of them to train is kept (``select``, ``shortest_schedule``):

1. ``lr``: every optimizer (SGD, SGD with momentum 0.9, Adam) over a log grid of learning rates at the
   reference batch size; picks the optimizer and learning rate.
2. ``grid`` and ``scaling``: that optimizer over learning rate × batch size, plus each batch size with the
   learning rate scaled linearly from the reference batch; picks the batch size (and learning rate).
3. ``epochs``: with a rate that decays to zero, the epoch count is the schedule's length, so that
   configuration trains on each length of ``schedules`` with ``schedule_seeds`` seeds, none of them the
   sweep's seed (whose runs of the chosen point the stages above already scored); picks the shortest
   whose mean validation accuracy the validation set does not separate from the best, paired over its
   images. The longest schedule's runs are scored after every epoch as well (the ``curve``): what
   training longer does along a run, and where stopping once the validation score has not improved for
   ``patience`` epochs would have ended each (it chooses nothing).
4. ``final``: retrain on training + validation images for that many epochs, on a schedule of that length
   that decays to zero, once per seed; only these models see the test set, once each.

Stages 1 and 2 search by successive halving (``experiments/halving.py``) up to ``sweep_epochs``. Points
of one batch size train as stacked networks (``experiments/stacked.py``), cut into units for the cores
(``kit.split``), as do the seeds of a schedule length and the final models. Data
sits on the device as float tensors; a batch is an index slice of a per-epoch permutation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from experiments import data, datasets, halving, kit, stacked
from experiments.configs.q3 import EACH, Config, cost
from experiments.kit import Output, RunContext
from report.core import selection

POINT_KEYS = ["study", "optimizer", "lr", "batch_size", "lr_scaled"]  # what identifies a sweep point
Point = tuple[str, str, float, int, bool]  # those keys' values


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


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class Split:
    x: torch.Tensor  # float (N, 1, 28, 28) in [0, 1], on the device
    y: torch.Tensor  # int64 (N,), on the device

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.x, self.y))


@functools.lru_cache(maxsize=1)  # a worker process loads the data once for all the units it runs
def load_splits(
    cfg: Config, data_dir: Path, seed: int, device: str
) -> tuple[dict[str, Split], torch.Tensor, dict[str, int]]:
    """Train / validation / test splits fixed by the run seed (``trainval`` is train + validation, for the
    final refits), the indices of the test images used in the original test set, and the dataset's sizes."""
    x, y = data.load(cfg.dataset, data_dir, train=True)
    xt, yt = data.load(cfg.dataset, data_dir, train=False)
    cfg.check_sizes(len(y), len(yt), datasets.layout(cfg.dataset).title)
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
    # the curve's training scores: the first as many training images as validation ones (a random draw, as
    # the split is), which cost a fifth of all 50,000 per epoch and estimate the same loss and accuracy
    splits["train_scored"] = Split(splits["train"].x[: cfg.n_val], splits["train"].y[: cfg.n_val])
    return splits, test, {"train_available": len(y), "test_available": len(yt)}


# ---- training ---------------------------------------------------------------------------------------
def fit(
    splits: dict[str, Split], points: list[tuple[str, float]], epochs: int, batch_size: int, seed: int
) -> list[dict]:
    """Train one (optimizer, peak rate) per point on the training split, all from the same initial
    weights and data order, as one stacked network; score each on the validation images after the last
    epoch. Returns each point's metrics."""
    device = splits["train"].y.device
    torch.manual_seed(seed)  # every point starts from these weights
    stack = stacked.Stack([mlp().to(device)] * len(points))
    opts = stacked.Optimizers(stack, [o for o, _ in points], [lr for _, lr in points])
    peaks = [lr for _, lr in points]
    gen = torch.Generator(device).manual_seed(seed)
    loop = stacked.train_epochs(
        stack, opts, splits["train"].x, splits["train"].y, batch_size, [gen], peaks, epochs
    )
    seconds = sum(next(loop) for _ in range(epochs))
    val_loss, val_acc = stacked.evaluate(stack, *splits["val"])
    share = seconds / epochs / len(points)  # training seconds per epoch, per point of the stack
    return [{"epoch": epochs, "epoch_lr": kit.linear_decay(p, epochs, epochs), "epoch_s": share,
             "stacked": len(points), "val_loss": val_loss[k], "val_acc": val_acc[k]}
            for k, p in enumerate(peaks)]  # fmt: skip


def train_seeds(
    split: Split, optimizer: str, lr: float, epochs: int, batch_size: int, seeds: list[int]
) -> tuple[stacked.Stack, Iterator[float]]:
    """One model per seed (its own initial weights and data order) as one stacked network, and its training
    on ``split``: each ``next()`` trains one epoch of a schedule of ``epochs`` epochs from the peak ``lr``
    to zero, as every sweep run trains, and yields its seconds."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(mlp().to(split.y.device))
    stack = stacked.Stack(models)
    opts = stacked.Optimizers(stack, [optimizer] * len(seeds), [lr] * len(seeds))
    gens = [torch.Generator(split.y.device).manual_seed(seed) for seed in seeds]
    return stack, stacked.train_epochs(
        stack, opts, split.x, split.y, batch_size, gens, [lr] * len(seeds), epochs
    )


def scored(stack: stacked.Stack, split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every copy's mean cross-entropy (P,) and accuracy (P,) on ``split``, and which images it got right
    (P, N; uint8, on the CPU): a paired comparison needs the per-image results."""
    logits = stacked.logits(stack, split.x)
    target = split.y.expand(len(stack), -1)
    loss = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").double().mean(1)
    right = logits.argmax(2) == target
    return loss.cpu(), right.double().mean(1).cpu(), right.to(torch.uint8).cpu()


def final_models(
    cfg: Config,
    splits: dict[str, Split],
    optimizer: str,
    lr: float,
    epochs: int,
    batch_size: int,
    seeds: list[int],
    test_index: torch.Tensor,
) -> list[dict]:
    """Refit on training + validation images, one model per seed (``train_seeds``); test each once."""
    stack, loop = train_seeds(splits["trainval"], optimizer, lr, epochs, batch_size, seeds)
    seconds = sum(next(loop) for _ in range(epochs))
    test = splits["test"]
    logits = stacked.logits(stack, test.x)
    return [tested(cfg, logits[k], test, test_index, seed, epochs, seconds / len(seeds), len(seeds))
            for k, seed in enumerate(seeds)]  # fmt: skip


def tested(
    cfg: Config,
    logits: torch.Tensor,
    test: Split,
    test_index: torch.Tensor,
    seed: int,
    epochs: int,
    secs: float,
    stacked: int,
) -> dict:
    """One final model's test results: accuracy, confusion counts and its most confident mistakes;
    ``secs`` is its share of the training time of the ``stacked`` models it trained with."""
    probs, pred = logits.softmax(1), logits.argmax(1)
    wrong = (pred != test.y).nonzero().squeeze(1)
    wrong = wrong[probs[wrong, pred[wrong]].argsort(descending=True, stable=True)][: cfg.n_misclassified]
    images = (test.x[wrong] * 255).round().to(torch.uint8).flatten(1).cpu()
    return {
        "result": {
            "seed": seed,
            "epochs": epochs,
            "train_s": secs,
            "stacked": stacked,
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


def step_cost(batch: int) -> float:
    """About the seconds per point-epoch on one core (more steps at a smaller batch): to balance units."""
    return 0.25 + 30 / batch


def sweep_unit(cfg: Config, data_dir: Path, seed: int, device: str, points: list, epochs: int) -> list:
    """Sweep points of one batch size trained together, as a unit any worker can run: it loads the
    splits itself. Returns each point's keys (``POINT_KEYS``) with its metrics after its last epoch."""
    splits = load_splits(cfg, data_dir, seed, device)[0]
    scores = fit(splits, [p[1:3] for p in points], epochs, points[0][3], seed)
    return [{**dict(zip(POINT_KEYS, p, strict=True)), **h} for p, h in zip(points, scores, strict=True)]


def finals_unit(cfg: Config, data_dir: Path, run_seed: int, device: str, optimizer: str, lr: float,
                epochs: int, batch: int, seeds: list) -> list:  # fmt: skip
    """The final models, as a unit any worker can run."""
    splits, test_index, _ = load_splits(cfg, data_dir, run_seed, device)
    return final_models(cfg, splits, optimizer, lr, epochs, batch, seeds, test_index)


def schedule_unit(cfg: Config, data_dir: Path, run_seed: int, device: str, optimizer: str, lr: float,
                  epochs: int, batch: int, seeds: list, curve: bool) -> dict[str, list]:  # fmt: skip
    """The chosen configuration on a schedule of ``epochs`` epochs, one model per seed on the training
    images (``train_seeds``), each scored on the validation images at the end, image by image (``correct``:
    a paired comparison needs which images each run got right); a unit any worker can run. With
    ``curve``, scored after every epoch too, on training images as well (``train_scored``), with ``stop``
    marking the epoch where stopping once the ``monitor`` has not improved for ``patience`` epochs would
    have ended that run before its schedule's end (none where it would not)."""
    splits = load_splits(cfg, data_dir, run_seed, device)[0]
    stack, loop = train_seeds(splits["train"], optimizer, lr, epochs, batch, seeds)
    rows: list[dict] = []
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        seconds += next(loop)
        if curve or epoch == epochs:
            val_loss, val_acc, right = scored(stack, splits["val"])
            rows += [{"epoch": epoch, "seed": seed, "val_acc": float(val_acc[k]),
                      "val_loss": float(val_loss[k]), "correct": right[k].tolist()}
                     for k, seed in enumerate(seeds)]  # fmt: skip
        if curve:
            train_loss, train_acc, _ = scored(stack, splits["train_scored"])
            for k, row in enumerate(rows[-len(seeds) :]):
                history = [r for r in rows if r["seed"] == row["seed"]]
                waited = kit.epochs_since_best(kit.badness(history, cfg.monitor))
                first = not any(r["stop"] for r in history[:-1])  # a stopped run stops once
                row |= {"epoch_lr": kit.linear_decay(lr, epoch, epochs), "train_loss": float(train_loss[k]),
                        "train_acc": float(train_acc[k]),
                        "stop": first and waited >= cfg.patience and epoch < epochs}  # fmt: skip
    end = [{"schedule": epochs, "seed": r["seed"], "val_acc": r["val_acc"], "val_loss": r["val_loss"],
            "train_s": seconds / len(seeds), "correct": r["correct"]}
           for r in rows if r["epoch"] == epochs]  # fmt: skip
    return {"schedule": end, "curve": rows if curve else []}


# ---- selection --------------------------------------------------------------------------------------
def shortest_schedule(runs: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """The epoch count: the shortest schedule whose mean validation accuracy over seeds the validation set
    does not separate from the best mean, paired over its images (``selection.shortest_tied``). Returns the
    kept schedule's row (its means, gap and band) and ``runs`` with a column ``tied``."""
    lengths = selection.shortest_tied(runs, "schedule")
    kept = lengths[lengths["tied"]].iloc[0]
    tied = set(lengths.loc[lengths["tied"], "schedule"])
    return kept, runs.assign(tied=runs["schedule"].isin(tied))


def select(sweep: pd.DataFrame, n_val: int) -> tuple[pd.Series, pd.DataFrame]:
    """The point a stage keeps from its last rung (the longest runs): the cheapest to train (``cost``)
    among those tied with the best validation accuracy (``selection.cheapest_tied``), with the width of
    the tie (``band``). Returns it, and ``sweep`` with a column ``tied`` that marks those points (the
    best included)."""
    kept, tied, band = selection.cheapest_tied(
        sweep[sweep["rung"] == sweep["rung"].max()], POINT_KEYS, n_val, cost
    )
    return pd.concat([kept, pd.Series({"band": band})]), sweep.assign(tied=sweep.index.isin(tied))


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
    threads = (cfg.cpu_threads or torch.get_num_threads()) if ctx.device.type == "cpu" else 1

    def rung(name: str, r: int, points: list[Point], epochs: int) -> pd.DataFrame:
        """Train ``points`` for ``epochs``: stacks of one batch size, cut into units for the cores."""
        groups: dict[int, list[Point]] = {}
        for point in points:
            groups.setdefault(point[3], []).append(point)
        chunks = kit.split(groups, step_cost, cfg.units, cfg.max_stack)
        key = lambda c: f"{name}-rung{r}-b{c[0][3]}-{kit.digest(c)}"  # noqa: E731  # by content: resumable
        units = [kit.Unit(key(c), sweep_unit, (*where, c, epochs), threads, gpus=1) for c in chunks]
        results = ctx.map(units, f"q3 {name} sweep, rung {r + 1}: {len(points)} points × {epochs} epochs")
        rows = {tuple(row[k] for k in POINT_KEYS): row for rows in results for row in rows}
        return pd.DataFrame([rows[p] for p in points])  # in the candidates' order, whatever the cut

    def tune(name: str, points: list[Point]) -> pd.DataFrame:
        lengths = halving.rung_lengths(cfg.sweep_epochs, cfg.halving, cfg.rungs)
        return halving.search(
            points, POINT_KEYS, lengths, cfg.halving, cfg.n_val, partial(rung, name), EACH[name]
        )

    # 1. optimizer and learning rate at the reference batch size
    lr_sweep = tune("lr", [("lr", o, lr, cfg.base_batch, False) for o in cfg.optimizers for lr in cfg.lrs])
    first, lr_sweep = select(lr_sweep, cfg.n_val)
    opt, base_lr = str(first["optimizer"]), float(first["lr"])
    # 2. batch size: the rate grid at every batch size, and the linearly scaled rate
    grid = [("grid", opt, lr, b, False) for b in cfg.batch_sizes for lr in cfg.lrs]
    others = [b for b in cfg.batch_sizes if b != cfg.base_batch]  # at the base batch it is a grid point
    scaled = [("scaling", opt, base_lr * b / cfg.base_batch, b, True) for b in others]
    batch_sweep = tune("batch", grid + scaled)
    second, batch_sweep = select(batch_sweep, cfg.n_val)
    lr, batch = float(second["lr"]), int(second["batch_size"])
    # 3. epochs: the schedule lengths, each decaying to zero, over seeds, the longest scored every epoch too.
    # Fresh seeds: the sweep's seed would rerun the chosen point's own rung runs, the maximum of the stage
    scaled_lr = bool(second["lr_scaled"])
    seeds = [ctx.seed + 1 + k for k in range(cfg.schedule_seeds)]
    longest = max(cfg.schedules)
    units = [kit.Unit(f"schedule-{e}-{kit.digest(seeds)}", schedule_unit,
                      (*where, opt, lr, e, batch, seeds, e == longest), threads, 1)
             for e in sorted(cfg.schedules, reverse=True)]  # fmt: skip  # the longest first: they start first
    ran = ctx.map(units, f"q3 schedules: {len(cfg.schedules)} lengths × {len(seeds)} seeds")
    point = dict(study="epochs", optimizer=opt, lr=lr, batch_size=batch, lr_scaled=scaled_lr)
    schedule = pd.DataFrame([{**point, **row} for unit in ran for row in unit["schedule"]])
    schedule = schedule.sort_values(["schedule", "seed"], ignore_index=True)
    third, schedule = shortest_schedule(schedule)
    epochs = int(third["schedule"])
    curve = pd.DataFrame([row for unit in ran for row in unit["curve"]])
    # 4. final models on training + validation images, one per seed; only they see the test set
    seeds = [ctx.seed + k for k in range(cfg.seeds)]
    chunks = kit.split({batch: seeds}, step_cost, cfg.units, cfg.max_stack)
    units = [
        kit.Unit(f"final-{kit.digest(c)}", finals_unit, (*where, opt, lr, epochs, batch, c), threads, 1)
        for c in chunks
    ]
    done = ctx.map(units, f"q3 final models: {len(seeds)} seeds × {epochs} epochs")
    finals = sorted((f for chunk in done for f in chunk), key=lambda f: f["result"]["seed"])
    final = pd.DataFrame([f["result"] for f in finals])
    choice = [
        {"stage": stage, "optimizer": opt, "lr": float(row["lr"]), "batch_size": int(row["batch_size"]),
         "lr_scaled": bool(row["lr_scaled"]), "epochs": int(row["epoch"]), "val_acc": float(row["val_acc"]),
         "val_loss": float(row["val_loss"]), "band": float(row["band"])}
        for stage, row in (("lr", first), ("batch", second), ("epochs", {**point, **third, "epoch": epochs}))
    ]  # fmt: skip
    title = datasets.layout(cfg.dataset).title
    return Output(
        tables={
            "sweep": pd.concat([lr_sweep, batch_sweep], ignore_index=True),
            "schedule": schedule,
            "curve": curve,
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
