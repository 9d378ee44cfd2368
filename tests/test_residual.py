"""Drop-path and stochastic depth: per-example and per-batch masks, twins, gradients, layers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import residual as nr
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance, mean_tolerance
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import residual as tr
from dropout_course.torch.dropout import differentiable

SCALINGS = ["inverted", "classic"]


def _branch(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.5, 1.5, size=shape).astype(dtype)


def _enumerate_masks(n):
    """Every per-example keep mask of n examples, as (mask of shape (n, 1), number kept)."""
    for bits in itertools.product([False, True], repeat=n):
        yield np.array(bits).reshape(n, 1), sum(bits)


# --- drop-path -------------------------------------------------------------------------------


def test_drop_path_mask_has_one_entry_per_example():
    mask = nr.drop_path_mask((5, 3, 4, 4), 0.5, np.random.default_rng(0))
    assert mask.shape == (5, 1, 1, 1) and mask.dtype == bool
    assert nr.drop_path_mask((7,), 0.5, np.random.default_rng(0)).shape == (7,)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_drop_path_is_dropout_with_the_per_example_mask(scaling):
    x = _branch((6, 3, 2))
    mask = nr.drop_path_mask(x.shape, 0.4, np.random.default_rng(1))
    out, cache = nr.drop_path(x, 0.4, mask=mask, scaling=scaling)
    scale = 1 / 0.6 if scaling == "inverted" else 1.0
    np.testing.assert_allclose(out, np.where(mask, x * scale, 0.0), rtol=1e-15)
    assert cache.mask.shape == (6, 1, 1)


def test_drop_path_draws_once_per_example():
    x = _branch((200, 3, 4))
    out, _ = nr.drop_path(x, 0.5, rng=np.random.default_rng(2))
    dropped = np.all(out == 0, axis=(1, 2))
    scaled = np.all(np.isclose(out, 2 * x, rtol=1e-15), axis=(1, 2))
    assert np.all(dropped ^ scaled) and dropped.any() and scaled.any()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_path_kept_fraction_within_binomial_bound(p):
    n = 200_000
    out, _ = nr.drop_path(np.ones((n, 3)), p, rng=np.random.default_rng(3))
    kept = int(np.sum(out[:, 0] != 0))
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)  # false fail < 1e-9


def test_drop_path_mean_over_many_draws_is_the_branch():
    # Row i of the tiled batch is one draw for the branch x; each entry of a row lies in
    # [0, x / (1 - p)] <= [0, 1.5 / 0.7]. Hoeffding per entry, union over the 6 entries.
    p, draws = 0.3, 200_000
    x = _branch((1, 6), seed=4)
    out, _ = nr.drop_path(np.repeat(x, draws, axis=0), p, rng=np.random.default_rng(4))
    tolerance = mean_tolerance(draws, 1.5 / (1 - p), FALSE_FAIL / x.size)
    assert np.all(np.abs(out.mean(axis=0) - x[0]) <= tolerance)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_drop_path_expectation_is_its_eval_output_exactly(scaling):
    # Enumerate the 2^3 per-example masks with their probabilities.
    p, x = 0.25, _branch((3, 4), seed=5)
    expected = sum(
        (1 - p) ** kept * p ** (3 - kept) * nr.drop_path(x, p, mask=mask, scaling=scaling)[0]
        for mask, kept in _enumerate_masks(3)
    )
    np.testing.assert_allclose(expected, nr.drop_path(x, p, train=False, scaling=scaling)[0])


def test_drop_path_eval_is_identity_and_p_zero_or_one_needs_no_rng():
    x = _branch((4, 5), seed=6)
    np.testing.assert_array_equal(nr.drop_path(x, 0.5, train=False)[0], x)
    np.testing.assert_array_equal(nr.drop_path(x, 0.0)[0], x)
    assert np.all(nr.drop_path(x, 1.0)[0] == 0)


@pytest.mark.parametrize("train", [True, False])
def test_drop_path_backward_matches_numerical_gradient(train):
    rng = np.random.default_rng(7)
    x, dout = rng.standard_normal((5, 3, 2)), rng.standard_normal((5, 3, 2))
    mask = nr.drop_path_mask(x.shape, 0.4, rng)
    _, cache = nr.drop_path(x, 0.4, train=train, mask=mask)
    numeric = numerical_gradient(
        lambda v: nr.drop_path(v, 0.4, train=train, mask=mask)[0], x, dout, h=1e-3
    )
    assert rel_error(nr.drop_path_backward(dout, cache), numeric) < 1e-7


# --- stochastic depth ------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False])
def test_stochastic_depth_is_the_branch_or_zero_for_the_whole_batch(keep):
    x = _branch((4, 3, 2), seed=8)
    mask = np.full((1, 1, 1), keep)
    out, cache = nr.stochastic_depth(x, 0.8, mask=mask)
    np.testing.assert_array_equal(out, x if keep else np.zeros_like(x))  # no rescaling
    assert cache.mask.shape == (1, 1, 1)


def test_stochastic_depth_draws_once_per_batch_and_eval_scales_by_survival():
    x = _branch((50, 3), seed=9)
    rng = np.random.default_rng(9)
    outs = [nr.stochastic_depth(x, 0.5, rng=rng)[0] for _ in range(40)]
    assert all(np.array_equal(out, x) or np.all(out == 0) for out in outs)
    assert any(np.all(out == 0) for out in outs) and any(np.any(out != 0) for out in outs)
    np.testing.assert_array_equal(nr.stochastic_depth(x, 0.8, train=False)[0], 0.8 * x)


@pytest.mark.parametrize("survival", [0.0, 0.3, 0.8, 1.0])
def test_stochastic_depth_expectation_is_its_eval_output_exactly(survival):
    x = _branch((3, 4), seed=10)
    kept = nr.stochastic_depth(x, survival, mask=np.ones((1, 1), dtype=bool))[0]
    dropped = nr.stochastic_depth(x, survival, mask=np.zeros((1, 1), dtype=bool))[0]
    expected = survival * kept + (1 - survival) * dropped
    np.testing.assert_allclose(expected, nr.stochastic_depth(x, survival, train=False)[0])


@pytest.mark.parametrize("survival", [0.2, 0.5, 0.9])
def test_stochastic_depth_keep_rate_within_binomial_bound(survival):
    calls, rng, x = 20_000, np.random.default_rng(11), np.ones((2, 2))
    kept = sum(bool(nr.stochastic_depth(x, survival, rng=rng)[0][0, 0]) for _ in range(calls))
    assert abs(kept - calls * survival) <= binomial_tolerance(calls, survival)  # fail < 1e-9


def test_drop_path_and_stochastic_depth_agree_in_expectation():
    # Both keep a branch entry with probability `survival`; drop-path with classic scaling and
    # p = 1 - survival has the same expectation as stochastic depth, survival * branch (exact
    # enumeration of the masks). Only the correlation across examples differs.
    survival, x = 0.75, _branch((3, 2), seed=12)
    p = 1 - survival
    drop_path_mean = sum(
        survival**kept * p ** (3 - kept) * nr.drop_path(x, p, mask=mask, scaling="classic")[0]
        for mask, kept in _enumerate_masks(3)
    )
    depth_mean = sum(
        prob * nr.stochastic_depth(x, survival, mask=np.full((1, 1), keep))[0]
        for keep, prob in ((True, survival), (False, p))
    )
    np.testing.assert_allclose(drop_path_mean, depth_mean, rtol=1e-15)
    np.testing.assert_allclose(depth_mean, survival * x, rtol=1e-15)
    # and the inverted drop-path's expectation is the branch itself, survival^-1 times that
    np.testing.assert_allclose(depth_mean / survival, nr.drop_path(x, p, train=False)[0])


@pytest.mark.parametrize("train", [True, False])
def test_stochastic_depth_backward_matches_numerical_gradient(train):
    rng = np.random.default_rng(13)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for keep in (True, False):
        mask = np.full((1, 1), keep)
        _, cache = nr.stochastic_depth(x, 0.7, train=train, mask=mask)
        numeric = numerical_gradient(
            lambda v, m=mask: nr.stochastic_depth(v, 0.7, train=train, mask=m)[0], x, dout, h=1e-3
        )
        assert rel_error(nr.stochastic_depth_backward(dout, cache), numeric) < 1e-7


# --- linear decay ----------------------------------------------------------------------------


def test_linear_survival_small_depths_exactly():
    np.testing.assert_array_equal(nr.linear_survival(1), [0.5])
    np.testing.assert_array_equal(nr.linear_survival(4), [0.875, 0.75, 0.625, 0.5])
    np.testing.assert_array_equal(nr.linear_survival(2, 0.0), [0.5, 0.0])
    np.testing.assert_array_equal(nr.linear_survival(3, 1.0), [1.0, 1.0, 1.0])
    resnet110 = nr.linear_survival(54)  # Huang et al.'s ResNet-110: 54 blocks, p_L = 0.5
    assert resnet110.dtype == np.float64 and resnet110[-1] == 0.5
    assert resnet110[0] == pytest.approx(1 - 0.5 / 54) and np.all(np.diff(resnet110) < 0)
    assert nr.linear_survival(7, 0.3)[-1] == 0.3  # the last block gets it exactly


def test_linear_survival_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_blocks must be >= 1, but got n_blocks=0"):
        nr.linear_survival(0)
    with pytest.raises(TypeError, match="n_blocks must be an integer"):
        nr.linear_survival(2.0)
    with pytest.raises(ValueError, match=r"final_survival must be in \[0, 1\], but got .*=1\.5"):
        nr.linear_survival(3, 1.5)


# --- bad input -------------------------------------------------------------------------------


def test_numpy_rejects_bad_input_with_named_arguments():
    x, rng = np.ones((4, 3)), np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        nr.drop_path(x, 1.5, rng=rng)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        nr.drop_path_mask(x.shape, -0.1, rng)
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\], but got survival=-0\.2"):
        nr.stochastic_depth(x, -0.2, rng=rng)
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\], but got survival=2"):
        nr.stochastic_depth_mask(x.shape, 2, rng)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 1\) \(one draw per example"):
        nr.drop_path(x, 0.5, mask=np.ones((4, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1\) \(one draw for the whole"):
        nr.stochastic_depth(x, 0.5, mask=np.ones((4, 1), dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        nr.drop_path(x, 0.5, mask=np.full((4, 1), 2.0))
    with pytest.raises(ValueError, match=r"branch must have rank >= 1 \(N examples first"):
        nr.drop_path(np.float64(1.0), 0.5, rng=rng)
    with pytest.raises(ValueError, match=r"branch must have rank >= 1"):
        nr.stochastic_depth(np.array(1.0), 0.5, rng=rng)
    with pytest.raises(ValueError, match=r"shape must have rank >= 1"):
        nr.drop_path_mask((), 0.5, rng)
    with pytest.raises(TypeError, match="branch must have a floating-point dtype"):
        nr.drop_path(np.ones((2, 2), dtype=int), 0.5, rng=rng)
    with pytest.raises(ValueError, match="needs rng"):
        nr.drop_path(x, 0.5)


# --- torch twins -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [True, False])
def test_torch_twins_match_numpy_given_the_same_mask(device, dtype, train):
    rng = np.random.default_rng(14)
    x, dout = _branch((6, 3, 2), seed=14, dtype=dtype), rng.standard_normal((6, 3, 2)).astype(dtype)
    tx, tdout = torch.from_numpy(x).to(device), torch.from_numpy(dout).to(device)
    for scaling in SCALINGS:
        mask = nr.drop_path_mask(x.shape, 0.4, rng)
        out, cache = nr.drop_path(x, 0.4, train=train, mask=mask, scaling=scaling)
        tmask = torch.from_numpy(mask).to(device)
        tout, tcache = tr.drop_path(tx, 0.4, train=train, mask=tmask, scaling=scaling)
        assert tout.device.type == device and tout.dtype == tx.dtype
        np.testing.assert_array_equal(tout.cpu().numpy(), out)
        np.testing.assert_array_equal(
            tr.drop_path_backward(tdout, tcache).cpu().numpy(), nr.drop_path_backward(dout, cache)
        )
    for keep in (True, False):
        mask = np.full((1, 1, 1), keep)
        out, cache = nr.stochastic_depth(x, 0.7, train=train, mask=mask)
        tmask = torch.from_numpy(mask).to(device)
        tout, tcache = tr.stochastic_depth(tx, 0.7, train=train, mask=tmask)
        np.testing.assert_array_equal(tout.cpu().numpy(), out)
        np.testing.assert_array_equal(
            tr.stochastic_depth_backward(tdout, tcache).cpu().numpy(),
            nr.stochastic_depth_backward(dout, cache),
        )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_masks_are_per_example_and_per_batch_on_the_device(device):
    generator = torch.Generator(device=device).manual_seed(0)
    mask = tr.drop_path_mask((8, 3, 4), 0.5, generator)
    assert mask.shape == (8, 1, 1) and mask.dtype == torch.bool and mask.device.type == device
    assert tr.stochastic_depth_mask((8, 3, 4), 0.5, generator).shape == (1, 1, 1)
    x = torch.ones(300, 5, device=device)
    out, _ = tr.drop_path(x, 0.5, generator=generator)
    assert torch.all((out == 0).all(dim=1) | (out == 2).all(dim=1))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_gradcheck_on_our_backward(device):
    x = torch.rand(5, 3, 2, dtype=torch.float64, device=device, requires_grad=True)
    drop_mask = torch.tensor([1, 0, 1, 1, 0], device=device).reshape(5, 1, 1).bool()
    for scaling in SCALINGS:
        assert torch.autograd.gradcheck(
            lambda v, s=scaling: differentiable(
                tr.drop_path, tr.drop_path_backward, v, p=0.4, mask=drop_mask, scaling=s
            ),
            (x,),
        )
    for keep in (True, False):
        mask = torch.full((1, 1, 1), keep, device=device)
        assert torch.autograd.gradcheck(
            lambda v, m=mask: differentiable(
                tr.stochastic_depth, tr.stochastic_depth_backward, v, survival=0.7, mask=m
            ),
            (x,),
        )


# --- layers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_drop_path_layer_drops_examples_in_train_and_is_identity_in_eval(device):
    layer = tr.DropPath(0.5, torch.Generator(device=device).manual_seed(0))
    x = torch.ones(64, 3, 4, 4, device=device)
    out = layer.train()(x)
    per_example = (out == 0).all(dim=(1, 2, 3)) | (out == 2).all(dim=(1, 2, 3))
    assert per_example.all() and (out == 0).any() and (out == 2).any()
    assert torch.equal(layer.eval()(x), x)
    classic = tr.DropPath(0.5, torch.Generator(device=device), scaling="classic")
    assert torch.equal(classic.eval()(x), 0.5 * x)
    assert repr(layer) == "DropPath(p=0.5, scaling='inverted')"


@pytest.mark.parametrize("device", DEVICES)
def test_stochastic_depth_layer_drops_the_batch_in_train_and_scales_in_eval(device):
    layer = tr.StochasticDepth(0.5, torch.Generator(device=device).manual_seed(0))
    x = torch.rand(16, 5, device=device) + 0.5
    outs = [layer.train()(x) for _ in range(30)]
    assert all(torch.equal(out, x) or bool((out == 0).all()) for out in outs)
    assert any(bool((out == 0).all()) for out in outs) and any(torch.equal(o, x) for o in outs)
    assert torch.equal(layer.eval()(x), 0.5 * x)
    assert repr(tr.StochasticDepth(0.8, torch.Generator())) == "StochasticDepth(survival=0.8)"
    assert tr.StochasticDepth(0.75, torch.Generator()).p == 0.25


def test_layers_are_reproducible_from_the_generator_and_backpropagate():
    x = torch.ones(40, 6)
    for make in (lambda g: tr.DropPath(0.3, g), lambda g: tr.StochasticDepth(0.6, g)):
        a = make(torch.Generator().manual_seed(5))(x)
        b = make(torch.Generator().manual_seed(5))(x)
        assert torch.equal(a, b)
    layer = tr.DropPath(0.5, torch.Generator().manual_seed(2))
    x = torch.ones(50, 4, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # d(sum)/dx = mask / (1 - p) = out at x = 1


def test_torch_rejects_bad_input_with_named_arguments():
    x, generator = torch.ones(4, 3), torch.Generator()
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=2"):
        tr.drop_path(x, 2, generator=generator)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-1"):
        tr.DropPath(-1, generator)
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\], but got survival=1\.1"):
        tr.StochasticDepth(1.1, generator)
    with pytest.raises(ValueError, match=r"survival must be in \[0, 1\], but got survival=-1"):
        tr.stochastic_depth(x, -1, generator=generator)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 1\) \(one draw per example"):
        tr.drop_path(x, 0.5, mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1\)"):
        tr.stochastic_depth(x, 0.5, mask=torch.ones(1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"branch must have rank >= 1"):
        tr.drop_path(torch.tensor(1.0), 0.5, generator=generator)
    with pytest.raises(ValueError, match="scaling must be one of"):
        tr.DropPath(0.5, generator, scaling="both")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tr.DropPath(0.5, None)
    with pytest.raises(ValueError, match="needs generator"):
        tr.stochastic_depth(x, 0.5)
