"""Results bundles: carry stored runs from the machine that made them to wherever the report is rendered.

A bundle is a ``.tar.gz`` holding ``bundle.json`` (what it contains: experiments, run ids, fingerprints,
devices, and the sha256 of every file) and each run folder under ``results/<profile>/<experiment>/``.
``verify`` checks everything (archive integrity, member paths, checksums, the manifest's table columns)
before ``adopt`` touches a store, so a bad bundle is refused with one line and the store is left as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from report.core.atomic import atomic_write
from report.core.config import PROFILES, RETIRED
from report.core.errors import ReportError
from report.core.run_record import decode_record, record_problem
from report.core.store import RUN_TABLE, Store

FORMAT = "assignment-report-bundle/1"
GZIP = b"\x1f\x8b"  # how every .tar.gz begins: without it, a file is no bundle, not a damaged one
LIMIT = 1 << 30  # bytes a bundle may hold or download: tables, not checkpoints; a bomb is refused
PROJECT = "assignment-report"
INDEX = "bundle.json"
INDEX_FIELDS = (
    "run_id",
    "finished",
    "device_name",
    "versions",
    "fingerprint",
    "files",
)  # per run, from its record


class BundleError(ReportError):
    """A bundle that is truncated, altered, foreign or would replace newer results."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle, held in memory (tables only, so small)."""

    source: str
    index: dict[str, Any]
    files: dict[str, bytes]  # member path -> content
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # experiment -> its run record
    # experiment -> how its tables differ from this project's manifest (made by older or newer code): left
    # out, the rest of the bundle stays usable
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return self.index["profile"]

    def runs(self) -> dict[str, dict[str, Any]]:
        return self.index["experiments"]

    def run_files(self, experiment: str) -> dict[str, bytes]:
        """File name -> content of one experiment's run folder."""
        prefix = _folder(self.profile, experiment, self.runs()[experiment]["run_id"]) + "/"
        return {k[len(prefix) :]: v for k, v in self.files.items() if k.startswith(prefix)}


def _folder(profile: str, experiment: str, run_id: str) -> str:
    return f"results/{profile}/{experiment}/{run_id}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(store: Store, profile: str, experiments: list[str], dest: Path) -> dict[str, Any]:
    """Write the current runs of ``experiments`` to the bundle ``dest``; returns its index."""
    index: dict[str, Any] = {
        "format": FORMAT,
        "project": PROJECT,
        "profile": profile,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "experiments": {},
    }
    members: dict[str, bytes] = {}
    found = {name: store.result(profile, name) for name in experiments}
    results = {name: result for name, result in found.items() if result is not None}
    missing = [name for name in experiments if name not in results]
    if missing:  # all of them, and one command that runs them
        raise ReportError(f"no {', '.join(missing)} results for profile {profile} in {store.root} to "
                          f"export; run: {store.command(' '.join(missing), profile)}")  # fmt: skip
    for name, result in results.items():
        if result.damaged():
            raise ReportError(f"{name}: stored files fail their checksums; rerun: {result.rerun}")
        meta, folder = result.meta, _folder(profile, name, result.folder.name)
        files = {f"{folder}/{p.name}": p.read_bytes() for p in sorted(result.folder.glob("*.parquet"))}
        members.update(files)
        index["experiments"][name] = {
            "run_id": result.folder.name,
            "finished": meta["finished"],
            "device_name": meta["device_name"],
            "versions": meta["versions"],
            "fingerprint": meta["fingerprint"],
            "files": {path: _digest(data) for path, data in files.items()},
        }

    def write(fh: Any) -> None:
        with tarfile.open(fileobj=fh, mode="w:gz") as tar:
            for path, data in [(INDEX, json.dumps(index, indent=1).encode()), *members.items()]:
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))

    atomic_write(dest, write, fix="pass a writable -o")
    return index


def fetch(source: str) -> bytes:
    """A bundle's bytes from a path or a URL (``file://``, ``https://``; the standard library's client)."""
    if "://" in source:
        if urllib.parse.urlsplit(source).scheme not in ("file", "https"):
            raise BundleError(
                f"{source}: only file paths, file:// and https:// URLs are supported; download the bundle "
                "and pass its path"
            )
        try:
            with urllib.request.urlopen(source, timeout=60) as response:
                data = response.read(LIMIT + 1)
            if len(data) > LIMIT:
                raise BundleError(
                    f"{source} is larger than {LIMIT >> 20} MiB; a results bundle holds tables only"
                )
            return data
        except OSError as e:
            raise BundleError(f"cannot download {source}: {getattr(e, 'reason', e)}; check the URL") from None
    try:
        if Path(source).stat().st_size > LIMIT:
            raise BundleError(
                f"{source} is larger than {LIMIT >> 20} MiB; a results bundle holds tables only"
            )
        return Path(source).read_bytes()
    except OSError as e:
        raise BundleError(f"cannot read {source}: {e.strerror}; pass the path of a results bundle") from None


