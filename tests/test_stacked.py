"""Q3's stacked training and successive halving: a stacked copy follows the trajectory it would follow
alone (every optimizer, shared or own data order), a diverging copy leaves the others alone, and each
rung keeps the best fraction of its candidates."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from experiments import halving, kit, q3, stacked
from experiments.configs.q3 import PROFILES

N, BATCH, STEPS = 256, 32, 8  # 8 optimizer steps: several updates of every state buffer


def _data(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels, in float64 by default: in exact arithmetic a stacked point and the same
    point alone are equal, and float64 shows it to 1e-10 where float32 round-off, which Adam turns into
    rate-sized steps for near-zero gradients, would blur it."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(N, 1, 28, 28, generator=gen).to(dtype), torch.randint(0, 10, (N,), generator=gen)


def _alone(
    name: str, lr: float, seed: int, x: torch.Tensor, y: torch.Tensor, **opt: object
) -> torch.nn.Module:
    """The reference: one model, one stock ``torch.optim`` optimizer, the same data order."""
    torch.manual_seed(seed)
    model = q3.mlp().to(x.dtype)
    if name == "adam":
        optim = torch.optim.Adam(model.parameters(), lr=lr, **opt)
    else:
        optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9 if name == "momentum" else 0.0, **opt)
    for idx in kit.batches(N, BATCH, x.device, torch.Generator().manual_seed(seed)):
        optim.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optim.step()
    return model


def _stack(names: list[str], lrs: list[float], seeds: list[int], x, y, shared: bool) -> stacked.Stack:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(q3.mlp().to(x.dtype))
    stack = stacked.Stack(models)
    opts = stacked.Optimizers(stack, names, lrs)
    gens = [torch.Generator().manual_seed(s) for s in (seeds[:1] if shared else seeds)]
    next(stacked.train_epochs(stack, opts, x, y, BATCH, gens, lrs, math.inf))  # a constant rate, as alone
    return stack


def _diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        float((p - q).abs().max() / q.abs().max())
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_a_stacked_point_follows_its_trajectory_alone(name: str) -> None:
    """Every point of a stack (shared initial weights and data order, its own rate) ends where training
    it alone with the stock fused optimizer ends, after several steps."""
    x, y = _data()
    lrs = [1e-3, 1e-2, 3e-2] if name == "adam" else [1e-2, 0.1, 0.3]
    stack = _stack([name] * 3, lrs, [1] * 3, x, y, shared=True)
    for k, lr in enumerate(lrs):
        assert _diff(stack.model(k), _alone(name, lr, 1, x, y, fused=True)) <= 1e-10


def test_in_float32_a_stacked_point_matches_to_float32_round_off() -> None:
    x, y = _data(torch.float32)
    stack = _stack(["momentum"] * 2, [1e-2, 0.1], [1] * 2, x, y, shared=True)
    for k, lr in enumerate([1e-2, 0.1]):
        assert _diff(stack.model(k), _alone("momentum", lr, 1, x, y, fused=True)) <= 1e-5


def test_points_with_different_optimizers_share_one_stack() -> None:
    x, y = _data()
    names, lrs = ["sgd", "momentum", "adam"], [0.1, 1e-2, 1e-3]
    stack = _stack(names, lrs, [2] * 3, x, y, shared=True)
    for k, (name, lr) in enumerate(zip(names, lrs, strict=True)):
        assert _diff(stack.model(k), _alone(name, lr, 2, x, y, fused=True)) <= 1e-10


def test_copies_with_their_own_seed_and_data_order_follow_their_trajectories() -> None:
    """The final models: each copy starts from its seed's weights and draws its own batches."""
    x, y = _data()
    stack = _stack(["sgd"] * 3, [0.1] * 3, [0, 1, 2], x, y, shared=False)
    for k in range(3):
        assert _diff(stack.model(k), _alone("sgd", 0.1, k, x, y, fused=True)) <= 1e-10
    assert _diff(stack.model(0), stack.model(1)) > 1e-2  # different seeds really differ


