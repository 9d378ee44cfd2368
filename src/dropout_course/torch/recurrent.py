"""Dropout in a recurrent network in torch: the twins of :mod:`dropout_course.recurrent`.

Chapter 8, book/08_recurrent.md. The same reference LSTM on tensors, batch first
(x of shape (N, T, D)), gate order (i, f, g, o) and ``torch.nn.LSTM``'s weight layout, with
dropout on the inputs, the recurrent state and the outputs (locked or per-step masks drawn from
``generator``, moved to the input's device). Autograd differentiates ``lstm_forward`` (there is no
hand-written BPTT here); the dropout steps go through the library's ``dropout``.

* ``sequence_mask``, ``lstm_step``, ``lstm_forward``, ``weight_drop``, ``weight_drop_backward``:
  the numpy functions' twins (``lstm_forward`` returns no cache);
* ``lstm_weights(lstm)``: ``(W_ih, W_hh, b)`` of a one-layer ``torch.nn.LSTM``;
* ``DropoutLSTM``: an LSTM layer with input, recurrent and output dropout (locked or per step)
  and weight drop, dropping in ``train()`` mode and not in ``eval()``, like ``nn.Dropout``.

Where the methods put their masks (``DropoutLSTM`` arguments):

* Zaremba et al. (2014): ``p_input`` and ``p_output``, ``locked=False``, no ``p_recurrent``;
* Gal and Ghahramani (2016), "variational" dropout: ``p_input``, ``p_recurrent``, ``p_output``,
  ``locked=True`` (not Kingma et al.'s Gaussian variational dropout);
* Keras's ``LSTM(dropout=a, recurrent_dropout=b)``: ``p_input=a``, ``p_recurrent=b``, locked;
* AWD-LSTM (Merity et al., 2018): ``p_weight`` on ``W_hh`` with locked ``p_input``/``p_output``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from .._validate import check_count, check_floating, check_mask, check_rank, check_shape
from ..recurrent import (
    at_step,
    check_lstm,
    check_rate,
    check_rates,
    check_state,
    forward_masks,
)
from .dropout import DropoutCache, differentiable, dropout, dropout_backward, dropout_forward
from .masks import check_generator, keep_mask, locked_mask

# --- masks ------------------------------------------------------------------------------------


def sequence_mask(
    shape: tuple[int, int, int], p: float, generator: torch.Generator, *, locked: bool = True
) -> torch.Tensor:
    """Keep mask on ``generator.device`` for sequences of ``shape`` (N, T, F).

    ``locked=True``: shape (N, 1, F), the same at every step; ``locked=False``: (N, T, F).
    """
    shape = check_shape(shape)
    check_rank(shape, "shape", (3,), "N sequences, T steps, F features")
    p = check_rate(p, "p")
    return locked_mask(shape, p, generator) if locked else keep_mask(shape, p, generator)


# --- the LSTM ---------------------------------------------------------------------------------


def lstm_step(
    x: torch.Tensor,
    h_prev: torch.Tensor,
    c_prev: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, gate order (i, f, g, o); returns the new state ``(h, c)``, each (N, H).

    x (N, D), h_prev and c_prev (N, H), W_ih (4H, D), W_hh (4H, H), b (4H,).
    """
    a = x @ W_ih.T + h_prev @ W_hh.T + b
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_forward(
    x: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
    p_input: float = 0.0,
    p_recurrent: float = 0.0,
    p_output: float = 0.0,
    train: bool = True,
    generator: torch.Generator | None = None,
    locked: bool = True,
    input_mask: torch.Tensor | None = None,
    recurrent_mask: torch.Tensor | None = None,
    output_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """An LSTM over (N, T, D) sequences with dropout, on x's device; the numpy function's twin.

    The arguments are those of ``dropout_course.recurrent.lstm_forward`` (``generator`` draws
    the masks not given). Returns ``(out, (h_T, c_T))``: the dropped outputs (N, T, H) and the
    final state (undropped); autograd gives the gradients, so there is no cache.
    """
    n, steps, d, h = check_lstm(x, W_ih, W_hh, b)
    p_input, p_recurrent, p_output = check_rates(p_input, p_recurrent, p_output)
    h_prev = x.new_zeros((n, h)) if h0 is None else h0
    c_prev = x.new_zeros((n, h)) if c0 is None else c0
    check_state(h_prev, "h0", (n, h), x.dtype)
    check_state(c_prev, "c0", (n, h), x.dtype)
    draw = None if generator is None else partial(sequence_mask, generator=generator, locked=locked)
    input_mask, recurrent_mask, output_mask = forward_masks(
        (n, steps, d, h),
        (p_input, p_recurrent, p_output),
        (input_mask, recurrent_mask, output_mask),
        train=train,
        draw=draw,
        source="generator",
    )

    x = dropout(x, p_input, train=train, mask=input_mask)
    hs = []
    for t in range(steps):
        h_in = dropout(h_prev, p_recurrent, train=train, mask=at_step(recurrent_mask, t))
        h_prev, c_prev = lstm_step(x[:, t], h_in, c_prev, W_ih, W_hh, b)
        hs.append(h_prev)
    out = dropout(torch.stack(hs, dim=1), p_output, train=train, mask=output_mask)
    return out, (h_prev, c_prev)


def lstm_weights(lstm: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_ih, W_hh, b)`` of a one-layer, one-direction ``torch.nn.LSTM`` (detached copies).

    ``b`` is ``bias_ih_l0 + bias_hh_l0`` (zeros for ``bias=False``): the two biases only ever
    appear summed.
    """
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"lstm must be a torch.nn.LSTM, but got {type(lstm).__name__}")
    if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
        raise ValueError(
            "lstm must have num_layers=1, bidirectional=False and proj_size=0, but got "
            f"num_layers={lstm.num_layers}, bidirectional={lstm.bidirectional}, "
            f"proj_size={lstm.proj_size}"
        )
    W_ih, W_hh = lstm.weight_ih_l0.detach().clone(), lstm.weight_hh_l0.detach().clone()
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0 if lstm.bias else W_ih.new_zeros(len(W_ih))
    return W_ih, W_hh, b.detach()


# --- weight drop ------------------------------------------------------------------------------


def weight_drop(
    W_hh: torch.Tensor,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, DropoutCache]:
    """WeightDrop on W_hh's device: ``W_hh * M / (1 - p)``, one mask per forward pass.

    The twin of ``dropout_course.recurrent.weight_drop``: ``generator`` draws ``M`` (W_hh's
    shape) when ``mask`` is not given. Returns ``(W, cache)`` for ``weight_drop_backward``.
    """
    check_floating(W_hh, "W_hh")
    check_rank(W_hh, "W_hh", (2,), "4H gate rows, H hidden units")
    p = check_rate(p, "p")
    if mask is not None:
        check_mask(mask, tuple(W_hh.shape), meaning="one entry per weight")
    elif train and p > 0 and generator is not None:
        mask = keep_mask(tuple(W_hh.shape), p, generator)
    return dropout_forward(W_hh, p, train=train, mask=mask)


def weight_drop_backward(dW: torch.Tensor, cache: DropoutCache) -> torch.Tensor:
    """Gradient with respect to ``W_hh``: ``dW * M / (1 - p)``."""
    return dropout_backward(dW, cache)


# --- layer ------------------------------------------------------------------------------------


class DropoutLSTM(nn.Module):
    """One LSTM layer (batch first) with input, recurrent and output dropout and weight drop.

    ``forward(x, state=None)`` takes x (N, T, input_size) and an optional ``(h0, c0)`` and
    returns ``(out, (h_T, c_T))`` like ``nn.LSTM(batch_first=True)``, with ``out`` dropped. In
    ``train()`` mode each forward pass draws fresh masks from ``generator`` (locked or per step)
    and one weight-drop mask for ``W_hh``; in ``eval()`` mode nothing is dropped. The weights
    ``W_ih`` (4H, D), ``W_hh`` (4H, H) and ``b`` (4H,) are drawn like ``nn.LSTM``'s (uniform in
    ``[-1/sqrt(H), 1/sqrt(H)]``) from ``generator``, on its device.

    (Not a ``DropoutLayer``: it has four rates, not one ``p``, and its forward takes a state.)

    Args:
        input_size: D, features per step, >= 1. hidden_size: H, >= 1.
        generator: torch Generator on the input's device for the weights and the masks.
        p_input, p_recurrent, p_output: dropout rates of the three places, in [0, 1).
        p_weight: weight-drop rate of ``W_hh``, in [0, 1).
        locked: locked masks (True, Gal and Ghahramani) or a fresh mask every step (False).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        generator: torch.Generator,
        *,
        p_input: float = 0.0,
        p_recurrent: float = 0.0,
        p_output: float = 0.0,
        p_weight: float = 0.0,
        locked: bool = True,
    ):
        super().__init__()
        self.input_size = check_count(input_size, "input_size", 1)
        self.hidden_size = check_count(hidden_size, "hidden_size", 1)
        self.generator = check_generator(generator)
        self.p_input, self.p_recurrent, self.p_output = check_rates(p_input, p_recurrent, p_output)
        self.p_weight = check_rate(p_weight, "p_weight")
        self.locked = bool(locked)
        gates = 4 * self.hidden_size
        self.W_ih = self._uniform(gates, self.input_size)
        self.W_hh = self._uniform(gates, self.hidden_size)
        self.b = self._uniform(gates)

    def _uniform(self, *shape: int) -> nn.Parameter:
        """A parameter of ``shape`` uniform in [-1/sqrt(H), 1/sqrt(H)], drawn from the generator."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        values = torch.empty(shape, device=self.generator.device)
        return nn.Parameter(values.uniform_(-bound, bound, generator=self.generator))

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        train = self.training
        options = dict(p=self.p_weight, train=train, generator=self.generator)
        W_hh = differentiable(weight_drop, weight_drop_backward, self.W_hh, **options)
        h0, c0 = (None, None) if state is None else state
        return lstm_forward(
            x,
            self.W_ih,
            W_hh,
            self.b,
            h0=h0,
            c0=c0,
            p_input=self.p_input,
            p_recurrent=self.p_recurrent,
            p_output=self.p_output,
            train=train,
            generator=self.generator,
            locked=self.locked,
        )

    def extra_repr(self) -> str:
        rates = ("p_input", "p_recurrent", "p_output", "p_weight")
        fields = ("input_size", "hidden_size", *rates, "locked")
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)
