"""The CLI's plumbing: the Typer app, the ``command`` decorator and the error handling.

``build.py`` defines the commands on ``app`` with ``@command(...)``, naming the shared options each takes.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import functools
import inspect
import os
import shlex
import shutil
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from report.core.config import Range
from report.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ReportError
from report.core.manifest import PROJECT
from report.core.settings import load as load_settings
from report.options import ALWAYS, BOUNDS, SHARED, Options, console, print_settings, resolve

try:  # newer Typer carries its own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer runs on Click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

HELP = "Build the Assignment 1 report: run experiments into the results store, render HTML and PDF."
PACKAGE = "assignment-report"  # pyproject.toml's [project] name
EXIT_NOT_CURRENT = 3  # status --check: a result is missing or stale (neither a failure nor bad input)


def _untyped_flags(params: list[Any]) -> list[Any]:
    """Give each flag (``--force``, ``--help``) an empty type in the help: it takes no value, and Typer's
    ``<bool>`` beside it reads as if it took one."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


PLAIN_BELOW = 100  # columns: narrower, Rich's option tables cut long names short ("--strict-versio…")


def _format_help(
    command: TyperCommand | TyperGroup, ctx: Any, formatter: Any, typer_help: Callable[..., None]
) -> None:
    """Rich's panels on a terminal wide enough for every option's whole name, else click's plain layout
    (Typer's own, without Rich), which gives a long name a line of its own; pipes get the plain one too."""
    if shutil.get_terminal_size().columns >= PLAIN_BELOW:
        return typer_help(ctx, formatter)
    mode, command.rich_markup_mode = command.rich_markup_mode, None
    try:
        typer_help(ctx, formatter)  # with no markup mode, Typer formats with click
    finally:
        command.rich_markup_mode = mode


class _BadValue(click_errors.UsageError):
    """An option's value that its type refuses, as one line that names where it came from and the fix."""


def _kind(hint: Any) -> Any:
    """The type an option's annotation declares: ``Paper`` for ``Annotated[Paper | None, Option(...)]``."""
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, types.UnionType):
        kinds = [k for k in get_args(hint) if k is not type(None)]
        return kinds[0] if len(kinds) == 1 else hint
    return hint


def _bad_value(command: TyperCommand, ctx: Any, error: Any, args: list[str]) -> str:
    """``--seed=abc: give an integer from 0 to 2,147,483,648``: Click's message blames the environment
    variable beside any option that has one, and says nothing of the fix; this names the option or the
    variable the value came from (as ``Options.origin`` does) and what to give."""
    param = error.param
    given, _, _ = command.make_parser(ctx).parse_args(args=list(args))
    value, label = given.get(param.name), (param.opts or [param.name])[0]
    if value is None and isinstance(param.envvar, str):
        value, label = os.environ.get(param.envvar), param.envvar
    assert command.callback is not None  # every command here is a function's
    kind = _kind(inspect.signature(command.callback).parameters[param.name].annotation)
    if isinstance(kind, type) and issubclass(kind, Enum):
        *rest, last = [str(member.value) for member in kind]
        fix = f"choose {', '.join(rest)} or {last}" if rest else f"give {last}"
    elif kind is int:
        fix = f"give {BOUNDS.get(param.name, Range()).describe(True)}"
    elif kind is float:
        fix = "give a number"
    elif kind is bool:  # a flag's value from its environment variable
        fix = "give true or false (or 1 or 0, yes or no)"
    else:
        fix = error.message
    return f"{label}={shlex.quote(str(value))}: {fix}"


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Click's usage errors (a mistyped option or command, a missing argument, a bad value) as one
    ``error:`` line with exit status 2, as the project prints its own, not Rich's box under the usage."""
    try:
        yield
    except click_errors.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # by name, as Typer checks it (older Click lacks it)
            # Rich's help has printed itself; click's plain layout (narrow terminals) is the message
            if e.format_message():
                typer.echo(e.format_message())
            raise typer.Exit(e.exit_code) from None
        message = " ".join(e.format_message().split())
        ctx = getattr(e, "ctx", None)
        if not isinstance(e, _BadValue):  # Click's sentence: "No such option: --forc (Possible options: …)"
            message = message[:1].lower() + message[1:].rstrip(".")
            if ctx is not None and not message.endswith("?"):  # "Did you mean 'status'?" is its own fix
                message += f"; see '{ctx.command_path} -h'"
        raise fail(message, e.exit_code) from None


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _format_help(self, ctx, formatter, super().format_help)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes ``args``
        try:
            return super().parse_args(ctx, args)
        except click_errors.BadParameter as e:
            if isinstance(e, click_errors.MissingParameter) or e.param is None:
                raise
            raise _BadValue(_bad_value(self, ctx, e, given), ctx) from None


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _format_help(self, ctx, formatter, super().format_help)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_errors():  # the program's own options, and no arguments at all
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors():  # the command's name, and its options and arguments
            return super().invoke(ctx)