def test_a_diverging_point_does_not_disturb_the_others() -> None:
    """A point whose weights are NaN (what a diverged run ends with) and one whose rate is absurd train
    beside two sane points; those two end exactly where they would alone."""
    x, y = _data()
    torch.manual_seed(1)
    stack = stacked.Stack([q3.mlp().to(x.dtype)] * 4)
    with torch.no_grad():
        stack.params[0][1].fill_(math.nan)
    lrs = [0.1, 0.1, 1e12, 0.3]
    opts = stacked.Optimizers(stack, ["sgd"] * 4, lrs)
    next(stacked.train_epochs(stack, opts, x, y, BATCH, [torch.Generator().manual_seed(1)], lrs, math.inf))
    for k, lr in ((0, 0.1), (3, 0.3)):
        assert _diff(stack.model(k), _alone("sgd", lr, 1, x, y, fused=True)) <= 1e-10
    loss, _ = stacked.evaluate(stack, x, y)
    assert math.isfinite(loss[0]) and math.isfinite(loss[3]) and math.isnan(loss[1])


@pytest.mark.parametrize(
    ("name", "dtype", "tol"),
    [("adam", torch.float64, 1e-10), ("momentum", torch.float32, 1e-5)],
)
def test_a_point_trains_the_same_in_a_stack_of_any_width_to_round_off(name, dtype, tol) -> None:
    """A stack's width changes only the order of the sums inside its batched products (the kernels choose
    their blocking by shape, differently on different CPUs), so a point in a stack of 4, 2 or 1 agrees
    to round-off, not bit for bit. (Adam in float32 is left out: it turns round-off in near-zero
    gradients into rate-sized steps.) Hence the cut into stacks comes from the config alone."""
    x, y = _data(dtype)
    lrs = [1e-3, 1e-2, 3e-3, 1e-4] if name == "adam" else [1e-2, 0.1, 0.03, 0.3]
    big = _stack([name] * 4, lrs, [1] * 4, x, y, shared=True)
    for width in (2, 1):
        small = _stack([name] * width, lrs[:width], [1] * width, x, y, shared=True)
        for k in range(width):
            assert _diff(small.model(k), big.model(k)) <= tol


class _Planned(Exception):
    """Raised by the recording ``map`` below: the first stage's units are known, stop there."""


def test_the_cut_into_units_is_the_same_whatever_the_executor(data_dir, tmp_path, monkeypatch) -> None:
    """Q3's first units, planned under an executor of 1 core and one of 16: the same stacks, point for
    point, so no executor can change what a point learns."""
    from experiments import executors

    planned: list[list[tuple]] = []

    def record(self, units, description=""):
        planned.append([(u.key, u.args[4]) for u in units])
        raise _Planned

    monkeypatch.setattr(kit.RunContext, "map", record)
    cfg = PROFILES["smoke"]
    for jobs in (1, 16):
        ctx = kit.RunContext(torch.device("cpu"), 0, data_dir, tmp_path, executor=executors.Local(jobs))
        with pytest.raises(_Planned):
            q3.study(cfg, ctx)
    assert planned[0] == planned[1] and len(planned[0]) > 1


def test_every_run_decays_per_step_to_about_zero_even_in_one_epoch() -> None:
    """A one-epoch rung ends at the peak over the number of steps, not at the peak (the old per-epoch
    schedule ran a one-epoch rung at a constant rate); a longer schedule stopped early ends where the
    schedule was."""
    x, y = _data()
    torch.manual_seed(0)
    stack = stacked.Stack([q3.mlp().to(x.dtype)] * 2)
    opts = stacked.Optimizers(stack, ["sgd", "adam"], [0.1, 1e-3])
    loop = stacked.train_epochs(stack, opts, x, y, BATCH, [torch.Generator().manual_seed(0)], [0.1, 1e-3], 1)
    next(loop)
    steps = N // BATCH
    assert [g["lr"] for g in opts.group] == pytest.approx([0.1 / steps, 1e-3 / steps])
    assert kit.linear_decay(0.3, 3, 30) == pytest.approx(0.27) and kit.linear_decay(0.3, 30, 30) == 0.0


