"""Attention with dropout on the probabilities: plain attention, expectation, causality, grads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES
from dropout_course import attention as na
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.masks import keep_mask
from dropout_course.torch import attention as ta

CAUSAL = [False, True]


def _qkv(n=2, t_q=4, t_k=4, d=3, dv=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shapes = [(n, t_q, d), (n, t_k, d), (n, t_k, dv)]
    return tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)


def _plain_attention(q, k, v, causal):
    """Softmax attention without dropout, computed by torch's own kernel in float64."""
    tensors = (torch.from_numpy(np.asarray(x, dtype=np.float64)) for x in (q, k, v))
    return F.scaled_dot_product_attention(*tensors, dropout_p=0.0, is_causal=causal).numpy()


def _all_masks(shape):
    """Every keep mask of ``shape``, with its number of kept entries."""
    size = int(np.prod(shape))
    for bits in itertools.product([False, True], repeat=size):
        yield np.array(bits).reshape(shape), sum(bits)


# --- numpy: the formula ----------------------------------------------------------------------


@pytest.mark.parametrize("causal", CAUSAL)
def test_without_dropout_it_is_plain_softmax_attention(causal):
    q, k, v = _qkv(seed=1)
    expected = _plain_attention(q, k, v, causal)
    for p, train in [(0.0, True), (0.5, False), (1.0, False)]:
        out, cache = na.attention_forward(q, k, v, p, train=train, causal=causal)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cache.probs.sum(axis=-1), 1.0, rtol=1e-14)


def test_cross_attention_shapes_and_the_mask_drops_query_key_links():
    q, k, v = _qkv(n=2, t_q=3, t_k=5, d=4, dv=6, seed=2)
    mask = keep_mask((2, 3, 5), 0.4, np.random.default_rng(2))
    out, cache = na.attention_forward(q, k, v, 0.4, mask=mask)
    assert out.shape == (2, 3, 6) and cache.probs.shape == (2, 3, 5)
    np.testing.assert_allclose(cache.dropped, np.where(mask, cache.probs / 0.6, 0.0), rtol=1e-15)
    np.testing.assert_allclose(out, cache.dropped @ v, rtol=1e-15)
    assert np.all(na.attention_forward(q, k, v, 1.0)[0] == 0)  # p = 1 drops every link


def test_softmax_is_stable_for_large_scores():
    q, k, v = _qkv(seed=3)
    out, cache = na.attention_forward(1e3 * q, 1e3 * k, v, 0.0)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(cache.probs))


def test_float32_stays_float32():
    q, k, v = _qkv(seed=4, dtype=np.float32)
    out, cache = na.attention_forward(q, k, v, 0.3, rng=np.random.default_rng(4))
    dq, dk, dv = na.attention_backward(np.ones_like(out), cache)
    assert {x.dtype for x in (out, cache.probs, dq, dk, dv)} == {np.dtype(np.float32)}


# --- numpy: dropout in expectation -----------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_expected_training_output_is_the_eval_output_exactly(causal):
    # Inverted scaling: E[dropped] = probs, and out = dropped v is linear in dropped, so the
    # average of the training output over all 2^9 masks, weighted by their probabilities, is the
    # evaluation output (exact enumeration, no sampling).
    p, (q, k, v) = 0.3, _qkv(n=1, t_q=3, t_k=3, seed=5)
    expected = sum(
        (1 - p) ** kept
        * p ** (9 - kept)
        * na.attention_forward(q, k, v, p, mask=mask, causal=causal)[0]
        for mask, kept in _all_masks((1, 3, 3))
    )
    evaluation = na.attention_forward(q, k, v, p, train=False, causal=causal)[0]
    np.testing.assert_allclose(expected, evaluation, rtol=1e-12, atol=1e-14)


def test_dropped_rows_do_not_sum_to_one_but_do_in_expectation():
    # A training step rescales the kept probabilities by 1 / (1 - p): a row sums to
    # sum_j m_j probs_j / (1 - p), which is 1 only by chance. Its expectation is
    # sum_j (1 - p) probs_j / (1 - p) = 1 (enumeration of the 2^4 masks of one row).
    p, (q, k, v) = 0.25, _qkv(n=1, t_q=1, t_k=4, seed=6)
    mask = np.array([[[True, False, True, True]]])
    _, cache = na.attention_forward(q, k, v, p, mask=mask)
    assert abs(cache.dropped.sum() - 1.0) > 1e-3
    expected_sum = sum(
        (1 - p) ** kept
        * p ** (4 - kept)
        * na.attention_forward(q, k, v, p, mask=m)[1].dropped.sum()
        for m, kept in _all_masks((1, 1, 4))
    )
    assert expected_sum == pytest.approx(1.0, rel=1e-13)
    _, cache = na.attention_forward(q, k, v, p, train=False)
    assert cache.dropped.sum() == pytest.approx(1.0, rel=1e-14)


