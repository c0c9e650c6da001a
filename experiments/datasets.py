"""Where each dataset lives under the data folder and where it downloads from: plain data, no torch.

``build.py`` checks presence and split sizes with this before it imports torch, so a missing dataset, or
a setting asking for more images than it holds, is one line within a second; ``experiments/data.py``
reads and downloads the files through torchvision. The download addresses are torchvision's own
(``tests/test_reliability.py`` compares them), listed here only to test reachability.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from report.core import manifest
from report.core.errors import DataError


@dataclass(frozen=True)
class Layout:
    title: str  # the name the report prints
    folder: str  # sub-folder of the data dir that torchvision reads
    files: tuple[str, ...]  # what must exist there, relative to the data dir
    urls: tuple[str, ...]  # where torchvision downloads from


def _mnist_files(folder: str) -> tuple[str, ...]:
    return tuple(
        f"{folder}/raw/{s}-{k}-idx{n}-ubyte"
        for s in ("train", "t10k")
        for k, n in (("images", 3), ("labels", 1))
    )


LAYOUTS: dict[str, Layout] = {
    "mnist": Layout(
        "MNIST",
        "MNIST",
        _mnist_files("MNIST"),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "fashion-mnist": Layout(
        "Fashion-MNIST",
        "FashionMNIST",
        _mnist_files("FashionMNIST"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
    "svhn": Layout(
        "SVHN",
        "SVHN",
        ("SVHN/train_32x32.mat", "SVHN/test_32x32.mat"),
        (
            "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
            "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
        ),
    ),
    "cifar10": Layout(
        "CIFAR-10",
        "cifar10",
        ("cifar10/cifar-10-batches-py/batches.meta",),
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    ),
}


def layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def files(name: str, data_dir: Path) -> list[Path]:
    """The files a dataset is read from (for the data fingerprint)."""
    if name == "cifar10":
        folder = data_dir / "cifar10" / "cifar-10-batches-py"
        return sorted(folder.glob("*_batch*")) + [folder / "batches.meta"]
    return [data_dir / f for f in layout(name).files]


def missing(name: str, data_dir: Path) -> list[Path]:
    return [data_dir / f for f in layout(name).files if not (data_dir / f).is_file()]


def reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def unobtainable(names: list[str], data_dir: Path) -> tuple[list[str], list[str]]:
    """Split the absent datasets among ``names`` into (problem lines, names to download).

    A dataset is a problem when its files are absent and none of its download hosts answers; the line
    names the folder, the first missing file, the host and the fixes.
    """
    problems, downloads = [], []
    for name in dict.fromkeys(names):
        absent = missing(name, data_dir)
        if not absent:
            continue
        s = layout(name)
        if any(reachable(u) for u in s.urls):
            downloads.append(name)
            continue
        other = ", or --set q4.dataset=fashion-mnist" if name in ("svhn", "cifar10") else ""
        problems.append(
            f"{s.title} not found in {data_dir / s.folder} (missing {absent[0].name}) and "
            f"{urlparse(s.urls[0]).hostname} is unreachable: download it there, or pass --data-dir DIR "
            f"holding {s.folder}/{other}"
        )
    return problems, downloads


def split_sizes(name: str, data_dir: Path) -> tuple[int, int] | None:
    """The training and test split sizes, read from the files' headers without loading the images (and
    without torch); ``None`` where the files are absent (a download comes later), unreadable (the reader
    says why) or their format states no size in a header (CIFAR-10)."""
    if name == "cifar10" or missing(name, data_dir):
        return None
    try:
        if name == "svhn":
            from scipy.io import whosmat  # what torchvision's SVHN reader needs anyway

            shapes = [dict((v[0], v[1]) for v in whosmat(data_dir / f))["y"] for f in layout(name).files]
            return shapes[0][0], shapes[1][0]
        raw = data_dir / layout(name).folder / "raw"
        counts = []
        for split in ("train", "t10k"):  # IDX: a 4-byte magic number, then the count, big-endian
            with open(raw / f"{split}-labels-idx1-ubyte", "rb") as fh:
                counts.append(int.from_bytes(fh.read(8)[4:], "big"))
        return counts[0], counts[1]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def check_before_torch(configs: dict[str, Any], data_dir: Path) -> None:
    """Before torch is imported, for the experiments about to run (their resolved configs): datasets
    that are absent and cannot be downloaded stop the build within a second, and so does a config asking
    for more images than its dataset holds (the config's ``check_sizes``), rather than after the
    experiments before it have trained."""
    wanted: dict[str, list[Any]] = {}
    for name, config in configs.items():
        for dataset in manifest.load().get(name).dataset_names(vars(config)):
            wanted.setdefault(dataset, []).append(config)
    problems, _ = unobtainable(list(wanted), data_dir)
    if problems:
        raise DataError("\n".join(problems))
    for dataset, users in wanted.items():
        sizes = split_sizes(dataset, data_dir)
        for config in users if sizes else []:
            if hasattr(config, "check_sizes"):
                config.check_sizes(*sizes, layout(dataset).title)
