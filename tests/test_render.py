"""Rendering: StrictUndefined, math, number formats, figures, tables, cross-references, errors."""

import re
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from report import output, render
from report.core.errors import MissingResultError, TemplateError
from report.core.store import Store
from report.questions import Figure, Results, Run, Table
from tests.helpers import store_with, toy_manifest

ROOT = Path(__file__).resolve().parents[1]


def _draw(data):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(data["x"], data["y"])
    return fig


def _context(r: Results):
    run = r.run("qx")
    df = r.table("qx", "sweep")
    return {
        "run": run,
        "best": float(df["acc"].max()),
        "tables": {
            "sweep": Table(df, {"lr": ("Learning rate $\\eta$", "sci"), "acc": ("Accuracy", "pct")}, run)
        },
        "figures": {
            "curve": Figure(_draw, df.rename(columns={"lr": "x", "acc": "y"}), "accuracy by rate", run)
        },
    }


@pytest.fixture
def fake_question(tmp_path, monkeypatch):
    """A one-question report: a context module, a template, and a store holding its result."""
    module = types.ModuleType("report.questions.qx")
    module.context = _context
    monkeypatch.setitem(sys.modules, "report.questions.qx", module)
    templates = tmp_path / "templates"
    templates.mkdir()
    tables = {"sweep": pd.DataFrame({"lr": [1e-3, 1e-2], "acc": [0.9712, 0.9856]})}
    store = store_with(tmp_path / "results", "qx", tables, manifest=toy_manifest("qx", tables))
    return store, templates


def _render(store, templates, text, tmp_path):
    (templates / "qx.md.j2").write_text(text)
    return render.render_html(
        store, "smoke", cache_dir=tmp_path / "cache", names=("qx",), templates=templates
    )


def test_values_tables_figures_math_and_refs(fake_question, tmp_path):
    store, templates = fake_question
    page = _render(
        store,
        templates,
        (
            "# Question 3: Test\n\nBest accuracy {{ qx.best | pct }} (see {{ ref('tab:q3-sweep') }} and "
            "{{ ref('fig:q3-curve') }}), with $\\sigma(z) = 1/(1+e^{-z})$.\n\n## Part\n\n"
            "$$\\nabla^2 L = X^\\top D X$$\n\n"
            "{{ table(qx.tables.sweep, 'The sweep.', label='tab:q3-sweep') }}\n\n"
            "{% call figure(qx.figures.curve, label='fig:q3-curve') %}"
            "Accuracy against $\\eta$.{% endcall %}\n"
        ),
        tmp_path,
    )
    best = '<span class="n" tabindex="0" data-src="qx.best, computed by report/questions/qx.py (run qx '
    assert "Best accuracy " + best in page and '">98.56%</span>' in page  # with its source (provenance.py)
    assert '<a class="xref" href="#tab:q3-sweep">Table 1</a>' in page
    assert '<a class="xref" href="#fig:q3-curve">Figure 1</a>' in page
    shown = re.sub(r'<span class="n" tabindex="0" data-src="[^"]*">([^<]*)</span>', r"\1", page)
    assert '<td class="num">1×10⁻³</td><td class="num">97.12%</td>' in shown
    assert 'aria-label="\\sigma(z) = 1/(1+e^{-z})"' in page
    assert 'class="math display"' in page
    assert 'alt="accuracy by rate"' in page and "data:image/svg+xml;base64," in page
    assert '<span class="secnum">1.1</span> Part' in page
    assert "Source: qx, run " in page
    assert 'src="http' not in page and "<script" not in page  # self-contained, no JavaScript


def test_undefined_value_fails_with_file_and_line(fake_question, tmp_path):
    store, templates = fake_question
    with pytest.raises(TemplateError, match=r"qx.md.j2:3: .*'dict object' has no attribute 'worst'"):
        _render(store, templates, "# Q\n\n{{ qx.worst | pct }}\n", tmp_path)


def test_a_formula_that_cannot_be_typeset_names_its_file_line_and_why(fake_question, tmp_path):
    store, templates = fake_question
    with pytest.raises(TemplateError, match=r"^templates/qx\.md\.j2:4: cannot typeset \$\\frac\{1\}\{\$: \S"):
        _render(store, templates, "# Q\n\nA first line.\nThen $\\frac{1}{$ is broken.\n", tmp_path)


def test_syntax_error_names_file_and_line(fake_question, tmp_path):
    store, templates = fake_question
    with pytest.raises(TemplateError, match=r"templates/qx.md.j2:2: "):
        _render(store, templates, "# Q\n{{ qx.best | pct \n", tmp_path)


