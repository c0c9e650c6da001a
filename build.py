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
import dataclasses
import os

# torch's OpenMP threads spin while waiting; on a busy 2-core machine that makes small runs 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from report.cli import app, command, fail, keep_interrupts, status_table
from report.core import manifest, reference
from report.core.errors import EXIT_INTERRUPTED, ReportError
from report.core.freshness import Verdict, judge
from report.options import BUILD, EXECUTE, TRACK, Format, Options, Track, console


# ---- what the commands share --------------------------------------------------------------------------
def _names(names: list[str] | None) -> list[str]:
    known = manifest.load()
    for n in names or []:
        known.get(n)  # an unknown name is a one-line error
    return list(dict.fromkeys(names)) if names else list(known.names)


def _verdicts(opts: Options, names: list[str]) -> list[Verdict]:
    return [judge(opts.results, n, opts.request) for n in names]


def _waiting() -> None:
    console.print("another build is using this store; waiting for it…")


def _run_experiments(opts: Options, names: list[str], force: bool) -> int:
    """Take what needs a GPU this machine lacks from the reference results, then plan, preflight and
    train each stale experiment; returns how many ran."""
    lacking = opts.lacking(names)
    _fill_from_reference(opts, lacking)  # before the plan: a study made on a GPU is not retrained here
    if force:  # a current study made elsewhere stays: rerunning it here would take hours
        kept = [n for n in lacking if n not in opts.request.stand_ins]
        for name in kept:
            console.print(f"[dim]{name}: kept: its full study needs a GPU, and this machine has none[/]")
        names = [n for n in names if n not in kept]
        if not names:
            return 0
    verdicts = _verdicts(opts, names)
    if not force and all(v.current for v in verdicts):  # decided without importing torch
        for name in names:
            console.print(f"[dim]{name}: up to date[/]")
        return 0
    from experiments import datasets  # torch-free: a missing dataset is one line before torch is imported

    datasets.check_before_torch([v.experiment for v in verdicts if force or not v.current], opts.request)
    from experiments import executors, kit, runner

    slurm = dict(folder=opts.results.root / ".slurm", partition=opts.slurm_partition, gpus=opts.slurm_gpus,
                 minutes=opts.slurm_time, parallelism=opts.slurm_parallelism)  # fmt: skip
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    on_cpu = kit.resolve_device(opts.device).type == "cpu"  # a GPU runs one unit at a time
    executor = executors.make(
        opts.executor.value, opts.device, opts.ray_address, slurm, opts.jobs or (cores if on_cpu else 1)
    )
    for name in opts.request.stand_ins & set(names):
        console.print(f"[yellow]{name}: {reference.stand_in_line(opts.results, opts.request, name)}[/]")
    return runner.run_stale(
        names, opts.request, opts.results, force, opts.device, executor, console, _waiting
    )


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


def _render(opts: Options) -> str:
    """Render the report's HTML page and write the outputs ``--format`` asks for; returns the page."""
    from report import output

    t0 = time.perf_counter()
    _check_out(opts.out)
    targets = {Format.html: ["html"], Format.pdf: ["pdf"], Format.all: ["html", "pdf"]}[opts.fmt]
    # WeasyPrint starts on the other core now, while the results are checked and the HTML is built, and
    # prints as soon as the page is ready
    printing = output.Printer() if "pdf" in targets else contextlib.nullcontext()
    with printing as printer, output.gc_paused():
        _fill_from_reference(opts, _names(None), missing_too=True)
        from report import render

        page = render.render_html(
            opts.results, opts.request, opts.paper.value, cache_dir=output.cache_dir(opts.out)
        )
        written = output.write_outputs(page, opts.out, targets, printer)
    if not written:
        console.print(f"[dim]report in {opts.out} is up to date (same results, templates and paper)[/]")
    else:
        console.print(f"[green]✓[/] wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")
    return page


def _track(opts: Options, artifacts: list[Path]) -> None:
    """Log the profile's current results (and the report files) to the tracker, each result once."""
    if opts.track is not Track.none:
        from report import track

        console.print(track.log_build(opts.results, opts.chosen, opts.tracking_uri, artifacts))


