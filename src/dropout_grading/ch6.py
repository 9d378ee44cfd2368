"""Checks for the graded exercise of chapter 6, ``ch6_beyond_dense/beyond_dense.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``channel_mask(shape, p, rng)``: for activations of ``shape`` (N, C, *spatial), a 0/1 (or bool)
  mask of shape (N, C, 1, ..., 1), one draw per (example, channel), kept with probability 1 - p;
* ``locked_mask(shape, p, rng)``: for sequences of ``shape`` (N, T, D), a mask of shape
  (N, 1, D), one draw per (sequence, feature), shared by every time step;
* ``gaussian_noise(shape, p, rng)``: multiplicative noise of ``shape`` drawn from
  N(1, p / (1 - p)), the mean and variance of the inverted Bernoulli factor m / (1 - p);
* ``gaussian_dropout_forward(x, p, *, train, rng=None, noise=None) -> (out, cache)``: training
  ``x * noise`` (``noise`` given, or drawn from ``rng``), evaluation ``x``.

Every test cell is a row of the property kit (:mod:`dropout_grading.properties`): the masks and
the noise are ``Draw``s (shape and sharing exact, rate, moments and independence statistical, on
the draws a mask really holds, so one mistake costs the cells of its property and no others), the
Gaussian dropout layer a ``Layer`` (exact with injected noise and at evaluation, statistical on
the factors ``out / x`` of a pass that draws its own).
"""

from __future__ import annotations

import numpy as np

from .framework import Assignment
from .properties import (
    Draw,
    Expected,
    Inputs,
    Layer,
    gaussian_dropout_std,
    matches,
    row,
    scaled,
)

ASSIGNMENT = Assignment(
    "ch6_beyond_dense",
    notebook="beyond_dense",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
        "dropout_course.fast",
        "dropout_course.variants",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check

CHANNEL = Draw(
    "channel_mask",
    drawn=(0, 1),
    unit="(example, channel)",
    shared_over="spatial position",
    axis_names={0: "examples", 1: "channels"},
)
LOCKED = Draw(
    "locked_mask",
    drawn=(0, 2),
    unit="(sequence, feature)",
    shared_over="time step",
    axis_names={0: "sequences", 2: "features"},
)
NOISE = Draw("gaussian_noise", noise=True, axis_names={0: "examples", 1: "units"})
RATE = ("rate", "reproducible")

ADDITIVE = (
    "out is x plus noise: Gaussian dropout MULTIPLIES x by the noise (out = x * noise), so each "
    "unit's noise is proportional to its activation, as with masks"
)


class GaussianDropout(Layer):
    """``gaussian_dropout_forward``: train ``x * noise``, evaluate ``x``."""

    def randomness(self, rng: np.random.Generator, inputs: Inputs, p: float) -> np.ndarray:
        return 1.0 + gaussian_dropout_std(p) * rng.standard_normal(inputs[0].shape)

    def train_output(self, inputs: Inputs, r: np.ndarray, p: float) -> Expected:
        (x,) = inputs
        explains = [
            matches(x + r, ADDITIVE),
            matches(x + r - 1.0, ADDITIVE),
            matches(x, "out is x: in training, multiply x by the noise you are given"),
            scaled(
                x * r,
                lambda c: (
                    f"out is x * noise times {c:.4g}: use the noise as it is (it already "
                    "has mean 1, so no 1/(1-p) scaling)"
                ),
            ),
            lambda out: "use the noise you are given (noise=...) instead of drawing new noise",
        ]
        return Expected(x * r, "x * noise", explains)

    def eval_output(self, inputs: Inputs, p: float) -> Expected:
        rule = (
            "x unchanged: evaluation uses the expected factor, 1, so no noise and no scaling, "
            "whatever rng or noise is given"
        )
        return Expected(inputs[0], rule)

    def draws(self, out: np.ndarray, inputs: Inputs, p: float, what: str, scale: bool):
        """The factors ``out / x`` (x has no zeros)."""
        return out / inputs[0]


GAUSSIAN = GaussianDropout("gaussian_dropout_forward", inject="noise", axis_names=NOISE.axis_names)

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "channel_mask_shape": row(
        "channel_mask returns a 0/1 mask of shape (N, C, 1, ..., 1); p = 0 keeps all, p = 1 none",
        CHANNEL.values, shape=(8, 5, 6, 7), p=0.4, seed=0),
    "channel_mask_shared": row(
        "channel_mask keeps or drops whole feature maps: one draw for every position of a channel",
        CHANNEL.shared, shape=(6, 4, 5, 5), p=0.5, seed=1),
    "channel_mask_rate": row(
        "channel_mask keeps each (example, channel) with probability 1 - p, reproducibly from rng",
        CHANNEL.random, tests=RATE, shape=(50, 40, 3, 3), p_values=(0.2, 0.7), seed=2),
    "channel_mask_independent": row(
        "channel_mask draws every (example, channel) independently: no mask shared by the batch",
        CHANNEL.random, tests=("independent",), shape=(100, 20, 4, 4), p=0.5, seed=3),
    "locked_mask_shape": row(
        "locked_mask returns a 0/1 mask of shape (N, 1, D); p = 0 keeps all, p = 1 none",
        LOCKED.values, shape=(6, 9, 5), p=0.4, seed=4),
    "locked_mask_shared": row(
        "locked_mask drops the same features of a sequence at every time step",
        LOCKED.shared, shape=(8, 12, 6), p=0.5, seed=5),
    "locked_mask_rate": row(
        "locked_mask keeps each (sequence, feature) with probability 1 - p, reproducibly from rng",
        LOCKED.random, tests=RATE, shape=(50, 3, 40), p_values=(0.2, 0.7), seed=6),
    "locked_mask_independent": row(
        "locked_mask draws every (sequence, feature) independently: no mask shared by the batch",
        LOCKED.random, tests=("independent",), shape=(100, 4, 20), p=0.5, seed=7),
    "gaussian_noise_mean": row(
        "gaussian_noise has the requested shape and mean 1 (p = 0: exactly 1), reproducibly",
        NOISE.random, tests=("extremes", "mean", "reproducible"), shape=(200, 100),
        p_values=(0.3, 0.7), seed=10),
    "gaussian_noise_variance": row(
        "gaussian_noise has variance p / (1 - p), the variance of the Bernoulli factor m / (1 - p)",
        NOISE.random, tests=("variance",), shape=(200, 100), p_values=(0.2, 0.7), seed=11),
    "gaussian_noise_independent": row(
        "gaussian_noise draws every factor independently (no noise shared by examples or units)",
        NOISE.random, tests=("independent",), shape=(200, 100), p=0.5, seed=12),
    "gaussian_forward_train": row(
        "Training pass with given noise: out = x * noise, x left untouched",
        GAUSSIAN.injected, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=13),
    "gaussian_forward_eval": row(
        "Evaluation pass: out = x, no noise and no scaling (a given rng or noise is ignored)",
        GAUSSIAN.evaluation, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=14),
    "gaussian_forward_random": row(
        "Training pass drawing its own noise: independent factors, mean 1, variance p / (1 - p)",
        GAUSSIAN.random, tests=("mean", "variance", "independent", "reproducible"),
        shape=(200, 100), p=0.4, dtype="float64", seed=15),
})
# fmt: on
ASSIGNMENT.seal()
