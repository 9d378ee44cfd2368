"""Chapter 9 (uncertainty): classic mistakes, each with the test cells it must lose, and correct
alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy and ``math`` (both imported in the notebook's read-only cell),
or imports what else it needs itself, so it behaves the same in a unit test and in a submitted
notebook.
"""

from __future__ import annotations

import math

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def curve_loops(probs, labels, n_bins=10):
    counts = [0] * n_bins
    confidence_sums = [0.0] * n_bins
    right = [0] * n_bins
    for row, label in zip(probs.tolist(), labels.tolist(), strict=True):
        best = max(range(len(row)), key=row.__getitem__)  # the first largest entry
        b = min(max(math.ceil(row[best] * n_bins) - 1, 0), n_bins - 1)
        counts[b] += 1
        confidence_sums[b] += row[best]
        right[b] += best == label
    confidence = [s / c if c else math.nan for s, c in zip(confidence_sums, counts, strict=True)]
    accuracy = [r / c if c else math.nan for r, c in zip(right, counts, strict=True)]
    return np.array(counts), np.array(confidence), np.array(accuracy)


def ece_per_example(probs, labels, n_bins=10):
    _, confidence, accuracy = reliability_curve(probs, labels, n_bins)  # noqa: F821
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.digitize(probs.max(axis=1), edges[1:-1], right=True)
    return float(np.mean(np.abs(accuracy - confidence)[bins]))  # each example's bin gap


def auroc_pairs(scores_in, scores_out):
    out, inside = scores_out[:, None], scores_in[None, :]
    return float(np.mean((out > inside) + 0.5 * (out == inside)))


def mask_tanh(u, p, temperature=0.1):
    logit = (math.log(p / (1 - p)) + np.log(u / (1 - u))) / temperature
    return (0.5 + 0.5 * np.tanh(logit / 2)).astype(u.dtype)


def regulariser_loops(W, p, *, length_scale, n_train):
    squared = sum(float(w) ** 2 for w in W.ravel())
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    return length_scale**2 * squared / (2 * n_train * (1 - p)) - len(W) * entropy / n_train


def curve_digitize(probs, labels, n_bins=10):
    edges = np.linspace(0, 1, n_bins + 1)
    confidence = probs.max(axis=1)
    bins = np.digitize(confidence, edges[1:-1], right=True)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(bins, confidence, n_bins) / counts
        accuracy = np.bincount(bins, probs.argmax(axis=1) == labels, n_bins) / counts
    return counts, mean_conf, accuracy


def ece_nansum(probs, labels, n_bins=10):
    counts, confidence, accuracy = reliability_curve(probs, labels, n_bins)  # noqa: F821
    return np.nansum(counts / len(labels) * np.abs(accuracy - confidence))


def auroc_searchsorted(scores_in, scores_out):
    pooled = np.sort(np.concatenate([scores_in, scores_out]))
    below = np.searchsorted(pooled, scores_out, side="left")  # scores lower than each
    up_to = np.searchsorted(pooled, scores_out, side="right")  # lower or equal
    ranks = (below + 1 + up_to) / 2  # the average of the ranks below + 1 .. up_to
    n_in, n_out = len(scores_in), len(scores_out)
    return (ranks.sum() - n_out * (n_out + 1) / 2) / (n_in * n_out)


def mask_expit(u, p, temperature=0.1):
    from scipy.special import expit

    return expit((math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature)


def regulariser_float32(W, p, *, length_scale, n_train):
    p32 = np.float32(p)
    norm = np.linalg.norm(W.astype(np.float32))
    entropy_part = p32 * np.log(p32) + (1 - p32) * np.log1p(-p32)
    return length_scale**2 * norm**2 / (2 * n_train * (1 - p)) + W.shape[0] * entropy_part / n_train


def curve_float32_masks(probs, labels, n_bins=10):
    probs = probs.astype(np.float32)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.array([np.sum(index == b) for b in range(n_bins)])
    conf = np.array([confidence[index == b].mean() if counts[b] else np.nan for b in range(n_bins)])
    right = predicted == labels
    acc = np.array([right[index == b].mean() if counts[b] else np.nan for b in range(n_bins)])
    return counts, conf, acc


def mask_branches(u, p, temperature=0.1):
    x = (np.log(u) - np.log1p(-u) + (math.log(p) - math.log(1 - p))) / temperature
    z = np.empty_like(u)
    positive = x >= 0
    z[positive] = 1 / (1 + np.exp(-x[positive]))
    z[~positive] = np.exp(x[~positive]) / (1 + np.exp(x[~positive]))
    return z


# Classic mistakes -------------------------------------------------------------------------------


def curve_left_closed(probs, labels, n_bins=10):
    confidence = probs.max(axis=1).astype(np.float64)
    bins = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins - 1)  # [b/B, (b+1)/B)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / counts
        acc = np.bincount(bins, probs.argmax(axis=1) == labels, n_bins) / counts
    return counts, conf, acc


