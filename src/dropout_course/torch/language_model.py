"""A small character-level LSTM language model with dropout at every place Chapter 8 compares.

Chapter 8, book/08_recurrent.md. For ids of shape (N, T) the model computes::

    e = drop_characters(embedding(ids))          (N, T, E)  one coin per sequence and character
    h = layer_2(layer_1(e))                      (N, T, H)  two LSTM layers
    logits = head(h)                             (N, T, vocab_size)

The LSTM layers are either the course's reference ``DropoutLSTM`` (input, recurrent and output
masks, locked or per step, and weight drop on ``W_hh``) or, with ``builtin=True``, one
``torch.nn.LSTM(num_layers=n_layers, dropout=p_between)``, which drops only between its layers.
Both start from the same weights for the same seed (the built-in one is loaded with the reference
layers' draws), so runs that share a seed differ only in their dropout. Every random draw comes
from explicit seeds: the weights and masks from the model's ``torch.Generator`` (the built-in
LSTM, which draws from torch's global generator, gets a seed from it at every training step), the
training windows from a numpy Generator.

Where the reference rates go in the stack: ``p_input`` on the first layer's input (the
embeddings), ``p_recurrent`` and ``p_weight`` in every layer, ``p_output`` on every layer's output
(between the layers and before the head), so no connection is dropped twice.

``train_lstm_language_model(job)`` trains one ``LSTMLanguageModelJob`` (picklable) and returns its
loss curves, for ``dropout_course.sweeps.map_in_workers``; ``fit_lstm_language_model(job)`` also
returns the trained model. Windows and evaluation are Chapter 7's (``transformer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validate import check_count, check_mask, check_positive, check_rank, check_seed
from ..corpus import VOCAB_SIZE, load_corpus
from ..recurrent import check_rate
from .dropout import dropout
from .masks import keep_mask
from .recurrent import DropoutLSTM
from .transformer import LanguageModelResult, train_on_windows

REFERENCE_RATES = ("p_input", "p_recurrent", "p_output", "p_weight")


@dataclass(frozen=True)
class LSTMConfig:
    """The model's shape and its dropout (Chapter 8).

    Args:
        vocab_size: number of character ids, >= 2.
        embedding_size: E, features per character, >= 1.
        hidden_size: H, units per LSTM layer, >= 1.
        n_layers: LSTM layers, >= 1.
        builtin: use ``torch.nn.LSTM`` (only ``p_between``) instead of ``DropoutLSTM`` layers.
        p_between: ``nn.LSTM``'s ``dropout=``, on the outputs of all layers but the last.
        p_embedding: character dropout: a dropped character's embedding is zero wherever it
            occurs in the sequence (one coin per sequence and character id).
        p_input, p_recurrent, p_output: ``DropoutLSTM``'s rates (see the module docstring).
        p_weight: weight drop on every layer's ``W_hh``.
        locked: locked masks (Gal and Ghahramani) or a fresh mask every step (``DropoutLSTM``).
        Every rate is in [0, 1).
    """

    vocab_size: int = VOCAB_SIZE
    embedding_size: int = 32
    hidden_size: int = 64
    n_layers: int = 2
    builtin: bool = False
    p_between: float = 0.0
    p_embedding: float = 0.0
    p_input: float = 0.0
    p_recurrent: float = 0.0
    p_output: float = 0.0
    p_weight: float = 0.0
    locked: bool = True

    def __post_init__(self) -> None:
        check_count(self.vocab_size, "vocab_size", 2)
        check_count(self.embedding_size, "embedding_size", 1)
        check_count(self.hidden_size, "hidden_size", 1)
        check_count(self.n_layers, "n_layers", 1)
        for name in ("p_between", "p_embedding", *REFERENCE_RATES):
            check_rate(getattr(self, name), name)
        if self.builtin and any(getattr(self, name) for name in REFERENCE_RATES):
            raise ValueError(
                f"builtin=True (torch.nn.LSTM) takes only p_between, but got nonzero "
                f"{[name for name in REFERENCE_RATES if getattr(self, name)]}"
            )
        if not self.builtin and self.p_between:
            raise ValueError("p_between is torch.nn.LSTM's dropout=: it needs builtin=True")


def character_dropout(
    ids: torch.Tensor,
    embedding: nn.Embedding,
    p: float,
    *,
    train: bool = True,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embeddings (N, T, E) of ``ids`` (N, T) with whole characters dropped per sequence.

    A keep mask of shape (N, vocab_size), one coin per sequence and character id (``mask``, or
    drawn from ``generator``), decides which characters each sequence keeps: the embedding at
    position t is scaled by ``1 / (1 - p)`` if the coin of ``ids[n, t]`` says keep, and is zero
    otherwise, at every occurrence (Gal and Ghahramani's word dropout, for characters). In
    evaluation (``train=False``) it is ``embedding(ids)``.
    """
    check_rank(ids, "ids", (2,), "N sequences, T positions")
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be a torch.nn.Embedding, got {type(embedding).__name__}")
    p = check_rate(p, "p")
    shape = (len(ids), embedding.num_embeddings)
    if mask is not None:
        check_mask(mask, shape, meaning="one coin per sequence and character id")
    elif train and p > 0:
        if generator is None:
            raise ValueError("character_dropout needs generator (or mask) when train=True, p > 0")
        mask = keep_mask(shape, p, generator)
    at_positions = None if mask is None else mask.gather(1, ids)[..., None]  # (N, T, 1)
    return dropout(embedding(ids), p, train=train and p > 0, mask=at_positions)


