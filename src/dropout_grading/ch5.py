"""Checks for the graded exercise of chapter 5, ``ch5_tuning/tuning.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``max_norm(W, c)`` (``dropout_course.variants``): W is (D_in, D_out) and a layer computes
  ``x @ W``, so column j is unit j's incoming weight vector; every column longer than ``c`` is
  rescaled to norm ``c``, the others (zero columns too) are left alone, and W is not modified;
* ``width_for_kept_units(kept_units, p)`` (``dropout_course.sweeps``): the hidden width that keeps
  about ``kept_units`` units at drop rate p, ``max(1, round(kept_units / (1 - p)))``;
* ``best_rate(table)`` (``dropout_course.sweeps``): the rate with the highest mean validation
  accuracy in a table of runs (columns "p", "seed", "train_acc", "val_acc", "test_acc"); of tied
  rates the smallest.

No student function draws random numbers, so every check is exact (up to float32 rounding) on
constructed inputs: weight columns of chosen lengths in seeded random directions, rate tables
with chosen scores. Accuracies in the tables are multiples of 1/64 and tied rates have one or
two runs each, so a tie is an exact tie however a correct solution averages (``np.mean``, a sum
then a division, a running mean), and untied means (of at most five runs) differ by at least
1/960, far more than rounding. Each check tests one
property on inputs built so that the other classic mistakes pass it: a wrong axis cannot change
a matrix whose rows are all short, a choice by training accuracy agrees with validation where the
columns rank the rates alike, and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dropout_course import sweeps as _reference_sweeps
from dropout_course import variants as _reference_variants

from .framework import Assignment, BoundFunction, CheckFailure, StudentError
from .properties import as_array, close, require

ASSIGNMENT = Assignment(
    "ch5_tuning",
    notebook="tuning",
    forbidden_modules=(
        "dropout_course.variants",
        "dropout_course.sweeps",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check

# max_norm ---------------------------------------------------------------------------------------


def _columns(
    rng: np.random.Generator, shape: tuple[int, int], norms: np.ndarray, dtype: str
) -> np.ndarray:
    """A (D_in, D_out) matrix whose column j points in a random direction and has norm norms[j]."""
    directions = rng.standard_normal(shape)
    directions /= np.linalg.norm(directions, axis=0)
    return (directions * norms).astype(dtype)


def _call_max_norm(max_norm: BoundFunction, W: np.ndarray, c: float) -> np.ndarray:
    """The student's ``max_norm`` of a copy of W, as float64, after checking its shape."""
    result = max_norm(W.copy(), c)
    return as_array(
        result, what=f"the result of max_norm(W of shape {W.shape}, c={c:g})", shape=W.shape
    )


def _name_projection(out: np.ndarray, W: np.ndarray, c: float) -> str:
    """Which classic mistake ``out`` matches, as a hint ("" if none)."""
    row_norms = np.linalg.norm(W, axis=1, keepdims=True)
    col_norms = np.linalg.norm(W, axis=0, keepdims=True)
    mistakes = {  # (checks run under np.errstate(all="ignore"): 0 / 0 is quiet here)
        "it clipped each weight to [-c, c]: the constraint bounds the L2 norm of each unit's "
        "whole incoming weight vector (a column), not each weight": np.clip(W, -c, c),
        "it rescaled the rows W[i, :] (the weights going OUT of input i): with x @ W and W of "
        "shape (D_in, D_out) the weights coming INTO unit j are the column W[:, j] (norm over "
        "axis 0)": W * np.minimum(1.0, c / row_norms),
        "it rescaled every column to norm c, also those that were shorter: only columns "
        "longer than c are shrunk": W * c / col_norms,
        "it returned W unchanged": W,
    }
    for hint, wrong in mistakes.items():
        if np.all(close(out, wrong)):
            return f": {hint}"
    return ""


def _require_projection(out: np.ndarray, W: np.ndarray, c: float, *, what: str) -> None:
    """``out`` is the projection of W (up to float32 rounding); else name the mistake."""
    W = W.astype(np.float64)
    expected = _reference_variants.max_norm(W, c)
    if np.all(close(out, expected)):
        return
    if not np.all(np.isfinite(out)):
        raise CheckFailure(f"{what}: the result holds NaN or inf")
    raise CheckFailure(
        f"{what}: column norms {_some(np.linalg.norm(out, axis=0))}, expected "
        f"{_some(np.linalg.norm(expected, axis=0))} (each column W[:, j] longer than c = {c:g} "
        f"rescaled to norm c, shorter ones unchanged){_name_projection(out, W, c)}"
    )


