"""Checks for the graded exercise of chapter 1, ``ch1_coadaptation/coadaptation.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``unit_correlation(hidden) -> (H, H)``: Pearson correlation between hidden units over the batch,
  1 on the diagonal, NaN rows and columns for dead units (the same value on every example);
* ``mean_abs_correlation(hidden) -> float``: mean ``|corr|`` over pairs of distinct live units
  (dead units left out; fewer than two live units give 0.0);
* ``activation_sparsity(hidden, threshold=0.0) -> float``: fraction of activations <= threshold
  (a tiny positive activation, 1e-12, is active at the default threshold);
* ``ablation_accuracy(head, hidden, y, k, *, rng, trials) -> float``: accuracy of ``head`` (a
  callable mapping (N, H) activations to (N, K) scores) after zeroing k distinct random units,
  without rescaling the others, averaged over ``trials`` independent choices.

The functions are ``Returns`` subjects of the property kit (:mod:`dropout_grading.properties`),
judged by value on inputs with known answers: hand-made units with correlations +1, -1 and 0,
ReLU-like activations on a grid of eighths (exact zeros, ties), dead units that are all 0 or all
1.5 (constants with an exact mean, so ``std == 0``, ``ptp == 0`` and ``max == min`` all find them).
Dead units are judged against the student's own values on the live units alone, so a mistake in
the correlation formula costs no dead-unit cell.

``ablation_accuracy`` draws its own units, so it is judged through the ``head`` it is handed:
module-level, self-contained heads (the reference guard lets them run inside student code) whose
prediction is right exactly when the ablated activations have the property under test (k zeros in
the same columns on every example; survivors unchanged; unit 0 present). Those hold on every trial
of a correct implementation, so those checks are exact; only how often a unit is removed is
statistical (Bernstein at ``FALSE_FAIL``). No check compares random draws with the reference's.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dropout_course.bounds import FALSE_FAIL

from .framework import Assignment, CheckFailure, Row
from .properties import (
    Case,
    Expected,
    Explain,
    Functions,
    Returns,
    close,
    matches,
    near,
    require,
    require_count,
    row,
)

ASSIGNMENT = Assignment(
    "ch1_coadaptation",
    notebook="coadaptation",
    forbidden_modules=(
        "dropout_course.coadaptation",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check

FRACTION_TOLERANCE = 1e-6
"""Accuracies and sparsities are fractions of at most a few thousand counts: a wider gap than
this is a wrong count, a narrower one is float32 rounding."""

DEAD_VALUES = (0.0, 1.5)
"""Values of dead units, in turn: a ReLU that never fires, and a constant that is not zero."""

TINY_ACTIVATIONS = (1e-12, 1e-30)
"""Positive activations, however small, are active: a default threshold of 1e-8 or np.isclose
would call them zeros. Both are normal numbers in float32 too, so they survive the hidden test's
cast."""


# Inputs with known answers ----------------------------------------------------------------------


def known_units(dtype: str = "float64") -> np.ndarray:
    """(8, 4) activations with known correlations: a, 2a + 1 (+1), 3 - a (-1), d (0 with all).

    ``a`` and ``d`` are ReLU-like (exact zeros, tied values); ``d`` is orthogonal to ``a`` once
    both are centred, so every correlation is +1, -1 or 0 and mean |corr| over distinct pairs is
    exactly 0.5.
    """
    a = np.array([0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 0.0, 2.0])
    d = np.array([1.0, 0.0, 5.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    return np.stack([a, 2 * a + 1, 3 - a, d], axis=1).astype(dtype)


def relu_units(
    rng: np.random.Generator,
    n_examples: int,
    n_units: int,
    *,
    dead: tuple[int, ...] = (),
    dtype: str = "float64",
) -> np.ndarray:
    """(N, H) correlated ReLU activations on a grid of eighths; columns in ``dead`` are constant.

    Live columns are made to vary (one example at 0, one above); dead ones alternate between the
    values of ``DEAD_VALUES``.
    """
    mixing = rng.standard_normal((n_units, n_units)) / np.sqrt(n_units)
    pre = rng.standard_normal((n_examples, n_units)) @ (np.eye(n_units) + mixing)
    units = np.round(8 * np.maximum(pre, 0.0)) / 8
    units[0], units[1] = 0.0, 1.0 + units[1]
    for index, column in enumerate(dead):
        units[:, column] = DEAD_VALUES[index % len(DEAD_VALUES)]
    return units.astype(dtype)


def live_inputs(*, n_examples: int, n_units: int, dtype: str, seed: int) -> dict[str, np.ndarray]:
    """Inputs with live units only, by description: hand-made units, then ReLU activations."""
    rng = np.random.default_rng(seed)
    return {
        "on 4 hand-made units (correlations +1, -1 and 0)": known_units(dtype),
        f"on {n_examples} x {n_units} ReLU activations": relu_units(
            rng, n_examples, n_units, dtype=dtype
        ),
    }


def live_columns(hidden: np.ndarray) -> np.ndarray:
    """Bool (H,): units whose activation is not the same on every example."""
    return hidden.max(axis=0) != hidden.min(axis=0)


def pearson(hidden: np.ndarray) -> np.ndarray:
    """The expected ``unit_correlation``: float64 Pearson matrix, NaN lines for dead units."""
    live = live_columns(hidden)
    corr = np.full((hidden.shape[1],) * 2, np.nan)
    centred = hidden[:, live].astype(np.float64)
    centred -= centred.mean(axis=0)
    standardised = centred / np.linalg.norm(centred, axis=0)
    corr[np.ix_(live, live)] = standardised.T @ standardised
    corr[np.flatnonzero(live), np.flatnonzero(live)] = 1.0
    return corr


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """The entries (i, j), i != j, of a square matrix, as a flat array."""
    return matrix[~np.eye(len(matrix), dtype=bool)]


def dead_units(hidden: np.ndarray) -> str:
    """What is special about an input with dead units, for a message."""
    dead = np.flatnonzero(~live_columns(hidden)).tolist()
    return (
        f"the input has dead units {dead} (the same value on every example, 0.0 or 1.5): their "
        "standard deviation is 0, so their correlation is undefined"
    )


# Correlations ------------------------------------------------------------------------------------


class Correlation(Returns):
    """``unit_correlation``: an (H, H) matrix; an (N, N) one correlates the examples instead."""

    def read(self, result: Any, args: tuple[Any, ...], what: str) -> np.ndarray:
        n_examples, n_units = args[0].shape
        if getattr(result, "shape", None) == (n_examples, n_examples) != (n_units, n_units):
            raise CheckFailure(
                f"{what} returned shape {result.shape}: that is the correlation between examples; "
                f"correlate the H = {n_units} units (the columns), e.g. np.corrcoef(hidden, "
                "rowvar=False)"
            )
        return super().read(result, args, what)


CORRELATION = Correlation("unit_correlation", ("hidden",), shape=lambda h: (h.shape[1],) * 2)
MEAN_ABS = Returns("mean_abs_correlation", ("hidden",))


def _off_diagonal_is(alternative: np.ndarray, hint: str) -> Explain:
    """Recognises a matrix whose off-diagonal entries are those of ``alternative``."""
    return lambda corr: hint if near(off_diagonal(corr), off_diagonal(alternative)) else None


def pearson_expected(hidden: np.ndarray) -> Expected:
    """The Pearson matrix of live units, with the classic mistakes named."""
    x, want = hidden.astype(np.float64), pearson(hidden)
    ratio = len(x) / (len(x) - 1.0)
    same_ddof = (
        "every correlation is off by the factor N/(N-1) or (N-1)/N: use the same ddof for the "
        "covariance and the standard deviations"
    )
    covariance = "that is the covariance: divide by the two units' standard deviations"
    symmetric = "it is not symmetric: corr[i, j] must equal corr[j, i]"
    explains = [
        lambda c: "it holds NaN although every unit varies" if np.isnan(c).any() else None,
        lambda c: None if near(c, c.T) else symmetric,
        *(matches(np.cov(x, rowvar=False, ddof=ddof), covariance) for ddof in (0, 1)),
        _off_diagonal_is(
            want, "the off-diagonal entries are right; the diagonal (a unit with itself) must be 1"
        ),
        *(_off_diagonal_is(factor * want, same_ddof) for factor in (ratio, 1 / ratio)),
    ]
    rule = (
        "the Pearson correlation matrix, corr[i, j] = cov(h_i, h_j) / (std(h_i) std(h_j)) over "
        "the examples"
    )
    return Expected(want, rule, explains)


def correlations(**sizes: Any) -> list[Case]:
    """Live units: hand-made ones, then ReLU activations."""
    return [
        Case((hidden,), pearson_expected(hidden), given)
        for given, hidden in live_inputs(**sizes).items()
    ]


def dead_correlations(
    fns: Functions, *, n_examples: int, n_units: int, dead: Any, dtype: str, seed: int
) -> None:
    """unit_correlation gives dead units NaN rows and columns, and leaves the others unchanged."""
    hidden = relu_units(np.random.default_rng(seed), n_examples, n_units, dead=dead, dtype=dtype)
    live = live_columns(hidden)
    note = f"{dead_units(hidden)}: return NaN for their rows and columns instead of dividing by 0"
    corr, what = CORRELATION.result(fns, hidden, note=note)
    unit = int(np.flatnonzero(~live)[0])
    require(
        bool(np.all(np.isnan(corr[~live])) and np.all(np.isnan(corr[:, ~live]))),
        f"{what}: row {unit} is {np.array2string(corr[unit], precision=3)}, but "
        f"{dead_units(hidden)}: its whole row and column, diagonal included, must be NaN (not 0, "
        "which would claim 'uncorrelated', and not 1)",
    )
    alone, _ = CORRELATION.result(fns, hidden[:, live])
    block = corr[np.ix_(live, live)]
    require(
        bool(np.all(close(block, alone) | (np.isnan(alone) & np.isnan(block)))),
        f"{what}: the correlations between live units change when dead units are added to the "
        f"input ({dead_units(hidden)}): compute each pair from its own two units, and let only "
        "the dead units' rows and columns be NaN",
    )


def mean_abs_values(**sizes: Any) -> list[Case]:
    """Live units: the mean |corr| over distinct pairs, with the classic mistakes named."""
    cases = []
    for given, hidden in live_inputs(**sizes).items():
        corr = pearson(hidden)
        off, upper = off_diagonal(corr), corr[np.triu_indices(len(corr))]
        mistakes = {  # the value each mistake returns
            "you included each unit's correlation with itself (the diagonal, always 1): average "
            "over pairs of distinct units only": np.mean(np.abs(corr)),
            "you averaged over pairs i <= j, which includes the diagonal (each unit with itself): "
            "use i < j (or all i != j)": np.mean(np.abs(upper)),
            "you averaged the signed correlations: take the absolute value first, or positive and "
            "negative correlations cancel": np.mean(off),
            "you averaged the signed correlations with the diagonal included: use |corr| over "
            "distinct pairs": np.mean(corr),
            "you averaged squared correlations: use the absolute value": np.mean(off**2),
        }
        explains = [matches(value, hint) for hint, value in mistakes.items()]
        explains.append(lambda _: "average |corr[i, j]| over all pairs i != j")
        want = np.mean(np.abs(off))
        rule = f"{want:.6g}, the mean of |corr[i, j]| over pairs of distinct units"
        cases.append(Case((hidden,), Expected(want, rule, explains), given))
    return cases


def dead_mean_abs(
    fns: Functions, *, n_examples: int, n_units: int, dead: Any, dtype: str, seed: int
) -> None:
    """mean_abs_correlation leaves dead units out, and gives 0.0 with fewer than 2 live units."""
    hidden = relu_units(np.random.default_rng(seed), n_examples, n_units, dead=dead, dtype=dtype)
    live = live_columns(hidden)
    about = dead_units(hidden)
    value, what = MEAN_ABS.result(fns, hidden, note=f"{about}: leave them out of the average")
    alone = MEAN_ABS.result(fns, hidden[:, live])[0]
    require(
        bool(np.isfinite(value)),
        f"{what} returned {value}: {about}, and NaN in an average makes it NaN: leave the dead "
        "units out of the average instead of averaging NaN",
    )
    n_live = int(live.sum())
    as_zero = alone * n_live * (n_live - 1) / (n_units * (n_units - 1))
    hint = "the dead units must not change the average over the live ones"
    if close(value, as_zero):
        hint = (
            "you counted the dead units' pairs as correlation 0 (e.g. np.nan_to_num): leave them "
            "out; a network with more dead units would look less correlated"
        )
    require(
        bool(close(value, alone)),
        f"{what} returned {value:.6g} with dead units and {alone:.6g} on the live units alone "
        f"({about}): {hint}",
    )
    single = hidden.copy()
    single[:, np.flatnonzero(live)[1:]] = DEAD_VALUES[0]
    for given, few in (("one live unit", single), ("only dead units", hidden[:, ~live])):
        value, what = MEAN_ABS.result(
            fns, few, note=f"{dead_units(few)}: no pair is left: return 0.0"
        )
        require(
            bool(value == 0.0),
            f"{what} on {given} (shape {few.shape}) returned {value}, but with fewer than 2 live "
            "units there is no pair to average: return 0.0",
        )


# Sparsity ----------------------------------------------------------------------------------------

SPARSITY = Returns("activation_sparsity", ("hidden", "threshold"))


def sparsities(*, shape: Any, thresholds: Any, dtype: str, seed: int) -> list[Case]:
    """The fraction <= threshold: tiny positive ReLU activations at the default threshold, ties at
    each threshold (values on a grid of quarters), and a 1-D array."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(-8, 9, size=shape) / 4
    relu = np.maximum(grid, 0.0).reshape(-1)
    relu[np.flatnonzero(relu == 0)[: len(TINY_ACTIVATIONS)]] = TINY_ACTIVATIONS  # active
    inputs = [(relu.reshape(shape), None, "on ReLU activations with tiny positive ones")]
    for threshold in thresholds:
        values = grid.copy().reshape(-1)
        values[: max(2, values.size // 8)] = threshold  # ties at the threshold
        inputs.append((values.reshape(shape), threshold, "on values from -2 to 2"))
    inputs.append((grid.reshape(-1), 0.0, "on a 1-D array"))
    cases = []
    for values, threshold, given in inputs:
        hidden = values.astype(dtype)
        t, args = (0.0, (hidden,)) if threshold is None else (threshold, (hidden, threshold))
        mistakes = {  # the value each mistake returns
            "tiny positive activations (such as 1e-12) are active, and the default threshold is "
            "0.0 exactly: compare with the threshold itself, with no epsilon or np.isclose": (
                hidden <= t + 1e-6
            ),
            "you counted activations strictly below the threshold (<); those equal to it count "
            "too (<=)": hidden < t,
            "that is the fraction of ACTIVE values (> threshold); sparsity counts those <= "
            "threshold": hidden > t,
            "that is the fraction >= threshold; sparsity counts those <= threshold": hidden >= t,
            "you counted exact zeros only: compare with the threshold argument": hidden == 0,
            "you counted values equal to the threshold only: count those <= threshold": (
                hidden == t
            ),
            "you compared |activation| with the threshold: compare the activation itself": (
                np.abs(hidden) <= t
            ),
        }
        explains = [
            matches(np.mean(counted), hint, tolerance=FRACTION_TOLERANCE)
            for hint, counted in mistakes.items()
        ]
        explains.append(lambda _: "count the activations <= threshold, divided by their number")
        want = np.mean(hidden <= t)
        rule = f"{want:.6g}, the fraction of activations <= threshold"
        expected = Expected(want, rule, explains, FRACTION_TOLERANCE)
        cases.append(Case(args, expected, f"{given} (shape {hidden.shape})"))
    return cases


# Heads handed to ablation_accuracy --------------------------------------------------------------
# Each runs inside the student's function, so it is self-contained: numpy only, no other function
# of this module, no lambda or comprehension (their code objects are not the one allowed to run).


def linear_head(units: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Logits (N, K) of a linear output layer: ``units @ weights + bias``."""
    return np.asarray(units, dtype=np.float64) @ weights + bias


def softmax_head(units: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) of a linear output layer (softmax of its logits)."""
    logits = np.asarray(units, dtype=np.float64) @ weights + bias
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def removal_head(
    units: np.ndarray, survivors: int, same_columns: bool, at_least: bool = False
) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for an example whose row has exactly ``survivors``
    non-zero units (at least that many with ``at_least``) and, with ``same_columns``, its zeros
    in the same columns as the batch's first row; class 1 otherwise."""
    zero = np.asarray(units) == 0
    count = np.count_nonzero(~zero, axis=1)
    right = count >= survivors if at_least else count == survivors
    if same_columns:
        right = right & np.all(zero == zero[:1], axis=1)
    return np.stack([right, np.full(len(right), 0.5)], axis=1)


def survivors_scaled_head(units: np.ndarray, original: np.ndarray, factor: float) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for an example whose non-zero units all equal ``factor``
    times their ``original`` value (relative tolerance 1e-5); class 1 otherwise."""
    units = np.asarray(units, dtype=np.float64)
    expected = factor * original
    match = np.abs(units - expected) <= 1e-5 * np.abs(expected)
    right = np.all(match | (units == 0), axis=1)
    return np.stack([right, np.full(len(right), 0.5)], axis=1)


def unit_present_head(units: np.ndarray, unit: int) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for an example whose unit ``unit`` is non-zero."""
    right = np.asarray(units)[:, unit] != 0
    return np.stack([right, np.full(len(right), 0.5)], axis=1)


def first_removed_head(units: np.ndarray) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for example i when units 0..i are all present, so the
    accuracy on an (H, H) batch is (index of the first removed unit) / H."""
    present = np.asarray(units) != 0
    prefix = np.cumprod(present, axis=1).astype(bool)
    right = prefix[np.arange(len(prefix)), np.arange(len(prefix))]
    return np.stack([right, np.full(len(right), 0.5)], axis=1)


# Ablation ----------------------------------------------------------------------------------------

ABLATION = Returns(
    "ablation_accuracy",
    ("head", "hidden", "y", "k"),
    in_place="zero the units of a copy made in each trial (hidden.copy()), or units removed in "
    "one trial stay removed in the next",
)


def positive_units(rng: np.random.Generator, n_examples: int, n_units: int, dtype: str):
    """(N, H) activations with no zeros (eighths from 0.5 to 2), so a zero means 'removed'."""
    return (rng.integers(4, 17, size=(n_examples, n_units)) / 8).astype(dtype)


def ablation(fns: Functions, head: Any, hidden: np.ndarray, k: int, **call: Any):
    """The student's accuracy for labels 0 (``call``: rng, trials, pure), after checking it is in
    [0, 1], and the call as text."""
    y = np.zeros(len(hidden), dtype=np.int64)
    value, what = ABLATION.result(fns, head, hidden, y, k, **call)
    require(
        0.0 <= value <= 1.0,
        f"{what} returned {value:.6g}: an accuracy is a fraction of the examples, in [0, 1]",
    )
    return float(value), what


def intact(
    *, n_examples: int, n_units: int, n_classes: int, head: str, dtype: str, seed: int
) -> list[Case]:
    """k = 0: the accuracy of argmax(head(hidden)), with one and with several trials."""
    rng = np.random.default_rng(seed)
    hidden = relu_units(rng, n_examples, n_units, dtype=dtype)
    weights, bias = rng.standard_normal((n_units, n_classes)), rng.standard_normal(n_classes)
    predictions = np.argmax(linear_head(hidden, weights, bias), axis=1)
    y = predictions.copy()
    wrong = rng.permutation(n_examples)[: n_examples // 3]
    y[wrong] = (y[wrong] + 1) % n_classes
    want = np.mean(predictions == y)
    explains = [
        matches(1 - want, "that is the error rate; return the accuracy (the fraction predicted "
                "right)", tolerance=FRACTION_TOLERANCE),
        lambda _: "predict argmax(head(hidden), axis=1) and return the fraction equal to y",
    ]  # fmt: skip
    rule = f"{want:.6g}, the accuracy of the intact network"
    scorer = functools.partial(
        softmax_head if head == "probabilities" else linear_head, weights=weights, bias=bias
    )
    return [
        Case(
            (scorer, hidden, y, 0),
            Expected(want, rule, explains, FRACTION_TOLERANCE),
            f"({head} head, {n_classes} classes)",
            kwargs={"rng": np.random.default_rng(seed), "trials": trials},
        )
        for trials in (1, 4)
    ]


def distinct(
    fns: Functions, *, n_examples: int, n_units: int, ks: Any, trials: int, dtype: str, seed: int
) -> None:
    """Each trial zeroes exactly k distinct units, the same on every example, of a fresh copy."""
    hidden = positive_units(np.random.default_rng(seed), n_examples, n_units, dtype)
    for k in ks:

        def passes(same_columns: bool, at_least: bool = False, k: int = k) -> bool:
            """Is every example of every trial right for ``removal_head`` with these options?"""
            head = functools.partial(
                removal_head, survivors=n_units - k, same_columns=same_columns, at_least=at_least
            )
            rng = np.random.default_rng(seed + k)
            accuracy, _ = ablation(fns, head, hidden, k, rng=rng, trials=trials)
            return abs(accuracy - 1.0) < FRACTION_TOLERANCE

        if passes(same_columns=True):
            continue
        if passes(same_columns=False):
            hint = (
                f"each example lost k = {k} units, but not the same ones: removing a unit means "
                "zeroing its column for every example (hidden[:, units] = 0)"
            )
        elif passes(same_columns=False, at_least=True):
            hint = (
                f"some trials removed fewer than k = {k} units: a unit was chosen twice; choose k "
                "distinct units (rng.choice(H, size=k, replace=False) or a permutation)"
            )
        else:
            hint = (
                f"some trials did not leave exactly H - k = {n_units - k} units non-zero: zero "
                "exactly k units, each trial starting from the intact activations"
            )
        raise CheckFailure(
            f"ablation_accuracy(head, hidden of {n_units} units, y, k={k}, trials={trials}): {hint}"
        )


def fresh_draws(fns: Functions, *, settings: Any, trials: int, dtype: str, seed: int) -> None:
    """Each trial draws new units from rng: unit 0 is removed in about k/H of the trials."""
    delta = FALSE_FAIL / len(settings)  # one Bernstein bound per (H, k) (union bound)
    for index, (n_units, k) in enumerate(settings):
        hidden = positive_units(np.random.default_rng(seed + index), 3, n_units, dtype)
        head = functools.partial(unit_present_head, unit=0)
        accuracy, _ = ablation(
            fns, head, hidden, k, rng=np.random.default_rng(seed + index), trials=trials
        )
        # A correct implementation removes unit 0 in K ~ Binomial(trials, k / H) trials; each
        # trial then scores 0 (unit 0 gone) or 1, so accuracy = 1 - K / trials.
        require_count(
            round((1.0 - accuracy) * trials),
            trials,
            k / n_units,
            delta=delta,
            what=f"fraction of {trials} trials of ablation_accuracy (H={n_units}, k={k}) in "
            "which unit 0 was removed",
            hints={
                0.0: "unit 0 was never removed (or the same units every trial): draw new units "
                "from rng in every trial",
                1.0: "unit 0 was removed in every trial: draw new units from rng in every trial, "
                "uniformly among all H",
            },
        )
    hidden = positive_units(np.random.default_rng(seed), 64, 64, dtype)
    rng = np.random.default_rng(seed)
    before = rng.bit_generator.state
    first, what = ablation(fns, first_removed_head, hidden, 1, rng=rng, trials=20)
    require(
        rng.bit_generator.state != before,
        f"{what} did not draw anything from its rng argument: choose the units with it "
        "(rng.choice, rng.permutation, ...), not with np.random.* or a generator of your own",
    )
    # The accuracy is the mean over trials of (index of the removed unit) / H, so the same seed
    # must give the same value; a hidden source of randomness rarely does (P < 0.004).
    again, _ = ablation(
        fns, first_removed_head, hidden, 1, rng=np.random.default_rng(seed), trials=20
    )
    require(
        first == again,
        f"two calls of ablation_accuracy with generators of the same seed returned {first:.6g} "
        f"and {again:.6g}: draw every random number from the rng argument",
    )


def not_rescaled(
    fns: Functions, *, n_examples: int, n_units: int, ks: Any, trials: int, dtype: str, seed: int
) -> None:
    """Removed units become 0; the remaining units keep their values (no rescaling)."""
    hidden = positive_units(np.random.default_rng(seed), n_examples, n_units, dtype)
    for k in ks:

        def passes(factor: float, k: int = k) -> bool:
            """Do all survivors come out ``factor`` times their value? (Purity is graded in
            ablation_distinct and ablation_fresh_draws.)"""
            original = hidden.astype(np.float64)
            head = functools.partial(survivors_scaled_head, original=original, factor=factor)
            rng = np.random.default_rng(seed + k)
            accuracy, _ = ablation(fns, head, hidden, k, rng=rng, trials=trials, pure=False)
            return abs(accuracy - 1.0) < FRACTION_TOLERANCE

        if passes(1.0):
            continue
        factors = {
            "H / (H - k) (that is 1 / (1 - k/H))": n_units / (n_units - k),
            "(H - k) / H": (n_units - k) / n_units,
        }
        name = next((name for name, factor in factors.items() if passes(factor)), None)
        hint = (
            "set the removed units to 0 and leave the others exactly as they were"
            if name is None
            else f"the remaining units come out multiplied by {name} = {factors[name]:.4g}: this "
            "measurement does not rescale (unlike inverted dropout in training), it asks how the "
            "trained network copes with the units it has left"
        )
        raise CheckFailure(
            f"ablation_accuracy(head, hidden of {n_units} units, y, k={k}): the units that are "
            f"not removed changed value: {hint}"
        )


SIZES = {"n_examples": 12, "n_units": 5, "dtype": "float64"}
DEAD = {"n_examples": 10, "n_units": 6, "dead": (1, 4), "dtype": "float64"}

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "correlation_values": row(
        "unit_correlation returns the (H, H) Pearson correlation matrix of the units (all live)",
        CORRELATION.value, cases=correlations, **SIZES, seed=0),
    "correlation_dead_units": Row(
        "unit_correlation gives dead units NaN rows and columns, and leaves the others unchanged",
        dead_correlations, CORRELATION.functions, {**DEAD, "seed": 1}),
    "mean_abs_values": row(
        "mean_abs_correlation is the mean of |corr(i, j)| over pairs of distinct units (all live)",
        MEAN_ABS.value, cases=mean_abs_values, **SIZES, seed=2),
    "mean_abs_dead_units": Row(
        "mean_abs_correlation leaves dead units out, and gives 0.0 with fewer than 2 live units",
        dead_mean_abs, MEAN_ABS.functions, {**DEAD, "seed": 3}),
    "sparsity_threshold": row(
        "activation_sparsity is the fraction of activations <= threshold (default 0.0), any shape",
        SPARSITY.value, cases=sparsities, shape=(6, 8), thresholds=(0.25, -0.5), dtype="float64",
        seed=4),
    "ablation_intact": row(
        "With k = 0 nothing is removed: the accuracy of argmax(head(hidden)) against y",
        ABLATION.value, cases=intact, n_examples=40, n_units=6, n_classes=3, head="logits",
        dtype="float64", seed=5),
    "ablation_distinct": Row(
        "Each trial zeroes exactly k distinct units, the same on every example, of a fresh copy",
        distinct, ABLATION.functions, {"n_examples": 5, "n_units": 12, "ks": (1, 6, 11),
                                       "trials": 8, "dtype": "float64", "seed": 6}),
    "ablation_fresh_draws": Row(
        "Each trial draws new units from rng: unit 0 is removed in about k/H of the trials",
        fresh_draws, ABLATION.functions, {"settings": ((2, 1), (4, 2)), "trials": 150,
                                          "dtype": "float64", "seed": 7}),
    "ablation_not_rescaled": Row(
        "Removed units become 0; the remaining units keep their values (no rescaling)",
        not_rescaled, ABLATION.functions, {"n_examples": 5, "n_units": 8, "ks": (2, 4),
                                           "trials": 5, "dtype": "float64", "seed": 8}),
})
# fmt: on
ASSIGNMENT.seal()
