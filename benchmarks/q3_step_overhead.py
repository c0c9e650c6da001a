"""Q3's training step and its optimizer step: one parameter group per copy against one fused step.

Q3 trains P copies of its MLP as one stacked network (``experiments/stacked.py``). Before issue #24
(item 3) each copy's slices of the stacked weights were leaf tensors of their own, each a parameter group
of a stock fused ``torch.optim`` optimizer: every step handed each leaf its gradient slice and set P
group rates in Python, then launched one fused kernel per group. ``Baseline`` below keeps that code,
only here, as the yardstick. Now ``stacked.Optimizers`` updates the stacked tensors in a few multi-tensor
operations (``torch._foreach_*``, torch's fused Adam kernel) per run of copies that share an optimizer,
with a (P,) tensor of rates.

Both train the same stacks on the same batches (random images: the time of a step does not depend on
them) with the per-step rate schedule of ``stacked.train_epochs``; timed one step at a time (after a
``synchronize`` on a GPU), old and new in alternating blocks so that a busy machine slows both alike.
Reported: the median per step of the whole step (rates, forward, backward, optimizer) and of the
optimizer step alone (rates and update, on fixed gradients), and old / new.

    python benchmarks/q3_step_overhead.py [--profile full] [--steps 100] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import kit, q3, stacked  # noqa: E402
from experiments.configs.q3 import PROFILES  # noqa: E402

LENGTH = 10  # epochs of the rate schedule: a rate that changes every step, as Q3's


class Baseline:
    """THE OLD IMPLEMENTATION (before issue #24, item 3), kept here only to measure against: per-copy
    leaf views of the stacked weights, one ``torch.optim`` optimizer per name with one parameter group
    per copy, gradients handed out and rates set copy by copy every step."""

    def __init__(self, stack: stacked.Stack, names: Sequence[str], lrs: Sequence[float]) -> None:
        self.stack = stack
        self.points = [[p[k].detach().requires_grad_(True) for p in stack.params] for k in range(len(stack))]
        fused = stack.params[0].device.type in ("cpu", "cuda")
        copies: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            copies.setdefault(name, []).append(k)
        self.opts: list[torch.optim.Optimizer] = []
        self.group: list[dict] = [{}] * len(stack)
        for name, ks in copies.items():
            groups = [{"params": self.points[k], "lr": lrs[k]} for k in ks]
            if name == "adam":
                opt: torch.optim.Optimizer = torch.optim.Adam(groups, fused=fused)
            else:
                opt = torch.optim.SGD(
                    groups, momentum=stacked.MOMENTUM if name == "momentum" else 0.0, fused=fused
                )
            self.opts.append(opt)
            for k, group in zip(ks, opt.param_groups, strict=True):
                self.group[k] = group
        self.peaks = list(lrs)

    def set_rates(self, done: float) -> None:
        """Each copy's rate after ``done`` epochs of the schedule, group by group."""
        for group, peak in zip(self.group, self.peaks, strict=True):
            group["lr"] = kit.linear_decay(peak, done, LENGTH)

    def step(self) -> None:
        for k, leaves in enumerate(self.points):  # share_grad: each leaf its slice of the gradients
            for leaf, p in zip(leaves, self.stack.params, strict=True):
                leaf.grad = p.grad[k]
        for p in self.stack.params:
            p.grad = None
        for opt in self.opts:
            opt.step()


class Fused:
    """The new step: ``stacked.Optimizers``, its rates set as ``stacked.train_epochs`` sets them."""

    def __init__(self, stack: stacked.Stack, names: Sequence[str], lrs: Sequence[float]) -> None:
        self.opts = stacked.Optimizers(stack, names, lrs)
        self.peak = self.opts.lr.clone()

    def set_rates(self, done: float) -> None:
        self.opts.set_lrs(self.peak * kit.linear_decay(1.0, done, LENGTH))

    def step(self) -> None:
        self.opts.step()


Variant = Baseline | Fused


def train_step(stack: stacked.Stack, opt: Variant, x: torch.Tensor, y: torch.Tensor, done: float) -> None:
    """One step of ``stacked.train_epochs`` (the copies share the batch): rates, forward, backward, update."""
    opt.set_rates(done)
    out = stack(x)
    loss = F.cross_entropy(out.transpose(1, 2), y.expand(len(stack), -1), reduction="sum")
    (loss / len(y)).backward()
    opt.step()


def update(stack: stacked.Stack, opt: Variant, grads: list[torch.Tensor], done: float) -> None:
    """The optimizer's part of a step alone: rates and update, from the given gradients."""
    for p, g in zip(stack.params, grads, strict=True):
        p.grad = g
    opt.set_rates(done)
    opt.step()


def timed(device: torch.device, run: Callable[..., None], *args: object) -> float:
    """Seconds of ``run(*args)``, queued GPU work included."""
    kit.sync(device)
    t0 = time.perf_counter()
    run(*args)
    kit.sync(device)
    return time.perf_counter() - t0


def measure(
    names: Sequence[str], lrs: Sequence[float], batch: int, device: torch.device, steps: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Per-step seconds of the whole step and of the optimizer step, for the old and the new code."""
    gen = torch.Generator(device).manual_seed(0)
    x = torch.rand(batch * 8, 784, device=device, generator=gen)
    y = torch.randint(0, 10, (batch * 8,), device=device, generator=gen)
    variants: dict[str, tuple[stacked.Stack, Variant]] = {}
    for label, make in (("old", Baseline), ("new", Fused)):
        torch.manual_seed(0)
        stack = stacked.Stack([q3.mlp().to(device)] * len(names))
        variants[label] = (stack, make(stack, names, lrs))
    times: dict[str, dict[str, list[float]]] = {label: {"step": [], "optimizer": []} for label in variants}
    for r in range(rounds + 1):  # round 0 warms up
        for label, (stack, opt) in variants.items():
            batches = kit.batches(len(y), batch, device, gen)
            step_s = [
                timed(device, train_step, stack, opt, x[idx], y[idx], j / steps)
                for j, idx in zip(range(steps), itertools.cycle(batches))
            ]
            grads = [torch.randn_like(p) * 1e-3 for p in stack.params]
            update_s = [timed(device, update, stack, opt, grads, j / steps) for j in range(steps)]
            if r:
                times[label]["step"] += step_s
                times[label]["optimizer"] += update_s
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--profile", default="full", choices=sorted(PROFILES), help="Q3 profile (default full)"
    )
    parser.add_argument("--steps", type=int, default=100, help="timed steps per block (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per variant (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: as Q3 trains a unit)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PROFILES[args.profile]
    points = [(o, lr) for o in cfg.optimizers for lr in cfg.lrs]
    chunks = kit.split({cfg.base_batch: points}, q3.step_cost, cfg.units, cfg.max_stack)
    unit = max(chunks, key=lambda c: (len({o for o, _ in c}), "adam" in {o for o, _ in c}))  # most mixed
    stacks = {"lr study": points, "one unit": unit}  # the whole study as one stack; a unit as Q3 cuts it
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [("device", "stack", "part", "old ms", "new ms", "old/new")]
    for device in devices:
        for what, chunk in stacks.items():
            names, lrs = [o for o, _ in chunk], [lr for _, lr in chunk]
            counts = ", ".join(f"{o} {names.count(o)}" for o in dict.fromkeys(names))
            times = measure(names, lrs, cfg.base_batch, device, args.steps, args.rounds)
            for part in ("step", "optimizer"):
                old, new = (statistics.median(times[v][part]) * 1e3 for v in ("old", "new"))
                label = f"{what}, P={len(names)} ({counts})"
                rows.append(
                    (kit.device_name(device), label, part, f"{old:.3f}", f"{new:.3f}", f"{old / new:.2f}")
                )
    print(f"Q3 {args.profile}, batch {cfg.base_batch}: the median over {args.rounds} x {args.steps} steps of "
          "a step (rates, forward, backward, update) and of its optimizer part (rates, update)")  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(cells)))


if __name__ == "__main__":
    main()
