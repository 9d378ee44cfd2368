"""Masks: keep probability, determinism, chunk independence, channel and locked shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import masks
from dropout_course.bounds import binomial_tolerance
from dropout_course.torch import masks as tmasks

# p values that exercise both branches of the byte-wise draw: 1 - 2**-9 keeps units only
# through a tied first byte, 1/3 has a threshold with nonzero low bits.
PS = [0.0, 0.1, 1 / 3, 0.5, 0.9, 1 - 2**-9, 1.0]


@pytest.mark.parametrize("p", PS)
def test_keep_threshold_is_exact_to_2_pow_minus_33(p):
    assert abs(masks.keep_threshold(p) / 2**32 - (1 - p)) <= 2**-33


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", [0, 12345])
def test_numpy_kept_fraction_within_binomial_bound(p, seed):
    n = 2_000_000
    kept = int(masks.seeded_keep_mask(seed, n, p).sum())
    assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", PS)
def test_torch_kept_fraction_within_binomial_bound(device, p):
    n = 1_000_000
    generator = torch.Generator(device=device).manual_seed(3)
    for mask in (
        tmasks.keep_mask(n, p, generator),
        tmasks.seeded_keep_mask(9, n, p, device=device),
    ):
        assert mask.device.type == device and mask.dtype == torch.bool
        kept = int(mask.sum())
        assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p)


def test_seeded_mask_is_a_pure_function_of_seed_and_flat_index():
    # Chunks depend only on their position: a short mask is the prefix of a long one, whether
    # the long one was drawn in parallel threads or not.
    long = masks.seeded_keep_mask(42, 3 * masks.CHUNK + 17, 0.3)
    short = masks.seeded_keep_mask(42, masks.CHUNK + 5, 0.3)
    np.testing.assert_array_equal(short, long[: short.size])
    np.testing.assert_array_equal(long, masks.seeded_keep_mask(42, long.size, 0.3))
    assert not np.array_equal(long, masks.seeded_keep_mask(43, long.size, 0.3))
    reshaped = masks.seeded_keep_mask(42, (3, masks.CHUNK), 0.3)
    np.testing.assert_array_equal(reshaped.reshape(-1), long[: reshaped.size])


def test_chunks_are_independent_draws():
    # Adjacent chunks must not repeat each other (a counter bug would make them equal).
    mask = masks.seeded_keep_mask(1, 4 * masks.CHUNK, 0.5).reshape(4, masks.CHUNK)
    for i in range(3):
        agreement = np.mean(mask[i] == mask[i + 1])
        assert abs(agreement - 0.5) * masks.CHUNK <= binomial_tolerance(masks.CHUNK, 0.5)


def test_keep_mask_is_reproducible_from_rng_and_advances_it():
    a = masks.keep_mask((50, 20), 0.5, np.random.default_rng(7))
    b = masks.keep_mask((50, 20), 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    assert not np.array_equal(
        masks.keep_mask((50, 20), 0.5, rng), masks.keep_mask((50, 20), 0.5, rng)
    )


def test_keep_mask_units_are_independent_across_rows():
    # One draw per element, not one per row: rows of a (N, D) mask differ.
    mask = masks.keep_mask((200, 64), 0.5, np.random.default_rng(0))
    assert len({row.tobytes() for row in mask}) == 200


def test_torch_seeded_hash_matches_the_python_reference():
    key = tmasks.splitmix64(5 + tmasks.GOLDEN)
    expected = [tmasks.splitmix64(key + (i + 1) * tmasks.GOLDEN) >> 32 for i in range(64)]
    for device in DEVICES:
        assert tmasks.hashed_uint32(5, 0, 64, device).tolist() == expected


@pytest.mark.parametrize("device", DEVICES)
def test_torch_seeded_mask_is_the_same_on_every_device(device):
    cpu = tmasks.seeded_keep_mask(11, (300, 7), 0.4)
    np.testing.assert_array_equal(
        cpu.numpy(), tmasks.seeded_keep_mask(11, (300, 7), 0.4, device=device).cpu().numpy()
    )


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


def test_seed_is_checked():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 9223372036854775807\]"):
        masks.seeded_keep_mask(-1, (3,), 0.5)
    with pytest.raises(ValueError, match="seed must be in"):
        tmasks.seeded_keep_mask(2**63, (3,), 0.5)
    with pytest.raises(TypeError, match="seed must be an integer"):
        masks.seeded_keep_mask(1.5, (3,), 0.5)


def test_empty_masks():
    assert masks.keep_mask((0, 5), 0.5, np.random.default_rng(0)).shape == (0, 5)
    assert tmasks.keep_mask((0, 5), 0.5, torch.Generator()).shape == (0, 5)
