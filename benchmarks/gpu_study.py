"""A stored full study against the targets of issue #24, from the results alone (no torch, no GPU needed).

It reads a bundle (``experiments/reference/full.tar.gz``, or ``results.tar.gz`` from
``benchmarks/gpu_full.sh``) or a store, and prints:

- each Q4 model's mean test accuracy over its seeds beside its target (on Fashion-MNIST, the issue's:
  ResNet-18 94.5%, VGG-16-BN, ResNet-50 and ResNet-101 94.0%) and its median training throughput over
  seeds (as the report's cost table gives it: a slow first training does not move it), as measured
  inside the training loop, beside the H100 anchor;
- Q4's training time summed over its units against 6 minutes, and its record's duration and sessions;
- Q3's device and duration against 30 s on a GPU;
- each record's commit, and whether it came from uncommitted changes or was carried over a code change
  by ``accept`` (the issue wants neither).

    python benchmarks/gpu_study.py experiments/reference/full.tar.gz
    python benchmarks/gpu_study.py --store /tmp/full-store [--profile full]

Exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report.core.bundle import as_store, open_bundle  # noqa: E402
from report.core.store import Store  # noqa: E402

# training images/s of the same step on one H100 (batch 512, bf16 autocast, channels_last), which
# benchmarks/q4_levers.py measures on this machine's device
H100_ANCHORS: dict[str, float] = {
    "lenet5": 280e3,
    "alexnet": 165e3,
    "vgg": 74e3,
    "resnet18": 54e3,
    "resnet50": 13e3,
    "resnet101": 8.4e3,
}
ACCURACY = {"fashion-mnist": {"resnet18": 0.945, "vgg": 0.940, "resnet50": 0.940, "resnet101": 0.940}}
Q4_TRAINING_S = 6 * 60
Q3_GPU_S = 30.0


def results(source: str | None, store: Path | None, scratch: Path) -> Store:
    """The store to read: ``store``, or the bundle ``source`` verified and unpacked into ``scratch``."""
    if store is not None:
        return Store(store)
    assert source is not None
    return as_store(open_bundle(source, Store(scratch / "verify")), scratch / "bundle")


def report(store: Store, profile: str) -> list[str]:
    """Print the study against its targets; return the targets it misses."""
    missed: list[str] = []

    def check(ok: bool, what: str) -> str:
        if not ok:
            missed.append(what)
        return "yes" if ok else "NO"

    absent = [n for n in store.manifest.names if store.result(profile, n) is None]
    if absent:
        print(f"not in these results: {', '.join(absent)} (profile {profile})")
        return [f"{n} present" for n in absent]
    q4 = store.meta(profile, "q4")
    table = store.read(profile, "q4", "results")
    cfg = q4["config"]
    wanted = ACCURACY.get(cfg["dataset"], {})
    print(f"Q4 on {cfg['dataset']}, {q4['device_name']}, {cfg['seeds']} seeds, {cfg['epochs']} epochs")
    print(f"{'model':<11}{'test acc':>9}{'target':>8}  met{'images/s':>11}{'H100 anchor':>13}  ratio  met")
    for model, rows in table.groupby("model", sort=False):
        acc, ips, anchor = rows["test_acc"].mean(), rows["throughput"].median(), H100_ANCHORS[str(model)]
        target = wanted.get(str(model))
        acc_met = check(acc >= target, f"{model} accuracy") if target is not None else "-"
        speed_met = check(ips >= anchor, f"{model} throughput")
        shown = f"{target:.1%}" if target is not None else "-"
        line = f"{model:<11}{acc:>9.2%}{shown:>8}{acc_met:>5}{ips:>11,.0f}{anchor:>13,.0f}"
        print(f"{line}{ips / anchor:>7.2f}{speed_met:>5}")
    training = table["train_time_s"].sum()
    print(
        f"Q4 training, all units: {training:.0f} s (target {Q4_TRAINING_S} s: "
        f"{check(training <= Q4_TRAINING_S, 'Q4 training time')}); its record: {q4['duration_s']:.0f} s "
        + (f"over {q4['sessions']} session(s)" if q4.get("sessions") else "(sessions not recorded)")
    )
    q3 = store.meta(profile, "q3")
    on_gpu = q3["device"] != "cpu"
    print(
        f"Q3: {q3['duration_s']:.0f} s on {q3['device_name']} (target {Q3_GPU_S:.0f} s on a GPU: "
        f"{check(on_gpu and q3['duration_s'] <= Q3_GPU_S, 'Q3 on the GPU in 30 s')})"
    )
    for name in store.manifest.names:
        meta: dict[str, Any] = store.meta(profile, name)
        accepted = len(meta.get("accepted") or [])
        clean = not meta.get("git_dirty") and not accepted
        print(
            f"{name}: commit {str(meta.get('git_commit'))[:8]}"
            f"{' with uncommitted changes' if meta.get('git_dirty') else ''}"
            f"{f', carried over {accepted} code change(s) by accept' if accepted else ''} "
            f"(clean and not accepted: {check(clean, f'{name} from a clean commit, not accepted')})"
        )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", help="a results bundle (.tar.gz, a path or a URL)")
    parser.add_argument("--store", type=Path, help="a results store instead of a bundle")
    parser.add_argument("--profile", default="full")
    args = parser.parse_args()
    if (args.bundle is None) == (args.store is None):
        parser.error("give the results to read: a bundle, or --store (one of them)")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gpu-study-") as scratch:
        missed = report(results(args.bundle, args.store, Path(scratch)), args.profile)
    if missed:
        print(f"missed: {', '.join(missed)}")
        return 1
    print("every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
