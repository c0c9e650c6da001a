"""Figures as SVG: one house style, deterministic output, cached by what produced them."""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import pickle
from importlib.metadata import version
from pathlib import Path

from report.core import fingerprint
from report.core.atomic import atomic_write
from report.output import CACHE_FIX
from report.questions import Figure

REPORT = Path(__file__).resolve().parent  # the package whose modules a drawing may import
_MATPLOTLIB = version("matplotlib")  # in each figure's cache key: another version draws differently

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,  # resolution of the parts a drawing marks as rasterized
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "assignment-report",  # stable ids inside each SVG: byte-identical rebuilds
    "svg.fonttype": "none",  # text stays text: small, fast to print, selectable; DejaVu Sans or a fallback
}


def drawing_files(fig: Figure) -> list[Path]:
    """The project's files that draw ``fig``: its drawing module, the modules of this project that module
    imports (a plot that borrows a helper of its question's context or a number format) and theirs in
    turn, found as the code fingerprint finds an experiment's (``report.core.fingerprint``), and this file
    (the house style)."""
    module = inspect.getmodule(fig.draw)
    todo = [Path(inspect.getfile(module or fig.draw)).resolve()]
    seen: set[Path] = {Path(__file__).resolve()}
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(fingerprint._local_imports(path, {"report": REPORT}) - seen)
    return sorted(seen)


def cache_key(fig: Figure) -> str:
    """What determines the drawing: the data it is given, the code that draws it (``drawing_files``), the
    draw arguments and matplotlib's version."""
    h = hashlib.sha256(
        "\0".join([fig.draw.__qualname__, repr(sorted(fig.extra.items())), _MATPLOTLIB]).encode()
    )
    for path in drawing_files(fig):
        h.update(b"\0" + path.read_bytes())
    h.update(pickle.dumps(fig.data, protocol=5))
    return h.hexdigest()[:24]


def to_svg(fig: Figure, cache_dir: Path | None) -> str:
    """The figure as SVG text, from the cache when nothing that produced it has changed."""
    path = cache_dir / f"{cache_key(fig)}.svg" if cache_dir else None
    if path is not None and path.exists():
        return path.read_text(encoding="utf-8")
    svg = optimise(draw_svg(fig))
    if path is not None:
        atomic_write(path, svg, CACHE_FIX)
    return svg


def draw_svg(fig: Figure) -> str:
    """matplotlib's own SVG of the figure, before ``optimise``: every artist in a group with an id
    (``axes_1``, ``xtick_2``, ``line2d_3``; colour bars as ``colorbar_N``), for the tests that read it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(STYLE):
        mpl_fig = fig.draw(fig.data, **fig.extra)
        bars = [ax for ax in mpl_fig.axes if ax.get_label() == "<colorbar>"]
        for i, ax in enumerate(bars, 1):
            ax.set_gid(f"colorbar_{i}")
        buf = io.StringIO()
        mpl_fig.savefig(buf, format="svg", bbox_inches="tight", facecolor="white", metadata={"Date": None})
        plt.close(mpl_fig)
    return buf.getvalue()


def optimise(svg: str) -> str:
    """Collapse matplotlib's nested id-only groups and move styles into attributes (with scour).

    The drawing is unchanged; WeasyPrint's SVG painter walks every element and parses every style
    string on each print, so this saves ~0.15 s per PDF of the full report.
    """
    from scour import scour

    options = scour.sanitizeOptions(None)
    options.quiet = True
    options.remove_metadata = True
    options.strip_comments = True
    options.style_to_xml = True
    options.group_collapse = True
    options.strip_ids = True
    options.shorten_ids = True
    options.enable_viewboxing = False  # keep matplotlib's width and height in points
    return scour.scourString(svg, options)


def data_uri(svg: str) -> str:
    """Embed as its own image so element ids inside different figures never collide."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
