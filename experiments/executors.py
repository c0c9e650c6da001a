"""Where the independent units of an experiment run (``RunContext.map``): here, on Ray, or on Slurm.

Every executor has one method, ``run(units, log)``, yielding ``(unit, result)`` as units finish (in any
order), with a ``Failed`` in place of the result of a unit that raised. The driver keeps each result as
it arrives, so what a unit returns never depends on who ran it, and a killed build resumes whatever ran
it. Stages that depend on earlier choices stay in the driver; only their independent units fan out.

- ``Local``: on this machine: in this process, in order (``jobs`` 1: the numbers every other executor
  must equal), or in ``jobs`` worker processes, as many units at once as their threads fit on ``jobs``
  cores (the default: a 2-core laptop trains two of Q3's single-thread units at a time).
- ``RayExecutor``: Ray tasks, one CPU per training thread (one GPU per unit on CUDA); joins a cluster
  at ``address``, else starts one on this machine for the build, listening on 127.0.0.1 with no
  dashboard. A unit whose worker dies (killed, out of memory, preempted) is retried once.
- ``SlurmExecutor``: a Slurm job array per stage through submitit, from a snapshot of the code; a job
  that ends without a result is submitted once more.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from experiments.kit import Unit, call
from report.core.errors import ConfigError
from report.core.manifest import PROJECT

Log = Callable[[str], None]


@dataclass(frozen=True)
class Failed:
    """A unit that raised: its error in one line."""

    error: str


def _prefixed(log: Log, key: str) -> Log:
    return lambda message: log(f"{key}: {message}")


class Local:
    """On this machine: in this process, one unit after another, or in ``jobs`` worker processes."""

    device = None  # units use the driver's resolved device

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None  # started on first use, kept for the build

    def slots(self, threads: int) -> int:
        """How many units of ``threads`` threads run at once."""
        return max(1, self.jobs // max(1, threads))

    def close(self) -> None:
        """Stop the worker processes, the running units with them (an interrupted build leaves none)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:  # a running unit is stopped, not awaited
                process.terminate()
            for process in processes:
                process.join(5)
                if process.is_alive():  # stuck where SIGTERM cannot reach it
                    process.kill()
                    process.join()
            # Only now, with no worker left: the pool's thread finds them dead, marks the pool broken and
            # returns. Shut down while workers were still dying, it could block on a lock a killed worker
            # held, and the interpreter joins that thread at exit (a build hung after its Ctrl-C; the order
            # of CPython's gh-132969).
            pool.shutdown(wait=True, cancel_futures=True)

    def run(self, units: Sequence[Unit], log: Log) -> Generator[tuple[Unit, Any], None, None]:
        at_once = min(len(units), self.slots(max((u.threads for u in units), default=1)))
        if at_once <= 1:
            yield from self._here(units, log)
            return
        queue, deaths = list(units), {u.key: 0 for u in units}
        running: dict[Future[Any], Unit] = {}
        try:
            while queue or running:
                while queue and len(running) < at_once:  # in the order given: the longest units first
                    unit = queue.pop(0)
                    try:
                        running[self._submit(unit)] = unit
                    except BrokenProcessPool:  # the pool broke since the last wait: start afresh
                        self.close()
                        queue.insert(0, unit)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    unit = running.pop(future)
                    try:
                        result, lines, _seconds = future.result()
                    except (BrokenProcessPool, CancelledError):  # a worker died: all units out are lost
                        self.close()
                        if at_once == 1:  # it ran alone: the death was its own
                            deaths[unit.key] += 1
                        at_once = 1  # after a death, one at a time, so the next one is charged rightly
                        if deaths[unit.key] < 2:  # once more, as Ray retries a unit whose worker died
                            queue.insert(0, unit)
                        else:
                            yield unit, Failed("its worker process died twice (killed, or out of memory)")
                        continue
                    except Exception as e:  # the unit's own error, raised in the worker
                        yield unit, Failed(f"{type(e).__name__}: {e}")
                        continue
                    for line in lines:
                        log(f"{unit.key}: {line}")
                    yield unit, result
        finally:
            if running:  # the caller stopped early (an error, Ctrl-C): stop the units still out
                self.close()

    def _submit(self, unit: Unit) -> Future[Any]:
        if self._pool is None:  # spawned, not forked: a forked copy of a process running torch can hang
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=get_context("spawn"), initializer=_worker, initargs=(os.getpid(),)
            )
        return self._pool.submit(remote_call, unit)

    def _here(self, units: Sequence[Unit], log: Log) -> Iterator[tuple[Unit, Any]]:
        for unit in units:
            try:
                yield unit, call(unit, _prefixed(log, unit.key))
            except Exception as e:  # the unit's own error: kept, the next unit runs
                yield unit, Failed(f"{type(e).__name__}: {e}")


