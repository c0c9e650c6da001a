"""Content fingerprints of what produced a result: code, config, data and library versions.

Each part is hashed separately so ``status`` can say *which* input changed. Code is found by reading
the experiment's source and following its imports inside ``experiments/`` (no import, so no torch).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
EXPERIMENTS = PROJECT / "experiments"
VERSIONED = ("torch", "torchvision", "numpy")
PARTS = ("code", "config", "data", "versions")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _local_imports(path: Path) -> frozenset[Path]:
    """Modules of the ``experiments`` package that ``path`` imports."""
    st = path.stat()
    return _parse_imports(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _parse_imports(path: Path, mtime_ns: int, size: int) -> frozenset[Path]:
    """Parsing is the slow part; the file's mtime and size in the key re-parse an edited file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = "experiments." + base if base else "experiments"
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "experiments" or len(parts) < 2:
            continue
        candidate = EXPERIMENTS / f"{parts[1]}.py"
        if candidate.exists():
            found.add(candidate)
    return frozenset(found)


def code_files(experiment: str) -> list[Path]:
    """The experiment's module and every ``experiments`` module it reaches through imports."""
    start = EXPERIMENTS / f"{experiment}.py"
    seen: set[Path] = set()
    todo = [start] if start.exists() else []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_local_imports(path) - seen)
    return sorted(seen)


def code_hash(experiment: str) -> str:
    h = hashlib.sha256()
    for path in code_files(experiment):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def config_hash(config: dict[str, Any], seed: int) -> str:
    return _digest(json.dumps({"config": config, "seed": seed}, sort_keys=True).encode())


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def versions_hash() -> str:
    return _digest(json.dumps(versions(), sort_keys=True).encode())


def data_hash(files: list[Path], cache: Path | None = None) -> str:
    """Hash of the data files' names, sizes and contents (content hashes cached by size and mtime)."""
    memo: dict[str, str] = {}
    if cache is not None and cache.exists():
        try:
            memo = json.loads(cache.read_text())
        except (OSError, ValueError):
            memo = {}
    parts = []
    for path in sorted(files):
        st = path.stat()
        key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in memo:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    h.update(block)
            memo[key] = h.hexdigest()[:16]
        parts.append(f"{path.name}:{memo[key]}")
    if cache is not None:
        try:
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(memo))
            tmp.replace(cache)
        except OSError:
            pass
    return _digest("\n".join(parts).encode())


def stale_parts(stored: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """Which fingerprint parts differ; parts absent from ``current`` are not compared."""
    if not stored:
        return ["missing"]
    return [p for p in PARTS if p in current and stored.get(p) != current[p]]


def request_hash(experiment: str, profile: str, overrides: dict[str, str], seed: int, data_dir: Path) -> str:
    """What the user asked for, hashed without importing the experiment (so without torch).

    Equal request hashes mean an equal resolved config, because the config is a function of the code,
    the profile and the overrides; ``build.py`` uses it to answer "is everything current?" in a
    fraction of a second and falls back to the full plan (which imports torch) otherwise.
    """
    parts = {
        "code": code_hash(experiment),
        "versions": versions_hash(),
        "profile": profile,
        "overrides": sorted(overrides.items()),
        "seed": seed,
        "data_dir": str(data_dir.resolve()),
    }
    return _digest(json.dumps(parts, sort_keys=True).encode())


def is_current(meta: dict[str, Any] | None, request: str, cache: Path | None) -> bool:
    """A stored result made for the same request from data files whose content is unchanged."""
    if not meta or meta.get("request") != request:
        return False
    files = [Path(f) for f in meta.get("data_files", [])]
    if not all(f.is_file() for f in files):
        return False
    return not files or data_hash(files, cache) == meta["fingerprint"].get("data")
