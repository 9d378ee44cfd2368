"""Recurrent dropout: a reference LSTM with locked and per-step masks, BPTT, weight drop, twins."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from conftest import DEVICES
from dropout_course import recurrent as nr
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance
from dropout_course.dropconnect import dropconnect_forward
from dropout_course.gradcheck import numerical_gradient, rel_error
from dropout_course.torch import recurrent as tr

N, T, D, H = 2, 3, 3, 2
RATES = dict(p_input=0.3, p_recurrent=0.4, p_output=0.5)
MASK_KINDS = ["none", "locked", "per_step"]
GRAD_TOLERANCE = 1e-6
"""Largest relative error of a float64 backward against central differences with h = 1e-5: the
smallest gradient entries (~1e-4) carry ~1e-7 of difference-quotient error; a wrong formula
gives errors of order 1e-2 to 1."""


def _weights(d=D, h=H, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W_ih, W_hh = rng.standard_normal((4 * h, d)), rng.standard_normal((4 * h, h))
    return W_ih.astype(dtype), W_hh.astype(dtype), rng.standard_normal(4 * h).astype(dtype)


def _inputs(n=N, t=T, d=D, h=H, seed=1, dtype=np.float64):
    """x (n, t, d) and an initial state (h0, c0), each (n, h)."""
    rng = np.random.default_rng(seed)
    x, h0, c0 = (
        rng.standard_normal((n, t, d)),
        rng.standard_normal((n, h)),
        rng.standard_normal((n, h)),
    )
    return x.astype(dtype), h0.astype(dtype), c0.astype(dtype)


def _dropout(kind, n=N, t=T, d=D, h=H, seed=2):
    """RATES and the three keep masks of one forward pass as keyword args ({} for "none")."""
    if kind == "none":
        return {}
    return {**RATES, **_masks(kind == "locked", n, t, d, h, seed)}


def _masks(locked, n=N, t=T, d=D, h=H, seed=2):
    """The three keep masks of one forward pass (input, recurrent, output) as keyword args."""
    rng = np.random.default_rng(seed)
    shapes = {"input_mask": (n, t, d), "recurrent_mask": (n, t, h), "output_mask": (n, t, h)}
    rates = dict(zip(shapes, RATES.values(), strict=True))
    return {k: nr.sequence_mask(s, rates[k], rng, locked=locked) for k, s in shapes.items()}


def _to_torch(arguments, device):
    """Keyword arguments with each numpy array made a tensor on ``device``."""
    return {
        k: torch.from_numpy(v).to(device) if isinstance(v, np.ndarray) else v
        for k, v in arguments.items()
    }


# --- no dropout: the LSTM of torch.nn.LSTM -----------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_no_dropout_matches_torch_nn_lstm(device):
    torch.manual_seed(0)  # nn.LSTM draws its weights from the global generator
    lstm = torch.nn.LSTM(D, H, batch_first=True).double().to(device)
    x, h0, c0 = _inputs()
    tx, th0, tc0 = (torch.from_numpy(a).to(device) for a in (x, h0, c0))
    with torch.no_grad():
        expected, (h_n, c_n) = lstm(tx, (th0[None], tc0[None]))
    W_ih, W_hh, b = (w.cpu().numpy() for w in tr.lstm_weights(lstm))
    out, (h_t, c_t), _ = nr.lstm_forward(x, W_ih, W_hh, b, h0=h0, c0=c0)
    np.testing.assert_allclose(out, expected.cpu().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_t, h_n[0].cpu().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_t, c_n[0].cpu().numpy(), rtol=1e-12, atol=1e-14)
    tout, _ = tr.lstm_forward(tx, *tr.lstm_weights(lstm), h0=th0, c0=tc0)
    assert tout.device.type == device
    torch.testing.assert_close(tout, expected, rtol=1e-12, atol=1e-14)


def test_lstm_weights_sums_the_biases_and_rejects_stacked_lstms():
    lstm = torch.nn.LSTM(3, 2)
    W_ih, W_hh, b = tr.lstm_weights(lstm)
    assert W_ih.shape == (8, 3) and W_hh.shape == (8, 2) and not b.requires_grad
    torch.testing.assert_close(b, (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach())
    assert torch.equal(tr.lstm_weights(torch.nn.LSTM(3, 2, bias=False))[2], torch.zeros(8))
    with pytest.raises(ValueError, match=r"lstm must have num_layers=1.*num_layers=2"):
        tr.lstm_weights(torch.nn.LSTM(3, 2, num_layers=2))
    with pytest.raises(TypeError, match=r"lstm must be a torch\.nn\.LSTM, but got GRU"):
        tr.lstm_weights(torch.nn.GRU(3, 2))


# --- masks -------------------------------------------------------------------------------------


def test_sequence_masks_are_locked_or_per_step():
    rng = np.random.default_rng(3)
    locked = nr.sequence_mask((4, 5, 3), 0.5, rng)
    per_step = nr.sequence_mask((4, 5, 3), 0.5, rng, locked=False)
    assert locked.shape == (4, 1, 3) and per_step.shape == (4, 5, 3) and locked.dtype == bool
    generator = torch.Generator().manual_seed(3)
    assert tr.sequence_mask((4, 5, 3), 0.5, generator).shape == (4, 1, 3)
    assert tr.sequence_mask((4, 5, 3), 0.5, generator, locked=False).shape == (4, 5, 3)


@pytest.mark.parametrize("locked", [True, False])
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_sequence_mask_kept_fraction_within_binomial_bound(locked, p):
    shape = (500, 20, 40)
    for mask in (
        nr.sequence_mask(shape, p, np.random.default_rng(4), locked=locked),
        tr.sequence_mask(shape, p, torch.Generator().manual_seed(4), locked=locked).numpy(),
    ):
        n, kept = mask.size, int(mask.sum())
        # Bernstein, union over the numpy and torch masks: a false fail < FALSE_FAIL = 1e-9
        assert abs(kept - n * (1 - p)) <= binomial_tolerance(n, 1 - p, FALSE_FAIL / 2)


def test_locked_masks_are_the_same_at_every_step_and_per_step_masks_are_not():
    x, _, _ = _inputs(n=8, t=6, seed=5)
    weights = _weights(seed=5)
    for locked in (True, False):
        rng = np.random.default_rng(5)
        out, _, cache = nr.lstm_forward(x, *weights, **RATES, rng=rng, locked=locked)
        output_kept = out != 0  # (N, T, H): an LSTM output is never exactly 0 here
        recurrent = np.stack([c.mask for c in cache.recurrent], axis=1)  # (N, T, H)
        same_over_time = [
            bool(np.all(kept == kept[:, :1])) for kept in (output_kept, recurrent)
        ] + [cache.input.mask.shape[1] == 1]
        assert same_over_time == [locked] * 3


def test_zaremba_placement_leaves_the_recurrent_state_undropped():
    # Zaremba et al.: per-step masks on inputs and outputs only; the state path is the plain one.
    x, _, _ = _inputs(seed=6)
    weights = _weights(seed=6)
    rates = dict(p_input=0.3, p_output=0.5)
    masks = _masks(locked=False, seed=6)
    del masks["recurrent_mask"]
    _, _, cache = nr.lstm_forward(x, *weights, **rates, **masks)
    assert all(c.mask.all() and c.scale == 1.0 for c in cache.recurrent)


# --- exact expectations ------------------------------------------------------------------------


def _expectation(f, shape, p):
    """The mean of ``f(mask)`` over every keep mask of ``shape``, each with its probability."""
    total = 0.0
    for bits in itertools.product([False, True], repeat=int(np.prod(shape))):
        kept = sum(bits)
        total = total + (1 - p) ** kept * p ** (len(bits) - kept) * f(np.array(bits).reshape(shape))
    return total


@pytest.mark.parametrize("locked", [True, False])
def test_expected_output_over_the_output_masks_is_the_eval_output_exactly(locked):
    # The output mask comes after the recurrence, so averaging over all its 2^k values (with
    # their probabilities) gives the evaluation output exactly: k = 2 (locked) or 2 T (per step).
    p, x, weights = 0.3, _inputs(n=1, t=2, seed=7)[0], _weights(seed=7)
    shape = (1, 1, H) if locked else (1, 2, H)
    expected = _expectation(
        lambda mask: nr.lstm_forward(x, *weights, p_output=p, output_mask=mask)[0], shape, p
    )
    eval_out = nr.lstm_forward(x, *weights, p_output=p, train=False)[0]
    np.testing.assert_allclose(expected, eval_out, rtol=1e-13)


def test_expected_weight_drop_is_the_weight_matrix_exactly():
    p, W = 0.25, _weights(h=1, seed=8)[1]  # (4, 1): 16 masks
    expected = _expectation(lambda mask: nr.weight_drop(W, p, mask=mask)[0], W.shape, p)
    np.testing.assert_allclose(expected, W, rtol=1e-14)
    np.testing.assert_array_equal(nr.weight_drop(W, p, train=False)[0], W)


def test_weight_drop_is_dropconnect_with_one_mask_for_the_batch():
    # h W~^T with W~ = weight_drop(W_hh) equals chapter 4's DropConnect on h with W_hh^T and the
    # mask M^T shared by every example (a mask of shape (1, H, 4H)).
    rng = np.random.default_rng(9)
    _, W_hh, _ = _weights(seed=9)
    h = rng.standard_normal((5, H))
    mask = rng.random(W_hh.shape) >= 0.4
    dropped, _ = nr.weight_drop(W_hh, 0.4, mask=mask)
    connect, _ = dropconnect_forward(h, W_hh.T, np.zeros(4 * H), 0.4, train=True, mask=mask.T[None])
    np.testing.assert_allclose(h @ dropped.T, connect, rtol=1e-14)


def test_eval_mode_is_deterministic_and_equals_the_no_dropout_forward():
    x, h0, c0 = _inputs(seed=10)
    weights = _weights(seed=10)
    plain = nr.lstm_forward(x, *weights, h0=h0, c0=c0)[0]
    for locked in (True, False):
        out, _, cache = nr.lstm_forward(
            x, *weights, h0=h0, c0=c0, **RATES, train=False, locked=locked
        )  # no rng needed
        np.testing.assert_array_equal(out, plain)
        assert cache.output.mask is None and all(c.mask is None for c in cache.recurrent)


# --- BPTT: the numpy backward against numerical gradients --------------------------------------


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("train", [True, False])
def test_lstm_backward_matches_numerical_gradients(kind, train):
    x, h0, c0 = _inputs(seed=11)
    W_ih, W_hh, b = _weights(seed=11)
    args = dict(x=x, W_ih=W_ih, W_hh=W_hh, b=b, h0=h0, c0=c0)
    options = dict(train=train, **_dropout(kind, seed=11))
    out, _, cache = nr.lstm_forward(**args, **options)
    dout = np.random.default_rng(11).standard_normal(out.shape)
    grads = nr.lstm_backward(dout, cache)
    analytic = dict(
        x=grads.dx, W_ih=grads.dW_ih, W_hh=grads.dW_hh, b=grads.db, h0=grads.dh, c0=grads.dc
    )
    for name, value in args.items():

        def forward(v, name=name):
            return nr.lstm_forward(**{**args, name: v}, **options)[0]

        numeric = numerical_gradient(forward, value.copy(), dout, h=1e-5)
        assert rel_error(analytic[name], numeric) < GRAD_TOLERANCE, name


def test_lstm_step_backward_matches_numerical_gradients():
    rng = np.random.default_rng(12)
    x, h_prev, c_prev = (rng.standard_normal((N, k)) for k in (D, H, H))
    W_ih, W_hh, b = _weights(seed=12)
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    _, _, cache = nr.lstm_step(x, h_prev, c_prev, W_ih, W_hh, b)
    grads = nr.lstm_step_backward(dh, dc, cache)
    args = dict(x=x, h_prev=h_prev, c_prev=c_prev, W_ih=W_ih, W_hh=W_hh, b=b)
    analytic = dict(x=grads.dx, h_prev=grads.dh, c_prev=grads.dc, W_ih=grads.dW_ih)
    analytic.update(W_hh=grads.dW_hh, b=grads.db)
    for name, value in args.items():

        def both(v, name=name):  # sum(h * dh) + sum(c * dc), as one stacked output
            new_h, new_c, _ = nr.lstm_step(**{**args, name: v})
            return np.stack([new_h, new_c])

        numeric = numerical_gradient(both, value.copy(), np.stack([dh, dc]), h=1e-5)
        assert rel_error(analytic[name], numeric) < GRAD_TOLERANCE, name


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_weight_drop_backward_through_the_lstm_matches_numerical_gradient(kind):
    x, _, _ = _inputs(seed=13)
    W_ih, W_hh, b = _weights(seed=13)
    weight_mask = np.random.default_rng(13).random(W_hh.shape) >= 0.5
    options = _dropout(kind, seed=13)

    def forward(w):
        dropped, weight_cache = nr.weight_drop(w, 0.5, mask=weight_mask)
        out, _, cache = nr.lstm_forward(x, W_ih, dropped, b, **options)
        return out, cache, weight_cache

    out, cache, weight_cache = forward(W_hh)
    dout = np.random.default_rng(14).standard_normal(out.shape)
    analytic = nr.weight_drop_backward(nr.lstm_backward(dout, cache).dW_hh, weight_cache)
    numeric = numerical_gradient(lambda w: forward(w)[0], W_hh.copy(), dout, h=1e-5)
    assert rel_error(analytic, numeric) < GRAD_TOLERANCE
    assert np.all(analytic[~weight_mask] == 0)  # a dropped weight learns nothing this batch


# --- bad input ---------------------------------------------------------------------------------


def test_numpy_rejects_bad_arguments_with_named_arguments():
    x, h0, _ = _inputs()
    W_ih, W_hh, b = _weights()
    rng = np.random.default_rng(0)
    bad_calls = [
        (ValueError, r"p_input must be in \[0, 1\), but got p_input=1", dict(p_input=1)),
        (ValueError, r"p_recurrent must be in \[0, 1\), but got p_recurrent=-0\.1",
         dict(p_recurrent=-0.1)),
        (TypeError, r"p_output must be a real number in \[0, 1\)", dict(p_output="0.5")),
        (ValueError, r"x must have rank 3 \(N sequences, T steps, D features\)", dict(x=x[0])),
        (ValueError, r"x must have at least one step \(T >= 1\)", dict(x=x[:, :0])),
        (ValueError, r"W_ih must have shape \(8, 3\) for x with D=3 .*got shape \(8, 2\)",
         dict(W_ih=W_ih[:, :2])),
        (ValueError, r"W_hh must have shape \(4H, H\) = \(8, 2\), but got \(6, 2\)",
         dict(W_hh=W_hh[:6])),
        (ValueError, r"b must have shape \(8,\)", dict(b=b[:4])),
        (TypeError, "W_ih, W_hh and b must have x's dtype float64", dict(b=b.astype(np.float32))),
        (TypeError, "x must have a floating-point dtype", dict(x=x.astype(int))),
        (ValueError, r"h0 must have shape \(N, H\) = \(2, 2\), but got \(2, 3\)",
         dict(h0=np.zeros((2, 3)))),
        (TypeError, "c0 must have x's dtype", dict(c0=h0.astype(np.float32))),
        (ValueError, r"input_mask must have shape \(2, 3, 3\) \(one per step, or \(2, 1, 3\) "
         r"locked: one per sequence\), but got shape \(2, 3\)",
         dict(p_input=0.5, input_mask=np.ones((2, 3), dtype=bool))),
        (ValueError, r"recurrent_mask must have shape \(2, 3, 2\).*got shape \(2, 1, 3\)",
         dict(p_recurrent=0.5, recurrent_mask=np.ones((2, 1, 3), dtype=bool))),
        (ValueError, "output_mask must hold only 0 and 1",
         dict(p_output=0.5, output_mask=np.full((2, 1, 2), 0.5))),
        (ValueError, r"needs rng \(or recurrent_mask\) when train=True and p_recurrent > 0",
         dict(p_recurrent=0.5, rng=None)),
    ]  # fmt: skip
    defaults = dict(x=x, W_ih=W_ih, W_hh=W_hh, b=b, rng=rng)
    for error, message, changes in bad_calls:
        with pytest.raises(error, match=message):
            nr.lstm_forward(**{**defaults, **changes})
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), but got p=1\.0"):
        nr.sequence_mask((2, 3, 4), 1.0, rng)
    with pytest.raises(ValueError, match=r"shape must have rank 3 \(N sequences, T steps"):
        nr.sequence_mask((2, 3), 0.5, rng)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), but got p=1"):
        nr.weight_drop(W_hh, 1, rng=rng)
    with pytest.raises(ValueError, match=r"mask must have shape \(8, 2\) \(one entry per weight"):
        nr.weight_drop(W_hh, 0.5, mask=np.ones((8, 1), dtype=bool))
    with pytest.raises(ValueError, match=r"W_hh must have rank 2"):
        nr.weight_drop(b, 0.5, rng=rng)
    _, _, cache = nr.lstm_forward(x, W_ih, W_hh, b)
    with pytest.raises(ValueError, match=r"dout must have the outputs' shape \(N, T, H\)"):
        nr.lstm_backward(np.ones((2, 3, 3)), cache)


# --- torch twins -------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("train", [True, False])
def test_torch_twin_matches_numpy_given_the_same_masks(device, kind, train):
    x, h0, c0 = _inputs(seed=15)
    W_ih, W_hh, b = _weights(seed=15)
    options = dict(train=train, **_dropout(kind, seed=15))
    out, (h_t, c_t), cache = nr.lstm_forward(x, W_ih, W_hh, b, h0=h0, c0=c0, **options)
    dout = np.random.default_rng(15).standard_normal(out.shape)
    grads = nr.lstm_backward(dout, cache)

    leaves = _to_torch(dict(x=x, W_ih=W_ih, W_hh=W_hh, b=b, h0=h0, c0=c0), device)
    for leaf in leaves.values():
        leaf.requires_grad_(True)
    tout, (th_t, tc_t) = tr.lstm_forward(**leaves, **_to_torch(options, device))
    assert tout.device.type == device and tout.dtype == torch.float64
    (tout * torch.from_numpy(dout).to(device)).sum().backward()
    for got, want in (
        (tout, out),
        (th_t, h_t),
        (tc_t, c_t),
        (leaves["x"].grad, grads.dx),
        (leaves["W_ih"].grad, grads.dW_ih),
        (leaves["W_hh"].grad, grads.dW_hh),
        (leaves["b"].grad, grads.db),
        (leaves["h0"].grad, grads.dh),
        (leaves["c0"].grad, grads.dc),
    ):
        np.testing.assert_allclose(got.detach().cpu().numpy(), want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_weight_drop_matches_numpy_and_runs_on_the_device(device):
    _, W_hh, _ = _weights(seed=16)
    mask = np.random.default_rng(16).random(W_hh.shape) >= 0.3
    dW = np.random.default_rng(17).standard_normal(W_hh.shape)
    dropped, cache = nr.weight_drop(W_hh, 0.3, mask=mask)
    tW = torch.from_numpy(W_hh).to(device)
    tdropped, tcache = tr.weight_drop(tW, 0.3, mask=torch.from_numpy(mask).to(device))
    assert tdropped.device.type == device
    np.testing.assert_array_equal(tdropped.cpu().numpy(), dropped)
    tdW = tr.weight_drop_backward(torch.from_numpy(dW).to(device), tcache)
    np.testing.assert_array_equal(tdW.cpu().numpy(), nr.weight_drop_backward(dW, cache))
    generator = torch.Generator(device=device).manual_seed(0)
    drawn, _ = tr.weight_drop(tW, 0.5, generator=generator)
    assert bool(((drawn == 0) | (drawn == 2 * tW)).all())
    torch.testing.assert_close(tr.weight_drop(tW, 0.5, train=False)[0], tW)


def test_torch_rejects_bad_arguments_with_named_arguments():
    x, h0, _ = (torch.from_numpy(a) for a in _inputs())
    W_ih, W_hh, b = (torch.from_numpy(a) for a in _weights())
    generator = torch.Generator()
    with pytest.raises(ValueError, match=r"p_output must be in \[0, 1\), but got p_output=1"):
        tr.lstm_forward(x, W_ih, W_hh, b, p_output=1, generator=generator)
    with pytest.raises(ValueError, match=r"needs generator \(or input_mask\) when train=True"):
        tr.lstm_forward(x, W_ih, W_hh, b, p_input=0.5)
    with pytest.raises(ValueError, match=r"output_mask must have shape \(2, 3, 2\)"):
        tr.lstm_forward(x, W_ih, W_hh, b, p_output=0.5, output_mask=torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match=r"x must have rank 3"):
        tr.lstm_forward(x[0], W_ih, W_hh, b)
    with pytest.raises(ValueError, match=r"h0 must have shape \(N, H\)"):
        tr.lstm_forward(x, W_ih, W_hh, b, h0=h0[:1])
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), but got p=1\.5"):
        tr.weight_drop(W_hh, 1.5, generator=generator)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), but got p=-1"):
        tr.sequence_mask((2, 3, 4), -1, generator)
    with pytest.raises(ValueError, match=r"p_weight must be in \[0, 1\), but got p_weight=1"):
        tr.DropoutLSTM(3, 2, generator, p_weight=1)
    with pytest.raises(ValueError, match=r"hidden_size must be >= 1, but got hidden_size=0"):
        tr.DropoutLSTM(3, 0, generator)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        tr.DropoutLSTM(3, 2, None)


# --- the layer ---------------------------------------------------------------------------------


def _layer(device="cpu", seed=0, **rates):
    generator = torch.Generator(device=device).manual_seed(seed)
    return tr.DropoutLSTM(D, H, generator, **rates).double()


@pytest.mark.parametrize("device", DEVICES)
def test_layer_eval_is_deterministic_and_the_plain_lstm(device):
    layer = _layer(device, p_input=0.3, p_recurrent=0.4, p_output=0.5, p_weight=0.5).eval()
    x = torch.from_numpy(_inputs(seed=18)[0]).to(device)
    out, (h_t, _) = layer(x)
    assert out.device.type == device and out.shape == (N, T, H)
    assert torch.equal(layer(x)[0], out)
    plain, _ = tr.lstm_forward(x, layer.W_ih, layer.W_hh, layer.b)
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    torch.testing.assert_close(h_t, out[:, -1])
    no_dropout = _layer(device).train()  # same seed: same weights; all rates 0
    torch.testing.assert_close(no_dropout(x)[0], out, rtol=0, atol=0)


@pytest.mark.parametrize("locked", [True, False])
def test_layer_in_train_mode_uses_its_generator_in_a_fixed_order(locked):
    # One weight-drop mask, then the input, recurrent and output masks, all from the generator:
    # replaying the generator's state reproduces the pass exactly.
    layer = _layer(seed=19, **RATES, p_weight=0.5, locked=locked).train()
    x = torch.from_numpy(_inputs(seed=19)[0]).requires_grad_(True)
    state = layer.generator.get_state()
    out, _ = layer(x)
    assert not torch.equal(layer(x)[0], out)  # a fresh draw every pass
    replay = torch.Generator().set_state(state)
    weight_mask = torch.rand(layer.W_hh.shape, generator=replay) >= 0.5
    masks = {
        name: tr.sequence_mask((N, T, size), p, replay, locked=locked)
        for name, size, p in (
            ("input_mask", D, RATES["p_input"]),
            ("recurrent_mask", H, RATES["p_recurrent"]),
            ("output_mask", H, RATES["p_output"]),
        )
    }
    W_hh, _ = tr.weight_drop(layer.W_hh, 0.5, mask=weight_mask)
    expected, _ = tr.lstm_forward(x, layer.W_ih, W_hh, layer.b, **RATES, **masks)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.sum().backward()
    assert torch.all(layer.W_hh.grad[~weight_mask] == 0) and x.grad is not None


def test_layer_is_reproducible_from_its_generator_and_carries_a_state():
    a, b = _layer(seed=20, p_input=0.5, p_weight=0.3), _layer(seed=20, p_input=0.5, p_weight=0.3)
    x = torch.from_numpy(_inputs(seed=20)[0])
    out, state = a(x)
    torch.testing.assert_close(b(x)[0], out, rtol=0, atol=0)
    a.eval()
    first, state = a(x[:, :2])
    second, _ = a(x[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), a(x)[0])
    assert repr(tr.DropoutLSTM(3, 2, torch.Generator(), p_recurrent=0.25)) == (
        "DropoutLSTM(input_size=3, hidden_size=2, p_input=0.0, p_recurrent=0.25, "
        "p_output=0.0, p_weight=0.0, locked=True)"
    )
