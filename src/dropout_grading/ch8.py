"""Checks for chapter 8's graded exercise, ``ch8_recurrent/recurrent.ipynb``.

The student writes, in numpy and with the reference's signatures (``dropout_course.recurrent``):

* ``sequence_mask(shape, p, rng, *, locked=True)``: for sequences of ``shape`` (N, T, F), a keep
  mask of shape (N, 1, F) (locked: one draw per sequence and feature) or (N, T, F) (a fresh draw
  at every step);
* ``weight_drop(W_hh, p, *, train=True, rng=None, mask=None) -> (W, cache)``: DropConnect on the
  hidden-to-hidden matrix, ``W_hh * M / (1 - p)`` in training, ``W_hh`` at evaluation;
* ``lstm_forward(x, W_ih, W_hh, b, *, p_input, p_recurrent, p_output, p_weight, train, rng,
  locked, input_mask, recurrent_mask, output_mask, weight_mask) -> (out, (h_T, c_T))``: the
  reference LSTM with masks on the inputs, on the recurrent state where it feeds the gates, on the
  outputs, and weight drop on ``W_hh`` (one mask per call), built on the given ``lstm_step``.

The mask and weight drop are subjects of the property kit (:mod:`dropout_grading.properties`): a
``Draw`` that passes ``locked`` and a ``Layer``. The LSTM is checked exactly against the
reference ``lstm_forward`` with the masks injected (and at evaluation), and statistically on the
masks it draws itself, read back from its outputs through *reading networks*: weights of size
1e6 saturate every gate (sigmoid and tanh give exactly 0 or 1 in floating point), so the LSTM
becomes a circuit whose outputs are ``tanh(1)`` where a unit is kept and 0 where it is dropped
(see ``reading_network``). This needs no access to the student's loop and accepts any correct
LSTM, whether it calls ``lstm_step`` or writes the gates out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from dropout_course import recurrent as reference

from .framework import Assignment, CheckFailure, Row
from .properties import (
    FALSE_FAIL,
    Draw,
    Expected,
    Explain,
    Functions,
    Inputs,
    Layer,
    activations,
    as_array,
    call_pure,
    factor_named,
    mask_explains,
    matches,
    near,
    require,
    require_close,
    require_independent,
    require_rate,
    require_reproducible,
    scaled,
    unpack,
)

EXERCISE_PARTS = (
    "sequence_mask",
    "lstm_forward",
    "lstm_backward",
    "weight_drop",
    "weight_drop_backward",
    "place_mask",
    "forward_masks",
    "at_step",
    "check_sequence_mask",
)
"""The names of ``dropout_course.recurrent`` students write; ``lstm_step`` (and ``sigmoid``) stay
open: the notebook gives the LSTM step, the exercise is where the masks go."""

ASSIGNMENT = Assignment(
    "ch8_recurrent",
    notebook="recurrent",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
        "dropout_course.fast",
        "dropout_course.recurrent",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
    partly_open={"dropout_course.recurrent": EXERCISE_PARTS},
)
check = ASSIGNMENT.check

LOCKED_ADVICE = (
    "with locked=True draw ONE mask of shape (N, 1, F) per call, before the loop over time, and "
    "use it at every step"
)


# The sequence mask ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SequenceDraw(Draw):
    """``sequence_mask(shape, p, rng, locked=...)``: a ``Draw`` called with ``locked``."""

    locked: bool = True

    def call(self, fns: Functions, shape: tuple[int, ...], p: float, rng):
        with_locked = {self.function: partial(fns[self.function], locked=self.locked)}
        mask, what = super().call(with_locked, shape, p, rng)
        return mask, f"{what[:-1]}, locked={self.locked})"


SEQUENCE_AXES = {0: "sequences", 1: "time steps", 2: "features"}
LOCKED = SequenceDraw(
    "sequence_mask",
    drawn=(0, 2),
    unit="(sequence, feature)",
    shared_over="time step",
    axis_names=SEQUENCE_AXES,
    shared_hints={0: "the sequences share their draws: draw one mask per sequence, (N, 1, F)"},
    locked=True,
)
FRESH = SequenceDraw(
    "sequence_mask",
    unit="(sequence, step, feature)",
    axis_names=SEQUENCE_AXES,
    shared_hints={
        1: "the steps share their draws: with locked=False draw a fresh mask for every step, "
        "shape (N, T, F)",
    },
    locked=False,
)


def sequence_mask_shape(fns: Functions, *, shape, p: float, seed: int) -> None:
    """Exact: (N, 1, F) when locked, (N, T, F) when not; 0/1 entries; p = 0 and p = 1."""
    LOCKED.values(fns, shape=shape, p=p, seed=seed)
    FRESH.values(fns, shape=shape, p=p, seed=seed + 1)


# Weight drop ----------------------------------------------------------------------------------


class WeightDrop(Layer):
    """``weight_drop``: train ``W_hh * mask / (1 - p)``, evaluate ``W_hh``."""

    def train_output(self, inputs: Inputs, r: np.ndarray, p: float) -> Expected:
        (W,) = inputs
        explains = [
            *mask_explains(W, r, zero_hint="use the mask you are given (mask=...)"),
            scaled(W * r, factor_named(p, "kept weights come out")),
        ]
        return Expected(W * r / (1 - p), "W_hh * mask / (1 - p)", explains)

    def eval_output(self, inputs: Inputs, p: float) -> Expected:
        (W,) = inputs
        explains = [
            lambda out: (
                "some weights come out 0: nothing is dropped at evaluation (train=False), "
                "ignore a given mask and rng"
                if np.any(np.isclose(out, 0.0) & (W != 0))
                else None
            ),
            scaled(W, factor_named(p, "at evaluation, the weights come out")),
        ]
        rule = "W_hh unchanged (evaluation drops nothing, whatever rng or mask is given)"
        return Expected(W, rule, explains)

    def draws(self, out: np.ndarray, inputs: Inputs, p: float, what: str, scale: bool):
        """The keep mask: the weights that are not 0 (W has none)."""
        W = inputs[0].astype(np.float64)
        keep = ~np.isclose(out / W, 0.0)
        if scale:
            want = self.train_output((W,), keep, p)
            require_close(out, want.value, what=f"W of {what}", rule=want.rule,
                          explains=want.explains)  # fmt: skip
        return keep


WEIGHT_DROP = WeightDrop(
    "weight_drop",
    inputs=("W_hh",),
    unit="weight",
    axis_names={0: "gate rows", 1: "hidden units"},
)


# The LSTM: calling it, the reference, and the classic mistakes --------------------------------

LSTM = ("lstm_forward",)
PLACES = ("input", "recurrent", "output")


def describe(value: Any) -> str:
    """An argument of ``lstm_forward`` in a message."""
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} {value.shape}>"
    return "rng" if isinstance(value, np.random.Generator) else repr(value)


def call_lstm(fns: Functions, inputs: Inputs, **kwargs: Any):
    """The student's ``(out, h_T, c_T)`` for copies of ``inputs`` (x, W_ih, W_hh, b), as float64
    arrays, and the call as text."""
    x, _, W_hh, _ = inputs
    n, steps, _ = x.shape
    h = W_hh.shape[1]
    options = ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items())
    what = f"lstm_forward(x {x.shape} {x.dtype}, W_ih, W_hh, b, {options})"
    named = dict(zip(("x", "W_ih", "W_hh", "b"), inputs, strict=True))
    result = call_pure(fns["lstm_forward"], named, what=what, **kwargs)
    out, state = unpack(result, what=what, names=("out", "(h_T, c_T)"))
    h_last, c_last = unpack(state, what=f"the final state of {what}", names=("h_T", "c_T"))
    return (
        as_array(out, what=f"out of {what}", shape=(n, steps, h)),
        as_array(h_last, what=f"h_T of {what}", shape=(n, h)),
        as_array(c_last, what=f"c_T of {what}", shape=(n, h)),
        what,
    )


def lstm_inputs(rng: np.random.Generator, n: int, steps: int, d: int, h: int, dtype: str):
    """x (N, T, D) with exact zeros, and LSTM weights of the size ``nn.LSTM`` draws (|w| < 1.5)."""
    x = activations(rng, (n, steps, d), dtype)
    W_ih, W_hh, b = (activations(rng, shape, dtype, zeros=0.0) for shape in
                     ((4 * h, d), (4 * h, h), (4 * h,)))  # fmt: skip
    return x, W_ih, W_hh, b


def reference_run(inputs: Inputs, **kwargs: Any) -> np.ndarray:
    """The reference ``lstm_forward`` on float64 copies: out, h_T and c_T in one flat array."""
    x, W_ih, W_hh, b = (a.astype(np.float64) for a in inputs)
    out, (h_last, c_last), _ = reference.lstm_forward(x, W_ih, W_hh, b, **kwargs)
    return np.concatenate([out.ravel(), h_last.ravel(), c_last.ravel()])


def factors_run(inputs: Inputs, factors: dict[str, np.ndarray], at: str = "gates") -> np.ndarray:
    """An LSTM with the factor arrays ``factors`` (by place, (N, T or 1, F)) multiplied in, the
    recurrent one applied ``at`` "gates" (the copy of h_{t-1} the gates read: the reference),
    "cell" (c_{t-1}) or "carried" (h_t itself, carried on): what right and wrong code compute."""
    x, W_ih, W_hh, b = (a.astype(np.float64) for a in inputs)
    n, steps, _ = x.shape
    h_prev, c_prev = np.zeros((n, W_hh.shape[1])), np.zeros((n, W_hh.shape[1]))
    one = np.ones((n, 1, 1))
    x = x * factors.get("input", one)
    recurrent, hs = factors.get("recurrent", one), []
    for t in range(steps):
        r = recurrent[:, min(t, recurrent.shape[1] - 1)]
        h_in = h_prev * r if at == "gates" else h_prev
        c_in = c_prev * r if at == "cell" else c_prev
        h_prev, c_prev, _ = reference.lstm_step(x[:, t], h_in, c_in, W_ih, W_hh, b)
        h_prev = h_prev * r if at == "carried" else h_prev
        hs.append(h_prev)
    out = np.stack(hs, axis=1) * factors.get("output", one)
    return np.concatenate([out.ravel(), h_prev.ravel(), c_prev.ravel()])


def wrong_factors(keep: np.ndarray, p: float) -> dict[str, np.ndarray]:
    """The factors a mask ``keep`` is wrongly applied with, by the name ``factor_named`` uses."""
    kept = keep.astype(np.float64)
    return {"1": kept, "p": kept * p, "1-p": kept * (1 - p), "1/p": kept / p}


def place_explains(
    inputs: Inputs, place: str, keep: np.ndarray, p: float, right: dict[str, np.ndarray]
) -> list[Explain]:
    """The mistakes at one ``place`` (the others use ``right``, their correct factors)."""
    others = {k: v for k, v in right.items() if k != place}
    where = f"the {place} mask"
    explains = [
        matches(factors_run(inputs, {**others, place: factor}), f"{where} is applied, but kept "
                f"values are multiplied by {name} instead of 1/(1-p)")
        for name, factor in wrong_factors(keep, p).items()
    ]  # fmt: skip
    explains += [
        matches(factors_run(inputs, others), f"{where} is not applied: use the mask you are "
                f"given ({place}_mask=...) in training"),
        matches(factors_run(inputs, {**others, place: ~keep / (1 - p)}), f"{where}: keep and "
                "drop are swapped (True marks a KEPT unit)"),
    ]  # fmt: skip
    if place == "recurrent":
        explains += [
            matches(factors_run(inputs, right, at="cell"), "the recurrent mask is applied to the "
                    "cell state c_{t-1}; it belongs on h_{t-1} where it feeds the gates"),
            matches(factors_run(inputs, right, at="carried"), "the recurrent mask is applied to "
                    "h_t and the dropped h_t is carried on (and output); drop only the copy of "
                    "h_{t-1} that enters the gates, and carry the state on undropped"),
        ]  # fmt: skip
    return explains


def random_keep(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    """A keep mask with at least one kept and one dropped entry."""
    keep = rng.random(shape) >= p
    keep.flat[0], keep.flat[-1] = True, False
    return keep


def lstm_masks_given(
    fns: Functions, *, places, n: int, t: int, d: int, h: int, p_values, seed: int,
    dtype: str = "float64",
) -> None:  # fmt: skip
    """Exact: with the masks of ``places`` given (locked and per step, bool and float), ``out``
    and the final state equal the reference ``lstm_forward``'s."""
    rng = np.random.default_rng(seed)
    for i, p in enumerate(p_values):
        locked = i % 2 == 0
        inputs = lstm_inputs(rng, n, t, d, h, dtype)
        sizes = {"input": d, "recurrent": h, "output": h}
        masks = {place: random_keep(rng, (n, 1 if locked else t, sizes[place]), p)
                 for place in places}  # fmt: skip
        given = {f"{place}_mask": m if i % 4 < 2 else m.astype(dtype) for place, m in masks.items()}
        rates = {f"p_{place}": p for place in places}
        want = reference_run(inputs, **rates, **given)
        right = {place: m / (1 - p) for place, m in masks.items()}
        explains = [
            matches(factors_run(inputs, {k: wrong_factors(m, p)[name] for k, m in masks.items()}),
                    f"the masks are applied, but kept values are multiplied by {name} instead of "
                    "1/(1-p)")
            for name in wrong_factors(np.ones(1, bool), p)
        ]  # fmt: skip
        explains += [e for place in places for e in place_explains(inputs, place, masks[place], p,
                                                                   right)]  # fmt: skip
        size = n * t * h
        out_last = want[:size].reshape(n, t, h)[:, -1].ravel()
        state_dropped = np.concatenate([want[:size], out_last, want[size + n * h :]])
        explains.append(matches(state_dropped, "h_T is the last output with its output mask: "
                                "return the undropped state (h_T, c_T), the output mask acts on "
                                "out only"))  # fmt: skip
        explains.append(lambda out: "use the masks you are given (input_mask=..., ...) instead "
                        "of drawing new ones; a given mask is (N, 1, F) locked or (N, T, F) per "
                        "step: the mask of step t is mask[:, t] or mask[:, 0]")  # fmt: skip
        kwargs = dict(rates, train=True, rng=np.random.default_rng(seed), locked=locked, **given)
        out, h_last, c_last, what = call_lstm(fns, inputs, **kwargs)
        got = np.concatenate([out.ravel(), h_last.ravel(), c_last.ravel()])
        rule = (
            "the reference: inputs x_t * m_x / (1 - p_input), the copy of h_{t-1} that feeds the "
            "gates times m_h / (1 - p_recurrent), outputs h_t * m_o / (1 - p_output); the state "
            "(h_T, c_T) carried on undropped"
        )
        require_close(got, want, what=f"(out, h_T, c_T) of {what}", rule=rule, explains=explains)


