"""Every figure of a real smoke build, read from its SVG: no data drawn outside its axes, every colour bar
labelled, no tick label repeated on an axis (the referee's findings on Figures 4, 5 and 10)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from report.core.store import Store
from report.figures import draw_svg
from report.plots.q3 import confidence
from report.questions import Figure, Results, build

pytestmark = pytest.mark.slow


def _figures(store) -> list[tuple[str, Figure]]:
    context = build(Results(Store(store), "smoke"))
    return [(f"{q}.{name}", fig) for q, c in context.items() for name, fig in c.get("figures", {}).items()]


SVG = "{http://www.w3.org/2000/svg}"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _rects(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Each clip path's rectangle as (left, top, right, bottom), by id."""
    out = {}
    for clip in root.iter(f"{SVG}clipPath"):
        r = clip.find(f"{SVG}rect")
        x, y, w, h = (float(r.get(k)) for k in ("x", "y", "width", "height"))
        out[clip.get("id")] = (x, y, x + w, y + h)
    return out


def _points(el: ET.Element) -> list[tuple[float, float]]:
    """The vertices a path or marker places (matplotlib writes absolute coordinates)."""
    if el.tag == f"{SVG}use":
        return [(float(el.get("x")), float(el.get("y")))]
    numbers = [float(n) for n in _NUMBER.findall(el.get("d", ""))]
    return list(zip(numbers[::2], numbers[1::2], strict=False))


def _outside(points: list[tuple[float, float]], rect: tuple[float, float, float, float]) -> list:
    left, top, right, bottom = rect
    slack = 0.5  # points: half a hairline
    return [
        (x, y)
        for x, y in points
        if not (left - slack <= x <= right + slack and top - slack <= y <= bottom + slack)
    ]


def svg_problems(name: str, svg: str) -> list[str]:
    """What the referee found, read from matplotlib's SVG: data drawn outside its axes (and so clipped
    away), colour bars without a label, a tick label repeated on one axis."""
    root = ET.fromstring(svg)
    rects, problems = _rects(root), []
    parents = {child: parent for parent in root.iter() for child in parent}

    def inside_tick(el: ET.Element) -> bool:
        while el in parents:
            el = parents[el]
            if re.fullmatch(r"[xy]tick_\d+", el.get("id", "")):
                return True
        return False

    data = re.compile(r"(line2d|PathCollection|LineCollection|PolyCollection)_\d+")
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id", "")
        if data.fullmatch(gid) and not inside_tick(group):
            for el in group.iter():
                clip = el.get("clip-path") or group.get("clip-path")
                if el.tag in (f"{SVG}path", f"{SVG}use") and clip:
                    out = _outside(_points(el), rects[clip[5:-1]])
                    if out:
                        problems.append(f"{name}: {gid} has {len(out)} point(s) outside its axes: {out[0]}")
        if re.fullmatch(r"matplotlib\.axis_\d+", gid):
            ticks = [
                "".join(t.itertext()).strip()
                for tick in group
                if re.fullmatch(r"[xy]tick_\d+", tick.get("id", ""))
                for t in tick.iter(f"{SVG}text")
            ]
            ticks = [t for t in ticks if t]
            if len(ticks) != len(set(ticks)):
                problems.append(f"{name}: repeated tick labels {ticks}")
        if gid.startswith("colorbar_"):
            labels = ["".join(t.itertext()).strip() for t in group.iter(f"{SVG}text") if not inside_tick(t)]
            if not any(labels):
                problems.append(f"{name}: a colour bar without a label")
    return problems


def test_every_figure_s_svg_shows_all_its_data_labels_its_colour_bars_and_repeats_no_tick(smoke_build):
    problems = [p for name, fig in _figures(smoke_build.store) for p in svg_problems(name, draw_svg(fig))]
    assert not problems, "\n".join(problems)


def _drawn(draw) -> str:
    from report.questions import Figure

    return draw_svg(Figure(lambda data: draw(), None, "", None))


