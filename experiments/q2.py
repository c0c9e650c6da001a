"""Q2: with one hidden layer of linear units, is the loss convex in the weights?

The network z = w2ᵀ(W1 x̃) + b2 (x̃ = [x, 1], so W1 holds the hidden biases) computes a linear function of
x, yet its loss is a function of a product of weights. On a two-digit MNIST task, for CE and MSE on a
sigmoid output: exact Hessians at the origin (against the closed form) and at random points, the midpoint
test along random segments, the sign-flip counterexample at a trained point, and the loss surface of the
scalar model z = w2·w1·s.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import torch

from experiments import convexity as cx
from experiments.configs.q2 import Config
from experiments.kit import Output, RunContext


def logits(theta: torch.Tensor, x: torch.Tensor, hidden: int) -> torch.Tensor:
    """Logits for ``theta`` = [W1 (row-major, hidden x D), w2 (hidden), b2], batched over leading dims.

    Computed as x̃ᵀ(W1ᵀw2) + b2, the same function as w2ᵀ(W1 x̃) + b2 with one product per sample instead of
    ``hidden``: the midpoint test evaluates it at tens of thousands of points.
    """
    d = x.shape[1]
    w1 = theta[..., : hidden * d].unflatten(-1, (hidden, d))
    w2 = theta[..., hidden * d : hidden * d + hidden]
    v = (w2.unsqueeze(-1) * w1).sum(-2)  # (..., D): the linear function of x̃ the network computes
    return v @ x.T + theta[..., -1:]


def flip(theta: torch.Tensor) -> torch.Tensor:
    """(W1, w2, b2) -> (-W1, -w2, b2): the same function of x, hence the same loss."""
    out = -theta
    out[..., -1] = theta[..., -1]
    return out


def origin_hessian(loss: str, x: torch.Tensor, y: torch.Tensor, hidden: int) -> torch.Tensor:
    """The Hessian at W1 = 0, w2 = 0, b2 = 0 in closed form.

    There z = 0 and ∇z = e_b2, so only ℓ'(0)·∇²z and ℓ''(0)·e_b2 e_b2ᵀ survive: each hidden unit j couples
    w2_j with row j of W1 through g = mean_i ℓ'(0, y_i) x̃_i, and the b2 entry is c = mean_i ℓ''(0, y_i).
    """
    n, d = x.shape
    zero = torch.zeros(n, dtype=x.dtype, device=x.device)
    g = (cx.closed_d1(loss, zero, y)[:, None] * x).mean(0)
    size = hidden * d + hidden + 1
    h = torch.zeros(size, size, dtype=x.dtype, device=x.device)
    for j in range(hidden):
        h[j * d : (j + 1) * d, hidden * d + j] = g
        h[hidden * d + j, j * d : (j + 1) * d] = g
    h[-1, -1] = cx.closed_d2(loss, zero, y).mean()
    return h


def exact_hessian(
    loss: str, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hidden: int
) -> torch.Tensor:
    """The Hessian of the mean loss at ``theta`` in closed form, ``Jᵀ diag(ℓ'') J / N + mean ℓ'·∇²z``.

    With z = w2ᵀ W1 x̃ + b2 the Jacobian has Kronecker structure (∂z/∂W1_j = w2_j x̃), so the W1 blocks are
    w2_j w2_k G with G = X̃ᵀ diag(ℓ''/N) X̃ (one D × D product for all of them), and ∇²z only couples W1_j
    with w2_j, through g = mean ℓ'·x̃. Exact up to round-off; the run checks it against autograd.
    """
    n, d = x.shape
    w1 = theta[: hidden * d].view(hidden, d)
    w2 = theta[hidden * d : hidden * d + hidden]
    a = x @ w1.T  # (N, hidden): each hidden unit's output
    z = a @ w2 + theta[-1]
    d1, d2 = cx.closed_d1(loss, z, y) / n, cx.closed_d2(loss, z, y) / n
    g, m, v = x.T @ (d2[:, None] * x), x.T @ (d2[:, None] * a), x.T @ d2  # G, X̃ᵀD A, X̃ᵀ d2
    size = hidden * d + hidden + 1
    h = torch.empty(size, size, dtype=x.dtype, device=x.device)
    h[: hidden * d, : hidden * d] = torch.kron(torch.outer(w2, w2), g)
    cross = (w2[:, None, None] * m[None]).reshape(hidden * d, hidden)  # W1_j with w2_k: w2_j M[:, k]
    cross += torch.block_diag(*[(x.T @ d1)[:, None]] * hidden)  # ∇²z: W1_j with w2_j, through g
    h[: hidden * d, hidden * d : -1] = cross
    h[: hidden * d, -1] = (w2[:, None] * v[None]).reshape(-1)
    h[hidden * d : -1, hidden * d : -1] = a.T @ (d2[:, None] * a)
    h[hidden * d : -1, -1] = a.T @ d2
    h[-1, -1] = d2.sum()
    return h.triu() + h.triu(1).mT  # the lower triangle mirrors the blocks set above


def origin_spectrum(g_norm: float, c: float, hidden: int, d: int) -> list[float]:
    """Eigenvalues of ``origin_hessian``: each unit's block [[0, gᵀ], [g, 0]] gives ±‖g‖ and d−1 zeros."""
    return sorted([-g_norm] * hidden + [0.0] * (hidden * (d - 1)) + [g_norm] * hidden + [c])