def lstm_eval(fns: Functions, *, n: int, t: int, d: int, h: int, p: float, seed: int) -> None:
    """Exact: ``train=False`` is the LSTM without dropout, whatever rates, masks or rng."""
    rng = np.random.default_rng(seed)
    inputs = lstm_inputs(rng, n, t, d, h, "float64")
    sizes = {"input": d, "recurrent": h, "output": h}
    masks = {place: random_keep(rng, (n, 1, sizes[place]), p) for place in PLACES}
    weight_mask = random_keep(rng, (4 * h, h), p)
    rates = {f"p_{place}": p for place in (*PLACES, "weight")}
    want = reference_run(inputs)
    x, W_ih, W_hh, b = inputs
    dropped = reference_run((x, W_ih, W_hh * weight_mask / (1 - p), b),
                            **{f"p_{k}": p for k in PLACES},
                            **{f"{k}_mask": m for k, m in masks.items()})  # fmt: skip
    explains = [
        matches(dropped, "it drops at evaluation: with train=False use no mask at all"),
        matches(
            reference_run((x, W_ih, W_hh * weight_mask / (1 - p), b)),
            "W_hh is dropped at "
            "evaluation: with train=False use W_hh as it is (weight_mask is ignored)",
        ),
        lambda out: (
            "with train=False nothing is dropped or scaled (inverted dropout scales in "
            "training only): ignore the rates, the masks, weight_mask and rng"
        ),
    ]
    for extra in (
        {f"{k}_mask": m for k, m in masks.items()} | {"weight_mask": weight_mask},
        {"rng": np.random.default_rng(seed)},
        {},
    ):
        out, h_last, c_last, what = call_lstm(fns, inputs, **rates, train=False, **extra)
        got = np.concatenate([out.ravel(), h_last.ravel(), c_last.ravel()])
        require_close(got, want, what=f"(out, h_T, c_T) of {what}", explains=explains,
                      rule="the LSTM without dropout")  # fmt: skip


