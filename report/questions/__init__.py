"""The context layer: one module per question turns stored tables into facts, verdicts, tables and figures.

``report/questions/qN.py`` defines ``context(results: Results) -> dict``; the template
``templates/qN.md.j2`` sees that dict as ``qN`` and words it. A value the template shows comes from exactly
one place: the question module that computed it from the store. The questions and their order come from
the manifest. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from report import provenance
from report.core import manifest
from report.core.errors import EvidenceError, MissingResultError
from report.core.freshness import Request, acceptance, judge, other_versions
from report.core.store import Result, Store
from report.diff import config_changes
from report.provenance import Sourced, SourcedInt


@dataclass(frozen=True)
class Run:
    """Provenance of one stored result, for footnotes, the appendix and stale flags."""

    experiment: str
    run_id: str
    profile: str
    finished: str
    device: str
    device_name: str
    duration_s: float
    commit: str
    dirty: bool
    config: dict[str, Any]
    versions: dict[str, str]
    stale: tuple[str, ...]  # what changed since this result was made (report.core.freshness.judge)
    settings_changed: tuple[str, ...] = ()  # with the config stale: which settings, "points 200 → 10"
    other_versions: str = ""  # the libraries it was made with that differ from the rendering machine's
    sessions: int | None = None  # >1: resumed, its duration counting each session; None: not recorded
    seed: int | None = None  # the run's seed (--seed), where its record has one
    accepted: str = ""  # build.py accept carried it over a code change: when and why
    accepted_on: tuple[str, ...] = ()  # the date of each acceptance; the last one wrote the record and its id
    rerun: str = ""  # the command that makes it again, as this build would run it
    stand_in: str = ""  # the profile run in place of a study that needs a GPU this machine lacks ("quick")
    missing: str = ""  # with a stand-in: what is missing
    make: str = ""  # with a stand-in: the command that makes the study on a machine with a GPU

    @property
    def date(self) -> str:
        return self.finished[:10]

    def caveat_labels(self) -> list[str]:
        """What a reader of this run's numbers should know beside them, in a few words each: uncommitted
        code, other library versions, a record ``accept`` carried over code changes (the last acceptance
        wrote the record, and so its id). The source line under each table and figure lists them."""
        return [
            *(["uncommitted code"] if self.dirty else []),
            *(["other library versions"] if self.other_versions else []),
            *([f"carried over code changes by accept (record rewritten {self.accepted_on[-1]})"]
              if self.accepted_on else []),
        ]  # fmt: skip

    def caveats(self) -> dict[str, Any] | None:
        """The facts behind ``caveat_labels``, sourced, for a note at the top of the run's question (None
        when there is nothing to say)."""
        if not self.caveat_labels():
            return None
        name = f"{self.experiment} {self.run_id}"
        return {
            "date": provenance.sourced_text(self.date, "the run record's finish time", name),
            "commit": provenance.sourced_text(self.commit, "the run record's commit", name),
            "dirty": self.dirty,
            "versions": provenance.sourced_text(
                self.other_versions, "the run record's library versions, and this machine's", name
            ),
            "accepts": SourcedInt(len(self.accepted_on), "the run record's list of acceptances", name),
            "last_accept": provenance.sourced_text(
                self.accepted_on[-1] if self.accepted_on else "", "the run record's last acceptance", name
            ),
        }


@dataclass
class Table:
    """A DataFrame and how to show it: ``columns`` maps a column to (header, number format).

    Formats are the names of the number filters (``num``, ``pct``, ``int``, ``sci``, ``pm``, ``dur``,
    ``text``); every number in every table goes through them, so the PDF shows what the store holds.
    """

    df: pd.DataFrame
    columns: dict[str, tuple[str, str]]
    run: Run
    highlight: Callable[[pd.Series], bool] | None = None  # rows to emphasise (e.g. the best model)
    # how a column was computed, for each cell's provenance ("mean of test_acc over {seeds} seeds");
    # {field} takes the row's value; a column without one names the context module that made it
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Figure:
    """A matplotlib drawing from stored data: ``draw(data)`` returns a ``matplotlib.figure.Figure``.

    The drawing runs only when a template shows the figure, and its SVG is cached by the hash of
    ``draw``'s source and ``data``, so re-rendering an unchanged report never imports matplotlib.
    """

    draw: Callable[[Any], Any]
    data: Any
    alt: str  # a sentence describing what the figure shows, for screen readers
    run: Run
    extra: dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to draw


class Results:
    """Read access to the results a build asks for, with errors that tell the author what to run.

    ``request`` is the build's request (or just a profile name, for a notebook): the stale flag of every
    run shown comes from the same freshness rule as ``build.py status``.
    """

    def __init__(self, store: Store, request: Request | str) -> None:
        self.store = store
        self.request = Request(request) if isinstance(request, str) else request
        self.profile = self.request.profile
        self._runs: dict[str, Run] = {}
        self._results: dict[str, Result] = {}  # the run each experiment's tables are read from
        self._tables: dict[tuple[str, str], pd.DataFrame] = {}

    def run(self, experiment: str) -> Run:
        if experiment not in self._runs:
            verdict = judge(self.store, experiment, self.request)
            meta = verdict.meta
            if verdict.state == "missing":
                raise MissingResultError(
                    f"the report needs {experiment} results for profile {self.profile}, and the store "
                    f"{self.store.root} has none; run: {self.store.command(experiment, self.profile)}"
                )
            if meta is None or verdict.result is None:  # unreadable: reading it says what is wrong
                self.store.meta(self.profile, experiment)
            self._results[experiment] = verdict.result
            name = f"{experiment} {meta['run_id']}"  # what the page's provenance calls the run
            self._runs[experiment] = Run(
                experiment=experiment,
                run_id=meta["run_id"],
                profile=meta["profile"],
                finished=meta["finished"],
                device=meta["device"],
                device_name=provenance.sourced_text(meta["device_name"], "the run record's device", name),
                duration_s=Sourced(float(meta["duration_s"]), "the run record's wall-clock duration", name),
                commit=meta["git_commit"],
                dirty=bool(meta["git_dirty"]),
                config=meta["config"],
                versions=meta["versions"],
                other_versions=other_versions(meta),
                stale=verdict.changed,
                settings_changed=tuple(config_changes(meta, self.request, experiment))
                if "config" in verdict.changed
                else (),
                sessions=SourcedInt(meta["sessions"], "the run record's count of sessions", name)
                if meta.get("sessions")
                else None,
                **self._acceptances(verdict.changed, meta),
                rerun=self.store.command(experiment, self.profile, force=True),
                seed=int(meta["seed"]) if meta.get("seed") is not None else None,
                **self._stand_in(experiment, meta),
            )
        return self._runs[experiment]

    @staticmethod
    def _acceptances(changed: tuple[str, ...], meta: dict[str, Any]) -> dict[str, Any]:
        """The run's acceptances, for the report to show: none once the code has changed again (then it is
        stale, and an old acceptance vouches for nothing)."""
        if "code" in changed:
            return {"accepted": "", "accepted_on": ()}
        dates = tuple(a["on"][:10] for a in meta.get("accepted") or [])
        return {"accepted": acceptance(meta), "accepted_on": dates}

    def _stand_in(self, experiment: str, meta: dict[str, Any]) -> dict[str, str]:
        if experiment not in self.request.stand_ins or not meta.get("stand_in"):
            return {}
        from report.core import reference

        missing, make = reference.why_stand_in(self.store, self.request, experiment)
        return {"stand_in": meta["stand_in"], "missing": missing, "make": make}

    def record(self, experiment: str) -> dict[str, Any]:
        """The stored run record of ``experiment``'s result (its config, seed, whether it was a stand-in)."""
        self.run(experiment)
        return self._results[experiment].meta

    def has(self, experiment: str, name: str) -> bool:
        """Whether the stored run holds table ``name`` (one stored before the table existed does not)."""
        self.run(experiment)
        return name in self._results[experiment].tables()

    def table(self, experiment: str, name: str) -> pd.DataFrame:
        key = (experiment, name)
        if key not in self._tables:
            self.run(experiment)  # a clear "run it" message when the whole experiment is missing
            self._tables[key] = self._results[experiment].read(name)
        return self._tables[key]


