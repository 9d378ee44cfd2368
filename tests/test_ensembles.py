"""Dropout as an ensemble: exact enumeration, NWGM, weight scaling, MC dropout; torch twins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import ensembles as ne
from dropout_course import masks
from dropout_course.bounds import FALSE_FAIL, mean_tolerance
from dropout_course.ensembles import TinyMLP
from dropout_course.torch import ensembles as te
from dropout_course.torch import masks as tmasks

SCALINGS = ["inverted", "classic"]

SOFTMAX_LAYER = ((5, 3), 0)
"""One softmax layer with dropout on its 5 inputs: logits are affine in the mask."""

HIDDEN_DROPOUT = ((5, 8, 3), 1)
"""ReLU hidden layer of 8 units, dropped, feeding the softmax directly: still affine in the mask."""

INPUT_DROPOUT = ((5, 8, 3), 0)
"""Dropout on the 5 inputs of a ReLU hidden layer: the logits are not affine in the mask."""

DEEP_DROPOUT = ((5, 6, 6, 3), 1)
"""Dropout on the first of two ReLU hidden layers."""


def _net(sizes, dropped_layer, seed=0, gain=2.0):
    """A TinyMLP with large weights (gain x He) and nonzero biases, so ensembles differ."""
    rng = np.random.default_rng(seed)
    params = ne.init_tiny_mlp(sizes, rng, dropped_layer=dropped_layer)
    biases = tuple(0.5 * rng.standard_normal(b.shape) for b in params.biases)
    return TinyMLP(tuple(gain * W for W in params.weights), biases, dropped_layer)


def _x(n=6, d=5, seed=1):
    return np.random.default_rng(seed).standard_normal((n, d))


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _to_torch(value, device):
    if isinstance(value, TinyMLP):
        return value.map_arrays(lambda a: torch.from_numpy(a).to(device))
    return torch.from_numpy(np.asarray(value)).to(device)


# --- enumeration ---------------------------------------------------------------------------------


def test_enumerate_masks_lists_every_mask_once_with_its_probability():
    n, p = 5, 0.3
    all_masks, probs = ne.enumerate_masks(n, p)
    assert all_masks.shape == (32, 5) and all_masks.dtype == bool and probs.shape == (32,)
    assert len(np.unique(all_masks, axis=0)) == 32
    for i, (mask, prob) in enumerate(zip(all_masks, probs, strict=True)):
        assert list(mask) == [bool(i >> j & 1) for j in range(n)]  # row i = bits of i
        kept = int(mask.sum())
        assert prob == pytest.approx(0.7**kept * 0.3 ** (n - kept), rel=1e-14)
    assert abs(probs.sum() - 1.0) < 1e-12


def test_enumerate_masks_edge_cases():
    empty, probs = ne.enumerate_masks(0, 0.4)
    assert empty.shape == (1, 0) and probs.tolist() == [1.0]
    all_masks, probs = ne.enumerate_masks(3, 0.0)  # only the full network has weight
    assert probs[all_masks.all(axis=1)].tolist() == [1.0] and probs.sum() == 1.0
    all_masks, probs = ne.enumerate_masks(3, 1.0)  # only the empty one
    assert probs[~all_masks.any(axis=1)].tolist() == [1.0] and probs.sum() == 1.0
    assert ne.enumerate_masks(ne.MAX_ENUMERATED_UNITS, 0.5)[0].shape == (2**20, 20)


# --- one subnetwork and the eval network ---------------------------------------------------------


@pytest.mark.parametrize("scaling", SCALINGS)
def test_mlp_probs_is_the_masked_network(scaling):
    params, x, p = _net(*HIDDEN_DROPOUT), _x(), 0.4
    (W1, W2), (b1, b2) = params.weights, params.biases
    train_scale, eval_scale = (1 / 0.6, 1.0) if scaling == "inverted" else (1.0, 0.6)
    hidden = np.maximum(x @ W1 + b1, 0)
    mask = masks.keep_mask((len(x), 8), p, np.random.default_rng(2))
    expected = _softmax(hidden * mask * train_scale @ W2 + b2)
    got = ne.mlp_probs(params, x, p, mask=mask, scaling=scaling)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    eval_expected = _softmax(hidden * eval_scale @ W2 + b2)
    np.testing.assert_allclose(ne.mlp_probs(params, x, p, scaling=scaling), eval_expected)
    np.testing.assert_array_equal(
        ne.weight_scaling_predict(params, x, p, scaling=scaling),
        ne.mlp_probs(params, x, p, scaling=scaling),
    )


def test_a_unit_mask_is_one_subnetwork_for_the_whole_batch():
    params, x = _net(*DEEP_DROPOUT), _x()
    mask = np.array([1, 0, 1, 1, 0, 1])  # 0/1 ints work like bools
    batch_mask = np.tile(mask.astype(bool), (len(x), 1))
    np.testing.assert_array_equal(
        ne.mlp_probs(params, x, 0.5, mask=mask), ne.mlp_probs(params, x, 0.5, mask=batch_mask)
    )


def test_dropped_units_and_logits_from_units_compose_to_the_eval_network():
    params, x = _net(*DEEP_DROPOUT), _x()
    units = ne.dropped_units(params, x)
    assert units.shape == (6, 6) and np.all(units >= 0)  # ReLU outputs of the first layer
    np.testing.assert_allclose(
        _softmax(ne.logits_from_units(params, units)), ne.weight_scaling_predict(params, x, 0.3)
    )
    np.testing.assert_array_equal(ne.dropped_units(_net(*INPUT_DROPOUT), x), x)
    stacked = ne.logits_from_units(params, np.stack([units, 2 * units]))  # leading axes pass
    np.testing.assert_allclose(stacked[1], ne.logits_from_units(params, 2 * units))


# --- exact ensembles -----------------------------------------------------------------------------


def test_one_unit_arithmetic_mean_is_the_two_term_mixture():
    # One input unit into a softmax layer: keep it (probability 1 - p) or drop it (probability p).
    rng = np.random.default_rng(3)
    W, b, x, p = rng.standard_normal((1, 4)), rng.standard_normal(4), _x(d=1), 0.3
    params = TinyMLP((W,), (b,), dropped_layer=0)
    expected = (1 - p) * _softmax(x / (1 - p) @ W + b) + p * _softmax(np.zeros_like(x) @ W + b)
    np.testing.assert_allclose(ne.ensemble_arithmetic_mean(params, x, p), expected, rtol=1e-14)


@pytest.mark.parametrize("network", [SOFTMAX_LAYER, INPUT_DROPOUT, DEEP_DROPOUT])
def test_ensembles_equal_the_explicit_sum_over_subnetworks(network):
    # Brute force: every subnetwork's probabilities from mlp_probs, then the two averages.
    params, x, p = _net(*network), _x(), 0.35
    all_masks, probs = ne.enumerate_masks(params.n_units, p)
    outputs = np.stack([ne.mlp_probs(params, x, p, mask=m) for m in all_masks])
    arithmetic = np.tensordot(probs, outputs, axes=1)
    geometric = np.exp(np.tensordot(probs, np.log(outputs), axes=1))
    np.testing.assert_allclose(ne.ensemble_arithmetic_mean(params, x, p), arithmetic, rtol=1e-12)
    np.testing.assert_allclose(
        ne.ensemble_nwgm(params, x, p), geometric / geometric.sum(axis=1, keepdims=True), rtol=1e-12
    )


@pytest.mark.parametrize("network", [SOFTMAX_LAYER, HIDDEN_DROPOUT])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_nwgm_equals_weight_scaling_when_the_dropped_units_feed_the_softmax(network, p, scaling):
    # Baldi & Sadowski (2014): the logits are affine in the mask, so the normalised geometric
    # mean of the softmaxes is the softmax of the mean logits, which is the eval network.
    params, x = _net(*network), _x()
    nwgm = ne.ensemble_nwgm(params, x, p, scaling=scaling)
    weight_scaling = ne.weight_scaling_predict(params, x, p, scaling=scaling)
    assert np.max(np.abs(nwgm - weight_scaling)) < 1e-12
    # ... while the arithmetic mean of the same subnetworks is a different ensemble (measured
    # with these seeds: max gap 0.07 to 0.66):
    arithmetic = ne.ensemble_arithmetic_mean(params, x, p, scaling=scaling)
    assert np.max(np.abs(arithmetic - weight_scaling)) > 0.05


@pytest.mark.parametrize("network", [INPUT_DROPOUT, DEEP_DROPOUT])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_nwgm_only_approximates_weight_scaling_below_a_relu_layer(network, p):
    # Measured with these seeds: max |NWGM - weight scaling| is 0.09 to 0.58.
    params, x = _net(*network), _x()
    gap = np.max(np.abs(ne.ensemble_nwgm(params, x, p) - ne.weight_scaling_predict(params, x, p)))
    assert gap > 0.05


@pytest.mark.parametrize("network", [SOFTMAX_LAYER, INPUT_DROPOUT, DEEP_DROPOUT])
def test_ensembles_are_distributions(network):
    params, x = _net(*network), _x()
    for predict in (ne.ensemble_arithmetic_mean, ne.ensemble_nwgm, ne.weight_scaling_predict):
        probs = predict(params, x, 0.5)
        assert probs.shape == (6, 3) and np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_every_ensemble_is_the_full_network_at_p_zero(scaling):
    params, x = _net(*DEEP_DROPOUT), _x()
    full = ne.weight_scaling_predict(params, x, 0.0, scaling=scaling)
    np.testing.assert_allclose(ne.ensemble_arithmetic_mean(params, x, 0.0), full, rtol=1e-14)
    np.testing.assert_allclose(ne.ensemble_nwgm(params, x, 0.0), full, rtol=1e-14)
    mean, var = ne.mc_dropout_predict(params, x, 0.0, rng=np.random.default_rng(0), samples=50)
    np.testing.assert_allclose(mean, full, rtol=1e-14)
    assert np.all(var <= 1e-30)  # 0 up to the rounding of the mean


def test_dtypes_and_empty_batches_pass_through():
    params = _net(*HIDDEN_DROPOUT).map_arrays(lambda a: a.astype(np.float32))
    x = _x().astype(np.float32)
    for predict in (ne.ensemble_arithmetic_mean, ne.ensemble_nwgm, ne.weight_scaling_predict):
        assert predict(params, x, 0.5).dtype == np.float32
        assert predict(params, x[:0], 0.5).shape == (0, 3)
    mean, var = ne.mc_dropout_predict(params, x, 0.5, rng=np.random.default_rng(0), samples=3)
    assert mean.dtype == var.dtype == np.float32
    assert ne.mc_dropout_predict(params, x[:0], 0.5, rng=np.random.default_rng(0), samples=3)[
        0
    ].shape == (0, 3)


# --- MC dropout ----------------------------------------------------------------------------------


def test_mc_dropout_draws_a_fresh_mask_per_pass_and_per_example():
    params, x, p, samples = _net(*HIDDEN_DROPOUT), _x(), 0.5, 7
    mean, var = ne.mc_dropout_predict(params, x, p, rng=np.random.default_rng(4), samples=samples)
    drawn = masks.keep_mask((samples, len(x), params.n_units), p, np.random.default_rng(4))
    expected_mean, expected_var = ne.mc_dropout_moments(params, x, p, drawn)
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(var, expected_var)
    outputs = np.stack([ne.mlp_probs(params, x, p, mask=m) for m in drawn])
    np.testing.assert_allclose(mean, outputs.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(var, outputs.var(axis=0), rtol=1e-12, atol=1e-16)


def test_mc_dropout_moments_with_one_mask_per_pass_share_it_over_the_batch():
    params, x = _net(*HIDDEN_DROPOUT), _x()
    per_pass = masks.keep_mask((5, params.n_units), 0.5, np.random.default_rng(5))
    per_example = np.repeat(per_pass[:, None, :], len(x), axis=1)
    for got, expected in zip(
        ne.mc_dropout_moments(params, x, 0.5, per_pass),
        ne.mc_dropout_moments(params, x, 0.5, per_example),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("network", [HIDDEN_DROPOUT, INPUT_DROPOUT])
def test_mc_dropout_converges_to_the_arithmetic_mean_not_to_averaged_logits(network):
    params, x, p, samples = _net(*network), _x(), 0.5, 20_000
    drawn = masks.keep_mask((samples, len(x), params.n_units), p, np.random.default_rng(6))
    mean, var = ne.mc_dropout_moments(params, x, p, drawn)
    # Passes are independent and give probabilities in [0, 1]. Hoeffding at FALSE_FAIL / 36 for
    # the mean and for the second moment of each of the 18 entries; by the union bound all 36
    # estimates are within tol of their expectations except with probability <= FALSE_FAIL.
    tol = mean_tolerance(samples, 0.5, FALSE_FAIL / (2 * mean.size))
    arithmetic = ne.ensemble_arithmetic_mean(params, x, p)
    assert np.max(np.abs(mean - arithmetic)) < tol
    # Exact variance over masks, E[softmax^2] - E[softmax]^2: each example's mask has the same
    # distribution whether or not the batch shares it, so enumerating whole-batch masks is exact.
    all_masks, probs = ne.enumerate_masks(params.n_units, p)
    outputs = np.stack([ne.mlp_probs(params, x, p, mask=m) for m in all_masks])
    exact_var = np.tensordot(probs, outputs**2, axes=1) - arithmetic**2
    assert np.all(var >= 0)
    assert np.max(np.abs(var - exact_var)) < 3 * tol  # |a^2 - b^2| <= 2 |a - b| on [0, 1]
    # The wrong variant (average the logits of the same passes, then softmax) misses by far more:
    units = ne.dropped_units(params, x)
    averaged_logits = ne.logits_from_units(params, np.where(drawn, units / (1 - p), 0)).mean(0)
    assert np.max(np.abs(_softmax(averaged_logits) - arithmetic)) > 4 * tol


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_mc_variance_is_zero_without_randomness(p):
    params, x = _net(*HIDDEN_DROPOUT), _x()
    mean, var = ne.mc_dropout_predict(params, x, p, rng=np.random.default_rng(0), samples=20)
    np.testing.assert_allclose(mean, ne.ensemble_arithmetic_mean(params, x, p), rtol=1e-14)
    assert np.all(var >= 0) and np.all(var <= 1e-30)


# --- bad inputs ----------------------------------------------------------------------------------


def test_tiny_mlp_rejects_inconsistent_layers():
    W, b = np.ones((3, 2)), np.zeros(2)
    with pytest.raises(ValueError, match="weights and biases must hold one entry per layer"):
        TinyMLP((W,), (), dropped_layer=0)
    with pytest.raises(ValueError, match="weights and biases must hold one entry per layer"):
        TinyMLP((), (), dropped_layer=0)
    with pytest.raises(ValueError, match=r"biases\[0\] must have shape \(2,\)"):
        TinyMLP((W,), (np.zeros(3),), dropped_layer=0)
    with pytest.raises(ValueError, match=r"weights\[1\] of shape \(3, 2\) does not take"):
        TinyMLP((W, W), (b, b), dropped_layer=0)
    with pytest.raises(ValueError, match=r"weights\[0\] must have rank 2"):
        TinyMLP((np.ones(3),), (b,), dropped_layer=0)
    with pytest.raises(TypeError, match=r"weights\[0\] must have a floating-point dtype"):
        TinyMLP((np.ones((3, 2), dtype=int),), (b,), dropped_layer=0)
    with pytest.raises(ValueError, match=r"dropped_layer must be in \[0, 0\]"):
        TinyMLP((W,), (b,), dropped_layer=1)
    with pytest.raises(ValueError, match="at least one output"):
        TinyMLP((np.ones((3, 0)),), (np.zeros(0),), dropped_layer=0)


def test_init_tiny_mlp_builds_he_normal_weights_and_checks_sizes():
    params = ne.init_tiny_mlp([4, 7, 3], np.random.default_rng(0), dropped_layer=1)
    assert [W.shape for W in params.weights] == [(4, 7), (7, 3)] and params.n_units == 7
    assert all(np.all(b == 0) for b in params.biases)
    again = ne.init_tiny_mlp([4, 7, 3], np.random.default_rng(0), dropped_layer=1)
    np.testing.assert_array_equal(params.weights[0], again.weights[0])
    with pytest.raises(ValueError, match="sizes must hold at least an input and an output"):
        ne.init_tiny_mlp([4], np.random.default_rng(0), dropped_layer=0)
    with pytest.raises(ValueError, match=r"sizes\[1\] must be >= 1"):
        ne.init_tiny_mlp([4, 0], np.random.default_rng(0), dropped_layer=0)


def test_enumerate_masks_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"n_units must be <= 20 .*would not fit in memory"):
        ne.enumerate_masks(21, 0.5)
    with pytest.raises(ValueError, match="n_units must be >= 0"):
        ne.enumerate_masks(-1, 0.5)
    with pytest.raises(TypeError, match="n_units must be an integer"):
        ne.enumerate_masks(2.0, 0.5)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        ne.enumerate_masks(3, 1.5)


def test_functions_reject_bad_arguments():
    params, x = _net(*HIDDEN_DROPOUT), _x()
    rng = np.random.default_rng(0)
    exact = (ne.ensemble_arithmetic_mean, ne.ensemble_nwgm, ne.weight_scaling_predict)
    for predict in (*exact, ne.mlp_probs):
        with pytest.raises(ValueError, match="p=nan"):
            predict(params, x, math.nan)
        with pytest.raises(ValueError, match="scaling must be one of"):
            predict(params, x, 0.5, scaling="bogus")
        with pytest.raises(ValueError, match=r"x must have 5 features .* got shape \(6, 4\)"):
            predict(params, x[:, :4], 0.5)
        with pytest.raises(TypeError, match="x must have a floating-point dtype"):
            predict(params, x.astype(int), 0.5)
        with pytest.raises(TypeError, match="params must be a TinyMLP"):
            predict(params.weights, x, 0.5)
    wide = TinyMLP((np.ones((21, 2)),), (np.zeros(2),), dropped_layer=0)
    for predict in exact[:2]:
        with pytest.raises(ValueError, match=r"params\.n_units must be <= 20"):
            predict(wide, np.ones((2, 21)), 0.5)
    with pytest.raises(ValueError, match=r"mask must have shape \(6, 8\)"):
        ne.mlp_probs(params, x, 0.5, mask=np.ones((6, 7), dtype=bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(8,\)"):
        ne.mlp_probs(params, x, 0.5, mask=np.ones(7, dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        ne.mlp_probs(params, x, 0.5, mask=np.full(8, 2))
    with pytest.raises(ValueError, match=r"masks must have shape \(3, 6, 8\)"):
        ne.mc_dropout_moments(params, x, 0.5, np.ones((3, 5, 8), dtype=bool))
    with pytest.raises(ValueError, match="masks must hold at least one pass"):
        ne.mc_dropout_moments(params, x, 0.5, np.ones((0, 8), dtype=bool))
    with pytest.raises(ValueError, match=r"samples must be >= 1"):
        ne.mc_dropout_predict(params, x, 0.5, rng=rng, samples=0)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        ne.mc_dropout_predict(params, x, 0.5, rng=0, samples=3)
    with pytest.raises(ValueError, match="scaling must be one of"):
        ne.mc_dropout_predict(params, x, 0.5, rng=rng, samples=3, scaling="bogus")
    with pytest.raises(ValueError, match=r"units must have 8 entries .* got shape \(6, 5\)"):
        ne.logits_from_units(params, x)
    with pytest.raises(TypeError, match="params must be a TinyMLP"):
        ne.logits_from_units(params.weights, x)


# --- torch twins ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("network", [SOFTMAX_LAYER, HIDDEN_DROPOUT, INPUT_DROPOUT, DEEP_DROPOUT])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_torch_twins_match_numpy_given_the_same_masks(device, network, scaling):
    params, x, p = _net(*network), _x(), 0.4
    tparams, tx = _to_torch(params, device), _to_torch(x, device)
    rng = np.random.default_rng(7)
    batch_mask = masks.keep_mask(params.n_units, p, rng)
    example_mask = masks.keep_mask((len(x), params.n_units), p, rng)
    pass_masks = masks.keep_mask((9, len(x), params.n_units), p, rng)

    def check(got, expected):
        assert got.device.type == device and got.dtype == torch.float64
        np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-12, atol=1e-15)

    for mask in (None, batch_mask, example_mask):
        tmask = None if mask is None else _to_torch(mask, device)
        check(
            te.mlp_probs(tparams, tx, p, mask=tmask, scaling=scaling),
            ne.mlp_probs(params, x, p, mask=mask, scaling=scaling),
        )
    for name in ("ensemble_arithmetic_mean", "ensemble_nwgm", "weight_scaling_predict"):
        check(
            getattr(te, name)(tparams, tx, p, scaling=scaling),
            getattr(ne, name)(params, x, p, scaling=scaling),
        )
    moments = te.mc_dropout_moments(tparams, tx, p, _to_torch(pass_masks, device), scaling=scaling)
    for got, expected in zip(
        moments, ne.mc_dropout_moments(params, x, p, pass_masks, scaling=scaling), strict=True
    ):
        check(got, expected)
    check(te.dropped_units(tparams, tx), ne.dropped_units(params, x))
    units = ne.dropped_units(params, x)
    check(
        te.logits_from_units(tparams, _to_torch(units, device)), ne.logits_from_units(params, units)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_enumerate_masks_and_init_match_the_numpy_contract(device):
    all_masks, probs = te.enumerate_masks(4, 0.3, device=device)
    expected_masks, expected_probs = ne.enumerate_masks(4, 0.3)
    assert all_masks.device.type == device and probs.dtype == torch.float64
    np.testing.assert_array_equal(all_masks.cpu().numpy(), expected_masks)
    np.testing.assert_array_equal(probs.cpu().numpy(), expected_probs)
    generator = torch.Generator(device).manual_seed(0)
    params = te.init_tiny_mlp([4, 7, 3], generator, dropped_layer=1, dtype=torch.float32)
    assert [tuple(W.shape) for W in params.weights] == [(4, 7), (7, 3)]
    assert all(W.device.type == device and W.dtype == torch.float32 for W in params.weights)
    assert all(bool((b == 0).all()) for b in params.biases)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        te.init_tiny_mlp([4, 3], 0, dropped_layer=0)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_mc_dropout_draws_from_the_generator_and_converges(device):
    params, x, p, samples = _net(*HIDDEN_DROPOUT), _x(), 0.5, 20_000
    tparams, tx = _to_torch(params, device), _to_torch(x, device)
    mean, var = te.mc_dropout_predict(
        tparams, tx, p, generator=torch.Generator(device).manual_seed(8), samples=samples
    )
    drawn = tmasks.keep_mask(
        (samples, len(x), params.n_units), p, torch.Generator(device).manual_seed(8)
    )
    expected_mean, expected_var = te.mc_dropout_moments(tparams, tx, p, drawn)
    torch.testing.assert_close(mean, expected_mean, rtol=0, atol=0)
    torch.testing.assert_close(var, expected_var, rtol=0, atol=0)
    # Hoeffding on each of the 18 entries, union bound: false-fail probability <= FALSE_FAIL.
    tol = mean_tolerance(samples, 0.5, FALSE_FAIL / mean.numel())
    arithmetic = ne.ensemble_arithmetic_mean(params, x, p)
    assert np.max(np.abs(mean.cpu().numpy() - arithmetic)) < tol
    assert bool((var >= 0).all())


@pytest.mark.parametrize("device", DEVICES)
def test_torch_functions_reject_bad_arguments(device):
    params, x = _to_torch(_net(*HIDDEN_DROPOUT), device), _to_torch(_x(), device)
    generator = torch.Generator(device).manual_seed(0)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        te.mc_dropout_predict(params, x, 0.5, generator=np.random.default_rng(0), samples=3)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        te.mc_dropout_predict(params, x, 0.5, generator=generator, samples=0)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        te.ensemble_nwgm(params, x, -0.1)
    with pytest.raises(ValueError, match=r"x must have rank 2"):
        te.ensemble_arithmetic_mean(params, x[0], 0.5)
    with pytest.raises(ValueError, match=r"mask must have shape \(8,\)"):
        te.mlp_probs(params, x, 0.5, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks must hold at least one pass"):
        te.mc_dropout_moments(params, x, 0.5, torch.ones((0, 8), dtype=torch.bool))
    with pytest.raises(ValueError, match="n_units must be <= 20"):
        te.enumerate_masks(21, 0.5)
    with pytest.raises(ValueError, match=r"units must have 8 entries"):
        te.logits_from_units(params, x)
