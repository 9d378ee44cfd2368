"""DropBlock in numpy (Ghiasi, Lin and Le, NeurIPS 2018): drop contiguous squares, not pixels.

Chapter 7, book/07_modern_architectures.md. Chapter 6, book/06_beyond_dense.md, explains why
independent pixels are a weak target on a convolutional feature map: neighbouring units are
correlated, so a dropped pixel is easily filled in from its neighbours. DropBlock drops whole
``block_size x block_size`` squares instead:

1. draw *seeds* independently with rate ``gamma`` (``dropblock_gamma``) at the positions where a
   whole block fits in the map (the valid region, ``(H - block_size + 1) x (W - block_size + 1)``);
2. expand each seed to the square it anchors (``expand_seeds``); the keep mask is the rest;
3. train: ``x * mask * (mask.size / mask.sum())``, the paper's normalisation by the realised
   kept fraction; evaluate: ``x``.

``p`` is the drop rate (the paper writes ``1 - keep_prob``). Seeds are drawn per example and
channel (the paper's per-channel variant), so each feature map gets its own blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_mask,
    check_probability,
    check_rank,
    check_rng,
    check_shape,
)
from .dropout import DropoutCache, dropout_backward
from .masks import keep_mask

AXES = "N examples, C channels, H rows, W columns"


def check_block_size(block_size: Any, height: int, width: int) -> int:
    """Return ``block_size`` as an int after checking it is in [1, min(height, width)]."""
    largest = min(height, width)
    allowed = f"[1, min(H, W)] = [1, {largest}]"
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(
            f"block_size must be an integer in {allowed}, but got {type(block_size).__name__}"
        )
    if not 1 <= block_size <= largest:
        raise ValueError(f"block_size must be in {allowed}, but got block_size={block_size!r}")
    return int(block_size)


def dropblock_gamma(p: float, block_size: int, height: int, width: int) -> float:
    """Seed rate ``gamma`` that makes DropBlock drop about a fraction ``p`` of an H x W map.

        gamma = p / block_size**2 * (H * W) / ((H - block_size + 1) * (W - block_size + 1))

    Each seed drops ``block_size**2`` units, and seeds are drawn only on the valid region, where
    a whole block fits. The formula ignores overlaps between blocks (a unit covered by two blocks
    is dropped once), so the realised drop fraction is a little below ``p`` when
    ``gamma * block_size**2`` is not small; ``expected_drop_fraction`` gives the exact value.
    ``gamma`` never exceeds ``p`` (as ``b (n - b + 1) >= n`` for 1 <= b <= n), so it is a
    probability. With ``block_size = 1``, ``gamma = p``: ordinary dropout.

    Args:
        p: drop rate, in [0, 1].
        block_size: side of the dropped squares, an integer in [1, min(H, W)].
        height, width: the feature map's H and W, integers >= 1.
    """
    p = check_probability(p)
    height, width = check_count(height, "height", 1), check_count(width, "width", 1)
    block_size = check_block_size(block_size, height, width)
    valid = (height - block_size + 1) * (width - block_size + 1)
    return p / block_size**2 * (height * width) / valid


def expected_drop_fraction(p: float, block_size: int, height: int, width: int) -> float:
    """Exact expected fraction of an H x W map that ``dropblock_mask`` drops (overlaps counted).

    A unit at row r is covered by the blocks of ``rows(r)`` seed rows (and likewise columns), so
    it survives with probability ``(1 - gamma) ** (rows(r) * cols(c))``; average over the map.
    """
    gamma = dropblock_gamma(p, block_size, height, width)

    def covering(n: int) -> np.ndarray:  # seed positions i in [0, n - b] with i <= r < i + b
        r = np.arange(n)
        return np.minimum(r, n - block_size) - np.maximum(0, r - block_size + 1) + 1

    counts = np.outer(covering(height), covering(width))
    return float(np.mean(1.0 - (1.0 - gamma) ** counts))


def expand_seeds(seeds: np.ndarray, block_size: int) -> np.ndarray:
    """Bool drop map: each seed at (i, j) drops the square rows i..i+b-1, columns j..j+b-1.

    Args:
        seeds: bool (or 0/1) seed map of shape (N, C, H - b + 1, W - b + 1), the valid region.
        block_size: side ``b`` of the squares, an integer >= 1.

    Returns:
        bool array of shape (N, C, H, W), True where a unit is dropped: the OR of the seed map
        shifted by each of the ``b**2`` offsets within a block.
    """
    check_rank(seeds, "seeds", (4,), "N, C and the valid region's rows and columns")
    check_mask(seeds, tuple(seeds.shape), "seeds")
    b = check_count(block_size, "block_size", 1)
    seeds = np.asarray(seeds, dtype=bool)
    n, c, rows, cols = seeds.shape
    dropped = np.zeros((n, c, rows + b - 1, cols + b - 1), dtype=bool)
    for di in range(b):
        for dj in range(b):
            dropped[:, :, di : di + rows, dj : dj + cols] |= seeds
    return dropped


def dropblock_mask(
    shape: tuple[int, ...], p: float, block_size: int, rng: np.random.Generator
) -> np.ndarray:
    """DropBlock keep mask (True = kept) for activations of ``shape`` (N, C, H, W).

    Seeds are Bernoulli(gamma) draws on the valid region, independently per example and channel
    (the paper's per-channel variant); each seed drops a ``block_size x block_size`` square that
    lies entirely inside the map.

    Args:
        shape: (N, C, H, W).
        p: drop rate, in [0, 1] (the expected dropped fraction is a little below it: see
            ``dropblock_gamma``).
        block_size: side of the squares, an integer in [1, min(H, W)].
        rng: numpy Generator; the mask is reproducible from its state.
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (4,), AXES)
    n, c, height, width = shape
    gamma = dropblock_gamma(p, block_size, height, width)
    rng = check_rng(rng)
    valid = (n, c, height - block_size + 1, width - block_size + 1)
    seeds = ~keep_mask(valid, gamma, rng)  # a seed is a unit that dropout at rate gamma drops
    return ~expand_seeds(seeds, block_size)


