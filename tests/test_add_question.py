"""Adding a question touches only new files and one manifest entry (the recipe in docs/architecture.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from report.core.store import Store
from tests.conftest import SMOKE_SETS, copy_project

pytestmark = pytest.mark.slow

CONFIG = '''
"""Q5's settings."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"


PROFILES = {"smoke": Config(), "quick": Config(), "full": Config()}
'''

EXPERIMENT = '''
"""Q5: how balanced are MNIST's training classes?"""

import pandas as pd
import torch

from experiments import data
from experiments.configs.q5 import Config
from experiments.kit import Output, RunContext


def run(cfg: Config, ctx: RunContext) -> Output:
    _, labels = data.load(cfg.dataset, ctx.data_dir, train=True)
    counts = torch.bincount(labels, minlength=10)
    table = pd.DataFrame({"digit": range(10), "images": counts.tolist()})
    return Output({"counts": table}, ("images of the rarest digit", float(counts.min())))
'''

CONTEXT = '''
"""Q5 context: the class counts and which digit is rarest."""

from report.questions import Results, Table


def context(r: Results) -> dict:
    run = r.run("q5")
    counts = r.table("q5", "counts")
    rarest = counts.loc[counts["images"].idxmin()]
    return {
        "rarest": int(rarest["digit"]),
        "rarest_images": int(rarest["images"]),
        "total": int(counts["images"].sum()),
        "tables": {"counts": Table(counts, {"digit": ("Digit", "int"), "images": ("Images", "int")}, run)},
    }
'''

TEMPLATE = """# Question 5: How balanced are the training classes?

Of {{ q5.total | int }} training images, the rarest digit is {{ q5.rarest | int }}, with
{{ q5.rarest_images | int }} images ({{ ref("tab:q5-counts") }}).

{{ table(q5.tables.counts, "Training images per digit.", label="tab:q5-counts") }}
"""

MANIFEST = """
[q5]
title = "Q5: class balance of MNIST"
datasets = ["{dataset}"]

[q5.tables]
counts = { digit = "int", images = "int" }
"""


def test_a_fifth_question_from_new_files_and_one_manifest_entry(smoke_build, data_dir, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    project = copy_project(tmp_path)
    (project / "experiments" / "q5.py").write_text(textwrap.dedent(EXPERIMENT))
    (project / "experiments" / "configs" / "q5.py").write_text(textwrap.dedent(CONFIG))
    (project / "report" / "questions" / "q5.py").write_text(textwrap.dedent(CONTEXT))
    (project / "templates" / "q5.md.j2").write_text(TEMPLATE)
    with open(project / "experiments" / "manifest.toml", "a", encoding="utf-8") as fh:
        fh.write(MANIFEST)
    store, out = tmp_path / "results", tmp_path / "out"
    shutil.copytree(smoke_build.store, store)  # q1-q4 are current; only q5 runs

    proc = subprocess.run(
        [sys.executable, str(project / "build.py"), "all", "--profile", "smoke", "--data-dir", str(data_dir),
         "--store", str(store), "--out", str(out), *SMOKE_SETS],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "q5: running (missing)" in proc.stderr
    assert all(f"q{n}: up to date" in proc.stderr for n in range(1, 5))

    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(out / "report.pdf").pages)
    assert "Question 5" in text and "How balanced are the training classes?" in text
    counts = pd.read_parquet(Store(store).path("smoke", "q5", "counts"))
    rarest = counts.loc[counts["images"].idxmin()]
    assert f"the rarest digit is {int(rarest['digit'])}, with" in " ".join(text.split())
