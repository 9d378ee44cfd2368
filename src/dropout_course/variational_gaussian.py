"""Gaussian dropout with a learned variance (Kingma et al., 2015), in numpy.

Chapter 9 (learning the rate). Chapter 6's Gaussian dropout multiplies by noise with mean 1 and
variance ``alpha = p / (1 - p)``. Kingma, Salimans and Welling (2015) put that noise on every
weight of a layer, ``w_jk = theta_jk * (1 + sqrt(alpha) * eps_jk)``, and read it as a Gaussian
posterior over the weights; ``alpha`` then becomes a parameter that training can learn, per
layer, per input unit or per weight. Their *local reparameterisation trick* never draws the
weights: given the inputs x (N, D_in), each pre-activation is a sum of independent Gaussian
terms, hence itself Gaussian,

    b_nk ~ N(mean_nk, var_nk),   mean = x theta + bias,   var = (x^2) (alpha * theta^2),

and ``local_reparameterization_forward`` draws ``b = mean + sqrt(var) * eps`` with eps (N, D_out)
standard normal: one number per example and output instead of one per example and weight.

The regulariser is the KL divergence from the weights' posterior to the log-uniform prior, which
depends on ``alpha`` alone and has no closed form; ``kl_approximation`` is the fit of Molchanov,
Ashukha and Vetrov (2017, section 4.2, eq. 14), see its docstring. Training minimises the mean
loss plus ``kl_regularizer`` (the summed KL divided by the number N of training examples).

Not Gal and Ghahramani's "variational dropout" (chapter 8: locked Bernoulli masks): the name
is shared, the methods are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_in_interval,
    check_rank,
    check_rng,
    check_same_shape,
    check_shape,
)

KL_CONSTANTS = (0.63576, 1.87320, 1.48695)
"""``(k1, k2, k3)`` of Molchanov et al. (2017, eq. 14), fitted to the KL by sampling."""


# --- argument checks, shared with the torch twins -----------------------------------------------


def check_layer(x: Any, W: Any, b: Any) -> None:
    """Check x (N, D_in), W (D_in, D_out) and b (D_out,): floating, matching sizes."""
    for value, name in ((x, "x"), (W, "W"), (b, "b")):
        check_floating(value, name)
    check_rank(x, "x", (2,), "N examples, D_in inputs")
    check_rank(W, "W", (2,), "D_in inputs, D_out outputs")
    if x.shape[1] != W.shape[0] or tuple(b.shape) != (W.shape[1],):
        raise ValueError(
            "x (N, D_in), W (D_in, D_out) and b (D_out,) must match, but got shapes "
            f"{tuple(x.shape)}, {tuple(W.shape)} and {tuple(b.shape)}"
        )


def check_log_alpha(log_alpha: Any, weight_shape: tuple[int, ...]) -> None:
    """Check a floating, finite ``log_alpha`` of shape (), (D_in, 1) or (D_in, D_out).

    The three shapes learn one variance per layer, per input unit, or per weight.
    """
    check_floating(log_alpha, "log_alpha")
    allowed = [(), (weight_shape[0], 1), tuple(weight_shape)]
    if tuple(log_alpha.shape) not in allowed:
        raise ValueError(
            f"log_alpha must have shape () (per layer), (D_in, 1) (per input unit) or "
            f"(D_in, D_out) (per weight), i.e. one of {allowed}, but got {tuple(log_alpha.shape)}"
        )
    if not bool((abs(log_alpha) < math.inf).all()):
        raise ValueError("log_alpha must be finite (alpha = exp(log_alpha) in (0, inf))")


# --- alpha and the drop rate ---------------------------------------------------------------------


def log_alpha_for_rate(p: float) -> float:
    """``log alpha`` of the Gaussian noise that matches Bernoulli dropout at rate p in (0, 1).

    ``alpha = p / (1 - p)``, so ``log alpha = log p - log(1 - p)``: the log-odds of dropping.
    """
    p = check_in_interval(p, "p", 0.0, 1.0, include_low=False, include_high=False)
    return math.log(p) - math.log(1 - p)


def equivalent_drop_rate(log_alpha: np.ndarray) -> np.ndarray:
    """The Bernoulli rate with the same noise variance: ``p = alpha / (1 + alpha)``.

    That is ``sigmoid(log alpha)``, the inverse of ``log_alpha_for_rate``.
    """
    check_floating(log_alpha, "log_alpha")
    return np.exp(-np.logaddexp(0.0, -log_alpha))


# --- the layer's forward and backward pass -------------------------------------------------------


@dataclass(frozen=True)
class LocalReparameterizationCache:
    """What the backward pass needs: inputs, weights, alpha, and the training noise (or None).

    Attributes:
        x (N, D_in), W (D_in, D_out): the forward inputs.
        log_alpha: as passed, shape (), (D_in, 1) or (D_in, D_out).
        noise: the standard-normal eps (N, D_out) of a training pass; None at evaluation.
        std: ``sqrt(var)`` (N, D_out) of a training pass; None at evaluation.
    """

    x: np.ndarray
    W: np.ndarray
    log_alpha: np.ndarray
    noise: np.ndarray | None
    std: np.ndarray | None


def local_reparameterization_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    log_alpha: np.ndarray,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray, LocalReparameterizationCache]:
    """A linear layer with Gaussian weight noise: train ``x W + b + sqrt(x^2 (alpha W^2)) eps``.

    Evaluation returns the mean ``x W + b`` (the weights' posterior mean).

    Args:
        x: inputs (N, D_in), floating. W: mean weights (D_in, D_out). b: bias (D_out,).
        log_alpha: log noise variance of each weight: shape () (per layer), (D_in, 1) (per
            input unit) or (D_in, D_out) (per weight).
        train: True for a training step (noisy), False for evaluation (the mean).
        rng: numpy Generator drawing eps in training; ignored when ``noise`` is given.
        noise: optional standard-normal eps (N, D_out), fixing the draw.

    Returns:
        ``(out, cache)``: out (N, D_out) in x's dtype; pass cache to the backward pass.
    """
    check_layer(x, W, b)
    check_log_alpha(log_alpha, W.shape)
    mean = x @ W + b
    if not train:
        return mean, LocalReparameterizationCache(x, W, log_alpha, None, None)
    if noise is None:
        if rng is None:
            raise ValueError("local_reparameterization_forward needs rng (or noise) in training")
        noise = check_rng(rng).standard_normal(mean.shape)
    check_floating(noise, "noise")
    check_same_shape(noise, mean, "noise", "the output x W + b")
    std = np.sqrt(x**2 @ (np.exp(log_alpha) * W**2))
    out = (mean + std * noise).astype(x.dtype, copy=False)
    return out, LocalReparameterizationCache(x, W, log_alpha, noise, std)


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a (D_in, D_out) gradient over the axes that ``shape`` broadcast along."""
    if shape == ():
        return np.asarray(grad.sum())
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def local_reparameterization_backward(
    dout: np.ndarray, cache: LocalReparameterizationCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dW, db, dlog_alpha)`` of ``sum(out * dout)`` for the pass in ``cache``.

    With ``out = mean + std * eps`` and ``var = std^2 = x^2 (alpha W^2)``: ``dvar = dout * eps /
    (2 std)`` (0 where std = 0), then ``dx = dout W^T + 2 x (dvar (alpha W^2)^T)``, ``dW = x^T dout
    + 2 alpha W (x^2)^T dvar``, ``db = sum_n dout`` and ``dlog_alpha = alpha W^2 (x^2)^T dvar``,
    summed to log_alpha's shape.
    """
    check_floating(dout, "dout")
    x, W = cache.x, cache.W
    if dout.shape != (x.shape[0], W.shape[1]):
        raise ValueError(
            f"dout must have the output's shape {(x.shape[0], W.shape[1])}, but got {dout.shape}"
        )
    dx, dW, db = dout @ W.T, x.T @ dout, dout.sum(axis=0)
    dlog_alpha = np.zeros(cache.log_alpha.shape)
    if cache.noise is None:
        return dx, dW, db, dlog_alpha
    alpha = np.exp(cache.log_alpha)
    safe_std = np.where(cache.std > 0, cache.std, 1.0)
    dvar = np.where(cache.std > 0, dout * cache.noise / (2 * safe_std), 0.0)
    x2_dvar = x.T**2 @ dvar  # (D_in, D_out): sum_n x_nj^2 dvar_nk
    dx = dx + 2 * x * (dvar @ (alpha * W**2).T)
    dW = dW + 2 * alpha * W * x2_dvar
    dlog_alpha = _sum_to_shape(alpha * W**2 * x2_dvar, cache.log_alpha.shape)
    return dx, dW, db, dlog_alpha


# --- the regulariser -----------------------------------------------------------------------------


def kl_approximation(log_alpha: np.ndarray) -> np.ndarray:
    """KL from one weight's posterior N(theta, alpha theta^2) to the log-uniform prior, fitted.

        KL(alpha) ~ k1 - k1 sigmoid(k2 + k3 log alpha) + log(1 + 1/alpha) / 2

    with ``(k1, k2, k3) = KL_CONSTANTS`` (Molchanov et al., 2017, section 4.2, eq. 14, who write
    its negative; the constant ``C = -k1`` there makes the KL tend to 0 as alpha -> infinity).
    The KL depends on alpha only, not on theta, and falls as alpha grows: on its own it would
    push the noise to infinity. Kingma et al. (2015) fitted a cubic polynomial in alpha instead,
    valid only for alpha <= 1 (p <= 1/2); this fit holds for every alpha.

    Args:
        log_alpha: floating array, any shape.

    Returns:
        The approximate KL in nats, elementwise, of log_alpha's shape.
    """
    check_floating(log_alpha, "log_alpha")
    k1, k2, k3 = KL_CONSTANTS
    sigmoid = np.exp(-np.logaddexp(0.0, -(k2 + k3 * log_alpha)))
    return k1 - k1 * sigmoid + 0.5 * np.logaddexp(0.0, -log_alpha)


def kl_regularizer(log_alpha: np.ndarray, weight_shape: tuple[int, int], n_train: int) -> float:
    """The layer's KL summed over all its weights, divided by N: the term added to the mean loss.

    Args:
        log_alpha: shape (), (D_in, 1) or (D_in, D_out); it is broadcast to every weight.
        weight_shape: (D_in, D_out) of the layer's weights.
        n_train: number N of training examples, >= 1.
    """
    weight_shape = check_shape(weight_shape, "weight_shape")
    if len(weight_shape) != 2:
        raise ValueError(f"weight_shape must be (D_in, D_out), but got {weight_shape}")
    check_log_alpha(log_alpha, weight_shape)
    n_train = check_count(n_train, "n_train", 1)
    per_weight = np.broadcast_to(kl_approximation(log_alpha), weight_shape)
    return float(per_weight.sum() / n_train)
