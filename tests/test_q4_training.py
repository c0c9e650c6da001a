"""Question 4's experiment end to end: every model through the smoke pipeline, the recipe learning, and
training that resumes after an interruption."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from experiments import kit, models, q4
from experiments.configs.q4 import PROFILES
from experiments.kit import RunContext
from report.questions import q4 as ctx4
from tests.q4_results import rendered, stored, write_svhn


def make_ctx(tmp_path: Path, data_dir: Path) -> RunContext:
    return RunContext(device=torch.device("cpu"), seed=0, data_dir=data_dir, workdir=tmp_path / "work")


@pytest.mark.slow
def test_smoke_pipeline_on_svhn_fixture_trains_all_models_and_names_svhn(tmp_path: Path) -> None:
    write_svhn(tmp_path, 40, 30)
    cfg = PROFILES["smoke"]
    assert cfg.dataset == "svhn" and cfg.models == models.NAMES
    out = q4.run(cfg, make_ctx(tmp_path, tmp_path))
    res = out.tables["results"]
    assert sorted(res["model"]) == sorted(models.NAMES) and res["test_acc"].between(0, 1).all()
    assert out.tables["splits"].set_index("split")["used"].to_dict() == {"train": 8, "val": 8, "test": 16}
    checkpoints = sorted(p.stem for p in (tmp_path / "work").glob("*.pt"))
    assert checkpoints == sorted(f"{m}-seed0" for m in models.NAMES)  # one resumable step per model
    assert out.headline[0].startswith("best test accuracy (")
    results = stored(tmp_path, out.tables, seeds=cfg.seeds, cfg=cfg)
    c = ctx4.context(results)
    assert c["dataset"] == "SVHN" and not c["substitute"] and c["subset"]
    page, text = rendered(results)
    assert "Six CNN architectures on SVHN" in text
    assert page.count('<img src="data:image/svg+xml') == 3  # every figure was drawn


@pytest.mark.slow
def test_recipe_learns_fashion_mnist_format_data_with_lenet5(tmp_path: Path, data_dir: Path) -> None:
    cfg = dataclasses.replace(
        PROFILES["quick"],
        dataset="fashion-mnist",
        models=("lenet5",),
        epochs=3,
        batch_size=32,
        train_subset=1024,
        test_subset=1000,
        lr=0.05,
    )
    out = q4.run(cfg, make_ctx(tmp_path, data_dir))
    acc = out.tables["results"]["test_acc"].iloc[0]
    assert acc > 0.5, f"LeNet-5 reached only {acc:.3f} on Fashion-MNIST-format data (chance is 0.1)"
    curves = out.tables["curves"]
    assert curves["train_loss"].iloc[-1] < curves["train_loss"].iloc[0]


class _Interrupt(Exception):
    pass


def test_interrupted_training_resumes_from_the_last_epoch_with_the_same_result(tmp_path: Path) -> None:
    write_svhn(tmp_path, 60, 20)
    cfg = dataclasses.replace(PROFILES["smoke"], models=("lenet5",), epochs=3, train_subset=32)
    cpu = torch.device("cpu")
    splits = q4.prepare(cfg, tmp_path, 0, "cpu")
    (tmp_path / "a").mkdir()
    expected = q4.train_one("lenet5", 0, cfg, splits, cpu, tmp_path / "a")

    def crash_after_epoch_2(message: str) -> None:
        if "epoch 2:" in message:
            raise _Interrupt  # as if the process died right after epoch 2 was checkpointed

    workdir = tmp_path / "b"
    workdir.mkdir()
    with pytest.raises(_Interrupt):
        kit.call(kit.Unit("u", q4.train_one, ("lenet5", 0, cfg, splits, cpu, workdir)), crash_after_epoch_2)
    assert (workdir / "lenet5-seed0-epoch.pt").exists()
    epochs_run = []
    unit = kit.Unit("u", q4.train_one, ("lenet5", 0, cfg, splits, cpu, workdir))
    resumed = kit.call(unit, lambda message: epochs_run.append(int(message.split("epoch ")[1].split(":")[0])))
    assert epochs_run == [3], "only the unfinished epoch is trained again"
    assert resumed["curves"] == expected["curves"]
    assert resumed["result"]["test_acc"] == expected["result"]["test_acc"]
    assert resumed["confusion"] == expected["confusion"]