def test_unknown_ref_and_duplicate_label_fail(fake_question, tmp_path):
    store, templates = fake_question
    with pytest.raises(
        TemplateError, match="templates/qx.md.j2:3: ref\\('fig:nope'\\) names no figure or table"
    ):
        _render(store, templates, "# Q\n\n{{ ref('fig:nope') }}\n", tmp_path)
    with pytest.raises(TemplateError, match="used twice"):
        _render(
            store,
            templates,
            "# Q\n\n{{ table(qx.tables.sweep, 'a', label='tab:x') }}\n\n"
            "{{ table(qx.tables.sweep, 'b', label='tab:x') }}\n",
            tmp_path,
        )


def test_missing_result_fails_the_build(tmp_path, monkeypatch):
    module = types.ModuleType("report.questions.qx")
    module.context = _context
    monkeypatch.setitem(sys.modules, "report.questions.qx", module)
    with pytest.raises(MissingResultError, match="run: build.py run qx --profile smoke"):
        tables = {"sweep": pd.DataFrame({"lr": [1e-3], "acc": [0.9]})}
        render.render_html(Store(tmp_path, toy_manifest("qx", tables)), "smoke", names=("qx",))


@pytest.mark.parametrize(("paper", "size"), [("a4", (595, 842)), ("letter", (612, 792))])
def test_pdf_has_the_numbers_on_the_chosen_paper(fake_question, tmp_path, paper, size):
    pypdf = pytest.importorskip("pypdf")
    store, templates = fake_question
    (templates / "qx.md.j2").write_text(
        "# Question 3: Test\n\n{{ table(qx.tables.sweep, 'The sweep.', label='tab:q3-sweep') }}\n"
    )
    page = render.render_html(store, "smoke", paper=paper, names=("qx",), templates=templates)
    output.write_pdf(page, tmp_path / "r.pdf")
    reader = pypdf.PdfReader(tmp_path / "r.pdf")
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == size
    text = "".join(p.extract_text() for p in reader.pages)
    assert "98.56%" in text and "Question 3" in text


def test_a_question_follows_on_without_a_forced_page_break(fake_question, tmp_path):
    """A forced break before each question and the appendix left the page before it mostly blank when
    a question overran by a few lines; a short report now fits on one page."""
    pypdf = pytest.importorskip("pypdf")
    output.write_pdf(_table_page(fake_question), tmp_path / "r.pdf")
    pages = [p.extract_text() for p in pypdf.PdfReader(tmp_path / "r.pdf").pages]
    assert len(pages) == 1 and "Question 3" in pages[0] and "Provenance and environment" in pages[0]


def _table_page(fake_question) -> str:
    store, templates = fake_question
    (templates / "qx.md.j2").write_text(
        "# Question 3: Test\n\n{{ table(qx.tables.sweep, 'The sweep.', label='tab:q3-sweep') }}\n"
    )
    return render.render_html(store, "smoke", names=("qx",), templates=templates)


