"""Dropout in torch: the twins of :mod:`dropout_course.dropout`, plus autograd and nn.Modules.

Chapter 2, book/02_inverted_scaling.md.

* ``dropout_forward`` / ``dropout_backward``: the numpy forward/backward contract, on tensors.
* ``differentiable``: the one bridge from a forward/backward pair to autograd, used by every
  differentiable function of ``dropout_course.torch`` (so ``torch.autograd.gradcheck`` checks our
  backward, not torch's); ``dropout`` is the first.
* ``DropoutLayer``: the base of every dropout ``nn.Module`` here, after the idea of PyTorch's
  ``_DropoutNd``: it checks ``p``, holds the generator, writes ``extra_repr`` and turns
  ``train()`` / ``eval()`` into the ``train`` flag of a forward pass.
* ``Dropout``, ``ChannelDropout``, ``LockedDropout``: layers with ``nn.Dropout`` semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from .masks import channel_mask, check_generator, keep_mask, locked_mask


@dataclass(frozen=True)
class DropoutCache:
    """What ``dropout_backward`` needs: the mask (None outside training) and the scale factor."""

    mask: torch.Tensor | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data the cache holds (the stored mask)."""
        return 0 if self.mask is None else self.mask.numel() * self.mask.element_size()


def training_mask(
    x: torch.Tensor, p: float, generator: torch.Generator | None, mask: torch.Tensor | None
) -> torch.Tensor:
    """The bool keep mask (on x's device) of a training step on ``x``.

    ``mask`` when given (checked), all kept or all dropped for p of 0 or 1 (no ``generator``
    needed), else ``keep_mask(x.shape, p, generator)``.
    """
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, tuple(x.shape), broadcast=True)
    elif p in (0.0, 1.0):  # nothing random: keep all, or drop all
        mask = torch.full(x.shape, p == 0.0, device=x.device)
    elif generator is None:
        raise ValueError("dropout_forward needs generator (or an explicit mask) when train=True")
    else:
        mask = keep_mask(tuple(x.shape), p, generator)
    return mask.to(device=x.device, dtype=torch.bool)


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
        generator: torch Generator drawing the mask when ``mask`` is not given.
        mask: optional keep mask of x's shape (or broadcastable, same rank).
        scaling: "inverted" or "classic".

    Returns:
        ``(out, cache)`` for ``dropout_backward``: ``out = x * mask * train_scale`` in training,
        ``x * eval_scale`` in evaluation.
    """
    check_floating(x, "x")
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        return x * eval_scale, DropoutCache(mask=None, scale=eval_scale)
    mask = training_mask(x, p, generator, mask)
    return x * mask * train_scale, DropoutCache(mask=mask, scale=train_scale)


def dropout_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``: ``dout * mask * scale`` (``dout * scale`` at evaluation)."""
    check_floating(dout, "dout")
    if cache.mask is None:
        return dout * cache.scale
    if not broadcasts_within_rank(tuple(cache.mask.shape), tuple(dout.shape)):
        raise ValueError(
            f"dout must have the forward input's shape, but got {tuple(dout.shape)} "
            f"for a mask of shape {tuple(cache.mask.shape)}"
        )
    return dout * cache.mask * cache.scale


# --- autograd --------------------------------------------------------------------------------


class _Pair(torch.autograd.Function):
    """Autograd function whose forward and backward are a library pair (see ``differentiable``)."""

    @staticmethod
    def forward(ctx, pair, options, *inputs):
        forward, ctx.pair_backward = pair
        out, ctx.cache = forward(*inputs, **options)
        return out

    @staticmethod
    def backward(ctx, dout):
        grads = ctx.pair_backward(dout, ctx.cache)
        return None, None, *(grads if isinstance(grads, tuple) else (grads,))


def differentiable(
    forward: Callable[..., tuple[torch.Tensor, Any]],
    backward: Callable[[torch.Tensor, Any], torch.Tensor | tuple[torch.Tensor, ...]],
    *inputs: torch.Tensor,
    **options: Any,
) -> torch.Tensor:
    """``forward(*inputs, **options)``'s output, with ``backward(dout, cache)`` as its gradient.

    ``forward`` returns ``(out, cache)``; ``backward`` returns the gradient of each of ``inputs``
    (one tensor, or a tuple for several). ``options`` (p, masks, generators...) get no gradient.
    """
    return _Pair.apply((forward, backward), options, *inputs)


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
    return differentiable(
        dropout_forward,
        dropout_backward,
        x,
        p=p,
        train=train,
        generator=generator,
        mask=mask,
        scaling=scaling,
    )


# --- layers ----------------------------------------------------------------------------------


class DropoutLayer(nn.Module):
    """Base of the dropout layers: a checked ``p``, a generator, ``extra_repr``, train()/eval().

    Subclasses implement ``step(x, train=...)``; ``forward`` calls it with ``self.training``, so
    a layer drops in ``train()`` mode and behaves as at evaluation in ``eval()`` mode. ``check_p``
    validates ``p`` (a subclass may narrow it) and ``extra_repr`` shows ``repr_fields``.

    Args:
        p: probability of dropping (a unit, a weight...), in [0, 1].
        generator: torch Generator on the input's device that draws the randomness.
    """

    repr_fields: tuple[str, ...] = ("p",)

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__()
        self.p = self.check_p(p)
        self.generator = check_generator(generator)

    @staticmethod
    def check_p(p: float) -> float:
        """``p`` as a float after checking it is in [0, 1]."""
        return check_probability(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x, train=self.training)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        """The layer's output for ``x`` in training (``train=True``) or evaluation mode."""
        raise NotImplementedError(f"{type(self).__name__} must define step(x, train=...)")

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.repr_fields)


class Dropout(DropoutLayer):
    """Dropout layer with ``nn.Dropout`` semantics: drops in ``train()``, identity in ``eval()``.

    Args:
        p: probability of dropping a unit, in [0, 1].
        generator: torch Generator on the input's device that draws the masks.
        scaling: "inverted" (default, like ``nn.Dropout``) or "classic".
    """

    repr_fields = ("p", "scaling")

    def __init__(self, p: float, generator: torch.Generator, scaling: str = "inverted"):
        super().__init__(p, generator)
        self.scaling = check_scaling(scaling)

    def mask_for(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh keep mask for input ``x`` (subclasses change its shape)."""
        return keep_mask(tuple(x.shape), self.p, self.generator)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        mask = self.mask_for(x) if train and 0.0 < self.p < 1.0 else None
        return dropout(x, self.p, train=train, mask=mask, scaling=self.scaling)


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
