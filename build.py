"""Build the Assignment 1 report: run experiments into the results store, render HTML and PDF.

    python build.py all                # run what is missing or stale, then render HTML and PDF
    python build.py run q3 --set q3.sweep_epochs=5
    python build.py render             # templates only: never trains, never imports torch
    python build.py status

Exit status: 0 success, 1 an unexpected failure (an experiment that raised, a lost cluster or worker, a
bug), 2 bad input (the message names the problem and the fix), 3 status --check found a result missing or
stale, 130 interrupted. Add --debug for a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex

# torch's OpenMP threads spin while waiting; on a busy 2-core machine that makes small runs 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from report import steps
from report.cli import EXIT_NOT_CURRENT, app, command, fail, keep_interrupts, status_rows, status_table
from report.core import reference
from report.core.atomic import atomic_write
from report.core.config import check_value
from report.core.errors import EXIT_INTERRUPTED, ConfigError, ReportError
from report.core.freshness import judge
from report.diff import config_changes
from report.options import BOUNDS, BUILD, EXECUTE, TRACK, WHERE, Format, Options, console

# ---- the commands --------------------------------------------------------------------------------------
Force = Annotated[bool, typer.Option("--force", help="Rerun even if the stored result is current.")]
Experiments = Annotated[
    list[str] | None, typer.Argument(help="Experiments (default: all).", show_default=False)
]


@command(*BUILD, "out", "cache", "device", "fmt", "paper", *EXECUTE, *TRACK, name="all")
def all_(opts: Options, force: Force = False) -> None:
    """Run every experiment that is missing or stale for the profile, then render HTML and PDF."""
    steps.check_out(opts)  # before any training
    steps.check_tracker(opts)
    steps.run_experiments(opts, steps.selected(None), force)
    steps.render_outputs(opts)
    steps.log_to_tracker(opts, [opts.out / "report.html", opts.out / "report.pdf"])


@command(*BUILD, "device", *EXECUTE, *TRACK)
def run(
    opts: Options,
    names: Annotated[
        list[str] | None, typer.Argument(help="Experiments to run (default: all).", show_default=False)
    ] = None,
    force: Force = False,
) -> None:
    """Run experiments into the store (only those missing or stale, unless --force)."""
    steps.check_tracker(opts)
    if steps.run_experiments(opts, steps.selected(names), force) == 0 and not force:
        console.print("nothing to run: every selected result is current (use --force to rerun)")
    steps.log_to_tracker(opts, [])


@command(*BUILD, *WHERE, "out", "cache", "fmt", "paper", *TRACK)
def render(opts: Options) -> None:
    """Render HTML and/or PDF from the store: never trains and never imports torch. Results the store
    lacks are first imported into it from the project's reference bundle (experiments/reference/), if it
    has one for the profile, and a stale stored result gives way to a current reference one; the command
    says so."""
    steps.check_tracker(opts)
    steps.render_outputs(opts)
    steps.log_to_tracker(opts, [opts.out / "report.html", opts.out / "report.pdf"])


@command(*BUILD, *WHERE)
def status(
    opts: Options,
    names: Experiments = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help=f"Exit with status {EXIT_NOT_CURRENT} when a selected result is missing or stale (for CI).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows instead of the table.")] = False,
) -> None:
    """Show each experiment: whether it is current (or which input changed, and for a setting which one
    and from what to what), when it ran, its headline; below, the one command that runs those missing
    or stale."""
    import json

    chosen = steps.selected(names)
    configs = steps.checked_configs(opts, chosen)  # a bad setting is an error here, as for run and all
    verdicts = steps.verdicts_of(opts, chosen)
    for i, v in enumerate(verdicts):
        asked, notes = opts.request, list(v.notes)
        if v.experiment in opts.request.stand_ins:
            if v.meta is not None and "stand_in" not in v.meta:  # a stored study: what changed since it ran
                asked = opts.study
                v = judge(opts.results, v.experiment, asked)
            notes.append(reference.stand_in_line(opts.results, opts.request, v.experiment))
        changes = config_changes(v.meta, asked, v.experiment) if "config" in v.changed and v.meta else []
        if changes:  # which settings: "segments 2000 → 300"
            notes.insert(0, "; ".join(changes))
        verdicts[i] = dataclasses.replace(v, notes=tuple(notes))
    if as_json:
        print(json.dumps(status_rows(opts.chosen, verdicts), indent=1, default=str))
    else:
        table = status_table(opts.results, opts.chosen, verdicts, f"store {opts.store}")
        Console(width=None if sys.stdout.isatty() else 200).print(table)  # pipes get whole rows
    todo = [v.experiment for v in verdicts if not v.current]
    if todo:
        steps.checked_sizes(opts, configs, todo)  # below the table: no advice that run would refuse
        console.print(f"run: {steps.run_command(opts, todo)}")
    if check and todo:
        raise typer.Exit(EXIT_NOT_CURRENT)


@command("profile", "store", name="export")
def export_(
    opts: Options,
    names: Experiments = None,
    dest: Annotated[
        Path, typer.Option("--output", "-o", help="The bundle to write (.tar.gz or .tgz).")
    ] = Path("results.tar.gz"),
    force: Annotated[bool, typer.Option("--force", help="Replace the bundle if the file exists.")] = False,
) -> None:
    """Pack the current results into one bundle (tables and provenance, sha256 of every file). An existing
    file is kept unless --force (it may be the only copy of results made on another machine); with it, the
    new bundle replaces it in one step."""
    from report.core import bundle

    if not dest.name.lower().endswith((".tar.gz", ".tgz")):
        raise ConfigError(
            f"-o {dest}: a bundle is a gzipped tar archive; name it {_as_tar_gz(dest)} (or .tgz)"
        )
    if steps.in_store(dest, opts):
        raise ConfigError(f"-o {dest} lies in the results store {opts.store}; write the bundle outside it")
    replaced = dest.exists()
    if replaced and not force:
        raise ConfigError(f"-o {dest} exists; pass --force to replace it, or another -o")
    index = bundle.export(opts.results, opts.chosen, steps.selected(names), dest)
    done = "replaced" if replaced else "wrote"
    console.print(f"[green]✓[/] {done} {dest}: {', '.join(index['experiments'])} ({opts.chosen})")


def _as_tar_gz(path: Path) -> Path:
    """``results.zip`` as ``results.tar.gz``: the name export's error advises."""
    if not path.name or path.is_dir():  # "-o ." or "-o bundles/": a file in that folder
        return path / "results.tar.gz"
    base = path.with_suffix("")
    base = base.with_suffix("") if base.suffix == ".tar" else base  # results.tar.bz2
    return base.with_name(base.name + ".tar.gz")


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

    if not source.strip():
        raise ConfigError("import needs a bundle: give its path (results.tar.gz) or URL (https://…)")
    verified = bundle.open_bundle(source, opts.results)
    for name, why in verified.left_out.items():
        run = opts.results.command(name, verified.profile)
        console.print(
            f"[yellow]{name}: left out: made for another version of the manifest ({why}); run: {run}[/]"
        )
    names = bundle.adopt(opts.results, verified, replace_newer, on_wait=steps.waiting)
    kept = [n for n in verified.runs() if n not in names]
    devices = sorted({verified.runs()[n]["device_name"] for n in names})
    if names:
        console.print(
            f"[green]✓[/] imported {', '.join(names)} ({verified.profile}, made on {'; '.join(devices)})"
        )
    if kept:  # a bundle imported before: its runs are already the store's own
        nothing = "" if names else "; nothing imported"
        console.print(f"{', '.join(kept)}: already in the store, the bundle's own runs{nothing}")


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
    import shutil

    from report.core import freshness

    made = not opts.store.exists()
    try:
        accepted = freshness.accept(
            opts.results, opts.study, steps.selected(names), reason, on_wait=steps.waiting
        )
    except ReportError:
        if made:  # a store made only to hold the lock of a refusal: leave no folder behind
            shutil.rmtree(opts.store, ignore_errors=True)
        raise
    for name in steps.selected(names):
        done = name in accepted
        console.print(f"[green]✓[/] {name}: accepted as current" if done else f"{name}: already current")


