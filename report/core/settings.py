"""The project settings file, ``report.toml``: choices that must stick across commands.

Why a file of its own rather than a table in ``pyproject.toml``: these are choices about where data and
results live on one machine and which variant of the study to build, made by the person running it, and
often differ between a laptop, a GPU box and CI; ``pyproject.toml`` describes the package and is the same
everywhere. ``report.toml`` is found in the current folder, else beside ``build.py``
(``REPORT_SETTINGS=FILE`` names another). One precedence rule, for every command: command line, then
environment variables, then this file, then the built-in defaults::

    profile = "quick"
    data_dir = "../shared/data"

    [set.q4]                 # --set q4.dataset=fashion-mnist, for every profile
    dataset = "fashion-mnist"

    [profiles.full.set.q3]   # only for --profile full
    seeds = 5
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report.core.config import PROFILES, RETIRED, canonical, field_hints, profile_config
from report.core.errors import ConfigError
from report.core.manifest import PROJECT
from report.core.manifest import load as load_manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAME = "report.toml"
CHOICES: dict[str, tuple[str, ...] | None] = {  # top-level keys; None: any text
    "profile": PROFILES,
    "data_dir": None,
    "store": None,
    "out": None,
    "cache": None,
    "device": ("auto", "cpu", "cuda", "mps"),
    "format": ("html", "pdf", "all"),
    "paper": ("a4", "letter"),
    "track": ("none", "mlflow"),
    "executor": ("local", "ray", "slurm"),
    "ray_address": None,
    "slurm_partition": None,
    "tracking_uri": None,
}
# the command line takes these in any case (Typer's choices: ``--paper A4`` is a4), and so does report.toml
CASELESS = ("format", "paper", "track", "executor")
TYPED: dict[str, type] = {
    "seed": int,
    "jobs": int,
    "strict_versions": bool,
    "slurm_gpus": int,
    "slurm_time": int,
    "slurm_parallelism": int,
}
PATHS = ("data_dir", "store", "out", "cache")


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "report.toml:3"


@dataclass(frozen=True)
class Settings:
    path: Path | None = None
    values: dict[str, Setting] = field(default_factory=dict)  # top-level key -> setting
    sets: dict[str, dict[str, Setting]] = field(default_factory=dict)  # "" or a profile -> "q4.dataset" -> …

    def overrides(self, profile: str) -> dict[str, Setting]:
        """``--set`` values from the file for ``profile``: the general ones, then the profile's own."""
        return {**self.sets.get("", {}), **self.sets.get(profile, {})}


def find() -> Path | None:
    named = os.environ.get("REPORT_SETTINGS")
    if named:
        if not Path(named).is_file():
            raise ConfigError(
                f"REPORT_SETTINGS={named}: no such file; point it at a settings file or unset it"
            )
        return Path(named)
    if Path(NAME).is_file():  # named as its messages name it: `report.toml:7`, not the absolute path
        return Path(NAME)
    return PROJECT / NAME if (PROJECT / NAME).is_file() else None


def load(path: Path | None = None) -> Settings:
    """The settings file's values with their file:line, validated; an empty ``Settings`` without a file."""
    path = path or find()
    if path is None:
        return Settings()
    fix = "fix it, move it aside, or name another with REPORT_SETTINGS"
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors save, is no error
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the settings file is not UTF-8 text (a binary file?); {fix}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the settings file ({e.strerror}); {fix}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = re.search(r"line (\d+)", str(e))
        said = str(e).split(" (at")[0]
        fix = (
            "remove the repeated key or table"  # "Cannot overwrite a value", "Cannot declare (…) twice"
            if re.search(r"overwrite|twice", said)
            else "write it as TOML (key = value, texts in quotes), as docs/settings.md shows"
        )
        raise ConfigError(f"{path}:{line.group(1) if line else 1}: {said}; {fix}") from None
    values: dict[str, Setting] = {}
    sets: dict[str, dict[str, Setting]] = {}
    for key, value in data.items():
        where = f"{path}:{_line(text, '', key)}"
        if key == "set":
            sets[""] = _sets(value, path, text, "set")
        elif key == "profiles":
            for profile, table in _table(
                value, where, "profiles", "[profiles.full.set.q3], then its settings"
            ).items():
                if profile in RETIRED:
                    raise ConfigError(f"{where}: [profiles.{profile}] no longer exists: {RETIRED[profile]}")
                if profile not in PROFILES:
                    raise ConfigError(
                        f"{where}: [profiles.{profile}]: choose a profile of {', '.join(PROFILES)}"
                    )
                extra = set(
                    _table(
                        table, where, f"profiles.{profile}", f"[profiles.{profile}.set.q3], then its settings"
                    )
                ) - {"set"}
                if extra:
                    raise ConfigError(
                        f"{where}: [profiles.{profile}] takes only a set table, not {sorted(extra)[0]}"
                    )
                sets[profile] = _sets(table.get("set", {}), path, text, f"profiles.{profile}.set")
        else:
            value = _check(key, value, where)
            if key in PATHS and value == "":  # else it would be this file's folder, unasked
                raise ConfigError(
                    f"{where}: {key} = '': an empty path names no folder; give a folder ('.' for this "
                    "file's), or remove the line for the default"
                )
            if key in PATHS:  # relative to the file, so the settings mean the same from any folder
                value = str((path.parent / value).resolve())
            values[key] = Setting(value, where)
    return Settings(path, values, sets)


