"""The steps ``build.py``'s commands share: run what is stale, render and write the outputs, log to the
tracker, take results from the reference bundle, and the live loop's watch list. ``build.py`` holds the
commands (their options, help and order); each step lives here once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from report.core import manifest, reference
from report.core.config import PROFILES, apply_overrides, profile_config
from report.core.errors import ConfigError, DataError, MissingResultError, ReportError
from report.core.freshness import Request, Verdict, judge
from report.core.settings import spelled
from report.options import Format, Options, Track, console

if TYPE_CHECKING:
    from report import output


def selected(names: list[str] | None) -> list[str]:
    """The experiments named (in any case: ``Q3`` is ``q3``, as ``--paper A4`` is ``a4``), once each in
    the order given; all of them when none is named. An unknown name is a one-line error."""
    known = manifest.load()
    chosen = [spelled(n) for n in names or []]
    for n in chosen:
        known.get(n)
    return list(dict.fromkeys(chosen)) if chosen else list(known.names)


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


def checked_configs(opts: Options, names: list[str]) -> dict[str, Any]:
    """``configs`` for this build's settings, from the command line and report.toml alike: a bad value is
    an error before anything runs, and one that came from report.toml names its line there."""
    try:
        return configs(opts.request, names)
    except ConfigError as e:
        raise blamed(opts, e) from None


def checked_sizes(opts: Options, configs: dict[str, Any], names: list[str]) -> None:
    """For ``status``: the configs of ``names`` against their datasets' sizes, as ``run`` checks them
    before training, so ``status`` never advises a command that ``run`` refuses. A dataset whose files
    cannot be read is left to ``run``, which names the file."""
    from experiments import datasets  # torch-free

    for name in names:
        with contextlib.suppress(DataError):
            try:
                datasets.check_sizes({name: configs[name]}, opts.request.data_dir)
            except ConfigError as e:
                raise blamed(opts, e) from None


def blamed(opts: Options, e: ConfigError) -> ConfigError:
    """``e``, led by the report.toml lines of the settings it concerns that came from there: those a rule
    between settings names (``e.keys``), else the one its message begins with."""
    given = {s.partition("=")[0].strip().lower() for s in opts.sets or []}  # the command line's win
    keys = {k.lower() for k in e.keys}
    sources = [
        setting.source
        for key, setting in opts.settings.overrides(opts.chosen).items()
        if key.lower() not in given
        and (key.lower() in keys if keys else re.match(re.escape(key) + r"\b", str(e), re.IGNORECASE))
    ]
    return ConfigError(f"{', '.join(sources)}: {e}", e.keys) if sources else e


def waiting() -> None:
    console.print("another build is using this store; waiting for it…")


def run_experiments(opts: Options, names: list[str], force: bool) -> int:
    """Take what needs a GPU this machine lacks from the reference results, then plan, preflight and
    train each stale experiment; returns how many ran."""
    resolved = checked_configs(opts, names)  # torch-free, before anything is imported or trained
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
            console.print(f"[dim]{name}: up to date[/]")  # as experiments/runner.py says it in a mixed run
        return 0
    from experiments import datasets  # torch-free: a missing dataset is one line before torch is imported

    try:
        to_run = [v.experiment for v in verdicts if force or not v.current]
        datasets.check_before_torch({n: resolved[n] for n in to_run}, opts.request.data_dir)
    except ConfigError as e:  # a setting asking for more images than the dataset holds
        raise blamed(opts, e) from None
    except DataError as e:  # a folder from REPORT_DATA_DIR or report.toml: say so, as for other options
        came = opts.sources.get("data_dir", "default")
        origin = (
            "" if came in ("command line", "default") else f" (the data folder: {opts.origin('data_dir')})"
        )
        raise DataError(f"{e}{origin}") from None
    if opts.executor.value == "ray":
        check_ray(opts)
    if opts.executor.value == "slurm":
        check_slurm(opts)
    from experiments import executors, kit, runner

    slurm = dict(folder=opts.results.root / ".slurm", partition=opts.slurm_partition, gpus=opts.slurm_gpus,
                 minutes=opts.slurm_time, parallelism=opts.slurm_parallelism)  # fmt: skip
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        on_cpu = kit.resolve_device(opts.device).type == "cpu"  # a GPU runs one unit at a time
    except ConfigError as e:  # "--device cuda: …" where REPORT_DEVICE or report.toml chose it
        raise ConfigError(opts.blame("device", str(e))) from None
    executor = executors.make(
        opts.executor.value, opts.device, opts.ray_address, slurm, opts.jobs or (cores if on_cpu else 1)
    )
    for name in opts.request.stand_ins & set(names):
        console.print(f"[yellow]{name}: {reference.stand_in_line(opts.results, opts.request, name)}[/]")
    return runner.run_stale(names, opts.request, opts.results, force, opts.device, executor, console, waiting)


RAY_CONNECT_S = 3.0  # a cluster's head answers a TCP connect at once; nothing there, and it hangs


def check_ray(opts: Options) -> None:
    """Ray is installed, and the cluster ``--ray-address`` names can be joined: checked before anything
    trains, since Ray itself fails only once the first unit is sent (a ``ray://`` address without the
    Ray Client), or retries a dead address for about a minute and a half, printing its own lines."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError('--executor ray needs Ray: pip install -e ".[ray]"')
    address = opts.ray_address
    if not address or address in ("auto", "local"):  # a local cluster: started here, or found by Ray
        return
    client = address.startswith("ray://")
    if client and importlib.util.find_spec("grpc") is None:  # what Ray checks for its Client
        message = (
            f'--ray-address {address}: a ray:// address needs the Ray Client: pip install "ray[client]", '
            "or, from a machine that reaches the cluster's nodes, give the head's address without ray:// "
            "(HOST:6379)"
        )
        raise ConfigError(opts.blame("ray_address", message))
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():  # no port: Ray's own, the Client's or the head's
        host, port = address.removeprefix("ray://"), "10001" if client else "6379"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_S).close()
    except (OSError, OverflowError) as e:  # refused, no such host, no answer; a port above 65535
        why = "no answer" if isinstance(e, TimeoutError) else getattr(e, "strerror", None) or str(e)
        message = (
            f"cannot reach a Ray cluster at {address} ({why}); start one there with `ray start --head`, "
            f"or {opts.unset('ray_address')} to start one here for the build"
        )
        raise ConfigError(opts.blame("ray_address", message)) from None


