"""Q1/Q2 convexity checks: closed forms against autograd, the midpoint counter on functions of known
shape, config validation, and real-MNIST smoke runs through the runner, the context layer and the renderer."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from experiments import configs, runner
from experiments import convexity as cx
from experiments import q1 as exp_q1
from experiments import q2 as exp_q2
from report import render
from report.core.config import apply_overrides, profile_config
from report.core.errors import ConfigError, EvidenceError
from report.core.freshness import Request
from report.core.store import Store
from report.provenance import for_print
from report.questions import Results, build
from report.questions import q1 as ctx_q1
from report.questions import q2 as ctx_q2

F64 = torch.float64


def _task(n: int = 40, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small design matrix with a bias column and 0/1 labels that are not balanced."""
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.rand(n, d, generator=g, dtype=F64), torch.ones(n, 1, dtype=F64)], dim=1)
    y = (torch.rand(n, generator=g, dtype=F64) < 0.35).to(F64)
    return x, y


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
def test_ce_hessian_by_autograd_equals_closed_form(scale: float) -> None:
    x, y = _task()
    theta = scale * torch.randn(x.shape[1], generator=torch.Generator().manual_seed(1), dtype=F64)
    h = cx.hessian(lambda t: cx.cross_entropy(x @ t, y).mean(), theta)
    p = torch.sigmoid(x @ theta)
    closed = x.T @ torch.diag(p * (1 - p)) @ x / len(x)
    torch.testing.assert_close(h, closed, rtol=1e-12, atol=1e-15 * float(closed.abs().max()))
    assert float(cx.eigenvalues(h)[0]) >= -1e-12 * float(closed.abs().max())


def test_second_derivatives_in_z_and_the_negative_region_of_mse() -> None:
    z = torch.linspace(-10, 10, 2001, dtype=F64)
    for loss, fn in cx.LOSSES.items():
        for label in (0.0, 1.0):
            y = torch.full_like(z, label)
            torch.testing.assert_close(cx.d2_dz2(fn, z, y), cx.closed_d2(loss, z, y), rtol=1e-10, atol=1e-14)
    assert bool((cx.closed_d2("ce", z, z * 0) > 0).all())
    away = (z.abs() - math.log(2)).abs() > 1e-9  # the sign at exactly ±ln 2 is round-off
    d2_pos, d2_neg = cx.closed_d2("mse", z, z * 0 + 1), cx.closed_d2("mse", z, z * 0)
    assert torch.equal((d2_pos < 0)[away], (z < -math.log(2))[away])
    assert torch.equal((d2_neg < 0)[away], (z > math.log(2))[away])


def test_cross_entropy_is_exact_where_softplus_switches_to_linear() -> None:
    z = torch.tensor([19.0, 20.0, 21.0, 40.0], dtype=F64)
    expected = torch.log1p(torch.exp(-z)) + z  # softplus(z) without any threshold
    torch.testing.assert_close(cx.cross_entropy(z, torch.zeros_like(z)), expected, rtol=1e-15, atol=0)


