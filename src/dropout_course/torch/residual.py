"""Drop-path and stochastic depth in torch: the twins of :mod:`dropout_course.residual`.

Chapter 7, book/07_modern_architectures.md. The same functions on tensors (masks drawn from
``generator`` and moved to the branch's device), and two layers on ``DropoutLayer`` whose
``forward`` goes through ``differentiable``, so autograd runs the library's backward:

* ``DropPath(p, generator, scaling="inverted")``: one draw per example (timm's ``DropPath``);
* ``StochasticDepth(survival, generator)``: one draw per mini-batch (Huang et al., 2016),
  ``survival * x`` in ``eval()`` mode.

Wrap a residual block as ``x + layer(branch(x))``.
"""

from __future__ import annotations

import torch

from .._validate import check_mask, check_probability, check_scaling, check_shape
from ..residual import (
    check_branch,
    check_survival,
    per_batch_shape,
    per_example_shape,
)
from .dropout import DropoutCache, DropoutLayer, differentiable, dropout_backward, dropout_forward
from .masks import keep_mask

# --- drop-path: one draw per example -----------------------------------------------------------


def drop_path_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """Drop-path mask (N, 1, ..., 1) on ``generator.device`` for a branch output (N, ...)."""
    shape = check_shape(shape)
    if len(shape) < 1:
        raise ValueError("shape must have rank >= 1 (N examples first), but got shape ()")
    return keep_mask(per_example_shape(shape), p, generator)


def drop_path(
    branch: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    scaling: str = "inverted",
) -> tuple[torch.Tensor, DropoutCache]:
    """Drop-path on the branch's device; the twin of ``dropout_course.residual.drop_path``.

    Args:
        branch: the branch's output, shape (N, ...), floating dtype.
        p: probability of dropping an example's branch, in [0, 1].
        train: True for a training step, False for evaluation.
        generator: torch Generator drawing the mask when ``mask`` is not given.
        mask: optional keep mask of shape (N, 1, ..., 1).
        scaling: "inverted" or "classic".

    Returns:
        ``(out, cache)`` as from ``dropout_forward``; pass ``cache`` to ``drop_path_backward``.
    """
    check_branch(branch)
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, per_example_shape(tuple(branch.shape)), meaning="one draw per example")
    elif train and generator is not None:
        mask = drop_path_mask(tuple(branch.shape), p, generator)
    return dropout_forward(branch, p, train=train, mask=mask, scaling=scaling)


def drop_path_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``branch``: ``dropout_backward`` with the per-example mask."""
    return dropout_backward(dout, cache)


# --- stochastic depth: one draw per mini-batch -------------------------------------------------


def stochastic_depth_mask(
    shape: tuple[int, ...], survival: float, generator: torch.Generator
) -> torch.Tensor:
    """Stochastic-depth mask (1, ..., 1) on ``generator.device``, True with prob. ``survival``."""
    return keep_mask(per_batch_shape(check_shape(shape)), 1.0 - check_survival(survival), generator)


def stochastic_depth(
    branch: torch.Tensor,
    survival: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DropoutCache]:
    """Stochastic depth on the branch's device; the twin of the numpy ``stochastic_depth``.

    Training returns ``b * branch`` for one draw ``b ~ Bernoulli(survival)``; evaluation returns
    ``survival * branch`` (dropout with ``p = 1 - survival``, classic scaling).

    Args:
        branch: the branch's output, shape (N, ...), floating dtype.
        survival: probability of keeping the branch (``1 - p``), in [0, 1].
        train: True for a training step, False for evaluation.
        generator: torch Generator drawing ``b`` when ``mask`` is not given.
        mask: optional keep mask of shape (1, ..., 1) (the rank of ``branch``).
    """
    check_branch(branch)
    survival = check_survival(survival)
    if mask is not None:
        shape = per_batch_shape(tuple(branch.shape))
        check_mask(mask, shape, meaning="one draw for the whole mini-batch")
    elif train and generator is not None:
        mask = stochastic_depth_mask(tuple(branch.shape), survival, generator)
    return dropout_forward(branch, 1.0 - survival, train=train, mask=mask, scaling="classic")


def stochastic_depth_backward(dout: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``branch``: ``dropout_backward`` with the one-entry mask."""
    return dropout_backward(dout, cache)


# --- layers ----------------------------------------------------------------------------------


class DropPath(DropoutLayer):
    """Drop-path layer: drops whole examples of a branch in ``train()``, identity in ``eval()``.

    Args:
        p: probability of dropping an example's branch, in [0, 1].
        generator: torch Generator on the input's device that draws the masks.
        scaling: "inverted" (default, like timm's ``DropPath``) or "classic".
    """

    repr_fields = ("p", "scaling")

    def __init__(self, p: float, generator: torch.Generator, scaling: str = "inverted"):
        super().__init__(p, generator)
        self.scaling = check_scaling(scaling)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        options = dict(p=self.p, train=train, generator=self.generator, scaling=self.scaling)
        return differentiable(drop_path, drop_path_backward, x, **options)


class StochasticDepth(DropoutLayer):
    """Stochastic-depth layer: keeps or drops the branch for the whole batch in ``train()``.

    ``eval()`` mode returns ``survival * x``. The base class holds ``p = 1 - survival``; the
    layer shows ``survival``, the number Huang et al. (2016) and ``linear_survival`` speak of.

    Args:
        survival: probability of keeping the branch, in [0, 1].
        generator: torch Generator on the input's device that draws the keep decisions.
    """

    repr_fields = ("survival",)

    def __init__(self, survival: float, generator: torch.Generator):
        survival = check_survival(survival)
        super().__init__(1.0 - survival, generator)
        self.survival = survival

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        options = dict(survival=self.survival, train=train, generator=self.generator)
        return differentiable(stochastic_depth, stochastic_depth_backward, x, **options)