def require(condition: bool, check: str) -> None:
    """Stop the build when stored evidence contradicts a conclusion the report is about to state (what to
    do about it is ``build``'s to say: it knows the run's settings)."""
    if not condition:
        raise EvidenceError(f"the stored results fail a check the report rests on: it is not so that {check}")


def _evidence_fix(results: Results, name: str) -> str:
    """What to do about evidence of ``name`` that fails a check: with settings the run's profile does not
    give (a learning rate too small to train), run it without them, by a command that does not repeat
    them; else rerun it, or fix the code."""
    run = results.run(name)
    stand_in = bool(results.record(name).get("stand_in"))  # a quick run in the study's place: its profile's
    plain = Request(run.profile, stand_ins=frozenset({name} if stand_in else ()))
    made = {"config": run.config, "stand_in": stand_in, "seed": plain.seed if run.seed is None else run.seed}
    own = config_changes(made, plain, name)  # "lr 1e-06 → 0.05": the run's value, the profile's
    if not own:
        return f"rerun it ({run.rerun}), or fix the code that stored it"
    words, kept = shlex.split(results.store.advice), []  # this build's options, less the settings to drop
    while words:
        flag = words.pop(0)  # each option takes a value, but --strict-versions
        value = words.pop(0) if flag != "--strict-versions" and words else None
        if flag != "--seed" and not (flag == "--set" and str(value).startswith(f"{name}.")):
            kept.append(flag if value is None else f"{flag} {shlex.quote(value)}")
    command = Store(results.store.root, advice=" ".join(kept)).command(name, run.profile, force=True)
    return (
        f"it ran with settings of its own ({'; '.join(own)}: its value → the profile's), which need not show "
        f"it: drop them (--set, --seed, REPORT_SEED, report.toml) or choose others, and run {command}"
    )


def questions() -> tuple[str, ...]:
    """The report's questions in order: the manifest's experiments."""
    return manifest.load().names


def build(results: Results, names: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Every question's context, keyed by name (``q1``, ``q2``, ...) as the templates use them. Evidence
    that fails a check is refused with the fix that can work: a run with settings of its own may simply
    not show what the report states (a learning rate too small to train), so those settings are named;
    with the profile's own, a rerun or the code."""
    names = questions() if names is None else names
    contexts = {}
    for name in names:
        try:
            contexts[name] = importlib.import_module(f"report.questions.{name}").context(results)
        except EvidenceError as e:
            raise EvidenceError(f"{name}: {e}; {_evidence_fix(results, name)}") from None
    return contexts
