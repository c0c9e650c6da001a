"""The CLI's plumbing: the Typer app, the shared options (declared once) and the error handling.

``build.py`` defines the commands on ``app`` with ``@command(...)``, naming the shared options each takes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from report.core.config import PROFILES, check_profile, default_profile, parse_overrides
from report.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ReportError
from report.core.freshness import Request
from report.core.store import Store

HELP = "Build the Assignment 1 report: run experiments into the results store, render HTML and PDF."
app = typer.Typer(
    help=HELP,
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
                raise fail(str(e)) from None
            except KeyboardInterrupt:
                message = "interrupted; finished experiments are stored, the next run resumes"
                raise fail(message, EXIT_INTERRUPTED) from None
            except typer.Exit:
                raise
            except Exception as e:
                if opts.debug:
                    console.print_exception()
                message = f"{type(e).__name__}: {e} (rerun with --debug for the traceback)"
                raise fail(message, EXIT_FAILED) from None

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name)(wrapper)

    return decorate


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    for line in message.splitlines():
        console.print(f"[bold red]error:[/] {line}", soft_wrap=True)
    return typer.Exit(code)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as ``error:`` lines and return the exit to raise."""
    for line in message.splitlines():
        console.print(f"[bold red]error:[/] {line}", soft_wrap=True)
    return typer.Exit(code)
