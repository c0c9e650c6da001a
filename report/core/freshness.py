"""The one freshness rule: is a stored result current for what this build asks for, and if not, why?

``status``, ``all``/``run`` and the report's stale flags all call ``judge``, so they cannot disagree. A
result is current when its files are intact and the fingerprint parts it was stored with equal the parts
of this request: its code (and manifest entry), its config (profile, ``--set`` values, seed) and the
content of the data files it read. The versions of torch, torchvision and numpy it was made with are
provenance: a difference is noted, not stale, unless the request asks for ``strict_versions``, so a
result made on a GPU machine stays current where the report is rendered. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from report.core import fingerprint as fp
from report.core import manifest as mf
from report.core.config import STAND_IN, canonical, profile_config, spell
from report.core.errors import ConfigError, ReportError
from report.core.store import Result, Store


@dataclass(frozen=True)
class Request:
    """What a build asks for; every command builds one from the same options."""

    profile: str
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    seed: int = 0
    data_dir: Path = Path("data")
    strict_versions: bool = False  # True: other library versions make a result stale
    stand_ins: frozenset[str] = frozenset()  # run their quick profile in place of this one (reference.py)

    def __post_init__(self) -> None:
        known = mf.load().names
        for experiment in self.overrides:  # every value checked now, before anything is judged or run
            if experiment not in known:
                raise ConfigError(
                    f"--set {experiment}.…: unknown experiment {experiment!r}; choose from {', '.join(known)}"
                )
            self.config_part(experiment)

    def own_profile(self, experiment: str) -> str:
        """The profile ``experiment`` runs under this request: its stand-in's, or the request's own."""
        return STAND_IN if experiment in self.stand_ins else self.profile

    def config_part(self, experiment: str) -> str:
        """The config part of the fingerprint: the profile, the seed and the ``--set`` values that change
        something (one that repeats the profile's own value is no change, so it leaves results current).
        A stand-in's profile is part of it, so it is never taken for the study it stands in for."""
        own = self.own_profile(experiment)
        values = {}
        for key, text in self.overrides.get(experiment, {}).items():
            value = canonical(experiment, key, text, f"--set {experiment}.{key}={text}")
            if value != spell(getattr(profile_config(experiment, own), key)):
                values[key] = value
        label = self.profile if own == self.profile else f"{self.profile} ({own} in its place)"
        return fp.config_hash(label, values, self.seed)


@dataclass(frozen=True)
class Verdict:
    experiment: str
    state: Literal["current", "stale", "missing"]
    changed: tuple[str, ...] = ()  # fingerprint parts that differ, or "files" for a damaged result
    notes: tuple[str, ...] = ()  # what was not checked, and why
    meta: dict[str, Any] | None = None
    result: Result | None = None  # the stored run judged: read its tables through it

    @property
    def current(self) -> bool:
        return self.state == "current"

    @property
    def label(self) -> str:
        return f"stale: {', '.join(self.changed)} changed" if self.state == "stale" else self.state


def fingerprint(
    experiment: str, request: Request, data_files: list[Path], cache: Path | None, manifest: mf.Manifest
) -> dict[str, str]:
    """The parts a result made now for ``request`` is stored with (``data_files`` are those it reads)."""
    data = fp.data_hash(data_files, cache) if data_files else "none"
    return {**_dataless_parts(experiment, request, manifest), "data": data}


def _dataless_parts(experiment: str, request: Request, manifest: mf.Manifest) -> dict[str, str]:
    """The fingerprint parts known without reading data files: the code, the config, library versions."""
    return {
        "code": code_part(experiment, manifest),
        "config": request.config_part(experiment),
        "versions": fp.versions_hash(),
    }


def code_part(experiment: str, manifest: mf.Manifest) -> str:
    entry = manifest.get(experiment)
    return fp.code_hash(
        experiment,
        {"datasets": entry.datasets, "tables": entry.tables, "needs_accelerator": entry.needs_accelerator},
    )


def judge(store: Store, experiment: str, request: Request, manifest: mf.Manifest | None = None) -> Verdict:
    """Current, stale (which parts changed) or missing: the verdict every command uses."""
    manifest = manifest or store.manifest
    try:
        result = store.result(request.profile, experiment)
        if result is None:
            return Verdict(experiment, "missing")
        meta, damaged = result.meta, result.damaged()
    except ReportError as e:  # unreadable, missing or dangling: rerunning repairs it
        return Verdict(experiment, "stale", ("files",), (str(e),))
    if damaged:
        return Verdict(experiment, "stale", ("files",), (f"damaged: {', '.join(damaged)}",), meta, result)
    return judge_record(experiment, meta, request, store, manifest, result)


def judge_record(
    experiment: str,
    meta: dict[str, Any],
    request: Request,
    store: Store,
    manifest: mf.Manifest,
    result: Result | None = None,
) -> Verdict:
    """The verdict on one run record whose files are known intact (a stored run, or a verified bundle's);
    ``store`` lends its data-hash cache."""
    if meta.get("profile") != request.profile:  # a result folder copied under another profile's name
        note = f"stored as profile {meta.get('profile')}"
        return Verdict(experiment, "stale", ("profile",), (note,), meta, result)
    stored = meta.get("fingerprint") or {}
    current = _dataless_parts(experiment, request, manifest)
    notes = []
    data = _data_part(meta, request, store)
    if data is None:
        notes.append(f"data not found in {request.data_dir}, so not checked")
    else:
        current["data"] = data
    changed = tuple(p for p in fp.PARTS if p in current and stored.get(p) != current[p])
    if "versions" in changed and not request.strict_versions:
        changed = tuple(p for p in changed if p != "versions")
        notes.append(f"made with {other_versions(meta)}")
    if "code" not in changed and acceptance(meta):
        notes.append(acceptance(meta))
    return Verdict(experiment, "stale" if changed else "current", changed, tuple(notes), meta, result)


def acceptance(meta: dict[str, Any]) -> str:
    """``code changed after this run; accepted on DATE: REASON`` for a result ``accept`` carried over."""
    accepted = meta.get("accepted") or []
    each = "; ".join(f"on {a['on'][:10]}: {a['reason'].rstrip('. ')}" for a in accepted)
    return f"code changed after this run; accepted {each}" if accepted else ""


def accept(store: Store, request: Request, names: list[str], reason: str, on_wait: Any = None) -> list[str]:
    """Carry results over to the current code without rerunning them (``dvc commit``'s idea): for a change
    the author knows leaves the results as they are, such as a fix in a resume path the run never took.

    Only results stale through their code alone are accepted; each becomes a new run with the same tables
    and provenance, the current code's fingerprint and a record of the acceptance (when and why), which
    ``status`` and the report show beside it. Returns the names accepted (those already current are
    skipped); refuses, before writing anything, when one is missing or stale for another reason.
    """
    if not reason.strip():
        raise ReportError("accept needs a --reason: why the code change leaves the results as they are")
    on = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.lock(on_wait=on_wait):  # judged under the lock: no build can store a newer run meanwhile
        verdicts = [judge(store, n, request) for n in names]
        for v in verdicts:
            fix = f"run it: {store.command(v.experiment, request.profile)}"
            if v.state == "missing":
                raise ReportError(f"no {v.experiment} result for profile {request.profile} to accept; {fix}")
            if v.state == "stale" and v.changed != ("code",):
                raise ReportError(
                    f"{v.experiment} is stale because its {', '.join(v.changed)} changed; accept carries "
                    f"results over code changes only; re{fix}"
                )
        todo = [v for v in verdicts if v.state == "stale"]
        for v in todo:
            assert v.meta is not None and v.result is not None
            code = code_part(v.experiment, store.manifest)
            meta = {
                **v.meta,
                "fingerprint": {**v.meta["fingerprint"], "code": code},
                "accepted": [
                    *(v.meta.get("accepted") or []),
                    {"on": on, "reason": reason.strip(), "code_was": v.meta["fingerprint"]["code"],
                     "code_now": code, "run_id": v.meta["run_id"]},
                ],
            }  # fmt: skip
            tables = {t: v.result.read(t) for t in v.result.tables()}
            store.write(request.profile, v.experiment, tables, meta)
    return [v.experiment for v in todo]


def _data_part(meta: dict[str, Any], request: Request, store: Store) -> str | None:
    """The data hash of the files the result read, found in the requested data folder or else where they
    were read from; ``None`` when they are in neither."""
    relative = [Path(f) for f in meta.get("data_files", [])]
    if not relative:
        return "none"
    cache = store.root / ".datahash.json" if store.root.is_dir() else None
    for folder in (request.data_dir, Path(meta.get("data_dir", request.data_dir))):
        files = [folder / f for f in relative]
        if all(f.is_file() for f in files):
            return fp.data_hash(files, cache)
    return None


def version_differences(meta: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Library -> (version the result was made with, version here), for those that differ."""
    made, here = meta.get("versions") or {}, fp.versions()
    return {k: (made.get(k, "absent"), v) for k, v in here.items() if made.get(k, "absent") != v}


def other_versions(meta: dict[str, Any]) -> str:
    """``torch 2.11.0 (here 2.14.1)``: the libraries a result was made with that differ from these."""
    return ", ".join(f"{k} {made} (here {here})" for k, (made, here) in version_differences(meta).items())