def curve_true_class(probs, labels, n_bins=10):
    confidence = probs[np.arange(len(labels)), labels].astype(np.float64)  # not the max
    bins = np.digitize(confidence, np.linspace(0, 1, n_bins + 1)[1:-1], right=True)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / counts
        acc = np.bincount(bins, probs.argmax(axis=1) == labels, n_bins) / counts
    return counts, conf, acc


def curve_swapped(probs, labels, n_bins=10):
    confidence = probs.max(axis=1).astype(np.float64)
    bins = np.digitize(confidence, np.linspace(0, 1, n_bins + 1)[1:-1], right=True)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / counts
        acc = np.bincount(bins, probs.argmax(axis=1) == labels, n_bins) / counts
    return counts, acc, conf


def curve_accuracy_true_probability(probs, labels, n_bins=10):
    confidence = probs.max(axis=1).astype(np.float64)
    true_probability = probs[np.arange(len(labels)), labels].astype(np.float64)
    bins = np.digitize(confidence, np.linspace(0, 1, n_bins + 1)[1:-1], right=True)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / counts
        acc = np.bincount(bins, true_probability, n_bins) / counts
    return counts, conf, acc


def curve_empty_zero(probs, labels, n_bins=10):
    confidence = probs.max(axis=1).astype(np.float64)
    bins = np.digitize(confidence, np.linspace(0, 1, n_bins + 1)[1:-1], right=True)
    counts = np.bincount(bins, minlength=n_bins)
    safe = np.maximum(counts, 1)  # an empty bin gets 0 / 1 = 0
    conf = np.bincount(bins, confidence, n_bins) / safe
    acc = np.bincount(bins, probs.argmax(axis=1) == labels, n_bins) / safe
    return counts, conf, acc


def _bin_gaps(probs, labels, n_bins):
    counts, confidence, accuracy = reliability_curve(probs, labels, n_bins)  # noqa: F821
    filled = counts > 0
    return counts[filled], np.abs(accuracy - confidence)[filled]


def ece_unweighted(probs, labels, n_bins=10):
    _, gaps = _bin_gaps(probs, labels, n_bins)
    return float(gaps.mean())  # every non-empty bin counts alike


def ece_divided_by_bins(probs, labels, n_bins=10):
    _, gaps = _bin_gaps(probs, labels, n_bins)
    return float(gaps.sum() / n_bins)


def ece_nan(probs, labels, n_bins=10):
    counts, confidence, accuracy = reliability_curve(probs, labels, n_bins)  # noqa: F821
    return float(np.sum(counts / counts.sum() * np.abs(accuracy - confidence)))  # NaN * 0 = NaN


def auroc_strict(scores_in, scores_out):
    return float(np.mean(scores_out[:, None] > scores_in[None, :]))  # a tie counts 0


def auroc_ordinal_ranks(scores_in, scores_out):
    pooled = np.concatenate([scores_in, scores_out])
    ranks = np.empty(len(pooled))
    ranks[np.argsort(pooled, kind="stable")] = np.arange(1, len(pooled) + 1)  # ties: by position
    n_in, n_out = len(scores_in), len(scores_out)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def auroc_reversed(scores_in, scores_out):
    inside, out = scores_in[:, None], scores_out[None, :]
    return float(np.mean((inside > out) + 0.5 * (inside == out)))


def _sigmoid(x):
    small = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + small), small / (1 + small))