@command(*BUILD, *WHERE, "out", "cache")
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

    changes, missing = changes_between(opts.results, opts.chosen, steps.selected(names), a, b)
    for line in missing:  # on stderr, beside --json's output
        console.print(f"[yellow]{escape(line)}[/]")
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
        from report.core import reference

        how = "--report" if html_out is None else f"--report --html {shlex.quote(str(html_out))}"
        # the profile's reference bundle as a path that works from here (reference.shown: the project's)
        ref = reference.path(opts.chosen)
        ref = ref.relative_to(Path.cwd()) if ref.is_relative_to(Path.cwd()) else ref
        side = shlex.quote(str(ref)) if ref.is_file() else "OTHER_STORE_OR_BUNDLE"
        profile = f" --profile {opts.chosen}" if opts.sources.get("profile") == "command line" else ""
        given = f"{profile} {opts.advice()}".rstrip()
        raise fail(
            f"diff {how} compares two reports and needs A, the store folder or bundle to compare this "
            f"store's report with: build.py diff {side} {how}{given}"
        )
    name_a, name_b = a, b or str(opts.store)
    if html_out is not None:
        _check_marked_page(html_out)
        if steps.in_store(html_out, opts):
            raise fail(f"--html {html_out} lies in the results store {opts.store}; give a file outside it")
    steps.check_out(opts)
    changes, _, page_b = report_diff.between(
        opts.results, opts.request, a, b, output.drawings(opts.out, opts.cache)
    )
    if html_out is not None:
        marked = report_diff.as_html(page_b, changes, name_a, name_b)
        atomic_write(html_out, marked, f"pass a writable --html, not {html_out}")
    if as_json:
        print(json.dumps(report_diff.as_json(changes, name_a, name_b), indent=1, ensure_ascii=False))
    else:
        print(report_diff.as_text(changes, name_a, name_b))
    if html_out is not None and not as_json:
        console.print(f"[green]✓[/] wrote {html_out}: report B with each change marked")


