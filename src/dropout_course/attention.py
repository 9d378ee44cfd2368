"""Scaled dot-product attention with dropout on the attention probabilities, in numpy.

Chapter 7, book/07_modern_architectures.md. For queries ``q`` (N, Tq, d), keys ``k`` (N, Tk, d) and
values ``v`` (N, Tk, dv), attention with dropout (where ``torch.nn.MultiheadAttention`` and
``TransformerEncoderLayer`` put it) is

    scores  = q k^T / sqrt(d)                    (N, Tq, Tk); -inf where j > i if causal
    probs   = softmax(scores)                    over the keys: each row sums to 1
    dropped = dropout(probs, p)                  probs * m / (1 - p) in training
    out     = dropped v                          (N, Tq, dv)

Dropout removes whole query-key links: a dropped entry means query ``i`` ignores key ``j`` in this
step. The rows of ``dropped`` no longer sum to 1, but inverted scaling makes ``E[dropped] = probs``
and so, ``out`` being linear in ``dropped``, ``E[out]`` is the evaluation output. The forward
pass is a call to ``dropout_forward`` with a mask of the probabilities' shape (N, Tq, Tk);
the backward pass runs the four lines back, through ``dropout_backward`` and the softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import check_floating, check_mask, check_probability, check_rank
from .dropout import DropoutCache, dropout_backward, dropout_forward


@dataclass(frozen=True)
class AttentionCache:
    """What ``attention_backward`` needs: the inputs, the probabilities before and after dropout."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    probs: np.ndarray
    dropped: np.ndarray
    dropout: DropoutCache


def check_attention_inputs(q: Any, k: Any, v: Any, causal: bool) -> None:
    """Raise unless q (N, Tq, d), k (N, Tk, d) and v (N, Tk, dv) fit together (numpy or torch).

    With ``causal=True`` query ``i`` attends to keys ``j <= i``, which needs ``Tq == Tk``.
    """
    check_floating(q, "q")
    check_floating(k, "k")
    check_floating(v, "v")
    check_rank(q, "q", (3,), "N sequences, Tq queries, d features")
    check_rank(k, "k", (3,), "N sequences, Tk keys, d features")
    check_rank(v, "v", (3,), "N sequences, Tk values, dv features")
    (n_q, t_q, d_q), (n_k, t_k, d_k), (n_v, t_v, _) = q.shape, k.shape, v.shape
    if not n_q == n_k == n_v:
        raise ValueError(
            f"q, k and v must have the same batch size N (axis 0), but got {n_q}, {n_k} and {n_v}"
        )
    if d_q != d_k:
        raise ValueError(
            f"q and k must have the same feature size d (axis 2), but got {d_q} and {d_k}"
        )
    if t_k != t_v:
        raise ValueError(f"k and v must have the same length Tk (axis 1), but got {t_k} and {t_v}")
    if causal and t_q != t_k:
        raise ValueError(
            f"causal=True needs as many queries as keys (Tq == Tk), but got Tq={t_q}, Tk={t_k}"
        )


def probs_shape(q: Any, k: Any) -> tuple[int, int, int]:
    """(N, Tq, Tk): the shape of the attention probabilities, and of a dropout mask on them."""
    return (q.shape[0], q.shape[1], k.shape[1])


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    p: float,
    *,
    train: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    causal: bool = False,
) -> tuple[np.ndarray, AttentionCache]:
    """Scaled dot-product attention with inverted dropout on the attention probabilities.

    Args:
        q: queries, shape (N, Tq, d), floating dtype.
        k: keys, shape (N, Tk, d).
        v: values, shape (N, Tk, dv).
        p: probability of dropping an attention probability, in [0, 1].
        train: True for a training step (dropout), False for evaluation (no dropout).
        rng: numpy Generator drawing the mask in training; ignored when ``mask`` is given.
        mask: optional keep mask (bool or 0/1) of the probabilities' shape (N, Tq, Tk).
        causal: if True, query ``i`` attends only to keys ``j <= i`` (needs Tq == Tk).

    Returns:
        ``(out, cache)``: ``out`` of shape (N, Tq, dv); pass ``cache`` to ``attention_backward``.
    """
    p = check_probability(p)
    check_attention_inputs(q, k, v, causal)
    if mask is not None:
        check_mask(mask, probs_shape(q, k))
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.swapaxes(-1, -2) * scale
    if causal:
        future = np.triu(np.ones(scores.shape[-2:], dtype=bool), k=1)  # key j after query i
        scores = np.where(future, -np.inf, scores)
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))  # stable: the largest is exp(0)
    probs = exps / exps.sum(axis=-1, keepdims=True)
    dropped, dcache = dropout_forward(probs, p, train=train, rng=rng, mask=mask)
    out = dropped @ v
    return out, AttentionCache(q=q, k=k, v=v, probs=probs, dropped=dropped, dropout=dcache)


def attention_backward(
    dout: np.ndarray, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dq, dk, dv)`` of the forward pass, given ``dout`` of shape (N, Tq, dv).

    The forward lines in reverse: ``out = dropped v``, dropout, the softmax
    (``dscores = probs * (dprobs - sum_j dprobs * probs)``), and ``scores = q k^T / sqrt(d)``.
    Masked (causal) entries have ``probs = 0`` and so get no gradient.
    """
    check_floating(dout, "dout")
    q, k, v, probs, dropped = cache.q, cache.k, cache.v, cache.probs, cache.dropped
    expected = (*dropped.shape[:2], v.shape[-1])
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout must have the output's shape {expected}, but got {dout.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = dropped.swapaxes(-1, -2) @ dout
    ddropped = dout @ v.swapaxes(-1, -2)
    dprobs = dropout_backward(ddropped, cache.dropout)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))
    dq = dscores @ k * scale
    dk = dscores.swapaxes(-1, -2) @ q * scale
    return dq, dk, dv