SLURM_ANSWER_S = 30


def check_slurm(opts: Options) -> None:
    """submitit is installed and Slurm takes a job of this build's shape (partition, GPUs, time limit):
    asked of Slurm itself, ``sbatch --test-only``, which queues nothing, before anything trains. Without
    it a refusal came when the first stage was submitted, after the experiments before it had trained."""
    if importlib.util.find_spec("submitit") is None:
        raise ConfigError('--executor slurm needs submitit: pip install -e ".[slurm]"')
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "--executor slurm: no sbatch on PATH; run the build on a machine of the Slurm cluster "
            "(a login node), or choose another --executor"
        )
    shape = [f"--time={opts.slurm_time}"]
    shape += [f"--partition={opts.slurm_partition}"] if opts.slurm_partition else []
    shape += [f"--gpus-per-task={opts.slurm_gpus}"] if opts.slurm_gpus else []
    try:
        answer = subprocess.run(["sbatch", "--test-only", *shape, "--wrap=true"], capture_output=True,
                                text=True, timeout=SLURM_ANSWER_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"--executor slurm: Slurm did not answer in {SLURM_ANSWER_S} s; check that its controller "
            "is up (sinfo)"
        ) from None
    if answer.returncode != 0:
        said = [re.sub(r"^sbatch: (error: )?", "", line.strip()) for line in answer.stderr.splitlines()]
        why = "; ".join(dict.fromkeys(line for line in said if line)) or f"exit status {answer.returncode}"
        if not re.search(
            r"partition|gres|generic resource|time limit|node configuration", why, re.IGNORECASE
        ):
            raise ConfigError(  # not about what the build asks for: the cluster, munge, the controller
                f"--executor slurm: Slurm refuses this build's jobs ({why}); check that the cluster is up "
                "and takes jobs from this machine (sinfo)"
            )
        given = [
            opts.origin(n) + (" (the default)" if opts.sources.get(n, "default") == "default" else "")
            for n in ("slurm_partition", "slurm_gpus", "slurm_time")
            if getattr(opts, n)
        ]
        raise ConfigError(
            f"--executor slurm: Slurm refuses this build's jobs ({why}); change {' or '.join(given)} to "
            "what the cluster offers (sinfo lists its partitions and their limits)"
        )


