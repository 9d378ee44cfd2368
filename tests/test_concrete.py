"""Concrete dropout: the relaxed mask, its limit, gradients in p, the regulariser, twins, layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import DEVICES
from dropout_course import concrete as nc
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance, mean_tolerance
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import concrete as tc


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# --- the relaxed mask ----------------------------------------------------------------------------


def test_relaxed_mask_by_hand_temperature_divides_the_whole_sum():
    # p = 1/2 (log-odds 0), u = 3/4 (logistic noise log 3), t = 1/2: z = sigmoid(2 log 3) = 9 / 10.
    # On the wrong side: sigmoid(log 3) / t = 1.5, or sigmoid(t log 3) = 0.634.
    z = nc.relaxed_drop_mask(np.array([0.75]), 0.5, temperature=0.5)
    np.testing.assert_allclose(z, [0.9], rtol=1e-14)
    # p = 0.2, u = 0.5 (no noise), t = 1: z = p exactly
    np.testing.assert_allclose(nc.relaxed_drop_mask(np.array([0.5]), 0.2, 1.0), [0.2], rtol=1e-14)


def test_relaxed_mask_is_above_one_half_exactly_when_u_exceeds_one_minus_p():
    u = np.linspace(0.005, 0.995, 100)  # steps of 0.01, none at the boundary u = 0.7
    for t in (0.05, 0.1, 1.0, 10.0):
        z = nc.relaxed_drop_mask(u, 0.3, t)
        np.testing.assert_array_equal(z > 0.5, u > 0.7)
        assert np.all(np.diff(z) >= 0)  # increasing in u (saturating at 0 and 1 in floats)


def test_small_temperature_gives_a_bernoulli_mask():
    # With t = 1e-3, z is within eps = 1e-3 of 0 or 1 unless |log-odds(p) + L| < t log(999) for the
    # logistic noise L, whose density is <= 1/4: probability q <= t log(999) / 2 < 0.0035.
    # Three checks, FALSE_FAIL / 3 each: #(z > 1/2) ~ Binomial(n, p) exactly (Bernstein); the
    # number of z not near 0/1 <= n q + Bernstein tolerance; |mean z - p| <= eps + q + Hoeffding.
    p, n, t, eps = 0.3, 200_000, 1e-3, 1e-3
    q = t * math.log(1 / eps - 1) / 2
    z = nc.relaxed_drop_mask(nc.uniform_noise(n, np.random.default_rng(0)), p, t)
    delta = FALSE_FAIL / 3
    assert abs(np.sum(z > 0.5) - n * p) <= binomial_tolerance(n, p, delta)
    not_binary = np.sum(np.minimum(z, 1 - z) > eps)
    assert not_binary <= n * q + binomial_tolerance(n, q, delta)
    assert abs(z.mean() - p) <= eps + q + mean_tolerance(n, 0.5, delta)


def test_uniform_noise_is_in_the_open_interval_and_reproducible():
    u = nc.uniform_noise((1000, 3), np.random.default_rng(1))
    assert u.shape == (1000, 3) and u.dtype == np.float64 and np.all((u > 0) & (u < 1))
    np.testing.assert_array_equal(u, nc.uniform_noise((1000, 3), np.random.default_rng(1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concrete_dropout_scales_the_kept_part_by_one_over_one_minus_p(dtype):
    rng = np.random.default_rng(2)
    x, u = rng.standard_normal((5, 4)).astype(dtype), nc.uniform_noise((5, 4), rng)
    out = nc.concrete_dropout(x, 0.25, u=u, temperature=0.2)
    z = nc.relaxed_drop_mask(u, 0.25, 0.2)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, x * (1 - z) / 0.75, rtol=1e-6)
    assert nc.concrete_dropout(x, 0.25, train=False) is x  # evaluation: no mask, no scaling
    drawn = nc.concrete_dropout(x, 0.25, rng=np.random.default_rng(3))
    again = nc.concrete_dropout(x, 0.25, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(drawn, again)


# --- gradients in p ------------------------------------------------------------------------------


def test_more_dropout_keeps_less_for_every_draw():
    # z = sigmoid((logit + L) / t) increases in the logit for every u, dz / dlogit = z (1 - z) / t:
    # the kept part x (1 - z) of a positive x has gradient -x z (1 - z) / t <= 0, draw by draw.
    generator = torch.Generator().manual_seed(11)
    x = torch.rand(200, dtype=torch.float64, generator=generator) + 0.1
    u = tc.uniform_noise(200, generator, torch.float64)
    logit = torch.zeros((), dtype=torch.float64, requires_grad=True)
    z = tc.relaxed_drop_mask(u, torch.sigmoid(logit))
    one_hot = torch.eye(200, dtype=torch.float64)
    (grads,) = torch.autograd.grad(x * (1 - z), logit, one_hot, is_grads_batched=True)
    z = z.detach()
    torch.testing.assert_close(grads, -x * z * (1 - z) / 0.1)
    assert torch.all(grads <= 0) and torch.all(grads[(z > 1e-3) & (z < 1 - 1e-3)] < 0)


def test_gradient_of_the_expected_squared_output_in_the_logit_is_positive():
    # E[(x (1 - z) / (1 - p))^2] ~ x^2 / (1 - p) grows with p: at p = 1/2, t = 0.1, x = 1 its
    # derivative in the logit is 0.909 (quadrature). Per draw the pathwise derivative
    # -8 z (1 - z)^2 / t + 4 (1 - z)^2 lies in [-11.9, 4], a range < 16: Hoeffding with bound 8.
    n = 200_000
    logit = torch.zeros((), dtype=torch.float64, requires_grad=True)
    out = tc.concrete_dropout(
        torch.ones(n, dtype=torch.float64),
        torch.sigmoid(logit),
        generator=torch.Generator().manual_seed(4),
    )
    (out**2).mean().backward()
    tolerance = mean_tolerance(n, 8.0)
    assert 0.909 - 2 * tolerance > 0
    assert abs(float(logit.grad) - 0.909) <= tolerance + 1e-3  # 1e-3: quadrature error


def test_autograd_in_p_matches_the_numerical_gradient_of_the_numpy_twin():
    rng = np.random.default_rng(5)
    x, u, dout = (
        rng.standard_normal((4, 3)),
        nc.uniform_noise((4, 3), rng),
        rng.standard_normal((4, 3)),
    )
    p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = tc.concrete_dropout(torch.from_numpy(x), p, u=torch.from_numpy(u), temperature=0.5)
    (out * torch.from_numpy(dout)).sum().backward()
    numeric = numerical_gradient(
        lambda v: nc.concrete_dropout(x, float(v[0]), u=u, temperature=0.5), np.array([0.3]), dout
    )
    assert rel_error(p.grad.numpy().reshape(1), numeric) < 1e-7
    assert torch.autograd.gradcheck(
        lambda q: tc.concrete_dropout(torch.from_numpy(x), q, u=torch.from_numpy(u)),
        (torch.tensor(0.3, dtype=torch.float64, requires_grad=True),),
    )


# --- the regulariser -----------------------------------------------------------------------------


def test_regulariser_by_hand():
    # W (2 x 2) with ||W||^2 = 6, p = 0.2, l = 2, N = 10, K = 2:
    # weights l^2 ||W||^2 / (2 N (1 - p)) = 4 * 6 / 16 = 1.5;
    # entropy (K / N) (p log p + (1 - p) log(1 - p)) = 0.2 * (0.2 log 0.2 + 0.8 log 0.8).
    W = np.array([[1.0, 2.0], [0.0, 1.0]])
    entropy_term = 0.2 * (0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert entropy_term == pytest.approx(-0.1000804, abs=1e-7)
    assert nc.weight_regularizer(W, 0.2, length_scale=2.0, n_train=10) == pytest.approx(1.5)
    assert nc.dropout_regularizer(0.2, 2, 10) == pytest.approx(entropy_term, rel=1e-14)
    total = nc.concrete_regularizer(W, 0.2, length_scale=2.0, n_train=10)
    assert total == pytest.approx(1.5 + entropy_term, rel=1e-14)


def test_regulariser_has_the_entropy_term_which_pulls_p_to_one_half():
    # With W = 0 only the entropy term is left: not 0, and lowest at p = 1/2 (where it is
    # -K log 2 / N). Without it the regulariser would be 0 and let p run to 0.
    W = np.zeros((3, 2))
    ps = np.linspace(0.05, 0.95, 19)
    values = [nc.concrete_regularizer(W, p, length_scale=1.0, n_train=6) for p in ps]
    assert np.argmin(values) == 9 and values[9] == pytest.approx(-3 * math.log(2) / 6)
    with_weights = nc.concrete_regularizer(np.ones((3, 2)), 0.3, length_scale=1.0, n_train=6)
    only_weights = nc.weight_regularizer(np.ones((3, 2)), 0.3, length_scale=1.0, n_train=6)
    assert with_weights - only_weights == pytest.approx(nc.dropout_regularizer(0.3, 3, 6))
    assert abs(with_weights - only_weights) > 0.3


# --- torch twins ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_torch_twins_match_numpy_given_the_same_u(device):
    rng = np.random.default_rng(6)
    x, W = rng.standard_normal((6, 5)), rng.standard_normal((5, 3))
    u = nc.uniform_noise((6, 5), rng)
    tx, tu, tW = (torch.from_numpy(a).to(device) for a in (x, u, W))
    for p, t in ((0.1, 0.1), (0.5, 0.01), (0.9, 1.0)):
        z = tc.relaxed_drop_mask(tu, p, t)
        assert z.device.type == device
        # equal up to rounding: 1 - z loses relative precision where z is near 1
        np.testing.assert_allclose(z.cpu().numpy(), nc.relaxed_drop_mask(u, p, t), atol=1e-14)
        out = tc.concrete_dropout(tx, p, u=tu, temperature=t)
        expected = nc.concrete_dropout(x, p, u=u, temperature=t)
        np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=1e-12, atol=1e-13)
        options = dict(length_scale=0.5, n_train=40)
        assert float(tc.concrete_regularizer(tW, p, **options)) == pytest.approx(
            nc.concrete_regularizer(W, p, **options), rel=1e-13
        )
    assert torch.equal(tc.concrete_dropout(tx, 0.5, train=False), tx)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_uniform_noise_on_the_generator_device(device):
    generator = torch.Generator(device=device).manual_seed(0)
    u = tc.uniform_noise((500, 2), generator, torch.float64)
    assert u.device.type == device and u.dtype == torch.float64 and bool(((u > 0) & (u < 1)).all())
    x = torch.ones(50, 4, device=device)
    a = tc.concrete_dropout(x, 0.3, generator=torch.Generator(device=device).manual_seed(1))
    b = tc.concrete_dropout(x, 0.3, generator=torch.Generator(device=device).manual_seed(1))
    assert torch.equal(a, b) and a.dtype == torch.float32


# --- the layer -----------------------------------------------------------------------------------


def _linear() -> nn.Linear:
    """A float64 nn.Linear(4, 3) with weights drawn from a seeded generator."""
    linear = nn.Linear(4, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return linear


def _layer(linear: nn.Linear, seed: int = 7, **options) -> tc.ConcreteDropout:
    generator = torch.Generator().manual_seed(seed)
    return tc.ConcreteDropout(linear, generator, length_scale=1.0, n_train=50, **options)


def test_layer_learns_p_through_the_mask_and_the_regulariser():
    linear = _linear()
    layer = _layer(linear, init_p=0.2)
    assert float(layer.p.detach()) == pytest.approx(0.2) and layer.p_logit.requires_grad
    x = torch.rand(32, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    loss = layer.train()(x).pow(2).mean() + layer.regularizer()
    loss.backward()
    assert layer.p_logit.grad is not None and float(layer.p_logit.grad) != 0.0
    assert linear.weight.grad is not None
    W = linear.weight.detach().T.numpy()
    expected = nc.concrete_regularizer(W, 0.2, length_scale=1.0, n_train=50)
    assert float(layer.regularizer().detach()) == pytest.approx(expected, rel=1e-12)
    assert set(dict(layer.named_parameters())) == {"p_logit", "layer.weight", "layer.bias"}


def test_layer_eval_is_deterministic_and_uses_no_mask():
    linear = _linear()
    x = torch.rand(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    layer = _layer(linear).eval()
    assert torch.equal(layer(x), linear(x)) and torch.equal(layer(x), layer(x))
    train_a, train_b = (_layer(linear, seed=3).train()(x) for _ in range(2))
    assert torch.equal(train_a, train_b) and not torch.equal(train_a, linear(x))
    assert "p=0.1, temperature=0.1, length_scale=1.0, n_train=50" in repr(layer)


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", [nc, tc], ids=["numpy", "torch"])
def test_bad_arguments_raise_clear_errors(lib):
    as_lib = torch.from_numpy if lib is tc else np.asarray
    x, u, W = as_lib(np.ones((2, 3))), as_lib(np.full((2, 3), 0.5)), as_lib(np.ones((3, 2)))
    for p in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"p must be in \(0, 1\), but got p={p}"):
            lib.relaxed_drop_mask(u, p)
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
            lib.concrete_regularizer(W, p, length_scale=1.0, n_train=5)
    for t in (0, -0.1, math.inf):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            lib.concrete_dropout(x, 0.5, u=u, temperature=t)
    with pytest.raises(
        ValueError, match=r"u must hold uniform draws in the open interval \(0, 1\)"
    ):
        lib.relaxed_drop_mask(as_lib(np.array([0.0, 0.5])), 0.5)
    with pytest.raises(ValueError, match=r"u and x must have the same shape"):
        lib.concrete_dropout(x, 0.5, u=as_lib(np.full((3, 2), 0.5)))
    with pytest.raises(ValueError, match=r"needs (rng|generator) \(or u\) in training"):
        lib.concrete_dropout(x, 0.5)
    with pytest.raises(ValueError, match=r"W must have rank 2 \(D_in dropped inputs"):
        lib.concrete_regularizer(as_lib(np.ones(3)), 0.5, length_scale=1.0, n_train=5)
    with pytest.raises(ValueError, match="n_train must be >= 1, but got n_train=0"):
        lib.concrete_regularizer(W, 0.5, length_scale=1.0, n_train=0)
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        lib.weight_regularizer(W, 0.5, length_scale=0.0, n_train=5)
    with pytest.raises(ValueError, match="n_inputs must be >= 1"):
        lib.dropout_regularizer(0.5, 0, 5)


def test_torch_rate_and_layer_arguments():
    with pytest.raises(ValueError, match="p must be a number or a 0-d tensor, but got shape"):
        tc.relaxed_drop_mask(torch.full((2,), 0.5), torch.full((2,), 0.5))
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\), but got p=1\.0"):
        tc.concrete_dropout(torch.ones(2), torch.tensor(1.0), generator=torch.Generator())
    linear, generator = nn.Linear(2, 2), torch.Generator()
    with pytest.raises(ValueError, match=r"init_p must be in \(0, 1\), but got init_p=0"):
        tc.ConcreteDropout(linear, generator, length_scale=1.0, n_train=5, init_p=0)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        tc.ConcreteDropout(linear, generator, length_scale=1.0, n_train=5, temperature=0)
    with pytest.raises(TypeError, match=r"layer must be an nn\.Linear"):
        tc.ConcreteDropout(nn.ReLU(), generator, length_scale=1.0, n_train=5)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tc.ConcreteDropout(linear, None, length_scale=1.0, n_train=5)
