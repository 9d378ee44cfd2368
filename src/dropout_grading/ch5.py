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

No student function draws random numbers, so each is a ``Returns`` subject of the property kit
(:mod:`dropout_grading.properties`) judged by value (up to float32 rounding) on constructed
inputs: weight columns of chosen lengths in seeded random directions, rate tables with chosen
scores. Accuracies in the tables are multiples of 1/64 and tied rates have one or two runs each,
so a tie is an exact tie however a correct solution averages (``np.mean``, a sum then a division,
a running mean), and untied means (of at most five runs) differ by at least 1/960, far more than
rounding. Each check tests one property on inputs built so that the other classic mistakes pass
it: a wrong axis cannot change a matrix whose rows are all short, a choice by training accuracy
agrees with validation where the columns rank the rates alike, and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .framework import Assignment
from .properties import Case, Expected, Returns, matches, row

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

EXACT = 1e-9
"""Tolerance for a width or a rate: a whole number, or a value copied from the table."""

# max_norm ---------------------------------------------------------------------------------------

MAX_NORM = Returns(
    "max_norm",
    ("W", "c"),
    shape=lambda W, c: W.shape,
    pure=False,  # max_norm_input_untouched grades it
    in_place="compute and return a new array (not `W *= factors` or `W[:, j] = ...`); the caller "
    "decides whether to store it (the training loop writes `W[...] = max_norm(W, c)`)",
)


def columns(
    rng: np.random.Generator, shape: tuple[int, int], norms: np.ndarray, dtype: str
) -> np.ndarray:
    """A (D_in, D_out) matrix whose column j points in a random direction and has norm norms[j]."""
    directions = rng.standard_normal(shape)
    directions /= np.linalg.norm(directions, axis=0)
    return (directions * norms).astype(dtype)


def _some(values: np.ndarray, count: int = 4) -> str:
    """The first ``count`` values, rounded, as text for a message."""
    shown = ", ".join(f"{value:.4g}" for value in values[:count])
    return f"[{shown}{', ...' if len(values) > count else ''}]"


def projection(W: np.ndarray, c: float, given: str) -> Case:
    """max_norm(W, c): columns longer than c rescaled to norm c, with the classic mistakes named."""
    x = W.astype(np.float64)
    norms = np.linalg.norm(x, axis=0)
    want = x * (c / np.maximum(norms, c))
    explains = [
        lambda out: None if np.all(np.isfinite(out)) else "the result holds NaN or inf",
        matches(
            np.clip(x, -c, c),
            "it clipped each weight to [-c, c]: the constraint bounds the L2 norm of each unit's "
            "whole incoming weight vector (a column), not each weight",
        ),
        matches(
            x * np.minimum(1.0, c / np.linalg.norm(x, axis=1, keepdims=True)),
            "it rescaled the rows W[i, :] (the weights going OUT of input i): with x @ W and W of "
            "shape (D_in, D_out) the weights coming INTO unit j are the column W[:, j] (norm over "
            "axis 0)",
        ),
        matches(
            x * c / norms,
            "it rescaled every column to norm c, also those that were shorter: only columns "
            "longer than c are shrunk",
        ),
        matches(x, "it returned W unchanged"),
        lambda out: (
            f"column norms {_some(np.linalg.norm(out, axis=0))}, expected "
            f"{_some(np.linalg.norm(want, axis=0))}"
        ),
    ]
    rule = f"W with each column W[:, j] longer than c = {c:g} rescaled to norm c, shorter ones kept"
    return Case((W, c), Expected(want, rule, explains), given)


def long_columns(*, shape: Any, c: float, dtype: str, seed: int) -> list[Case]:
    """Every column longer than c; random directions in D_in >= 5 dimensions spread the length
    over the weights (clipping each to [-c, c] misses them), and the rows have other norms."""
    rng = np.random.default_rng(seed)
    W = columns(rng, shape, c * rng.uniform(1.5, 4.0, shape[1]), dtype)
    W[:, 0] = 0.0  # and one column of norm 3c dominated by a single weight of 2.88c
    W[0, 0], W[1, 0] = 3.0 * c * 0.96, 3.0 * c * 0.28
    return [projection(W, c, "with every column longer than c")]


