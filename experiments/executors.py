"""Where the independent units of an experiment run (``RunContext.map``): here, on Ray, or on Slurm.

Every executor has one method, ``run(units, log)``, yielding ``(unit, result)`` as units finish (in any
order), with a ``Failed`` in place of the result of a unit that raised. The driver keeps each result as
it arrives, so what a unit returns never depends on who ran it, and a killed build resumes whatever ran
it. Stages that depend on earlier choices stay in the driver; only their independent units fan out.

- ``Local``: in this process, in order: the default, and the numbers every other executor must equal.
- ``RayExecutor``: Ray tasks, one CPU per training thread (one GPU per unit on CUDA); joins a cluster
  at ``address``, else starts one on this machine for the build, listening on 127.0.0.1 with no
  dashboard. A unit whose worker dies (killed, out of memory, preempted) is retried once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.kit import Unit, call
from report.core.errors import ConfigError

Log = Callable[[str], None]


@dataclass(frozen=True)
class Failed:
    """A unit that raised: its error in one line."""

    error: str


def _prefixed(log: Log, key: str) -> Log:
    return lambda message: log(f"{key}: {message}")


class Local:
    """In this process, one unit after another."""

    def close(self) -> None:
        return

    def run(self, units: Sequence[Unit], log: Log) -> Iterator[tuple[Unit, Any]]:
        for unit in units:
            try:
                yield unit, call(unit, _prefixed(log, unit.key))
            except Exception as e:  # the unit's own error: kept, the next unit runs
                yield unit, Failed(f"{type(e).__name__}: {e}")


def remote_call(unit: Unit) -> tuple[Any, list[str], float]:
    """What a Ray worker runs: the unit, its log lines (shown by the driver) and its seconds."""
    lines: list[str] = []
    t0 = time.perf_counter()
    result = call(unit, lines.append)
    return result, lines, time.perf_counter() - t0


class RayExecutor:
    """Ray tasks on a local or existing cluster, joined on first use and left by ``close``."""

    def __init__(self, address: str | None = None, cpus: int | None = None, cuda: bool = False) -> None:
        self.address, self.cpus, self.cuda = address, cpus, cuda
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError('--executor ray needs Ray: pip install -e ".[ray]"') from None
        if not ray.is_initialized():
            local = {} if self.address else {"num_cpus": self.cpus, "_node_ip_address": "127.0.0.1"}
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # a unit's lines come back with its result, prefixed with its key
                logging_level=logging.WARNING,
                **local,
            )
            self._started = True
        return ray

    def close(self) -> None:
        """Leave the cluster; one started for this build is shut down."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, units: Sequence[Unit], log: Log) -> Iterator[tuple[Unit, Any]]:
        if not units:
            return
        ray = self._ray()
        task = ray.remote(remote_call)
        pending = {
            task.options(
                num_cpus=max(1, unit.threads),
                num_gpus=unit.gpus if self.cuda else 0,
                max_retries=1,  # a dead worker (killed, out of memory, preempted): once more elsewhere
                name=unit.key,
            ).remote(unit): unit
            for unit in units
        }
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ref)
                try:
                    result, lines, _seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the unit raised: its own error, one line
                    yield unit, Failed(f"{type(e.cause).__name__}: {e.cause}")
                    continue
                except ray.exceptions.RayError as e:  # the worker died twice, or the cluster went away
                    yield unit, Failed(f"{type(e).__name__}: {str(e).splitlines()[0]}")
                    continue
                for line in lines:
                    log(f"{unit.key}: {line}")
                yield unit, result
        finally:
            for ref in pending:  # interrupted: do not leave work running for nobody
                ray.cancel(ref, force=True)


def make(name: str, address: str | None = None, cuda: bool = False) -> Any:
    """The executor ``--executor`` names."""
    if name == "local":
        return Local()
    if name == "ray":
        return RayExecutor(address, cuda=cuda)
    raise ConfigError(f"--executor {name}: choose local or ray")
