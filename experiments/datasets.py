"""Where each dataset lives under the data folder and where it downloads from: plain data, no torch.

``build.py`` checks presence with this before it imports torch, so a missing dataset is one line within a
second; ``experiments/data.py`` reads and downloads the files through torchvision. The download addresses
are torchvision's own (``tests/test_reliability.py`` compares them), listed here only to test reachability.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from report.core import manifest
from report.core.config import field_hints, profile_config
from report.core.errors import DataError
from report.core.freshness import Request


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


def check_before_torch(names: list[str], request: Request) -> None:
    """Datasets that are absent and cannot be downloaded stop the build within a second, before torch is
    imported. The dataset an experiment reads comes from ``--set`` or from its profile's config (its
    torch-free config module); an unknown ``--set`` key is left to the runner's one-line error."""
    wanted = []
    for name in names:
        entry = manifest.load().get(name)
        given = request.overrides.get(name, {})
        fields = [d[1:-1] for d in entry.datasets if d.startswith("{")]
        profile = profile_config(name, request.own_profile(name))
        config = {f: given.get(f) or getattr(profile, f, None) for f in fields}
        if None not in config.values() and set(given) <= set(field_hints(name)):  # else the runner says
            wanted += entry.dataset_names(config)
    problems, _ = unobtainable(wanted, request.data_dir)
    if problems:
        raise DataError("\n".join(problems))
