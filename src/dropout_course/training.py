"""A small, fully seeded MLP trainer in numpy, with dropout on the input and hidden layers.

The network is ``[dropout -> affine -> activation] * len(hidden) -> dropout -> affine``: dropout
(rate ``p_input`` on the input, ``p_hidden`` on each hidden layer) acts on the input of every
affine layer. Forward and backward are written by hand from :mod:`dropout_course.dropout` and
:mod:`dropout_course.variants`; the loss is softmax cross-entropy. Training is minibatch SGD with
momentum (PyTorch's update: ``v = momentum * v + g``, ``W -= lr * v``), L2 weight decay on the
weights (not the biases), and an optional max-norm projection after every step. Two schedules:
the learning rate can decay by a factor after every epoch, and dropout can be switched on for a
window of epochs only (early dropout: the first epochs; late dropout: the last ones).

All randomness (initialisation, minibatch order, dropout noise) comes from one
``numpy.random.Generator`` seeded by ``config.seed``: the same config gives the same history.
:mod:`dropout_course.torch.training` trains the same network in torch, with the same
``TrainConfig`` and ``TrainResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
from tqdm.auto import tqdm

from ._validate import (
    check_choice,
    check_count,
    check_floating,
    check_in_interval,
    check_positive,
    check_probability,
    check_rank,
    check_seed,
)
from .data import Dataset
from .dropout import dropout_backward, dropout_forward
from .variants import (
    SELU_ALPHA,
    SELU_SCALE,
    alpha_dropout_backward,
    alpha_dropout_forward,
    gaussian_dropout_backward,
    gaussian_dropout_forward,
    max_norm,
)

DROPOUTS = ("bernoulli", "gaussian", "alpha")
ACTIVATIONS = ("relu", "selu")

_DROPOUT_PAIRS: dict[str, tuple[Callable, Callable]] = {
    "bernoulli": (dropout_forward, dropout_backward),
    "gaussian": (gaussian_dropout_forward, gaussian_dropout_backward),
    "alpha": (alpha_dropout_forward, alpha_dropout_backward),
}


def _check_widths(hidden: object) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer widths, each >= 1 (an empty tuple: no hidden layer)."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(
            f"hidden must be a tuple of layer widths, e.g. (64,), but got {type(hidden).__name__}"
        )
    return tuple(check_count(width, f"hidden[{i}]", 1) for i, width in enumerate(hidden))


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of ``train_mlp`` (numpy and torch); checked when constructed.

    Attributes:
        hidden: widths of the hidden layers, each >= 1.
        p_input: drop probability on the input features, in [0, 1).
        p_hidden: drop probability on each hidden layer, in [0, 1).
        dropout: "bernoulli" (inverted dropout), "gaussian" or "alpha" (needs activation "selu").
        activation: "relu" (He initialisation) or "selu" (LeCun initialisation).
        max_norm: if set (> 0), the largest L2 norm of each unit's incoming weight vector.
        lr: learning rate (> 0) of the first epoch.
        lr_decay: factor in (0, 1] applied to the learning rate after every epoch (1: constant).
        momentum: SGD momentum, in [0, 1).
        epochs: passes over the training set (>= 1).
        batch_size: examples per SGD step (>= 1).
        weight_decay: L2 penalty coefficient on the weights, >= 0.
        dropout_start: first epoch (counted from 0) that trains with dropout, >= 0.
        dropout_stop: the epoch at which dropout switches off for good (> dropout_start), or
            None to keep it on to the end. ``dropout_stop=5`` is early dropout (epochs 0-4);
            ``dropout_start=5`` is late dropout. Outside the window the run trains as with
            ``p_input = p_hidden = 0``.
        seed: integer in [0, 2**63 - 1] for initialisation, minibatch order and dropout.
    """

    hidden: tuple[int, ...] = (64,)
    p_input: float = 0.0
    p_hidden: float = 0.5
    dropout: str = "bernoulli"
    activation: str = "relu"
    max_norm: float | None = None
    lr: float = 0.1
    lr_decay: float = 1.0
    momentum: float = 0.9
    epochs: int = 50
    batch_size: int = 32
    weight_decay: float = 0.0
    dropout_start: int = 0
    dropout_stop: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _check_widths(self.hidden))
        for name in ("p_input", "p_hidden"):
            check_probability(getattr(self, name), name)
            check_in_interval(getattr(self, name), name, 0, 1, include_high=False)
        check_choice(self.dropout, "dropout", DROPOUTS)
        check_choice(self.activation, "activation", ACTIVATIONS)
        if self.dropout == "alpha" and self.activation != "selu":
            raise ValueError(
                "dropout='alpha' needs activation='selu' (alpha dropout preserves the mean and "
                f"variance SELU networks keep), but got activation={self.activation!r}"
            )
        if self.max_norm is not None:
            check_positive(self.max_norm, "max_norm")
        check_positive(self.lr, "lr")
        check_in_interval(self.lr_decay, "lr_decay", 0, 1, include_low=False)
        check_in_interval(self.momentum, "momentum", 0, 1, include_high=False)
        check_count(self.epochs, "epochs", 1)
        check_count(self.batch_size, "batch_size", 1)
        check_in_interval(self.weight_decay, "weight_decay", 0, math.inf, include_high=False)
        check_count(self.dropout_start, "dropout_start", 0)
        if self.dropout_stop is not None:
            check_count(self.dropout_stop, "dropout_stop", self.dropout_start + 1)
        check_seed(self.seed)

    def dropout_on(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (counted from 0) trains with dropout."""
        stop = math.inf if self.dropout_stop is None else self.dropout_stop
        return self.dropout_start <= epoch < stop

    def at_epoch(self, epoch: int) -> TrainConfig:
        """The learning rate and dropout rates that epoch ``epoch`` (from 0) trains with."""
        on = self.dropout_on(epoch)
        return replace(
            self,
            lr=self.lr * self.lr_decay**epoch,
            p_input=self.p_input if on else 0.0,
            p_hidden=self.p_hidden if on else 0.0,
        )


@dataclass(frozen=True, eq=False)
class MLPParams:
    """Weights of an MLP: layer l computes ``h @ weights[l] + biases[l]``.

    Attributes:
        weights: one (D_in, D_out) array per layer: unit j's incoming weights are column j.
        biases: one (D_out,) array per layer.
        activation: "relu" or "selu", applied after every layer but the last.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str


@dataclass(frozen=True, eq=False)
class History:
    """Per-epoch metrics, each an array of shape (epochs,), measured after the epoch in eval mode.

    Losses are mean cross-entropies in nats (without the weight-decay penalty); accuracies are
    fractions in [0, 1].
    """

    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What ``train_mlp`` returns: the trained weights (numpy), the history and the config."""

    params: MLPParams
    history: History
    config: TrainConfig


def init_std(fan_in: int, activation: str) -> float:
    """Initial weight standard deviation: He ``sqrt(2 / fan_in)`` for relu, LeCun for selu."""
    gain = 2.0 if check_choice(activation, "activation", ACTIVATIONS) == "relu" else 1.0
    return math.sqrt(gain / fan_in)


def init_mlp(sizes: Sequence[int], activation: str, rng: np.random.Generator) -> MLPParams:
    """Float64 MLP weights for layer widths ``sizes`` (input, hidden..., output); zero biases."""
    sizes = [check_count(size, f"sizes[{i}]", 1) for i, size in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least an input and an output width, got {sizes}")
    weights = tuple(
        init_std(fan_in, activation) * rng.standard_normal((fan_in, fan_out))
        for fan_in, fan_out in pairwise(sizes)
    )
    biases = tuple(np.zeros(fan_out) for fan_out in sizes[1:])
    return MLPParams(weights=weights, biases=biases, activation=activation)


def _activation_forward(a: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(a, 0)
    return SELU_SCALE * np.where(a > 0, a, SELU_ALPHA * np.expm1(np.minimum(a, 0)))


def _activation_backward(dout: np.ndarray, a: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return dout * (a > 0)
    return dout * SELU_SCALE * np.where(a > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(a, 0)))


@dataclass(frozen=True)
class _LayerTape:
    """What the backward pass needs from one layer: its (dropped) input and pre-activation."""

    inputs: np.ndarray
    pre_activation: np.ndarray
    dropout_cache: object | None


def _forward(
    params: MLPParams,
    x: np.ndarray,
    config: TrainConfig | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, list[_LayerTape]]:
    """Logits (N, K) and the tape; with ``config`` it is a training pass (dropout from ``rng``)."""
    check_floating(x, "x")
    check_rank(x, "x", (2,), "N examples, D features")
    if x.shape[1] != params.weights[0].shape[0]:
        raise ValueError(
            f"x must have {params.weights[0].shape[0]} features (the first layer's inputs), "
            f"but got shape {x.shape}"
        )
    tape = []
    h = x
    last = len(params.weights) - 1
    for layer, (W, b) in enumerate(zip(params.weights, params.biases, strict=True)):
        dropout_cache = None
        p = 0.0 if config is None else config.p_input if layer == 0 else config.p_hidden
        if p > 0:
            drop_forward = _DROPOUT_PAIRS[config.dropout][0]
            h, dropout_cache = drop_forward(h, p, train=True, rng=rng)
        a = h @ W + b
        tape.append(_LayerTape(h, a, dropout_cache))
        h = a if layer == last else _activation_forward(a, params.activation)
    return h, tape


def _softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (nats) of integer labels ``y`` and its gradient wrt the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -float(log_proba[rows, y].mean())
    dlogits = np.exp(log_proba)
    dlogits[rows, y] -= 1.0
    return loss, dlogits / len(y)


def loss_and_gradients(
    params: MLPParams,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[float, MLPParams]:
    """One training-mode forward and backward pass (dropout drawn from ``rng``).

    Args:
        params: the network.
        x: (N, D) inputs.
        y: (N,) integer labels.
        config: supplies the dropout kind and rates.
        rng: numpy Generator drawing the dropout noise.

    Returns:
        ``(loss, grads)``: mean cross-entropy and its gradients, shaped like ``params``.
    """
    if np.shape(y) != (len(x),):
        raise ValueError(
            f"y must hold one label per row of x, but got shapes {np.shape(y)} and {np.shape(x)}"
        )
    logits, tape = _forward(params, x, config, rng)
    loss, d_pre = _softmax_cross_entropy(logits, y)
    d_weights, d_biases = [], []
    for layer in reversed(range(len(tape))):
        record = tape[layer]
        d_weights.append(record.inputs.T @ d_pre)
        d_biases.append(d_pre.sum(axis=0))
        if layer == 0:
            break
        d_inputs = d_pre @ params.weights[layer].T
        if record.dropout_cache is not None:
            d_inputs = _DROPOUT_PAIRS[config.dropout][1](d_inputs, record.dropout_cache)
        d_pre = _activation_backward(d_inputs, tape[layer - 1].pre_activation, params.activation)
    grads = MLPParams(tuple(d_weights[::-1]), tuple(d_biases[::-1]), params.activation)
    return loss, grads


def predict_proba(params: MLPParams, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) in eval mode (dropout off), from (N, D) inputs."""
    logits, _ = _forward(params, x)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def hidden_activations(params: MLPParams, x: np.ndarray) -> list[np.ndarray]:
    """Post-activation values of each hidden layer in eval mode: one (N, H_l) array per layer."""
    _, tape = _forward(params, x)
    return [record.inputs for record in tape[1:]]


def accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of ``scores`` (N, K: probabilities or logits) whose argmax equals ``y``."""
    check_rank(scores, "scores", (2,), "N examples, K classes")
    if len(scores) != len(y):
        raise ValueError(
            f"scores and y must hold the same number of examples, "
            f"but got shapes {scores.shape} and {np.shape(y)}"
        )
    return float(np.mean(np.argmax(scores, axis=1) == y))


def _evaluate(params: MLPParams, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    logits, _ = _forward(params, x)
    return _softmax_cross_entropy(logits, y)[0], accuracy(logits, y)


def _sgd_step(params: MLPParams, grads: MLPParams, velocity: MLPParams, config: TrainConfig):
    """One in-place SGD-with-momentum step, then the max-norm projection if configured."""
    for W, dW, vW in zip(params.weights, grads.weights, velocity.weights, strict=True):
        vW *= config.momentum
        vW += dW + config.weight_decay * W
        W -= config.lr * vW
        if config.max_norm is not None:
            W[...] = max_norm(W, config.max_norm)
    for b, db, vb in zip(params.biases, grads.biases, velocity.biases, strict=True):
        vb *= config.momentum
        vb += db
        b -= config.lr * vb


def train_mlp(dataset: Dataset, config: TrainConfig, *, progress: bool = False) -> TrainResult:
    """Train an MLP classifier with dropout on ``dataset`` (float64 computation).

    Args:
        dataset: training and validation arrays (see :mod:`dropout_course.data`).
        config: hyperparameters; ``config.seed`` fixes every random choice.
        progress: show a tqdm progress bar over epochs.

    Returns:
        ``TrainResult`` with the trained weights and per-epoch train/val loss and accuracy.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, but got {type(config).__name__}")
    rng = np.random.default_rng(config.seed)
    sizes = (dataset.n_features, *config.hidden, dataset.n_classes)
    params = init_mlp(sizes, config.activation, rng)
    velocity = MLPParams(
        tuple(np.zeros_like(W) for W in params.weights),
        tuple(np.zeros_like(b) for b in params.biases),
        config.activation,
    )
    x_train, y_train = dataset.x_train.astype(np.float64), dataset.y_train
    x_val, y_val = dataset.x_val.astype(np.float64), dataset.y_val
    metrics = np.zeros((4, config.epochs))
    for epoch in tqdm(range(config.epochs), desc="epochs", disable=not progress):
        epoch_config = config.at_epoch(epoch)
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            _, grads = loss_and_gradients(params, x_train[batch], y_train[batch], epoch_config, rng)
            _sgd_step(params, grads, velocity, epoch_config)
        metrics[:2, epoch] = _evaluate(params, x_train, y_train)
        metrics[2:, epoch] = _evaluate(params, x_val, y_val)
    return TrainResult(params, History(*metrics), config)