def _check_marked_page(path: Path) -> None:
    """``--html``'s file, before both reports render: a new file or a page an earlier ``diff --report``
    wrote (replaced), in a folder that can be written; never a folder or a file of someone else's."""
    from report.report_diff import MARK

    if path.is_dir():
        raise fail(
            f"--html {path} is a folder; give the file to write, e.g. --html {path / 'report-diff.html'}"
        )
    if path.exists() and f'class="{MARK}"' not in path.read_text(encoding="utf-8", errors="replace"):
        raise fail(
            f"--html {path} is a file this command did not write; give a new file name, or delete it first"
        )
    nearest = next(p for p in path.parents if p.exists())  # its folder, or where that folder would go
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        why = f"{nearest} is a file" if not nearest.is_dir() else f"{nearest} is not writable"
        raise fail(f"--html {path} cannot be written ({why}); give a file in a writable folder")


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


@command("store", "out", "cache")
def clean(
    opts: Options,
    results: Annotated[bool, typer.Option("--results", help="Also delete stored results.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting results.")] = False,
) -> None:
    """Remove what the build wrote to --out (HTML, PDF, caches) and nothing else; also what the builds
    wrote to the --cache folder where one is set (on the command line, by REPORT_CACHE or in
    report.toml), and with --results the results store. A folder the build did not write is refused,
    with nothing deleted.

    With --results it asks first, before deleting anything: no keeps everything (exit status 0); where
    nothing can answer (no terminal), pass --yes."""
    from report import output

    store = results and opts.results.root.exists()
    if store:
        opts.results.check_deletable()  # before anything is asked or deleted
    if opts.cache is not None:
        output.check_apart(opts.cache, opts.origin("cache"), out=opts.out, store=opts.store)
    output.check_clean(opts.out, opts.cache)
    if store and not yes:
        question = f"Delete the build's outputs in {opts.out} and every stored result in {opts.store}?"
        try:
            confirmed = typer.confirm(question, default=False)
        except typer.Abort:  # Ctrl-C or Ctrl-D at the prompt, or nothing to answer it
            if sys.stdin.isatty():  # the user cancelled: never advise --yes to them
                console.print(f"cancelled: nothing was deleted in {opts.out} or {opts.store}")
                raise typer.Exit(EXIT_INTERRUPTED) from None
            raise fail(
                f"nothing answered whether to delete the results in {opts.store}, so nothing was deleted; "
                "pass --yes to delete without asking"
            ) from None
        if not confirmed:  # as rm -i answered no: a choice, not an error
            console.print(f"kept everything: nothing was deleted in {opts.out} or {opts.store}")
            return
    removed = output.clean(opts.out, opts.cache)
    for path in removed:
        console.print(f"removed {path}")
    if store:
        with opts.results.lock():
            opts.results.delete()
        console.print(f"removed results in {opts.store}")
    elif not removed:  # a second clean: say it looked, and where
        places = [opts.out, *([opts.cache] if opts.cache else []), *([opts.store] if results else [])]
        *rest, last = map(str, places)
        console.print(f"nothing to remove in {', '.join(rest) + ' or ' if rest else ''}{last}")


