"""Profiles and ``--set key=value`` overrides, validated against each experiment's config dataclass.

Configs are frozen dataclasses (plain data, one per profile) in each experiment's torch-free config
module (``experiments/configs/``), imported here: every command, ``report.toml`` and the freshness rule
read the real field types and ranges, and one grammar (``convert``) turns a text into a value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from experiments import configs
from report.core.errors import ConfigError

PROFILES: tuple[str, ...] = ("smoke", "quick", "full")  # what the reader gets: tests, a quick look, the study
STAND_IN = "quick"  # what runs in place of a full study this machine cannot do (report.core.reference)
RETIRED = {  # profiles that no longer exist, with what to use instead
    "cpu": "full (the default) now runs each experiment's full study where this machine can, and takes "
    "one that needs a GPU from the reference results; use full, or quick for a quick look",
}


def cuda_present() -> bool:
    """Whether an NVIDIA driver is visible, checked without importing torch."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def accelerator_present(device: str = "auto") -> bool:
    """Whether ``--device`` selects an accelerator here (CUDA, or Apple's MPS), decided without torch."""
    if device in ("cuda", "mps"):
        return True
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return device == "auto" and (cuda_present() or apple)


def default_profile() -> str:
    """``full`` (``REPORT_PROFILE`` overrides): the whole study, whatever the machine."""
    env = os.environ.get("REPORT_PROFILE")
    return check_profile(env) if env else "full"


def check_profile(name: str) -> str:
    if name in RETIRED:
        raise ConfigError(f"profile {name!r} no longer exists: {RETIRED[name]}")
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    return name


def parse_overrides(items: list[str] | None) -> dict[str, dict[str, str]]:
    """Split ``["q3.sweep_epochs=5", ...]`` into ``{"q3": {"sweep_epochs": "5"}}``; values stay strings."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        exp, dot, field = key.strip().partition(".")
        if not sep or not dot or not exp or not field:
            raise ConfigError(
                f"--set {item!r} is not of the form EXPERIMENT.FIELD=VALUE (e.g. q3.sweep_epochs=5)"
            )
        out.setdefault(exp, {})[field] = value.strip()
    return out


def convert(where: str, example: str, hint: Any, raw: str) -> Any:
    """A ``--set`` text as a value of the field's declared type: the one grammar of values, for the
    command line, ``report.toml`` and freshness alike. ``where`` starts an error's one line; ``example``
    (``q3.lrs=0.0001,0.001``) is what a list's error suggests."""
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if raw not in [str(a) for a in args]:
            raise ConfigError(f"{where}: choose one of {', '.join(map(str, args))}")
        return next(a for a in args if str(a) == raw)
    if origin in (tuple, list):
        item = args[0] if args else str
        parts = [p.strip() for p in raw.split(",")]
        if not all(parts):
            raise ConfigError(f"{where}: give a comma-separated list without empty items, e.g. {example}")
        return tuple(convert(where, example, item, p) for p in parts)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if raw.lower() in ("none", "null", ""):
            return None
        return convert(where, example, next(a for a in args if a is not type(None)), raw)
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false")
    if hint in (int, float):
        try:
            value = hint(raw)
        except ValueError:
            raise ConfigError(f"{where}: expected {'an integer' if hint is int else 'a number'}") from None
        return value
    return raw