def verify(data: bytes, source: str, store: Store) -> Bundle:
    """Every check a bundle must pass before it may touch a store; the first failure is one line."""
    bad = f"{source} is not a usable results bundle"
    if not data.startswith(GZIP):
        raise BundleError(
            f"{source} is not a results bundle (a .tar.gz written by build.py export); pass one of those"
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files, total = {}, 0
            for member in tar:
                name = member.name
                if (
                    not member.isfile()
                    or name.startswith("/")
                    or ".." in name.split("/")
                    or name != posixpath.normpath(name)
                ):
                    what = f"it holds {name!r}, which is not a plain file inside the bundle"
                    raise BundleError(f"{bad}: {what}; it was not made by build.py export")
                total += member.size
                if total > LIMIT:
                    raise BundleError(
                        f"{bad}: it unpacks to more than {LIMIT >> 20} MiB; a bundle holds tables only"
                    )
                files[name] = tar.extractfile(member).read()  # type: ignore[union-attr]  # a file: checked above
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise BundleError(
            f"{bad}: the archive is truncated or damaged ({type(e).__name__}); export it again"
        ) from None
    try:
        index = json.loads(files.pop(INDEX))
    except (KeyError, ValueError):
        raise BundleError(f"{bad}: it has no readable {INDEX}; it was not made by build.py export") from None
    if not isinstance(index, dict):
        raise BundleError(f"{bad}: its {INDEX} is not an index of results; export it again")
    if index.get("format") != FORMAT or index.get("project") != PROJECT:
        kind = f"{index.get('project', 'foreign')} bundle ({index.get('format', 'unknown format')})"
        raise BundleError(f"{bad}: it is a {kind}, not one of {PROJECT} ({FORMAT})")
    _check_index(index, bad)
    listed = {p: d for run in index["experiments"].values() for p, d in run["files"].items()}
    if set(listed) != set(files):
        extra = sorted(set(files) ^ set(listed))[0]
        raise BundleError(f"{bad}: {extra} is {'missing from' if extra in listed else 'not listed in'} the "
                          "bundle; export it again")  # fmt: skip
    for path, digest in listed.items():
        if _digest(files[path]) != digest:
            raise BundleError(
                f"{bad}: {path} fails its sha256 checksum (altered or damaged); export it again"
            )
    bundle = Bundle(source, index, files)
    for name, run in bundle.runs().items():
        if name not in store.manifest.names:
            raise BundleError(
                f"{bad}: it holds results of {name!r}, which this project's manifest does not list"
            )
        run_files = bundle.run_files(name)
        if f"{RUN_TABLE}.parquet" not in run_files or set(run_files) != {
            f"{p.rsplit('/', 1)[1]}" for p in run["files"]
        }:
            raise BundleError(f"{bad}: {name} has no run record; export it again")
        try:
            bundle.records[name] = _check_tables(bundle, name, store, bad)
        except _Unfit as e:
            bundle.left_out[name] = str(e)
    if bundle.left_out and not bundle.records:
        whys = "; ".join(bundle.left_out.values())
        raise BundleError(
            f"{bad}: all of it was made for another version of the manifest ({whys}); make its results "
            "again with this code"
        )
    for name in bundle.left_out:  # the rest as if the bundle held only them
        prefix = _folder(bundle.profile, name, bundle.runs()[name]["run_id"]) + "/"
        for path in [p for p in bundle.files if p.startswith(prefix)]:
            del bundle.files[path]
        del bundle.runs()[name]
    return bundle


class _Unfit(Exception):
    """An experiment's tables differ from this project's manifest: made by another version of its code."""


def _check_index(index: dict[str, Any], bad: str) -> None:
    """The index's shape, profile and run ids: names that become folders in the store must be plain."""
    runs = index.get("experiments")
    if not isinstance(runs, dict) or not all(isinstance(r, dict) for r in runs.values()):
        raise BundleError(
            f"{bad}: its {INDEX} does not list runs as build.py export writes them; export it again"
        )
    if not runs:
        raise BundleError(f"{bad}: it holds no results; export the experiments you want to carry over")
    for name, run in runs.items():  # every field as export writes it, before anything is placed
        problem = record_problem(run, INDEX_FIELDS)
        if problem:
            raise BundleError(f"{bad}: {name} in its {INDEX} has a bad field ({problem}); export it again")
    old = index.get("profile")
    if old in RETIRED:
        raise BundleError(f"{bad}: its profile {old!r} no longer exists ({RETIRED[old]}); make its results "
                          "again with build.py all")  # fmt: skip
    if index.get("profile") not in PROFILES:
        raise BundleError(f"{bad}: its profile {index.get('profile')!r} is not one of {', '.join(PROFILES)}")


def _check_tables(bundle: Bundle, experiment: str, store: Store, bad: str) -> dict[str, Any]:
    """The bundle's tables must have the columns this project's manifest lists (``_Unfit`` if not);
    returns the run record."""
    import pandas as pd

    try:
        tables = {
            n.removesuffix(".parquet"): pd.read_parquet(io.BytesIO(d))
            for n, d in bundle.run_files(experiment).items()
        }
    except Exception as e:  # pyarrow raises several types for what is not parquet
        raise BundleError(
            f"{bad}: a table of {experiment} is not readable ({type(e).__name__}); export it again"
        ) from None
    try:
        record = decode_record(tables.pop(RUN_TABLE))
    except (IndexError, ValueError, TypeError, KeyError):
        raise BundleError(f"{bad}: {experiment}'s run record is not readable; export it again") from None
    problem = record_problem(record)
    if problem:
        raise BundleError(f"{bad}: {experiment}'s run record has a bad field ({problem}); export it again")
    run = bundle.runs()[experiment]
    differs = [k for k in INDEX_FIELDS if k != "files" and record.get(k) != run[k]]
    if differs or (record.get("experiment"), record.get("profile")) != (experiment, bundle.profile):
        what = differs[0] if differs else "experiment or profile"
        raise BundleError(
            f"{bad}: {experiment}'s run record does not match {INDEX} ({what}); export it again"
        )
    try:
        store.manifest.check(experiment, tables)
    except ReportError as e:
        raise _Unfit(str(e)) from None
    return record


def adopt(
    store: Store,
    bundle: Bundle,
    replace_newer: bool = False,
    only: list[str] | None = None,
    on_wait: Callable[[], None] | None = None,
) -> list[str]:
    """Make the bundle's runs (or ``only`` these) current in ``store``, one atomic pointer swap per
    experiment; refuses, before writing anything, to replace a result that finished later than the
    bundle's unless ``replace_newer``. Returns the names it changed: a run that is already the store's
    current one, intact, is left as it is (the bundle was imported before)."""
    profile = bundle.profile
    names = [n for n in bundle.runs() if only is None or n in only]

    def in_place(name: str) -> bool:
        """Whether the store's current run of ``name`` is the bundle's, intact."""
        try:
            current = store.result(profile, name)
            if current is None or current.folder.name != bundle.runs()[name]["run_id"]:
                return False
            return not current.damaged()
        except ReportError:  # unreadable: importing repairs it
            return False

    def newer() -> list[str]:
        out = []
        for name in names:
            run, current = bundle.runs()[name], store.result(profile, name)
            if current is None or current.folder.name == run["run_id"]:
                continue
            if datetime.fromisoformat(current.meta["finished"]) > datetime.fromisoformat(run["finished"]):
                out.append(f"{name} ({current.meta['finished']} > {run['finished']})")
        return out

    if not replace_newer and newer():
        raise BundleError(f"{bundle.source} would replace newer results: {', '.join(newer())}; "
                          "pass --replace-newer to import it anyway")  # fmt: skip
    with store.lock(on_wait=on_wait):
        if not replace_newer and newer():  # another build finished meanwhile
            raise BundleError(f"{bundle.source} would replace newer results: {', '.join(newer())}")
        names = [n for n in names if not in_place(n)]
        for name in names:  # every run in place first, so a failure here switches nothing
            store.stage(profile, name, bundle.runs()[name]["run_id"], bundle.run_files(name))
        for name in names:
            store.point(profile, name, bundle.runs()[name]["run_id"])
    return names


def open_bundle(source: str, store: Store) -> Bundle:
    return verify(fetch(source), source, store)


def as_store(bundle: Bundle, folder: Path | None = None) -> Store:
    """The bundle unpacked as a store of its own (for ``diff``), in ``folder`` or a temporary folder."""
    root = Path(folder or tempfile.mkdtemp(prefix="bundle-"))
    for path, data in bundle.files.items():
        target = root / path.removeprefix("results/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for name, run in bundle.runs().items():
        (root / bundle.profile / name / "current").write_text(run["run_id"])
    return Store(root)
