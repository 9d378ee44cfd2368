"""The numerical gradient check (CS231n style): is a hand-written backward pass right?

For a forward pass ``y = f(x)`` and an upstream gradient ``dout`` (the loss's gradient in ``y``),
the backward pass must return the gradient of the scalar ``sum(f(x) * dout)`` with respect to
``x``. ``numerical_gradient`` estimates it by central differences, one entry of ``x`` at a time:

    dx[i] ~ (sum(f(x + h e_i) * dout) - sum(f(x - h e_i) * dout)) / (2 h)

and ``gradient_check`` compares it with an analytic gradient by the largest relative error.
The library's tests, the book (chapter 2) and the grading package all use these two functions.
Dropout with a fixed mask is linear in ``x``, so the difference quotient is exact up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    Args:
        f: the forward pass, called on ``x`` (any shape) with one entry moved by ``+-h``.
        x: the input, float64; each entry is moved in place and restored.
        dout: upstream gradient, shape of ``f(x)``.
        h: step of the central difference.

    Returns:
        float64 array of x's shape.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        plus = np.sum(f(x) * dout)
        flat_x[i] = original - h
        minus = np.sum(f(x) * dout)
        flat_x[i] = original
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest elementwise relative error ``|a - b| / max(1e-8, |a| + |b|)`` (0 for empty)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def gradient_check(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    dout: np.ndarray,
    analytic: np.ndarray,
    h: float = 1e-6,
) -> float:
    """Largest relative error between ``analytic`` and the numerical gradient of ``f`` at ``x``.

    Below about 1e-7 in float64 the backward pass agrees with the forward pass it belongs to.
    """
    return rel_error(analytic, numerical_gradient(f, x, dout, h))
