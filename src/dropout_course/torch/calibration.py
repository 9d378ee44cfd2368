"""Calibration and uncertainty metrics in torch: the twins of :mod:`dropout_course.calibration`.

Chapter 9 (learning the rate, trusting the uncertainty). The same formulas on tensors, on the
device of the input. A scalar metric comes back as a 0-d tensor (``float(...)`` turns it into the
numpy twin's number); ``negative_log_likelihood`` and ``brier_score`` are differentiable in
``probs``. The bins are the numpy twin's edges, so both put every confidence in the same bin.
``gal_tau`` works on plain numbers and is the numpy one.
"""

from __future__ import annotations

import torch

from .._validate import check_in_interval, check_positive
from ..calibration import (
    NLL_EPSILON,
    ReliabilityCurve,
    bin_edges,
    check_labels,
    check_outputs,
    check_probs,
    check_scores,
)
from ..calibration import gal_tau as gal_tau  # a formula on numbers: the same in both twins

# --- classification ------------------------------------------------------------------------------


def negative_log_likelihood(
    probs: torch.Tensor, labels: torch.Tensor, *, eps: float = NLL_EPSILON
) -> torch.Tensor:
    """Mean negative log-likelihood ``-mean_i log max(probs[i, y_i], eps)`` (0-d tensor).

    Args:
        probs: (N, K) predicted class probabilities, rows summing to 1.
        labels: (N,) integer class indices in [0, K), on the device of ``probs``.
        eps: floor in (0, 1) for the probability of the true class.
    """
    check_labels(probs, labels)
    eps = check_in_interval(eps, "eps", 0.0, 1.0, include_low=False, include_high=False)
    true_class = probs[torch.arange(len(labels), device=probs.device), labels]
    return -torch.mean(torch.log(torch.clamp(true_class, min=eps)))


def reliability_curve(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10
) -> ReliabilityCurve:
    """Count, mean confidence and accuracy per confidence bin, as tensors on probs' device.

    ``edges``, ``confidence`` and ``accuracy`` are float64 (NaN for an empty bin), ``counts``
    int64; the bins and the argmax prediction are those of the numpy twin.
    """
    check_labels(probs, labels)
    edges = torch.from_numpy(bin_edges(n_bins)).to(probs.device)
    confidence = probs.max(dim=-1).values.to(torch.float64)
    correct = (probs.argmax(dim=-1) == labels).to(torch.float64)
    bins = torch.bucketize(confidence, edges[1:-1])  # edges[b] < conf <= edges[b + 1]
    counts = torch.bincount(bins, minlength=n_bins)

    def per_bin_mean(values: torch.Tensor) -> torch.Tensor:
        sums = torch.bincount(bins, weights=values, minlength=n_bins)
        return torch.where(counts > 0, sums / counts, torch.nan)

    return ReliabilityCurve(edges, counts, per_bin_mean(confidence), per_bin_mean(correct))


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10
) -> torch.Tensor:
    """ECE ``sum_b (n_b / N) |acc_b - conf_b|`` (0-d float64 tensor): bins weighted by count."""
    curve = reliability_curve(probs, labels, n_bins)
    weights = curve.counts / curve.counts.sum()
    gaps = torch.abs(curve.accuracy - curve.confidence)
    return torch.where(curve.counts > 0, weights * gaps, 0.0).sum()


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Brier score ``mean_i sum_k (probs[i, k] - onehot(y_i)_k)^2`` (0-d tensor), in [0, 2]."""
    check_labels(probs, labels)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return torch.mean(torch.sum((probs - onehot) ** 2, dim=-1))


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum_k probs[:, k] log probs[:, k]`` (N,) in nats, with 0 log 0 = 0."""
    check_probs(probs)
    log_probs = torch.log(torch.where(probs > 0, probs, 1.0))  # log 1 = 0 where probability is 0
    return -torch.sum(probs * log_probs, dim=-1)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n (float64) of ``values`` (n,) in increasing order; ties get their mean rank."""
    _, group, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)
    last_rank = torch.cumsum(counts, dim=0).to(torch.float64)
    return (last_rank - (counts - 1) / 2)[group]


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> torch.Tensor:
    """AUROC of a score meant to be higher on shifted inputs (0-d float64 tensor).

    ``P(score_out > score_in) + P(tie) / 2``: the Mann-Whitney ``U = R_out - n_out (n_out + 1)
    / 2`` over ``n_in n_out``, with average ranks for ties. Arguments as in the numpy twin.
    """
    check_scores(scores_in, "scores_in")
    check_scores(scores_out, "scores_out")
    n_in, n_out = len(scores_in), len(scores_out)
    ranks = average_ranks(torch.cat([scores_in, scores_out]).to(torch.float64))
    u_statistic = ranks[n_in:].sum() - n_out * (n_out + 1) / 2
    return u_statistic / (n_in * n_out)


# --- regression ----------------------------------------------------------------------------------


def regression_predictive(outputs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MC-dropout predictive ``(mean, 1 / tau + variance over passes)``, each (N, ...).

    Args:
        outputs: (T, N, ...) outputs of T >= 1 passes with fresh dropout masks.
        tau: model precision, > 0 (``gal_tau``).
    """
    check_outputs(outputs)
    tau = check_positive(tau, "tau")
    return outputs.mean(dim=0), 1.0 / tau + outputs.var(dim=0, correction=0)
