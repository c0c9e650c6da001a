"""The options the commands share, declared once (``SHARED``), and their resolution for one command
(``Options``): command line, then environment, then ``report.toml``, then the built-in default.

``report/cli.py``'s ``command`` names the ones each command takes; ``build.py`` reads the resolved values."""

from __future__ import annotations

import dataclasses
import functools
import shlex
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from report.core.config import (
    PROFILES,
    Range,
    accelerator_present,
    check_profile,
    check_value,
    cuda_present,
    default_profile,
    parse_overrides,
)
from report.core.errors import ConfigError
from report.core.freshness import Request
from report.core.settings import CASELESS, Settings, spelled
from report.core.settings import CHOICES as SETTING_CHOICES
from report.core.settings import NAME as SETTINGS_NAME
from report.core.store import Store

console = Console(stderr=True, highlight=False, soft_wrap=True)  # every command's messages (report/cli.py)


# Where a GPU that torch calls "cuda" shows itself besides an NVIDIA driver (report.core.config.cuda_present):
# ROCm's kernel driver, WSL2's GPU device and its nvidia-smi, an NVIDIA device node
CUDA_SIGNS = (Path("/dev/kfd"), Path("/dev/dxg"), Path("/usr/lib/wsl/lib/nvidia-smi"), Path("/dev/nvidia0"))


def missing_here(device: str) -> str | None:
    """The error for a ``--device`` this machine plainly lacks, found without torch: the words of
    ``experiments.kit.resolve_device``, which checks again with torch (tests keep the two alike). Any sign
    of a GPU lets the name through, to torch's check: refusing a GPU that is there is the worse mistake."""
    if device == "cuda" and not (cuda_present() or any(p.exists() for p in CUDA_SIGNS)):
        return "--device cuda: no CUDA device is available; use --device auto or cpu"
    if device == "mps" and sys.platform != "darwin":
        return "--device mps: no Apple MPS device is available; use --device auto or cpu"
    return None


def _choices(name: str, key: str) -> Any:
    """An option's choices as the Enum Typer shows, from report.toml's list of them: one list for both
    (and, as there, in any case)."""
    assert key in CASELESS, key
    return Enum(name, {choice: choice for choice in SETTING_CHOICES[key]}, type=str)


Format = _choices("Format", "format")


Paper = _choices("Paper", "paper")


Executor = _choices("Executor", "executor")


Track = _choices("Track", "track")


@dataclass(frozen=True)
class Shared:
    """One shared option: its command-line form, its built-in default and its report.toml key."""

    kind: Any
    default: Any
    names: tuple[str, ...]
    help: str
    envvar: str | None = None
    key: str | None = None  # in report.toml; None: not settable there

    @property
    def annotation(self) -> Any:
        value = getattr(self.default, "value", self.default)
        where = [f"default {value}"] if self.default is not None and self.default is not False else []
        where += [f"{self.key} in report.toml"] if self.key else []
        info: dict[str, Any] = {"envvar": self.envvar} if self.envvar else {}
        if isinstance(self.kind, type) and issubclass(self.kind, Enum):  # --paper A4 is a4
            info["case_sensitive"] = False
        # a folder as given, so that resolve can refuse "": Click would make it Path("."), the current folder
        kind, info = (str, {**info, "metavar": "<dir>"}) if self.kind is Path else (self.kind, info)
        text = self.help + (f" ({'; '.join(where)})" if where else "")
        return Annotated[kind | None, typer.Option(*self.names, help=text, show_default=False, **info)]