def test_the_svg_check_catches_clipped_points_an_unlabelled_colour_bar_and_repeated_ticks():
    """The check above fails on each defect the referee found, drawn on purpose."""
    import matplotlib.pyplot as plt

    def clipped():
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [1, 2, 30])
        ax.set_ylim(0, 5)
        return fig

    def unlabelled():
        fig, ax = plt.subplots()
        fig.colorbar(ax.imshow(np.eye(3)), ax=ax)
        return fig

    def repeated():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0.101, 0.104])
        ax.yaxis.set_major_formatter("{x:.1f}")
        return fig

    assert "outside its axes" in " ".join(svg_problems("clipped", _drawn(clipped)))
    assert svg_problems("unlabelled", _drawn(unlabelled)) == ["unlabelled: a colour bar without a label"]
    assert "repeated tick labels" in " ".join(svg_problems("repeated", _drawn(repeated)))


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.5, "50%"), (0.9951, "99.510%"), (0.99962, "99.962%"), (0.99991, "99.991%"), (0.9999970, "> 99.999%")],
)
def test_confidences_near_one_keep_the_digits_that_tell_them_apart(p, shown):
    assert confidence(p) == shown and math.isfinite(p)


def _luminance(rgba) -> float:
    """Relative luminance (WCAG 2) of a colour over the white page."""
    r, g, b, a = rgba
    channels = [a * c + 1 - a for c in (r, g, b)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _drawn_cells(fig):
    """(text colour, cell colour) for each number printed on the figure's colour-mapped image."""
    from matplotlib.colors import to_rgba

    ax = fig.axes[0]
    image = ax.images[0]
    cells = image.get_array()
    for text in ax.texts:
        x, y = (round(v) for v in text.get_position())
        yield to_rgba(text.get_color()), image.to_rgba(cells[y, x])


def test_numbers_on_heat_map_cells_are_legible_on_every_shade():
    """Figure 9's darkest cells carried black numbers on dark red; every number on a colour-mapped cell
    needs WCAG contrast 4.5 with it, over every shade of the map (errors 0-20, accuracies over the span)."""
    import pandas as pd

    from report.plots.q3 import draw_confusion, draw_heatmap

    errors = np.arange(100).reshape(10, 10) % 21
    confusion = pd.DataFrame(np.where(np.eye(10, dtype=bool), 980, errors))
    grid = pd.DataFrame(
        [
            (lr, b, 0.6 + 0.35 * k / 19)
            for k, (lr, b) in enumerate((lr, b) for lr in range(5) for b in range(4))
        ],
        columns=["lr", "batch_size", "val_acc"],
    )
    for fig in (draw_confusion(confusion), draw_heatmap(grid, span=40.0)):
        for ink, cell in _drawn_cells(fig):
            light, dark = sorted((_luminance(ink), _luminance(cell)), reverse=True)
            assert (light + 0.05) / (dark + 0.05) >= 4.5, (ink, cell)


def test_a_figure_s_cache_key_covers_the_project_code_its_drawing_imports(tmp_path, monkeypatch):
    """A drawing that borrows a helper (Q1's plot: the context's concave steps and loss names; Q3's: the
    number format) is drawn again when that helper changes, not served from the cache."""
    from pathlib import Path

    from report import figures
    from report.plots import q1, q3

    root = Path(figures.__file__).resolve().parent
    files = {
        str(p.relative_to(root)) for p in figures.drawing_files(Figure(q1.draw_curvature, None, "", None))
    }
    assert {"plots/q1.py", "questions/q1.py", "format.py", "figures.py"} <= files
    assert "format.py" in {p.name for p in figures.drawing_files(Figure(q3.draw_heatmap, None, "", None))}
    fig = Figure(q3.draw_heatmap, {"a": 1}, "", None)
    before = figures.cache_key(fig)
    edited = tmp_path / "format.py"
    edited.write_text(Path(root / "format.py").read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: real(edited if p == root / "format.py" else p))
    assert figures.cache_key(fig) != before
