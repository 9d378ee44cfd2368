"""DropBlock: seed rate, block structure, exact expected drop fraction, twins, layer, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import dropblock as nb
from dropout_course import masks
from dropout_course.bounds import mean_tolerance
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import dropblock as tb
from dropout_course.torch import masks as tmasks


def _x(shape=(2, 3, 8, 9), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _erode(dropped, b):
    """Valid positions whose whole b x b square is dropped (the AND of the shifted maps)."""
    rows, cols = dropped.shape[2] - b + 1, dropped.shape[3] - b + 1
    full = np.ones((*dropped.shape[:2], rows, cols), dtype=bool)
    for di in range(b):
        for dj in range(b):
            full &= dropped[:, :, di : di + rows, dj : dj + cols]
    return full


def _drop_fractions(keep):
    """Dropped fraction of each (example, channel) map: independent across maps."""
    return 1.0 - keep.reshape(keep.shape[0] * keep.shape[1], -1).mean(axis=1)


# --- gamma and the exact expectation ------------------------------------------------------------


def test_gamma_is_the_papers_formula():
    assert nb.dropblock_gamma(0.1, 3, 7, 7) == pytest.approx(0.1 / 9 * 49 / 25)
    assert nb.dropblock_gamma(0.2, 2, 5, 8) == pytest.approx(0.2 / 4 * 40 / (4 * 7))
    assert nb.dropblock_gamma(0.3, 1, 6, 4) == pytest.approx(0.3)
    assert nb.dropblock_gamma(1.0, 7, 7, 7) == pytest.approx(
        1.0
    )  # one valid position, the whole map


@pytest.mark.parametrize(("b", "h", "w"), [(1, 5, 5), (2, 3, 3), (3, 6, 4), (7, 9, 7)])
def test_gamma_never_exceeds_p(b, h, w):
    assert 0.0 <= nb.dropblock_gamma(0.9, b, h, w) <= 0.9


@pytest.mark.parametrize(("p", "b", "h", "w"), [(0.1, 3, 7, 7), (0.4, 2, 5, 6), (0.25, 1, 4, 4)])
def test_expected_drop_fraction_matches_brute_force(p, b, h, w):
    # Count, by enumerating the seed positions, how many blocks cover each unit.
    cover = np.zeros((h, w), dtype=int)
    for i in range(h - b + 1):
        for j in range(w - b + 1):
            cover[i : i + b, j : j + b] += 1
    gamma = nb.dropblock_gamma(p, b, h, w)
    exact = np.mean(1 - (1 - gamma) ** cover)
    assert nb.expected_drop_fraction(p, b, h, w) == pytest.approx(exact, rel=1e-12)
    if b > 1:
        assert exact < p  # overlapping blocks: a little below p


# --- masks: block structure and statistics -----------------------------------------------------


def test_expand_seeds_draws_the_anchored_squares_and_twins_agree():
    seeds = np.zeros((1, 1, 4, 5), dtype=bool)
    seeds[0, 0, 0, 0] = seeds[0, 0, 3, 2] = True
    dropped = nb.expand_seeds(seeds, 3)
    expected = np.zeros((1, 1, 6, 7), dtype=bool)
    expected[0, 0, 0:3, 0:3] = expected[0, 0, 3:6, 2:5] = True
    np.testing.assert_array_equal(dropped, expected)
    random_seeds = np.random.default_rng(1).random((2, 3, 6, 5)) < 0.1
    for device in DEVICES:
        twin = tb.expand_seeds(torch.from_numpy(random_seeds).to(device), 3)
        assert twin.device.type == device
        np.testing.assert_array_equal(twin.cpu().numpy(), nb.expand_seeds(random_seeds, 3))


@pytest.mark.parametrize("b", [1, 2, 4])
def test_every_dropped_unit_lies_in_a_whole_dropped_block(b):
    # Opening: re-expanding the positions whose whole square is dropped gives back the drop map.
    shape = (4, 3, 11, 9)
    maps = [~nb.dropblock_mask(shape, 0.3, b, np.random.default_rng(2))]
    for device in DEVICES:
        generator = torch.Generator(device=device).manual_seed(2)
        maps.append(~tb.dropblock_mask(shape, 0.3, b, generator).cpu().numpy())
    for dropped in maps:
        assert dropped.shape == shape and dropped.any() and not dropped.all()
        np.testing.assert_array_equal(nb.expand_seeds(_erode(dropped, b), b), dropped)


def test_block_size_one_is_ordinary_dropout():
    shape = (3, 2, 10, 10)
    assert nb.expected_drop_fraction(0.3, 1, 10, 10) == pytest.approx(0.3)
    np.testing.assert_array_equal(
        nb.dropblock_mask(shape, 0.3, 1, np.random.default_rng(4)),
        masks.keep_mask(shape, 0.3, np.random.default_rng(4)),
    )
    assert torch.equal(
        tb.dropblock_mask(shape, 0.3, 1, torch.Generator().manual_seed(4)),
        tmasks.keep_mask(shape, 0.3, torch.Generator().manual_seed(4)),
    )


N_MAPS = 100_000
TOLERANCE = mean_tolerance(N_MAPS, 0.5)
"""Hoeffding on the mean of N_MAPS independent per-map drop fractions in [0, 1] (range 1):
P(|mean - expectation| >= TOLERANCE) <= 1e-9 for each check (about 0.0103)."""


@pytest.mark.parametrize(("p", "b", "size"), [(0.05, 3, 12), (0.3, 5, 14)])
def test_numpy_realised_fraction_matches_the_exact_expectation(p, b, size):
    keep = nb.dropblock_mask((N_MAPS, 1, size, size), p, b, np.random.default_rng(5))
    realised = _drop_fractions(keep).mean()
    assert abs(realised - nb.expected_drop_fraction(p, b, size, size)) <= TOLERANCE  # < 1e-9


@pytest.mark.parametrize("device", DEVICES)
def test_torch_realised_fraction_matches_the_exact_expectation(device):
    p, b, size = 0.1, 5, 16
    generator = torch.Generator(device=device).manual_seed(6)
    keep = tb.dropblock_mask((N_MAPS // 4, 4, size, size), p, b, generator)
    assert keep.device.type == device
    realised = float(1.0 - keep.double().mean())  # the mean of the per-map fractions
    assert abs(realised - nb.expected_drop_fraction(p, b, size, size)) <= TOLERANCE  # < 1e-9


def test_without_the_valid_region_correction_gamma_under_drops():
    # Sharpness: seeds at the naive rate p / b**2 drop about p * valid / (H W) ~ 0.056, not 0.1.
    p, b, size = 0.1, 5, 16
    valid = (N_MAPS, 1, size - b + 1, size - b + 1)
    seeds = np.random.default_rng(7).random(valid) < p / b**2
    realised = _drop_fractions(~nb.expand_seeds(seeds, b)).mean()
    assert realised < nb.expected_drop_fraction(p, b, size, size) - TOLERANCE  # < 1e-9


# --- forward/backward and the twins ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_scales_by_the_realised_kept_fraction(dtype):
    x = _x(dtype=dtype)
    mask = nb.dropblock_mask(x.shape, 0.3, 3, np.random.default_rng(8))
    out, cache = nb.dropblock_forward(x, 0.3, 3, mask=mask)
    scale = mask.size / mask.sum()
    assert out.dtype == dtype and cache.scale == pytest.approx(scale)
    np.testing.assert_allclose(out, np.where(mask, x * scale, 0), rtol=1e-6)
    np.testing.assert_array_equal(nb.dropblock_forward(x, 0.3, 3, train=False)[0], x)


def test_nothing_kept_gives_zeros_without_division():
    x = _x()
    with np.errstate(all="raise"):
        out, cache = nb.dropblock_forward(x, 0.5, 2, mask=np.zeros(x.shape))
        grad = nb.dropblock_backward(np.ones_like(x), cache)
    assert np.all(out == 0) and np.all(grad == 0)
    same, _ = nb.dropblock_forward(x, 0.0, 2)  # p = 0: no rng needed
    np.testing.assert_array_equal(same, x)


def test_numpy_backward_passes_the_gradient_check():
    x = _x((2, 2, 5, 6), seed=9)
    mask = nb.dropblock_mask(x.shape, 0.4, 2, np.random.default_rng(9))
    dout = _x(x.shape, seed=10)
    _, cache = nb.dropblock_forward(x, 0.4, 2, mask=mask)
    numerical = numerical_gradient(lambda v: nb.dropblock_forward(v, 0.4, 2, mask=mask)[0], x, dout)
    assert rel_error(nb.dropblock_backward(dout, cache), numerical) < 1e-7


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("np_dtype", "torch_dtype"), [(np.float32, torch.float32), (np.float64, torch.float64)]
)
def test_twins_agree_exactly_given_the_same_mask(device, np_dtype, torch_dtype):
    x = _x(dtype=np_dtype)
    mask = nb.dropblock_mask(x.shape, 0.3, 3, np.random.default_rng(11))
    dout = _x(seed=12, dtype=np_dtype)
    out, cache = nb.dropblock_forward(x, 0.3, 3, mask=mask)
    grad = nb.dropblock_backward(dout, cache)
    tx = torch.from_numpy(x).to(device)
    tout, tcache = tb.dropblock_forward(tx, 0.3, 3, mask=torch.from_numpy(mask).to(device))
    tgrad = tb.dropblock_backward(torch.from_numpy(dout).to(device), tcache)
    assert tout.dtype == torch_dtype and tout.device.type == device
    assert tcache.scale == cache.scale
    np.testing.assert_array_equal(tout.cpu().numpy(), out)
    np.testing.assert_array_equal(tgrad.cpu().numpy(), grad)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_autograd_runs_our_backward(device):
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, device=device, requires_grad=True)
    mask = tb.dropblock_mask(tuple(x.shape), 0.4, 2, torch.Generator(device=device).manual_seed(13))
    assert torch.autograd.gradcheck(lambda v: tb.dropblock(v, 0.4, 2, mask=mask), (x,))


# --- the layer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_layer_drops_blocks_in_train_and_is_identity_in_eval(device):
    layer = tb.DropBlock(0.3, 3, torch.Generator(device=device).manual_seed(14))
    assert repr(layer) == "DropBlock(p=0.3, block_size=3)"
    x = torch.ones(4, 2, 10, 10, device=device)
    out = layer(x)
    dropped = (out == 0).cpu().numpy()
    assert dropped.any() and not dropped.all()
    np.testing.assert_array_equal(nb.expand_seeds(_erode(dropped, 3), 3), dropped)
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, x.numel() / kept.numel()))  # realised scale
    layer.eval()
    assert torch.equal(layer(x), x)


def test_layer_is_reproducible_from_its_generator():
    x = torch.randn(2, 3, 9, 9)
    a = tb.DropBlock(0.2, 2, torch.Generator().manual_seed(15))(x)
    b = tb.DropBlock(0.2, 2, torch.Generator().manual_seed(15))(x)
    assert torch.equal(a, b)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [nb, tb])
def test_bad_arguments_name_the_argument_and_the_allowed_range(module):
    array = _x((1, 2, 7, 8))
    x = array if module is nb else torch.from_numpy(array)
    with pytest.raises(
        ValueError,
        match=r"block_size must be in \[1, min\(H, W\)\] = \[1, 7\], but got block_size=9",
    ):
        module.dropblock_forward(x, 0.1, 9, mask=None, train=False)
    with pytest.raises(
        ValueError,
        match=r"block_size must be in \[1, min\(H, W\)\] = \[1, 7\], but got block_size=0",
    ):
        module.dropblock_forward(x, 0.1, 0, train=False)
    with pytest.raises(TypeError, match=r"block_size must be an integer in \[1, min\(H, W\)\]"):
        module.dropblock_forward(x, 0.1, 2.5, train=False)
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1.5"):
        module.dropblock_forward(x, 1.5, 2, train=False)
    with pytest.raises(ValueError, match=r"x must have rank 4 \(N examples, C channels, H rows"):
        module.dropblock_forward(x[0], 0.1, 2, train=False)
    with pytest.raises(ValueError, match=r"shape must have rank 4"):
        module.dropblock_mask(
            (7, 8), 0.1, 2, np.random.default_rng(0) if module is nb else torch.Generator()
        )
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 2, 7, 8\)"):
        module.dropblock_forward(x, 0.1, 2, mask=x[:, :1] > 0)
    with pytest.raises(ValueError, match="needs"):
        module.dropblock_forward(x, 0.1, 2)


def test_gamma_checks_the_map_size():
    with pytest.raises(ValueError, match="height must be >= 1"):
        nb.dropblock_gamma(0.1, 1, 0, 5)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        tb.DropBlock(0.1, 0, torch.Generator())
