"""Gaussian dropout, alpha dropout and max-norm: numpy, torch twins, torch references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES
from dropout_course import masks
from dropout_course import variants as nv
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import variants as tv

Z = 7.0
"""Normal-approximation z bound for the moment checks: P(|Z| > 7) = 2.6e-12, so even with the
small skew of sample moments at n = 10**6 the false-fail probability stays below 1e-9."""


def _mask(shape, p, seed=0):
    return masks.keep_mask(shape, p, np.random.default_rng(seed))


def _noise(shape, p, seed=0):
    return nv.gaussian_noise(shape, p, np.random.default_rng(seed))


# --- Gaussian dropout: numpy -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_training_multiplies_by_the_noise_and_eval_is_identity(dtype):
    x = np.random.default_rng(0).standard_normal((7, 9)).astype(dtype)
    noise = _noise(x.shape, 0.3)
    out, cache = nv.gaussian_dropout_forward(x, 0.3, train=True, noise=noise)
    assert out.dtype == dtype and cache.nbytes == x.nbytes
    np.testing.assert_allclose(out, x * noise.astype(dtype), rtol=1e-6)
    evaluated, cache = nv.gaussian_dropout_forward(
        x, 0.3, train=False, rng=np.random.default_rng(1)
    )
    np.testing.assert_array_equal(evaluated, x)
    assert evaluated is not x and cache.nbytes == 0


def test_gaussian_p_zero_is_identity_without_rng_and_empty_arrays_pass():
    x = np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_array_equal(nv.gaussian_dropout_forward(x, 0.0, train=True)[0], x)
    empty = np.zeros((0, 5), dtype=np.float32)
    out, cache = nv.gaussian_dropout_forward(empty, 0.5, train=True, rng=np.random.default_rng(0))
    assert out.shape == (0, 5) and nv.gaussian_dropout_backward(out, cache).shape == (0, 5)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_gaussian_noise_has_the_mean_and_variance_of_inverted_bernoulli(p):
    n = 1_000_000
    noise = _noise(n, p, seed=3)
    keep = 1 - p
    bernoulli_variance = p * keep / keep**2  # Var(m / (1 - p)) with m ~ Bernoulli(1 - p)
    assert nv.gaussian_noise_std(p) ** 2 == pytest.approx(bernoulli_variance, rel=1e-12)
    # sample mean ~ N(1, var / n); sample variance ~ N(var, 2 var^2 / n) for normal noise
    assert abs(noise.mean() - 1) <= Z * math.sqrt(bernoulli_variance / n)
    assert abs(noise.var() - bernoulli_variance) <= Z * bernoulli_variance * math.sqrt(2 / n)


def test_gaussian_noise_is_one_plus_std_times_standard_normal_draws_from_rng():
    rng = np.random.default_rng(6)
    noise = nv.gaussian_noise((4, 5), 0.3, rng)
    draws = np.random.default_rng(6).standard_normal((4, 5))
    assert noise.dtype == np.float64
    np.testing.assert_array_equal(noise, 1.0 + math.sqrt(0.3 / 0.7) * draws)
    assert not np.array_equal(nv.gaussian_noise((4, 5), 0.3, rng), noise)  # rng advanced
    np.testing.assert_array_equal(nv.gaussian_noise(3, 0.0, rng), np.ones(3))


def test_gaussian_rng_path_is_reproducible_and_stores_its_noise():
    x = np.ones((30, 20))
    a, cache = nv.gaussian_dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(4))
    b, _ = nv.gaussian_dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cache.noise, a)
    np.testing.assert_array_equal(cache.noise, _noise(x.shape, 0.5, seed=4))


@pytest.mark.parametrize("train", [True, False])
def test_gaussian_backward_matches_numerical_gradient(train):
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    noise = _noise(x.shape, 0.4)
    _, cache = nv.gaussian_dropout_forward(x, 0.4, train=train, noise=noise)
    numeric = numerical_gradient(
        lambda v: nv.gaussian_dropout_forward(v, 0.4, train=train, noise=noise)[0], x, dout
    )
    assert rel_error(nv.gaussian_dropout_backward(dout, cache), numeric) < 1e-7


def test_gaussian_rejects_bad_input_with_named_arguments():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"needs p in \[0, 1\), but got p=1\.0"):
        nv.gaussian_dropout_forward(x, 1.0, train=True, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="variance p / \\(1 - p\\) is infinite"):
        nv.gaussian_noise_std(1)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        nv.gaussian_dropout_forward(x, -0.1, train=False)
    with pytest.raises(ValueError, match="p=nan"):
        nv.gaussian_dropout_forward(x, float("nan"), train=False)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        nv.gaussian_dropout_forward(np.ones((2, 3), dtype=int), 0.5, train=False)
    with pytest.raises(ValueError, match=r"noise and x must have the same shape.*\(3, 2\)"):
        nv.gaussian_dropout_forward(x, 0.5, train=True, noise=np.ones((3, 2)))
    with pytest.raises(TypeError, match="noise must have a floating-point dtype"):
        nv.gaussian_dropout_forward(x, 0.5, train=True, noise=np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="needs rng"):
        nv.gaussian_dropout_forward(x, 0.5, train=True)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        nv.gaussian_dropout_forward(x, 0.5, train=True, rng=1)
    with pytest.raises(ValueError, match="shape must be a tuple of non-negative ints"):
        nv.gaussian_noise((-1, 2), 0.5, np.random.default_rng(0))
    _, cache = nv.gaussian_dropout_forward(x, 0.5, train=True, noise=np.ones((2, 3)))
    with pytest.raises(ValueError, match="dout and the forward input must have the same shape"):
        nv.gaussian_dropout_backward(np.ones((3, 3)), cache)


# --- alpha dropout: numpy --------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_alpha_affine_restores_zero_mean_and_unit_variance_exactly(p):
    # For inputs with mean 0 and variance 1: a kept unit gives a x + b, a dropped one a alpha' + b.
    a, b = nv.alpha_dropout_affine(p)
    dropped = a * nv.ALPHA_PRIME + b
    mean = (1 - p) * b + p * dropped
    second_moment = (1 - p) * (a**2 + b**2) + p * dropped**2
    assert mean == pytest.approx(0, abs=1e-12) and second_moment == pytest.approx(1, rel=1e-12)
    assert nv.ALPHA_PRIME == pytest.approx(-1.7580993408473766, rel=1e-15)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_alpha_dropout_keeps_mean_zero_and_variance_one_on_standard_normal_input(p):
    n = 1_000_000
    x = np.random.default_rng(6).standard_normal(n)
    out, _ = nv.alpha_dropout_forward(x, p, train=True, rng=np.random.default_rng(7))
    a, b = nv.alpha_dropout_affine(p)
    dropped = a * nv.ALPHA_PRIME + b
    # outputs are iid with mean 0, variance 1 and fourth moment m4 (kept: N(b, a^2)); by the CLT
    # the sample mean has sd 1/sqrt(n) and the sample second moment sd sqrt((m4 - 1) / n)
    m4 = (1 - p) * (b**4 + 6 * b**2 * a**2 + 3 * a**4) + p * dropped**4
    assert abs(out.mean()) <= Z / math.sqrt(n)
    assert abs(np.mean(out**2) - 1) <= Z * math.sqrt((m4 - 1) / n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_dropout_sets_dropped_units_to_the_saturation_value(dtype):
    x = np.random.default_rng(8).standard_normal((20, 10)).astype(dtype)
    mask = _mask(x.shape, 0.3)
    out, cache = nv.alpha_dropout_forward(x, 0.3, train=True, mask=mask)
    a, b = nv.alpha_dropout_affine(0.3)
    assert out.dtype == dtype
    np.testing.assert_allclose(out[mask], a * x[mask] + b, rtol=1e-6)
    np.testing.assert_allclose(out[~mask], a * nv.ALPHA_PRIME + b, rtol=1e-6)
    assert cache.scale == a and cache.nbytes == mask.nbytes


def test_alpha_dropout_eval_and_p_zero_are_identity_p_one_gives_zeros():
    x = np.random.default_rng(9).standard_normal((4, 5))
    np.testing.assert_array_equal(nv.alpha_dropout_forward(x, 0.3, train=False)[0], x)
    np.testing.assert_array_equal(nv.alpha_dropout_forward(x, 0.0, train=True)[0], x)
    zeros, cache = nv.alpha_dropout_forward(x, 1.0, train=True)
    assert np.all(zeros == 0) and np.all(nv.alpha_dropout_backward(np.ones_like(x), cache) == 0)
    empty = np.zeros((0, 3))
    out, cache = nv.alpha_dropout_forward(empty, 0.5, train=True, rng=np.random.default_rng(0))
    assert out.shape == (0, 3) and nv.alpha_dropout_backward(out, cache).shape == (0, 3)


@pytest.mark.parametrize("train", [True, False])
def test_alpha_backward_matches_numerical_gradient(train):
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    mask = _mask(x.shape, 0.3)
    _, cache = nv.alpha_dropout_forward(x, 0.3, train=train, mask=mask)
    numeric = numerical_gradient(
        lambda v: nv.alpha_dropout_forward(v, 0.3, train=train, mask=mask)[0], x, dout
    )
    assert rel_error(nv.alpha_dropout_backward(dout, cache), numeric) < 1e-7


def test_alpha_rng_path_draws_a_keep_mask_from_rng():
    x = np.zeros((40, 30))
    _, cache = nv.alpha_dropout_forward(x, 0.4, train=True, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(cache.mask, _mask(x.shape, 0.4, seed=11))


def test_alpha_rejects_bad_input_with_named_arguments():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        nv.alpha_dropout_forward(x, 1.5, train=True)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        nv.alpha_dropout_forward(x, 0.5, train=True, mask=np.ones((2, 1), dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        nv.alpha_dropout_forward(x, 0.5, train=True, mask=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="needs rng"):
        nv.alpha_dropout_forward(x, 0.5, train=True)
    with pytest.raises(TypeError, match="x must be an array"):
        nv.alpha_dropout_forward([1.0], 0.5, train=False)
    with pytest.raises(ValueError, match=r"needs p in \[0, 1\)"):
        nv.alpha_dropout_affine(1.0)
    _, cache = nv.alpha_dropout_forward(x, 0.5, train=True, mask=np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        nv.alpha_dropout_backward(np.ones((3, 3)), cache)


# --- max-norm: numpy -------------------------------------------------------------------------


def test_max_norm_rescales_long_columns_not_rows_or_elements():
    # Column 0 has norm 5, column 1 norm 0.5; rows have norms ~3.0, ~4.0 and 0.
    # Per-column with c = 1: column 0 -> its direction (0.6, 0.8, 0), column 1 untouched.
    # A per-row rule would shrink both entries of rows 0 and 1; per-element clipping to [-1, 1]
    # would give (1, 1, 0) in column 0. Both differ from the expected answer.
    W = np.array([[3.0, 0.3], [4.0, 0.4], [0.0, 0.0]])
    expected = np.array([[0.6, 0.3], [0.8, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(nv.max_norm(W, 1.0), expected, rtol=1e-15)
    per_row = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1.0)
    assert not np.allclose(per_row, expected) and not np.allclose(np.clip(W, -1, 1), expected)
    assert W[0, 0] == 3.0  # a new array: the input is untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_norm_bounds_every_column_and_keeps_directions(dtype):
    W = np.random.default_rng(12).standard_normal((30, 20)).astype(dtype)
    c = 5.0
    out = nv.max_norm(W, c)
    norms, new_norms = np.linalg.norm(W, axis=0), np.linalg.norm(out, axis=0)
    assert out.dtype == dtype and (norms > c).any() and (norms <= c).any()
    np.testing.assert_array_equal(out[:, norms <= c], W[:, norms <= c])
    np.testing.assert_allclose(new_norms[norms > c], c, rtol=1e-6)
    np.testing.assert_allclose(out * (norms / new_norms), W, rtol=1e-6)  # same directions
    reference = torch.renorm(torch.from_numpy(W.astype(np.float64)), 2, 1, c).numpy()
    np.testing.assert_allclose(out, reference, rtol=1e-6)  # torch.renorm over dim 1 = columns


def test_max_norm_handles_zero_and_empty_matrices():
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(nv.max_norm(np.zeros((3, 2)), 1.0), np.zeros((3, 2)))
    assert nv.max_norm(np.zeros((0, 4)), 1.0).shape == (0, 4)
    assert nv.max_norm(np.zeros((4, 0)), 1.0).shape == (4, 0)


def test_max_norm_rejects_bad_input_with_named_arguments():
    W = np.ones((2, 3))
    for c in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="c must be a finite number > 0"):
            nv.max_norm(W, c)
    with pytest.raises(TypeError, match="c must be a positive number"):
        nv.max_norm(W, "1")
    with pytest.raises(ValueError, match=r"W must have rank 2 \(D_in inputs, D_out units\)"):
        nv.max_norm(np.ones(3), 1.0)
    with pytest.raises(TypeError, match="W must have a floating-point dtype"):
        nv.max_norm(np.ones((2, 3), dtype=int), 1.0)


# --- torch twins -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("train", [True, False])
def test_torch_gaussian_matches_numpy_given_the_same_noise(device, train):
    rng = np.random.default_rng(13)
    x, dout = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    noise = _noise(x.shape, 0.3)
    out, cache = nv.gaussian_dropout_forward(x, 0.3, train=train, noise=noise)
    tout, tcache = tv.gaussian_dropout_forward(
        torch.from_numpy(x).to(device), 0.3, train=train, noise=torch.from_numpy(noise).to(device)
    )
    np.testing.assert_allclose(tout.cpu().numpy(), out, rtol=1e-15)
    tdx = tv.gaussian_dropout_backward(torch.from_numpy(dout).to(device), tcache)
    np.testing.assert_allclose(tdx.cpu().numpy(), nv.gaussian_dropout_backward(dout, cache))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_torch_alpha_matches_numpy_given_the_same_mask(device, p, train):
    rng = np.random.default_rng(14)
    x, dout = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    mask = _mask(x.shape, 0.3)
    out, cache = nv.alpha_dropout_forward(x, p, train=train, mask=mask)
    tout, tcache = tv.alpha_dropout_forward(
        torch.from_numpy(x).to(device), p, train=train, mask=torch.from_numpy(mask).to(device)
    )
    np.testing.assert_allclose(tout.cpu().numpy(), out, rtol=1e-15)
    tdx = tv.alpha_dropout_backward(torch.from_numpy(dout).to(device), tcache)
    np.testing.assert_allclose(tdx.cpu().numpy(), nv.alpha_dropout_backward(dout, cache))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_alpha_dropout_matches_F_alpha_dropout_given_the_same_mask(device, p):
    x = torch.randn(64, 33, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.random.fork_rng(devices=[device] if device != "cpu" else []):
        torch.manual_seed(123)
        reference = F.alpha_dropout(x, p, training=True)
        torch.manual_seed(123)  # same draws on zeros: kept units give a*0 + b > 0, dropped < 0
        mask = F.alpha_dropout(torch.zeros_like(x), p, training=True) > 0
    if p == 0.0:
        mask = torch.ones_like(mask)
    torch.testing.assert_close(tv.alpha_dropout(x, p, mask=mask), reference, rtol=1e-6, atol=1e-6)
    numpy_out, _ = nv.alpha_dropout_forward(x.cpu().numpy(), p, train=True, mask=mask.cpu().numpy())
    np.testing.assert_allclose(numpy_out, reference.cpu().numpy(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        tv.alpha_dropout(x, p, train=False), F.alpha_dropout(x, p, training=False)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_gradcheck_on_our_backward(device):
    x = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    noise = tv.gaussian_noise((5, 4), 0.4, torch.Generator(device=device), dtype=torch.float64)
    mask = torch.rand(5, 4, device=device) < 0.6
    assert torch.autograd.gradcheck(lambda v: tv.gaussian_dropout(v, 0.4, noise=noise), (x,))
    assert torch.autograd.gradcheck(lambda v: tv.alpha_dropout(v, 0.4, mask=mask), (x,))
    assert torch.autograd.gradcheck(lambda v: tv.alpha_dropout(v, 0.4, train=False), (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_gaussian_noise_moments_on_device(device):
    n, p = 1_000_000, 0.5
    generator = torch.Generator(device=device).manual_seed(15)
    noise = tv.gaussian_noise(n, p, generator, dtype=torch.float64)
    assert noise.device.type == device
    variance = p / (1 - p)
    # same normal-approximation bounds as the numpy moment test
    assert abs(noise.mean().item() - 1) <= Z * math.sqrt(variance / n)
    assert abs(noise.var().item() - variance) <= Z * variance * math.sqrt(2 / n)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_max_norm_matches_numpy_and_in_place_version_on_a_transposed_view(device):
    W = np.random.default_rng(16).standard_normal((30, 20))
    expected = nv.max_norm(W, 5.0)
    tensor = torch.from_numpy(W).to(device).requires_grad_()
    out = tv.max_norm(tensor, 5.0)
    assert not out.requires_grad
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=1e-14)
    # nn.Linear stores (D_out, D_in): its incoming weights are rows, so pass weight.T
    linear_weight = torch.from_numpy(W.T.copy()).to(device).requires_grad_()
    assert tv.max_norm_(linear_weight.T, 5.0) is not None
    np.testing.assert_allclose(linear_weight.detach().T.cpu().numpy(), expected, rtol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
def test_modules_are_noisy_in_train_and_identity_in_eval(device):
    x = torch.randn(50, 40, device=device)
    a, b = nv.alpha_dropout_affine(0.3)
    alpha = tv.AlphaDropout(0.3, torch.Generator(device=device).manual_seed(0))
    out = alpha.train()(x)
    kept = torch.isclose(out, a * x + b, rtol=1e-6, atol=1e-6)
    dropped = torch.isclose(out, torch.full_like(x, a * nv.ALPHA_PRIME + b))
    assert torch.all(kept | dropped) and dropped.any() and kept.any()
    assert torch.equal(alpha.eval()(x), x)
    gaussian = tv.GaussianDropout(0.3, torch.Generator(device=device).manual_seed(0))
    first, second = gaussian.train()(x), gaussian(x)
    assert first.device.type == device and not torch.equal(first, second)
    again = tv.GaussianDropout(0.3, torch.Generator(device=device).manual_seed(0)).train()(x)
    assert torch.equal(first, again)
    assert torch.equal(gaussian.eval()(x), x)
    assert "p=0.3" in repr(gaussian) and "p=0.3" in repr(alpha)


def test_modules_backpropagate_through_our_backward():
    x = torch.ones(30, 20, requires_grad=True)
    layer = tv.GaussianDropout(0.5, torch.Generator().manual_seed(1))
    out = layer(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # d(sum x * noise)/dx = noise = out at x = 1
    x.grad = None
    alpha = tv.AlphaDropout(0.5, torch.Generator().manual_seed(1))
    out = alpha(x)
    out.sum().backward()
    a, b = nv.alpha_dropout_affine(0.5)
    torch.testing.assert_close(x.grad, torch.where(out > a * nv.ALPHA_PRIME + b + 1e-3, a, 0.0))


def test_torch_rejects_bad_input_with_named_arguments():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"needs p in \[0, 1\), but got p=1\.0"):
        tv.GaussianDropout(1.0, torch.Generator())
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=2"):
        tv.AlphaDropout(2, torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tv.AlphaDropout(0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs generator"):
        tv.gaussian_dropout(x, 0.5)
    with pytest.raises(ValueError, match="needs generator"):
        tv.alpha_dropout(x, 0.5)
    with pytest.raises(ValueError, match=r"noise and x must have the same shape"):
        tv.gaussian_dropout(x, 0.5, noise=torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        tv.alpha_dropout(x, 0.5, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        tv.alpha_dropout(torch.ones(2, dtype=torch.int64), 0.5, train=False)
    with pytest.raises(ValueError, match="c must be a finite number > 0"):
        tv.max_norm(x, 0.0)
    with pytest.raises(ValueError, match=r"W must have rank 2"):
        tv.max_norm_(torch.ones(3), 1.0)
