"""Dropout variants in torch: the twins of :mod:`dropout_course.variants`, autograd and modules.

* ``gaussian_dropout_forward`` / ``gaussian_dropout_backward``, ``alpha_dropout_forward`` /
  ``alpha_dropout_backward``, ``max_norm``: the numpy contract, on the input's device.
* ``gaussian_dropout`` and ``alpha_dropout``: differentiable functions whose backward is ours.
* ``GaussianDropout`` and ``AlphaDropout``: ``DropoutLayer`` modules, noisy in ``train()`` mode and
  the identity in ``eval()`` mode.
* ``max_norm_``: the in-place max-norm for trainers. ``nn.Linear`` stores its weight transposed,
  as (D_out, D_in), so the incoming weights of a unit are a *row* there: pass ``linear.weight.T``.
"""

from __future__ import annotations

import torch

from .._validate import (
    check_floating,
    check_mask,
    check_positive,
    check_probability,
    check_rank,
    check_same_shape,
    check_shape,
)
from ..variants import (
    ALPHA_PRIME,
    GaussianDropoutCache,
    alpha_dropout_affine,
    check_gaussian_probability,
    gaussian_noise_std,
)
from .dropout import DropoutCache, DropoutLayer, differentiable, dropout_backward
from .masks import check_generator, keep_mask


def gaussian_noise(
    shape: int | tuple[int, ...],
    p: float,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Noise of ``shape`` on ``generator.device`` with mean 1 and variance p / (1 - p)."""
    shape, std = check_shape(shape), gaussian_noise_std(p)
    generator = check_generator(generator)
    normal = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return 1.0 + std * normal


def gaussian_dropout_forward(
    x: torch.Tensor,
    p: float,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, GaussianDropoutCache]:
    """Gaussian dropout forward on x's device; the twin of the numpy function.

    Args:
        x: activations, any shape, floating dtype.
        p: drop probability of the Bernoulli dropout being imitated, in [0, 1).
        train: True for a training step, False for evaluation (identity).
        generator: torch Generator drawing the noise; ignored when ``noise`` is given.
        noise: optional multiplicative noise of x's shape (floating).

    Returns:
        ``(out, cache)`` for ``gaussian_dropout_backward``.
    """
    check_floating(x, "x")
    p = check_gaussian_probability(p)
    if noise is not None:
        check_floating(noise, "noise")
        check_same_shape(noise, x, "noise", "x")
    if not train or (noise is None and p == 0.0):  # the identity: nothing random
        return x.clone(), GaussianDropoutCache(noise=None)
    if noise is None:
        if generator is None:
            raise ValueError(
                "gaussian_dropout_forward needs generator (or explicit noise) when train=True"
            )
        noise = gaussian_noise(tuple(x.shape), p, generator, dtype=x.dtype)
    noise = noise.to(device=x.device, dtype=x.dtype)
    return x * noise, GaussianDropoutCache(noise=noise)


def gaussian_dropout_backward(dout: torch.Tensor, cache: GaussianDropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``: ``dout * noise`` (a copy of ``dout`` after the identity)."""
    check_floating(dout, "dout")
    if cache.noise is None:
        return dout.clone()
    check_same_shape(dout, cache.noise, "dout", "the forward input")
    return dout * cache.noise.to(dtype=dout.dtype)


def alpha_dropout_forward(
    x: torch.Tensor,
    p: float,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DropoutCache]:
    """Alpha dropout forward on x's device; matches ``F.alpha_dropout`` given the same mask.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping a unit, in [0, 1] (1 gives zeros, as in torch).
        train: True for a training step, False for evaluation (identity).
        generator: torch Generator drawing the keep mask; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of x's shape.

    Returns:
        ``(out, cache)`` for ``alpha_dropout_backward`` (a ``DropoutCache`` with scale ``a``).
    """
    check_floating(x, "x")
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, tuple(x.shape))
    if not train or p == 0.0:
        return x.clone(), DropoutCache(mask=None, scale=1.0)
    if p == 1.0:
        return torch.zeros_like(x), DropoutCache(mask=None, scale=0.0)
    if mask is None:
        if generator is None:
            raise ValueError(
                "alpha_dropout_forward needs generator (or an explicit mask) when train=True"
            )
        mask = keep_mask(tuple(x.shape), p, generator)
    mask = mask.to(device=x.device, dtype=torch.bool)
    a, b = alpha_dropout_affine(p)
    out = torch.where(mask, x * a + b, a * ALPHA_PRIME + b)
    return out, DropoutCache(mask=mask, scale=a)


def alpha_dropout_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``: ``dout * mask * a`` (``dropout_backward`` with scale a)."""
    return dropout_backward(dout, cache)


def gaussian_dropout(
    x: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable Gaussian dropout (arguments as ``gaussian_dropout_forward``)."""
    return differentiable(
        gaussian_dropout_forward,
        gaussian_dropout_backward,
        x,
        p=p,
        train=train,
        generator=generator,
        noise=noise,
    )


def alpha_dropout(
    x: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable alpha dropout (arguments as ``alpha_dropout_forward``)."""
    return differentiable(
        alpha_dropout_forward,
        alpha_dropout_backward,
        x,
        p=p,
        train=train,
        generator=generator,
        mask=mask,
    )


def _column_factors(W: torch.Tensor, c: float) -> torch.Tensor:
    """Per-column factors (shape (D_out,)) that bring columns longer than ``c`` to norm ``c``."""
    check_floating(W, "W")
    check_rank(W, "W", (2,), "D_in inputs, D_out units")
    c = check_positive(c, "c")
    norms = torch.linalg.vector_norm(W.detach(), dim=0)
    return c / norms.clamp(min=c)  # min(1, c / |w_j|)


def max_norm(W: torch.Tensor, c: float) -> torch.Tensor:
    """Max-norm constraint: a new tensor where each column of ``W`` longer than ``c`` has norm c.

    ``W`` has shape (D_in, D_out) for ``x @ W``: unit j's incoming weights are ``W[:, j]``. The
    result is detached: the projection is a step outside the autograd graph.
    """
    return W.detach() * _column_factors(W, c)


def max_norm_(W: torch.Tensor, c: float) -> torch.Tensor:
    """In-place ``max_norm`` (works on parameters and views such as ``linear.weight.T``)."""
    factors = _column_factors(W, c)
    with torch.no_grad():
        W.mul_(factors)
    return W


class GaussianDropout(DropoutLayer):
    """Gaussian dropout layer: multiplies by N(1, p / (1 - p)) noise in ``train()``, identity else.

    Args:
        p: drop probability of the Bernoulli dropout being imitated, in [0, 1).
        generator: torch Generator on the input's device that draws the noise.
    """

    check_p = staticmethod(check_gaussian_probability)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        return gaussian_dropout(x, self.p, train=train, generator=self.generator)


class AlphaDropout(DropoutLayer):
    """Alpha dropout layer for SELU networks (like ``nn.AlphaDropout``, with our generator).

    Args:
        p: probability of dropping a unit, in [0, 1].
        generator: torch Generator on the input's device that draws the masks.
    """

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        return alpha_dropout(x, self.p, train=train, generator=self.generator)