# --- numpy: causality ------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_causal_output_ignores_later_positions(train):
    q, k, v = _qkv(n=2, t_q=5, t_k=5, seed=7)
    mask = keep_mask((2, 5, 5), 0.3, np.random.default_rng(7))
    base = na.attention_forward(q, k, v, 0.3, train=train, mask=mask, causal=True)[0]
    for j in range(5):
        later_k, later_v = k.copy(), v.copy()
        later_k[:, j] += 10.0
        later_v[:, j] -= 7.0
        out = na.attention_forward(q, later_k, later_v, 0.3, train=train, mask=mask, causal=True)[0]
        np.testing.assert_array_equal(out[:, :j], base[:, :j])  # positions i < j: unchanged
        assert not np.allclose(out[:, j:], base[:, j:])  # position j and after may see it
    _, cache = na.attention_forward(q, k, v, 0.0, causal=True)
    assert np.all(np.triu(cache.probs[0], k=1) == 0)


# --- numpy: backward -------------------------------------------------------------------------


@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize("train", [True, False])
def test_backward_matches_numerical_gradient(causal, train):
    q, k, v = _qkv(n=2, t_q=4, t_k=4, d=3, dv=2, seed=8)
    rng = np.random.default_rng(8)
    dout, mask = rng.standard_normal((2, 4, 2)), keep_mask((2, 4, 4), 0.4, rng)
    options = dict(p=0.4, train=train, mask=mask, causal=causal)
    _, cache = na.attention_forward(q, k, v, **options)
    dq, dk, dv = na.attention_backward(dout, cache)
    forward = na.attention_forward
    numeric = {
        "q": numerical_gradient(lambda x: forward(x, k, v, **options)[0], q, dout, h=1e-5),
        "k": numerical_gradient(lambda x: forward(q, x, v, **options)[0], k, dout, h=1e-5),
        "v": numerical_gradient(lambda x: forward(q, k, x, **options)[0], v, dout, h=1e-5),
    }
    for name, analytic in {"q": dq, "k": dk, "v": dv}.items():
        assert rel_error(analytic, numeric[name]) < 1e-7, name


# --- numpy: errors ---------------------------------------------------------------------------


def test_rejects_bad_input_with_named_arguments():
    q, k, v = _qkv(n=2, t_q=3, t_k=4, d=3, dv=5)
    with pytest.raises(ValueError, match=r"q must have rank 3 \(N sequences, Tq queries, d"):
        na.attention_forward(q[0], k, v, 0.0)
    with pytest.raises(ValueError, match=r"k must have rank 3 \(N sequences, Tk keys, d"):
        na.attention_forward(q, k[None], v, 0.0)
    with pytest.raises(ValueError, match=r"v must have rank 3 \(N sequences, Tk values, dv"):
        na.attention_forward(q, k, v[0], 0.0)
    with pytest.raises(ValueError, match=r"same batch size N \(axis 0\), but got 2, 1 and 2"):
        na.attention_forward(q, k[:1], v, 0.0)
    with pytest.raises(ValueError, match=r"q and k must have the same feature size d \(axis 2\)"):
        na.attention_forward(q, k[..., :2], v, 0.0)
    with pytest.raises(ValueError, match=r"k and v must have the same length Tk \(axis 1\)"):
        na.attention_forward(q, k, v[:, :3], 0.0)
    with pytest.raises(ValueError, match=r"causal=True needs as many queries as keys"):
        na.attention_forward(q, k, v, 0.0, causal=True)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        na.attention_forward(q, k, v, 1.5)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        na.attention_forward(q, k, v, -0.1)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3, 4\)"):
        na.attention_forward(q, k, v, 0.5, mask=np.ones((2, 3, 5), dtype=bool))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        na.attention_forward(q, k, v, 0.5, mask=np.full((2, 3, 4), 2.0))
    with pytest.raises(TypeError, match="q must have a floating-point dtype"):
        na.attention_forward(q.astype(int), k, v, 0.5)
    with pytest.raises(ValueError, match="needs rng"):
        na.attention_forward(q, k, v, 0.5)
    _, cache = na.attention_forward(q, k, v, 0.0)
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(2, 3, 5\)"):
        na.attention_backward(np.ones((2, 3, 4)), cache)


# --- torch twins -----------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize("train", [True, False])
def test_torch_twins_match_numpy_given_the_same_mask(device, dtype, causal, train):
    q, k, v = _qkv(n=2, t_q=4, t_k=4, d=3, dv=5, seed=9, dtype=dtype)
    rng = np.random.default_rng(9)
    dout, mask = rng.standard_normal((2, 4, 5)).astype(dtype), keep_mask((2, 4, 4), 0.4, rng)
    out, cache = na.attention_forward(q, k, v, 0.4, train=train, mask=mask, causal=causal)
    grads = na.attention_backward(dout, cache)
    tq, tk, tv, tdout, tmask = (torch.from_numpy(x).to(device) for x in (q, k, v, dout, mask))
    tout, tcache = ta.attention_forward(tq, tk, tv, 0.4, train=train, mask=tmask, causal=causal)
    tgrads = ta.attention_backward(tdout, tcache)
    assert tout.device.type == device and tout.dtype == tq.dtype
    tolerance = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tout.cpu().numpy(), out, **tolerance)
    for tgrad, grad in zip(tgrads, grads, strict=True):
        assert tgrad.shape == grad.shape and tgrad.dtype == tq.dtype
        np.testing.assert_allclose(tgrad.cpu().numpy(), grad, **tolerance)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_draws_the_mask_on_the_device_from_the_generator(device):
    q, k, v = (torch.from_numpy(x).to(device) for x in _qkv(seed=10))
    generator = torch.Generator(device=device).manual_seed(0)
    out, cache = ta.attention_forward(q, k, v, 0.5, generator=generator)
    assert cache.dropout.mask.shape == (2, 4, 4) and cache.dropout.mask.device.type == device
    again, _ = ta.attention_forward(q, k, v, 0.5, generator=generator.manual_seed(0))
    assert torch.equal(out, again)
    plain = _plain_attention(*(x.cpu().numpy() for x in (q, k, v)), causal=False)
    np.testing.assert_allclose(ta.attention(q, k, v, 0.5, train=False).cpu().numpy(), plain)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", CAUSAL)
