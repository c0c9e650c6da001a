"""The PDF's figures and formulas as cached PDF forms (report/pdfforms.py): the printed file must look and
read as WeasyPrint's own drawing of the SVGs, and the printer process that uses them must keep going."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from report import mathsvg, output, pdfforms
from report.core.errors import ReportError
from report.provenance import for_print

ROOT = Path(__file__).resolve().parents[1]

pypdf = pytest.importorskip("pypdf")
_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt" viewBox="0 0 {w} {h}">'
    '<text y="8">{words}</text></svg>'
)


def _sample(page: str) -> tuple[str, int]:
    """The smoke report's stylesheet, four of its figures and six of its typeset formulas, as one page,
    and how many different SVGs that is."""
    style = re.search(r"<style>.*?</style>", page, re.S)
    figures = re.findall(r'<figure class="figure".*?</figure>', page, re.S)[:4]
    maths = re.findall(r'<span class="math(?: display)?"><svg.*?</svg></span>', page, re.S)[:6]
    assert style and len(figures) == 4 and len(maths) == 6
    body = "".join(figures) + "<p>" + " then ".join(maths) + "</p>"
    head = f'<!DOCTYPE html><html lang="en"><head><title>t</title>{style.group(0)}</head>'
    page = f"{head}<body>{body}</body></html>"
    return page, len(set(figures) | set(maths))


def _words(pdf) -> list[str]:
    """The file's words in reading order, as poppler reads them (pypdf misreads the spaces in text
    drawn inside a scaled form: it finds "meanloss" in a figure whose text is "mean loss")."""
    return subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout.split()


def _pixels(pdf, tmp_path, name):
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "50", "-gray", str(pdf), str(tmp_path / name)], check=True)
    return [Image.open(p) for p in sorted(tmp_path.glob(f"{name}-*.pgm"))]


def test_forms_print_the_page_as_weasyprint_draws_its_svgs(smoke_build, tmp_path):
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm (poppler-utils) is not installed; .ci/run installs it")
    from PIL import ImageChops

    sample, svgs = _sample(smoke_build.html.read_text())
    page = for_print(sample)
    weasyprint = output._weasyprint()
    forms = pdfforms.Forms(tmp_path / "forms", weasyprint, str(output.TEMPLATES))
    html = weasyprint.HTML(string=forms.page(page), base_url=str(output.TEMPLATES))
    (tmp_path / "forms.pdf").write_bytes(html.write_pdf(pdf_variant="pdf/ua-1", finisher=forms.finisher()))
    output.write_pdf(page, tmp_path / "plain.pdf")  # no forms folder: WeasyPrint draws each SVG

    assert len(forms.by_url) == svgs and len(list((tmp_path / "forms").glob("*.form"))) == svgs
    plain, placed = (pypdf.PdfReader(tmp_path / f"{n}.pdf") for n in ("plain", "forms"))
    assert _words(tmp_path / "forms.pdf") == _words(tmp_path / "plain.pdf")
    assert "mean loss" in plain.pages[0].extract_text()  # a figure's text; pdftotext reads it in both
    assert "/StructTreeRoot" in placed.trailer["/Root"]  # still tagged
    drawn = {
        name[1:-1]: x.get_object() for p in placed.pages for name, x in p["/Resources"]["/XObject"].items()
    }
    stand_ins = ["i" + hashlib.md5(url.encode()).hexdigest() for url in forms.by_url]  # WeasyPrint's names
    assert [drawn[name]["/Subtype"] for name in stand_ins] == ["/Form"] * svgs
    assert not [x for x in drawn.values() if x["/Subtype"] == "/Image" and x["/Width"] == 1]  # none left
    # the same picture: a figure flipped, shifted or scaled wrongly, or a formula not drawn, differs on
    # hundreds of pixels; measured, none differs (the full report's 26 pages too, at 60 dpi)
    before, after = (
        _pixels(tmp_path / "plain.pdf", tmp_path, "plain"),
        _pixels(tmp_path / "forms.pdf", tmp_path, "forms"),
    )
    assert len(before) == len(after) == len(plain.pages)
    for a, b in zip(before, after, strict=True):
        diff = ImageChops.difference(a, b).point(lambda v: 255 if v > 64 else 0)
        assert diff.histogram()[255] <= 20


def test_a_stand_in_keeps_what_lays_the_svg_out(tmp_path):
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10.5em" height=\'2em\' viewBox="0 -20 105 20" '
        'style=\'vertical-align:-0.3em\' role="img" aria-label="x &lt; 1" hidden transform="rotate(5)">'
        '<path d="M0 0L9 9"/></svg>'
    )
    forms = pdfforms.Forms(tmp_path, output._weasyprint())
    stand_in = forms.page(f"<p>{svg}</p>")
    # the root element as written, but for the viewBox
    root = (
        svg[: svg.index("<path") - 1]
        .replace(' viewBox="0 -20 105 20"', "")
        .replace(' transform="rotate(5)"', "")
    )
    assert stand_in.startswith(f"<p>{root} viewBox=")
    assert "<path" not in stand_in  # the form draws it
    # the form is printed at 126 x 24 pt (an em as 12 pt: the same drawing at another scale)
    assert 'viewBox="0 0 126 24" preserveAspectRatio="none"><image width="126" height="24"' in stand_in
    # drawn as they are: what a form could draw otherwise than WeasyPrint would
    plain = [
        '<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>',  # no size
        _SVG.format(w=9, h=9, words="x").replace('viewBox="0 0 9 9"', ""),  # no viewBox to scale by
        _SVG.format(w=9, h=9, words="x").replace('width="9pt"', 'width="50%"'),  # sized by its container
        _SVG.format(w=9, h=9, words="x").replace('width="9pt"', 'width="9em"'),  # em and pt: font-dependent
        _SVG.format(w=9, h=9, words="x").replace("<svg", '<svg style="overflow: visible"'),  # may overflow
        _SVG.format(w=9, h=9, words="x").replace('viewBox="0 0 9 9"', 'viewBox="0 0 0 9"'),
        _SVG.format(w=9, h=9, words="x").replace("<text", "<defs><radialGradient id='g'/></defs><text"),
        _SVG.format(w=9, h=9, words="") + "<p>after</p>",  # an SVG within an SVG: not cut at the inner end
        "<img src='data:image/svg+xml;base64,PHN2Zz4=='>",  # not base64 as written
        "<img src='data:image/svg+xml;base64,"
        + base64.b64encode("<svg>\xe9</svg>".encode("latin-1")).decode()
        + "'>",
    ]
    plain[7] = plain[7].replace("<text", _SVG.format(w=3, h=3, words="inner") + "<text", 1)
    for page in plain:
        assert forms.page(page) == page
    assert len(forms.by_url) == 1


def test_a_form_is_made_once_and_again_when_its_file_is_damaged(tmp_path):
    svg = _SVG.format(w=20, h=10, words="Hi")
    weasyprint = output._weasyprint()
    first = pdfforms.Forms(tmp_path, weasyprint)
    first.page(svg)
    (made,) = tmp_path.glob("*.form")
    form = next(iter(first.by_url.values()))
    assert pdfforms.Form.load(made.read_bytes()) == form and (form.width, form.height) == (20, 10)
    # its font subset is named as its own: another form's subset of the same font has another name
    other = pdfforms.print_alone(_SVG.format(w=20, h=10, words="Ho"), (20, 10), weasyprint, salt="other")
    subsets = [
        {
            n
            for body in f.objects
            for part in body
            if isinstance(part, bytes)
            for n in re.findall(rb"/[A-Z]{6}\+[\w-]+", part)
        }
        for f in (form, other)
    ]
    assert all(subsets) and not subsets[0] & subsets[1]
    good = made.read_bytes()
    for damaged in (good[:-10], good[:-10] + bytes([good[-10] ^ 1]) + good[-9:]):  # truncated; one bit
        made.write_bytes(damaged)
        again = pdfforms.Forms(tmp_path, weasyprint)
        again.page(svg)
        assert next(iter(again.by_url.values())) == form and made.read_bytes() == good


def test_a_stand_in_the_printer_never_drew_sends_the_page_the_plain_way(tmp_path):
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    shown, hidden = (_SVG.format(w=90, h=20, words=w) for w in ("shown words", "hidden words"))
    page = f'<p>{shown}</p><p style="display:none">{hidden}</p>'
    output.write_pdf(page, tmp_path / "report.pdf", tmp_path / "forms")
    reader = pypdf.PdfReader(tmp_path / "report.pdf")
    assert _words(tmp_path / "report.pdf") == ["shown", "words"]
    xobjects = reader.pages[0]["/Resources"].get("/XObject", {})
    assert not [x for x in xobjects.values() if x.get_object()["/Subtype"] == "/Image"]  # no stand-in


def test_a_printer_prints_page_after_page_and_starts_again_when_its_process_died(tmp_path, monkeypatch):
    (tmp_path / "report").mkdir()  # another checkout's package in the folder the command is typed in
    (tmp_path / "report" / "__init__.py").write_text("")
    (tmp_path / "report" / "output.py").write_text("raise SystemExit('not this one')\n")
    monkeypatch.chdir(tmp_path)  # the printer is still this project's
    with output.Printer() as printer:
        for n in (1, 2):
            printer.print(f"<p>page number {n}</p>", tmp_path / f"{n}.pdf", tmp_path / "forms")
        first = printer._proc
        assert first is not None
        first.kill()
        first.wait()
        printer.print("<p>page number 3</p>", tmp_path / "3.pdf")
        assert printer._proc is not first
        with pytest.raises(ReportError) as err:  # a file where the output folder should be
            printer.print("<p>x</p>", tmp_path / "1.pdf" / "report.pdf")
        assert str(err.value).startswith("printing the PDF failed: cannot write")
        assert "\n" not in str(err.value) and "--out" in str(err.value)
        printer.print("<p>page number 4</p>", tmp_path / "4.pdf")  # a failed page leaves it printing
        third = printer._proc
        monkeypatch.setattr(output, "_printer_code", lambda: [0, 0])  # as if output.py had been edited
        printer.print("<p>page number 5</p>", tmp_path / "5.pdf")
        assert printer._proc is not third and third is not None and third.poll() is not None
    for n in (1, 2, 3, 4, 5):
        assert f"page number {n}" in pypdf.PdfReader(tmp_path / f"{n}.pdf").pages[0].extract_text()


def test_the_printer_process_answers_each_page_and_prints_no_page_cut_short(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "report.output"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(target: Path, data: bytes, announced: int | None = None) -> None:
        head = {"target": str(target), "forms": None, "bytes": len(data) if announced is None else announced}
        proc.stdin.write(json.dumps(head).encode() + b"\n" + data)
        proc.stdin.flush()

    send(tmp_path / "bad.pdf", b"<p>\xff</p>")  # not UTF-8: an error of no kind it expects
    assert proc.stdout.readline().decode().startswith("UnicodeDecodeError: ")
    send(tmp_path / "good.pdf", "<p>é</p>".encode())  # and it is still there for the next page
    assert proc.stdout.readline() == b"ok\n" and (tmp_path / "good.pdf").exists()
    send(tmp_path / "cut.pdf", b"<p>the start of a longer page", announced=10_000)
    proc.stdin.close()  # its sender is gone before the page is whole
    assert proc.wait(timeout=30) == 1 and proc.stdout.read() == b""
    assert not (tmp_path / "cut.pdf").exists()


@pytest.mark.parametrize(("module", "key"), [(pdfforms, "FORMAT"), (mathsvg, "_FORMAT")])
def test_cached_forms_and_formulas_are_keyed_by_the_code_that_made_them(module, key):
    """A cache kept across edits of the code that prints forms or typesets formulas (a developer's
    .report-cache) must not serve what the old code made: each cache key carries the module's hash."""
    assert hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:12] in getattr(module, key)
