"""How far to trust a predictive distribution, in numpy: calibration and uncertainty metrics.

Chapter 9 (learning the rate, trusting the uncertainty). Classification metrics take predicted class
probabilities ``probs`` (N, K), each row summing to 1 (e.g. the mean of ``mc_dropout_predict``),
and integer ``labels`` (N,) in [0, K):

* ``negative_log_likelihood``: ``-mean_i log max(probs[i, y_i], eps)`` (a zero probability costs
  ``-log eps``, not infinity);
* ``reliability_curve`` and ``expected_calibration_error``: the confidence ``max_k probs[i, k]``
  falls into one of ``n_bins`` equal-width bins ``(b / B, (b + 1) / B]``; per bin, the mean
  confidence ``conf_b`` and the accuracy ``acc_b`` of the argmax prediction (Guo et al., 2017).
  ``ECE = sum_b (n_b / N) |acc_b - conf_b|``: each bin weighted by its count ``n_b``;
* ``brier_score``: ``mean_i sum_k (probs[i, k] - onehot(y_i)_k)^2`` (Brier's multi-class form,
  not divided by K);
* ``predictive_entropy``: ``-sum_k probs[i, k] log probs[i, k]`` per example, with 0 log 0 = 0;
* ``auroc``: how well a score (e.g. the entropy) separates shifted inputs from in-distribution
  ones, the Mann-Whitney statistic with average ranks for ties.

For regression, MC dropout's predictive variance (Gal and Ghahramani, 2016) adds the model
precision ``tau`` (``gal_tau``, from the weight decay) to the spread of the T stochastic passes
(``regression_predictive``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import check_count, check_floating, check_in_interval, check_positive, check_rank

NLL_EPSILON = 1e-12
"""Probabilities below this are clipped to it in ``negative_log_likelihood`` (cost <= 27.7)."""

SUM_TOLERANCE = 1e-4
"""How far a row of ``probs`` may sum from 1 (float32 softmax rounding stays far below this)."""


# --- argument checks, shared with the torch twins -----------------------------------------------


def check_probs(probs: Any) -> None:
    """Raise unless ``probs`` is a floating (N, K) array or tensor of probabilities, N, K >= 1.

    Each entry must lie in [0, 1] and each row sum to 1 within ``SUM_TOLERANCE``.
    """
    check_floating(probs, "probs")
    check_rank(probs, "probs", (2,), "N examples, K class probabilities")
    if probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"probs must hold N >= 1 examples of K >= 1 classes, got {probs.shape}")
    if not bool(((probs >= 0) & (probs <= 1)).all()):
        raise ValueError("probs must hold probabilities in [0, 1] (NaN is rejected)")
    if not bool((abs(probs.sum(-1) - 1) <= SUM_TOLERANCE).all()):
        raise ValueError(
            f"each row of probs must sum to 1 (within {SUM_TOLERANCE:g}): "
            "pass probabilities (a softmax), not logits"
        )


def check_labels(probs: Any, labels: Any) -> None:
    """Raise unless ``probs`` passes ``check_probs`` and ``labels`` is an integer (N,) array or
    tensor of class indices in [0, K)."""
    check_probs(probs)
    n_examples, n_classes = probs.shape
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"labels must be an array or tensor, but got {type(labels).__name__}")
    if "int" not in str(labels.dtype):
        raise TypeError(f"labels must have an integer dtype (class indices), got {labels.dtype}")
    if tuple(labels.shape) != (n_examples,):
        raise ValueError(
            f"labels must have shape ({n_examples},) (one per row of probs), "
            f"but got {tuple(labels.shape)}"
        )
    if not bool(((labels >= 0) & (labels < n_classes)).all()):
        raise ValueError(f"labels must be class indices in [0, {n_classes - 1}] (K={n_classes})")


def check_scores(scores: Any, name: str) -> None:
    """Raise unless ``scores`` is a non-empty, finite, floating (n,) array or tensor."""
    check_floating(scores, name)
    check_rank(scores, name, (1,), "one score per input")
    if scores.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one score")
    if not bool((abs(scores) < float("inf")).all()):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")


def check_outputs(outputs: Any) -> None:
    """Raise unless ``outputs`` is a floating (T, N, ...) stack of T >= 1 stochastic passes."""
    check_floating(outputs, "outputs")
    if len(outputs.shape) < 2 or outputs.shape[0] == 0:
        raise ValueError(
            "outputs must have shape (T, N, ...) (T >= 1 passes, N examples), "
            f"but got {tuple(outputs.shape)}"
        )


def bin_edges(n_bins: int) -> np.ndarray:
    """The ``n_bins + 1`` float64 edges of equal-width bins on [0, 1]; bin b is (e_b, e_b+1]."""
    return np.linspace(0.0, 1.0, check_count(n_bins, "n_bins", 1) + 1)


# --- classification ------------------------------------------------------------------------------


def negative_log_likelihood(
    probs: np.ndarray, labels: np.ndarray, *, eps: float = NLL_EPSILON
) -> float:
    """Mean negative log-likelihood ``-mean_i log max(probs[i, y_i], eps)`` of the labels.

    Args:
        probs: (N, K) predicted class probabilities, rows summing to 1.
        labels: (N,) integer class indices in [0, K).
        eps: floor in (0, 1) for the probability of the true class, so that a confident mistake
            costs ``-log eps`` instead of infinity.
    """
    check_labels(probs, labels)
    eps = check_in_interval(eps, "eps", 0.0, 1.0, include_low=False, include_high=False)
    true_class = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(true_class, eps))))


@dataclass(frozen=True, eq=False)
class ReliabilityCurve:
    """Per-bin statistics of a reliability diagram (numpy arrays, or tensors in the torch twin).

    Attributes:
        edges: (B + 1,) bin edges; bin b holds the confidences in (edges[b], edges[b + 1]].
        counts: (B,) integer number of examples per bin; 0 marks an empty bin.
        confidence: (B,) float64 mean confidence per bin, NaN for an empty bin.
        accuracy: (B,) float64 fraction of correct argmax predictions per bin, NaN when empty.
    """

    edges: Any
    counts: Any
    confidence: Any
    accuracy: Any


def reliability_curve(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> ReliabilityCurve:
    """Count, mean confidence and accuracy of the examples in each of ``n_bins`` confidence bins.

    The confidence of example i is ``max_k probs[i, k]``; its prediction, the first class with
    that probability, is correct when it equals ``labels[i]``.
    """
    check_labels(probs, labels)
    edges = bin_edges(n_bins)
    confidence = probs.max(axis=-1).astype(np.float64)
    correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
    bins = np.digitize(confidence, edges[1:-1], right=True)  # edges[b] < conf <= edges[b + 1]
    counts = np.bincount(bins, minlength=n_bins)

    def per_bin_mean(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(bins, weights=values, minlength=n_bins)
        return np.divide(sums, counts, out=np.full(n_bins, np.nan), where=counts > 0)

    return ReliabilityCurve(edges, counts, per_bin_mean(confidence), per_bin_mean(correct))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE ``sum_b (n_b / N) |acc_b - conf_b|`` over the bins of ``reliability_curve``.

    Each bin's gap between accuracy and mean confidence is weighted by its share of the
    examples, ``n_b / N``; empty bins contribute nothing. 0 for a perfectly calibrated model.
    """
    curve = reliability_curve(probs, labels, n_bins)
    weights = curve.counts / curve.counts.sum()
    gaps = np.abs(curve.accuracy - curve.confidence)
    return float(np.sum(weights * gaps, where=curve.counts > 0))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Brier score ``mean_i sum_k (probs[i, k] - onehot(y_i)_k)^2``, in [0, 2]."""
    check_labels(probs, labels)
    onehot = np.eye(probs.shape[1], dtype=probs.dtype)[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=-1)))


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy ``-sum_k probs[:, k] log probs[:, k]`` (N,) in nats, with 0 log 0 = 0."""
    check_probs(probs)
    log_probs = np.log(np.where(probs > 0, probs, 1.0))  # log 1 = 0 where the probability is 0
    return -np.sum(probs * log_probs, axis=-1)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n (float64) of ``values`` (n,) in increasing order; ties get their mean rank."""
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)  # each group of ties holds ranks last - count + 1 .. last
    return (last_rank - (counts - 1) / 2)[group]


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Area under the ROC curve of a score meant to be higher on shifted inputs.

    ``P(score_out > score_in) + P(score_out = score_in) / 2`` over pairs of an in-distribution
    and a shifted input: the Mann-Whitney statistic ``U = R_out - n_out (n_out + 1) / 2`` over
    ``n_in n_out``, where ``R_out`` sums the average ranks of the shifted scores in the pool.

    Args:
        scores_in: (n_in,) scores of in-distribution inputs, floating, finite.
        scores_out: (n_out,) scores of shifted inputs.
    """
    check_scores(scores_in, "scores_in")
    check_scores(scores_out, "scores_out")
    n_in, n_out = len(scores_in), len(scores_out)
    ranks = average_ranks(np.concatenate([scores_in, scores_out]).astype(np.float64))
    u_statistic = ranks[n_in:].sum() - n_out * (n_out + 1) / 2
    return float(u_statistic / (n_in * n_out))


