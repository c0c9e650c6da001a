"""Published accuracies beside the report's own (``anchors.toml``), and how far ours falls below them; and
the figures of the original write-up this report replaces (``original.toml``).

A gap of more than ``FAR`` is called far below: the report then says so next to the number, with the
reduced budget as the likely reason when the run had one; against a published model that is not the
architecture we train (``same = false``), a gap says nothing about our training, and the report says so.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from report.core.errors import ReportError
from report.provenance import OUTSIDE, sourced, sourced_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PATH = Path(__file__).with_name("anchors.toml")
ORIGINAL = Path(__file__).with_name("original.toml")
FAR = 0.05  # five percentage points below the published figure is "far below"


FIELDS = ("question", "dataset", "models", "accuracy", "same", "what", "source", "url")  # as the file says


@functools.lru_cache(maxsize=1)
def _all() -> tuple[dict[str, Any], ...]:
    anchors = tuple(tomllib.loads(PATH.read_text(encoding="utf-8"))["anchor"])
    for number, a in enumerate(anchors, 1):
        missing = [f for f in FIELDS if f not in a]
        if missing:
            raise ReportError(
                f"report/questions/anchors.toml: anchor {number} lacks {', '.join(missing)}; give every "
                "field the file's header lists"
            )
    return anchors


def beside(question: str, dataset: str, ours: Mapping[str, tuple[str, float]]) -> list[dict[str, Any]]:
    """Each published figure for ``question`` on ``dataset`` against our models it covers.

    ``ours`` maps a model name to (its title, our accuracy); the result lists, per anchor and model we
    ran, both accuracies, the gap in points and whether ours is far below.
    """
    out = []
    for a in _all():
        if a["question"] != question or a["dataset"] != dataset:
            continue
        for model in a["models"]:
            if model in ours:
                title, acc = ours[model]
                gap = a["accuracy"] - acc
                published = f"published in {a['source']}, {a['url']} (report/questions/anchors.toml)"
                out.append(
                    {
                        **a,
                        "accuracy": sourced(a["accuracy"], published, OUTSIDE),
                        "what": sourced_text(a["what"], published, OUTSIDE),
                        "model": model,
                        "title": title,
                        "ours": acc,
                        "gap": gap,
                        "far": gap > FAR,
                    }
                )
    return out


def original() -> dict[str, Any]:
    """What the original write-up of this assignment reported for LeNet-5 and the three ResNets (Q4), and
    whether that ranked LeNet-5 above all three."""
    o = tomllib.loads(ORIGINAL.read_text(encoding="utf-8"))["q4"]
    where = "report/questions/original.toml: the original write-up's"
    lo, hi = (sourced(float(x), f"{where} ResNet range") for x in o["resnets"])
    return {
        "dataset": o["dataset"],
        "lenet5": sourced(float(o["lenet5"]), f"{where} LeNet-5 accuracy"),
        "resnets": (lo, hi),
        "above_all": float(o["lenet5"]) > float(hi),
    }
