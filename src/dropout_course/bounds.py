"""Tolerances for statistical checks: a correct implementation fails with probability < delta.

The library's tests and the grading package (``dropout_grading``) both use them. Every
statistical check states beside it which bound it uses and how it splits ``FALSE_FAIL`` over its
sub-tests (a union bound).
"""

from __future__ import annotations

import math

FALSE_FAIL = 1e-9
"""Largest allowed probability that one check fails a correct implementation."""


def binomial_tolerance(n: int, q: float, delta: float = FALSE_FAIL) -> float:
    """Count tolerance t with P(|K - n q| >= t) <= delta for K ~ Binomial(n, q).

    Bernstein's inequality for a sum of n independent variables in [0, 1]:
    P(|K - nq| >= t) <= 2 exp(-t^2 / (2 (n q (1 - q) + t / 3))), solved for t at ``delta``.
    """
    log_term = 2 * math.log(2 / delta)
    variance = n * q * (1 - q)
    return (log_term / 3 + math.sqrt(log_term**2 / 9 + 4 * log_term * variance)) / 2


def mean_tolerance(n: int, bound: float, delta: float = FALSE_FAIL) -> float:
    """Tolerance on the mean of n independent variables in [-bound, bound] (Hoeffding)."""
    return 2 * bound * math.sqrt(math.log(2 / delta) / (2 * n))


def chi_square_interval(k: int, delta: float = FALSE_FAIL) -> tuple[float, float]:
    """(low, high) with P(X / k outside [low, high]) <= delta for X ~ chi-square(k).

    Laurent & Massart (2000, lemma 1): P(X - k >= 2 sqrt(k t) + 2 t) <= exp(-t) and
    P(k - X >= 2 sqrt(k t)) <= exp(-t); each tail gets delta / 2, so t = ln(2 / delta).
    """
    t = math.log(2 / delta)
    return 1 - 2 * math.sqrt(t / k), 1 + 2 * math.sqrt(t / k) + 2 * t / k


def normal_mean_tolerance(n: int, std: float, delta: float = FALSE_FAIL) -> float:
    """Tolerance with P(|mean of n iid N(mu, std^2) - mu| >= tolerance) <= delta.

    The mean is N(mu, std^2 / n), and P(|Z| >= z) <= 2 exp(-z^2 / 2) (Chernoff).
    """
    return std * math.sqrt(2 * math.log(2 / delta) / n)
