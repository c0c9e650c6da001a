"""Image classifiers for 32x32 inputs, by name: ``create("resnet18")``.

Each entry says in one line how the architecture was adapted from its ImageNet form, so the report can
print exactly what was trained. torchvision's builders are used wherever they exist (untrained weights);
the stem and the classifier head change, the standard way for 32x32 images (CIFAR-style), and the ResNets
start each residual branch at zero so the deep ones train stably from the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torchvision.models as tvm
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    title: str  # the name the report prints
    build: Callable[[int], nn.Module]  # num_classes -> untrained model
    adaptation: str  # one line: what differs from the original architecture


def _lenet5(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 -> 28 -> 14
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14 -> 10 -> 5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def _alexnet(num_classes: int) -> nn.Module:
    model = tvm.alexnet(weights=None, num_classes=num_classes)
    model.features[0] = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1)  # 32 -> 15 -> 7 -> 3 after pools
    model.avgpool = nn.Identity()
    model.classifier[1] = nn.Linear(256 * 3 * 3, 4096)
    return model


def _vgg16_bn(num_classes: int) -> nn.Module:
    model = tvm.vgg16_bn(weights=None, num_classes=num_classes)  # five pools: 32 -> 1
    model.avgpool = nn.Identity()
    model.classifier = nn.Sequential(
        nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(512, num_classes)
    )
    return model


def _resnet(builder: Callable[..., tvm.ResNet]) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        model = builder(weights=None, num_classes=num_classes, zero_init_residual=True)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model

    return build


_RESNET_STEM = (
    "torchvision resnet18: 7×7 stride-2 conv1 replaced by a 3×3 stride-1 conv and the stem max-pool "
    "removed (CIFAR-style stem), so the last stage sees 4×4 maps; each block's last BN starts at zero "
    "(zero_init_residual), so each residual branch starts at zero: a block with an identity shortcut "
    "starts as the identity, one with a 1×1 projection shortcut (where a stage changes shape) as that "
    "projection"
)
_RESNET_AS_18 = "torchvision {}, adapted as ResNet-18 (same stem, zero-initialised residual branches)"

REGISTRY: dict[str, ModelSpec] = {
    "lenet5": ModelSpec(
        "LeNet-5",
        _lenet5,
        "LeCun et al. (1998) layout on 3×32×32: conv5×5(6)-pool-conv5×5(16)-pool-FC120-FC84-FC10, "
        "with ReLU and max-pooling in place of tanh and trainable subsampling",
    ),
    "alexnet": ModelSpec(
        "AlexNet",
        _alexnet,
        "torchvision alexnet: 11×11 stride-4 conv1 replaced by a 3×3 stride-1 conv (64 filters) and the 6×6 "
        "adaptive pool removed; the classifier's first layer replaced to read 256×3×3 = 2304 inputs "
        "(2304 → 4096 → 4096 → 10)",
    ),
    "vgg": ModelSpec(
        "VGG-16-BN",
        _vgg16_bn,
        "torchvision vgg16_bn features unchanged (five pools take 32×32 to 1×1×512); the 7×7 adaptive pool "
        "and 4096-wide head replaced by 512 → 512 → 10 with dropout 0.5",
    ),
    "resnet18": ModelSpec("ResNet-18", _resnet(tvm.resnet18), _RESNET_STEM),
    "resnet50": ModelSpec("ResNet-50", _resnet(tvm.resnet50), _RESNET_AS_18.format("resnet50")),
    "resnet101": ModelSpec("ResNet-101", _resnet(tvm.resnet101), _RESNET_AS_18.format("resnet101")),
}

NAMES: tuple[str, ...] = tuple(REGISTRY)  # what q4.models chooses from: experiments/configs/q4.py MODELS


def spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}: choose from {', '.join(NAMES)}")
    return REGISTRY[name]


def create(name: str, num_classes: int = 10) -> nn.Module:
    """An untrained ``name`` model mapping (B, 3, 32, 32) images to (B, num_classes) logits."""
    return spec(name).build(num_classes)
