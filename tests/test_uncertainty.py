"""Chapter 9's helpers: MC-dropout and ensemble outputs, training jobs, Gal's weight decay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from dropout_course.torch.dropout import Dropout
from dropout_course.torch.training import build_mlp
from dropout_course.torch.uncertainty import (
    DigitsJob,
    RegressionJob,
    ensemble_outputs,
    gal_param_groups,
    mc_dropout_outputs,
    predictive_probs,
    rotate_digits,
    train_digits_classifier,
    train_regressor,
)
from dropout_course.training import TrainConfig

CONFIG = TrainConfig(hidden=(16, 16), p_hidden=0.5, epochs=1, seed=0)


def _net(config: TrainConfig = CONFIG, n_features: int = 3, n_out: int = 4) -> nn.Sequential:
    return build_mlp(config, n_features, n_out, torch.Generator().manual_seed(config.seed))


def _inputs(n: int = 5, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(1))


# --- mc_dropout_outputs ------------------------------------------------------------------------


def test_mc_dropout_outputs_checks_its_arguments():
    net, x, generator = _net(), _inputs(), torch.Generator()
    with pytest.raises(ValueError, match="passes"):
        mc_dropout_outputs(net, x, 0, generator)
    with pytest.raises(TypeError, match="generator"):
        mc_dropout_outputs(net, x, 2, 0)
    with pytest.raises(ValueError, match="x"):
        mc_dropout_outputs(net, x[0], 2, generator)
    with pytest.raises(TypeError, match=r"nn\.Sequential"):
        mc_dropout_outputs(net[0], x, 2, generator)
    with pytest.raises(TypeError, match="Dropout"):
        mc_dropout_outputs(nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 4)), x, 2, generator)


def test_mc_dropout_outputs_are_the_layers_with_masks_from_the_generator():
    net, x = _net(), _inputs()
    outputs = mc_dropout_outputs(net, x, 7, torch.Generator().manual_seed(3))
    assert outputs.shape == (7, 5, 4)
    again = mc_dropout_outputs(net, x, 7, torch.Generator().manual_seed(3))
    assert torch.equal(outputs, again)  # the generator alone draws the masks
    assert not torch.allclose(outputs[0], outputs[1])  # a fresh mask per pass
    # pass by pass, the same as running the layers with the same masks drawn in the same order
    generator = torch.Generator().manual_seed(3)
    h = x.expand(7, *x.shape)
    for layer in net:
        if isinstance(layer, Dropout):
            keep = torch.rand(h.shape, generator=generator) >= layer.p
            h = h * keep / (1 - layer.p)
        else:
            h = layer(h)
    torch.testing.assert_close(outputs, h.detach())


def test_one_mask_per_pass_makes_each_pass_one_subnetwork():
    config = TrainConfig(hidden=(16,), p_hidden=0.5, seed=0)
    net = _net(config, n_features=1, n_out=1)
    x = torch.ones(4, 1)  # identical inputs: a shared mask gives identical outputs
    shared = mc_dropout_outputs(net, x, 6, torch.Generator().manual_seed(0), one_mask_per_pass=True)
    assert torch.allclose(shared, shared[:, :1].expand_as(shared))
    fresh = mc_dropout_outputs(net, x, 6, torch.Generator().manual_seed(0))
    assert not torch.allclose(fresh, fresh[:, :1].expand_as(fresh))


# --- ensemble_outputs, predictive_probs ---------------------------------------------------------


def test_ensemble_outputs_stacks_the_members_in_eval_mode():
    members = [_net(replace(CONFIG, seed=seed)) for seed in range(3)]
    x = _inputs()
    members[1].train()
    outputs = ensemble_outputs(members, x)
    assert outputs.shape == (3, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(outputs[1], members[1].eval()(x))
    with pytest.raises(TypeError, match="sequence"):
        ensemble_outputs(members[0], x)
    with pytest.raises(TypeError, match="sequence"):
        ensemble_outputs([], x)


def test_predictive_probs_averages_probabilities_not_logits():
    logits = torch.tensor([[[4.0, 0.0]], [[0.0, 0.0]]])  # (S=2, N=1, K=2)
    expected = (torch.softmax(logits[0], -1) + torch.softmax(logits[1], -1)) / 2
    torch.testing.assert_close(predictive_probs(logits), expected)
    with pytest.raises(ValueError, match="outputs"):
        predictive_probs(logits[0])


# --- training ---------------------------------------------------------------------------------


def test_gal_param_groups_give_the_undropped_first_layer_w_over_1_minus_p():
    config = TrainConfig(hidden=(8, 8), p_hidden=0.2, weight_decay=1e-3)
    groups = gal_param_groups(_net(config), config)
    decays = [group["weight_decay"] for group in groups]
    assert decays == pytest.approx([1e-3 / 0.8, 1e-3, 1e-3, 0.0])
    with pytest.raises(ValueError, match="build_mlp"):
        gal_param_groups(_net(config), replace(config, hidden=(8,)))


def test_jobs_check_their_arguments():
    with pytest.raises(TypeError, match="TrainConfig"):
        DigitsJob({"p": 0.5})
    with pytest.raises(ValueError, match="bernoulli"):
        RegressionJob(TrainConfig(dropout="gaussian"))
    with pytest.raises(ValueError, match="n_train"):
        DigitsJob(CONFIG, n_train=5)
    with pytest.raises(ValueError, match="seed"):
        RegressionJob(CONFIG, data_seed=-1)


def test_training_jobs_are_seeded_and_learn():
    job = DigitsJob(TrainConfig(hidden=(32,), p_hidden=0.2, epochs=3, seed=1), n_train=150)
    first, second = train_digits_classifier(job), train_digits_classifier(job)
    digits = job.dataset()
    x = torch.from_numpy(digits.x_val)
    probs = predictive_probs(ensemble_outputs([first], x))
    torch.testing.assert_close(probs, predictive_probs(ensemble_outputs([second], x)))
    assert (probs.argmax(1).numpy() == digits.y_val).mean() > 0.6  # chance: 0.1

    regression = RegressionJob(
        TrainConfig(
            hidden=(32,), p_hidden=0.1, lr=0.02, epochs=100, batch_size=40, weight_decay=1e-4
        )
    )
    x_train, y_train = regression.data()
    fitted = ensemble_outputs([train_regressor(regression)], x_train)[0]
    assert torch.mean((fitted - y_train) ** 2) < 0.25 * torch.var(y_train)


# --- rotate_digits ------------------------------------------------------------------------------


def test_rotate_digits_turns_the_images():
    image = np.zeros((8, 8), dtype=np.float32)
    image[1, 2:6] = 1.0  # a horizontal bar near the top
    turned = rotate_digits(image.reshape(1, 64), 90).reshape(8, 8)
    assert turned.dtype == np.float32 and 0 <= turned.min() and turned.max() <= 1
    assert turned[2:6, 1].sum() + turned[2:6, 6].sum() > 3  # now a vertical bar at a side
    np.testing.assert_allclose(rotate_digits(image.reshape(1, 64), 0), image.reshape(1, 64))
    with pytest.raises(ValueError, match="8x8"):
        rotate_digits(np.zeros((2, 10), dtype=np.float32), 30)
