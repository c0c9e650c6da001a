"""LaTeX math to inline SVG with ziamath: no TeX, no JavaScript, identical in HTML and PDF.

Sizes are converted to ``em`` so an equation scales with the text around it in both outputs, and each
SVG carries its LaTeX source as an accessible label.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
import warnings
from importlib.metadata import version
from pathlib import Path

from report.core.atomic import atomic_write
from report.core.errors import TemplateError
from report.output import CACHE_FIX

MINUS_SIGN = "\u2212"
_SIZE = 24.0  # ziamath's em in px; only the ratio matters because output is in em
_VIEWBOX = re.compile(r'width="([\d.]+)" height="([\d.]+)" viewBox="([-\d. ]+)"')
_GLYPH = re.compile(r'<path d="([^"]*)" fill="currentColor" />')
# in the cache key: a formula cached in an older form, by another ziamath or by another version of this
# module (a cache kept across edits of it) is typeset again
_FORMAT = f"one-path:{version('ziamath')}:{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}"


class MathCache:
    """Typesets formulas once; a disk cache keeps re-renders of an unchanged report fast."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.memo: dict[str, str] = {}
        self.dirty = False
        if path is not None and path.exists():
            try:
                self.memo = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.memo = {}

    def svg(self, latex: str, display: bool) -> str:
        """HTML for one formula: simple inline ones as text, the rest as ziamath SVG."""
        if not display:
            try:
                text, label = _simple_html(latex), html.escape(latex, quote=True)
                return f'<span class="math math-text" role="math" aria-label="{label}">{text}</span>'
            except _NotSimple:
                pass
        key = hashlib.sha256(f"{_FORMAT}:{display}:{latex}".encode()).hexdigest()[:20]
        if key not in self.memo:
            self.memo[key] = _typeset(latex, display)
            self.dirty = True
        return self.memo[key]

    def save(self) -> None:
        """Write the formulas typeset here, with any another build wrote since this one read the file
        (builds sharing a ``--cache`` folder keep each other's)."""
        if self.path is None or not self.dirty:
            return
        with contextlib.suppress(OSError, ValueError):
            self.memo = {**json.loads(self.path.read_text(encoding="utf-8")), **self.memo}
        atomic_write(self.path, json.dumps(self.memo), CACHE_FIX)


def _typeset(latex: str, display: bool) -> str:
    with warnings.catch_warnings():  # ziamath uses a deprecated importlib API; not our users' concern
        warnings.simplefilter("ignore", DeprecationWarning)
        import ziamath

    ziamath.config.svg2 = False  # plain paths, no <symbol id=...>: many SVGs can share one page
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            svg = ziamath.Math.fromlatex(latex, size=_SIZE, inline=not display, color="currentColor").svg()
    except Exception as e:  # ziamath raises several types for bad LaTeX
        raise TemplateError(
            f"cannot typeset ${latex}$: {str(e) or type(e).__name__} (ziamath); check its LaTeX"
        ) from None
    m = _VIEWBOX.search(svg)
    if m is None:
        raise TemplateError(f"unexpected SVG from ziamath for ${latex}$")
    width, height = float(m.group(1)), float(m.group(2))
    min_y = float(m.group(3).split()[1])
    descent = height + min_y  # the baseline is y = 0
    label = html.escape(latex, quote=True)
    svg = svg.replace(
        m.group(0),
        f'width="{width / _SIZE:.3f}em" height="{height / _SIZE:.3f}em" viewBox="{m.group(3)}" '
        f'role="img" aria-label="{label}"',
        1,
    )
    svg = svg.replace("<svg ", f'<svg style="vertical-align:{-descent / _SIZE:.3f}em" ', 1)
    svg = _one_path(svg)
    kind = "math display" if display else "math"
    return f'<span class="{kind}">{svg}</span>'


def _one_path(svg: str) -> str:
    """ziamath's glyphs, one ``<path>`` each, as a single path where the first one was.

    They share one fill, and a font's outlines wind the same way, so the union is drawn the same (but
    for anti-aliasing where two glyphs touch); WeasyPrint's per-element work for ~1000 glyph paths was
    5% of printing the full report.
    """
    first, glyphs = _GLYPH.search(svg), _GLYPH.findall(svg)
    if first is None or len(glyphs) < 2:
        return svg
    at = first.start()  # the text before the first glyph is the same once the glyphs are removed
    rest = _GLYPH.sub("", svg)
    return f'{rest[:at]}<path d="{" ".join(glyphs)}" fill="currentColor" />{rest[at:]}'


# ---- simple inline math as text --------------------------------------------------------------------
# Most inline formulas are a symbol with a subscript (w_1, \theta, y = 1). As text in the page's own
# serif italic they print ten times faster in WeasyPrint than as glyph outlines, stay selectable and
# searchable in the PDF, and look the same in HTML and PDF. Anything richer falls back to ziamath.

