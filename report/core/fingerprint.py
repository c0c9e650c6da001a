"""Content fingerprints of what produced a result: code, config, data and library versions.

Each part is hashed separately so ``status`` can say *which* input changed. Code is found by reading
an experiment's source and following its imports inside the code roots (by parsing, never importing, so
no torch). ``report.core.freshness`` compares the parts; this module only computes them.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from report.core.atomic import atomic_write
from report.core.errors import ReportError

PROJECT = Path(__file__).resolve().parents[2]
CODE_ROOTS: dict[str, Path] = {"experiments": PROJECT / "experiments"}  # package -> folder hashed as code
VERSIONED = ("torch", "torchvision", "numpy")
PARTS = ("code", "config", "data", "versions")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _local_imports(path: Path, package: str, root: Path) -> frozenset[Path]:
    """Modules of ``package`` (in folder ``root``) that ``path`` imports."""
    st = path.stat()
    return _parse_imports(path, package, root, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _parse_imports(path: Path, package: str, root: Path, mtime_ns: int, size: int) -> frozenset[Path]:
    """Parsing is the slow part; the file's mtime and size in the key re-parse an edited file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != package or len(parts) < 2:
            continue
        candidate = root / f"{parts[1]}.py"
        if candidate.exists():
            found.add(candidate)
    return frozenset(found)


def code_files(experiment: str, roots: dict[str, Path] | None = None) -> list[Path]:
    """The experiment's module and every module of the code roots it reaches through imports."""
    roots = CODE_ROOTS if roots is None else roots
    seen: set[Path] = set()
    todo = [root / f"{experiment}.py" for root in roots.values() if (root / f"{experiment}.py").exists()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for package, root in roots.items():
            todo.extend(_local_imports(path, package, root) - seen)
    return sorted(seen)


def code_hash(experiment: str, entry: dict[str, Any], roots: dict[str, Path] | None = None) -> str:
    """The experiment's code and its manifest ``entry`` (what it reads and stores)."""
    h = hashlib.sha256(json.dumps(entry, sort_keys=True, default=list).encode())
    for path in code_files(experiment, roots):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def config_hash(profile: str, overrides: dict[str, str], seed: int) -> str:
    """What the user asked for: the profile, the ``--set`` values and the seed.

    The resolved config is a function of these and the code (which the code part covers), so equal
    hashes mean an equal config, and the hash needs no import of the experiment (so no torch).
    """
    canonical = {k: ",".join(p.strip() for p in v.split(",")) for k, v in overrides.items()}
    return digest(json.dumps([profile, sorted(canonical.items()), seed]).encode())


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def versions_hash() -> str:
    return digest(json.dumps(versions(), sort_keys=True).encode())


def data_hash(files: list[Path], cache: Path | None = None) -> str:
    """Hash of the data files' names, sizes and contents (content hashes cached by size and mtime)."""
    memo: dict[str, str] = {}
    if cache is not None and cache.exists():
        try:
            memo = json.loads(cache.read_text())
        except (OSError, ValueError):
            memo = {}
    parts, known = [], len(memo)
    for path in sorted(files):
        st = path.stat()
        key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in memo:
            memo[key] = file_digest(path)[:16]
        parts.append(f"{path.name}:{memo[key]}")
    if cache is not None and len(memo) > known:
        with contextlib.suppress(ReportError):  # a cache that cannot be written only costs time
            atomic_write(cache, json.dumps(memo), fix="")
    return digest("\n".join(parts).encode())


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