def _some(values: np.ndarray, count: int = 4) -> str:
    """The first ``count`` values, rounded, as text for a message."""
    shown = ", ".join(f"{value:.4g}" for value in values[:count])
    return f"[{shown}{', ...' if len(values) > count else ''}]"


@ASSIGNMENT.register("max_norm")
def max_norm_long_columns(max_norm, *, shape=(6, 4), c=2.0, dtype="float64", seed=0) -> None:
    """max_norm rescales each incoming weight vector (a column of W) longer than c to norm c."""
    rng = np.random.default_rng(seed)
    # every column longer than c; random directions in D_in >= 5 dimensions spread the length
    # over the weights (clipping each to [-c, c] misses them), and the rows have other norms
    W = _columns(rng, shape, c * rng.uniform(1.5, 4.0, shape[1]), dtype)
    W[:, 0] = 0.0  # and one column of norm 3c dominated by a single weight of 2.88c
    W[0, 0], W[1, 0] = 3.0 * c * 0.96, 3.0 * c * 0.28
    what = f"max_norm(W of shape {shape}, c={c:g}) with every column longer than c"
    _require_projection(_call_max_norm(max_norm, W, c), W, c, what=what)


@ASSIGNMENT.register("max_norm")
def max_norm_short_columns(max_norm, *, shape=(8, 3), c=3.0, dtype="float64", seed=1) -> None:
    """Columns of W whose norm is at most c come back unchanged (they are not scaled up)."""
    rng = np.random.default_rng(seed)
    # Frobenius norm 0.9 c: every column, row and weight is shorter than c, so only scaling
    # short columns up (to norm c) can change this matrix
    norms = rng.uniform(0.2, 1.0, shape[1])
    W = _columns(rng, shape, 0.9 * c * norms / np.linalg.norm(norms), dtype)
    out = _call_max_norm(max_norm, W, c)
    what = f"max_norm(W of shape {shape}, c={c:g}) with every column shorter than c"
    _require_projection(out, W, c, what=what)


@ASSIGNMENT.register("max_norm")
def max_norm_zero_columns(max_norm, *, shape=(5, 6), c=1.0, dtype="float64", seed=2) -> None:
    """A column of zeros stays zeros (no 0 / 0 = NaN), and no entry becomes NaN or inf."""
    rng = np.random.default_rng(seed)
    norms = c * rng.uniform(0.3, 3.0, shape[1])
    norms[::3] = 0.0  # units whose incoming weights are all zero (a dead unit, or a fresh layer)
    W = _columns(rng, shape, norms, dtype)
    out = _call_max_norm(max_norm, W, c)
    zero = norms == 0
    call = f"max_norm(W of shape {shape}, c={c:g}) with all-zero columns {np.flatnonzero(zero)}"
    require(
        bool(np.all(np.isfinite(out))),
        f"{call}: the result holds NaN or inf in columns "
        f"{np.flatnonzero(~np.all(np.isfinite(out), axis=0)).tolist()}: a zero column has norm 0, "
        "and a factor such as min(norm, c) / norm is 0 / 0 there; leave columns with norm <= c "
        "as they are (np.where, or divide only where the norm exceeds c)",
    )
    require(
        bool(np.all(out[:, zero] == 0)),
        f"{call}: the zero columns must stay all zeros",
    )


@ASSIGNMENT.register("max_norm")
def max_norm_input_untouched(max_norm, *, shape=(6, 4), c=1.0, dtype="float64", seed=3) -> None:
    """max_norm returns a new array and leaves W itself unchanged (as the reference does)."""
    rng = np.random.default_rng(seed)
    W = _columns(rng, shape, c * rng.uniform(1.5, 3.0, shape[1]), dtype)
    given = W.copy()
    max_norm(given, c)
    require(
        np.array_equal(given, W),
        f"max_norm(W of shape {shape}, c={c:g}) changed W in place (e.g. `W *= factors` or "
        "`W[:, j] = ...`): compute and return a new array; the caller decides whether to store "
        "it (the training loop writes `W[...] = max_norm(W, c)`)",
    )


# width_for_kept_units ---------------------------------------------------------------------------


