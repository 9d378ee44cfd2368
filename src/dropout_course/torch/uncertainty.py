"""MC dropout, a deep ensemble and a single network, trained and compared on the same data.

Chapter 9, book/09_uncertainty.md. Each way of predicting is a stack of outputs ``f_s(x)`` over
samples s, whose predictive distribution is the mean of their probabilities::

    single network   one sample: the network with dropout off (weight scaling, chapter 3)
    MC dropout       T samples: the same network with fresh masks m_t   (mc_dropout_outputs)
    deep ensemble    M samples: M networks trained from different seeds (ensemble_outputs)
    prediction       (1/S) sum_s softmax(f_s(x))                          (predictive_probs)

Training runs are picklable jobs for ``dropout_course.sweeps.map_in_workers``; each returns the
trained ``build_mlp`` network in eval mode:

* ``train_digits_classifier(DigitsJob)``: the course's SGD trainer (``fit``) on a digits split;
* ``train_regressor(RegressionJob)``: full-batch Adam on ``data.toy_regression`` with Gal and
  Ghahramani's objective, half the mean squared error plus weight decay ``lambda_i`` on layer i
  proportional to ``1 - p_i`` (``gal_param_groups``), so that ``calibration.gal_tau`` gives the
  model precision of its MC-dropout predictive variance.

``rotate_digits`` makes shifted inputs: the 8x8 digits turned by an angle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import rotate
from torch import nn

from .._validate import check_count, check_floating, check_rank, check_seed
from ..data import Dataset, load_digits_split, toy_regression
from ..training import TrainConfig
from .dropout import Dropout, DropoutLayer, dropout
from .masks import check_generator, keep_mask
from .training import build_mlp, fit

DIGIT_SIDE = 8
"""The digits images are DIGIT_SIDE x DIGIT_SIDE pixels, flattened to 64 features."""


def _check_config(config: object) -> TrainConfig:
    """``config`` after checking it is a TrainConfig of Bernoulli dropout."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}")
    if config.dropout != "bernoulli":
        raise ValueError(
            "chapter 9 samples Bernoulli masks: config.dropout must be 'bernoulli', "
            f"but got {config.dropout!r}"
        )
    return config


def _check_sequential(model: object, name: str) -> nn.Sequential:
    """``model`` after checking it is an ``nn.Sequential`` whose dropout layers are ``Dropout``."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{name} must be an nn.Sequential (build_mlp), got {type(model).__name__}")
    for layer in model:
        foreign = isinstance(layer, nn.modules.dropout._DropoutNd)
        if foreign or (isinstance(layer, DropoutLayer) and not isinstance(layer, Dropout)):
            raise TypeError(
                f"{name} may hold only the course's Bernoulli Dropout layers, but holds "
                f"{type(layer).__name__}"
            )
    return model


def _check_inputs(x: object) -> None:
    """Raise unless ``x`` is a floating (N, D) tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, but got {type(x).__name__}")
    check_floating(x, "x")
    check_rank(x, "x", (2,), "N examples, D features")


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsJob:
    """One digits classifier of chapter 9 (picklable).

    Attributes:
        config: the network, its dropout and SGD (``TrainConfig``); ``config.seed`` draws the
            initial weights, the minibatch order and the training masks.
        data_seed: the split ``load_digits_split(seed=data_seed, n_train=n_train)``; members of
            one deep ensemble share it and differ in ``config.seed``.
        n_train: training examples kept (balanced over classes), or None for all 1347.
    """

    config: TrainConfig
    data_seed: int = 0
    n_train: int | None = None

    def __post_init__(self) -> None:
        _check_config(self.config)
        check_seed(self.data_seed)
        if self.n_train is not None:
            check_count(self.n_train, "n_train", 10)

    def dataset(self) -> Dataset:
        """The job's ``Dataset`` (the same split for the same ``data_seed`` and ``n_train``)."""
        return load_digits_split(seed=self.data_seed, n_train=self.n_train)


def train_digits_classifier(job: DigitsJob) -> nn.Sequential:
    """``build_mlp`` trained by ``fit`` (SGD, cross-entropy) on the job's digits; in eval mode."""
    digits = job.dataset()
    generator = torch.Generator().manual_seed(job.config.seed)
    model = build_mlp(job.config, digits.n_features, digits.n_classes, generator)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    fit(model, x, y, job.config, generator)
    return model


def half_squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The data term of Gal and Ghahramani's objective: ``mean_i ||y_i - y_hat_i||^2 / 2``."""
    return 0.5 * F.mse_loss(outputs, targets)


def gal_param_groups(model: nn.Sequential, config: TrainConfig) -> list[dict]:
    """Optimizer parameter groups with Gal and Ghahramani's weight decay per layer.

    Their objective gives the weights ``W_i`` whose inputs are dropped at rate ``p_i`` the decay
    ``lambda_i = (1 - p_i) l^2 / (2 N tau)``. ``config.weight_decay`` is the decay ``w`` of the
    layers behind hidden dropout (``p_i = config.p_hidden``), so layer i gets
    ``w (1 - p_i) / (1 - config.p_hidden)``: the first layer, behind ``config.p_input``, gets
    ``w / (1 - p)`` when nothing drops its inputs. Biases get none. With ``half_squared_error``,
    ``lambda = w / 2`` and ``tau = gal_tau(config.p_hidden, l, N, w / 2)``.

    Args:
        model: the network ``build_mlp(config, ...)`` built.
        config: its ``TrainConfig``.
    """
    _check_config(config)
    linears = [layer for layer in _check_sequential(model, "model") if isinstance(layer, nn.Linear)]
    rates = [config.p_input] + [config.p_hidden] * len(config.hidden)
    keep = 1 - config.p_hidden
    if len(linears) != len(rates):
        raise ValueError(
            f"model must be build_mlp(config, ...): config has {len(rates)} layers, "
            f"model {len(linears)} nn.Linear"
        )
    groups = [
        {"params": [linear.weight], "weight_decay": config.weight_decay * (1 - rate) / keep}
        for linear, rate in zip(linears, rates, strict=True)
    ]
    return [*groups, {"params": [linear.bias for linear in linears], "weight_decay": 0.0}]