def test_the_printer_process_writes_the_same_pdf(fake_question, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    page = _table_page(fake_question)
    output.write_pdf(page, tmp_path / "here.pdf")
    with output.Printer() as printer:
        printer.print(page, tmp_path / "there.pdf")
    here, there = (pypdf.PdfReader(tmp_path / f"{n}.pdf") for n in ("here", "there"))
    text = [p.extract_text() for p in there.pages]
    assert text == [p.extract_text() for p in here.pages]
    assert "98.56%" in "".join(text)


def test_an_unused_printer_process_is_stopped_on_close():
    printer = output.Printer()
    proc = printer._proc
    assert proc is not None and proc.poll() is None
    printer.close()
    assert proc.poll() is not None


def test_render_module_does_not_import_torch():
    code = (
        "import sys, report.render, report.questions, report.figures, report.core.store; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stale_result_is_flagged_not_shown_as_current(fake_question, tmp_path):
    store, templates = fake_question
    meta = store.meta("smoke", "qx")
    meta["fingerprint"] = {**meta["fingerprint"], "code": "code-of-an-older-version"}
    store.write("smoke", "qx", {"sweep": store.read("smoke", "qx", "sweep")}, meta)
    page = _render(
        store, templates, "# Q\n\n{{ table(qx.tables.sweep, 'The sweep.', label='tab:x') }}\n", tmp_path
    )
    assert "Stale results: qx (code changed)" in page
    assert "Run <code>build.py run qx --profile smoke</code> to bring them up to date." in page
    assert (
        '<strong class="stale">Stale: the code changed since this run; make it again: build.py run qx' in page
    )


def test_title_block_names_each_commit_once_and_which_runs_were_dirty():
    def run(name: str, commit: str, dirty: bool) -> Run:
        return Run(
            experiment=name,
            run_id="r",
            profile="smoke",
            finished="2026-11-26T10:00:00+00:00",
            device="cpu",
            device_name="CPU",
            duration_s=1.0,
            commit=commit,
            dirty=dirty,
            config={},
            versions={},
            stale=(),
        )

    runs = {"q1": run("q1", "aaa", True), "q2": run("q2", "aaa", False), "q3": run("q3", "bbb", True)}
    results = types.SimpleNamespace(run=runs.__getitem__)
    meta = render.document_meta(results, ("q1", "q2", "q3"), "smoke")
    assert meta["commits"] == "aaa (1 of 2 runs with uncommitted changes), bbb (uncommitted changes)"


def test_the_appendix_runs_table_fits_the_page_with_its_longest_cells(fake_question, tmp_path):
    """The committed reference's row is the widest the table gets: a GPU's name, a dirty commit, a
    duration whose sessions were not recorded, a status with an accepted code change. Its Status column
    ran off the printed page (the cells do not wrap a duration); every word must lie within the page's
    right margin (style.css's @page)."""
    import shutil

    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    store, templates = fake_question
    meta = store.meta("smoke", "qx")
    meta.update(device_name="NVIDIA H200", duration_s=86.3, git_dirty=True)
    meta.pop("sessions", None)
    meta["accepted"] = [{"on": "2026-12-03T20:07:56+00:00", "reason": "a resume path the run never took"}]
    store.write("smoke", "qx", {"sweep": store.read("smoke", "qx", "sweep")}, meta)
    page = _render(store, templates, "# Q\n\n{{ qx.best | pct }}\n", tmp_path)
    assert "(sessions not recorded)" in page and "current (code change accepted)" in page
    output.write_pdf(page, tmp_path / "r.pdf")
    boxes = subprocess.run(
        ["pdftotext", "-bbox", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    width = float(re.search(r'<page width="([\d.]+)"', boxes).group(1))
    right = max(float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes))
    margins = re.search(
        r"@page \{\s*margin: ([\d.]+)mm ([\d.]+)mm", (ROOT / "templates/style.css").read_text()
    )
    limit = width - float(margins.group(2)) * 72 / 25.4  # the right margin, in points
    assert right <= limit + 1, f"text reaches {right:.0f} pt of a {width:.0f} pt page (margin at {limit:.0f})"


@pytest.mark.slow  # about a hundred small PDFs
@pytest.mark.parametrize("before", [" <em>", "\n<a href='#x'>", " <code>"])
def test_a_line_before_an_inline_element_is_not_broken_after_its_first_word(tmp_path, before):
    """WeasyPrint 70 broke "… number of / epochs / and batch size … *under this one recipe*" (Q4's protocol
    paragraph) after "epochs": the text before the emphasis overflowed the line by its trailing space
    alone. Printed through ``output.write_pdf`` (which gives that space a box of its own) at every width
    from 145 to 180 mm, no line but the paragraph's last is one or two words, for emphasis, a link or code
    after a space or a line break; printed as it was, some width shows the bug, or WeasyPrint is fixed and
    a warning says that ``inline_spaces`` can go."""
    import shutil
    import warnings

    import weasyprint

    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    tag = before.strip()[1:].split(">")[0].split()[0]
    words = (
        "The question asks which of LeNet-5, AlexNet, VGG, ResNet-18, ResNet-50 and ResNet-101 classifies "
        "SVHN best; this build compares them on Fashion-MNIST instead, as the note above says. Two protocols "
        "are standard for such a comparison: hold everything but the architecture fixed, or tune each model "
        "with an equal budget. This study uses the first: every model sees the same images, the same "
        "augmentation, the same optimiser, learning-rate schedule, number of epochs and batch size, and "
        f"nothing is tuned per model. So the results describe the architectures{before}under this one "
        f"recipe</{tag}>; they cannot show how each would do at settings of its own."
    )
    css = (ROOT / "templates/style.css").read_text()

    def short_lines(pdf: Path) -> list[str]:
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("Page ")]  # the page's footer
        return [line for line in lines[:-1] if len(line.split()) <= 2]

    broken_before = []
    for mm in range(145, 181):
        page = (
            f"<html><head><style>{css} @page {{ size: {mm + 36}mm 297mm }}</style></head><body><p>{words}</p>"
        )
        output.write_pdf(page, tmp_path / "fixed.pdf")
        assert not short_lines(tmp_path / "fixed.pdf"), f"at {mm} mm"
        weasyprint.HTML(string=page).write_pdf(tmp_path / "plain.pdf")
        broken_before += [mm] if short_lines(tmp_path / "plain.pdf") else []
    if not broken_before:
        warnings.warn("WeasyPrint no longer breaks these lines: output.inline_spaces can go", stacklevel=1)