def _segments(count: int = 200, dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(count, dim, generator=g, dtype=F64), torch.randn(count, dim, generator=g, dtype=F64)


def _midpoint(f, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    return cx.midpoint_test(f(a), f(b), f((a + b) / 2), rtol=1e-9)


def test_midpoint_counter_flags_every_segment_of_a_concave_function() -> None:
    a, b = _segments()
    result = _midpoint(lambda t: -(t**2).sum(-1) + 3.0, a, b)
    assert int(result["violated"].sum()) == len(a)
    torch.testing.assert_close(result["gap"], ((a - b) ** 2).sum(-1) / 4)  # the exact Jensen gap


def test_midpoint_counter_finds_no_violation_for_convex_or_affine_functions() -> None:
    a, b = _segments()
    convex = _midpoint(lambda t: torch.logsumexp(3 * t, dim=-1) + (t**2).sum(-1), a, b)
    assert int(convex["violated"].sum()) == 0 and bool((convex["gap"] < 0).all())
    c = torch.randn(a.shape[1], generator=torch.Generator().manual_seed(4), dtype=F64)
    affine = _midpoint(lambda t: t @ c + 1e3, a, b)  # gap is pure round-off
    assert int(affine["violated"].sum()) == 0
    assert float(affine["gap"].abs().max()) < 1e-9 * 1e3


def test_midpoint_counter_finds_some_violations_of_a_sometimes_concave_function() -> None:
    a, b = _segments()
    result = _midpoint(lambda t: torch.sin(t).sum(-1), a, b)
    assert 0 < int(result["violated"].sum()) < len(a)


def test_two_layer_hessian_at_origin_equals_closed_form_and_is_indefinite() -> None:
    x, y = _task(n=30, d=4)
    hidden = 3
    size = hidden * x.shape[1] + hidden + 1
    for loss in cx.LOSSES:
        h = cx.hessian(
            lambda t, loss=loss: cx.LOSSES[loss](exp_q2.logits(t, x, hidden), y).mean(),
            torch.zeros(size, dtype=F64),
        )
        closed = exp_q2.origin_hessian(loss, x, y, hidden)
        torch.testing.assert_close(h, closed, rtol=0, atol=1e-15)
        g_norm = float(closed[: x.shape[1], hidden * x.shape[1]].norm())
        spectrum = exp_q2.origin_spectrum(g_norm, float(closed[-1, -1]), hidden, x.shape[1])
        expected = torch.tensor(spectrum, dtype=F64)
        torch.testing.assert_close(cx.eigenvalues(h), expected, rtol=0, atol=1e-12)
        assert expected[0] < 0 < expected[-1]
    ce_g = exp_q2.origin_hessian("ce", x, y, hidden)[: x.shape[1], hidden * x.shape[1]]
    mse_g = exp_q2.origin_hessian("mse", x, y, hidden)[: x.shape[1], hidden * x.shape[1]]
    torch.testing.assert_close(mse_g, ce_g / 2)  # ℓ'(0) of MSE is half that of CE


def test_sign_flip_keeps_the_function_and_its_midpoint_is_constant() -> None:
    x, _ = _task(n=25, d=4)
    hidden = 2
    size = hidden * x.shape[1] + hidden + 1
    theta = torch.randn(size, generator=torch.Generator().manual_seed(5), dtype=F64)
    flipped = exp_q2.flip(theta)
    torch.testing.assert_close(exp_q2.logits(flipped, x, hidden), exp_q2.logits(theta, x, hidden))
    mid = exp_q2.logits((theta + flipped) / 2, x, hidden)
    torch.testing.assert_close(mid, torch.full_like(mid, float(theta[-1])))


@pytest.mark.parametrize(
    ("exp", "key", "value"),
    [
        ("q1", "digits", "3"),
        ("q1", "digits", "4,4"),
        ("q1", "pool", "5"),
        ("q2", "scale_min", "50"),
        ("q2", "hidden", "0"),
        ("q2", "surface_points", "40"),
    ],
)
def test_invalid_settings_are_rejected_with_the_setting_named(exp: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{exp}\.{key}"):
        apply_overrides(exp, configs.get(exp).PROFILES["smoke"], {key: value})


# ---- MNIST-format digits: the smoke profile end to end -------------------------------------------


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Store:
    """q1 and q2 run on MNIST-format digits with the smoke profile, stored through the runner."""
    store = Store(tmp_path_factory.mktemp("results"))
    request = Request("smoke", {}, 0, data_dir)
    for planned in runner.plan(["q1", "q2"], request, store):
        with store.lock():
            runner.execute(planned, request, torch.device("cpu"), store, track=lambda it, **_: it, log=print)
    return store


def test_smoke_checks_have_the_expected_signs(smoke_store: Store) -> None:
    r = Results(smoke_store, "smoke")
    tol = r.run("q1").config["eig_tol"]
    q1 = ctx_q1.summarise(r.table("q1", "hessian"), r.table("q1", "segments"), tol, "q1").set_index("loss")
    assert q1.loc["ce", "rel_min_eig"] >= -1e-6 and q1.loc["ce", "violations"] == 0
    assert q1.loc["mse", "rel_min_eig"] < -1e-6 and q1.loc["mse", "violations"] > 0
    q2 = ctx_q2.summarise(r.table("q2", "hessian"), r.table("q2", "segments"), tol, "q2").set_index("loss")
    assert (q2["rel_min_eig"] < -1e-6).all() and (q2["violations"] > 0).all()
    sym = r.table("q2", "symmetry").set_index("loss")
    assert (sym["loss_mid"] > sym["loss_theta"]).all()
    assert (sym["loss_mid"] >= sym["best_constant"] - 1e-12).all()
    assert (r.table("q2", "origin")["min_eig"] < 0).all()


def test_smoke_report_states_answers_from_evidence_and_renders(smoke_store: Store, tmp_path: Path) -> None:
    r = Results(smoke_store, "smoke")
    c1, c2 = ctx_q1.context(r), ctx_q2.context(r)
    assert c1["answer"] == {"letter": "a", "text": "CE"} and c2["answer"] == {"letter": "d", "text": "none"}
    assert len(c1["figures"]) + len(c2["figures"]) >= 3
    page = render.render_html(smoke_store, "smoke", cache_dir=tmp_path / "cache", names=("q1", "q2"))
    assert "Answer: (a) CE." in page and "Answer: (d) none." in page
    assert "sufficient conditions, not necessary ones" in page  # the composition rules
    assert "How this report reads it:" in page  # the interpretation of Q1 is said, not slipped in
    assert "logit is an affine function of its input" in page and "computes an affine function" not in page
    assert "not stationary" in page and "saddles whenever that vector is non-zero" not in page
    for label in (
        "fig:q1-curvature",
        "fig:q1-slices",
        "tab:q1-checks",
        "fig:q2-path",
        "fig:q2-surface",
        "tab:q2-checks",
        "tab:q2-origin",
        "tab:q2-symmetry",
    ):
        assert f'id="{label}"' in page
    assert "©" not in page  # "(c)" must not be typographically replaced
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    assert (  # the smoke profile's reduced checks, against the full profile's, where the counts are
        "This build checks Q1 at a reduced budget: 256 training images instead of 12,000, 8 random points "
        "per loss instead of 200, 400 random segments instead of 20,000, 100 training steps for the trained "
        "point instead of 2,000 and 7×7 pooled pixels instead of 14×14." in text
    )
    assert "This build checks Q2 at a reduced budget: 256 training images instead of 12,000" in text
    assert "2 hidden units instead of 4" in text


def _copy_with(store: Store, root: Path, experiment: str, table: str, change) -> Store:
    """Another store whose ``experiment`` result differs from ``store``'s in one edited table."""
    tables = {name: store.read("smoke", experiment, name) for name in store.tables("smoke", experiment)}
    tables[table] = change(tables[table].copy())
    meta = store.meta("smoke", experiment)
    out = Store(root)
    out.write("smoke", experiment, tables, meta)
    return out


def test_contradicting_evidence_stops_the_build_naming_the_check(smoke_store: Store, tmp_path: Path) -> None:
    def ce_violation(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df.index[df["loss"] == "ce"][0], "violated"] = True
        return df

    bad = _copy_with(smoke_store, tmp_path / "a", "q1", "segments", ce_violation)
    with pytest.raises(EvidenceError, match="Q1 derivation: CE convex") as failed:
        ctx_q1.context(Results(bad, "smoke"))
    assert str(failed.value).endswith("in the stored checks: none")
    with pytest.raises(EvidenceError) as failed:  # the profile's own settings: a rerun, or the code
        build(Results(bad, "smoke"), ("q1",))
    assert str(failed.value).endswith(
        "; rerun it (build.py run q1 --profile smoke --force), or fix the code that stored it"
    )

    # settings of its own (the helper found q1.lr=1e-6 in range, and its evidence failing): said, with a
    # command that runs the profile's values, not "rerun with --force", which repeats them
    meta = bad.meta("smoke", "q1")
    tables = {name: bad.read("smoke", "q1", name) for name in bad.tables("smoke", "q1")}
    own = Store(tmp_path / "own", advice="--set q1.lr=1e-06 --strict-versions --set q2.points=5 --seed 0")
    own.write("smoke", "q1", tables, {**meta, "config": {**meta["config"], "lr": 1e-6}})
    with pytest.raises(EvidenceError) as failed:
        build(Results(own, "smoke"), ("q1",))
    assert str(failed.value).endswith(  # the command drops q1's own settings and the seed, keeps the rest
        "; it ran with settings of its own (lr 1e-06 → 0.05: its value → the profile's), which need not show "
        "it: drop them (--set, --seed, REPORT_SEED, report.toml) or choose others, and run build.py run q1 "
        "--profile smoke --force --strict-versions --set q2.points=5"
    )
    quick = {**meta, "config": dataclasses.asdict(profile_config("q1", "quick")), "stand_in": "quick"}
    stand_in = Store(
        tmp_path / "stand-in"
    )  # a quick run in the study's place: its settings are its profile's
    stand_in.write("smoke", "q1", tables, quick)
    with pytest.raises(EvidenceError) as failed:
        build(Results(stand_in, "smoke"), ("q1",))
    assert "settings of its own" not in str(failed.value) and "; rerun it (" in str(failed.value)

    def no_bump(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(loss_mid=df["loss_theta"] / 2)

    bad = _copy_with(smoke_store, tmp_path / "b", "q2", "symmetry", no_bump)
    with pytest.raises(EvidenceError, match="midpoint of θ and θ′ exceeds"):
        ctx_q2.context(Results(bad, "smoke"))

    def hidden_by_tolerance(df: pd.DataFrame) -> pd.DataFrame:  # q2.eig_tol=0.8 counted 0 and 1 of 2 and 3
        return df.assign(negative=0, positive=1)

    bad = _copy_with(smoke_store, tmp_path / "c", "q2", "origin", hidden_by_tolerance)
    with pytest.raises(
        EvidenceError, match="0 negative and 1 positive beyond the run's eig_tol, are the closed"
    ):
        ctx_q2.context(Results(bad, "smoke"))


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("scale", [0.0, 0.3, 3.0])
def test_closed_form_hessians_equal_autograd(loss, scale):
    """The closed forms Q1 and Q2 use at every point equal autograd's whole Hessian, entry by entry
    (the runs check them by Hessian-vector products, ``test_the_hvp_check_catches_a_wrong_hessian``)."""
    x, y = _task()
    gen = torch.Generator().manual_seed(1)
    hidden = 3
    models = {
        "q1": (lambda t: x @ t, lambda t: exp_q1.exact_hessian(loss, t, x, y), x.shape[1]),
        "q2": (
            lambda t: exp_q2.logits(t, x, hidden),
            lambda t: exp_q2.exact_hessian(loss, t, x, y, hidden),
            hidden * x.shape[1] + hidden + 1,
        ),
    }
    for logits, exact, size in models.values():
        theta = scale * torch.randn(size, generator=gen, dtype=torch.float64)
        autograd = cx.hessian(lambda t, logits=logits: cx.LOSSES[loss](logits(t), y).mean(-1), theta)
        closed = exact(theta)
        assert (closed - autograd).abs().max() <= 1e-13 * autograd.abs().max()
    if scale == 0.0:  # at the origin Q2's is the report's origin_hessian
        assert torch.allclose(closed, exp_q2.origin_hessian(loss, x, y, hidden), rtol=0, atol=1e-16)


def test_the_hvp_check_catches_a_wrong_hessian():
    """The run's check of every closed-form Hessian: round-off for the right matrix, and far above the
    tolerance for one whose single off-diagonal pair is off by 1% of the largest entry."""
    x, y = _task()
    gen = torch.Generator().manual_seed(1)
    hidden = 3
    theta = torch.randn(hidden * x.shape[1] + hidden + 1, generator=gen, dtype=torch.float64)
    f = lambda t: cx.squared_error(exp_q2.logits(t, x, hidden), y).mean(-1)  # noqa: E731
    h = exp_q2.exact_hessian("mse", theta, x, y, hidden)
    assert cx.hvp_err(f, theta, h, torch.Generator().manual_seed(0)) <= 1e-13
    wrong = h.clone()
    wrong[3, 20] += 0.01 * h.abs().max()
    wrong[20, 3] = wrong[3, 20]
    assert cx.hvp_err(f, theta, wrong, torch.Generator().manual_seed(0)) > 1e3 * cx.EXACT_TOL


def test_the_first_exact_hessian_shows_no_warning_about_torchs_internals():
    """torch loads its forward-mode rules on first use through the deprecated ``torch.jit.script``; a
    fresh process (where that first use happens) must not show the FutureWarning to the user."""
    import subprocess
    import sys

    code = (
        "import torch; from experiments.convexity import hessian; "
        "print(hessian(lambda t: (t ** 3).sum(), torch.ones(2, dtype=torch.float64)).trace().item())"
    )
    proc = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "12.0", proc.stderr[-2000:]


def test_q1_results_sentence_follows_the_signs_it_reports(smoke_store: Store, tmp_path: Path) -> None:
    """With one pooled feature the CE Hessian is positive definite, yet the text called its positive smallest
    eigenvalue "the most negative" and round-off; a midpoint excess of +2.2e-16 read "(negative: below the
    chord)"; and rtol=1e-17 was "a margin above float64 round-off"."""

    def positive(df: pd.DataFrame) -> pd.DataFrame:
        ce = df["loss"] == "ce"
        df.loc[ce, "rel_min_eig"] = df.loc[ce, "rel_min_eig"].abs() + 7e-4
        df.loc[ce, "min_eig"] = df.loc[ce, "min_eig"].abs() + 1e-6
        return df

    def just_above(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df.index[df["loss"] == "ce"][0], "gap"] = 2.2e-16
        return df

    store = _copy_with(smoke_store, tmp_path / "a", "q1", "hessian", positive)
    store = _copy_with(store, tmp_path / "b", "q1", "segments", just_above)
    meta = store.meta("smoke", "q1")
    tables = {name: store.read("smoke", "q1", name) for name in store.tables("smoke", "q1")}
    loose = Store(tmp_path / "c")
    loose.write("smoke", "q1", tables, {**meta, "config": {**meta["config"], "rtol": 1e-17}})
    page = render.render_html(loose, "smoke", cache_dir=tmp_path / "cache", names=("q1",))
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    assert "For CE the smallest relative eigenvalue is 7" in text and "positive at every point" in text
    assert "the most negative relative eigenvalue" not in text
    assert "(above the chord, by less than the margin)" in text and "below the chord" not in text
    assert "a margin near float64 round-off" in text and "a margin above float64 round-off" not in text
    # a sample of lower rank: its smallest eigenvalue is 0, and a positive one is round-off, not definiteness
    singular = _copy_with(loose, tmp_path / "d", "q1", "task", lambda df: df.assign(rank=df["rank"] - 1))
    page = render.render_html(singular, "smoke", cache_dir=tmp_path / "cache", names=("q1",))
    text = " ".join(re.sub(r"<[^>]+>", " ", for_print(page)).split())
    assert (
        "as for a Hessian that is exactly positive semidefinite, and in this sample exactly singular" in text
    )
    assert "positive definite" not in text