def lstm_weight_mask(fns: Functions, *, n, t, d, h, p_values, seed, dtype="float64") -> None:
    """Exact: with ``weight_mask`` given, the reference LSTM run with ``W_hh * M / (1 - p)``."""
    rng = np.random.default_rng(seed)
    for i, p in enumerate(p_values):
        inputs = lstm_inputs(rng, n, t, d, h, dtype)
        x, W_ih, W_hh, b = inputs
        keep = random_keep(rng, W_hh.shape, p)
        mask = keep if i % 2 == 0 else keep.astype(dtype)
        W64 = W_hh.astype(np.float64)

        def with_weights(W: np.ndarray, x=x, W_ih=W_ih, b=b) -> np.ndarray:
            return reference_run((x, W_ih, W, b))

        explains = [
            matches(
                with_weights(W64 * f), f"kept weights are multiplied by {name} instead of 1/(1-p)"
            )
            for name, f in wrong_factors(keep, p).items()
        ]
        explains += [
            matches(with_weights(W64), "W_hh is not dropped: use weight_mask (p_weight > 0)"),
            matches(with_weights(W64 * ~keep / (1 - p)), "keep and drop are swapped"),
        ]  # fmt: skip
        out, h_last, c_last, what = call_lstm(
            fns, inputs, p_weight=p, train=True, rng=np.random.default_rng(seed), weight_mask=mask
        )
        got = np.concatenate([out.ravel(), h_last.ravel(), c_last.ravel()])
        require_close(got, with_weights(W64 * keep / (1 - p)), what=f"(out, h_T, c_T) of {what}",
                      rule="the reference LSTM with W_hh * weight_mask / (1 - p_weight)",
                      explains=explains)  # fmt: skip


