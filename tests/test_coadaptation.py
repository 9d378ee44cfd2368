"""Co-adaptation measures: unit correlation, ablation, sparsity; numpy and torch twins."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import coadaptation as nc
from dropout_course import ensembles as ne
from dropout_course.bounds import binomial_tolerance
from dropout_course.torch import coadaptation as tc

U = np.array([1.0, -1.0, 1.0, -1.0])
W = np.array([1.0, 1.0, -1.0, -1.0])  # centred, orthogonal to U: correlation exactly 0


def _three_units(sign=1.0):
    """Units u, sign * 2u + 3 (perfectly correlated with u) and w (uncorrelated with both)."""
    return np.stack([U, sign * 2 * U + 3, W], axis=1)


def _network_and_data(seed=0):
    rng = np.random.default_rng(seed)
    params = ne.init_tiny_mlp([5, 10, 3], rng, dropped_layer=1)
    x = rng.standard_normal((40, 5))
    y = np.argmax(ne.weight_scaling_predict(params, x, 0.5), axis=1)  # labels the net gets right
    y[:10] = (y[:10] + 1) % 3  # ... except for the first 10
    return params, x, y


# --- correlation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_correlation_of_a_constructed_example_excludes_self_pairs(sign):
    expected = np.array([[1.0, sign, 0.0], [sign, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(nc.unit_correlation(_three_units(sign)), expected, atol=1e-15)
    # Distinct pairs: |1| + |0| + |0| over 3 pairs. Counting the 3 self-pairs would give 5/9.
    assert nc.mean_abs_correlation(_three_units(sign)) == pytest.approx(1 / 3, rel=1e-14)


def test_dead_units_are_nan_in_the_matrix_and_left_out_of_the_mean():
    # A ReLU that never fires (zeros) and a constant unit whose float mean is not exactly 0.1.
    hidden = np.column_stack([_three_units(), np.zeros(4), np.full(4, 0.1)])
    with np.errstate(all="raise"):
        corr = nc.unit_correlation(hidden)
        mean = nc.mean_abs_correlation(hidden)
    assert np.all(np.isnan(corr[3:])) and np.all(np.isnan(corr[:, 3:]))
    assert not np.any(np.isnan(corr[:3, :3]))
    assert mean == pytest.approx(1 / 3, rel=1e-14)


@pytest.mark.parametrize(
    "hidden",
    [
        U[:, None],  # one unit: no pair
        np.column_stack([U, np.zeros(4)]),  # one live unit
        np.ones((1, 3)),  # one example: nothing varies
        np.zeros((0, 3)),  # no examples
        np.zeros((4, 0)),  # no units
    ],
)
def test_fewer_than_two_live_units_give_zero(hidden):
    with np.errstate(all="raise"):
        assert nc.mean_abs_correlation(hidden) == 0.0
        assert nc.unit_correlation(hidden).shape == (hidden.shape[1],) * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_correlation_matches_numpy_corrcoef(dtype):
    rng = np.random.default_rng(1)
    hidden = (rng.standard_normal((50, 6)) @ rng.standard_normal((6, 6))).astype(dtype)
    corr = nc.unit_correlation(hidden)
    assert corr.dtype == np.float64
    np.testing.assert_allclose(corr, np.corrcoef(hidden.astype(np.float64).T), rtol=1e-12)
    off_diagonal = ~np.eye(6, dtype=bool)
    expected_mean = np.abs(np.corrcoef(hidden.astype(np.float64).T))[off_diagonal].mean()
    assert nc.mean_abs_correlation(hidden) == pytest.approx(expected_mean, rel=1e-12)


# --- sparsity ------------------------------------------------------------------------------------


def test_activation_sparsity_counts_activations_at_or_below_the_threshold():
    hidden = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]])
    assert nc.activation_sparsity(hidden) == 0.5
    assert nc.activation_sparsity(hidden, threshold=0.5) == 4 / 6
    assert nc.activation_sparsity(hidden[None], threshold=-2) == 0.0  # any shape
    assert nc.activation_sparsity(np.zeros((0, 3))) == 0.0


# --- ablation ------------------------------------------------------------------------------------


def test_ablation_of_no_unit_is_the_plain_accuracy_and_of_all_units_the_empty_network():
    params, x, y = _network_and_data()
    head, hidden = partial(ne.logits_from_units, params), ne.dropped_units(params, x)
    rng = np.random.default_rng(2)
    assert nc.ablation_accuracy(head, hidden, y, 0, rng=rng, trials=3) == 0.75  # 30 of 40 right
    empty = np.mean(np.argmax(head(np.zeros_like(hidden)), axis=1) == y)
    assert nc.ablation_accuracy(head, hidden, y, 10, rng=rng, trials=3) == empty


def test_ablation_zeroes_exactly_k_distinct_units_without_rescaling():
    hidden = 1.0 + np.random.default_rng(3).random((4, 6))
    original = hidden.copy()
    seen = []

    def head(ablated):
        seen.append(ablated.copy())
        return np.zeros((len(ablated), 2))

    nc.ablation_accuracy(
        head, hidden, np.zeros(4, dtype=int), 2, rng=np.random.default_rng(4), trials=20
    )
    np.testing.assert_array_equal(hidden, original)  # the input is not modified
    assert len(seen) == 20
    removed_sets = set()
    for ablated in seen:
        removed = np.all(ablated == 0, axis=0)
        assert removed.sum() == 2
        np.testing.assert_array_equal(ablated[:, ~removed], original[:, ~removed])
        removed_sets.add(tuple(np.flatnonzero(removed)))
    assert len(removed_sets) > 1  # a fresh choice per trial
    again = []
    nc.ablation_accuracy(
        lambda a: again.append(a.copy()) or np.zeros((4, 2)),
        hidden,
        np.zeros(4, dtype=int),
        2,
        rng=np.random.default_rng(4),
        trials=20,
    )
    np.testing.assert_array_equal(np.stack(again), np.stack(seen))  # reproducible from rng


def test_ablation_removes_the_units_rng_choice_draws_in_turn():
    hidden, seen = 1.0 + np.random.default_rng(3).random((4, 6)), []
    nc.ablation_accuracy(
        lambda ablated: seen.append(ablated.copy()) or np.zeros((4, 2)),
        hidden,
        np.zeros(4, dtype=int),
        2,
        rng=np.random.default_rng(4),
        trials=5,
    )
    rng = np.random.default_rng(4)
    for ablated in seen:
        removed = np.flatnonzero(np.all(ablated == 0, axis=0))
        np.testing.assert_array_equal(removed, np.sort(rng.choice(6, size=2, replace=False)))


def _right_only_without_unit_0(ablated):
    """Logits that classify every example as class 1 iff unit 0 was removed."""
    removed = ablated[:, :1] == 0
    return np.where(removed, [0.0, 1.0], [1.0, 0.0])


def test_ablation_chooses_units_uniformly():
    # With H = 3 and k = 1 the accuracy is the fraction of trials that removed unit 0, whose
    # count is Binomial(trials, 1/3); Bernstein bound at false-fail probability 1e-9.
    hidden, y, trials = np.ones((5, 3)), np.ones(5, dtype=int), 3000
    rng = np.random.default_rng(5)
    accuracy = nc.ablation_accuracy(
        _right_only_without_unit_0, hidden, y, 1, rng=rng, trials=trials
    )
    assert abs(accuracy * trials - trials / 3) < binomial_tolerance(trials, 1 / 3)


# --- bad inputs ----------------------------------------------------------------------------------


def test_functions_reject_bad_arguments():
    hidden, y = np.ones((4, 3)), np.zeros(4, dtype=int)
    rng = np.random.default_rng(0)

    def head(h):
        return np.zeros((len(h), 2))

    for measure in (nc.unit_correlation, nc.mean_abs_correlation):
        with pytest.raises(ValueError, match=r"hidden must have rank 2 \(N examples, H units\)"):
            measure(np.ones(3))
        with pytest.raises(TypeError, match="hidden must have a floating-point dtype"):
            measure(np.ones((4, 3), dtype=int))
    with pytest.raises(TypeError, match="hidden must have a floating-point dtype"):
        nc.activation_sparsity(np.ones(3, dtype=int))
    with pytest.raises(ValueError, match="threshold must be in"):
        nc.activation_sparsity(hidden, threshold=math.nan)
    with pytest.raises(TypeError, match="threshold must be a real number"):
        nc.activation_sparsity(hidden, threshold="0")
    ablate = partial(nc.ablation_accuracy, rng=rng, trials=2)
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\], but got k=4"):
        ablate(head, hidden, y, 4)
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\], but got k=-1"):
        ablate(head, hidden, y, -1)
    with pytest.raises(TypeError, match="k must be an integer"):
        ablate(head, hidden, y, 1.0)
    with pytest.raises(ValueError, match="trials must be >= 1"):
        nc.ablation_accuracy(head, hidden, y, 1, rng=rng, trials=0)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        nc.ablation_accuracy(head, hidden, y, 1, rng=1, trials=2)
    with pytest.raises(TypeError, match=r"head must be a callable \(hidden -> logits\)"):
        ablate(None, hidden, y, 1)
    with pytest.raises(TypeError, match="y must be an integer array"):
        ablate(head, hidden, y.astype(float), 1)
    with pytest.raises(ValueError, match=r"y must have shape \(4,\) .* got hidden \(4, 3\) and y"):
        ablate(head, hidden, y[:3], 1)
    with pytest.raises(ValueError, match="hidden must hold at least one example"):
        ablate(head, hidden[:0], y[:0], 1)
    with pytest.raises(ValueError, match=r"head must return logits of shape \(4, K\)"):
        ablate(lambda h: np.zeros(4), hidden, y, 1)


# --- torch twins ---------------------------------------------------------------------------------


def _torch(array, device):
    return torch.from_numpy(np.asarray(array)).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_measures_match_numpy(device):
    rng = np.random.default_rng(6)
    hidden = np.maximum(rng.standard_normal((30, 5)) @ rng.standard_normal((5, 5)), 0)
    hidden = np.column_stack([hidden, np.zeros(30), _three_units().repeat(30 // 4 + 1, 0)[:30]])
    for h in (hidden, hidden[:1], hidden[:0], _three_units()):
        corr = tc.unit_correlation(_torch(h, device))
        assert corr.device.type == device and corr.dtype == torch.float64
        np.testing.assert_allclose(
            corr.cpu().numpy(), nc.unit_correlation(h), rtol=1e-12, atol=1e-15
        )
        assert tc.mean_abs_correlation(_torch(h, device)) == pytest.approx(
            nc.mean_abs_correlation(h), rel=1e-12, abs=1e-15
        )
        for threshold in (0.0, 0.3):
            assert tc.activation_sparsity(_torch(h, device), threshold) == nc.activation_sparsity(
                h, threshold
            )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_ablation_matches_numpy_at_the_ends_and_chooses_uniformly(device):
    params, x, y = _network_and_data()
    tparams = params.map_arrays(lambda a: _torch(a, device))
    hidden = ne.dropped_units(params, x)

    def head(h):
        return ne.logits_from_units(tparams, h)

    generator = torch.Generator(device).manual_seed(7)
    for k in (0, 10):
        got = tc.ablation_accuracy(
            head, _torch(hidden, device), _torch(y, device), k, generator=generator, trials=2
        )
        expected = nc.ablation_accuracy(
            partial(ne.logits_from_units, params),
            hidden,
            y,
            k,
            rng=np.random.default_rng(0),
            trials=2,
        )
        assert got == expected
    # Same uniformity check as the numpy twin (Binomial(trials, 1/3), Bernstein at 1e-9).
    trials = 3000
    accuracy = tc.ablation_accuracy(
        lambda h: _torch(_right_only_without_unit_0(h.cpu().numpy()), device),
        _torch(np.ones((5, 3)), device),
        _torch(np.ones(5, dtype=int), device),
        1,
        generator=generator,
        trials=trials,
    )
    assert abs(accuracy * trials - trials / 3) < binomial_tolerance(trials, 1 / 3)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_functions_reject_bad_arguments(device):
    hidden, y = torch.ones((4, 3), device=device), torch.zeros(4, dtype=torch.long, device=device)
    generator = torch.Generator(device).manual_seed(0)

    def head(h):
        return torch.zeros((len(h), 2), device=device)

    with pytest.raises(ValueError, match=r"hidden must have rank 2"):
        tc.unit_correlation(hidden[0])
    with pytest.raises(TypeError, match="hidden must have a floating-point dtype"):
        tc.activation_sparsity(y)
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\]"):
        tc.ablation_accuracy(head, hidden, y, 5, generator=generator, trials=1)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tc.ablation_accuracy(head, hidden, y, 1, generator=np.random.default_rng(0), trials=1)
    with pytest.raises(TypeError, match="y must be an integer array"):
        tc.ablation_accuracy(head, hidden, y.double(), 1, generator=generator, trials=1)
