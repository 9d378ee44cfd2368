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

How the checks stay fair: shapes and the sharing structure of the masks (constant over positions,
over time) are checked exactly; the forward pass is checked exactly where the noise is injected
(``noise=``); where the student draws the randomness, only properties of the draw are checked,
each with a tail bound at a total false-fail probability below ``FALSE_FAIL`` = 1e-9 per check,
written beside it: Bernstein (``bounds.binomial_tolerance``) for keep rates and the agreement of
neighbours, the Gaussian tail for a mean (``bounds.normal_mean_tolerance``), and Laurent &
Massart's chi-square bounds (``bounds.chi_square_interval``) for a variance and for the variance
ratio that tests independent noise.
No check compares random draws with the reference's, so loops or vectorised code, any way of
drawing, bool or float masks, float32 or float64 all pass; seeds are fixed, so grades are
deterministic. Each statistical check reads the draws the mask actually holds (a mask shared by the
batch holds C draws, not N * C), so one mistake costs the cells of its property and no others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dropout_course import dropout as _reference_dropout  # noqa: F401  (captured by seal)
from dropout_course import masks as _reference_masks  # noqa: F401  (captured by seal)
from dropout_course import variants as _reference_variants  # noqa: F401  (captured by seal)
from dropout_course._validate import broadcasts_within_rank
from dropout_course.bounds import FALSE_FAIL, chi_square_interval, normal_mean_tolerance

from .framework import Assignment, BoundFunction, CheckFailure
from .properties import (
    adjacent_agreement,
    as_array,
    close,
    nonzero_inputs,
    require,
    require_count,
    unpack_pair,
)

