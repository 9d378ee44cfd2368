"""How a framework makes dropout fast: the readable numpy dropout, rebuilt for speed and memory.

Chapter 2, section "How a framework makes it fast" (book/02_inverted_scaling.md). The readable
:mod:`dropout_course.dropout` draws one float64 per unit, builds the whole mask, then multiplies,
on one thread. This module computes the same thing with four tricks; given the same mask, its
outputs and gradients equal the readable ones bit for bit.

1. **Counter-based masks.** The flat mask is cut into chunks of ``CHUNK`` units, and chunk ``i``
   reads the counter-based Philox generator at a counter that depends only on ``i``. So a mask
   is a pure function of ``(seed, shape, p)``, and any chunk can be drawn alone.
2. **One random byte per unit.** A unit is kept when a uniform 32-bit number is below
   ``keep_threshold(p) = round((1 - p) * 2**32)`` (the keep probability is exact to 2**-33). The
   number is drawn a byte at a time: the first byte decides unless it ties the threshold's first
   byte (probability 1/256), and only tied units draw 24 more bits.
3. **Chunks in threads.** Each chunk is drawn and multiplied while it sits in the CPU cache, and
   chunks run in a thread pool (numpy releases the GIL in Philox and in ufuncs). Chunk
   boundaries are fixed, so the result never depends on the number of threads.
4. **Seeded low-memory dropout.** ``seeded_dropout_forward`` keeps ``(seed, shape, p)`` instead
   of the mask (0 mask bytes); ``seeded_dropout_backward`` regenerates it chunk by chunk.

``dropout_forward`` / ``dropout_backward`` here take the arguments of the readable ones and return
the same ``DropoutCache``; only the random stream behind an ``rng`` differs (a seeded mask).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from . import dropout as readable
from ._validate import (
    check_dout,
    check_floating,
    check_probability,
    check_scaling,
    check_seed,
    check_shape,
    draw_seed,
)
from .dropout import DropoutCache, output_scales

CHUNK = 1 << 18
"""Units per independently generated chunk (a multiple of 32, the bytes in one Philox block)."""

_BLOCK_BYTES = 32  # one Philox-4x64 block: four 64-bit words
_TIE_STREAM = 1 << 64  # counter offset (second counter word) of the stream for tied units

KeepChunk = Callable[[int, int], np.ndarray]
"""``keep(start, stop)``: the keep mask (flat) of units [start, stop)."""


# --- counter-based seeded masks --------------------------------------------------------------


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


def _seeded_chunks(seed: int, p: float) -> KeepChunk:
    """The chunks of ``seeded_keep_mask(seed, ..., p)``, one ``keep(start, stop)`` at a time."""
    return partial(_keep_chunk, seed, keep_threshold(p))


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
    of threads.
    """
    bounds = [(start, min(start + CHUNK, size)) for start in range(0, size, CHUNK)]
    if len(bounds) < 4:
        for start, stop in bounds:
            work(start, stop)
        return
    for future in [_pool().submit(work, start, stop) for start, stop in bounds]:
        future.result()


def seeded_keep_mask(seed: int, shape: int | tuple[int, ...], p: float) -> np.ndarray:
    """Bool keep mask of ``shape``, a pure function of ``seed``: True with probability ``1 - p``.

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed always gives the same mask.
        shape: shape of the mask (units).
        p: probability of dropping a unit, in [0, 1].
    """
    seed, shape = check_seed(seed), check_shape(shape)
    keep = _seeded_chunks(seed, p)
    mask = np.empty(shape, dtype=bool)
    flat = mask.reshape(-1)

    def fill(start: int, stop: int) -> None:
        flat[start:stop] = keep(start, stop)

    map_chunks(flat.size, fill)
    return mask


# --- chunked, threaded dropout ---------------------------------------------------------------


