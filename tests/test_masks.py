"""Readable masks: keep probability, determinism, channel and locked shapes, bad input.

The seeded, chunked masks of the fast path are tested in test_fast.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import masks
from dropout_course.bounds import binomial_tolerance
from dropout_course.torch import masks as tmasks

PS = [0.0, 0.1, 1 / 3, 0.5, 0.9, 1 - 2**-9, 1.0]


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", [0, 12345])
def test_numpy_kept_fraction_within_binomial_bound(p, seed):
    n = 2_000_000
    kept = int(masks.keep_mask(n, p, np.random.default_rng(seed)).sum())
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)  # false fail < 1e-9


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", PS)
def test_torch_kept_fraction_within_binomial_bound(device, p):
    n = 1_000_000
    mask = tmasks.keep_mask(n, p, torch.Generator(device=device).manual_seed(3))
    assert mask.device.type == device and mask.dtype == torch.bool
    kept = int(mask.sum())
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)  # false fail < 1e-9


def test_keep_mask_is_u_at_least_p_for_a_uniform_u():
    # The readable definition, checked against the generator's own uniforms.
    np.testing.assert_array_equal(
        masks.keep_mask((40, 30), 0.3, np.random.default_rng(5)),
        np.random.default_rng(5).random((40, 30)) >= 0.3,
    )
    uniform = torch.rand((40, 30), generator=torch.Generator().manual_seed(5))
    assert torch.equal(
        tmasks.keep_mask((40, 30), 0.3, torch.Generator().manual_seed(5)), uniform >= 0.3
    )


def test_keep_mask_is_reproducible_from_rng_and_advances_it():
    a = masks.keep_mask((50, 20), 0.5, np.random.default_rng(7))
    b = masks.keep_mask((50, 20), 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    assert not np.array_equal(
        masks.keep_mask((50, 20), 0.5, rng), masks.keep_mask((50, 20), 0.5, rng)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_torch_keep_mask_is_reproducible_from_generator_and_on_its_device(device):
    a = tmasks.keep_mask((50, 20), 0.5, torch.Generator(device=device).manual_seed(7))
    b = tmasks.keep_mask((50, 20), 0.5, torch.Generator(device=device).manual_seed(7))
    assert a.device.type == device and torch.equal(a, b)


def test_keep_mask_units_are_independent_across_rows():
    # One draw per element, not one per row: rows of a (N, D) mask differ.
    mask = masks.keep_mask((200, 64), 0.5, np.random.default_rng(0))
    assert len({row.tobytes() for row in mask}) == 200


@pytest.mark.parametrize(
    ("module", "make_rng"),
    [
        (masks, lambda: np.random.default_rng(0)),
        (tmasks, lambda: torch.Generator().manual_seed(0)),
    ],
)
def test_channel_mask_is_one_draw_per_channel(module, make_rng):
    mask = module.channel_mask((64, 32, 5, 5), 0.5, make_rng())
    assert tuple(mask.shape) == (64, 32, 1, 1)
    flat = np.asarray(mask).reshape(64, 32)
    assert 0 < flat.mean() < 1 and len({row.tobytes() for row in flat}) > 1


@pytest.mark.parametrize(
    ("module", "make_rng"),
    [
        (masks, lambda: np.random.default_rng(0)),
        (tmasks, lambda: torch.Generator().manual_seed(0)),
    ],
)
def test_locked_mask_is_shared_over_time(module, make_rng):
    mask = module.locked_mask((16, 30, 8), 0.5, make_rng())
    assert tuple(mask.shape) == (16, 1, 8)


@pytest.mark.parametrize(
    ("module", "make_rng"),
    [
        (masks, lambda: np.random.default_rng(0)),
        (tmasks, lambda: torch.Generator().manual_seed(0)),
    ],
)
def test_masks_reject_bad_input(module, make_rng):
    rng = make_rng()
    with pytest.raises(ValueError, match=r"between 0 and 1, but got p=1\.5"):
        module.keep_mask((3,), 1.5, rng)
    with pytest.raises(ValueError, match="p=nan"):
        module.keep_mask((3,), float("nan"), rng)
    with pytest.raises(TypeError, match="p must be a real number"):
        module.keep_mask((3,), "0.5", rng)
    with pytest.raises(ValueError, match="shape must be a tuple of non-negative ints"):
        module.keep_mask((3, -1), 0.5, rng)
    with pytest.raises(ValueError, match=r"shape must have rank 3 or 4 or 5 \(N, C"):
        module.channel_mask((8, 3), 0.5, rng)
    with pytest.raises(ValueError, match=r"shape must have rank 3 \(N sequences"):
        module.locked_mask((8, 3, 2, 2), 0.5, rng)
    with pytest.raises(TypeError, match="Generator"):
        module.keep_mask((3,), 0.5, 0)


def test_empty_masks():
    assert masks.keep_mask((0, 5), 0.5, np.random.default_rng(0)).shape == (0, 5)
    assert tmasks.keep_mask((0, 5), 0.5, torch.Generator()).shape == (0, 5)
