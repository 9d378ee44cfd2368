"""The fast path: the same results as the readable one for the same mask, numpy and torch.

Counter-based seeded masks (keep probability, reproducibility, independence of threads and
chunking), the chunked and threaded stored-mask dropout, the seeded low-memory dropout, the torch
twins pinned to the numpy ones, and the base class of the dropout layers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import dropout as nd
from dropout_course import fast, masks
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance
from dropout_course.gradcheck import gradient_check
from dropout_course.torch import dropconnect as tdc
from dropout_course.torch import dropout as td
from dropout_course.torch import fast as tfast
from dropout_course.torch import variants as tv

SCALINGS = ["inverted", "classic"]
# p values that exercise both branches of the byte-wise draw: 1 - 2**-9 keeps units only
# through a tied first byte, 1/3 has a threshold with nonzero low bits.
PS = [0.0, 0.1, 1 / 3, 0.5, 0.9, 1 - 2**-9, 1.0]
SHAPES = [(7,), (3, fast.CHUNK + 11), (5 * fast.CHUNK + 3,)]  # serial, and threaded chunks


def same_bits(a, b) -> bool:
    """Equal to the bit (so -0.0 differs from 0.0), dtype and shape included."""
    a, b = (np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for v in (a, b))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _data(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


# --- numpy: counter-based seeded masks -------------------------------------------------------


@pytest.mark.parametrize("p", PS)
def test_keep_threshold_is_exact_to_2_pow_minus_33(p):
    assert abs(fast.keep_threshold(p) / 2**32 - (1 - p)) <= 2**-33


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", [0, 12345])
def test_seeded_kept_fraction_within_binomial_bound(p, seed):
    n = 2_000_000
    kept = int(fast.seeded_keep_mask(seed, n, p).sum())
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)  # false fail < 1e-9


def test_seeded_mask_is_a_pure_function_of_seed_and_flat_index():
    # Chunks depend only on their position: a short mask is the prefix of a long one, whether
    # the long one was drawn in parallel threads or not, and a reshape changes nothing.
    long = fast.seeded_keep_mask(42, 3 * fast.CHUNK + 17, 0.3)
    short = fast.seeded_keep_mask(42, fast.CHUNK + 5, 0.3)
    np.testing.assert_array_equal(short, long[: short.size])
    np.testing.assert_array_equal(long, fast.seeded_keep_mask(42, long.size, 0.3))
    assert not np.array_equal(long, fast.seeded_keep_mask(43, long.size, 0.3))
    reshaped = fast.seeded_keep_mask(42, (3, fast.CHUNK), 0.3)
    np.testing.assert_array_equal(reshaped.reshape(-1), long[: reshaped.size])


@pytest.mark.parametrize("workers", [1, 3])
def test_seeded_results_do_not_depend_on_the_number_of_threads(monkeypatch, workers):
    x, dout = _data(6 * fast.CHUNK + 5, np.float32)
    default = fast.seeded_keep_mask(5, x.shape, 0.4)
    out, cache = fast.seeded_dropout_forward(x, 0.4, train=True, seed=5)
    with ThreadPoolExecutor(workers) as pool:
        monkeypatch.setattr(fast, "_pool", lambda: pool)
        np.testing.assert_array_equal(fast.seeded_keep_mask(5, x.shape, 0.4), default)
        again, _ = fast.seeded_dropout_forward(x, 0.4, train=True, seed=5)
        assert same_bits(again, out)
        assert same_bits(
            fast.seeded_dropout_backward(dout, cache), dout * default * dout.dtype.type(1 / 0.6)
        )


def test_chunks_are_independent_draws():
    # Adjacent chunks must not repeat each other (a counter bug would make them equal).
    mask = fast.seeded_keep_mask(1, 4 * fast.CHUNK, 0.5).reshape(4, fast.CHUNK)
    for i in range(3):  # three checks: each gets a third of the false-fail budget
        agreement = np.mean(mask[i] == mask[i + 1])
        tolerance = binomial_tolerance(fast.CHUNK, 0.5, FALSE_FAIL / 3)
        assert abs(agreement - 0.5) * fast.CHUNK <= tolerance


# --- numpy: fast == readable for the same mask -----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_stored_mask_path_equals_the_readable_one(shape, dtype, scaling):
    x, dout = _data(shape, dtype)
    out, cache = fast.dropout_forward(
        x, 0.35, train=True, rng=np.random.default_rng(1), scaling=scaling
    )
    ref_out, ref_cache = nd.dropout_forward(x, 0.35, train=True, mask=cache.mask, scaling=scaling)
    assert same_bits(out, ref_out) and cache == nd.DropoutCache(cache.mask, ref_cache.scale)
    assert same_bits(fast.dropout_backward(dout, cache), nd.dropout_backward(dout, ref_cache))
    assert cache.nbytes == x.size


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_seeded_path_equals_the_readable_one(shape, dtype, scaling):
    x, dout = _data(shape, dtype)
    out, cache = fast.seeded_dropout_forward(x, 0.35, train=True, seed=99, scaling=scaling)
    mask = fast.seeded_keep_mask(99, shape, 0.35)
    ref_out, ref_cache = nd.dropout_forward(x, 0.35, train=True, mask=mask, scaling=scaling)
    assert same_bits(out, ref_out)
    assert same_bits(
        fast.seeded_dropout_backward(dout, cache), nd.dropout_backward(dout, ref_cache)
    )
    assert cache.nbytes == 0 and ref_cache.nbytes == x.size


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_cases_with_nothing_to_draw_are_the_readable_function(scaling, p):
    rng = np.random.default_rng(2)
    x, dout = _data((4, 3, 5, 5))
    for mask in (None, masks.keep_mask(x.shape, p, rng), masks.channel_mask(x.shape, p, rng)):
        for train in (True, False):
            if train and mask is None and p == 0.3:
                continue  # the one case that draws: tested above
            args = {"train": train, "mask": mask, "scaling": scaling}
            out, cache = fast.dropout_forward(x, p, **args)
            ref_out, ref_cache = nd.dropout_forward(x, p, **args)
            assert same_bits(out, ref_out)
            assert same_bits(
                fast.dropout_backward(dout, cache), nd.dropout_backward(dout, ref_cache)
            )
    seeded_eval, seeded_cache = fast.seeded_dropout_forward(
        x, p, train=False, seed=1, scaling=scaling
    )
    assert same_bits(seeded_eval, nd.dropout_forward(x, p, train=False, scaling=scaling)[0])
    assert same_bits(fast.seeded_dropout_backward(dout, seeded_cache), dout * seeded_cache.scale)


def test_rng_path_is_reproducible_stores_its_mask_and_advances_rng():
    x = np.ones((300, 1000))
    a, cache = fast.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(4))
    b, _ = fast.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(4))
    assert same_bits(a, b)
    np.testing.assert_array_equal(a != 0, cache.mask)
    rng = np.random.default_rng(4)
    first, _ = fast.dropout_forward(x, 0.5, train=True, rng=rng)
    assert not np.array_equal(first, fast.dropout_forward(x, 0.5, train=True, rng=rng)[0])


@pytest.mark.parametrize("scaling", SCALINGS)
def test_fast_backwards_match_numerical_gradient(scaling):
    x, dout = _data((5, 4), seed=9)
    _, seeded = fast.seeded_dropout_forward(x, 0.5, train=True, seed=3, scaling=scaling)
    _, stored = fast.dropout_forward(
        x, 0.5, train=True, rng=np.random.default_rng(3), scaling=scaling
    )

    def seeded_forward(v):
        return fast.seeded_dropout_forward(v, 0.5, train=True, seed=3, scaling=scaling)[0]

    def stored_forward(v):
        return fast.dropout_forward(v, 0.5, train=True, mask=stored.mask, scaling=scaling)[0]

    assert (
        gradient_check(seeded_forward, x, dout, fast.seeded_dropout_backward(dout, seeded)) < 1e-7
    )
    assert gradient_check(stored_forward, x, dout, fast.dropout_backward(dout, stored)) < 1e-7


def test_empty_arrays_pass_through():
    x = np.zeros((0, 7), dtype=np.float32)
    out, cache = fast.seeded_dropout_forward(x, 0.5, train=True, seed=1)
    assert out.shape == (0, 7) and fast.seeded_dropout_backward(out, cache).shape == (0, 7)
    out, cache = fast.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(0))
    assert out.shape == (0, 7) and fast.dropout_backward(out, cache).shape == (0, 7)


def test_numpy_fast_rejects_bad_input_with_named_arguments():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"seed must be in \[0, 9223372036854775807\]"):
        fast.seeded_keep_mask(-1, (3,), 0.5)
    with pytest.raises(TypeError, match="seed must be an integer"):
        fast.seeded_keep_mask(1.5, (3,), 0.5)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        fast.seeded_keep_mask(1, (3,), 1.5)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=-0\.1"):
        fast.dropout_forward(x, -0.1, train=True, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        fast.seeded_dropout_forward(np.ones((2, 3), dtype=int), 0.5, train=True, seed=1)
    with pytest.raises(ValueError, match="needs rng"):
        fast.dropout_forward(x, 0.5, train=True)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        fast.dropout_forward(x, 0.5, train=True, rng=42)
    with pytest.raises(ValueError, match="scaling must be one of"):
        fast.seeded_dropout_forward(x, 0.5, train=True, seed=1, scaling="inverse")
    _, cache = fast.dropout_forward(x, 0.5, train=True, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        fast.dropout_backward(np.ones((3, 3)), cache)
    _, seeded = fast.seeded_dropout_forward(x, 0.5, train=True, seed=1)
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        fast.seeded_dropout_backward(np.ones((3, 2)), seeded)


# --- torch: fast == readable, and pinned to numpy --------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_torch_fast_equals_torch_readable_for_the_same_mask(device, dtype, scaling):
    x = torch.randn(40, 50, dtype=dtype, device=device)
    dout = torch.randn(40, 50, dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(3)
    out, cache = tfast.dropout_forward(x, 0.3, train=True, generator=generator, scaling=scaling)
    ref_out, ref_cache = td.dropout_forward(x, 0.3, train=True, mask=cache.mask, scaling=scaling)
    assert same_bits(out, ref_out)
    assert same_bits(tfast.dropout_backward(dout, cache), td.dropout_backward(dout, ref_cache))
    seeded_out, seeded_cache = tfast.seeded_dropout_forward(
        x, 0.3, train=True, seed=17, scaling=scaling
    )
    mask = tfast.seeded_keep_mask(17, (40, 50), 0.3, device=device)
    ref_out, ref_cache = td.dropout_forward(x, 0.3, train=True, mask=mask, scaling=scaling)
    assert same_bits(seeded_out, ref_out)
    assert same_bits(
        tfast.seeded_dropout_backward(dout, seeded_cache), td.dropout_backward(dout, ref_cache)
    )
    assert seeded_cache.nbytes == 0 and ref_cache.nbytes == 2000


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("train", [True, False])
def test_torch_twins_equal_numpy_given_the_same_mask(device, dtype, scaling, train):
    # One numpy mask injected everywhere: readable and fast, numpy and torch, stored and seeded.
    x, dout = _data((3, fast.CHUNK + 11), dtype, seed=10)
    mask = fast.seeded_keep_mask(8, x.shape, 0.3)
    out, cache = fast.seeded_dropout_forward(x, 0.3, train=train, seed=8, scaling=scaling)
    dx = fast.seeded_dropout_backward(dout, cache)
    tx, tdout, tmask = (torch.from_numpy(a).to(device) for a in (x, dout, mask))
    for module in (td, tfast):
        tout, tcache = module.dropout_forward(tx, 0.3, train=train, mask=tmask, scaling=scaling)
        assert same_bits(tout, out) and same_bits(module.dropout_backward(tdout, tcache), dx)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", PS)
def test_torch_seeded_mask_is_the_keep_mask_of_a_seeded_generator(device, p):
    n = 1_000_000
    mask = tfast.seeded_keep_mask(9, n, p, device=device)
    assert mask.device.type == device and mask.dtype == torch.bool
    assert torch.equal(mask, tfast.seeded_keep_mask(9, n, p, device=device))
    generator = torch.Generator(device=device).manual_seed(9)
    assert torch.equal(mask, td.keep_mask(n, p, generator))
    kept = int(mask.sum())
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)  # false fail < 1e-9


@pytest.mark.parametrize("device", DEVICES)
def test_torch_seeded_gradcheck_and_modules(device):
    x = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    for scaling in SCALINGS:
        assert torch.autograd.gradcheck(
            lambda v, s=scaling: tfast.seeded_dropout(v, 0.4, seed=7, scaling=s), (x,)
        )
    generator = torch.Generator(device=device).manual_seed(0)
    layer = tfast.SeededDropout(0.5, generator)
    ones = torch.ones(8, 3, 6, 6, device=device)
    out = layer.train()(ones)
    assert set(out.unique().tolist()) <= {0.0, 2.0} and (out == 0).any()
    assert torch.equal(layer.eval()(ones), ones)
    assert repr(layer) == "SeededDropout(p=0.5, scaling='inverted')"


def test_torch_fast_rejects_bad_input_with_named_arguments():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="seed must be in"):
        tfast.seeded_dropout(x, 0.5, seed=-3)
    with pytest.raises(ValueError, match="seed must be in"):
        tfast.seeded_keep_mask(2**63, (3,), 0.5)
    with pytest.raises(ValueError, match="needs generator"):
        tfast.dropout_forward(x, 0.5, train=True)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        tfast.dropout_forward(x, 0.5, train=True, mask=torch.ones(3, dtype=torch.bool))
    _, seeded = tfast.seeded_dropout_forward(x, 0.5, train=True, seed=1)
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        tfast.seeded_dropout_backward(torch.ones(3, 2), seeded)
    _, stored = tfast.dropout_forward(x, 0.5, train=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="dout must have the forward input's shape"):
        tfast.dropout_backward(torch.ones(3, 3), stored)


# --- torch: one autograd bridge, one base class for the layers -------------------------------


def test_differentiable_takes_a_forward_backward_pair_with_several_inputs():
    def forward(x, w, *, k):
        return x * w * k, (x, w, k)

    def backward(dout, cache):
        x, w, k = cache
        return dout * w * k, dout * x * k

    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: td.differentiable(forward, backward, a, b, k=2.5), (x, w)
    )


class _Recording(td.DropoutLayer):
    def step(self, x, *, train):
        return x + (1.0 if train else 0.0)


def test_dropout_layer_switches_on_train_and_eval_and_shows_its_fields():
    layer = _Recording(0.25, torch.Generator())
    x = torch.zeros(3)
    assert torch.equal(layer(x), x + 1) and torch.equal(layer.eval()(x), x)
    assert torch.equal(layer.train()(x), x + 1)
    assert repr(layer) == "_Recording(p=0.25)"
    generator = torch.Generator()
    assert (
        repr(td.Dropout(0.5, generator, scaling="classic")) == "Dropout(p=0.5, scaling='classic')"
    )
    assert repr(tv.GaussianDropout(0.3, generator)) == "GaussianDropout(p=0.3)"
    assert repr(tv.AlphaDropout(0.3, generator)) == "AlphaDropout(p=0.3)"
    assert repr(tdc.DropConnectLinear(6, 3, 0.5, generator)) == (
        "DropConnectLinear(in_features=6, out_features=3, p=0.5)"
    )
    with pytest.raises(NotImplementedError, match="must define step"):
        td.DropoutLayer(0.5, generator)(x)


@pytest.mark.parametrize(
    "make",
    [
        lambda p, g: td.Dropout(p, g),
        lambda p, g: td.ChannelDropout(p, g),
        lambda p, g: td.LockedDropout(p, g),
        lambda p, g: tfast.SeededDropout(p, g),
        lambda p, g: tv.GaussianDropout(p, g),
        lambda p, g: tv.AlphaDropout(p, g),
        lambda p, g: tdc.DropConnectLinear(2, 3, p, g),
    ],
)
def test_every_dropout_layer_checks_p_and_generator(make):
    assert isinstance(make(0.5, torch.Generator()), td.DropoutLayer)
    with pytest.raises(ValueError, match=r"p=1\.5"):
        make(1.5, torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        make(0.5, np.random.default_rng(0))
