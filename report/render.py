"""Templates → one HTML page. Reads only the store (through the context layer); never imports torch.

Each question template is Markdown with Jinja2 expressions. Jinja fills in values, figures and tables;
markdown-it turns the result into HTML with math typeset by ziamath; the base template adds the title
block, contents and appendix. ``report.output`` writes the page and prints the same HTML to PDF.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup
from mdit_py_plugins.dollarmath import dollarmath_plugin

from report import figures, provenance
from report import format as fmt
from report.core.errors import ReportError, TemplateError
from report.core.freshness import Request
from report.core.store import Store
from report.mathsvg import MathCache
from report.output import TEMPLATES
from report.questions import Figure, Results, Run, Table, build, questions

PROJECT = Path(__file__).resolve().parent.parent
TITLE = "Deep Learning — Assignment 1"
PAPERS = {"a4": "A4", "letter": "Letter"}
_REF = re.compile(r"⟦ref:([^⟧]+)⟧")


@dataclass
class Document:
    """Numbering state for one render: figures, tables and sections in order of appearance."""

    math: MathCache
    cache_dir: Path | None
    labels: dict[str, str] = field(default_factory=dict)  # label -> "Figure 3"
    counts: dict[str, int] = field(default_factory=lambda: {"Figure": 0, "Table": 0})
    template: str = ""
    markdown: MarkdownIt | None = None

    def _number(self, kind: str, label: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9:_-]*", label):
            raise TemplateError(
                f"{self.template}: label {label!r} must be lowercase letters, digits, ':', '-'"
            )
        if label in self.labels:
            raise TemplateError(f"{self.template}: label {label!r} is used twice")
        self.counts[kind] += 1
        self.labels[label] = f"{kind} {self.counts[kind]}"
        return self.labels[label]

    def inline(self, text: str) -> str:
        assert self.markdown is not None
        return self.markdown.renderInline(text)

    def provenance(self, run: Run) -> str:
        """One line under a table or figure: which run, where and when, and the caveats a reader of these
        numbers should know (uncommitted code, other library versions, a record carried over code changes
        by ``accept``, which also gave it its id); their details are in the appendix, once per run."""
        caveats = run.caveat_labels()
        said = f". Caveats: {'; '.join(caveats)}. More" if caveats else "; more"
        text = (
            f"Source: {run.experiment}, run {run.run_id}, {run.device_name}, {run.date}{said} in appendix A."
        )
        stale = ""
        if run.stale:
            which = f" (settings: {'; '.join(run.settings_changed)})" if run.settings_changed else ""
            stale = (
                f' <strong class="stale">Stale: the {", ".join(run.stale)} changed since this run'
                f"{html.escape(which)}; make it again: {html.escape(run.rerun)}.</strong>"
            )
        return f'<span class="provenance">{html.escape(text)}{stale}</span>'

    def figure(self, fig: Figure, caption: str = "", label: str = "", caller: Any = None) -> Markup:
        """A numbered figure; the caption is a string or the body of a ``{% call figure(...) %}`` block."""
        caption = _caption(caption, caller, label)
        name = self._number("Figure", label)
        uri = figures.data_uri(figures.to_svg(fig, self.cache_dir))
        return Markup(
            f'\n<figure class="figure" id="{label}">'
            f'<img src="{uri}" alt="{html.escape(fig.alt, quote=True)}">'
            f'<figcaption><span class="caption-label">{name}.</span> {self.inline(caption)} '
            f"{self.provenance(fig.run)}</figcaption></figure>\n"
        )

    def table(self, tab: Table, caption: str = "", label: str = "", caller: Any = None) -> Markup:
        """A numbered table with one number format per column, from the context's ``Table``."""
        caption = _caption(caption, caller, label)
        name = self._number("Table", label)
        missing = [c for c in tab.columns if c not in tab.df.columns]
        if missing:
            raise TemplateError(f"{self.template}: table {label} has no column(s) {', '.join(missing)}")
        head = "".join(
            f'<th scope="col" class="{"text" if f == "text" else "num"}">{self.header(tab, h)}</th>'
            for h, f in tab.columns.values()
        )
        rows = []
        run = provenance.run_name(tab.run)
        key = next((c for c, (_, f) in tab.columns.items() if f == "text"), next(iter(tab.columns)))
        for _, row in tab.df.iterrows():
            named, form = tab.columns[key]  # the row as a reader finds it: its name, or its first cell
            where = f"{named.replace('$', '')} {fmt.apply(form, row[key])}"
            fields = row.to_dict() if any("{" in how for how in tab.sources.values()) else {}
            cells = "".join(
                f'<td class="{"text" if f == "text" else "num"}">'
                f"{self.cell(tab, c, h, f, row[c], where, run, fields)}</td>"
                for c, (h, f) in tab.columns.items()
            )
            cls = ' class="highlight"' if tab.highlight is not None and tab.highlight(row) else ""
            rows.append(f"<tr{cls}>{cells}</tr>")
        return Markup(
            f'\n<figure class="table" id="{label}"><figcaption><span class="caption-label">{name}.</span> '
            f"{self.inline(caption)}</figcaption><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            f'<p class="table-note">{self.provenance(tab.run)}</p></figure>\n'
        )

    def header(self, tab: Table, text: str) -> str:
        """A column header; one stating a number (a rate, a momentum) says who wrote it, from which run."""
        shown = self.inline(text)
        if not provenance.NUMBER.search(re.sub(r"<[^>]+>", "", shown)):
            return shown
        src = f"column header written by {_module(tab.run)} (run {provenance.run_name(tab.run)})"
        return provenance.span(shown, src)

    @staticmethod
    def cell(
        tab: Table,
        column: str,
        header: str,
        form: str,
        value: Any,
        where: str,
        run: str,
        fields: dict[str, Any],
    ) -> str:
        """One table cell: its number with the column's source and the row's label; a text without a
        number (a model's name) as it is."""
        text = fmt.apply(form, value)
        if form == "text" and not provenance.NUMBER.search(text):
            return html.escape(text)
        how = tab.sources.get(column) or f"column {column} of the table built by {_module(tab.run)}"
        how = how.format(**fields) if fields else how
        return provenance.Number(text, f"{header.replace('$', '')}: {how}; row {where} (run {run})")

    @staticmethod
    def ref(label: str) -> str:
        return f"⟦ref:{label}⟧"


