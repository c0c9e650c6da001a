"""The study's manifest (``experiments/manifest.toml``): which experiments exist, in report order, what
each reads, and the typed columns of every table it stores.

It is the one list of experiments: the CLI, the experiment registry, the context layer and the tests read
it, and ``Store.write`` refuses a table that does not match it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from report.core.errors import ConfigError, StoreError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    import pandas as pd

PROJECT = Path(__file__).resolve().parents[2]
PATH = PROJECT / "experiments" / "manifest.toml"
KINDS = ("int", "float", "str", "bool", "list")


@dataclass(frozen=True)
class Experiment:
    """One manifest entry: ``experiments/<name>.py`` → store → ``report/questions/<name>.py`` → template."""

    name: str
    title: str
    datasets: tuple[str, ...]  # names, or "{field}" to read the name from that config field
    tables: Mapping[str, Mapping[str, str]]  # table -> column -> kind
    curves: Mapping[str, Any] | None = None  # {table, where, keys}: per-epoch curves for trackers
    needs_accelerator: bool = False  # its full study needs a GPU: see report.core.reference

    def dataset_names(self, config: Mapping[str, Any]) -> list[str]:
        """The datasets this experiment reads under a resolved ``config``."""
        return [config[d[1:-1]] if d.startswith("{") else d for d in self.datasets]


@dataclass(frozen=True)
class Manifest:
    experiments: Mapping[str, Experiment]
    source: str = "experiments/manifest.toml"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.experiments)

    def get(self, name: str) -> Experiment:
        if name not in self.experiments:
            raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(self.names)}")
        return self.experiments[name]

    def check(self, experiment: str, tables: Mapping[str, pd.DataFrame]) -> None:
        """Refuse tables that differ from the manifest: names, columns and column kinds."""
        spec = self.get(experiment).tables
        where = f"{experiment} (see {self.source})"
        if set(spec) != set(tables):
            given, listed = ", ".join(sorted(tables)) or "none", ", ".join(spec)
            raise StoreError(
                f"{where}: the experiment returned tables {given}, the manifest lists {listed}; fix one"
            )
        for name, columns in spec.items():
            df = tables[name]
            if list(df.columns) != list(columns):
                raise StoreError(
                    f"{where}: table {name!r} has columns {', '.join(map(str, df.columns))}; the manifest "
                    f"lists {', '.join(columns)}; make them agree"
                )
            for column, kind in columns.items():
                if len(df) and not _is_kind(df[column], kind):
                    raise StoreError(
                        f"{where}: column {name}.{column} holds {df[column].dtype} values, the manifest says "
                        f"{kind}; make them agree"
                    )


def _is_kind(series: pd.Series, kind: str) -> bool:
    from pandas.api import types

    if kind == "bool":
        return types.is_bool_dtype(series)
    if kind == "int":
        return types.is_integer_dtype(series) and not types.is_bool_dtype(series)
    if kind == "float":
        return types.is_float_dtype(series)
    first = series.iloc[0]
    if kind == "str":
        return types.is_string_dtype(series) and isinstance(first, str)
    return not isinstance(first, (str, bytes)) and hasattr(first, "__len__")  # list


def parse(data: Mapping[str, Any], source: str) -> Manifest:
    """A manifest from its TOML data; every mistake is one line naming the entry."""
    entries = {}
    for name, entry in data.items():
        where = f"{source}: [{name}]"
        if not isinstance(entry, dict) or not {"title", "tables"} <= set(entry):
            raise ConfigError(f"{where} needs a title and a [{name}.tables] section")
        tables = entry["tables"]
        for table, columns in tables.items():
            bad = {c: k for c, k in columns.items() if k not in KINDS}
            if bad:
                column, kind = next(iter(bad.items()))
                raise ConfigError(
                    f"{where} table {table}: column {column} has kind {kind!r}; use one of {KINDS}"
                )
        curves = entry.get("curves")
        if curves is not None:
            columns = tables.get(curves.get("table"), {})
            wanted = [*curves.get("keys", []), *curves.get("where", {}), "epoch"]
            if not columns or any(c not in columns for c in wanted):
                raise ConfigError(
                    f"{where}: curves names a table with columns {', '.join(wanted)}; it has none such"
                )
        accelerator = entry.get("needs_accelerator", False)
        if not isinstance(accelerator, bool):
            raise ConfigError(f"{where}: needs_accelerator = {accelerator!r}; use true or false")
        datasets = tuple(entry.get("datasets", ()))
        entries[name] = Experiment(name, entry["title"], datasets, tables, curves, accelerator)
    return Manifest(entries, source)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> Manifest:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.relative_to(PROJECT)}: {e}") from None
    return parse(data, str(path.relative_to(PROJECT)))


def load(path: Path = PATH) -> Manifest:
    """The project's manifest (re-read when the file changes)."""
    return _load(path, path.stat().st_mtime_ns)
