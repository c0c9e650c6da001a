"""Where each dataset lives under the data folder and where it downloads from: plain data, no torch.

``build.py`` checks presence and split sizes with this before it imports torch, so a missing dataset, or
a setting asking for more images than it holds, is one line within a second; ``experiments/data.py``
reads and downloads the files through torchvision. The download addresses are torchvision's own
(``tests/test_reliability.py`` compares them), listed here only to test reachability.
"""

from __future__ import annotations

import socket
import struct
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
    # training and test images of the download: the sizes checked while the files are absent, and always
    # for CIFAR-10 (torchvision loads a batch only when its md5 is the real one's)
    sizes: tuple[int, int]
    # the download's training images per class, checked while the files are absent (IDX datasets only)
    classes: tuple[int, ...] = ()


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
        (60_000, 10_000),
        (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    ),
    "fashion-mnist": Layout(
        "Fashion-MNIST",
        "FashionMNIST",
        _mnist_files("FashionMNIST"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (60_000, 10_000),
        (6000,) * 10,
    ),
    "svhn": Layout(
        "SVHN",
        "SVHN",
        ("SVHN/train_32x32.mat", "SVHN/test_32x32.mat"),
        (
            "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
            "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
        ),
        (73_257, 26_032),
    ),
    "cifar10": Layout(
        "CIFAR-10",
        "cifar10",
        tuple(
            f"cifar10/cifar-10-batches-py/{f}"
            for f in ("batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
        ),
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        (50_000, 10_000),
    ),
}


def layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def files(name: str, data_dir: Path) -> list[Path]:
    """The files a dataset is read from (for the data fingerprint)."""
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


def split_sizes(name: str, data_dir: Path) -> tuple[int, int]:
    """The training and test split sizes, read from the files' headers without loading the images (and
    without torch) where the files are present, else those of the download that will bring them. A file
    that cannot be read is a one-line error naming it, as the reader's would be, but before training."""
    s = layout(name)
    if missing(name, data_dir) or name == "cifar10":  # CIFAR-10's pickles state no size in a header
        return s.sizes
    try:
        return _mat_sizes(s, data_dir) if name == "svhn" else _idx_sizes(s, data_dir)
    except OSError as e:
        raise DataError(f"{e.filename} could not be read ({e.strerror}); {_refetch(s, data_dir)}") from None


def _idx_sizes(s: Layout, data_dir: Path) -> tuple[int, int]:
    """From the label files: a magic number (2049), the count, then one byte per image."""
    counts = []
    for path in (data_dir / f for f in s.files[1::2]):
        with open(path, "rb") as fh:
            magic, count = struct.unpack(">II", fh.read(8).ljust(8, b"\0"))
        if magic != 2049 or path.stat().st_size != 8 + count:
            raise DataError(f"{path} is not a complete IDX label file; {_refetch(s, data_dir)}")
        counts.append(count)
    return counts[0], counts[1]


def class_counts(name: str, data_dir: Path) -> list[int] | None:
    """Training images per class, counted in the IDX label file without torch (after ``split_sizes`` has
    checked it), or the download's where the files are still to come; None where the dataset is not in
    IDX files."""
    s = layout(name)
    if not s.classes:
        return None
    if missing(name, data_dir):
        return list(s.classes)
    labels = (data_dir / s.files[1]).read_bytes()[8:]  # after the magic number and the count
    return [labels.count(k) for k in range(len(s.classes))]


def _mat_sizes(s: Layout, data_dir: Path) -> tuple[int, int]:
    """From the shape of each .mat file's labels ``y`` (N x 1), read without its images."""
    from scipy.io import whosmat  # what torchvision's SVHN reader needs anyway

    counts = []
    for path in (data_dir / f for f in s.files):
        try:
            counts.append(int({n: shape for n, shape, _ in whosmat(path)}["y"][0]))
        except OSError:  # unreadable: split_sizes names it
            raise
        except Exception as e:  # scipy raises several types for a damaged or unsupported file
            raise DataError(f"{path} could not be read ({e}); {_refetch(s, data_dir)}") from None
    return counts[0], counts[1]


def _refetch(s: Layout, data_dir: Path) -> str:
    return f"remove it and the build downloads {s.title} again, or pass --data-dir DIR holding {s.folder}/"


def check_before_torch(configs: dict[str, Any], data_dir: Path) -> None:
    """Before torch is imported, for the experiments about to run (their resolved configs): datasets
    that are absent and cannot be downloaded stop the build within a second, and so does a config asking
    for more images than its dataset holds, rather than after the experiments before it have trained."""
    problems, _ = unobtainable(list(_readers(configs)), data_dir)
    if problems:
        raise DataError("\n".join(problems))
    check_sizes(configs, data_dir)


def check_sizes(configs: dict[str, Any], data_dir: Path) -> None:
    """Each config's ``check_sizes`` rules against the split sizes of the dataset it reads
    (``split_sizes``), and its ``check_classes`` rules against the training images per class
    (``class_counts``, where the files are here): a ``ConfigError`` naming the setting and the fix."""
    for dataset, users in _readers(configs).items():
        sizes, title = split_sizes(dataset, data_dir), layout(dataset).title
        for config in users:
            if hasattr(config, "check_sizes"):
                config.check_sizes(*sizes, title)
            if hasattr(config, "check_classes") and (counts := class_counts(dataset, data_dir)):
                config.check_classes(counts, title)


def _readers(configs: dict[str, Any]) -> dict[str, list[Any]]:
    """Each dataset the experiments' resolved configs read, with those configs."""
    readers: dict[str, list[Any]] = {}
    for name, config in configs.items():
        for dataset in manifest.load().get(name).dataset_names(vars(config)):
            readers.setdefault(dataset, []).append(config)
    return readers