def test_torch_gradcheck_on_our_backward(device, causal):
    generator = torch.Generator(device=device).manual_seed(1)
    q, k, v = (
        torch.randn(shape, dtype=torch.float64, device=device, generator=generator)
        for shape in [(2, 3, 4), (2, 3, 4), (2, 3, 2)]
    )
    mask = torch.rand(2, 3, 3, device=device, generator=generator) >= 0.3
    for x in (q, k, v):
        x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: ta.attention(a, b, c, 0.3, mask=mask, causal=causal), (q, k, v)
    )


def test_torch_rejects_bad_input_with_named_arguments():
    q, k, v = (torch.from_numpy(x) for x in _qkv(n=2, t_q=3, t_k=4))
    with pytest.raises(ValueError, match=r"q must have rank 3"):
        ta.attention_forward(q[0], k, v, 0.0)
    with pytest.raises(ValueError, match=r"same batch size N"):
        ta.attention(q, k, v[:1], 0.0)
    with pytest.raises(ValueError, match=r"causal=True needs as many queries as keys"):
        ta.attention(q, k, v, 0.0, causal=True)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=2"):
        ta.attention(q, k, v, 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3, 4\)"):
        ta.attention(q, k, v, 0.5, mask=torch.ones(2, 3, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs generator"):
        ta.attention(q, k, v, 0.5)


# --- the layer -------------------------------------------------------------------------------


def _layer(p, seed=0, device="cpu", causal=False, d_model=8):
    return ta.SelfAttention(d_model, p, torch.Generator(device=device).manual_seed(seed), causal)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", CAUSAL)
def test_self_attention_drops_in_train_and_is_plain_attention_in_eval(device, causal):
    layer, no_dropout = _layer(0.5, device=device, causal=causal), _layer(0.0, device=device)
    x = torch.randn(3, 6, 8, device=device, generator=torch.Generator(device).manual_seed(1))
    first, second = layer.train()(x), layer(x)
    assert first.shape == (3, 6, 8) and not torch.equal(first, second)
    evaluation = layer.eval()(x)
    assert torch.equal(evaluation, layer(x))
    no_dropout.causal = causal
    torch.testing.assert_close(evaluation, no_dropout.train()(x), rtol=0, atol=0)
    q, k, v = layer.wq(x), layer.wk(x), layer.wv(x)
    plain = layer.wo(F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    torch.testing.assert_close(evaluation, plain)


def test_self_attention_repr_reproducibility_and_gradients():
    layer = _layer(0.1, causal=True)
    assert layer.extra_repr() == "d_model=8, p=0.1, causal=True"
    assert repr(layer).startswith(
        "SelfAttention(\n  d_model=8, p=0.1, causal=True\n  (wq): Linear("
    )
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2))
    a, b = _layer(0.4, seed=3), _layer(0.4, seed=3)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))  # same masks, call after call
    # Gradients of the eval layer agree with autograd through torch's own attention.
    layer = _layer(0.4, seed=4).eval()
    layer(x).square().sum().backward()
    ours = [param.grad.clone() for param in layer.parameters()]
    layer.zero_grad()
    q, k, v = layer.wq(x), layer.wk(x), layer.wv(x)
    layer.wo(F.scaled_dot_product_attention(q, k, v)).square().sum().backward()
    for mine, reference in zip(ours, [param.grad for param in layer.parameters()], strict=True):
        torch.testing.assert_close(mine, reference)


def test_self_attention_rejects_bad_arguments():
    generator = torch.Generator()
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.2"):
        ta.SelfAttention(8, 1.2, generator)
    with pytest.raises(ValueError, match=r"d_model must be >= 1, but got d_model=0"):
        ta.SelfAttention(0, 0.1, generator)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        ta.SelfAttention(8, 0.1, None)
    layer = ta.SelfAttention(8, 0.1, generator)
    with pytest.raises(ValueError, match=r"x must have rank 3 \(N sequences, T positions"):
        layer(torch.ones(5, 8))
    with pytest.raises(ValueError, match=r"x must have d_model=8 features, but got 4"):
        layer(torch.ones(2, 5, 4))
