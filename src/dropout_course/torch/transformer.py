"""A small character-level transformer language model with dropout at three placements.

Chapter 7, book/07_modern_architectures.md. A decoder-only, pre-norm transformer (layer norm at
the start of each branch, as in GPT-2 and most models since) for ids of shape (N, T):

    h = drop_embedding(token(ids) + position(t))              (N, T, d_model)
    h = h + drop_residual(attention(norm(h)))                 causal, dropout on the probabilities
    h = h + drop_residual(mlp(norm(h)))                       once per block, n_layers blocks
    logits = head(norm(h))                                    (N, T, vocab_size)

The three rates are separate: ``p_embedding`` (the embedding sum), ``p_attention`` (the attention
probabilities, inside ``dropout_course.torch.attention.attention``) and ``p_residual`` (each
branch's output before the add, ``TransformerEncoderLayer``'s ``dropout1`` and ``dropout2``).
Every random draw comes from explicit seeds: the weights and the masks from the model's
``torch.Generator``, the training windows from a numpy Generator.

``train_language_model(job)`` trains one ``LanguageModelJob`` (a picklable dataclass) and returns
its loss curves, so ``dropout_course.sweeps.map_in_workers`` can run a grid in worker processes;
``fit_language_model(job)`` also returns the trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .._validate import check_count, check_positive, check_probability, check_rank, check_seed
from ..corpus import VOCAB_SIZE, Corpus, load_corpus
from .attention import attention
from .dropout import Dropout, DropoutLayer

INIT_STD = 0.02  # the normal init of GPT-2's weights


@dataclass(frozen=True)
class ModelConfig:
    """The model's shape and its three dropout rates (Chapter 7).

    Args:
        vocab_size: number of token ids, >= 2.
        context: longest sequence the position embedding covers, >= 1.
        d_model: features per position, >= 1, divisible by ``n_heads``.
        n_layers: transformer blocks, >= 1.
        n_heads: attention heads per block, >= 1.
        p_embedding: dropout rate on the embedding sum, in [0, 1].
        p_attention: dropout rate on the attention probabilities, in [0, 1].
        p_residual: dropout rate on each branch output before the add, in [0, 1].
    """

    vocab_size: int = VOCAB_SIZE
    context: int = 32
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    p_embedding: float = 0.0
    p_attention: float = 0.0
    p_residual: float = 0.0

    def __post_init__(self) -> None:
        check_count(self.vocab_size, "vocab_size", 2)
        check_count(self.context, "context", 1)
        check_count(self.n_layers, "n_layers", 1)
        heads = check_count(self.n_heads, "n_heads", 1)
        if check_count(self.d_model, "d_model", 1) % heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, but got d_model={self.d_model} "
                f"and n_heads={self.n_heads}"
            )
        for name in ("p_embedding", "p_attention", "p_residual"):
            check_probability(getattr(self, name), name)


class CausalSelfAttention(DropoutLayer):
    """Multi-head causal self-attention with dropout (rate ``p``) on the attention probabilities.

    For ``x`` of shape (N, T, d_model): project to queries, keys and values, split the features
    into ``n_heads`` heads of ``d_model / n_heads`` and run the course's ``attention`` on the
    (N * n_heads, T, d_head) stack (one mask entry per sequence, head, query and key), then join
    the heads and project back. Drops in ``train()`` mode only.
    """

    repr_fields = ("p", "n_heads")

    def __init__(self, d_model: int, n_heads: int, p: float, generator: torch.Generator):
        super().__init__(p, generator)
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def step(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        n, t, d = x.shape
        heads = self.qkv(x).view(n, t, 3, self.n_heads, d // self.n_heads)
        q, k, v = heads.permute(2, 0, 3, 1, 4).reshape(3, n * self.n_heads, t, -1)
        options = dict(p=self.p, train=train, generator=self.generator, causal=True)
        mixed = attention(q, k, v, **options).view(n, self.n_heads, t, -1)
        return self.out(mixed.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """One pre-norm block, shape (N, T, d_model) in and out: the two branches, each with its add.

    ``x + drop(attention(norm1(x)))``, then ``x + drop(mlp(norm2(x)))``; ``drop`` is a course
    ``Dropout`` with rate ``config.p_residual``; the MLP is d_model -> 4 d_model -> d_model with
    a ReLU, as in the original transformer (cheaper on a CPU than GPT-2's GELU).
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator):
        super().__init__()
        d = config.d_model
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = CausalSelfAttention(d, config.n_heads, config.p_attention, generator)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))
        self.drop_residual = Dropout(config.p_residual, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_residual(self.attention(self.norm1(x)))
        return x + self.drop_residual(self.mlp(self.norm2(x)))


class CharTransformer(nn.Module):
    """Decoder-only character model: ids (N, T) with T <= context -> logits (N, T, vocab_size).

    The output at position t depends on ids[:, :t + 1] only (causal attention). Weights are drawn
    from ``generator`` (normal, sd ``INIT_STD``; biases 0, norms 1), which then draws the masks.
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator):
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.context, config.d_model)
        self.drop_embedding = Dropout(config.p_embedding, generator)
        self.blocks = nn.ModuleList(Block(config, generator) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name.endswith("bias"):
                    parameter.zero_()
                elif parameter.dim() == 1:  # a layer norm's gain
                    parameter.fill_(1.0)
                else:
                    parameter.normal_(0.0, INIT_STD, generator=generator)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_rank(ids, "ids", (2,), "N sequences, T positions")
        t = ids.shape[1]
        if t > self.config.context:
            raise ValueError(f"ids must have at most context={self.config.context} positions")
        positions = torch.arange(t, device=ids.device)
        h = self.drop_embedding(self.token(ids) + self.position(positions))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


def next_char_loss(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of predicting windows[:, 1:] from windows[:, :-1].

    ``windows``: int64 ids of shape (N, T + 1), T <= the model's context.
    """
    logits = model(windows[:, :-1])
    return nn.functional.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())


