"""Building blocks for checks: read a student's output, compare it, bound a count, name a mistake.

Each helper raises ``CheckFailure`` (or ``StudentError`` for unusable output) with a message that
says what was measured, what was expected, and a hint. Assignments' check modules are built from
these so messages read alike across the course.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dropout_course.bounds import binomial_tolerance

from .framework import CheckFailure, StudentError

RTOL = 1e-5
"""Relative tolerance of exact comparisons: float32 arithmetic (eps 1.2e-7) passes with room."""


def as_array(value: Any, *, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float64 array, after checking it is numeric (and has ``shape``, if given)."""
    try:
        array = np.asarray(value)
    except Exception as error:  # an object numpy cannot read
        raise StudentError(f"{what} is not an array ({type(value).__name__}: {error})") from None
    if array.dtype.kind not in "biuf":
        raise StudentError(f"{what} must hold numbers, but has dtype {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise CheckFailure(f"{what} has shape {array.shape}, but it must have shape {tuple(shape)}")
    return array.astype(np.float64)


def unpack_pair(result: Any, *, what: str, names: tuple[str, str]) -> tuple[Any, Any]:
    """Split a returned pair such as ``(out, cache)``, or say what came back instead."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"a {type(result).__name__}"
        if isinstance(result, (tuple, list)):
            got += f" of length {len(result)}"
        raise StudentError(
            f"{what} must return a pair ({names[0]}, {names[1]}), but returned {got}"
        )
    return result[0], result[1]


def close(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Elementwise "equal up to float32 rounding" (``RTOL``, and an absolute floor for zeros)."""
    floor = RTOL * max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    return np.abs(actual - expected) <= RTOL * np.abs(expected) + floor


def require(condition: bool, message: str) -> None:
    """Raise ``CheckFailure(message)`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)


def name_factor(factor: float, candidates: Mapping[str, float]) -> str | None:
    """The name of the candidate factor ``factor`` equals (within 1e-3 relative), if any."""
    for name, value in candidates.items():
        if abs(factor - value) <= 1e-3 * max(abs(value), 1e-12):
            return name
    return None


def require_count(
    count: int, n: int, q: float, *, delta: float, what: str, hints: Mapping[float, str]
) -> None:
    """Check ``count`` is a plausible Binomial(n, q) draw (Bernstein: false fail < ``delta``).

    ``hints`` maps other rates to the mistake that would produce them; the nearest one whose own
    tolerance contains the observed count is named in the message.
    """
    tolerance = binomial_tolerance(n, q, delta)
    if abs(count - n * q) < tolerance:
        return
    observed = count / n
    message = (
        f"{what}: observed {observed:.4f} over {n} draws, expected {q:.4f} "
        f"(+- {tolerance / n:.4f}; a correct solution misses by that much with probability "
        f"< {delta:.0e})"
    )
    for rate, hint in hints.items():
        if abs(count - n * rate) < binomial_tolerance(n, rate, delta):
            message += f": {hint}"
            break
    raise CheckFailure(message)


def adjacent_agreement(keep: np.ndarray, axis: int) -> tuple[int, int]:
    """(agreeing pairs, pairs) over disjoint neighbours (0,1), (2,3), ... along ``axis``.

    Disjoint pairs are independent, so for independent units kept with probability q the count
    of agreeing pairs is Binomial(pairs, q^2 + (1 - q)^2); a mask shared along ``axis`` agrees on
    every pair.
    """
    moved = np.moveaxis(keep, axis, 0)
    even = moved[0 : moved.shape[0] - 1 : 2]
    odd = moved[1 : moved.shape[0] : 2]
    return int(np.count_nonzero(even == odd)), int(even.size)


def nonzero_inputs(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Activations with no zeros (|x| in [0.5, 1.5], random signs), so x can be divided out."""
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (signs * rng.uniform(0.5, 1.5, shape)).astype(dtype)


def scale_factors(p: float) -> dict[str, float]:
    """Factors a kept value (unit or weight) may come out multiplied by at drop rate ``p``, right
    or wrong, keyed by the name a message uses ("1/(1-p)" is the inverted training factor)."""
    keep = 1.0 - p
    return {
        "1/(1-p)": 1.0 / keep if keep > 0 else np.inf,
        "1": 1.0,
        "1/p": 1.0 / p if p > 0 else np.inf,
        "p": p,
        "1-p": keep,
    }
