"""Gaussian dropout with a learned variance in torch: the twins of
:mod:`dropout_course.variational_gaussian`, and a layer with a learnable ``log_alpha``.

Chapter 9 (learning the rate). The same formulas on tensors, on the input's device, written with
torch operations so that autograd differentiates them (``local_reparameterization_forward``
returns no cache: autograd is the backward pass). ``VariationalGaussianDropout`` wraps an
``nn.Linear``: in ``train()`` mode it samples the pre-activations by the local
reparameterisation trick, in ``eval()`` mode it is the linear layer, and ``regularizer()`` gives
its KL term divided by N, to add to the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validate import (
    check_count,
    check_floating,
    check_in_interval,
    check_same_shape,
    check_shape,
)
from ..variational_gaussian import (
    KL_CONSTANTS,
    check_layer,
    check_log_alpha,
    log_alpha_for_rate,
)
from .masks import check_generator, check_linear


def equivalent_drop_rate(log_alpha: torch.Tensor) -> torch.Tensor:
    """The Bernoulli rate with the same noise variance, ``p = alpha / (1 + alpha)``."""
    check_floating(log_alpha, "log_alpha")
    return torch.sigmoid(log_alpha)


def local_reparameterization_forward(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    log_alpha: torch.Tensor,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Train ``x W + b + sqrt(x^2 (alpha W^2)) eps``, evaluate ``x W + b``; see the numpy twin.

    Args:
        x: inputs (N, D_in), floating. W: mean weights (D_in, D_out). b: bias (D_out,).
        log_alpha: log noise variance, shape () (per layer), (D_in, 1) or (D_in, D_out).
        train: True for a training step (noisy), False for evaluation (the mean).
        generator: torch Generator drawing eps (in x's dtype) when ``noise`` is not given.
        noise: optional standard-normal eps (N, D_out), fixing the draw.
    """
    check_layer(x, W, b)
    check_log_alpha(log_alpha, tuple(W.shape))
    mean = x @ W + b
    if not train:
        return mean
    if noise is None:
        if generator is None:
            raise ValueError(
                "local_reparameterization_forward needs generator (or noise) in training"
            )
        generator = check_generator(generator)
        noise = torch.randn(mean.shape, generator=generator, device=x.device, dtype=x.dtype)
    check_floating(noise, "noise")
    check_same_shape(noise, mean, "noise", "the output x W + b")
    variance = x**2 @ (torch.exp(log_alpha) * W**2)
    # sqrt has an infinite derivative at 0; clamping keeps a zero variance (an all-zero input
    # row) from turning the gradient into NaN, and moves no positive variance of float32/64
    std = torch.sqrt(torch.clamp(variance, min=torch.finfo(x.dtype).tiny))
    return mean + std * noise


def kl_approximation(log_alpha: torch.Tensor) -> torch.Tensor:
    """``k1 - k1 sigmoid(k2 + k3 log alpha) + log(1 + 1/alpha) / 2`` elementwise (Molchanov et
    al., 2017, eq. 14); see the numpy twin."""
    check_floating(log_alpha, "log_alpha")
    k1, k2, k3 = KL_CONSTANTS
    return k1 - k1 * torch.sigmoid(k2 + k3 * log_alpha) + 0.5 * nn.functional.softplus(-log_alpha)


def kl_regularizer(
    log_alpha: torch.Tensor, weight_shape: tuple[int, int], n_train: int
) -> torch.Tensor:
    """The KL summed over the (D_in, D_out) weights, divided by N (0-d tensor); see the twin."""
    weight_shape = check_shape(weight_shape, "weight_shape")
    if len(weight_shape) != 2:
        raise ValueError(f"weight_shape must be (D_in, D_out), but got {weight_shape}")
    check_log_alpha(log_alpha, weight_shape)
    n_train = check_count(n_train, "n_train", 1)
    return kl_approximation(log_alpha).expand(weight_shape).sum() / n_train


class VariationalGaussianDropout(nn.Module):
    """Kingma et al.'s Gaussian dropout on the weights of a linear layer, with a learned alpha.

    ``train()`` mode samples ``local_reparameterization_forward``, ``eval()`` mode returns
    ``layer(x)``. ``log_alpha`` is a parameter: train it with the layer's weights on ``loss +
    regularizer()``, summed over the layers; ``p`` reads it as a drop rate, alpha / (1 + alpha).

    Args:
        layer: the ``nn.Linear`` whose weights carry the noise.
        generator: torch Generator on the input's device that draws the noise.
        n_train: number N of training examples, >= 1.
        init_p: initial equivalent rate in (0, 1): ``log_alpha = log(p / (1 - p))``.
        per_unit: learn one alpha per input unit (shape (D_in, 1)) instead of one per layer.
    """

    def __init__(
        self,
        layer: nn.Linear,
        generator: torch.Generator,
        *,
        n_train: int,
        init_p: float = 0.1,
        per_unit: bool = False,
    ):
        super().__init__()
        self.layer = check_linear(layer)
        self.generator = check_generator(generator)
        self.n_train = check_count(n_train, "n_train", 1)
        init_p = check_in_interval(
            init_p, "init_p", 0.0, 1.0, include_low=False, include_high=False
        )
        shape = (layer.in_features, 1) if per_unit else ()
        start = layer.weight.new_full(shape, log_alpha_for_rate(init_p))
        self.log_alpha = nn.Parameter(start)

    @property
    def p(self) -> torch.Tensor:
        """The equivalent drop rate ``sigmoid(log_alpha)``, in the graph."""
        return equivalent_drop_rate(self.log_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.layer(x)
        return local_reparameterization_forward(
            x,
            self.layer.weight.T,
            self.layer.bias,
            self.log_alpha,
            train=True,
            generator=self.generator,
        )

    def regularizer(self) -> torch.Tensor:
        """This layer's ``kl_regularizer`` at the current alpha (0-d tensor)."""
        weight_shape = (self.layer.in_features, self.layer.out_features)
        return kl_regularizer(self.log_alpha, weight_shape, self.n_train)

    def extra_repr(self) -> str:
        return f"log_alpha shape={tuple(self.log_alpha.shape)}, n_train={self.n_train!r}"