def _worker(driver: int) -> None:
    """A worker process leaves Ctrl-C to the driver, which stops the pool (``Local.close``), and exits
    when the driver (pid ``driver``) is gone: killed outright, it cannot stop the pool, and the worker
    would idle forever. The pid is passed, not read here: the driver may die while the worker starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def remote_call(unit: Unit) -> tuple[Any, list[str], float]:
    """What a Ray worker runs: the unit, its log lines (shown by the driver) and its seconds."""
    lines: list[str] = []
    t0 = time.perf_counter()
    result = call(unit, lines.append)
    return result, lines, time.perf_counter() - t0


class RayExecutor:
    """Ray tasks on a local or existing cluster, joined on first use and left by ``close``."""

    def __init__(self, address: str | None = None, cpus: int | None = None, device: str = "auto") -> None:
        self.address, self.cpus = address, cpus
        self.device = device  # as asked (auto, cpu, cuda): each worker resolves it on its own machine
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError('--executor ray needs Ray: pip install -e ".[ray]"') from None
        if not ray.is_initialized():
            local: dict[str, Any] = {}  # a local cluster: its size, and the loopback address
            if not self.address:
                local = {"num_cpus": self.cpus, "_node_ip_address": "127.0.0.1"}
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # a unit's lines come back with its result, prefixed with its key
                logging_level=logging.WARNING,
                **local,
            )
            self._started = True
        return ray

    def slots(self, threads: int) -> int:
        """How many units of ``threads`` threads the cluster runs at once."""
        return max(1, int(self._ray().cluster_resources().get("CPU", 1)) // max(1, threads))

    def close(self) -> None:
        """Leave the cluster; one started for this build is shut down."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, units: Sequence[Unit], log: Log) -> Generator[tuple[Unit, Any], None, None]:
        if not units:
            return
        ray = self._ray()
        task = ray.remote(remote_call)
        cluster = ray.cluster_resources()
        gpus = cluster.get("GPU", 0) > 0 and self.device != "cpu"  # GPUs on the cluster, not the driver
        cpus = max(1, int(cluster.get("CPU", 1)))  # a request above the cluster's size would wait forever
        pending = {
            task.options(
                num_cpus=min(max(1, unit.threads), cpus),
                num_gpus=unit.gpus if gpus else 0,
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


class SlurmExecutor:
    """Slurm job arrays through submitit, one array task per unit, from a snapshot of the code.

    The code is snapshotted once per build (submitit's ``RsyncSnapshot``: the git-tracked files as they
    are at planning), so a job queued later cannot run code edited after planning. Job logs go to
    ``folder``. A job that ends without a result (cancelled, killed, preempted, timed out) is submitted
    once more.
    """

    def __init__(
        self,
        folder: Path,
        partition: str | None,
        gpus: int,
        minutes: int,
        parallelism: int,
        device: str = "auto",
    ) -> None:
        self.folder, self.partition, self.gpus = folder.resolve(), partition, gpus
        self.minutes, self.parallelism = minutes, parallelism
        self.device = device  # as asked: each job resolves it on its node
        self._snapshot: Path | None = None  # the code every job of this build runs

    def slots(self, threads: int) -> int:
        """How many array tasks run at once."""
        return self.parallelism

    def close(self) -> None:
        return

    def _executor(self, units: Sequence[Unit]) -> Any:
        try:
            import submitit
        except ImportError:
            raise ConfigError('--executor slurm needs submitit: pip install -e ".[slurm]"') from None
        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        ex.update_parameters(
            name="assignment-report",
            timeout_min=self.minutes,
            **({"cpus_per_task": max(u.threads for u in units)} if max(u.threads for u in units) else {}),
            slurm_array_parallelism=self.parallelism,
            **({"slurm_partition": self.partition} if self.partition else {}),
            **({"slurm_gpus_per_task": self.gpus} if self.gpus else {}),
        )
        return ex

    def snapshot(self) -> Path:
        """Copy the code now (the git-tracked files as they are in the working tree); every job of this
        build runs that copy (this folder), so a job queued later cannot run code edited after planning."""
        import subprocess

        import submitit.helpers

        if self._snapshot is not None:
            return self._snapshot
        self._snapshot = self.folder / f"code-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            with submitit.helpers.RsyncSnapshot(self._snapshot, root_dir=PROJECT):
                pass
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            self._snapshot = None
            raise ConfigError(f"--executor slurm: cannot snapshot the code ({e}); run from a git checkout, "
                              "on a machine with rsync") from None  # fmt: skip
        return self._snapshot

    def _submit(self, units: Sequence[Unit]) -> dict[Any, Unit]:
        import subprocess

        code = self.snapshot()
        here = os.getcwd()  # contextlib.chdir is Python 3.11+; the project supports 3.10
        try:
            os.chdir(code)  # jobs start in the snapshot and import its code
            jobs = self._executor(units).map_array(remote_call, list(units))
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"--executor slurm: sbatch refused the jobs ({message}); check --slurm-*"
            ) from None
        finally:
            os.chdir(here)
        return dict(zip(jobs, units, strict=True))

    def run(self, units: Sequence[Unit], log: Log) -> Generator[tuple[Unit, Any], None, None]:
        if not units:
            return
        pending, again = self._submit(units), set()
        try:
            while pending:
                finished = [job for job in pending if job.done()]
                time.sleep(0 if finished else 0.5)
                for job in finished:
                    unit = pending.pop(job)
                    outcome = self._outcome(job)
                    if outcome is None and unit.key not in again:  # no result: submitted once more
                        again.add(unit.key)
                        log(f"{unit.key}: job {job.job_id} ended {job.state}, no result; submitted again")
                        pending.update(self._submit([unit]))
                        continue
                    if outcome is None:
                        outcome = Failed(f"job {job.job_id} ended {job.state} without a result, twice")
                    elif not isinstance(outcome, Failed):
                        result, lines, _seconds = outcome
                        for line in lines:
                            log(f"{unit.key}: {line}")
                        outcome = result
                    yield unit, outcome
        finally:
            for job in pending:  # interrupted: do not leave queued work running for nobody
                job.cancel(check=False)

    @staticmethod
    def _outcome(job: Any) -> Any:
        """The job's (result, lines, seconds); a ``Failed`` if the unit raised; ``None`` without a result
        (cancelled, killed, preempted, timed out)."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.result()
        except FailedJobError as e:  # the unit raised: the last line of its traceback, before the log paths
            text = str(e).split("You can check full logs")[0]
            last = [line.strip() for line in text.splitlines() if line.strip().strip("-")]
            return Failed(last[-1] if last else f"job {job.job_id} failed; see its log under .slurm/")
        except UncompletedJobError:
            return None


def make(
    name: str,
    device: str = "auto",
    address: str | None = None,
    slurm: dict[str, Any] | None = None,
    jobs: int = 1,
) -> Any:
    """The executor ``--executor`` names; ``device`` is the device as asked, which remote workers resolve;
    ``jobs`` is how many cores a local build uses for units at once."""
    if name == "local":
        return Local(jobs)
    if name == "ray":
        return RayExecutor(address, device=device)
    if name == "slurm":
        return SlurmExecutor(**(slurm or {}), device=device)
    raise ConfigError(f"--executor {name}: choose local, ray or slurm")
