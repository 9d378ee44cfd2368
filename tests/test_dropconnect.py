"""DropConnect: numpy definition and gradients, torch twins, dropout as a special case, moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import dropconnect as nd
from dropout_course import ensembles, masks
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance, mean_tolerance
from dropout_course.dropout import dropout_backward, dropout_forward
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import dropconnect as td
from dropout_course.torch import masks as tmasks


def _layer(n=6, d=5, m=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    return x.astype(dtype), W.astype(dtype), b.astype(dtype)


def _mask(shape, p=0.4, seed=1):
    return masks.keep_mask(shape, p, np.random.default_rng(seed))


def _relu(u):
    return np.maximum(u, 0)


def _to_torch(device, *arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]


# --- numpy: the definition -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_uses_one_scaled_weight_mask_per_example(dtype):
    x, W, b = _layer(dtype=dtype)
    mask = _mask((6, 5, 4))
    out, cache = nd.dropconnect_forward(x, W, b, 0.4, train=True, mask=mask)
    expected = np.stack([x[n] @ (W * mask[n] / 0.6) + b for n in range(6)])
    assert out.dtype == dtype and out.shape == (6, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert cache.nbytes == 6 * 5 * 4  # one byte per weight and example
    as_integers, _ = nd.dropconnect_forward(x, W, b, 0.4, train=True, mask=mask.astype(np.int8))
    np.testing.assert_array_equal(as_integers, out)


def test_eval_is_the_plain_layer_and_p_zero_needs_no_rng():
    x, W, b = _layer()
    np.testing.assert_array_equal(nd.dropconnect_forward(x, W, b, 0.7, train=False)[0], x @ W + b)
    out, cache = nd.dropconnect_forward(x, W, b, 0.0, train=True)
    np.testing.assert_array_equal(out, x @ W + b)
    assert cache.nbytes == 0


def test_p_one_gives_the_bias_and_zero_gradients_without_nan():
    x, W, b = _layer()
    dout = np.ones((6, 4))
    with np.errstate(all="raise"):
        out, cache = nd.dropconnect_forward(x, W, b, 1.0, train=True)
        dx, dW, db = nd.dropconnect_backward(dout, cache)
        masked, masked_cache = nd.dropconnect_forward(
            x, W, b, 1.0, train=True, mask=np.ones((6, 5, 4), dtype=bool)
        )
        masked_grads = nd.dropconnect_backward(dout, masked_cache)
    for result in (out, masked):
        np.testing.assert_array_equal(result, np.broadcast_to(b, (6, 4)))
    for grads in ((dx, dW, db), masked_grads):
        assert np.all(grads[0] == 0) and np.all(grads[1] == 0)
        np.testing.assert_array_equal(grads[2], np.full(4, 6.0))


def test_empty_batch_passes_through():
    _, W, b = _layer()
    x = np.zeros((0, 5))
    out, cache = nd.dropconnect_forward(x, W, b, 0.5, train=True, rng=np.random.default_rng(0))
    dx, dW, db = nd.dropconnect_backward(np.zeros((0, 4)), cache)
    assert out.shape == (0, 4) and dx.shape == (0, 5)
    assert np.all(dW == 0) and dW.shape == (5, 4) and np.all(db == 0)
    mean, var = nd.dropconnect_moments(x, W, b, 0.5)
    assert mean.shape == var.shape == (0, 4)
    assert nd.moment_matching_predict(
        x, W, b, 0.5, _relu, rng=np.random.default_rng(0), samples=3
    ).shape == (0, 4)


def test_rng_path_stores_the_mask_it_drew_and_is_reproducible():
    x, W, b = _layer()
    out, cache = nd.dropconnect_forward(x, W, b, 0.3, train=True, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(cache.mask, _mask((6, 5, 4), p=0.3, seed=5))
    again, _ = nd.dropconnect_forward(x, W, b, 0.3, train=True, mask=cache.mask)
    np.testing.assert_array_equal(out, again)


def test_masks_differ_across_examples_and_drop_the_right_fraction():
    n, d, m, p = 2000, 5, 4, 0.3
    x, W, b = np.ones((n, d)), np.ones((d, m)), np.zeros(m)
    _, cache = nd.dropconnect_forward(x, W, b, p, train=True, rng=np.random.default_rng(6))
    # all n masks equal to the first has probability at most max(p, 1-p)**(d*m*(n-1)) << 1e-9
    assert not np.all(cache.mask == cache.mask[:1])
    dropped = int(np.sum(~cache.mask))
    assert abs(dropped - n * d * m * p) <= binomial_tolerance(n * d * m, p)


@pytest.mark.parametrize("mask_dtype", [np.int64, np.float64])
def test_a_zero_one_mask_of_any_dtype_is_stored_as_bool_and_keeps_x_dtype(mask_dtype):
    x, W, b = _layer(dtype=np.float32)
    mask, dout = _mask((6, 5, 4)), np.random.default_rng(7).standard_normal((6, 4))
    out, cache = nd.dropconnect_forward(x, W, b, 0.4, train=True, mask=mask.astype(mask_dtype))
    expected, expected_cache = nd.dropconnect_forward(x, W, b, 0.4, train=True, mask=mask)
    assert cache.mask.dtype == bool and cache.nbytes == 6 * 5 * 4
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    dout = dout.astype(np.float32)
    for grad, expected_grad in zip(
        nd.dropconnect_backward(dout, cache),
        nd.dropconnect_backward(dout, expected_cache),
        strict=True,
    ):
        assert grad.dtype == np.float32
        np.testing.assert_array_equal(grad, expected_grad)


# --- numpy: gradients ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "train", "mask_shape"),
    [(0.4, True, (6, 5, 4)), (0.4, True, (6, 5, 1)), (0.4, True, (1, 5, 4)), (0.4, False, None)],
)
def test_backward_matches_numerical_gradient(p, train, mask_shape):
    # positive x, W and dout: each gradient entry is 0 or above 0.1, far above the central
    # difference's roundoff (about 1e-9), which a near-cancelling entry would turn into > 1e-7
    rng = np.random.default_rng(8)
    x, W, b = rng.uniform(0.5, 1.5, (6, 5)), rng.uniform(0.5, 1.5, (5, 4)), rng.uniform(-1, 1, 4)
    dout = rng.uniform(0.5, 1.5, (6, 4))
    mask = None if mask_shape is None else _mask(mask_shape, p)
    _, cache = nd.dropconnect_forward(x, W, b, p, train=train, mask=mask)
    dx, dW, db = nd.dropconnect_backward(dout, cache)

    def forward(x_, W_, b_):
        return nd.dropconnect_forward(x_, W_, b_, p, train=train, mask=mask)[0]

    assert rel_error(dx, numerical_gradient(lambda v: forward(v, W, b), x, dout)) < 1e-7
    assert rel_error(dW, numerical_gradient(lambda v: forward(x, v, b), W, dout)) < 1e-7
    assert rel_error(db, numerical_gradient(lambda v: forward(x, W, v), b, dout)) < 1e-7


# --- dropout is DropConnect with a mask tied over the outputs ------------------------------


def test_dropout_is_dropconnect_with_masks_tied_over_outputs():
    # integer-valued data and p = 1/2 keep every sum exact, so the two paths agree bit for bit
    rng = np.random.default_rng(9)
    x = rng.integers(-5, 6, (7, 5)).astype(float)
    W, b = rng.integers(-5, 6, (5, 3)).astype(float), rng.integers(-5, 6, 3).astype(float)
    dout = rng.integers(-5, 6, (7, 3)).astype(float)
    unit_mask = _mask((7, 5), p=0.5)
    dropped, dropout_cache = dropout_forward(x, 0.5, train=True, mask=unit_mask)
    tied = np.repeat(unit_mask[:, :, None], 3, axis=2)
    for mask in (tied, unit_mask[:, :, None]):  # the full tied mask, and its broadcast form
        out, cache = nd.dropconnect_forward(x, W, b, 0.5, train=True, mask=mask)
        np.testing.assert_array_equal(out, dropped @ W + b)
        dx, dW, db = nd.dropconnect_backward(dout, cache)
        np.testing.assert_array_equal(dx, dropout_backward(dout @ W.T, dropout_cache))
        np.testing.assert_array_equal(dW, dropped.T @ dout)
        np.testing.assert_array_equal(db, dout.sum(axis=0))


# --- moments and inference -------------------------------------------------------------------


def test_moments_match_monte_carlo_over_many_masks():
    p, repeats = 0.5, 20_000
    x0, W, b = _layer(n=3, d=5, m=4, seed=10)
    x = np.repeat(x0, repeats, axis=0)  # each row of x0 seen with `repeats` independent masks
    out, _ = nd.dropconnect_forward(x, W, b, p, train=True, rng=np.random.default_rng(11))
    samples = out.reshape(3, repeats, 4)
    mean, var = nd.dropconnect_moments(x0, W, b, p)
    # u - b lies in [negative terms, positive terms] / (1 - p); Hoeffding on the mean of u and
    # of (u - mean)^2, union bound over the 2 * 12 checks: false-fail probability < 1e-9
    terms = x0[:, :, None] * W[None] / (1 - p)
    low, high = np.minimum(terms, 0).sum(axis=1) + b, np.maximum(terms, 0).sum(axis=1) + b
    delta = FALSE_FAIL / (2 * mean.size)
    half_range = np.vectorize(lambda r: mean_tolerance(repeats, r / 2, delta))
    assert np.all(np.abs(samples.mean(axis=1) - mean) <= half_range(high - low))
    largest_square = np.maximum(high - mean, mean - low) ** 2
    squares = ((samples - mean[:, None, :]) ** 2).mean(axis=1)
    tolerance = half_range(largest_square)
    assert np.all(np.abs(squares - var) <= tolerance)
    assert np.all(tolerance < 0.5 * var)  # tight enough to tell p/(1-p) from p(1-p) (1 vs 1/4)


def test_moments_in_closed_form_and_at_the_ends():
    x, W, b = _layer()
    mean, var = nd.dropconnect_moments(x, W, b, 0.25)
    np.testing.assert_allclose(mean, x @ W + b, rtol=1e-14)
    np.testing.assert_allclose(var, (x**2) @ (W**2) / 3, rtol=1e-14)
    mean, var = nd.dropconnect_moments(x, W, b, 0.0)
    assert np.all(var == 0)
    mean, var = nd.dropconnect_moments(x, W, b, 1.0)  # the forward pass gives u = b exactly
    np.testing.assert_array_equal(mean, np.broadcast_to(b, (6, 4)))
    assert np.all(var == 0)


def _gaussian_relu_mean(mean, std):
    """E[relu(u)] for u ~ N(mean, std^2), std > 0."""
    z = mean / std
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return mean * cdf + std * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _moment_matching_tolerance(std, samples):
    """relu(mean + std Z) is std-Lipschitz in Z; Gaussian concentration for the mean of
    `samples` draws: P(|avg - E| >= t) <= 2 exp(-samples t^2 / (2 std^2)), union over entries."""
    delta = FALSE_FAIL / std.size
    return std * math.sqrt(2 * math.log(2 / delta) / samples)


def test_moment_matching_approaches_the_gaussian_relu_mean():
    x, W, b = _layer(seed=12)
    samples = 20_000
    mean, var = nd.dropconnect_moments(x, W, b, 0.5)
    predicted = nd.moment_matching_predict(
        x, W, b, 0.5, _relu, rng=np.random.default_rng(13), samples=samples
    )
    expected = _gaussian_relu_mean(mean, np.sqrt(var))
    assert np.all(np.abs(predicted - expected) <= _moment_matching_tolerance(np.sqrt(var), samples))
    again = nd.moment_matching_predict(
        x, W, b, 0.5, _relu, rng=np.random.default_rng(13), samples=samples
    )
    np.testing.assert_array_equal(predicted, again)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moment_matching_draws_gaussian_pre_activations_in_x_dtype(dtype):
    x, W, b = _layer(dtype=dtype)
    mean, var = nd.dropconnect_moments(x, W, b, 0.3)
    draws = np.random.default_rng(23).standard_normal((5, 6, 4), dtype=dtype)
    predicted = nd.moment_matching_predict(
        x, W, b, 0.3, _relu, rng=np.random.default_rng(23), samples=5
    )
    assert predicted.dtype == dtype and predicted.shape == (6, 4)
    expected = _relu(mean + np.sqrt(var) * draws).mean(axis=0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_moment_matching_at_p_zero_is_weight_scaling():
    x, W, b = _layer()
    predicted = nd.moment_matching_predict(
        x, W, b, 0.0, _relu, rng=np.random.default_rng(0), samples=3
    )
    np.testing.assert_allclose(predicted, nd.weight_scaling_predict(x, W, b, _relu), rtol=1e-15)
    np.testing.assert_array_equal(nd.weight_scaling_predict(x, W, b, _relu), _relu(x @ W + b))


def _exact_dropconnect_average(x, W, b, p, readout):
    """Sum over all 2**(D*M) weight masks (one mask shared by the rows) of P(mask) readout(u)."""
    d, m = W.shape
    all_masks, probs = ensembles.enumerate_masks(d * m, p)
    outputs = [
        readout(nd.dropconnect_forward(x, W, b, p, train=True, mask=mask.reshape(1, d, m))[0])
        for mask in all_masks
    ]
    return np.tensordot(probs, np.stack(outputs), axes=1), np.max(outputs, axis=0)


def test_mc_dropconnect_average_approaches_the_exact_mixture():
    x, W, b = _layer(n=3, d=2, m=2, seed=19)
    p, samples = 0.5, 20_001
    exact, largest = _exact_dropconnect_average(x, W, b, p, _relu)
    estimate = nd.mc_dropconnect_predict(
        x, W, b, p, _relu, rng=np.random.default_rng(20), samples=samples
    )
    # relu(u) lies in [0, largest]: Hoeffding, union bound over the entries (< 1e-9 in all)
    tolerance = np.vectorize(lambda r: mean_tolerance(samples, r / 2, FALSE_FAIL / exact.size))
    assert estimate.shape == (3, 2) and estimate.dtype == np.float64
    assert np.all(np.abs(estimate - exact) <= tolerance(largest))
    # tight enough to tell the mixture from weight scaling, relu(mean), on some entry
    gap = np.abs(exact - nd.weight_scaling_predict(x, W, b, _relu))
    assert np.any(gap > 2 * tolerance(largest))
    again = nd.mc_dropconnect_predict(
        x, W, b, p, _relu, rng=np.random.default_rng(20), samples=samples
    )
    np.testing.assert_array_equal(estimate, again)


def test_mc_dropconnect_averages_training_passes_drawn_in_turn():
    x, W, b = _layer()
    rng = np.random.default_rng(22)
    passes = [nd.dropconnect_forward(x, W, b, 0.4, train=True, rng=rng)[0] for _ in range(7)]
    estimate = nd.mc_dropconnect_predict(
        x, W, b, 0.4, _relu, rng=np.random.default_rng(22), samples=7
    )
    np.testing.assert_allclose(estimate, np.mean([_relu(u) for u in passes], axis=0), rtol=1e-14)


def test_mc_dropconnect_readout_may_change_the_width_and_p_zero_is_deterministic():
    x, W, b = _layer(dtype=np.float32)
    head = np.random.default_rng(21).standard_normal((4, 3)).astype(np.float32)

    def logits(u):
        return _relu(u) @ head

    predicted = nd.mc_dropconnect_predict(
        x, W, b, 0.0, logits, rng=np.random.default_rng(0), samples=5
    )
    assert predicted.shape == (6, 3) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, logits(x @ W + b), rtol=1e-6)
    empty = nd.mc_dropconnect_predict(
        x[:0], W, b, 0.5, logits, rng=np.random.default_rng(0), samples=2
    )
    assert empty.shape == (0, 3)


# --- numpy: bad input ------------------------------------------------------------------------


def test_numpy_rejects_bad_input_with_named_arguments():
    x, W, b = _layer()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        nd.dropconnect_forward(x, W, b, -0.1, train=True, rng=rng)
    with pytest.raises(ValueError, match="p=nan"):
        nd.dropconnect_moments(x, W, b, float("nan"))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        nd.dropconnect_forward(x.astype(int), W, b, 0.5, train=False)
    with pytest.raises(TypeError, match="W must be an array"):
        nd.dropconnect_forward(x, W.tolist(), b, 0.5, train=False)
    with pytest.raises(TypeError, match="W and b must have x's dtype float64"):
        nd.dropconnect_forward(x, W.astype(np.float32), b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"x must have rank 2 \(N examples, D inputs\)"):
        nd.dropconnect_forward(x[0], W, b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"W must have rank 2 .* shape \(5, 4, 1\)"):
        nd.dropconnect_forward(x, W[:, :, None], b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"must agree on D, but got shapes \(6, 5\) and \(4, 4\)"):
        nd.dropconnect_forward(x, W[:4], b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"b must have shape \(M,\) = \(4,\) .* shape \(3,\)"):
        nd.dropconnect_forward(x, W, b[:3], 0.5, train=False)
    with pytest.raises(ValueError, match=r"mask must have shape \(6, 5, 4\)"):
        nd.dropconnect_forward(x, W, b, 0.5, train=True, mask=np.ones((6, 5), dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        nd.dropconnect_forward(x, W, b, 0.5, train=True, mask=np.full((6, 5, 4), 2.0))
    with pytest.raises(ValueError, match="needs rng"):
        nd.dropconnect_forward(x, W, b, 0.5, train=True)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        nd.dropconnect_forward(x, W, b, 0.5, train=True, rng=42)
    _, cache = nd.dropconnect_forward(x, W, b, 0.5, train=True, mask=_mask((6, 5, 4)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape .* \(6, 4\)"):
        nd.dropconnect_backward(np.ones((4, 6)), cache)
    with pytest.raises(TypeError, match="dout must have a floating-point dtype"):
        nd.dropconnect_backward(np.ones((6, 4), dtype=int), cache)
    with pytest.raises(ValueError, match="samples must be >= 1, but got samples=0"):
        nd.moment_matching_predict(x, W, b, 0.5, _relu, rng=rng, samples=0)
    with pytest.raises(TypeError, match="samples must be an integer"):
        nd.moment_matching_predict(x, W, b, 0.5, _relu, rng=rng, samples=2.5)
    with pytest.raises(TypeError, match="activation must be a callable"):
        nd.moment_matching_predict(x, W, b, 0.5, "relu", rng=rng, samples=2)
    with pytest.raises(TypeError, match="activation must be a callable"):
        nd.weight_scaling_predict(x, W, b, None)
    with pytest.raises(TypeError, match="readout must be a callable"):
        nd.mc_dropconnect_predict(x, W, b, 0.5, "relu", rng=rng, samples=2)
    with pytest.raises(ValueError, match="samples must be >= 1, but got samples=0"):
        nd.mc_dropconnect_predict(x, W, b, 0.5, _relu, rng=rng, samples=0)
    with pytest.raises(ValueError, match=r"readout must return one row per row .* \(6\)"):
        nd.mc_dropconnect_predict(x, W, b, 0.5, lambda u: u.sum(axis=0), rng=rng, samples=2)
    with pytest.raises(ValueError, match="needs rng"):
        nd.mc_dropconnect_predict(x, W, b, 0.5, _relu, rng=None, samples=2)


# --- torch twins -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("p", "train", "mask_shape"),
    [(0.4, True, (6, 5, 4)), (0.4, True, (6, 5, 1)), (0.4, False, None), (1.0, True, None)],
)
def test_torch_twin_matches_numpy_given_the_same_mask(device, p, train, mask_shape):
    x, W, b = _layer()
    dout = np.random.default_rng(14).standard_normal((6, 4))
    mask = None if mask_shape is None else _mask(mask_shape, p)
    out, cache = nd.dropconnect_forward(x, W, b, p, train=train, mask=mask)
    tx, tW, tb, tdout = _to_torch(device, x, W, b, dout)
    tmask = None if mask is None else torch.from_numpy(mask).to(device)
    tout, tcache = td.dropconnect_forward(tx, tW, tb, p, train=train, mask=tmask)
    assert tout.device.type == device and tcache.nbytes == cache.nbytes
    np.testing.assert_allclose(tout.cpu().numpy(), out, rtol=1e-12, atol=1e-14)
    grads = nd.dropconnect_backward(dout, cache)
    for tgrad, grad in zip(td.dropconnect_backward(tdout, tcache), grads, strict=True):
        np.testing.assert_allclose(tgrad.cpu().numpy(), grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_moments_and_predictions_match_numpy(device):
    x, W, b = _layer(seed=15)
    tx, tW, tb = _to_torch(device, x, W, b)
    for p in (0.0, 0.3, 1.0):
        for tmoment, moment in zip(
            td.dropconnect_moments(tx, tW, tb, p), nd.dropconnect_moments(x, W, b, p), strict=True
        ):
            np.testing.assert_allclose(tmoment.cpu().numpy(), moment, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        td.weight_scaling_predict(tx, tW, tb, torch.relu).cpu().numpy(),
        nd.weight_scaling_predict(x, W, b, _relu),
        rtol=1e-12,
    )
    samples = 20_000
    generator = torch.Generator(device=device).manual_seed(16)
    predicted = td.moment_matching_predict(
        tx, tW, tb, 0.5, torch.relu, generator=generator, samples=samples
    )
    mean, var = nd.dropconnect_moments(x, W, b, 0.5)
    expected = _gaussian_relu_mean(mean, np.sqrt(var))
    tolerance = _moment_matching_tolerance(np.sqrt(var), samples)
    assert predicted.device.type == device
    assert np.all(np.abs(predicted.cpu().numpy() - expected) <= tolerance)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_generator_path_draws_per_example_masks_reproducibly(device):
    x, W = torch.ones(50, 4, device=device), torch.ones(4, 3, device=device)
    b = torch.zeros(3, device=device)
    out, cache = td.dropconnect_forward(
        x, W, b, 0.5, train=True, generator=torch.Generator(device=device).manual_seed(1)
    )
    expected = tmasks.keep_mask((50, 4, 3), 0.5, torch.Generator(device=device).manual_seed(1))
    assert torch.equal(cache.mask, expected)
    # all 50 masks equal to the first has probability 2**-(12 * 49) << 1e-9
    assert not torch.all(cache.mask == cache.mask[:1])
    torch.testing.assert_close(out, 2 * cache.mask.sum(dim=1).to(out.dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_gradcheck_on_our_backward(device):
    generator = torch.Generator().manual_seed(17)
    x, W, b = (
        torch.randn(shape, generator=generator, dtype=torch.float64).to(device).requires_grad_()
        for shape in ((4, 3), (3, 5), (5,))
    )
    mask = (torch.rand(4, 3, 5, generator=generator) < 0.6).to(device)
    assert torch.autograd.gradcheck(lambda *a: td.dropconnect(*a, 0.4, mask=mask), (x, W, b))
    assert torch.autograd.gradcheck(lambda *a: td.dropconnect(*a, 0.4, train=False), (x, W, b))
    assert torch.autograd.gradcheck(lambda *a: td.dropconnect(*a, 1.0), (x, W, b))


@pytest.mark.parametrize("device", DEVICES)
def test_dropconnect_linear_follows_train_and_eval(device):
    layer = td.DropConnectLinear(6, 3, 0.5, torch.Generator(device=device).manual_seed(18))
    twin = td.DropConnectLinear(6, 3, 0.5, torch.Generator(device=device).manual_seed(18))
    assert torch.equal(layer.weight, twin.weight) and torch.equal(layer.bias, twin.bias)
    assert layer.weight.shape == (6, 3) and layer.weight.device.type == device
    assert layer.weight.abs().max() <= 1 / math.sqrt(6) and layer.bias.abs().max() <= 1 / 6**0.5
    x = torch.ones(40, 6, device=device, requires_grad=True)
    trained = layer.train()(x)
    assert not torch.allclose(trained, trained[:1].expand_as(trained))  # masks differ per example
    trained.sum().backward()
    assert x.grad.shape == (40, 6) and layer.weight.grad.shape == (6, 3)
    torch.testing.assert_close(layer.bias.grad, torch.full((3,), 40.0, device=device))
    evaluated = layer.eval()(x)
    torch.testing.assert_close(evaluated, x @ layer.weight + layer.bias)
    assert "p=0.5" in repr(layer) and "in_features=6" in repr(layer)


def test_torch_rejects_bad_input_with_named_arguments():
    x, W, b = torch.ones(2, 3), torch.ones(3, 4), torch.ones(4)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=2"):
        td.dropconnect(x, W, b, 2)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        td.dropconnect(x.long(), W, b, 0.5, train=False)
    with pytest.raises(TypeError, match=r"W and b must have x's dtype torch\.float32"):
        td.dropconnect(x, W.double(), b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"must agree on D, but got shapes \(2, 3\) and \(2, 4\)"):
        td.dropconnect(x, W[:2], b, 0.5, train=False)
    with pytest.raises(ValueError, match=r"b must have shape \(M,\) = \(4,\)"):
        td.dropconnect(x, W, b[:2], 0.5, train=False)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3, 4\)"):
        td.dropconnect(x, W, b, 0.5, mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs generator"):
        td.dropconnect(x, W, b, 0.5)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        td.moment_matching_predict(x, W, b, 0.5, torch.relu, generator=torch.Generator(), samples=0)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        td.moment_matching_predict(x, W, b, 0.5, torch.relu, generator=None, samples=1)
    with pytest.raises(TypeError, match="activation must be a callable"):
        td.weight_scaling_predict(x, W, b, 3)
    _, cache = td.dropconnect_forward(x, W, b, 0.5, train=False)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        td.dropconnect_backward(torch.ones(3, 4), cache)
    with pytest.raises(ValueError, match="in_features must be >= 1"):
        td.DropConnectLinear(0, 3, 0.5, torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        td.DropConnectLinear(2, 3, 0.5, 0)