# --- regression ----------------------------------------------------------------------------------


def gal_tau(p: float, length_scale: float, n_train: int, weight_decay: float) -> float:
    """Model precision ``tau = (1 - p) l^2 / (2 N lambda)`` of MC dropout (Gal and Ghahramani).

    Gal and Ghahramani (2016) write ``tau = p l^2 / (2 N lambda)`` with their ``p`` the *keep*
    probability; in the course's convention (``p`` drops) that is ``1 - p``. ``lambda`` is the
    coefficient of ``||W||^2`` in their objective ``mean_i E_i + lambda sum ||W||^2`` with
    ``E = ||y - y_hat||^2 / 2``; an optimizer's ``weight_decay=wd`` adds ``wd W`` to the gradient,
    so with that ``E``, ``lambda = wd / 2`` (and ``wd / 4`` with the mean squared error, no 1/2).

    Args:
        p: dropout (drop) probability, in [0, 1).
        length_scale: prior length-scale ``l`` of the weights, > 0.
        n_train: number N of training examples, >= 1.
        weight_decay: ``lambda`` as above, > 0.
    """
    p = check_in_interval(p, "p", 0.0, 1.0, include_high=False)
    length_scale = check_positive(length_scale, "length_scale")
    n_train = check_count(n_train, "n_train", 1)
    weight_decay = check_positive(weight_decay, "weight_decay")
    return (1.0 - p) * length_scale**2 / (2.0 * n_train * weight_decay)


def regression_predictive(outputs: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """MC-dropout predictive mean and variance of a regression net from T stochastic passes.

    ``mean = mean_t y_t`` and ``variance = 1 / tau + mean_t y_t^2 - mean^2``: the observation
    noise plus the spread of the passes (divided by T, as in Gal and Ghahramani, 2016).

    Args:
        outputs: (T, N, ...) outputs of T >= 1 passes with fresh dropout masks.
        tau: model precision, > 0 (``gal_tau``).

    Returns:
        ``(mean, variance)``, each of shape (N, ...).
    """
    check_outputs(outputs)
    tau = check_positive(tau, "tau")
    return outputs.mean(axis=0), 1.0 / tau + outputs.var(axis=0)
