"""Numerical convexity checks shared by Q1 and Q2.

A binary task from real MNIST, the two per-sample losses on a sigmoid output, exact Hessians in closed
form (checked against autograd), and the midpoint test along segments. Everything runs in float64: the
checks have to tell true negative curvature from round-off, and float32 round-off is far larger than the
effects at stake.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import jacfwd, jacrev

from experiments import data, datasets
from experiments.configs.convexity import BinaryTask
from experiments.kit import Output, RunContext

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Sampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]  # n -> (points, scales)
CHUNK = 256  # segments per batch: bounds memory at (CHUNK, samples, hidden units) activations


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE of a sigmoid output on logit ``z``: softplus(z) − y·z, written so it is exact for every z.

    ``F.softplus`` switches to ``z`` above a threshold, a jump of ~1e-9 that the midpoint test would see.
    Under ``torch.inference_mode`` (the midpoint test's millions of values) it works in place: the same
    numbers in half the time.
    """
    if torch.is_inference_mode_enabled():
        zero = torch.zeros((), dtype=z.dtype, device=z.device)
        return torch.logaddexp(z, zero).addcmul_(y.expand_as(z), z, value=-1)
    return torch.logaddexp(z, torch.zeros_like(z)) - y * z


def squared_error(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error of a sigmoid output against the 0/1 label (in place under inference mode)."""
    if torch.is_inference_mode_enabled():
        return torch.sigmoid(z).sub_(y).square_()
    return (torch.sigmoid(z) - y) ** 2


LOSSES: dict[str, Loss] = {"ce": cross_entropy, "mse": squared_error}
PROBES = 3  # random directions per point in which autograd's Hessian-vector product checks the closed form
EXACT_TOL = 1e-10  # largest relative difference between the two accepted as round-off


def closed_d1(loss: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dℓ/dz in closed form (used to build the Hessian of the linear network at the origin)."""
    p = torch.sigmoid(z)
    return p - y if loss == "ce" else 2 * (p - y) * p * (1 - p)


def closed_d2(loss: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d²ℓ/dz² in closed form: σ(1−σ) for CE, 2σ(1−σ)[σ(1−σ) + (σ−y)(1−2σ)] for MSE."""
    p = torch.sigmoid(z)
    s = p * (1 - p)
    return s if loss == "ce" else 2 * s * (s + (p - y) * (1 - 2 * p))


def d2_dz2(loss: Loss, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise second derivative of a per-sample loss in the logit, by autograd."""
    z = z.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(z, y).sum(), z, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), z)
    return h


def generator(seed: int, key: str) -> torch.Generator:
    """A generator per (seed, stage): a resumed run redraws exactly what the interrupted one drew."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))


def task_row(cfg: Any, x: torch.Tensor, y: torch.Tensor, **extra: Any) -> dict[str, Any]:
    """The binary MNIST task an experiment ran on, as one row for its ``task`` table."""
    return {
        "dataset": "mnist",
        "negative_digit": cfg.digits[0],
        "positive_digit": cfg.digits[1],
        "samples": x.shape[0],
        "positives": int(y.sum()),
        "features": x.shape[1] - 1,
        "pool": cfg.pool,
        "train_steps": cfg.train_steps,
        **extra,
    }


def binary_task(
    data_dir: Path, cfg: BinaryTask, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.samples`` MNIST training images of the two ``cfg.digits`` as a float64 design matrix with a
    trailing column of ones (the bias), pixels in [0, 1] average-pooled ``cfg.pool``x``cfg.pool``; labels
    are 1 for the second digit. The config's rule on the images per digit holds for the loaded labels.

    Pooling keeps the parameter count small enough for exact Hessians at many points.
    """
    images, labels = data.load("mnist", data_dir, train=True)
    cfg.check_classes(torch.bincount(labels, minlength=10).tolist(), datasets.layout("mnist").title)
    digits = cfg.digits
    keep = torch.nonzero((labels == digits[0]) | (labels == digits[1])).squeeze(1)
    keep = keep[torch.randperm(len(keep), generator=generator(seed, "sample"))[: cfg.samples]]
    x = F.avg_pool2d(images[keep].double() / 255, cfg.pool).flatten(1)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    y = (labels[keep] == digits[1]).double()
    # stored column by column: products with a parameter vector and X̃ᵀ D X̃ run 1.5-3x faster that way
    return x.to(device).T.contiguous().T, y.to(device)


