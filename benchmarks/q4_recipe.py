"""Q4's training recipe tried on a few models and budgets, for choosing the full study's on a GPU (issue #24).

Each trial is the experiment's own training of one model and seed (``experiments.q4.train_one``) on the
full profile's settings with the changes given, so what it reports is what the study would store: test
and validation accuracy, the last epoch's training loss and the training time and images/s. Horizontal
flips, which the experiment decides per dataset, are a knob here (``--flip off,on``): the trials can weigh
a change to that rule before it is made. Nothing is stored; the study is still ``build.py run``.

    python benchmarks/q4_recipe.py --data-dir DATA --models resnet18,resnet50 --epochs 12,20 --flip off,on
    python benchmarks/q4_recipe.py --data-dir DATA --set dataset=fashion-mnist --models resnet101 --epochs 16

It prints one row per trial as each ends (``--verbose``: each epoch too), then all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import kit, models, q4  # noqa: E402
from experiments.kit import device_name, resolve_device  # noqa: E402
from report.core.config import apply_overrides, profile_config  # noqa: E402
from report.core.errors import ConfigError  # noqa: E402


@contextlib.contextmanager
def flips_as(dataset: str) -> Iterator[None]:
    """The experiment's augmentation rule for ``dataset`` as it was, once the trials have set theirs."""
    rule = q4.AUGMENT[dataset]
    try:
        yield
    finally:
        q4.AUGMENT[dataset] = rule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="torchvision's layout")
    parser.add_argument("--models", default="resnet18", help="comma-separated registry names")
    parser.add_argument("--epochs", default="", help="comma-separated budgets (default: the full profile's)")
    parser.add_argument("--flip", default="", help="off, on or off,on (default: the experiment's rule)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per trial: 0, 1, …")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other field of Q4's config, e.g. lr=0.2 (repeatable)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--verbose", action="store_true", help="print each epoch's loss and accuracy")
    a = parser.parse_args(argv)
    raw = dict(s.split("=", 1) for s in a.sets if "=" in s)
    if len(raw) != len(a.sets):
        parser.error("--set takes FIELD=VALUE")
    names = a.models.split(",")
    if unknown := [n for n in names if n not in models.NAMES]:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.NAMES)}")
    try:
        base = apply_overrides("q4", profile_config("q4", "full"), raw)
        budgets = [base] if not a.epochs else [
            apply_overrides("q4", base, {"epochs": e}) for e in a.epochs.split(",")
        ]  # fmt: skip
    except ConfigError as e:
        parser.error(str(e))
    pad, rule = q4.AUGMENT[base.dataset]
    flips = [{"off": False, "on": True}[f] for f in a.flip.split(",")] if a.flip else [rule]
    device = resolve_device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(
        f"device: {device_name(device)}; {base.dataset}; the full profile's recipe with {raw or 'no change'}"
    )
    head = f"{'model':<11}{'epochs':>7}{'flip':>6}{'seed':>6}{'test acc':>10}{'val acc':>9}{'loss':>8}"
    rows = [head + f"{'train s':>9}{'images/s':>10}"]
    with tempfile.TemporaryDirectory() as work, flips_as(base.dataset):
        trials = itertools.product(names, budgets, flips, range(a.seeds))
        for i, (name, cfg, flip, seed) in enumerate(trials):
            q4.AUGMENT[cfg.dataset] = (pad, flip)  # the experiment reads its rule from here
            splits = q4.prepare(cfg, a.data_dir, 0, str(device))
            fresh = Path(work) / str(i)  # a checkpoint left by another trial is never resumed
            fresh.mkdir()
            unit = kit.Unit(f"{name}-seed{seed}", q4.train_one, (name, seed, cfg, splits, device, fresh),
                            torch.get_num_threads(), gpus=1)  # fmt: skip
            out = kit.call(unit, print if a.verbose else lambda line: None)  # as a worker runs it
            r = out["result"]
            rows.append(
                f"{name:<11}{cfg.epochs:>7}{'on' if flip else 'off':>6}{seed:>6}{r['test_acc']:>10.2%}"
                f"{r['val_acc']:>9.2%}{out['curves'][-1]['train_loss']:>8.4f}{r['train_time_s']:>9.1f}"
                f"{r['throughput']:>10,.0f}"
            )
            print(rows[-1], flush=True)
    print("\n".join(["", "all trials:", *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
