"""Dropout in torch: the twins of :mod:`dropout_course.dropout`, plus autograd and nn.Modules.

* ``dropout_forward`` / ``dropout_backward`` and ``seeded_dropout_forward`` /
  ``seeded_dropout_backward``: the same forward/backward contract as the numpy module, on tensors.
* ``dropout`` and ``seeded_dropout``: autograd functions whose backward *is* the functions above
  (so ``torch.autograd.gradcheck`` checks our backward, not torch's).
* ``Dropout``, ``SeededDropout``, ``ChannelDropout``, ``LockedDropout``: ``nn.Module`` layers that
  follow ``nn.Dropout``: they drop in ``train()`` mode and pass through in ``eval()`` mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validate import (
    broadcasts_within_rank,
    check_floating,
    check_mask,
    check_probability,
    check_rank,
    check_scaling,
)
from ..dropout import output_scales
from ..masks import check_seed
from .masks import channel_mask, draw_seed, keep_mask, locked_mask, seeded_keep_mask


@dataclass(frozen=True)
class DropoutCache:
    """What ``dropout_backward`` needs: the mask (None outside training) and the scale factor."""

    mask: torch.Tensor | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data the cache holds (the stored mask)."""
        return 0 if self.mask is None else self.mask.numel() * self.mask.element_size()


@dataclass(frozen=True)
class SeededDropoutCache:
    """What ``seeded_dropout_backward`` needs: no mask, only how to regenerate it."""

    seed: int | None
    shape: tuple[int, ...]
    p: float
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data the cache holds: always 0, the mask is regenerated."""
        return 0


def _apply_mask(x: torch.Tensor, mask: torch.Tensor, factor: float) -> torch.Tensor:
    """``x * mask * factor`` in x's dtype; ``mask`` has x's shape or broadcasts to it."""
    return x * (mask.to(device=x.device, dtype=x.dtype) * factor)


def dropout_forward(
    x: torch.Tensor,
    p: float,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    scaling: str = "inverted",
) -> tuple[torch.Tensor, DropoutCache]:
    """Dropout forward pass on x's device; the twin of ``dropout_course.dropout.dropout_forward``.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping a unit, in [0, 1].
        train: True for a training step, False for evaluation.
        generator: torch Generator on x's device, drawing the mask when ``mask`` is not given.
        mask: optional keep mask of x's shape (or broadcastable, same rank).
        scaling: "inverted" or "classic".

    Returns:
        ``(out, cache)`` for ``dropout_backward``.
    """
    check_floating(x, "x")
    p, scaling = check_probability(p), check_scaling(scaling)
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        return x * eval_scale, DropoutCache(mask=None, scale=eval_scale)
    if mask is not None:
        check_mask(mask, tuple(x.shape), broadcast=True)
    elif p in (0.0, 1.0):  # nothing random: keep all, or drop all
        mask = torch.full(x.shape, p == 0.0, device=x.device)
    elif generator is None:
        raise ValueError("dropout_forward needs generator (or an explicit mask) when train=True")
    else:
        mask = keep_mask(tuple(x.shape), p, generator)
    return _apply_mask(x, mask, train_scale), DropoutCache(mask=mask, scale=train_scale)


def dropout_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient of the loss with respect to ``x``, given ``dout`` of the output's shape."""
    check_floating(dout, "dout")
    if cache.mask is None:
        return dout * cache.scale
    if not broadcasts_within_rank(tuple(cache.mask.shape), tuple(dout.shape)):
        raise ValueError(
            f"dout must have the forward input's shape, but got {tuple(dout.shape)} "
            f"for a mask of shape {tuple(cache.mask.shape)}"
        )
    return _apply_mask(dout, cache.mask, cache.scale)


def seeded_dropout_forward(
    x: torch.Tensor, p: float, *, train: bool, seed: int, scaling: str = "inverted"
) -> tuple[torch.Tensor, SeededDropoutCache]:
    """Low-memory dropout: the mask is ``seeded_keep_mask(seed, x.shape, p)``, never stored."""
    check_floating(x, "x")
    p, scaling, seed = check_probability(p), check_scaling(scaling), check_seed(seed)
    train_scale, eval_scale = output_scales(p, scaling)
    shape = tuple(x.shape)
    if not train:
        return x * eval_scale, SeededDropoutCache(seed=None, shape=shape, p=p, scale=eval_scale)
    mask = seeded_keep_mask(seed, shape, p, device=x.device)
    out = _apply_mask(x, mask, train_scale)
    return out, SeededDropoutCache(seed=seed, shape=shape, p=p, scale=train_scale)


