"""Question 4's models and data: the registry's architectures, SVHN loading, augmentation, the schedule
and the config's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from experiments import data, models, q4
from experiments.configs.q4 import PROFILES
from report.core.config import apply_overrides
from report.core.errors import ConfigError
from tests.q4_results import write_svhn


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


def test_the_resnet_facts_the_report_states_are_those_of_the_models_trained() -> None:
    """The depth section's blocks per stage and bottleneck width (report/questions/q4_claims.py, read
    without torch) are those of the registry's models."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    from report.questions.q4_claims import EXPANSION, STAGE_BLOCKS

    for name, blocks in STAGE_BLOCKS.items():
        net = models.create(name)
        assert tuple(len(getattr(net, f"layer{i}")) for i in range(1, 5)) == blocks, name
        assert isinstance(net.layer1[0], Bottleneck if name != "resnet18" else BasicBlock), name
    assert Bottleneck.expansion == EXPANSION and BasicBlock.expansion == 1
