"""Checks for the graded exercise of chapter 2, ``ch2_inverted_scaling/inverted_scaling.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``keep_mask(shape, p, rng)``: a 0/1 (or bool) array, 1 with probability ``1 - p``;
* ``dropout_forward(x, p, *, train, rng=None, mask=None, scaling="inverted") -> (out, cache)``;
* ``dropout_backward(dout, cache) -> dx`` (``cache`` is whatever their forward returned);
* ``train_output_moments(forward, p_values, n_units, scaling, rng) -> (means, variances)``: the
  mean and variance of one training pass of ``forward`` on ``np.ones(n_units)`` for each p.

The test cells are rows of the property kit (:mod:`dropout_grading.properties`, which says how
each property stays fair): the mask as a ``Draw``, the forward pass as a ``Layer`` (exact with an
injected mask, at evaluation even when given a mask, statistical when it draws from ``rng``), the
backward pass as a ``Backprop`` judged against the student's own forward pass. Only
``train_output_moments``, whose statistics are checked by value, has a check of its own here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dropout_course._validate import SCALINGS
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance

from .framework import Assignment, Row
from .properties import (
    Backprop,
    Draw,
    Expected,
    Explain,
    Functions,
    Inputs,
    Layer,
    as_array,
    factor_named,
    mask_explains,
    matches,
    require_close,
    row,
    scaled,
    unpack,
)

ASSIGNMENT = Assignment(
    "ch2_inverted_scaling",
    notebook="inverted_scaling",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
        "dropout_course.fast",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
    # Each function's own part: a forward pass may draw its mask with the library's keep_mask
    # (keep_mask earns its own marks), and so on.
    allowed_modules={
        name: ("dropout_course.masks",)
        for name in ("dropout_forward", "dropout_backward", "train_output_moments")
    },
)
check = ASSIGNMENT.check

EXAMPLES_SHARE = {
    0: "the mask is shared by the examples of the batch (axis 0): draw one number per unit, "
    "e.g. rng.random(shape), not rng.random(shape[1:])",
}
KEEP = Draw("keep_mask", axis_names={0: "examples"}, shared_hints=EXAMPLES_SHARE)


class Dropout(Layer):
    """``dropout_forward``: train ``x * mask`` times 1/(1 - p) (inverted) or 1 (classic);
    evaluate ``x`` (inverted) or ``x * (1 - p)`` (classic)."""

    def train_output(
        self, inputs: Inputs, r: np.ndarray, p: float, scaling: str = "inverted"
    ) -> Expected:
        (x,) = inputs
        if scaling == "classic":
            factor, rule = 1.0, "x * mask (classic dropout does not scale during training)"
        else:
            factor, rule = 1.0 / (1.0 - p), "x * mask / (1 - p)"
        zero_hint = "use the mask you are given (mask=...) instead of drawing one"
        explains = [
            *mask_explains(x, r, zero_hint=zero_hint),
            scaled(x * r, factor_named(p, "kept units come out")),
        ]
        return Expected(x * r * factor, rule, explains)

    def eval_output(self, inputs: Inputs, p: float, scaling: str = "inverted") -> Expected:
        (x,) = inputs
        if scaling == "classic":
            factor, rule = 1.0 - p, "x * (1 - p) (classic dropout scales at evaluation)"
        else:
            factor, rule = 1.0, "x unchanged (inverted dropout scales during training only)"
        zero_hint = "nothing is dropped at evaluation (train=False): ignore a given mask and rng"
        explains = [
            *mask_explains(x, np.ones(x.shape, dtype=bool), zero_hint=zero_hint),
            scaled(x, factor_named(p, "units come out")),
        ]
        return Expected(x * factor, rule, explains)

    def draws(
        self,
        out: np.ndarray,
        inputs: Inputs,
        p: float,
        what: str,
        scale: bool,
        scaling: str = "inverted",
    ) -> np.ndarray:
        """The mask: the units that are not 0 (x has none)."""
        x = inputs[0].astype(np.float64)
        keep = ~np.isclose(out / x, 0.0)
        if scale:
            want = self.train_output((x,), keep, p, scaling=scaling)
            require_close(
                out, want.value, what=f"out of {what}", rule=want.rule, explains=want.explains
            )
        return keep


class DropoutBackprop(Backprop):
    """``dropout_backward``: dx = dout * mask * factor, with the forward pass's mask and factor."""

    def explain(
        self, wrt: str, expected: np.ndarray, inputs: Inputs, dout: np.ndarray, r: Any
    ) -> list[Explain]:
        passed = ~np.isclose(expected, 0.0)

        def other_units(dx: np.ndarray) -> str | None:
            differ = float(np.mean(~np.isclose(dx, 0.0) != passed))
            if not differ:
                return None
            return (
                f"the gradient flows through different units than the forward pass kept "
                f"({differ:.0%} differ): reuse the mask stored in the cache, do not draw a new one"
            )

        unscaled = "the gradient is masked but not scaled: multiply it by the forward's factor"
        return [other_units, matches(dout * passed, unscaled)]


