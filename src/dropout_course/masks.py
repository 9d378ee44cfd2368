"""Dropout masks in numpy: which units survive a training step.

A *keep mask* holds True where a unit is kept, which happens with probability ``1 - p``
(``p`` is the probability of dropping, as in PyTorch). Three shapes of mask matter in practice:

* ``keep_mask``: one independent draw per unit (standard dropout);
* ``channel_mask``: one draw per (sample, channel), shared over the spatial axes (spatial dropout);
* ``locked_mask``: one draw per (sequence, feature), shared over time steps (variational dropout).

Every mask is a pure function of a 63-bit ``seed``. ``keep_mask(shape, p, rng)`` draws that seed
from ``rng``; ``seeded_keep_mask(seed, shape, p)`` takes it directly, which is what lets the
low-memory dropout in :mod:`dropout_course.dropout` regenerate a mask instead of storing it.

How a mask is drawn: the flat mask is cut into chunks of ``CHUNK`` units, and chunk ``i`` reads
the counter-based Philox generator at a counter that depends only on ``i``; so any chunk can be
regenerated alone, and chunks can be drawn in parallel threads with identical results. A unit is
kept when a uniform 32-bit number is below ``round((1 - p) * 2**32)``, so the keep probability is
exact to 2**-33. To spend one random byte per unit instead of four, the 32-bit number is drawn
one byte at a time: the first byte decides unless it ties the threshold's first byte (probability
1/256), and only tied units draw 24 more bits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._validate import check_count, check_probability, check_rank, check_shape

CHUNK = 1 << 18
"""Units per independently generated chunk (a multiple of 32, the bytes in one Philox block)."""

MAX_SEED = 2**63 - 1

_BLOCK_BYTES = 32  # one Philox-4x64 block: four 64-bit words
_TIE_STREAM = 1 << 64  # counter offset (second counter word) of the stream for tied units


def keep_threshold(p: float) -> int:
    """Return the 32-bit threshold ``t``: a unit is kept when a uniform uint32 is below ``t``.

    ``t = round((1 - p) * 2**32)``, so ``t / 2**32`` equals the keep probability to 2**-33.
    """
    return round((1.0 - check_probability(p)) * 2**32)


def _keep_chunk(seed: int, threshold: int, start: int, stop: int) -> np.ndarray:
    """Keep mask (bool, shape (stop - start,)) for flat units [start, stop) of a seeded mask."""
    size = stop - start
    if threshold >= 2**32:
        return np.ones(size, dtype=bool)
    first_byte, rest = divmod(threshold, 1 << 24)
    words = -(-size // 8)  # 8 random bytes per 64-bit word
    block = start // _BLOCK_BYTES
    high = np.random.Philox(key=seed, counter=block).random_raw(words).view(np.uint8)[:size]
    keep = high < first_byte
    tied = np.flatnonzero(high == first_byte)
    if tied.size:
        low = np.random.Philox(key=seed, counter=block + _TIE_STREAM).random_raw(tied.size)
        keep[tied] = (low >> np.uint64(40)) < rest
    return keep


_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """One thread pool per process (a forked child, e.g. a grading kernel, gets its own)."""
    pid = os.getpid()
    if pid not in _pools:
        _pools.clear()
        _pools[pid] = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="dropout")
    return _pools[pid]


def map_chunks(size: int, work: Callable[[int, int], None]) -> None:
    """Call ``work(start, stop)`` on each chunk of ``range(size)``, in threads when it pays.

    Chunk boundaries are fixed multiples of ``CHUNK``, so the result never depends on the number
    of threads. numpy releases the GIL inside Philox and ufuncs, so the chunks run in parallel.
    """
    bounds = [(start, min(start + CHUNK, size)) for start in range(0, size, CHUNK)]
    if len(bounds) < 4:
        for start, stop in bounds:
            work(start, stop)
        return
    for future in [_pool().submit(work, start, stop) for start, stop in bounds]:
        future.result()


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int after checking it is an integer in [0, 2**63 - 1]."""
    return check_count(seed, "seed", 0, MAX_SEED)


def draw_seed(rng: np.random.Generator) -> int:
    """Draw a mask seed from ``rng`` (advancing it), so masks stay reproducible from ``rng``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"but got {type(rng).__name__}"
        )
    return int(rng.integers(0, MAX_SEED, endpoint=True))


def seeded_keep_mask(seed: int, shape: int | tuple[int, ...], p: float) -> np.ndarray:
    """Bool keep mask of ``shape``, a pure function of ``seed``: True with probability ``1 - p``.

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed always gives the same mask.
        shape: shape of the mask (units).
        p: probability of dropping a unit, in [0, 1].
    """
    seed, shape = check_seed(seed), check_shape(shape)
    threshold = keep_threshold(p)
    mask = np.empty(shape, dtype=bool)
    flat = mask.reshape(-1)

    def fill(start: int, stop: int) -> None:
        flat[start:stop] = _keep_chunk(seed, threshold, start, stop)

    map_chunks(flat.size, fill)
    return mask


def keep_mask(shape: int | tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Bool mask of ``shape``, True (keep) independently with probability ``1 - p``.

    Args:
        shape: shape of the mask, usually the shape of the activations (N, D).
        p: probability of dropping a unit, in [0, 1].
        rng: numpy Generator; the mask is reproducible from its state.
    """
    shape, p = check_shape(shape), check_probability(p)
    return seeded_keep_mask(draw_seed(rng), shape, p)


def channel_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Spatial-dropout mask for activations of ``shape`` (N, C, *spatial): one draw per channel.

    Returns a bool mask of shape (N, C, 1, ..., 1) that broadcasts over the spatial axes, so a
    whole feature map is kept or dropped together.
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3, 4, 5), "N, C and 1-3 spatial axes")
    reduced = shape[:2] + (1,) * (len(shape) - 2)
    return keep_mask(reduced, p, rng)


def locked_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Locked (variational) mask for sequences of ``shape`` (N, T, D): one draw per sequence.

    Returns a bool mask of shape (N, 1, D): each sequence drops the same features at every time
    step, which is what recurrent networks need (Gal & Ghahramani, 2016).
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, D features")
    return keep_mask((shape[0], 1, shape[2]), p, rng)