def _module(run: Run) -> str:
    return f"report/questions/{run.experiment}.py"


def _caption(caption: str, caller: Any, label: str) -> str:
    text = caller() if caller is not None else caption
    if not label or not text.strip():
        raise TemplateError(f"figure/table {label or '(no label)'}: give both a caption and a label")
    return " ".join(text.split())


def _markdown(doc: Document, templates: Path) -> MarkdownIt:
    def math(content: str, options: dict[str, Any]) -> str:
        sources = provenance.SPAN.findall(content)  # a number filled into a formula: its source around it
        content = html.unescape(provenance.SPAN.sub(r"\2", content)) if sources else content
        try:
            svg = doc.math.svg(content.strip(), bool(options.get("display_mode")))
        except TemplateError as e:  # markdown runs after Jinja: find the formula in the template
            name = doc.template.removeprefix("templates/")
            where = _location(templates, [name], re.escape(content.strip()[:40])) if name else doc.template
            raise TemplateError(f"{where}: {e}") from None
        src = " · ".join(dict.fromkeys(html.unescape(s) for s, _ in sources))
        return provenance.span(svg, src) if sources else svg

    md = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(["table", "replacements"])
    md.use(dollarmath_plugin, renderer=math, double_inline=True, allow_space=True, allow_digits=False)
    return md


