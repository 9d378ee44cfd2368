"""Chapter 7's small networks and training jobs: shapes, train/eval modes, seeds, the slot."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from dropout_course.torch.dropblock import DropBlock
from dropout_course.torch.dropout import ChannelDropout, Dropout
from dropout_course.torch.models import (
    CNNJob,
    JobResult,
    ResidualJob,
    ResidualMLP,
    SmallCNN,
    dropout_slot,
    residual_drop,
    train_job,
)
from dropout_course.torch.residual import DropPath, StochasticDepth

DIGITS = 784


def _residual(drop: str, seed: int = 0) -> ResidualMLP:
    generator = torch.Generator().manual_seed(seed)
    return ResidualMLP(
        DIGITS, 10, width=16, n_blocks=4, drop=drop, final_survival=0.5, generator=generator
    )


def _cnn(kind: str, seed: int = 0, p: float = 0.3) -> SmallCNN:
    generator = torch.Generator().manual_seed(seed)
    return SmallCNN(10, channels=(2, 4), kind=kind, p=p, block_size=3, generator=generator)


def _inputs(n: int = 6) -> torch.Tensor:
    return torch.rand(n, DIGITS, generator=torch.Generator().manual_seed(99))


NETWORKS = [
    *(
        pytest.param(_residual, drop, id=f"residual-{drop}")
        for drop in ("none", "drop_path", "stochastic_depth")
    ),
    *(
        pytest.param(_cnn, kind, id=f"cnn-{kind}")
        for kind in ("none", "dropout", "channel", "dropblock")
    ),
]


@pytest.mark.parametrize("build, kind", NETWORKS)
def test_logits_have_one_row_per_example(build, kind):
    assert build(kind)(_inputs()).shape == (6, 10)


@pytest.mark.parametrize("build, kind", NETWORKS)
def test_eval_mode_is_deterministic(build, kind):
    model = build(kind).eval()
    x = _inputs()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("build, kind", [n for n in NETWORKS if "none" not in n.id])
def test_train_mode_differs_from_eval_and_is_reproducible_from_the_seed(build, kind):
    x = _inputs(32)
    first, again = build(kind, seed=3), build(kind, seed=3)
    evaluation = first.eval()(x)
    first.train()
    again.train()
    outputs = first(x)
    assert not torch.allclose(outputs, evaluation)
    assert torch.equal(outputs, again(x))


@pytest.mark.parametrize(
    "kind, layer", [("dropout", Dropout), ("channel", ChannelDropout), ("dropblock", DropBlock)]
)
def test_the_dropout_slot_holds_the_chosen_layer(kind, layer):
    model = _cnn(kind)
    assert type(model.slot) is layer and model.slot.p == 0.3
    assert isinstance(_cnn("none").slot, nn.Identity)
    assert model.features(_inputs()).shape == (6, 4, 14, 14)
    out = model.slot.train()(torch.ones(6, 4, 14, 14))
    constant_maps = (out == out[..., :1, :1]).all(dim=(2, 3))
    assert constant_maps.all() == (kind == "channel")  # only channel dropout drops whole maps


def test_residual_blocks_use_the_linear_survival_rule():
    path, depth = _residual("drop_path"), _residual("stochastic_depth")
    survivals = [0.875, 0.75, 0.625, 0.5]
    assert all(type(block.drop) is DropPath for block in path.blocks)
    assert [block.drop.p for block in path.blocks] == pytest.approx([1 - q for q in survivals])
    assert [block.drop.survival for block in depth.blocks] == pytest.approx(survivals)
    assert all(isinstance(block.drop, nn.Identity) for block in _residual("none").blocks)
    assert type(residual_drop("stochastic_depth", 0.5, torch.Generator())) is StochasticDepth


def test_a_job_result_is_reproducible_and_picklable():
    job = CNNJob(kind="dropblock", p=0.2, seed=1, n_train=20, epochs=1, channels=(2, 2))
    job = pickle.loads(pickle.dumps(job))
    result = train_job(job)
    assert isinstance(result, JobResult) and 0.0 <= result.val_acc <= 1.0
    assert result == train_job(job)
    other = train_job(ResidualJob(drop="drop_path", seed=1, n_train=20, epochs=1, width=8))
    assert other == train_job(ResidualJob(drop="drop_path", seed=1, n_train=20, epochs=1, width=8))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: ResidualJob(drop="dropblock"), ValueError, "drop must be one of"),
        (lambda: ResidualJob(final_survival=1.5), ValueError, "final_survival"),
        (lambda: ResidualJob(n_blocks=0), ValueError, "n_blocks"),
        (lambda: CNNJob(kind="drop_path"), ValueError, "kind must be one of"),
        (lambda: CNNJob(p=1.0), ValueError, "p must be in"),
        (lambda: CNNJob(block_size=15), ValueError, "block_size must be in"),
        (lambda: CNNJob(n_train=5), ValueError, "n_train"),
        (lambda: CNNJob(seed=-1), ValueError, "seed"),
        (lambda: CNNJob(epochs=1.5), TypeError, "epochs"),
        (lambda: dropout_slot("dropblock", 0.1, 0, torch.Generator()), ValueError, "block_size"),
        (lambda: train_job("job"), TypeError, "job must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
