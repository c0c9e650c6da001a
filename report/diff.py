"""What changed between two runs of an experiment: config keys, fingerprint parts, headline and tables.

``build.py diff`` prints these as a table or JSON, and ``status`` names what differs from the previous run.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from report.core import fingerprint as fp
from report.core.config import apply_overrides, profile_config, spell
from report.core.errors import ReportError
from report.core.freshness import Request
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


def config_changes(meta: dict[str, Any], request: Request, experiment: str) -> list[str]:
    """The settings in which a stored run differs from what ``request`` would run ("segments 2000 → 300",
    "seed 0 → 1"), for ``status`` and the report's stale flags to name; empty when the run is a stand-in
    and the request the study (their settings differ by design, not by a change), or when only the
    profile's label differs. A stored study where the request would run a stand-in is set against the
    study the request asks for: the settings the reader of that study needs are the study's."""
    stand_in = bool(meta.get("stand_in"))
    if stand_in and experiment not in request.stand_ins:
        return []
    wanted = apply_overrides(
        experiment,
        profile_config(experiment, request.own_profile(experiment) if stand_in else request.profile),
        request.overrides.get(experiment, {}),
    )
    made = meta.get("config") or {}
    changes = [
        f"{key} {spell(made[key])} → {spell(value)}"
        for key, value in dataclasses.asdict(wanted).items()
        if key in made and spell(made[key]) != spell(value)
    ]
    if meta.get("seed") != request.seed:
        changes.append(f"seed {meta.get('seed')} → {request.seed}")
    return changes


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


def changes_between(
    store: Store, profile: str, names: list[str], a: str | None, b: str | None
) -> tuple[list[dict], list[str]]:
    """``build.py diff A B``: each experiment's changes between side ``a`` (default: the previous run) and
    side ``b`` (default: the current run); a side is a run id, another store folder or a bundle. Also one
    line per experiment the other side has and a named store or bundle lacks (a bundle leaves out what
    another version of the manifest describes), so none drops out of the comparison unsaid."""
    import tempfile

    changes, missing = [], []
    with tempfile.TemporaryDirectory(prefix="diff-") as tmp:  # bundles unpack here, once each
        sources = {
            side: _source(store, profile, names, spec, Path(tmp) / side)
            for side, spec in (("a", a), ("b", b))
        }
        for name in names:
            pair = (_side(store, profile, a, sources["a"][0], name, previous=True),
                    _side(store, profile, b, sources["b"][0], name, previous=False))  # fmt: skip
            if None not in pair:
                changes.append(compare(*pair))
            for (source, left_out), spec, result, other in zip(
                sources.values(), (a, b), pair, pair[::-1], strict=True
            ):
                if source is not None and result is None and other is not None:
                    missing.append(
                        f"{name}: not compared: {spec} left it out, made for another version of the "
                        f"manifest: {left_out[name]}"
                        if name in left_out
                        else f"{name}: not compared: {spec} has no {profile} result of it"
                    )
    return changes, missing


def _source(
    store: Store, profile: str, names: list[str], spec: str | None, folder: Path
) -> tuple[Store | None, dict[str, str]]:
    """Where one side reads from: another store, a bundle unpacked into ``folder``, or ``None`` for this
    store (no spec, or a run id); with what a bundle left out (experiment: why)."""
    from report.core import bundle

    if spec is None or any(r.folder.name == spec for n in names for r in store.history(profile, n)):
        return None, {}
    if Path(spec).is_dir():
        return Store(spec), {}
    if "://" not in spec and not Path(spec).exists():
        raise ReportError(
            f"{spec} is no run id in {store.root / profile} (of {', '.join(names)}), no store folder and no "
            "bundle; pass a run id from that store, another store's folder or a results bundle"
        )
    opened = bundle.open_bundle(spec, store)
    return bundle.as_store(opened, folder), opened.left_out


def _side(
    store: Store, profile: str, spec: str | None, source: Store | None, name: str, previous: bool
) -> Any:
    """One side for one experiment: the previous or current run, or the run ``spec`` names."""
    if source is not None:
        return source.result(profile, name)
    if spec is None:
        return store.previous(profile, name) if previous else store.result(profile, name)
    return next((r for r in store.history(profile, name) if r.folder.name == spec), None)
