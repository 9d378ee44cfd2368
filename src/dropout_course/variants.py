"""Dropout variants in numpy: Gaussian dropout, alpha dropout, and the max-norm constraint.

* Gaussian dropout (Srivastava et al., 2014, section 10) multiplies each unit by noise drawn from
  N(1, p / (1 - p)): the same mean (1) and variance as the inverted Bernoulli factor
  ``m / (1 - p)``, so a network sees the same first two moments of noise either way. Evaluation is
  the identity. ``p = 1`` is rejected: the noise variance p / (1 - p) is infinite there.
* Alpha dropout (Klambauer et al., 2017) keeps SELU activations at zero mean and unit variance: a
  dropped unit is set to SELU's negative saturation value ``alpha' = -lambda * alpha`` (not 0), and
  the result is corrected by an affine map ``a * (.) + b``. It matches
  ``torch.nn.functional.alpha_dropout`` given the same mask, including ``p = 1`` (all zeros).
* ``max_norm`` projects a weight matrix onto the max-norm ball (Srivastava et al., 2014): the
  incoming weight vector of each unit is rescaled to L2 norm ``c`` when it is longer.

Chapter 6, book/06_beyond_dense.md (Gaussian and alpha dropout); Chapter 5, book/05_tuning.md
(max-norm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import (
    check_floating,
    check_mask,
    check_positive,
    check_probability,
    check_rank,
    check_rng,
    check_same_shape,
    check_shape,
)
from .dropout import DropoutCache, dropout_backward
from .masks import keep_mask

SELU_ALPHA = 1.6732632423543772
"""SELU's alpha (Klambauer et al., 2017): selu(x) = SELU_SCALE * alpha * (exp(x) - 1), x < 0."""

SELU_SCALE = 1.0507009873554805
"""SELU's lambda: selu(x) = SELU_SCALE * x for x > 0."""

ALPHA_PRIME = -SELU_SCALE * SELU_ALPHA
"""The value alpha dropout gives a dropped unit before the affine correction (about -1.7581)."""


@dataclass(frozen=True)
class GaussianDropoutCache:
    """What ``gaussian_dropout_backward`` needs: the noise (None when the layer was identity)."""

    noise: np.ndarray | None

    @property
    def nbytes(self) -> int:
        """Bytes of array data the cache holds (the stored noise)."""
        return 0 if self.noise is None else int(self.noise.nbytes)


def _check_below_one(p: object, what: str) -> float:
    """``p`` as a float after checking it lies in [0, 1) (``what`` says why 1 is excluded)."""
    p = check_probability(p)
    if p == 1.0:
        raise ValueError(f"{what} needs p in [0, 1), but got p={p!r}")
    return p


def check_gaussian_probability(p: object) -> float:
    """``p`` as a float after checking it is in [0, 1): at p = 1 the noise variance is infinite."""
    return _check_below_one(p, "gaussian dropout (noise variance p / (1 - p) is infinite at p = 1)")


def gaussian_noise_std(p: float) -> float:
    """Standard deviation ``sqrt(p / (1 - p))`` of Gaussian-dropout noise, for p in [0, 1).

    It equals the standard deviation of the inverted Bernoulli factor ``m / (1 - p)``.
    """
    p = check_gaussian_probability(p)
    return math.sqrt(p / (1.0 - p))