def _call_width(width_for_kept_units: BoundFunction, kept_units: float, p: float) -> float:
    """The student's width as a float, after checking it is one whole number."""
    call = f"width_for_kept_units({kept_units!r}, p={p!r})"
    try:
        result = width_for_kept_units(kept_units, p)
    except StudentError as error:
        if p == 0 and "ZeroDivisionError" in str(error):
            raise StudentError(
                f"{error}: at p = 0 nothing is dropped and the width is kept_units itself; "
                "dividing by p treats p as the keep probability (the paper's n/p): in this "
                "course p is the probability of DROPPING a unit, so divide by 1 - p"
            ) from None
        raise
    value = as_array(result, what=f"the result of {call}")
    if value.size != 1:
        raise StudentError(f"{call} must return one integer, but returned shape {value.shape}")
    width = float(value.reshape(()))
    require(
        width == round(width),
        f"{call} returned {width:g}: a number of units is a whole number (round it)",
    )
    return width


def _width_hint(width: float, kept_units: float, p: float) -> str:
    """The mistake a wrong width matches, as a hint ("" if none)."""
    exact = kept_units / (1.0 - p)
    mistakes = [
        (
            round(kept_units / p) if p > 0 else None,
            "that is kept_units / p: in this course p is the probability of DROPPING a unit "
            "(Srivastava et al. write p for the keep probability, hence their n/p)",
        ),
        (
            round(kept_units * (1.0 - p)),
            "that is kept_units * (1 - p), the number of units a layer of kept_units units "
            "keeps; here (1 - p) n = kept_units is solved for n",
        ),
        (np.floor(exact), "that is rounded down: round to the nearest integer"),
        (np.ceil(exact), "that is rounded up: round to the nearest integer"),
    ]
    for value, hint in mistakes:
        if value is not None and width == value:
            return f": {hint}"
    return ""


@ASSIGNMENT.register("width_for_kept_units")
def width_kept_units(
    width_for_kept_units,
    *,
    kept_units=(32, 10, 50, 12, 7, 24),
    p_values=(0.8, 0.3, 0.35, 0.7, 0.0, 0.6),
) -> None:
    """width_for_kept_units returns round(kept_units / (1 - p)): (1 - p) n units kept on average."""
    # no pair has k / (1 - p) within 0.01 of a half-integer, so every correct rounding agrees
    for k, p in zip(kept_units, p_values, strict=True):
        width = _call_width(width_for_kept_units, k, p)
        expected = _reference_sweeps.width_for_kept_units(k, p)
        require(
            width == expected,
            f"width_for_kept_units({k!r}, p={p!r}) returned {width:g}, expected {expected} "
            f"(the width n with (1 - p) n = {k!r} kept units, {k!r} / (1 - {p!r}) = "
            f"{k / (1 - p):.4g}, rounded){_width_hint(width, k, p)}",
        )


@ASSIGNMENT.register("width_for_kept_units")
def width_at_least_one(
    width_for_kept_units, *, kept_units=(0.2, 0.4, 0.1), p_values=(0.25, 0.0, 0.5)
) -> None:
    """width_for_kept_units never returns fewer than 1 unit, even for tiny kept_units."""
    for k, p in zip(kept_units, p_values, strict=True):
        width = _call_width(width_for_kept_units, k, p)
        require(
            width == _reference_sweeps.width_for_kept_units(k, p),
            f"width_for_kept_units({k!r}, p={p!r}) returned {width:g}: {k!r} / (1 - {p!r}) = "
            f"{k / (1 - p):.3g} rounds to {round(k / (1 - p))}, but a layer needs at least 1 "
            "unit (return max(1, ...))",
        )


# best_rate --------------------------------------------------------------------------------------

Row = tuple[float, float, float, float]
"""One run of a results table: (p, train_acc, val_acc, test_acc)."""

COLUMNS = ("p", "seed", "train_acc", "val_acc", "test_acc")
"""The columns of the tables handed to ``best_rate``."""


def results_table(runs: Sequence[Row], dtype: str = "float64") -> dict[str, np.ndarray]:
    """The table ``best_rate`` reads: a row per run; each rate's runs are numbered 0, 1, ..."""
    rates = [run[0] for run in runs]
    seeds = [rates[:i].count(rate) for i, rate in enumerate(rates)]
    columns = np.array(runs, dtype=np.float64).T
    table = {"p": columns[0], "seed": np.array(seeds)}
    table |= {name: columns[i].astype(dtype) for i, name in enumerate(COLUMNS[2:], start=1)}
    return table