SHARED: dict[str, Shared] = {
    "profile": Shared(str, None, ("--profile", "-p"), f"What the report holds: {', '.join(PROFILES)} "
                      "(default full: the whole study; one that needs a GPU this machine lacks comes from "
                      "the current reference results, else its quick profile runs in its place, as the "
                      "report says).",
                      "REPORT_PROFILE", "profile"),
    "data_dir": Shared(Path, Path("data"), ("--data-dir",), "Where datasets live (run and all download a "
                       "missing one there).", "REPORT_DATA_DIR", "data_dir"),
    "store": Shared(Path, Path("results"), ("--store",), "The results store.", "REPORT_STORE", "store"),
    "out": Shared(Path, Path("build"), ("--out", "-o"), "Where report.html/.pdf go.", "REPORT_OUT", "out"),
    "cache": Shared(Path, None, ("--cache",), "Where drawn figures, typeset math, compiled templates and "
                    "the PDF's figures and formulas as PDF forms are kept for the next render (default: "
                    ".report-cache in --out): a folder of its own, which output folders, checkouts and CI "
                    "runs can share; each entry is keyed by its source and its library's version. clean "
                    "empties it.", "REPORT_CACHE", "cache"),
    "device": Shared(str, "auto", ("--device",), "Where experiments train: auto, cpu, cuda or mps (on a "
                     "CPU, a study that needs a GPU comes from the reference results, or its quick profile "
                     "stands in).", "REPORT_DEVICE", "device"),
    "seed": Shared(int, 0, ("--seed",), "Base random seed, recorded with the results.", "REPORT_SEED",
                   "seed"),
    "sets": Shared(list[str], None, ("--set", "-s"), "Override a config value, e.g. --set q3.sweep_epochs=5 "
                   "(repeatable; beats the set tables of report.toml; validated and recorded)."),
    "fmt": Shared(Format, Format.all, ("--format", "-f"), "Which outputs to write.", None, "format"),
    "paper": Shared(Paper, Paper.a4, ("--paper",), "PDF page size.", None, "paper"),
    "executor": Shared(Executor, Executor.local, ("--executor",), "Where the independent units of work run: "
                       "local (this machine), ray (a Ray cluster) or slurm (job arrays through submitit).",
                       "REPORT_EXECUTOR", "executor"),
    "jobs": Shared(int, 0, ("--jobs", "-j"), "With --executor local: how many cores run units at once, in "
                   "worker processes (0: every core on a CPU, one on a GPU; 1: in this process, in order).",
                   "REPORT_JOBS", "jobs"),
    "ray_address": Shared(str, None, ("--ray-address",), "Join this Ray cluster (e.g. ray://host:10001); "
                          "without it --executor ray starts one here for the build.", "RAY_ADDRESS",
                          "ray_address"),
    "slurm_partition": Shared(str, None, ("--slurm-partition",), "Slurm partition for the units (default: "
                              "the cluster's).", "REPORT_SLURM_PARTITION", "slurm_partition"),
    "slurm_gpus": Shared(int, 0, ("--slurm-gpus",), "GPUs per Slurm task (with --executor slurm, 1 or more "
                         "counts as a GPU).", "REPORT_SLURM_GPUS", "slurm_gpus"),
    "slurm_time": Shared(int, 120, ("--slurm-time",), "Time limit of each Slurm task, minutes.",
                         "REPORT_SLURM_TIME", "slurm_time"),
    "slurm_parallelism": Shared(int, 16, ("--slurm-parallelism",), "Most Slurm array tasks running at once.",
                                "REPORT_SLURM_PARALLELISM", "slurm_parallelism"),
    "track": Shared(Track, Track.none, ("--track",), "Also log each run (config, fingerprint, headline, "
                    "per-epoch curves) and the report to an experiment tracker: none or mlflow.",
                    "REPORT_TRACK", "track"),
    "tracking_uri": Shared(str, None, ("--tracking-uri",), "Where the tracker keeps its runs (default "
                           "sqlite:///mlruns/mlflow.db here).", "MLFLOW_TRACKING_URI", "tracking_uri"),
    "strict_versions": Shared(bool, False, ("--strict-versions/--no-strict-versions",), "Results made with "
                              "other torch, torchvision or numpy are stale.", "REPORT_STRICT_VERSIONS",
                              "strict_versions"),
    "show_settings": Shared(bool, False, ("--show-settings",), "Print each effective setting and where it "
                            "came from (command line, environment, report.toml, default)."),
    "debug": Shared(bool, False, ("--debug",), "Show tracebacks."),
}  # fmt: skip