DROPOUT = Dropout("dropout_forward", axis_names={0: "examples"}, shared_hints=EXAMPLES_SHARE)
BACKWARD = DropoutBackprop(
    DROPOUT,
    "dropout_backward",
    formulas={"x": "dout * mask times the factor the forward pass applied"},
)


def classic(fns: Functions, *, shape: Any, p_values: Any, path: str, seed: int) -> None:
    """Classic scaling with a given mask and at evaluation, or (``path="rng"``) drawing its own."""
    if path == "rng":
        tests = ("scale", "rate", "independent")
        DROPOUT.random(
            fns, shape=shape, p_values=p_values, seed=seed, tests=tests, scaling="classic"
        )
        return
    DROPOUT.injected(fns, shape=shape, p_values=p_values, seed=seed, scaling="classic")
    DROPOUT.evaluation(
        fns, shape=shape, p_values=p_values, seed=seed, given=False, scaling="classic"
    )


def trusted_forward(
    x: np.ndarray,
    p: float,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
    gain: float = 1.0,
) -> tuple[np.ndarray, None]:
    """A correct dropout forward (times ``gain``) that checks hand to ``train_output_moments``.

    Self-contained on purpose: the dynamic guard lets exactly this code object run inside the
    student's function, so it calls no other grading code.
    """
    keep_rate = 1.0 - p
    if not train:
        return gain * x * (keep_rate if scaling == "classic" else 1.0), None
    kept = rng.random(x.shape) >= p if mask is None else mask.astype(bool)
    scale = 1.0 if scaling == "classic" else (1.0 / keep_rate if keep_rate > 0 else 0.0)
    return gain * x * kept * scale, None


FORWARDS = {"trusted": trusted_forward, "doubled": functools.partial(trusted_forward, gain=2.0)}