_GREEK = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ϵ",
    "varepsilon": "ε",
    "zeta": "ζ",
    "eta": "η",
    "theta": "θ",
    "iota": "ι",
    "kappa": "κ",
    "lambda": "λ",
    "mu": "μ",
    "nu": "ν",
    "xi": "ξ",
    "pi": "π",
    "rho": "ρ",
    "sigma": "σ",
    "tau": "τ",
    "phi": "ϕ",
    "varphi": "φ",
    "chi": "χ",
    "psi": "ψ",
    "omega": "ω",
    "Gamma": "Γ",
    "Delta": "Δ",
    "Theta": "Θ",
    "Lambda": "Λ",
    "Sigma": "Σ",
    "Phi": "Φ",
    "Omega": "Ω",
    "ell": "ℓ",
}
_SYMBOLS = {
    "top": "⊤",
    "in": "∈",
    "le": "≤",
    "leq": "≤",
    "ge": "≥",
    "geq": "≥",
    "ne": "≠",
    "neq": "≠",
    "to": "→",
    "infty": "∞",
    "pm": "±",
    "mp": "∓",
    "times": "×",
    "cdot": "·",
    "approx": "≈",
    "mapsto": "↦",
    "dots": "…",
    "ldots": "…",
    "perp": "⊥",
    "circ": "∘",
    "nabla": "∇",
    "partial": "∂",
    "odot": "⊙",
    "lVert": "‖",
    "rVert": "‖",
    "|": "‖",
    ",": "\u2009",
    ";": "\u2005",
    "quad": "\u2003",
    " ": " ",
    "{": "{",
    "}": "}",
    "%": "%",
}
_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "E": "𝔼"}
_SPACED = set("=+<>∈≤≥≠→≈↦×±∓·" + "\u2212") | {"&lt;", "&gt;"}
_FUNCTIONS = ("log", "ln", "exp", "min", "max", "sin", "cos", "tanh", "det", "diag", "arg")
_ACCENTS = {"tilde": "\u0303", "hat": "\u0302", "bar": "\u0304"}
_TOKEN = re.compile(r"\\([a-zA-Z]+|.)|([A-Za-z])|([0-9.]+)|(\s+)|([_^{}])|(.)")
_PLAIN = set("+-=()[],./|'<>:!")


class _NotSimple(Exception):
    pass


def _simple_html(latex: str) -> str:
    """HTML for a simple inline formula, or ``_NotSimple`` when it needs real typesetting."""
    tokens = list(_TOKEN.finditer(latex))
    pos = 0

    def atom() -> str:
        nonlocal pos
        while pos < len(tokens) and tokens[pos].group(4):
            pos += 1
        if pos >= len(tokens):
            raise _NotSimple
        m = tokens[pos]
        pos += 1
        cmd, letter, number, space, special, other = m.groups()
        if letter:
            return f"<i>{letter}</i>"
        if number:
            return number
        if space:
            return ""
        if special == "{":
            return group("}")
        if special:
            raise _NotSimple
        if other:
            if other not in _PLAIN:
                raise _NotSimple
            return {"-": MINUS_SIGN, "'": "′", "<": "&lt;", ">": "&gt;", ",": ", "}.get(other, other)
        if cmd in _GREEK:
            return f"<i>{_GREEK[cmd]}</i>" if cmd[0].islower() else _GREEK[cmd]
        if cmd in _SYMBOLS:
            return _SYMBOLS[cmd]
        if cmd in _FUNCTIONS:
            return cmd + "\u2009"
        if cmd in ("mathrm", "text", "operatorname"):
            return _raw_group()
        if cmd == "mathbb":
            letter = _raw_group()
            if letter not in _BLACKBOARD:
                raise _NotSimple
            return _BLACKBOARD[letter]
        if cmd in _ACCENTS:
            base = atom()
            return re.sub(r"(</i>|$)", _ACCENTS[cmd] + r"\1", base, count=1)
        raise _NotSimple

    def _raw_group() -> str:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos].group(5) != "{":
            raise _NotSimple
        end = pos + 1
        while end < len(tokens) and tokens[end].group(5) != "}":
            if tokens[end].group(1) or tokens[end].group(5):
                raise _NotSimple
            end += 1
        text = "".join(t.group(0) for t in tokens[pos + 1 : end])
        pos = end + 1
        return html.escape(text)

    def group(close: str | None) -> str:
        nonlocal pos
        out = []
        while pos < len(tokens):
            special = tokens[pos].group(5)
            if close is not None and special == close:
                pos += 1
                return "".join(out)
            if special in ("_", "^"):
                pos += 1
                out.append(
                    f"<{'sub' if special == '_' else 'sup'}>{atom()}</{'sub' if special == '_' else 'sup'}>"
                )
                continue
            item = atom()
            # binary operators and relations get thin spaces, except a leading (unary) sign
            unary = not out or out[-1] in ("(", "[", "{") or out[-1].endswith("\u2009")
            out.append(f"\u2009{item}\u2009" if item in _SPACED and not unary else item)
        if close is not None:
            raise _NotSimple
        return "".join(out)

    return group(None)
