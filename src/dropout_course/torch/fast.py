"""How a framework makes dropout fast, in torch: the twin of :mod:`dropout_course.fast`.

Chapter 2, section "How a framework makes it fast" (book/02_inverted_scaling.md). Torch kernels
are already vectorised, and multithreaded on the CPU, so two tricks remain; given the same mask,
both give the readable :mod:`dropout_course.torch.dropout` results bit for bit.

1. **No temporaries.** ``x * mask * scale`` allocates ``x * mask`` and then the output; here the
   scale is applied in place, so the pass allocates only the output.
2. **Seeded low-memory dropout.** ``seeded_dropout_forward`` keeps ``(seed, shape, p)`` instead of
   the mask (0 mask bytes). The mask is ``keep_mask`` drawn from a fresh
   ``torch.Generator(device=x.device).manual_seed(seed)``, so ``seeded_dropout_backward``
   regenerates it on x's device at the cost of one draw, as fast as the stored-mask path draws.
   CPU and CUDA generators differ (Mersenne Twister, Philox): a seed gives one mask per device
   type, and numpy's seeded masks are another stream again.
"""

from __future__ import annotations

import torch

from .._validate import (
    MAX_SEED,
    broadcasts_within_rank,
    check_dout,
    check_floating,
    check_probability,
    check_scaling,
    check_seed,
)
from ..dropout import output_scales
from ..fast import SeededDropoutCache
from . import dropout as readable
from .dropout import Dropout, DropoutCache, differentiable, training_mask
from .masks import check_generator, keep_mask


def _masked(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """``x * mask * scale`` with the scale applied in place (the same operations, one tensor)."""
    return torch.mul(x, mask).mul_(scale)


def dropout_forward(
    x: torch.Tensor,
    p: float,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    scaling: str = "inverted",
) -> tuple[torch.Tensor, DropoutCache]:
    """``dropout.dropout_forward`` without a temporary: same arguments, same mask, same result."""
    check_floating(x, "x")
    train_scale, _ = output_scales(p, scaling)
    if not train:
        return readable.dropout_forward(x, p, train=False, scaling=scaling)
    mask = training_mask(x, p, generator, mask)
    return _masked(x, mask, train_scale), DropoutCache(mask=mask, scale=train_scale)


def dropout_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """``dropout.dropout_backward`` without a temporary."""
    check_floating(dout, "dout")
    if cache.mask is None or not broadcasts_within_rank(tuple(cache.mask.shape), tuple(dout.shape)):
        return readable.dropout_backward(dout, cache)  # evaluation, or the error to report
    return _masked(dout, cache.mask, cache.scale)


# --- seeded low-memory dropout ---------------------------------------------------------------


def draw_seed(generator: torch.Generator) -> int:
    """Draw a seed in [0, 2**63 - 1] from ``generator`` (advancing it), for the seeded masks."""
    generator = check_generator(generator)
    return int(torch.randint(0, MAX_SEED, (1,), generator=generator, device=generator.device))


def seeded_keep_mask(
    seed: int, shape: int | tuple[int, ...], p: float, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Bool keep mask of ``shape`` on ``device``, a pure function of ``(seed, device type)``.

    It is ``keep_mask(shape, p, torch.Generator(device=device).manual_seed(seed))``.

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed gives the same mask on a device type.
        shape: shape of the mask (units).
        p: probability of dropping a unit, in [0, 1].
        device: where to draw the mask.
    """
    generator = torch.Generator(device=device).manual_seed(check_seed(seed))
    return keep_mask(shape, p, generator)


def seeded_dropout_forward(
    x: torch.Tensor, p: float, *, train: bool, seed: int, scaling: str = "inverted"
) -> tuple[torch.Tensor, SeededDropoutCache]:
    """Low-memory dropout, the twin of ``dropout_course.fast.seeded_dropout_forward``.

    The mask is ``seeded_keep_mask(seed, x.shape, p, device=x.device)``; the cache holds no tensor.
    """
    check_floating(x, "x")
    p, scaling, seed = check_probability(p), check_scaling(scaling), check_seed(seed)
    train_scale, eval_scale = output_scales(p, scaling)
    shape = tuple(x.shape)
    if not train:
        return x * eval_scale, SeededDropoutCache(seed=None, shape=shape, p=p, scale=eval_scale)
    out = _masked(x, seeded_keep_mask(seed, shape, p, device=x.device), train_scale)
    return out, SeededDropoutCache(seed=seed, shape=shape, p=p, scale=train_scale)


def seeded_dropout_backward(dout: torch.Tensor, cache: SeededDropoutCache) -> torch.Tensor:
    """Gradient with respect to ``x``: regenerates the mask from ``cache.seed`` on dout's device."""
    check_dout(dout, cache.shape)
    if cache.seed is None:
        return dout * cache.scale
    mask = seeded_keep_mask(cache.seed, cache.shape, cache.p, device=dout.device)
    return _masked(dout, mask, cache.scale)


def seeded_dropout(
    x: torch.Tensor, p: float, *, seed: int, train: bool = True, scaling: str = "inverted"
) -> torch.Tensor:
    """Differentiable low-memory dropout: backward regenerates the mask from ``seed``."""
    return differentiable(
        seeded_dropout_forward,
        seeded_dropout_backward,
        x,
        p=p,
        train=train,
        seed=seed,
        scaling=scaling,
    )


class SeededDropout(Dropout):
    """Low-memory ``Dropout`` layer: each training call draws a seed and stores no mask."""

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        seed = draw_seed(self.generator) if train else 0
        return seeded_dropout(x, self.p, seed=seed, train=train, scaling=self.scaling)
