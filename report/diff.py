"""What changed between two runs of an experiment: config keys, fingerprint parts, headline and tables.

``build.py diff`` prints these as a table or JSON, and ``status`` names what differs from the previous run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from report.core import fingerprint as fp
from report.core.store import Result, Store


def compare(a: Result, b: Result) -> dict[str, Any]:
    """Run ``b`` against run ``a`` of the same experiment, as plain data (JSON-ready)."""
    ma, mb = a.meta, b.meta
    config = {
        key: [ma["config"].get(key), mb["config"].get(key)]
        for key in sorted(set(ma["config"]) | set(mb["config"]))
        if ma["config"].get(key) != mb["config"].get(key)
    }
    seed = [ma.get("seed"), mb.get("seed")]
    if seed[0] != seed[1]:
        config["seed"] = seed
    head_a, head_b = ma["headline"], mb["headline"]
    return {
        "experiment": b.experiment,
        "a": _about(a),
        "b": _about(b),
        "config": config,
        "fingerprint": [p for p in fp.PARTS if ma["fingerprint"].get(p) != mb["fingerprint"].get(p)],
        "headline": {
            "label": head_b["label"],
            "a": head_a["value"],
            "b": head_b["value"],
            "delta": head_b["value"] - head_a["value"],
        },
        "tables": [row for name in sorted(set(a.tables()) & set(b.tables())) for row in _table(a, b, name)],
    }


def _about(result: Result) -> dict[str, Any]:
    meta = result.meta
    return {"run_id": meta["run_id"], "profile": result.profile, "finished": meta["finished"],
            "device": meta["device_name"]}  # fmt: skip


def _table(a: Result, b: Result, name: str) -> list[dict[str, Any]]:
    """Numeric columns of table ``name`` whose values differ: means side by side, and the largest
    difference row by row when both runs have the same rows."""
    ta, tb = a.read(name), b.read(name)
    rows = []
    for column in ta.columns.intersection(tb.columns):
        x, y = ta[column], tb[column]
        if x.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
            continue
        aligned = len(x) == len(y)
        largest = float(np.abs(x.to_numpy() - y.to_numpy()).max()) if aligned and len(x) else math.nan
        if aligned and not largest > 0:  # equal (NaN where both are NaN)
            continue
        mean_a, mean_b = float(x.mean()), float(y.mean())
        rows.append({"table": name, "column": column, "rows": [len(x), len(y)], "mean_a": mean_a,
                     "mean_b": mean_b, "delta": mean_b - mean_a, "max_abs_diff": largest})  # fmt: skip
    return rows


def since_previous(store: Store, profile: str, experiment: str) -> str:
    """One line for ``status``: how the current run differs from the one before it ("" when it does not)."""
    try:
        current, previous = store.result(profile, experiment), store.previous(profile, experiment)
        if current is None or previous is None:
            return ""
        change = compare(previous, current)
    except Exception:  # an unreadable run is status's verdict to report, not this column's
        return ""
    parts = []
    if change["config"]:
        parts.append("config " + ", ".join(change["config"]))
    if change["headline"]["delta"]:
        parts.append(f"headline {change['headline']['delta']:+.3g}")
    return "; ".join(parts)


def change_table(change: dict[str, Any]) -> Any:
    """A ``compare`` result as a rich table: headline, config keys, fingerprint parts, changed columns."""
    from rich.table import Table

    head = change["headline"]
    title = f"{change['experiment']}: {change['a']['run_id']} → {change['b']['run_id']}"
    table = Table(title=title, title_justify="left")
    for col in ("what", "A", "B", "Δ"):
        table.add_column(col)
    table.add_row(head["label"], f"{head['a']:.6g}", f"{head['b']:.6g}", f"{head['delta']:+.3g}")
    for key, (va, vb) in change["config"].items():
        table.add_row(f"config {key}", str(va), str(vb), "")
    if change["fingerprint"]:
        table.add_row("fingerprint", "", "", ", ".join(change["fingerprint"]) + " changed")
    for row in change["tables"]:
        what = f"{row['table']}.{row['column']} (mean)"
        table.add_row(what, f"{row['mean_a']:.6g}", f"{row['mean_b']:.6g}", f"{row['delta']:+.3g}")
    if not (change["config"] or change["fingerprint"] or change["tables"] or head["delta"]):
        same = change["a"]["run_id"] == change["b"]["run_id"]
        table.caption = "the same run" if same else "no difference: same config, fingerprint and tables"
    return table
