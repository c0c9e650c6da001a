"""Q3's stacked training and successive halving: the stacked optimizer step is torch.optim's step, a
stacked copy follows the trajectory it would follow alone (every optimizer, shared or own data order,
constant or decaying rate), a diverging copy leaves the others alone, and each rung keeps the best
fraction of its candidates."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from experiments import halving, kit, q3, stacked
from experiments.configs.q3 import MOMENTUM, PROFILES
from report.core import selection

N, BATCH, STEPS = 256, 32, 8  # 8 optimizer steps: several updates of every state buffer
# How far (relative) a stacked point may end from the same point alone, in float64. The optimizer step is
# torch.optim's to a few ulps (test_the_stacked_step_is_torch_optims_step); the rest is the round-off of
# batched against unbatched products in the forward and backward passes: ~5e-16 with SGD and momentum,
# which pass it on, up to ~5e-12 with Adam, which turns round-off in near-zero gradients into rate-sized
# steps (measured over seeds 0-3).
TOL = {"sgd": 1e-13, "momentum": 1e-13, "adam": 1e-10}


def _data(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels, in float64 by default: in exact arithmetic a stacked point and the same
    point alone are equal, and float64 shows it (to ``TOL``) where float32 round-off, which Adam turns into
    rate-sized steps for near-zero gradients, would blur it."""
    gen = torch.Generator().manual_seed(0)
    return torch.rand(N, 1, 28, 28, generator=gen).to(dtype), torch.randint(0, 10, (N,), generator=gen)


def _optimizer(name: str, params: list[torch.Tensor], lr: float, **opt: object) -> torch.optim.Optimizer:
    """The stock ``torch.optim`` optimizer that ``name`` stands for."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **opt)
    # the coefficient the report names (experiments/configs/q3.py): stacked copies must train with it
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM if name == "momentum" else 0.0, **opt)


def _alone(
    name: str, lr: float, seed: int, x: torch.Tensor, y: torch.Tensor, length: float = math.inf, **opt: object
) -> torch.nn.Module:
    """The reference: one model, one stock ``torch.optim`` optimizer, the same data order, its rate set
    before every step from the schedule (a constant one by default)."""
    torch.manual_seed(seed)
    model = q3.mlp().to(x.dtype)
    optim = _optimizer(name, list(model.parameters()), lr, **opt)
    for j, idx in enumerate(kit.batches(N, BATCH, x.device, torch.Generator().manual_seed(seed))):
        optim.param_groups[0]["lr"] = kit.linear_decay(lr, j / STEPS, length)
        optim.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optim.step()
    return model


def _stack(
    names: list[str], lrs: list[float], seeds: list[int], x, y, shared: bool, length: float = math.inf
) -> stacked.Stack:
    """A stack of one point per name, trained for one epoch of a schedule of ``length`` epochs."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(q3.mlp().to(x.dtype))
    stack = stacked.Stack(models)
    opts = stacked.Optimizers(stack, names, lrs)
    gens = [torch.Generator().manual_seed(s) for s in (seeds[:1] if shared else seeds)]
    next(stacked.train_epochs(stack, opts, x, y, BATCH, gens, lrs, length))
    return stack


@torch.no_grad()
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
        assert _diff(stack.model(k), _alone(name, lr, 1, x, y, fused=True)) <= TOL[name]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("impl", ["for-loop", "foreach", "fused"])
def test_the_stacked_step_is_torch_optims_step(impl: str, dtype: torch.dtype) -> None:
    """Given the same gradients (of every size, so Adam's eps counts) and a rate that changes every step,
    different per copy, each copy of a mixed stack (runs of one optimizer, one name twice) takes the step
    its own stock optimizer takes, in float32 as in float64. SGD and momentum: bit for bit with
    torch.optim's for-loop and foreach code; its fused CPU kernel rounds a few elements differently (it
    contracts a product and a sum into one rounding in some code paths, not in others). Adam: torch's
    fused kernel at rate 1, scaled by each copy's rate after, rounds the step size into the update once
    more. Those two: to a few ulps (2 measured, 8 allowed)."""
    names = ["adam", "sgd", "sgd", "momentum", "adam", "adam", "momentum"]
    peaks = [1e-3, 0.1, 0.3, 0.05, 3e-2, 1e-4, 1.0]
    torch.manual_seed(0)
    small = [
        torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)) for _ in names
    ]
    stack = stacked.Stack([m.to(dtype) for m in small])
    opts = stacked.Optimizers(stack, names, peaks)
    alone = [[p[k].detach().clone().requires_grad_(True) for p in stack.params] for k in range(len(names))]
    how = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    optims = [_optimizer(name, ps, lr, **how) for name, ps, lr in zip(names, alone, peaks, strict=True)]
    for step in range(12):
        grads = [torch.randn(p.shape, dtype=dtype) * 10.0 ** -torch.randint(9, p.shape) for p in stack.params]
        for p, g in zip(stack.params, grads, strict=True):
            p.grad = g.clone()
        opts.set_lrs(torch.tensor(peaks, dtype=torch.float64) * kit.linear_decay(1.0, step / 4, 4))
        opts.step()
        for k, (optim, peak) in enumerate(zip(optims, peaks, strict=True)):
            for q, g in zip(alone[k], grads, strict=True):
                q.grad = g[k].clone()
            optim.param_groups[0]["lr"] = kit.linear_decay(peak, step / 4, 4)
            optim.step()
    for k, ps in enumerate(alone):
        tol = 8 * torch.finfo(dtype).eps if impl == "fused" or names[k] == "adam" else 0.0
        for p, q in zip(stack.params, ps, strict=True):
            mine, torchs = p[k].detach(), q.detach()
            assert float((mine - torchs).abs().max() / torchs.abs().max()) <= tol, names[k]


