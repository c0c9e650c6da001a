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
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from report.core.atomic import atomic_write
from report.core.errors import ReportError

PROJECT = Path(__file__).resolve().parents[2]
# package -> folder hashed as code: the experiments and the torch-free base layer they stand on
CODE_ROOTS: dict[str, Path] = {"experiments": PROJECT / "experiments", "report": PROJECT / "report"}
RUNNER = "runner"  # experiments/runner.py: the code that runs every experiment is part of each one's code
VERSIONED = ("torch", "torchvision", "numpy")
PARTS = ("code", "config", "data", "versions")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _local_imports(path: Path, roots: dict[str, Path]) -> frozenset[Path]:
    """The project files that importing what ``path`` imports executes (its nested imports too)."""
    st = path.stat()
    return _parse_imports(path, tuple(roots.items()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _parse_imports(
    path: Path, roots: tuple[tuple[str, Path], ...], mtime_ns: int, size: int
) -> frozenset[Path]:
    """Parsing is the slow part; the file's mtime and size in the key re-parse an edited file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package(path, dict(roots))
    names: set[str] = set()
    # a package's __init__ imports lazily inside functions (``report``'s ``open_store``): only its
    # module-level imports run whenever one of its modules is imported
    nodes = tree.body if path.name == "__init__.py" else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, ``level - 1`` packages up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return frozenset(f for name in names for f in _module_files(name, dict(roots)))


def _package(path: Path, roots: dict[str, Path]) -> str:
    """The dotted package a file of the code roots belongs to (``report.core`` for its modules)."""
    for name, root in roots.items():
        if path.is_relative_to(root):
            return ".".join([name, *path.relative_to(root).parent.parts])
    return ""


def _module_files(name: str, roots: dict[str, Path]) -> list[Path]:
    """The files that ``import name`` executes: each package's ``__init__.py`` and the module (a name
    that ends in a function or class stops at its module)."""
    first, *rest = name.split(".")
    folder = roots.get(first)
    if folder is None:
        return []
    files = [folder / "__init__.py"] if (folder / "__init__.py").is_file() else []
    for part in rest:
        if (folder / part / "__init__.py").is_file():
            folder = folder / part
            files.append(folder / "__init__.py")
        else:
            if (folder / f"{part}.py").is_file():
                files.append(folder / f"{part}.py")
            break
    return files


def code_files(experiment: str, roots: dict[str, Path] | None = None) -> list[Path]:
    """What decides what a run computes: the experiment's module and the runner, and every module of the
    code roots they reach through imports (the kit, the executors, the base layer they use)."""
    roots = CODE_ROOTS if roots is None else roots
    home = next(iter(roots.values()))  # the experiments' folder
    todo = [home / f"{name}.py" for name in (experiment, RUNNER) if (home / f"{name}.py").is_file()]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_local_imports(path, roots) - seen)
    return sorted(seen)


def code_hash(experiment: str, entry: dict[str, Any], roots: dict[str, Path] | None = None) -> str:
    """The experiment's code and its manifest ``entry`` (what it reads and stores, whether it needs a GPU)."""
    roots = CODE_ROOTS if roots is None else roots
    h = hashlib.sha256(json.dumps(entry, sort_keys=True, default=list).encode())
    named = {
        next((f"{pkg}/{path.relative_to(root)}" for pkg, root in roots.items() if path.is_relative_to(root)),
             path.name): path
        for path in code_files(experiment, roots)
    }  # fmt: skip
    for name in sorted(named):  # by name inside the project: the same hash wherever the code lies
        h.update(name.encode() + b"\0" + named[name].read_bytes())
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
    """Hash of the data files' names and contents. A file's content hash is cached under its inode,
    size, mtime and ctime: an edit that keeps the size and resets the mtime still changes the ctime,
    which no user call can set back, so it is hashed again."""
    memo: dict[str, str] = {}
    if cache is not None and cache.exists():
        try:
            memo = json.loads(cache.read_text())
        except (OSError, ValueError):
            memo = {}
    parts, known = [], len(memo)
    for path in sorted(files):
        st = path.stat()
        key = f"{path.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        if key in memo:
            parts.append(f"{path.name}:{memo[key]}")
            continue
        content = file_digest(path)[:16]
        # a file changed in the last seconds may change again within the same timestamp tick (coarse on
        # older kernels): hash it, but remember it only once its times have settled
        if time.time() - max(st.st_mtime, st.st_ctime) > 2:
            memo[key] = content
        parts.append(f"{path.name}:{content}")
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
