"""Which lever fills the GPU for Question 4's seeds (issue #24): images/s of each model under each lever.

Q4 trains every model with several seeds, one unit after another; small models leave most of a GPU idle
(LeNet-5 reached 0.40 of its H100 anchor on an H200 in the committed reference, 2026-11-27). This
measures, per model, the training images per second of ``--seeds`` seeds together under each lever, with
the experiment's own augmentation (of ``--dataset``), loss, optimiser and clipping, so one device call
says which lever to build into the experiment:

- ``each``: the seeds one after another, as the experiment runs them today (the baseline);
- ``processes``: one process per seed, all at once on the same device (the local executor's ``--jobs``);
- ``together``: the seeds as one model, parameters and batch-norm statistics stacked along a first
  dimension and the forward pass vectorised over it (``torch.func.vmap``), one optimiser step for all;
- ``compiled``: ``torch.compile`` of one seed's model (``--compile-mode``), seeds one after another; the
  compilation (not timed) is printed beside it.

    python benchmarks/q4_levers.py                              # every model and lever, 3 seeds
    python benchmarks/q4_levers.py --models lenet5,resnet18 --levers each,together --steps 10

What it does not show: whether a lever changes the numbers a run computes. ``together`` matches one seed
at a time up to round-off for models without dropout (tests/test_q4_benchmarks.py, float64); with dropout
(AlexNet, VGG-16-BN) vmap draws every seed's masks from one random stream, so those seeds train on other
masks than alone.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call, stack_module_state, vmap  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_study import H100_ANCHORS  # noqa: E402  (beside this file: the anchors live there once)

from experiments import models, q4  # noqa: E402
from experiments.configs.q4 import PROFILES  # noqa: E402
from experiments.kit import device_name, resolve_device  # noqa: E402

CFG = PROFILES["full"]
LEVERS = ("each", "processes", "together", "compiled")


class Data:
    """A resident uint8 batch per seed and the normalisation constants: every step augments and
    normalises its batch on the device, as the experiment does."""

    def __init__(self, seeds: int, batch: int, device: torch.device, dataset: str) -> None:
        self.pad, self.flip = q4.AUGMENT[dataset]
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (seeds, batch, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, 10, (seeds, batch), generator=g)
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        self.mean = torch.full((1, 3, 1, 1), 0.45, device=device)
        self.std = torch.full((1, 3, 1, 1), 0.25, device=device)

    def batch(self, seed: int | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Seed ``seed``'s augmented, normalised batch, or (for a slice) all of theirs as (K, B, ...)."""
        images, labels = self.images[seed], self.labels[seed]
        flat = images.reshape(-1, *images.shape[-3:])
        x = q4.normalise(q4.augment(flat, self.pad, self.flip), self.mean, self.std)
        return x.reshape(*images.shape[:-3], *x.shape[1:]), labels


class Together:
    """``seeds`` models of one architecture trained as one: stacked parameters and buffers (each a leaf
    of shape (K, ...)), a forward pass vectorised over the first dimension, the summed loss (so each seed
    gets its own gradient), each seed's gradient clipped by its own norm, and one SGD step for all (the
    experiment's rule is elementwise, so a stacked step is each seed's own)."""

    def __init__(self, name: str, seeds: list[int], device: torch.device, dtype: torch.dtype) -> None:
        built = []
        for seed in seeds:
            torch.manual_seed(seed)
            built.append(q4.build(name, 10, device).to(dtype).train())
        self.params, self.buffers = stack_module_state(built)  # type: ignore[arg-type]
        self.base = copy.deepcopy(built[0]).to("meta")
        decay = [p for p in self.params.values() if p.ndim > 2]  # a weight: more than (K, features)
        rest = [p for p in self.params.values() if p.ndim <= 2]
        self.opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": CFG.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=CFG.lr,
            momentum=CFG.momentum,
            nesterov=True,
        )
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=CFG.label_smoothing)

    def _loss(self, p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.base, (p, b), (x,)), y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One step of every seed on its own batch (x: (K, B, ...)); returns the (K,) losses, unsynced."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            losses = vmap(self._loss, randomness="different")(self.params, self.buffers, x, y)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
        coef = (CFG.grad_clip / (norms + 1e-6)).clamp(max=1.0)  # torch's clip_grad_norm_, per seed
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
        self.opt.step()
        return losses.detach()


def one_seed(name: str, seed: int, device: torch.device, compiled: str | None = None) -> Callable:
    """The experiment's own step for one seed's model: a function of (x, y)."""
    torch.manual_seed(seed)
    model = q4.build(name, 10, device).train()
    opt = q4.optimizer(model, CFG)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=CFG.label_smoothing)
    run = torch.compile(model, mode=compiled) if compiled else model
    return lambda x, y: q4.train_step(run, opt, loss_fn, x, y, CFG.grad_clip)  # type: ignore[arg-type]


