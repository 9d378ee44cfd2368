"""Kingma et al.'s Gaussian dropout with a learned alpha: local reparameterisation, its backward
pass, the KL approximation, the torch twins and layer, bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import DEVICES
from dropout_course import variational_gaussian as nv
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import variational_gaussian as tv

LOG_ALPHA_SHAPES = {"layer": (), "input unit": (3, 1), "weight": (3, 2)}


def _problem(seed: int = 0, shape: tuple[int, ...] = ()):
    """x (4, 3), W (3, 2), b (2,), log_alpha of ``shape``, noise (4, 2), dout (4, 2), float64."""
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    log_alpha = rng.uniform(-2.0, 0.5, size=shape)
    return x, W, b, log_alpha, rng.standard_normal((4, 2)), rng.standard_normal((4, 2))


# --- the forward pass ---------------------------------------------------------------------------


def test_forward_by_hand():
    # x = (1, 2), W = [[3, 0], [1, 2]], b = (0.5, -0.5), alpha = 1/4: mean = (5.5, 3.5),
    # var = alpha (x^2 W^2 summed over inputs) = 0.25 * (9 + 4, 0 + 16) = (3.25, 4); eps = (1, -1).
    x, W, b = np.array([[1.0, 2.0]]), np.array([[3.0, 0.0], [1.0, 2.0]]), np.array([0.5, -0.5])
    log_alpha = np.array(math.log(0.25))
    out, _ = nv.local_reparameterization_forward(
        x, W, b, log_alpha, train=True, noise=np.array([[1.0, -1.0]])
    )
    np.testing.assert_allclose(out, [[5.5 + math.sqrt(3.25), 1.5]], rtol=1e-14)
    mean, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=False)
    np.testing.assert_allclose(mean, [[5.5, 3.5]], rtol=1e-14)
    assert cache.noise is None


def test_local_draws_have_the_moments_of_explicit_weight_noise():
    # Drawing every weight, w = theta (1 + sqrt(alpha) eps), gives pre-activations with the mean
    # and variance the local trick samples from. 100,000 draws of each: the sample variance of a
    # Gaussian has relative sd sqrt(2 / n) = 0.0045, so 5% is over 10 sd (false-fail < 1e-20).
    x, W, b, _, _, _ = _problem(1)
    x, log_alpha, n = x[:1], np.array(math.log(0.5)), 100_000
    rng = np.random.default_rng(2)
    local, _ = nv.local_reparameterization_forward(
        np.repeat(x, n, axis=0), W, b, log_alpha, train=True, rng=rng
    )
    weights = W * (1 + math.sqrt(0.5) * rng.standard_normal((n, *W.shape)))
    explicit = np.einsum("j,njk->nk", x[0], weights) + b
    expected_var = 0.5 * (x[0] ** 2) @ W**2
    for draws in (local, explicit):
        np.testing.assert_allclose(draws.var(axis=0), expected_var, rtol=0.05)
        assert np.all(np.abs(draws.mean(axis=0) - (x[0] @ W + b)) < 10 * np.sqrt(expected_var / n))


def test_forward_keeps_float32_and_is_reproducible():
    x, W, b, log_alpha, _, _ = (a.astype(np.float32) for a in _problem(3))
    a, _ = nv.local_reparameterization_forward(
        x, W, b, log_alpha, train=True, rng=np.random.default_rng(4)
    )
    again, _ = nv.local_reparameterization_forward(
        x, W, b, log_alpha, train=True, rng=np.random.default_rng(4)
    )
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, again)


# --- the backward pass --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", LOG_ALPHA_SHAPES.values(), ids=LOG_ALPHA_SHAPES.keys())
def test_backward_matches_the_numerical_gradient(shape):
    x, W, b, log_alpha, noise, dout = _problem(5, shape)

    def forward(x=x, W=W, b=b, log_alpha=log_alpha):
        return nv.local_reparameterization_forward(x, W, b, log_alpha, train=True, noise=noise)[0]

    _, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=True, noise=noise)
    dx, dW, db, dlog_alpha = nv.local_reparameterization_backward(dout, cache)
    assert dlog_alpha.shape == log_alpha.shape
    for analytic, name, value in [
        (dx, "x", x),
        (dW, "W", W),
        (db, "b", b),
        (dlog_alpha, "log_alpha", log_alpha),
    ]:
        numeric = numerical_gradient(lambda v, name=name: forward(**{name: v}), value, dout)
        assert rel_error(analytic, numeric) < 1e-6, name


def test_backward_at_evaluation_and_at_a_zero_input_row():
    x, W, b, log_alpha, noise, dout = _problem(6)
    _, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=False)
    dx, dW, db, dlog_alpha = nv.local_reparameterization_backward(dout, cache)
    np.testing.assert_allclose(dx, dout @ W.T)
    np.testing.assert_allclose(dW, x.T @ dout)
    np.testing.assert_allclose(db, dout.sum(axis=0))
    assert float(dlog_alpha) == 0.0
    x[0] = 0.0  # zero variance for this example: its noise term and gradient vanish, no NaN
    _, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=True, noise=noise)
    grads = nv.local_reparameterization_backward(dout, cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


# --- the KL approximation and the rate ----------------------------------------------------------


def test_kl_approximation_values_and_shape():
    # k1 - k1 sigmoid(k2 + k3 log alpha) + log(1 + 1/alpha) / 2 at alpha = 1: (1 - sigmoid(k2))
    # k1 + log(2) / 2
    k1, k2, _ = nv.KL_CONSTANTS
    at_one = k1 * (1 - 1 / (1 + math.exp(-k2))) + 0.5 * math.log(2)
    assert float(nv.kl_approximation(np.array(0.0))) == pytest.approx(at_one, rel=1e-14)
    log_alpha = np.linspace(-8, 8, 33)
    kl = nv.kl_approximation(log_alpha)
    assert np.all(np.diff(kl) < 0) and kl[-1] < 1e-3  # falls with alpha, towards 0
    # alpha -> 0: the sigmoid vanishes and log(1 + 1/alpha) / 2 -> -log(alpha) / 2
    assert float(nv.kl_approximation(np.array(-40.0))) == pytest.approx(k1 + 20.0, rel=1e-12)


def test_kl_approximation_agrees_with_kingmas_polynomial_up_to_a_constant():
    # Kingma et al. (2015) fit -KL = const + 0.5 log alpha + c1 alpha + c2 alpha^2 + c3 alpha^3
    # for alpha <= 1; the two fits differ by a near-constant there (both leave out a constant).
    log_alpha = np.linspace(-8, 0, 81)
    alpha = np.exp(log_alpha)
    c1, c2, c3 = 1.16145124, -1.50204118, 0.58629921
    kingma = -(0.5 * log_alpha + c1 * alpha + c2 * alpha**2 + c3 * alpha**3)
    difference = nv.kl_approximation(log_alpha) - kingma
    assert np.ptp(difference) < 0.05


def test_kl_regularizer_counts_every_weight():
    log_alpha = np.array(-1.0)
    per_weight = float(nv.kl_approximation(log_alpha))
    assert nv.kl_regularizer(log_alpha, (3, 2), 10) == pytest.approx(6 * per_weight / 10)
    per_unit = np.array([[-1.0], [0.0], [1.0]])
    expected = 2 * nv.kl_approximation(per_unit).sum() / 10
    assert nv.kl_regularizer(per_unit, (3, 2), 10) == pytest.approx(expected)


def test_rate_and_log_alpha_are_inverse():
    for p in (0.1, 0.5, 0.9):
        log_alpha = nv.log_alpha_for_rate(p)
        assert math.exp(log_alpha) == pytest.approx(p / (1 - p))
        assert float(nv.equivalent_drop_rate(np.array(log_alpha))) == pytest.approx(p)
        assert float(tv.equivalent_drop_rate(torch.tensor(log_alpha))) == pytest.approx(p)


# --- torch twins --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", LOG_ALPHA_SHAPES.values(), ids=LOG_ALPHA_SHAPES.keys())
def test_torch_twin_matches_numpy_forward_and_backward(device, shape):
    x, W, b, log_alpha, noise, dout = _problem(7, shape)
    out, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=True, noise=noise)
    expected_grads = nv.local_reparameterization_backward(dout, cache)
    tensors = [torch.tensor(a, device=device, requires_grad=True) for a in (x, W, b, log_alpha)]
    t_out = tv.local_reparameterization_forward(
        *tensors, train=True, noise=torch.tensor(noise, device=device)
    )
    assert t_out.device.type == device
    np.testing.assert_allclose(t_out.detach().cpu().numpy(), out, rtol=1e-12)
    t_out.backward(torch.tensor(dout, device=device))
    for tensor, expected in zip(tensors, expected_grads, strict=True):
        np.testing.assert_allclose(tensor.grad.cpu().numpy(), expected, rtol=1e-10, atol=1e-12)
    t_eval = tv.local_reparameterization_forward(*tensors, train=False)
    np.testing.assert_allclose(t_eval.detach().cpu().numpy(), x @ W + b, rtol=1e-12)
    kl = tv.kl_regularizer(torch.tensor(log_alpha, device=device), (3, 2), 10)
    assert float(kl) == pytest.approx(nv.kl_regularizer(log_alpha, (3, 2), 10), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_draws_from_the_generator(device):
    x, W, b, log_alpha = (torch.tensor(a, device=device) for a in _problem(8)[:4])
    a, c = (
        tv.local_reparameterization_forward(
            x, W, b, log_alpha, train=True, generator=torch.Generator(device=device).manual_seed(s)
        )
        for s in (1, 2)
    )
    again = tv.local_reparameterization_forward(
        x, W, b, log_alpha, train=True, generator=torch.Generator(device=device).manual_seed(1)
    )
    assert torch.equal(a, again) and not torch.equal(a, c)


# --- the layer ----------------------------------------------------------------------------------


def _linear() -> nn.Linear:
    linear = nn.Linear(3, 2, dtype=torch.float64)
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return linear


@pytest.mark.parametrize("per_unit", [False, True])
def test_layer_learns_log_alpha_and_its_regulariser_matches_numpy(per_unit):
    linear = _linear()
    layer = tv.VariationalGaussianDropout(
        linear, torch.Generator().manual_seed(3), n_train=20, init_p=0.2, per_unit=per_unit
    )
    assert tuple(layer.log_alpha.shape) == ((3, 1) if per_unit else ())
    assert torch.allclose(layer.p, torch.tensor(0.2, dtype=torch.float64))
    x = torch.rand(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (layer.train()(x).pow(2).mean() + layer.regularizer()).backward()
    assert layer.log_alpha.grad is not None and bool((layer.log_alpha.grad != 0).all())
    expected = nv.kl_regularizer(layer.log_alpha.detach().numpy(), (3, 2), 20)
    assert float(layer.regularizer().detach()) == pytest.approx(expected, rel=1e-12)
    assert torch.equal(layer.eval()(x), linear(x))
    assert set(dict(layer.named_parameters())) == {"log_alpha", "layer.weight", "layer.bias"}


# --- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", [nv, tv], ids=["numpy", "torch"])
def test_bad_arguments_raise_clear_errors(lib):
    as_lib = torch.from_numpy if lib is tv else np.asarray
    x, W, b, log_alpha, noise, _ = (as_lib(a) for a in _problem(10))
    forward = lib.local_reparameterization_forward
    with pytest.raises(ValueError, match=r"x \(N, D_in\), W \(D_in, D_out\) and b \(D_out,\)"):
        forward(x, W.T, b, log_alpha, train=False)
    with pytest.raises(ValueError, match="x must have rank 2"):
        forward(x[0], W, b, log_alpha, train=False)
    with pytest.raises(ValueError, match=r"log_alpha must have shape \(\) \(per layer\)"):
        forward(x, W, b, as_lib(np.zeros(3)), train=False)
    with pytest.raises(ValueError, match="log_alpha must be finite"):
        forward(x, W, b, as_lib(np.array(np.inf)), train=False)
    with pytest.raises(ValueError, match=r"needs (rng|generator) \(or noise\) in training"):
        forward(x, W, b, log_alpha, train=True)
    with pytest.raises(ValueError, match="noise and the output x W"):
        forward(x, W, b, log_alpha, train=True, noise=noise[:, :1])
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        lib.kl_regularizer(log_alpha, (3, 2), 0)
    with pytest.raises(ValueError, match=r"weight_shape must be \(D_in, D_out\)"):
        lib.kl_regularizer(log_alpha, (3,), 5)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        forward(as_lib(np.ones((4, 3), dtype=np.int64)), W, b, log_alpha, train=False)


def test_bad_rate_and_layer_arguments():
    for p in (0, 1, -0.5):
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
            nv.log_alpha_for_rate(p)
    with pytest.raises(ValueError, match=r"init_p must be in \(0, 1\), but got"):
        tv.VariationalGaussianDropout(nn.Linear(2, 2), torch.Generator(), n_train=5, init_p=1.0)
    with pytest.raises(TypeError, match=r"layer must be an nn\.Linear"):
        tv.VariationalGaussianDropout(nn.ReLU(), torch.Generator(), n_train=5)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tv.VariationalGaussianDropout(nn.Linear(2, 2), None, n_train=5)
    with pytest.raises(ValueError, match="dout must have the output's shape"):
        x, W, b, log_alpha, noise, _ = _problem(11)
        _, cache = nv.local_reparameterization_forward(x, W, b, log_alpha, train=True, noise=noise)
        nv.local_reparameterization_backward(np.ones((4, 3)), cache)
