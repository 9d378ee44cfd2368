"""Readable dropout forward/backward: numpy, torch twins, F.dropout parity, layers.

The fast path (chunked, threaded, seeded low-memory) is tested in test_fast.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from conftest import DEVICES
from dropout_course import dropout as nd
from dropout_course import masks
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance, mean_tolerance
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import dropout as td

SCALINGS = ["inverted", "classic"]


def _mask(shape, p=0.4, seed=0):
    return masks.keep_mask(shape, p, np.random.default_rng(seed))


# --- numpy: the definition -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverted_training_keeps_and_scales_by_one_over_keep(dtype):
    x = np.random.default_rng(0).standard_normal((40, 30)).astype(dtype)
    mask = _mask(x.shape)
    out, cache = nd.dropout_forward(x, 0.4, train=True, mask=mask)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(out, np.where(mask, x / dtype(0.6), 0), rtol=1e-6)
    assert cache.nbytes == mask.nbytes


def test_inverted_eval_is_identity_and_classic_eval_scales_by_keep():
    x = np.random.default_rng(1).standard_normal((5, 6))
    np.testing.assert_array_equal(nd.dropout_forward(x, 0.3, train=False)[0], x)
    classic, _ = nd.dropout_forward(x, 0.3, train=False, scaling="classic")
    np.testing.assert_allclose(classic, 0.7 * x)


def test_classic_and_inverted_agree_up_to_the_keep_factor():
    # Same mask: inverted-train = classic-train / (1 - p); eval outputs differ by the same factor,
    # so a classic-trained net converts to an inverted one by scaling its weights by 1 - p.
    x = np.random.default_rng(2).standard_normal((8, 9))
    mask = _mask(x.shape, p=0.25)
    inverted, _ = nd.dropout_forward(x, 0.25, train=True, mask=mask)
    classic, _ = nd.dropout_forward(x, 0.25, train=True, mask=mask, scaling="classic")
    np.testing.assert_allclose(inverted, classic / 0.75)
    inverted_eval, _ = nd.dropout_forward(x, 0.25, train=False)
    classic_eval, _ = nd.dropout_forward(x, 0.25, train=False, scaling="classic")
    np.testing.assert_allclose(inverted_eval, classic_eval / 0.75)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_p_one_gives_zeros_and_p_zero_is_identity_without_rng(scaling):
    x = np.random.default_rng(3).standard_normal((4, 5))
    with np.errstate(all="raise"):
        zeros, cache = nd.dropout_forward(x, 1.0, train=True, scaling=scaling)
        grad = nd.dropout_backward(np.ones_like(x), cache)
    assert np.all(zeros == 0) and np.all(grad == 0)
    same, _ = nd.dropout_forward(x, 0.0, train=True, scaling=scaling)
    np.testing.assert_array_equal(same, x)


def test_nan_propagates_where_kept():
    x = np.full((1, 6), np.nan)
    mask = np.array([[True, False, True, False, True, True]])
    out, _ = nd.dropout_forward(x, 0.5, train=True, mask=mask)
    assert np.all(np.isnan(out[mask]))


def test_empty_arrays_pass_through():
    x = np.zeros((0, 7), dtype=np.float32)
    out, cache = nd.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(0))
    assert out.shape == (0, 7) and nd.dropout_backward(out, cache).shape == (0, 7)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_fraction_dropped_and_mean_preserved(p, scaling):
    n = 1_000_000
    x = np.ones(n)
    out, _ = nd.dropout_forward(x, p, train=True, rng=np.random.default_rng(5), scaling=scaling)
    dropped = int(np.sum(out == 0))
    assert abs(dropped - n * p) <= binomial_tolerance(n, p)
    expected_mean = nd.dropout_forward(x[:1], p, train=False, scaling=scaling)[0][0]
    # each output lies in [0, train_scale]; Hoeffding on its mean
    train_scale, _ = nd.output_scales(p, scaling)
    assert abs(out.mean() - expected_mean) <= mean_tolerance(n, train_scale)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("train", [True, False])
def test_backward_matches_numerical_gradient(scaling, train):
    rng = np.random.default_rng(6)
    x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    mask = _mask(x.shape, p=0.3)
    _, cache = nd.dropout_forward(x, 0.3, train=train, mask=mask, scaling=scaling)
    dx = nd.dropout_backward(dout, cache)
    numeric = numerical_gradient(
        lambda v: nd.dropout_forward(v, 0.3, train=train, mask=mask, scaling=scaling)[0], x, dout
    )
    assert rel_error(dx, numeric) < 1e-7


def test_channel_and_locked_masks_broadcast_in_forward_and_backward():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 5, 5))
    mask = masks.channel_mask(x.shape, 0.5, rng)
    out, cache = nd.dropout_forward(x, 0.5, train=True, mask=mask)
    whole_channels = np.all(out == 0, axis=(2, 3)) | np.all(out != 0, axis=(2, 3))
    assert whole_channels.all()
    dout = rng.standard_normal(x.shape)
    # Linear in x for a fixed mask: any step h is exact up to rounding, and the rounding of the
    # 300-term sums shrinks with a larger h (at 1e-6 it can reach 1e-7 on a small gradient).
    numeric = numerical_gradient(
        lambda v: nd.dropout_forward(v, 0.5, train=True, mask=mask)[0], x, dout, h=1e-3
    )
    assert rel_error(nd.dropout_backward(dout, cache), numeric) < 1e-7
    seq = rng.standard_normal((3, 10, 4))
    out, _ = nd.dropout_forward(seq, 0.5, train=True, mask=masks.locked_mask(seq.shape, 0.5, rng))
    np.testing.assert_array_equal(out[:, 0] == 0, out[:, 9] == 0)


@given(
    shape=array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**63 - 1),
    scaling=st.sampled_from(SCALINGS),
)
@settings(max_examples=60, deadline=None)
def test_property_kept_units_scaled_dropped_units_zero(shape, p, seed, scaling):
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=shape)
    out, cache = nd.dropout_forward(
        x, p, train=True, rng=np.random.default_rng(seed), scaling=scaling
    )
    mask = masks.keep_mask(shape, p, np.random.default_rng(seed))
    train_scale, _ = nd.output_scales(p, scaling)
    np.testing.assert_allclose(out, np.where(mask, x * train_scale, 0.0))
    np.testing.assert_allclose(nd.dropout_backward(np.ones(shape), cache), mask * train_scale)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float64])
def test_a_0_1_mask_of_any_dtype_keeps_x_dtype_and_is_cached_as_bool(dtype):
    x = np.random.default_rng(11).standard_normal((4, 6)).astype(np.float32)
    mask = _mask(x.shape).astype(dtype)
    out, cache = nd.dropout_forward(x, 0.4, train=True, mask=mask)
    assert out.dtype == np.float32 and cache.mask.dtype == bool and cache.nbytes == x.size
    np.testing.assert_array_equal(out, x * mask.astype(bool) * np.float32(1 / 0.6))


def test_rng_path_stores_the_mask_it_drew():
    x = np.ones((20, 20))
    out, cache = nd.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(out != 0, cache.mask)


# --- numpy: the moments of a training pass ---------------------------------------------------


@pytest.mark.parametrize("scaling", SCALINGS)
def test_train_output_moments_measure_one_pass_per_p_in_turn(scaling):
    p_values = [0.0, 0.3, 0.7]
    means, variances = nd.train_output_moments(
        nd.dropout_forward, p_values, 50, scaling, np.random.default_rng(8)
    )
    rng = np.random.default_rng(8)
    passes = [
        nd.dropout_forward(np.ones(50), p, train=True, rng=rng, scaling=scaling)[0]
        for p in p_values
    ]
    assert means.dtype == variances.dtype == np.float64 and means.shape == (3,)
    np.testing.assert_array_equal(means, [out.mean() for out in passes])
    np.testing.assert_array_equal(variances, [out.var() for out in passes])
    assert means[0] == 1.0 and variances[0] == 0.0  # p = 0 keeps every unit


@pytest.mark.parametrize("scaling", SCALINGS)
def test_train_output_moments_match_the_scaled_bernoulli(scaling):
    # A pass keeps K ~ Binomial(n, q) of n ones, each scaled by s: the mean is s K / n and the
    # variance s^2 k (1 - k), k = K / n. |K - n q| < t (Bernstein, union over the rates at
    # FALSE_FAIL in all) gives |mean - s q| < s t / n and |variance - s^2 q (1 - q)| < s^2 t / n.
    p_values, n = [0.1, 0.5, 0.8], 100_000
    means, variances = nd.train_output_moments(
        nd.dropout_forward, p_values, n, scaling, np.random.default_rng(9)
    )
    for p, mean, variance in zip(p_values, means, variances, strict=True):
        q, s = 1 - p, nd.output_scales(p, scaling)[0]
        t = binomial_tolerance(n, q, FALSE_FAIL / len(p_values)) / n
        assert abs(mean - s * q) < s * t
        assert abs(variance - s**2 * q * (1 - q)) < s**2 * t


def test_train_output_moments_measure_the_forward_they_are_given():
    def doubled(x, p, **options):
        out, cache = nd.dropout_forward(x, p, **options)
        return 2 * out, cache

    means, variances = nd.train_output_moments(
        doubled, [0.0, 1.0], 10, "inverted", np.random.default_rng(0)
    )
    np.testing.assert_array_equal(means, [2.0, 0.0])
    np.testing.assert_array_equal(variances, [0.0, 0.0])


def test_train_output_moments_reject_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"forward must be a callable \(e\.g\. dropout_forward\)"):
        nd.train_output_moments("dropout_forward", [0.5], 10, "inverted", rng)
    with pytest.raises(ValueError, match="n_units must be >= 1, but got n_units=0"):
        nd.train_output_moments(nd.dropout_forward, [0.5], 0, "inverted", rng)
    with pytest.raises(ValueError, match="scaling must be one of"):
        nd.train_output_moments(nd.dropout_forward, [0.5], 10, "inverse", rng)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        nd.train_output_moments(nd.dropout_forward, [0.5], 10, "inverted", 0)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        nd.train_output_moments(nd.dropout_forward, [1.5], 10, "inverted", rng)


# --- numpy: bad input ------------------------------------------------------------------------


def test_numpy_rejects_bad_input_with_named_arguments():
    x = np.ones((2, 3))
    with pytest.raises(
        ValueError, match=r"dropout probability has to be between 0 and 1, but got p=-0\.1"
    ):
        nd.dropout_forward(x, -0.1, train=True, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="p=nan"):
        nd.dropout_forward(x, float("nan"), train=False)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        nd.dropout_forward(np.ones((2, 3), dtype=int), 0.5, train=False)
    with pytest.raises(TypeError, match="x must be an array"):
        nd.dropout_forward([1.0, 2.0], 0.5, train=False)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        nd.dropout_forward(x, 0.5, train=True, mask=np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        nd.dropout_forward(x, 0.5, train=True, mask=np.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="mask must hold 0/1"):
        nd.dropout_forward(x, 0.5, train=True, mask=np.ones((2, 3), dtype=complex))
    with pytest.raises(ValueError, match="needs rng"):
        nd.dropout_forward(x, 0.5, train=True)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        nd.dropout_forward(x, 0.5, train=True, rng=42)
    with pytest.raises(ValueError, match="scaling must be one of"):
        nd.dropout_forward(x, 0.5, train=False, scaling="inverse")
    _, cache = nd.dropout_forward(x, 0.5, train=True, mask=np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        nd.dropout_backward(np.ones((3, 3)), cache)


# --- torch twins -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("train", [True, False])
def test_torch_twin_matches_numpy_given_the_same_mask(device, scaling, train):
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    mask = _mask(x.shape, p=0.3)
    out, cache = nd.dropout_forward(x, 0.3, train=train, mask=mask, scaling=scaling)
    tout, tcache = td.dropout_forward(
        torch.from_numpy(x).to(device),
        0.3,
        train=train,
        mask=torch.from_numpy(mask).to(device),
        scaling=scaling,
    )
    np.testing.assert_allclose(tout.cpu().numpy(), out, rtol=1e-15)
    tdx = td.dropout_backward(torch.from_numpy(dout).to(device), tcache)
    np.testing.assert_allclose(tdx.cpu().numpy(), nd.dropout_backward(dout, cache), rtol=1e-15)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_torch_dropout_matches_F_dropout_given_the_same_mask(device, p):
    x = torch.randn(64, 33, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.random.fork_rng(devices=[device] if device != "cpu" else []):
        torch.manual_seed(123)
        reference = F.dropout(x, p, training=True)
        torch.manual_seed(123)  # same draws on an input of the same shape recover the mask
        mask = F.dropout(torch.ones_like(x), p, training=True) != 0
    ours = td.dropout(x, p, train=True, mask=mask)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=0)
    torch.testing.assert_close(td.dropout(x, p, train=False), F.dropout(x, p, training=False))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_gradcheck_on_our_backward(device):
    x = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    mask = torch.rand(5, 4, device=device) < 0.6
    for scaling in SCALINGS:
        assert torch.autograd.gradcheck(
            lambda v, s=scaling: td.dropout(v, 0.4, mask=mask, scaling=s), (x,)
        )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_generator_path_is_reproducible_and_on_device(device):
    x = torch.ones(100, 10, device=device)
    a, _ = td.dropout_forward(
        x, 0.5, train=True, generator=torch.Generator(device=device).manual_seed(1)
    )
    b, _ = td.dropout_forward(
        x, 0.5, train=True, generator=torch.Generator(device=device).manual_seed(1)
    )
    assert a.device.type == device and torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("device", DEVICES)
def test_modules_follow_nn_dropout_train_and_eval(device):
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.ones(8, 3, 6, 6, device=device)
    for layer in (
        td.Dropout(0.5, generator),
        td.ChannelDropout(0.5, generator),
    ):
        out = layer.train()(x)
        assert set(out.unique().tolist()) <= {0.0, 2.0} and (out == 0).any()
        assert torch.equal(layer.eval()(x), x)
    channels = td.ChannelDropout(0.5, generator).train()(x)
    assert torch.all((channels == 0).all(dim=(2, 3)) | (channels != 0).all(dim=(2, 3)))
    seq = torch.ones(4, 12, 5, device=device)
    locked = td.LockedDropout(0.5, generator).train()(seq)
    assert torch.equal(locked[:, 0] == 0, locked[:, 11] == 0)
    classic = td.Dropout(0.5, generator, scaling="classic")
    assert torch.equal(classic.eval()(x), 0.5 * x)
    assert "p=0.5" in repr(classic)


def test_modules_backpropagate_through_our_backward():
    generator = torch.Generator().manual_seed(2)
    layer = td.Dropout(0.5, generator)
    x = torch.ones(50, 20, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # d(sum)/dx = mask / (1 - p) = out for x = 1


def test_torch_rejects_bad_input_with_named_arguments():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=2"):
        td.dropout(x, 2)
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        td.dropout(
            torch.ones(2, 3, dtype=torch.int64), 0.5, mask=torch.ones(2, 3, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        td.dropout(x, 0.5, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs generator"):
        td.dropout(x, 0.5)
    with pytest.raises(ValueError, match="scaling must be one of"):
        td.Dropout(0.5, torch.Generator(), scaling="both")
    with pytest.raises(ValueError, match=r"x must have rank 3 \(N sequences"):
        td.LockedDropout(0.5, torch.Generator())(x)