def _check(key: str, value: Any, where: str) -> Any:
    if key in TYPED:
        kind = TYPED[key]
        if type(value) is not kind or (key == "seed" and isinstance(value, int) and value < 0):
            wanted = "a whole number of 0 or more" if kind is int else "true or false"
            raise ConfigError(f"{where}: {key} = {value!r}: give {wanted}")
        return value
    if key not in CHOICES:
        valid = ", ".join([*CHOICES, *TYPED, "set", "profiles"])
        raise ConfigError(f"{where}: unknown setting {key!r}; valid: {valid}")
    choices = CHOICES[key]
    if key == "profile" and value in RETIRED:
        raise ConfigError(f"{where}: profile = {value!r} no longer exists: {RETIRED[value]}")
    if isinstance(value, str) and key in CASELESS:
        value = value.lower()
    if not isinstance(value, str) or (choices and value not in choices):
        raise ConfigError(
            f"{where}: {key} = {value!r}: choose " + (", ".join(choices) if choices else "a text")
        )
    return value


def _table(value: Any, where: str, name: str, like: str) -> dict[str, Any]:
    """``value`` if it is a TOML table; else one line with what it should be (``like``)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} must be a table: {like}")
    return value


def spelled(name: str) -> str:
    """An experiment's name, or a ``--set`` value's, as the manifest spells it: ``Q3`` is ``q3`` and
    ``Q3.seeds=5`` is ``q3.seeds=5``, as ``--paper A4`` is ``a4``; anything else as it was given."""
    experiment, dot, rest = name.partition(".")
    known = {n.casefold(): n for n in load_manifest().names}
    return known.get(experiment.casefold(), experiment) + dot + rest


def _sets(value: Any, path: Path, text: str, section: str) -> dict[str, Setting]:
    """``[set.q4] dataset = "…"`` as ``{"q4.dataset": Setting("…", "report.toml:7")}``, names checked."""
    out = {}
    manifest = load_manifest()
    like = f"[{section}.q3], then its settings"
    for experiment, table in _table(value, f"{path}:{_line(text, '', section)}", section, like).items():
        where = f"{path}:{_line(text, f'{section}.{experiment}', None)}"
        name = spelled(experiment)  # [set.Q3] is [set.q3]
        if name not in manifest.names:
            known = ", ".join(manifest.names)
            raise ConfigError(f"{where}: [{section}.{experiment}]: no such experiment; choose from {known}")
        fields = field_hints(name)
        for key, raw in _table(
            table, where, f"{section}.{experiment}", f"[{section}.{experiment}], then key = value lines"
        ).items():
            where = f"{path}:{_line(text, f'{section}.{experiment}', key)}"
            if key not in fields:
                raise ConfigError(
                    f"{where}: {name} has no setting {key!r}; valid: {', '.join(sorted(fields))}"
                )
            value = canonical(name, key, _as_text(raw, where, f"{name}.{key}"), f"{where}: {key}")
            out[f"{name}.{key}"] = Setting(value, where)
    return out


def _as_text(raw: Any, where: str, name: str) -> str:
    """A TOML value in the ``--set`` spelling, so it goes through the same conversion and checks; a value
    that spelling cannot carry (an empty list or list item) is one line with an example in TOML."""
    scalar = (str, int, float, bool)
    if isinstance(raw, list) and raw and all(isinstance(v, scalar) and str(v).strip() for v in raw):
        return ",".join(_as_text(v, where, name) for v in raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, scalar):
        return str(raw)
    if isinstance(raw, list) and all(isinstance(v, scalar) for v in raw):  # empty, or an empty item
        raise ConfigError(f"{where}: {name}: {_toml_fix(name)}")
    raise ConfigError(f"{where}: {name}: give a text, number, true/false or a list of them")


def _toml_fix(name: str) -> str:
    """What an empty list (or list item) should be, with the full profile's value as the file writes it:
    ``give one or more values, none empty, e.g. lrs = [0.0001, …]``, or for a single value ``seeds = 3``."""
    experiment, key = name.split(".", 1)
    value = getattr(profile_config(experiment, "full"), key)

    def toml(v: Any) -> str:
        return f'"{v}"' if isinstance(v, str) else "true" if v is True else "false" if v is False else repr(v)

    if isinstance(value, tuple):
        return f"give one or more values, none empty, e.g. {key} = [{', '.join(map(toml, value))}]"
    return f"give one value, not a list, e.g. {key} = {toml(value)}"


def _line(text: str, section: str, key: str | None) -> int:
    """The line of ``key`` in table ``section`` ("" for the top level), or of the table's header."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1).replace(" ", "").replace('"', "")
            if key is None and current == section:
                return number
            continue
        name = re.match(r'"?([A-Za-z0-9_.-]+)"?\s*=', stripped)
        if name and key is not None and current == section and name.group(1) == key:
            return number
        if name and key is not None and not section and name.group(1) == key.split(".")[0] and current == "":
            return number
    return 1
