"""Where each number of the report comes from, carried from the store to the page.

A value that leaves the results layer can carry its source: ``Sourced`` (a float) and ``SourcedInt`` (an
int) behave exactly like the number, so the context modules compute with them as before, and arithmetic
keeps the source (``100 * acc`` still comes from ``acc``). ``label`` gives every number of a question's
context that has no source of its own the place it was computed (its key in the context and the run),
and ``Document.table`` gives each table cell its column and row. The number filters of ``report.format``
are wrapped once (``filters``): a value with a source comes out as one ``<span class="n">`` holding the
formatted text with the source in ``data-src``: hover shows it, keyboard focus or a click (which
focuses) reveals it in place, all in CSS. Numbers written in the templates themselves are marked as
constants of the text (``mark_constants``). Verdict sentences carry the tests and p-values they rest on
(``basis``). The PDF leaves the sources out (the stylesheet's provenance rules are screen-only): WeasyPrint
would have to print them beside each number, and the page already names each table's and figure's run in
its footnote and every run in appendix A.
"""

from __future__ import annotations

import html
import math
import operator
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jinja2 import pass_eval_context
from jinja2.filters import sync_do_join
from jinja2.nodes import EvalContext
from markupsafe import Markup

from report import format as fmt

# A number as a reader sees one in the text: not part of a name ("ResNet-18", "q4", "bf16"), with its sign,
# separators, decimals, a power of ten and a percent sign. The counting test uses the same pattern.
NUMBER = re.compile(r"(?<![\w\-−.,/:#&])[−-]?\d+(?:[.,]\d+)*(?:×10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?%?")


class _Source:
    """What the three sourced types add to their value: ``how`` it was computed and the ``run`` it was read
    from, kept through a copy or a pickle."""

    how: str
    run: str
    _plain: type  # the value's own type

    def __new__(cls, value: Any, how: str, run: str = "") -> Any:
        obj = super().__new__(cls, value)  # type: ignore[call-arg]  # float's, int's or str's
        obj.how, obj.run = how, run
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._plain(self), self.how, self.run))


class Sourced(_Source, float):
    """A real number from the store with its source."""

    _plain = float


class SourcedInt(_Source, int):
    """A count from the store with its source."""

    _plain = int


class SourcedStr(_Source, str):
    """A text from the store that contains a number (a class named "3", a seed list), with its source."""

    _plain = str


SOURCED = (Sourced, SourcedInt, SourcedStr)
OUTSIDE = "outside the store"  # the run of a value the report quotes from elsewhere (a published figure)


def sourced(value: Any, how: str, run: str = "") -> Any:
    """``value`` with a source; booleans, missing values and non-numbers come back unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, SOURCED):
        return type(value)(value, how, run or value.run)
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return SourcedInt(value, how, run)
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return Sourced(value, how, run)
    return value


def sourced_text(value: str, how: str, run: str = "") -> str:
    """A text from the store with a source when it holds a number ("CPU (2 cores, 2 threads)")."""
    return SourcedStr(value, how, run) if NUMBER.search(value) else value


@pass_eval_context
def join(context: EvalContext, items: Iterable[Any], separator: str = "", attribute: Any = None) -> str:
    """Jinja's ``join`` that keeps the source of each sourced item ("the seeds 0, 1, 2")."""
    items = list(items)
    if attribute is None and any(isinstance(i, SOURCED) for i in items):
        items = [finalize(i) for i in items]
    return sync_do_join(context, items, separator, attribute)


@pass_eval_context
def join_and(context: EvalContext, items: Iterable[Any]) -> str:
    """``report.format.join_and`` ("a, b and c") that keeps the source of each sourced item, as ``join``
    does ("SGD, SGD with momentum 0.9 and Adam", the 0.9 from the context that named the optimizer)."""
    items = list(items)
    if not any(isinstance(i, SOURCED) for i in items):
        return fmt.join_and(items)
    parts = [finalize(i) for i in items]
    if len(parts) == 1:
        return sync_do_join(context, parts)
    return sync_do_join(context, [sync_do_join(context, parts[:-1], ", "), parts[-1]], " and ")


def _combine(operands: Iterable[Any]) -> tuple[str, str]:
    srcs = [o for o in operands if isinstance(o, SOURCED)]
    hows = list(dict.fromkeys(s.how for s in srcs))
    runs = list(dict.fromkeys(s.run for s in srcs if s.run))
    return ("; ".join(hows) if len(hows) == 1 else "from " + "; ".join(hows)), ", ".join(runs)


_OPS = {
    name: getattr(operator, name)
    for name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "abs", "pos")
}


def _plain(x: Any) -> Any:
    if isinstance(x, float):
        return float(x)
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else x


