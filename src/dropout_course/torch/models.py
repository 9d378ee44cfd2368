"""Small torch networks for chapter 7, and a picklable training job for sweeps in workers.

Chapter 7 (book/07_modern_architectures.md) measures two kinds of structured dropout on the 5,000
real MNIST digits (``dropout_course.data.load_mnist``), each network built from the course's
layers and trained with the course's loop, ``dropout_course.torch.training.fit``:

* ``ResidualMLP``: ``n_blocks`` residual blocks ``h + drop_l(f_l(h))`` whose branches are dropped
  by ``DropPath`` (one draw per example, rate ``1 - q_l``) or ``StochasticDepth`` (one draw per
  mini-batch, survival ``q_l``), with Huang et al.'s ``linear_survival`` rule for ``q_l``;
* ``SmallCNN``: two 3x3 convolutions on the digits pooled to 14x14, then a *dropout slot* on the
  (N, C, 14, 14) feature maps that holds ``Dropout``, ``ChannelDropout`` (``Dropout2d``) or
  ``DropBlock``.

``ResidualJob`` and ``CNNJob`` describe one training run (a frozen, picklable dataclass), and
``train_job`` runs it and returns a ``JobResult``: a module-level function, so a chapter can send
a grid of jobs to worker processes with ``dropout_course.sweeps.map_in_workers``. One
``torch.Generator`` seeded by ``job.seed`` draws the initial weights, the minibatch order and
every mask; ``load_mnist(seed=job.seed, n_train=job.n_train)`` gives the data, so a job's result
is a pure function of the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_choice, check_count, check_in_interval, check_positive, check_seed
from ..data import load_mnist
from ..dropblock import check_block_size
from ..residual import check_survival, linear_survival
from ..training import TrainConfig, init_std
from .dropblock import DropBlock
from .dropout import ChannelDropout, Dropout
from .residual import DropPath, StochasticDepth
from .training import evaluate, fit, seeded_linear

RESIDUAL_DROPS = ("none", "drop_path", "stochastic_depth")
CNN_DROPS = ("none", "dropout", "channel", "dropblock")
IMAGE_SIDE = 28  # MNIST digits are 28x28; SmallCNN pools them to 14x14
FEATURE_SIDE = IMAGE_SIDE // 2  # side of the feature maps at SmallCNN's dropout slot


# --- networks --------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """``h + drop(f(h))`` with the branch ``f(h) = W2 relu(W1 h)`` (width D -> D).

    ``drop`` is ``DropPath``, ``StochasticDepth`` or ``nn.Identity``; the last branch layer starts
    at a small scale so that the deep network begins close to the identity.
    """

    def __init__(self, width: int, drop: nn.Module, generator: torch.Generator):
        super().__init__()
        self.inner = seeded_linear(width, width, init_std(width, "relu"), generator)
        self.outer = seeded_linear(width, width, 0.1 * init_std(width, "relu"), generator)
        self.drop = drop

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.outer(torch.relu(self.inner(h))))


def residual_drop(drop: str, survival: float, generator: torch.Generator) -> nn.Module:
    """The layer that drops one block's branch, kept with probability ``survival``.

    ``"drop_path"``: ``DropPath(1 - survival)`` (per example, inverted scaling);
    ``"stochastic_depth"``: ``StochasticDepth(survival)`` (per batch, ``survival * f`` in eval);
    ``"none"``: ``nn.Identity()``.
    """
    check_choice(drop, "drop", RESIDUAL_DROPS)
    survival = check_survival(survival)
    if drop == "drop_path":
        return DropPath(1.0 - survival, generator)
    if drop == "stochastic_depth":
        return StochasticDepth(survival, generator)
    return nn.Identity()


class ResidualMLP(nn.Module):
    """(N, D_in) -> Linear -> ``n_blocks`` x ``ResidualBlock`` -> ReLU -> Linear -> (N, classes).

    Block l (from 1) keeps its branch with probability ``linear_survival(n_blocks,
    final_survival)[l - 1]``, by the rule named in ``drop`` (see ``residual_drop``).

    Args:
        n_features, n_classes: input size and number of logits.
        width: width D of the residual stream, >= 1.
        n_blocks: number of residual blocks, >= 1.
        drop: "none", "drop_path" or "stochastic_depth".
        final_survival: survival probability of the last block, in [0, 1] (0.5 in Huang et al.).
        generator: draws the initial weights, then (held by the drop layers) every mask.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        width: int,
        n_blocks: int,
        drop: str,
        final_survival: float,
        generator: torch.Generator,
    ):
        super().__init__()
        width = check_count(width, "width", 1)
        survivals = linear_survival(check_count(n_blocks, "n_blocks", 1), final_survival)
        self.embed = seeded_linear(n_features, width, init_std(n_features, "relu"), generator)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(width, residual_drop(drop, float(q), generator), generator)
                for q in survivals
            )
        )
        self.head = seeded_linear(width, n_classes, init_std(width, "relu"), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.blocks(self.embed(x))))


