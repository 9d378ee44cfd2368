"""Co-adaptation, in torch: the twins of :mod:`dropout_course.coadaptation`, on the input's device.

Results that are matrices stay on the device of ``hidden`` (float64); scalars are Python floats.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import check_floating
from ..coadaptation import check_ablation, check_hidden, check_logits, check_threshold
from .masks import check_generator


def unit_correlation(hidden: torch.Tensor) -> torch.Tensor:
    """Pearson correlation matrix (H, H), float64, on hidden's device; NaN for dead units."""
    n_units = check_hidden(hidden)[1]
    corr = torch.full((n_units, n_units), torch.nan, dtype=torch.float64, device=hidden.device)
    live = torch.any(hidden != hidden[:1], dim=0)  # some example differs from the first
    if not live.any():  # also when N < 2: no unit varies
        return corr
    units = hidden[:, live].to(torch.float64)
    centered = units - units.mean(dim=0)
    standardized = centered / torch.linalg.vector_norm(centered, dim=0)
    live_corr = torch.clamp(standardized.T @ standardized, -1.0, 1.0)
    live_corr.fill_diagonal_(1.0)  # a unit with itself: exactly 1, not 1 up to rounding
    corr[live[:, None] & live[None, :]] = live_corr.flatten()  # the live rows and columns
    return corr


def mean_abs_correlation(hidden: torch.Tensor) -> float:
    """Mean ``|corr(i, j)|`` over pairs of distinct live units; 0.0 below 2 live units."""
    corr = unit_correlation(hidden)
    live = ~torch.isnan(torch.diagonal(corr))
    n_live = int(live.sum())
    if n_live < 2:
        return 0.0
    distinct_pairs = ~torch.eye(n_live, dtype=torch.bool, device=corr.device)
    return float(corr[live][:, live].abs()[distinct_pairs].mean())


def activation_sparsity(hidden: torch.Tensor, threshold: float = 0.0) -> float:
    """Fraction of the activations (any shape) that are <= ``threshold`` (0.0 when empty)."""
    check_floating(hidden, "hidden")
    threshold = check_threshold(threshold)
    if hidden.numel() == 0:
        return 0.0
    return float(torch.mean(hidden <= threshold, dtype=torch.float64))


def ablation_accuracy(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator,
    trials: int,
) -> float:
    """Accuracy after zeroing k random hidden units (no rescaling), averaged over ``trials``.

    The units are chosen by ``torch.randperm`` on ``generator.device``; ``head`` maps (N, H)
    activations to (N, K) logits. Same arguments and checks as the numpy twin.
    """
    k, trials = check_ablation(head, hidden, y, k, trials)
    generator = check_generator(generator)
    accuracies = []
    for _ in range(trials):
        order = torch.randperm(hidden.shape[1], generator=generator, device=generator.device)
        ablated = hidden.clone()
        ablated[:, order[:k].to(hidden.device)] = 0
        logits = head(ablated)
        check_logits(logits, len(hidden))
        correct = logits.argmax(dim=1) == y.to(logits.device)
        accuracies.append(float(torch.mean(correct, dtype=torch.float64)))
    return sum(accuracies) / trials
