"""The results store: immutable run folders, and one atomic pointer per (profile, experiment).

Layout (every table readable with ``pd.read_parquet``)::

    results/<profile>/<experiment>/current                   the run id of the current result
    results/<profile>/<experiment>/<run id>/run.parquet       one row: run id, config, versions, fingerprint
    results/<profile>/<experiment>/<run id>/<table>.parquet   the experiment's tidy tables

A write builds a new run folder under a temporary name, renames it into place, then replaces the pointer
in one rename. A run folder never changes after that, so a reader that resolves the pointer once
(``Store.result``) reads one complete run, whatever writers and crashes do meanwhile. The previous
``keep`` runs stay as history; older ones are pruned.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from report.core.atomic import atomic_write, os_error
from report.core.errors import MissingResultError, ReportError, StoreError
from report.core.fingerprint import file_digest
from report.core.manifest import Manifest
from report.core.manifest import load as load_manifest
from report.core.run_record import RUN_ID, decode_record, encode_record, new_run_id

if TYPE_CHECKING:  # pandas is imported where a table is read or written: --help and a render's
    import pandas as pd  # PDF printer start ~0.4 s sooner

RUN_TABLE = "run"
POINTER = "current"
PREVIOUS = "previous"  # the run that was current before the current one (written just before the swap)
KEEP = 3  # previous runs kept per experiment besides the current one
FIX = "pass a writable --store on a disk with space"


@dataclass(frozen=True)
class Result:
    """One stored run of one experiment: an immutable folder, read without further pointer lookups."""

    folder: Path
    profile: str
    experiment: str
    advice: str = ""  # the command line's options that select this store and config (Store.advice)

    def path(self, table: str = RUN_TABLE) -> Path:
        return self.folder / f"{table}.parquet"

    @functools.cached_property
    def meta(self) -> dict[str, Any]:
        """The run record (read once); dicts and lists were stored as JSON text (see ``encode_record``)."""
        row = decode_record(self.read(RUN_TABLE))
        if row.get("experiment") != self.experiment:
            raise StoreError(f"{self.path()} is not a run record of {self.experiment}; rerun: {self.rerun}")
        return row

    def tables(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.parquet") if p.stem != RUN_TABLE)

    def damaged(self) -> list[str]:
        """Tables whose file is missing or differs from the checksum in the run record."""
        files = self.meta.get("files") or {}
        return [n for n, d in files.items() if not self.path(n).is_file() or file_digest(self.path(n)) != d]

    def read(self, table: str) -> pd.DataFrame:
        """One table; a missing or corrupt file raises an error that says how to fix it."""
        path = self.path(table)
        if not path.exists():
            where = f"{self.experiment} (profile {self.profile})"
            raise MissingResultError(f"{where} has no table {table!r}; rerun it: {self.rerun}")
        import pandas as pd

        try:
            return pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise StoreError(
                f"{path} is corrupt or truncated ({type(e).__name__}); rerun: {self.rerun}"
            ) from None

    @property
    def rerun(self) -> str:
        return _rerun(self.profile, self.experiment, self.advice)


class Store:
    """Parquet results store rooted at ``root``; safe against crashes, concurrent builds and readers.

    Every table written is checked against ``manifest`` (the project's by default), and the run record
    keeps the sha256 of each table file so a damaged result is found before it is shown.
    """

    def __init__(
        self, root: Path | str, manifest: Manifest | None = None, keep: int = KEEP, advice: str = ""
    ) -> None:
        self.root = Path(root)
        self._manifest = manifest
        self.keep = keep
        # what a command that reads this store was given on its command line (--store, --set, --seed, …):
        # every "rerun: build.py run …" it prints carries them, so the advice works as printed
        self.advice = advice

    def command(self, experiment: str, profile: str, force: bool = False) -> str:
        """``build.py run EXPERIMENT --profile P [--force] …``: a command that (re)makes the result."""
        return _rerun(profile, experiment, self.advice, force)

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest()
        return self._manifest

    # ---- locking and recovery -------------------------------------------------------------
    @contextmanager
    def lock(self, on_wait: Any = None) -> Iterator[None]:
        """Hold the store's write lock; a second writer waits (calling ``on_wait`` once) until it is free."""
        self._ensure_root()
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            self.recover()
            yield
        finally:
            lock.release()

    def recover(self) -> None:
        """Drop what a crashed write left half done: temporary run folders and pointers."""
        for leftover in self.root.glob("*/*/.tmp-*"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        for pointer in (POINTER, PREVIOUS):
            for leftover in self.root.glob(f"*/*/.{pointer}.*.tmp"):
                leftover.unlink()

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the results store {self.root}: {e.strerror}; {FIX}") from None
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the results store {self.root} is not writable; {FIX}")

    # ---- writing --------------------------------------------------------------------------
    def write(
        self, profile: str, experiment: str, tables: dict[str, pd.DataFrame], meta: dict[str, Any]
    ) -> Path:
        """Store a new current result of ``experiment`` under ``profile``; returns its run folder."""
        self.manifest.check(experiment, tables)
        if RUN_TABLE in tables:
            raise ValueError(f"table name {RUN_TABLE!r} is reserved for run metadata")
        run_id = str(meta.get("run_id"))
        if not RUN_ID.fullmatch(run_id) or (self.root / profile / experiment / run_id).exists():
            run_id = new_run_id()  # no id, a malformed one, or the same record written again: a new run

        def fill(folder: Path) -> None:
            files = {}
            for name, df in tables.items():
                _write_parquet(df, folder / f"{name}.parquet")
                files[name] = file_digest(folder / f"{name}.parquet")
            record = encode_record({**meta, "run_id": run_id, "files": files})
            _write_parquet(record, folder / f"{RUN_TABLE}.parquet")

        return self._commit(profile, experiment, run_id, fill)

    def stage(self, profile: str, experiment: str, run_id: str, files: dict[str, bytes]) -> None:
        """Place a run made elsewhere (a verified bundle's files) beside the others, not yet current; a
        damaged copy of the same run is replaced. The caller holds the lock."""
        existing = self._run(profile, experiment, run_id)
        if existing.folder.is_dir():
            try:
                if not existing.damaged():
                    return
            except ReportError:
                pass
            shutil.rmtree(existing.folder)

        def fill(folder: Path) -> None:
            for name, data in files.items():
                with open(folder / name, "wb") as fh:
                    fh.write(data)
                    os.fsync(fh.fileno())

        self._commit(profile, experiment, run_id, fill, point=False)

    def point(self, profile: str, experiment: str, run_id: str) -> None:
        """Make a stored run the current one (one rename)."""
        self._commit(profile, experiment, run_id, None)

    def _commit(self, profile: str, experiment: str, run_id: str, fill: Any, point: bool = True) -> Path:
        """Fill a new run folder under a temporary name, rename it into place, then swap the pointer."""
        self._ensure_root()
        home = self.root / profile / experiment
        tmp, final = home / f".tmp-{run_id}", home / run_id
        try:
            if fill is not None:
                tmp.mkdir(parents=True)
                fill(tmp)
                _fsync_dir(tmp)
                tmp.rename(final)
            if point:
                old = self._pointed(home)
                if old and old != run_id:  # a run placed but never made current is never "previous"
                    atomic_write(home / PREVIOUS, old, fix=FIX)
                atomic_write(home / POINTER, run_id, fix=FIX)  # the one step that makes the run current
            _fsync_dir(home)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise os_error(e, home, FIX, StoreError) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if point:
            self._prune(home, run_id)
        return final

    def _prune(self, home: Path, current: str) -> None:
        """Keep the current run and the ``keep`` newest before it (run ids sort by time), and the previous
        one whatever its id (made elsewhere, say)."""
        runs = sorted(
            p for p in home.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != current
        )
        before = self._pointed(home, PREVIOUS)
        for old in runs[: max(0, len(runs) - self.keep)]:
            if old.name != before:
                shutil.rmtree(old, ignore_errors=True)

    def check_deletable(self) -> None:
        """Refuse, before anything is deleted, a folder holding anything the store did not write: a
        mistyped ``--store`` must never cost a user's files."""
        for entry in self.root.iterdir() if self.root.is_dir() else []:
            if not _own(entry):
                raise StoreError(
                    f"{self.root} is not only a results store (it holds {entry.name}), so nothing was "
                    "deleted; pass the results store as --store"
                )

    def delete(self, profile: str | None = None) -> None:
        """Remove stored results (one profile, or all of them): only entries the store wrote."""
        self.check_deletable()
        target = self.root / profile if profile else self.root
        for entry in target.iterdir() if target.is_dir() else []:
            if entry.name == ".lock":
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    # ---- reading --------------------------------------------------------------------------
    def result(self, profile: str, experiment: str) -> Result | None:
        """The current run, resolved once (``None`` when there is none): read everything through it."""
        home, rerun = self.root / profile / experiment, self.command(experiment, profile, force=True)
        try:
            # undecodable bytes read as a run id that names no run: damaged, and a rerun repairs it
            run_id = (home / POINTER).read_bytes().decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read {home / POINTER}: {e.strerror}; rerun: {rerun}") from None
        if not RUN_ID.fullmatch(run_id) or not (home / run_id).is_dir():
            raise StoreError(f"{home / POINTER} names no stored run ({run_id!r}); rerun: {rerun}")
        return self._run(profile, experiment, run_id)

    @staticmethod
    def _pointed(home: Path, name: str = POINTER) -> str | None:
        """The run id a pointer file names, if it names a stored run."""
        try:
            run_id = (home / name).read_bytes().decode("utf-8", errors="replace").strip()
        except OSError:
            return None
        return run_id if RUN_ID.fullmatch(run_id) and (home / run_id).is_dir() else None

    def previous(self, profile: str, experiment: str) -> Result | None:
        """The run that was current before the current one; for a store from before that was recorded,
        the newest other run by when it finished (runs come from many machines)."""
        current = self.result(profile, experiment)
        home = self.root / profile / experiment
        if (home / PREVIOUS).exists():
            before = self._pointed(home, PREVIOUS)
            same = current is not None and before == current.folder.name  # a swap cut short: unknown
            return None if before is None or same else self._run(profile, experiment, before)
        older = []
        for run in self.history(profile, experiment):
            if current is None or run.folder != current.folder:
                with contextlib.suppress(ReportError):
                    older.append((run.meta["finished"], run))
        return max(older, key=lambda pair: pair[0])[1] if older else None

    def history(self, profile: str, experiment: str) -> list[Result]:
        """Every stored run of an experiment, oldest first (the current one included)."""
        home = self.root / profile / experiment
        folders = (
            sorted(p for p in home.iterdir() if p.is_dir() and not p.name.startswith("."))
            if home.is_dir()
            else []
        )
        return [self._run(profile, experiment, f.name) for f in folders]

    def _run(self, profile: str, experiment: str, run_id: str) -> Result:
        """A stored run, with the advice every "rerun: …" it prints carries."""
        return Result(self.root / profile / experiment / run_id, profile, experiment, self.advice)

    def has(self, profile: str, experiment: str) -> bool:
        return self.result(profile, experiment) is not None

    def meta(self, profile: str, experiment: str) -> dict[str, Any] | None:
        """The run record of the current result, or ``None`` if there is none."""
        result = self.result(profile, experiment)
        return None if result is None else result.meta

    def read(self, profile: str, experiment: str, table: str) -> pd.DataFrame:
        """One table of the current result; a missing result says what to run."""
        return self._require(profile, experiment).read(table)

    def path(self, profile: str, experiment: str, table: str = RUN_TABLE) -> Path:
        return self._require(profile, experiment).path(table)

    def tables(self, profile: str, experiment: str) -> list[str]:
        return self._require(profile, experiment).tables()

    def _require(self, profile: str, experiment: str) -> Result:
        result = self.result(profile, experiment)
        if result is None:
            raise MissingResultError(
                f"no {experiment} results for profile {profile} in {self.root}; "
                f"run: {self.command(experiment, profile)}"
            )
        return result

    def runs(self) -> pd.DataFrame:
        """Every current run record, one row each, across profiles."""
        import pandas as pd

        frames = []
        for pointer in sorted(self.root.glob(f"*/*/{POINTER}")):
            try:
                frames.append(pd.read_parquet(pointer.parent / pointer.read_text().strip() / "run.parquet"))
            except Exception:
                continue
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _rerun(profile: str, experiment: str, advice: str = "", force: bool = True) -> str:
    return " ".join(
        filter(None, ["build.py run", experiment, "--profile", profile, "--force" * force, advice])
    )


OWN_FILES = {".lock", ".datahash.json"}  # beside the profiles: the write lock, the data-hash cache
OWN_FOLDERS = {".work", ".slurm"}  # unfinished units' checkpoints, Slurm job logs


def _own(entry: Path) -> bool:
    """Whether a top-level entry of a store's folder is the store's: its lock and caches, its work
    folders, or a profile folder whose every entry is an experiment's (a pointer and run folders)."""
    if entry.is_symlink():
        return False
    if entry.name in OWN_FILES or entry.name in OWN_FOLDERS:
        return True
    if not entry.is_dir():
        return False
    return all(
        home.is_dir() and not home.is_symlink() and all(_run_entry(p) for p in home.iterdir())
        for home in entry.iterdir()
    )


def _run_entry(path: Path) -> bool:
    """A pointer, a run folder, or what a crashed write left (``.tmp-…``, ``.current.….tmp``)."""
    name = path.name
    if path.is_symlink():
        return False
    if RUN_ID.fullmatch(name) or name.startswith(".tmp-"):  # a run folder holds its tables and nothing else
        return path.is_dir() and all(f.is_file() and f.suffix == ".parquet" for f in path.iterdir())
    pointer = name in (POINTER, PREVIOUS) or (
        name.startswith((f".{POINTER}.", f".{PREVIOUS}.")) and name.endswith(".tmp")
    )
    return pointer and path.is_file()


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
