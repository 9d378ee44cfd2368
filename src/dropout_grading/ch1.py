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

How the checks stay fair: the first three functions are deterministic, so they are checked
exactly (up to float32 rounding) on inputs built here: hand-made units with known correlations
(+1, -1, 0), ReLU-like activations on a grid of eighths (many exact zeros and tied values), dead
units that are all 0 or all 1.5 (constants whose mean is exact, so ``std == 0``, ``ptp == 0`` and
``max == min`` all find them). Dead-unit handling is judged against the student's own values on the
live units alone, so a mistake in the correlation formula does not also cost the dead-unit cells.

``ablation_accuracy`` draws its own units, so it is checked through the ``head`` it is handed: the
checks pass heads (module-level, self-contained functions, which the reference guard lets run
inside student code) whose prediction is right exactly when the ablated activations have the
property under test (k zeros, the same columns on every example; survivors unchanged; unit 0
present). Those properties hold on every trial of a correct implementation, so those checks are
exact; only the frequency with which a unit is removed is statistical (a Bernstein bound at
``FALSE_FAIL``). No check compares random draws with the reference's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_course import coadaptation as _reference_coadaptation  # noqa: F401  (seal)
from dropout_course.bounds import FALSE_FAIL

from .framework import Assignment, BoundFunction, CheckFailure, StudentError
from .properties import as_array, close, require, require_count

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


# Calling the student's functions ----------------------------------------------------------------


def _scalar(value: Any, *, what: str) -> float:
    """A returned number (a Python or numpy scalar, or an array of one element) as a float."""
    array = as_array(value, what=what)
    require(array.size == 1, f"{what} must be one number, but has shape {array.shape}")
    return float(array.reshape(()))


def _hidden_text(hidden: np.ndarray) -> str:
    return f"array(shape={hidden.shape}, dtype={hidden.dtype})"


def _call_unchanged(function: BoundFunction, hidden: np.ndarray, *args: Any, **kwargs: Any) -> Any:
    """Call ``function(hidden copy, ...)`` and check it left ``hidden`` as it was."""
    given = hidden.copy()
    result = function(given, *args, **kwargs)
    require(
        np.array_equal(given, hidden, equal_nan=True),
        f"{function.name}({_hidden_text(hidden)}, ...) changed its input in place: work on a "
        "copy (hidden.copy()), the caller still needs the activations",
    )
    return result


def _correlation_matrix(unit_correlation: BoundFunction, hidden: np.ndarray) -> np.ndarray:
    """The student's correlation matrix of ``hidden``, after checking its shape is (H, H)."""
    n_examples, n_units = hidden.shape
    corr = as_array(
        _call_unchanged(unit_correlation, hidden),
        what=f"the result of unit_correlation({_hidden_text(hidden)})",
    )
    if corr.shape == (n_examples, n_examples) and n_examples != n_units:
        raise CheckFailure(
            f"unit_correlation({_hidden_text(hidden)}) returned shape {corr.shape}: that is the "
            f"correlation between examples; correlate the H = {n_units} units (the columns), "
            "e.g. np.corrcoef(hidden, rowvar=False)"
        )
    require(
        corr.shape == (n_units, n_units),
        f"unit_correlation({_hidden_text(hidden)}) returned shape {corr.shape}, but it must be "
        f"(H, H) = {(n_units, n_units)}: one row and one column per unit",
    )
    return corr


def _first_mismatch(actual: np.ndarray, expected: np.ndarray) -> str:
    """'entry (i, j) is x, expected y' for the first entry where the two differ."""
    differ = ~(close(actual, expected) | (np.isnan(actual) & np.isnan(expected)))
    i, j = np.argwhere(differ)[0]
    return f"entry ({i}, {j}) is {actual[i, j]:.6g}, expected {expected[i, j]:.6g}"


