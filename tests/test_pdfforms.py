"""The PDF's figures and formulas as cached PDF forms (report/pdfforms.py): the printed file must look and
read as WeasyPrint's own drawing of the SVGs, and the printer process that uses them must keep going."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

import pytest

from report import output, pdfforms
from report.core.errors import ReportError
from report.provenance import for_print

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
    # the same picture: a figure flipped, shifted or scaled wrongly would differ on a tenth of its page
    before, after = (
        _pixels(tmp_path / "plain.pdf", tmp_path, "plain"),
        _pixels(tmp_path / "forms.pdf", tmp_path, "forms"),
    )
    assert len(before) == len(after) == len(plain.pages)
    for a, b in zip(before, after, strict=True):
        diff = ImageChops.difference(a, b).point(lambda v: 255 if v > 64 else 0)
        assert diff.histogram()[255] < 0.005 * a.width * a.height


def test_a_stand_in_keeps_what_lays_the_svg_out(tmp_path):
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10.5em" height=\'2em\' viewBox="0 -20 105 20" '
        'style=\'vertical-align:-0.3em\' role="img" aria-label="x &lt; 1" fill="red">'
        '<path d="M0 0L9 9"/></svg>'
    )
    forms = pdfforms.Forms(tmp_path, output._weasyprint())
    stand_in = forms.page(f"<p>{svg}</p>")
    for kept in ('width="10.5em"', 'height="2em"', 'viewBox="0 -20 105 20"', 'style="vertical-align:-0.3em"',
                 'role="img"', 'aria-label="x &lt; 1"'):  # fmt: skip
        assert kept in stand_in
    assert "<path" not in stand_in and 'fill="red"' not in stand_in  # drawn by the form instead
    assert '<image x="0" y="-20" width="105" height="20" preserveAspectRatio="none"' in stand_in
    unsized = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>'
    assert forms.page(unsized) == unsized  # nothing to lay a stand-in out by: drawn as it is
    nested = _SVG.format(w=9, h=9, words="") + "<p>after</p>"
    nested = nested.replace("<text", _SVG.format(w=3, h=3, words="inner") + "<text", 1)
    assert forms.page(nested) == nested  # an SVG within an SVG: left whole, not cut at the inner end


def test_a_form_is_made_once_and_again_when_its_file_is_damaged(tmp_path):
    svg = _SVG.format(w=20, h=10, words="Hi")
    weasyprint = output._weasyprint()
    first = pdfforms.Forms(tmp_path, weasyprint)
    first.page(svg)
    (made,) = tmp_path.glob("*.form")
    form = next(iter(first.by_url.values()))
    assert pdfforms.Form.load(made.read_bytes()) == form and form.width == 15 and form.height == 7.5
    made.write_bytes(made.read_bytes()[:-10])  # a truncated file
    again = pdfforms.Forms(tmp_path, weasyprint)
    again.page(svg)
    assert next(iter(again.by_url.values())) == form and pdfforms.Form.load(made.read_bytes()) == form


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


def test_a_printer_prints_page_after_page_and_starts_again_when_its_process_died(tmp_path):
    with output.Printer() as printer:
        for n in (1, 2):
            printer.print(f"<p>page number {n}</p>", tmp_path / f"{n}.pdf", tmp_path / "forms")
        first = printer._proc
        assert first is not None
        first.kill()
        first.wait()
        printer.print("<p>page number 3</p>", tmp_path / "3.pdf")
        assert printer._proc is not first
        with pytest.raises(ReportError, match="^printing the PDF failed: cannot write"):
            printer.print("<p>x</p>", tmp_path / "1.pdf" / "inside-a-file.pdf")
        printer.print("<p>page number 4</p>", tmp_path / "4.pdf")  # a failed page leaves it printing
    for n in (1, 2, 3, 4):
        assert f"page number {n}" in pypdf.PdfReader(tmp_path / f"{n}.pdf").pages[0].extract_text()