def seeded_dropout_backward(dout: torch.Tensor, cache: SeededDropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``, regenerating the mask from ``cache.seed``."""
    check_floating(dout, "dout")
    if tuple(dout.shape) != cache.shape:
        raise ValueError(
            f"dout must have the forward input's shape {cache.shape}, but got {tuple(dout.shape)}"
        )
    if cache.seed is None:
        return dout * cache.scale
    mask = seeded_keep_mask(cache.seed, cache.shape, cache.p, device=dout.device)
    return _apply_mask(dout, mask, cache.scale)


class _DropoutFunction(torch.autograd.Function):
    """Autograd wrapper: forward and backward are ``dropout_forward`` / ``dropout_backward``."""

    @staticmethod
    def forward(ctx, x, p, train, generator, mask, scaling):
        out, ctx.dropout_cache = dropout_forward(
            x, p, train=train, generator=generator, mask=mask, scaling=scaling
        )
        return out

    @staticmethod
    def backward(ctx, dout):
        return dropout_backward(dout, ctx.dropout_cache), None, None, None, None, None


class _SeededDropoutFunction(torch.autograd.Function):
    """Autograd wrapper that saves only ``(seed, shape, p)`` between forward and backward."""

    @staticmethod
    def forward(ctx, x, p, train, seed, scaling):
        out, ctx.dropout_cache = seeded_dropout_forward(
            x, p, train=train, seed=seed, scaling=scaling
        )
        return out

    @staticmethod
    def backward(ctx, dout):
        return seeded_dropout_backward(dout, ctx.dropout_cache), None, None, None, None


def dropout(
    x: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    scaling: str = "inverted",
) -> torch.Tensor:
    """Differentiable dropout (same arguments as ``dropout_forward``); returns only the output."""
    return _DropoutFunction.apply(x, p, train, generator, mask, scaling)


def seeded_dropout(
    x: torch.Tensor, p: float, *, seed: int, train: bool = True, scaling: str = "inverted"
) -> torch.Tensor:
    """Differentiable low-memory dropout: backward regenerates the mask from ``seed``."""
    return _SeededDropoutFunction.apply(x, p, train, seed, scaling)


class Dropout(nn.Module):
    """Dropout layer with ``nn.Dropout`` semantics: drops in ``train()``, identity in ``eval()``.

    Args:
        p: probability of dropping a unit, in [0, 1].
        generator: torch Generator on the input's device that draws the masks.
        scaling: "inverted" (default, like ``nn.Dropout``) or "classic".
    """

    def __init__(self, p: float, generator: torch.Generator, scaling: str = "inverted"):
        super().__init__()
        self.p, self.scaling = check_probability(p), check_scaling(scaling)
        self.generator = generator

    def mask_for(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh keep mask for input ``x`` (subclasses change its shape)."""
        return keep_mask(tuple(x.shape), self.p, self.generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return dropout(x, self.p, train=False, scaling=self.scaling)
        mask = self.mask_for(x) if 0.0 < self.p < 1.0 else None
        return dropout(x, self.p, train=True, mask=mask, scaling=self.scaling)

    def extra_repr(self) -> str:
        return f"p={self.p}, scaling={self.scaling!r}"


class ChannelDropout(Dropout):
    """Spatial dropout for (N, C, *spatial) activations: whole channels are kept or dropped."""

    def mask_for(self, x: torch.Tensor) -> torch.Tensor:
        check_rank(x, "x", (3, 4, 5), "N, C and 1-3 spatial axes")
        return channel_mask(tuple(x.shape), self.p, self.generator)


class LockedDropout(Dropout):
    """Variational dropout for (N, T, D) sequences: one mask per sequence, shared over time."""

    def mask_for(self, x: torch.Tensor) -> torch.Tensor:
        check_rank(x, "x", (3,), "N sequences, T steps, D features")
        return locked_mask(tuple(x.shape), self.p, self.generator)


class SeededDropout(nn.Module):
    """Low-memory dropout layer: each call draws a seed from ``generator`` and stores no mask."""

    def __init__(self, p: float, generator: torch.Generator, scaling: str = "inverted"):
        super().__init__()
        self.p, self.scaling = check_probability(p), check_scaling(scaling)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seed = draw_seed(self.generator) if self.training else 0
        return seeded_dropout(x, self.p, seed=seed, train=self.training, scaling=self.scaling)

    def extra_repr(self) -> str:
        return f"p={self.p}, scaling={self.scaling!r}"