def _diagnose_correlation(corr: np.ndarray, hidden: np.ndarray, expected: np.ndarray) -> str:
    """A hint for a correlation matrix of live units that is not the Pearson matrix."""
    x = hidden.astype(np.float64)
    if np.isnan(corr).any():
        return "it holds NaN although every unit varies"
    if not np.all(close(corr, corr.T)):
        return "it is not symmetric: corr[i, j] must equal corr[j, i]"
    for ddof in (0, 1):
        if np.all(close(corr, np.cov(x, rowvar=False, ddof=ddof))):
            return "that is the covariance: divide by the two units' standard deviations"
    if np.all(close(off_diagonal(corr), off_diagonal(expected))):
        return "the off-diagonal entries are right; the diagonal (a unit with itself) must be 1"
    ratio = len(x) / (len(x) - 1.0)
    for factor in (ratio, 1 / ratio):
        if np.all(close(off_diagonal(corr), factor * off_diagonal(expected))):
            return (
                "every correlation is off by the factor N/(N-1) or (N-1)/N: use the same ddof "
                "for the covariance and the standard deviations"
            )
    return "corr[i, j] = cov(h_i, h_j) / (std(h_i) std(h_j)) over the examples"


def _live_cases(n_examples: int, n_units: int, dtype: str, seed: int) -> dict[str, np.ndarray]:
    """Inputs with live units only, by description: hand-made units, then ReLU activations."""
    return {
        "4 hand-made units (correlations +1, -1 and 0)": known_units(dtype),
        f"{n_examples} x {n_units} ReLU activations": relu_units(
            np.random.default_rng(seed), n_examples, n_units, dtype=dtype
        ),
    }


@ASSIGNMENT.register("unit_correlation")
def correlation_values(
    unit_correlation, *, n_examples=12, n_units=5, dtype="float64", seed=0
) -> None:
    """unit_correlation returns the (H, H) Pearson correlation matrix of the units (all live)."""
    cases = _live_cases(n_examples, n_units, dtype, seed)
    for what, hidden in cases.items():
        corr = _correlation_matrix(unit_correlation, hidden)
        expected = pearson(hidden)
        if np.all(close(corr, expected)):
            continue
        raise CheckFailure(
            f"unit_correlation on {what}: {_first_mismatch(corr, expected)}: "
            f"{_diagnose_correlation(corr, hidden, expected)}"
        )


def _dead_hint(hidden: np.ndarray) -> str:
    dead = np.flatnonzero(~live_columns(hidden)).tolist()
    return (
        f"the input has dead units {dead} (the same value on every example, 0.0 or 1.5): their "
        "standard deviation is 0, so their correlation is undefined"
    )


def _with_dead_hint(call: Callable[[], Any], hidden: np.ndarray, remedy: str) -> Any:
    """Run ``call``; if the student's code raises, add what is special about the input."""
    try:
        return call()
    except StudentError as error:
        raise StudentError(f"{error} ({_dead_hint(hidden)}: {remedy})") from None


@ASSIGNMENT.register("unit_correlation")
def correlation_dead_units(
    unit_correlation, *, n_examples=10, n_units=6, dead=(1, 4), dtype="float64", seed=1
) -> None:
    """unit_correlation gives dead units NaN rows and columns, and leaves the others unchanged."""
    hidden = relu_units(np.random.default_rng(seed), n_examples, n_units, dead=dead, dtype=dtype)
    live = live_columns(hidden)
    remedy = "return NaN for their rows and columns instead of dividing by 0"
    corr = _with_dead_hint(lambda: _correlation_matrix(unit_correlation, hidden), hidden, remedy)
    dead_lines = np.zeros_like(corr, dtype=bool)
    dead_lines[~live, :] = dead_lines[:, ~live] = True
    if not np.all(np.isnan(corr[dead_lines])):
        unit = int(np.flatnonzero(~live)[0])
        raise CheckFailure(
            f"unit_correlation: row {unit} is {np.array2string(corr[unit], precision=3)}, but "
            f"{_dead_hint(hidden)}: its whole row and column, diagonal included, must be NaN "
            "(not 0, which would claim 'uncorrelated', and not 1)"
        )
    alone = _correlation_matrix(unit_correlation, hidden[:, live])
    block = corr[np.ix_(live, live)]
    if not np.all(close(block, alone) | (np.isnan(alone) & np.isnan(block))):
        raise CheckFailure(
            "unit_correlation: the correlations between live units change when dead units are "
            f"added to the input ({_dead_hint(hidden)}): compute each pair from its own two "
            "units, and let only the dead units' rows and columns be NaN"
        )


def _mean_abs(mean_abs_correlation: BoundFunction, hidden: np.ndarray) -> float:
    return _scalar(
        _call_unchanged(mean_abs_correlation, hidden),
        what=f"mean_abs_correlation({_hidden_text(hidden)})",
    )


