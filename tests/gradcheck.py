"""Numerical gradients for checking hand-written backward passes (CS231n style)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x`` (x is restored)."""
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
    """Largest elementwise relative error ``|a - b| / max(1e-8, |a| + |b|)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
