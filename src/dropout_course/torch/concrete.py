"""Concrete dropout in torch: the twins of :mod:`dropout_course.concrete`, and a learned rate.

Chapter 9 (learning the rate, trusting the uncertainty). The same formulas on tensors, on the
input's device, written with torch operations so that autograd differentiates them; ``p`` may be
a number or a 0-d tensor such as ``sigmoid(logit)``, which then gets gradients through the
relaxed mask ``z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)`` and through the
regulariser. ``ConcreteDropout`` wraps an ``nn.Linear``: it drops the layer's inputs with a
learnable rate, and ``regularizer()`` gives the term to add to the loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_count, check_floating, check_positive, check_same_shape, check_shape
from ..concrete import (
    DEFAULT_TEMPERATURE,
    check_open_probability,
    check_temperature,
    check_uniform,
    check_weights,
)
from .masks import check_generator, check_linear


def as_rate(p: float | torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """``p`` checked in (0, 1), as a tensor: a 0-d tensor keeps its graph (and device, dtype).

    A number becomes a tensor of the dtype and device of ``like`` (float64 on the CPU without).
    """
    if not isinstance(p, torch.Tensor):
        p = check_open_probability(p)
        return torch.tensor(p, dtype=torch.float64) if like is None else like.new_tensor(p)
    check_floating(p, "p")
    if p.ndim != 0:
        raise ValueError(f"p must be a number or a 0-d tensor, but got shape {tuple(p.shape)}")
    check_open_probability(float(p.detach()))
    return p


# --- the relaxed mask ----------------------------------------------------------------------------


def uniform_noise(
    shape: int | tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform draws of ``shape`` in (0, 1) on ``generator.device``; a draw of exactly 0 is moved
    to the smallest positive number of ``dtype``, so that ``log u`` stays finite."""
    shape, generator = check_shape(shape), check_generator(generator)
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)
    return torch.clamp(u, min=torch.finfo(dtype).tiny)


