"""Dropout as a forward/backward pair in numpy (CS231n style), inverted and classic.

Training multiplies each unit by a keep mask ``m`` (1 with probability ``1 - p``):

* inverted scaling (the default, PyTorch's): train ``x * m / (1 - p)``, evaluate ``x``;
* classic scaling (Srivastava et al., 2014): train ``x * m``, evaluate ``x * (1 - p)``.

Both make the expected training output equal the evaluation output. With ``p = 1`` every unit is
dropped: the training output is zeros, and no division by ``1 - p = 0`` ever happens.

Two ways to remember the mask for the backward pass:

* ``dropout_forward`` stores the bool mask in its cache (1 byte per unit);
* ``seeded_dropout_forward`` stores only ``(seed, shape, p)``; ``seeded_dropout_backward``
  regenerates the mask from the counter-based generator in :mod:`dropout_course.masks`.
  Given the same mask, both give identical outputs and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import (
    broadcasts_within_rank,
    check_floating,
    check_mask,
    check_probability,
    check_scaling,
    check_shape,
)
from .masks import _keep_chunk, check_seed, draw_seed, keep_threshold, map_chunks


@dataclass(frozen=True)
class DropoutCache:
    """What ``dropout_backward`` needs: the mask (None outside training) and the scale factor."""

    mask: np.ndarray | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of array data the cache holds (the stored mask)."""
        return 0 if self.mask is None else int(self.mask.nbytes)


@dataclass(frozen=True)
class SeededDropoutCache:
    """What ``seeded_dropout_backward`` needs: no mask, only how to regenerate it."""

    seed: int | None
    shape: tuple[int, ...]
    p: float
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of array data the cache holds: always 0, the mask is regenerated."""
        return 0


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


def _scaled(x: np.ndarray, factor: float) -> np.ndarray:
    """``x * factor`` in x's own dtype (a new array, even when factor is 1)."""
    return np.multiply(x, x.dtype.type(factor))


def _apply_mask(x: np.ndarray, mask: np.ndarray, factor: float) -> np.ndarray:
    """``x * mask * factor`` in x's dtype; ``mask`` has x's shape or broadcasts to it."""
    if mask.dtype != bool:
        mask = mask.astype(x.dtype, copy=False)
    if mask.shape != x.shape:  # a channel or locked mask: let numpy broadcast it
        return np.multiply(_scaled(x, factor), mask)
    flat_x, flat_mask = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(mask).reshape(-1)
    out = np.empty_like(flat_x)
    factor_typed = flat_x.dtype.type(factor)

    def work(start: int, stop: int) -> None:  # chunked: each chunk stays in cache
        chunk = out[start:stop]
        np.multiply(flat_x[start:stop], factor_typed, out=chunk)
        np.multiply(chunk, flat_mask[start:stop], out=chunk)

    map_chunks(flat_x.size, work)
    return out.reshape(x.shape)


def dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
) -> tuple[np.ndarray, DropoutCache]:
    """Dropout forward pass.

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
    p, scaling = check_probability(p), check_scaling(scaling)
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        return _scaled(x, eval_scale), DropoutCache(mask=None, scale=eval_scale)
    if mask is not None:
        check_mask(mask, x.shape, broadcast=True)
    elif p in (0.0, 1.0):  # nothing random: keep all, or drop all
        mask = np.full(x.shape, p == 0.0)
    elif rng is None:
        raise ValueError("dropout_forward needs rng (or an explicit mask) when train=True")
    else:
        return seeded_dropout_forward(
            x, p, train=True, seed=draw_seed(rng), scaling=scaling, store_mask=True
        )
    return _apply_mask(x, mask, train_scale), DropoutCache(mask=mask, scale=train_scale)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient of the loss with respect to ``x``, given ``dout`` of the output's shape."""
    check_floating(dout, "dout")
    if cache.mask is None:
        return _scaled(dout, cache.scale)
    if not broadcasts_within_rank(cache.mask.shape, dout.shape):
        raise ValueError(
            f"dout must have the forward input's shape, but got {dout.shape} "
            f"for a mask of shape {cache.mask.shape}"
        )
    return _apply_mask(dout, cache.mask, cache.scale)


def _masked_chunks(
    x: np.ndarray, seed: int, p: float, factor: float, mask_out: np.ndarray | None
) -> np.ndarray:
    """``x * seeded_keep_mask(seed, x.shape, p) * factor``, chunk by chunk (mask saved if asked)."""
    threshold = keep_threshold(p)
    flat_x = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat_x)
    flat_mask = None if mask_out is None else mask_out.reshape(-1)
    factor_typed = flat_x.dtype.type(factor)

    def work(start: int, stop: int) -> None:
        keep = _keep_chunk(seed, threshold, start, stop)
        chunk = out[start:stop]
        np.multiply(flat_x[start:stop], factor_typed, out=chunk)
        np.multiply(chunk, keep, out=chunk)
        if flat_mask is not None:
            flat_mask[start:stop] = keep

    map_chunks(flat_x.size, work)
    return out.reshape(x.shape)


def seeded_dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    seed: int,
    scaling: str = "inverted",
    store_mask: bool = False,
) -> tuple[np.ndarray, DropoutCache | SeededDropoutCache]:
    """Low-memory dropout: the mask is ``seeded_keep_mask(seed, x.shape, p)``, never stored.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping a unit, in [0, 1].
        train: True for a training step, False for evaluation.
        seed: integer in [0, 2**63 - 1] that determines the mask.
        scaling: "inverted" or "classic", as in ``dropout_forward``.
        store_mask: store the mask in a ``DropoutCache`` instead (what ``dropout_forward`` does
            with an ``rng``); by default the cache holds no array at all.

    Returns:
        ``(out, cache)``; pass ``cache`` to ``seeded_dropout_backward`` (or ``dropout_backward``
        when ``store_mask=True``).
    """
    check_floating(x, "x")
    p, scaling, seed = check_probability(p), check_scaling(scaling), check_seed(seed)
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        cache = SeededDropoutCache(seed=None, shape=tuple(x.shape), p=p, scale=eval_scale)
        return _scaled(x, eval_scale), cache
    mask = np.empty(x.shape, dtype=bool) if store_mask else None
    out = _masked_chunks(x, seed, p, train_scale, mask)
    if store_mask:
        return out, DropoutCache(mask=mask, scale=train_scale)
    return out, SeededDropoutCache(seed=seed, shape=tuple(x.shape), p=p, scale=train_scale)


def seeded_dropout_backward(dout: np.ndarray, cache: SeededDropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: regenerates the mask from ``cache.seed`` chunk by chunk."""
    check_floating(dout, "dout")
    check_shape(cache.shape)
    if tuple(dout.shape) != cache.shape:
        raise ValueError(
            f"dout must have the forward input's shape {cache.shape}, but got {dout.shape}"
        )
    if cache.seed is None:
        return _scaled(dout, cache.scale)
    return _masked_chunks(dout, cache.seed, cache.p, cache.scale, None)
