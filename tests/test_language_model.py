"""Chapter 8's character LSTM: dropout placement, character dropout, equivalence, training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dropout_course import corpus
from dropout_course.torch.language_model import (
    CharLSTM,
    LSTMConfig,
    LSTMLanguageModelJob,
    character_dropout,
    reference_layers,
    train_lstm_language_model,
)

SMALL = LSTMConfig(embedding_size=6, hidden_size=8)
GAL = dataclasses.replace(SMALL, p_embedding=0.2, p_input=0.3, p_recurrent=0.3, p_output=0.3)


def _model(config: LSTMConfig = SMALL, seed: int = 0) -> CharLSTM:
    return CharLSTM(config, torch.Generator().manual_seed(seed))


def _ids(n: int = 3, t: int = 7, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, corpus.VOCAB_SIZE, (n, t), generator=generator)


def test_builtin_lstm_starts_from_the_reference_weights():
    ids = _ids()
    builtin = _model(dataclasses.replace(SMALL, builtin=True, p_between=0.5)).eval()
    reference = _model(GAL).eval()
    with torch.no_grad():
        torch.testing.assert_close(builtin(ids), reference(ids), atol=1e-6, rtol=1e-5)


def test_output_at_t_depends_only_on_the_past():
    model, ids = _model().eval(), _ids()
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % corpus.VOCAB_SIZE
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[:, :4], model(changed)[:, :4])
        assert not torch.allclose(model(ids)[:, 4:], model(changed)[:, 4:])


@pytest.mark.parametrize(
    "config",
    [
        GAL,
        dataclasses.replace(SMALL, p_weight=0.5),
        dataclasses.replace(SMALL, builtin=True, p_between=0.5),
    ],
    ids=["gal", "weight_drop", "builtin"],
)
def test_dropout_is_seeded_in_training_and_off_in_evaluation(config):
    ids = _ids()
    first, second = _model(config), _model(config)
    with torch.no_grad():
        a, b, c = first(ids), second(ids), first(ids)
        torch.testing.assert_close(a, b)  # same seed, same masks
        assert not torch.allclose(a, c)  # a new forward pass, new masks
        first.eval()
        torch.testing.assert_close(first(ids), first(ids))
        torch.testing.assert_close(first(ids), _model(SMALL).eval()(ids), atol=1e-6, rtol=1e-5)


def test_reference_layers_drop_each_connection_once():
    first, second = reference_layers(GAL, torch.Generator().manual_seed(0))
    assert (first.p_input, second.p_input) == (0.3, 0.0)
    assert first.p_output == second.p_output == first.p_recurrent == second.p_recurrent == 0.3
    assert (first.input_size, second.input_size) == (6, 8)


def test_character_dropout_drops_a_character_at_every_occurrence():
    embedding = torch.nn.Embedding(5, 3)
    ids = torch.tensor([[0, 1, 0, 2], [1, 1, 3, 4]])
    mask = torch.tensor([[False, True, True, True, True], [True, False, True, True, True]])
    out = character_dropout(ids, embedding, 0.5, mask=mask)
    expected = embedding(ids) * mask.gather(1, ids)[..., None] / 0.5
    torch.testing.assert_close(out, expected)
    assert (out[0, [0, 2]] == 0).all() and (out[1, :2] == 0).all()
    torch.testing.assert_close(character_dropout(ids, embedding, 0.5, train=False), embedding(ids))


def test_character_dropout_rate_over_many_sequences():
    embedding = torch.nn.Embedding(10, 1)
    ids = torch.arange(10).repeat(20_000, 1)
    out = character_dropout(ids, embedding, 0.3, generator=torch.Generator().manual_seed(1))
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.01  # sd of the fraction is 0.0010: a ten-sd bound


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda e, i: character_dropout(i, e, 0.2), ValueError, "needs generator"),
        (lambda e, i: character_dropout(i, e, 1.0), ValueError, "p must be"),
        (lambda e, i: character_dropout(i, e, 0.2, mask=torch.ones(2, 4)), ValueError, "mask"),
        (lambda e, i: character_dropout(i[0], e, 0.2), ValueError, "ids"),
        (lambda e, i: character_dropout(i, torch.nn.Linear(2, 2), 0.2), TypeError, "embedding"),
    ],
)
def test_character_dropout_rejects_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call(torch.nn.Embedding(5, 3), torch.zeros(2, 3, dtype=torch.int64))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(builtin=True, p_recurrent=0.2), "builtin=True"),
        (dict(p_between=0.2), "p_between"),
        (dict(p_output=1.0), "p_output"),
        (dict(hidden_size=0), "hidden_size"),
    ],
)
def test_config_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        LSTMConfig(**arguments)


def test_job_rejects_bad_arguments():
    with pytest.raises(ValueError, match="length"):
        LSTMLanguageModelJob(n_train=100, length=0)
    with pytest.raises(ValueError, match="lr"):
        LSTMLanguageModelJob(n_train=100, lr=0.0)


def test_training_lowers_the_loss_and_is_reproducible():
    job = LSTMLanguageModelJob(
        n_train=500,
        model=GAL,
        steps=30,
        batch_size=8,
        length=12,
        eval_every=15,
        n_eval=8,
        n_val=500,
    )
    first, second = train_lstm_language_model(job), train_lstm_language_model(job)
    assert first.steps.tolist() == [0, 15, 30]
    np.testing.assert_array_equal(first.val_loss, second.val_loss)
    assert first.train_loss[-1] < first.train_loss[0] - 0.5