def gaussian_noise(shape: int | tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Float64 noise ``1 + sqrt(p / (1 - p)) * eps`` of ``shape``, eps standard normal from
    ``rng``: mean 1 and variance p / (1 - p), for p in [0, 1)."""
    shape, std, rng = check_shape(shape), gaussian_noise_std(p), check_rng(rng)
    return 1.0 + std * rng.standard_normal(shape)


def gaussian_dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray, GaussianDropoutCache]:
    """Gaussian dropout forward: train ``x * noise``, noise ~ N(1, p / (1 - p)); eval ``x``.

    Args:
        x: activations, any shape, floating dtype.
        p: drop probability of the Bernoulli dropout being imitated, in [0, 1) (1 is rejected:
            infinite variance).
        train: True for a training step, False for evaluation (identity).
        rng: numpy Generator drawing the noise; ignored when ``noise`` is given.
        noise: optional multiplicative noise of x's shape (floating), e.g. from ``gaussian_noise``.

    Returns:
        ``(out, cache)``: ``out`` has x's shape and dtype; pass ``cache`` to
        ``gaussian_dropout_backward``.
    """
    check_floating(x, "x")
    p = check_gaussian_probability(p)
    if noise is not None:
        check_floating(noise, "noise")
        check_same_shape(noise, x, "noise", "x")
    if not train or (noise is None and p == 0.0):  # the identity: nothing random
        return x.copy(), GaussianDropoutCache(noise=None)
    if noise is None:
        if rng is None:
            raise ValueError(
                "gaussian_dropout_forward needs rng (or explicit noise) when train=True"
            )
        noise = gaussian_noise(x.shape, p, rng)
    noise = noise.astype(x.dtype, copy=False)
    return x * noise, GaussianDropoutCache(noise=noise)


def gaussian_dropout_backward(dout: np.ndarray, cache: GaussianDropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: ``dout * noise`` (a copy of ``dout`` after the identity)."""
    check_floating(dout, "dout")
    if cache.noise is None:
        return dout.copy()
    check_same_shape(dout, cache.noise, "dout", "the forward input")
    return dout * cache.noise.astype(dout.dtype, copy=False)


def alpha_dropout_affine(p: float) -> tuple[float, float]:
    """Return ``(a, b)`` of alpha dropout's correction ``a * (.) + b``, for p in [0, 1).

    ``a = ((1 - p) * (1 + p * alpha'^2))^(-1/2)`` and ``b = -a * alpha' * p``: for inputs with
    zero mean and unit variance the output again has zero mean and unit variance.
    """
    p = _check_below_one(p, "alpha dropout's affine correction (a is infinite at p = 1)")
    a = 1.0 / math.sqrt((1.0 - p) * (1.0 + p * ALPHA_PRIME**2))
    return a, -a * ALPHA_PRIME * p


def alpha_dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DropoutCache]:
    """Alpha dropout forward pass (for SELU networks), as ``torch.nn.functional.alpha_dropout``.

    Training: kept units become ``a * x + b``, dropped units ``a * alpha' + b`` (see
    ``alpha_dropout_affine``). Evaluation, and ``p = 0``, is the identity. ``p = 1`` gives zeros
    (torch's convention), with a zero gradient.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping a unit, in [0, 1].
        train: True for a training step, False for evaluation.
        rng: numpy Generator drawing the keep mask; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of x's shape.

    Returns:
        ``(out, cache)``: ``out`` has x's shape and dtype. The cache is a ``DropoutCache`` with
        scale ``a``: the gradient of alpha dropout is that of dropout with scale ``a``.
    """
    check_floating(x, "x")
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, x.shape)
    if not train or p == 0.0:
        return x.copy(), DropoutCache(mask=None, scale=1.0)
    if p == 1.0:
        return np.zeros_like(x), DropoutCache(mask=None, scale=0.0)
    if mask is None:
        if rng is None:
            raise ValueError(
                "alpha_dropout_forward needs rng (or an explicit mask) when train=True"
            )
        mask = keep_mask(x.shape, p, rng)
    mask = mask.astype(bool, copy=False)
    a, b = alpha_dropout_affine(p)
    kept = x * x.dtype.type(a) + x.dtype.type(b)
    out = np.where(mask, kept, x.dtype.type(a * ALPHA_PRIME + b))
    return out, DropoutCache(mask=mask, scale=a)


def alpha_dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: ``dout * mask * a`` (``dropout_backward`` with scale a)."""
    return dropout_backward(dout, cache)


def max_norm(W: np.ndarray, c: float) -> np.ndarray:
    """Max-norm constraint: rescale each column of ``W`` whose L2 norm exceeds ``c`` to norm ``c``.

    ``W`` has shape (D_in, D_out) and a layer computes ``x @ W``, so the incoming weight vector of
    output unit j is the column ``w_j = W[:, j]``, which becomes ``w_j * min(1, c / |w_j|)``,
    that is ``w_j * c / max(|w_j|, c)``: columns with norm <= c are unchanged.

    Returns:
        A new array of W's shape and dtype.
    """
    check_floating(W, "W")
    check_rank(W, "W", (2,), "D_in inputs, D_out units")
    c = check_positive(c, "c")
    norms = np.linalg.norm(W, axis=0)  # (D_out,): the length of each unit's incoming weights
    return W * (c / np.maximum(norms, c))