# Reading the masks an LSTM draws itself --------------------------------------------------------

BIG, EPS = 1e6, 0.01
PLACEMENT = {
    "input": "to x_t before it enters the gates",
    "recurrent": "to the copy of h_{t-1} that feeds the gates (not to c, not to the state carried "
    "on)",
    "weight": "to W_hh once, before the loop",
}
ON = math.tanh(1.0)
"""A unit with i = g = o = 1 and f = 0 outputs h = tanh(1): what the reading networks show."""


def reading_network(place: str, n: int, steps: int, f: int):
    """Inputs (x, W_ih, W_hh, b) that turn an LSTM into a circuit reading the masks of ``place``.

    Gate pre-activations are +-1e4 or more, so sigmoid and tanh give exactly 0 or 1: f = 0 (no
    memory), g = 1, o = 1, and a unit's output is h = tanh(i) with i in {0, 1}. An *on* unit has
    i = 1 from its bias: h = tanh(1) at every step. A *reader* has bias -1e6 * 0.01 and one weight
    1e6 from what it reads, so i = 1 exactly when that value is above 0.01 (a kept value, however
    it was scaled) and 0 when it is dropped:

    * "input": x = 1, reader j reads x~_t[j]; out[:, t] shows the input mask of step t;
    * "output": every unit on; out[:, t] = tanh(1) * m_o / (1 - p) shows mask and scale;
    * "recurrent", "weight": F on units, then F readers; reader F + j reads unit j of h~_{t-1}
      (through W_hh[F + j, j], its input-gate weight), so out[:, t, F:] shows, for t >= 1, the
      recurrent mask of step t on the on units, or whether W_hh[F + j, j] was kept.

    Returns the inputs and the slice of ``out`` that holds the reading.
    """
    h = 2 * f if place in ("recurrent", "weight") else f
    d = f if place == "input" else 1
    x = np.ones((n, steps, d))
    W_ih, W_hh = np.zeros((4 * h, d)), np.zeros((4 * h, h))
    b = np.concatenate([np.full(h, BIG), np.full(h, -BIG), np.full(h, BIG), np.full(h, BIG)])
    if place == "input":
        W_ih[:h] = BIG * np.eye(h)
        b[:h] = -BIG * EPS
        return (x, W_ih, W_hh, b), np.s_[:, :, :]
    if place == "output":
        return (x, W_ih, W_hh, b), np.s_[:, :, :]
    W_hh[f + np.arange(f), np.arange(f)] = BIG
    b[f:h] = -BIG * EPS
    return (x, W_ih, W_hh, b), np.s_[:, 1:, f:]