def relaxed_drop_mask(
    u: torch.Tensor, p: float | torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Concrete drop mask ``z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)``.

    Args:
        u: uniform draws in (0, 1), any shape, floating dtype (``uniform_noise``).
        p: probability of dropping in (0, 1): a number or a 0-d tensor (differentiable).
        temperature: ``t`` > 0, dividing the whole sum inside the sigmoid.

    Returns:
        ``z`` of u's shape, in [0, 1]; 1 means dropped, the keep mask is ``1 - z``.
    """
    check_uniform(u)
    p, t = as_rate(p, like=u), check_temperature(temperature)
    logits = (torch.log(p) - torch.log(1 - p) + torch.log(u) - torch.log(1 - u)) / t
    return torch.sigmoid(logits)


def concrete_dropout(
    x: torch.Tensor,
    p: float | torch.Tensor,
    *,
    train: bool = True,
    temperature: float = DEFAULT_TEMPERATURE,
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,
) -> torch.Tensor:
    """Concrete dropout ``x * (1 - z) / (1 - p)`` in training, ``x`` at evaluation.

    Args:
        x: activations, any shape, floating dtype.
        p: probability of dropping in (0, 1): a number or a 0-d tensor (differentiable).
        train: True for a training step, False for evaluation (no mask, no scaling).
        temperature: ``t`` > 0 of ``relaxed_drop_mask``.
        generator: torch Generator drawing ``u`` (in x's dtype) when ``u`` is not given.
        u: optional uniform draws in (0, 1) of x's shape, fixing the mask.
    """
    check_floating(x, "x")
    p, temperature = as_rate(p, like=x), check_temperature(temperature)
    if not train:
        return x
    if u is None:
        if generator is None:
            raise ValueError("concrete_dropout needs generator (or u) in training")
        u = uniform_noise(tuple(x.shape), generator, x.dtype)
    check_same_shape(u, x, "u", "x")
    z = relaxed_drop_mask(u, p, temperature)
    return x * (1 - z) / (1 - p)


# --- the regulariser -----------------------------------------------------------------------------


def weight_regularizer(
    W: torch.Tensor, p: float | torch.Tensor, *, length_scale: float, n_train: int
) -> torch.Tensor:
    """Weight part ``l^2 ||W||^2 / (2 N (1 - p))`` (0-d tensor); see the numpy twin."""
    p = as_rate(p, like=W)
    length_scale, n_train = check_weights(W, length_scale, n_train)
    return length_scale**2 * torch.sum(W**2) / (2 * n_train * (1 - p))


def dropout_regularizer(p: float | torch.Tensor, n_inputs: int, n_train: int) -> torch.Tensor:
    """Entropy part ``-K H(p) / N`` (0-d tensor), ``H(p) = -p log p - (1 - p) log(1 - p)``."""
    p = as_rate(p)
    n_inputs, n_train = check_count(n_inputs, "n_inputs", 1), check_count(n_train, "n_train", 1)
    entropy = -p * torch.log(p) - (1 - p) * torch.log(1 - p)
    return -n_inputs * entropy / n_train


def concrete_regularizer(
    W: torch.Tensor, p: float | torch.Tensor, *, length_scale: float, n_train: int
) -> torch.Tensor:
    """``l^2 ||W||^2 / (2 N (1 - p)) + (K / N) (p log p + (1 - p) log(1 - p))`` (0-d tensor).

    Args:
        W: (D_in, D_out) weights of the layer whose D_in = K inputs are dropped (an
            ``nn.Linear`` stores the transpose: pass ``linear.weight.T``).
        p: probability of dropping in (0, 1): a number or a 0-d tensor (differentiable).
        length_scale: prior length-scale ``l`` of the weights, > 0.
        n_train: number N of training examples, >= 1.
    """
    weights = weight_regularizer(W, p, length_scale=length_scale, n_train=n_train)
    return weights + dropout_regularizer(p, W.shape[0], n_train)


# --- the layer ---------------------------------------------------------------------------------


class ConcreteDropout(nn.Module):
    """Concrete dropout on the inputs of a linear layer, with a learned rate.

    ``train()`` mode returns ``layer(concrete_dropout(x, p))``, ``eval()`` mode ``layer(x)`` (no
    mask, no scaling). The rate ``p = sigmoid(p_logit)`` is a parameter: train it with the
    layer's weights on ``loss + regularizer()``, summed over the layers.

    Args:
        layer: the ``nn.Linear`` whose inputs (..., D_in) are dropped.
        generator: torch Generator on the input's device that draws the uniform noise.
        length_scale: prior length-scale ``l`` of the weights, > 0.
        n_train: number N of training examples, >= 1.
        init_p: initial rate in (0, 1); 0.1 as in the authors' code.
        temperature: ``t`` > 0 of the relaxed mask (0.1).
    """

    def __init__(
        self,
        layer: nn.Linear,
        generator: torch.Generator,
        *,
        length_scale: float,
        n_train: int,
        init_p: float = 0.1,
        temperature: float = DEFAULT_TEMPERATURE,
    ):
        super().__init__()
        self.layer = check_linear(layer)
        self.generator = check_generator(generator)
        self.length_scale = check_positive(length_scale, "length_scale")
        self.n_train = check_count(n_train, "n_train", 1)
        self.temperature = check_temperature(temperature)
        init_p = check_open_probability(init_p, "init_p")
        self.p_logit = nn.Parameter(layer.weight.new_tensor(math.log(init_p / (1 - init_p))))

    @property
    def p(self) -> torch.Tensor:
        """The current drop probability ``sigmoid(p_logit)``, a 0-d tensor in the graph."""
        return torch.sigmoid(self.p_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        options = dict(train=self.training, temperature=self.temperature, generator=self.generator)
        return self.layer(concrete_dropout(x, self.p, **options))

    def regularizer(self) -> torch.Tensor:
        """This layer's ``concrete_regularizer`` at the current weights and rate (0-d tensor)."""
        return concrete_regularizer(
            self.layer.weight.T, self.p, length_scale=self.length_scale, n_train=self.n_train
        )

    def extra_repr(self) -> str:
        return (
            f"p={float(self.p.detach()):.4g}, temperature={self.temperature!r}, "
            f"length_scale={self.length_scale!r}, n_train={self.n_train!r}"
        )
