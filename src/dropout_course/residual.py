"""Dropping whole residual branches in numpy: drop-path and stochastic depth.

Chapter 7, book/07_modern_architectures.md. A residual block computes ``x + branch(x)``; these
functions drop the branch's output ``branch`` (shape (N, ...), examples first), so a dropped block
passes its input through unchanged. Both are dropout with a coarser mask, and are written as
exactly that: a call to ``dropout_forward`` with a mask of a special shape.

* drop-path (the name is from FractalNet, Larsson et al., 2017; the form below is the one timm
  and EfficientNet use): one keep draw per *example*, a mask of shape (N, 1, ..., 1), inverted
  scaling by default (train ``branch * m / (1 - p)``, evaluate ``branch``);
* stochastic depth (Huang et al., 2016): one keep draw for the *whole mini-batch*, a mask of shape
  (1, ..., 1), classic scaling (train ``b * branch``, evaluate ``survival * branch``).
  Huang et al. write ``p_l`` for the *survival* probability of block ``l``; in the course's terms
  that is ``1 - p``, so these functions take it as ``survival``.

``linear_survival`` gives Huang et al.'s linear decay of the survival probability with depth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_in_interval,
    check_mask,
    check_probability,
    check_shape,
)
from .dropout import DropoutCache, dropout_backward, dropout_forward
from .masks import keep_mask


def check_branch(branch: Any) -> None:
    """Raise unless ``branch`` is a floating array or tensor of rank >= 1 (examples first)."""
    check_floating(branch, "branch")
    if len(branch.shape) < 1:
        raise ValueError(
            "branch must have rank >= 1 (N examples first, then any axes), but got shape ()"
        )


def check_survival(survival: Any, name: str = "survival") -> float:
    """Return ``survival`` (the probability of keeping a branch, ``1 - p``), checked in [0, 1]."""
    return check_in_interval(survival, name, 0.0, 1.0)


def per_example_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(N, 1, ..., 1) for ``shape`` (N, ...): one entry per example, size 1 on the other axes."""
    return (shape[0],) + (1,) * (len(shape) - 1)


def per_batch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(1, ..., 1) of the rank of ``shape``: one entry for the whole mini-batch."""
    return (1,) * len(shape)


# --- drop-path: one draw per example -----------------------------------------------------------


def drop_path_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Drop-path mask for a branch output of ``shape`` (N, ...): one keep draw per example.

    Returns a bool mask of shape (N, 1, ..., 1), True with probability ``1 - p``, that broadcasts
    over every non-batch axis: an example's whole branch output is kept or dropped together.
    """
    shape = check_shape(shape)
    if len(shape) < 1:
        raise ValueError("shape must have rank >= 1 (N examples first), but got shape ()")
    return keep_mask(per_example_shape(shape), p, rng)


def drop_path(
    branch: np.ndarray,
    p: float,
    *,
    train: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
) -> tuple[np.ndarray, DropoutCache]:
    """Drop-path of a residual branch's output: dropout with one mask entry per example.

    Args:
        branch: the branch's output, shape (N, ...), floating dtype.
        p: probability of dropping an example's branch, in [0, 1].
        train: True for a training step, False for evaluation.
        rng: numpy Generator drawing the mask in training; ignored when ``mask`` is given.
        mask: optional keep mask of shape (N, 1, ..., 1) (bool or 0/1).
        scaling: "inverted" (default: train ``branch * m / (1 - p)``, evaluate ``branch``) or
            "classic" (train ``branch * m``, evaluate ``(1 - p) * branch``).

    Returns:
        ``(out, cache)`` as from ``dropout_forward``; pass ``cache`` to ``drop_path_backward``.
    """
    check_branch(branch)
    p = check_probability(p)
    if mask is not None:
        check_mask(mask, per_example_shape(branch.shape), meaning="one draw per example")
    elif train and rng is not None:
        mask = drop_path_mask(branch.shape, p, rng)
    return dropout_forward(branch, p, train=train, mask=mask, scaling=scaling)


def drop_path_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``branch``: ``dropout_backward`` with the per-example mask."""
    return dropout_backward(dout, cache)


# --- stochastic depth: one draw per mini-batch -------------------------------------------------


def stochastic_depth_mask(
    shape: tuple[int, ...], survival: float, rng: np.random.Generator
) -> np.ndarray:
    """Stochastic-depth mask for a branch output of ``shape``: one draw for the whole batch.

    Returns a bool mask of shape (1, ..., 1) (the rank of ``shape``), True with probability
    ``survival``.
    """
    return keep_mask(per_batch_shape(check_shape(shape)), 1.0 - check_survival(survival), rng)


def stochastic_depth(
    branch: np.ndarray,
    survival: float,
    *,
    train: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DropoutCache]:
    """Stochastic depth (Huang et al., 2016): keep or drop the branch for the whole mini-batch.

    Training returns ``b * branch`` for one draw ``b ~ Bernoulli(survival)``, with no rescaling;
    evaluation returns ``survival * branch``: dropout with ``p = 1 - survival``, classic scaling.

    Args:
        branch: the branch's output, shape (N, ...), floating dtype.
        survival: probability of keeping the branch (``1 - p``), in [0, 1].
        train: True for a training step, False for evaluation.
        rng: numpy Generator drawing ``b`` in training; ignored when ``mask`` is given.
        mask: optional keep mask of shape (1, ..., 1) (the rank of ``branch``).

    Returns:
        ``(out, cache)`` as from ``dropout_forward``; pass ``cache`` to
        ``stochastic_depth_backward``.
    """
    check_branch(branch)
    survival = check_survival(survival)
    if mask is not None:
        check_mask(mask, per_batch_shape(branch.shape), meaning="one draw for the whole mini-batch")
    elif train and rng is not None:
        mask = stochastic_depth_mask(branch.shape, survival, rng)
    return dropout_forward(branch, 1.0 - survival, train=train, mask=mask, scaling="classic")


def stochastic_depth_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``branch``: ``dropout_backward`` with the one-entry mask."""
    return dropout_backward(dout, cache)


def linear_survival(n_blocks: int, final_survival: float = 0.5) -> np.ndarray:
    """Huang et al.'s linear decay rule: survival ``1 - (l / L) (1 - final_survival)``, l = 1..L.

    The first block survives with probability near 1, the last with ``final_survival`` (0.5 in
    the paper). Returns a float64 array of ``n_blocks`` survival probabilities; the line is
    written as ``final_survival + (1 - l / L) (1 - final_survival)`` so that the last block gets
    ``final_survival`` exactly, with no rounding.
    """
    n_blocks = check_count(n_blocks, "n_blocks", 1)
    final_survival = check_survival(final_survival, "final_survival")
    blocks = np.arange(1, n_blocks + 1)
    return final_survival + (1.0 - blocks / n_blocks) * (1.0 - final_survival)
