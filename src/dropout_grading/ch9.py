"""Checks for chapter 9's graded exercise, ``ch9_uncertainty/uncertainty.ipynb``.

The student writes, in numpy, with the signatures of ``dropout_course.calibration`` and
``dropout_course.concrete``:

* ``reliability_curve(probs, labels, n_bins=10)`` -> ``(counts, confidence, accuracy)``, each of
  shape (B,): the confidence ``max_k probs[i, k]`` falls into the bin ``(b / B, (b + 1) / B]``;
  per bin the number of examples, their mean confidence and the fraction whose argmax is the
  label, NaN for both means where a bin is empty;
* ``expected_calibration_error(probs, labels, n_bins=10)``: ``sum_b (n_b / N) |acc_b - conf_b|``;
* ``auroc(scores_in, scores_out)``: ``P(out > in) + P(out = in) / 2`` over all pairs;
* ``relaxed_drop_mask(u, p, temperature=0.1)``: ``sigmoid((log p - log(1 - p) + log u -
  log(1 - u)) / t)``, without overflow, in u's dtype;
* ``concrete_regularizer(W, p, *, length_scale, n_train)``: ``l^2 ||W||^2 / (2 N (1 - p)) +
  (K / N) (p log p + (1 - p) log(1 - p))`` with K = D_in.

Nothing here is random: every check compares with the library (``dropout_course.calibration``,
``dropout_course.concrete``) on constructed inputs, up to float32 rounding, and each cell is built
so that one kind of mistake shows: confidences exactly on bin edges (powers of two for B, so
every way of computing the edges agrees) for the side a bin is closed on, confidences away from
the edges for the per-bin means and the ECE, a zero weight matrix for the entropy term, the
difference of two calls for the weight term. ``relaxed_mask_stable`` calls the mask with numpy's
floating-point errors raised (``run_strict``), so an overflowing ``exp`` shows although the kernel
would only warn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dropout_course import calibration as reference_calibration
from dropout_course import concrete as reference_concrete

from .framework import Assignment, CheckFailure, Row, StudentError
from .properties import (
    Case,
    Expected,
    Explain,
    Functions,
    Returns,
    as_array,
    matches,
    require,
    require_close,
    row,
    unpack,
)

ASSIGNMENT = Assignment(
    "ch9_uncertainty",
    notebook="uncertainty",
    forbidden_modules=(
        "dropout_course.calibration",
        "dropout_course.concrete",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
        "sklearn",
    ),
)
check = ASSIGNMENT.check

ECE_TOLERANCE = 1e-6
"""Absolute tolerance of an ECE or an AUROC: float32 sums of a few thousand terms stay below it."""

# Classifier outputs -------------------------------------------------------------------------------


def classifier(
    rng: np.random.Generator, confidences: np.ndarray, correct: np.ndarray, n_classes: int, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` (N, K) whose row i has its largest entry ``confidences[i]`` (> 1/K) at a random
    class and the rest spread below it, and ``labels`` (N,): that class where ``correct``, another
    one elsewhere (so the probability of the true class differs from the confidence)."""
    n = len(confidences)
    predicted = rng.integers(n_classes, size=n)
    rest = (1 - confidences)[:, None] * rng.dirichlet(np.ones(n_classes - 1), size=n)
    even = np.broadcast_to((1 - confidences)[:, None] / (n_classes - 1), rest.shape)
    rest = np.where(rest.max(axis=1, keepdims=True) < 0.99 * confidences[:, None], rest, even)
    probs = np.empty((n, n_classes))
    others = np.ones((n, n_classes), dtype=bool)
    others[np.arange(n), predicted] = False
    probs[others] = rest.ravel()
    probs[np.arange(n), predicted] = confidences
    wrong = (predicted + rng.integers(1, n_classes, size=n)) % n_classes
    return probs.astype(dtype), np.where(correct, predicted, wrong)


def off_edges(confidences: np.ndarray, n_bins: int) -> np.ndarray:
    """``confidences`` moved at least 1e-6 away from the bin edges b / B (below 1)."""
    distance = confidences * n_bins - np.round(confidences * n_bins)
    return np.where(np.abs(distance) < 1e-5, confidences + 2e-5 / n_bins, confidences).clip(
        max=1 - 1e-5
    )


