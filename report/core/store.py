"""The results store: one folder of parquet files per (profile, experiment).

Layout (every file readable with ``pd.read_parquet``)::

    results/<profile>/<experiment>/run.parquet    one row: run id, config, timings, versions, fingerprint
    results/<profile>/<experiment>/<table>.parquet the experiment's tidy tables

A write builds the whole folder under a temporary name and swaps it in with renames, so a reader (or a
crash at any moment) sees either the old complete result or the new complete result, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from report.core.errors import MissingResultError, StoreError
from report.core.fingerprint import file_digest
from report.core.manifest import Manifest
from report.core.manifest import load as load_manifest

if TYPE_CHECKING:  # pandas is imported where a table is read or written: --help and a render's
    import pandas as pd  # PDF printer start ~0.4 s sooner

RUN_TABLE = "run"


class Store:
    """Parquet results store rooted at ``root``; safe against crashes and concurrent builds.

    Every table written is checked against ``manifest`` (the project's by default), and the run record
    keeps the sha256 of each table file so a damaged result is found before it is shown.
    """

    def __init__(self, root: Path | str, manifest: Manifest | None = None) -> None:
        self.root = Path(root)
        self._manifest = manifest

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest()
        return self._manifest

    # ---- locking and recovery -------------------------------------------------------------
    @contextmanager
    def lock(self, wait_message: str | None = None, on_wait: Any = None) -> Iterator[None]:
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
        """Finish or undo a swap interrupted by a crash, and drop half-written temporary folders."""
        if not self.root.is_dir():
            return
        for profile_dir in (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for entry in profile_dir.iterdir():
                if entry.name.startswith(".tmp-"):
                    shutil.rmtree(entry, ignore_errors=True)
                elif entry.name.startswith(".old-"):
                    final = profile_dir / entry.name[len(".old-") :]
                    if final.exists():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.rename(final)

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the results store {self.root}: {e.strerror}; pass a writable --store"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the results store {self.root} is not writable; pass a writable --store")

    # ---- writing --------------------------------------------------------------------------
    def write(
        self, profile: str, experiment: str, tables: dict[str, pd.DataFrame], meta: dict[str, Any]
    ) -> Path:
        """Atomically replace the stored result of ``experiment`` under ``profile``."""
        self.manifest.check(experiment, tables)
        if RUN_TABLE in tables:
            raise ValueError(f"table name {RUN_TABLE!r} is reserved for run metadata")
        self._ensure_root()
        profile_dir = self.root / profile
        profile_dir.mkdir(exist_ok=True)
        tmp = profile_dir / f".tmp-{experiment}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            files = {}
            for name, df in tables.items():
                _write_parquet(df, tmp / f"{name}.parquet")
                files[name] = file_digest(tmp / f"{name}.parquet")
            _write_parquet(_meta_frame({**meta, "files": files}), tmp / f"{RUN_TABLE}.parquet")
            _fsync_dir(tmp)
            final = profile_dir / experiment
            old = profile_dir / f".old-{experiment}"
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
                final.rename(old)
            tmp.rename(final)
            _fsync_dir(profile_dir)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def delete(self, profile: str | None = None) -> None:
        """Remove stored results (one profile, or all of them)."""
        target = self.root / profile if profile else self.root
        for entry in target.iterdir() if target.is_dir() else []:
            if entry.name == ".lock":
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    # ---- reading --------------------------------------------------------------------------
    def path(self, profile: str, experiment: str, table: str = RUN_TABLE) -> Path:
        return self.root / profile / experiment / f"{table}.parquet"

    def has(self, profile: str, experiment: str) -> bool:
        return self.path(profile, experiment).exists()

    def meta(self, profile: str, experiment: str) -> dict[str, Any] | None:
        """The run record of a stored result, or ``None`` if there is none."""
        if not self.has(profile, experiment):
            return None
        row = self.read(profile, experiment, RUN_TABLE).iloc[0].to_dict()
        if row.get("experiment") != experiment:
            raise StoreError(
                f"{self.path(profile, experiment)} is not a run record of {experiment}; rerun: "
                f"build.py run {experiment} --profile {profile} --force"
            )
        for key, value in row.items():  # dicts and lists were stored as JSON text (see _meta_frame)
            if isinstance(value, str) and value[:1] in ("{", "["):
                row[key] = json.loads(value)
        return row

    def damaged(self, profile: str, experiment: str) -> list[str]:
        """Tables whose file is missing or differs from the checksum in the run record."""
        meta = self.meta(profile, experiment) or {}
        return [
            name
            for name, digest in (meta.get("files") or {}).items()
            if not self.path(profile, experiment, name).is_file()
            or file_digest(self.path(profile, experiment, name)) != digest
        ]

    def read(self, profile: str, experiment: str, table: str) -> pd.DataFrame:
        """One stored table; a missing or corrupt file raises an error that says how to fix it."""
        path = self.path(profile, experiment, table)
        if not path.exists():
            if self.has(profile, experiment):
                raise MissingResultError(
                    f"{experiment} (profile {profile}) has no table {table!r}; rerun it: "
                    f"build.py run {experiment} --profile {profile} --force"
                )
            raise MissingResultError(
                f"no {experiment} results for profile {profile} in {self.root}; "
                f"run: build.py run {experiment} --profile {profile}"
            )
        import pandas as pd

        try:
            return pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise StoreError(
                f"{path} is corrupt or truncated ({type(e).__name__}); "
                f"rerun: build.py run {experiment} --profile {profile} --force"
            ) from None

    def tables(self, profile: str, experiment: str) -> list[str]:
        folder = self.root / profile / experiment
        return sorted(p.stem for p in folder.glob("*.parquet") if p.stem != RUN_TABLE)

    def runs(self) -> pd.DataFrame:
        """Every stored run record, one row each, across profiles."""
        import pandas as pd

        frames = []
        for path in sorted(self.root.glob(f"*/*/{RUN_TABLE}.parquet")):
            try:
                frames.append(pd.read_parquet(path))
            except Exception:
                continue
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _meta_frame(meta: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    row = {
        k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v for k, v in meta.items()
    }
    return pd.DataFrame([row])


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