def short_columns(*, shape: Any, c: float, dtype: str, seed: int) -> list[Case]:
    """Frobenius norm 0.9 c: every column, row and weight is shorter than c, so only scaling short
    columns up (to norm c) can change this matrix."""
    rng = np.random.default_rng(seed)
    norms = rng.uniform(0.2, 1.0, shape[1])
    W = columns(rng, shape, 0.9 * c * norms / np.linalg.norm(norms), dtype)
    return [projection(W, c, "with every column shorter than c")]


def zero_columns(*, shape: Any, c: float, dtype: str, seed: int) -> list[Case]:
    """Columns of zeros among others (a dead unit, or a fresh layer): judged here are only that
    every entry is finite and that the zero columns stay zeros (the others have their own cells):
    the tolerance is infinite elsewhere, and ``|NaN - 0| < inf`` is false."""
    rng = np.random.default_rng(seed)
    norms = c * rng.uniform(0.3, 3.0, shape[1])
    norms[::3] = 0.0
    W = columns(rng, shape, norms, dtype)
    zero = np.flatnonzero(norms == 0)

    def not_finite(out: np.ndarray) -> str | None:
        bad = np.flatnonzero(~np.all(np.isfinite(out), axis=0)).tolist()
        if not bad:
            return None
        return (
            f"the result holds NaN or inf in columns {bad}: a zero column has norm 0, and a "
            "factor such as min(norm, c) / norm is 0 / 0 there; leave columns with norm <= c as "
            "they are (np.where, or divide only where the norm exceeds c)"
        )

    explains = [not_finite, lambda out: "the zero columns must stay all zeros"]
    rule = f"finite, with the all-zero columns {zero.tolist()} still all zeros"
    tolerance = np.where(norms == 0, 1e-300, np.inf)
    return [Case((W, c), Expected(np.zeros(shape), rule, explains, tolerance), "with zero columns")]


# width_for_kept_units ---------------------------------------------------------------------------

WIDTH = Returns("width_for_kept_units", ("kept_units", "p"))

ZERO_RATE = (
    "at p = 0 nothing is dropped and the width is kept_units itself; dividing by p treats p as the "
    "keep probability (the paper's n/p): in this course p is the probability of DROPPING a unit, "
    "so divide by 1 - p"
)


def widths(*, kept_units: Sequence[float], p_values: Sequence[float]) -> list[Case]:
    """max(1, round(k / (1 - p))) for each pair, with the classic mistakes named (the defaults
    have no k / (1 - p) within 0.01 of a half-integer, so every correct rounding agrees)."""
    cases = []
    for k, p in zip(kept_units, p_values, strict=True):
        exact = k / (1.0 - p)
        mistakes = {  # the width each mistake returns
            f"it rounds to {round(exact)}, but a layer needs at least 1 unit (return max(1, "
            "...))": round(exact),
            "that is kept_units / p: in this course p is the probability of DROPPING a unit "
            "(Srivastava et al. write p for the keep probability, hence their n/p)": (
                round(k / p) if p > 0 else np.nan
            ),
            "that is kept_units * (1 - p), the number of units a layer of kept_units units keeps; "
            "here (1 - p) n = kept_units is solved for n": round(k * (1.0 - p)),
            "that is rounded down: round to the nearest integer": np.floor(exact),
            "that is rounded up: round to the nearest integer": np.ceil(exact),
        }
        explains = [
            lambda w: (
                None if w == np.round(w) else "a number of units is a whole number (round it)"
            ),
            *(matches(np.float64(width), hint) for hint, width in mistakes.items()),
            lambda _: "n = max(1, round(kept_units / (1 - p)))",
        ]
        want = max(1, round(exact))
        rule = (
            f"{want}, the width n with (1 - p) n = {k!r} kept units ({k!r} / (1 - {p!r}) = "
            f"{exact:.4g}), rounded, and at least 1"
        )
        note = ZERO_RATE if p == 0 else ""
        cases.append(Case((k, p), Expected(np.float64(want), rule, explains, EXACT), note=note))
    return cases


# best_rate --------------------------------------------------------------------------------------

BEST_RATE = Returns("best_rate", ("table",))

COLUMNS = ("p", "seed", "train_acc", "val_acc", "test_acc")
"""The columns of the tables handed to ``best_rate``."""


