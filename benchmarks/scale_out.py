"""Scale-out: the measured speed-up of Ray with 2 workers here, and the full study's wall time on N workers.

1. Measured: Q3 sweep points (one training thread each, independent) run in this process one after
   another (``--executor local``), then on a local Ray cluster with 2 workers (``--executor ray``), in
   one process, so the ratio compares executors and nothing else. The cluster is started before the
   clock starts (a build starts it once, for all its experiments).
2. Predicted: per-unit times read from a stored run (Q3's stacks per rung and batch size, its schedule
   lengths and its final models, Q4's models), scheduled largest-first on N identical workers (the
   classic LPT rule), for N = 1, 2, 4, 8. Stages that depend on earlier choices run one after another,
   so each of Q3's stages is scheduled on its own.

    python benchmarks/scale_out.py --data-dir ../shared/data [--store results --profile full]
        [--points 8] [--epochs 3]

Exits with status 1 when the measured speed-up is below ``--target`` (1.7 by default, issue #13).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import sys
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # as build.py: idle threads yield on a shared CPU
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import executors, kit, q3  # noqa: E402
from experiments.configs.q3 import PROFILES  # noqa: E402
from report.core.store import Store  # noqa: E402


def lpt(times: list[float], workers: int) -> float:
    """Wall time of ``times`` scheduled largest-first on ``workers`` identical workers."""
    loads = [0.0] * workers
    for t in sorted(times, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + t)
    return max(loads)


def stages(store: Store, profile: str) -> dict[str, list[float]]:
    """Seconds per unit of each stage of a stored run (only what the store holds)."""
    out: dict[str, list[float]] = {}
    if store.has(profile, "q3"):  # a Q3 unit is a stack of one batch size: the sum of its points' shares
        rows = store.read(profile, "q3", "sweep").assign(seconds=lambda df: df["epoch_s"] * df["epoch"])
        for (stage, rung), df in rows.groupby(
            [rows["study"].eq("lr").map({True: "lr", False: "batch"}), "rung"]
        ):
            out[f"q3 {stage} sweep, rung {rung + 1}"] = df.groupby("batch_size")["seconds"].sum().tolist()
        schedule = store.read(profile, "q3", "schedule")  # a unit per length: its seeds' shares summed
        out["q3 schedules"] = schedule.groupby("schedule")["train_s"].sum().tolist()
        out["q3 final models"] = [store.read(profile, "q3", "final")["train_s"].sum()]
    if store.has(profile, "q4"):
        out["q4 models"] = store.read(profile, "q4", "results")["train_time_s"].tolist()
    return out


def measure(data_dir: Path, points: int, epochs: int) -> tuple[float, float]:
    """Seconds for ``points`` Q3 sweep points, one thread each: here in order, then on 2 Ray workers."""
    cfg = dataclasses.replace(PROFILES["quick"], cpu_threads=1, sweep_epochs=epochs)
    lrs = [10 ** (-3 + 2 * i / max(1, points - 1)) for i in range(points)]
    units = [
        kit.Unit(
            f"p{i}", q3.sweep_unit, (cfg, data_dir, 0, "cpu", [("lr", "adam", lr, 128, False)], epochs), 1
        )
        for i, lr in enumerate(lrs)
    ]
    q3.load_splits(cfg, data_dir, 0, "cpu")  # the data in this process, as the driver has it
    t0 = time.perf_counter()
    local = [r for _, r in executors.Local().run(units, print)]
    t_local = time.perf_counter() - t0
    ray = executors.RayExecutor(cpus=2)
    list(ray.run(units[:2], print))  # start the cluster and its 2 workers (each loads the data once)
    t0 = time.perf_counter()
    done = dict(ray.run(units, print))
    remote = {u: done[u] for u in units}
    t_ray = time.perf_counter() - t0
    ray.close()
    frames = [
        pd.DataFrame([row for r in rs for row in r]).drop(columns="epoch_s")
        for rs in (local, remote.values())
    ]
    assert frames[0].equals(frames[1]), "the executors must return the same results (timings aside)"
    return t_local, t_ray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--store", type=Path, default=Path("results"))
    parser.add_argument("--profile", default="full")
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per sweep point")
    parser.add_argument("--target", type=float, default=1.7)
    args = parser.parse_args()

    t_local, t_ray = measure(args.data_dir, args.points, args.epochs)
    speedup = t_local / t_ray
    print(f"measured on {os.cpu_count()} cores: {args.points} single-thread Q3 sweep points in "
          f"{t_local:.1f} s here, {t_ray:.1f} s on Ray with 2 workers: "
          f"{speedup:.2f}x (target {args.target}x)")  # fmt: skip

    plan = stages(Store(args.store), args.profile)
    if plan:
        print(f"\npredicted wall time of the stored {args.profile} run, largest-first on N workers:")
        print(f"{'stage':<22}{'units':>6}" + "".join(f"{f'N={n}':>10}" for n in (1, 2, 4, 8)))
        totals = dict.fromkeys((1, 2, 4, 8), 0.0)
        for name, times in plan.items():
            row = {n: lpt(times, n) for n in totals}
            totals = {n: totals[n] + row[n] for n in totals}
            print(f"{name:<22}{len(times):>6}" + "".join(f"{row[n]:>9.0f}s" for n in row))
        print(f"{'total':<28}" + "".join(f"{totals[n]:>9.0f}s" for n in totals))
    else:
        print(f"\n(no stored {args.profile} results in {args.store} to predict from)")
    return 0 if speedup >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
