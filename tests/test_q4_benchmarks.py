"""The benchmarks a borrowed GPU runs to choose Q4's lever and recipe (issue #24), checked on a CPU so the
device call that uses them cannot fail on a typo: benchmarks/q4_levers.py's ``together`` lever gives each
seed the trajectory it follows alone, and benchmarks/q4_recipe.py trains as the experiment does."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import subprocess
import sys

import pytest
import torch
from torch import nn

from experiments import q4
from experiments.configs.q4 import PROFILES
from tests.conftest import ROOT

BENCH = ROOT / "benchmarks"


def _levers():  # noqa: ANN202 - the benchmark's module
    sys.path.insert(0, str(BENCH))  # as a script, it imports gpu_study from beside itself
    try:
        spec = importlib.util.spec_from_file_location("q4_levers", BENCH / "q4_levers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize(
    ("name", "side"),
    [("lenet5", 32), pytest.param("resnet18", 16, marks=pytest.mark.slow)],  # no dropout; 16: cheap
)  # ResNet-18 (batch norm) takes 7 s in float64: in the whole suite, not the edit loop's subset
def test_seeds_trained_together_follow_the_trajectories_they_follow_alone(name, side):
    """Three steps in float64 with the experiment's optimiser, weight decay, label smoothing and clipping:
    each seed's parameters and batch-norm statistics equal those of the same seed trained alone on the
    same batches, to round-off (the stacked convolutions add in another order)."""
    levers = _levers()
    cpu, seeds = torch.device("cpu"), [0, 1]
    stack = levers.Together(name, seeds, cpu, torch.float64)
    g = torch.Generator().manual_seed(5)
    xs = torch.randn(3, len(seeds), 4, 3, side, side, generator=g, dtype=torch.float64) * 3
    ys = torch.randint(0, 10, (3, len(seeds), 4), generator=g)
    clipped = []
    for t in range(3):
        stack.step(xs[t], ys[t])
    for k, seed in enumerate(seeds):
        torch.manual_seed(seed)
        model = q4.build(name, 10, cpu).double().train()
        opt = q4.optimizer(model, levers.CFG)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=levers.CFG.label_smoothing)
        for t in range(3):
            probe = copy.deepcopy(model)  # its gradient's norm before the step clips it, apart
            loss_fn(probe(xs[t, k]), ys[t, k]).backward()
            clipped.append(
                nn.utils.get_total_norm([p.grad for p in probe.parameters()]) > levers.CFG.grad_clip
            )
            q4.train_step(model, opt, loss_fn, xs[t, k], ys[t, k], levers.CFG.grad_clip)
        for key, p in [*model.named_parameters(), *model.named_buffers()]:
            together = stack.params[key] if key in stack.params else stack.buffers[key]
            torch.testing.assert_close(together[k], p.detach(), rtol=1e-10, atol=1e-12, msg=f"{name} {key}")
    assert any(clipped)  # the per-seed clipping was exercised, not only the plain step
    assert not torch.equal(
        stack.params[next(iter(stack.params))][0], stack.params[next(iter(stack.params))][1]
    )


@pytest.mark.slow
def test_the_benchmark_runs_every_lever_on_a_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "q4_levers.py"), "--device", "cpu", "--models", "lenet5", "--levers",
         "each,processes,together", "--seeds", "2", "--batch", "8", "--steps", "1", "--warmup", "0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("lenet5", "each"),
        ("lenet5", "processes"),
        ("lenet5", "together"),
    ]
    assert all(float(r[2].replace(",", "")) > 0 for r in rows)


def _recipe():  # noqa: ANN202 - the benchmark's module
    spec = importlib.util.spec_from_file_location("q4_recipe", BENCH / "q4_recipe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_recipe_benchmark_trains_as_the_experiment_does_and_flips_when_told(data_dir, tmp_path, capsys):
    """Its trials are the experiment's own training (the rule's "off" row is q4.train_one's numbers), its
    flip knob changes the training, and the experiment's rule is as it was afterwards."""
    recipe = _recipe()
    sets = {
        "train_subset": 256,
        "val_size": 32,
        "test_subset": 128,
        "batch_size": 64,
        "dataset": "fashion-mnist",
    }
    rule = q4.AUGMENT["fashion-mnist"]
    assert rule[1] is False  # no flips: what "off" must reproduce
    args = ["--data-dir", str(data_dir), "--models", "lenet5", "--epochs", "1", "--flip", "off,on"]
    assert recipe.main([*args, "--device", "cpu", *(f"--set={k}={v}" for k, v in sets.items())]) == 0
    assert q4.AUGMENT["fashion-mnist"] == rule
    shown = capsys.readouterr().out
    rows = {r[2]: r for r in (line.split() for line in shown.split("all trials:")[1].splitlines()[2:])}
    assert set(rows) == {"off", "on"}
    cfg = dataclasses.replace(PROFILES["full"], epochs=1, **sets)
    alone = q4.train_one("lenet5", 0, cfg, q4.prepare(cfg, data_dir, 0, "cpu"), torch.device("cpu"), tmp_path)
    assert rows["off"][4:7] == [
        f"{alone['result']['test_acc']:.2%}", f"{alone['result']['val_acc']:.2%}",
        f"{alone['curves'][-1]['train_loss']:.4f}",
    ]  # fmt: skip
    assert rows["on"][6] != rows["off"][6]  # flipped images: another training loss

    with pytest.raises(SystemExit) as wrong:
        recipe.main(["--set", "epoch=3"])
    assert wrong.value.code == 2 and "q4 has no setting 'epoch'" in capsys.readouterr().err
