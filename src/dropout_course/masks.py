"""Dropout masks in numpy: which units survive a training step.

A *keep mask* holds True where a unit is kept, which happens with probability ``1 - p``
(``p`` is the probability of dropping, as in PyTorch). Three shapes of mask matter in practice:

* ``keep_mask``: one independent draw per unit (standard dropout; Chapter 2,
  book/02_inverted_scaling.md);
* ``channel_mask``: one draw per (sample, channel), shared over the spatial axes (spatial dropout;
  Chapter 6, book/06_beyond_dense.md);
* ``locked_mask``: one draw per (sequence, feature), shared over time steps (variational dropout;
  Chapter 6).

A unit is kept when a uniform draw ``u`` from [0, 1) satisfies ``u >= p``, which happens with
probability ``1 - p``. The seeded, chunked and threaded masks a framework uses to go fast are in
:mod:`dropout_course.fast`.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_probability, check_rank, check_rng, check_shape


def keep_mask(shape: int | tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Bool mask of ``shape``, True (keep) independently with probability ``1 - p``.

    Args:
        shape: shape of the mask, usually the shape of the activations (N, D).
        p: probability of dropping a unit, in [0, 1].
        rng: numpy Generator; the mask is reproducible from its state.
    """
    shape, p, rng = check_shape(shape), check_probability(p), check_rng(rng)
    return rng.random(shape) >= p


def channel_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Spatial-dropout mask for activations of ``shape`` (N, C, *spatial): one draw per channel.

    Returns a bool mask of shape (N, C, 1, ..., 1) that broadcasts over the spatial axes, so a
    whole feature map is kept or dropped together.
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3, 4, 5), "N, C and 1-3 spatial axes")
    return keep_mask(shape[:2] + (1,) * (len(shape) - 2), p, rng)


def locked_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Locked (variational) mask for sequences of ``shape`` (N, T, D): one draw per sequence.

    Returns a bool mask of shape (N, 1, D): each sequence drops the same features at every time
    step, which is what recurrent networks need (Gal & Ghahramani, 2016).
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, D features")
    return keep_mask((shape[0], 1, shape[2]), p, rng)
