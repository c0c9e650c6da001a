"""Each experiment's ``Config`` and ``PROFILES``, in a module of their own that never imports torch.

``experiments/configs/qN.py`` is the one home of what question N may be asked to do: the frozen ``Config``
dataclass (each field's type and declared ``Range``) and ``PROFILES = {"smoke" | "quick" | "full": Config}``.
``experiments/qN.py`` imports it to run; the settings layer (``report.toml``, ``--set``, freshness) and the
report's context imports it to check a value or to read a profile's, without torch and without parsing
any source.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from report.core.errors import ConfigError


def get(name: str) -> ModuleType:
    """The config module of experiment ``name``; a missing one is a one-line error naming the file."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise ConfigError(
            f"experiments/configs/{name}.py: no such file; an experiment's Config and PROFILES live there"
        ) from None