def dropout_slot(kind: str, p: float, block_size: int, generator: torch.Generator) -> nn.Module:
    """The layer in ``SmallCNN``'s dropout slot, at drop rate ``p``.

    ``"dropout"``: ``Dropout(p)`` (one coin per unit); ``"channel"``: ``ChannelDropout(p)`` (one
    coin per feature map, ``Dropout2d``); ``"dropblock"``: ``DropBlock(p, block_size)``;
    ``"none"``: ``nn.Identity()``.
    """
    check_choice(kind, "kind", CNN_DROPS)
    if kind == "dropout":
        return Dropout(p, generator)
    if kind == "channel":
        return ChannelDropout(p, generator)
    if kind == "dropblock":
        check_block_size(block_size, FEATURE_SIDE, FEATURE_SIDE)
        return DropBlock(p, block_size, generator)
    return nn.Identity()


def _conv(in_channels: int, out_channels: int, generator: torch.Generator) -> nn.Conv2d:
    """3x3 convolution (padding 1) with He-normal weights from ``generator`` and zero biases."""
    conv = nn.utils.skip_init(nn.Conv2d, in_channels, out_channels, 3, padding=1)
    with torch.no_grad():
        nn.init.normal_(conv.weight, std=init_std(9 * in_channels, "relu"), generator=generator)
        conv.bias.zero_()
    return conv


