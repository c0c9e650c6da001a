"""Build the Assignment 1 report: run experiments into the results store, render HTML and PDF.

    python build.py all                # run what is missing or stale, then render HTML and PDF
    python build.py run q3 --set q3.sweep_epochs=5
    python build.py render             # templates only: never trains, never imports torch
    python build.py status

Exit status: 0 success, 1 an experiment failed, 2 bad input (the message names the problem and the fix),
130 interrupted. Add --debug for a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os

# torch's OpenMP threads spin while waiting; on a busy 2-core machine that makes small runs 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from report.core import manifest
from report.core.config import PROFILES, check_profile, default_profile, parse_overrides
from report.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ReportError
from report.core.freshness import Request, Verdict, judge
from report.core.store import Store

app = typer.Typer(
    help=__doc__.split("\n\n")[0],
    epilog="Exit status: 0 success, 1 an experiment failed, 2 bad input (the message names the problem and "
    "the fix), 130 interrupted. Run 'python build.py COMMAND --help' for a command's options.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(str, Enum):
    html = "html"
    pdf = "pdf"
    all = "all"


class Paper(str, Enum):
    a4 = "a4"
    letter = "letter"


# ---- the shared options, declared once; each command names the ones it takes -------------------------
def _option(kind: Any, default: Any, *names: str, **info: Any) -> tuple[Any, Any]:
    return Annotated[kind, typer.Option(*names, **info)], default


PROFILE_HELP = (
    f"Experiment size: {', '.join(PROFILES)}. Default: full with CUDA, else quick ($REPORT_PROFILE)."
)
SET_HELP = "Override a config value, e.g. --set q3.sweep_epochs=5 (repeatable; validated and recorded)."
SHARED: dict[str, tuple[Any, Any]] = {
    "profile": _option(str | None, None, "--profile", "-p", help=PROFILE_HELP, show_default=False),
    "data_dir": _option(Path, Path("data"), "--data-dir", envvar="REPORT_DATA_DIR",
                        help="Where datasets live (downloaded there if missing)."),
    "store": _option(Path, Path("results"), "--store", envvar="REPORT_STORE",
                     help="The results store (parquet files)."),
    "out": _option(Path, Path("build"), "--out", "-o", envvar="REPORT_OUT",
                   help="Where report.html/.pdf go."),
    "device": _option(str, "auto", "--device", help="auto, cpu, cuda or mps."),
    "seed": _option(int, 0, "--seed", help="Base random seed, recorded with the results."),
    "sets": _option(list[str] | None, None, "--set", "-s", help=SET_HELP, show_default=False),
    "fmt": _option(Format, Format.all, "--format", "-f", help="Which outputs to write."),
    "paper": _option(Paper, Paper.a4, "--paper", help="PDF page size."),
    "strict_versions": _option(bool, False, "--strict-versions", envvar="REPORT_STRICT_VERSIONS",
                               help="Results made with other torch, torchvision or numpy are stale."),
    "debug": _option(bool, False, "--debug", help="Show tracebacks."),
}  # fmt: skip
BUILD = (
    "profile",
    "data_dir",
    "store",
    "seed",
    "sets",
    "strict_versions",
)  # what decides which results are current


@dataclass
class Options:
    """The shared options of one command, as given (absent ones keep their defaults)."""

    profile: str | None = None
    data_dir: Path = Path("data")
    store: Path = Path("results")
    out: Path = Path("build")
    device: str = "auto"
    seed: int = 0
    sets: list[str] | None = None
    fmt: Format = Format.all
    paper: Paper = Paper.a4
    strict_versions: bool = False
    debug: bool = False

    @functools.cached_property
    def chosen(self) -> str:
        """The profile, printed once when a command starts."""
        chosen = check_profile(self.profile) if self.profile else default_profile()
        console.print(f"profile: [bold]{chosen}[/]" + ("" if self.profile else " (default)"))
        return chosen

    @functools.cached_property
    def request(self) -> Request:
        if self.seed < 0:
            raise ReportError(f"--seed {self.seed}: give a seed of 0 or more")
        return Request(
            self.chosen, parse_overrides(self.sets), self.seed, self.data_dir, self.strict_versions
        )

    @functools.cached_property
    def results(self) -> Store:
        if self.store.exists() and not self.store.is_dir():
            raise ReportError(f"--store {self.store} is a file, not a folder; pass a folder for the results")
        return Store(self.store)


def command(*shared: str, name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``fn(opts, **own)`` as a command taking the named ``SHARED`` options besides its own.

    User errors become one line and exit status 2 (``--debug`` shows the traceback), an unexpected error
    exit status 1, an interrupt exit status 130.
    """

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        extra = [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, annotation=SHARED[n][0], default=SHARED[n][1]
            )
            for n in (*shared, "debug")
        ]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> None:
            opts = Options(**{n: kwargs.pop(n) for n in (*shared, "debug")})
            try:
                fn(opts, **kwargs)
            except ReportError as e:
                if opts.debug:
                    console.print_exception()
                raise _fail(str(e)) from None
            except KeyboardInterrupt:
                message = "interrupted; finished experiments are stored, the next run resumes"
                raise _fail(message, EXIT_INTERRUPTED) from None
            except typer.Exit:
                raise
            except Exception as e:
                if opts.debug:
                    console.print_exception()
                message = f"{type(e).__name__}: {e} (rerun with --debug for the traceback)"
                raise _fail(message, EXIT_FAILED) from None

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name)(wrapper)

    return decorate


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    for line in message.splitlines():
        console.print(f"[bold red]error:[/] {line}", soft_wrap=True)
    return typer.Exit(code)


