"""Every number the report reads from the store says where it came from (report/provenance.py): counted
from the rendered smoke report's HTML, hovered in a real browser, and the mechanism's parts on their own."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from report import format as fmt
from report import provenance
from report.provenance import NUMBER, Number, Sourced, SourcedInt
from tests.helpers import drawing_cache
from tests.test_publish import CHROMIUM
from tests.test_render import fake_question  # noqa: F401, F811 - a fixture

CONSTANT = "constant of the text"
# Not numbers of the text: typeset formulas (their digits are notation), section and caption numbers,
# cross-references, the source line under each table and figure (itself the provenance), the title block,
# contents and appendix (the runs' records, the sources every data-src names).
SKIP_TAGS = {"svg", "style", "script", "head", "header", "nav"}
SKIP_CLASSES = {"math", "secnum", "caption-label", "xref", "provenance", "appendix"}
VOID = {"img", "br", "hr", "meta", "link", "input", "wbr"}


class _Numbers(HTMLParser):
    """Each number in the text of the report's sections, with the source of the innermost element around
    it that has one (None: a bare number)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.found: list[tuple[str, str | None, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not any(tag == "main" for tag, _ in self.stack):
            return
        for tag, attrs in self.stack:
            if tag in SKIP_TAGS or SKIP_CLASSES & set((attrs.get("class") or "").split()):
                return
        src = next((a["data-src"] for _, a in reversed(self.stack) if a.get("data-src")), None)
        self.found.extend((m.group(0), src, data.strip()) for m in NUMBER.finditer(data))


def numbers(page: str) -> list[tuple[str, str | None, str]]:
    parser = _Numbers()
    parser.feed(page)
    return parser.found


def test_every_number_read_from_the_store_carries_its_source(smoke_build):
    page = smoke_build.html.read_text(encoding="utf-8")
    check_sources(page, runs=4, least=400)


def check_sources(page: str, runs: int, least: int) -> None:
    """No number of the sections without a source or a constant's mark; each source names a shown run."""
    found = numbers(page)
    bare = [(n, text[:80]) for n, src, text in found if src is None]
    constants = [n for n, src, _ in found if src == CONSTANT]
    sourced = [src for _, src, _ in found if src not in (None, CONSTANT)]
    assert len(sourced) >= least, (
        f"only {len(sourced)} sourced numbers: is provenance wired into the filters?"
    )
    assert not bare, f"{len(bare)} of {len(found)} numbers without a source: {bare}"
    assert len(constants) < len(sourced) / 4, "most numbers marked constant: the marking is too broad"
    # every source names a run this report shows, by the id the appendix lists
    shown = set(re.findall(r'<td class="text nowrap">(\d{8}-[\w-]+)</td>', page))
    assert len(shown) == runs, shown
    named = {m for src in sourced for m in re.findall(r"\(run q\d (\S+?)\)", src)}
    assert named == shown, (named, shown)
    quoted = ("column header", "anchors.toml", "original.toml")  # a header; a published or original figure
    assert all(re.search(r"\(run q\d \S+\)", src) for src in sourced if not any(q in src for q in quoted))


@pytest.mark.slow
def test_the_full_report_from_the_reference_results_carries_sources_too(tmp_path):
    """The full profile's branches (several seeds: Welch's tests, t values; a GPU: peak memory), rendered
    from the committed reference results whether or not they are current for this code."""
    import subprocess
    import sys

    from report import render
    from report.core.config import parse_overrides
    from report.core.freshness import Request
    from report.core.store import Store

    root = Path(__file__).resolve().parents[1]
    bundle = root / "experiments" / "reference" / "full.tar.gz"
    store = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(root / "build.py"), "import", str(bundle), "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    request = Request("full", parse_overrides(["q4.dataset=fashion-mnist"]))  # as the bundle was made
    page = render.render_html(Store(store), request, cache_dir=drawing_cache())  # figures as in test_workflow
    check_sources(page, runs=4, least=600)
    assert re.search(r'data-src="[^"]*Welch over seeds p (=|&lt;) ', page)  # verdicts over seeds


def test_headline_numbers_say_how_they_were_computed_and_verdicts_their_tests(smoke_build):
    page = smoke_build.html.read_text(encoding="utf-8")
    table = page[page.index('id="tab:q4-comparison"') :]
    cell = re.search(
        r'<td class="num"><span class="n" tabindex="0" data-src="Test accuracy: ([^"]*)">', table
    )
    assert cell and "test_acc over its 1 seeds (q4 table results, rows model=" in cell.group(1), cell
    assert re.search(r"; row Model [^;]+ \(run q4 [^)]+\)$", cell.group(1))
    verdicts = re.findall(r'<span class="v" tabindex="0" data-src="([^"]*)">', page)
    assert verdicts and all(re.search(r"McNemar on the test images p (=|&lt;) ", v) for v in verdicts), (
        verdicts
    )
    # the constants written in the templates are marked as such (Krizhevsky's year, the question's sizes)
    assert f'<span class="c" data-src="{CONSTANT}">2014</span>' in page


def test_the_printed_page_shows_no_sources(smoke_build):
    pypdf = pytest.importorskip("pypdf")
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(smoke_build.pdf).pages)
    assert "q4 table results" not in text and CONSTANT not in text
    assert "Provenance and environment" in text  # the appendix still lists the runs


@pytest.mark.browser
def test_hovering_a_number_shows_its_source_and_focus_shows_it_in_place(smoke_build):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(smoke_build.html.as_uri())
        number = page.locator("#tab\\:q4-comparison td.num .n").first
        number.scroll_into_view_if_needed()
        after = (
            "e => { const s = getComputedStyle(e, '::after'); return [s.content, s.position, s.display]; }"
        )
        assert number.evaluate(after)[0] == "none"  # nothing shown until asked
        number.hover()
        content, position, display = number.evaluate(after)
        src = number.get_attribute("data-src")
        assert content == f'"{src}"' and position == "absolute" and display != "none"
        assert "test_acc" in src and "(run q4 " in src
        page.mouse.move(0, 0)
        page.keyboard.press("Tab")  # keyboard focus reveals a source in place
        number.focus()
        content, position, _ = number.evaluate(after)
        assert content.startswith('" [') and src in content and position == "static"
        browser.close()


def test_arithmetic_keeps_the_source_and_filters_wrap_the_text():
    acc = Sourced(0.98123, "mean test_acc over 3 seeds", "q4 r1")
    assert (100 * acc).how == acc.how and (acc - 0.5).run == "q4 r1" and (-acc).how == acc.how
    both = acc - Sourced(0.9, "mean test_acc of B", "q4 r1")
    assert both.how == "from mean test_acc over 3 seeds; mean test_acc of B" and both.run == "q4 r1"
    assert isinstance(SourcedInt(3, "seeds") - 1, SourcedInt) and isinstance(SourcedInt(3, "x") / 2, Sourced)
    wrapped = provenance.filters(fmt.FILTERS)
    shown = wrapped["pct"](acc)
    assert shown == "98.12%" and shown.text == "98.12%"  # compares as its text, as templates test it
    assert 'data-src="mean test_acc over 3 seeds (run q4 r1)"' in shown
    pm = wrapped["pm"]((acc, Sourced(0.001, "std of test_acc", "q4 r1")))
    assert "std of test_acc" in pm and ">98.12 ± 0.10%</span>" in pm
    assert wrapped["pct"](0.98123) == "98.12%" and not isinstance(wrapped["pct"](0.98123), Number)
    assert wrapped["pval"](Sourced(0.0004, "p", "r")).startswith("<")  # "< 0.001", as q4.words.j2 tests
    assert float(wrapped["pp"](acc)) == 98.12
    import copy
    import pickle

    for value in (
        acc,
        SourcedInt(3, "seeds", "q4 r1"),
        provenance.SourcedStr("CPU (2 cores)", "device", "r"),
    ):
        for again in (pickle.loads(pickle.dumps(value)), copy.deepcopy(value)):
            assert again == value and type(again) is type(value) and again.how == value.how


def test_a_context_gets_sources_and_constants_are_only_the_templates_own(tmp_path):
    ctx = provenance.label(
        {"acc": 0.9, "n": 3, "ok": True, "name": "ResNet-18", "cls": "3", "rows": [1.5]},
        "q4",
        "q4.py",
        "q4 r1",
    )
    assert ctx["acc"].how == "q4.acc, computed by q4.py" and ctx["acc"].run == "q4 r1"
    assert isinstance(ctx["n"], SourcedInt) and ctx["ok"] is True and type(ctx["name"]) is str
    assert ctx["cls"].how == "q4.cls, from q4.py" and ctx["rows"][0].how == "q4.rows[0], computed by q4.py"
    (tmp_path / "a.md.j2").write_text(
        "{% import 'b.j2' as b %}A 32×32 image, {{ q.x | num }}, {{ f(7, '2014') }}"
    )
    (tmp_path / "b.j2").write_text("{# 99 #}{% macro m() %}in 1998{% endmacro %}")
    (tmp_path / "c.j2").write_text("not imported: 99")
    known = provenance.constants(tmp_path / "a.md.j2", [tmp_path])
    assert {"32", "2014", "1998"} <= known and "99" not in known and "7" not in known
    html = provenance.mark_constants(
        '<p>32 and 2014 and 99 and <span class="n" data-src="s">32</span></p>', known
    )
    found = numbers(f"<main>{html}</main>")
    assert [(n, src) for n, src, _ in found] == [
        ("32", CONSTANT),
        ("2014", CONSTANT),
        ("99", None),
        ("32", "s"),
    ]


def test_a_number_in_a_formula_keeps_its_source_and_still_typesets(tmp_path):
    from report.mathsvg import MathCache
    from report.render import Document, _environment, _markdown

    doc = Document(MathCache(), None)
    doc.markdown = _markdown(doc, tmp_path)
    env = _environment(doc, tmp_path, None)
    text = env.from_string("where $t = {{ t | num }}$ here").render(t=Sourced(2.776, "t quantile", "q3 r1"))
    out = doc.markdown.render(text)
    assert 'data-src="t quantile (run q3 r1)"' in out and "2.78" in out and '<span class="n" tabindex' in out
    assert 'aria-label="t = 2.78"' in out  # the formula was typeset from the number's text, not its markup


def test_a_number_the_template_computes_itself_is_found_bare(fake_question, tmp_path):  # noqa: F811
    """The counting test's failure case: a number made in the template (here a length) has no source and
    is not written in the template, so the count reports it, while the stored value beside it is sourced."""
    from report import render

    store, templates = fake_question
    (templates / "qx.md.j2").write_text(
        "# Question 1: X\n\nOf {{ [1, 2, 3] | length }} rates, {{ qx.best | pct }}.\n"
    )
    page = render.render_html(store, "smoke", names=("qx",), templates=templates)
    found = {n: src for n, src, _ in numbers(page)}
    assert found["3"] is None and "qx.best, computed by report/questions/qx.py (run qx " in found["98.56%"]
    assert found["1"] == CONSTANT  # "Question 1", written in the template