def reference_layers(config: LSTMConfig, generator: torch.Generator) -> list[DropoutLSTM]:
    """The ``n_layers`` ``DropoutLSTM`` layers of ``config``, weights drawn from ``generator``."""
    sizes = [config.embedding_size] + [config.hidden_size] * (config.n_layers - 1)
    return [
        DropoutLSTM(
            size,
            config.hidden_size,
            generator,
            p_input=config.p_input if k == 0 else 0.0,
            p_recurrent=config.p_recurrent,
            p_output=config.p_output,
            p_weight=config.p_weight,
            locked=config.locked,
        )
        for k, size in enumerate(sizes)
    ]


def builtin_lstm(layers: list[DropoutLSTM], p_between: float) -> nn.LSTM:
    """``torch.nn.LSTM(batch_first=True, dropout=p_between)`` with the weights of ``layers``.

    Layer k gets ``weight_ih_lk = W_ih``, ``weight_hh_lk = W_hh``, ``bias_ih_lk = b`` and
    ``bias_hh_lk = 0`` (the two biases are only ever summed), so both compute the same function.
    """
    first = layers[0]
    lstm = nn.LSTM(
        first.input_size,
        first.hidden_size,
        num_layers=len(layers),
        dropout=p_between,
        batch_first=True,
    )
    with torch.no_grad():
        for k, layer in enumerate(layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(layer.W_ih)
            getattr(lstm, f"weight_hh_l{k}").copy_(layer.W_hh)
            getattr(lstm, f"bias_ih_l{k}").copy_(layer.b)
            getattr(lstm, f"bias_hh_l{k}").zero_()
    return lstm


class CharLSTM(nn.Module):
    """Character LSTM language model: ids (N, T) -> logits (N, T, vocab_size).

    The output at position t depends on ids[:, :t + 1] only. The LSTM layers, the embedding
    (normal, sd 1 as in ``nn.Embedding``) and the head (uniform in +-1/sqrt(H) as in
    ``nn.Linear``) are drawn from ``generator`` in that order, whatever the dropout, so one seed
    gives every setting the same initial weights; the generator then draws the masks.
    """

    def __init__(self, config: LSTMConfig, generator: torch.Generator):
        super().__init__()
        self.config, self.generator = config, generator
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        layers = reference_layers(config, generator)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.layers = (
            builtin_lstm(layers, config.p_between) if config.builtin else nn.ModuleList(layers)
        )
        bound = config.hidden_size**-0.5
        with torch.no_grad():
            self.embedding.weight.normal_(generator=generator)
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        config, generator, train = self.config, self.generator, self.training
        h = character_dropout(
            ids, self.embedding, config.p_embedding, train=train, generator=generator
        )
        if isinstance(self.layers, nn.LSTM):
            with torch.random.fork_rng(devices=[]):  # its masks: seeded from our generator
                if train and config.p_between:
                    torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                h = self.layers(h)[0]
        else:
            for layer in self.layers:
                h = layer(h)[0]
        return self.head(h)


@dataclass(frozen=True)
class LSTMLanguageModelJob:
    """One training run of Chapter 8 (picklable): data size, model, optimisation and seed.

    ``steps`` Adam steps at a constant ``lr`` (no weight decay: dropout is the only regulariser)
    on batches of ``batch_size`` random windows of ``length + 1`` characters from the first
    ``n_train`` training characters; every ``eval_every`` steps, the loss in eval mode on
    ``n_eval`` fixed windows of the validation text and of the training text (Chapter 7's).
    """

    n_train: int
    model: LSTMConfig = LSTMConfig()
    seed: int = 0
    steps: int = 100
    batch_size: int = 16
    length: int = 24
    lr: float = 2e-2
    eval_every: int = 20
    n_eval: int = 64
    n_val: int = 100_000

    def __post_init__(self) -> None:
        check_seed(self.seed)
        for name in ("steps", "batch_size", "length", "eval_every", "n_eval"):
            check_count(getattr(self, name), name, 1)
        check_positive(self.lr, "lr")


def fit_lstm_language_model(job: LSTMLanguageModelJob) -> tuple[CharLSTM, LanguageModelResult]:
    """Train ``job``'s model from its seed; return it (in train mode) and its loss curves."""
    model = CharLSTM(job.model, torch.Generator().manual_seed(job.seed))
    corpus = load_corpus(job.n_train, job.n_val)
    return model, train_on_windows(model, corpus, job.length + 1, job)


def train_lstm_language_model(job: LSTMLanguageModelJob) -> LanguageModelResult:
    """The loss curves of ``fit_lstm_language_model(job)`` (what a worker process sends back)."""
    return fit_lstm_language_model(job)[1]