# the valid values of the integer options, checked by the one range rule wherever a value came from
BOUNDS: dict[str, Range] = {
    "seed": Range(0, 2**31),  # seed + k (one per model or final seed) stays within every generator's 2**32
    "jobs": Range(0, 4096),
    "slurm_gpus": Range(0, 64),
    "slurm_time": Range(1, 525_600),  # minutes: a year
    "slurm_parallelism": Range(1, 100_000),
    "port": Range(0, 65_535),  # preview's own option; 0: any free one
}


BUILD = ("profile", "data_dir", "store", "seed", "sets", "strict_versions")


TRACK = ("track", "tracking_uri")


# whether the units will have a GPU, so whether a study that needs one is made here: the commands that
# judge results (status, render, preview, watch, diff) take these too and answer for the build all makes
WHERE = ("device", "executor", "slurm_gpus")


EXECUTE = (
    "executor",
    "jobs",
    "ray_address",
    "slurm_partition",
    "slurm_gpus",
    "slurm_time",
    "slurm_parallelism",
)


ALWAYS = ("show_settings", "debug")  # every command takes these


@dataclass
class Options:
    """The shared options of one command, resolved: command line, environment, report.toml, default."""

    profile: str | None = None
    data_dir: Path = Path("data")
    store: Path = Path("results")
    out: Path = Path("build")
    cache: Path | None = None
    device: str = "auto"
    seed: int = 0
    sets: list[str] | None = None
    fmt: Format = Format.all
    paper: Paper = Paper.a4
    executor: Executor = Executor.local
    jobs: int = 0
    ray_address: str | None = None
    slurm_partition: str | None = None
    slurm_gpus: int = 0
    slurm_time: int = 120
    slurm_parallelism: int = 16
    track: Track = Track.none
    tracking_uri: str | None = None
    strict_versions: bool = False
    show_settings: bool = False
    debug: bool = False
    sources: dict[str, str] = field(default_factory=dict)  # option -> where its value came from
    settings: Settings = field(default_factory=Settings)

    @functools.cached_property
    def chosen(self) -> str:
        """The profile, printed once when a command starts, with where the settings came from when a
        settings file or the environment set any (so a report.toml in place is never a surprise)."""
        try:
            chosen = default_profile() if self.profile is None else check_profile(self.profile)
        except ConfigError as e:
            raise ConfigError(self.blame("profile", str(e))) from None
        console.print(f"profile: [bold]{chosen}[/]" + ("" if self.profile is not None else " (default)"))
        from_file = sorted({n for n, s in self.sources.items() if s not in ("command line", "default")
                            and "environment" not in s} | set(self.settings.overrides(chosen)))  # fmt: skip
        from_env = sorted(SHARED[n].envvar for n, s in self.sources.items() if "environment" in s)
        where = [f"{self.settings.path} ({', '.join(from_file)})"] if from_file else []
        where += [f"the environment ({', '.join(from_env)})"] if from_env else []
        if where:
            console.print(f"[dim]settings from {' and '.join(where)}[/]")
        return chosen

    @functools.cached_property
    def study(self) -> Request:
        """What this build asks for, every experiment at its profile's own size (no stand-ins)."""
        return Request(
            self.chosen, parse_overrides(self.overrides()), self.seed, self.data_dir, self.strict_versions
        )

    @functools.cached_property
    def request(self) -> Request:
        """The study, with the stand-ins this build runs where this machine lacks a GPU."""
        from report.core import reference

        stand_ins = reference.stand_ins(self.results, self.study, self.accelerator)
        return dataclasses.replace(self.study, stand_ins=stand_ins)

    @property
    def accelerator(self) -> bool:
        """Whether the units run with a GPU: ``--device`` here, or ``--slurm-gpus`` on a cluster. A GPU
        named for this machine that it lacks is the error ``all`` gives once torch loads, so ``status`` and
        ``render`` never count on a GPU that ``all`` would refuse."""
        if self.executor.value == "local" and (missing := missing_here(self.device)):
            raise ConfigError(self.blame("device", missing))
        return accelerator_present(self.device) or (self.executor.value == "slurm" and self.slurm_gpus > 0)

    def lacking(self, names: list[str]) -> list[str]:
        """Those of ``names`` whose full study needs a GPU the units will not have."""
        if self.chosen != "full" or self.accelerator:
            return []
        entries = self.results.manifest
        return [n for n in names if entries.get(n).needs_accelerator]

    def overrides(self) -> list[str]:
        """``--set`` values: report.toml's for this profile, then the command line's (which win)."""
        from_file = [f"{k}={s.value}" for k, s in self.settings.overrides(self.chosen).items()]
        return from_file + list(self.sets or [])

    @functools.cached_property
    def results(self) -> Store:
        return Store(self.store, advice=self.advice())  # a folder, or none yet: check_folders

    def origin(self, name: str) -> str:
        """Where an option's value was given, in its own spelling: ``--store X``, ``REPORT_STORE=X`` or
        ``report.toml:3: store = X``, so an error names what the user wrote."""
        option, value, came = SHARED[name], self.said(name), self.sources.get(name, "default")
        if came == "command line" or came == "default":
            return f"{option.names[0]} {value}"
        if "environment" in came:
            return f"{option.envvar}={value}"
        return f"{came}: {option.key} = {value}"

    def unset(self, name: str) -> str:
        """How to take an option's value back, wherever it was given: ``leave out --ray-address``,
        ``unset RAY_ADDRESS`` or ``remove ray_address from report.toml:3``."""
        option, came = SHARED[name], self.sources.get(name, "default")
        if "environment" in came:
            return f"unset {option.envvar}"
        if came in ("command line", "default"):
            return f"leave out {option.names[0]}"
        return f"remove {option.key} from {came}"

    def blame(self, name: str, message: str) -> str:
        """An error about an option's value, naming where the value was given when that was not the
        command line: ``REPORT_PROFILE=Full: unknown profile 'Full': …``, and a message that begins
        ``--device cuda`` as ``REPORT_DEVICE=cuda``."""
        if self.sources.get(name, "default") in ("command line", "default"):
            return message
        said = f"{SHARED[name].names[0]} {self.said(name)}"
        if message.startswith(said):
            return self.origin(name) + message[len(said) :]
        return f"{self.origin(name)}: {message}"

    def said(self, name: str) -> str:
        """An option's value as it is written on a command line: ``a4``, not ``Paper.a4``."""
        value = getattr(self, name)
        return str(getattr(value, "value", value))

    def advice(self) -> str:
        """The options given on the command line that select the store, the data, the config and what
        counts as stale: what a printed ``build.py run …`` needs besides the profile to make the same
        result again (values from the environment or report.toml apply again by themselves)."""
        given = [n for n in ("store", "data_dir", "seed") if self.sources.get(n) == "command line"]
        words = [f"{SHARED[n].names[0]} {shlex.quote(self.said(n))}" for n in given]
        words += [f"--set {shlex.quote(s)}" for s in self.sets or []]
        if self.strict_versions and self.sources.get("strict_versions") == "command line":
            words.append("--strict-versions")  # else a result stale only by its versions stays as it is
        return " ".join(words)

    def describe(self, names: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """(setting, value, source) for each resolved option, and each --set value."""
        rows = [
            (n, self.said(n), self.sources.get(n, "default")) for n in names if SHARED[n].key
        ]  # an Enum's value: a4, not Paper.a4
        if "profile" in names:  # the resolved profile, also when none was given anywhere
            came = self.sources.get("profile", "default")
            rows = [("profile", self.chosen, came) if r[0] == "profile" else r for r in rows]
        if "sets" not in names:  # a command without a profile (clean, import): no config to show
            return rows
        file_sets = self.settings.overrides(self.chosen)
        cli_sets = parse_overrides(self.sets)
        for exp, values in parse_overrides(self.overrides()).items():
            for key, value in values.items():
                name = f"{exp}.{key}"
                came = "command line" if key in cli_sets.get(exp, {}) else file_sets[name].source
                rows.append((f"set {name}", value, came))
        return rows


def resolve(given: dict[str, Any], settings: Settings, context: typer.Context) -> Options:
    """Fill every option the command line and environment left unset from report.toml, else the default."""
    values, sources = {}, {}
    for name, value in given.items():
        option = SHARED[name]
        if value is not None:  # given on the command line or in the environment
            values[name] = [spelled(v) for v in value] if name == "sets" else value
            origin = context.get_parameter_source(name)
            env = origin is not None and origin.name == "ENVIRONMENT"
            sources[name] = f"environment ({option.envvar})" if env else "command line"
        elif option.key and option.key in settings.values:
            setting = settings.values[option.key]
            enum = option.kind in (Format, Paper, Track, Executor)
            values[name] = option.kind(setting.value) if enum else setting.value
            sources[name] = setting.source
        else:
            values[name] = value if name == "sets" else option.default
        came = sources.get(name)
        if came is None:
            continue
        label = (
            option.names[0] if came == "command line"
            else option.envvar if "environment" in came
            else f"{came}: {option.key}"
        )  # fmt: skip
        if name in BOUNDS:
            check_value(label, values[name], Annotated[int, BOUNDS[name]])
        if option.kind is Path:  # "" would be the current folder: a store or cache where none was meant
            if str(values[name]) == "":
                default = f" ({option.default})" if option.default else ""
                raise ConfigError(
                    f"{label}='': an empty path names no folder; give a folder, or leave it out for the "
                    f"default{default}"
                )
            values[name] = Path(values[name])
        devices = SETTING_CHOICES["device"] or ()
        if name == "device" and values[name] not in devices:  # here, not once torch has loaded
            raise ConfigError(f"{label}={values[name]}: choose {', '.join(devices[:-1])} or {devices[-1]}")
    opts = Options(**values, sources=sources, settings=settings)
    check_folders(opts, [n for n in FOLDERS if n in values])  # the folders this command takes
    return opts


FOLDERS = ("data_dir", "store", "out", "cache")


def check_folders(opts: Options, names: list[str]) -> None:
    """The folder options a command takes (``names``) name folders, or places where one can be made: a
    file, a path below a file, a link to nothing or a name the file system refuses is one line, before
    anything reads or writes there (a store below a file once read as every result stale, with advice
    that could not work)."""
    for name in names:
        folder, option = getattr(opts, name), SHARED[name].names[0]
        if folder is None:
            continue
        where = opts.origin(name) + ("" if name in opts.sources else " (the default)")
        try:
            if folder.is_symlink() and not folder.exists():
                raise ConfigError(f"{where} is a link to nothing; pass a folder as {option}")
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{where} is a file, not a folder; pass a folder as {option}")
            nearest = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
        except OSError as e:  # a name longer than the file system allows, say
            raise ConfigError(f"{where}: {(e.strerror or str(e)).lower()}; pass another {option}") from None
        if not nearest.is_dir():
            raise ConfigError(
                f"{where}: no folder can be made there ({nearest} is a file); pass another {option}"
            )


def print_settings(opts: Options, names: tuple[str, ...]) -> None:
    from rich.table import Table

    where = opts.settings.path or f"no {SETTINGS_NAME}"
    table = Table(title=f"effective settings ({where})", title_justify="left")
    for col in ("setting", "value", "from"):
        table.add_column(col)
    for row in opts.describe(names):
        table.add_row(*row)
    wide = None if console.is_terminal else 200  # pipes and logs get whole rows
    Console(stderr=True, width=wide, highlight=False).print(table)