def results_table(runs: Sequence[Sequence[float]], dtype: str) -> dict[str, np.ndarray]:
    """The table ``best_rate`` reads, a row per run: (p, train_acc, val_acc, test_acc), or
    (p, val_acc) with train = (1 + val) / 2 and test = val - 1/16, increasing affine maps of val,
    exact on multiples of 1/64: the three columns rank the rates alike and tie alike. Each rate's
    runs are numbered 0, 1, ... in "seed"."""
    full = [
        run if len(run) == 4 else (run[0], (1 + run[1]) / 2, run[1], run[1] - 0.0625)
        for run in runs
    ]
    columns = np.array(full, dtype=np.float64).T
    rates = columns[0].tolist()
    table = {"p": columns[0], "seed": np.array([rates[:i].count(r) for i, r in enumerate(rates)])}
    return table | {name: columns[i].astype(dtype) for i, name in enumerate(COLUMNS[2:], start=1)}


def choice(
    rates: np.ndarray, scores: np.ndarray, *, summary: Callable = np.mean, ties: str = "smallest"
) -> float:
    """The rate whose runs' ``summary`` of ``scores`` is highest; ``ties``: which tied rate wins,
    "smallest", "largest", "first" or "last" (first or last appearance in the table)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = list(dict.fromkeys(rates.tolist()))  # rates in order of first appearance
    if ties in ("smallest", "largest"):
        order.sort()
    if ties in ("largest", "last"):
        order.reverse()
    values = [summary(scores[rates == rate]) for rate in order]
    return float(order[int(np.argmax(values))])


def choices(*, runs: Sequence[Sequence[float]], dtype: str = "float64") -> list[Case]:
    """The rate with the best mean validation accuracy, of tied ones the smallest; the classic
    mistakes named (in an order where each table's hint is the mistake it is built to expose)."""
    table = results_table(runs, dtype)
    rates, val = table["p"], table["val_acc"]
    mistakes = {  # the rate each mistake chooses
        "that rate has the best TRAINING accuracy, which rewards the least regularisation; choose "
        "on validation accuracy": choice(rates, table["train_acc"]),
        "that rate has the best TEST accuracy: the test set must play no part in choosing, or the "
        "test score it reports is flattered; choose on validation accuracy": (
            choice(rates, table["test_acc"])
        ),
        "that is the largest of the tied rates: return the SMALLEST": (
            choice(rates, val, ties="largest")
        ),
        "that is the tied rate that comes first in the table: of tied rates return the SMALLEST": (
            choice(rates, val, ties="first")
        ),
        "that is the tied rate that comes last in the table: of tied rates return the SMALLEST": (
            choice(rates, val, ties="last")
        ),
        "that rate has the single best run, not the best mean: average each rate's runs (seeds) "
        "first": choice(rates, val, summary=np.max),
        "that rate has the best MEDIAN validation accuracy: average each rate's runs (the median "
        "and the mean differ once a rate has three runs or more)": (
            choice(rates, val, summary=np.median)
        ),
        "that rate has the largest SUM of validation accuracies, which favours rates with more "
        "runs: average each rate's runs": choice(rates, val, summary=np.sum),
        "that rate has the best LAST run: every run of a rate must count (a dict from rate to "
        "score keeps only the last one written); average them": (
            choice(rates, val, summary=lambda runs: runs[-1])
        ),
        "that rate has the best FIRST run: every run of a rate must count; average them": (
            choice(rates, val, summary=lambda runs: runs[0])
        ),
    }
    not_a_rate = (
        "it is not one of the table's rates: return the rate itself, not its position or its score"
    )
    explains = [
        *(matches(np.float64(rate), hint) for hint, rate in mistakes.items()),
        lambda chosen: None if float(chosen) in rates.tolist() else not_a_rate,
        lambda _: (
            "choose the rate with the highest mean validation accuracy, of tied rates the smallest"
        ),
    ]
    means = ", ".join(
        f"{r:g}: {val[rates == r].astype(np.float64).mean():.4f}" for r in np.unique(rates)
    )
    want = choice(rates, val)
    rule = f"{want:g} (mean validation accuracy per rate: {means})"
    return [Case((table,), Expected(np.float64(want), rule, explains, EXACT))]


DISAGREE = (
    (0.4, 0.859375, 0.734375, 0.640625),
    (0.0, 1.0, 0.5625, 0.65625),
    (0.6, 0.796875, 0.6875, 0.703125),
    (0.2, 0.953125, 0.65625, 0.6875),
    (0.4, 0.875, 0.75, 0.65625),
    (0.6, 0.78125, 0.671875, 0.71875),
    (0.0, 1.0, 0.578125, 0.640625),
    (0.2, 0.9375, 0.640625, 0.671875),
)
"""(p, train_acc, val_acc, test_acc): training accuracy picks p = 0, test accuracy picks p = 0.6,
validation accuracy picks p = 0.4."""

SEVERAL_RUNS = (
    (0.6, 0.90625), (0.0, 0.5), (0.2, 0.625), (0.4, 0.84375), (0.8, 0.875), (0.0, 0.53125),
    (0.6, 0.5), (0.2, 0.75), (0.0, 0.5), (0.4, 0.8125), (0.8, 0.875), (0.6, 0.5625), (0.0, 0.5),
    (0.4, 0.6875), (0.8, 0.25), (0.2, 0.8125), (0.0, 0.46875),
)  # fmt: skip
"""(p, val_acc): every rate has at least three runs, so the median is not the mean: the best mean
is at p = 0.4 (0.78), the best median at 0.8, the best single run and the best first run at 0.6,
the best last run at 0.2 and the largest sum at 0.0 (five runs)."""

TIED = (
    (0.5, 0.75), (0.0, 0.5), (0.2, 0.625), (0.35, 0.6875), (0.7, 0.875), (0.5, 0.75), (0.0, 0.625),
    (0.7, 0.625), (0.35, 0.75), (0.2, 0.875),
)  # fmt: skip
"""(p, val_acc): 0.2, 0.5 and 0.7 tie at 0.75 (two runs each, multiples of 1/64, so any averaging
is exact); of the three, 0.5 appears first in the table and 0.7 last. The best single run (0.875,
at 0.2 and 0.7) and the best last run (at 0.2) point at 0.2 too, so only the tie-break decides."""

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "max_norm_long_columns": row(
        "max_norm rescales each incoming weight vector (a column of W) longer than c to norm c",
        MAX_NORM.value, cases=long_columns, shape=(6, 4), c=2.0, dtype="float64", seed=0),
    "max_norm_short_columns": row(
        "Columns of W whose norm is at most c come back unchanged (they are not scaled up)",
        MAX_NORM.value, cases=short_columns, shape=(8, 3), c=3.0, dtype="float64", seed=1),
    "max_norm_zero_columns": row(
        "A column of zeros stays zeros (no 0 / 0 = NaN), and no entry becomes NaN or inf",
        MAX_NORM.value, cases=zero_columns, shape=(5, 6), c=1.0, dtype="float64", seed=2),
    "max_norm_input_untouched": row(
        "max_norm returns a new array and leaves W itself unchanged (as the reference does)",
        MAX_NORM.untouched, cases=long_columns, shape=(6, 4), c=1.0, dtype="float64", seed=3),
    "width_kept_units": row(
        "width_for_kept_units returns round(kept_units / (1 - p)): (1 - p) n units kept on average",
        WIDTH.value, cases=widths, kept_units=(32, 10, 50, 12, 7, 24),
        p_values=(0.8, 0.3, 0.35, 0.7, 0.0, 0.6)),
    "width_at_least_one": row(
        "width_for_kept_units never returns fewer than 1 unit, even for tiny kept_units",
        WIDTH.value, cases=widths, kept_units=(0.2, 0.4, 0.1), p_values=(0.25, 0.0, 0.5)),
    "best_rate_validation": row(
        "best_rate chooses by mean validation accuracy, not by training or test accuracy",
        BEST_RATE.value, cases=choices, runs=DISAGREE, dtype="float64"),
    "best_rate_mean": row(
        "best_rate averages the runs of each rate (seeds; not all rates have as many runs)",
        BEST_RATE.value, cases=choices, runs=SEVERAL_RUNS),
    "best_rate_ties": row(
        "Of rates tied for the best mean validation accuracy, best_rate returns the smallest",
        BEST_RATE.value, cases=choices, runs=TIED),
})
# fmt: on
ASSIGNMENT.seal()