def _fill_from_reference(opts: Options, names: list[str], missing_too: bool = False) -> None:
    """Results of ``names`` that are missing or not current come from the project's reference bundle
    where its are current; with ``missing_too``, missing ones come from it in any case (a render shows
    them flagged stale rather than fail)."""
    imported = reference.fill(opts.results, opts.request, names, on_wait=_waiting)
    if missing_too:
        imported += reference.fill_missing(opts.results, opts.request, names, on_wait=_waiting)
    if imported:
        where = reference.shown(reference.path(opts.chosen))
        console.print(f"{', '.join(imported)}: imported from the reference results {where}")


# ---- the commands --------------------------------------------------------------------------------------
Force = Annotated[bool, typer.Option("--force", help="Rerun even if the stored result is current.")]


@command(*BUILD, "out", "device", "fmt", "paper", *EXECUTE, *TRACK, name="all")
def all_(opts: Options, force: Force = False) -> None:
    """Run every experiment that is missing or stale for the profile, then render HTML and PDF."""
    _check_out(opts.out)  # before any training
    if opts.track is not Track.none:  # before any training
        from report import track

        track.check_available()
    _run_experiments(opts, _names(None), force)
    _render(opts)
    _track(opts, [opts.out / "report.html", opts.out / "report.pdf"])


@command(*BUILD, "device", *EXECUTE, *TRACK)
def run(
    opts: Options,
    names: Annotated[
        list[str] | None, typer.Argument(help="Experiments to run (default: all).", show_default=False)
    ] = None,
    force: Force = False,
) -> None:
    """Run experiments into the store (only those missing or stale, unless --force)."""
    if opts.track is not Track.none:  # before any training
        from report import track

        track.check_available()
    if _run_experiments(opts, _names(names), force) == 0 and not force:
        console.print("nothing to run: every selected result is current (use --force to rerun)")
    _track(opts, [])


@command(*BUILD, "out", "fmt", "paper", *TRACK)
def render(opts: Options) -> None:
    """Render HTML and/or PDF from the store: never trains and never imports torch. Results the store
    lacks are first imported into it from the project's reference bundle (experiments/reference/), if it
    has one for the profile, and the command says so."""
    _render(opts)
    _track(opts, [opts.out / "report.html", opts.out / "report.pdf"])


@command(*BUILD)
def status(opts: Options) -> None:
    """Show each experiment: whether it is current (or which input changed), when it ran, its headline."""
    if opts.sets:  # a mistyped --set is an error here too, as it would be for run and all
        from experiments import runner

        runner.resolve(_names(None), opts.request)
    verdicts = _verdicts(opts, _names(None))
    for i, v in enumerate(verdicts):
        if v.experiment in opts.request.stand_ins:
            why = reference.stand_in_line(opts.results, opts.request, v.experiment)
            verdicts[i] = dataclasses.replace(v, notes=(*v.notes, why))
    table = status_table(opts.results, opts.chosen, verdicts, f"store {opts.store}")
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # pipes get whole rows


Experiments = Annotated[
    list[str] | None, typer.Argument(help="Experiments (default: all).", show_default=False)
]


@command("profile", "store", name="export")
def export_(
    opts: Options,
    names: Experiments = None,
    dest: Annotated[Path, typer.Option("--output", "-o", help="The bundle to write (.tar.gz).")] = Path(
        "results.tar.gz"
    ),
) -> None:
    """Pack the current results into one bundle (tables and provenance, sha256 of every file)."""
    from report.core import bundle

    index = bundle.export(opts.results, opts.chosen, _names(names), dest)
    console.print(f"[green]✓[/] wrote {dest}: {', '.join(index['experiments'])} ({opts.chosen})")


@command("store", name="import")
def import_(
    opts: Options,
    source: Annotated[str, typer.Argument(help="A bundle's path or URL (file://, https://).")],
    replace_newer: Annotated[
        bool, typer.Option("--replace-newer", help="Replace results that finished later than the bundle's.")
    ] = False,
) -> None:
    """Verify a results bundle completely, then make its runs current (refused with one line if bad)."""
    from report.core import bundle

    verified = bundle.open_bundle(source, opts.results)
    names = bundle.adopt(opts.results, verified, replace_newer, on_wait=_waiting)
    devices = sorted({run["device_name"] for run in verified.runs().values()})
    console.print(
        f"[green]✓[/] imported {', '.join(names)} ({verified.profile}, made on {'; '.join(devices)})"
    )


