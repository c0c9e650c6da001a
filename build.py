"""Build the Assignment 1 report: run experiments into the results store, render HTML and PDF.

    python build.py all                # run what is missing or stale, then render HTML and PDF
    python build.py run q3 --set q3.epochs=5
    python build.py render             # templates only: never trains, never imports torch
    python build.py status

Exit status: 0 success, 1 an experiment failed, 2 bad input (the message names the problem and the fix),
130 interrupted. Add --debug for a traceback.
"""

from __future__ import annotations

import contextlib
import os

# torch's OpenMP threads spin while waiting; on a busy 2-core machine that makes small runs 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from report.config import PROFILES, check_profile, default_profile, parse_overrides
from report.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ReportError
from report.store import Store

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
EXPERIMENTS = ("q1", "q2", "q3", "q4")  # mirrors experiments.NAMES without importing torch
DEBUG = False


class Format(str, Enum):
    html = "html"
    pdf = "pdf"
    all = "all"


class Paper(str, Enum):
    a4 = "a4"
    letter = "letter"


Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help=f"Experiment size: {', '.join(PROFILES)}. Default: full with a CUDA device, "
        "else quick (or $REPORT_PROFILE).",
        show_default=False,
    ),
]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="REPORT_DATA_DIR", help="Where datasets live (downloaded there if missing)."
    ),
]
StoreDir = Annotated[
    Path, typer.Option("--store", envvar="REPORT_STORE", help="The results store (parquet files).")
]
OutDir = Annotated[Path, typer.Option("--out", "-o", envvar="REPORT_OUT", help="Where report.html/.pdf go.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Seed = Annotated[int, typer.Option("--seed", help="Base random seed, recorded with the results.")]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, e.g. --set q3.epochs=5 or --set q4.dataset=fashion-mnist "
        "(repeatable; validated and recorded).",
        show_default=False,
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Rerun even if the stored result is current.")]
Fmt = Annotated[Format, typer.Option("--format", "-f", help="Which outputs to write.")]
PaperOpt = Annotated[Paper, typer.Option("--paper", help="PDF page size.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    for line in message.splitlines():
        console.print(f"[bold red]error:[/] {line}", soft_wrap=True)
    return typer.Exit(code)


def _profile(profile: str | None) -> str:
    chosen = check_profile(profile) if profile else default_profile()
    console.print(f"profile: [bold]{chosen}[/]" + ("" if profile else " (default)"))
    return chosen


def _run_experiments(
    names: list[str],
    profile: str,
    data_dir: Path,
    store: Store,
    device: str,
    seed: int,
    sets: list[str] | None,
    force: bool,
) -> int:
    """Plan, preflight, then train each stale experiment; returns how many ran."""
    overrides = parse_overrides(sets)
    if not force and _all_current(names, profile, overrides, seed, data_dir, store):
        for name in names:
            console.print(f"[dim]{name}: up to date[/]")
        return 0
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments import runner
    from experiments.common import resolve_device

    dev = resolve_device(device)
    with store.lock(on_wait=lambda: console.print("another build is using this store; waiting for it…")):
        planned = runner.plan(names, profile, overrides, seed, data_dir, store, force)
        todo = [p for p in planned if p.stale]
        for p in planned:
            if not p.stale:
                console.print(f"[dim]{p.name}: up to date[/]")
        if not todo:
            return 0
        runner.preflight(todo, data_dir)
        for p in todo:
            console.print(f"{p.name}: running ({', '.join(p.stale)}) on {dev.type} — {p.module.TITLE}")
            with Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bars:

                def track(items, total=None, description="", _bars=bars):
                    yield from _bars.track(items, total=total, description=description)

                meta = runner.execute(
                    p,
                    profile,
                    seed,
                    dev,
                    data_dir,
                    store,
                    track,
                    log=lambda msg: bars.console.print(f"  {msg}"),
                )
            head = meta["headline"]
            console.print(
                f"[green]✓[/] {p.name}: {head['label']} = {head['value']:.4g} in {meta['duration_s']:.1f} s"
            )
    return len(todo)


def _all_current(
    names: list[str],
    profile: str,
    overrides: dict[str, dict[str, str]],
    seed: int,
    data_dir: Path,
    store: Store,
) -> bool:
    """True when every stored result was made for exactly this request: decided without torch."""
    from report import fingerprint as fp

    if any(exp not in EXPERIMENTS for exp in overrides):
        return False  # let the full plan report the unknown name
    cache = store.root / ".datahash.json"
    return all(
        fp.is_current(
            store.meta(profile, n), fp.request_hash(n, profile, overrides.get(n, {}), seed, data_dir), cache
        )
        for n in names
    )


def _render(store: Store, profile: str, out: Path, fmt: Format, paper: Paper) -> None:
    from report import output

    t0 = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(
            f"cannot create the output folder {out}: {e.strerror}; pass a writable --out"
        ) from None
    if not os.access(out, os.W_OK):
        raise ReportError(f"the output folder {out} is not writable; pass a writable --out")
    targets = {Format.html: ["html"], Format.pdf: ["pdf"], Format.all: ["html", "pdf"]}[fmt]
    # WeasyPrint starts on the other core now, and prints as soon as the HTML below is ready
    with output.Printer() if "pdf" in targets else contextlib.nullcontext() as printer:
        from report import render

        page = render.render_html(store, profile, paper.value, cache_dir=out / ".cache")
        written = output.write_outputs(page, out, targets, printer)
    if not written:
        console.print(f"[dim]report in {out} is up to date (same results, templates and paper)[/]")
        return
    console.print(f"[green]✓[/] wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")


def _guard(fn):
    """Turn user errors into one line and exit status 2; --debug shows the traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global DEBUG
        DEBUG = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except ReportError as e:
            if DEBUG:
                console.print_exception()
            raise _fail(str(e)) from None
        except KeyboardInterrupt:
            raise _fail(
                "interrupted; finished experiments are stored, the next run resumes", EXIT_INTERRUPTED
            ) from None
        except typer.Exit:
            raise
        except Exception as e:
            if DEBUG:
                console.print_exception()
            raise _fail(
                f"{type(e).__name__}: {e} (rerun with --debug for the traceback)", EXIT_FAILED
            ) from None

    return wrapper


def _names(names: list[str] | None) -> list[str]:
    for n in names or []:
        if n not in EXPERIMENTS:
            raise ReportError(f"unknown experiment {n!r}: choose from {', '.join(EXPERIMENTS)}")
    return list(dict.fromkeys(names)) if names else list(EXPERIMENTS)


@app.command("all")
@_guard
def all_(
    profile: Profile = None,
    data_dir: DataDir = Path("data"),
    store: StoreDir = Path("results"),
    out: OutDir = Path("build"),
    device: Device = "auto",
    seed: Seed = 0,
    set_: Sets = None,
    force: Force = False,
    fmt: Fmt = Format.all,
    paper: PaperOpt = Paper.a4,
    debug: Debug = False,
) -> None:
    """Run every experiment that is missing or stale for the profile, then render HTML and PDF."""
    chosen = _profile(profile)
    st = Store(store)
    _run_experiments(list(EXPERIMENTS), chosen, data_dir, st, device, seed, set_, force)
    _render(st, chosen, out, fmt, paper)


@app.command()
@_guard
def run(
    names: Annotated[
        list[str] | None, typer.Argument(help="Experiments to run (default: all).", show_default=False)
    ] = None,
    profile: Profile = None,
    data_dir: DataDir = Path("data"),
    store: StoreDir = Path("results"),
    device: Device = "auto",
    seed: Seed = 0,
    set_: Sets = None,
    force: Force = False,
    debug: Debug = False,
) -> None:
    """Run experiments into the store (only those missing or stale, unless --force)."""
    chosen = _profile(profile)
    ran = _run_experiments(_names(names), chosen, data_dir, Store(store), device, seed, set_, force)
    if ran == 0:
        console.print("nothing to run: every selected result is current (use --force to rerun)")


@app.command()
@_guard
def render(
    profile: Profile = None,
    store: StoreDir = Path("results"),
    out: OutDir = Path("build"),
    fmt: Fmt = Format.all,
    paper: PaperOpt = Paper.a4,
    debug: Debug = False,
) -> None:
    """Render HTML and/or PDF from the store only: never trains and never imports torch."""
    _render(Store(store), _profile(profile), out, fmt, paper)


@app.command()
@_guard
def status(
    profile: Profile = None,
    data_dir: DataDir = Path("data"),
    store: StoreDir = Path("results"),
    seed: Seed = 0,
    set_: Sets = None,
    debug: Debug = False,
) -> None:
    """Show each experiment: when it ran, how long it took, its headline metric, and whether it is current."""
    from rich.table import Table

    from experiments import runner

    chosen = _profile(profile)
    st = Store(store)
    planned = runner.plan(list(EXPERIMENTS), chosen, parse_overrides(set_), seed, data_dir, st)
    table = Table(title=f"results in {store} for profile {chosen}")
    for col in ("experiment", "state", "finished (UTC)", "duration", "device", "headline"):
        table.add_column(col)
    for p in planned:
        meta = st.meta(chosen, p.name)
        if meta is None:
            table.add_row(p.name, "[red]missing[/]", "", "", "", "")
            continue
        state = "[green]current[/]" if not p.stale else f"[yellow]stale: {', '.join(p.stale)} changed[/]"
        head = meta["headline"]
        table.add_row(
            p.name,
            state,
            meta["finished"].replace("T", " ")[:19],
            f"{meta['duration_s']:.1f} s",
            meta["device"],
            f"{head['label']} = {head['value']:.4g}",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # pipes get whole rows


@app.command()
@_guard
def clean(
    store: StoreDir = Path("results"),
    out: OutDir = Path("build"),
    results: Annotated[bool, typer.Option("--results", help="Also delete stored results.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting results.")] = False,
    debug: Debug = False,
) -> None:
    """Remove generated outputs (HTML, PDF, caches); with --results also the results store."""
    import shutil

    if out.exists():
        shutil.rmtree(out)
        console.print(f"removed {out}")
    if results and Store(store).root.exists():
        if not yes and not typer.confirm(f"Delete every stored result in {store}?", default=False):
            raise _fail("kept the results store (pass --yes to delete without asking)", 1)
        st = Store(store)
        with st.lock():
            st.delete()
        console.print(f"removed results in {store}")


@app.command()
@_guard
def watch(
    profile: Profile = None,
    store: StoreDir = Path("results"),
    out: OutDir = Path("build"),
    fmt: Fmt = Format.html,
    paper: PaperOpt = Paper.a4,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")] = 0.5,
    debug: Debug = False,
) -> None:
    """Re-render whenever a template, a context module or the store changes (Ctrl-C to stop)."""
    from report.render import PROJECT

    chosen = _profile(profile)
    st = Store(store)

    def snapshot() -> dict[Path, int]:
        paths = [
            *(PROJECT / "templates").glob("*"),
            *(PROJECT / "report").rglob("*.py"),
            *st.root.glob("*/*/run.parquet"),
        ]
        return {p: p.stat().st_mtime_ns for p in paths if p.is_file()}

    seen: dict[Path, int] = {}
    console.print(f"watching templates/, report/ and {store}/{chosen}; Ctrl-C to stop")
    try:
        while True:
            now = snapshot()
            if now != seen:
                seen = now
                # a fresh process picks up edited context modules; an error keeps the watch going
                subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "render",
                        "--profile",
                        chosen,
                        "--store",
                        str(store),
                        "--out",
                        str(out),
                        "--format",
                        fmt.value,
                        "--paper",
                        paper.value,
                    ],
                    check=False,
                )
            time.sleep(interval)
    except KeyboardInterrupt:
        console.print("stopped watching")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
