"""Many copies of one MLP trained at once, each with its own optimizer and learning rate.

Q3 trains dozens of copies of the same small network. One copy at a time, a CPU spends its time on
Python and on matrix products too small to be efficient; P copies as one stacked network do the same
arithmetic in P-times-larger products:

- each layer's weights are one (P, in, out) tensor, so a layer of every copy is one batched product
  (``matmul`` / ``baddbmm``); copies that share their inputs (sweep points: same data order) read one
  batch, copies with their own data order (final models, one per seed) read one batch each;
- the optimizer step updates the stacked tensors themselves (``Optimizers``), each copy at its own rate
  (one entry of a (P,) tensor) with ``torch.optim``'s update rule, in a few whole-tensor operations per
  run of copies that share an optimizer: not one ``torch.optim`` parameter group per copy, which costs a
  kernel launch per copy and step on a GPU and Python per copy and step on a CPU.

Each copy's loss depends only on its own weights, the summed loss gives each its own gradient, and every
update is elementwise, so a stacked copy follows the trajectory it would follow alone
(``tests/test_stacked.py`` checks it against ``torch.optim`` for every optimizer), and a copy that diverges
to NaN leaves the others untouched.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from experiments import kit
from experiments.configs.q3 import MOMENTUM

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults
EVAL_CHUNK = 5_000  # images per evaluation pass: bounds memory at (P, chunk, 128) activations


class Stack:
    """P networks of the same Flatten / Linear / ReLU shape, one per model in ``models``, as one: each
    layer's weight (P, in, out) and bias (P, out) are one leaf tensor in ``params``."""

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

    def __len__(self) -> int:
        return len(self.params[0])

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


# One optimizer's update of a run of n copies, in place: (their parameter slices, their gradients, their
# rates (n,)); each rule keeps its run's state (momentum buffers; Adam's moments and step count).
Rule = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]