# ---- what the commands share --------------------------------------------------------------------------
def _names(names: list[str] | None) -> list[str]:
    known = manifest.load()
    for n in names or []:
        known.get(n)  # an unknown name is a one-line error
    return list(dict.fromkeys(names)) if names else list(known.names)


def _verdicts(opts: Options, names: list[str]) -> list[Verdict]:
    return [judge(opts.results, n, opts.request) for n in names]


def _run_experiments(opts: Options, names: list[str], force: bool) -> int:
    """Plan, preflight, then train each stale experiment; returns how many ran."""
    if not force and all(v.current for v in _verdicts(opts, names)):  # decided without importing torch
        for name in names:
            console.print(f"[dim]{name}: up to date[/]")
        return 0
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments import runner
    from experiments.kit import resolve_device

    dev = resolve_device(opts.device)
    store = opts.results
    with store.lock(on_wait=lambda: console.print("another build is using this store; waiting for it…")):
        planned = runner.plan(names, opts.request, store, force)
        todo = [p for p in planned if p.stale]
        for p in planned:
            if not p.stale:
                console.print(f"[dim]{p.name}: up to date[/]")
        if not todo:
            return 0
        runner.preflight(todo, opts.data_dir)
        for p in todo:
            console.print(f"{p.name}: running ({', '.join(p.stale)}) on {dev.type} — {p.entry.title}")
            columns = (
                TextColumn("  {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True) as bars:
                meta = runner.execute(
                    p,
                    opts.request,
                    dev,
                    store,
                    bars.track,
                    log=lambda msg, b=bars: b.console.print(f"  {msg}"),
                )
            head = meta["headline"]
            console.print(
                f"[green]✓[/] {p.name}: {head['label']} = {head['value']:.4g} in {meta['duration_s']:.1f} s"
            )
    return len(todo)


def _check_out(out: Path) -> None:
    """The output folder exists and is writable: checked before anything trains or renders."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(
            f"cannot create the output folder {out}: {e.strerror}; pass a writable --out"
        ) from None
    if not os.access(out, os.W_OK):
        raise ReportError(f"the output folder {out} is not writable; pass a writable --out")


def _render(opts: Options) -> None:
    from report import output

    t0 = time.perf_counter()
    _check_out(opts.out)
    targets = {Format.html: ["html"], Format.pdf: ["pdf"], Format.all: ["html", "pdf"]}[opts.fmt]
    # WeasyPrint starts on the other core now, and prints as soon as the HTML below is ready
    with output.Printer() if "pdf" in targets else contextlib.nullcontext() as printer:
        from report import render

        page = render.render_html(opts.results, opts.request, opts.paper.value, cache_dir=opts.out / ".cache")
        written = output.write_outputs(page, opts.out, targets, printer)
    if not written:
        console.print(f"[dim]report in {opts.out} is up to date (same results, templates and paper)[/]")
        return
    console.print(f"[green]✓[/] wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")


# ---- the commands --------------------------------------------------------------------------------------
Force = Annotated[bool, typer.Option("--force", help="Rerun even if the stored result is current.")]


@command(*BUILD, "out", "device", "fmt", "paper", name="all")
def all_(opts: Options, force: Force = False) -> None:
    """Run every experiment that is missing or stale for the profile, then render HTML and PDF."""
    _check_out(opts.out)  # before any training
    _run_experiments(opts, _names(None), force)
    _render(opts)


@command(*BUILD, "device")
def run(
    opts: Options,
    names: Annotated[
        list[str] | None, typer.Argument(help="Experiments to run (default: all).", show_default=False)
    ] = None,
    force: Force = False,
) -> None:
    """Run experiments into the store (only those missing or stale, unless --force)."""
    if _run_experiments(opts, _names(names), force) == 0:
        console.print("nothing to run: every selected result is current (use --force to rerun)")


@command(*BUILD, "out", "fmt", "paper")
def render(opts: Options) -> None:
    """Render HTML and/or PDF from the store only: never trains and never imports torch."""
    _render(opts)


@command(*BUILD)
def status(opts: Options) -> None:
    """Show each experiment: whether it is current (or which input changed), when it ran, its headline."""
    from rich.table import Table

    if opts.sets:  # a mistyped --set is an error here too, as it would be for run and all
        from experiments import runner

        runner.resolve(_names(None), opts.chosen, opts.request.overrides)
    table = Table(title=f"results in {opts.store} for profile {opts.chosen}")
    for col in ("experiment", "state", "finished (UTC)", "duration", "device", "headline"):
        table.add_column(col)
    for v in _verdicts(opts, _names(None)):
        state = {"current": "[green]current[/]", "missing": "[red]missing[/]"}.get(
            v.state, f"[yellow]{v.label}[/]"
        )
        state += "".join(f" [dim]({note})[/]" for note in v.notes)
        meta = v.meta
        if meta is None:
            table.add_row(v.experiment, state, "", "", "", "")
            continue
        head = meta["headline"]
        table.add_row(
            v.experiment,
            state,
            meta["finished"].replace("T", " ")[:19],
            f"{meta['duration_s']:.1f} s",
            meta["device"],
            f"{head['label']} = {head['value']:.4g}",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # pipes get whole rows


@command("store", "out")
def clean(
    opts: Options,
    results: Annotated[bool, typer.Option("--results", help="Also delete stored results.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting results.")] = False,
) -> None:
    """Remove generated outputs (HTML, PDF, caches); with --results also the results store."""
    import shutil

    if opts.out.exists():
        shutil.rmtree(opts.out)
        console.print(f"removed {opts.out}")
    if results and opts.results.root.exists():
        try:
            confirmed = yes or typer.confirm(f"Delete every stored result in {opts.store}?", default=False)
        except typer.Abort:  # no terminal, or no answer: keep the results
            confirmed = False
        if not confirmed:
            raise _fail("kept the results store (pass --yes to delete without asking)", 1)
        with opts.results.lock():
            opts.results.delete()
        console.print(f"removed results in {opts.store}")


@command(*BUILD, "out", "fmt", "paper")
def watch(
    opts: Options,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")] = 0.5,
) -> None:
    """Re-render whenever a template, a context module, the manifest or the store changes (Ctrl-C stops)."""
    root = manifest.PROJECT

    def snapshot() -> dict[Path, int]:
        paths = [
            *(root / "templates").glob("*"),
            *(root / "report").rglob("*.py"),
            manifest.PATH,
            *opts.results.root.glob("*/*/run.parquet"),
        ]
        return {p: p.stat().st_mtime_ns for p in paths if p.is_file()}

    seen: dict[Path, int] = {}
    console.print(f"watching templates/, report/ and {opts.store}/{opts.chosen}; Ctrl-C to stop")
    try:
        while True:
            now = snapshot()
            if now != seen:
                seen = now
                _forget_rendering_modules()  # edited context modules and drawings are imported afresh
                try:
                    _render(opts)
                except ReportError as e:  # a bad edit is reported and the watch goes on
                    console.print(f"[bold red]error:[/] {e}")
            time.sleep(interval)
    except KeyboardInterrupt:
        console.print("stopped watching")


def _forget_rendering_modules() -> None:
    """Drop the context layer and renderer from ``sys.modules`` (not the base layer or the printer)."""
    import report

    for name in [m for m in sys.modules if m.startswith("report.")]:
        if not name.startswith(("report.core", "report.output")):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent == "report":
                vars(report).pop(child, None)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