@command(*BUILD, *WHERE, "out", "cache", "paper")
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

    The HTML is re-rendered when a template, the stylesheet, a context module, an experiment's code, the
    manifest, a data file or the store changes (so a stale flag shows as soon as status would say it); an
    error is shown over the page with its file and line; the PDF follows in the background.
    """
    import dataclasses

    from report import output
    from report import preview as live

    check_value("--port", port, Annotated[int, BOUNDS["port"]])  # before the first render, not at the bind
    html_only = dataclasses.replace(opts, fmt=Format.html)
    page: dict[str, str] = {}  # the last good render, which the PDF is printed from

    drawings = output.drawings(opts.out, opts.cache)

    with output.Printer() as printer:  # one for the session: every print after the first finds it warm

        def print_pdf() -> None:
            output.write_outputs(page["html"], opts.out, ["pdf"], printer, drawings)

        watched, data = steps.watch_list(opts)
        session = live.Session(
            lambda: page.update(html=steps.rerender(html_only)), watched, data, print_pdf=print_pdf
        )
        session.log = steps.say
        live.serve(session, opts.out, host, port, browser, console.print)


@command(*BUILD, *WHERE, "out", "cache", "fmt", "paper")
def watch(opts: Options) -> None:
    """Re-render whenever a template, the stylesheet, a context module, an experiment's code, the manifest,
    a data file or the store changes (Ctrl-C stops); preview does the same and shows the page in a browser."""
    from report import output
    from report import preview as live

    watched, data = steps.watch_list(opts)
    printing = output.Printer() if opts.fmt is not Format.html else contextlib.nullcontext()
    with printing as printer:  # one for the session: every print after the first finds it warm
        session = live.Session(lambda: steps.rerender(opts, printer), watched, data, log=steps.say)
        console.print(
            f"watching templates/, report/, experiments/, {opts.store}/{opts.chosen} and the data; "
            "Ctrl-C to stop"
        )
        try:
            session.run()
        except KeyboardInterrupt:
            session.stop.set()
            console.print("stopped watching")


def main() -> None:
    """The program, as ``python build.py`` and the ``assignment-report`` script both run it."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # workers and cluster jobs log as they go
    keep_interrupts()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