@dataclass(frozen=True)
class RegressionJob:
    """One regressor of chapter 9's in-between experiment (picklable).

    Attributes:
        config: network, dropout rate, Adam's ``lr``, ``epochs`` (full-batch steps when
            ``batch_size >= n_train``), ``weight_decay`` (w of ``gal_param_groups``) and seed.
        n_train, data_seed, noise_std: the data ``toy_regression(n_train, seed=data_seed,
            noise_std=noise_std)``: two clusters, 1 < |x| < 3.
    """

    config: TrainConfig
    n_train: int = 40
    data_seed: int = 0
    noise_std: float = 0.1

    def __post_init__(self) -> None:
        _check_config(self.config)
        check_count(self.n_train, "n_train", 1)
        check_seed(self.data_seed)

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training inputs and targets, each (n_train, 1) float32."""
        x, y = toy_regression(self.n_train, seed=self.data_seed, noise_std=self.noise_std)
        return torch.from_numpy(x), torch.from_numpy(y)


def train_regressor(job: RegressionJob) -> nn.Sequential:
    """``build_mlp`` with one output trained by Adam on Gal's objective; returned in eval mode."""
    x, y = job.data()
    generator = torch.Generator().manual_seed(job.config.seed)
    model = build_mlp(job.config, 1, 1, generator)
    optimizer = torch.optim.Adam(gal_param_groups(model, job.config), lr=job.config.lr)
    fit(model, x, y, job.config, generator, optimizer=optimizer, loss=half_squared_error)
    return model


# --- prediction ----------------------------------------------------------------------------------


def mc_dropout_outputs(
    model: nn.Sequential,
    x: torch.Tensor,
    passes: int,
    generator: torch.Generator,
    *,
    one_mask_per_pass: bool = False,
) -> torch.Tensor:
    """Outputs (T, N, K) of ``passes`` = T forward passes with dropout on (MC dropout).

    Pass t runs ``model`` with a fresh keep mask ``m_t ~ Bernoulli(1 - p)`` from ``generator`` at
    every ``Dropout`` layer (inverted scaling, as in training): one mask per example, or one
    shared by all N inputs with ``one_mask_per_pass`` (each pass is then one subnetwork, a whole
    function of x). Every other layer runs as in eval mode. All T passes run as one batch.

    Args:
        model: an ``nn.Sequential`` (``build_mlp``) whose dropout layers are the course's
            ``Dropout``.
        x: (N, D) inputs.
        passes: T >= 1.
        generator: torch Generator that draws every mask.
    """
    _check_sequential(model, "model")
    _check_inputs(x)
    passes = check_count(passes, "passes", 1)
    generator = check_generator(generator)
    outputs = x.expand(passes, *x.shape)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, Dropout):
                examples = 1 if one_mask_per_pass else len(x)
                mask = keep_mask((passes, examples, outputs.shape[-1]), layer.p, generator)
                outputs = dropout(outputs, layer.p, mask=mask, scaling=layer.scaling)
            else:
                outputs = layer(outputs)
    return outputs


def ensemble_outputs(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Outputs (M, N, K) of M networks in eval mode (a deep ensemble; M = 1: a single network)."""
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or not models:
        raise TypeError("models must be a non-empty sequence of networks, e.g. [net] or members")
    _check_inputs(x)
    for model in models:
        model.eval()
    with torch.no_grad():
        return torch.stack([model(x) for model in models])


def predictive_probs(outputs: torch.Tensor) -> torch.Tensor:
    """Predictive distribution (N, K): the mean over S samples of ``softmax(outputs[s])``.

    The mean of the probabilities, not the softmax of the mean logits (chapter 3).

    Args:
        outputs: (S, N, K) logits of S passes or members.
    """
    check_floating(outputs, "outputs")
    check_rank(outputs, "outputs", (3,), "S samples (passes or members), N examples, K logits")
    return torch.softmax(outputs, dim=-1).mean(dim=0)


# --- shifted inputs ------------------------------------------------------------------------------


def rotate_digits(x: np.ndarray, angle: float) -> np.ndarray:
    """Digits (N, 64) with each 8x8 image turned by ``angle`` degrees about its centre.

    Bilinear interpolation, zero (background) outside the image, clipped to [0, 1]; float32.
    """
    check_floating(x, "x")
    check_rank(x, "x", (2,), f"N images of {DIGIT_SIDE * DIGIT_SIDE} pixels")
    if x.shape[1] != DIGIT_SIDE * DIGIT_SIDE:
        raise ValueError(f"x must hold {DIGIT_SIDE}x{DIGIT_SIDE} images, got {x.shape[1]} pixels")
    images = x.reshape(-1, DIGIT_SIDE, DIGIT_SIDE)
    turned = rotate(images, float(angle), axes=(2, 1), reshape=False, order=1, mode="constant")
    return np.clip(turned, 0.0, 1.0).reshape(x.shape).astype(np.float32)