def sampler(cfg: Config, x: torch.Tensor, device: torch.device) -> cx.Sampler:
    """Gaussian weights sized so w2ᵀW1x̃ and b2 each have spread s/√2: logits of order s."""
    rms = x.pow(2).sum(1).mean().sqrt().item()
    d = x.shape[1]

    def sample(count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        scales = cx.log_uniform(count, cfg.scale_min, cfg.scale_max, gen)
        c = (scales / math.sqrt(2))[:, None]
        w1 = torch.randn(count, cfg.hidden * d, generator=gen, dtype=torch.float64) * c.sqrt() / rms
        w2 = torch.randn(count, cfg.hidden, generator=gen, dtype=torch.float64) * (c / cfg.hidden).sqrt()
        b2 = torch.randn(count, 1, generator=gen, dtype=torch.float64) * c
        return torch.cat([w1, w2, b2], dim=1).to(device), scales

    return sample


def run(cfg: Config, ctx: RunContext) -> Output:
    def model(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return logits(theta, x, cfg.hidden)

    def exact(loss: str, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return exact_hessian(loss, theta, x, y, cfg.hidden)

    return cx.run_study("q2", cfg, ctx, model, lambda x, device: sampler(cfg, x, device), tables, exact)


def tables(study: cx.Study) -> Output:
    cfg, ctx, x, y = study.cfg, study.ctx, study.x, study.y
    d = x.shape[1]
    size = cfg.hidden * d + cfg.hidden + 1
    mean_loss, device = study.mean_loss, x.device

    def origin(loss: str) -> dict[str, float | str | int]:
        h = cx.hessian(mean_loss(loss), torch.zeros(size, dtype=torch.float64, device=device))
        closed = origin_hessian(loss, x, y, cfg.hidden)
        g_norm = float(closed[:d, cfg.hidden * d].norm())
        c = float(closed[-1, -1])
        eig = cx.eigenvalues(h)
        expected = torch.tensor(origin_spectrum(g_norm, c, cfg.hidden, d), dtype=torch.float64)
        top = float(eig.abs().max())
        return {
            "loss": loss,
            "g_norm": g_norm,
            "bias_curvature": c,
            "min_eig": float(eig[0]),
            "max_eig": float(eig[-1]),
            "min_eig_closed": float(expected[0]),
            "max_eig_closed": float(expected[-1]),
            "matrix_err": float((h - closed).abs().max() / closed.abs().max()),
            "spectrum_err": float((eig.cpu() - expected).abs().max()) / top,
            "negative": int((eig < -cfg.eig_tol * top).sum()),
            "positive": int((eig > cfg.eig_tol * top).sum()),
        }

    def train(loss: str) -> torch.Tensor:
        """A trained point, started near (not at) the origin, where the gradient of W1 and w2 vanishes."""
        gen = cx.generator(ctx.seed, f"init-{loss}")
        start = 0.01 * torch.randn(size, generator=gen, dtype=torch.float64)
        return cx.fit(mean_loss(loss), start.to(device), cfg.train_steps, cfg.lr).cpu()

    thetas = {k: ctx.step(f"train-{k}", lambda k=k: train(k)).to(device) for k in cx.LOSSES}
    hessian = study.hessians()
    segments = study.segments()
    s = torch.linspace(-1.5, 1.5, 121, dtype=torch.float64, device=device)
    weights = torch.arange(size, device=device) < size - 1  # every entry but b2
    path = []
    for loss, theta in thetas.items():  # theta(s) = (s W1, s w2, b2): theta at s = 1, its flip at s = -1
        along = theta * torch.where(weights, s[:, None], 1.0)
        value = mean_loss(loss)(along).cpu().numpy()
        path.append(pd.DataFrame({"loss": loss, "s": s.cpu().numpy(), "value": value}))
    ce = hessian[hessian["loss"] == "ce"]
    tables = {
        "task": pd.DataFrame([cx.task_row(cfg, x, y, hidden=cfg.hidden, parameters=size)]),
        "hessian": hessian,
        "origin": pd.DataFrame([ctx.step(f"origin-{k}", lambda k=k: origin(k)) for k in cx.LOSSES]),
        "segments": segments,
        "symmetry": _symmetry(mean_loss, thetas, y),
        "path": pd.concat(path, ignore_index=True),
        "surface": _surface(x, y, cfg.surface_range, cfg.surface_points),
    }
    return Output(tables, ("CE min Hessian eigenvalue (relative)", float(ce["rel_min_eig"].min())))


def _symmetry(
    mean_loss: Callable[[str], Callable[[torch.Tensor], torch.Tensor]],
    thetas: dict[str, torch.Tensor],
    y: torch.Tensor,
) -> pd.DataFrame:
    """L(θ), L(−θ) and L at their midpoint (0, 0, b2), against the best constant prediction."""
    m = float(y.mean())  # the best constant prediction is σ(c) = m
    best_constant = {"ce": -(m * math.log(m) + (1 - m) * math.log(1 - m)), "mse": m * (1 - m)}
    rows = []
    for loss, theta in thetas.items():
        f = mean_loss(loss)
        flipped = flip(theta)
        rows.append(
            {
                "loss": loss,
                "loss_theta": float(f(theta)),
                "loss_flipped": float(f(flipped)),
                "loss_mid": float(f((theta + flipped) / 2)),
                "best_constant": best_constant[loss],
                "bias": float(theta[-1]),
                "theta_norm": float(theta.norm()),
            }
        )
    return pd.DataFrame(rows)


def _surface(x: torch.Tensor, y: torch.Tensor, extent: float, points: int) -> pd.DataFrame:
    """Each loss of the scalar model z = w2·w1·s on a grid, with s the standardised projection of the
    pixels on the difference of the class means: the two-weight picture of the product structure."""
    pixels = x[:, :-1]
    direction = pixels[y == 1].mean(0) - pixels[y == 0].mean(0)
    s = (pixels - pixels.mean(0)) @ direction
    s = s / s.std()
    grid = torch.linspace(-extent, extent, points, dtype=torch.float64, device=x.device)
    w1, w2 = torch.meshgrid(grid, grid, indexing="ij")
    frames = []
    for loss, fn in cx.LOSSES.items():
        value = torch.stack([fn((w1[i] * w2[i])[:, None] * s, y).mean(-1) for i in range(points)])
        grid_values = {"w1": w1, "w2": w2, "value": value}
        frames.append(pd.DataFrame({k: v.flatten().cpu().numpy() for k, v in grid_values.items()}))
        frames[-1].insert(0, "loss", loss)
    return pd.concat(frames, ignore_index=True)