def dropblock_forward(
    x: np.ndarray,
    p: float,
    block_size: int,
    *,
    train: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DropoutCache]:
    """DropBlock forward: ``x * mask * (mask.size / mask.sum())`` in training, ``x`` at evaluation.

    The scale is the realised one (count of all units over count of kept ones), as in the paper,
    not ``1 / (1 - p)``; if nothing is kept the output is zeros (scale 0, no division by zero).

    Args:
        x: activations of shape (N, C, H, W), floating dtype.
        p: drop rate, in [0, 1].
        block_size: side of the dropped squares, an integer in [1, min(H, W)].
        train: True for a training step, False for evaluation (a copy of x).
        rng: numpy Generator drawing the mask; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of x's shape.

    Returns:
        ``(out, cache)``: pass the ``DropoutCache`` (mask and scale) to ``dropblock_backward``.
    """
    check_floating(x, "x")
    check_rank(x, "x", (4,), AXES)
    p = check_probability(p)
    check_block_size(block_size, x.shape[2], x.shape[3])
    if mask is not None:
        check_mask(mask, x.shape)
    if not train:
        return x.copy(), DropoutCache(mask=None, scale=1.0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
    elif p == 0.0:  # no seeds: keep all, no rng needed
        mask = np.ones(x.shape, dtype=bool)
    elif rng is None:
        raise ValueError("dropblock_forward needs rng (or an explicit mask) when train=True")
    else:
        mask = dropblock_mask(x.shape, p, block_size, rng)
    kept = int(mask.sum())
    scale = mask.size / kept if kept > 0 else 0.0
    return x * mask * scale, DropoutCache(mask=mask, scale=scale)


def dropblock_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: ``dout * mask * scale`` (``dout`` at evaluation).

    The same rule as ``dropout_backward``, with DropBlock's mask and realised scale.
    """
    return dropout_backward(dout, cache)
