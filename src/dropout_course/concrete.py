"""Concrete dropout in numpy: a relaxed Bernoulli mask, so that the rate can be learned.

Chapter 9 (learning the rate, trusting the uncertainty). Gal, Hron and Kendall (2017) replace
the drop indicator ``z ~ Bernoulli(p)`` by its concrete (relaxed Bernoulli) version, a smooth
function of ``p`` and of a uniform draw ``u ~ U(0, 1)``:

    z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)

The temperature ``t`` divides the *whole* sum inside the sigmoid, the log-odds of ``p`` plus the
logistic noise ``log u - log(1 - u)``; it scales neither the noise alone nor the sigmoid's output.
For every ``t``, ``z > 1/2`` exactly when ``u > 1 - p`` (probability ``p``); as ``t -> 0``, ``z``
tends to that 0/1 indicator, the Bernoulli mask. The paper's ``p`` is, like the course's, the
probability of *dropping*: a unit is kept by ``1 - z``, and the output is scaled inverted,
``x * (1 - z) / (1 - p)``.

The rate is learned by minimising the loss plus ``concrete_regularizer``, the KL term of the
variational objective divided by the number of training examples N (see its docstring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_in_interval,
    check_positive,
    check_rank,
    check_rng,
    check_same_shape,
    check_shape,
)

DEFAULT_TEMPERATURE = 0.1
"""The temperature of the relaxation used by Gal, Hron and Kendall (2017)."""


# --- argument checks, shared with the torch twins -----------------------------------------------


def check_open_probability(p: Any, name: str = "p") -> float:
    """Return ``p`` as a float in (0, 1): the log-odds ``log p - log(1 - p)`` must be finite."""
    return check_in_interval(p, name, 0.0, 1.0, include_low=False, include_high=False)


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float after checking it is finite and > 0."""
    return check_positive(temperature, "temperature")


def check_uniform(u: Any) -> None:
    """Raise unless ``u`` is a floating array or tensor with every entry in (0, 1)."""
    check_floating(u, "u")
    if not bool(((u > 0) & (u < 1)).all()):
        raise ValueError("u must hold uniform draws in the open interval (0, 1)")


def check_weights(W: Any, length_scale: Any, n_train: Any) -> tuple[float, int]:
    """Check a (D_in, D_out) floating ``W``; return ``length_scale`` (> 0), ``n_train`` (>= 1)."""
    check_floating(W, "W")
    check_rank(W, "W", (2,), "D_in dropped inputs, D_out outputs")
    return check_positive(length_scale, "length_scale"), check_count(n_train, "n_train", 1)


# --- the relaxed mask ----------------------------------------------------------------------------


def uniform_noise(shape: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Uniform draws (float64) of ``shape`` in the open interval (0, 1).

    ``rng.random`` draws from [0, 1); a draw of exactly 0 (probability 2**-53 each) is moved to the
    smallest positive float, so that ``log u`` stays finite.
    """
    shape, rng = check_shape(shape), check_rng(rng)
    return np.maximum(rng.random(shape), np.finfo(np.float64).tiny)


def relaxed_drop_mask(
    u: np.ndarray, p: float, temperature: float = DEFAULT_TEMPERATURE
) -> np.ndarray:
    """Concrete drop mask ``z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)``.

    Args:
        u: uniform draws in (0, 1), any shape, floating dtype (``uniform_noise``).
        p: probability of dropping, in (0, 1).
        temperature: ``t`` > 0; the smaller, the closer ``z`` is to a 0/1 Bernoulli(p) draw.

    Returns:
        ``z`` of u's shape and dtype, in [0, 1]; 1 means dropped, the keep mask is ``1 - z``.
    """
    check_uniform(u)
    p, t = check_open_probability(p), check_temperature(temperature)
    logits = (math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)) / t
    return np.exp(-np.logaddexp(0.0, -logits))  # sigmoid(logits) = 1 / (1 + e^-logits), stably


def concrete_dropout(
    x: np.ndarray,
    p: float,
    *,
    train: bool = True,
    temperature: float = DEFAULT_TEMPERATURE,
    rng: np.random.Generator | None = None,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """Concrete dropout: ``x * (1 - z) / (1 - p)`` in training, ``x`` at evaluation.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping, in (0, 1).
        train: True for a training step, False for evaluation (no mask, no scaling).
        temperature: ``t`` > 0 of ``relaxed_drop_mask``.
        rng: numpy Generator drawing ``u`` in training; ignored when ``u`` is given.
        u: optional uniform draws in (0, 1) of x's shape, fixing the mask.
    """
    check_floating(x, "x")
    p, temperature = check_open_probability(p), check_temperature(temperature)
    if not train:
        return x
    if u is None:
        if rng is None:
            raise ValueError("concrete_dropout needs rng (or u) in training")
        u = uniform_noise(x.shape, rng)
    check_same_shape(u, x, "u", "x")
    z = relaxed_drop_mask(u, p, temperature)
    return (x * (1 - z) / (1 - p)).astype(x.dtype, copy=False)


# --- the regulariser -----------------------------------------------------------------------------


def weight_regularizer(W: np.ndarray, p: float, *, length_scale: float, n_train: int) -> float:
    """Weight part of the concrete-dropout regulariser, ``l^2 ||W||^2 / (2 N (1 - p))``.

    The paper's KL term for a layer ``x diag(m) M``, keep mask ``m ~ Bernoulli(1 - p)``, holds
    ``l^2 (1 - p) ||M||^2 / 2``; inverted scaling computes ``x diag(m) W / (1 - p)``, so that
    ``M = W / (1 - p)`` and the term is ``l^2 ||W||^2 / (2 (1 - p))``. Args as in
    ``concrete_regularizer``.
    """
    p = check_open_probability(p)
    length_scale, n_train = check_weights(W, length_scale, n_train)
    return float(length_scale**2 * np.sum(W**2) / (2 * n_train * (1 - p)))


def dropout_regularizer(p: float, n_inputs: int, n_train: int) -> float:
    """Entropy part of the concrete-dropout regulariser, ``-K H(p) / N``.

    ``H(p) = -p log p - (1 - p) log(1 - p)`` is the entropy of one Bernoulli drop decision, and
    ``K = n_inputs`` the number of dropped units; the term is lowest at p = 1/2, pulling the
    learned rate away from 0 and 1.
    """
    p = check_open_probability(p)
    n_inputs, n_train = check_count(n_inputs, "n_inputs", 1), check_count(n_train, "n_train", 1)
    entropy = -p * math.log(p) - (1 - p) * math.log(1 - p)
    return -n_inputs * entropy / n_train


def concrete_regularizer(W: np.ndarray, p: float, *, length_scale: float, n_train: int) -> float:
    """Regulariser of one concrete-dropout layer: its KL term (up to a constant) divided by N.

        l^2 ||W||^2 / (2 N (1 - p))  +  (K / N) (p log p + (1 - p) log(1 - p))

    (Gal, Hron and Kendall, 2017, with ``p`` the drop probability and the weights ``W`` of the
    layer that follows inverted-scaled dropout on its K inputs); the second term is ``-K H(p) / N``.

    Args:
        W: (D_in, D_out) weights of the layer whose D_in = K inputs are dropped.
        p: probability of dropping, in (0, 1).
        length_scale: prior length-scale ``l`` of the weights, > 0.
        n_train: number N of training examples, >= 1.
    """
    weights = weight_regularizer(W, p, length_scale=length_scale, n_train=n_train)
    return weights + dropout_regularizer(p, W.shape[0], n_train)