def _choice(
    rates: np.ndarray, scores: np.ndarray, *, summary: Callable = np.mean, ties: str = "smallest"
) -> float:
    """The rate whose runs' ``summary`` of ``scores`` is highest; ``ties``: which tied rate wins.

    ``ties`` is "smallest", "largest", "first" or "last" (first or last appearance in the table).
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = list(dict.fromkeys(rates.tolist()))  # rates in order of first appearance
    if ties in ("smallest", "largest"):
        order.sort()
    if ties in ("largest", "last"):
        order.reverse()
    values = [summary(scores[rates == rate]) for rate in order]
    return float(order[int(np.argmax(values))])


def _call_best_rate(best_rate: BoundFunction, table: dict[str, np.ndarray]) -> float:
    """The student's choice as a float, after checking it is one number."""
    value = as_array(best_rate(table), what="the result of best_rate(table)")
    if value.size != 1:
        raise StudentError(
            f"best_rate(table) must return one rate, but returned shape {value.shape}"
        )
    return float(value.reshape(()))


_CHOICE_MISTAKES: dict[str, tuple[Callable[[dict[str, np.ndarray]], float], str]] = {
    "train": (
        lambda table: _choice(table["p"], table["train_acc"]),
        "that rate has the best TRAINING accuracy, which rewards the least regularisation; "
        "choose on validation accuracy",
    ),
    "test": (
        lambda table: _choice(table["p"], table["test_acc"]),
        "that rate has the best TEST accuracy: the test set must play no part in choosing, or "
        "the test score it reports is flattered; choose on validation accuracy",
    ),
    "best run": (
        lambda table: _choice(table["p"], table["val_acc"], summary=np.max),
        "that rate has the single best run, not the best mean: average each rate's runs "
        "(seeds) first",
    ),
    "median": (
        lambda table: _choice(table["p"], table["val_acc"], summary=np.median),
        "that rate has the best MEDIAN validation accuracy: average each rate's runs (the median "
        "and the mean differ once a rate has three runs or more)",
    ),
    "sum": (
        lambda table: _choice(table["p"], table["val_acc"], summary=np.sum),
        "that rate has the largest SUM of validation accuracies, which favours rates with more "
        "runs: average each rate's runs",
    ),
    "last run": (
        lambda table: _choice(table["p"], table["val_acc"], summary=lambda runs: runs[-1]),
        "that rate has the best LAST run: every run of a rate must count (a dict from rate to "
        "score keeps only the last one written); average them",
    ),
    "first run": (
        lambda table: _choice(table["p"], table["val_acc"], summary=lambda runs: runs[0]),
        "that rate has the best FIRST run: every run of a rate must count; average them",
    ),
    "largest tie": (
        lambda table: _choice(table["p"], table["val_acc"], ties="largest"),
        "that is the largest of the tied rates: return the SMALLEST",
    ),
    "first tie": (
        lambda table: _choice(table["p"], table["val_acc"], ties="first"),
        "that is the tied rate that comes first in the table: of tied rates return the SMALLEST",
    ),
    "last tie": (
        lambda table: _choice(table["p"], table["val_acc"], ties="last"),
        "that is the tied rate that comes last in the table: of tied rates return the SMALLEST",
    ),
}
"""Wrong ways of choosing a rate: name -> (the choice they make, the hint for it)."""


def _require_choice(
    best_rate: BoundFunction, runs: Sequence[Row], dtype: str, *, what: str, likely: Sequence[str]
) -> None:
    """best_rate(table of ``runs``) is the reference's choice, or say which mistake it matches.

    ``likely`` names the ``_CHOICE_MISTAKES`` this table is built to expose; their hints are
    tried first (two mistakes can make the same choice).
    """
    table = results_table(runs, dtype)
    chosen = _call_best_rate(best_rate, {name: column.copy() for name, column in table.items()})
    expected = _reference_sweeps.best_rate(table)
    if chosen == expected:
        return
    order = [*likely, *(name for name in _CHOICE_MISTAKES if name not in likely)]
    hints = (_CHOICE_MISTAKES[name] for name in order)
    hint = next((text for choose, text in hints if choose(table) == chosen), "")
    rates, val = table["p"], table["val_acc"].astype(np.float64)
    if not hint and chosen not in set(rates.tolist()):
        hint = "it is not one of the table's rates: return the rate itself, not its position or "
        hint += "its score"
    means = {rate: float(val[rates == rate].mean()) for rate in sorted(set(rates.tolist()))}
    raise CheckFailure(
        f"{what}: best_rate(table) returned {chosen:g}, expected {expected:g} (mean validation "
        f"accuracy per rate: {', '.join(f'{r:g}: {m:.4f}' for r, m in means.items())})"
        + (f": {hint}" if hint else "")
    )