ASSIGNMENT = Assignment(
    "ch6_beyond_dense",
    notebook="beyond_dense",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
        "dropout_course.variants",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check


# Tail bounds, and draws that come from rng -----------------------------------------------------


def gaussian_dropout_std(p: float) -> float:
    """sqrt(p / (1 - p)): the standard deviation of the inverted Bernoulli factor m / (1 - p)."""
    return math.sqrt(p / (1 - p))


def _require_drawn_from_rng(
    draw: Callable[[np.random.Generator], Any], seed: int, *, what: str
) -> None:
    """``draw(rng)`` depends on rng alone: equal for two generators with one seed, new each call.

    Two independent draws as used here are equal with probability < 1e-100 (masks: (q^2 +
    (1 - q)^2)^n with n >= 2000 draws; continuous noise: 0).
    """
    require(
        np.array_equal(draw(np.random.default_rng(seed)), draw(np.random.default_rng(seed))),
        f"{what} gave different results for two generators with the same seed: take every "
        "random number from the rng argument (not np.random.* or a new default_rng())",
    )
    rng = np.random.default_rng(seed)
    require(
        not np.array_equal(draw(rng), draw(rng)),
        f"two calls of {what} with the same rng gave the same result: draw from rng, do not "
        "reseed it",
    )


# Masks shared along some axes -------------------------------------------------------------------


@dataclass(frozen=True)
class SharedMask:
    """A mask with one draw per unit along ``drawn_axes``, shared along the other axes.

    Attributes:
        function: the student's function, e.g. "channel_mask".
        drawn_axes: the axes with one draw per index, e.g. (0, 1) for (example, channel).
        layout: the activations' axes as text, e.g. "(N, C, *spatial)".
        unit: what one draw belongs to, e.g. "(example, channel)".
        shared_over: what shares a draw, e.g. "spatial position".
        axis_names: plural name of each drawn axis, e.g. {0: "examples", 1: "channels"}.
    """

    function: str
    drawn_axes: tuple[int, ...]
    layout: str
    unit: str
    shared_over: str
    axis_names: dict[int, str]

    def shared_axes(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The axes of activations of ``shape`` along which one draw is shared."""
        return tuple(axis for axis in range(len(shape)) if axis not in self.drawn_axes)

    def mask_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The mask's shape: the activations' sizes on the drawn axes, 1 on the shared ones."""
        return tuple(size if axis in self.drawn_axes else 1 for axis, size in enumerate(shape))

    def draws_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of the draws alone, e.g. (N, C)."""
        return tuple(shape[axis] for axis in self.drawn_axes)

    def call(self, mask_fn: BoundFunction, shape: tuple[int, ...], p: float, rng) -> np.ndarray:
        """The student's mask as a bool array of the shape it has, after checking it holds 0/1."""
        what = f"{self.function}({shape}, p={p:g}, rng)"
        mask = as_array(mask_fn(shape, p, rng), what=f"the result of {what}")
        require(
            bool(np.all((mask == 0) | (mask == 1))),
            f"{what} returned values other than 0 and 1: a mask only marks what is kept (1/True) "
            "and dropped (0/False); the 1/(1-p) scaling belongs to the forward pass",
        )
        return mask == 1

    def shape_mistakes(self, got: tuple[int, ...], shape: tuple[int, ...]) -> list[str]:
        """What is wrong with a mask of shape ``got`` for activations of ``shape``, in words."""
        if got == self.draws_shape(shape) and got != self.mask_shape(shape):
            return [
                "keep the size-1 axes (np.reshape or keepdims) so the mask broadcasts against "
                f"activations {self.layout}"
            ]
        if len(got) != len(shape):
            return [f"the mask must have the activations' rank {len(shape)}"]
        mistakes = [
            f"it has one entry for all {self.axis_names[axis]} (axis {axis}): each of them needs "
            "its own draw"
            for axis in self.drawn_axes
            if got[axis] == 1 and shape[axis] > 1
        ]
        separate = [
            str(axis)
            for axis in self.shared_axes(shape)
            if got[axis] == shape[axis] and shape[axis] > 1
        ]
        if separate:
            mistakes.append(
                f"it has a separate entry per {self.shared_over} (axis {', '.join(separate)}): "
                f"draw once per {self.unit} and let that draw broadcast over every "
                f"{self.shared_over}"
            )
        return mistakes

    def aligned(self, mask: np.ndarray, shape: tuple[int, ...], *, what: str) -> np.ndarray:
        """``mask`` with the activations' rank (size-1 axes added to a mask of the draws' shape).

        Raises ``CheckFailure`` if it cannot broadcast against the activations.
        """
        if mask.shape == self.draws_shape(shape) and mask.ndim < len(shape):
            mask = np.expand_dims(mask, self.shared_axes(shape))
        if not broadcasts_within_rank(mask.shape, shape):
            raise CheckFailure(
                f"{what} has shape {mask.shape}, which does not broadcast against activations of "
                f"shape {shape}: return shape {self.mask_shape(shape)}, one draw per {self.unit}"
            )
        return mask

    def draws(self, mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The draws an aligned ``mask`` holds: its entries at the first index of each shared
        axis (size 1 where the mask has size 1, e.g. (1, C) for a mask shared by the batch)."""
        shared = self.shared_axes(shape)
        return mask[tuple(0 if axis in shared else slice(None) for axis in range(len(shape)))]


CHANNEL = SharedMask(
    "channel_mask",
    drawn_axes=(0, 1),
    layout="(N, C, *spatial)",
    unit="(example, channel)",
    shared_over="spatial position",
    axis_names={0: "examples", 1: "channels"},
)
LOCKED = SharedMask(
    "locked_mask",
    drawn_axes=(0, 2),
    layout="(N, T, D)",
    unit="(sequence, feature)",
    shared_over="time step",
    axis_names={0: "sequences", 2: "features"},
)


def _mask_shape(kind: SharedMask, mask_fn: BoundFunction, shape, p: float, seed: int) -> None:
    """The mask has shape ``kind.mask_shape(shape)``; p = 0 keeps everything, p = 1 nothing."""
    shape = tuple(shape)
    what = f"{kind.function}({shape}, p={p:g}, rng)"
    mask = kind.call(mask_fn, shape, p, np.random.default_rng(seed))
    want = kind.mask_shape(shape)
    if mask.shape != want:
        mistakes = kind.shape_mistakes(mask.shape, shape) or [f"one draw per {kind.unit}"]
        raise CheckFailure(
            f"{what} has shape {mask.shape}, but for activations {kind.layout} = {shape} it must "
            f"have shape {want}: {'; '.join(mistakes)}"
        )
    # p = 0: `rng.random() >= 0` always holds; `rng.random() > 0` fails with probability 2**-53
    # per draw, n * 2**-53 < 1e-9 for the sizes used here.
    require(
        bool(np.all(kind.call(mask_fn, shape, 0.0, np.random.default_rng(seed)))),
        f"{kind.function}({shape}, p=0, rng) must keep everything (p is the probability of "
        "dropping); if it kept nothing, keep and drop are swapped",
    )
    require(
        not np.any(kind.call(mask_fn, shape, 1.0, np.random.default_rng(seed))),
        f"{kind.function}({shape}, p=1, rng) must drop everything",
    )


def _mask_shared(kind: SharedMask, mask_fn: BoundFunction, shape, p: float, seed: int) -> None:
    """Exact: every draw is the same at every position of the shared axes."""
    shape = tuple(shape)
    what = f"{kind.function}({shape}, p={p:g}, rng)"
    mask = kind.aligned(kind.call(mask_fn, shape, p, np.random.default_rng(seed)), shape, what=what)
    shared = kind.shared_axes(shape)
    full = np.broadcast_to(mask, shape)
    first = np.expand_dims(kind.draws(full, shape), shared)  # the draw at the first position
    varying = np.any(full != first, axis=shared)
    if varying.any():
        raise CheckFailure(
            f"{what}: {varying.mean():.0%} of the {kind.unit} pairs are kept at some "
            f"{kind.shared_over}s and dropped at others, but one draw must hold for every "
            f"{kind.shared_over}: draw an array of shape {kind.mask_shape(shape)}, not one number "
            "per element"
        )


def _mask_rate(
    kind: SharedMask, mask_fn: BoundFunction, shape, p_values: Sequence[float], seed: int
) -> None:
    """Each draw keeps with probability 1 - p; the mask is reproducible from rng and fresh."""
    shape = tuple(shape)
    delta = FALSE_FAIL / len(p_values)  # one Bernstein bound per p (union bound)

    def draws(p: float, rng) -> np.ndarray:
        what = f"{kind.function}({shape}, p={p:g}, rng)"
        return kind.draws(kind.aligned(kind.call(mask_fn, shape, p, rng), shape, what=what), shape)

    for i, p in enumerate(p_values):
        kept = draws(p, np.random.default_rng(seed + i))
        require_count(
            int(kept.sum()),
            kept.size,  # the draws the mask holds (fewer if it shares them wrongly)
            1.0 - p,
            delta=delta,
            what=f"fraction of {kind.unit} pairs {kind.function} keeps at p = {p:g}",
            hints={p: "that is p: keep and drop are swapped (keep with probability 1 - p)"},
        )
    _require_drawn_from_rng(
        lambda rng: draws(p_values[0], rng), seed, what=f"{kind.function}({shape}, p, rng)"
    )


def _mask_independent(kind: SharedMask, mask_fn: BoundFunction, shape, p: float, seed: int) -> None:
    """Disjoint neighbours along each drawn axis agree as often as independent draws do."""
    shape = tuple(shape)
    what = f"{kind.function}({shape}, p={p:g}, rng)"
    mask = kind.aligned(kind.call(mask_fn, shape, p, np.random.default_rng(seed)), shape, what=what)
    kept = np.broadcast_to(kind.draws(mask, shape), kind.draws_shape(shape))
    q = 1.0 - p
    delta = FALSE_FAIL / len(kind.drawn_axes)  # one Bernstein bound per axis (union bound)
    for position, axis in enumerate(kind.drawn_axes):
        agree, pairs = adjacent_agreement(kept, position)
        name = kind.axis_names[axis]
        require_count(
            agree,
            pairs,
            q**2 + (1 - q) ** 2,
            delta=delta,
            what=f"{what}: fraction of neighbouring {name} (axis {axis}) that are both kept or "
            "both dropped",
            hints={
                1.0: f"the {name} share their draws: draw one number per {kind.unit}, so the "
                f"mask has size {shape[axis]} on axis {axis}"
            },
        )


@ASSIGNMENT.register("channel_mask")
def channel_mask_shape(channel_mask, *, shape=(8, 5, 6, 7), p=0.4, seed=0) -> None:
    """channel_mask returns a 0/1 mask of shape (N, C, 1, ..., 1); p = 0 keeps all, p = 1 none."""
    _mask_shape(CHANNEL, channel_mask, shape, p, seed)


@ASSIGNMENT.register("channel_mask")
def channel_mask_shared(channel_mask, *, shape=(6, 4, 5, 5), p=0.5, seed=1) -> None:
    """channel_mask keeps or drops whole feature maps: one draw for every position of a channel."""
    _mask_shared(CHANNEL, channel_mask, shape, p, seed)


@ASSIGNMENT.register("channel_mask")
def channel_mask_rate(channel_mask, *, shape=(50, 40, 3, 3), p_values=(0.2, 0.7), seed=2) -> None:
    """channel_mask keeps each (example, channel) with probability 1 - p, reproducibly from rng."""
    _mask_rate(CHANNEL, channel_mask, shape, p_values, seed)


@ASSIGNMENT.register("channel_mask")
def channel_mask_independent(channel_mask, *, shape=(100, 20, 4, 4), p=0.5, seed=3) -> None:
    """channel_mask draws every (example, channel) independently: no mask shared by the batch."""
    _mask_independent(CHANNEL, channel_mask, shape, p, seed)


@ASSIGNMENT.register("locked_mask")
def locked_mask_shape(locked_mask, *, shape=(6, 9, 5), p=0.4, seed=4) -> None:
    """locked_mask returns a 0/1 mask of shape (N, 1, D); p = 0 keeps all, p = 1 none."""
    _mask_shape(LOCKED, locked_mask, shape, p, seed)


@ASSIGNMENT.register("locked_mask")
def locked_mask_shared(locked_mask, *, shape=(8, 12, 6), p=0.5, seed=5) -> None:
    """locked_mask drops the same features of a sequence at every time step."""
    _mask_shared(LOCKED, locked_mask, shape, p, seed)


@ASSIGNMENT.register("locked_mask")
def locked_mask_rate(locked_mask, *, shape=(50, 3, 40), p_values=(0.2, 0.7), seed=6) -> None:
    """locked_mask keeps each (sequence, feature) with probability 1 - p, reproducibly from rng."""
    _mask_rate(LOCKED, locked_mask, shape, p_values, seed)


@ASSIGNMENT.register("locked_mask")
def locked_mask_independent(locked_mask, *, shape=(100, 4, 20), p=0.5, seed=7) -> None:
    """locked_mask draws every (sequence, feature) independently: no mask shared by the batch."""
    _mask_independent(LOCKED, locked_mask, shape, p, seed)


# Gaussian dropout -------------------------------------------------------------------------------


def _wrong_stds(p: float) -> dict[str, tuple[float, str]]:
    """Standard deviations of the noise that classic mistakes give, with what each one means."""
    return {
        "p": (
            p,
            "std = p is the classic slip: the Bernoulli factor m / (1 - p) has variance "
            "p / (1 - p), so the std is sqrt(p / (1 - p))",
        ),
        "p / (1 - p)": (
            p / (1 - p),
            "p / (1 - p) is the variance: take its square root for the standard deviation",
        ),
        "sqrt(p (1 - p))": (
            math.sqrt(p * (1 - p)),
            "sqrt(p (1 - p)) is the std of the 0/1 mask m "
            "itself; the factor m / (1 - p) has variance p / (1 - p)",
        ),
    }


def _require_mean_one(values: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """The mean of iid N(1, p / (1 - p)) draws is 1 (Gaussian tail bound at ``delta``).

    The tolerance uses the larger of the expected and the measured standard deviation, which
    only widens it for a correct implementation (false fail still < ``delta``) and keeps the mean
    test meaningful when the spread is wrong (that costs the variance cell, not this one).
    """
    values = _distinct_draws(values, what=what)
    std = max(gaussian_dropout_std(p), float(values.std()))
    tolerance = normal_mean_tolerance(values.size, std, delta)
    mean = float(values.mean())
    if abs(mean - 1.0) < tolerance:  # NaN fails too
        return
    hint = "Gaussian dropout multiplies x by noise centred at 1, e.g. 1 + std * standard normal"
    if abs(mean) < tolerance:
        hint = (
            "noise centred at 0 is additive noise; Gaussian dropout MULTIPLIES x by noise "
            "centred at 1 (1 + std * standard normal), so that x is unchanged on average"
        )
    elif p > 0 and abs(mean - 1 / (1 - p)) < tolerance:
        hint = "do not divide by 1 - p: the Gaussian factor already has mean 1"
    raise CheckFailure(
        f"{what}: mean {mean:.4f} over {values.size} draws, expected 1 (+- {tolerance:.4f}; a "
        f"correct solution misses by that much with probability < {delta:.0e}): {hint}"
    )


def _require_dropout_variance(values: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """Continuous draws (no exact zeros) with variance p / (1 - p) (chi-square bound, ``delta``).

    For n iid N(mu, s^2) draws, (n - 1) * sample variance / s^2 ~ chi-square(n - 1).
    """
    values = _distinct_draws(values, what=what)
    # A Gaussian draw is exactly 0 with probability < 2**-100 (float32 or float64).
    zeros = int(np.count_nonzero(values == 0))
    require(
        zeros == 0,
        f"{what}: {zeros} of {values.size} factors are exactly 0: that is a Bernoulli mask; "
        "Gaussian dropout multiplies by a continuous normal factor",
    )
    low, high = chi_square_interval(values.size - 1, delta)
    variance, want = float(values.var(ddof=1)), p / (1 - p)
    if low * want <= variance <= high * want:
        return
    message = (
        f"{what}: variance {variance:.4f} over {values.size} draws (std {math.sqrt(variance):.4f}),"
        f" expected p / (1 - p) = {want:.4f} (std {math.sqrt(want):.4f}; a correct solution misses"
        f" [{low * want:.4f}, {high * want:.4f}] with probability < {delta:.0e})"
    )
    for name, (std, meaning) in _wrong_stds(p).items():
        if std > 0 and low * std**2 <= variance <= high * std**2:
            message += f": the noise has std {name}; {meaning}"
            break
    raise CheckFailure(message)


def _distinct_draws(values: np.ndarray, *, what: str) -> np.ndarray:
    """``values`` reduced to its first slice along every axis whose slices are all equal.

    Independent continuous draws are never equal (up to float32 rounding) along a whole axis, so
    this changes nothing for a correct implementation; noise wrongly shared along an axis is
    counted once, so mean and variance are measured on the draws it really holds and only the
    independence check fails.
    """
    for axis in range(values.ndim):
        first = values.take([0], axis=axis)
        if values.shape[axis] > 1 and np.all(close(values, first)):
            values = first
    require(values.size >= 2, f"{what}: every factor is the same; draw one factor per unit")
    return values


def _require_independent_noise(values: np.ndarray, *, delta: float, what: str) -> None:
    """Disjoint neighbours along each axis (of size >= 4) are independent draws.

    For disjoint neighbours a, b of iid N(mu, s^2) draws, a - b and a + b are independent
    N(., 2 s^2), so the ratio of the mean square of a - b (m pairs) to the sample variance of
    a + b is (chi2(m) / m) / (chi2(m - 1) / (m - 1)), whatever mu and s: with each chi-square in
    its interval at delta / (2 axes), the ratio leaves its bounds with probability < delta.
    """
    axes = [axis for axis, size in enumerate(values.shape) if size >= 4]
    for axis in axes:
        moved = np.moveaxis(values, axis, 0)
        a = moved[0 : moved.shape[0] - 1 : 2].ravel()
        b = moved[1 : moved.shape[0] : 2].ravel()
        low_m, high_m = chi_square_interval(a.size, delta / (2 * len(axes)))
        low_d, high_d = chi_square_interval(a.size - 1, delta / (2 * len(axes)))
        low, high = low_m / high_d, high_m / low_d
        ratio = float(np.mean((a - b) ** 2) / np.var(a + b, ddof=1))
        if low <= ratio <= high:  # NaN fails too
            continue
        hint = (
            f"neighbours along axis {axis} are (nearly) equal: they share their noise; draw one "
            "factor per unit, e.g. with rng.standard_normal(shape)"
            if ratio < low
            else f"neighbours along axis {axis} move in opposite directions"
        )
        raise CheckFailure(
            f"{what}: Var(a - b) / Var(a + b) for neighbours a, b along axis {axis} is "
            f"{ratio:.3f}, expected 1 for independent noise (a correct solution leaves "
            f"[{low:.3f}, {high:.3f}] with probability < {delta:.0e}): {hint}"
        )


_SMALL = (8, 5)
"""Shape of the noise drawn where only reproducibility matters (fast for loops too)."""


def _call_noise(gaussian_noise: BoundFunction, shape: tuple[int, ...], p: float, rng) -> np.ndarray:
    """The student's noise as a float64 array of ``shape`` with finite values."""
    what = f"gaussian_noise({shape}, p={p:g}, rng)"
    noise = as_array(gaussian_noise(shape, p, rng), what=f"the result of {what}", shape=shape)
    require(bool(np.all(np.isfinite(noise))), f"{what} returned values that are not finite")
    return noise


@ASSIGNMENT.register("gaussian_noise")
def gaussian_noise_mean(gaussian_noise, *, shape=(200, 100), p_values=(0.3, 0.7), seed=10) -> None:
    """gaussian_noise has the requested shape and mean 1 (p = 0: exactly 1), reproducibly."""
    shape = tuple(shape)
    for i, p in enumerate(p_values):
        noise = _call_noise(gaussian_noise, shape, p, np.random.default_rng(seed + i))
        # One Gaussian tail bound per p (union bound).
        _require_mean_one(
            noise, p, delta=FALSE_FAIL / len(p_values), what=f"gaussian_noise({shape}, p={p:g})"
        )
    still = _call_noise(gaussian_noise, _SMALL, 0.0, np.random.default_rng(seed))
    require(
        bool(np.all(close(still, np.ones(_SMALL)))),
        f"gaussian_noise({_SMALL}, p=0, rng) must be 1 everywhere (no noise at p = 0), but its "
        f"values range from {still.min():.4g} to {still.max():.4g}",
    )
    _require_drawn_from_rng(
        lambda rng: _call_noise(gaussian_noise, _SMALL, p_values[0], rng),
        seed,
        what=f"gaussian_noise({_SMALL}, p, rng)",
    )


@ASSIGNMENT.register("gaussian_noise")
def gaussian_noise_variance(
    gaussian_noise, *, shape=(200, 100), p_values=(0.2, 0.7), seed=11
) -> None:
    """gaussian_noise has variance p / (1 - p), the variance of the Bernoulli factor m / (1 - p)."""
    shape = tuple(shape)
    for i, p in enumerate(p_values):
        noise = _call_noise(gaussian_noise, shape, p, np.random.default_rng(seed + i))
        # One chi-square bound per p (union bound).
        _require_dropout_variance(
            noise, p, delta=FALSE_FAIL / len(p_values), what=f"gaussian_noise({shape}, p={p:g})"
        )


@ASSIGNMENT.register("gaussian_noise")
def gaussian_noise_independent(gaussian_noise, *, shape=(200, 100), p=0.5, seed=12) -> None:
    """gaussian_noise draws every factor independently (no noise shared by examples or units)."""
    shape = tuple(shape)
    noise = _call_noise(gaussian_noise, shape, p, np.random.default_rng(seed))
    _require_independent_noise(noise, delta=FALSE_FAIL, what=f"gaussian_noise({shape}, p={p:g})")


def _call_forward(
    gaussian_dropout_forward: BoundFunction, x: np.ndarray, p: float, **kwargs: Any
) -> tuple[np.ndarray, str]:
    """``(out, call)``: the student's forward on a copy of ``x``, x untouched, out's shape."""
    x_given = x.copy()
    result = gaussian_dropout_forward(x_given, p, **kwargs)
    arguments = ", ".join(
        f"{k}={v!r}" if isinstance(v, bool) else f"{k}={k}" for k, v in kwargs.items()
    )
    call = f"gaussian_dropout_forward(x, p={p:g}, {arguments})"
    out, _ = unpack_pair(result, what=call, names=("out", "cache"))
    require(
        np.array_equal(x_given, x),
        f"{call} changed its input x in place (e.g. `x *= noise`): compute a new array",
    )
    return as_array(out, what=f"out of {call}", shape=x.shape), call


@ASSIGNMENT.register("gaussian_dropout_forward")
def gaussian_forward_train(
    gaussian_dropout_forward, *, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=13
) -> None:
    """Training pass with given noise: out = x * noise, x left untouched."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, dtype)
        noise = 1.0 + gaussian_dropout_std(p) * rng.standard_normal(shape)
        out, call = _call_forward(gaussian_dropout_forward, x, p, train=True, noise=noise)
        x64 = x.astype(np.float64)
        if np.all(close(out, x64 * noise)):
            continue
        ratio = out / (x64 * noise)
        if np.all(close(out, x64 + noise)) or np.all(close(out, x64 + noise - 1.0)):
            hint = (
                "out is x plus noise: Gaussian dropout MULTIPLIES x by the noise (out = x * "
                "noise), so each unit's noise is proportional to its activation, as with masks"
            )
        elif np.all(close(out, x64)):
            hint = "out is x: in training, multiply x by the noise you are given"
        elif np.ptp(ratio) < 1e-4 * max(abs(float(ratio.mean())), 1.0):
            hint = (
                f"out is x * noise times {float(ratio.mean()):.4g}: use the noise as it is (it "
                "already has mean 1, so no 1/(1-p) scaling)"
            )
        else:
            hint = "use the noise you are given (noise=...) instead of drawing new noise"
        raise CheckFailure(f"{call}: out must be x * noise: {hint}")


@ASSIGNMENT.register("gaussian_dropout_forward")
def gaussian_forward_eval(
    gaussian_dropout_forward, *, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=14
) -> None:
    """Evaluation pass: out = x, with no noise and no scaling (even when rng is given)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, dtype)
        for kwargs in ({}, {"rng": np.random.default_rng(seed)}):
            out, call = _call_forward(gaussian_dropout_forward, x, p, train=False, **kwargs)
            require(
                bool(np.all(close(out, x.astype(np.float64)))),
                f"{call} must return x unchanged: evaluation uses the expected "
                "factor, 1, so no noise and no scaling",
            )


@ASSIGNMENT.register("gaussian_dropout_forward")
def gaussian_forward_random(
    gaussian_dropout_forward, *, shape=(200, 100), p=0.4, dtype="float64", seed=15
) -> None:
    """Training pass drawing its own noise: independent factors, mean 1, variance p / (1 - p)."""
    shape = tuple(shape)
    x = np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(dtype)
    x64 = x.astype(np.float64)
    out, call = _call_forward(
        gaussian_dropout_forward, x, p, train=True, rng=np.random.default_rng(seed + 1)
    )
    factors = out / x64
    what = f"factors out / x of {call}"
    # The factors are iid N(1, p / (1 - p)): mean, variance and independence bounds at
    # FALSE_FAIL / 3 each (union bound).
    _require_mean_one(factors, p, delta=FALSE_FAIL / 3, what=what)
    _require_dropout_variance(factors, p, delta=FALSE_FAIL / 3, what=what)
    _require_independent_noise(factors, delta=FALSE_FAIL / 3, what=what)
    small = x[tuple(slice(0, 4) for _ in shape)]
    _require_drawn_from_rng(
        lambda rng: _call_forward(gaussian_dropout_forward, small, p, train=True, rng=rng)[0],
        seed,
        what=f"gaussian_dropout_forward(x, p={p:g}, train=True, rng=rng)",
    )


ASSIGNMENT.seal()
