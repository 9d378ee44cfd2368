"""DropConnect in torch: the twins of :mod:`dropout_course.dropconnect`, plus autograd and a layer.

* ``dropconnect_forward`` / ``dropconnect_backward``, ``dropconnect_moments``,
  ``moment_matching_predict`` and ``weight_scaling_predict``: the numpy contract on tensors, on
  the input's device (randomness from a ``torch.Generator`` instead of a numpy ``rng``).
* ``dropconnect``: a differentiable function whose backward *is* ``dropconnect_backward`` (so
  ``torch.autograd.gradcheck`` checks our backward, not torch's).
* ``DropConnectLinear``: a fully connected ``DropoutLayer`` that drops weights in ``train()`` mode
  (one mask per example) and uses the mean weights in ``eval()`` mode.

As in numpy, W has shape (D inputs, M outputs): the transpose of ``nn.Linear.weight``. Naming
trap: EfficientNet-style "drop_connect" is stochastic depth, not this.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .._validate import check_count, check_mask, check_probability
from ..dropconnect import check_activation, check_dout, check_layer
from ..dropout import output_scales
from .dropout import DropoutLayer, differentiable
from .masks import check_generator, keep_mask


@dataclass(frozen=True)
class DropConnectCache:
    """What ``dropconnect_backward`` needs (see the numpy ``DropConnectCache``)."""

    x: torch.Tensor
    W: torch.Tensor
    mask: torch.Tensor | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of the stored mask (x and W belong to the caller)."""
        return 0 if self.mask is None else self.mask.numel() * self.mask.element_size()


def dropconnect_forward(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    p: float,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DropConnectCache]:
    """DropConnect forward on x's device, ``x[n] @ (W * K[n]) / (1 - p) + b``; the numpy twin's
    contract.

    Args:
        x: inputs (N, D), floating. W: weights (D, M), b: bias (M,), both of x's dtype.
        p: probability of dropping a weight, in [0, 1].
        train: True for a training step (one mask per example), False for ``x @ W + b``.
        generator: torch Generator drawing the masks ``keep_mask((N, D, M), p, generator)`` on
            its device; ignored when ``mask`` is given; not needed for p = 0 or p = 1.
        mask: optional keep mask (bool or 0/1) of shape (N, D, M), or broadcastable (same rank).

    Returns:
        ``(out, cache)``: ``out`` (N, M); pass ``cache`` to ``dropconnect_backward``.
    """
    n, d, m = check_layer(x, W, b)
    p = check_probability(p)
    train_scale, _ = output_scales(p, "inverted")
    if not train:  # the mean weights: every weight kept, unscaled
        return x @ W + b, DropConnectCache(x, W, None, 1.0)
    if mask is not None:
        check_mask(mask, (n, d, m), broadcast=True)
    elif p in (0.0, 1.0):  # nothing random: all weights kept, scaled by 1 (p = 0) or 0 (p = 1)
        return x @ W * train_scale + b, DropConnectCache(x, W, None, train_scale)
    elif generator is None:
        raise ValueError(
            "dropconnect_forward needs generator (or an explicit mask) when train=True"
        )
    else:
        mask = keep_mask((n, d, m), p, generator)
    mask = mask.to(device=x.device, dtype=torch.bool)
    out = torch.einsum("nd,ndm->nm", x, W * mask) * train_scale + b
    return out, DropConnectCache(x, W, mask, train_scale)


def dropconnect_backward(
    dout: torch.Tensor, cache: DropConnectCache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dx, dW, db)`` (shapes (N, D), (D, M), (M,)) given ``dout`` (N, M)."""
    x, W, mask, scale = cache.x, cache.W, cache.mask, cache.scale
    check_dout(dout, (len(x), W.shape[1]))
    db = dout.sum(dim=0)
    if mask is None:
        return dout @ W.T * scale, x.T @ dout * scale, db
    dx = torch.einsum("nm,ndm->nd", dout, W * mask) * scale
    dW = torch.einsum("nd,nm,ndm->dm", x, dout, mask.to(x.dtype)) * scale
    return dx, dW, db


def dropconnect_moments(
    x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (each (N, M)) of the training-time pre-activations:
    ``x @ W + b`` and ``p / (1 - p) * (x**2) @ (W**2)``; ``(b, 0)`` at p = 1 (see numpy)."""
    n, _, m = check_layer(x, W, b)
    p = check_probability(p)
    if p == 1.0:  # every weight dropped
        return b.repeat(n, 1), x.new_zeros((n, m))
    return x @ W + b, p / (1.0 - p) * (x**2 @ W**2)


def moment_matching_predict(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    p: float,
    activation: Callable[[torch.Tensor], torch.Tensor],
    *,
    generator: torch.Generator,
    samples: int,
) -> torch.Tensor:
    """Wan et al.'s inference (N, M): average ``activation`` over ``samples`` Gaussian draws of
    each pre-activation, N(mean, var) from ``dropconnect_moments``; draws on the generator's
    device, result on x's device."""
    samples = check_count(samples, "samples", 1)
    check_activation(activation)
    generator = check_generator(generator)
    mean, var = dropconnect_moments(x, W, b, p)
    draws = torch.randn(
        (samples, *mean.shape), generator=generator, device=generator.device, dtype=mean.dtype
    )
    return activation(mean + var.sqrt() * draws.to(mean.device)).mean(dim=0)


def weight_scaling_predict(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    activation: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``activation(x @ W + b)`` (N, M): the eval-mode forward pass (mean weights)."""
    check_layer(x, W, b)
    return check_activation(activation)(x @ W + b)


def dropconnect(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable DropConnect (same arguments as ``dropconnect_forward``); returns ``out``."""
    return differentiable(
        dropconnect_forward,
        dropconnect_backward,
        x,
        W,
        b,
        p=p,
        train=train,
        generator=generator,
        mask=mask,
    )


class DropConnectLinear(DropoutLayer):
    """Fully connected layer with DropConnect: ``x @ weight + bias`` with dropped weights.

    In ``train()`` mode each example gets its own (in_features, out_features) keep mask drawn
    from ``generator`` (N * in * out bytes per call); in ``eval()`` mode it is the plain layer.
    Initialised like ``nn.Linear``, from ``generator``: weight and bias uniform in
    ``[-1/sqrt(in_features), 1/sqrt(in_features)]``, on the generator's device, float32.

    Attributes:
        weight: (in_features, out_features), the transpose of ``nn.Linear.weight``.
        bias: (out_features,).
    """

    repr_fields = ("in_features", "out_features", "p")

    def __init__(self, in_features: int, out_features: int, p: float, generator: torch.Generator):
        super().__init__(p, generator)
        self.in_features = check_count(in_features, "in_features", 1)
        self.out_features = check_count(out_features, "out_features", 1)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = nn.Parameter(self._uniform((self.in_features, self.out_features), bound))
        self.bias = nn.Parameter(self._uniform((self.out_features,), bound))

    def _uniform(self, shape: tuple[int, ...], bound: float) -> torch.Tensor:
        values = torch.empty(shape, device=self.generator.device)
        return values.uniform_(-bound, bound, generator=self.generator)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        return dropconnect(x, self.weight, self.bias, self.p, train=train, generator=self.generator)
