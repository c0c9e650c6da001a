"""Question 4: six CNN architectures trained with one recipe on SVHN (or a substitute named in the config).

The comparison is only fair if every model gets the same data, augmentation, optimiser, schedule and
budget, so all of that is the ``Config`` below and nothing is tuned per model. The images stay on the
device as uint8 tensors; a batch is an index slice, augmented and normalised as whole-batch tensor ops.
On CUDA the step runs in bf16 autocast with channels_last and cuDNN autotuning.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from experiments import data, datasets, kit, models
from experiments.configs.q4 import Config
from experiments.kit import Output, RunContext, save_atomic, seed_everything

# Random translation for every dataset (pixels of zero padding each side); horizontal flips only where a
# mirrored image is still an image of the same class (never for digits).
AUGMENT: dict[str, tuple[int, bool]] = {
    "svhn": (4, False),
    "cifar10": (4, True),
    "mnist": (2, False),
    "fashion-mnist": (2, False),
}
CLASSES: dict[str, tuple[str, ...]] = {
    "svhn": tuple("0123456789"),
    "mnist": tuple("0123456789"),
    "fashion-mnist": tuple(tvd.FashionMNIST.classes),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


@dataclass
class Splits:
    """uint8 images and labels resident on the device, plus the training split's channel statistics."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    mean: torch.Tensor  # (1, 3, 1, 1), pixel scale [0, 1]
    std: torch.Tensor
    available: dict[str, int]  # split sizes before any subsetting


@functools.lru_cache(maxsize=1)  # a worker process loads the data once for all the models it trains
def prepare(cfg: Config, data_dir: Path, run_seed: int, device: str) -> Splits:
    """Hold a validation set out of the training split (the same one for every model and seed)."""
    x, y = data.load(cfg.dataset, data_dir, train=True)
    xt, yt = data.load(cfg.dataset, data_dir, train=False)
    x, xt = data.to_rgb32(x), data.to_rgb32(xt)
    cfg.check_sizes(len(x), len(xt), datasets.layout(cfg.dataset).title)
    g = torch.Generator().manual_seed(run_seed)
    perm = torch.randperm(len(x), generator=g)
    val, train = perm[: cfg.val_size], perm[cfg.val_size :]
    train = train[: cfg.train_subset or None]
    test = torch.randperm(len(xt), generator=g)[: cfg.test_subset or None]
    pixels = x[train].float().div_(255)
    mean = pixels.mean(dim=(0, 2, 3), keepdim=True)
    std = pixels.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    dev = kit.resolve_device(device)  # "auto" from a remote executor: this machine's choice
    return Splits(
        train=(x[train].to(dev), y[train].to(dev)),
        val=(x[val].to(dev), y[val].to(dev)),
        test=(xt[test].to(dev), yt[test].to(dev)),
        mean=mean.to(dev),
        std=std.to(dev),
        available={"train": len(x) - cfg.val_size, "val": cfg.val_size, "test": len(xt)},
    )


def augment(x: torch.Tensor, pad: int, flip: bool) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (zero fill) and optional horizontal flip, per image,
    as one gather over the whole batch."""
    b, c, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2, b, 1), device=x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[
            torch.arange(b, device=x.device)[:, None, None, None],
            torch.arange(c, device=x.device)[None, :, None, None],
            rows,
            cols,
        ]
    if flip:
        x = torch.where(torch.rand(b, 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)
    return x


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = (x.float().div_(255) - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


def flops_per_image(name: str, num_classes: int) -> int:
    """Forward-pass FLOPs for one 3x32x32 image, counted by PyTorch's dispatcher-level counter on the
    meta device (shapes only, so it costs nothing and does not depend on the hardware)."""
    with torch.device("meta"):
        model = models.create(name, num_classes).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 32, 32))
    return int(counter.get_total_flops())


def predict(model: nn.Module, x: torch.Tensor, s: Splits, batch: int) -> torch.Tensor:
    """Predicted classes of uint8 images, normalised chunk by chunk on the device."""
    return kit.predict(model, x, batch, lambda xs: normalise(xs, s.mean, s.std), autocast=True).argmax(1)


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Triangular one-cycle: linear from ~0 to 1 over the warm-up steps, then linear back to 0."""
    peak = max(1, round(warmup * total))
    return (step + 1) / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))


def build(name: str, num_classes: int, device: torch.device) -> nn.Module:
    """An untrained model on ``device``; channels_last on CUDA, where cuDNN's fastest kernels want it."""
    model = models.create(name, num_classes).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; weight decay on weights only, not on biases or batch-norm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )


