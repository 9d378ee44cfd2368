"""DropConnect (Wan et al., 2013) on a fully connected layer, in numpy (CS231n style).

DropConnect drops *weights* instead of units: each example n gets its own keep mask ``K[n]`` of
W's shape (D, M), kept with probability ``1 - p``, and in training (inverted scaling, as in
:mod:`dropout_course.dropout`)::

    out[n] = x[n] @ (W * K[n] / (1 - p)) + b        evaluation: out = x @ W + b

Chapter 4, book/04_dropconnect.md. The bias is never dropped. Because every example has its own
(D, M) mask, the masks cost O(N * D * M) memory (one byte per weight and example for a bool
mask), which the forward pass stores for the backward pass; the per-example products
``einsum("nd,ndm->nm", x, W * mask)`` hold one float per weight and example while they run.
Dropout on the inputs is the special case of a mask tied over the outputs,
``K[n, d, m] = k[n, d]`` for every m.

Inference: ``dropconnect_forward(train=False)`` (and ``weight_scaling_predict``) use the mean
weights, the weight-scaling rule. Wan et al. instead match moments: each pre-activation is
approximated by a Gaussian with the training-time mean and variance (``dropconnect_moments``),
sampled, passed through the activation and averaged (``moment_matching_predict``). Both rules
approximate the average over real weight masks, which ``mc_dropconnect_predict`` estimates by
sampling training-mode passes.

Naming trap: some codebases (e.g. EfficientNet implementations) call stochastic depth, which
drops whole residual branches per example, "drop_connect"; it is not DropConnect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import (
    check_callable,
    check_count,
    check_floating,
    check_mask,
    check_probability,
    check_rank,
    check_rng,
)
from .dropout import output_scales
from .masks import keep_mask


@dataclass(frozen=True)
class DropConnectCache:
    """What ``dropconnect_backward`` needs.

    Attributes:
        x: the forward input (N, D); W: the weights (D, M) (references, not copies).
        mask: the keep mask (N, D, M), or one that broadcasts to it; None when every weight was
            kept (evaluation, or p = 0) or the scale is 0 (p = 1).
        scale: factor applied to the kept weights: 1 / (1 - p) in training, 1 at evaluation,
            0 for p = 1.
    """

    x: np.ndarray
    W: np.ndarray
    mask: np.ndarray | None
    scale: float

    @property
    def nbytes(self) -> int:
        """Bytes of the stored mask (x and W belong to the caller)."""
        return 0 if self.mask is None else int(self.mask.nbytes)


def check_layer(x: Any, W: Any, b: Any) -> tuple[int, int, int]:
    """Check a fully connected layer's arrays (numpy or torch); return ``(N, D, M)``.

    x (N, D), W (D, M) and b (M,) must be floating, of one dtype, and fit together.
    """
    for array, name in ((x, "x"), (W, "W"), (b, "b")):
        check_floating(array, name)
    check_rank(x, "x", (2,), "N examples, D inputs")
    check_rank(W, "W", (2,), "D inputs, M outputs")
    check_rank(b, "b", (1,), "M outputs")
    (n, d), (d_w, m) = tuple(x.shape), tuple(W.shape)
    if d != d_w:
        raise ValueError(
            f"x (N, D) and W (D, M) must agree on D, but got shapes {(n, d)} and {(d_w, m)}"
        )
    if tuple(b.shape) != (m,):
        raise ValueError(
            f"b must have shape (M,) = ({m},) for W of shape {(d_w, m)}, "
            f"but got shape {tuple(b.shape)}"
        )
    if W.dtype != x.dtype or b.dtype != x.dtype:
        raise TypeError(
            f"W and b must have x's dtype {x.dtype}, but got W {W.dtype} and b {b.dtype}"
        )
    return n, d, m


def check_activation(activation: Any, name: str = "activation") -> Callable:
    """Return ``activation`` after checking it is callable (``name`` is used in the message)."""
    return check_callable(activation, name, "e.g. a ReLU")


def check_dout(dout: Any, shape: tuple[int, int]) -> None:
    """Raise unless ``dout`` is floating with the forward output's shape (N, M)."""
    check_floating(dout, "dout")
    if tuple(dout.shape) != shape:
        raise ValueError(
            f"dout must have the forward output's shape (N, M) = {shape}, "
            f"but got shape {tuple(dout.shape)}"
        )


def dropconnect_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DropConnectCache]:
    """DropConnect forward pass of a fully connected layer: ``x[n] @ (W * K[n]) / (1 - p) + b``.

    Args:
        x: inputs (N, D), floating. W: weights (D, M), b: bias (M,), both of x's dtype.
        p: probability of dropping a weight, in [0, 1].
        train: True for a training step (one mask per example), False for evaluation
            (``x @ W + b``).
        rng: numpy Generator drawing the masks, ``keep_mask((N, D, M), p, rng)``; ignored when
            ``mask`` is given; not needed for p = 0 or p = 1.
        mask: optional keep mask (bool or 0/1) of shape (N, D, M), or of rank 3 with size-1
            axes that broadcast: (1, D, M) shares one mask over the batch, (N, D, 1) is dropout
            on the inputs.

    Returns:
        ``(out, cache)``: ``out`` (N, M) in x's dtype; pass ``cache`` to
        ``dropconnect_backward``. The cache holds the mask: N * D * M bytes for a bool mask.
    """
    n, d, m = check_layer(x, W, b)
    p = check_probability(p)
    train_scale, _ = output_scales(p, "inverted")
    if not train:  # the mean weights: every weight kept, unscaled
        return x @ W + b, DropConnectCache(x, W, None, 1.0)
    if mask is not None:
        check_mask(mask, (n, d, m), broadcast=True)
    elif p in (0.0, 1.0):  # nothing random: all weights kept, scaled by 1 (p = 0) or 0 (p = 1)
        return x @ W * train_scale + b, DropConnectCache(x, W, None, train_scale)
    elif rng is None:
        raise ValueError("dropconnect_forward needs rng (or an explicit mask) when train=True")
    else:
        mask = keep_mask((n, d, m), p, rng)
    mask = np.asarray(mask, dtype=bool)  # a 0/1 mask of ints or floats becomes bool
    out = np.einsum("nd,ndm->nm", x, W * mask) * train_scale + b
    return out, DropConnectCache(x, W, mask, train_scale)


