"""Epoch time of the Q3 network: tensor-resident batches against the plain DataLoader + ToTensor baseline.

Both loops train the same network with the same optimizer and batch size on the same 60,000 MNIST training
images, in one process, so the ratio compares input pipelines and nothing else. The tensor-resident loop
is the one ``experiments/q3.py`` trains with. A final pass times each phase of that loop (batch gather,
forward + loss, backward, optimizer step) to show where the remaining time goes.

    python benchmarks/q3_epoch_time.py --data-dir ../shared/data [--batch-size 128] [--epochs 3]

Exits with status 1 when the speed-up is below ``--target`` (5x by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision.datasets as tvd  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import data, q3  # noqa: E402
from experiments.kit import device_name, resolve_device  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_epochs(data_dir: Path, batch_size: int, epochs: int, device: torch.device) -> list[float]:
    """Seconds per epoch with torchvision's dataset, ``ToTensor`` per image and a shuffling DataLoader."""
    dataset = tvd.MNIST(str(data_dir), train=True, transform=T.ToTensor())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = q3.mlp().to(device)
    opt = q3.make_optimizer("adam", model.parameters(), 1e-3, device)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def resident_split(data_dir: Path, device: torch.device) -> q3.Split:
    x, y = data.load("mnist", data_dir, train=True)
    return q3.Split(x.to(device).float().div_(255), y.to(device))


def resident_epochs(split: q3.Split, batch_size: int, epochs: int, device: torch.device) -> list[float]:
    """Seconds per epoch of Q3's own loop; the first epoch is a warm-up and is not counted."""
    model, opt, gen = q3.setup("adam", 1e-3, 0, device)
    loop = q3.train_epochs(model, opt, split, batch_size, gen)
    next(loop)
    return [next(loop) for _ in range(epochs)]


def phase_breakdown(split: q3.Split, batch_size: int, device: torch.device) -> dict[str, float]:
    """Seconds spent per phase over one epoch of the resident loop, synchronising around each phase."""
    model, opt, gen = q3.setup("adam", 1e-3, 0, device)
    names = ("permutation", "batch gather", "forward + loss", "backward", "optimizer step")
    phases = dict.fromkeys(names, 0.0)

    def timed(phase: str, fn):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        phases[phase] += time.perf_counter() - t0
        return out

    perm = timed("permutation", lambda: torch.randperm(len(split), device=device, generator=gen))
    for idx in perm.split(batch_size):
        x, y = timed("batch gather", lambda idx=idx: (split.x[idx], split.y[idx]))
        loss = timed("forward + loss", lambda x=x, y=y: F.cross_entropy(model(x), y))
        opt.zero_grad(set_to_none=True)
        timed("backward", loss.backward)
        timed("optimizer step", opt.step)
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (median is reported)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    parser.add_argument("--target", type=float, default=5.0, help="minimum speed-up to pass")
    parser.add_argument(
        "--threads",
        type=int,
        default=q3.Config().cpu_threads,
        help="CPU threads for both loops (default: what Q3 trains with; 0: torch's default)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device: {device_name(device)}; batch size {args.batch_size}; 60,000 images per epoch; Adam")

    base = baseline_epochs(args.data_dir, args.batch_size, args.epochs, device)
    split = resident_split(args.data_dir, device)
    fast = resident_epochs(split, args.batch_size, args.epochs, device)
    b, f = statistics.median(base), statistics.median(fast)
    print(f"DataLoader + ToTensor : {b:6.3f} s/epoch  (epochs: {', '.join(f'{t:.3f}' for t in base)})")
    print(f"tensor-resident       : {f:6.3f} s/epoch  (epochs: {', '.join(f'{t:.3f}' for t in fast)})")
    print(f"speed-up              : {b / f:6.1f}x  (target >= {args.target:g}x)")

    phases = phase_breakdown(split, args.batch_size, device)
    total = sum(phases.values())
    print(f"where a resident epoch goes ({total:.3f} s with a sync after every phase):")
    for phase, seconds in phases.items():
        print(f"  {phase:<15} {seconds:6.3f} s  {seconds / total:6.1%}")
    return 0 if b / f >= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