def random_outputs(seed: int, n: int, n_classes: int, n_bins: int, dtype: str, edges: bool):
    """Overconfident outputs: confidences uniform above 1/K (correct with a probability below
    them); with ``edges``, a third of them exactly on a bin edge k / B or at 1."""
    rng = np.random.default_rng(seed)
    low = 1 / n_classes + 0.02
    confidences = off_edges(rng.uniform(low, 1.0, n), n_bins)
    if edges:
        on_edge = np.arange(math.ceil(low * n_bins), n_bins + 1) / n_bins
        chosen = rng.random(n) < 1 / 3
        confidences[chosen] = rng.choice(on_edge, size=int(chosen.sum()))
    correct = rng.random(n) < confidences**2
    return classifier(rng, confidences, correct, n_classes, dtype)


# reliability_curve --------------------------------------------------------------------------------

CURVE = Returns("reliability_curve", ("probs", "labels", "n_bins"))
CURVE_PARTS = ("counts", "confidence", "accuracy")


def per_bin(bins: np.ndarray, values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and means (NaN where empty) of ``values`` grouped by bin index."""
    counts = np.bincount(bins, minlength=n_bins)[:n_bins]
    sums = np.bincount(bins, weights=values, minlength=n_bins)[:n_bins]
    return counts, np.divide(sums, counts, out=np.full(n_bins, np.nan), where=counts > 0)


def right_closed(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence with bins (b / B, (b + 1) / B]."""
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def mistaken_curves(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> dict[str, tuple]:
    """hint -> the (counts, confidence, accuracy) a classic mistake returns."""
    x = probs.astype(np.float64)
    confidence, rows = x.max(axis=1), np.arange(len(labels))
    correct = (x.argmax(axis=1) == labels).astype(np.float64)
    true_class = x[rows, labels]
    left = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins - 1)
    right = right_closed(confidence, n_bins)
    counts, conf = per_bin(right, confidence, n_bins)
    _, acc = per_bin(right, correct, n_bins)
    left_counts, left_conf = per_bin(left, confidence, n_bins)
    true_bins = right_closed(true_class, n_bins)
    true_counts, true_conf = per_bin(true_bins, true_class, n_bins)
    _, true_acc = per_bin(true_bins, correct, n_bins)
    _, mean_true = per_bin(right, true_class, n_bins)
    return {
        "a confidence equal to an edge b / B is counted in the bin above it: the bins are "
        "(b / B, (b + 1) / B], closed on the RIGHT (np.digitize(..., right=True), or "
        "ceil(conf * B) - 1)": (left_counts, left_conf, per_bin(left, correct, n_bins)[1]),
        "it bins the probability of the TRUE class; the confidence is the largest probability "
        "of the row, max_k probs[i, k] (the predicted class's)": (true_counts, true_conf, true_acc),
        "confidence and accuracy are swapped: return (counts, confidence, accuracy)": (
            counts, acc, conf),
        "its accuracy is the mean probability of the true class; accuracy is the fraction of "
        "the bin's examples whose argmax equals the label": (counts, conf, mean_true),
    }  # fmt: skip


def read_curve(fns: Functions, probs, labels, n_bins: int):
    """The student's (counts, confidence, accuracy) as float64 arrays of shape (B,), the call."""
    result, what = CURVE.call(fns, probs, labels, n_bins)
    parts = unpack(result, what=what, names=CURVE_PARTS)
    arrays = tuple(
        as_array(part, what=f"{name} of {what}", shape=(n_bins,))
        for name, part in zip(CURVE_PARTS, parts, strict=True)
    )
    return arrays, what


def curve_explains(mistakes: dict[str, tuple], index: int, where: np.ndarray) -> list[Explain]:
    """Explains of part ``index`` of the curve, on the bins ``where``, from ``mistakes``."""
    return [matches(curve[index][where], hint) for hint, curve in mistakes.items()]


def reliability_counts(fns: Functions, *, n: int, n_classes: int, n_bins: int, dtype: str, seed):
    """counts: the number of confidences in each (b / B, (b + 1) / B], on outputs with a third of
    the confidences exactly on an edge (B a power of two: the edges are exact)."""
    require(n_bins & (n_bins - 1) == 0, "the check needs n_bins a power of two (exact edges)")
    probs, labels = random_outputs(seed, n, n_classes, n_bins, dtype, edges=True)
    (counts, _, _), what = read_curve(fns, probs, labels, n_bins)
    want = reference_calibration.reliability_curve(probs, labels, n_bins).counts
    everywhere = np.ones(n_bins, dtype=bool)
    explains = curve_explains(mistaken_curves(probs, labels, n_bins), 0, everywhere)
    rule = "the number of examples whose confidence max_k probs[i, k] lies in (b / B, (b + 1) / B]"
    require_close(counts, want.astype(np.float64), what=f"counts of {what}", rule=rule,
                  explains=explains, tolerance=0.5)  # fmt: skip


def reliability_means(fns: Functions, *, n: int, n_classes: int, n_bins: int, dtype: str, seed):
    """confidence and accuracy per non-empty bin, on confidences away from the edges."""
    probs, labels = random_outputs(seed, n, n_classes, n_bins, dtype, edges=False)
    (_, confidence, accuracy), what = read_curve(fns, probs, labels, n_bins)
    want = reference_calibration.reliability_curve(probs, labels, n_bins)
    filled = want.counts > 0
    mistakes = mistaken_curves(probs, labels, n_bins)
    rules = {
        "confidence": "the mean confidence max_k probs[i, k] of the bin's examples",
        "accuracy": "the fraction of the bin's examples whose argmax equals the label",
    }
    for index, (name, got) in enumerate((("confidence", confidence), ("accuracy", accuracy)), 1):
        require_close(
            got[filled], getattr(want, name)[filled], what=f"{name} in the non-empty bins of "
            f"{what}", rule=rules[name], explains=curve_explains(mistakes, index, filled),
        )  # fmt: skip


def reliability_empty_bins(fns: Functions, *, n: int, n_classes: int, n_bins: int, seed: int):
    """An empty bin has count 0 and NaN confidence and accuracy (confidences in a few bins)."""
    rng = np.random.default_rng(seed)
    centres = (rng.choice(np.arange(n_bins // 2, n_bins), size=3, replace=False) + 0.5) / n_bins
    confidences = rng.choice(centres, size=n) + rng.uniform(-0.2, 0.2, n) / n_bins
    probs, labels = classifier(rng, confidences, rng.random(n) < 0.7, n_classes, "float64")
    (counts, confidence, accuracy), what = read_curve(fns, probs, labels, n_bins)
    empty = reference_calibration.reliability_curve(probs, labels, n_bins).counts == 0
    require(
        bool(np.all(counts[empty] == 0)),
        f"{what}: the bins {np.flatnonzero(empty).tolist()} hold no confidence, but their counts "
        f"are {counts[empty].tolist()}",
    )
    for name, got in (("confidence", confidence), ("accuracy", accuracy)):
        bad = ~np.isnan(got[empty])
        require(
            not bad.any(),
            f"{what}: {name} of the empty bins must be NaN (a mean over no examples), but bins "
            f"{np.flatnonzero(empty)[bad].tolist()} hold {got[empty][bad][:3].tolist()}: use "
            "np.nan where a bin is empty (a 0 would draw a point at 0 in the diagram)",
        )


# expected_calibration_error -----------------------------------------------------------------------

ECE = Returns("expected_calibration_error", ("probs", "labels", "n_bins"))


def ece_case(probs: np.ndarray, labels: np.ndarray, n_bins: int, given: str) -> Case:
    """The ECE of these outputs, with the classic mistakes named."""
    curve = reference_calibration.reliability_curve(probs, labels, n_bins)
    filled = curve.counts > 0
    gaps = np.abs(curve.accuracy - curve.confidence)[filled]
    want = reference_calibration.expected_calibration_error(probs, labels, n_bins)
    mistakes = {
        "that is the unweighted mean of |acc_b - conf_b| over the non-empty bins: weight each "
        "bin by its share of the examples, n_b / N": gaps.mean(),
        "that is the sum of |acc_b - conf_b| over the bins divided by B: weight each bin by its "
        "share of the examples, n_b / N, not 1 / B": gaps.sum() / n_bins,
        "that is the plain sum of |acc_b - conf_b| over the bins: weight each bin by n_b / N": (
            gaps.sum()
        ),
        "that is sum_b n_b |acc_b - conf_b|: divide the counts by N": (
            curve.counts[filled] * gaps
        ).sum(),
    }
    explains: list[Explain] = [
        lambda out: "it is NaN: an empty bin's NaN means must contribute nothing (skip the empty "
        "bins, or weight them by n_b = 0 without multiplying NaN)" if np.isnan(out) else None,
        *(matches(np.float64(value), hint, tolerance=ECE_TOLERANCE)
          for hint, value in mistakes.items()),
    ]  # fmt: skip
    rule = f"{want:.6g}, sum_b (n_b / N) |acc_b - conf_b| over the non-empty bins"
    return Case((probs, labels, n_bins), Expected(np.float64(want), rule, explains, ECE_TOLERANCE),
                given)  # fmt: skip


def ece_random(*, n: int, n_classes: int, bins: Sequence[int], dtype: str, seed: int) -> list[Case]:
    """Overconfident outputs (confidences away from the edges) for each number of bins."""
    cases = []
    for i, n_bins in enumerate(bins):
        probs, labels = random_outputs(seed + i, n, n_classes, n_bins, dtype, edges=False)
        cases.append(ece_case(probs, labels, n_bins, "(overconfident outputs)"))
    return cases


def ece_constructed(*, n_classes: int, n_bins: int, dtype: str, seed: int) -> list[Case]:
    """Perfectly calibrated outputs (ECE 0: in each bin all confidences equal c and a fraction c is
    right), all right at confidence 1 (ECE 0), all wrong (ECE = mean confidence), one example."""
    rng = np.random.default_rng(seed)
    groups = [(1.0, 4, 4), (0.75, 8, 6), (0.625, 16, 10), (0.5, 4, 2)]  # (confidence, n, right)
    groups = [g for g in groups if g[0] > 1 / n_classes + 0.01]
    confidences = np.concatenate([np.full(n, c) for c, n, _ in groups])
    correct = np.concatenate([np.arange(n) < right for _, n, right in groups])
    order = rng.permutation(len(confidences))
    calibrated = classifier(rng, confidences[order], correct[order], n_classes, dtype)
    sure = classifier(rng, np.ones(6), np.ones(6, dtype=bool), n_classes, dtype)
    wrong_conf = off_edges(rng.uniform(0.6, 0.99, 9), n_bins)
    all_wrong = classifier(rng, wrong_conf, np.zeros(9, dtype=bool), n_classes, dtype)
    one = classifier(rng, np.array([0.8 + 0.5 / n_bins]), np.array([True]), n_classes, dtype)
    return [
        ece_case(*calibrated, n_bins, "(perfectly calibrated outputs: the ECE is 0)"),
        ece_case(*sure, n_bins, "(all predictions right, at confidence 1: the ECE is 0)"),
        ece_case(*all_wrong, n_bins, "(all predictions wrong: the ECE is the mean confidence)"),
        ece_case(*one, n_bins, "(a single example)"),
    ]


# auroc --------------------------------------------------------------------------------------------

AUROC = Returns("auroc", ("scores_in", "scores_out"))


def pair_fraction(scores_in: np.ndarray, scores_out: np.ndarray, relation) -> float:
    """The fraction of (in, out) pairs with ``relation(out, in)``."""
    x_in, x_out = scores_in.astype(np.float64), scores_out.astype(np.float64)
    return float(np.mean(relation(x_out[:, None], x_in[None, :])))


def auroc_case(scores_in: np.ndarray, scores_out: np.ndarray, given: str) -> Case:
    """The AUROC of these scores, with the classic mistakes named."""
    want = reference_calibration.auroc(scores_in, scores_out)
    pairs = len(scores_in) * len(scores_out)
    mistakes = {
        "that is 1 - AUROC, P(score_in > score_out): the score is meant to be HIGHER on the "
        "shifted inputs (scores_out)": 1 - want,
        "that is the Mann-Whitney U, not divided by the number of pairs n_in n_out": want * pairs,
        "that is P(score_out > score_in) alone: a tied pair counts one half (ranks that do not "
        "average ties give this too: give tied scores their AVERAGE rank)": pair_fraction(
            scores_in, scores_out, np.greater),
        "that is P(score_out >= score_in): a tied pair counts one half, not one (ranks that do "
        "not average ties give this too: give tied scores their AVERAGE rank)": pair_fraction(
            scores_in, scores_out, np.greater_equal),
    }  # fmt: skip
    explains = [
        matches(np.float64(value), hint, tolerance=ECE_TOLERANCE)
        for hint, value in mistakes.items()
    ]
    rule = f"{want:.6g}, P(score_out > score_in) + P(score_out = score_in) / 2 over all pairs"
    return Case((scores_in, scores_out), Expected(np.float64(want), rule, explains, ECE_TOLERANCE),
                given)  # fmt: skip


def auroc_continuous(*, n_in: int, n_out: int, shift: float, dtype: str, seed: int) -> list[Case]:
    """Normal scores, the shifted ones ``shift`` higher (no ties), and the other way round."""
    rng = np.random.default_rng(seed)
    scores_in = rng.standard_normal(n_in).astype(dtype)
    scores_out = (rng.standard_normal(n_out) + shift).astype(dtype)
    return [
        auroc_case(scores_in, scores_out, "(no ties)"),
        auroc_case(scores_out[: n_in // 2], scores_in, "(no ties, a score that is lower on "
                   "the shifted inputs)"),
    ]  # fmt: skip


def auroc_tied(*, n_in: int, n_out: int, levels: int, dtype: str, seed: int) -> list[Case]:
    """Scores on a few levels (many ties, as an entropy rounded or saturated gives), and two
    samples of one constant (AUROC 1/2)."""
    rng = np.random.default_rng(seed)
    scores_in = rng.integers(0, levels, n_in).astype(dtype)
    scores_out = rng.integers(1, levels + 1, n_out).astype(dtype)
    constant = np.full(5, 0.25, dtype=dtype)
    return [
        auroc_case(scores_in, scores_out, f"(scores on {levels + 1} levels: many ties)"),
        auroc_case(scores_in[::-1].copy(), scores_out[::-1].copy(), "(the same scores, reversed)"),
        auroc_case(constant, constant[:3].copy(), "(every score equal: no separation)"),
    ]


# relaxed_drop_mask --------------------------------------------------------------------------------

MASK = Returns("relaxed_drop_mask", ("u", "p", "temperature"), shape=lambda u, p, t: u.shape)


def logistic(x: np.ndarray) -> np.ndarray:
    """sigmoid(x), stably."""
    return np.exp(-np.logaddexp(0.0, -x))


def mask_case(u: np.ndarray, p: float, t: float) -> Case:
    """The relaxed mask for these draws, with the classic mistakes named."""
    x = u.astype(np.float64)
    rate, noise = math.log(p) - math.log(1 - p), np.log(x) - np.log(1 - x)
    want = reference_concrete.relaxed_drop_mask(x, p, t)
    mistakes = {
        "the temperature divides only the noise log u - log(1 - u): it divides the whole logit "
        "(log p - log(1 - p) + log u - log(1 - u)) / t": logistic(rate + noise / t),
        "the temperature divides the sigmoid's output: it divides the logit, inside the "
        "sigmoid": logistic(rate + noise) / t,
        "the logit is multiplied by the temperature: divide it by t": logistic((rate + noise) * t),
        "that is the KEEP mask 1 - z: z = 1 marks a DROPPED unit (z > 1/2 with probability p)": (
            1 - want),
        "it treats p as the keep probability: z uses the log-odds of dropping, log p - "
        "log(1 - p)": logistic((-rate + noise) / t),
        "the temperature is ignored (t = 1)": logistic(rate + noise),
    }  # fmt: skip
    explains = [matches(value, hint, tolerance=1e-5) for hint, value in mistakes.items()]
    rule = "sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)"
    return Case((u, p, t), Expected(want, rule, explains, 1e-5), f"(u {u.shape} {u.dtype})")


def uniform_draws(rng: np.random.Generator, shape: Sequence[int], dtype: str) -> np.ndarray:
    """Uniform draws in (0.001, 0.999) of ``shape`` and ``dtype``."""
    return rng.uniform(0.001, 0.999, shape).astype(dtype)


def mask_values(*, shape, p_values, temperatures, dtype: str, seed: int) -> list[Case]:
    """The mask for each rate and temperature, on fresh draws."""
    rng = np.random.default_rng(seed)
    return [
        mask_case(uniform_draws(rng, shape, dtype), p, t) for p in p_values for t in temperatures
    ]


def relaxed_mask_limits(fns: Functions, *, shape, p_values, temperatures, seed: int) -> None:
    """For every t, z is in [0, 1] and z > 1/2 exactly where u > 1 - p; at the smallest t, z is
    the 0/1 indicator (u > 1 - p) within 1e-9 wherever |logit u + logit p| > 0.05, where the
    logit over t exceeds 50 for t <= 1e-3 (so sigmoid is within e^-50 of 0 or 1)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        u = uniform_draws(rng, shape, "float64")
        u = np.where(np.abs(u - (1 - p)) < 1e-6, u + 1e-5, u)  # no draw on the threshold
        dropped = u > 1 - p
        margin = np.abs(np.log(u) - np.log(1 - u) + math.log(p) - math.log(1 - p)) > 0.05
        for t in temperatures:
            z, what = MASK.result(fns, u, p, t)
            require(
                not np.isnan(z).any(),
                f"{what} holds NaN: exp of a large logit is inf, and inf / inf is NaN; compute "
                "the sigmoid stably",
            )
            require(
                bool(np.all((z >= 0) & (z <= 1))),
                f"{what}: z must lie in [0, 1] (it is a sigmoid), but ranges over "
                f"[{np.nanmin(z):.4g}, {np.nanmax(z):.4g}]: the temperature divides the logit "
                "inside the sigmoid",
            )
            wrong = (z > 0.5) != dropped
            require(
                not wrong.any(),
                f"{what}: z > 1/2 must hold exactly where u > 1 - p (a draw that drops the unit, "
                f"probability p), but it fails for {wrong.mean():.0%} of the draws: "
                + ("z = 1 marks a DROPPED unit (the keep mask is 1 - z)" if wrong.all() else
                   "the temperature must divide the whole logit, log-odds of p plus noise"),
            )  # fmt: skip
        z, what = MASK.result(fns, u, p, min(temperatures))
        require_close(
            z[margin], dropped[margin].astype(np.float64), what=f"{what} (draws away from 1 - p)",
            rule="the 0/1 indicator of u > 1 - p as t -> 0, a Bernoulli(p) drop mask",
            tolerance=1e-9,
        )  # fmt: skip


def run_strict(function, u, p, temperature):
    """``function(u, p, temperature)`` with numpy's overflow, invalid and divide errors raised
    (the trusted driver of ``relaxed_mask_stable``: in the kernel they only warn)."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        return function(u, p, temperature)


def relaxed_mask_stable(fns: Functions, *, shape, p: float, temperatures, seed: int) -> None:
    """At tiny temperatures, on draws as close to 0 and 1 as the dtype allows: no overflow, no
    NaN or infinity, and z in u's dtype (float32 and float64)."""
    rng = np.random.default_rng(seed)
    for dtype in ("float64", "float32"):
        info = np.finfo(dtype)
        u = uniform_draws(rng, shape, dtype)
        u.flat[:4] = [info.tiny, info.eps, 1 - info.epsneg, 0.5]
        for t in temperatures:
            what = f"relaxed_drop_mask(u, p={p:g}, temperature={t:g}) with {dtype} u"
            try:
                z = fns["relaxed_drop_mask"].drive(run_strict, u.copy(), p, t)
            except StudentError as error:
                if "FloatingPointError" not in str(error):
                    raise
                raise CheckFailure(
                    f"{what} fails with numpy's floating-point errors raised ({error}); in your "
                    "notebook it warns 'overflow encountered in exp'. For a logit x of size "
                    "1/t, 1 / (1 + exp(-x)) overflows where x << 0: use the exp of a number that "
                    "is never positive, e.g. e = exp(-|x|), z = where(x >= 0, 1 / (1 + e), "
                    "e / (1 + e)) (np.where evaluates both branches, so compute exp(-|x|) "
                    "first), or np.exp(-np.logaddexp(0, -x))"
                ) from None
            values = as_array(z, what=f"the result of {what}", shape=u.shape)
            require(
                bool(np.all(np.isfinite(values))),
                f"{what} holds NaN or infinity: compute the sigmoid stably",
            )
            got = np.asarray(z).dtype
            require(
                got == np.dtype(dtype),
                f"{what} returned {got}: return z in u's dtype (np.log(p) of a Python float is a "
                "float64 numpy scalar, which turns a float32 array float64: use math.log(p), or "
                "end with .astype(u.dtype))",
            )


# concrete_regularizer -----------------------------------------------------------------------------

CONCRETE = Returns("concrete_regularizer", ("W", "p"))


def regulariser_parts(W: np.ndarray, p: float, length_scale: float, n_train: int):
    """The weight term l^2 ||W||^2 / (2 N (1 - p)), and the entropy term K (p log p + (1 - p)
    log(1 - p)) / N, K = D_in."""
    x = W.astype(np.float64)
    weights = length_scale**2 * float(np.sum(x * x)) / (2 * n_train * (1 - p))
    entropy = W.shape[0] * (p * math.log(p) + (1 - p) * math.log(1 - p)) / n_train
    return weights, entropy


def regulariser_case(W: np.ndarray, p: float, length_scale: float, n_train: int) -> Case:
    """The regulariser for these arguments, with the classic mistakes named."""
    weights, entropy = regulariser_parts(W, p, length_scale, n_train)
    other_k = entropy * W.shape[1] / W.shape[0]
    want = reference_concrete.concrete_regularizer(W, p, length_scale=length_scale, n_train=n_train)
    mistakes = {
        "the entropy term is missing: add (K / N) (p log p + (1 - p) log(1 - p))": weights,
        "the entropy term has the wrong sign: it is -K H(p) / N = (K / N) (p log p + (1 - p) "
        "log(1 - p)), negative, lowest at p = 1/2": weights - entropy,
        "the weight term is not divided by 1 - p: l^2 ||W||^2 / (2 N (1 - p))": (
            weights * (1 - p) + entropy),
        "the weight term is multiplied by 1 - p (the paper's keep probability) instead of "
        "divided by it: with inverted scaling it is l^2 ||W||^2 / (2 N (1 - p))": (
            weights * (1 - p) ** 2 + entropy),
        "the weight term misses its 1/2: l^2 ||W||^2 / (2 N (1 - p))": 2 * weights + entropy,
        "the entropy term is not divided by N": weights + entropy * n_train,
        "K is the number of dropped inputs, W.shape[0] (D_in), not W.shape[1]": weights + other_k,
    }  # fmt: skip
    explains = [matches(np.float64(value), hint) for hint, value in mistakes.items()]
    rule = f"{want:.6g}, l^2 ||W||^2 / (2 N (1 - p)) + (K / N) (p log p + (1 - p) log(1 - p))"
    given = f"(W {W.shape} {W.dtype}, length_scale={length_scale!r}, n_train={n_train!r})"
    kwargs = {"length_scale": length_scale, "n_train": n_train}
    return Case((W, p), Expected(np.float64(want), rule, explains), given, kwargs=kwargs)


def weight_matrix(rng: np.random.Generator, shape: Sequence[int], dtype: str) -> np.ndarray:
    """Normal weights of ``shape`` with standard deviation 1 / sqrt(D_in)."""
    return (rng.standard_normal(shape) / math.sqrt(shape[0])).astype(dtype)


def regulariser_values(*, shapes, p_values, length_scale, n_train, dtype, seed) -> list[Case]:
    """The regulariser for each shape and rate (rates near 0 and 1 included by the table)."""
    rng = np.random.default_rng(seed)
    return [
        regulariser_case(weight_matrix(rng, shape, dtype), p, length_scale, n_train)
        for shape in shapes
        for p in p_values
    ]


def entropy_terms(*, shapes, p_values, n_train) -> list[Case]:
    """W = 0: only the entropy term is left, (K / N) (p log p + (1 - p) log(1 - p))."""
    cases = []
    for shape in shapes:
        for p in p_values:
            case = regulariser_case(np.zeros(shape), p, 1.0, n_train)
            rule = f"the entropy term alone, {case.expected.value:.6g}: W = 0 has no weight term"
            given = f"(W = 0 of shape {shape}, n_train={n_train})"
            expected = case.expected._replace(rule=rule)
            cases.append(Case(case.args, expected, given, kwargs=case.kwargs))
    return cases


def concrete_weight_term(fns: Functions, *, shapes, p_values, length_scale, n_train, seed):
    """f(W) - f(0): the weight term alone, l^2 ||W||^2 / (2 N (1 - p)), whatever the entropy
    term."""
    rng = np.random.default_rng(seed)
    kwargs = {"length_scale": length_scale, "n_train": n_train}
    for shape in shapes:
        W = weight_matrix(rng, shape, "float64")
        for p in p_values:
            with_weights, what = CONCRETE.result(fns, W, p, **kwargs)
            without, _ = CONCRETE.result(fns, np.zeros(shape), p, **kwargs)
            weights, _ = regulariser_parts(W, p, length_scale, n_train)
            mistakes = {
                "it is not divided by 1 - p": weights * (1 - p),
                "it is multiplied by 1 - p (the paper's keep probability) instead of divided by "
                "it: inverted scaling makes the weights W / (1 - p)": weights * (1 - p) ** 2,
                "it misses the 1/2": 2 * weights,
                "it is not divided by N": weights * n_train,
                "it misses the length-scale factor l^2": weights / length_scale**2,
            }
            require_close(
                with_weights - without, np.float64(weights),
                what=f"{what} minus the same call with W = 0 (the weight term)",
                rule=f"l^2 ||W||^2 / (2 N (1 - p)) = {weights:.6g}",
                explains=[matches(np.float64(v), hint) for hint, v in mistakes.items()],
            )  # fmt: skip


def cell(summary: str, prop, functions: tuple[str, ...], **defaults) -> Row:
    """A row of the table: ``prop(fns, **parameters)``, a check of this module, on ``functions``."""
    return Row(summary, prop, functions, defaults)


# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "reliability_counts": cell(
        "Each confidence max_k probs[i, k] is counted in its bin (b / B, (b + 1) / B], edges "
        "included on the right",
        reliability_counts, CURVE.functions, n=600, n_classes=4, n_bins=8, dtype="float64",
        seed=0),
    "reliability_means": cell(
        "Per bin, the mean confidence and the fraction of argmax predictions that are right",
        reliability_means, CURVE.functions, n=800, n_classes=3, n_bins=10, dtype="float64",
        seed=1),
    "reliability_empty_bins": cell(
        "An empty bin has count 0 and NaN confidence and accuracy",
        reliability_empty_bins, CURVE.functions, n=60, n_classes=5, n_bins=20, seed=2),
    "ece_weighted": row(
        "expected_calibration_error weights each bin's |accuracy - confidence| by n_b / N",
        ECE.value, cases=ece_random, n=500, n_classes=10, bins=(10, 15), dtype="float64", seed=3),
    "ece_constructed": row(
        "ECE is 0 for calibrated outputs, the mean confidence when every prediction is wrong",
        ECE.value, cases=ece_constructed, n_classes=3, n_bins=10, dtype="float64", seed=4),
    "auroc_value": row(
        "auroc is P(score_out > score_in) over all pairs (higher scores flag shifted inputs)",
        AUROC.value, cases=auroc_continuous, n_in=300, n_out=200, shift=1.0, dtype="float64",
        seed=5),
    "auroc_ties": row(
        "auroc counts a tied pair as one half (average ranks for ties)",
        AUROC.value, cases=auroc_tied, n_in=120, n_out=90, levels=4, dtype="float64", seed=6),
    "relaxed_mask_value": row(
        "relaxed_drop_mask = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)",
        MASK.value, cases=mask_values, shape=(40, 6), p_values=(0.1, 0.5, 0.8),
        temperatures=(0.1, 0.5, 2.0), dtype="float64", seed=7),
    "relaxed_mask_limits": cell(
        "z lies in [0, 1], z > 1/2 exactly where u > 1 - p, and z -> that 0/1 mask as t -> 0",
        relaxed_mask_limits, MASK.functions, shape=(300,), p_values=(0.2, 0.6),
        temperatures=(1e-3, 0.1, 1.0), seed=8),
    "relaxed_mask_stable": cell(
        "relaxed_drop_mask does not overflow at tiny temperatures and keeps u's dtype",
        relaxed_mask_stable, MASK.functions, shape=(50,), p=0.3, temperatures=(1e-4, 0.1), seed=9),
    "concrete_weight_term": cell(
        "The weight term of the regulariser is l^2 ||W||^2 / (2 N (1 - p))",
        concrete_weight_term, CONCRETE.functions, shapes=((6, 4),), p_values=(0.1, 0.5),
        length_scale=0.5, n_train=100, seed=10),
    "concrete_entropy_term": row(
        "The entropy term is (K / N)(p log p + (1 - p) log(1 - p)), K = D_in, lowest at p = 1/2",
        CONCRETE.value, cases=entropy_terms, shapes=((6, 4), (3, 9)), p_values=(0.1, 0.5, 0.7),
        n_train=50),
    "concrete_value": row(
        "concrete_regularizer is the sum of both terms, also for p near 0 and 1",
        CONCRETE.value, cases=regulariser_values, shapes=((8, 5),),
        p_values=(1e-6, 0.2, 0.5, 0.999), length_scale=1.0, n_train=200, dtype="float64", seed=11),
})
# fmt: on
ASSIGNMENT.seal()
