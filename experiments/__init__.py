"""Experiments by name: ``experiments.get("q3")`` returns the module that runs question 3.

The names, their order and what each stores come from ``experiments/manifest.toml``. Every experiment
module defines the same small interface, so adding one is adding two files and a manifest entry:

- in ``experiments/configs/<name>.py``, without torch: ``Config``, a frozen dataclass of plain data, and
  ``PROFILES``: ``{"smoke" | "quick" | "full": Config}`` (an experiment whose full study needs a GPU says
  so in the manifest: see report/core/reference.py);
- in ``experiments/<name>.py``: ``run(cfg, ctx) -> Output``, the tidy tables the manifest lists, plus a
  headline metric.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from report.core import manifest


def get(name: str) -> ModuleType:
    manifest.load().get(name)  # an unknown name is a one-line error
    return importlib.import_module(f"experiments.{name}")