def read_masks(fns: Functions, place: str, p: float, rng, *, n: int, t: int, f: int, locked: bool):
    """The keep masks (bool) of ``place`` behind one training call drawing from ``rng``, read
    through ``reading_network``, and the call as text. "output" also checks their factor."""
    inputs, reading = reading_network(place, n, t, f)
    out, _, _, what = call_lstm(fns, inputs, **{f"p_{place}": p}, train=True, rng=rng,
                                locked=locked)  # fmt: skip
    values = out[reading] / ON
    kept = ~np.isclose(values, 0.0)
    if place == "output":
        factors = values[kept]
        if factors.size and not near(factors, np.full_like(factors, 1 / (1 - p))):
            hint = factor_named(p, "kept outputs come out")(float(np.median(factors)))
            raise CheckFailure(f"{what}: {hint}; they must be multiplied by 1/(1-p)")
        return kept, what
    require(
        near(values[kept], np.ones(kept.sum())),
        f"{what}: the masks cannot be read back. With weights that saturate every gate (f = 0, "
        "g = o = 1) each output must be tanh(1) or 0, but it holds values such as "
        f"{np.unique(np.round(out[reading], 4))[:4].tolist()}: apply the {place} mask "
        f"{PLACEMENT[place]}",
    )
    # A correct pass keeps all of >= 1000 readings with probability (1 - p)^1000 < 1e-15 for
    # the rates of the draws checks (p >= 0.2); the weight check has its own bound.
    require(
        place == "weight" or not kept.all(),
        f"{what}: nothing was dropped; apply the {place} mask {PLACEMENT[place]}",
    )
    return kept, what


