"""The MLP trainer in torch: the twin of :mod:`dropout_course.training`, on CPU or CUDA.

Same ``TrainConfig``, same network (dropout on the input of every ``nn.Linear``), same update
(``torch.optim.SGD`` with momentum, weight decay on the weights only, max-norm after each step),
built from our layers: ``Dropout``, ``GaussianDropout`` and ``AlphaDropout``. One
``torch.Generator`` on the chosen device, seeded by ``config.seed``, draws the initial weights,
the minibatch order and the dropout noise, so training on CPU is fully deterministic. The torch
and numpy trainers use different random streams: their runs agree in behaviour, not bit for bit.

The pieces are public, so a chapter that needs a variation trains with the same loop instead of
writing its own: ``build_mlp`` (optionally with classic scaling), ``sgd`` (optionally with a
learning rate per layer), ``fit`` (the minibatch loop, for any network, optimiser and loss) and
``evaluate``. ``train_mlp`` is these four in a row.

The returned ``TrainResult.params`` holds numpy weights in the numpy layout (D_in, D_out), so
``predict_proba`` and ``hidden_activations`` from the numpy module analyse either trainer's net.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._validate import check_positive, check_scaling
from ..data import Dataset
from ..training import History, MLPParams, TrainConfig, TrainResult, init_std
from .dropout import Dropout, DropoutLayer
from .variants import AlphaDropout, GaussianDropout, max_norm_

_NOISE_LAYERS = {"gaussian": GaussianDropout, "alpha": AlphaDropout}
_ACTIVATION_LAYERS = {"relu": nn.ReLU, "selu": nn.SELU}

EpochResult = TypeVar("EpochResult")


class Evaluation(NamedTuple):
    """What ``evaluate`` measures: mean cross-entropy (nats) and accuracy (fraction correct)."""

    loss: float
    accuracy: float


def seeded_linear(fan_in: int, fan_out: int, std: float, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` on the generator's device with N(0, std^2) weights from ``generator``.

    ``skip_init`` avoids nn.Linear's default initialisation, which would draw from torch's global
    generator.
    """
    linear = nn.utils.skip_init(nn.Linear, fan_in, fan_out, device=generator.device)
    with torch.no_grad():
        nn.init.normal_(linear.weight, std=std, generator=generator)
        linear.bias.zero_()
    return linear


def _dropout_layer(kind: str, p: float, generator: torch.Generator, scaling: str) -> nn.Module:
    """The dropout layer of ``kind`` at rate ``p``; only Bernoulli dropout takes a scaling."""
    if kind == "bernoulli":
        return Dropout(p, generator, scaling)
    return _NOISE_LAYERS[kind](p, generator)


def build_mlp(
    config: TrainConfig,
    n_features: int,
    n_classes: int,
    generator: torch.Generator,
    *,
    scaling: str = "inverted",
) -> nn.Sequential:
    """``[dropout, Linear, activation] * len(hidden) + [dropout, Linear]`` on generator.device.

    Dropout layers with rate 0 are left out; they would be the identity. ``generator`` draws the
    initial weights, then (held by the dropout layers) every dropout mask.

    Args:
        config: widths, dropout kind and rates (``p_input``, ``p_hidden``), activation.
        n_features: inputs of the first layer. n_classes: outputs (logits) of the last.
        generator: torch Generator; its device is the network's.
        scaling: "inverted" (``nn.Dropout``'s) or "classic" (train ``x * m``, evaluate
            ``x * (1 - p)``); classic exists for Bernoulli dropout only.
    """
    scaling = check_scaling(scaling)
    if scaling == "classic" and config.dropout != "bernoulli":
        raise ValueError(
            "scaling='classic' needs config.dropout='bernoulli' (Gaussian and alpha dropout have "
            f"no classic form), but got dropout={config.dropout!r}"
        )
    sizes = (n_features, *config.hidden, n_classes)
    layers: list[nn.Module] = []
    for layer, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        p = config.p_input if layer == 0 else config.p_hidden
        if p > 0:
            layers.append(_dropout_layer(config.dropout, p, generator, scaling))
        layers.append(
            seeded_linear(fan_in, fan_out, init_std(fan_in, config.activation), generator)
        )
        if layer < len(sizes) - 2:
            layers.append(_ACTIVATION_LAYERS[config.activation]())
    return nn.Sequential(*layers)