def _masked(
    x: np.ndarray, keep: KeepChunk, scale: float, store: np.ndarray | None = None
) -> np.ndarray:
    """``x * mask * scale`` chunk by chunk, where ``keep(start, stop)`` gives the flat mask.

    Each chunk is computed in x's dtype in the order of the readable ``x * mask * scale``, so the
    result is the same to the bit; ``store`` (bool, x's shape), if given, receives the mask.
    """
    flat_x = np.ascontiguousarray(x).reshape(-1)
    flat_store = None if store is None else store.reshape(-1)
    out = np.empty_like(flat_x)
    scale_typed = flat_x.dtype.type(scale)

    def work(start: int, stop: int) -> None:
        chunk, kept = out[start:stop], keep(start, stop)
        np.multiply(flat_x[start:stop], kept, out=chunk)
        np.multiply(chunk, scale_typed, out=chunk)
        if flat_store is not None:
            flat_store[start:stop] = kept

    map_chunks(flat_x.size, work)
    return out.reshape(x.shape)


def dropout_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
) -> tuple[np.ndarray, DropoutCache]:
    """``dropout.dropout_forward``, fast: same arguments, same result for the same mask.

    In training with an ``rng`` (and 0 < p < 1) the mask is ``seeded_keep_mask(s, x.shape, p)``
    for a seed ``s`` drawn from ``rng``, drawn chunk by chunk in threads together with the output
    and stored in the cache. Every other case (an explicit mask, evaluation, p of 0 or 1) has
    nothing to draw and is the readable function.
    """
    check_floating(x, "x")
    p, scaling = check_probability(p), check_scaling(scaling)
    if not (train and mask is None and rng is not None and 0.0 < p < 1.0):
        return readable.dropout_forward(x, p, train=train, rng=rng, mask=mask, scaling=scaling)
    train_scale, _ = output_scales(p, scaling)
    stored = np.empty(x.shape, dtype=bool)
    out = _masked(x, _seeded_chunks(draw_seed(rng), p), train_scale, stored)
    return out, DropoutCache(mask=stored, scale=train_scale)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """``dropout.dropout_backward``, chunked and threaded when the mask has dout's shape."""
    check_floating(dout, "dout")
    if cache.mask is None or cache.mask.shape != dout.shape:  # eval, broadcast mask, or an error
        return readable.dropout_backward(dout, cache)
    flat_mask = np.ascontiguousarray(cache.mask).reshape(-1)
    return _masked(dout, lambda start, stop: flat_mask[start:stop], cache.scale)


# --- seeded low-memory dropout ---------------------------------------------------------------


@dataclass(frozen=True)
class SeededDropoutCache:
    """What ``seeded_dropout_backward`` needs: no mask, only how to regenerate it."""

    seed: int | None
    shape: tuple[int, ...]
    p: float
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of array data the cache holds: always 0, the mask is regenerated."""
        return 0


def seeded_dropout_forward(
    x: np.ndarray, p: float, *, train: bool, seed: int, scaling: str = "inverted"
) -> tuple[np.ndarray, SeededDropoutCache]:
    """Low-memory dropout: the mask is ``seeded_keep_mask(seed, x.shape, p)``, never stored.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping a unit, in [0, 1].
        train: True for a training step, False for evaluation.
        seed: integer in [0, 2**63 - 1] that determines the mask.
        scaling: "inverted" or "classic", as in ``dropout_forward``.

    Returns:
        ``(out, cache)``; the cache holds no array. Pass it to ``seeded_dropout_backward``.
    """
    check_floating(x, "x")
    p, scaling, seed = check_probability(p), check_scaling(scaling), check_seed(seed)
    train_scale, eval_scale = output_scales(p, scaling)
    if not train:
        cache = SeededDropoutCache(seed=None, shape=tuple(x.shape), p=p, scale=eval_scale)
        return x * eval_scale, cache
    out = _masked(x, _seeded_chunks(seed, p), train_scale)
    return out, SeededDropoutCache(seed=seed, shape=tuple(x.shape), p=p, scale=train_scale)


def seeded_dropout_backward(dout: np.ndarray, cache: SeededDropoutCache) -> np.ndarray:
    """Gradient with respect to ``x``: regenerates the mask from ``cache.seed`` chunk by chunk."""
    check_dout(dout, cache.shape)
    if cache.seed is None:
        return dout * cache.scale
    return _masked(dout, _seeded_chunks(cache.seed, cache.p), cache.scale)
