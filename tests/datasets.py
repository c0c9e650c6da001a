"""Small, learnable MNIST and Fashion-MNIST stand-ins in torchvision's real on-disk format.

The tests never depend on downloaded data: each session writes ``MNIST/raw`` and ``FashionMNIST/raw``
(IDX files, read by ``torchvision.datasets.MNIST``/``FashionMNIST`` exactly as the real ones) into a
temporary folder. The images are glyphs of the class's character in DejaVu Sans, randomly scaled,
rotated, shifted and noised, so a small network learns them the way it learns digits.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# the character drawn for each class label; Fashion-MNIST's ten classes get ten letters
GLYPHS = {"MNIST": "0123456789", "FashionMNIST": "TPDCOSHNBA"}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), size)


def glyph_images(glyphs: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 images with balanced labels: white glyphs on black, like MNIST."""
    labels = np.arange(n) % len(glyphs)
    rng.shuffle(labels)
    fonts = {size: _font(size) for size in range(16, 23)}
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        canvas = Image.new("L", (40, 40))
        ImageDraw.Draw(canvas).text(
            (20, 20), glyphs[label], fill=255, anchor="mm", font=fonts[int(rng.integers(16, 23))]
        )
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        dx, dy = rng.integers(-3, 4, size=2)
        crop = np.asarray(canvas.crop((6 + dx, 6 + dy, 34 + dx, 34 + dy)), dtype=np.float32)
        noisy = crop + rng.normal(0, 20, crop.shape)
        images[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return images, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: a big-endian magic (0x08 = unsigned byte, then the rank), the sizes, the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_dataset(root: Path, name: str, n_train: int, n_test: int, seed: int = 0) -> Path:
    """``root/name/raw`` holding the four IDX files torchvision reads for ``name``."""
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = glyph_images(GLYPHS[name], n, rng)
        write_idx(raw / FILES[split][0], images)
        write_idx(raw / FILES[split][1], labels)
    return root / name