def _environment(doc: Document, templates: Path, cache_dir: Path | None) -> jinja2.Environment:
    bytecode = None
    if cache_dir is not None:  # compiled templates, keyed by source: saves ~0.15 s per render
        # compiled code depends on Jinja's version and this module's Environment options too
        key = hashlib.sha256(f"{jinja2.__version__}\0".encode() + Path(__file__).read_bytes()).hexdigest()
        folder = cache_dir / "jinja" / key[:16]
        folder.mkdir(parents=True, exist_ok=True)
        bytecode = jinja2.FileSystemBytecodeCache(str(folder))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([templates, TEMPLATES]),
        bytecode_cache=bytecode,
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
        finalize=provenance.finalize,  # a sourced value printed without a filter keeps its source
    )
    env.filters.update(
        provenance.filters(fmt.FILTERS),
        basis=provenance.basis,
        join=provenance.join,
        join_and=provenance.join_and,
    )
    env.globals.update(figure=doc.figure, table=doc.table, ref=doc.ref)
    return env


def words(question: str, templates: Path = TEMPLATES) -> Any:
    """The sentence macros of ``templates/<question>.words.j2`` as a module, with the report's filters,
    for tests and notebooks: ``words("q3").momentum(facts)``. One environment per templates folder: a
    template is compiled once (about 0.2 s each), and again when its file changes (Jinja's auto_reload)."""
    return _words_environment(templates).get_template(f"{question}.words.j2").module


@functools.cache
def _words_environment(templates: Path) -> jinja2.Environment:
    return _environment(Document(MathCache(), None), templates, None)


def _template_location(exc: BaseException) -> str:
    """file:line of the innermost template frame of a Jinja runtime error."""
    where = ""
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if name.endswith(".j2"):
            where = (
                f"{Path(name).relative_to(PROJECT) if Path(name).is_relative_to(PROJECT) else name}:{lineno}"
            )
    return where or "templates"


def _number_headings(
    md: MarkdownIt, source: str, section: int, toc: list[dict[str, Any]], ids: set[str]
) -> str:
    """Render Markdown with numbered, linkable headings (``#`` = the question, ``##`` = its parts),
    collecting the table of contents."""
    tokens = md.parse(source)
    sub = 0
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open":
            continue
        inline = tokens[i + 1]
        if tok.tag == "h1":
            number = str(section)
        else:
            sub += 1
            number = f"{section}.{sub}"
        plain = re.sub(r"<[^>]+>", "", inline.content)  # a sourced number in a heading: its text only
        slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:40] or "section"
        ident = f"sec-{number.replace('.', '-')}-{slug}"
        ids.add(ident)
        tok.attrSet("id", ident)
        toc.append(
            {
                "level": int(tok.tag[1]),
                "number": number,
                "title": md.renderInline(inline.content),
                "id": ident,
            }
        )
        number_token = Token("html_inline", "", 0)
        number_token.content = f'<span class="secnum">{number}</span> '
        inline.children = [number_token, *(inline.children or [])]
    return md.renderer.render(tokens, md.options, {})


