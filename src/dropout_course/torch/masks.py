"""Dropout masks in torch, on CPU or CUDA: the twins of :mod:`dropout_course.masks`.

Chapter 2, book/02_inverted_scaling.md (keep masks), and Chapter 6, book/06_beyond_dense.md
(channel and locked masks). As in numpy, a unit is kept when a uniform draw ``u`` from [0, 1)
satisfies ``u >= p``; the draws come from ``generator``, on the generator's device. The seeded
masks of the low-memory dropout are in :mod:`dropout_course.torch.fast`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_probability, check_rank, check_shape


def check_generator(generator: object) -> torch.Generator:
    """Return ``generator`` after checking it is a ``torch.Generator``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"but got {type(generator).__name__}"
        )
    return generator


def check_linear(layer: object) -> nn.Linear:
    """Return ``layer`` after checking it is an ``nn.Linear`` (the layer a learned rate wraps)."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"layer must be an nn.Linear, but got {type(layer).__name__}")
    return layer


def keep_mask(shape: int | tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask of ``shape`` on ``generator.device``, True (keep) with probability ``1 - p``.

    Args:
        shape: shape of the mask, usually the shape of the activations (N, D).
        p: probability of dropping a unit, in [0, 1].
        generator: torch Generator; the mask is reproducible from its state.
    """
    shape, p, generator = check_shape(shape), check_probability(p), check_generator(generator)
    return torch.rand(shape, generator=generator, device=generator.device) >= p


def channel_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Spatial-dropout mask (N, C, 1, ..., 1) for activations of ``shape`` (N, C, *spatial)."""
    shape = check_shape(shape)
    check_rank(shape, "shape", (3, 4, 5), "N, C and 1-3 spatial axes")
    return keep_mask(shape[:2] + (1,) * (len(shape) - 2), p, generator)


def locked_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Locked (variational) mask (N, 1, D) for sequences of ``shape`` (N, T, D)."""
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, D features")
    return keep_mask((shape[0], 1, shape[2]), p, generator)