def _mean_abs_mistakes(corr: np.ndarray) -> dict[str, float]:
    """Values that common mistakes give for the Pearson matrix ``corr`` of live units."""
    n_units = len(corr)
    upper = corr[np.triu_indices(n_units)]
    return {
        "you included each unit's correlation with itself (the diagonal, always 1): average "
        "over pairs of distinct units only": float(np.mean(np.abs(corr))),
        "you averaged over pairs i <= j, which includes the diagonal (each unit with itself): "
        "use i < j (or all i != j)": float(np.mean(np.abs(upper))),
        "you averaged the signed correlations: take the absolute value first, or positive and "
        "negative correlations cancel": float(np.mean(off_diagonal(corr))),
        "you averaged the signed correlations with the diagonal included: use |corr| over "
        "distinct pairs": float(np.mean(corr)),
        "you averaged squared correlations: use the absolute value": float(
            np.mean(off_diagonal(corr) ** 2)
        ),
    }


@ASSIGNMENT.register("mean_abs_correlation")
def mean_abs_values(
    mean_abs_correlation, *, n_examples=12, n_units=5, dtype="float64", seed=2
) -> None:
    """mean_abs_correlation is the mean of |corr(i, j)| over pairs of distinct units (all live)."""
    cases = _live_cases(n_examples, n_units, dtype, seed)
    for what, hidden in cases.items():
        value = _mean_abs(mean_abs_correlation, hidden)
        corr = pearson(hidden)
        expected = float(np.mean(np.abs(off_diagonal(corr))))
        if close(np.array(value), np.array(expected)):
            continue
        hint = "average |corr[i, j]| over all pairs i != j"
        for mistake, wrong in _mean_abs_mistakes(corr).items():
            if close(np.array(value), np.array(wrong)):
                hint = mistake
                break
        raise CheckFailure(
            f"mean_abs_correlation on {what}: returned {value:.6g}, expected {expected:.6g}: {hint}"
        )


@ASSIGNMENT.register("mean_abs_correlation")
def mean_abs_dead_units(
    mean_abs_correlation, *, n_examples=10, n_units=6, dead=(1, 4), dtype="float64", seed=3
) -> None:
    """mean_abs_correlation leaves dead units out, and gives 0.0 with fewer than 2 live units."""
    hidden = relu_units(np.random.default_rng(seed), n_examples, n_units, dead=dead, dtype=dtype)
    live = live_columns(hidden)
    remedy = "leave them out of the average"
    value = _with_dead_hint(lambda: _mean_abs(mean_abs_correlation, hidden), hidden, remedy)
    alone = _mean_abs(mean_abs_correlation, hidden[:, live])
    if not np.isfinite(value):
        raise CheckFailure(
            f"mean_abs_correlation returned {value}: {_dead_hint(hidden)}, and NaN in an average "
            "makes it NaN: leave the dead units out of the average instead of averaging NaN"
        )
    if not close(np.array(value), np.array(alone)):
        n_live, n_all = int(live.sum()), n_units
        as_zero = alone * n_live * (n_live - 1) / (n_all * (n_all - 1))
        hint = "the dead units must not change the average over the live ones"
        if close(np.array(value), np.array(as_zero)):
            hint = "you counted the dead units' pairs as correlation 0 (e.g. np.nan_to_num): " + (
                "leave them out; a network with more dead units would look less correlated"
            )
        raise CheckFailure(
            f"mean_abs_correlation returned {value:.6g} with dead units and {alone:.6g} on the "
            f"live units alone ({_dead_hint(hidden)}): {hint}"
        )
    single = hidden.copy()
    single[:, np.flatnonzero(live)[1:]] = DEAD_VALUES[0]
    for what, few in (("one live unit", single), ("only dead units", hidden[:, ~live])):
        value = _with_dead_hint(
            lambda h=few: _mean_abs(mean_abs_correlation, h), few, "no pair is left: return 0.0"
        )
        require(
            value == 0.0,
            f"mean_abs_correlation on {what} (shape {few.shape}) returned {value}, but with "
            "fewer than 2 live units there is no pair to average: return 0.0",
        )


TINY_ACTIVATIONS = (1e-12, 1e-30)
"""Positive activations, however small, are active: a default threshold of 1e-8 or np.isclose
would call them zeros. Both are normal numbers in float32 too, so they survive the hidden test's
cast."""


