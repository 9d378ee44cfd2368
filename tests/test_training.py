"""MLP trainers (numpy and torch): config checks, gradients, determinism, learning, max-norm."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import data
from dropout_course import training as tr
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import dropout as td
from dropout_course.torch import training as tt
from dropout_course.torch import variants as tv

COMBINATIONS = [
    ("bernoulli", "relu"),
    ("gaussian", "relu"),
    ("alpha", "selu"),
    ("bernoulli", "selu"),
]
VAL_ACC_BOUND = 0.85
"""Digits, 300 balanced training examples, p_hidden=0.5, 64 hidden units, 30 epochs: measured final
val accuracy 0.927-0.962 over seeds 0-5 for both trainers (0.929 numpy, 0.944 torch at seed 0), so
0.85 leaves a margin of about 8 points."""


@pytest.fixture(scope="module")
def digits_300():
    return data.load_digits_split(seed=0, n_train=300)


@pytest.fixture(scope="module")
def clusters():
    return data.synthetic_classification(240, seed=0, n_classes=3, n_features=4)


def _small_config(**changes):
    return replace(tr.TrainConfig(hidden=(16,), epochs=4, batch_size=16, lr=0.05), **changes)


# --- TrainConfig -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"hidden": (64, 0)}, ValueError, r"hidden\[1\] must be >= 1, but got hidden\[1\]=0"),
        ({"hidden": "64"}, TypeError, r"hidden must be a tuple of layer widths"),
        ({"hidden": (32.0,)}, TypeError, r"hidden\[0\] must be an integer"),
        ({"p_hidden": 1.0}, ValueError, r"p_hidden must be in \[0, 1\), but got p_hidden=1\.0"),
        ({"p_input": -0.1}, ValueError, r"between 0 and 1, but got p_input=-0\.1"),
        ({"p_hidden": float("nan")}, ValueError, r"p_hidden=nan"),
        ({"dropout": "dropconnect"}, ValueError, r"dropout must be one of \('bernoulli'"),
        ({"activation": "tanh"}, ValueError, r"activation must be one of \('relu', 'selu'\)"),
        ({"dropout": "alpha"}, ValueError, r"dropout='alpha' needs activation='selu'"),
        ({"max_norm": 0.0}, ValueError, r"max_norm must be a finite number > 0"),
        ({"lr": -0.1}, ValueError, r"lr must be a finite number > 0, but got lr=-0\.1"),
        ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\), but got momentum=1\.0"),
        ({"epochs": 0}, ValueError, r"epochs must be >= 1, but got epochs=0"),
        ({"batch_size": 0}, ValueError, r"batch_size must be >= 1"),
        ({"batch_size": 8.5}, TypeError, r"batch_size must be an integer"),
        ({"weight_decay": -1e-4}, ValueError, r"weight_decay must be in \[0, inf\)"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, "),
        ({"lr_decay": 0.0}, ValueError, r"lr_decay must be in \(0, 1\], but got lr_decay=0\.0"),
        ({"lr_decay": 1.5}, ValueError, r"lr_decay must be in \(0, 1\]"),
        ({"dropout_start": -1}, ValueError, r"dropout_start must be >= 0"),
        ({"dropout_start": 3, "dropout_stop": 3}, ValueError, r"dropout_stop must be >= 4"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(changes, error, message):
    with pytest.raises(error, match=message):
        tr.TrainConfig(**changes)


def test_config_accepts_a_list_of_widths_and_no_hidden_layer():
    assert tr.TrainConfig(hidden=[32, 16]).hidden == (32, 16)
    assert tr.TrainConfig(hidden=()).hidden == ()
    assert tr.TrainConfig(dropout="alpha", activation="selu").dropout == "alpha"


def test_trainers_reject_a_config_that_is_not_a_train_config(clusters):
    for train in (tr.train_mlp, tt.train_mlp):
        with pytest.raises(TypeError, match="config must be a TrainConfig"):
            train(clusters, {"epochs": 1})


# --- numpy: gradients ------------------------------------------------------------------------


def _with_array(params, kind, index, array):
    arrays = list(getattr(params, kind))
    arrays[index] = array
    return replace(params, **{kind: tuple(arrays)})


@pytest.mark.parametrize(("dropout", "activation"), COMBINATIONS)
def test_backward_matches_numerical_directional_derivatives(dropout, activation):
    # Elementwise central differences of a mean loss lose small entries to rounding (error
    # ~ eps * loss / h against entries as small as 1e-5), so each parameter array is checked
    # along random directions v instead (as jax.test_util.check_grads does): the derivative of
    # t -> loss(W + t v) at 0 must equal <dW, v>. The dropout noise is the same in every call.
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, size=6)
    config = tr.TrainConfig(
        hidden=(7, 6), p_input=0.2, p_hidden=0.3, dropout=dropout, activation=activation
    )
    params = tr.init_mlp((5, 7, 6, 3), activation, np.random.default_rng(1))

    def loss(candidate):
        return tr.loss_and_gradients(candidate, x, y, config, np.random.default_rng(2))[0]

    _, grads = tr.loss_and_gradients(params, x, y, config, np.random.default_rng(2))
    for kind in ("weights", "biases"):
        for index, (array, grad) in enumerate(
            zip(getattr(params, kind), getattr(grads, kind), strict=True)
        ):
            assert grad.shape == array.shape
            for _ in range(3):
                direction = rng.standard_normal(array.shape)
                numeric = numerical_gradient(
                    lambda t, a=array, d=direction, i=index, k=kind: np.array(
                        loss(_with_array(params, k, i, a + t[0] * d))
                    ),
                    np.zeros(1),
                    np.array(1.0),
                )
                assert rel_error(np.sum(grad * direction), numeric[0]) < 1e-7


def test_backward_without_dropout_matches_elementwise_numerical_gradient():
    # Without dropout and with one example the gradients are all of order 0.01-1, so the
    # elementwise check is well conditioned.
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((1, 4)), np.array([1])
    config = tr.TrainConfig(hidden=(5,), p_hidden=0.0, activation="selu")
    params = tr.init_mlp((4, 5, 3), "selu", np.random.default_rng(4))
    _, grads = tr.loss_and_gradients(params, x, y, config, np.random.default_rng(5))
    arrays, gradients = params.weights + params.biases, grads.weights + grads.biases
    for array, grad in zip(arrays, gradients, strict=True):
        numeric = numerical_gradient(
            lambda _: np.array(
                tr.loss_and_gradients(params, x, y, config, np.random.default_rng(5))[0]
            ),
            array,
            np.array(1.0),
        )
        assert rel_error(grad, numeric) < 1e-7


# --- numpy: training -------------------------------------------------------------------------


def test_same_seed_gives_identical_history_and_weights(clusters):
    config = _small_config(p_input=0.1, max_norm=2.0)
    first, second = tr.train_mlp(clusters, config), tr.train_mlp(clusters, config)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        np.testing.assert_array_equal(getattr(first.history, name), getattr(second.history, name))
        assert getattr(first.history, name).shape == (config.epochs,)
    for a, b in zip(first.params.weights, second.params.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    other = tr.train_mlp(clusters, replace(config, seed=1))
    assert not np.array_equal(other.history.train_loss, first.history.train_loss)
    assert first.config is config


def test_one_full_batch_step_is_plain_sgd_from_the_seeded_initialisation(clusters):
    # momentum buffer starts at the gradient: after one step W = W0 - lr * (dW + wd * W0)
    config = _small_config(epochs=1, batch_size=10_000, weight_decay=0.01, p_hidden=0.3)
    rng = np.random.default_rng(config.seed)
    initial = tr.init_mlp((4, 16, 3), "relu", rng)
    order = rng.permutation(len(clusters.y_train))
    x = clusters.x_train.astype(np.float64)[order]
    _, grads = tr.loss_and_gradients(initial, x, clusters.y_train[order], config, rng)
    result = tr.train_mlp(clusters, config)
    for W0, dW, W in zip(initial.weights, grads.weights, result.params.weights, strict=True):
        np.testing.assert_allclose(W, W0 - config.lr * (dW + config.weight_decay * W0))
    for b0, db, b in zip(initial.biases, grads.biases, result.params.biases, strict=True):
        np.testing.assert_allclose(b, b0 - config.lr * db)


@pytest.mark.parametrize(("dropout", "activation"), COMBINATIONS)
def test_loss_decreases_for_every_dropout_kind(clusters, dropout, activation):
    # 8 epochs: at 4, one seed of Gaussian dropout with ReLU still sits at 0.62 (others 0.19-0.31).
    config = _small_config(
        dropout=dropout, activation=activation, p_input=0.1, p_hidden=0.2, epochs=8
    )
    history = tr.train_mlp(clusters, config).history
    initial_loss = math.log(3)  # roughly: an untrained net is close to uniform on 3 classes
    assert history.train_loss[-1] < 0.5 * initial_loss
    assert history.train_loss[-1] < history.train_loss[0]


def _assert_same_history(first, second, epochs=slice(None)):
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        np.testing.assert_array_equal(
            getattr(first.history, name)[epochs], getattr(second.history, name)[epochs]
        )


@pytest.mark.parametrize("trainer", [tr.train_mlp, tt.train_mlp], ids=["numpy", "torch"])
def test_epochs_outside_the_dropout_window_train_as_without_dropout(clusters, trainer):
    config = _small_config(p_input=0.1, p_hidden=0.5)
    plain = trainer(clusters, replace(config, p_input=0.0, p_hidden=0.0))
    _assert_same_history(trainer(clusters, replace(config, dropout_start=config.epochs)), plain)
    constant = trainer(clusters, config)
    early = trainer(clusters, replace(config, dropout_stop=2))
    _assert_same_history(early, constant, slice(0, 2))  # epochs 0-1: dropout on, same draws
    assert not np.array_equal(early.history.train_loss[2:], constant.history.train_loss[2:])
    late = trainer(clusters, replace(config, dropout_start=2))
    _assert_same_history(late, plain, slice(0, 2))
    assert not np.array_equal(late.history.train_loss[2:], plain.history.train_loss[2:])


def test_at_epoch_gives_the_scheduled_learning_rate_and_rates():
    config = tr.TrainConfig(lr=0.2, lr_decay=0.5, p_input=0.1, p_hidden=0.4, dropout_stop=3)
    assert [config.at_epoch(e).lr for e in range(4)] == [0.2, 0.1, 0.05, 0.025]
    assert [config.at_epoch(e).p_hidden for e in range(4)] == [0.4, 0.4, 0.4, 0.0]
    assert config.at_epoch(3).p_input == 0.0
    late = replace(config, dropout_start=2, dropout_stop=None)
    assert [late.dropout_on(e) for e in range(4)] == [False, False, True, True]


def test_the_learning_rate_decays_after_every_epoch(clusters):
    # full batch, no momentum: epoch e moves the weights by lr * lr_decay**e times the gradient
    config = _small_config(epochs=2, batch_size=10_000, momentum=0.0, p_hidden=0.0, lr_decay=0.3)
    one_epoch = tr.train_mlp(clusters, replace(config, epochs=1)).params
    rng = np.random.default_rng(config.seed)
    tr.init_mlp((4, 16, 3), "relu", rng)
    rng.permutation(len(clusters.y_train))  # epoch 0's order
    order = rng.permutation(len(clusters.y_train))
    x, y = clusters.x_train.astype(np.float64)[order], clusters.y_train[order]
    _, grads = tr.loss_and_gradients(one_epoch, x, y, config, rng)
    result = tr.train_mlp(clusters, config)
    for W1, dW, W in zip(one_epoch.weights, grads.weights, result.params.weights, strict=True):
        np.testing.assert_allclose(W, W1 - config.lr * config.lr_decay * dW)


def test_torch_fit_decays_every_parameter_group(clusters):
    config = _small_config(epochs=3, lr_decay=0.5)
    model = tt.build_mlp(config, 4, 3, torch.Generator().manual_seed(0))
    optimizer = tt.sgd(model, config, weight_lr_factors=[1.0, 4.0])
    x, y = torch.as_tensor(clusters.x_train), torch.as_tensor(clusters.y_train)
    tt.fit(model, x, y, config, torch.Generator().manual_seed(0), optimizer=optimizer)
    assert sorted(group["lr"] for group in optimizer.param_groups) == pytest.approx(
        sorted(config.lr * 0.25 * factor for factor in (1.0, 4.0, 1.0))
    )


def test_dropout_on_a_small_digits_subset_reaches_a_sane_validation_accuracy(digits_300):
    result = tr.train_mlp(digits_300, tr.TrainConfig(hidden=(64,), p_hidden=0.5, epochs=30))
    assert result.history.val_acc[-1] > VAL_ACC_BOUND
    proba = tr.predict_proba(result.params, digits_300.x_val)
    assert tr.accuracy(proba, digits_300.y_val) == result.history.val_acc[-1]


def test_max_norm_bounds_the_incoming_weights_of_every_unit(clusters):
    c = 0.8
    result = tr.train_mlp(clusters, _small_config(max_norm=c, lr=0.2))
    norms = [np.linalg.norm(W, axis=0) for W in result.params.weights]
    assert all(np.all(n <= c * (1 + 1e-12)) for n in norms)
    assert any(np.isclose(n, c).any() for n in norms)  # the constraint was active


def test_weight_decay_shrinks_the_weights(clusters):
    plain = tr.train_mlp(clusters, _small_config())
    decayed = tr.train_mlp(clusters, _small_config(weight_decay=0.05))
    size = [sum(float(np.sum(W**2)) for W in r.params.weights) for r in (plain, decayed)]
    assert size[1] < size[0]


def test_predict_proba_hidden_activations_and_accuracy(clusters):
    params = tr.init_mlp((4, 8, 6, 3), "relu", np.random.default_rng(0))
    proba = tr.predict_proba(params, clusters.x_val)
    assert proba.shape == (len(clusters.y_val), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    hidden = tr.hidden_activations(params, clusters.x_val)
    assert [h.shape[1] for h in hidden] == [8, 6] and all(np.all(h >= 0) for h in hidden)
    assert tr.accuracy(np.eye(3)[[0, 2, 1, 1]], np.array([0, 2, 1, 0])) == 0.75
    with pytest.raises(ValueError, match=r"x must have 4 features.*shape \(2, 3\)"):
        tr.predict_proba(params, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"scores and y must hold the same number"):
        tr.accuracy(np.ones((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"scores must have rank 2"):
        tr.accuracy(np.ones(3), np.zeros(3))
    config = tr.TrainConfig(hidden=(8, 6))
    with pytest.raises(ValueError, match=r"y must hold one label per row of x"):
        tr.loss_and_gradients(params, np.ones((2, 4)), np.zeros(3, dtype=int), config, None)
    with pytest.raises(ValueError, match="needs rng"):
        tr.loss_and_gradients(params, np.ones((2, 4)), np.zeros(2, dtype=int), config, None)
    with pytest.raises(ValueError, match=r"sizes\[1\] must be >= 1"):
        tr.init_mlp((4, 0, 3), "relu", np.random.default_rng(0))
    with pytest.raises(ValueError, match="activation must be one of"):
        tr.init_std(4, "tanh")


def test_progress_bar_only_when_asked(clusters, capsys):
    tr.train_mlp(clusters, _small_config(epochs=1))
    assert capsys.readouterr().err == ""
    tr.train_mlp(clusters, _small_config(epochs=1), progress=True)
    assert "epochs" in capsys.readouterr().err


# --- torch trainer ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_torch_same_seed_gives_identical_history(clusters, device):
    # bit for bit on CPU; CUDA kernels may sum in a different order from run to run
    if device == "cpu":
        same = np.testing.assert_array_equal
    else:
        same = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-6)
    config = _small_config(p_input=0.1, max_norm=2.0)
    first = tt.train_mlp(clusters, config, device=device)
    second = tt.train_mlp(clusters, config, device=device)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        same(getattr(first.history, name), getattr(second.history, name))
    for a, b in zip(first.params.weights, second.params.weights, strict=True):
        same(a, b)
    other = tt.train_mlp(clusters, replace(config, seed=1), device=device)
    assert not np.allclose(other.history.train_loss, first.history.train_loss)


def test_torch_trainer_leaves_the_global_generator_alone(clusters):
    before = torch.random.get_rng_state()
    tt.train_mlp(clusters, _small_config(epochs=1))
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dropout", "activation"), COMBINATIONS)
def test_torch_loss_decreases_for_every_dropout_kind(clusters, device, dropout, activation):
    config = _small_config(dropout=dropout, activation=activation, p_input=0.1, p_hidden=0.2)
    history = tt.train_mlp(clusters, config, device=device).history
    assert history.train_loss[-1] < 0.5 * math.log(3)
    assert history.train_loss[-1] < history.train_loss[0]


def test_torch_dropout_on_a_small_digits_subset_reaches_a_sane_validation_accuracy(digits_300):
    result = tt.train_mlp(digits_300, tr.TrainConfig(hidden=(64,), p_hidden=0.5, epochs=30))
    assert result.history.val_acc[-1] > VAL_ACC_BOUND
    # the numpy layout of the weights reproduces the torch model's predictions
    proba = tr.predict_proba(result.params, digits_300.x_val)
    assert tr.accuracy(proba, digits_300.y_val) == pytest.approx(result.history.val_acc[-1])


@pytest.mark.parametrize("device", DEVICES)
def test_torch_max_norm_bounds_columns_of_the_numpy_layout(clusters, device):
    # nn.Linear stores weights as (D_out, D_in); the trainer must constrain its rows, which are
    # the columns of the (D_in, D_out) numpy layout in TrainResult.params.
    c = 0.8
    result = tt.train_mlp(clusters, _small_config(max_norm=c, lr=0.2), device=device)
    norms = [np.linalg.norm(W, axis=0) for W in result.params.weights]
    assert all(np.all(n <= c * (1 + 1e-6)) for n in norms)
    assert any(np.isclose(n, c, rtol=1e-5).any() for n in norms)


def test_build_mlp_uses_our_layers_on_the_generator_device():
    generator = torch.Generator().manual_seed(0)
    config = tr.TrainConfig(hidden=(8, 8), p_input=0.2, dropout="gaussian")
    model = tt.build_mlp(config, 5, 3, generator)
    kinds = [type(module).__name__ for module in model]
    hidden_block = ["GaussianDropout", "Linear", "ReLU"]
    assert kinds == [*hidden_block, *hidden_block, "GaussianDropout", "Linear"]
    alpha = tt.build_mlp(tr.TrainConfig(dropout="alpha", activation="selu"), 5, 3, generator)
    assert isinstance(alpha[2], tv.AlphaDropout) and isinstance(alpha[1], torch.nn.SELU)
    wide = tt.build_mlp(tr.TrainConfig(hidden=(100,)), 200, 3, generator)[0].weight
    # He initialisation: 20000 weights, so the sample std is within 0.5% (1 sd) of sqrt(2 / 200);
    # the bound is 20 standard deviations
    assert wide.std().item() == pytest.approx(tr.init_std(200, "relu"), rel=0.1)
    params = tt.to_params(model, "relu")
    assert [W.shape for W in params.weights] == [(5, 8), (8, 8), (8, 3)]


# --- torch trainer: the pieces chapters train with -------------------------------------------


def _float64_net(config, n_features, n_classes, scaling="inverted"):
    generator = torch.Generator().manual_seed(config.seed)
    return tt.build_mlp(config, n_features, n_classes, generator, scaling=scaling).double()


def _tensors(dataset):
    return torch.tensor(dataset.x_train, dtype=torch.float64), torch.tensor(dataset.y_train)


def test_build_mlp_sets_the_scaling_of_its_dropout_layers():
    generator = torch.Generator().manual_seed(0)
    config = tr.TrainConfig(hidden=(8,), p_input=0.2, p_hidden=0.5)
    model = tt.build_mlp(config, 5, 3, generator, scaling="classic")
    assert [layer.scaling for layer in model if isinstance(layer, td.Dropout)] == ["classic"] * 2
    model.eval()  # classic evaluation multiplies by 1 - p: the first layer outputs 0.8 x
    assert torch.equal(model[0](torch.ones(2, 5)), torch.full((2, 5), 0.8))
    with pytest.raises(ValueError, match=r"scaling must be one of"):
        tt.build_mlp(config, 5, 3, generator, scaling="paper")
    with pytest.raises(ValueError, match=r"scaling='classic' needs config.dropout='bernoulli'"):
        tt.build_mlp(replace(config, dropout="gaussian"), 5, 3, generator, scaling="classic")


def test_sgd_gives_each_layer_its_learning_rate_factor(clusters):
    # one full-batch step from zero momentum: W = W0 - lr * factor * dW, b = b0 - lr * db
    config = _small_config(p_hidden=0.0, batch_size=10_000, epochs=1, lr=0.1)
    model = _float64_net(config, 4, 3)
    x, y = _tensors(clusters)
    initial = [param.detach().clone() for param in model.parameters()]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = [param.grad.clone() for param in model.parameters()]
    model.zero_grad()
    optimizer = tt.sgd(model, config, weight_lr_factors=[0.5, 2.0])
    assert [group["lr"] for group in optimizer.param_groups] == [0.05, 0.2, 0.1]
    tt.fit(model, x, y, config, torch.Generator().manual_seed(0), optimizer=optimizer)
    factors = [0.5, 1.0, 2.0, 1.0]  # weight 0, bias 0, weight 1, bias 1
    for param, start, grad, factor in zip(model.parameters(), initial, grads, factors, strict=True):
        torch.testing.assert_close(param.detach(), start - config.lr * factor * grad)


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ([1.0], r"weight_lr_factors must hold one factor per nn.Linear layer \(2\), but got 1"),
        ([1.0, 0.0], r"weight_lr_factors\[1\] must be a finite number > 0"),
    ],
)
def test_sgd_rejects_bad_factors_naming_the_argument(factors, message):
    model = _float64_net(_small_config(), 4, 3)
    with pytest.raises(ValueError, match=message):
        tt.sgd(model, _small_config(), weight_lr_factors=factors)


def test_sgd_refuses_a_model_with_parameters_outside_linear_layers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    with pytest.raises(ValueError, match=r"other parameters: \['1.weight', '1.bias'\]"):
        tt.sgd(model, _small_config())


def test_classic_training_is_inverted_training_with_scaled_weights_and_learning_rates(clusters):
    # Chapter 2's claim: W_inverted = (1 - p) W_classic holds through training when the weights
    # after a dropout layer with keep probability q learn at q**2 times the learning rate (same
    # masks: both nets draw them from a generator seeded alike, in the same order).
    config = _small_config(p_input=0.2, p_hidden=0.5, epochs=3)
    keeps = [1 - config.p_input, 1 - config.p_hidden]
    x, y = _tensors(clusters)
    classic = _float64_net(config, 4, 3, scaling="classic")
    inverted = _float64_net(config, 4, 3)
    linears = [
        [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        for net in (classic, inverted)
    ]
    with torch.no_grad():
        for linear, keep in zip(linears[1], keeps, strict=True):
            linear.weight *= keep
    initial = [linear.weight.detach().clone() for linear in linears[0]]
    for net, factors in ((classic, None), (inverted, [keep**2 for keep in keeps])):
        optimizer = tt.sgd(net, config, weight_lr_factors=factors)
        order = torch.Generator().manual_seed(config.seed)
        tt.fit(net, x, y, config, order, optimizer=optimizer)
    for classic_linear, inverted_linear, keep, start in zip(*linears, keeps, initial, strict=True):
        assert (classic_linear.weight - start).abs().max() > 0.01  # training moved the weights
        torch.testing.assert_close(
            keep * classic_linear.weight, inverted_linear.weight, rtol=0, atol=1e-12
        )


def test_fit_reports_after_every_epoch_in_eval_mode_and_leaves_eval_mode(clusters):
    config = _small_config(p_hidden=0.5)
    model = _float64_net(config, 4, 3)
    x, y = _tensors(clusters)
    x_val, y_val = torch.tensor(clusters.x_val, dtype=torch.float64), torch.tensor(clusters.y_val)

    def report():
        assert not model.training and not torch.is_grad_enabled()
        return tt.evaluate(model, x_val, y_val)

    results = tt.fit(model, x, y, config, torch.Generator().manual_seed(0), after_epoch=report)
    assert len(results) == config.epochs and not model.training
    assert isinstance(results[-1], tt.Evaluation) and 0.0 <= results[-1].accuracy <= 1.0
    assert results[-1].loss < results[0].loss
    assert tt.fit(model, x, y, config, torch.Generator().manual_seed(0)) == []


def test_fit_trains_a_plain_function_with_its_own_optimizer_and_loss():
    # least squares y = 3 x through a function (no nn.Module), full batch, Adam
    generator = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 20, dtype=torch.float64)[:, None]
    slope = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    config = tr.TrainConfig(lr=0.1, epochs=300, batch_size=20)
    tt.fit(
        lambda batch: batch * slope,
        x,
        3 * x,
        config,
        generator,
        optimizer=torch.optim.Adam([slope], lr=config.lr),
        loss=torch.nn.functional.mse_loss,
    )
    assert slope.item() == pytest.approx(3.0, abs=1e-3)


def test_fit_rejects_what_it_cannot_train(clusters):
    x, y = _tensors(clusters)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match=r"fit needs an optimizer for a model that is not"):
        tt.fit(lambda batch: batch, x, y, _small_config(), generator)
    slope = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match=r"config.max_norm applies to the nn.Linear layers"):
        tt.fit(
            lambda batch: batch * slope,
            x,
            y,
            _small_config(max_norm=1.0),
            generator,
            optimizer=torch.optim.SGD([slope], lr=0.1),
        )
    with pytest.raises(ValueError, match=r"x and y must hold the same number of examples"):
        tt.fit(_float64_net(_small_config(), 4, 3), x, y[:-1], _small_config(), generator)
    with pytest.raises(TypeError, match=r"config must be a TrainConfig"):
        tt.fit(_float64_net(_small_config(), 4, 3), x, y, {"epochs": 1}, generator)
