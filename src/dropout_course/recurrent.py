"""Dropout in a recurrent network: a reference LSTM in numpy with masks at three places.

Chapter 8, book/08_recurrent.md. Sequences are batch first, ``x`` of shape (N, T, D):
N sequences of T steps of D features, as in :func:`dropout_course.masks.locked_mask` and
``torch.nn.LSTM(batch_first=True)``. The hidden size is H. The weights have ``torch.nn.LSTM``'s
layout and gate order (i, f, g, o), so its weights load directly: ``W_ih`` (4H, D) is
``weight_ih_l0``, ``W_hh`` (4H, H) is ``weight_hh_l0``, and the one bias ``b`` (4H,) is
``bias_ih_l0 + bias_hh_l0``. One step, with ``sigma`` the logistic function::

    i, f, g, o = sigma(a_i), sigma(a_f), tanh(a_g), sigma(a_o)   where a = x_t W_ih^T + h W_hh^T + b
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Dropout (p is the probability of *dropping*, inverted scaling ``m / (1 - p)``) can act at three
places, each optional:

* on the inputs ``x_t`` (``p_input``, a mask over D);
* on the recurrent state ``h_{t-1}`` where it feeds the gates (``p_recurrent``, a mask over H);
  the state itself is carried on undropped;
* on the outputs ``h_t`` (``p_output``, a mask over H).

A mask is either *locked* (Gal and Ghahramani, 2016, "variational" dropout: one mask per
sequence, shared over all time steps, shape (N, 1, F)) or *per step* (a fresh mask at every step,
shape (N, T, F)); ``sequence_mask`` draws either. Zaremba et al. (2014) drop only the
non-recurrent connections (inputs and outputs, per step, no recurrent mask); Gal and Ghahramani
use locked masks at all three places. A fresh recurrent mask at every step is the naive version
that hurts memory over long spans.

``weight_drop`` is AWD-LSTM's WeightDrop (Merity et al., 2018): DropConnect (chapter 4) on the
hidden-to-hidden matrix ``W_hh``, one mask per forward pass, shared by every example and step.

``lstm_forward`` / ``lstm_backward`` are a CS231n-style pair; the backward pass is
backpropagation through time (BPTT), step by step in reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from ._validate import (
    check_floating,
    check_in_interval,
    check_mask,
    check_rank,
    check_shape,
)
from .dropout import DropoutCache, dropout_backward, dropout_forward
from .masks import keep_mask, locked_mask

# --- argument checks (shared with the torch twin) ----------------------------------------------


def check_rate(p: Any, name: str) -> float:
    """Return the dropout rate ``p`` as a float, checked in [0, 1) (``name`` in the message).

    A rate of 1 would cut the connection for good (every input, state or weight dropped), so
    the recurrent functions reject it.
    """
    return check_in_interval(p, name, 0.0, 1.0, include_high=False)


def check_rates(p_input: Any, p_recurrent: Any, p_output: Any) -> tuple[float, float, float]:
    """The three dropout rates of an LSTM as floats, each checked in [0, 1)."""
    return (
        check_rate(p_input, "p_input"),
        check_rate(p_recurrent, "p_recurrent"),
        check_rate(p_output, "p_output"),
    )


def check_lstm(x: Any, W_ih: Any, W_hh: Any, b: Any) -> tuple[int, int, int, int]:
    """Check an LSTM's input and weights (numpy or torch); return ``(N, T, D, H)``.

    x (N, T, D), W_ih (4H, D), W_hh (4H, H) and b (4H,) must be floating and of one dtype.
    """
    for array, name in ((x, "x"), (W_ih, "W_ih"), (W_hh, "W_hh"), (b, "b")):
        check_floating(array, name)
    check_rank(x, "x", (3,), "N sequences, T steps, D features")
    check_rank(W_hh, "W_hh", (2,), "4H gate rows, H hidden units")
    (n, t, d), (rows, h) = tuple(x.shape), tuple(W_hh.shape)
    if t < 1:
        raise ValueError(f"x must have at least one step (T >= 1), but got shape {(n, t, d)}")
    if rows != 4 * h:
        raise ValueError(f"W_hh must have shape (4H, H) = {(4 * h, h)}, but got {(rows, h)}")
    for array, name, shape in ((W_ih, "W_ih", (4 * h, d)), (b, "b", (4 * h,))):
        if tuple(array.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} for x with D={d} features and W_hh with "
                f"H={h} hidden units, but got shape {tuple(array.shape)}"
            )
    if not W_ih.dtype == W_hh.dtype == b.dtype == x.dtype:
        raise TypeError(
            f"W_ih, W_hh and b must have x's dtype {x.dtype}, "
            f"but got {W_ih.dtype}, {W_hh.dtype} and {b.dtype}"
        )
    return n, t, d, h


def check_state(state: Any, name: str, shape: tuple[int, int], dtype: Any) -> None:
    """Raise unless an initial state (``h0`` or ``c0``) has ``shape`` (N, H) and ``dtype``."""
    check_floating(state, name)
    if tuple(state.shape) != shape:
        raise ValueError(f"{name} must have shape (N, H) = {shape}, but got {tuple(state.shape)}")
    if state.dtype != dtype:
        raise TypeError(f"{name} must have x's dtype {dtype}, but got {state.dtype}")


def check_sequence_mask(mask: Any, shape: tuple[int, int, int], name: str) -> None:
    """Raise unless ``mask`` is a 0/1 mask for sequences of ``shape`` (N, T, F).

    Allowed: (N, T, F), a mask per step, or (N, 1, F), a locked mask.
    """
    locked = (shape[0], 1, shape[2])
    if hasattr(mask, "shape") and tuple(mask.shape) == locked:
        shape = locked
    check_mask(mask, shape, name, meaning=f"one per step, or {locked} locked: one per sequence")


def at_step(mask: Any, t: int) -> Any:
    """The (N, F) slice of a sequence mask used at step ``t`` (a locked mask has one for all)."""
    return None if mask is None else mask[:, min(t, mask.shape[1] - 1)]


# --- masks ------------------------------------------------------------------------------------


def sequence_mask(
    shape: tuple[int, int, int], p: float, rng: np.random.Generator, *, locked: bool = True
) -> np.ndarray:
    """Keep mask for sequences of ``shape`` (N, T, F), True with probability ``1 - p``.

    ``locked=True`` (Gal and Ghahramani): shape (N, 1, F), one draw per sequence and feature,
    the same at every step. ``locked=False``: shape (N, T, F), a fresh draw at every step.
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, F features")
    p = check_rate(p, "p")
    return locked_mask(shape, p, rng) if locked else keep_mask(shape, p, rng)