def _carry(name: str, reflected: bool = False) -> Callable[..., Any]:
    """An arithmetic operator whose numeric result keeps the operands' sources."""
    op = _OPS[name]

    def method(self: Any, *other: Any) -> Any:
        plain = [_plain(self), *(_plain(o) for o in other)]
        result = op(*reversed(plain)) if reflected else op(*plain)
        if isinstance(result, bool) or not isinstance(result, int | float):
            return result
        how, run = _combine((self, *other))
        return SourcedInt(result, how, run) if isinstance(result, int) else Sourced(result, how, run)

    return method


for _cls in (Sourced, SourcedInt):
    for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
        setattr(_cls, f"__{_name}__", _carry(_name))
        setattr(_cls, f"__r{_name}__", _carry(_name, reflected=True))
    for _name in ("neg", "abs", "pos"):
        setattr(_cls, f"__{_name}__", _carry(_name))


def source_text(value: Any) -> str:
    """The source of ``value`` as the page shows it ("" when it has none)."""
    if isinstance(value, SOURCED):
        return f"{value.how} (run {value.run})" if value.run and value.run != OUTSIDE else value.how
    return ""


def _sources(values: Iterable[Any]) -> str:
    """The sources of the values one number is formatted from (a mean and its spread), the run once."""
    srcs = [v for v in values if isinstance(v, SOURCED)]
    if len(srcs) < 2:
        return source_text(srcs[0]) if srcs else ""
    hows = " · ".join(dict.fromkeys(v.how for v in srcs))  # never "|": a Markdown table would split
    runs = ", ".join(dict.fromkeys(v.run for v in srcs if v.run and v.run != OUTSIDE))
    return f"{hows} (run {runs})" if runs else hows


def span(inner: str, src: str, kind: str = "n") -> str:
    """``inner`` (HTML) in the one element that carries a source: focusable, the source in ``data-src``."""
    attr = html.escape(src, quote=True).replace("$", "&#36;")  # never a math delimiter in Markdown
    return f'<span class="{kind}" tabindex="0" data-src="{attr}">{inner}</span>'


SPAN = re.compile(r'<span class="n" tabindex="0" data-src="([^"]*)">([^<]*)</span>')  # a plain number's


class Number(Markup):
    """A formatted number wrapped with its source. It compares, hashes and converts as its text, so a
    template that tests a formatted value (``shown == "1.00"``, ``shown | float``) works as before."""

    text: str

    def __new__(cls, text: str, src: str, kind: str = "n") -> Number:
        obj = super().__new__(cls, span(html.escape(text), src, kind))
        obj.text = text
        return obj

    def __eq__(self, other: object) -> bool:
        return self.text == (other.text if isinstance(other, Number) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.text)

    def __float__(self) -> float:
        return float(self.text.replace(",", "").replace("−", "-").rstrip("%"))

    def startswith(self, *args: Any) -> bool:  # type: ignore[override]
        return self.text.startswith(*args)

    def endswith(self, *args: Any) -> bool:  # type: ignore[override]
        return self.text.endswith(*args)


def _wrap(name: str, fn: Callable[..., str]) -> Callable[..., Any]:
    def filt(value: Any, *args: Any, **kwargs: Any) -> Any:
        text = fn(value, *args, **kwargs)
        parts = value if name == "pm" and isinstance(value, tuple | list) else (value,)
        src = _sources([*parts, *args, *kwargs.values()])
        return Number(text, src) if src else text

    filt.__doc__ = fn.__doc__
    return filt


def filters(plain: dict[str, Callable[..., str]]) -> dict[str, Callable[..., Any]]:
    """The number filters, each wrapping its text with the value's source when the value has one."""
    return {name: _wrap(name, fn) for name, fn in plain.items()}


def finalize(value: Any) -> Any:
    """Jinja's last step for every ``{{ … }}``: a sourced value printed without a filter keeps its source."""
    if isinstance(value, SOURCED) and not isinstance(value, Number):
        return Number(str(value), source_text(value))
    return value


def label(value: Any, path: str, module: str, run: str) -> Any:
    """``value`` (a question's context) with every number, and every text holding one, that has no source
    of its own sourced as the value at ``path`` computed by ``module`` from ``run``; sourced values get
    the run. Tables, figures and other objects are left as they are (tables label their own cells)."""
    if isinstance(value, SOURCED):
        return value if value.run else type(value)(value, value.how, run)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: label(v, f"{path}.{k}", module, run) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(label(v, f"{path}[{i}]", module, run) for i, v in enumerate(value))
    if isinstance(value, str):
        return sourced_text(value, f"{path}, from {module}", run)
    if isinstance(value, int | float) or type(value).__module__ == "numpy":
        if isinstance(value, float) and not math.isfinite(value):
            return value
        return sourced(value, f"{path}, computed by {module}", run)
    return value


