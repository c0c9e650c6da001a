"""What changed between two rendered reports, judged against the noise: ``build.py diff A B --report``.

``report.diff`` compares runs (config keys, tables); this module compares what a reader reads. Both
reports are cut into blocks (headings, paragraphs, list items, captions, table rows). A block's *shape* is
its visible text with every number from the store (``<span class="n">``, report/provenance.py) and every
run id replaced by a placeholder, so two blocks with the same shape say the same thing with other numbers,
and a block whose shape changed says something else: new wording, a verdict that flipped, a table row that
appeared. The blocks of the two reports are aligned by shape in document order (difflib), a block that
only moved (a table row re-ranked) pairs with itself, then:

- a *flipped claim* is a changed block that holds a computed verdict (``<span class="v">``) on either side;
- a *changed sentence* is any other changed, added or removed block;
- a *moved number* is a number whose printed text differs inside blocks of the same shape, marked
  ``outside`` its uncertainty when the change is larger than the printed uncertainty (the ``±`` part, the
  larger of the two sides), ``within`` when not, and ``unknown`` when neither side prints one.

Claims come first in every output: a terminal listing, JSON, and the newer report as HTML with each change
marked in place and a summary at the top.
"""

from __future__ import annotations

import difflib
import html
import re
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from report.core.errors import ConfigError
from report.core.freshness import Request
from report.core.store import Store

BLOCKS = {"h1", "h2", "h3", "h4", "p", "li", "figcaption", "tr", "dt", "dd", "caption"}
SKIPPED = {"script", "style", "nav", "svg", "head"}
VOID = {"img", "br", "hr", "meta", "link", "input", "col", "source", "wbr"}
PLACEHOLDER = "#"
_REAL = re.compile(r"[−-]?\d[\d,]*(?:\.\d+)?(?:×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+))?")
RUN_ID = re.compile(r"\b\d{8}-\d{6}-\d{6}-[0-9a-f]{4}\b")  # report.core.run_record.new_run_id's form
_TAG = re.compile(r"<[a-zA-Z][a-zA-Z0-9]*")
_SUPERSCRIPT = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


@dataclass
class Number:
    """A number from the store as printed, with the source its span names (the run left out, so the
    same number of two runs pairs up)."""

    source: str
    text: str
    at: int  # offset of its span in the page, for marking it


@dataclass
class Block:
    """One block of the page: its heading, visible text, shape and numbers."""

    section: str
    text: str
    shape: str
    numbers: list[Number] = field(default_factory=list)
    verdict: bool = False
    at: int = 0  # offset of the block's start tag in the page


class _Reader(HTMLParser):
    """Cuts a rendered report into blocks; math counts as its LaTeX (``aria-label``), not its drawing."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.lines = [0]
        for line in page.splitlines(keepends=True):
            self.lines.append(self.lines[-1] + len(line))
        self.blocks: list[Block] = []
        self.open: list[tuple[str, Block]] = []  # blocks being read, innermost last
        self.tags: list[str] = []  # every open element, for closing spans and skips in order
        self.skip = 0  # depth inside an element whose text is not read
        self.number: Number | None = None
        self.section = ""

    def where(self) -> int:
        line, col = self.getpos()
        return self.lines[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        a = dict(attrs)
        self.tags.append(tag)
        if self.skip or tag in SKIPPED:
            self.skip += 1
            return
        classes = (a.get("class") or "").split()
        if a.get("role") == "math":
            self._text(f"${a.get('aria-label') or ''}$")
            self.skip += 1
            return
        if tag in ("td", "th") and self.open and self.open[-1][0] == "tr" and self.open[-1][1].text:
            self._text(" | ")
        if tag in BLOCKS:
            self.open.append((tag, Block(self.section, "", "", at=self.where())))
        elif tag == "span" and "n" in classes and self.open:
            source = re.sub(r" \(run [^()]*\)$", "", a.get("data-src") or "")
            self.number = Number(source, "", self.where())
        elif tag == "span" and "v" in classes and self.open:
            self.open[-1][1].verdict = True

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or tag not in self.tags:
            return
        while self.tags:  # close what the page left open inside it
            if self.tags.pop() == tag:
                break
        if self.skip:
            self.skip -= 1
            return
        if self.number is not None and tag == "span":
            number, self.number = self.number, None
            block = self.open[-1][1]
            block.numbers.append(number)
            block.text += number.text
            block.shape += PLACEHOLDER
            return
        if self.open and self.open[-1][0] == tag:
            _, block = self.open.pop()
            block.text, block.shape = _squash(block.text), RUN_ID.sub("RUN", _squash(block.shape))
            if block.text:
                self.blocks.append(block)
                if tag in ("h2", "h3"):
                    self.section = block.text

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._text(data)

    def _text(self, text: str) -> None:
        if self.number is not None:
            self.number.text += text
        elif self.open:
            block = self.open[-1][1]
            block.text += text
            block.shape += text


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def blocks(page: str) -> list[Block]:
    """The report's blocks in document order."""
    reader = _Reader(page)
    reader.feed(page)
    reader.close()
    return reader.blocks