def place_mask(
    mask: Any,
    shape: tuple[int, int, int],
    p: float,
    name: str,
    *,
    train: bool,
    draw: Callable[[tuple[int, int, int], float], Any] | None,
    source: str,
) -> Any:
    """The keep mask at one place of a forward pass (``name`` is e.g. "input_mask").

    ``mask`` when given (checked for sequences of ``shape`` (N, T, F)); None when nothing is
    dropped (evaluation, or ``p = 0``); else ``draw(shape, p)``, a fresh mask. ``source`` names
    the randomness ("rng", "generator") for the error raised when ``draw`` is None. Shared by
    the numpy and torch forward passes.
    """
    if mask is not None:
        check_sequence_mask(mask, shape, name)
        return mask
    if not train or p == 0.0:
        return None
    if draw is None:
        rate = "p_" + name.removesuffix("_mask")
        raise ValueError(f"lstm_forward needs {source} (or {name}) when train=True and {rate} > 0")
    return draw(shape, p)


def forward_masks(
    sizes: tuple[int, int, int, int],
    rates: tuple[float, float, float],
    masks: tuple[Any, Any, Any],
    *,
    train: bool,
    draw: Callable[[tuple[int, int, int], float], Any] | None,
    source: str,
) -> tuple[Any, Any, Any]:
    """The input, recurrent and output masks of a forward pass, each from ``place_mask``.

    ``sizes`` is ``(N, T, D, H)``, ``rates`` and ``masks`` list the three places in that order.
    """
    n, steps, d, h = sizes
    shapes = ((n, steps, d), (n, steps, h), (n, steps, h))
    names = ("input_mask", "recurrent_mask", "output_mask")
    places = zip(masks, shapes, rates, names, strict=True)
    input_mask, recurrent_mask, output_mask = (
        place_mask(mask, shape, p, name, train=train, draw=draw, source=source)
        for mask, shape, p, name in places
    )
    return input_mask, recurrent_mask, output_mask


# --- one step ---------------------------------------------------------------------------------


def sigmoid(a: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-a))``, without overflow for large ``|a|``."""
    return np.exp(-np.logaddexp(0.0, -a))


@dataclass(frozen=True)
class StepCache:
    """What ``lstm_step_backward`` needs: the step's inputs, gates and new cell state."""

    x: np.ndarray
    h_prev: np.ndarray
    c_prev: np.ndarray
    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c: np.ndarray
    W_ih: np.ndarray
    W_hh: np.ndarray


