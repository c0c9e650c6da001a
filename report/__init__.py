"""Assignment 1 report builder: results store, context layer and rendering.

Reading results and rendering never import torch: of ``experiments/``, only ``report/steps.py`` imports
what trains (the runner, its executors and kit, for a build's stale experiments), and the rest reads its
torch-free config and dataset modules at most.
"""

__all__ = ["open_store"]


def __getattr__(name: str) -> object:
    """``from report import open_store`` (report/api.py), imported only when asked for: the PDF printer
    and the CLI import this package and must start fast."""
    if name == "open_store":
        from report.api import open_store

        return open_store
    raise AttributeError(f"module 'report' has no attribute {name!r}")
