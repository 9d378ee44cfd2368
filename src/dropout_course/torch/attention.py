"""Attention with dropout in torch: the twins of :mod:`dropout_course.attention`, and a layer.

Chapter 7, book/07_modern_architectures.md. The same forward/backward pair on tensors (the mask of
the probabilities (N, Tq, Tk) drawn from ``generator``, on the input's device):

    out = dropout(softmax(q k^T / sqrt(d)), p) v

* ``attention``: the pair made differentiable through ``differentiable``, so autograd runs the
  library's backward (as ``dropout`` does);
* ``SelfAttention(d_model, p, generator, causal=False)``: one head with projections ``wq``,
  ``wk``, ``wv``, ``wo`` (``nn.Linear``) and dropout on the attention probabilities, as
  ``torch.nn.MultiheadAttention`` places it; it drops in ``train()`` mode and not in ``eval()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._validate import check_count, check_floating, check_mask, check_probability, check_rank
from ..attention import check_attention_inputs, probs_shape
from .dropout import DropoutCache, DropoutLayer, differentiable, dropout_backward, dropout_forward


@dataclass(frozen=True)
class AttentionCache:
    """What ``attention_backward`` needs: the inputs, the probabilities before and after dropout."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    probs: torch.Tensor
    dropped: torch.Tensor
    dropout: DropoutCache


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> tuple[torch.Tensor, AttentionCache]:
    """Attention with dropout on the probabilities, on q's device; the numpy function's twin.

    Args:
        q: queries, shape (N, Tq, d), floating dtype.
        k: keys, shape (N, Tk, d).
        v: values, shape (N, Tk, dv).
        p: probability of dropping an attention probability, in [0, 1].
        train: True for a training step (dropout), False for evaluation (no dropout).
        generator: torch Generator drawing the mask when ``mask`` is not given.
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
    scores = q @ k.transpose(-1, -2) * scale
    if causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, -math.inf)  # key j after query i
    exps = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # stable: the largest is exp(0)
    probs = exps / exps.sum(dim=-1, keepdim=True)
    dropped, dcache = dropout_forward(probs, p, train=train, generator=generator, mask=mask)
    out = dropped @ v
    return out, AttentionCache(q=q, k=k, v=v, probs=probs, dropped=dropped, dropout=dcache)


def attention_backward(
    dout: torch.Tensor, cache: AttentionCache
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` of the forward pass, given ``dout`` of shape (N, Tq, dv).

    The forward lines in reverse: ``out = dropped v``, dropout, the softmax
    (``dscores = probs * (dprobs - sum_j dprobs * probs)``), and ``scores = q k^T / sqrt(d)``.
    """
    check_floating(dout, "dout")
    q, k, v, probs, dropped = cache.q, cache.k, cache.v, cache.probs, cache.dropped
    expected = (*dropped.shape[:2], v.shape[-1])
    if tuple(dout.shape) != expected:
        raise ValueError(
            f"dout must have the output's shape {expected}, but got {tuple(dout.shape)}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = dropped.transpose(-1, -2) @ dout
    ddropped = dout @ v.transpose(-1, -2)
    dprobs = dropout_backward(ddropped, cache.dropout)
    dscores = probs * (dprobs - (dprobs * probs).sum(dim=-1, keepdim=True))
    dq = dscores @ k * scale
    dk = dscores.transpose(-1, -2) @ q * scale
    return dq, dk, dv


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """Differentiable attention (``attention_forward``'s arguments); returns only the output."""
    return differentiable(
        attention_forward,
        attention_backward,
        q,
        k,
        v,
        p=p,
        train=train,
        generator=generator,
        mask=mask,
        causal=causal,
    )


# --- layer -----------------------------------------------------------------------------------


class SelfAttention(DropoutLayer):
    """Single-head self-attention with dropout on the attention probabilities.

    For ``x`` of shape (N, T, d_model): ``wo(attention(wq(x), wk(x), wv(x), p))``. In ``train()``
    mode the probabilities are dropped with a fresh mask from ``generator`` (inverted scaling); in
    ``eval()`` mode nothing is dropped. The projections are ``nn.Linear(d_model, d_model)``,
    initialised like ``nn.Linear`` (uniform in ``[-1/sqrt(d_model), 1/sqrt(d_model)]``) but from
    ``generator``, on its device, so the whole layer is reproducible from the generator.

    Args:
        d_model: features per position, >= 1.
        p: probability of dropping an attention probability, in [0, 1].
        generator: torch Generator on the input's device for the weights and the masks.
        causal: if True, position ``i`` attends only to positions ``j <= i``.
    """

    repr_fields = ("d_model", "p", "causal")

    def __init__(self, d_model: int, p: float, generator: torch.Generator, causal: bool = False):
        super().__init__(p, generator)
        self.d_model = check_count(d_model, "d_model", 1)
        self.causal = bool(causal)
        self.wq, self.wk, self.wv, self.wo = (self._linear() for _ in range(4))

    def _linear(self) -> nn.Linear:
        """``nn.Linear(d_model, d_model)`` with nn.Linear's bounds, drawn from the generator."""
        linear = nn.utils.skip_init(
            nn.Linear, self.d_model, self.d_model, device=self.generator.device
        )
        bound = 1.0 / math.sqrt(self.d_model)
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=self.generator)
            linear.bias.uniform_(-bound, bound, generator=self.generator)
        return linear

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        check_rank(x, "x", (3,), "N sequences, T positions, d_model features")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must have d_model={self.d_model} features, but got {x.shape[-1]}")
        q, k, v = self.wq(x), self.wk(x), self.wv(x)
        options = dict(p=self.p, train=train, generator=self.generator, causal=self.causal)
        return self.wo(attention(q, k, v, **options))
