"""Question 4: model registry, SVHN loading, augmentation, the training pipeline and the ranking logic."""

from __future__ import annotations

import dataclasses
import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch

from experiments import data, datasets, kit, models, q4
from experiments.configs.q4 import PROFILES, Config
from experiments.kit import RunContext
from report import format as fmt
from report import render
from report.core.config import apply_overrides
from report.core.errors import ConfigError, EvidenceError
from report.core.store import Store
from report.format import join_and
from report.questions import Results, stats
from report.questions import q4 as ctx4
from report.questions import q4_claims as claims
from report.render import render_html


def write_svhn(root: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """SVHN's real .mat layout: X is 32x32x3xN uint8, y is Nx1 with 10 standing for the digit 0."""
    rng = np.random.default_rng(0)
    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        scipy.io.savemat(root / "SVHN" / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = x
    return out


def test_svhn_loader_maps_label_10_to_0_and_yields_nchw(tmp_path: Path) -> None:
    raw = write_svhn(tmp_path, 20, 10)
    x, y = data.load("svhn", tmp_path, train=True)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert y.tolist() == [(i % 10 + 1) % 10 for i in range(20)]  # stored 10 -> 0, 1..9 unchanged
    assert torch.equal(x[3], torch.from_numpy(raw["train"][:, :, :, 3]).permute(2, 0, 1))


@pytest.mark.parametrize("name", models.NAMES)
def test_every_model_maps_images_to_logits(name: str) -> None:
    model = models.create(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert models.create(name, num_classes=7).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_parameter_counts_and_stems_match_the_adapted_architectures() -> None:
    with torch.device("meta"):
        counts = {n: sum(p.numel() for p in models.create(n).parameters()) for n in models.NAMES}
        r18 = models.create("resnet18")
    assert counts["lenet5"] == 62_006  # 456 + 2416 + 48120 + 10164 + 850, counted by hand
    for name, expected in (
        ("resnet18", 11.17e6),
        ("resnet50", 23.52e6),
        ("resnet101", 42.51e6),
        ("vgg", 14.99e6),
        ("alexnet", 28.71e6),
    ):
        assert abs(counts[name] / expected - 1) < 0.01, name
    assert r18.conv1.kernel_size == (3, 3) and r18.conv1.stride == (1, 1)
    assert isinstance(r18.maxpool, torch.nn.Identity)
    assert all(models.spec(n).adaptation for n in models.NAMES)


def test_flop_count_matches_a_hand_count_for_lenet5() -> None:
    conv = 28 * 28 * 6 * 3 * 25 + 10 * 10 * 16 * 6 * 25
    fc = 400 * 120 + 120 * 84 + 84 * 10
    assert q4.flops_per_image("lenet5", 10) == 2 * (conv + fc)  # a multiply-add is two FLOPs
    assert (
        q4.flops_per_image("resnet101", 10)
        > q4.flops_per_image("resnet50", 10)
        > q4.flops_per_image("resnet18", 10)
    )


def test_augment_translates_within_pad_and_flips_only_when_asked() -> None:
    torch.manual_seed(0)
    x = torch.zeros(256, 3, 32, 32, dtype=torch.uint8)
    x[:, :, 10, 5] = 255  # one bright pixel left of centre
    out = q4.augment(x, pad=2, flip=False)
    where = (out[:, 0] == 255).nonzero()
    assert len(where) == 256  # the pixel survives in every image: a shift of at most 2 never crops it
    assert where[:, 1].sub(10).abs().max() == 2 and where[:, 2].sub(5).abs().max() == 2
    assert where[:, 2].max() < 16  # never mirrored to the right half
    flipped = q4.augment(x, pad=0, flip=True)
    mirrored = (flipped[:, 0, 10, 26] == 255).float().mean()
    assert 0.3 < mirrored < 0.7 and torch.equal(flipped.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert q4.AUGMENT["cifar10"][1] and not any(q4.AUGMENT[d][1] for d in ("svhn", "mnist", "fashion-mnist"))


def test_one_cycle_schedule_warms_up_then_decays_to_zero() -> None:
    f = [q4.lr_factor(i, 100, 0.2) for i in range(100)]
    assert f[19] == 1.0 and max(f) == 1.0 and f[0] == pytest.approx(0.05)
    assert all(a <= b for a, b in zip(f[:20], f[1:20], strict=False))
    assert all(a >= b for a, b in zip(f[19:], f[20:], strict=False)) and f[-1] == pytest.approx(0.0125)


def test_config_rejects_unknown_models_and_batches_larger_than_the_subset() -> None:
    with pytest.raises(ConfigError, match="unknown foo"):
        apply_overrides("q4", PROFILES["smoke"], {"models": "lenet5,foo"})
    with pytest.raises(ConfigError, match="smaller than one batch"):
        apply_overrides("q4", PROFILES["smoke"], {"batch_size": "64"})
    assert apply_overrides("q4", PROFILES["full"], {"dataset": "fashion-mnist"}).dataset == "fashion-mnist"


# ---- the context layer on synthetic stored results ------------------------------------------------
TITLES = {n: models.spec(n).title for n in models.NAMES}
FLOPS = {
    "lenet5": 1.3e6,
    "alexnet": 4.0e8,
    "vgg": 6.3e8,
    "resnet18": 1.1e9,
    "resnet50": 2.6e9,
    "resnet101": 5.0e9,
}


def synthetic_tables(
    accs: dict[str, list[float]], n_test: int = 1000, dataset: str = "svhn", train_used: int = 68_257
) -> dict[str, pd.DataFrame]:
    """Stored tables for given per-seed test accuracies; confusion matrices and per-image answers agree
    with the accuracies (within each class, the first images are the ones classified correctly)."""
    results, curves, confusion, answers = [], [], [], []
    for model, seeds in accs.items():
        for seed, acc in enumerate(seeds):
            hits = round(acc * n_test)
            results.append(
                {
                    "model": model,
                    "seed": seed,
                    "test_acc": hits / n_test,
                    "val_acc": acc,
                    "train_time_s": 10.0 * FLOPS[model] / 1e9 + 1,
                    "throughput": 1e12 / FLOPS[model],
                    "peak_mem_bytes": float("nan"),
                }
            )
            curves += [
                {"model": model, "seed": seed, "epoch": e, "train_loss": 2.0 / e, "val_acc": acc * e / 3}
                for e in (1, 2, 3)
            ]
            per_class = np.full(10, n_test // 10)
            right = np.full(10, hits // 10) + (np.arange(10) < hits % 10)
            answers += [
                {"model": model, "seed": seed, "image": t * per_class[t] + j, "correct": bool(j < right[t])}
                for t in range(10)
                for j in range(per_class[t])
            ]
            for t in range(10):
                for p in range(10):
                    count = right[t] if p == t else (per_class[t] - right[t] if p == (t + 1) % 10 else 0)
                    confusion.append(
                        {
                            "model": model,
                            "seed": seed,
                            "true": t,
                            "pred": p,
                            "count": int(count),
                            "true_name": str(t),
                            "pred_name": str(p),
                        }
                    )
    names = list(accs)
    return {
        "models": pd.DataFrame(
            {
                "model": names,
                "title": [TITLES[m] for m in names],
                "adaptation": ["adapted"] * len(names),
                "params": [int(FLOPS[m] / 100) for m in names],
                "flops": [int(FLOPS[m]) for m in names],
            }
        ),
        "results": pd.DataFrame(results),
        "curves": pd.DataFrame(curves),
        "confusion": pd.DataFrame(confusion),
        "answers": pd.DataFrame(answers),
        "setup": pd.DataFrame(
            [
                {
                    "dataset": dataset,
                    "dataset_title": datasets.layout(dataset).title,
                    "crop_pad": 4,
                    "hflip": False,
                    "mixed_precision": "none",
                    "channels_last": False,
                    "mean": [0.4] * 3,
                    "std": [0.2] * 3,
                }
            ]
        ),
        "splits": pd.DataFrame(
            {
                "split": ["train", "val", "test"],
                "used": [train_used, 5000, n_test],
                "available": [68_257, 5000, n_test],
            }
        ),
    }


def stored(
    tmp_path: Path,
    tables: dict[str, pd.DataFrame],
    seeds: int,
    cfg: Config | None = None,
    device: str = "cpu",
) -> Results:
    """The tables written to a real store, as the runner would, and opened for the report."""
    store = Store(tmp_path / "results")
    config = dataclasses.asdict(dataclasses.replace(cfg or PROFILES["full"], seeds=seeds))
    meta = {
        "run_id": "t",
        "experiment": "q4",
        "profile": "full",
        "finished": "2026-01-01T00:00:00+00:00",
        "device": device,
        "device_name": "test device",
        "duration_s": 1.0,
        "git_commit": "none",
        "git_dirty": False,
        "config": config,
        "versions": {},
        "fingerprint": {},
    }
    store.write("full", "q4", tables, meta)
    return Results(store, "full")


TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture(scope="module")
def words() -> Any:
    """The macros of templates/q4.words.j2, loaded as the renderer loads them."""
    return render.words("q4")


def say(macro: Any, claim: dict[str, Any]) -> str:
    """A macro's sentence as the reader sees it: Markdown reflows line breaks inside a paragraph."""
    return " ".join(str(macro(claim)).split())


def summary(accs: dict[str, list[float]]) -> pd.DataFrame:
    """The per-model summary the claims are computed from, for given per-seed test accuracies."""
    tables = synthetic_tables(accs)
    return ctx4.summarise(tables["results"], tables["models"])


def test_clear_winner_is_named_and_depth_verdict_follows_the_numbers(tmp_path: Path, words: Any) -> None:
    accs = {
        "lenet5": [0.900, 0.902, 0.898],
        "alexnet": [0.930, 0.931, 0.929],
        "vgg": [0.950, 0.951, 0.949],
        "resnet18": [0.960, 0.961, 0.959],
        "resnet50": [0.965, 0.966, 0.964],
        "resnet101": [0.970, 0.971, 0.969],
    }
    c = ctx4.context(stored(tmp_path, synthetic_tables(accs), seeds=3))
    assert c["ranking"] == ["ResNet-101", "ResNet-50", "ResNet-18", "VGG-16-BN", "AlexNet", "LeNet-5"]
    assert c["best"]["tied"] == [] and c["best"]["case"] == "clear"
    assert say(words.best, c["best"]) == (
        "ResNet-101 has the highest mean test accuracy, and its lead over every other model is significant "
        "(Welch's t-test, Holm-corrected at the 5% level)."
    )
    assert c["best"]["runner_up"]["abs_pp"] == pytest.approx(0.5)
    assert c["depth"]["case"] == "helped"
    assert (c["depth"]["shallow"], c["depth"]["deepest"]) == ("ResNet-18", "ResNet-101")
    assert say(words.depth, c["depth"]) == (
        "More depth helped: ResNet-101 is significantly more accurate than ResNet-18 "
        "(Welch's t-test, Holm-corrected at the 5% level)."
    )
    assert c["lenet"]["case"] == "below"
    assert all(g["verdict"] == claims.ABOVE for g in c["lenet"]["gaps"])
    assert (
        say(words.lenet, c["lenet"])
        == "LeNet-5 is significantly less accurate than every ResNet (Welch's t-test, Holm-corrected at the "
        "5% level)."
    )
    assert c["pareto"] == ["LeNet-5", "AlexNet", "VGG-16-BN", "ResNet-18", "ResNet-50", "ResNet-101"]
    assert not c["substitute"] and not c["subset"] and c["dataset"] == "SVHN"


def test_gaps_the_test_does_not_separate_are_reported_as_ties(tmp_path: Path, words: Any) -> None:
    accs = {
        "lenet5": [0.955, 0.950, 0.945],
        "resnet18": [0.960, 0.950, 0.940],
        "resnet50": [0.958, 0.948, 0.952],
        "resnet101": [0.949, 0.953, 0.958],
    }
    c = ctx4.context(stored(tmp_path, synthetic_tables(accs), seeds=3))
    assert c["best"]["title"] == "ResNet-101" and c["best"]["case"] == "tied"
    assert set(c["best"]["tied"]) == {"LeNet-5", "ResNet-18", "ResNet-50"}
    tied = join_and(c["best"]["tied"])
    assert say(words.best, c["best"]) == (
        f"ResNet-101 has the highest mean test accuracy, but {tied} are not significantly below it "
        "(Welch's t-test, Holm-corrected at the 5% level), so this run does not separate them."
    )
    assert all(s["verdict"] == claims.WITHIN for s in c["depth"]["steps"])
    assert c["depth"]["case"] == "no_effect"
    assert say(words.depth, c["depth"]) == (
        "No gap among the ResNets is significant (Welch's t-test, Holm-corrected at the 5% level): this run "
        "shows no effect of depth, which with so few seeds is not evidence that there is none."
    )
    assert c["lenet"]["case"] == "within"
    assert (
        say(words.lenet, c["lenet"])
        == "No gap between LeNet-5 and a ResNet is significant (Welch's t-test, Holm-corrected at the 5% "
        "level)."
    )


def test_single_seed_says_noise_is_unmeasured_and_flags_subset_and_substitute(
    tmp_path: Path, words: Any
) -> None:
    accs = {"lenet5": [0.91], "resnet18": [0.90], "resnet101": [0.92]}
    tables = synthetic_tables(accs, n_test=200, dataset="fashion-mnist", train_used=256)
    c = ctx4.context(stored(tmp_path, tables, seeds=1))
    assert c["single_seed"] and c["best"]["runner_up"]["p_adj"] is None
    assert c["best"]["case"] == "unmeasured" and c["best"]["runner_up"]["b"] == "LeNet-5"
    assert say(words.best, c["best"]) == (
        "ResNet-101 has the highest test accuracy in this single-seed run; how much of its lead over "
        "LeNet-5 is seed-to-seed variation is not measured. Even on the same test images the lead is within "
        "what test-set sampling produces (McNemar's exact test, Holm-corrected at the 5% level)."
    )
    assert c["depth"]["case"] == "unmeasured" and c["depth"]["order"] == ["ResNet-101", "ResNet-18"]
    assert say(words.depth, c["depth"]) == (
        "With one seed the noise of these gaps is unmeasured, so the ordering of the ResNets by point "
        "estimate (ResNet-101 > ResNet-18) is not evidence that depth helped or hurt."
    )
    assert c["lenet"]["case"] == "unmeasured" and c["lenet"]["higher"] == ["ResNet-101"]
    assert say(words.lenet, c["lenet"]) == (
        "In this single-seed run ResNet-101 scored above LeNet-5; seed noise is unmeasured, so the "
        "ordering is not established."
    )
    assert c["substitute"] and c["subset"] and c["dataset"] == "Fashion-MNIST"
    assert [s["verdict"] for s in c["depth"]["steps"]] == [claims.UNMEASURED]


def test_a_single_model_has_no_ranking_and_no_depth_or_lenet_claim(words: Any) -> None:
    s = summary({"resnet18": [0.90, 0.91]})
    best = claims.best_claim(s)
    assert best["case"] == "only" and best["runner_up"] is None and best["tied"] == []
    assert (
        say(words.best, best) == "ResNet-18 is the only model in this run, so there is no ranking to report."
    )
    assert claims.depth_claim(s) is None and claims.lenet_claim(s) is None


def test_one_tied_model_is_named_with_the_best_as_the_two(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.800, 0.801, 0.799],
            "resnet18": [0.950, 0.960, 0.940],
            "resnet50": [0.955, 0.965, 0.945],
        }
    )
    best = claims.best_claim(s)
    assert best["title"] == "ResNet-50" and best["case"] == "tied" and best["tied"] == ["ResNet-18"]
    assert say(words.best, best) == (
        "ResNet-50 has the highest mean test accuracy, but ResNet-18 is not significantly below it "
        "(Welch's t-test, Holm-corrected at the 5% level), so this run does not separate the two."
    )


def test_depth_that_hurts_and_lenet_above_every_resnet(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.970, 0.971, 0.969],
            "resnet18": [0.960, 0.961, 0.959],
            "resnet50": [0.950, 0.951, 0.949],
            "resnet101": [0.940, 0.941, 0.939],
        }
    )
    depth = claims.depth_claim(s)
    assert [st["verdict"] for st in depth["steps"]] == [claims.BELOW] * 3 and depth["case"] == "hurt"
    assert say(words.depth, depth) == (
        "More depth hurt under this budget: ResNet-101 is significantly less accurate than ResNet-18 "
        "(Welch's t-test, Holm-corrected at the 5% level)."
    )
    lenet = claims.lenet_claim(s)
    assert all(g["verdict"] == claims.BELOW for g in lenet["gaps"]) and lenet["case"] == "above"
    assert (
        say(words.lenet, lenet)
        == "LeNet-5 is significantly more accurate than every ResNet (Welch's t-test, Holm-corrected at the "
        "5% level)."
    )
    best = claims.best_claim(s)
    assert best["case"] == "clear" and best["title"] == "LeNet-5"


def test_mixed_depth_steps_and_mixed_lenet_standing_are_spelled_out(words: Any) -> None:
    s = summary(
        {
            "lenet5": [0.953, 0.954, 0.952],
            "resnet18": [0.950, 0.951, 0.949],
            "resnet50": [0.960, 0.961, 0.959],
            "resnet101": [0.948, 0.950, 0.952],
        }
    )
    depth = claims.depth_claim(s)
    assert [st["verdict"] for st in depth["steps"]] == [claims.ABOVE, claims.BELOW, claims.WITHIN]
    assert depth["case"] == "mixed"
    assert say(words.depth, depth) == (
        "The gap between ResNet-101 and ResNet-18 is not significant, although an intermediate step is "
        "(Welch's t-test, Holm-corrected at the 5% level); depth had no consistent effect here."
    )
    lenet = claims.lenet_claim(s)
    assert [g["verdict"] for g in lenet["gaps"]] == [claims.BELOW, claims.ABOVE, claims.WITHIN]
    assert [g["side"] for g in lenet["gaps"]] == ["below", "above", "within"] and lenet["case"] == "mixed"
    assert say(words.lenet, lenet) == (
        "LeNet-5's standing against the ResNets is mixed: ResNet-18 is significantly below it; ResNet-50 is "
        "significantly above it; ResNet-101 is not significantly different from it."
    )


def test_single_seed_lenet_wording_lists_every_resnet_above_it_or_none(words: Any) -> None:
    s = summary({"lenet5": [0.90], "resnet18": [0.95], "resnet50": [0.92], "resnet101": [0.93]})
    lenet = claims.lenet_claim(s)
    assert lenet["case"] == "unmeasured" and lenet["higher"] == ["ResNet-18", "ResNet-50", "ResNet-101"]
    assert say(words.lenet, lenet) == (
        "In this single-seed run ResNet-18, ResNet-50 and ResNet-101 scored above LeNet-5; seed noise is "
        "unmeasured, so the ordering is not established."
    )
    s = summary({"lenet5": [0.95], "resnet18": [0.90], "resnet50": [0.91]})
    lenet = claims.lenet_claim(s)
    assert lenet["case"] == "unmeasured" and lenet["higher"] == []
    assert say(words.lenet, lenet) == (
        "In this single-seed run no ResNet scored above LeNet-5; seed noise is unmeasured, so the ordering "
        "is not established."
    )
    best = claims.best_claim(s)
    assert best["case"] == "unmeasured" and best["runner_up"]["b"] == "ResNet-50"
    assert say(words.best, best) == (
        "LeNet-5 has the highest test accuracy in this single-seed run; how much of its lead over "
        "ResNet-50 is seed-to-seed variation is not measured."
    )


def test_inconsistent_evidence_stops_the_report(tmp_path: Path) -> None:
    tables = synthetic_tables({"lenet5": [0.9, 0.91], "resnet18": [0.95, 0.96]})
    tables["results"].loc[0, "test_acc"] = 0.99  # disagrees with its confusion matrix
    with pytest.raises(EvidenceError, match="diagonals"):
        ctx4.context(stored(tmp_path, tables, seeds=2))


def rendered(results: Results) -> tuple[str, str]:
    """Question 4 through the report's real renderer: the HTML page and its visible text."""
    page = render_html(results.store, results.profile, names=("q4",))
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(svg|style)\b.*?</\1>", "", page, flags=re.S))
    return page, " ".join(html.unescape(visible).split())


def test_adaptations_say_what_each_block_starts_as_and_what_was_replaced() -> None:
    resnet = models.spec("resnet18").adaptation
    assert "projection shortcut" in resnet and "every block starts as the identity" not in resnet
    assert "unchanged classifier" not in models.spec("alexnet").adaptation
    assert "classifier's first layer replaced" in models.spec("alexnet").adaptation
    assert len({models.spec(m).adaptation for m in ("resnet18", "resnet50", "resnet101")}) == 3
    assert all(
        " x " not in models.spec(m).adaptation and "3x3" not in models.spec(m).adaptation
        for m in models.NAMES
    )


def test_report_section_renders_with_banners_only_when_they_apply(tmp_path: Path) -> None:
    accs = {m: [0.9 + 0.01 * i, 0.9 + 0.01 * i + 0.001] for i, m in enumerate(models.NAMES)}
    tables = synthetic_tables(accs)
    page, text = rendered(stored(tmp_path / "a", tables, seeds=2))
    assert "Question 4: Six CNN architectures on SVHN" in text and "<blockquote" not in page
    assert "ResNet-101 classifies SVHN best. Two protocols are standard" in text
    assert "Answer. On SVHN, with one shared recipe of" in text
    assert "this run's recipe uses no horizontal flips on SVHN" in text and "CIFAR-10" not in text
    assert "the run record gives a wall-clock time of" in text and "parallel" not in text
    assert "ResNet-101 has the highest mean test accuracy" in text
    adaptations = text[text.index("How each architecture was adapted") :]
    order = [adaptations.index(models.spec(m).title) for m in models.NAMES]
    assert order == sorted(order), "the adaptations table follows the architectures, not the ranking"
    best = tables["results"].query("model == 'resnet101'")["test_acc"]
    assert fmt.pm((best.mean(), best.std())) in text  # the table shows what the store holds
    se = math.sqrt(best.mean() * (1 - best.mean()) / 1000)  # the 1,000 test images of the synthetic run
    assert f'{fmt.pct(se)} for the best model (the table\'s "Test-set SE" column)' in text
    small = synthetic_tables({"lenet5": [0.5], "resnet18": [0.6]}, dataset="mnist", train_used=128)
    page, text = rendered(stored(tmp_path / "b", small, seeds=1, cfg=PROFILES["quick"]))
    assert page.count("<blockquote") == 2 and "not on SVHN" in text
    assert "classifies SVHN best; this build compares them on MNIST instead" in text
    epochs = PROFILES["quick"].epochs
    assert f"trained on a subset: 128 of 68,257 training images for {epochs} epochs" in text
    assert "single-seed run" in text and "60.00%" in text


# ---- the experiment end to end ----------------------------------------------------------------------
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


def test_a_model_that_did_not_train_is_flagged_and_left_out_of_every_comparison(tmp_path: Path) -> None:
    accs = {"lenet5": [0.80, 0.81], "alexnet": [0.10, 0.10], "vgg": [0.90, 0.91], "resnet18": [0.92, 0.93]}
    tables = synthetic_tables(accs)
    stuck = tables["curves"]["model"] == "alexnet"
    tables["curves"].loc[stuck, "train_loss"] = math.log(10) * 0.999  # never left the uniform prediction
    conf = tables["confusion"]
    alex = conf["model"] == "alexnet"
    conf.loc[alex, "count"] = np.where(conf.loc[alex, "pred"] == 3, 100, 0)  # one class for every image
    conf.loc[alex & (conf["true"] == 3) & (conf["pred"] == 3), "count"] = 100
    tables["results"].loc[tables["results"]["model"] == "alexnet", "test_acc"] = 0.1
    results = stored(tmp_path, tables, seeds=2)
    c = ctx4.context(results)
    assert [m["title"] for m in c["untrained"]] == ["AlexNet"] and "AlexNet" not in c["ranking"]
    assert c["untrained"][0]["share"] == 1.0 and c["untrained"][0]["class"] == "3"
    gaps = [g["b"] for g in (c["lenet"]["gaps"] if c["lenet"] else [])] + c["pareto"]
    assert "AlexNet" not in gaps and c["best"]["title"] == "ResNet-18"
    page, text = rendered(results)
    assert (
        "AlexNet did not train: in every epoch its training loss stayed within a few percent of ln K" in text
    )
    assert "without batch normalisation" in text and "AlexNet (did not train)" in text
    assert "test accuracy among the models that trained: ResNet-18, VGG-16-BN, LeNet-5." in text
    trained = stored(tmp_path / "b", synthetic_tables(accs | {"alexnet": [0.85, 0.86]}), seeds=2)
    assert ctx4.context(trained)["untrained"] == []


def test_a_small_budget_that_reproduces_the_old_ordering_says_why(tmp_path: Path) -> None:
    accs = {"lenet5": [0.60], "resnet18": [0.40], "resnet50": [0.35]}
    small = synthetic_tables(accs, dataset="mnist", train_used=128)
    _, text = rendered(stored(tmp_path / "a", small, seeds=1, cfg=PROFILES["quick"]))
    assert "In this run LeNet-5 does score above every ResNet, and this run is a reduced budget" in text
    assert "every model gets the same training budget." not in text
    full = synthetic_tables({"lenet5": [0.90], "resnet18": [0.95], "resnet50": [0.96]})
    _, text = rendered(stored(tmp_path / "b", full, seeds=1))
    assert "does score above every ResNet" not in text


def test_comparisons_are_welch_tests_holm_corrected_within_a_statement() -> None:
    from scipy import stats

    accs = {
        "resnet101": [0.97, 0.975, 0.96],
        "resnet50": [0.95, 0.96, 0.958],
        "resnet18": [0.94, 0.93, 0.955],
    }
    s = summary(accs)
    gaps = claims.best_claim(s)
    assert gaps["title"] == "ResNet-101"
    raw = {
        m: stats.ttest_ind(accs[m], accs["resnet101"], equal_var=False).pvalue
        for m in ("resnet50", "resnet18")
    }
    tested = claims.family([claims.compare(s.iloc[0], row) for _, row in s.iloc[1:].iterrows()])
    by_title = {g["b"]: g for g in tested}
    assert by_title["ResNet-50"]["p"] == pytest.approx(raw["resnet50"])
    assert by_title["ResNet-18"]["p"] == pytest.approx(raw["resnet18"])
    low, high = sorted(raw.values())
    assert sorted(g["p_adj"] for g in tested) == pytest.approx([2 * low, max(2 * low, high)])
    assert all((g["verdict"] == claims.WITHIN) == (g["p_adj"] >= claims.ALPHA) for g in tested)


def test_mcnemar_on_the_same_test_images_matches_scipy_and_words_a_single_seed_lead(
    tmp_path: Path, words: Any
) -> None:
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    a, b = rng.random(1000) < 0.90, rng.random(1000) < 0.93
    only_a, only_b = stats.discordant(a, b)
    assert only_a == int((a & ~b).sum()) and only_b == int((~a & b).sum())
    assert stats.mcnemar(only_a, only_b) == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert stats.mcnemar(0, 0) == 1.0

    tables = synthetic_tables({"lenet5": [0.85], "resnet18": [0.95]}, n_test=1000)
    c = ctx4.context(stored(tmp_path, tables, seeds=1))
    gap = c["best"]["runner_up"]
    assert gap["p"] is None and gap["verdict"] == claims.UNMEASURED  # one seed: Welch cannot run
    assert gap["images_p"] == pytest.approx(binomtest(0, 100, 0.5).pvalue)  # 100 images only ResNet-18 got
    assert gap["images_verdict"] == claims.BELOW
    assert say(words.best, c["best"]).endswith(
        "On the same test images the lead is larger than test-set sampling explains (McNemar's exact test, "
        "Holm-corrected at the 5% level), which says nothing about another seed."
    )
    shown = c["tables"]["comparison"]
    assert shown.columns["p_images"][1] == "pval" and "p_seeds" not in shown.columns


def test_per_image_answers_that_disagree_with_the_accuracies_stop_the_build(tmp_path: Path) -> None:
    tables = synthetic_tables({"lenet5": [0.9], "resnet18": [0.95]})
    tables["answers"].loc[0, "correct"] = not tables["answers"].loc[0, "correct"]
    with pytest.raises(EvidenceError, match="per-image answers"):
        ctx4.context(stored(tmp_path, tables, seeds=1))


def test_published_accuracies_stand_beside_ours_with_their_source_and_a_far_gap_is_explained(
    tmp_path: Path,
) -> None:
    accs = {"lenet5": [0.80], "vgg": [0.92], "resnet18": [0.70]}  # ResNet-18 far below 94.9%, VGG not
    reduced = synthetic_tables(accs, n_test=200, dataset="fashion-mnist", train_used=256)
    _, text = rendered(stored(tmp_path / "a", reduced, seeds=1, cfg=PROFILES["quick"]))
    assert (
        "published work: ResNet-18 reaches 70.00% here; ResNet-18 with flips, translation and rotation "
        "reached 94.90%" in text
    )
    assert (
        "(K. Efthymiadis) , 24.90 percentage points more: a gap of the kind this reduced budget leaves, not "
        "a property of the architecture. VGG-16-BN reaches 92.00% here" in text
    )
    assert (
        "VGG-16 (26 M parameters), no augmentation reached 93.50%, in the Fashion-MNIST benchmark table "
        "(QuantumLiu) , 1.50 percentage points more, within what this reduced budget leaves." in text
    )  # more than one point below, within five: said, with the budget as the context
    full = synthetic_tables(accs, n_test=10_000, dataset="fashion-mnist")  # all 68,257 (as synthesised)
    _, text = rendered(stored(tmp_path / "b", full, seeds=1))
    assert "24.90 percentage points more: this run falls far short of what the architecture reaches" in text
    assert (
        "1.50 percentage points more: this run's recipe does not bring VGG-16-BN to its published level"
        in text
    )
    svhn = synthetic_tables({"lenet5": [0.9], "resnet18": [0.95]})
    _, text = rendered(stored(tmp_path / "c", svhn, seeds=1))
    assert "WRN-16-8, a wide ResNet, with dropout reached 98.46%" in text


def test_a_seed_whose_images_favour_the_other_model_makes_the_gap_not_significant() -> None:
    right, wrong = np.ones(200, dtype=bool), np.zeros(200, dtype=bool)
    mixed = np.arange(200) < 100
    answers = {("a", 0): right, ("b", 0): mixed, ("a", 1): mixed, ("b", 1): right}  # each seed disagrees
    assert claims.images_p(answers, "a", "b") == 1.0
    same_way = {("a", 0): right, ("b", 0): mixed, ("a", 1): right, ("b", 1): wrong}
    assert claims.images_p(same_way, "a", "b") < 1e-6


def test_gaps_in_the_text_quote_the_table_and_a_tie_reads_as_one(tmp_path: Path) -> None:
    """The text gave "10.8 percentage points" beside −10.75 in the table, and "0 percentage points equal"
    for two models with the same accuracy."""
    accs = {"resnet101": [0.9], "vgg": [0.7925], "resnet18": [0.5], "resnet50": [0.5], "lenet5": [0.45]}
    _, text = rendered(stored(tmp_path, synthetic_tables(accs, n_test=10_000), seeds=1))
    assert f"{fmt.MINUS}10.75" in text, "the table's gap to the best"
    assert "ResNet-101 is 10.75 percentage points above VGG-16-BN" in text
    assert "ResNet-50 against ResNet-18: the same test accuracy" in text
    assert "ResNet-18 against LeNet-5: 5.00 percentage points higher" in text
    assert "percentage points equal" not in text and "10.8" not in text