def train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    grad_clip: float,
) -> torch.Tensor:
    """One optimiser step (bf16 autocast on CUDA); returns the loss without synchronising the device."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        loss = loss_fn(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def train_unit(
    cfg: Config, data_dir: Path, run_seed: int, device: str, workdir: Path, name: str, seed: int
) -> dict:
    """One model and seed, as a unit any worker can run: it loads the splits itself."""
    dev = kit.resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return train_one(name, seed, cfg, prepare(cfg, data_dir, run_seed, device), dev, workdir)


def train_one(
    name: str, seed: int, cfg: Config, s: Splits, dev: torch.device, workdir: Path
) -> dict[str, Any]:
    """Train one model with one seed; return its metrics as plain rows for the tables."""
    seed_everything(seed)
    cuda = dev.type == "cuda"
    if cuda:
        resident = torch.cuda.memory_allocated(dev)  # the dataset; not this model's cost
        torch.cuda.reset_peak_memory_stats(dev)
    model = build(name, len(CLASSES[cfg.dataset]), dev)
    params = sum(p.numel() for p in model.parameters())
    opt = optimizer(model, cfg)
    xs, ys = s.train
    steps = len(xs) // cfg.batch_size  # full batches only: batch norm needs more than one image per channel
    total = cfg.epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(i, total, cfg.warmup))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    pad, flip = AUGMENT[cfg.dataset]
    curves, train_time, start = [], 0.0, 1
    title = models.spec(name).title
    checkpoint = workdir / f"{name}-seed{seed}-epoch.pt"
    if checkpoint.exists():  # an interrupted run: continue after the last finished epoch
        # on the CPU: the RNG states must stay there; the model and optimiser copy theirs to the device
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        curves, train_time, start = state["curves"], state["train_time"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])
        if cuda:
            torch.cuda.set_rng_state(state["cuda_rng"], dev)
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=dev)
        kit.sync(dev)
        t0 = time.perf_counter()
        for idx in kit.batches(len(xs), cfg.batch_size, dev, drop_last=True):
            x = normalise(augment(xs[idx], pad, flip), s.mean, s.std)
            loss_sum += train_step(model, opt, loss_fn, x, ys[idx], cfg.grad_clip).float()
            sched.step()
        kit.sync(dev)
        train_time += time.perf_counter() - t0
        val_acc = (predict(model, s.val[0], s, cfg.eval_batch_size) == s.val[1]).float().mean().item()
        curves.append(
            {
                "model": name,
                "seed": seed,
                "epoch": epoch,
                "train_loss": loss_sum.item() / steps,
                "val_acc": val_acc,
            }
        )
        if epoch < cfg.epochs:  # the finished model is kept by ctx.map instead
            save_atomic(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "curves": curves,
                    "train_time": train_time,
                    "epoch": epoch,
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(dev) if cuda else None,
                },
                checkpoint,
            )
        kit.say(f"{title} seed {seed} epoch {epoch}: loss {curves[-1]['train_loss']:.4f} val {val_acc:.4f}")
    pred = predict(model, s.test[0], s, cfg.eval_batch_size).cpu()
    true = s.test[1].cpu()
    k = len(CLASSES[cfg.dataset])
    return {
        "result": {
            "model": name,
            "seed": seed,
            "test_acc": (pred == true).float().mean().item(),
            "val_acc": curves[-1]["val_acc"],
            "train_time_s": train_time,
            "throughput": cfg.epochs * steps * cfg.batch_size / train_time,
            "peak_mem_bytes": float(torch.cuda.max_memory_allocated(dev) - resident) if cuda else math.nan,
            "params": params,
            "flops": flops_per_image(name, k),
        },
        "curves": curves,
        "confusion": kit.confusion_rows(true, pred, k, model=name, seed=seed),
        "correct": (pred == true).numpy(),  # per test image: for McNemar's test between models
    }


def run(cfg: Config, ctx: RunContext) -> Output:
    where = (cfg, ctx.data_dir, ctx.seed, ctx.units_on)  # every unit loads the same splits from these
    s = prepare(*where)
    pad, flip = AUGMENT[cfg.dataset]
    ctx.log(
        f"q4: {datasets.layout(cfg.dataset).title}, {len(s.train[0])} train / {len(s.val[0])} val / "
        f"{len(s.test[0])} test images on {ctx.device}"
    )
    threads = torch.get_num_threads() if ctx.device.type == "cpu" else 1  # as many as a local run uses
    units = [
        kit.Unit(f"{name}-seed{seed}", train_unit, (*where, ctx.workdir, name, seed), threads, gpus=1)
        for name in cfg.models
        for seed in range(ctx.seed, ctx.seed + cfg.seeds)
    ]
    outs = ctx.map(units, "q4 models")
    results = pd.DataFrame([o["result"] for o in outs])
    first = results.drop_duplicates("model")
    model_table = pd.DataFrame(
        {
            "model": first["model"],
            "title": [models.spec(m).title for m in first["model"]],
            "adaptation": [models.spec(m).adaptation for m in first["model"]],
            "params": first["params"],
            "flops": first["flops"],
        }
    )
    classes = CLASSES[cfg.dataset]
    setup = pd.DataFrame(
        [
            {
                "dataset": cfg.dataset,
                "dataset_title": datasets.layout(cfg.dataset).title,
                "crop_pad": pad,
                "hflip": flip,
                "mixed_precision": "bf16" if ctx.device.type == "cuda" else "none",
                "channels_last": ctx.device.type == "cuda",
                "mean": s.mean.flatten().tolist(),
                "std": s.std.flatten().tolist(),
            }
        ]
    )
    splits = pd.DataFrame(
        [
            {"split": k, "used": len(getattr(s, k)[0]), "available": s.available[k]}
            for k in ("train", "val", "test")
        ]
    )
    confusion = pd.DataFrame([row for o in outs for row in o["confusion"]])
    confusion["true_name"] = [classes[i] for i in confusion["true"]]
    confusion["pred_name"] = [classes[i] for i in confusion["pred"]]
    mean_acc = results.groupby("model")["test_acc"].mean()
    best = mean_acc.idxmax()
    return Output(
        tables={
            "models": model_table.reset_index(drop=True),
            "results": results.drop(columns=["params", "flops"]),
            "curves": pd.DataFrame([row for o in outs for row in o["curves"]]),
            "confusion": confusion,
            "answers": pd.DataFrame(
                [
                    {
                        "model": o["result"]["model"],
                        "seed": o["result"]["seed"],
                        "image": i,
                        "correct": bool(c),
                    }
                    for o in outs
                    for i, c in enumerate(o["correct"])
                ]
            ),
            "setup": setup,
            "splits": splits,
        },
        headline=(f"best test accuracy ({models.spec(best).title})", float(mean_acc[best])),
    )