def _reflowed(doc: str | None) -> str:
    """A docstring as help text: each paragraph one line, which the help wraps to the terminal (Typer keeps
    a docstring's own line breaks, so the help would break where the source does)."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


app = typer.Typer(
    cls=_Group,
    help=HELP,
    epilog="Exit status: 0 success, 1 an unexpected failure (an experiment that raised, a lost cluster or "
    "worker, a bug: the message names the error, --debug shows the traceback), 2 bad input (the message "
    f"names the problem and the fix), {EXIT_NOT_CURRENT} status --check found a result missing or stale, "
    "130 interrupted. Run 'python build.py COMMAND --help' for a command's options.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """``assignment-report 0.1.0``: the installed package's version, as pip recorded it from
    pyproject.toml; where build.py runs from a checkout that was never installed, that checkout's
    pyproject.toml says it."""
    from importlib import metadata

    try:
        number = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        from report.core.settings import tomllib

        number = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    return f"{PACKAGE} {number}"


def _print_version(wanted: bool) -> None:
    """``--version``: eager, so it answers before Click asks for a command."""
    if wanted:
        typer.echo(version())
        raise typer.Exit()


@app.callback()
def _program(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """The program's own options, before the command's name."""


def command(*shared: str, name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``fn(opts, **own)`` as a command taking the named ``SHARED`` options besides its own.

    User errors become one line and exit status 2 (``--debug`` shows the traceback), an unexpected error
    exit status 1, an interrupt exit status 130.
    """

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        taken = (*shared, *ALWAYS)
        extra = [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, annotation=SHARED[n].annotation, default=None
            )
            for n in taken
        ]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> None:
            context = kwargs.pop("ctx")
            given = {n: kwargs.pop(n) for n in taken}
            opts = Options(debug=bool(given["debug"]))
            try:
                opts = resolve(given, load_settings(), context)
                if opts.show_settings:
                    print_settings(opts, taken)
                fn(opts, **kwargs)
            except ReportError as e:
                if opts.debug:
                    console.print_exception()
                raise fail(str(e)) from None
            except KeyboardInterrupt:
                message = "interrupted; finished experiments are stored, the next run resumes"
                raise fail(message, EXIT_INTERRUPTED) from None
            except typer.Exit:
                raise
            except Exception as e:
                if opts.debug:
                    console.print_exception()
                if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:  # a path the user gave
                    name = str(e.filename or "a path")
                    shown = name if len(name) <= 80 else f"{name[:40]}…{name[-30:]}"
                    raise fail(f"{shown}: longer than the file system allows (a name in it, or the whole "
                               "path); give a shorter path") from None  # fmt: skip
                message = f"{type(e).__name__}: {e} (rerun with --debug for the traceback)"
                raise fail(message, EXIT_FAILED) from None

        ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = [ctx, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own), *extra]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name, cls=_Command, help=_reflowed(fn.__doc__))(wrapper)

    return decorate