def window_starts(n_chars: int, length: int, count: int) -> np.ndarray:
    """``count`` evenly spaced starts of windows of ``length`` in a text of ``n_chars``."""
    if length > n_chars:
        raise ValueError(f"the text ({n_chars} characters) is shorter than a window ({length})")
    return np.linspace(0, n_chars - length, count).round().astype(np.int64)


def windows_at(text: np.ndarray, starts: np.ndarray, length: int) -> torch.Tensor:
    """int64 tensor (len(starts), length) of the windows of ``text`` beginning at ``starts``."""
    return torch.from_numpy(text[starts[:, None] + np.arange(length)].astype(np.int64))


@dataclass(frozen=True)
class LanguageModelJob:
    """One training run of Chapter 7: data size, model, rates, optimisation and seed (picklable).

    ``steps`` Adam steps at a constant ``lr`` (no weight decay: dropout is the only regulariser)
    on batches of ``batch_size`` random windows of ``context + 1`` characters from the first
    ``n_train`` training characters; every ``eval_every`` steps, the loss in eval mode on
    ``n_eval`` fixed windows of the validation text and of the training text.
    """

    n_train: int
    model: ModelConfig = ModelConfig()
    seed: int = 0
    steps: int = 120
    batch_size: int = 16
    lr: float = 1e-2
    eval_every: int = 60
    n_eval: int = 64
    n_val: int = 100_000

    def __post_init__(self) -> None:
        check_seed(self.seed)
        check_count(self.steps, "steps", 1)
        check_count(self.batch_size, "batch_size", 1)
        check_positive(self.lr, "lr")
        check_count(self.eval_every, "eval_every", 1)
        check_count(self.n_eval, "n_eval", 1)


@dataclass(frozen=True)
class LanguageModelResult:
    """Loss curves (nats per character) at ``steps`` (0, eval_every, ..., and the last step)."""

    steps: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray


def evaluate(model: nn.Module, windows: torch.Tensor) -> float:
    """``next_char_loss`` on ``windows`` in eval mode, without gradient; then restores the mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = float(next_char_loss(model, windows))
    model.train(was_training)
    return loss


class WindowSchedule(Protocol):
    """What ``train_on_windows`` reads from a job (Chapter 7's and Chapter 8's jobs have it)."""

    seed: int
    steps: int
    batch_size: int
    lr: float
    eval_every: int
    n_eval: int


def train_on_windows(
    model: nn.Module, corpus: Corpus, length: int, job: WindowSchedule
) -> LanguageModelResult:
    """Train ``model`` (ids (N, T) -> logits) on windows of ``length`` characters of ``corpus``.

    ``job.steps`` Adam steps of ``job.batch_size`` random training windows (a numpy Generator
    seeded ``[job.seed, 1]``, a stream apart from the model's masks); every ``job.eval_every``
    steps and at the end, the loss in eval mode on ``job.n_eval`` fixed, evenly spaced windows of
    the training and of the validation text. Leaves the model in train mode.
    """
    fixed = {
        side: windows_at(text, window_starts(len(text), length, job.n_eval), length)
        for side, text in (("train", corpus.train), ("val", corpus.val))
    }
    optimiser = torch.optim.Adam(model.parameters(), lr=job.lr)
    rng = np.random.default_rng([job.seed, 1])
    steps, train_loss, val_loss = [], [], []
    for step in range(job.steps + 1):
        if step % job.eval_every == 0 or step == job.steps:
            steps.append(step)
            train_loss.append(evaluate(model, fixed["train"]))
            val_loss.append(evaluate(model, fixed["val"]))
        if step == job.steps:
            break
        starts = rng.integers(0, len(corpus.train) - length + 1, size=job.batch_size)
        loss = next_char_loss(model, windows_at(corpus.train, starts, length))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return LanguageModelResult(np.array(steps), np.array(train_loss), np.array(val_loss))


def fit_language_model(job: LanguageModelJob) -> tuple[CharTransformer, LanguageModelResult]:
    """Train ``job``'s model from its seed; return it (in train mode) and its loss curves."""
    model = CharTransformer(job.model, torch.Generator().manual_seed(job.seed))
    corpus = load_corpus(job.n_train, job.n_val)
    return model, train_on_windows(model, corpus, job.model.context + 1, job)


def train_language_model(job: LanguageModelJob) -> LanguageModelResult:
    """The loss curves of ``fit_language_model(job)`` (what a worker process sends back)."""
    return fit_language_model(job)[1]


def uniform_loss(vocab_size: int = VOCAB_SIZE) -> float:
    """The loss of a model that predicts every id with equal probability: ln(vocab_size)."""
    return math.log(check_count(vocab_size, "vocab_size", 2))