def log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` scales spread evenly in log space, so small and large parameters are both visited."""
    return torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=gen).exp()


def hessian(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> torch.Tensor:
    """The exact Hessian of scalar ``f`` at ``theta``, by forward-over-reverse autograd.

    The first forward-mode call makes torch load its own derivative rules through ``torch.jit.script``,
    which newer torch versions deprecate in a FutureWarning about torch's internals, not this code: the
    user would see it once per run, so it is silenced here, for that message only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
        return jacfwd(jacrev(f))(theta)


def hvp_err(
    f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, h: torch.Tensor, gen: torch.Generator
) -> float:
    """How far ``h`` is from the Hessian of ``f`` at ``theta``: autograd's Hessian-vector products
    (reverse over reverse) in ``PROBES`` random directions against ``h v``, relative to their largest
    entry.

    A wrong matrix fails this for almost every direction, at the cost of a few gradients rather than the
    one gradient per parameter that the whole autograd Hessian takes.
    """
    v = torch.randn(PROBES, len(theta), generator=gen, dtype=theta.dtype).to(theta.device)
    t = theta.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(t), t, create_graph=True)
    hv = torch.stack([torch.autograd.grad(g @ u, t, retain_graph=True)[0] for u in v])
    return float((hv - v @ h).abs().max() / hv.abs().max())


def eigenvalues(h: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of a Hessian, symmetrised first: autograd leaves round-off asymmetry.

    On the CPU, NumPy's LAPACK took 32 ms for a 793 x 793 Hessian where torch's took 76 (2 cores).
    """
    sym = (h + h.T) / 2
    if sym.device.type == "cpu":
        return torch.from_numpy(np.linalg.eigvalsh(sym.numpy()))
    return torch.linalg.eigvalsh(sym)


def midpoint_test(
    fa: torch.Tensor, fb: torch.Tensor, fm: torch.Tensor, rtol: float
) -> dict[str, torch.Tensor]:
    """Jensen's inequality at the midpoint of each segment [a_i, b_i], from the function's values at
    a_i, b_i and (a_i + b_i) / 2.

    A segment violates convexity when f(mid) exceeds (f(a)+f(b))/2 by more than ``rtol`` times the
    endpoint values' mean magnitude, so round-off of a function that is affine along the segment never
    counts as a violation.
    """
    gap = fm - (fa + fb) / 2
    return {
        "loss_a": fa,
        "loss_b": fb,
        "loss_mid": fm,
        "gap": gap,
        "violated": gap > rtol * (fa.abs() + fb.abs()) / 2,
    }


def spectrum_row(h: torch.Tensor) -> dict[str, float]:
    """Smallest eigenvalue of a Hessian, alone and relative to the largest magnitude (scale-free)."""
    eig = eigenvalues(h)
    top = float(eig.abs().max())
    return {"min_eig": float(eig[0]), "max_abs_eig": top, "rel_min_eig": float(eig[0]) / top if top else 0.0}


def segment_table(
    logits: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    sample: Sampler,
    count: int,
    rtol: float,
    gen: torch.Generator,
    track: Callable[..., Any],
    description: str,
) -> pd.DataFrame:
    """The midpoint test of every loss on the same ``count`` segments, whose endpoints ``sample`` draws
    independently: the logits at the three points of a segment are computed once for all losses.

    Each chunk's values go into buffers allocated before the loop. Results kept per chunk would be small
    blocks that glibc carves out of the chunk's freed (CHUNK, samples) temporaries, so the next chunk could
    not reuse them: Q1 full's process grew to 9.3 GB that way and Q2's to 3.4, against 1.1 and 1.5 now.
    """
    scales = torch.empty(2, count, dtype=torch.float64)  # endpoints a, b
    values = torch.empty(len(LOSSES), 3, count, dtype=torch.float64)  # loss x (a, b, mid) x segment
    for start in track(range(0, count, CHUNK), total=-(-count // CHUNK), description=description):
        end = min(start + CHUNK, count)
        a, scales[0, start:end] = sample(end - start, gen)
        b, scales[1, start:end] = sample(end - start, gen)
        with torch.inference_mode():  # values only: the losses work in place
            z = [logits(theta) for theta in (a, b, (a + b) / 2)]
            for i, fn in enumerate(LOSSES.values()):
                for j, zj in enumerate(z):
                    values[i, j, start:end] = fn(zj, y).mean(-1)
    frames = [
        pd.DataFrame(
            {"segment": range(count), "scale_a": scales[0].numpy(), "scale_b": scales[1].numpy()}
            | {k: v.numpy() for k, v in midpoint_test(*values[i], rtol).items()}
        ).assign(loss=loss)
        for i, loss in enumerate(LOSSES)
    ]
    return pd.concat(frames).sort_values(["loss", "segment"], kind="stable").reset_index(drop=True)


def fit(
    f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, steps: int, lr: float
) -> torch.Tensor:
    """Full-batch Adam for a fixed number of steps: a well-defined "trained point" even where the loss
    has no minimiser (separable data)."""
    theta = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        f(theta).backward()
        opt.step()
    return theta.detach()


def float64_device(device: torch.device) -> torch.device:
    """The run's device if it supports float64 (Apple MPS does not; those runs use the CPU)."""
    return torch.device("cpu") if device.type == "mps" else device


@dataclass
class Study:
    """One convexity study: a binary MNIST task, a model's logits as a function of its parameters, and
    the exact-Hessian and midpoint checks of both losses. Q1 and Q2 differ only in ``logits`` and
    ``sample`` (and in the extra tables they add)."""

    name: str  # "q1", "q2": labels the progress bars
    cfg: Any
    ctx: RunContext
    x: torch.Tensor  # (N, D) float64 design matrix with a trailing column of ones
    y: torch.Tensor  # (N,) 0/1 labels
    logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (params (..., P), x) -> (..., N)
    sample: Sampler
    exact: Callable[[str, torch.Tensor], torch.Tensor]  # the Hessian of a loss at a point, in closed form

    def mean_loss(self, loss: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda theta: LOSSES[loss](self.logits(theta, self.x), self.y).mean(-1)

    def hessians(
        self, extra: Callable[[str, torch.Tensor, torch.Tensor], dict] | None = None
    ) -> pd.DataFrame:
        """The spectrum of the closed-form Hessian at ``cfg.points`` random points per loss (plus ``extra``
        columns computed from the loss name, the point and its Hessian); every point's Hessian is checked
        against autograd in random directions, and the difference is stored (``autograd_err``)."""

        def points(loss: str) -> pd.DataFrame:
            thetas, scales = self.sample(self.cfg.points, generator(self.ctx.seed, f"hessian-{loss}"))
            probes = generator(self.ctx.seed, f"probes-{loss}")
            rows = []
            label = f"{self.name} Hessians ({loss})"
            for i in self.ctx.track(range(self.cfg.points), total=self.cfg.points, description=label):
                h = self.exact(loss, thetas[i])
                more = extra(loss, thetas[i], h) if extra else {}
                more |= {"autograd_err": self._checked(loss, thetas[i], h, probes), "probes": PROBES}
                rows.append({"loss": loss, "point": i, "scale": float(scales[i]), **spectrum_row(h), **more})
            return pd.DataFrame(rows)

        frames = [self.ctx.step(f"hessian-{k}", lambda k=k: points(k)) for k in LOSSES]
        return pd.concat(frames).reset_index(drop=True)

    def _checked(self, loss: str, theta: torch.Tensor, h: torch.Tensor, gen: torch.Generator) -> float:
        """The closed form against autograd at ``theta`` (``hvp_err``); past ``EXACT_TOL`` the run stops,
        since every conclusion drawn from the Hessians trusts the formula."""
        err = hvp_err(self.mean_loss(loss), theta, h, gen)
        if not err <= EXACT_TOL:
            raise RuntimeError(
                f"{self.name}: the closed-form Hessian differs from autograd's by {err:.2g} ({loss})"
            )
        return err

    def segments(self) -> pd.DataFrame:
        """The midpoint test on ``cfg.segments`` random segments, the same segments for every loss."""

        def test() -> pd.DataFrame:
            gen = generator(self.ctx.seed, "segments")
            logits = lambda theta: self.logits(theta, self.x)  # noqa: E731
            label = f"{self.name} midpoint test"
            return segment_table(logits, self.y, self.sample, self.cfg.segments, self.cfg.rtol, gen,
                                 self.ctx.track, label)  # fmt: skip

        return self.ctx.step("segments", test)


def run_study(
    name: str,
    cfg: Any,
    ctx: RunContext,
    logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sampler: Callable[[torch.Tensor, torch.device], Sampler],
    tables: Callable[[Study], Output],
    exact: Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> Output:
    """Load the task on a float64 device and hand the study to ``tables``.

    ``sampler(x, device)`` returns the study's point sampler for the loaded design matrix.
    """
    device = float64_device(ctx.device)
    x, y = binary_task(ctx.data_dir, cfg, ctx.seed, device)
    closed = lambda loss, theta: exact(loss, theta, x, y)  # noqa: E731
    return tables(Study(name, cfg, ctx, x, y, logits, sampler(x, device), closed))
