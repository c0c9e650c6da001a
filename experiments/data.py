"""Datasets by name, loaded through torchvision's own classes into uint8 tensors.

Every experiment keeps its data as tensors (N, C, H, W uint8 and int64 labels) and slices batches
from them; torchvision does the finding, downloading and checksum-verifying of the files.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision.datasets as tvd

from report.core.errors import DataError


class _SVHN(tvd.SVHN):
    """torchvision's SVHN, trusting a present file instead of re-hashing it on every load.

    torchvision verifies the MD5 when it downloads (``download_url``); re-hashing 180 MB on each load
    would also reject the small fixtures the tests write in SVHN's real ``.mat`` format.
    """

    def _check_integrity(self) -> bool:
        return os.path.isfile(os.path.join(self.root, self.filename))


@dataclass(frozen=True)
class Spec:
    title: str  # the name the report prints
    folder: str  # sub-folder of the data dir that torchvision reads
    files: tuple[str, ...]  # what must exist there, relative to the data dir
    urls: tuple[str, ...]  # where torchvision downloads from (for the reachability check)


def _mnist_files(folder: str) -> tuple[str, ...]:
    return tuple(
        f"{folder}/raw/{s}-{k}-idx{n}-ubyte"
        for s in ("train", "t10k")
        for k, n in (("images", 3), ("labels", 1))
    )


SPECS: dict[str, Spec] = {
    "mnist": Spec("MNIST", "MNIST", _mnist_files("MNIST"), tuple(tvd.MNIST.mirrors)),
    "fashion-mnist": Spec(
        "Fashion-MNIST", "FashionMNIST", _mnist_files("FashionMNIST"), tuple(tvd.FashionMNIST.mirrors)
    ),
    "svhn": Spec(
        "SVHN",
        "SVHN",
        ("SVHN/train_32x32.mat", "SVHN/test_32x32.mat"),
        tuple(tvd.SVHN.split_list[s][0] for s in ("train", "test")),
    ),
    "cifar10": Spec("CIFAR-10", "cifar10", ("cifar10/cifar-10-batches-py/batches.meta",), (tvd.CIFAR10.url,)),
}


def spec(name: str) -> Spec:
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(SPECS)}")
    return SPECS[name]


def files(name: str, data_dir: Path) -> list[Path]:
    """The files a dataset is read from (for the data fingerprint)."""
    s = spec(name)
    if name == "cifar10":
        folder = data_dir / "cifar10" / "cifar-10-batches-py"
        return sorted(folder.glob("*_batch*")) + [folder / "batches.meta"]
    return [data_dir / f for f in s.files]


def missing(name: str, data_dir: Path) -> list[Path]:
    return [data_dir / f for f in spec(name).files if not (data_dir / f).is_file()]


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def preflight(names: list[str], data_dir: Path, download: bool = True) -> list[str]:
    """Make every named dataset present, downloading where possible; return one line per problem."""
    problems = []
    for name in dict.fromkeys(names):
        s = spec(name)
        absent = missing(name, data_dir)
        if not absent:
            continue
        where = data_dir / s.folder
        if not download or not any(_reachable(u) for u in s.urls):
            host = urlparse(s.urls[0]).hostname
            problems.append(
                f"{s.title} not found in {where} (missing {absent[0].name}) and {host} is unreachable: "
                f"download it there, or pass --data-dir DIR holding {s.folder}/"
                + (", or --set q4.dataset=fashion-mnist" if name in ("svhn", "cifar10") else "")
            )
            continue
        try:
            for train in (True, False):
                _dataset(name, data_dir, train, download=True)
        except Exception as e:  # network errors, checksum mismatches, full disks
            problems.append(f"{s.title}: download into {where} failed ({e}); retry, or fetch it by hand")
    return problems


def _dataset(name: str, data_dir: Path, train: bool, download: bool = False):
    root = data_dir / spec(name).folder
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
        raise DataError(f"{spec(name).title} ({split}) in {data_dir} could not be read: {e}") from None
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