@command(*BUILD)
def accept(
    opts: Options,
    names: Annotated[list[str], typer.Argument(help="Experiments whose results to carry over.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why the code change leaves the results as they are (recorded).")
    ],
) -> None:
    """Mark results as current for the code as it is now, without rerunning them; only a code change
    can be accepted, and the report and status say when and why it was."""
    from report.core import freshness

    accepted = freshness.accept(opts.results, opts.study, _names(names), reason, on_wait=_waiting)
    for name in _names(names):
        done = name in accepted
        console.print(f"[green]✓[/] {name}: accepted as current" if done else f"{name}: already current")


@command(*BUILD, "out")
def diff(
    opts: Options,
    a: Annotated[
        str | None, typer.Argument(help="A run id, a store folder or a bundle (default: previous run).")
    ] = None,
    b: Annotated[
        str | None, typer.Argument(help="The same for the other side (default: current run).")
    ] = None,
    names: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Only these experiments.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Compare the two reports instead of runs: A (and B, default this store) are store folders "
            "or bundles; lists the claims that flipped, the sentences that changed and the numbers that "
            "moved, each within or outside the uncertainty printed beside it.",
        ),
    ] = False,
    html_out: Annotated[
        Path | None,
        typer.Option(
            "--html", help="With --report: also write B's report with every change marked to this file."
        ),
    ] = None,
) -> None:
    """Show what changed between two runs of each experiment (by default its previous and its current run
    in this store): config keys, fingerprint parts, headline and table columns; with --report, what changed
    between the two rendered reports."""
    import json

    from report.diff import change_table, changes_between

    if report or html_out:
        _diff_reports(opts, a, b, as_json, html_out)
        return

    changes = changes_between(opts.results, opts.chosen, _names(names), a, b)
    if as_json:
        print(json.dumps(changes, indent=1, default=str))
        return
    if not changes:
        console.print(_nothing_to_compare(opts, a, b))
    for change in changes:
        Console(width=None if sys.stdout.isatty() else 200).print(change_table(change))


def _diff_reports(opts: Options, a: str | None, b: str | None, as_json: bool, html_out: Path | None) -> None:
    """``diff --report``: render both sides' reports and list what a reader would see change."""
    import json

    from report import output, report_diff

    if a is None:
        raise fail("diff --report needs A, the store folder or bundle to compare this store's report with: "
                   "build.py diff --report experiments/reference/full.tar.gz")  # fmt: skip
    name_a, name_b = a, b or str(opts.store)
    changes, _, page_b = report_diff.between(opts.results, opts.request, a, b, output.cache_dir(opts.out))
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(report_diff.as_html(page_b, changes, name_a, name_b), encoding="utf-8")
    if as_json:
        print(json.dumps(report_diff.as_json(changes, name_a, name_b), indent=1, ensure_ascii=False))
    else:
        print(report_diff.as_text(changes, name_a, name_b))
    if html_out is not None and not as_json:
        console.print(f"[green]✓[/] wrote {html_out}: report B with each change marked")


def _nothing_to_compare(opts: Options, a: str | None, b: str | None) -> str:
    """Why ``diff`` found no pair, and what it compares: a first build has one run of each experiment,
    so the default comparison (previous against current run) has nothing to show yet."""
    if a is None and b is None:
        return (
            f"nothing to compare: diff compares each experiment's previous run in this store ({opts.store}, "
            f"profile {opts.chosen}) with its current one, and none has run more than once here; to compare "
            "the current runs with other results, name them: build.py diff OTHER_STORE, build.py diff "
            f"BUNDLE.tar.gz or build.py diff RUN_ID (a folder in {opts.store / opts.chosen}/EXPERIMENT/)"
        )
    side_a, side_b = a or f"previous run in {opts.store}", b or f"current run in {opts.store}"
    return (
        f"nothing to compare: no experiment of profile {opts.chosen} has a run on both sides "
        f"(A: {side_a}; B: {side_b})"
    )


