"""Calibration metrics: hand-computed cases, weighted bins, sklearn's AUROC, torch twins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import DEVICES
from dropout_course import calibration as nc
from dropout_course.ensembles import softmax
from dropout_course.torch import calibration as tc


def _probs(confidence: float, n: int) -> np.ndarray:
    """n two-class predictions of class 0 with the given confidence."""
    return np.tile([confidence, 1 - confidence], (n, 1))


def _labels(n_correct: int, n: int) -> np.ndarray:
    """Labels for ``_probs``: the first n_correct are class 0 (correct), the rest class 1."""
    return (np.arange(n) >= n_correct).astype(np.int64)


def _two_bins():
    """10 predictions at confidence 0.9 with 5 correct, 30 at 0.6 with 18 correct."""
    probs = np.concatenate([_probs(0.9, 10), _probs(0.6, 30)])
    return probs, np.concatenate([_labels(5, 10), _labels(18, 30)])


def _random_case(seed: int, n: int = 300, k: int = 4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    probs = softmax(2 * rng.standard_normal((n, k))).astype(dtype)
    return probs, rng.integers(0, k, n)


# --- negative log-likelihood, Brier score, entropy ----------------------------------------------


def test_negative_log_likelihood_by_hand():
    probs, labels = np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([0, 1])
    expected = -(math.log(0.5) + math.log(0.1)) / 2
    assert nc.negative_log_likelihood(probs, labels) == pytest.approx(expected, rel=1e-15)


def test_negative_log_likelihood_clips_zero_probabilities_at_eps():
    probs, labels = np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([1, 0])
    expected = (-math.log(nc.NLL_EPSILON) - math.log(0.5)) / 2
    assert nc.negative_log_likelihood(probs, labels) == pytest.approx(expected, rel=1e-15)
    assert nc.negative_log_likelihood(probs, labels, eps=1e-3) == pytest.approx(
        (-math.log(1e-3) - math.log(0.5)) / 2, rel=1e-15
    )


def test_brier_score_by_hand():
    assert nc.brier_score(np.array([[0.5, 0.5]]), np.array([0])) == pytest.approx(0.5)
    assert nc.brier_score(np.array([[1.0, 0.0, 0.0]]), np.array([0])) == 0.0
    assert nc.brier_score(np.array([[1.0, 0.0, 0.0]]), np.array([2])) == 2.0
    # (0.7 - 1)^2 + 0.2^2 + 0.1^2 = 0.14 and (0.2)^2 + (0.8 - 1)^2 = 0.08: mean 0.11
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.0, 0.8]])
    assert nc.brier_score(probs, np.array([0, 2])) == pytest.approx(0.11, rel=1e-14)


def test_predictive_entropy_from_uniform_to_certain():
    probs = np.array([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(nc.predictive_entropy(probs), [math.log(4), 0.0, math.log(2)])


# --- reliability curve and ECE -------------------------------------------------------------------


def test_reliability_curve_counts_confidence_and_accuracy_per_bin():
    probs, labels = _two_bins()
    curve = nc.reliability_curve(probs, labels, n_bins=10)
    np.testing.assert_allclose(curve.edges, np.linspace(0, 1, 11))
    np.testing.assert_array_equal(curve.counts, [0, 0, 0, 0, 0, 30, 0, 0, 10, 0])
    assert curve.confidence[5] == pytest.approx(0.6) and curve.accuracy[5] == pytest.approx(0.6)
    assert curve.confidence[8] == pytest.approx(0.9) and curve.accuracy[8] == 0.5
    empty = curve.counts == 0  # reported as NaN, computed without a warning (warnings are errors)
    assert np.isnan(curve.confidence[empty]).all() and np.isnan(curve.accuracy[empty]).all()


@pytest.mark.parametrize("lib", [nc, tc], ids=["numpy", "torch"])
def test_bins_are_closed_on_the_right(lib):
    # confidence 0.5 lies in (0, 0.5], 1.0 in (0.5, 1]; ties of the argmax predict the first class
    as_lib = torch.from_numpy if lib is tc else np.asarray
    probs, labels = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]), np.array([1, 0, 1])
    curve = lib.reliability_curve(as_lib(probs), as_lib(labels), n_bins=2)
    assert curve.counts.tolist() == [1, 2] and curve.accuracy.tolist() == [0.0, 1.0]
    assert lib.reliability_curve(as_lib(probs), as_lib(labels), n_bins=1).counts.tolist() == [3]


def test_perfect_calibration_gives_ece_zero():
    # In each bin the accuracy equals the confidence: 3 of 5 right at 0.6, 9 of 10 at 0.9.
    probs = np.concatenate([_probs(0.6, 5), _probs(0.9, 10)])
    labels = np.concatenate([_labels(3, 5), _labels(9, 10)])
    assert nc.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-15)


def test_ece_of_a_known_miscalibration_weights_bins_by_their_counts():
    # Gaps: 0.4 in the bin of 10 examples, 0 in the bin of 30, so ECE = (10 / 40) * 0.4 = 0.1;
    # the unweighted mean over the two non-empty bins would be 0.2.
    probs, labels = _two_bins()
    ece = nc.expected_calibration_error(probs, labels, n_bins=10)
    assert ece == pytest.approx(0.1, rel=1e-12)
    curve = nc.reliability_curve(probs, labels, n_bins=10)
    nonempty = curve.counts > 0
    unweighted = np.mean(np.abs(curve.accuracy - curve.confidence)[nonempty])
    assert unweighted == pytest.approx(0.2, rel=1e-12) and abs(ece - unweighted) > 0.09


def test_ece_of_an_overconfident_model_is_its_confidence_gap():
    # one bin, always predicting with confidence 0.8 and right half the time: ECE = 0.3
    probs, labels = _probs(0.8, 20), _labels(10, 20)
    for n_bins in (1, 5, 15):
        assert nc.expected_calibration_error(probs, labels, n_bins) == pytest.approx(0.3)


# --- AUROC ---------------------------------------------------------------------------------------


def test_auroc_extremes_and_ties():
    low, high = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6])
    assert nc.auroc(low, high) == 1.0 and nc.auroc(high, low) == 0.0
    assert nc.auroc(np.full(4, 0.7), np.full(3, 0.7)) == 0.5
    # pairs (in, out): (1, 1) tie -> 1/2, (1, 2) -> 1, (2, 1) -> 0, (2, 2) tie -> 1/2: 2 / 4
    assert nc.auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(
        nc.average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])), [4.0, 1.0, 4.0, 2.0, 4.0]
    )


@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores_in = rng.integers(0, 6, 40).astype(np.float64)  # few distinct values: many ties
    scores_out = rng.integers(2, 8, 25).astype(np.float64)
    is_out = np.r_[np.zeros(40), np.ones(25)]
    expected = roc_auc_score(is_out, np.r_[scores_in, scores_out])
    assert nc.auroc(scores_in, scores_out) == pytest.approx(expected, rel=1e-14)
    continuous_in, continuous_out = rng.standard_normal(50), rng.standard_normal(30) + 1
    expected = roc_auc_score(np.r_[np.zeros(50), np.ones(30)], np.r_[continuous_in, continuous_out])
    assert nc.auroc(continuous_in, continuous_out) == pytest.approx(expected, rel=1e-14)


# --- regression: Gal's tau and the predictive variance ------------------------------------------


def test_gal_tau_in_the_drop_convention():
    # tau = (1 - p) l^2 / (2 N lambda): p = 0.2 drops, Gal's keep probability is 0.8
    assert nc.gal_tau(0.2, 1.0, 100, 1e-3) == pytest.approx(0.8 / (2 * 100 * 1e-3), rel=1e-15)
    assert nc.gal_tau(0.0, 2.0, 10, 0.5) == pytest.approx(4.0 / 10, rel=1e-15)
    assert nc.gal_tau(0.9, 1.0, 1, 1.0) < nc.gal_tau(0.1, 1.0, 1, 1.0)  # more dropout, less tau


def test_regression_predictive_adds_the_inverse_precision_to_the_spread():
    outputs = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1)  # T = 4 passes, one example
    mean, variance = nc.regression_predictive(outputs, tau=2.5)
    np.testing.assert_allclose(mean, [[2.5]])
    np.testing.assert_allclose(variance, [[1.25 + 0.4]])  # variance over passes (/ T) + 1 / tau
    _, agreeing = nc.regression_predictive(np.ones((5, 3)), tau=4.0)
    np.testing.assert_allclose(agreeing, np.full(3, 0.25))


# --- torch twins ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_twins_agree_with_numpy(device, dtype):
    probs, labels = _random_case(5, dtype=dtype)
    tprobs, tlabels = torch.from_numpy(probs).to(device), torch.from_numpy(labels).to(device)
    rel = 1e-6 if dtype == np.float32 else 1e-12
    for metric in ("negative_log_likelihood", "brier_score"):
        value = getattr(tc, metric)(tprobs, tlabels)
        assert value.device.type == device and value.ndim == 0
        assert float(value) == pytest.approx(getattr(nc, metric)(probs, labels), rel=rel)
    for n_bins in (1, 7, 10):
        curve, tcurve = (
            nc.reliability_curve(probs, labels, n_bins),
            tc.reliability_curve(tprobs, tlabels, n_bins),
        )
        np.testing.assert_array_equal(tcurve.edges.cpu().numpy(), curve.edges)
        np.testing.assert_array_equal(tcurve.counts.cpu().numpy(), curve.counts)
        np.testing.assert_allclose(tcurve.confidence.cpu().numpy(), curve.confidence, rtol=1e-12)
        np.testing.assert_allclose(tcurve.accuracy.cpu().numpy(), curve.accuracy, rtol=1e-12)
        ece = tc.expected_calibration_error(tprobs, tlabels, n_bins)
        assert float(ece) == pytest.approx(nc.expected_calibration_error(probs, labels, n_bins))
    np.testing.assert_allclose(
        tc.predictive_entropy(tprobs).cpu().numpy(), nc.predictive_entropy(probs), rtol=rel
    )
    scores_in, scores_out = probs[:200, 0].copy(), probs[200:, 1].copy()
    scores_in[:20] = scores_out[:20]  # some ties across the groups
    tauroc = tc.auroc(
        torch.from_numpy(scores_in).to(device), torch.from_numpy(scores_out).to(device)
    )
    assert float(tauroc) == pytest.approx(nc.auroc(scores_in, scores_out), rel=1e-14)
    outputs = probs.reshape(10, 30, 4)
    for got, want in zip(
        tc.regression_predictive(torch.from_numpy(outputs).to(device), 2.0),
        nc.regression_predictive(outputs, 2.0),
        strict=True,
    ):
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=rel)
    assert tc.gal_tau is nc.gal_tau


def test_torch_empty_bins_are_nan_and_ece_ignores_them():
    probs, labels = _two_bins()
    curve = tc.reliability_curve(torch.from_numpy(probs), torch.from_numpy(labels))
    assert torch.isnan(curve.confidence[curve.counts == 0]).all()
    ece = tc.expected_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels))
    assert float(ece) == pytest.approx(0.1, rel=1e-12)


def test_torch_nll_and_brier_are_differentiable():
    logits = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits.requires_grad_(True)
    nll = tc.negative_log_likelihood(torch.softmax(logits, dim=-1), labels)
    torch.testing.assert_close(nll, torch.nn.functional.cross_entropy(logits, labels))
    assert torch.autograd.gradcheck(
        lambda v: tc.brier_score(torch.softmax(v, dim=-1), labels), (logits,)
    )


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", [nc, tc], ids=["numpy", "torch"])
def test_bad_input_raises_errors_naming_the_argument(lib):
    as_lib = torch.from_numpy if lib is tc else np.asarray
    probs, labels = as_lib(np.array([[0.2, 0.8], [0.6, 0.4]])), as_lib(np.array([1, 0]))
    with pytest.raises(ValueError, match=r"each row of probs must sum to 1 .*not logits"):
        lib.expected_calibration_error(as_lib(np.array([[0.2, 0.7], [0.5, 0.5]])), labels)
    with pytest.raises(ValueError, match=r"probs must hold probabilities in \[0, 1\]"):
        lib.brier_score(as_lib(np.array([[1.5, -0.5]])), as_lib(np.array([0])))
    with pytest.raises(ValueError, match=r"probs must have rank 2 \(N examples, K class"):
        lib.predictive_entropy(as_lib(np.array([0.2, 0.8])))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\) \(one per row of probs"):
        lib.negative_log_likelihood(probs, as_lib(np.array([1, 0, 1])))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 1\] \(K=2\)"):
        lib.reliability_curve(probs, as_lib(np.array([2, 0])))
    with pytest.raises(ValueError, match=r"labels must be class indices"):
        lib.brier_score(probs, as_lib(np.array([-1, 0])))
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        lib.brier_score(probs, as_lib(np.array([1.0, 0.0])))
    with pytest.raises(TypeError, match="probs must have a floating-point dtype"):
        lib.brier_score(as_lib(np.array([[1, 0]])), as_lib(np.array([0])))
    with pytest.raises(ValueError, match="n_bins must be >= 1, but got n_bins=0"):
        lib.expected_calibration_error(probs, labels, n_bins=0)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\), but got eps=0"):
        lib.negative_log_likelihood(probs, labels, eps=0)
    with pytest.raises(ValueError, match="scores_out must hold at least one score"):
        lib.auroc(as_lib(np.array([0.1])), as_lib(np.array([], dtype=np.float64)))
    with pytest.raises(ValueError, match="scores_in must be finite"):
        lib.auroc(as_lib(np.array([np.nan])), as_lib(np.array([0.1])))
    with pytest.raises(ValueError, match=r"outputs must have shape \(T, N, \.\.\.\)"):
        lib.regression_predictive(as_lib(np.array([1.0, 2.0])), 1.0)
    with pytest.raises(ValueError, match="tau must be a finite number > 0, but got tau=0"):
        lib.regression_predictive(as_lib(np.ones((2, 3))), 0)


def test_gal_tau_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), but got p=1"):
        nc.gal_tau(1, 1.0, 10, 0.1)
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        nc.gal_tau(0.5, -1.0, 10, 0.1)
    with pytest.raises(ValueError, match="n_train must be >= 1, but got n_train=0"):
        nc.gal_tau(0.5, 1.0, 0, 0.1)
    with pytest.raises(ValueError, match="weight_decay must be a finite number > 0"):
        nc.gal_tau(0.5, 1.0, 10, 0.0)
