"""The settings Q1 and Q2 share: a two-digit MNIST task, pooled, probed at random points and segments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from report.core.config import Range, check_settings
from report.core.errors import ConfigError


@dataclass(frozen=True)
class BinaryTask:
    """Each question's ``Config`` extends this, names its experiment (``EXPERIMENT``, for the messages),
    and redeclares a field where its default differs."""

    EXPERIMENT: ClassVar[str] = ""

    # the binary task; digits[1] is the positive class
    digits: Annotated[tuple[int, ...], Range(0, 9)] = (0, 1)
    # training images (a random subset of the two digits); one or two images made the closed-form Hessian
    # check fail inside the run, so fewer than 16 is refused before it
    samples: Annotated[int, Range(16, 1_000_000)] = 1024
    # average pooling: 28x28 -> 7x7 = 49 features (+ bias) keeps Hessians small
    pool: Annotated[int, Range(1, 28)] = 4
    # random parameter points with an exact Hessian, per loss
    points: Annotated[int, Range(1, 10_000)] = 50
    # random segments in the midpoint test (the same for both losses)
    segments: Annotated[int, Range(1, 10_000_000)] = 2000
    # typical |logit| at a random point, drawn log-uniformly between these two; at ~1000 the float64
    # exponentials of the losses overflow (NaN Hessians), so at most 100
    scale_min: Annotated[float, Range(0, 100, lo_open=True)] = 0.1
    scale_max: Annotated[float, Range(0, 100, lo_open=True)] = 30.0
    # a midpoint excess above rtol x mean |endpoint loss| is a violation
    rtol: Annotated[float, Range(0, 1, lo_open=True)] = 1e-9
    # relative min eigenvalue below -eig_tol counts as negative curvature
    eig_tol: Annotated[float, Range(0, 1, lo_open=True)] = 1e-6
    # full-batch Adam steps for the trained point (Q1: the one its loss slices pass through; Q2: the
    # sign-flip counterexample's)
    train_steps: Annotated[int, Range(1, 1_000_000)] = 500
    lr: Annotated[float, Range(0, 10, lo_open=True)] = 0.05  # Adam learning rate for that point

    def validate(self) -> None:
        """One-line errors for the rules between the fields Q1 and Q2 share (a repeated digit is the
        general rule's: report/core/config.py)."""
        exp, digits = self.EXPERIMENT, self.digits
        if len(digits) != 2:
            raise ConfigError(f"{exp}.digits={digits}: give two different digits 0-9, e.g. {exp}.digits=1,7")
        if self.pool < 1 or 28 % self.pool:
            raise ConfigError(
                f"{exp}.pool={self.pool}: the pooling factor must divide 28 (1, 2, 4, 7, 14 or 28)"
            )
        if not self.scale_min < self.scale_max:
            raise ConfigError(f"{exp}.scale_min and scale_max: need scale_min < scale_max")

    def check_classes(self, counts: list[int], title: str) -> None:
        """The rule that needs the training images per class (``counts``): ``samples`` are drawn from the
        two digits' images, so they cannot exceed them. Checked before anything trains (with the
        download's counts where the files are still to come), and on the labels the run loads."""
        exp, (a, b) = self.EXPERIMENT, self.digits
        have = counts[a] + counts[b]
        check_settings(
            (self.samples <= have, f"{exp}.samples={self.samples} exceeds the {have} training images of "
             f"digits {a} and {b} in {title}: lower it to at most {have}", (f"{exp}.samples",)),
        )  # fmt: skip
