"""The one number format of the report: every value in prose and tables goes through these filters,
so a test can recompute exactly what the PDF shows from what the store holds.

How many digits a number gets is decided here, from what is known of its uncertainty, never in a
template: a value with a standard error is shown to the precision of that error (``num``, ``pct`` and
``pm`` take it); measured reals get three significant digits, with the zeros rounding made (−0.99972 is
"−1.00", an exact −1 "−1"); clock measurements two (``timed``); round-off one (``roundoff``); exact
settings and shares of counts no trailing zeros (``share``); counts that span magnitudes an SI prefix
(``si``); p-values two digits down to "< 0.001", more where two would round one across 0.05 or 0.01
(``pval``). An upper bound said as "at most" is rounded up (``sci``, ``roundoff``, ``pct`` and ``pp``
with ``up``)."""

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


def _decimals(err: float) -> int:
    """Decimal places that show an uncertainty ``err`` to one significant digit, or two when that digit is
    1 or 2 (where rounding to one would change it by up to a half); the value beside it gets the same."""
    exp = math.floor(math.log10(abs(err)))
    lead = round(abs(err) / 10**exp, 9)  # 0.3 / 10⁻¹ is 2.9999999999999996 in floating point
    return -exp + (1 if lead < 3 else 0)  # negative: round to tens, hundreds, …