def require_locked(kept: np.ndarray, what: str, place: str) -> np.ndarray:
    """Exact: the masks read (N, T, F) are the same at every step; returns the (N, F) draws."""
    changes = np.any(kept != kept[:, :1], axis=1)
    require(
        not changes.any(),
        f"{what}: the {place} mask of {changes.mean():.0%} of the (sequence, unit) pairs changes "
        f"between time steps: {LOCKED_ADVICE}",
    )
    return kept[:, 0]


def lstm_draws(fns: Functions, *, locked: bool, n: int, t: int, f: int, p_values, seed: int):
    """Statistical, on the masks of each place read back (``read_masks``): locked masks the same
    at every step (exact), kept with probability 1 - p and independent over sequences and units
    (and steps, when fresh): Bernstein, false fail < 1e-9 split over two tests, three places and
    the rates. With ``locked``, the draws come from rng (``require_reproducible``: N F >= 2000
    draws, < 1e-80)."""
    delta = FALSE_FAIL / (2 * len(PLACES) * len(p_values))
    axes = ("sequences", "units") if locked else ("sequences", "time steps", "units")
    hints = {
        "sequences": "the sequences share their draws: one mask per sequence, shape (N, ., F)",
        "time steps": "the steps share their draws: with locked=False draw a fresh mask for every "
        "step, (N, T, F)",
        "units": "the units share their draws: draw one number per unit",
    }
    for i, p in enumerate(p_values):
        for place in PLACES:
            rng = np.random.default_rng(seed + i)
            kept, what = read_masks(fns, place, p, rng, n=n, t=t, f=f, locked=locked)
            draws = require_locked(kept, what, place) if locked else kept
            require_rate(draws, p, delta=delta, what=what)
            require_independent(draws, p, delta=delta, what=what, names=axes.__getitem__,
                                hints=lambda axis: hints[axes[axis]])  # fmt: skip
    if locked:

        def read(rng: np.random.Generator) -> np.ndarray:
            return read_masks(fns, "input", p_values[0], rng, n=n, t=t, f=f, locked=True)[0]

        require_reproducible(read, seed, what=f"lstm_forward(p_input={p_values[0]:g}, rng)")


