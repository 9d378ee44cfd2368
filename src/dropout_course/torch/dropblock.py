"""DropBlock in torch, on CPU or CUDA: the twins of :mod:`dropout_course.dropblock`, and a layer.

Chapter 7, book/07_modern_architectures.md; Chapter 6, book/06_beyond_dense.md, explains why
independent pixels are a weak target on correlated feature maps. The seed rate ``gamma``, the
argument checks and the cache type are the numpy module's; the seeds come from ``generator``,
on the generator's device.

* ``expand_seeds``, ``dropblock_mask``, ``dropblock_forward`` / ``dropblock_backward``: the numpy
  contract on tensors (the same masks give the same outputs).
* ``dropblock``: differentiable through ``differentiable``.
* ``DropBlock``: a ``DropoutLayer`` with ``nn.Dropout`` semantics (blocks in ``train()``, identity
  in ``eval()``).
"""

from __future__ import annotations

import torch

from .._validate import (
    check_count,
    check_floating,
    check_mask,
    check_probability,
    check_rank,
    check_shape,
)
from ..dropblock import AXES, check_block_size, dropblock_gamma
from .dropout import DropoutCache, DropoutLayer, differentiable, dropout_backward
from .masks import keep_mask


def expand_seeds(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """Bool drop map (N, C, H, W): each seed at (i, j) drops rows i..i+b-1, columns j..j+b-1.

    ``seeds`` is a bool (or 0/1) map of shape (N, C, H - b + 1, W - b + 1); the result, on its
    device, is the OR of the seed map shifted by each of the ``b**2`` offsets within a block.
    """
    check_rank(seeds, "seeds", (4,), "N, C and the valid region's rows and columns")
    check_mask(seeds, tuple(seeds.shape), "seeds")
    b = check_count(block_size, "block_size", 1)
    seeds = seeds.to(dtype=torch.bool)
    n, c, rows, cols = seeds.shape
    dropped = torch.zeros((n, c, rows + b - 1, cols + b - 1), dtype=torch.bool, device=seeds.device)
    for di in range(b):
        for dj in range(b):
            dropped[:, :, di : di + rows, dj : dj + cols] |= seeds
    return dropped


def dropblock_mask(
    shape: tuple[int, ...], p: float, block_size: int, generator: torch.Generator
) -> torch.Tensor:
    """DropBlock keep mask (True = kept) of ``shape`` (N, C, H, W) on ``generator.device``.

    Seeds are Bernoulli(gamma) draws on the valid region, per example and channel; each drops a
    ``block_size x block_size`` square inside the map (see the numpy ``dropblock_mask``).
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (4,), AXES)
    n, c, height, width = shape
    gamma = dropblock_gamma(p, block_size, height, width)
    valid = (n, c, height - block_size + 1, width - block_size + 1)
    seeds = ~keep_mask(valid, gamma, generator)  # a seed is a unit that dropout at rate gamma drops
    return ~expand_seeds(seeds, block_size)


def dropblock_forward(
    x: torch.Tensor,
    p: float,
    block_size: int,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DropoutCache]:
    """DropBlock forward on x's device; the twin of ``dropout_course.dropblock.dropblock_forward``.

    Args:
        x: activations of shape (N, C, H, W), floating dtype.
        p: drop rate, in [0, 1].
        block_size: side of the dropped squares, an integer in [1, min(H, W)].
        train: True for a training step, False for evaluation (a copy of x).
        generator: torch Generator drawing the mask; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of x's shape.

    Returns:
        ``(out, cache)``: ``out = x * mask * (mask.numel() / mask.sum())`` in training (zeros if
        nothing is kept); the cache holds the mask and that scale.
    """
    check_floating(x, "x")
    check_rank(x, "x", (4,), AXES)
    p = check_probability(p)
    check_block_size(block_size, x.shape[2], x.shape[3])
    if mask is not None:
        check_mask(mask, tuple(x.shape))
    if not train:
        return x.clone(), DropoutCache(mask=None, scale=1.0)
    if mask is None and p == 0.0:  # no seeds: keep all, no generator needed
        mask = torch.ones(x.shape, dtype=torch.bool)
    elif mask is None and generator is None:
        raise ValueError("dropblock_forward needs generator (or an explicit mask) when train=True")
    elif mask is None:
        mask = dropblock_mask(tuple(x.shape), p, block_size, generator)
    mask = mask.to(device=x.device, dtype=torch.bool)
    kept = int(mask.sum())
    scale = mask.numel() / kept if kept > 0 else 0.0
    return x * mask * scale, DropoutCache(mask=mask, scale=scale)


def dropblock_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``: ``dout * mask * scale`` (``dout`` at evaluation)."""
    return dropout_backward(dout, cache)


def dropblock(
    x: torch.Tensor,
    p: float,
    block_size: int,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable DropBlock (same arguments as ``dropblock_forward``); returns the output."""
    return differentiable(
        dropblock_forward,
        dropblock_backward,
        x,
        p=p,
        block_size=block_size,
        train=train,
        generator=generator,
        mask=mask,
    )


class DropBlock(DropoutLayer):
    """DropBlock layer for (N, C, H, W) activations: drops squares in ``train()``, identity else.

    Args:
        p: drop rate, in [0, 1].
        block_size: side of the dropped squares, an integer >= 1 (at most min(H, W) of the input,
            checked on each call).
        generator: torch Generator on the input's device that draws the seeds.
    """

    repr_fields = ("p", "block_size")

    def __init__(self, p: float, block_size: int, generator: torch.Generator):
        super().__init__(p, generator)
        self.block_size = check_count(block_size, "block_size", 1)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        return dropblock(x, self.p, self.block_size, train=train, generator=self.generator)