def _per_copy(rates: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-copy coefficients (n,), in the tensors' type, as (n, 1, ...) views that broadcast against each
    (n, ...) tensor: cast after the arithmetic in double, as torch.optim casts its scalars."""
    rates = rates.to(like[0].dtype)
    return [rates.view(-1, *[1] * (t.dim() - 1)) for t in like]


def _sgd() -> Rule:
    def step(ps: list[torch.Tensor], gs: list[torch.Tensor], lr: torch.Tensor) -> None:
        torch._foreach_addcmul_(ps, gs, _per_copy(-lr, gs))  # p - lr * g in one rounding, as torch's

    return step


def _momentum() -> Rule:
    bufs: list[torch.Tensor] = []

    def step(ps: list[torch.Tensor], gs: list[torch.Tensor], lr: torch.Tensor) -> None:
        if bufs:
            torch._foreach_mul_(bufs, MOMENTUM)
            torch._foreach_add_(bufs, gs)
        else:  # torch's first buffer is the gradient itself
            bufs.extend(g.clone() for g in gs)
        torch._foreach_addcmul_(ps, bufs, _per_copy(-lr, gs))

    return step


def _adam() -> Rule:
    means: list[torch.Tensor] = []  # the moments, zero before the first step
    squares: list[torch.Tensor] = []
    moves: list[torch.Tensor] = []  # each element's move at rate 1
    counts: list[torch.Tensor] = []  # one step count (as torch's fused Adam keeps it) for every tensor

    def step(ps: list[torch.Tensor], gs: list[torch.Tensor], lr: torch.Tensor) -> None:
        if not counts:
            for state in (means, squares, moves):
                state.extend(torch.zeros_like(g) for g in gs)
            counts.extend([torch.zeros((), dtype=torch.float32, device=gs[0].device)] * len(gs))
        counts[0] += 1
        # torch's own fused Adam kernel at rate 1 on zeroed stand-ins for the parameters: they come out as
        # the moves at rate 1, -m_hat / (sqrt(v_hat) + eps), which each copy's rate then scales
        torch._foreach_zero_(moves)
        torch._fused_adam_(
            moves, gs, means, squares, [], counts, lr=1.0, beta1=BETAS[0], beta2=BETAS[1],
            weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False,
        )  # fmt: skip
        torch._foreach_addcmul_(ps, moves, _per_copy(lr, gs))

    return step


RULES: dict[str, Callable[[], Rule]] = {"sgd": _sgd, "momentum": _momentum, "adam": _adam}


class Optimizers:
    """Every copy's optimizer step at once, on the stacked parameters.

    Copies are taken in contiguous runs of one optimizer name; each run updates its slices (views) of the
    stacked tensors with a handful of multi-tensor operations (``torch._foreach_*``, torch's fused Adam),
    each copy at its own rate (``lr``, one (P,) tensor), so a step costs O(runs x parameter tensors)
    operations however many copies there are. The rules are ``torch.optim``'s, with its defaults. SGD
    and SGD with momentum 0.9 follow its order of operations: a copy's step is the one its own
    ``torch.optim.SGD`` takes, bit for bit on a CPU. Adam (betas 0.9 / 0.999, eps 1e-8) runs torch's
    fused kernel at rate 1 and scales each copy's moves by its rate after: one rounding more, a few ulps
    (``tests/test_stacked.py``). Each element's update reads only its own copy's values, so a copy that
    diverges leaves the others untouched.
    """

    def __init__(self, stack: Stack, names: Sequence[str], lrs: Sequence[float]) -> None:
        self.params = stack.params
        device = self.params[0].device  # rates in double, as torch.optim's (MPS has no double)
        self.lr = torch.tensor(
            lrs, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device
        )
        self.runs: list[tuple[slice, Rule]] = []
        start = 0
        for name, same in itertools.groupby(names):
            end = start + len(list(same))
            self.runs.append((slice(start, end), RULES[name]()))
            start = end

    def set_lrs(self, lrs: torch.Tensor) -> None:
        """Every copy's rate for the next step: a (P,) tensor."""
        self.lr = lrs

    @torch.no_grad()
    def step(self) -> None:
        """Update every copy from the gradients of the last ``backward``, then drop them (the next
        ``backward`` writes fresh ones)."""
        for run, rule in self.runs:
            rule([p[run] for p in self.params], [p.grad[run] for p in self.params], self.lr[run])
        for p in self.params:
            p.grad = None


@contextmanager
def no_subnormals(device: torch.device) -> Iterator[None]:
    """Treat subnormal floats (below 1.2e-38 in float32) as zero on the CPU inside the block, then go back
    to torch's default. Adam's second moments decay into that range for weights whose gradients vanish,
    and x86 CPUs compute on subnormals many times slower: measured here, an epoch of one Adam copy at
    batch 32 took 4.8 s and then 7.4 s instead of 2.1 s. Values that small move no weight that matters."""
    if device.type != "cpu":
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


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
    peak = torch.tensor(peaks, dtype=opts.lr.dtype, device=opts.lr.device)
    for epoch in itertools.count():
        t0 = time.perf_counter()
        orders = [kit.batches(len(y), batch_size, y.device, gen) for gen in gens]
        with no_subnormals(y.device):
            for j, idx in enumerate(zip(*orders, strict=True)):
                # linear_decay(p, ...) is p * linear_decay(1, ...), exactly in float64: one product per step
                opts.set_lrs(peak * kit.linear_decay(1.0, epoch + j / steps, length))
                index = idx[0] if len(idx) == 1 else torch.stack(idx)
                target = y[index].expand(points, -1) if len(idx) == 1 else y[index]
                # the sum of the copies' mean losses: each copy's gradient is its own loss's
                out = stack(x[index], shared=len(idx) == 1)
                loss = F.cross_entropy(out.transpose(1, 2), target, reduction="sum")
                (loss / len(idx[0])).backward()
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