def spell(value: Any) -> str:
    """A config value in one ``--set`` spelling per meaning (``1e-3`` and ``0.001`` are ``0.001``,
    ``True`` is ``true``, a tuple is comma-separated), so a fingerprint does not change with spelling."""
    if isinstance(value, (tuple, list)):
        return ",".join(spell(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def example(experiment: str, key: str, config: Any = None) -> str:
    """``q3.lrs=0.0001,0.0003,…``: the setting with its value in ``config`` (by default, the default
    config's), for an error to suggest."""
    config = configs.get(experiment).Config() if config is None else config
    return f"{experiment}.{key}={spell(getattr(config, key))}"


def field_hints(experiment: str) -> dict[str, Any]:
    """Field name -> declared type (with its ``Range``) of an experiment's ``Config``, imported from its
    torch-free config module (``experiments/configs/``)."""
    return typing.get_type_hints(configs.get(experiment).Config, include_extras=True)


def profile_config(experiment: str, profile: str) -> Any:
    """The ``Config`` an experiment runs under ``profile`` before any ``--set``."""
    return configs.get(experiment).PROFILES[profile]


def canonical(experiment: str, key: str, text: str, where: str) -> str:
    """A ``--set`` value checked against its field's type and range and spelled canonically (``spell``);
    a value that does not fit is a one-line error naming ``where`` it came from."""
    hints = field_hints(experiment)
    if key not in hints:
        raise ConfigError(f"{where}: {experiment} has no setting {key!r}; valid: {', '.join(sorted(hints))}")
    value = convert(where, example(experiment, key), hints[key], text.strip())
    label = f"--set {experiment}.{key}" if where.startswith("--set") else where
    check_value(label, value, hints[key], example(experiment, key))
    return spell(value)


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric config field, declared with it: ``Annotated[float, Range(0, 1)]``
    (each element of a tuple field). Every value must also be finite, so NaN, which makes every
    comparison false, can never pass a check vacuously; ``hi`` bounds what memory depends on."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False

    def holds(self, value: float) -> bool:
        return (
            math.isfinite(value)
            and (value > self.lo if self.lo_open else value >= self.lo)
            and (value < self.hi if self.hi_open else value <= self.hi)
        )

    def describe(self, integer: bool) -> str:
        """``an integer from 1 to 100``, ``a finite number > 0``, ``a number in [0, 1)``."""
        what = "an integer" if integer else "a finite number"
        lo, hi = (f"{int(v):,}" if math.isfinite(v) and v == int(v) else f"{v:g}" for v in (self.lo, self.hi))
        if math.isinf(self.lo) and math.isinf(self.hi):
            return what
        if math.isinf(self.hi):
            return f"{what} {'>' if self.lo_open else '>='} {lo}"
        if math.isinf(self.lo):
            return f"{what} {'<' if self.hi_open else '<='} {hi}"
        if integer and not (self.lo_open or self.hi_open):
            return f"{what} from {lo} to {hi}"
        return f"{what} in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


FINITE = Range()  # a numeric field that declares no range of its own


def check_value(label: str, value: Any, hint: Any, example: str = "") -> None:
    """The one rule for a setting's value: a list names each value once (a repeat would train and store
    the same point twice), and a number is finite and inside the range its field declares (a list's one
    by one). One line names the setting (``label``: where it was given), the value and the fix (with
    ``example``, a whole valid setting, where a list's is given)."""
    if isinstance(value, (tuple, list)):
        twice = next((v for i, v in enumerate(value) if v in value[:i]), None)
        if twice is not None:
            like = f", e.g. {example}" if example else ""
            raise ConfigError(f"{label}: {spell(twice)} is given twice; give each value once{like}")
    rng = next((a for a in get_args(hint) if isinstance(a, Range)), FINITE)
    kind = get_args(hint)[0] if get_origin(hint) is Annotated else hint
    if get_origin(kind) in (tuple, list):
        kind = (get_args(kind) or (str,))[0]
    if kind not in (int, float):
        return
    for v in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not rng.holds(v):
            raise ConfigError(f"{label}={v}: give {rng.describe(kind is int)}")


def check_ranges(exp: str, config: Any) -> None:
    """Every numeric field of a resolved config against its declared range (profile values included)."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for f in dataclasses.fields(config):
        check_value(
            f"{exp}.{f.name}", getattr(config, f.name), hints[f.name], example(exp, f.name, type(config)())
        )


def apply_overrides(exp: str, config: Any, raw: dict[str, str]) -> Any:
    """Return ``config`` with ``raw`` applied, each value converted to the field's declared type."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, value in raw.items():
        if name not in fields:
            raise ConfigError(
                f"--set {exp}.{name}: {exp} has no setting {name!r}; valid: {', '.join(sorted(fields))}"
            )
        changes[name] = convert(f"--set {exp}.{name}={value}", example(exp, name, config), hints[name], value)
    new = dataclasses.replace(config, **changes)
    check_ranges(exp, new)
    check = getattr(new, "validate", None)
    if check is not None:
        check()
    return new


def check_settings(*rules: tuple[bool, str] | tuple[bool, str, tuple[str, ...]]) -> None:
    """Stop at the first broken ``(holds, message)`` rule, before any training; a rule may name the
    settings it concerns, ``(holds, message, keys)``, for an error that says where each was given."""
    for holds, message, *keys in rules:
        if not holds:
            raise ConfigError(message, *keys)


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)