def mask_noise_temperature(u, p, temperature=0.1):
    logit = math.log(p) - math.log(1 - p) + (np.log(u) - np.log(1 - u)) / temperature
    return _sigmoid(logit).astype(u.dtype)


def mask_output_temperature(u, p, temperature=0.1):
    logit = math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)
    return (_sigmoid(logit) / temperature).astype(u.dtype)


def mask_keep(u, p, temperature=0.1):
    logit = (math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature
    return (1 - _sigmoid(logit)).astype(u.dtype)  # the keep mask, not the drop mask


def mask_naive_sigmoid(u, p, temperature=0.1):
    logit = (math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature
    return (1 / (1 + np.exp(-logit))).astype(u.dtype)  # exp overflows where logit << 0


def mask_where_both_branches(u, p, temperature=0.1):
    x = (math.log(p) - math.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature
    z = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))  # both evaluated
    return z.astype(u.dtype)


def mask_float64(u, p, temperature=0.1):
    logit = (np.log(p) - np.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature
    return _sigmoid(logit)  # np.log(p) is a float64 scalar: float32 u comes back float64


def mask_via_library(u, p, temperature=0.1):
    from dropout_course.concrete import relaxed_drop_mask as library_mask

    return library_mask(u, p, temperature)


def _entropy_part(p):
    return p * math.log(p) + (1 - p) * math.log(1 - p)


def regulariser_no_entropy(W, p, *, length_scale, n_train):
    return length_scale**2 * float(np.sum(W.astype(np.float64) ** 2)) / (2 * n_train * (1 - p))


def regulariser_not_over_keep(W, p, *, length_scale, n_train):
    weights = length_scale**2 * float(np.sum(W.astype(np.float64) ** 2)) / (2 * n_train)
    return weights + W.shape[0] * _entropy_part(p) / n_train


def regulariser_entropy_sign(W, p, *, length_scale, n_train):
    weights = length_scale**2 * float(np.sum(W.astype(np.float64) ** 2)) / (2 * n_train * (1 - p))
    return weights - W.shape[0] * _entropy_part(p) / n_train  # + K H(p) / N


def regulariser_outputs_counted(W, p, *, length_scale, n_train):
    weights = length_scale**2 * float(np.sum(W.astype(np.float64) ** 2)) / (2 * n_train * (1 - p))
    return weights + W.shape[1] * _entropy_part(p) / n_train  # K = D_out


CURVE_CELLS = frozenset({"reliability_counts", "reliability_means", "reliability_empty_bins"})
ECE_CELLS = frozenset({"ece_weighted", "ece_constructed"})
MASK_CELLS = frozenset({"relaxed_mask_value", "relaxed_mask_limits", "relaxed_mask_stable"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "reliability_curve": curve_loops,
            "expected_calibration_error": ece_per_example,
            "auroc": auroc_pairs,
            "relaxed_drop_mask": mask_tanh,
            "concrete_regularizer": regulariser_loops,
        },
    ),
    Variant(
        "alternative_digitize_expit",
        {
            "reliability_curve": curve_digitize,
            "expected_calibration_error": ece_nansum,
            "auroc": auroc_searchsorted,
            "relaxed_drop_mask": mask_expit,
            "concrete_regularizer": regulariser_float32,
        },
    ),
    Variant(
        "alternative_float32_branches",
        {"reliability_curve": curve_float32_masks, "relaxed_drop_mask": mask_branches},
    ),
    Variant(
        "wrong_bins_closed_left",
        {"reliability_curve": curve_left_closed},
        frozenset({"reliability_counts"}),
        hint="closed on the RIGHT",
    ),
    Variant(
        "wrong_confidence_of_true_class",
        {"reliability_curve": curve_true_class},
        CURVE_CELLS | ECE_CELLS,
        hint="probability of the TRUE class",
    ),
    Variant(
        "wrong_curve_swapped",
        {"reliability_curve": curve_swapped},
        frozenset({"reliability_means"}),
        hint="confidence and accuracy are swapped",
    ),
    Variant(
        "wrong_accuracy_true_probability",
        {"reliability_curve": curve_accuracy_true_probability},
        frozenset({"reliability_means"}) | ECE_CELLS,
        hint="mean probability of the true class",
    ),
    Variant(
        "wrong_empty_bins_zero",
        {"reliability_curve": curve_empty_zero},
        frozenset({"reliability_empty_bins"}),
        hint="must be NaN",
    ),
    Variant(
        "wrong_ece_unweighted",
        {"expected_calibration_error": ece_unweighted},
        ECE_CELLS,
        helpers=(_bin_gaps,),
        hint="unweighted mean of |acc_b - conf_b|",
    ),
    Variant(
        "wrong_ece_divided_by_bins",
        {"expected_calibration_error": ece_divided_by_bins},
        ECE_CELLS,
        helpers=(_bin_gaps,),
        hint="n_b / N, not 1 / B",
    ),
    Variant(
        "wrong_ece_nan_from_empty_bins",
        {"expected_calibration_error": ece_nan},
        ECE_CELLS,
        hint="it is NaN",
    ),
    Variant(
        "wrong_auroc_ties_count_zero",
        {"auroc": auroc_strict},
        frozenset({"auroc_ties"}),
        hint="a tied pair counts one half",
    ),
    Variant(
        "wrong_auroc_ordinal_ranks",
        {"auroc": auroc_ordinal_ranks},
        frozenset({"auroc_ties"}),
        hint="AVERAGE rank",
    ),
    Variant(
        "wrong_auroc_reversed",
        {"auroc": auroc_reversed},
        frozenset({"auroc_value", "auroc_ties"}),
        hint="HIGHER on the shifted inputs",
    ),
    Variant(
        "wrong_mask_temperature_on_noise",
        {"relaxed_drop_mask": mask_noise_temperature},
        frozenset({"relaxed_mask_value", "relaxed_mask_limits"}),
        helpers=(_sigmoid,),
        hint="divides only the noise",
    ),
    Variant(
        "wrong_mask_temperature_on_output",
        {"relaxed_drop_mask": mask_output_temperature},
        frozenset({"relaxed_mask_value", "relaxed_mask_limits"}),
        helpers=(_sigmoid,),
        hint="divides the sigmoid's output",
    ),
    Variant(
        "wrong_mask_returns_keep_mask",
        {"relaxed_drop_mask": mask_keep},
        frozenset({"relaxed_mask_value", "relaxed_mask_limits"}),
        helpers=(_sigmoid,),
        hint="KEEP mask",
    ),
    Variant(
        "wrong_mask_naive_sigmoid_overflows",
        {"relaxed_drop_mask": mask_naive_sigmoid},
        frozenset({"relaxed_mask_stable"}),
        hint="overflow encountered in exp",
    ),
    Variant(
        "wrong_mask_where_evaluates_both_branches",
        {"relaxed_drop_mask": mask_where_both_branches},
        frozenset({"relaxed_mask_stable"}),
        hint="np.where evaluates both branches",
    ),
    Variant(
        "wrong_mask_float64_for_float32",
        {"relaxed_drop_mask": mask_float64},
        frozenset({"relaxed_mask_stable"}),
        helpers=(_sigmoid,),
        hint="in u's dtype",
    ),
    Variant(
        "wrong_mask_calls_library",
        {"relaxed_drop_mask": mask_via_library},
        MASK_CELLS,
        hint="reference implementation",
    ),
    Variant(
        "wrong_regulariser_without_entropy",
        {"concrete_regularizer": regulariser_no_entropy},
        frozenset({"concrete_entropy_term", "concrete_value"}),
        hint="entropy term is missing",
    ),
    Variant(
        "wrong_regulariser_not_over_keep",
        {"concrete_regularizer": regulariser_not_over_keep},
        frozenset({"concrete_weight_term", "concrete_value"}),
        helpers=(_entropy_part,),
        hint="not divided by 1 - p",
    ),
    Variant(
        "wrong_regulariser_entropy_sign",
        {"concrete_regularizer": regulariser_entropy_sign},
        frozenset({"concrete_entropy_term", "concrete_value"}),
        helpers=(_entropy_part,),
        hint="wrong sign",
    ),
    Variant(
        "wrong_regulariser_counts_outputs",
        {"concrete_regularizer": regulariser_outputs_counted},
        frozenset({"concrete_entropy_term", "concrete_value"}),
        helpers=(_entropy_part,),
        hint="not W.shape[1]",
    ),
]
