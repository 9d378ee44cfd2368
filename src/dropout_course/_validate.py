"""Argument checks shared by every function, numpy and torch alike.

Each check names the argument it rejects and the allowed range, so a student or reader who passes
bad input learns what to change. The checks accept numpy arrays and torch tensors (anything with
``shape`` and ``dtype``); they never import torch. ``draw_seed`` checks an ``rng`` and draws a
seed from it, for functions that derive their own generator from the caller's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCALINGS = ("inverted", "classic")
MAX_SEED = 2**63 - 1


def check_probability(p: Any, name: str = "p") -> float:
    """Return ``p`` as a float after checking it lies in [0, 1] (NaN is rejected)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number in [0, 1], but got {type(p).__name__}")
    value = float(p)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {name}={p!r}")
    return value


def check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, but got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result) or result <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, but got {name}={value!r}")
    return result


def check_in_interval(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    include_low: bool = True,
    include_high: bool = True,
) -> float:
    """Return ``value`` as a float after checking it lies in the interval from low to high.

    The message writes the interval as ``[0, 1)`` and so on (``high`` may be ``math.inf``).
    """
    interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        kind = type(value).__name__
        raise TypeError(f"{name} must be a real number in {interval}, but got {kind}")
    result = float(value)
    above_low = result >= low if include_low else result > low
    below_high = result <= high if include_high else result < high
    if math.isnan(result) or not (above_low and below_high):
        raise ValueError(f"{name} must be in {interval}, but got {name}={value!r}")
    return result


def check_count(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int after checking ``low <= value <= high`` (None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, but got {type(value).__name__}")
    result = int(value)
    if result < low or (high is not None and result > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, but got {name}={value!r}")
    return result


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an int after checking it is an integer in [0, 2**63 - 1]."""
    return check_count(seed, "seed", 0, MAX_SEED)


def check_rng(rng: Any) -> np.random.Generator:
    """Return ``rng`` after checking it is a ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"but got {type(rng).__name__}"
        )
    return rng


def draw_seed(rng: np.random.Generator) -> int:
    """Draw a seed in [0, 2**63 - 1] from ``rng`` (advancing it): a stream reproducible from rng."""
    return int(check_rng(rng).integers(0, MAX_SEED, endpoint=True))


def check_callable(value: Any, name: str, what: str) -> Any:
    """Return ``value`` after checking it is callable; ``what`` describes it, e.g. "e.g. a ReLU"."""
    if not callable(value):
        raise TypeError(f"{name} must be a callable ({what}), but got {type(value).__name__}")
    return value


def check_scaling(scaling: Any) -> str:
    """Return ``scaling`` after checking it is 'inverted' or 'classic'."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, but got scaling={scaling!r}")
    return scaling


def check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    """Return ``shape`` as a tuple of non-negative ints (an int means a 1-d shape)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name} must be a tuple of non-negative ints, but got {type(shape).__name__}"
        ) from None
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
            raise ValueError(f"{name} must be a tuple of non-negative ints, but got {shape!r}")
    return tuple(int(d) for d in dims)


def _is_floating(x: Any) -> bool:
    if hasattr(x, "is_floating_point"):  # torch.Tensor
        return bool(x.is_floating_point())
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def check_floating(x: Any, name: str) -> None:
    """Raise TypeError unless ``x`` is a floating-point array or tensor."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array or tensor, but got {type(x).__name__}")
    if not _is_floating(x):
        raise TypeError(f"{name} must have a floating-point dtype, but got dtype {x.dtype}")


def check_rank(x: Any, name: str, ranks: tuple[int, ...], meaning: str) -> None:
    """Raise ValueError unless the rank of ``x`` (an array or a shape) is one of ``ranks``.

    ``meaning`` names the axes, e.g. "N sequences, T steps, D features".
    """
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(x)
    if len(shape) not in ranks:
        raise ValueError(
            f"{name} must have rank {' or '.join(map(str, ranks))} ({meaning}), "
            f"but got shape {shape}"
        )


def broadcasts_within_rank(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """True if ``small`` has the rank of ``shape`` and each axis equals it or is 1."""
    return len(small) == len(shape) and all(s in (1, d) for s, d in zip(small, shape, strict=True))


def check_mask(
    mask: Any,
    shape: tuple[int, ...],
    name: str = "mask",
    *,
    broadcast: bool = False,
    meaning: str | None = None,
) -> None:
    """Raise unless ``mask`` fits ``shape`` and holds only 0/1 (bool, int or float dtype).

    With ``broadcast=True`` the mask may have size-1 axes where ``shape`` does not (channel masks
    of shape (N, C, 1, 1), locked masks of shape (N, 1, D)); it must still have the same rank.
    ``meaning`` says in the error what the required shape stands for (default: one entry per
    unit), e.g. "one draw per example" for a drop-path mask of shape (N, 1).
    """
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise TypeError(f"{name} must be an array or tensor, but got {type(mask).__name__}")
    got, want = tuple(mask.shape), tuple(shape)
    if not (got == want or (broadcast and broadcasts_within_rank(got, want))):
        rule = "the same rank, each axis equal or 1" if broadcast else "one entry per unit"
        rule = meaning or rule
        raise ValueError(f"{name} must have shape {want} ({rule}), but got shape {got}")
    if "complex" in str(mask.dtype):
        raise TypeError(f"{name} must hold 0/1 (bool, int or float), but got dtype {mask.dtype}")
    if "bool" not in str(mask.dtype) and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1 (drop and keep)")


def check_dout(dout: Any, shape: tuple[int, ...]) -> None:
    """Raise unless ``dout`` is floating with the forward input's ``shape`` (a backward pass)."""
    check_floating(dout, "dout")
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(
            f"dout must have the forward input's shape {tuple(shape)}, but got {tuple(dout.shape)}"
        )


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"but got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, but got {name}={value!r}")
    return value
