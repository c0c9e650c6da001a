"""Question 4's synthetic results for the tests: an SVHN stand-in, stored tables shaped as a run writes them,
and the report's view of them (claims' summary, a macro's sentence, the rendered section)."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io

from experiments import datasets, models
from experiments.configs.q4 import PROFILES, Config
from report.core import fingerprint as fp
from report.core.store import Store
from report.provenance import for_print
from report.questions import Results
from report.questions import q4 as ctx4
from report.render import render_html
from tests.helpers import drawing_cache


def write_svhn(root: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """SVHN's real .mat layout: X is 32x32x3xN uint8, y is Nx1 with 10 standing for the digit 0."""
    rng = np.random.default_rng(0)
    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        scipy.io.savemat(root / "SVHN" / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = x
    return out


TITLES = {n: models.spec(n).title for n in models.NAMES}


FLOPS = {
    "lenet5": 1.3e6,
    "alexnet": 4.0e8,
    "vgg": 6.3e8,
    "resnet18": 1.1e9,
    "resnet50": 2.6e9,
    "resnet101": 5.0e9,
}


def synthetic_tables(
    accs: dict[str, list[float]], n_test: int = 1000, dataset: str = "svhn", train_used: int = 68_257
) -> dict[str, pd.DataFrame]:
    """Stored tables for given per-seed test accuracies; confusion matrices and per-image answers agree
    with the accuracies (within each class, the first images are the ones classified correctly)."""
    results, curves, confusion, answers = [], [], [], []
    for model, seeds in accs.items():
        for seed, acc in enumerate(seeds):
            hits = round(acc * n_test)
            results.append(
                {
                    "model": model,
                    "seed": seed,
                    "test_acc": hits / n_test,
                    "val_acc": acc,
                    "train_time_s": 10.0 * FLOPS[model] / 1e9 + 1,
                    "throughput": 1e12 / FLOPS[model],
                    "peak_mem_bytes": float("nan"),
                }
            )
            curves += [
                {"model": model, "seed": seed, "epoch": e, "train_loss": 2.0 / e, "val_acc": acc * e / 3}
                for e in (1, 2, 3)
            ]
            per_class = np.full(10, n_test // 10)
            right = np.full(10, hits // 10) + (np.arange(10) < hits % 10)
            answers += [
                {"model": model, "seed": seed, "image": t * per_class[t] + j, "correct": bool(j < right[t])}
                for t in range(10)
                for j in range(per_class[t])
            ]
            for t in range(10):
                for p in range(10):
                    count = right[t] if p == t else (per_class[t] - right[t] if p == (t + 1) % 10 else 0)
                    confusion.append(
                        {
                            "model": model,
                            "seed": seed,
                            "true": t,
                            "pred": p,
                            "count": int(count),
                            "true_name": str(t),
                            "pred_name": str(p),
                        }
                    )
    names = list(accs)
    return {
        "models": pd.DataFrame(
            {
                "model": names,
                "title": [TITLES[m] for m in names],
                "adaptation": ["adapted"] * len(names),
                "params": [int(FLOPS[m] / 100) for m in names],
                "flops": [int(FLOPS[m]) for m in names],
            }
        ),
        "results": pd.DataFrame(results),
        "curves": pd.DataFrame(curves),
        "confusion": pd.DataFrame(confusion),
        "answers": pd.DataFrame(answers),
        "setup": pd.DataFrame(
            [
                {
                    "dataset": dataset,
                    "dataset_title": datasets.layout(dataset).title,
                    "crop_pad": 4,
                    "hflip": False,
                    "mixed_precision": "none",
                    "channels_last": False,
                    "mean": [0.4] * 3,
                    "std": [0.2] * 3,
                }
            ]
        ),
        "splits": pd.DataFrame(
            {
                "split": ["train", "val", "test"],
                "used": [train_used, 5000, n_test],
                "available": [68_257, 5000, n_test],
            }
        ),
    }


def stored(
    tmp_path: Path,
    tables: dict[str, pd.DataFrame],
    seeds: int,
    cfg: Config | None = None,
    device: str = "cpu",
    record: dict[str, Any] | None = None,
) -> Results:
    """The tables written to a real store, as the runner would (``record`` changes its run record), and
    opened for the report."""
    store = Store(tmp_path / "results")
    config = dataclasses.asdict(dataclasses.replace(cfg or PROFILES["full"], seeds=seeds))
    meta = {
        "run_id": "t",
        "experiment": "q4",
        "profile": "full",
        "finished": "2026-01-01T00:00:00+00:00",
        "device": device,
        "device_name": "test device",
        "duration_s": 1.0,
        "git_commit": "none",
        "git_dirty": False,
        "config": config,
        "versions": fp.versions(),  # this machine's, as the runner records them
        "fingerprint": {},
        **(record or {}),
    }
    store.write("full", "q4", tables, meta)
    return Results(store, "full")


def say(macro: Any, claim: dict[str, Any]) -> str:
    """A macro's sentence as the reader sees it: Markdown reflows line breaks inside a paragraph."""
    return " ".join(str(macro(claim)).split())


def summary(accs: dict[str, list[float]]) -> pd.DataFrame:
    """The per-model summary the claims are computed from, for given per-seed test accuracies."""
    tables = synthetic_tables(accs)
    return ctx4.summarise(tables["results"], tables["models"])


def rendered(results: Results) -> tuple[str, str]:
    """Question 4 through the report's real renderer: the HTML page and its visible text."""
    page = render_html(results.store, results.profile, cache_dir=drawing_cache(), names=("q4",))
    shown = for_print(page)  # each number's source span off (report/provenance.py), as a reader sees it
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(svg|style)\b.*?</\1>", "", shown, flags=re.S))
    return page, " ".join(html.unescape(visible).split())