def _sparsity_mistakes(hidden: np.ndarray, threshold: float) -> dict[str, float]:
    """Values that common mistakes give for ``activation_sparsity(hidden, threshold)``."""
    return {
        "tiny positive activations (such as 1e-12) are active, and the default threshold is 0.0 "
        "exactly: compare with the threshold itself, with no epsilon or np.isclose": float(
            np.mean(hidden <= threshold + 1e-6)
        ),
        "you counted activations strictly below the threshold (<); those equal to it count "
        "too (<=)": float(np.mean(hidden < threshold)),
        "that is the fraction of ACTIVE values (> threshold); sparsity counts those <= threshold": (
            float(np.mean(hidden > threshold))
        ),
        "that is the fraction >= threshold; sparsity counts those <= threshold": float(
            np.mean(hidden >= threshold)
        ),
        "you counted exact zeros only: compare with the threshold argument": float(
            np.mean(hidden == 0)
        ),
        "you counted values equal to the threshold only: count those <= threshold": float(
            np.mean(hidden == threshold)
        ),
        "you compared |activation| with the threshold: compare the activation itself": float(
            np.mean(np.abs(hidden) <= threshold)
        ),
    }


@ASSIGNMENT.register("activation_sparsity")
def sparsity_threshold(
    activation_sparsity, *, shape=(6, 8), thresholds=(0.25, -0.5), dtype="float64", seed=4
) -> None:
    """activation_sparsity is the fraction of activations <= threshold (default 0.0), any shape."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(-8, 9, size=shape) / 4  # quarters: negatives, zeros, values tied at t
    relu = np.maximum(grid, 0.0).reshape(-1)
    relu[np.flatnonzero(relu == 0)[: len(TINY_ACTIVATIONS)]] = TINY_ACTIVATIONS  # active
    cases = [
        (relu.reshape(shape), None, "ReLU activations with tiny positive ones, default threshold")
    ]
    for threshold in thresholds:
        values = grid.copy().reshape(-1)
        values[: max(2, values.size // 8)] = threshold  # ties at the threshold
        cases.append(
            (values.reshape(shape), threshold, f"values from -2 to 2, threshold={threshold:g}")
        )
    cases.append((grid.reshape(-1), 0.0, "a 1-D array, threshold=0.0"))
    for values, threshold, what in cases:
        hidden = values.astype(dtype)
        args = () if threshold is None else (threshold,)
        fraction = _scalar(
            _call_unchanged(activation_sparsity, hidden, *args),
            what=f"activation_sparsity on {what}",
        )
        used = 0.0 if threshold is None else threshold
        expected = float(np.mean(hidden <= used))
        if abs(fraction - expected) < FRACTION_TOLERANCE:
            continue
        hint = "count the activations <= threshold, divided by their total number"
        for mistake, wrong in _sparsity_mistakes(hidden, used).items():
            if abs(fraction - wrong) < FRACTION_TOLERANCE:
                hint = mistake
                break
        raise CheckFailure(
            f"activation_sparsity on {what} (shape {hidden.shape}): returned {fraction:.6g}, "
            f"expected {expected:.6g}: {hint}"
        )


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
    scores = np.full((len(zero), 2), 0.5)
    scores[:, 0] = right
    return scores


def survivors_scaled_head(units: np.ndarray, original: np.ndarray, factor: float) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for an example whose non-zero units all equal ``factor``
    times their ``original`` value (relative tolerance 1e-5); class 1 otherwise."""
    units = np.asarray(units, dtype=np.float64)
    expected = factor * original
    match = np.abs(units - expected) <= 1e-5 * np.abs(expected)
    right = np.all(match | (units == 0), axis=1)
    scores = np.full((len(units), 2), 0.5)
    scores[:, 0] = right
    return scores