def timed(steps: Callable[[], None], n: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the ``warmup`` untimed calls, seconds of the ``n`` timed ones)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        steps()
    sync(device)
    t1 = time.perf_counter()
    for _ in range(n):
        steps()
    sync(device)
    return t1 - t0, time.perf_counter() - t1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lever(name: str, how: str, a: argparse.Namespace, device: torch.device) -> tuple[float, str]:
    """Training images/s of ``a.seeds`` seeds of ``name`` under lever ``how``, and a remark."""
    data, seeds = Data(a.seeds, a.batch, device, a.dataset), list(range(a.seeds))
    images = a.seeds * a.batch * a.steps
    if how == "together":
        stack = Together(name, seeds, device, torch.float32)
        _, seconds = timed(lambda: stack.step(*data.batch(slice(None))), a.steps, a.warmup, device)
        return images / seconds, ""
    if how == "processes":
        return processes(name, a, device), f"{a.seeds} processes"
    mode = a.compile_mode if how == "compiled" else None
    runs = [one_seed(name, s, device, mode) for s in seeds]

    def each() -> None:
        for k, run in enumerate(runs):
            run(*data.batch(k))

    warm, seconds = timed(each, a.steps, max(a.warmup, 1) if mode else a.warmup, device)  # compile untimed
    return images / seconds, f"compiling and warm-up {warm:.0f} s" if mode else ""


def _process(name: str, a: argparse.Namespace, device: str, start: Any, out: Any) -> None:
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // a.seeds))
    data, run = Data(1, a.batch, dev, a.dataset), one_seed(name, 0, dev)
    for _ in range(a.warmup):
        run(*data.batch(0))
    sync(dev)
    start.wait()  # every process warmed up: the timed steps overlap
    began = time.monotonic()  # one clock for every process on the machine
    timed(lambda: run(*data.batch(0)), a.steps, 0, dev)
    out.put((began, time.monotonic()))


def processes(name: str, a: argparse.Namespace, device: torch.device) -> float:
    """Images/s of ``a.seeds`` processes at once, each training one seed: all their timed images over the
    time from the first one's start to the last one's end."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(a.seeds, timeout=600), ctx.Queue()
    procs = [
        ctx.Process(target=_process, args=(name, a, str(device), start, out), daemon=True)
        for _ in range(a.seeds)
    ]
    for p in procs:
        p.start()
    try:
        spans = [out.get(timeout=900) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            p.kill()  # one that failed left the others waiting at the barrier
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a {name} process failed: exit codes {[p.exitcode for p in procs]}")
    return a.seeds * a.batch * a.steps / (max(e for _, e in spans) - min(b for b, _ in spans))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--models", default=",".join(models.NAMES), help="comma-separated registry names")
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, of {', '.join(LEVERS)}")
    parser.add_argument("--seeds", type=int, default=CFG.seeds, help="seeds trained per model")
    parser.add_argument("--dataset", default=CFG.dataset, help="whose augmentation the batches get")
    parser.add_argument("--batch", type=int, default=CFG.batch_size)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per seed (20 on CUDA, 2 on CPU)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps per seed (5 on CUDA, 1 on CPU)"
    )
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs", help="torch.compile's mode")
    a = parser.parse_args(argv)
    device = resolve_device(a.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    a.steps = a.steps or (20 if cuda else 2)
    a.warmup = a.warmup if a.warmup is not None else (5 if cuda else 1)
    names, levers = a.models.split(","), a.levers.split(",")
    unknown = [n for n in names if n not in models.NAMES] + [v for v in levers if v not in LEVERS]
    if unknown:
        parser.error(
            f"unknown {', '.join(unknown)}: models {', '.join(models.NAMES)}; levers {', '.join(LEVERS)}"
        )
    budget = f"{a.seeds} seeds x batch {a.batch}; {a.warmup} warm-up + {a.steps} timed steps per seed"
    print(f"device: {device_name(device)}; {budget}")
    print(f"{'model':<12}{'lever':<12}{'images/s':>12}{'H100 anchor':>14}{'ratio':>8}  remark")
    for name in names:
        for how in levers:
            ips, remark = lever(name, how, a, device)
            anchor = H100_ANCHORS[name]
            print(
                f"{name:<12}{how:<12}{ips:>12,.0f}{anchor:>14,.0f}{ips / anchor:>8.3f}  {remark}", flush=True
            )


if __name__ == "__main__":
    main()