class LSTMGrads(NamedTuple):
    """Gradients of an LSTM step or sequence; ``dh``, ``dc``: of the previous / initial state."""

    dx: np.ndarray
    dh: np.ndarray
    dc: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db: np.ndarray


def lstm_step(
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, StepCache]:
    """One LSTM step, gate order (i, f, g, o) as in ``torch.nn.LSTM``.

    Args:
        x: inputs at this step (N, D). h_prev, c_prev: the previous state (N, H).
        W_ih: (4H, D), W_hh: (4H, H), b: (4H,), of x's dtype.

    Returns:
        ``(h, c, cache)``: the new state, each (N, H); pass ``cache`` to ``lstm_step_backward``.
    """
    a = x @ W_ih.T + h_prev @ W_hh.T + b
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, StepCache(x, h_prev, c_prev, i, f, g, o, c, W_ih, W_hh)


def lstm_step_backward(dh: np.ndarray, dc: np.ndarray, cache: StepCache) -> LSTMGrads:
    """Gradients of one step given ``dh`` and ``dc`` (each (N, H)), the new state's gradients.

    ``dc`` is the gradient reaching ``c`` from the next step; ``h = o tanh(c)`` adds its own.
    """
    i, f, g, o = cache.i, cache.f, cache.g, cache.o
    tanh_c = np.tanh(cache.c)
    do = dh * tanh_c
    dc = dc + dh * o * (1 - tanh_c**2)  # h = o tanh(c)
    di, df, dg = dc * g, dc * cache.c_prev, dc * i  # c = f c_prev + i g
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], 1)
    return LSTMGrads(
        dx=da @ cache.W_ih,
        dh=da @ cache.W_hh,
        dc=dc * f,
        dW_ih=da.T @ cache.x,
        dW_hh=da.T @ cache.h_prev,
        db=da.sum(axis=0),
    )


# --- a sequence, with dropout ------------------------------------------------------------------


@dataclass(frozen=True)
class LSTMCache:
    """What ``lstm_backward`` needs: the three dropout caches and one cache per step."""

    input: DropoutCache
    recurrent: list[DropoutCache]
    steps: list[StepCache]
    output: DropoutCache


def lstm_forward(
    x: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b: np.ndarray,
    *,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    p_input: float = 0.0,
    p_recurrent: float = 0.0,
    p_output: float = 0.0,
    train: bool = True,
    rng: np.random.Generator | None = None,
    locked: bool = True,
    input_mask: np.ndarray | None = None,
    recurrent_mask: np.ndarray | None = None,
    output_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], LSTMCache]:
    """An LSTM over a batch of sequences, with dropout on inputs, recurrent state and outputs.

    At each step t: ``x~_t = x_t m_x / (1 - p_input)``, ``h~ = h_{t-1} m_h / (1 - p_recurrent)``,
    ``h_t, c_t = lstm_step(x~_t, h~, c_{t-1})`` and ``out_t = h_t m_o / (1 - p_output)``.

    Args:
        x: inputs (N, T, D), floating. W_ih (4H, D), W_hh (4H, H), b (4H,): x's dtype.
        h0, c0: initial state (N, H) each; zeros when None.
        p_input, p_recurrent, p_output: dropout rates, each in [0, 1).
        train: True for a training step, False for evaluation (no dropout).
        rng: numpy Generator drawing the masks not given, for the places with a rate > 0.
        locked: draw locked masks (True, Gal and Ghahramani) or per-step masks (False).
        input_mask (N, 1, D) or (N, T, D), recurrent_mask and output_mask (N, 1, H) or
            (N, T, H): keep masks (bool or 0/1), locked or per step; used in training.

    Returns:
        ``(out, (h_T, c_T), cache)``: ``out`` (N, T, H) the dropped outputs, ``(h_T, c_T)`` the
        final state (undropped), ``cache`` for ``lstm_backward``.
    """
    n, steps, d, h = check_lstm(x, W_ih, W_hh, b)
    p_input, p_recurrent, p_output = check_rates(p_input, p_recurrent, p_output)
    h_prev = np.zeros((n, h), x.dtype) if h0 is None else h0
    c_prev = np.zeros((n, h), x.dtype) if c0 is None else c0
    check_state(h_prev, "h0", (n, h), x.dtype)
    check_state(c_prev, "c0", (n, h), x.dtype)
    draw = None if rng is None else partial(sequence_mask, rng=rng, locked=locked)
    input_mask, recurrent_mask, output_mask = forward_masks(
        (n, steps, d, h),
        (p_input, p_recurrent, p_output),
        (input_mask, recurrent_mask, output_mask),
        train=train,
        draw=draw,
        source="rng",
    )

    x, input_cache = dropout_forward(x, p_input, train=train, mask=input_mask)
    hs, recurrent_caches, step_caches = [], [], []
    for t in range(steps):
        mask_t = at_step(recurrent_mask, t)
        h_in, recurrent_cache = dropout_forward(h_prev, p_recurrent, train=train, mask=mask_t)
        h_prev, c_prev, step_cache = lstm_step(x[:, t], h_in, c_prev, W_ih, W_hh, b)
        hs.append(h_prev)
        recurrent_caches.append(recurrent_cache)
        step_caches.append(step_cache)
    out, output_cache = dropout_forward(
        np.stack(hs, axis=1), p_output, train=train, mask=output_mask
    )
    cache = LSTMCache(input_cache, recurrent_caches, step_caches, output_cache)
    return out, (h_prev, c_prev), cache


