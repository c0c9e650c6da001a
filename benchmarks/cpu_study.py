"""The full Q1–Q3 study on a CPU: arithmetic against this machine's peak, stacked against one at a time.

1. Peak: the machine's float32 and float64 matrix-product rate (a 2048 x 2048 product, all threads),
   measured in this run: the yardstick for everything below.
2. Q3's training step on one core, as the study trains (one thread per unit, one unit per core): P sweep
   points of one batch size one at a time (one ``nn.Sequential`` and one stock fused optimizer each, as
   before stacking) against the same points as one stacked network (``experiments/stacked.py``):
   seconds per point-epoch on 50,000 resident MNIST images and the achieved GFLOP/s (forward, weight
   gradients, input gradients of all but the first layer) against the one-core peak.
3. Q1 and Q2's Hessians per second on the full task (12,000 images, pool 2), with their eigenvalues: the
   previous code (autograd reverse-over-reverse) against the closed form, one point at a time.
4. With ``--study``, first: Q1, Q2 and Q3 ``full`` run into a scratch store, with their wall times, peak
   memory and Q3's achieved GFLOP/s over the whole study (its stored epochs, images and stack sizes).

    python benchmarks/cpu_study.py --data-dir ../shared/data [--points 9] [--study]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import configs, convexity, data, kit, q1, q2, q3, stacked  # noqa: E402

SIZES = [784, 128, 64, 32, 10]
MACS = sum(a * b for a, b in zip(SIZES, SIZES[1:], strict=False))
FLOPS_PER_IMAGE = 2 * MACS + 2 * MACS + 2 * (MACS - SIZES[0] * SIZES[1])  # forward, dW, dX past layer 1


def peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matrix product, the best of ``reps``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def one_at_a_time(x: torch.Tensor, y: torch.Tensor, lrs: list[float], batch: int) -> float:
    """Seconds for one epoch of every point, each trained alone."""
    total = 0.0
    for lr in lrs:
        torch.manual_seed(0)
        model = q3.mlp()
        opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
        t0 = time.perf_counter()
        for idx in kit.batches(len(y), batch, y.device, torch.Generator().manual_seed(0)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        total += time.perf_counter() - t0
    return total


def together(x: torch.Tensor, y: torch.Tensor, lrs: list[float], batch: int) -> float:
    """Seconds for one epoch of every point, as one stacked network."""
    torch.manual_seed(0)
    stack = stacked.Stack([q3.mlp()] * len(lrs))
    opts = stacked.Optimizers(stack, ["adam"] * len(lrs), lrs)
    return next(stacked.train_epochs(stack, opts, x, y, batch, [torch.Generator().manual_seed(0)], lrs, 1))


def hessians_per_second(data_dir: Path, exp: str, points: int) -> tuple[float, float]:
    """(before, after), each with its eigenvalues: before, the previous code (reverse-over-reverse autograd
    on a row-major design matrix, Q2's logits through the hidden layer, torch's eigvalsh); after, the
    closed form on the column-major matrix with NumPy's eigvalsh, as the runs compute it now."""
    mod = {"q1": q1, "q2": q2}[exp]
    cfg = configs.get(exp).PROFILES["full"]
    x, y = convexity.binary_task(data_dir, cfg, 0, torch.device("cpu"))
    thetas, _ = mod.sampler(cfg, x, torch.device("cpu"))(points, torch.Generator().manual_seed(0))
    rows = x.contiguous()  # the layout before
    if exp == "q1":
        old = lambda t: t @ rows.T  # noqa: E731
        exact = lambda t: q1.exact_hessian("ce", t, x, y)  # noqa: E731
    else:
        h, d = cfg.hidden, x.shape[1]
        old = lambda t: (rows @ t[: h * d].view(h, d).T) @ t[h * d : h * d + h] + t[-1]  # noqa: E731
        exact = lambda t: q2.exact_hessian("ce", t, x, y, cfg.hidden)  # noqa: E731
    f = lambda t: convexity.cross_entropy(old(t), y).mean(-1)  # noqa: E731
    ways = (
        lambda t: torch.linalg.eigvalsh(torch.func.jacrev(torch.func.jacrev(f))(t)),
        lambda t: convexity.eigenvalues(exact(t)),
    )
    rates = []
    for way in ways:
        t0 = time.perf_counter()
        for theta in thetas:
            way(theta)
        rates.append(points / (time.perf_counter() - t0))
    return rates[0], rates[1]


