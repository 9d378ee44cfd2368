"""Chapter 7's corpus and transformer: split, encoding, causality, dropout modes, training."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dropout_course import corpus
from dropout_course.torch.transformer import (
    CausalSelfAttention,
    CharTransformer,
    LanguageModelJob,
    ModelConfig,
    evaluate,
    next_char_loss,
    train_language_model,
    uniform_loss,
)

SMALL = ModelConfig(context=8, d_model=8, n_layers=2, n_heads=2)
RATES = dict(p_embedding=0.2, p_attention=0.2, p_residual=0.2)


def _model(config: ModelConfig = SMALL, seed: int = 0) -> CharTransformer:
    return CharTransformer(config, torch.Generator().manual_seed(seed))


def _ids(n: int = 3, t: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, corpus.VOCAB_SIZE, (n, t), generator=generator)


# --- corpus ----------------------------------------------------------------------------------


def test_encoding_round_trip_and_unknown():
    text = "def f(x):\n    return x ~ 1\n"
    ids = corpus.encode(text)
    assert ids.dtype == np.uint8 and ids.shape == (len(text),)
    assert corpus.decode(ids) == text
    assert corpus.encode("é\t").tolist() == [corpus.UNKNOWN, corpus.UNKNOWN]
    assert corpus.decode(corpus.encode("aé")) == "a" + corpus.UNKNOWN_CHAR
    assert corpus.VOCAB_SIZE == 97


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="ids must be in"):
        corpus.decode(np.array([corpus.VOCAB_SIZE]))


def test_split_is_by_file_disjoint_and_reproducible():
    files = corpus.stdlib_files()
    val = [f for f in files if corpus.is_validation_file(f)]
    assert 0 < len(val) < len(files) // 4
    assert all("site-packages" not in str(f) for f in files)
    first, second = corpus.load_corpus(5000, 3000), corpus.load_corpus(5000, 3000)
    assert np.array_equal(first.train, second.train) and np.array_equal(first.val, second.val)
    n_train, n_val = corpus.available_chars()
    assert n_train > 4 * n_val > 0
    # each side is its own files' text: whole files, none on both sides
    train = sorted(set(files) - set(val), key=lambda f: zlib.crc32(f.name.encode()))
    for side, paths, n in ((first.train, train, 5000), (first.val, val, 3000)):
        text = "".join(f.read_text(encoding="utf-8") for f in paths[:5])[:n]
        assert corpus.decode(side) == corpus.decode(corpus.encode(text))


def test_corpus_arrays_are_read_only_prefixes():
    small, large = corpus.load_corpus(100, 10), corpus.load_corpus(1000, 20)
    assert np.array_equal(small.train, large.train[:100])
    with pytest.raises(ValueError):
        small.train[0] = 1


@pytest.mark.parametrize(
    ("n_train", "n_val", "message"),
    [(0, 10, "n_train must be in"), (10, 0, "n_val must be in"), (10**9, 10, "n_train must be")],
)
def test_corpus_rejects_bad_sizes(n_train, n_val, message):
    with pytest.raises(ValueError, match=message):
        corpus.load_corpus(n_train, n_val)


# --- model -----------------------------------------------------------------------------------


def test_logits_shape_and_causality():
    model = _model(dataclasses.replace(SMALL, **RATES)).eval()
    ids = _ids()
    logits = model(ids)
    assert logits.shape == (3, 8, corpus.VOCAB_SIZE)
    changed = ids.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % corpus.VOCAB_SIZE
    torch.testing.assert_close(model(changed)[:, :5], logits[:, :5])
    assert not torch.allclose(model(changed)[:, 5:], logits[:, 5:])


def test_eval_mode_is_deterministic_and_drops_nothing():
    ids = _ids()
    with_rates = _model(dataclasses.replace(SMALL, **RATES)).eval()
    without = _model(SMALL).eval()  # the same weights: the same seed, rates draw no weights
    torch.testing.assert_close(with_rates(ids), with_rates(ids))
    torch.testing.assert_close(with_rates(ids), without(ids))


@pytest.mark.parametrize("placement", list(RATES))
def test_each_placement_drops_in_training_reproducibly(placement):
    config = dataclasses.replace(SMALL, **{placement: 0.3})
    ids = _ids()
    first, second = _model(config, seed=1), _model(config, seed=1)
    out = first(ids)
    torch.testing.assert_close(out, second(ids))  # same seed, same masks
    assert not torch.allclose(out, first.eval()(ids))
    assert not torch.allclose(out, first.train()(ids))  # a fresh mask on the next call


def test_p_zero_training_equals_evaluation():
    model, ids = _model(), _ids()
    torch.testing.assert_close(model.train()(ids), model.eval()(ids))


def test_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        ModelConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="p_attention"):
        ModelConfig(p_attention=1.5)
    with pytest.raises(ValueError, match="at most context"):
        _model()(_ids(t=9))
    with pytest.raises(ValueError, match="rank 2"):
        _model()(_ids()[0])
    with pytest.raises(ValueError, match="steps"):
        LanguageModelJob(n_train=100, steps=0)


def test_loss_starts_near_uniform_and_training_lowers_it():
    model = _model()
    assert next_char_loss(model, _ids(t=9)).item() == pytest.approx(uniform_loss(), abs=0.05)
    job = LanguageModelJob(n_train=5000, model=dataclasses.replace(SMALL, **RATES), steps=30)
    job = dataclasses.replace(job, eval_every=10, n_eval=8, n_val=2000, batch_size=8)
    result = train_language_model(job)
    assert result.steps.tolist() == [0, 10, 20, 30]
    assert result.val_loss[-1] < result.val_loss[0] - 0.5
    assert result.train_loss[-1] < result.train_loss[0] - 0.5
    again = train_language_model(job)
    np.testing.assert_array_equal(result.val_loss, again.val_loss)


def test_heads_match_torchs_fused_attention_without_dropout():
    layer = CausalSelfAttention(d_model=8, n_heads=2, p=0.5, generator=torch.Generator()).eval()
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1))
    q, k, v = (t.unflatten(-1, (2, 4)).transpose(1, 2) for t in layer.qkv(x).chunk(3, dim=-1))
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2)
    torch.testing.assert_close(layer(x), layer.out(fused))


def test_evaluate_uses_eval_mode_and_restores_the_mode():
    model, windows = _model(dataclasses.replace(SMALL, **RATES)), _ids(t=9)
    assert evaluate(model, windows) == evaluate(model, windows)
    assert model.training
