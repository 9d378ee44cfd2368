"""Co-adaptation, in numpy: how hidden units depend on each other, with and without dropout.

Srivastava et al. (2014, section 7) argue that dropout stops units from co-adapting: each unit
must be useful on its own, among random subsets of the others. Three measurements:

* ``unit_correlation`` and ``mean_abs_correlation``: Pearson correlation between the activations
  of distinct hidden units over a batch;
* ``ablation_accuracy``: accuracy after removing (zeroing, without rescaling) k random units; a
  network trained with dropout degrades gracefully;
* ``activation_sparsity``: the fraction of activations at or below a threshold (their figs 7-8).

Chapter 1, book/01_coadaptation.md. A *dead* unit is one whose activation is the same on every
example (zero variance, e.g. a ReLU that never fires): its correlation is undefined, so it is NaN
in ``unit_correlation`` and left out of ``mean_abs_correlation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import (
    check_callable,
    check_count,
    check_floating,
    check_in_interval,
    check_rank,
    check_rng,
)

HIDDEN_AXES = "N examples, H units"


def check_hidden(hidden: Any) -> tuple[int, int]:
    """Return (N, H) after checking ``hidden`` is an (N, H) floating array or tensor."""
    check_floating(hidden, "hidden")
    check_rank(hidden, "hidden", (2,), HIDDEN_AXES)
    return int(hidden.shape[0]), int(hidden.shape[1])


def check_threshold(threshold: Any) -> float:
    """Return ``threshold`` as a float after checking it is a real number (not NaN)."""
    return check_in_interval(threshold, "threshold", -math.inf, math.inf)


def check_ablation(head: Any, hidden: Any, y: Any, k: Any, trials: Any) -> tuple[int, int]:
    """Check the arguments of ``ablation_accuracy``; return ``(k, trials)`` as ints."""
    check_callable(head, "head", "hidden -> logits")
    n_examples, n_units = check_hidden(hidden)
    if n_examples == 0:
        raise ValueError("hidden must hold at least one example to measure an accuracy")
    if not hasattr(y, "shape") or "int" not in str(y.dtype):
        raise TypeError(f"y must be an integer array of class labels, but got {_kind(y)}")
    if tuple(y.shape) != (n_examples,):
        raise ValueError(
            f"y must have shape ({n_examples},) (one label per row of hidden), "
            f"but got hidden {tuple(hidden.shape)} and y {tuple(y.shape)}"
        )
    return check_count(k, "k", 0, n_units), check_count(trials, "trials", 1)


def check_logits(logits: Any, n_examples: int) -> None:
    """Raise unless ``head`` returned (N, K) scores for the N examples."""
    shape = tuple(getattr(logits, "shape", ()))
    if len(shape) != 2 or shape[0] != n_examples:
        raise ValueError(
            f"head must return logits of shape ({n_examples}, K), but returned shape {shape}"
        )


def _kind(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return type(value).__name__ if dtype is None else f"dtype {dtype}"


def unit_correlation(hidden: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix (H, H), float64, of the units' activations over the batch.

    Chapter 1, book/01_coadaptation.md: ``corr[i, j] = sum_n c_ni c_nj / (|c_i| |c_j|)`` with
    ``c_i`` unit i's activations minus their mean, so the matrix is ``s.T @ s`` for the centred
    columns ``s`` scaled to norm 1.

    Args:
        hidden: (N, H) activations, floating dtype.

    Returns:
        ``corr[i, j]`` in [-1, 1], 1 on the diagonal; rows and columns of dead units (the same
        value on every example, including any unit when N < 2) are NaN.
    """
    n_units = check_hidden(hidden)[1]
    corr = np.full((n_units, n_units), np.nan)
    live = np.any(hidden != hidden[:1], axis=0)  # some example differs from the first
    if not live.any():  # also when N < 2: no unit varies
        return corr
    units = hidden[:, live].astype(np.float64)
    centered = units - units.mean(axis=0)
    standardized = centered / np.linalg.norm(centered, axis=0)
    live_corr = np.clip(standardized.T @ standardized, -1.0, 1.0)
    np.fill_diagonal(live_corr, 1.0)  # a unit with itself: exactly 1, not 1 up to rounding
    corr[np.ix_(live, live)] = live_corr
    return corr


def mean_abs_correlation(hidden: np.ndarray) -> float:
    """Mean of ``|corr(i, j)|`` over pairs of distinct live units (i != j), from (N, H)
    activations; dead units are left out, and fewer than 2 live units give 0.0."""
    corr = unit_correlation(hidden)
    live = ~np.isnan(np.diag(corr))
    n_live = int(live.sum())
    if n_live < 2:
        return 0.0
    distinct_pairs = ~np.eye(n_live, dtype=bool)
    return float(np.abs(corr[np.ix_(live, live)])[distinct_pairs].mean())


def activation_sparsity(hidden: np.ndarray, threshold: float = 0.0) -> float:
    """Fraction of the activations (any shape) that are <= ``threshold`` (0.0 when empty)."""
    check_floating(hidden, "hidden")
    threshold = check_threshold(threshold)
    if hidden.size == 0:
        return 0.0
    return float(np.mean(hidden <= threshold))


def ablation_accuracy(
    head: Callable[[np.ndarray], np.ndarray],
    hidden: np.ndarray,
    y: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    trials: int,
) -> float:
    """Accuracy after removing k hidden units chosen at random, averaged over ``trials`` choices.

    A removed unit is set to 0 on every example, without rescaling the others. For a
    ``TinyMLP``: ``ablation_accuracy(partial(logits_from_units, params),
    dropped_units(params, x), y, k, rng=rng, trials=20)``.

    Args:
        head: maps (N, H) hidden activations to (N, K) logits (or probabilities).
        hidden: (N, H) activations, N >= 1, floating dtype.
        y: (N,) integer class labels.
        k: number of units removed, in [0, H].
        rng: numpy Generator choosing the units (k distinct ones per trial).
        trials: number of random choices averaged, >= 1.

    Returns:
        The mean fraction of correct argmax predictions, in [0, 1].
    """
    k, trials = check_ablation(head, hidden, y, k, trials)
    rng = check_rng(rng)
    accuracies = []
    for _ in range(trials):
        ablated = hidden.copy()
        ablated[:, rng.choice(hidden.shape[1], size=k, replace=False)] = 0
        logits = head(ablated)
        check_logits(logits, len(hidden))
        accuracies.append(np.mean(np.argmax(logits, axis=1) == y))
    return float(np.mean(accuracies))