def study(data_dir: Path) -> None:
    """Q1, Q2 and Q3 full into a scratch store, as ``build.py run --profile full`` runs them.

    It runs before the other measurements: Linux carries a process's peak memory across ``exec``, so a
    run started from this process could not report less than this process's own size at the start.
    """
    from report.core.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store, walls = Path(tmp) / "results", {}
        build = Path(__file__).resolve().parents[1] / "build.py"
        for name in ("q1", "q2", "q3"):
            t0 = time.perf_counter()
            with open(f"{tmp}/{name}.log", "w") as log:
                proc = subprocess.Popen(
                    [sys.executable, build, "run", name, "--profile", "full", "--store", store,
                     "--data-dir", data_dir], stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
                _, status, usage = os.wait4(proc.pid, 0)  # the run's own rusage, its workers included
            walls[name] = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status):
                sys.exit(f"{name} failed: see {tmp}/{name}.log")
            print(f"{name} full: {walls[name]:.0f} s, peak memory {usage.ru_maxrss / 2**20:.2f} GiB "
                  "(the largest process: the driver or one worker)")  # fmt: skip
        sweep = Store(store).read("full", "q3", "sweep")
        schedule = Store(store).read("full", "q3", "schedule")  # one row per run: its length in epochs
        final = Store(store).read("full", "q3", "final")
        epochs = (
            sweep.groupby(["study", "rung", "optimizer", "lr", "batch_size", "lr_scaled"])["epoch"].max()
        ).sum() + schedule["schedule"].sum()
        n_train = 50_000
        flop = (epochs * n_train + final["epochs"].sum() * (n_train + 10_000)) * FLOPS_PER_IMAGE
        train_s = sum(walls.values())
        print(f"Q1 full {walls['q1']:.0f} s, Q2 full {walls['q2']:.0f} s: {walls['q1'] + walls['q2']:.0f} s")
        rate = flop / walls["q3"] / 1e9
        print(f"Q3 full {walls['q3']:.0f} s: {flop / 1e12:.1f} TFLOP of training, {rate:.0f} GFLOP/s over "
              "the whole run (evaluation and setup included)")  # fmt: skip
        print(f"Q1-Q3 full: {train_s:.0f} s in all, test mean {final['test_acc'].mean():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--points", type=int, default=9, help="sweep points per batch size (default 9)")
    parser.add_argument(
        "--study", action="store_true", help="also run Q1-Q3 full (the README gives their time)"
    )
    args = parser.parse_args()
    print(f"machine: {kit.device_name(torch.device('cpu'))}")
    if args.study:
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"(the peak memory below cannot read under this benchmark's own {floor:.2f} GiB)")
        study(args.data_dir)
    p32, p64 = peak(torch.float32), peak(torch.float64)
    print(f"peak matrix product, every core: {p32:.0f} GFLOP/s float32, {p64:.0f} GFLOP/s float64")
    for exp in ("q1", "q2"):  # as the runs compute them: every core
        before, after = hessians_per_second(args.data_dir, exp, 3)
        print(f"{exp} Hessians with eigenvalues: {before:.2f}/s before, {after:.1f}/s closed form "
              f"({after / before:.0f}x)")  # fmt: skip
    torch.set_num_threads(1)  # as Q3 trains: one thread per unit, one unit per core
    core = peak(torch.float32)
    print(f"peak matrix product, one core: {core:.0f} GFLOP/s float32; Q3 below on one core")

    x, y = data.load("mnist", args.data_dir, train=True)
    x, y = x[:50_000].float().div_(255), y[:50_000]
    lrs = [10 ** (-4 + 3 * i / max(1, args.points - 1)) for i in range(args.points)]
    for batch in (32, 128, 512):
        alone, stack = one_at_a_time(x, y, lrs, batch), together(x, y, lrs, batch)
        rate = lambda s: args.points * len(y) * FLOPS_PER_IMAGE / s / 1e9  # noqa: E731
        print(
            f"Q3 batch {batch:4d}, {args.points} points: one at a time {alone / args.points:.2f} s per "
            f"point-epoch ({rate(alone):.0f} GFLOP/s, {rate(alone) / core:.0%} of peak), stacked "
            f"{stack / args.points:.2f} s ({rate(stack):.0f} GFLOP/s, {rate(stack) / core:.0%}): "
            f"{alone / stack:.1f}x"
        )


if __name__ == "__main__":
    main()
