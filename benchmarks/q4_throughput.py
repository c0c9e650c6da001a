"""Training throughput (images/s) of each Question 4 model at batch 512 on this machine's device.

It times the experiment's own step: augmentation and normalisation of a resident uint8 batch, then
``experiments.q4.train_step`` (bf16 autocast and channels_last on CUDA) with the full profile's optimiser.
The anchors are what the same kind of step reached on one H100, to tell whether a GPU run is healthy:

    python benchmarks/q4_throughput.py                      # all models, default device
    python benchmarks/q4_throughput.py --models lenet5,resnet18 --steps 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_study import H100_ANCHORS  # noqa: E402  (beside this file: the anchors live there once)

from experiments import models, q4  # noqa: E402
from experiments.configs.q4 import PROFILES  # noqa: E402
from experiments.kit import device_name, resolve_device  # noqa: E402


def throughput(name: str, device: torch.device, batch: int, steps: int, warmup: int) -> float:
    """Images per second over ``steps`` timed training steps, after ``warmup`` untimed ones."""
    cfg = PROFILES["full"]
    torch.manual_seed(0)
    model = q4.build(name, 10, device).train()
    opt = q4.optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    mean, std = torch.full((1, 3, 1, 1), 0.45, device=device), torch.full((1, 3, 1, 1), 0.25, device=device)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        x = q4.normalise(q4.augment(images, pad=4, flip=False), mean, std)
        q4.train_step(model, opt, loss_fn, x, labels, cfg.grad_clip)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--models", default=",".join(models.NAMES), help="comma-separated registry names")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20 on CUDA, 2 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (5 on CUDA, 1 on CPU)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (20 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    print(f"device: {device_name(device)}; batch {args.batch}; {warmup} warm-up + {steps} timed steps")
    print(f"{'model':<12}{'images/s':>12}{'H100 anchor':>14}{'ratio':>8}")
    names = args.models.split(",")
    unknown = [n for n in names if n not in models.NAMES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.NAMES)}")
    for name in names:
        ips = throughput(name, device, args.batch, steps, warmup)
        anchor = H100_ANCHORS[name]
        print(f"{name:<12}{ips:>12,.0f}{anchor:>14,.0f}{ips / anchor:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