def to_params(model: nn.Sequential, activation: str) -> MLPParams:
    """The weights as numpy ``MLPParams``: ``nn.Linear``'s (D_out, D_in) become (D_in, D_out)."""
    linears = [module for module in model if isinstance(module, nn.Linear)]
    return MLPParams(
        weights=tuple(linear.weight.detach().T.cpu().numpy().copy() for linear in linears),
        biases=tuple(linear.bias.detach().cpu().numpy().copy() for linear in linears),
        activation=activation,
    )


def sgd(
    model: nn.Module, config: TrainConfig, *, weight_lr_factors: Sequence[float] | None = None
) -> torch.optim.SGD:
    """The course's optimiser for a network of ``nn.Linear`` layers: SGD with momentum.

    PyTorch's update, ``v = momentum * v + g + weight_decay * w`` then ``w -= lr * v``, with
    ``config.lr``, ``config.momentum`` and ``config.weight_decay``; no weight decay on biases.

    Args:
        model: a network whose parameters all belong to its ``nn.Linear`` layers.
        config: supplies lr, momentum and weight_decay.
        weight_lr_factors: one factor > 0 per ``nn.Linear`` layer, in order: layer l's weights
            learn at ``lr * weight_lr_factors[l]``, its bias at ``lr``. None: all at ``lr``.
    """
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    covered = {id(param) for linear in linears for param in linear.parameters()}
    others = [name for name, param in model.named_parameters() if id(param) not in covered]
    if others:
        raise ValueError(
            "sgd trains the nn.Linear layers of model, but model has other parameters: "
            f"{others}; pass fit() an optimizer of your own"
        )
    if weight_lr_factors is None:
        weight_lr_factors = [1.0] * len(linears)
    if len(weight_lr_factors) != len(linears):
        raise ValueError(
            f"weight_lr_factors must hold one factor per nn.Linear layer ({len(linears)}), "
            f"but got {len(weight_lr_factors)}"
        )
    weight_groups = [
        {
            "params": [linear.weight],
            "lr": config.lr * check_positive(factor, f"weight_lr_factors[{index}]"),
        }
        for index, (linear, factor) in enumerate(zip(linears, weight_lr_factors, strict=True))
    ]
    return torch.optim.SGD(
        [
            *weight_groups,
            {"params": [linear.bias for linear in linears], "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def _set_training(model: object, mode: bool) -> None:
    """``model.train(mode)`` for an ``nn.Module``; a plain function has no mode."""
    if isinstance(model, nn.Module):
        model.train(mode)


def fit(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    after_epoch: Callable[[], EpochResult] | None = None,
    progress: bool = False,
) -> list[EpochResult]:
    """The course's training loop: ``config.epochs`` passes of minibatch steps over ``(x, y)``.

    Each epoch draws a random order of the examples from ``generator`` and cuts it into batches
    of ``config.batch_size``; each step computes ``loss(model(x[batch]), y[batch])``,
    backpropagates, steps the optimiser and, if ``config.max_norm`` is set, projects the incoming
    weights of every ``nn.Linear`` unit onto the max-norm ball. An ``nn.Module`` trains in
    ``train()`` mode and is in ``eval()`` mode for ``after_epoch`` and when ``fit`` returns.
    The schedules follow ``config.at_epoch``: every learning rate of the optimiser is multiplied
    by ``config.lr_decay`` after each epoch, and outside ``config``'s dropout window the dropout
    layers (the course's and ``torch.nn``'s) stay in eval mode, so the epoch trains without them.

    Args:
        model: the network: an ``nn.Module``, or any differentiable function of a batch of
            inputs (then ``optimizer`` must be given: it holds the parameters).
        x: training inputs (N, ...), on the model's device and in its dtype.
        y: targets (N, ...): class indices for the default loss.
        config: supplies epochs, batch_size, max_norm and the schedules (and lr, momentum and
            weight_decay to the default optimiser).
        generator: torch Generator on x's device that draws the order of the examples.
        optimizer: any torch optimiser over the model's parameters; default ``sgd(model,
            config)``.
        loss: maps (outputs, targets) of a batch to a scalar; default cross-entropy on logits.
        after_epoch: called after every epoch, in eval mode and under ``torch.no_grad()``.
        progress: show a tqdm progress bar over epochs.

    Returns:
        ``after_epoch``'s results, one per epoch (an empty list without ``after_epoch``).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}")
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples, but got {len(x)} and {len(y)}"
        )
    is_module = isinstance(model, nn.Module)
    if optimizer is None and not is_module:
        raise TypeError(
            "fit needs an optimizer for a model that is not an nn.Module, "
            f"but got model of type {type(model).__name__} and optimizer=None"
        )
    if config.max_norm is not None and not is_module:
        raise ValueError(
            "config.max_norm applies to the nn.Linear layers of an nn.Module, "
            f"but got model of type {type(model).__name__}"
        )
    optimizer = sgd(model, config) if optimizer is None else optimizer
    modules = list(model.modules()) if is_module else []
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    dropouts = [m for m in modules if isinstance(m, (DropoutLayer, nn.modules.dropout._DropoutNd))]
    first_lrs = [group["lr"] for group in optimizer.param_groups]
    results = []
    for epoch in tqdm(range(config.epochs), desc="epochs", disable=not progress):
        _set_training(model, True)
        if not config.dropout_on(epoch):
            for layer in dropouts:
                layer.eval()
        for group, first_lr in zip(optimizer.param_groups, first_lrs, strict=True):
            group["lr"] = first_lr * config.lr_decay**epoch
        order = torch.randperm(len(x), generator=generator, device=generator.device)
        for batch in order.split(config.batch_size):
            batch_loss = loss(model(x[batch]), y[batch])
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            if config.max_norm is not None:
                for linear in linears:  # unit j's incoming weights are row j of linear.weight
                    max_norm_(linear.weight.T, config.max_norm)
        _set_training(model, False)  # config.epochs >= 1: fit returns in eval mode
        if after_epoch is not None:
            with torch.no_grad():
                results.append(after_epoch())
    return results


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Evaluation:
    """Mean cross-entropy and accuracy of ``model`` (logits) on ``(x, y)``, in eval mode."""
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    return Evaluation(loss, (logits.argmax(dim=1) == y).double().mean().item())


def train_mlp(
    dataset: Dataset, config: TrainConfig, *, device: str = "cpu", progress: bool = False
) -> TrainResult:
    """Train the MLP of ``config`` on ``dataset`` in torch (float32) on ``device``.

    ``build_mlp``, then ``fit`` with ``sgd``, measuring ``evaluate`` on the training and the
    validation set after each epoch.

    Args:
        dataset: training and validation arrays (converted to tensors on ``device``).
        config: hyperparameters; ``config.seed`` seeds the generator behind every random choice.
        device: "cpu" or "cuda" (or any torch device string).
        progress: show a tqdm progress bar over epochs.

    Returns:
        ``TrainResult`` with numpy weights (see ``to_params``) and the per-epoch history.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}")
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model = build_mlp(config, dataset.n_features, dataset.n_classes, generator)
    x_train, x_val = (torch.tensor(x, device=device) for x in (dataset.x_train, dataset.x_val))
    y_train, y_val = (torch.tensor(y, device=device) for y in (dataset.y_train, dataset.y_val))
    metrics = fit(
        model,
        x_train,
        y_train,
        config,
        generator,
        after_epoch=lambda: (*evaluate(model, x_train, y_train), *evaluate(model, x_val, y_val)),
        progress=progress,
    )
    history = History(*np.array(metrics, dtype=np.float64).T)
    return TrainResult(to_params(model, config.activation), history, config)