def test_work_is_cut_by_cost_for_the_cores_largest_first() -> None:
    groups = {32: list("abcdefgh"), 128: list("ijkl"), 2048: list("mn")}
    chunks = kit.split(groups, q3.step_cost, units=2, most=64)
    assert sorted(x for c in chunks for x in c) == list("abcdefghijklmn")  # every point once
    assert chunks[0] == list("abcdefgh") or set(chunks[0]) < set("abcdefgh")  # the costliest first
    assert all(len({groups_of(x, groups) for x in c}) == 1 for c in chunks)  # one batch size per stack
    assert [len(c) for c in kit.split({32: list(range(27))}, q3.step_cost, 2, 64)] == [14, 13]
    assert max(len(c) for c in kit.split({32: list(range(27))}, q3.step_cost, 1, 10)) <= 10


def groups_of(x: str, groups: dict[int, list[str]]) -> int:
    return next(b for b, g in groups.items() if x in g)


def test_stacked_evaluation_equals_each_model_evaluated_alone() -> None:
    x, y = _data()
    stack = _stack(["adam"] * 2, [1e-3, 1e-2], [3, 3], x, y, shared=True)
    loss, acc = stacked.evaluate(stack, x, y)
    for k in range(2):
        logits = stack.model(k)(x)
        assert loss[k] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-10)
        assert acc[k] == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_an_epoch_visits_every_example_once_in_batches() -> None:
    """An epoch is a permutation cut into batches: every example once, the last batch the remainder."""
    batches = kit.batches(37, 8, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [8, 8, 8, 8, 5]
    assert sorted(torch.cat(batches).tolist()) == list(range(37))


# ---- successive halving ------------------------------------------------------------------------------
def test_rung_lengths_end_at_the_budget_and_shrink_by_the_factor() -> None:
    assert halving.rung_lengths(10, 3, 3) == [1, 3, 10]
    assert halving.rung_lengths(27, 3, 4) == [1, 3, 9, 27]
    assert halving.rung_lengths(3, 3, 3) == [1, 3]  # rungs of equal length merge
    assert halving.rung_lengths(10, 1, 3) == [10]  # no halving: a plain grid


def test_each_rung_keeps_the_best_fraction_and_retrains_it_longer() -> None:
    """Candidates whose score grows with the epochs at a rate set by their key: every rung keeps the
    ceil(n / 3) best, trains them for the rung's epochs, and the last rung holds the winner."""
    skill = {f"c{i}": i / 10 for i in range(10)}
    calls: list[tuple[int, list[str], int]] = []

    def train(rung: int, candidates: list[tuple], epochs: int) -> pd.DataFrame:
        calls.append((rung, [c[0] for c in candidates], epochs))
        rows = [{"name": c[0], "epoch": epochs, "val_acc": skill[c[0]] * epochs / 10, "val_loss": 1.0}
                for c in candidates]  # fmt: skip
        return pd.DataFrame(rows)

    rows = halving.search([(k,) for k in skill], ["name"], [1, 3, 10], 3, train)
    assert [(r, sorted(names), e) for r, names, e in calls] == [
        (0, sorted(skill), 1),
        (1, ["c6", "c7", "c8", "c9"], 3),
        (2, ["c8", "c9"], 10),
    ]
    assert rows.groupby("rung").size().tolist() == [10, 4, 2]
    assert halving.ranked(rows[rows["rung"] == 2], ["name"]).iloc[0]["name"] == "c9"


def test_ranking_breaks_ties_by_loss_and_puts_nan_losses_last() -> None:
    rows = pd.DataFrame(
        [
            {"name": "a", "epoch": 1, "val_acc": 0.5, "val_loss": math.nan},
            {"name": "b", "epoch": 1, "val_acc": 0.5, "val_loss": 2.0},
            {"name": "c", "epoch": 1, "val_acc": 0.4, "val_loss": 0.1},
        ]
    )
    assert halving.ranked(rows, ["name"])["name"].tolist() == ["b", "a", "c"]
