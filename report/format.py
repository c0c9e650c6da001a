"""The one number format of the report: every value in prose and tables goes through these filters,
so a test can recompute exactly what the PDF shows from what the store holds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MINUS = "\u2212"


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def num(value: Any, digits: int = 4) -> str:
    """General numbers: integers with thousands separators, others to ``digits`` significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    x = _finite(value)
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e15 and not isinstance(value, float):
        return f"{int(x):,}".replace("-", MINUS)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return sci(x, digits - 1)
    return f"{x:.{digits}g}".replace("-", MINUS)


def integer(value: Any) -> str:
    x = _finite(value)
    return "—" if x is None else f"{round(x):,}".replace("-", MINUS)


def pct(value: Any, decimals: int = 2) -> str:
    """A fraction as a percentage: 0.98123 → "98.12%"."""
    x = _finite(value)
    return "—" if x is None else f"{100 * x:.{decimals}f}%".replace("-", MINUS)


def sci(value: Any, decimals: int = 1) -> str:
    """Scientific notation with a real times sign: 0.001 → "1×10⁻³", 0.0025 → "2.5×10⁻³"."""
    x = _finite(value)
    if x is None:
        return "—"
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    mant = x / 10**exp
    if round(abs(mant), decimals) >= 10:
        mant, exp = mant / 10, exp + 1
    m = f"{mant:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{m}×10{str(exp).translate(_SUPERSCRIPT)}".replace("-", MINUS)


def pm(pair: Sequence[Any], decimals: int = 2) -> str:
    """A (mean, std) pair of fractions: (0.9812, 0.0005) → "98.12 ± 0.05%"."""
    mean, std = pair
    m, s = _finite(mean), _finite(std)
    if m is None:
        return "—"
    if s is None:
        return pct(m, decimals)
    return f"{100 * m:.{decimals}f} ± {100 * s:.{decimals}f}%".replace("-", MINUS)


def dur(seconds: Any) -> str:
    """Durations: 3.24 → "3.2 s", 245 → "4 min 05 s", 7300 → "2 h 01 min"."""
    x = _finite(seconds)
    if x is None:
        return "—"
    if x < 1:
        return f"{1000 * x:.0f} ms"
    if x < 60:
        return f"{x:.1f} s"
    if x < 3600:
        m, s = divmod(round(x), 60)
        return f"{m} min {s:02d} s"
    h, m = divmod(round(x / 60), 60)
    return f"{h} h {m:02d} min"


def pp(value: Any, decimals: int = 2) -> str:
    """A difference of two fractions in percentage points: 0.0123 → "1.23" (the words follow in the text)."""
    x = _finite(value)
    return "—" if x is None else f"{100 * x:.{decimals}f}".replace("-", MINUS)


def text(value: Any) -> str:
    return str(value)


def join_and(items: Sequence[Any]) -> str:
    """["a", "b", "c"] → "a, b and c": the one list-in-a-sentence rule of the report."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


FILTERS = {"num": num, "int": integer, "pct": pct, "sci": sci, "pm": pm, "pp": pp, "dur": dur, "text": text}
WORDS = {"join_and": join_and}  # filters for sentences, not table cells


def apply(fmt: str, value: Any) -> str:
    if fmt not in FILTERS:
        raise ValueError(f"unknown number format {fmt!r}; use one of {', '.join(FILTERS)}")
    return FILTERS[fmt](value)
