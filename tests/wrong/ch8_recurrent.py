"""Chapter 8 (recurrent networks): classic mistakes, each with the test cells it must lose, and
correct alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy and the notebook's names (``np`` and ``lstm_step`` from the
read-only cell, the notebook's own ``sequence_mask`` and ``weight_drop``), so it behaves the same
in a unit test and in a submitted notebook. The LSTM mistakes share one implementation,
``lstm_with``, which the notebook receives as a helper.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def sequence_mask_loops(shape, p, rng, *, locked=True):
    n_sequences, n_steps, n_features = shape
    mask = np.zeros((n_sequences, 1 if locked else n_steps, n_features))
    for index in np.ndindex(*mask.shape):
        mask[index] = 1.0 if rng.uniform() >= p else 0.0
    return mask


def weight_drop_binomial(W_hh, p, *, train=True, rng=None, mask=None):
    if not train:
        return np.array(W_hh, copy=True), {}
    if mask is None:
        mask = rng.binomial(1, 1.0 - p, size=W_hh.shape) if p > 0 else np.ones(W_hh.shape)
    keep = np.asarray(mask, dtype=W_hh.dtype)
    return (W_hh * keep / (1.0 - p)).astype(W_hh.dtype), {"mask": keep}


def lstm_forward_by_hand(x, W_ih, W_hh, b, *, p_input=0.0, p_recurrent=0.0, p_output=0.0,
                         p_weight=0.0, train=True, rng=None, locked=True, input_mask=None,
                         recurrent_mask=None, output_mask=None, weight_mask=None):  # fmt: skip
    n, steps, _ = x.shape
    hidden = W_hh.shape[1]
    places = (
        ("x", p_input, input_mask, x.shape[2]),
        ("h", p_recurrent, recurrent_mask, hidden),
        ("o", p_output, output_mask, hidden),
    )
    factors = {}
    for name, p, given, size in places:
        if train and (given is not None or p > 0):
            mask = given if given is not None else sequence_mask((n, steps, size), p, rng,  # noqa: F821
                                                                 locked=locked)  # fmt: skip
            factors[name] = np.broadcast_to(np.asarray(mask, float), (n, steps, size)) / (1 - p)
        else:
            factors[name] = np.ones((n, steps, size))
    W_rec = weight_drop(W_hh, p_weight, train=train, rng=rng, mask=weight_mask)[0]  # noqa: F821
    h, c, out = np.zeros((n, hidden)), np.zeros((n, hidden)), np.zeros((n, steps, hidden))
    for t in range(steps):
        a = (x[:, t] * factors["x"][:, t]) @ W_ih.T + (h * factors["h"][:, t]) @ W_rec.T + b
        i, f, g, o = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
        i, f, o = (1.0 / (1.0 + np.exp(-z)) for z in (i, f, o))
        c = f * c + i * np.tanh(g)
        h = o * np.tanh(c)
        out[:, t] = h * factors["o"][:, t]
    return out, (h, c)


def sequence_mask_binomial(shape, p, rng, *, locked=True):
    n_sequences, n_steps, n_features = shape
    size = (n_sequences, n_features) if locked else (n_sequences, n_steps, n_features)
    draws = rng.binomial(1, 1.0 - p, size=size).astype(np.float32)
    return draws[:, np.newaxis, :] if locked else draws


def weight_drop_comparison(W_hh, p, *, train=True, rng=None, mask=None):
    if train and mask is None and p > 0:
        mask = rng.random(W_hh.shape) < 1.0 - p
    if not train or mask is None:
        return W_hh + 0.0, None
    return np.where(mask, W_hh / (1.0 - p), 0.0), mask


def lstm_forward_time_major(x, W_ih, W_hh, b, *, p_input=0.0, p_recurrent=0.0, p_output=0.0,
                            p_weight=0.0, train=True, rng=None, locked=True, input_mask=None,
                            recurrent_mask=None, output_mask=None, weight_mask=None):  # fmt: skip
    n, steps, d = x.shape
    hidden = W_hh.shape[1]
    if train:  # the weight mask first: the order of the draws is free
        W_hh = weight_drop(W_hh, p_weight, train=True, rng=rng, mask=weight_mask)[0]  # noqa: F821

    def time_major(mask, p, size):
        if not train or (mask is None and p == 0):
            return np.ones((steps, n, size))
        if mask is None:
            mask = sequence_mask((n, steps, size), p, rng, locked=locked)  # noqa: F821
        full = np.broadcast_to(mask, (n, steps, size)).astype(np.float64)
        return np.transpose(full, (1, 0, 2)) / (1.0 - p)

    xs = np.transpose(x, (1, 0, 2)) * time_major(input_mask, p_input, d)
    recurrent = time_major(recurrent_mask, p_recurrent, hidden)
    output = time_major(output_mask, p_output, hidden)
    h, c, hs = np.zeros((n, hidden)), np.zeros((n, hidden)), np.empty((steps, n, hidden))
    for t in range(steps):
        h, c, _ = lstm_step(xs[t], h * recurrent[t], c, W_ih, W_hh, b)  # noqa: F821
        hs[t] = h
    return np.transpose(hs * output, (1, 0, 2)), (h, c)


# Classic mistakes: the masks and weight drop ----------------------------------------------------


def sequence_mask_always_per_step(shape, p, rng, *, locked=True):
    return rng.random(shape) >= p  # a new mask at every time step, locked or not


def sequence_mask_batch_shared(shape, p, rng, *, locked=True):
    if locked:
        return rng.random((1, 1, shape[2])) >= p  # every sequence drops the same features
    return rng.random(shape) >= p


def sequence_mask_always_locked(shape, p, rng, *, locked=True):
    n_sequences, _, n_features = shape
    return rng.random((n_sequences, 1, n_features)) >= p  # `locked` ignored: never fresh


def sequence_mask_flipped(shape, p, rng, *, locked=True):
    n_sequences, n_steps, n_features = shape
    return rng.random((n_sequences, 1 if locked else n_steps, n_features)) < p


def sequence_mask_global_rng(shape, p, rng, *, locked=True):
    n_sequences, n_steps, n_features = shape
    return np.random.random((n_sequences, 1 if locked else n_steps, n_features)) >= p  # noqa: NPY002


def sequence_mask_via_library(shape, p, rng, *, locked=True):
    from dropout_course.recurrent import sequence_mask as library_sequence_mask

    return library_sequence_mask(shape, p, rng, locked=locked)


def weight_drop_not_rescaled(W_hh, p, *, train=True, rng=None, mask=None):
    if not train:
        return W_hh.copy(), None
    if mask is None:
        mask = rng.random(W_hh.shape) >= p
    return W_hh * mask, mask


def weight_drop_at_eval(W_hh, p, *, train=True, rng=None, mask=None):
    if mask is None and (not train or p == 0):
        return W_hh.copy(), None
    if mask is None:
        mask = rng.random(W_hh.shape) >= p
    return W_hh * mask / (1 - p), mask  # a given mask is applied in evaluation too


def weight_drop_in_place(W_hh, p, *, train=True, rng=None, mask=None):
    if not train or (mask is None and p == 0):
        return W_hh, None
    if mask is None:
        mask = rng.random(W_hh.shape) >= p
    W_hh *= mask / (1 - p)
    return W_hh, mask


# Classic mistakes: the LSTM (one implementation, ``mistake`` names which) -----------------------


def lstm_with(mistake, x, W_ih, W_hh, b, *, p_input=0.0, p_recurrent=0.0, p_output=0.0,
              p_weight=0.0, train=True, rng=None, locked=True, input_mask=None,
              recurrent_mask=None, output_mask=None, weight_mask=None):  # fmt: skip
    n, steps, d = x.shape
    hidden = W_hh.shape[1]
    factor = {"not rescaled": lambda p: 1.0, "scaled by p": lambda p: p}.get(
        mistake, lambda p: 1.0 / (1.0 - p)
    )
    dropping = train or mistake == "drops at evaluation"

    def factors(mask, p, size):
        if not dropping or (mask is None and p == 0):
            return None
        if mask is None:
            mask = sequence_mask((n, steps, size), p, rng, locked=locked)  # noqa: F821
        return mask * factor(p)

    x_f, h_f = factors(input_mask, p_input, d), factors(recurrent_mask, p_recurrent, hidden)
    o_f = factors(output_mask, p_output, hidden)
    if mistake != "weight drop per step":
        W_hh, _ = weight_drop(W_hh, p_weight, train=dropping, rng=rng, mask=weight_mask)  # noqa: F821
    if x_f is not None and mistake == "in place":
        x *= x_f
    elif x_f is not None:
        x = x * x_f
    h, c, outputs = np.zeros((n, hidden)), np.zeros((n, hidden)), []
    for t in range(steps):
        W_t = W_hh
        if mistake == "weight drop per step":
            W_t, _ = weight_drop(W_hh, p_weight, train=train, rng=rng, mask=weight_mask)  # noqa: F821
        m = None if h_f is None else h_f[:, min(t, h_f.shape[1] - 1)]
        if mistake == "fresh in the loop" and recurrent_mask is None and m is not None:
            m = (rng.random((n, hidden)) >= p_recurrent) / (1.0 - p_recurrent)
        h_in = h if m is None or mistake in ("mask on c", "mask carried") else h * m
        c_in = c * m if m is not None and mistake == "mask on c" else c
        h, c, _ = lstm_step(x[:, t], h_in, c_in, W_ih, W_t, b)  # noqa: F821
        if m is not None and mistake == "mask carried":
            h = h * m
        outputs.append(h)
    out = np.stack(outputs, axis=1)
    if o_f is not None:
        out = out * o_f
    return out, (out[:, -1] if mistake == "output mask on the state" else h, c)


def lstm_not_rescaled(x, W_ih, W_hh, b, **options):
    return lstm_with("not rescaled", x, W_ih, W_hh, b, **options)


def lstm_scaled_by_p(x, W_ih, W_hh, b, **options):
    return lstm_with("scaled by p", x, W_ih, W_hh, b, **options)


def lstm_fresh_in_the_loop(x, W_ih, W_hh, b, **options):
    return lstm_with("fresh in the loop", x, W_ih, W_hh, b, **options)


def lstm_mask_on_c(x, W_ih, W_hh, b, **options):
    return lstm_with("mask on c", x, W_ih, W_hh, b, **options)


def lstm_mask_carried(x, W_ih, W_hh, b, **options):
    return lstm_with("mask carried", x, W_ih, W_hh, b, **options)


def lstm_weight_drop_per_step(x, W_ih, W_hh, b, **options):
    return lstm_with("weight drop per step", x, W_ih, W_hh, b, **options)


def lstm_drops_at_evaluation(x, W_ih, W_hh, b, **options):
    return lstm_with("drops at evaluation", x, W_ih, W_hh, b, **options)


def lstm_in_place(x, W_ih, W_hh, b, **options):
    return lstm_with("in place", x, W_ih, W_hh, b, **options)


def lstm_output_mask_on_state(x, W_ih, W_hh, b, **options):
    return lstm_with("output mask on the state", x, W_ih, W_hh, b, **options)


SEQUENCE_CELLS = frozenset(
    {
        "sequence_mask_shape",
        "sequence_mask_locked",
        "sequence_mask_rate",
        "sequence_mask_independent",
        "sequence_mask_fresh",
    }
)
MASKS_GIVEN = frozenset({"lstm_input_output_masks", "lstm_recurrent_mask"})
DRAWS = frozenset({"lstm_draws_locked", "lstm_draws_fresh"})
WEIGHT_CELLS = frozenset(
    {"weight_drop_train", "weight_drop_random", "lstm_weight_mask", "lstm_weight_drop_locked"}
)


def lstm_variant(name: str, forward, loses: set[str], hint: str) -> Variant:
    """A variant whose ``lstm_forward`` is ``forward`` (a wrapper of ``lstm_with``)."""
    return Variant(name, {"lstm_forward": forward}, frozenset(loses), helpers=(lstm_with,),
                   hint=hint)  # fmt: skip


VARIANTS = [
    Variant(
        "alternative_loops_gates_by_hand",
        {
            "sequence_mask": sequence_mask_loops,
            "weight_drop": weight_drop_binomial,
            "lstm_forward": lstm_forward_by_hand,
        },
    ),
    Variant(
        "alternative_time_major",
        {
            "sequence_mask": sequence_mask_binomial,
            "weight_drop": weight_drop_comparison,
            "lstm_forward": lstm_forward_time_major,
        },
    ),
    Variant(
        "wrong_locked_mask_per_step",
        {"sequence_mask": sequence_mask_always_per_step},
        frozenset({"sequence_mask_shape", "sequence_mask_locked", "lstm_draws_locked"}),
        hint="separate entry per time step",
    ),
    Variant(
        "wrong_mask_shared_by_batch",
        {"sequence_mask": sequence_mask_batch_shared},
        frozenset({"sequence_mask_shape", "sequence_mask_independent", "lstm_draws_locked"}),
        hint="the sequences share their draws",
    ),
    Variant(
        "wrong_locked_argument_ignored",
        {"sequence_mask": sequence_mask_always_locked},
        frozenset({"sequence_mask_shape", "sequence_mask_fresh", "lstm_draws_fresh"}),
        hint="the steps share their draws",
    ),
    Variant(
        "wrong_keep_drop_flipped",
        {"sequence_mask": sequence_mask_flipped},
        frozenset({"sequence_mask_shape", "sequence_mask_rate", "sequence_mask_fresh"}) | DRAWS,
        hint="swapped",
    ),
    Variant(
        "wrong_global_rng",
        {"sequence_mask": sequence_mask_global_rng},
        frozenset({"sequence_mask_rate", "lstm_draws_locked"}),
        hint="take every random number from the rng argument",
    ),
    Variant(
        "wrong_sequence_mask_calls_library",
        {"sequence_mask": sequence_mask_via_library},
        SEQUENCE_CELLS | DRAWS,
        hint="reference implementation",
    ),
    Variant(
        "wrong_weight_drop_not_rescaled",
        {"weight_drop": weight_drop_not_rescaled},
        frozenset({"weight_drop_train", "weight_drop_random", "lstm_weight_mask"}),
        hint="(1: what is kept is not rescaled)",
    ),
    Variant(
        "wrong_weight_drop_at_evaluation",
        {"weight_drop": weight_drop_at_eval},
        frozenset({"weight_drop_eval", "lstm_eval"}),
        hint="W_hh unchanged",
    ),
    Variant(
        "wrong_weight_drop_in_place",
        {"weight_drop": weight_drop_in_place},
        WEIGHT_CELLS,
        hint="changed its input W_hh in place",
    ),
    lstm_variant(
        "wrong_lstm_not_rescaled",
        lstm_not_rescaled,
        MASKS_GIVEN | DRAWS,
        "multiplied by 1 instead of 1/(1-p)",
    ),
    lstm_variant(
        "wrong_lstm_scaled_by_p",
        lstm_scaled_by_p,
        MASKS_GIVEN | DRAWS,
        "multiplied by p instead of 1/(1-p)",
    ),
    lstm_variant(
        "wrong_lstm_fresh_recurrent_mask_in_loop",
        lstm_fresh_in_the_loop,
        {"lstm_draws_locked"},
        "changes between time steps",
    ),
    lstm_variant(
        "wrong_lstm_recurrent_mask_on_c",
        lstm_mask_on_c,
        {"lstm_recurrent_mask"} | DRAWS,
        "applied to the cell state",
    ),
    lstm_variant(
        "wrong_lstm_recurrent_mask_carried",
        lstm_mask_carried,
        {"lstm_recurrent_mask"} | DRAWS,
        "carried on",
    ),
    lstm_variant(
        "wrong_lstm_weight_drop_per_step",
        lstm_weight_drop_per_step,
        {"lstm_weight_drop_locked"},
        "one mask of W_hh's shape per call",
    ),
    lstm_variant(
        "wrong_lstm_drops_at_evaluation",
        lstm_drops_at_evaluation,
        {"lstm_eval"},
        "it drops at evaluation",
    ),
    lstm_variant(
        "wrong_lstm_changes_x_in_place",
        lstm_in_place,
        {"lstm_input_output_masks"} | DRAWS,
        "changed its input x in place",
    ),
    lstm_variant(
        "wrong_lstm_output_mask_on_final_state",
        lstm_output_mask_on_state,
        {"lstm_input_output_masks"},
        "return the undropped state",
    ),
]

CHEATS = [
    Variant(
        "cheat_numpy_all_true",
        {"lstm_forward": lstm_not_rescaled},
        MASKS_GIVEN | DRAWS,
        helpers=(lstm_with,),
        append={"lstm_forward": "np.all = lambda *args, **kwargs: True"},
    ),
]
