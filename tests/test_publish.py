"""Read the produced files back: the PDF with pypdf and pdftoppm, the HTML in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from report.core.store import Store
from tests.test_e2e import expected_cells

pytestmark = pytest.mark.slow
# Debian's chromium by default; $CHROMIUM names another build (the GitHub workflow uses google-chrome)
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def pdf(smoke_build):
    pypdf = pytest.importorskip("pypdf")
    return pypdf.PdfReader(smoke_build.pdf)


def test_pdf_tables_match_the_store(pdf, smoke_build):
    """Each table's cells are in the PDF's text row by row, in reading order: a cell may not be found in a
    page number or another table's text, as a lone "0" or "1" would be if each were looked for anywhere."""
    compact = _normalise(" ".join(page.extract_text() for page in pdf.pages)).replace(" ", "")
    for key, values in expected_cells(smoke_build.store).items():
        at = compact.find(values[0].replace(" ", "")) if values else 0
        for value in values:  # each cell after the one before it (wrapped cells read without spaces)
            found = compact.find(value.replace(" ", ""), at)
            assert found >= 0, f"{key}: {value!r} not in the PDF after the cells before it"
            at = found + len(value.replace(" ", ""))


def test_pdf_outline_metadata_and_fonts(pdf):
    titles = []

    def walk(items):
        for item in items:
            walk(item) if isinstance(item, list) else titles.append(item.title)

    walk(pdf.outline)
    for n in range(1, 5):
        assert any(t.startswith(f"{n} Question {n}") for t in titles), titles
    assert any("Provenance" in t for t in titles)
    assert pdf.metadata.title == "Deep Learning — Assignment 1"
    assert pdf.metadata.author and pdf.metadata.creation_date is not None
    root = pdf.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/Lang"] == "en", "not a tagged PDF"
    for page in pdf.pages:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            descriptor = (
                font.get("/FontDescriptor") or font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            )
            descriptor = descriptor.get_object()
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font.get(
                "/BaseFont"
            )


def test_pdf_has_page_numbers_and_every_page_renders(pdf, smoke_build, tmp_path):
    pages = len(pdf.pages)
    assert f"Page 2 of {pages}" in pdf.pages[1].extract_text()
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm (poppler-utils) is not installed; .ci/run installs it")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(smoke_build.pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    import matplotlib.image as mpimg

    for image in images:
        pixels = mpimg.imread(image)
        assert pixels.std() > 0.01, f"{image.name} is blank"


@pytest.mark.browser
def test_html_in_chromium(smoke_build, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None
        )
        page.goto(smoke_build.html.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.lang") == "en"
        sizes = page.evaluate("""() => [...document.querySelectorAll('figure.figure img, .math svg')]
            .map(e => { const r = e.getBoundingClientRect(); return [e.tagName, r.width, r.height]; })""")
        assert sum(1 for t, *_ in sizes if t == "IMG") >= 9, "too few figures"
        assert sum(1 for t, *_ in sizes if t.lower() == "svg") >= 20, "too few equations"
        assert all(w > 0 and h > 0 for _, w, h in sizes), [s for s in sizes if not (s[1] > 0 and s[2] > 0)]
        assert page.evaluate("[...document.querySelectorAll('img')].every(i => i.alt.trim().length > 0)")
        assert page.evaluate("[...document.querySelectorAll('table')].every(t => t.querySelector('th'))")
        broken = page.evaluate("""() => [...document.querySelectorAll('a[href^="#"]')]
            .map(a => decodeURIComponent(a.getAttribute('href').slice(1)))
            .filter(id => !document.getElementById(id))""")
        assert broken == []
        assert page.evaluate("document.querySelectorAll('a.xref').length") >= 4
        page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=False)  # not in the shared build
        browser.close()
    assert errors == []
    assert requests == []
    assert Store(smoke_build.store).has("smoke", "q4")