def unit_present_head(units: np.ndarray, unit: int) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for an example whose unit ``unit`` is non-zero."""
    present = np.asarray(units)[:, unit] != 0
    scores = np.full((len(present), 2), 0.5)
    scores[:, 0] = present
    return scores


def first_removed_head(units: np.ndarray) -> np.ndarray:
    """Scores (N, 2) predicting class 0 for example i when units 0..i are all present, so the
    accuracy on an (H, H) batch is (index of the first removed unit) / H."""
    present = np.asarray(units) != 0
    prefix = np.cumprod(present, axis=1).astype(bool)
    right = prefix[np.arange(len(prefix)), np.arange(len(prefix))]
    scores = np.full((len(right), 2), 0.5)
    scores[:, 0] = right
    return scores


def _positive_units(rng: np.random.Generator, n_examples: int, n_units: int, dtype: str):
    """(N, H) activations with no zeros (eighths from 0.5 to 2), so a zero means 'removed'."""
    return (rng.integers(4, 17, size=(n_examples, n_units)) / 8).astype(dtype)


def _ablation(
    ablation_accuracy: BoundFunction,
    head: Callable[[np.ndarray], np.ndarray],
    hidden: np.ndarray,
    y: np.ndarray,
    k: int,
    *,
    seed: int | np.random.Generator,
    trials: int,
) -> float:
    """The student's accuracy (with a generator of ``seed``), checked to be a number in [0, 1]."""
    call = f"ablation_accuracy(head, {_hidden_text(hidden)}, y, k={k}, rng=rng, trials={trials})"
    rng = np.random.default_rng(seed)  # a Generator passes through unchanged
    accuracy = _scalar(ablation_accuracy(head, hidden, y, k, rng=rng, trials=trials), what=call)
    require(
        0.0 <= accuracy <= 1.0,
        f"{call} returned {accuracy:.6g}: an accuracy is a fraction of the examples, in [0, 1]",
    )
    return accuracy


