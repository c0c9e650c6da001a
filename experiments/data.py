"""Datasets by name, loaded through torchvision's own classes into uint8 tensors.

Every experiment keeps its data as tensors (N, C, H, W uint8 and int64 labels) and slices batches
from them; torchvision does the finding, downloading and checksum-verifying of the files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd

from experiments import datasets
from report.core.errors import DataError


class _SVHN(tvd.SVHN):
    """torchvision's SVHN, trusting a present file instead of re-hashing it on every load.

    torchvision verifies the MD5 when it downloads (``download_url``); re-hashing 180 MB on each load
    would also reject the small fixtures the tests write in SVHN's real ``.mat`` format.
    """

    def _check_integrity(self) -> bool:
        return os.path.isfile(os.path.join(self.root, self.filename))


def preflight(names: list[str], data_dir: Path) -> list[str]:
    """Make every named dataset present, downloading where possible; return one line per problem."""
    problems, downloads = datasets.unobtainable(names, data_dir)
    for name in downloads:
        try:
            for train in (True, False):
                _dataset(name, data_dir, train, download=True)
        except Exception as e:  # network errors, checksum mismatches, full disks
            s = datasets.layout(name)
            problems.append(
                f"{s.title}: download into {data_dir / s.folder} failed ({e}); retry, or fetch it by hand"
            )
    return problems


def _dataset(name: str, data_dir: Path, train: bool, download: bool = False):
    root = data_dir / datasets.layout(name).folder
    if name == "mnist":
        return tvd.MNIST(str(data_dir), train=train, download=download)
    if name == "fashion-mnist":
        return tvd.FashionMNIST(str(data_dir), train=train, download=download)
    if name == "svhn":
        return _SVHN(str(root), split="train" if train else "test", download=download)
    if name == "cifar10":
        return tvd.CIFAR10(str(root), train=train, download=download)
    raise DataError(f"unknown dataset {name!r}")


def load(name: str, data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, C, H, W) and labels as int64, straight from torchvision's parsers."""
    try:
        ds = _dataset(name, data_dir, train)
    except Exception as e:
        split = "train" if train else "test"
        raise DataError(
            f"{datasets.layout(name).title} ({split}) in {data_dir} could not be read: {e}"
        ) from None
    if name in ("mnist", "fashion-mnist"):
        x = ds.data.unsqueeze(1)
        y = ds.targets
    elif name == "svhn":
        x = torch.from_numpy(np.ascontiguousarray(ds.data))
        y = torch.from_numpy(ds.labels)
    else:
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        y = torch.tensor(ds.targets)
    return x.contiguous(), y.long()


def to_rgb32(x: torch.Tensor) -> torch.Tensor:
    """28x28 grey images padded to 32x32 and repeated to 3 channels, so every CNN sees one shape."""
    if x.shape[1] == 1:
        x = torch.nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1)
    return x.contiguous()