def lstm_weight_drop_locked(fns: Functions, *, n: int, t: int, f: int, p: float, seed: int):
    """Exact: the weights read (``read_masks``, "weight") are the same for every example and
    step, some dropped and some kept; drawn from rng. A correct pass keeps all F >= 40 weights
    read, or drops all, with probability (1 - p)^F + p^F, and two calls with one rng draw equal
    ones with probability (p^2 + (1 - p)^2)^F: at p = 0.5 and F = 40, 9e-13 each."""
    require(f >= 40 and p == 0.5, "the bounds need f >= 40 and p = 0.5")

    def read(rng: np.random.Generator) -> tuple[np.ndarray, str]:
        return read_masks(fns, "weight", p, rng, n=n, t=t, f=f, locked=True)

    kept, what = read(np.random.default_rng(seed))
    varying = np.any(kept != kept[:1, :1], axis=(0, 1))
    require(
        not varying.any(),
        f"{what}: {varying.mean():.0%} of the weights read are kept at some steps or for some "
        "examples and dropped at others: weight drop draws one mask of W_hh's shape per call, "
        "before the loop over time, and every example and step uses the same dropped W_hh",
    )
    require(
        0 < kept[0, 0].sum() < f,
        f"{what}: {'all' if kept[0, 0].all() else 'none'} of the {f} weights read were kept: "
        "drop each weight with probability p_weight (a keep mask of W_hh's shape)",
    )
    require_reproducible(lambda rng: read(rng)[0], seed, what=what, part=lambda k: k[0, 0])


def cell(summary: str, prop, functions: tuple[str, ...], **defaults: Any) -> Row:
    """A row of the table: ``prop(fns, **parameters)`` on the student's ``functions``."""
    return Row(summary, prop, functions, defaults)