def dropconnect_backward(
    dout: np.ndarray, cache: DropConnectCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dW, db)`` (shapes (N, D), (D, M), (M,)) given ``dout`` (N, M).

    ``dx[n] = dout[n] @ (W * K[n]).T * scale`` and ``dW = sum_n outer(x[n], dout[n]) * K[n] *
    scale``; without a mask (evaluation, p of 0 or 1) the plain layer's ``dout @ W.T`` and
    ``x.T @ dout``, times the scale.
    """
    x, W, mask, scale = cache.x, cache.W, cache.mask, cache.scale
    check_dout(dout, (len(x), W.shape[1]))
    db = dout.sum(axis=0)
    if mask is None:
        return dout @ W.T * scale, x.T @ dout * scale, db
    dx = np.einsum("nm,ndm->nd", dout, W * mask) * scale
    dW = np.einsum("nd,nm,ndm->dm", x, dout, mask) * scale
    return dx, dW, db


def dropconnect_moments(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance (each (N, M)) of the training-time pre-activations.

    For ``u[n, m] = sum_d x[n, d] W[d, m] K[n, d, m] / (1 - p) + b[m]`` with independent
    ``K ~ Bernoulli(1 - p)`` (what ``dropconnect_forward`` computes):

        mean = x @ W + b,        var = p / (1 - p) * (x**2) @ (W**2).

    At p = 1 the forward pass gives ``u = b`` exactly, so this returns ``(b, 0)`` broadcast.

    Wan et al. (2013) write the keep probability as p (ours: 1 - p), leave the training output
    unscaled, and fold the bias into W (so it is dropped too). Their Gaussian is
    ``N(q W v, q (1 - q) (W*W)(v*v))`` with q = 1 - p; dividing u by q turns it into the
    inverted form above (mean times 1/q, variance times 1/q**2).
    """
    n, _, m = check_layer(x, W, b)
    p = check_probability(p)
    if p == 1.0:  # every weight dropped
        return np.tile(b, (n, 1)), np.zeros((n, m), x.dtype)
    return x @ W + b, p / (1.0 - p) * (x**2 @ W**2)


def moment_matching_predict(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    p: float,
    activation: Callable[[np.ndarray], np.ndarray],
    *,
    rng: np.random.Generator,
    samples: int,
) -> np.ndarray:
    """Wan et al.'s DropConnect inference: average the activation over Gaussian pre-activations.

    Each pre-activation u[n, m] is replaced by ``samples`` independent draws
    ``mean + sqrt(var) * eps``, eps standard normal, with the moments of
    ``dropconnect_moments``; returns ``mean_s activation(u_s)``, shape (N, M), in x's dtype. The
    draws come from ``rng`` all at once: samples * N * M numbers in x's dtype.

    Args:
        activation: elementwise function of an array, e.g. ``lambda u: np.maximum(u, 0)``.
        samples: number of Gaussian draws per pre-activation, >= 1.
    """
    samples = check_count(samples, "samples", 1)
    check_activation(activation)
    mean, var = dropconnect_moments(x, W, b, p)
    draws = check_rng(rng).standard_normal((samples, *mean.shape), dtype=mean.dtype)
    return activation(mean + np.sqrt(var) * draws).mean(axis=0)


def weight_scaling_predict(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, activation: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``activation(x @ W + b)`` (N, M): the eval-mode forward pass (mean weights), for
    comparison with ``moment_matching_predict``."""
    check_layer(x, W, b)
    return check_activation(activation)(x @ W + b)


def mc_dropconnect_predict(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    p: float,
    readout: Callable[[np.ndarray], np.ndarray],
    *,
    rng: np.random.Generator,
    samples: int,
) -> np.ndarray:
    """Monte-Carlo DropConnect: the average of ``readout(u)`` over ``samples`` training passes.

    Each pass draws fresh per-example masks, as ``dropconnect_forward(train=True)`` does, and
    gives pre-activations u (N, M). This is the reference that weight scaling and moment matching
    approximate: with an activation as ``readout`` it estimates E[a(u)] (N, M); with the rest of
    the network (activation, head, softmax) it estimates the mixture's prediction (N, K). One
    pass at a time: the memory is that of one training pass, whatever ``samples``.

    Args:
        readout: maps pre-activations (N, M) to an array with one row per example, (N, ...).
        rng: numpy Generator drawing the masks; not needed for p = 0 or p = 1.
        samples: number of passes, >= 1.

    Returns:
        ``mean_s readout(u_s)``, shape (N, ...), accumulated in float64, returned in x's dtype.
    """
    check_layer(x, W, b)
    samples = check_count(samples, "samples", 1)
    check_activation(readout, "readout")
    total = 0.0
    for _ in range(samples):
        u, _ = dropconnect_forward(x, W, b, p, train=True, rng=rng)
        values = np.asarray(readout(u))
        if values.ndim == 0 or len(values) != len(x):
            raise ValueError(
                f"readout must return one row per row of its input ({len(x)}), "
                f"but returned shape {values.shape}"
            )
        total = total + values.astype(np.float64)
    return (total / samples).astype(x.dtype, copy=False)
