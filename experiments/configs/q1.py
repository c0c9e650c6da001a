"""Q1's settings: the binary MNIST task, the Hessian points and midpoint segments, per profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from experiments.configs import convexity


@dataclass(frozen=True)
class Config(convexity.BinaryTask):
    """Every field and rule is the shared task's (``convexity.BinaryTask``), with its defaults."""

    EXPERIMENT: ClassVar[str] = "q1"


PROFILES: dict[str, Config] = {
    "smoke": Config(samples=256, points=8, segments=400, train_steps=100),
    "quick": Config(samples=2048, points=100, segments=5000),
    "full": Config(samples=12_000, pool=2, points=200, segments=20_000, train_steps=2000),
}
