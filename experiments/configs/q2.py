"""Q2's settings: the linear-hidden-layer network, its Hessian points, segments and loss surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from experiments.configs import convexity
from report.core.config import Range, check_settings
from report.core.errors import ConfigError


@dataclass(frozen=True)
class Config(convexity.BinaryTask):
    """The shared task's fields (``convexity.BinaryTask``), two with other defaults, and the network's and
    the loss surface's own."""

    # random parameter points with an exact Hessian, per loss (the origin is separate)
    points: Annotated[int, Range(1, 10_000)] = 20
    lr: Annotated[float, Range(0, 10, lo_open=True)] = 0.02  # Adam learning rate for the trained points
    # linear hidden units: 4 x 50 + 4 + 1 = 205 parameters at pool 4
    hidden: Annotated[int, Range(1, 1000)] = 4
    # the contour plot spans [-range, range]^2 in (w1, w2)
    surface_range: Annotated[float, Range(0, 1e3, lo_open=True)] = 3.0
    # grid points per axis (odd, so the origin is on the grid)
    surface_points: Annotated[int, Range(3, 1001)] = 61

    EXPERIMENT: ClassVar[str] = "q2"
    # each point's exact Hessian is parameters² float64 entries, eigendecomposed (time grows with the cube):
    # 10,000 parameters is 0.75 GiB and about a minute a point on two cores
    MAX_PARAMETERS: ClassVar[int] = 10_000

    def validate(self) -> None:
        super().validate()
        params = self.hidden * ((28 // self.pool) ** 2 + 1) + self.hidden + 1
        gib = params**2 * 8 / 2**30
        check_settings(
            (params <= self.MAX_PARAMETERS, f"q2.hidden={self.hidden} at q2.pool={self.pool} gives the "
             f"network {params:,} parameters, whose exact Hessian at each point holds {gib:,.2f} GiB and is "
             f"eigendecomposed: lower q2.hidden or raise q2.pool to at most {self.MAX_PARAMETERS:,} "
             "parameters (q2.hidden=4 at q2.pool=1 has 3,145)", ("q2.hidden", "q2.pool")),
        )  # fmt: skip
        if self.surface_points % 2 == 0:
            raise ConfigError(
                f"q2.surface_points={self.surface_points}: give an odd number (the grid must hold the origin)"
            )


PROFILES: dict[str, Config] = {
    "smoke": Config(samples=256, hidden=2, points=4, segments=400, train_steps=100, surface_points=31),
    "quick": Config(samples=2048, points=40, segments=5000),
    "full": Config(samples=12_000, pool=2, hidden=4, points=100, segments=20_000, train_steps=2000),
}
