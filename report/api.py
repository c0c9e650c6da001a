"""The results store from Python, for notebooks: ``from report import open_store``.

    results = open_store("results", profile="quick")
    results.experiments()                  # ['q1', 'q2', 'q3', 'q4']: those with a current run
    results.runs("q4")                     # every stored run of q4, newest first, with its headline
    df = results.table("q4", "results")    # a stored table as a DataFrame; df.attrs says where it came from
    q4 = results.context("q4")             # the facts and verdicts the report's template words

Reading only: nothing here trains, writes or imports torch. Tables come from the run the store's pointer
names at the moment they are read, or from the run you name with ``run=``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from report.core import manifest, reference
from report.core.config import accelerator_present, check_profile
from report.core.errors import MissingResultError
from report.core.freshness import Request, judge
from report.core.settings import load as load_settings
from report.core.store import Result, Store

if TYPE_CHECKING:
    import pandas as pd


class OpenStore:
    """A results store opened for reading; every table it returns carries its provenance in ``attrs``."""

    def __init__(
        self,
        root: Path | str,
        profile: str,
        data_dir: Path | str,
        overrides: Mapping[str, Mapping[str, str]],
        device: str = "auto",
    ) -> None:
        self.store = Store(Path(root))
        self.profile = check_profile(profile)
        study = Request(self.profile, {k: dict(v) for k, v in overrides.items()}, data_dir=Path(data_dir))
        stand_ins = reference.stand_ins(self.store, study, accelerator_present(device))
        self.request = dataclasses.replace(study, stand_ins=stand_ins)  # judged as build.py judges

    def __repr__(self) -> str:
        names = ", ".join(self.experiments()) or "no results"
        return f"open_store({str(self.store.root)!r}, profile={self.profile!r}): {names}"

    def profiles(self) -> list[str]:
        """The profiles the store holds results for."""
        return sorted({p.parent.parent.name for p in self.store.root.glob("*/*/current")})

    def experiments(self) -> list[str]:
        """The experiments with a current run for this profile, in report order."""
        return [n for n in manifest.load().names if self.store.has(self.profile, n)]

    def tables(self, experiment: str) -> list[str]:
        """The tables an experiment's current run stored."""
        return self._result(experiment).tables()

    def runs(self, experiment: str) -> pd.DataFrame:
        """Every stored run of an experiment, newest first: id, when it finished, device, headline, whether
        it is the current one, and its freshness verdict for this profile (current, stale: what changed)."""
        import pandas as pd

        current = self.store.result(self.profile, experiment)
        verdict = judge(self.store, experiment, self.request)
        rows = []
        for run in self.store.history(self.profile, experiment):
            meta = run.meta
            is_current = current is not None and run.folder == current.folder
            rows.append(
                {
                    "run_id": meta["run_id"],
                    "finished": meta["finished"],
                    "device": meta["device_name"],
                    "duration_s": meta["duration_s"],
                    "headline": meta["headline"]["label"],
                    "value": meta["headline"]["value"],
                    "current": is_current,
                    "state": _state(verdict) if is_current else "superseded",
                }
            )
        columns = ["run_id", "finished", "device", "duration_s", "headline", "value", "current", "state"]
        return pd.DataFrame(rows, columns=columns).sort_values("finished", ascending=False, ignore_index=True)

    def meta(self, experiment: str, run: str | None = None) -> dict[str, Any]:
        """The run record: config, seed, fingerprint, versions, device, commit, timings."""
        return self._result(experiment, run).meta

    def table(self, experiment: str, name: str, run: str | None = None) -> pd.DataFrame:
        """One stored table of the current run (or of ``run``); ``df.attrs`` holds the experiment, table,
        profile, run id, when it finished, the device, the commit and the config it was made with."""
        result = self._result(experiment, run)
        df = result.read(name)
        meta = result.meta
        df.attrs = {
            "experiment": experiment,
            "table": name,
            "profile": self.profile,
            "run_id": meta["run_id"],
            "finished": meta["finished"],
            "device": meta["device_name"],
            "commit": meta["git_commit"],
            "config": meta["config"],
        }
        return df

    def context(self, question: str) -> dict[str, Any]:
        """What the report's template for ``question`` sees: facts, verdict codes, tables and figures."""
        import importlib

        from report.questions import Results

        module = importlib.import_module(f"report.questions.{manifest.load().get(question).name}")
        return module.context(Results(self.store, self.request))

    def _result(self, experiment: str, run: str | None = None) -> Result:
        manifest.load().get(experiment)  # an unknown name is a one-line error
        if run is None:
            result = self.store.result(self.profile, experiment)
        else:
            matches = [r for r in self.store.history(self.profile, experiment) if r.folder.name == run]
            result = matches[0] if matches else None
        if result is None:
            which = f"run {run}" if run else "results"
            raise MissingResultError(
                f"no {experiment} {which} for profile {self.profile} in {self.store.root}; "
                f"see .runs({experiment!r}), or run: build.py run {experiment} --profile {self.profile}"
            )
        return result


def _state(verdict: Any) -> str:
    return "current" if verdict.current else f"stale: {', '.join(verdict.changed) or verdict.state}"


def open_store(
    root: Path | str | None = None,
    profile: str | None = None,
    data_dir: Path | str | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> OpenStore:
    """Open a results store for reading, with the build's own settings where an argument is not given.

    ``root`` is the store folder (``--store``), ``profile`` the profile to read, ``data_dir`` where the
    data lives and ``overrides`` the ``--set`` values the results were built with, as
    ``{"q4": {"dataset": "fashion-mnist"}}`` (the last two decide whether a result counts as current).
    Unset, each comes from the environment (``REPORT_PROFILE``, ``REPORT_STORE``, ``REPORT_DATA_DIR``, and
    ``REPORT_DEVICE`` for what counts as current), then ``report.toml``, as ``build.py`` reads them, else
    the build's default.
    """
    settings = load_settings()

    def setting(key: str, envvar: str, default: str) -> Any:
        """A shared option's value as build.py resolves it without a command line: the environment,
        then report.toml, then the default."""
        if os.environ.get(envvar):
            return os.environ[envvar]
        return settings.values[key].value if key in settings.values else default

    profile = check_profile(profile or setting("profile", "REPORT_PROFILE", "full"))
    sets: dict[str, dict[str, str]] = {}
    for key, value in settings.overrides(profile).items():
        experiment, _, name = key.partition(".")
        sets.setdefault(experiment, {})[name] = str(value.value)
    for experiment, values in (overrides or {}).items():
        sets.setdefault(experiment, {}).update({k: str(v) for k, v in values.items()})
    root = root or setting("store", "REPORT_STORE", "results")
    data_dir = data_dir or setting("data_dir", "REPORT_DATA_DIR", "data")
    return OpenStore(root, profile, data_dir, sets, setting("device", "REPORT_DEVICE", "auto"))