def keep_interrupts() -> None:
    """Make a Ctrl-C that lands inside a finaliser interrupt the build, not vanish, and let SIGTERM (from
    ``timeout``, a scheduler's time limit, a container's stop) end a build as Ctrl-C does: one line, exit
    status 130, finished work kept and the run's sessions counted.

    Python cannot raise from a finaliser: a ``KeyboardInterrupt`` raised while a generator is being
    closed (a progress bar's ``track``, say) is printed as "Exception ignored in …" with a traceback, and
    the build runs on. This hook interrupts the main thread again a few milliseconds later, once the
    finaliser is over (from inside it, the new interrupt would be swallowed too), and ``command`` turns
    it into the one-line message and exit status 130.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Timer(0.005, _thread.interrupt_main).start()
        else:
            default(unraisable)

    sys.unraisablehook = hook


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as ``error:`` lines (brackets in it are text, not markup); the exit to raise."""
    for line in message.splitlines():
        console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    return typer.Exit(code)


def _brief(note: str, meta: dict[str, Any] | None) -> str:
    """A verdict's note as a row of the status table shows it: a run accepted over several code changes
    says how often and when, not every reason (appendix A of the report gives them all)."""
    from report.core.freshness import acceptance

    accepted = (meta or {}).get("accepted") or []
    if len(accepted) < 2 or note != acceptance(meta or {}):
        return note
    first, last = accepted[0]["on"][:10], accepted[-1]["on"][:10]
    when = f"on {first}" if first == last else f"from {first} to {last}"
    return (
        f"code changed after this run; accepted {len(accepted)} times {when}: the reasons are in the report"
    )


def status_table(results: Any, profile: str, verdicts: list[Any], where: str) -> Any:
    """``build.py status``: each experiment's verdict (with its notes), when and where it ran, its headline
    and how that moved since the previous run."""
    from rich.table import Table

    from report.diff import since_previous

    table = Table(title=f"{where}, profile {profile}")
    for col in ("experiment", "state", "finished (UTC)", "duration", "device", "headline", "vs previous run"):
        table.add_column(col)
    for v in verdicts:
        state = {"current": "[green]current[/]", "missing": "[red]missing[/]"}.get(
            v.state, f"[yellow]{v.label}[/]"
        )
        meta = v.meta
        state += "".join(f" [dim]({escape(_brief(note, meta))})[/]" for note in v.notes)
        if meta is None:
            table.add_row(v.experiment, state, "", "", "", "", "")
            continue
        head, sessions = meta["headline"], int(meta.get("sessions") or 1)
        table.add_row(
            v.experiment,
            state,
            meta["finished"].replace("T", " ")[:19],
            f"{meta['duration_s']:.1f} s" + (f" ({sessions} sessions)" if sessions > 1 else ""),
            meta["device"],
            f"{head['label']} = {head['value']:.4g}",
            since_previous(results, profile, v.experiment),
        )
    return table


def status_rows(profile: str, verdicts: list[Any]) -> list[dict[str, Any]]:
    """``build.py status --json``: the table's rows as data for scripts, a run named with the keys
    ``diff --json`` gives it (``run_id``, ``finished``, ``device``: the device's name); ``changed`` lists
    the fingerprint parts that differ and ``reasons`` every note in full (missing: all null or empty)."""
    rows = []
    for v in verdicts:
        meta = v.meta or {}
        head = meta.get("headline")
        rows.append(
            {
                "experiment": v.experiment,
                "profile": profile,
                "state": v.state,
                "changed": list(v.changed),
                "reasons": list(v.notes),
                "run_id": meta.get("run_id"),
                "finished": meta.get("finished"),
                "duration_s": meta.get("duration_s"),
                "device": meta.get("device_name"),
                "headline": {"label": head["label"], "value": head["value"]} if head else None,
            }
        )
    return rows