def experiment(fns: Functions, *, p_values: Any, n_units: int, forward: str, seed: int) -> None:
    """train_output_moments measures the mean and variance of the forward pass it is given."""
    gain = 2.0 if forward == "doubled" else 1.0
    rng = np.random.default_rng(seed)
    q = 1.0 - np.asarray(p_values, dtype=np.float64)
    # Per (scaling, p), the pass keeps K ~ Binomial(n, q) units of ones: the output mean is
    # g s K / n and the variance (ddof 0) g^2 s^2 k(1 - k) with k = K / n, s the train factor and
    # g the gain. |K - n q| < t (Bernstein, FALSE_FAIL / (2 len(p))) gives |mean error| < g s t / n
    # and |variance error| < g^2 s^2 (t / n + 1 / (4 (n - 1))) (the last term allows ddof = 1).
    delta = FALSE_FAIL / (2 * len(q))
    t = np.array([binomial_tolerance(n_units, rate, delta) for rate in q]) / n_units
    for scaling in SCALINGS:
        s = np.ones_like(q) if scaling == "classic" else 1.0 / q
        call = f"train_output_moments(forward, {list(p_values)}, {n_units}, {scaling!r}, rng)"
        result = fns["train_output_moments"](
            FORWARDS[forward], list(p_values), n_units, scaling, rng
        )
        names = ("means", "variances")
        means, variances = [
            as_array(value, what=f"{name} from {call}", shape=q.shape)
            for value, name in zip(unpack(result, what=call, names=names), names, strict=True)
        ]
        mean, mean_tol = gain * s * q, gain * s * t + 1e-9
        var = gain**2 * s**2 * q * (1 - q)
        var_tol = gain**2 * s**2 * (t + 1 / (4 * (n_units - 1))) + 1e-9
        other = q if scaling == "inverted" else np.ones_like(q)  # the other scaling's mean
        mistakes = [matches(other, "pass `scaling` on to forward", tolerance=mean_tol)]
        if gain != 1.0:
            hint = "measure the `forward` argument, not a formula or your own function"
            mistakes.insert(0, matches(mean / gain, hint, tolerance=mean_tol))
        for name, values, want, tolerance, explains in (
            ("means", means, mean, mean_tol, mistakes),
            ("variances", variances, var, var_tol, [_squared(var, var_tol)]),
        ):
            rule = f"{np.round(want, 4).tolist()} (+- {np.round(tolerance, 4).tolist()})"
            require_close(
                values,
                want,
                what=f"{name} from {call}",
                rule=rule,
                explains=explains,
                tolerance=tolerance,
            )


def _squared(variance: np.ndarray, tolerance: np.ndarray) -> Explain:
    """Recognises standard deviations returned for the variances."""
    hint = "that is the standard deviation; return the variance (its square)"
    return lambda values: hint if np.all(np.abs(values**2 - variance) < tolerance) else None


# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "keep_mask_values": row(
        "keep_mask returns a 0/1 mask of the requested shape; p = 0 keeps all, p = 1 drops all",
        KEEP.values, shape=(100, 40), p=0.3, seed=0),
    "keep_mask_rate": row(
        "keep_mask keeps each unit with probability 1 - p, reproducibly from rng",
        KEEP.random, tests=("rate", "reproducible"), shape=(40, 100), p_values=(0.2, 0.7), seed=1),
    "keep_mask_independent": row(
        "keep_mask draws every unit independently (no mask shared across the batch or units)",
        KEEP.random, tests=("independent",), shape=(200, 40), p=0.5, seed=2),
    "forward_inverted_train": row(
        "Inverted training pass with a given mask: out = x * mask / (1 - p), x left untouched",
        DROPOUT.injected, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=3),
    "forward_inverted_eval": row(
        "Inverted evaluation pass: out = x, no mask, no scaling (a given rng or mask is ignored)",
        DROPOUT.evaluation, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=4),
    "forward_random": row(
        "Inverted training pass drawing its own mask from rng: right rate, scale, independence",
        DROPOUT.random, tests=("scale", "rate", "independent", "reproducible"), shape=(100, 40),
        p=0.3, dtype="float64", seed=5),
    "forward_classic": Row(
        "Classic scaling: train out = x * mask (no scaling), evaluation out = x * (1 - p)",
        classic, DROPOUT.functions, {"shape": (40, 30), "p_values": (0.2, 0.6), "path": "mask",
                                     "seed": 6}),
    "backward_with_mask": row(
        "dropout_backward returns dout * mask * scale, in training and at evaluation (given "
        "mask), also where x == 0",
        BACKWARD.gradient, shape=(8, 6), p_values=(0.2, 0.6), scaling="inverted", seed=7),
    "backward_same_mask": row(
        "dropout_backward reuses the forward pass's own random mask (drawn from rng)",
        BACKWARD.gradient, shape=(12, 10), p=0.4, scaling="inverted", seed=8),
    "experiment_moments": Row(
        "train_output_moments measures the mean and variance of the forward pass it is given",
        experiment, ("train_output_moments",), {"p_values": (0.0, 0.2, 0.5, 0.8), "n_units": 5000,
                                                 "forward": "trusted", "seed": 9}),
})
# fmt: on
ASSIGNMENT.seal()