def lstm_backward(dout: np.ndarray, cache: LSTMCache) -> LSTMGrads:
    """Backpropagation through time: the gradients of ``lstm_forward``'s inputs given ``dout``.

    ``dout`` (N, T, H) is the gradient of the outputs ``out``. Going back from the last step, the
    gradient reaching ``h_t`` is its output's plus the one flowing back from step t + 1 (through
    the recurrent mask); ``c_t``'s flows back through the forget gate.

    Returns:
        ``LSTMGrads(dx (N, T, D), dh (N, H), dc (N, H), dW_ih, dW_hh, db)``: ``dh`` and ``dc``
        are the gradients of ``h0`` and ``c0``.
    """
    check_floating(dout, "dout")
    n, steps, h = len(cache.steps[0].h_prev), len(cache.steps), cache.steps[0].W_hh.shape[1]
    if tuple(dout.shape) != (n, steps, h):
        raise ValueError(
            f"dout must have the outputs' shape (N, T, H) = {(n, steps, h)}, "
            f"but got shape {tuple(dout.shape)}"
        )
    dh_out = dropout_backward(dout, cache.output)
    dh_next, dc_next = np.zeros((n, h), dout.dtype), np.zeros((n, h), dout.dtype)
    step_grads = []
    for t in reversed(range(steps)):
        grads = lstm_step_backward(dh_out[:, t] + dh_next, dc_next, cache.steps[t])
        dh_next = dropout_backward(grads.dh, cache.recurrent[t])
        dc_next = grads.dc
        step_grads.insert(0, grads)
    dx = dropout_backward(np.stack([g.dx for g in step_grads], axis=1), cache.input)
    return LSTMGrads(
        dx=dx,
        dh=dh_next,
        dc=dc_next,
        dW_ih=sum(g.dW_ih for g in step_grads),
        dW_hh=sum(g.dW_hh for g in step_grads),
        db=sum(g.db for g in step_grads),
    )


# --- weight drop ------------------------------------------------------------------------------


def weight_drop(
    W_hh: np.ndarray,
    p: float,
    *,
    train: bool = True,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DropoutCache]:
    """WeightDrop (Merity et al., 2018): DropConnect on the hidden-to-hidden weights.

    Training returns ``W_hh * M / (1 - p)`` for one keep mask ``M`` of W_hh's shape, drawn once
    per forward pass: every example and every step of the mini-batch uses the same dropped
    matrix (chapter 4's DropConnect with the mask shared over the batch). Evaluation returns
    ``W_hh``. Pass the result to ``lstm_forward`` as its ``W_hh``.

    Args:
        W_hh: hidden-to-hidden weights (4H, H) (any matrix works), floating.
        p: probability of dropping a weight, in [0, 1).
        train: True for a training step, False for evaluation.
        rng: numpy Generator drawing ``M`` when ``mask`` is not given.
        mask: optional keep mask of W_hh's shape (bool or 0/1).

    Returns:
        ``(W, cache)``: the dropped weights, and the cache for ``weight_drop_backward``.
    """
    check_floating(W_hh, "W_hh")
    check_rank(W_hh, "W_hh", (2,), "4H gate rows, H hidden units")
    p = check_rate(p, "p")
    if mask is not None:
        check_mask(mask, tuple(W_hh.shape), meaning="one entry per weight")
    elif train and p > 0 and rng is not None:
        mask = keep_mask(W_hh.shape, p, rng)
    return dropout_forward(W_hh, p, train=train, mask=mask)


def weight_drop_backward(dW: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """Gradient with respect to ``W_hh`` given ``dW``, the dropped weights' gradient.

    ``dW * M / (1 - p)``: only the kept weights learn from this mini-batch.
    """
    return dropout_backward(dW, cache)