def value(text: str) -> tuple[float | None, float | None]:
    """A printed number and its printed uncertainty: "94.03 ± 0.10%" → (94.03, 0.10); "1.2×10⁻³" → 0.0012."""
    found = []
    for m in _REAL.finditer(text):
        x = float(m[0].split("×")[0].replace(",", "").replace("−", "-"))
        if m[1]:
            x *= 10.0 ** int(m[1].translate(_SUPERSCRIPT))
        found.append(x)
    if not found:
        return None, None
    return found[0], (found[1] if "±" in text and len(found) > 1 else None)


def moved(a: Number, b: Number) -> dict[str, Any]:
    """One number that changed, with whether the change is within the uncertainty printed beside it."""
    (va, ua), (vb, ub) = value(a.text), value(b.text)
    delta = vb - va if va is not None and vb is not None else None
    spread = max((u for u in (ua, ub) if u is not None), default=None)
    noise = "unknown" if delta is None or spread is None else "within" if abs(delta) <= spread else "outside"
    return {"source": b.source or a.source, "a": a.text, "b": b.text, "delta": delta, "uncertainty": spread,
            "noise": noise}  # fmt: skip


def compare_pages(page_a: str, page_b: str) -> dict[str, Any]:
    """The changes from report A to report B: flipped claims, changed sentences and moved numbers."""
    old, new = blocks(page_a), blocks(page_b)
    keys = lambda bs: [(b.section, b.shape) for b in bs]  # noqa: E731
    same: list[tuple[Block, Block]] = []  # blocks that say the same thing, perhaps with other numbers
    changed: list[tuple[list[Block], list[Block]]] = []  # runs of blocks that differ, in document order
    matcher = difflib.SequenceMatcher(a=keys(old), b=keys(new), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            same += zip(old[i1:i2], new[j1:j2], strict=True)
        else:
            changed.append((old[i1:i2], new[j1:j2]))
    # a block that only moved (a table row re-ranked) pairs with itself wherever it went
    gone = {}
    for blocks_a, _ in changed:
        for x in blocks_a:
            gone.setdefault((x.section, x.shape), []).append(x)
    moved_away = set()
    for _, blocks_b in changed:
        for y in list(blocks_b):
            if gone.get((y.section, y.shape)):
                x = gone[(y.section, y.shape)].pop(0)
                same.append((x, y))
                moved_away.update((id(x), id(y)))
    claims, sentences, numbers = [], [], []
    marks: dict[int, tuple[str, str]] = {}  # offset of an element of page B → (how it changed, what A said)
    for x, y in same:
        for na, nb in _pairs(x.numbers, y.numbers):
            if na.text != nb.text:
                change = {"section": y.section, "sentence": y.text, **moved(na, nb)}
                numbers.append(change)
                marks[nb.at] = (f"number-{change['noise']}", na.text)
    for blocks_a, blocks_b in changed:
        rest_a = [x for x in blocks_a if id(x) not in moved_away]
        rest_b = [y for y in blocks_b if id(y) not in moved_away]
        for k in range(max(len(rest_a), len(rest_b))):
            x = rest_a[k] if k < len(rest_a) else None
            y = rest_b[k] if k < len(rest_b) else None
            item = {"section": (y or x).section, "a": x.text if x else None, "b": y.text if y else None}
            is_claim = bool((x and x.verdict) or (y and y.verdict))
            (claims if is_claim else sentences).append(item)
            if y is not None:
                marks[y.at] = ("claim" if is_claim else "sentence", x.text if x else "(not in A)")
    order = {"outside": 0, "unknown": 1, "within": 2}
    numbers.sort(key=lambda n: order[n["noise"]])
    return {"claims": claims, "sentences": sentences, "numbers": numbers, "_marks": marks}


def _pairs(a: list[Number], b: list[Number]) -> list[tuple[Number, Number]]:
    """The numbers of two blocks of the same shape, paired by source (a table whose columns were reordered
    by rank pairs each model's cell with its own), in order among numbers of the same source."""
    left: dict[str, list[Number]] = {}
    for n in a:
        left.setdefault(n.source, []).append(n)
    pairs = []
    for n in b:
        same = left.get(n.source)
        if same:
            pairs.append((same.pop(0), n))
    return pairs


def summary(changes: dict[str, Any]) -> str:
    """One line: how much changed, claims first."""
    noise = [n["noise"] for n in changes["numbers"]]
    return (
        f"{len(changes['claims'])} claims flipped, {len(changes['sentences'])} other sentences changed, "
        f"{len(changes['numbers'])} numbers moved ({noise.count('outside')} outside their uncertainty, "
        f"{noise.count('within')} within, {noise.count('unknown')} with none printed)"
    )


def as_json(changes: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """The changes as plain data, with the two sides named."""
    return {"a": a, "b": b, **{k: v for k, v in changes.items() if not k.startswith("_")}}


def as_text(changes: dict[str, Any], a: str, b: str) -> str:
    """For a terminal: the summary, then each change, flipped claims first."""
    out = [f"report {a} → {b}: {summary(changes)}"]
    for title, key in (("Claims that flipped", "claims"), ("Sentences that changed", "sentences")):
        if changes[key]:
            out.append(f"\n{title}:")
        for item in changes[key]:
            out.append(f"  [{item['section']}]")
            out.append(f"    - {item['a']}" if item["a"] else "    - (not in A)")
            out.append(f"    + {item['b']}" if item["b"] else "    + (not in B)")
    if changes["numbers"]:
        out.append("\nNumbers that moved (outside their uncertainty first):")
    for n in changes["numbers"]:
        unc = f" (uncertainty {n['uncertainty']:g})" if n["uncertainty"] is not None else ""
        out.append(f"  {n['noise']:>7}: {n['a']} → {n['b']}{unc}  [{n['source']}]")
    return "\n".join(out)


STYLE = """<style>
.diff-summary { border: 2px solid #b35900; padding: .6em 1em; margin: 1em 0; background: #fff7ec; }
[data-diff] { outline: 2px solid #b35900; outline-offset: 1px; }
[data-diff="claim"] { background: #ffe0e0; outline-color: #c00; }
[data-diff="number-outside"] { background: #ffe0e0; }
[data-diff="number-within"] { outline-style: dashed; outline-color: #888; }
</style>"""


MARK = "diff-summary"  # the class of the summary at the top of a page as_html wrote: how diff knows its own


def as_html(page_b: str, changes: dict[str, Any], a: str, b: str) -> str:
    """Report B with every change marked where it is (``data-diff`` on the element, what A said in its
    ``title``) and a summary at the top that also lists what A said and B no longer does."""
    out, last = [], 0
    for at, (kind, was) in sorted(changes["_marks"].items()):
        name = _TAG.match(page_b, at)
        assert name is not None, f"no element at offset {at}"
        out += [page_b[last : name.end()], f' data-diff="{kind}" title="{html.escape("was: " + was)}"']
        last = name.end()
    out.append(page_b[last:])
    page = "".join(out)
    gone = [i["a"] for i in changes["claims"] + changes["sentences"] if i["b"] is None]
    listing = "".join(f"<li>{html.escape(t)}</li>" for t in gone)
    head = (
        f'<div class="{MARK}"><strong>Changes from {html.escape(a)} to {html.escape(b)}:</strong> '
        f"{html.escape(summary(changes))}. Marked in place; hover a mark for what {html.escape(a)} said."
        + (f"<p>No longer in this report:</p><ul>{listing}</ul>" if gone else "")
        + "</div>"
    )
    page = page.replace("</head>", STYLE + "</head>", 1)
    body = re.search(r"<body[^>]*>", page)
    return page[: body.end()] + head + page[body.end() :] if body else head + page


def between(
    store: Store, request: Request, a: str, b: str | None, cache_dir: Path | None = None
) -> tuple[dict[str, Any], str, str]:
    """``build.py diff A [B] --report``: render the report from side ``a`` and from side ``b`` (default: this
    store), each a store folder or a bundle, and compare them; returns the changes and both pages."""
    from report.core import bundle
    from report.render import render_html

    def side(spec: str | None, folder: Path) -> Store:
        if spec is None:
            return store
        if Path(spec).is_dir():
            other = Store(spec)
        elif Path(spec).is_file() or "://" in spec:
            other = bundle.as_store(bundle.open_bundle(spec, store), folder)
        else:
            raise ConfigError(
                f"diff --report compares whole reports, and {spec!r} is neither a store folder nor a bundle; "
                "name one of those (a run id compares runs: drop --report)"
            )
        # the rerun advice a stale result's sentence prints is this command's (its --store, --set, …) on
        # both sides: what the pages differ in is then their results, not where each side was read from
        other.advice = store.advice
        return other

    with tempfile.TemporaryDirectory(prefix="report-diff-") as tmp:
        pages = [
            render_html(side(spec, Path(tmp) / name), request, cache_dir=cache_dir)
            for name, spec in (("a", a), ("b", b))
        ]
    return compare_pages(*pages), pages[0], pages[1]
