"""Results made elsewhere: the project's reference bundle, and what the ``full`` profile takes from it.

An experiment marked ``needs_accelerator`` in the manifest (Q4: six CNNs, three seeds, many epochs) takes
hours on a CPU. On a machine without a GPU the ``full`` profile takes its result, in this order: from the
store when it is current; from the project's reference bundle (``experiments/reference/full.tar.gz``, made
on a GPU) when that is current for this code, data and settings; else it runs the experiment's quick
profile in its place, a *stand-in*, which ``status``, the report's banner and the question's own note name,
with the command that makes the real result. Every other experiment runs its full study wherever the build
runs. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from report.core.bundle import Bundle, adopt, open_bundle
from report.core.config import STAND_IN
from report.core.freshness import Request, Verdict, judge, judge_record
from report.core.manifest import PROJECT
from report.core.store import Store

FOLDER = PROJECT / "experiments" / "reference"


def path(profile: str) -> Path:
    """The project's bundle of results made elsewhere for ``profile`` (it may not exist)."""
    return FOLDER / f"{profile}.tar.gz"


def shown(source: Path) -> Path:
    """The bundle's path as a message names it: inside the project, relative to it."""
    return source.relative_to(PROJECT) if source.is_relative_to(PROJECT) else source


def _bundle(store: Store, profile: str) -> Bundle | None:
    """The verified bundle, verified once per command (and again only when the file changes)."""
    source = path(profile)
    if not source.is_file():
        return None
    stat = source.stat()
    key = (str(source), stat.st_mtime_ns, stat.st_size, str(store.root))
    if key not in _VERIFIED:
        _VERIFIED.clear()
        _VERIFIED[key] = open_bundle(str(source), store)
    return _VERIFIED[key]


_VERIFIED: dict[tuple[str, int, int, str], Bundle] = {}


def verdicts(store: Store, request: Request) -> dict[str, Verdict]:
    """The reference bundle's runs judged for ``request`` as if they were in the store (``{}`` without a
    bundle for its profile): the same freshness rule as for a stored result."""
    bundle = _bundle(store, request.profile)
    if bundle is None:
        return {}
    study = dataclasses.replace(request, stand_ins=frozenset())  # the bundle holds studies, not stand-ins
    return {
        name: judge_record(name, record, study, store, store.manifest)
        for name, record in bundle.records.items()
    }


def fill(
    store: Store, request: Request, names: list[str], on_wait: Callable[[], None] | None = None
) -> list[str]:
    """Import from the reference bundle each of ``names`` whose stored result is missing or not current,
    where the bundle's is current (a store's non-current result, a stand-in included, is replaced; the
    store keeps it as the previous run). Returns the names imported."""
    study = dataclasses.replace(request, stand_ins=frozenset())
    todo = [n for n in names if not judge(store, n, study).current]
    if not todo:
        return []
    bundle = _bundle(store, request.profile)
    if bundle is None:
        return []
    ready = [n for n in todo if n in bundle.records and _current(bundle, n, study, store)]
    return adopt(store, bundle, replace_newer=True, only=ready, on_wait=on_wait) if ready else []


def fill_missing(
    store: Store, request: Request, names: list[str], on_wait: Callable[[], None] | None = None
) -> list[str]:
    """Import from the reference bundle each of ``names`` the store has no result of, current or not: a
    render then shows it, flagged stale where it is, rather than fail."""
    todo = [n for n in names if store.result(request.profile, n) is None]
    bundle = _bundle(store, request.profile) if todo else None
    ready = [n for n in todo if bundle is not None and n in bundle.records]
    return adopt(store, bundle, only=ready, on_wait=on_wait) if bundle is not None and ready else []


def _current(bundle: Bundle, name: str, request: Request, store: Store) -> bool:
    return judge_record(name, bundle.records[name], request, store, store.manifest).current


def stand_ins(store: Store, request: Request, accelerator: bool) -> frozenset[str]:
    """The experiments this build runs a stand-in for: under ``full``, on a machine without an
    accelerator, those that need one and have a current result neither in the store nor in the
    reference bundle."""
    if request.profile != "full" or accelerator:
        return frozenset()
    study = dataclasses.replace(request, stand_ins=frozenset())
    wanted = [n for n in store.manifest.names if store.manifest.get(n).needs_accelerator]
    wanted = [n for n in wanted if not judge(store, n, study).current]
    if not wanted:
        return frozenset()
    reference = verdicts(store, request)
    return frozenset(n for n in wanted if not (n in reference and reference[n].current))


def why_stand_in(store: Store, request: Request, name: str) -> tuple[str, str]:
    """What is missing for ``name``'s full study, and the one command that makes it (run on a machine
    with a GPU): the words of the report's banner and of ``status``."""
    reference = verdicts(store, request).get(name)
    where = shown(path(request.profile))
    bundle = _bundle(store, request.profile)
    if bundle is not None and name in bundle.left_out:  # there, but its tables are another manifest's
        found = f"the one in {where} was made for another version of the manifest"
    else:
        found = f"{where} holds none" if reference is None else f"the one in {where} is {reference.label}"
    missing = (
        f"its full study needs a GPU, which this machine lacks; this store holds no current result of it "
        f"and {found}, so its {STAND_IN} profile runs in its place"
    )
    return missing, store.command(name, request.profile)


def stand_in_line(store: Store, request: Request, name: str) -> str:
    """``why_stand_in`` as one line for the terminal."""
    missing, command = why_stand_in(store, request, name)
    return f"{missing}; make the study on a machine with a GPU: {command}, then export it and import it here"