def test_stacked_points_follow_a_rate_that_decays_every_step() -> None:
    """One epoch of a two-epoch schedule: every step has a new rate, each point's from its own peak."""
    x, y = _data()
    names, lrs = ["adam", "sgd", "momentum", "sgd"], [3e-3, 0.3, 0.05, 0.1]
    stack = _stack(names, lrs, [4] * 4, x, y, shared=True, length=2)
    for k, (name, lr) in enumerate(zip(names, lrs, strict=True)):
        assert _diff(stack.model(k), _alone(name, lr, 4, x, y, length=2, fused=True)) <= TOL[name]
    assert _diff(stack.model(3), _alone("sgd", 0.1, 4, x, y, fused=True)) > 1e-3  # the schedule counts


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
        assert _diff(stack.model(k), _alone(name, lr, 2, x, y, fused=True)) <= TOL[name]


def test_copies_with_their_own_seed_and_data_order_follow_their_trajectories() -> None:
    """The final models: each copy starts from its seed's weights and draws its own batches."""
    x, y = _data()
    stack = _stack(["sgd"] * 3, [0.1] * 3, [0, 1, 2], x, y, shared=False)
    for k in range(3):
        assert _diff(stack.model(k), _alone("sgd", 0.1, k, x, y, fused=True)) <= TOL["sgd"]
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
        assert _diff(stack.model(k), _alone("sgd", lr, 1, x, y, fused=True)) <= TOL["sgd"]
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
    assert opts.lr.tolist() == pytest.approx([0.1 / steps, 1e-3 / steps])
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
    ceil(n / 3) best and those within the tie band of the last of them, trains them for the rung's
    epochs, and the last rung holds the winner."""
    skill = {f"c{i}": i / 10 for i in range(10)}
    calls: list[tuple[int, list[str], int]] = []

    def train(rung: int, candidates: list[tuple], epochs: int) -> pd.DataFrame:
        calls.append((rung, [c[0] for c in candidates], epochs))
        rows = [{"name": c[0], "epoch": epochs, "val_acc": skill[c[0]] * epochs / 10, "val_loss": 1.0}
                for c in candidates]  # fmt: skip
        return pd.DataFrame(rows)

    separated = 10**9  # validation images: no two scores here are within a tie band
    rows = halving.search([(k,) for k in skill], ["name"], [1, 3, 10], 3, separated, train)
    assert [(r, sorted(names), e) for r, names, e in calls] == [
        (0, sorted(skill), 1),
        (1, ["c6", "c7", "c8", "c9"], 3),
        (2, ["c8", "c9"], 10),
    ]
    assert rows.groupby("rung").size().tolist() == [10, 4, 2]
    assert selection.ranked(rows[rows["rung"] == 2], ["name"]).iloc[0]["name"] == "c9"
    calls.clear()  # on 500 images, c5 (0.05 after 1 epoch) is within the tie band of c6 (0.06): it goes on
    halving.search([(k,) for k in skill], ["name"], [1, 3, 10], 3, 500, train)
    assert sorted(calls[1][1]) == ["c3", "c4", "c5", "c6", "c7", "c8", "c9"]


def test_ranking_breaks_ties_by_loss_and_puts_nan_losses_last() -> None:
    rows = pd.DataFrame(
        [
            {"name": "a", "epoch": 1, "val_acc": 0.5, "val_loss": math.nan},
            {"name": "b", "epoch": 1, "val_acc": 0.5, "val_loss": 2.0},
            {"name": "c", "epoch": 1, "val_acc": 0.4, "val_loss": 0.1},
        ]
    )
    assert selection.ranked(rows, ["name"])["name"].tolist() == ["b", "a", "c"]


def test_training_treats_subnormals_as_zero_and_then_restores_torchs_default() -> None:
    """Adam's moments decay into the subnormal range, where x86 CPUs are many times slower: inside a
    training epoch they count as zero; after it, arithmetic is IEEE's again."""
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39])  # a float32 subnormal
    with stacked.no_subnormals(torch.device("cpu")):
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) > 0.0
    x, y = _data(torch.float32)
    _stack(["adam"], [1e-3], [0], x, y, shared=True)
    assert float(tiny * 1.0) > 0.0