def run_name(run: Any) -> str:
    """A run as a source names it: "q4 20261203-101500-ab12"."""
    return f"{run.experiment} {run.run_id}"


def basis(sentence: Any, claim: Any) -> Any:
    """A verdict sentence wrapped with the tests it rests on: for each comparison in ``claim`` (its
    ``runner_up``, ``gaps``, ``steps`` or ``comparisons``), which test gave which Holm-corrected p-value."""
    from report.format import pval

    if not claim or not str(sentence).strip():
        return sentence
    seen, parts = set(), []
    for key in ("runner_up", "gaps", "steps", "comparisons"):
        items = claim.get(key) if isinstance(claim, dict) else None
        for g in [items] if isinstance(items, dict) else items or []:
            if not isinstance(g, dict) or (g.get("a"), g.get("b")) in seen:
                continue
            seen.add((g.get("a"), g.get("b")))
            tests = []
            if g.get("p_adj") is not None:
                tests.append(f"Welch over seeds {_p_is(pval(g['p_adj']))}")
            if g.get("images_p_adj") is not None:
                tests.append(f"McNemar on the test images {_p_is(pval(g['images_p_adj']))}")
            parts.append(f"{g['b']} vs {g['a']}: " + (", ".join(tests) or "no test could be run"))
    if not parts:
        return sentence
    alpha = claim.get("alpha")
    head = "Holm-corrected p-values" + (f" at level {alpha:g}" if alpha is not None else "")
    runs = [r for r in dict.fromkeys(v.run for v in _leaves(claim)) if r and r != OUTSIDE]
    where = f" (run {', '.join(runs)})" if runs else ""
    return Markup(span(str(sentence), head + ": " + "; ".join(parts) + where, kind="v"))


def _p_is(shown: str) -> str:
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif type(value) in (list, tuple):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, SOURCED):
        yield value


_CONSTANTS: dict[tuple[tuple[str, float], ...], frozenset[str]] = {}
_JINJA = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.S)
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_IMPORT = re.compile(r"\{%-?\s*(?:import|from|include|extends)\s+[\"']([^\"']+)[\"']")


def constants(template: Path, folders: Iterable[Path]) -> frozenset[str]:
    """The numbers written in ``template`` and the templates it imports (found in ``folders``), in their
    text and in the string literals of their expressions: the constants of a section's text ("32×32",
    "2014", "784-128-64-32-10"), cached while none of those files changes."""
    files, todo = [], [template]
    while todo:
        path = todo.pop()
        if path in files or not path.is_file():
            continue
        files.append(path)
        for name in _IMPORT.findall(path.read_text(encoding="utf-8")):
            todo.extend(f / name for f in folders if (f / name).is_file())
    key = tuple((str(p), p.stat().st_mtime) for p in files)
    if key not in _CONSTANTS:
        found: set[str] = set()
        for path in files:
            source = path.read_text(encoding="utf-8")
            literal = _JINJA.sub(
                lambda m: " ".join(_STRING.findall(m.group(0))) if not m.group(0).startswith("{#") else " ",
                source,
            )
            found.update(m.group(0).rstrip(".,") for m in NUMBER.finditer(literal))
        if len(_CONSTANTS) > 64:  # a long preview session: keep the cache small
            _CONSTANTS.clear()
        _CONSTANTS[key] = frozenset(found)
    return _CONSTANTS[key]


# Passed over whole: tags, typeset math (a formula's digits are notation), numbers that already carry
# a source, and the report's own labels.
_SKIP = re.compile(
    r"(<svg\b.*?</svg>|<span class=\"(?:n|secnum|caption-label|provenance|math math-text)\"[^>]*>.*?</span>"
    r"|<a class=\"xref\".*?</a>|<[^>]*>)|" + NUMBER.pattern,
    re.S,
)


def mark_constants(section: str, known: frozenset[str]) -> str:
    """``section`` (rendered HTML) with each number that is neither sourced nor a label, and that the
    templates themselves write, marked as a constant of the text; any other number is left bare, which
    the counting test reports."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return m.group(0)
        token = m.group(0)
        if token.rstrip(".,") not in known:
            return token
        return f'<span class="c" data-src="constant of the text">{token}</span>'

    return _SKIP.sub(one, section)


_PRINTED = re.compile(SPAN.pattern + r'|<span class="c" data-src="constant of the text">([^<]*)</span>')


def for_print(page: str) -> str:
    """``page`` without the spans of plain numbers and constants, for the PDF: it shows no sources, and
    WeasyPrint lays out each span as a box of its own (a quarter more layout time with them)."""
    return _PRINTED.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(3), page)