def _offset_runs(runs: Sequence[tuple[float, float]]) -> list[Row]:
    """(p, val_acc) runs with train = (1 + val) / 2 and test = val - 1/16.

    Both are increasing affine maps of val, exact on multiples of 1/64: the three columns rank
    the rates alike and tie alike.
    """
    return [(p, (1.0 + val) / 2, val, val - 0.0625) for p, val in runs]


@ASSIGNMENT.register("best_rate")
def best_rate_validation(
    best_rate,
    *,
    runs=(
        (0.4, 0.859375, 0.734375, 0.640625),
        (0.0, 1.0, 0.5625, 0.65625),
        (0.6, 0.796875, 0.6875, 0.703125),
        (0.2, 0.953125, 0.65625, 0.6875),
        (0.4, 0.875, 0.75, 0.65625),
        (0.6, 0.78125, 0.671875, 0.71875),
        (0.0, 1.0, 0.578125, 0.640625),
        (0.2, 0.9375, 0.640625, 0.671875),
    ),
    dtype="float64",
) -> None:
    """best_rate chooses by mean validation accuracy, not by training or test accuracy."""
    # runs are (p, train_acc, val_acc, test_acc): training accuracy picks p = 0, test accuracy
    # picks p = 0.6, validation accuracy picks p = 0.4
    what = "a table where train, validation and test disagree"
    _require_choice(best_rate, runs, dtype, what=what, likely=("train", "test"))


@ASSIGNMENT.register("best_rate")
def best_rate_mean(
    best_rate,
    *,
    runs=(
        (0.6, 0.90625),
        (0.0, 0.5),
        (0.2, 0.625),
        (0.4, 0.84375),
        (0.8, 0.875),
        (0.0, 0.53125),
        (0.6, 0.5),
        (0.2, 0.75),
        (0.0, 0.5),
        (0.4, 0.8125),
        (0.8, 0.875),
        (0.6, 0.5625),
        (0.0, 0.5),
        (0.4, 0.6875),
        (0.8, 0.25),
        (0.2, 0.8125),
        (0.0, 0.46875),
    ),
) -> None:
    """best_rate averages the runs of each rate (seeds; not all rates have as many runs)."""
    # runs are (p, val_acc); train and test accuracy rank the rates as validation does. Every
    # rate has at least three runs, so the median is not the mean: the best mean is at p = 0.4
    # (0.78), the best median at 0.8, the best single run and the best first run at 0.6, the
    # best last run at 0.2 and the largest sum at 0.0 (five runs)
    what = "a table with several runs per rate"
    likely = ("median", "best run", "sum", "last run", "first run")
    _require_choice(best_rate, _offset_runs(runs), "float64", what=what, likely=likely)


@ASSIGNMENT.register("best_rate")
def best_rate_ties(
    best_rate,
    *,
    runs=(
        (0.5, 0.75),
        (0.0, 0.5),
        (0.2, 0.625),
        (0.35, 0.6875),
        (0.7, 0.875),
        (0.5, 0.75),
        (0.0, 0.625),
        (0.7, 0.625),
        (0.35, 0.75),
        (0.2, 0.875),
    ),
) -> None:
    """Of rates tied for the best mean validation accuracy, best_rate returns the smallest."""
    # runs are (p, val_acc): 0.2, 0.5 and 0.7 tie at 0.75 (two runs each, multiples of 1/64, so
    # any averaging is exact); of the three, 0.5 appears first in the table and 0.7 last. The
    # best single run (0.875, at 0.2 and 0.7) and the best last run (at 0.2) point at 0.2 too,
    # so only the tie-break decides
    what = "a table with tied rates"
    likely = ("largest tie", "first tie", "last tie")
    _require_choice(best_rate, _offset_runs(runs), "float64", what=what, likely=likely)


ASSIGNMENT.seal()