@ASSIGNMENT.register("ablation_accuracy")
def ablation_intact(
    ablation_accuracy,
    *,
    n_examples=40,
    n_units=6,
    n_classes=3,
    head="logits",
    dtype="float64",
    seed=5,
) -> None:
    """With k = 0 nothing is removed: the accuracy of argmax(head(hidden)) against y."""
    rng = np.random.default_rng(seed)
    hidden = relu_units(rng, n_examples, n_units, dtype=dtype)
    weights, bias = rng.standard_normal((n_units, n_classes)), rng.standard_normal(n_classes)
    predictions = np.argmax(linear_head(hidden, weights, bias), axis=1)
    y = predictions.copy()
    wrong = rng.permutation(n_examples)[: n_examples // 3]
    y[wrong] = (y[wrong] + 1) % n_classes
    expected = float(np.mean(predictions == y))
    scorer = softmax_head if head == "probabilities" else linear_head
    for trials in (1, 4):
        given = hidden.copy()
        accuracy = _ablation(
            ablation_accuracy,
            functools.partial(scorer, weights=weights, bias=bias),
            given,
            y,
            0,
            seed=seed,
            trials=trials,
        )
        require(
            np.array_equal(given, hidden),
            "ablation_accuracy changed hidden in place: zero the units of a copy",
        )
        if abs(accuracy - expected) < FRACTION_TOLERANCE:
            continue
        hint = "predict argmax(head(hidden), axis=1) and return the fraction equal to y"
        if abs(accuracy - (1 - expected)) < FRACTION_TOLERANCE:
            hint = "that is the error rate; return the accuracy (the fraction predicted right)"
        raise CheckFailure(
            f"ablation_accuracy with k=0, trials={trials} ({head} head, {n_classes} classes): "
            f"returned {accuracy:.6g}, expected the accuracy of the intact network "
            f"{expected:.6g}: {hint}"
        )


@ASSIGNMENT.register("ablation_accuracy")
def ablation_distinct(
    ablation_accuracy, *, n_examples=5, n_units=12, ks=(1, 6, 11), trials=8, dtype="float64", seed=6
) -> None:
    """Each trial zeroes exactly k distinct units, the same on every example, of a fresh copy."""
    hidden = _positive_units(np.random.default_rng(seed), n_examples, n_units, dtype)
    y = np.zeros(n_examples, dtype=np.int64)
    for k in ks:
        survivors = n_units - k

        def all_right(same_columns: bool, at_least: bool = False, k: int = k) -> bool:
            """Did every example of every trial pass ``removal_head`` with these options?"""
            head = functools.partial(
                removal_head, survivors=n_units - k, same_columns=same_columns, at_least=at_least
            )
            given = hidden.copy()
            accuracy = _ablation(ablation_accuracy, head, given, y, k, seed=seed + k, trials=trials)
            require(
                np.array_equal(given, hidden),
                "ablation_accuracy changed hidden in place: zero the units of a copy made in "
                "each trial (hidden.copy()), or units removed in one trial stay removed in the "
                "next",
            )
            return abs(accuracy - 1.0) < FRACTION_TOLERANCE

        if all_right(same_columns=True):
            continue
        what = f"ablation_accuracy(head, hidden of {n_units} units, y, k={k}, trials={trials})"
        if all_right(same_columns=False):
            raise CheckFailure(
                f"{what}: each example lost k = {k} units, but not the same ones: removing a unit "
                "means zeroing its column for every example (hidden[:, units] = 0)"
            )
        if all_right(same_columns=False, at_least=True):
            raise CheckFailure(
                f"{what}: some trials removed fewer than k = {k} units: a unit was chosen twice; "
                "choose k distinct units (rng.choice(H, size=k, replace=False) or a permutation)"
            )
        raise CheckFailure(
            f"{what}: some trials did not leave exactly H - k = {survivors} units non-zero: "
            "zero exactly k units, each trial starting from the intact activations"
        )


@ASSIGNMENT.register("ablation_accuracy")
def ablation_fresh_draws(
    ablation_accuracy, *, settings=((2, 1), (4, 2)), trials=150, dtype="float64", seed=7
) -> None:
    """Each trial draws new units from rng: unit 0 is removed in about k/H of the trials."""
    delta = FALSE_FAIL / len(settings)  # one Bernstein bound per (H, k) (union bound)
    for index, (n_units, k) in enumerate(settings):
        rng = np.random.default_rng(seed + index)
        hidden = _positive_units(rng, 3, n_units, dtype)
        head = functools.partial(unit_present_head, unit=0)
        y = np.zeros(3, dtype=np.int64)
        accuracy = _ablation(
            ablation_accuracy, head, hidden, y, k, seed=seed + index, trials=trials
        )
        # A correct implementation removes unit 0 in K ~ Binomial(trials, k / H) trials; each
        # trial then scores 0 (unit 0 gone) or 1, so accuracy = 1 - K / trials.
        removed = round((1.0 - accuracy) * trials)
        require_count(
            removed,
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
    n_units = 64
    hidden = _positive_units(np.random.default_rng(seed), n_units, n_units, dtype)
    y = np.zeros(n_units, dtype=np.int64)
    rng = np.random.default_rng(seed)
    before = rng.bit_generator.state
    first = _ablation(ablation_accuracy, first_removed_head, hidden, y, 1, seed=rng, trials=20)
    require(
        rng.bit_generator.state != before,
        "ablation_accuracy did not draw anything from its rng argument: choose the units with "
        "it (rng.choice, rng.permutation, ...), not with np.random.* or a generator of your own",
    )
    # The accuracy is the mean over trials of (index of the removed unit) / H, so the same seed
    # must give the same value; a hidden source of randomness rarely does (P < 0.004).
    again = _ablation(ablation_accuracy, first_removed_head, hidden, y, 1, seed=seed, trials=20)
    require(
        first == again,
        f"two calls of ablation_accuracy with generators of the same seed returned {first:.6g} "
        f"and {again:.6g}: draw every random number from the rng argument",
    )


@ASSIGNMENT.register("ablation_accuracy")
def ablation_not_rescaled(
    ablation_accuracy, *, n_examples=5, n_units=8, ks=(2, 4), trials=5, dtype="float64", seed=8
) -> None:
    """Removed units become 0; the remaining units keep their values (no rescaling)."""
    rng = np.random.default_rng(seed)
    hidden = _positive_units(rng, n_examples, n_units, dtype)
    y = np.zeros(n_examples, dtype=np.int64)
    original = hidden.astype(np.float64)
    for k in ks:

        def agrees(factor: float, k: int = k) -> bool:
            head = functools.partial(survivors_scaled_head, original=original, factor=factor)
            accuracy = _ablation(
                ablation_accuracy, head, hidden.copy(), y, k, seed=seed + k, trials=trials
            )
            return abs(accuracy - 1.0) < FRACTION_TOLERANCE

        if agrees(1.0):
            continue
        factors = {
            "H / (H - k) (that is 1 / (1 - k/H))": n_units / (n_units - k),
            "(H - k) / H": (n_units - k) / n_units,
        }
        hint = "set the removed units to 0 and leave the others exactly as they were"
        for name, factor in factors.items():
            if agrees(factor):
                hint = (
                    f"the remaining units come out multiplied by {name} = {factor:.4g}: this "
                    "measurement does not rescale (unlike inverted dropout in training), it "
                    "asks how the trained network copes with the units it has left"
                )
                break
        raise CheckFailure(
            f"ablation_accuracy(head, hidden of {n_units} units, y, k={k}): the units that are "
            f"not removed changed value: {hint}"
        )


ASSIGNMENT.seal()
