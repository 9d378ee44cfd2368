"""Dropout masks in torch, on CPU or CUDA: the twins of :mod:`dropout_course.masks`.

``keep_mask(shape, p, generator)`` draws uniform 32-bit integers from ``generator`` (on the
generator's device) and keeps a unit when its number is below ``keep_threshold(p)``, exactly the
numpy rule, so the keep probability is exact to 2**-33.

``seeded_keep_mask(seed, shape, p, device=...)`` is counter-based: unit ``i`` is kept when
``splitmix64(key + (i + 1) * golden) >> 32`` is below the threshold, where ``key`` mixes the seed.
The hash is a handful of vectorised int64 operations that run unchanged on CPU and CUDA, so a
mask can be regenerated anywhere from ``(seed, shape, p)``. It is a different generator from
numpy's Philox: the two backends give different masks for the same seed, each reproducible.
"""

from __future__ import annotations

import torch

from .._validate import check_probability, check_rank, check_shape
from ..masks import MAX_SEED, check_seed, keep_threshold

GOLDEN = 0x9E3779B97F4A7C15
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _as_int64(value: int) -> int:
    """The int64 with the same 64 bits as the unsigned ``value``."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def splitmix64(value: int) -> int:
    """SplitMix64's finaliser on a Python int (the reference the tensor version must match)."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * _MIX[0]) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX[1]) & _MASK64
    return z ^ (z >> 31)


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 tensors holding unsigned 64-bit patterns."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64_tensor(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping), bit-identical to ``splitmix64``."""
    z = (z ^ _shift_right(z, 30)) * _as_int64(_MIX[0])
    z = (z ^ _shift_right(z, 27)) * _as_int64(_MIX[1])
    return z ^ _shift_right(z, 31)


def hashed_uint32(seed: int, start: int, stop: int, device: torch.device | str) -> torch.Tensor:
    """Uniform 32-bit numbers (as int64) for flat units [start, stop) of the stream ``seed``."""
    key = splitmix64(check_seed(seed) + GOLDEN)
    index = torch.arange(start + 1, stop + 1, dtype=torch.int64, device=device)
    return _shift_right(splitmix64_tensor(index * _as_int64(GOLDEN) + _as_int64(key)), 32)


def seeded_keep_mask(
    seed: int, shape: int | tuple[int, ...], p: float, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Bool keep mask of ``shape`` on ``device``, a pure function of ``seed``.

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed gives the same mask on every device.
        shape: shape of the mask (units).
        p: probability of dropping a unit, in [0, 1].
        device: where to build the mask.
    """
    shape = check_shape(shape)
    threshold = keep_threshold(p)
    size = 1
    for dim in shape:
        size *= dim
    return (hashed_uint32(seed, 0, size, device) < threshold).reshape(shape)


def check_generator(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"but got {type(generator).__name__}"
        )
    return generator


def draw_seed(generator: torch.Generator) -> int:
    """Draw a mask seed from ``generator`` (advancing it), for the seeded masks."""
    generator = check_generator(generator)
    return int(torch.randint(0, MAX_SEED, (1,), generator=generator, device=generator.device))


def keep_mask(shape: int | tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask of ``shape`` on ``generator.device``, True (keep) with probability ``1 - p``."""
    shape, p = check_shape(shape), check_probability(p)
    generator = check_generator(generator)
    draws = torch.randint(
        0, 2**32, shape, generator=generator, device=generator.device, dtype=torch.int64
    )
    return draws < keep_threshold(p)


def channel_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Spatial-dropout mask (N, C, 1, ..., 1) for activations of ``shape`` (N, C, *spatial)."""
    shape = check_shape(shape)
    check_rank(shape, "shape", (3, 4, 5), "N, C and 1-3 spatial axes")
    return keep_mask(shape[:2] + (1,) * (len(shape) - 2), p, generator)


def locked_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Locked (variational) mask (N, 1, D) for sequences of ``shape`` (N, T, D)."""
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, D features")
    return keep_mask((shape[0], 1, shape[2]), p, generator)
