"""Q1: is the training loss of a sigmoid unit on a linear logit z = wᵀx + b convex in (w, b)?

On a two-digit MNIST task, for cross-entropy (CE) and squared error (MSE): exact Hessians in closed form
at random parameter points (each checked against autograd), the midpoint test along random segments, and
the arrays the report draws (loss slices through a trained point, d²ℓ/dz², a one-sample counterexample,
CE along a ray).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

from experiments import convexity as cx
from experiments.configs.q1 import Config
from experiments.kit import Output, RunContext

COUNTEREXAMPLE = (-4.0, 0.0)  # two logits of one sample with y = 1 whose MSE midpoint breaks convexity
RAY = (1.0, 2.0, 4.0, 8.0, 16.0)  # multiples of the trained parameters: CE along a ray


def logits(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """z = wᵀx + b for every parameter vector θ = (w, b) in a batch (x carries a trailing 1)."""
    return theta @ x.T


def sampler(cfg: Config, x: torch.Tensor, device: torch.device) -> cx.Sampler:
    """Random parameter vectors, each at its own log-uniform logit scale s: θ ~ N(0, (s / rms)² I) gives
    logits of spread ~ s, with rms the root-mean-square norm of the inputs."""
    rms = x.pow(2).sum(1).mean().sqrt().item()

    def sample(count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        scales = cx.log_uniform(count, cfg.scale_min, cfg.scale_max, gen)
        theta = torch.randn(count, x.shape[1], generator=gen, dtype=torch.float64) * (scales / rms)[:, None]
        return theta.to(device), scales

    return sample


def exact_hessian(loss: str, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """X̃ᵀ diag(ℓ''(z_i)) X̃ / N: the logit is linear in θ, so only the loss's curvature in z remains.
    Exact up to round-off; the run checks it against autograd."""
    d2 = cx.closed_d2(loss, x @ theta, y)
    return x.T @ (d2[:, None] * x) / len(x)


def run(cfg: Config, ctx: RunContext) -> Output:
    sample = lambda x, device: sampler(cfg, x, device)  # noqa: E731
    return cx.run_study("q1", cfg, ctx, logits, sample, tables, exact_hessian)


def tables(study: cx.Study) -> Output:
    cfg, x, y = study.cfg, study.x, study.y
    n, dim = x.shape
    mean_loss = study.mean_loss

    def curvature(loss: str, theta: torch.Tensor, h: torch.Tensor) -> dict[str, float]:
        """The share of samples whose loss is concave in the logit at ``theta`` (ℓ'' < 0)."""
        return {"neg_curvature_samples": float((cx.closed_d2(loss, x @ theta, y) < 0).double().mean())}

    def train() -> torch.Tensor:
        start = torch.zeros(dim, dtype=torch.float64, device=x.device)
        return cx.fit(mean_loss("ce"), start, cfg.train_steps, cfg.lr).cpu()

    theta = study.ctx.step("train", train).to(x.device)
    hessian = study.hessians(curvature)
    margins = (2 * y - 1) * (x @ theta)
    task = cx.task_row(
        cfg,
        x,
        y,
        rank=int(torch.linalg.matrix_rank(x)),
        zero_features=int((x.abs().sum(0) == 0).sum()),
        train_loss=float(mean_loss("ce")(theta)),
        train_accuracy=float((margins > 0).double().mean()),
        min_margin=float(margins.min()),
    )
    tables = {
        "task": pd.DataFrame([task]),
        "hessian": hessian,
        "segments": study.segments(),
        "slice": _slice(mean_loss, theta),
        "curvature": _curvature(),
        "counterexample": _counterexample(),
        "ray": pd.DataFrame({"t": RAY, "loss": [float(mean_loss("ce")(t * theta)) for t in RAY]}),
    }
    mse = hessian[hessian["loss"] == "mse"]
    return Output(tables, ("MSE min Hessian eigenvalue (relative)", float(mse["rel_min_eig"].min())))


def _slice(
    mean_loss: Callable[[str], Callable[[torch.Tensor], torch.Tensor]], theta: torch.Tensor
) -> pd.DataFrame:
    """Both losses along the line t·θ through the origin (t = 0) and the trained point (t = 1)."""
    t = torch.linspace(-2, 2, 161, dtype=torch.float64)
    points = t[:, None].to(theta.device) * theta
    frames = [
        pd.DataFrame({"loss": loss, "t": t.numpy(), "value": mean_loss(loss)(points).cpu().numpy()})
        for loss in cx.LOSSES
    ]
    return pd.concat(frames, ignore_index=True)


def _curvature() -> pd.DataFrame:
    """d²ℓ/dz² by autograd for each loss and label: where it is negative, ℓ is concave in z."""
    z = torch.linspace(-8, 8, 321, dtype=torch.float64)
    frames = []
    for loss, fn in cx.LOSSES.items():
        for label in (0, 1):
            d2 = cx.d2_dz2(fn, z, torch.full_like(z, label))
            frames.append(pd.DataFrame({"loss": loss, "label": label, "z": z.numpy(), "d2": d2.numpy()}))
    return pd.concat(frames, ignore_index=True)


def _counterexample() -> pd.DataFrame:
    """One sample with x = 1, y = 1 and no bias, so the weight is the logit: each loss at two weights
    and their midpoint."""
    za, zb = COUNTEREXAMPLE
    z = torch.tensor([za, zb, (za + zb) / 2], dtype=torch.float64)
    rows = []
    for loss, fn in cx.LOSSES.items():
        la, lb, lm = fn(z, torch.ones_like(z)).tolist()
        rows.append(
            {
                "loss": loss,
                "z_a": za,
                "z_b": zb,
                "loss_a": la,
                "loss_b": lb,
                "loss_mid": lm,
                "gap": lm - (la + lb) / 2,
            }
        )
    return pd.DataFrame(rows)
