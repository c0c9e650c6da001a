"""Experiments by name: ``experiments.get("q3")`` returns the module that runs question 3.

Every experiment module defines the same small interface, so adding one is adding a file and a name:

- ``TITLE``: one line for ``status`` and logs;
- ``Config``: a frozen dataclass; ``PROFILES``: ``{"smoke" | "quick" | "full": Config}``;
- ``datasets(cfg) -> list[str]``: the dataset names it reads (checked before any training);
- ``run(cfg, ctx) -> Output``: tidy DataFrames for the store plus a headline metric.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from report.errors import ConfigError

NAMES: tuple[str, ...] = ("q1", "q2", "q3", "q4")


def get(name: str) -> ModuleType:
    if name not in NAMES:
        raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(NAMES)}")
    return importlib.import_module(f"experiments.{name}")
