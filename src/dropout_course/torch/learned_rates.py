"""Training MLPs whose dropout rates are learned: chapter 9's measurements, one picklable job each.

Chapter 9 (learning the rate). ``train_rate_job(RateJob(...))`` trains chapter 5's network (one
hidden ReLU layer, SGD with momentum, a fixed budget of steps) on a training subset, in one of
three ways:

* ``"fixed"``: Bernoulli dropout at a hand-chosen ``p_hidden`` (chapter 5's ``build_mlp``);
* ``"concrete"``: a ``ConcreteDropout`` layer on the inputs of each linear layer, whose rates are
  learned on ``loss + sum of regularizers`` (``entropy=False`` leaves out the ``-K H(p) / N``
  term and keeps the weight term alone);
* ``"gaussian"``: a ``VariationalGaussianDropout`` layer in place of each linear layer, whose
  alphas are learned on ``loss + sum of KL terms``.

It records each layer's rate (for "gaussian" the equivalent ``alpha / (1 + alpha)``) before
training and after every epoch, and the final accuracies in eval mode. Every random choice comes
from one generator seeded by ``job.seed``. Jobs hold their data, so ``sweeps.map_in_workers``
can train them in worker processes without generating the data there again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_choice, check_count, check_in_interval, check_positive
from ..data import Dataset
from ..sweeps import epochs_for_steps
from ..training import TrainConfig, init_std
from .concrete import ConcreteDropout, weight_regularizer
from .training import build_mlp, evaluate, fit, seeded_linear
from .variational_gaussian import VariationalGaussianDropout

METHODS = ("fixed", "concrete", "gaussian")
RATE_PARAMETERS = ("p_logit", "log_alpha")
"""Names of the parameters that hold a learned rate (``ConcreteDropout``, Gaussian layer)."""


@dataclass(frozen=True)
class RateJob:
    """One training run of chapter 9's rate measurements.

    Attributes:
        data: training subset and validation set (MNIST-1D in the chapter).
        method: "fixed", "concrete" or "gaussian" (see the module docstring).
        seed: seeds initialisation, minibatch order and every noise draw.
        p_hidden: the hidden layer's drop rate for "fixed", in [0, 1).
        entropy: "concrete" only: keep the entropy term of the regulariser.
        hidden: width of the hidden layer.
        steps: SGD steps (rounded up to whole epochs), whatever the training-set size.
        lr, momentum, batch_size: SGD settings, chapter 5's by default.
        rate_lr: learning rate of the rate parameters (p_logit, log_alpha).
        length_scale: concrete dropout's prior length-scale l.
        init_p: initial rate of the learned layers, in (0, 1).
    """

    data: Dataset
    method: str
    seed: int
    p_hidden: float = 0.0
    entropy: bool = True
    hidden: int = 96
    steps: int = 600
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    rate_lr: float = 0.05
    length_scale: float = 1e-2
    init_p: float = 0.1

    def __post_init__(self) -> None:
        check_choice(self.method, "method", METHODS)
        check_in_interval(self.p_hidden, "p_hidden", 0.0, 1.0, include_high=False)
        if self.method != "fixed" and self.p_hidden:
            raise ValueError(f"p_hidden is for method='fixed', but got method={self.method!r}")
        check_count(self.hidden, "hidden", 1)
        check_count(self.steps, "steps", 1)
        for name in ("lr", "rate_lr", "length_scale"):
            check_positive(getattr(self, name), name)
        check_in_interval(self.init_p, "init_p", 0.0, 1.0, include_low=False, include_high=False)

    def config(self) -> TrainConfig:
        """The chapter-5 ``TrainConfig`` of this run (its dropout is used by "fixed" only)."""
        epochs = epochs_for_steps(self.steps, len(self.data.y_train), self.batch_size)
        return TrainConfig(
            hidden=(self.hidden,),
            p_hidden=self.p_hidden,
            lr=self.lr,
            momentum=self.momentum,
            batch_size=self.batch_size,
            epochs=epochs,
            seed=self.seed,
        )


@dataclass(frozen=True)
class RateRun:
    """What ``train_rate_job`` measures.

    Attributes:
        rates: (epochs + 1, layers) drop rate of each learned layer (input layer first) before
            training and after every epoch; (epochs + 1, 0) for "fixed".
        steps_per_epoch: SGD steps in one epoch (to put ``rates`` on a step axis).
        train_acc, val_acc: final accuracies in eval mode. val_loss: final cross-entropy.
    """

    rates: np.ndarray
    steps_per_epoch: int
    train_acc: float
    val_acc: float
    val_loss: float


def _learned_mlp(
    job: RateJob, n_features: int, n_classes: int, generator: torch.Generator
) -> nn.Sequential:
    """[rate layer(Linear), ReLU, rate layer(Linear)] for "concrete" or "gaussian"."""
    n_train, init_p = len(job.data.y_train), job.init_p
    layers: list[nn.Module] = []
    for fan_in, fan_out in pairwise((n_features, job.hidden, n_classes)):
        linear = seeded_linear(fan_in, fan_out, init_std(fan_in, "relu"), generator)
        if job.method == "concrete":
            layers.append(
                ConcreteDropout(
                    linear, generator, length_scale=job.length_scale, n_train=n_train, init_p=init_p
                )
            )
        else:
            layers.append(
                VariationalGaussianDropout(linear, generator, n_train=n_train, init_p=init_p)
            )
        layers.append(nn.ReLU())
    return nn.Sequential(*layers[:-1])


def _regularizer(layer: nn.Module, entropy: bool) -> torch.Tensor:
    """A learned layer's regulariser; without ``entropy``, concrete dropout's weight term only."""
    if isinstance(layer, ConcreteDropout) and not entropy:
        return weight_regularizer(
            layer.layer.weight.T, layer.p, length_scale=layer.length_scale, n_train=layer.n_train
        )
    return layer.regularizer()


def train_rate_job(job: RateJob) -> RateRun:
    """Train the job's network (float32, CPU) and record its rates; see the module docstring."""
    generator = torch.Generator().manual_seed(job.seed)
    data, config = job.data, job.config()
    x_train, x_val = torch.tensor(data.x_train), torch.tensor(data.x_val)
    y_train, y_val = torch.tensor(data.y_train), torch.tensor(data.y_val)
    if job.method == "fixed":
        model = build_mlp(config, data.n_features, data.n_classes, generator)
        rate_layers: list[nn.Module] = []
        optimizer, loss = None, F.cross_entropy
    else:
        model = _learned_mlp(job, data.n_features, data.n_classes, generator)
        rate_layers = [layer for layer in model if hasattr(layer, "regularizer")]
        groups: dict[bool, list[nn.Parameter]] = {False: [], True: []}
        for name, parameter in model.named_parameters():
            groups[name.endswith(RATE_PARAMETERS)].append(parameter)
        optimizer = torch.optim.SGD(
            [{"params": groups[False]}, {"params": groups[True], "lr": job.rate_lr}],
            lr=job.lr,
            momentum=job.momentum,
        )

        def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            penalty = sum(_regularizer(layer, job.entropy) for layer in rate_layers)
            return F.cross_entropy(logits, y) + penalty

    def current_rates() -> list[float]:
        return [float(layer.p.detach()) for layer in rate_layers]

    start = current_rates()
    history = fit(
        model,
        x_train,
        y_train,
        config,
        generator,
        optimizer=optimizer,
        loss=loss,
        after_epoch=current_rates,
    )
    rates = np.array([start, *history], dtype=np.float64).reshape(config.epochs + 1, len(start))
    validation = evaluate(model, x_val, y_val)
    return RateRun(
        rates=rates,
        steps_per_epoch=math.ceil(len(data.y_train) / job.batch_size),
        train_acc=evaluate(model, x_train, y_train).accuracy,
        val_acc=validation.accuracy,
        val_loss=validation.loss,
    )
