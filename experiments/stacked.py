"""Many copies of one MLP trained at once, each with its own optimizer and learning rate.

Q3 trains dozens of copies of the same small network. One copy at a time, a CPU spends its time on
Python and on matrix products too small to be efficient; P copies as one stacked network do the same
arithmetic in P-times-larger products:

- each layer's weights are one (P, in, out) tensor, so a layer of every copy is one batched product
  (``matmul`` / ``baddbmm``); copies that share their inputs (sweep points: same data order) read one
  batch, copies with their own data order (final models, one per seed) read one batch each;
- the optimizer step is ``torch.optim``'s own fused kernel, with one parameter group per copy, so every
  copy gets exactly the update rule (and learning rate) it would get alone.

Each copy's loss depends only on its own weights, and the summed loss gives each its own gradient, so a
stacked copy follows the trajectory it would follow alone (``tests/test_stacked.py`` checks it for every
optimizer), and a copy that diverges to NaN leaves the others untouched.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from experiments import kit

MOMENTUM = 0.9  # "momentum" is SGD with this coefficient
EVAL_CHUNK = 5_000  # images per evaluation pass: bounds memory at (P, chunk, 128) activations


class Stack:
    """P networks of the same Flatten / Linear / ReLU shape, one per model in ``models``, as one.

    ``points[k]`` holds copy k's slices of the stacked weights as leaf tensors of their own that share
    their memory: the parameters a stock optimizer updates in place.
    """

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        self.params = [
            torch.stack([t.detach() for t in tensors]).requires_grad_(True)
            for i in range(len(linears[0]))
            for tensors in (
                [layers[i].weight.T for layers in linears],
                [layers[i].bias for layers in linears],
            )
        ]
        self.points = [[p[k].detach().requires_grad_(True) for p in self.params] for k in range(len(models))]

    def __len__(self) -> int:
        return len(self.points)

    def __call__(self, x: torch.Tensor, shared: bool = True) -> torch.Tensor:
        """Logits (P, B, classes) for a batch (B, ...) that every copy reads, or (P, B, ...): one each."""
        x = x.flatten(1) if shared else x.flatten(2)
        w, b, *later = self.params
        h = F.relu(torch.matmul(x, w) + b[:, None])  # shared inputs broadcast against every copy
        for i in range(0, len(later), 2):
            h = torch.baddbmm(later[i + 1][:, None], h, later[i])
            if i < len(later) - 2:
                h = F.relu(h)
        return h

    def share_grad(self) -> None:
        """Hand each copy's leaves their slices of the stacked gradients (views: nothing is copied)."""
        for k, leaves in enumerate(self.points):
            for leaf, p in zip(leaves, self.params, strict=True):
                leaf.grad = p.grad[k]
        for p in self.params:
            p.grad = None

    def model(self, k: int) -> nn.Sequential:
        """Copy ``k`` as a plain ``nn.Sequential`` (Flatten, Linear, ReLU, …, Linear)."""
        layers: list[nn.Module] = [nn.Flatten()]
        for w, b in zip(self.params[::2], self.params[1::2], strict=True):
            linear = nn.Linear(*w.shape[1:], device=w.device)
            linear = linear.to(w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w[k].T)
                linear.bias.copy_(b[k])
            layers += [linear, nn.ReLU()]
        return nn.Sequential(*layers[:-1])


class Optimizers:
    """One ``torch.optim`` optimizer per optimizer name in use, one parameter group per copy."""

    def __init__(self, stack: Stack, names: Sequence[str], lrs: Sequence[float]) -> None:
        fused = stack.params[0].device.type in ("cpu", "cuda")  # one kernel per group, no Python loop
        copies: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            copies.setdefault(name, []).append(k)
        self.opts: list[torch.optim.Optimizer] = []
        self.group: list[dict] = [{}] * len(stack)  # copy k's parameter group, where its rate is set
        for name, ks in copies.items():
            groups = [{"params": stack.points[k], "lr": lrs[k]} for k in ks]
            if name == "adam":
                opt: torch.optim.Optimizer = torch.optim.Adam(groups, fused=fused)
            else:
                opt = torch.optim.SGD(groups, momentum=MOMENTUM if name == "momentum" else 0.0, fused=fused)
            self.opts.append(opt)
            for k, group in zip(ks, opt.param_groups, strict=True):
                self.group[k] = group

    def set_lrs(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.group, lrs, strict=True):
            group["lr"] = lr

    def step(self) -> None:
        for opt in self.opts:
            opt.step()


def train_epochs(
    stack: Stack,
    opts: Optimizers,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gens: Sequence[torch.Generator],
    peaks: Sequence[float],
    length: float,
) -> Iterator[float]:
    """Train one epoch per ``next()``, yielding its seconds; each copy's rate falls per step from its peak
    to zero over a schedule of ``length`` epochs (``kit.linear_decay``), so a run stopped early has
    trained the first epochs of that schedule.

    One generator: every copy sees the same batches. One per copy: each draws its own data order.
    """
    points, steps = len(stack), -(-len(y) // batch_size)
    for epoch in itertools.count():
        t0 = time.perf_counter()
        orders = [kit.batches(len(y), batch_size, y.device, gen) for gen in gens]
        for j, idx in enumerate(zip(*orders, strict=True)):
            opts.set_lrs([kit.linear_decay(p, epoch + j / steps, length) for p in peaks])
            index = idx[0] if len(idx) == 1 else torch.stack(idx)
            target = y[index].expand(points, -1) if len(idx) == 1 else y[index]
            # the sum of the copies' mean losses: each copy's gradient is its own loss's
            out = stack(x[index], shared=len(idx) == 1)
            loss = F.cross_entropy(out.transpose(1, 2), target, reduction="sum")
            (loss / len(idx[0])).backward()
            stack.share_grad()
            opts.step()
        kit.sync(y.device)
        yield time.perf_counter() - t0


@torch.no_grad()
def logits(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    """Every copy's logits (P, N, classes) for the same images."""
    return torch.cat([stack(xs) for xs in x.split(EVAL_CHUNK)], dim=1)


@torch.no_grad()
def evaluate(stack: Stack, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
    """Every copy's mean cross-entropy and accuracy over a whole split."""
    loss = torch.zeros(len(stack), dtype=torch.float64, device=y.device)
    right = torch.zeros(len(stack), dtype=torch.float64, device=y.device)
    for xs, ys in zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True):
        out, target = stack(xs), ys.expand(len(stack), -1)
        loss += F.cross_entropy(out.transpose(1, 2), target, reduction="none").double().sum(1)
        right += (out.argmax(2) == target).double().sum(1)
    return (loss / len(y)).tolist(), (right / len(y)).tolist()
