"""The MLP trainer in torch: the twin of :mod:`dropout_course.training`, on CPU or CUDA.

Same ``TrainConfig``, same network (dropout on the input of every ``nn.Linear``), same update
(``torch.optim.SGD`` with momentum, weight decay on the weights only, max-norm after each step),
built from our layers: ``Dropout``, ``GaussianDropout`` and ``AlphaDropout``. One
``torch.Generator`` on the chosen device, seeded by ``config.seed``, draws the initial weights,
the minibatch order and the dropout noise, so training on CPU is fully deterministic. The torch
and numpy trainers use different random streams: their runs agree in behaviour, not bit for bit.

The returned ``TrainResult.params`` holds numpy weights in the numpy layout (D_in, D_out), so
``predict_proba`` and ``hidden_activations`` from the numpy module analyse either trainer's net.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset
from ..training import History, MLPParams, TrainConfig, TrainResult, init_std
from .dropout import Dropout
from .variants import AlphaDropout, GaussianDropout, max_norm_

_DROPOUT_LAYERS = {"bernoulli": Dropout, "gaussian": GaussianDropout, "alpha": AlphaDropout}
_ACTIVATION_LAYERS = {"relu": nn.ReLU, "selu": nn.SELU}


def _linear(fan_in: int, fan_out: int, std: float, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` on the generator's device with N(0, std^2) weights from ``generator``.

    ``skip_init`` avoids nn.Linear's default initialisation, which would draw from torch's global
    generator.
    """
    linear = nn.utils.skip_init(nn.Linear, fan_in, fan_out, device=generator.device)
    with torch.no_grad():
        nn.init.normal_(linear.weight, std=std, generator=generator)
        linear.bias.zero_()
    return linear


def build_mlp(
    config: TrainConfig, n_features: int, n_classes: int, generator: torch.Generator
) -> nn.Sequential:
    """``[dropout, Linear, activation] * len(hidden) + [dropout, Linear]`` on generator.device.

    Dropout layers with rate 0 are left out; they would be the identity.
    """
    sizes = (n_features, *config.hidden, n_classes)
    layers: list[nn.Module] = []
    for layer, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        p = config.p_input if layer == 0 else config.p_hidden
        if p > 0:
            layers.append(_DROPOUT_LAYERS[config.dropout](p, generator))
        layers.append(_linear(fan_in, fan_out, init_std(fan_in, config.activation), generator))
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


@torch.no_grad()
def _evaluate(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    return loss, (logits.argmax(dim=1) == y).double().mean().item()


def train_mlp(
    dataset: Dataset, config: TrainConfig, *, device: str = "cpu", progress: bool = False
) -> TrainResult:
    """Train the MLP of ``config`` on ``dataset`` in torch (float32) on ``device``.

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
    linears = [module for module in model if isinstance(module, nn.Linear)]
    optimizer = torch.optim.SGD(
        [
            {"params": [linear.weight for linear in linears]},
            {"params": [linear.bias for linear in linears], "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    x_train, x_val = (torch.tensor(x, device=device) for x in (dataset.x_train, dataset.x_val))
    y_train, y_val = (torch.tensor(y, device=device) for y in (dataset.y_train, dataset.y_val))
    metrics = np.zeros((4, config.epochs))
    for epoch in tqdm(range(config.epochs), desc="epochs", disable=not progress):
        model.train()
        order = torch.randperm(len(y_train), generator=generator, device=device)
        for batch in order.split(config.batch_size):
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if config.max_norm is not None:
                for linear in linears:  # unit j's incoming weights are row j of linear.weight
                    max_norm_(linear.weight.T, config.max_norm)
        metrics[:2, epoch] = _evaluate(model, x_train, y_train)
        metrics[2:, epoch] = _evaluate(model, x_val, y_val)
    return TrainResult(to_params(model, config.activation), History(*metrics), config)