def in_store(path: Path, opts: Options) -> bool:
    """Whether ``path`` is the results store or lies in one of its profile folders, which hold its runs:
    no output, bundle or page of this command's may go there."""
    here, store = path.resolve(), opts.store.resolve()
    return here == store or any(here == store / p or store / p in here.parents for p in PROFILES)


def check_out(opts: Options) -> None:
    """The output folder and a ``--cache`` folder can be written, and the cache is a folder of its own
    that holds nothing else: checked before anything trains or renders, without creating the output
    folder (a build that fails before writing leaves none behind). An error names the option, variable
    or report.toml line that gave the folder."""
    from report import output

    for name, what in (("out", "output"), ("cache", "cache")):
        folder, option = getattr(opts, name), f"--{name}"
        if folder is None:
            continue
        here = folder.absolute()
        nearest = next(p for p in (here, *here.parents) if p.exists())  # a folder (options.check_folders)
        if not os.access(nearest, os.W_OK | os.X_OK):
            where = "" if nearest == here else f" cannot be created: {nearest}"
            raise ReportError(
                f"{opts.origin(name)}: the {what} folder{where} is not writable; pass a writable {option}"
            )
    if in_store(opts.out, opts):
        raise ReportError(
            f"{opts.origin('out')} is the results store {opts.store} or in it; pass another --out"
        )
    if mine := output.foreign_report(opts.out):
        raise ReportError(
            f"{opts.origin('out')} holds a {mine.name} that no build wrote there; pass a new or empty --out, "
            "or move that file"
        )
    if opts.cache is not None:  # before it is written to
        output.check_apart(
            opts.cache, opts.origin("cache"), out=opts.out, store=opts.store, data_dir=opts.data_dir
        )
        output.drawings(opts.out, opts.cache)


def render_outputs(opts: Options, printer: output.Printer | None = None) -> str:
    """Render the report's HTML page and write the outputs ``--format`` asks for; returns the page. The
    PDF goes to ``printer`` (a session's, kept warm) when one is given."""
    from report import output

    t0 = time.perf_counter()
    made = not opts.out.exists()
    check_out(opts)
    targets = {Format.html: ["html"], Format.pdf: ["pdf"], Format.all: ["html", "pdf"]}[opts.fmt]
    # WeasyPrint starts on the other core now, while the results are checked and the HTML is built, and
    # prints as soon as the page is ready
    if printer is not None or "pdf" not in targets:
        printing: contextlib.AbstractContextManager[output.Printer | None] = contextlib.nullcontext(printer)
    else:
        printing = output.Printer()
    try:
        with printing as printer, output.gc_paused():
            fill_from_reference(opts, selected(None), missing_too=True)
            check_present(opts, selected(None))
            from report import render

            drawings = output.drawings(opts.out, opts.cache)
            page = render.render_html(opts.results, opts.request, opts.paper.value, cache_dir=drawings)
            written = output.write_outputs(page, opts.out, targets, printer, drawings)
    except BaseException:
        if made:  # a failed first render leaves no empty --out behind
            output.discard_if_empty(opts.out)
        raise
    if not written:
        console.print(f"[dim]report in {opts.out} is up to date (same results, templates and paper)[/]")
    else:
        console.print(f"[green]✓[/] wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")
    return page


def check_present(opts: Options, names: list[str]) -> None:
    """Every result the report needs is in the store, else one line naming all those missing and one
    command that runs them (the render would stop at the first)."""
    missing = []
    for name in names:
        with contextlib.suppress(ReportError):  # unreadable, not missing: the render says what is wrong
            if opts.results.result(opts.request.profile, name) is None:
                missing.append(name)
    if missing:
        raise MissingResultError(
            f"the report needs {', '.join(missing)} results for profile {opts.chosen}, and the store "
            f"{opts.store} has none; run: {run_command(opts, missing)}"
        )


def run_command(opts: Options, names: list[str]) -> str:
    """``build.py run NAMES --profile P …``: the one command that makes ``names`` current, with the
    options given on this command line that it needs too (the store's own ``command``)."""
    return opts.results.command(" ".join(names), opts.chosen)


def check_tracker(opts: Options) -> None:
    """MLflow is installed and takes ``--tracking-uri``: checked before any training or rendering, not
    when the results are logged after it."""
    if opts.track is not Track.none:
        from report import track

        track.check_available()
        try:
            track.check_uri(opts.tracking_uri)
        except ConfigError as e:  # the URI may have come from MLFLOW_TRACKING_URI or report.toml
            raise ConfigError(opts.blame("tracking_uri", str(e))) from None


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