SHAPE = {"n": 5, "t": 6, "d": 3, "h": 4}
READ = {"n": 100, "t": 4, "f": 20}

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "sequence_mask_shape": cell(
        "sequence_mask returns 0/1 masks of shape (N, 1, F) locked and (N, T, F) per step; "
        "p = 0 keeps all, p = 1 none",
        sequence_mask_shape, ("sequence_mask",), shape=(6, 9, 5), p=0.4, seed=0),
    "sequence_mask_locked": cell(
        "A locked mask drops the same features of a sequence at every time step",
        LOCKED.shared, ("sequence_mask",), shape=(8, 12, 6), p=0.5, seed=1),
    "sequence_mask_rate": cell(
        "sequence_mask keeps each (sequence, feature) with probability 1 - p, reproducibly from "
        "rng",
        LOCKED.random, ("sequence_mask",), tests=("rate", "reproducible"), shape=(50, 3, 40),
        p_values=(0.2, 0.7), seed=2),
    "sequence_mask_independent": cell(
        "A locked mask draws every (sequence, feature) independently: no mask shared by the batch",
        LOCKED.random, ("sequence_mask",), tests=("independent",), shape=(100, 4, 20), p=0.5,
        seed=3),
    "sequence_mask_fresh": cell(
        "With locked=False, a fresh draw at every step, kept with probability 1 - p",
        FRESH.random, ("sequence_mask",), tests=("rate", "independent"), shape=(40, 30, 10),
        p_values=(0.3, 0.6), seed=4),
    "weight_drop_train": cell(
        "weight_drop with a given mask: W_hh * mask / (1 - p)",
        WEIGHT_DROP.injected, ("weight_drop",), shape=(16, 4), p_values=(0.3, 0.6), seed=5),
    "weight_drop_eval": cell(
        "weight_drop at evaluation: W_hh unchanged (a given rng or mask is ignored)",
        WEIGHT_DROP.evaluation, ("weight_drop",), shape=(16, 4), p_values=(0.3, 0.6), seed=6),
    "weight_drop_random": cell(
        "weight_drop drawing from rng: each weight kept with probability 1 - p, independently, "
        "times 1 / (1 - p)",
        WEIGHT_DROP.random, ("weight_drop",), tests=("scale", "rate", "independent",
                                                     "reproducible"),
        shape=(200, 50), p=0.4, seed=7),
    "lstm_input_output_masks": cell(
        "lstm_forward with given input and output masks (locked and per step) is the reference",
        lstm_masks_given, LSTM, places=("input", "output"), **SHAPE, p_values=(0.3, 0.5, 0.6, 0.2),
        seed=10),
    "lstm_recurrent_mask": cell(
        "lstm_forward drops the copy of h_{t-1} that feeds the gates and carries the state on "
        "undropped",
        lstm_masks_given, LSTM, places=("recurrent",), **SHAPE, p_values=(0.3, 0.5, 0.6, 0.2),
        seed=11),
    "lstm_eval": cell(
        "lstm_forward with train=False is the LSTM without dropout, whatever masks or rng",
        lstm_eval, LSTM, **SHAPE, p=0.4, seed=12),
    "lstm_draws_locked": cell(
        "lstm_forward with locked=True draws one mask per sequence for each place, from rng",
        lstm_draws, LSTM, locked=True, **READ, p_values=(0.3,), seed=13),
    "lstm_draws_fresh": cell(
        "lstm_forward with locked=False draws a fresh mask at every step for each place",
        lstm_draws, LSTM, locked=False, **READ, p_values=(0.5,), seed=14),
    "lstm_weight_mask": cell(
        "lstm_forward with a given weight_mask runs on W_hh * weight_mask / (1 - p_weight)",
        lstm_weight_mask, LSTM, **SHAPE, p_values=(0.3, 0.6), seed=15),
    "lstm_weight_drop_locked": cell(
        "lstm_forward draws one weight-drop mask per call, shared by every example and step",
        lstm_weight_drop_locked, LSTM, n=6, t=5, f=40, p=0.5, seed=16),
})
# fmt: on
ASSIGNMENT.seal()