def render_html(
    store: Store,
    request: Request | str,
    paper: str = "a4",
    cache_dir: Path | None = None,
    names: tuple[str, ...] | None = None,
    templates: Path = TEMPLATES,
) -> str:
    """The whole report as one self-contained HTML document (the manifest's questions, or ``names``, in
    order, one section each); ``request`` (or a profile name) decides which results are current."""
    results = Results(store, request)
    profile = results.profile
    names = questions() if names is None else names
    context = {  # every number of a context with its source (report/provenance.py)
        name: provenance.label(
            ctx, name, f"report/questions/{name}.py", provenance.run_name(results.run(name))
        )
        for name, ctx in build(results, names).items()
    }
    doc = Document(
        math=MathCache(cache_dir / "math.json" if cache_dir else None),
        cache_dir=cache_dir / "figures" if cache_dir else None,
    )
    md = _markdown(doc, templates)
    doc.markdown = md
    env = _environment(doc, templates, cache_dir)
    toc: list[dict[str, Any]] = []
    ids: set[str] = set()
    sections = []
    for number, name in enumerate(names, start=1):
        template = f"{name}.md.j2"
        doc.template = f"templates/{template}"
        try:
            source = env.get_template(template).render(**context, profile=profile)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"templates/{template}:{e.lineno}: {e.message}") from None
        except jinja2.UndefinedError as e:
            raise TemplateError(
                f"{_template_location(e)}: {e.message} (no such value in the results "
                "context; see report/questions/)"
            ) from None
        except ReportError:
            raise
        except Exception as e:
            raise TemplateError(f"{_template_location(e)}: {type(e).__name__}: {e}") from None
        section = _number_headings(md, source, number, toc, ids)
        written = provenance.constants(
            Path(env.get_template(template).filename or ""), [templates, TEMPLATES]
        )
        section = provenance.mark_constants(section, written)
        sections.append({"id": name, "html": section})
    body_meta = document_meta(results, names, profile)
    try:
        page = env.get_template("report.html.j2").render(
            sections=sections,
            # the original write-up's figures were quoted (Q4's LeNet-5 section): an exception to "every
            # number read from the store" that the title block and the appendix name
            original=bool(context.get("q4", {}).get("lenet")),
            toc=toc,
            meta=body_meta,
            paper=PAPERS[paper],
            css=(TEMPLATES / "style.css").read_text(encoding="utf-8"),
        )
    except jinja2.TemplateError as e:
        raise TemplateError(f"templates/report.html.j2: {getattr(e, 'message', e)}") from None

    def resolve(m: re.Match[str]) -> str:
        label = m.group(1)
        if label not in doc.labels:
            call = r"ref\(\s*['\"]" + re.escape(label) + r"['\"]"
            where = _location(templates, [f"{n}.md.j2" for n in names], call)
            raise TemplateError(
                f"{where}: ref({label!r}) names no figure or table; labels: {', '.join(sorted(doc.labels))}"
            )
        return f'<a class="xref" href="#{label}">{doc.labels[label]}</a>'

    page = _REF.sub(resolve, page)
    doc.math.save()
    return page


def _location(templates: Path, files: list[str], pattern: str) -> str:
    """file:line of the first match of ``pattern`` in the question templates ``files``, or "templates":
    where a ``ref`` or a formula is, once Jinja's own location is gone (refs resolve after all sections
    are rendered; formulas are typeset from Jinja's output)."""
    call = re.compile(pattern)
    for name in files:
        for folder in (templates, TEMPLATES):
            path = folder / name
            if path.is_file():
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                    if call.search(line):
                        return f"templates/{name}:{number}"
                break
    return "templates"


def document_meta(results: Results, questions: tuple[str, ...], profile: str) -> dict[str, Any]:
    """Title-block and appendix facts: profile, dates, commits, environment of every run shown."""
    all_runs = [results.run(name) for name in questions]
    commits = []  # one entry per commit; which run was made from uncommitted changes is in the appendix
    for commit in sorted({r.commit for r in all_runs}):
        runs = [r for r in all_runs if r.commit == commit]
        dirty = sum(r.dirty for r in runs)
        if dirty == len(runs):
            commit += " (uncommitted changes)"
        elif dirty:
            commit += f" ({dirty} of {len(runs)} runs with uncommitted changes)"
        commits.append(commit)
    stale = [r for r in all_runs if r.stale]
    finished = max(r.finished for r in all_runs)
    return {
        "title": TITLE,
        "profile": profile,
        "results_first": min(r.finished for r in all_runs)[:10],
        "results_date": finished[:10],
        "results_iso": datetime.fromisoformat(finished)
        .astimezone(timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commits": ", ".join(commits),
        "runs": all_runs,
        "stale": stale,
        # one command that makes every stale result again, with this build's store, data and settings
        "stale_rerun": results.store.command(" ".join(r.experiment for r in stale), profile) if stale else "",
        "devices": sorted({r.device_name for r in all_runs}),
        "versions": all_runs[0].versions if all(r.versions == all_runs[0].versions for r in all_runs) else {},
    }
