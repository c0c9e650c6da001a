"""LaTeX math to inline SVG with ziamath: no TeX, no JavaScript, identical in HTML and PDF.

Sizes are converted to ``em`` so an equation scales with the text around it in both outputs, and each
SVG carries its LaTeX source as an accessible label.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import warnings
from pathlib import Path

from report.errors import TemplateError

_SIZE = 24.0  # ziamath's em in px; only the ratio matters because output is in em
_VIEWBOX = re.compile(r'width="([\d.]+)" height="([\d.]+)" viewBox="([-\d. ]+)"')


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
        key = hashlib.sha256(f"{display}:{latex}".encode()).hexdigest()[:20]
        if key not in self.memo:
            self.memo[key] = _typeset(latex, display)
            self.dirty = True
        return self.memo[key]

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.memo), encoding="utf-8")
        tmp.replace(self.path)


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
        raise TemplateError(f"cannot typeset ${latex}$: {e}") from None
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
    kind = "math display" if display else "math"
    return f'<span class="{kind}">{svg}</span>'