class SmallCNN(nn.Module):
    """Flat 28x28 digits (N, 784) -> (N, classes), with a dropout slot on 14x14 feature maps.

    avg-pool 2 -> conv3x3(1 -> C1) -> ReLU -> conv3x3(C1 -> C2) -> ReLU -> slot -> max-pool 2
    -> Linear(C2 * 7 * 7 -> classes). The slot holds ``dropout_slot(kind, p, block_size)``.

    Args:
        n_classes: number of logits.
        channels: (C1, C2), each >= 1.
        kind: "none", "dropout", "channel" or "dropblock".
        p: drop rate of the slot, in [0, 1].
        block_size: DropBlock's block side, in [1, 14] (ignored by the other kinds).
        generator: draws the initial weights, then every mask.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        channels: tuple[int, int],
        kind: str,
        p: float,
        block_size: int,
        generator: torch.Generator,
    ):
        super().__init__()
        first, second = (check_count(c, f"channels[{i}]", 1) for i, c in enumerate(channels))
        self.conv1 = _conv(1, first, generator)
        self.conv2 = _conv(first, second, generator)
        self.slot = dropout_slot(kind, p, block_size, generator)
        side = FEATURE_SIDE // 2
        self.head = seeded_linear(
            second * side * side, n_classes, init_std(second * side**2, "relu"), generator
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, C2, 14, 14) feature maps that enter the dropout slot."""
        images = F.avg_pool2d(x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE), 2)
        return torch.relu(self.conv2(torch.relu(self.conv1(images))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(self.slot(self.features(x)), 2)
        return self.head(pooled.flatten(1))


# --- jobs ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Job:
    """What every training job shares: data size, schedule and seed (checked when constructed).

    Attributes:
        seed: seeds the data split (``load_mnist``), initialisation, minibatch order and masks.
        n_train: training digits, class-balanced, in [10, 4000]; validation is 1000 digits.
        epochs: passes over the training set, >= 1.
        lr: SGD learning rate (> 0), momentum 0.9.
        batch_size: examples per step, >= 1.
    """

    seed: int = 0
    n_train: int = 1000
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_seed(self.seed)
        check_count(self.n_train, "n_train", 10, 4000)
        check_count(self.epochs, "epochs", 1)
        check_positive(self.lr, "lr")
        check_count(self.batch_size, "batch_size", 1)

    def build(self, n_features: int, n_classes: int, generator: torch.Generator) -> nn.Module:
        """The job's network, with weights drawn from ``generator``."""
        raise NotImplementedError(f"{type(self).__name__} must define build()")


@dataclass(frozen=True, kw_only=True)
class ResidualJob(Job):
    """Train a ``ResidualMLP`` with the dropping rule ``drop`` (one of ``RESIDUAL_DROPS``).

    The last block survives with probability ``final_survival``. Jobs that differ only in
    ``drop`` start from the same initial weights for a seed.
    """

    drop: str = "none"
    final_survival: float = 0.5
    width: int = 64
    n_blocks: int = 6

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.drop, "drop", RESIDUAL_DROPS)
        check_survival(self.final_survival, "final_survival")
        check_count(self.width, "width", 1)
        check_count(self.n_blocks, "n_blocks", 1)

    def build(self, n_features: int, n_classes: int, generator: torch.Generator) -> nn.Module:
        return ResidualMLP(
            n_features,
            n_classes,
            width=self.width,
            n_blocks=self.n_blocks,
            drop=self.drop,
            final_survival=self.final_survival,
            generator=generator,
        )


@dataclass(frozen=True, kw_only=True)
class CNNJob(Job):
    """Train a ``SmallCNN`` with ``kind`` (one of ``CNN_DROPS``) at rate ``p`` in its slot."""

    kind: str = "none"
    p: float = 0.0
    block_size: int = 3
    channels: tuple[int, int] = (8, 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.kind, "kind", CNN_DROPS)
        check_in_interval(self.p, "p", 0, 1, include_high=False)
        check_block_size(self.block_size, FEATURE_SIDE, FEATURE_SIDE)

    def build(self, n_features: int, n_classes: int, generator: torch.Generator) -> nn.Module:
        if n_features != IMAGE_SIDE**2:
            raise ValueError(f"SmallCNN needs 28x28 digits (784 features), but got {n_features}")
        return SmallCNN(
            n_classes,
            channels=self.channels,
            kind=self.kind,
            p=self.p,
            block_size=self.block_size,
            generator=generator,
        )


class JobResult(NamedTuple):
    """Final metrics of a job, measured in eval mode: losses in nats, accuracies in [0, 1]."""

    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float


def train_job(job: Job) -> JobResult:
    """Train ``job``'s network on MNIST digits with ``fit`` (SGD, momentum 0.9) and evaluate it.

    Importable by name, so ``map_in_workers(train_job, jobs, workers=2)`` trains a grid in
    worker processes; the result depends only on ``job``.
    """
    if not isinstance(job, Job):
        raise TypeError(f"job must be a ResidualJob or a CNNJob, but got {type(job).__name__}")
    data = load_mnist(seed=job.seed, n_train=job.n_train)
    generator = torch.Generator().manual_seed(job.seed)
    model = job.build(data.n_features, data.n_classes, generator)
    config = TrainConfig(
        lr=job.lr, epochs=job.epochs, batch_size=job.batch_size, p_hidden=0.0, seed=job.seed
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    x_train, x_val = (torch.from_numpy(x) for x in (data.x_train, data.x_val))
    y_train, y_val = (torch.from_numpy(y) for y in (data.y_train, data.y_val))
    fit(model, x_train, y_train, config, generator, optimizer=optimizer)
    return JobResult(*evaluate(model, x_train, y_train), *evaluate(model, x_val, y_val))