def _significant(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits, with thousands separators and without an exponent."""
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    places = digits - 1 - exp
    rounded = round(x, places)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > exp:  # 9.96 -> 10.0 gains a digit
        places -= 1
        rounded = round(x, places)
    return f"{rounded:,.{max(0, places)}f}".replace("-", MINUS)


def num(value: Any, err: Any = None) -> str:
    """Integers exactly (with thousands separators); other values to three significant digits, or to the
    precision of their uncertainty ``err`` when there is one; below 10⁻³ or from 10⁶ as powers of ten."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    x = _finite(value)
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e15 and not isinstance(value, float):
        return f"{int(x):,}".replace("-", MINUS)
    e = _finite(err)
    if e:
        d = _decimals(e)
        return f"{round(x, d) + 0.0:,.{max(0, d)}f}".replace("-", MINUS)  # + 0.0: never "−0"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return sci(x)
    return _trim_exact(_significant(x, 3), x)  # thousands separators from 1,000 on, as for integers


def _trim(text: str) -> str:
    """No trailing zeros after a decimal point: "0.900" → "0.9", "3.00" → "3"."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _trim_exact(text: str, x: float) -> str:
    """``_trim`` where the shorter text is the value itself (a setting: 0.9 → "0.9"), not where rounding
    made the zeros: −0.99972 stays "−1.00" beside an exact −1, and 0.70998 "0.710" beside 0.683."""
    short = _trim(text)
    return short if math.isclose(float(short.replace(",", "").replace(MINUS, "-")), x, rel_tol=1e-9) else text


def roundoff(value: Any, up: bool = False) -> str:
    """A value that is zero up to floating-point round-off: one significant digit, since that is all of
    it that means anything (−8.288×10⁻¹⁸ → "−8×10⁻¹⁸"); ``up``: rounded up, for an upper bound."""
    return sci(value, 0, up)


def timed(value: Any) -> str:
    """Quantities measured with a clock (throughputs, speed ratios): two significant digits, because the
    same run repeated on a shared machine differs by several percent (2.663 → "2.7", 544.3 → "540")."""
    x = _finite(value)
    return "—" if x is None else _significant(x, 2)


def si(value: Any) -> str:
    """Counts that span magnitudes in one column (parameters, FLOPs) to three significant digits with an SI
    prefix: 62006 → "62.0 k", 11173962 → "11.2 M", so small and large rows read alike."""
    x = _finite(value)
    if x is None:
        return "—"
    x = float(f"{x:.3g}")  # 999,960 is "1.00 M", not "1,000 k"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{_significant(x / factor, 3)} {prefix}"
    return _significant(x, 3)


def integer(value: Any) -> str:
    x = _finite(value)
    return "—" if x is None else f"{round(x):,}".replace("-", MINUS)


def _up(x: float, decimals: int) -> float:
    """``x`` rounded up (toward +∞) at ``decimals`` places: an upper bound stays one ("at most" 1.332 is
    1.4, not 1.3). A value already on the grid (up to floating-point noise) stays as it is."""
    scaled = x * 10**decimals
    return math.ceil(scaled - 1e-9 * max(1.0, abs(scaled))) / 10**decimals


def pct(value: Any, err: Any = None, up: bool = False) -> str:
    """A measured fraction as a percentage: to two decimals (0.98123 → "98.12%"), or to the precision of its
    uncertainty ``err`` (a fraction too) when there is one; ``up``: rounded up, for an upper bound."""
    x = _finite(value)
    if x is None:
        return "—"
    e = _finite(err)
    decimals = max(0, _decimals(100 * e)) if e else 2
    rounded = _up if up else round
    while x != 1 and rounded(100 * x, decimals) == 100 and decimals < 6:
        decimals += 1  # 0.99998 is "99.998%", never a "100.00%" the store does not hold
    return f"{rounded(100 * x, decimals) + 0.0:.{decimals}f}%".replace("-", MINUS)


def share(value: Any) -> str:
    """An exact fraction (a setting, a share of a count) as a percentage to three significant digits and
    no trailing zeros: 0.2 → "20%", 0.99951 → "99.95%" is "100%"; never "20.00%"."""
    x = _finite(value)
    if x is None:
        return "—"
    return _trim(_significant(100 * x, 3)) + "%"


LEVELS = (0.05, 0.01)  # the conventional significance levels a printed p-value must not round across


def pval(value: Any) -> str:
    """A p-value to two significant digits, a trailing zero kept (0.0020 → "0.0020"), or more where two
    would round it across a conventional level (0.0499 → "0.0499"), except a p of one (Holm's correction
    caps at it); below 0.001 as "< 0.001" (smaller values add nothing)."""
    x = _finite(value)
    if x is None:
        return "—"
    if x < 0.001 or x == 1:
        return "< 0.001" if x < 0.001 else "1"
    digits = 2
    while any(x < level <= float(_significant(x, digits)) for level in LEVELS) and digits < 6:
        digits += 1  # 0.0499 is "0.0499", never a "0.050" beside a verdict of "significant"
    return _significant(x, digits)


def sci(value: Any, decimals: int = 1, up: bool = False) -> str:
    """Scientific notation with a real times sign: 0.001 → "1×10⁻³", 0.0025 → "2.5×10⁻³", and a zero that
    rounding made kept: 9.03×10⁻⁶ → "9.0×10⁻⁶"; ``up``: rounded up, for an upper bound (a largest error
    said as "at most": 1.332×10⁻¹⁵ → "1.4×10⁻¹⁵")."""
    x = _finite(value)
    if x is None:
        return "—"
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    mant = exact = x / 10**exp
    if up:
        mant = _up(mant, decimals)
    if abs(round(mant, decimals)) >= 10:
        mant, exact, exp = mant / 10, exact / 10, exp + 1
    m = _trim_exact(f"{mant:.{decimals}f}", exact)  # a zero that rounding up made is kept too
    return f"{m}×10{str(exp).translate(_SUPERSCRIPT)}".replace("-", MINUS)


def pm(pair: Sequence[Any]) -> str:
    """A (mean, std) pair of fractions, both to the precision of the std: (0.9812, 0.0005) → "98.12 ± 0.05%",
    (0.9812, 0.012) → "98.1 ± 1.2%"."""
    mean, std = pair
    m, s = _finite(mean), _finite(std)
    if m is None:
        return "—"
    if not s:
        return pct(m)
    d = max(0, _decimals(100 * s))
    return f"{round(100 * m, d) + 0.0:.{d}f} ± {100 * s:.{d}f}%".replace("-", MINUS)


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


def pp(value: Any, decimals: int = 2, up: bool = False) -> str:
    """A difference of two fractions in percentage points: 0.0123 → "1.23" (the words follow in the text);
    ``up``: rounded up, for an upper bound."""
    x = _finite(value)
    if x is None:
        return "—"
    return f"{(_up if up else round)(100 * x, decimals) + 0.0:.{decimals}f}".replace("-", MINUS)


def text(value: Any) -> str:
    return str(value)


def join_and(items: Sequence[Any]) -> str:
    """["a", "b", "c"] → "a, b and c": the one list-in-a-sentence rule of the report."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


FILTERS = {
    "num": num,
    "int": integer,
    "pct": pct,
    "share": share,
    "sci": sci,
    "pm": pm,
    "pp": pp,
    "pval": pval,
    "si": si,
    "timed": timed,
    "roundoff": roundoff,
    "dur": dur,
    "text": text,
}


def apply(fmt: str, value: Any) -> str:
    if fmt not in FILTERS:
        raise ValueError(f"unknown number format {fmt!r}; use one of {', '.join(FILTERS)}")
    return FILTERS[fmt](value)
