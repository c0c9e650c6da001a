"""The steps ``build.py``'s commands share: run what is stale, render and write the outputs, log to the
tracker, take results from the reference bundle, and the live loop's watch list. ``build.py`` holds the
commands (their options, help and order); each step lives here once.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from report.core import manifest, reference
from report.core.config import apply_overrides, profile_config
from report.core.errors import ReportError
from report.core.freshness import Request, Verdict, judge
from report.options import Format, Options, Track, console

if TYPE_CHECKING:
    from report import output


def selected(names: list[str] | None) -> list[str]:
    known = manifest.load()
    for n in names or []:
        known.get(n)  # an unknown name is a one-line error
    return list(dict.fromkeys(names)) if names else list(known.names)


def verdicts_of(opts: Options, names: list[str]) -> list[Verdict]:
    return [judge(opts.results, n, opts.request) for n in names]


def configs(request: Request, names: list[str]) -> dict[str, Any]:
    """Each experiment's config with the ``--set`` values applied and validated, as ``run`` resolves it
    (experiments.runner.resolve, which tests/test_config.py holds this to) but from the torch-free
    configs: ``status`` stops on a bad value in a second, not after importing torch."""
    return {
        name: apply_overrides(
            name, profile_config(name, request.own_profile(name)), dict(request.overrides.get(name, {}))
        )
        for name in names
    }


def waiting() -> None:
    console.print("another build is using this store; waiting for it…")


def run_experiments(opts: Options, names: list[str], force: bool) -> int:
    """Take what needs a GPU this machine lacks from the reference results, then plan, preflight and
    train each stale experiment; returns how many ran."""
    lacking = opts.lacking(names)
    fill_from_reference(opts, lacking)  # before the plan: a study made on a GPU is not retrained here
    if force:  # a current study made elsewhere stays: rerunning it here would take hours
        kept = [n for n in lacking if n not in opts.request.stand_ins]
        for name in kept:
            console.print(f"[dim]{name}: kept: its full study needs a GPU, and this machine has none[/]")
        names = [n for n in names if n not in kept]
        if not names:
            return 0
    verdicts = verdicts_of(opts, names)
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
    return runner.run_stale(names, opts.request, opts.results, force, opts.device, executor, console, waiting)


def check_out(opts: Options) -> None:
    """The output folder and a ``--cache`` folder exist and are writable, and the cache is a folder of
    its own that holds nothing else: checked before anything trains or renders."""
    from report import output

    for folder, what, option in ((opts.out, "output", "--out"), (opts.cache, "cache", "--cache")):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReportError(
                f"cannot create the {what} folder {folder}: {e.strerror}; pass a writable {option}"
            ) from None
        if not os.access(folder, os.W_OK):
            raise ReportError(f"the {what} folder {folder} is not writable; pass a writable {option}")
    if opts.cache is not None:  # before it is written to
        output.check_apart(opts.cache, out=opts.out, store=opts.store, data_dir=opts.data_dir)
        output.drawings(opts.out, opts.cache)


def render_outputs(opts: Options, printer: output.Printer | None = None) -> str:
    """Render the report's HTML page and write the outputs ``--format`` asks for; returns the page. The
    PDF goes to ``printer`` (a session's, kept warm) when one is given."""
    from report import output

    t0 = time.perf_counter()
    check_out(opts)
    targets = {Format.html: ["html"], Format.pdf: ["pdf"], Format.all: ["html", "pdf"]}[opts.fmt]
    # WeasyPrint starts on the other core now, while the results are checked and the HTML is built, and
    # prints as soon as the page is ready
    if printer is not None or "pdf" not in targets:
        printing: contextlib.AbstractContextManager[output.Printer | None] = contextlib.nullcontext(printer)
    else:
        printing = output.Printer()
    with printing as printer, output.gc_paused():
        fill_from_reference(opts, selected(None), missing_too=True)
        from report import render

        drawings = output.drawings(opts.out, opts.cache)
        page = render.render_html(opts.results, opts.request, opts.paper.value, cache_dir=drawings)
        written = output.write_outputs(page, opts.out, targets, printer, drawings)
    if not written:
        console.print(f"[dim]report in {opts.out} is up to date (same results, templates and paper)[/]")
    else:
        console.print(f"[green]✓[/] wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")
    return page


def log_to_tracker(opts: Options, artifacts: list[Path]) -> None:
    """Log the profile's current results (and the report files) to the tracker, each result once."""
    if opts.track is not Track.none:
        from report import track

        console.print(track.log_build(opts.results, opts.chosen, opts.tracking_uri, artifacts))


def fill_from_reference(opts: Options, names: list[str], missing_too: bool = False) -> None:
    """Results of ``names`` that are missing or not current come from the project's reference bundle
    where its are current; with ``missing_too``, missing ones come from it in any case (a render shows
    them flagged stale rather than fail)."""
    imported = reference.fill(opts.results, opts.request, names, on_wait=waiting)
    if missing_too:
        imported += reference.fill_missing(opts.results, opts.request, names, on_wait=waiting)
    if imported:
        where = reference.shown(reference.path(opts.chosen))
        console.print(f"{', '.join(imported)}: imported from the reference results {where}")


def say(message: str) -> None:
    console.print(f"[bold red]{escape(message)}[/]" if message.startswith("error") else message)


def watch_list(opts: Options) -> tuple[list[Path], tuple[Path, ...]]:
    """What a preview or watch re-renders on, and the data folders among it: everything ``status``
    judges (the experiments' code, the manifest, the data) and what the page is made of (templates, the
    context layer, the results)."""
    check_out(opts)
    fill_from_reference(opts, selected(None), missing_too=True)
    results = opts.results.root / opts.chosen
    results.mkdir(parents=True, exist_ok=True)
    root = manifest.PROJECT
    data = (opts.data_dir.resolve(),) if opts.data_dir.is_dir() else ()
    return [root / "templates", root / "report", root / "experiments", results, *data], data


def rerender(opts: Options, printer: output.Printer | None = None) -> str:
    """Render with the context modules and drawings imported afresh (they may have been edited)."""
    from report import preview as live

    live.forget_rendering_modules()
    return render_outputs(opts, printer)
