"""Dropout as a forward/backward pair in numpy (CS231n style), inverted and classic.

Chapter 2, book/02_inverted_scaling.md. Training multiplies each unit by a keep mask ``m``
(1 with probability ``1 - p``):

* inverted scaling (the default, PyTorch's): train ``x * m / (1 - p)``, evaluate ``x``;
* classic scaling (Srivastava et al., 2014): train ``x * m``, evaluate ``x * (1 - p)``.

Both make the expected training output equal the evaluation output (``train_output_moments``
measures it for any forward pass). With ``p = 1`` every unit is dropped: the training output is
zeros, and no division by ``1 - p = 0`` ever happens. The cache keeps the mask for the backward
pass (1 byte per unit); :mod:`dropout_course.fast` gives the same results faster, and a seeded
variant that keeps no mask at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import (
    broadcasts_within_rank,
    check_callable,
    check_count,
    check_floating,
    check_mask,
    check_probability,
    check_rng,
    check_scaling,
)
from .masks import keep_mask


@dataclass(frozen=True)
class DropoutCache:
    """What ``dropout_backward`` needs: the mask (None outside training) and the scale factor."""

    mask: np.ndarray | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of array data the cache holds (the stored mask)."""
        return 0 if self.mask is None else int(self.mask.nbytes)


def output_scales(p: float, scaling: str) -> tuple[float, float]:
    """Return ``(train_scale, eval_scale)``: kept units are multiplied by these factors.

    inverted: ``(1 / (1 - p), 1)``; classic: ``(1, 1 - p)``. For ``p = 1`` the training output is
    all zeros whatever the factor, so inverted returns ``(0, 1)`` instead of dividing by zero.
    """
    p, scaling = check_probability(p), check_scaling(scaling)
    keep = 1.0 - p
    if scaling == "classic":
        return 1.0, keep
    return (1.0 / keep if keep > 0 else 0.0), 1.0


def training_mask(
    x: np.ndarray, p: float, rng: np.random.Generator | None, mask: np.ndarray | None
) -> np.ndarray:
    """The bool keep mask of a training step on ``x``.

    ``mask`` when given (checked; a 0/1 mask of ints or floats becomes bool), all kept or all
    dropped for p of 0 or 1 (no ``rng`` needed), else ``keep_mask(x.shape, p, rng)``.
    """
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, x.shape, broadcast=True)
        return np.asarray(mask, dtype=bool)
    if p in (0.0, 1.0):  # nothing random: keep all, or drop all
        return np.full(x.shape, p == 0.0)
    if rng is None:
        raise ValueError("dropout_forward needs rng (or an explicit mask) when train=True")
    return keep_mask(x.shape, p, rng)


def dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
) -> tuple[np.ndarray, DropoutCache]:
    """Dropout forward pass: ``x * mask * train_scale`` in training, ``x * eval_scale`` else.

    Args:
        x: activations, any shape, floating dtype (float32 or float64).
        p: probability of dropping a unit, in [0, 1].
        train: True for a training step (mask and scale), False for evaluation.
        rng: numpy Generator drawing the mask in training; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of x's shape, or of the same rank with size-1
            axes that broadcast (a channel or locked mask).
        scaling: "inverted" (scale by 1/(1-p) in training) or "classic" (scale by 1-p at eval).

    Returns:
        ``(out, cache)``: ``out`` has x's shape and dtype; pass ``cache`` to ``dropout_backward``.
    """
    check_floating(x, "x")
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        return x * eval_scale, DropoutCache(mask=None, scale=eval_scale)
    mask = training_mask(x, p, rng, mask)
    return x * mask * train_scale, DropoutCache(mask=mask, scale=train_scale)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: ``dout * mask * scale`` (``dout * scale`` at evaluation).

    ``dout`` has the output's shape; the result has its shape and dtype.
    """
    check_floating(dout, "dout")
    if cache.mask is None:
        return dout * cache.scale
    if not broadcasts_within_rank(cache.mask.shape, dout.shape):
        raise ValueError(
            f"dout must have the forward input's shape, but got {dout.shape} "
            f"for a mask of shape {cache.mask.shape}"
        )
    return dout * cache.mask * cache.scale


def train_output_moments(
    forward: Callable[..., tuple[np.ndarray, Any]],
    p_values: Iterable[float],
    n_units: int,
    scaling: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over the units of one training pass of ``forward`` on ones, for each p.

    The experiment of Chapter 2 (book/02_inverted_scaling.md): a pass keeps each unit with
    probability ``q = 1 - p`` and multiplies it by the training scale ``s``, so the mean is near
    ``s q`` (1 inverted, 1 - p classic) and the variance near ``s**2 q (1 - q)`` (p / (1 - p)
    inverted, p (1 - p) classic).

    Args:
        forward: a dropout forward pass with ``dropout_forward``'s arguments, e.g.
            ``dropout_forward``; it is called as ``forward(np.ones(n_units), p, train=True,
            rng=rng, scaling=scaling)`` and returns ``(out, cache)``.
        p_values: the drop probabilities, in order.
        n_units: units in the pass, >= 1.
        scaling: "inverted" or "classic", passed on to ``forward``.
        rng: numpy Generator passed on to ``forward``, which draws the masks from it.

    Returns:
        ``(means, variances)``: float64 arrays with one entry per p (the variance divides by
        ``n_units``).
    """
    check_callable(forward, "forward", "e.g. dropout_forward")
    n_units, scaling = check_count(n_units, "n_units", 1), check_scaling(scaling)
    rng = check_rng(rng)
    means, variances = [], []
    for p in p_values:
        out, _ = forward(np.ones(n_units), p, train=True, rng=rng, scaling=scaling)
        means.append(out.mean())
        variances.append(out.var())
    return np.array(means, dtype=np.float64), np.array(variances, dtype=np.float64)