@command("store", "out")
def clean(
    opts: Options,
    results: Annotated[bool, typer.Option("--results", help="Also delete stored results.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting results.")] = False,
) -> None:
    """Remove what the build wrote to --out (HTML, PDF, caches) and nothing else; with --results also the
    results store. A folder the build did not write is refused, with nothing deleted."""
    from report import output

    if results and opts.results.root.exists():
        opts.results.check_deletable()  # before anything of either is deleted
    for path in output.clean(opts.out):
        console.print(f"removed {path}")
    if results and opts.results.root.exists():
        opts.results.check_deletable()
        try:
            confirmed = yes or typer.confirm(f"Delete every stored result in {opts.store}?", default=False)
        except typer.Abort:  # no terminal, or no answer: keep the results
            confirmed = False
        if not confirmed:
            raise fail("kept the results store (pass --yes to delete without asking)", 1)
        with opts.results.lock():
            opts.results.delete()
        console.print(f"removed results in {opts.store}")


@command(*BUILD, "out", "paper")
def preview(
    opts: Options,
    port: Annotated[int, typer.Option("--port", help="Port to serve on (0: any free one).")] = 8000,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Interface to serve on. The default keeps the page to this machine; give another "
            "(0.0.0.0: every interface) only on a network you trust.",
        ),
    ] = "127.0.0.1",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the page in a browser.")
    ] = True,
) -> None:
    """Serve the report on http://127.0.0.1:PORT and reload the open page on every save (Ctrl-C stops).

    The HTML is re-rendered when a template, a context module, the stylesheet, the manifest or the store
    changes; an error is shown over the page with its file and line; the PDF follows in the background.
    """
    import dataclasses

    from report import output
    from report import preview as live

    html_only = dataclasses.replace(opts, fmt=Format.html)
    page: dict[str, str] = {}  # the last good render, which the PDF is printed from

    def print_pdf() -> None:
        with output.Printer() as printer:
            output.write_outputs(page["html"], opts.out, ["pdf"], printer)

    watched, data = _watched(opts)
    session = live.Session(lambda: page.update(html=_rerender(html_only)), watched, data, print_pdf=print_pdf)
    session.log = _say
    live.serve(session, opts.out, host, port, browser, console.print)


@command(*BUILD, "out", "fmt", "paper")
def watch(opts: Options) -> None:
    """Re-render whenever a template, a context module, the manifest or the store changes (Ctrl-C stops);
    preview does the same and shows the page in a browser."""
    from report import preview as live

    watched, data = _watched(opts)
    session = live.Session(lambda: _rerender(opts), watched, data, log=_say)
    console.print(
        f"watching templates/, report/, experiments/, {opts.store}/{opts.chosen} and the data; Ctrl-C to stop"
    )
    try:
        session.run()
    except KeyboardInterrupt:
        session.stop.set()
        console.print("stopped watching")


def _say(message: str) -> None:
    console.print(f"[bold red]{escape(message)}[/]" if message.startswith("error") else message)


def _watched(opts: Options) -> tuple[list[Path], tuple[Path, ...]]:
    """What a preview or watch re-renders on, and the data folders among it: everything ``status``
    judges (the experiments' code, the manifest, the data) and what the page is made of (templates, the
    context layer, the results)."""
    _check_out(opts.out)
    _fill_from_reference(opts, _names(None), missing_too=True)
    results = opts.results.root / opts.chosen
    results.mkdir(parents=True, exist_ok=True)
    root = manifest.PROJECT
    data = (opts.data_dir.resolve(),) if opts.data_dir.is_dir() else ()
    return [root / "templates", root / "report", root / "experiments", results, *data], data


def _rerender(opts: Options) -> str:
    """Render with the context modules and drawings imported afresh (they may have been edited)."""
    from report import preview as live

    live.forget_rendering_modules()
    return _render(opts)


def main() -> None:
    keep_interrupts()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
