"""Checks for the graded exercise of chapter 3, ``ch3_ensembles/ensembles.ipynb``.

The student writes, in numpy and with the reference's signatures (``dropout_course.ensembles``):

* ``enumerate_masks(n_units, p) -> (masks, probs)``: all 2**n keep masks, in any order, and the
  probability ``(1 - p)**kept * p**dropped`` of each;
* ``ensemble_arithmetic_mean(params, x, p, *, scaling)``: the exact mixture over the 2**U
  subnetworks of a ``TinyMLP``;
* ``ensemble_nwgm(params, x, p, *, scaling)``: their normalised weighted geometric mean;
* ``mc_dropout_moments(params, x, p, masks, *, scaling) -> (mean, var)``: mean and variance (over
  the T passes, divided by T) of the probabilities of the passes with the given masks;
* ``mc_dropout_predict(params, x, p, *, rng, samples, scaling) -> (mean, var)``: the same over
  ``samples`` passes whose masks the student draws from ``rng``.

The network is a given building block: the notebook imports ``TinyMLP``, ``init_tiny_mlp``,
``mlp_probs`` and ``weight_scaling_predict`` from the reference, and student code may call any
part of ``dropout_course.ensembles`` except the functions of the exercise itself (and their
private machinery), which stay forbidden (``Assignment(partly_open=...)``).

How the checks stay fair: enumeration and the ensembles are deterministic, so they are checked
exactly (up to float32 rounding), in whatever order the masks come; MC moments are checked
exactly with masks the check injects. Only ``mc_dropout_predict`` draws randomness: it is checked
on a network with ONE dropped unit, where the mean of T passes is a known affine function of the
number K of passes that kept it, and K ~ Binomial(T, 1 - p) gets a Bernstein bound
(``bounds.binomial_tolerance``) at a false-fail probability below ``FALSE_FAIL`` = 1e-9. Each pass
gives one of two probability vectors, so for a plausible K the mean AND the variance of exactly T
passes are known exactly: one pass too few, a ``scaling`` not passed on, or a standard deviation
in place of the variance match no K. Sharing a pass's mask across the batch is MC dropout too,
and passes.

One mistake costs its own cells: the ensembles are also accepted when they are exact for the
student's OWN ``enumerate_masks`` output (so a wrong probability formula costs the enumeration
cell only), and ``mc_dropout_predict`` is also accepted when its mean and variance are what the
student's own ``mc_dropout_moments`` gives for a plausible number of kept passes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from dropout_course import ensembles as _reference_ensembles  # noqa: F401  (captured by seal)
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance
from dropout_course.dropout import output_scales
from dropout_course.ensembles import (
    TinyMLP,
    dropped_units,
    init_tiny_mlp,
    log_softmax,
    logits_from_units,
    softmax,
)

from .framework import Assignment, BoundFunction, CheckFailure
from .properties import as_array, close, require, unpack_pair

EXERCISE_PARTS = (
    "enumerate_masks",
    "ensemble_arithmetic_mean",
    "ensemble_nwgm",
    "mc_dropout_moments",
    "mc_dropout_predict",
    "_ensemble_sum",
    "_logits_per_mask",
)
"""Functions of ``dropout_course.ensembles`` that stay forbidden: the exercise and its machinery."""

ASSIGNMENT = Assignment(
    "ch3_ensembles",
    notebook="ensembles",
    forbidden_modules=(
        "dropout_course.ensembles",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
    partly_open={"dropout_course.ensembles": EXERCISE_PARTS},
)
check = ASSIGNMENT.check


# --- networks, inputs and the exact averages the checks compare with ---------------------------


def _float64(params: TinyMLP) -> TinyMLP:
    return params.map_arrays(lambda a: np.asarray(a, dtype=np.float64))


def _case(
    sizes: tuple[int, ...], dropped_layer: int, n_examples: int, dtype: str, seed: int
) -> tuple[TinyMLP, np.ndarray]:
    """A He-initialised network with small random biases (so the empty subnetwork is not flat)
    and an (N, D) batch of standard normal inputs, both in ``dtype``."""
    rng = np.random.default_rng(seed)
    params = init_tiny_mlp(sizes, rng, dropped_layer=dropped_layer)
    biases = tuple(0.3 * rng.standard_normal(b.shape) for b in params.biases)
    params = TinyMLP(params.weights, biases, dropped_layer).map_arrays(lambda a: a.astype(dtype))
    return params, rng.standard_normal((n_examples, sizes[0])).astype(dtype)


def _member_logits(
    params: TinyMLP, x: np.ndarray, p: float, masks: np.ndarray, scaling: str
) -> np.ndarray:
    """Logits (M, N, K), in float64, of the subnetworks ``masks`` (M, U) or (M, N, U)."""
    params = _float64(params)
    train_scale, _ = output_scales(p, scaling)
    units = dropped_units(params, np.asarray(x, dtype=np.float64))
    keep = np.asarray(masks) != 0
    per_example = keep if keep.ndim == 3 else keep[:, None, :]
    return logits_from_units(params, np.where(per_example, units * train_scale, 0.0))


def _weight_scaled_probs(params: TinyMLP, x: np.ndarray, p: float, scaling: str) -> np.ndarray:
    """Probabilities (N, K) of the single evaluation pass (weight scaling), in float64."""
    params = _float64(params)
    _, eval_scale = output_scales(p, scaling)
    units = dropped_units(params, np.asarray(x, dtype=np.float64))
    return softmax(logits_from_units(params, units * eval_scale))


def _enumeration(n_units: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """All 2**n masks (bool, row i keeps unit j when bit j of i is set) and their probabilities."""
    masks = ((np.arange(2**n_units)[:, None] >> np.arange(n_units)) & 1).astype(bool)
    kept = masks.sum(axis=1)
    return masks, (1.0 - p) ** kept * p ** (n_units - kept)


def _averages(logits: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted averages (N, K) of the members whose logits are ``logits`` (M, N, K):
    the mixture, the NWGM and the weighted geometric mean before renormalisation."""
    geometric = np.exp(np.tensordot(weights, log_softmax(logits), axes=1))
    return {
        "mean": np.tensordot(weights, softmax(logits), axes=1),
        "nwgm": geometric / geometric.sum(axis=-1, keepdims=True),
        "geometric": geometric,
    }


def _other_scaling(scaling: str) -> str:
    return "classic" if scaling == "inverted" else "inverted"


def _candidates(
    params: TinyMLP, x: np.ndarray, p: float, scaling: str
) -> dict[str, dict[str, np.ndarray]]:
    """The exact averages ("right") and what classic mistakes compute instead."""
    masks, weights = _enumeration(params.n_units, p)
    logits = _member_logits(params, x, p, masks, scaling)
    other_logits = _member_logits(params, x, p, masks, _other_scaling(scaling))
    return {
        "right": _averages(logits, weights),
        "uniform": _averages(logits, np.full(len(masks), 1.0 / len(masks))),
        "keep_p": _averages(logits, _enumeration(params.n_units, 1.0 - p)[1]),
        "other_scaling": _averages(other_logits, weights),
        "weight_scaling": {"pass": _weight_scaled_probs(params, x, p, scaling)},
    }


def _first_hint(
    out: np.ndarray,
    candidates: dict[str, dict[str, np.ndarray]],
    hints: tuple[tuple[str, str, str], ...],
) -> str:
    """``": hint"`` of the first (candidate, average, hint) that ``out`` equals, else ``""``."""
    for source, average, hint in hints:
        if np.all(close(out, candidates[source][average])):
            return f": {hint}"
    return ""


@contextlib.contextmanager
def _params_named(params: TinyMLP) -> Iterator[None]:
    """Show ``params`` as the word ``params`` in failure messages: the framework writes a call's
    arguments with ``repr``, which for a network lists every weight."""
    try:
        yield
    except CheckFailure as failure:
        raise type(failure)(str(failure).replace(repr(params), "params")) from None


# --- part 1: enumeration -----------------------------------------------------------------------


def _enumeration_call(n_units: int, p: float) -> str:
    return f"enumerate_masks({n_units}, p={p:g})"


def _read_masks(result: Any, n_units: int, p: float) -> tuple[np.ndarray, Any]:
    """The masks of ``enumerate_masks``'s result as a bool (M, n) array, and its probs as given."""
    call = _enumeration_call(n_units, p)
    masks, probs = unpack_pair(result, what=call, names=("masks", "probs"))
    masks = as_array(masks, what=f"masks from {call}")
    require(
        masks.ndim == 2 and masks.shape[1] == n_units,
        f"masks from {call} has shape {masks.shape}, but it must have shape "
        f"(2**{n_units}, {n_units}) = {(2**n_units, n_units)}: one row per mask, one column per "
        "unit",
    )
    require(
        bool(np.all((masks == 0) | (masks == 1))),
        f"masks from {call} must hold only 0 and 1 (or False and True): 1 keeps a unit",
    )
    return masks == 1, probs


def _read_enumeration(
    enumerate_masks: BoundFunction, n_units: int, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """The student's (masks (M, n) bool, probs (M,) float64), after checking their shapes."""
    masks, probs = _read_masks(enumerate_masks(n_units, p), n_units, p)
    call = _enumeration_call(n_units, p)
    return masks, as_array(probs, what=f"probs from {call}", shape=(len(masks),))


@ASSIGNMENT.register("enumerate_masks")
def enumerate_masks_all(enumerate_masks, *, n_units_values=(1, 3, 6), p=0.3) -> None:
    """enumerate_masks returns every keep mask of n units exactly once (in any order)."""
    for n_units in n_units_values:
        masks, _ = _read_masks(enumerate_masks(n_units, p), n_units, p)
        distinct = len(np.unique(masks, axis=0))
        if len(masks) == distinct == 2**n_units:
            continue
        problems = []
        if distinct < 2**n_units:
            missing = (
                f"{2**n_units - distinct} of the 2**{n_units} = {2**n_units} masks are missing"
            )
            if not masks.all(axis=1).any():
                missing += " (the one that keeps every unit among them: it is number 2**n - 1)"
            problems.append(missing)
        if len(masks) > distinct:
            problems.append(
                f"{len(masks) - distinct} rows repeat a mask already listed (an integer type too "
                "small for 2**n wraps around)"
            )
        raise CheckFailure(
            f"{_enumeration_call(n_units, p)}: {' and '.join(problems)}; every keep mask of "
            f"{n_units} unit{'s' if n_units != 1 else ''} must appear exactly once"
        )


@ASSIGNMENT.register("enumerate_masks")
def enumerate_masks_probs(enumerate_masks, *, n_units=5, p_values=(0.2, 0.7)) -> None:
    """Each mask's probability is (1 - p)**kept * p**dropped (p is the DROP probability)."""
    for p in p_values:
        masks, probs = _read_enumeration(enumerate_masks, n_units, p)
        kept = masks.sum(axis=1)
        expected = (1.0 - p) ** kept * p ** (n_units - kept)
        if np.all(close(probs, expected)):
            continue
        mistakes = {
            "p is used as the keep probability: a unit is kept with probability 1 - p and "
            "dropped with probability p": p**kept * (1.0 - p) ** (n_units - kept),
            "every mask gets 1 / 2**n, but the masks are equally likely only at p = 0.5": np.full(
                len(masks), 0.5**n_units
            ),
            "the factor p**dropped of the dropped units is missing": (1.0 - p) ** kept,
        }
        hint = next((f": {h}" for h, value in mistakes.items() if np.all(close(probs, value))), "")
        error = float(np.max(np.abs(probs - expected)))
        raise CheckFailure(
            f"{_enumeration_call(n_units, p)}: probs differ from (1 - p)**kept * p**dropped of "
            f"each row's mask by up to {error:.3g}{hint}"
        )


# --- parts 2 and 3: the exact ensembles ----------------------------------------------------------

_MEAN_HINTS = (
    (
        "uniform",
        "mean",
        "the subnetworks are averaged with equal weights: weight each by its probability "
        "P(m) = (1 - p)**kept * p**dropped (equal weights are right only at p = 0.5)",
    ),
    (
        "keep_p",
        "mean",
        "the weights use p as the keep probability: p is the probability of DROPPING a unit",
    ),
    (
        "right",
        "nwgm",
        "that is the NWGM; the arithmetic mean averages the probabilities themselves",
    ),
    (
        "weight_scaling",
        "pass",
        "that is the single weight-scaled pass (mask=None); average the probabilities of all "
        "2**U subnetworks instead",
    ),
    ("other_scaling", "mean", "the kept units are scaled wrongly: pass `scaling` on to mlp_probs"),
)

_NWGM_HINTS = (
    (
        "right",
        "geometric",
        "the weighted geometric mean is not renormalised: divide each row by its sum over the "
        "K classes (the N of NWGM)",
    ),
    (
        "uniform",
        "nwgm",
        "the subnetworks are averaged with equal weights: weight each log-probability by "
        "P(m) = (1 - p)**kept * p**dropped (equal weights are right only at p = 0.5)",
    ),
    (
        "keep_p",
        "nwgm",
        "the weights use p as the keep probability: p is the probability of DROPPING a unit",
    ),
    (
        "right",
        "mean",
        "that is the arithmetic mean; the NWGM averages log-probabilities (a geometric mean), "
        "then renormalises",
    ),
    (
        "weight_scaling",
        "pass",
        "that is the weight-scaled pass, which equals the NWGM only when the dropped units feed "
        "the softmax; here a ReLU layer lies above them, so average over the subnetworks",
    ),
    ("other_scaling", "nwgm", "the kept units are scaled wrongly: pass `scaling` on to mlp_probs"),
)

_ENSEMBLES = {
    "mean": ("ensemble_arithmetic_mean", "mixture sum_m P(m) softmax_m", _MEAN_HINTS),
    "nwgm": ("ensemble_nwgm", "NWGM", _NWGM_HINTS),
}


def _call_ensemble(
    function: BoundFunction, name: str, params: TinyMLP, x: np.ndarray, p: float, scaling: str
) -> tuple[np.ndarray, str]:
    """The student's (N, K) ensemble prediction, and the call as text for messages."""
    call = f"{name}(params, x, p={p:g}, scaling={scaling!r})"
    with _params_named(params):
        out = function(params, x.copy(), p, scaling=scaling)
    n_classes = params.weights[-1].shape[1]
    return as_array(out, what=f"the result of {call}", shape=(len(x), n_classes)), call


def _own_average(
    average: str,
    enumerate_masks: BoundFunction,
    params: TinyMLP,
    x: np.ndarray,
    p: float,
    scaling: str,
) -> tuple[np.ndarray | None, str]:
    """The average over the student's own enumeration, if it lists every mask once with
    positive weights summing to 1 (a wrong probability formula then costs the enumeration cells
    only), and else None with a hint on why it was not used."""
    try:
        masks, weights = _read_enumeration(enumerate_masks, params.n_units, p)
    except CheckFailure:
        return None, ""
    if not len(masks) == len(np.unique(masks, axis=0)) == 2**params.n_units:
        return None, (
            f": your enumerate_masks({params.n_units}, p={p:g}) does not list each of the "
            f"2**{params.n_units} masks exactly once (see its test cell)"
        )
    if not (bool(np.all(weights > 0)) and abs(float(weights.sum()) - 1.0) < 1e-6):
        return None, (
            f": the probabilities from your enumerate_masks({params.n_units}, p={p:g}) are not "
            "all positive with sum 1 (see its test cell)"
        )
    return _averages(_member_logits(params, x, p, masks, scaling), weights)[average], ""


def _require_ensemble(
    average: str,
    function: BoundFunction,
    enumerate_masks: BoundFunction,
    *,
    sizes: tuple[int, ...],
    dropped_layer: int,
    n_examples: int,
    p: float,
    scaling: str,
    dtype: str,
    seed: int,
) -> None:
    """The student's ensemble equals the exact ``average`` over all 2**U subnetworks (or over
    the student's own enumeration); otherwise fail naming the mistake."""
    name, description, hints = _ENSEMBLES[average]
    params, x = _case(sizes, dropped_layer, n_examples, dtype, seed)
    out, call = _call_ensemble(function, name, params, x, p, scaling)
    candidates = _candidates(params, x, p, scaling)
    expected = candidates["right"][average]
    if np.all(close(out, expected)):
        return
    own, own_hint = _own_average(average, enumerate_masks, params, x, p, scaling)
    if own is not None and np.all(close(out, own)):
        return
    error = float(np.max(np.abs(out - expected)))
    raise CheckFailure(
        f"{call} differs from the exact {description} over the 2**{params.n_units} subnetworks "
        f"by up to {error:.3g}{_first_hint(out, candidates, hints) or own_hint}"
    )


@ASSIGNMENT.register("ensemble_arithmetic_mean", "enumerate_masks")
def arithmetic_mean_exact(
    ensemble_arithmetic_mean,
    enumerate_masks,
    *,
    sizes=(4, 6, 5, 3),
    dropped_layer=1,
    n_examples=8,
    p=0.3,
    scaling="inverted",
    dtype="float64",
    seed=20,
) -> None:
    """ensemble_arithmetic_mean is sum_m P(m) softmax_m over all 2**U subnetworks."""
    _require_ensemble(
        "mean",
        ensemble_arithmetic_mean,
        enumerate_masks,
        sizes=sizes,
        dropped_layer=dropped_layer,
        n_examples=n_examples,
        p=p,
        scaling=scaling,
        dtype=dtype,
        seed=seed,
    )


@ASSIGNMENT.register("ensemble_nwgm")
def nwgm_normalised(
    ensemble_nwgm,
    *,
    sizes=(4, 6, 5, 3),
    dropped_layer=1,
    n_examples=8,
    p=0.3,
    scaling="inverted",
    dtype="float64",
    seed=22,
) -> None:
    """ensemble_nwgm returns, for each example, a distribution over the K classes."""
    params, x = _case(sizes, dropped_layer, n_examples, dtype, seed)
    out, call = _call_ensemble(ensemble_nwgm, "ensemble_nwgm", params, x, p, scaling)
    sums = out.sum(axis=1)
    if np.all(close(sums, np.ones_like(sums))) and np.all(out >= 0):
        return
    unnormalised = _candidates(params, x, p, scaling)["right"]["geometric"].sum(axis=1)
    hint = ""
    if np.all(close(sums, unnormalised)):
        hint = (
            ": that is the sum of the weighted geometric mean before renormalising; divide each "
            "row by its sum (the N of NWGM)"
        )
    raise CheckFailure(
        f"rows of {call} must be probability distributions (entries >= 0 summing to 1), but "
        f"they sum to values from {np.min(sums):.4g} to {np.max(sums):.4g}{hint}"
    )


@ASSIGNMENT.register("ensemble_nwgm", "enumerate_masks")
def nwgm_exact(
    ensemble_nwgm,
    enumerate_masks,
    *,
    sizes=(4, 6, 5, 3),
    dropped_layer=1,
    n_examples=8,
    p=0.3,
    scaling="inverted",
    dtype="float64",
    seed=24,
) -> None:
    """ensemble_nwgm is prod_m softmax_m**P(m), renormalised over the classes (exact)."""
    _require_ensemble(
        "nwgm",
        ensemble_nwgm,
        enumerate_masks,
        sizes=sizes,
        dropped_layer=dropped_layer,
        n_examples=n_examples,
        p=p,
        scaling=scaling,
        dtype=dtype,
        seed=seed,
    )


# --- part 4: Monte Carlo moments with given masks ----------------------------------------------


def _moments_runs(
    mc_dropout_moments: BoundFunction,
    *,
    sizes: tuple[int, ...],
    dropped_layer: int,
    n_examples: int,
    passes: int,
    p: float,
    scaling: str,
    dtype: str,
    seed: int,
):
    """Yield (mean, var, logits (T, N, K), call) for the student's moments with injected masks:
    first one bool mask per pass, shared by the batch (T, U), then one float 0/1 mask per pass
    and example (T, N, U)."""
    params, x = _case(sizes, dropped_layer, n_examples, dtype, seed)
    rng = np.random.default_rng(seed + 2)
    n_classes = params.weights[-1].shape[1]
    for shape in ((passes, params.n_units), (passes, n_examples, params.n_units)):
        masks = rng.random(shape) >= p
        given = masks if len(shape) == 2 else masks.astype(dtype)
        call = (
            f"mc_dropout_moments(params, x, p={p:g}, masks of shape {shape} "
            f"({given.dtype}), scaling={scaling!r})"
        )
        with _params_named(params):
            result = mc_dropout_moments(params, x.copy(), p, given.copy(), scaling=scaling)
        mean, var = unpack_pair(result, what=call, names=("mean", "var"))
        mean = as_array(mean, what=f"the mean from {call}", shape=(n_examples, n_classes))
        var = as_array(var, what=f"the variance from {call}", shape=(n_examples, n_classes))
        yield mean, var, _member_logits(params, x, p, masks, scaling), call


def _require_moment(
    out: np.ndarray, expected: np.ndarray, mistakes: dict[str, np.ndarray], *, what: str
) -> None:
    """``out == expected``, else fail naming the first mistake in ``mistakes`` it equals."""
    if np.all(close(out, expected)):
        return
    hint = next((f": {h}" for h, value in mistakes.items() if np.all(close(out, value))), "")
    raise CheckFailure(f"{what} is off by up to {float(np.max(np.abs(out - expected))):.3g}{hint}")


@ASSIGNMENT.register("mc_dropout_moments")
def mc_mean(
    mc_dropout_moments,
    *,
    sizes=(5, 7, 3),
    dropped_layer=1,
    n_examples=6,
    passes=9,
    p=0.4,
    scaling="inverted",
    dtype="float64",
    seed=30,
) -> None:
    """mc_dropout_moments: mean is the average of the passes' probabilities (not of logits)."""
    runs = _moments_runs(
        mc_dropout_moments,
        sizes=sizes,
        dropped_layer=dropped_layer,
        n_examples=n_examples,
        passes=passes,
        p=p,
        scaling=scaling,
        dtype=dtype,
        seed=seed,
    )
    for mean, _, logits, call in runs:
        probs = softmax(logits)
        mistakes = {
            "that is the softmax of the averaged logits (the NWGM of the passes): apply the "
            "softmax to each pass, then average the probabilities": softmax(logits.mean(axis=0)),
            "those are averaged logits: apply the softmax to each pass, then average the "
            "probabilities": logits.mean(axis=0),
            "that is the first pass alone: average over all T passes": probs[0],
        }
        _require_moment(mean, probs.mean(axis=0), mistakes, what=f"the mean from {call}")


@ASSIGNMENT.register("mc_dropout_moments")
def mc_variance(
    mc_dropout_moments,
    *,
    sizes=(5, 7, 3),
    dropped_layer=1,
    n_examples=6,
    passes=9,
    p=0.4,
    scaling="inverted",
    dtype="float64",
    seed=32,
) -> None:
    """mc_dropout_moments: var is the variance of the passes' probabilities, divided by T."""
    runs = _moments_runs(
        mc_dropout_moments,
        sizes=sizes,
        dropped_layer=dropped_layer,
        n_examples=n_examples,
        passes=passes,
        p=p,
        scaling=scaling,
        dtype=dtype,
        seed=seed,
    )
    for _, var, logits, call in runs:
        probs = softmax(logits)
        mistakes = {
            "that divides by T - 1; this function divides by T (np.var's default, ddof=0)": (
                probs.var(axis=0, ddof=1)
            ),
            "that is the standard deviation: return its square, the variance": probs.std(axis=0),
            "that is the variance of the logits: take the variance of the probabilities": (
                logits.var(axis=0)
            ),
            "that is the variance of the logits (divided by T - 1): take the variance of the "
            "probabilities, divided by T": logits.var(axis=0, ddof=1),
        }
        _require_moment(var, probs.var(axis=0), mistakes, what=f"the variance from {call}")


# --- part 5: Monte Carlo dropout with the student's own draws ----------------------------------


def one_unit_network() -> TinyMLP:
    """Two inputs, ONE dropped hidden unit, two classes. On inputs in [0.5, 1.5] the unit is
    positive, and keeping or dropping it moves the class probabilities by more than 0.3."""
    weights = (np.array([[1.0], [0.5]]), np.array([[1.5, -1.5]]))
    return TinyMLP(weights, (np.array([0.2]), np.array([0.3, -0.3])), dropped_layer=1)


def _call_predict(
    mc_dropout_predict: BoundFunction,
    params: TinyMLP,
    x: np.ndarray,
    p: float,
    rng: np.random.Generator,
    samples: int,
    scaling: str,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The student's MC prediction (mean, var), each (N, K), and the call as text."""
    call = (
        f"mc_dropout_predict(params, x, p={p:g}, rng=rng, samples={samples}, scaling={scaling!r})"
    )
    with _params_named(params):
        result = mc_dropout_predict(params, x.copy(), p, rng=rng, samples=samples, scaling=scaling)
    mean, var = unpack_pair(result, what=call, names=("mean", "var"))
    shape = (len(x), params.weights[-1].shape[1])
    var = as_array(var, what=f"the variance from {call}", shape=shape)
    return as_array(mean, what=f"the mean from {call}", shape=shape), var, call


Moments = tuple[np.ndarray, np.ndarray]
"""(mean, var) of the passes, each (C, N, K): one row per count C of passes that keep the unit."""


def _two_valued_moments(
    dropped: np.ndarray, kept: np.ndarray, counts: np.ndarray, passes: int
) -> Moments:
    """Mean and variance (divided by T) over ``passes`` passes of which ``counts[c]`` keep the one
    unit: each pass's probabilities (N, K) are either ``kept`` or ``dropped``."""
    fraction = (np.asarray(counts, dtype=np.float64) / passes)[:, None, None]
    gap = kept - dropped
    return dropped + gap * fraction, gap**2 * fraction * (1.0 - fraction)


def _own_moments(
    mc_dropout_moments: BoundFunction,
    params: TinyMLP,
    x: np.ndarray,
    p: float,
    samples: int,
    counts: np.ndarray,
    scaling: str,
) -> Moments | None:
    """The student's own ``mc_dropout_moments`` when the one unit is kept in ``counts[c]`` of the
    ``samples`` passes, every count in one call (the batch repeated once per count, masks of shape
    (T, C N, 1)); None if the student's function fails."""
    batch = np.tile(x, (len(counts), 1))
    masks = np.arange(samples)[:, None] < np.repeat(counts, len(x))[None, :]
    shape = (len(batch), params.weights[-1].shape[1])
    try:
        with _params_named(params):
            result = mc_dropout_moments(params, batch, p, masks[:, :, None], scaling=scaling)
        mean, var = unpack_pair(result, what="mc_dropout_moments", names=("mean", "var"))
        mean = as_array(mean, what="mc_dropout_moments", shape=shape)
        var = as_array(var, what="mc_dropout_moments", shape=shape)
    except CheckFailure:
        return None
    return mean.reshape(len(counts), len(x), -1), var.reshape(len(counts), len(x), -1)


def _within(mean: np.ndarray, ends: list[np.ndarray], slack: float = 1e-6) -> bool:
    """Every entry of ``mean`` lies between the two arrays ``ends`` (in either order)."""
    low, high = np.minimum(*ends), np.maximum(*ends)
    return bool(np.all((mean >= low - slack) & (mean <= high + slack)))


def _equal_rows(value: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Bool (C, N): example n's row of ``value`` (N, K) equals row (c, n) of ``table`` (C, N, K)."""
    return close(value[None], table).all(axis=-1)


def _count_hint(
    mean: np.ndarray, others: dict[str, Moments | None], samples: int, scaling: str
) -> str:
    """Why the mean of the passes is not that of ``samples`` passes, as a hint ("" if unknown):
    ``others`` holds the moments under the other scaling and those of ``samples - 1`` passes."""
    hints = {
        "scaling": "the kept unit is scaled as the other scaling scales it: pass `scaling` on "
        f"(to mc_dropout_moments or mlp_probs; this call has scaling={scaling!r})",
        "short": f"that is the average of {samples - 1} passes: run exactly samples = {samples}",
    }
    for name, hint in hints.items():
        moments = others[name]
        if moments is not None and _equal_rows(mean, moments[0]).any(axis=0).all():
            return f": {hint}"
    return ""


def _variance_hint(var: np.ndarray, expected: np.ndarray, samples: int) -> str:
    """The mistake a wrong variance of the passes matches, as a hint ("" if none)."""
    mistakes = {
        "that is the standard deviation: return its square, the variance (as "
        "mc_dropout_moments does)": np.sqrt(expected),
        "that divides by samples - 1; divide by samples (np.var's default, ddof=0)": expected
        * samples
        / (samples - 1),
    }
    return next((f": {h}" for h, value in mistakes.items() if np.all(close(var, value))), "")


def _is_entry(mean: np.ndarray, var: np.ndarray, tables: list[Moments]) -> bool:
    """For every example n, (mean[n], var[n]) is row (c, n) of one of ``tables``, for some c."""
    found = [_equal_rows(mean, means) & _equal_rows(var, variances) for means, variances in tables]
    return bool(np.any(found, axis=(0, 1)).all())


def _require_moments_of_passes(
    mean: np.ndarray,
    var: np.ndarray,
    tables: list[Moments],
    others: dict[str, Moments | None],
    *,
    samples: int,
    scaling: str,
    call: str,
) -> None:
    """(mean, var) are, for every example, those of ``samples`` passes that keep the one unit a
    whole number of times: an entry of one of ``tables`` (the right moments, the student's own)."""
    if _is_entry(mean, var, tables):
        return
    means = [_equal_rows(mean, table_mean) for table_mean, _ in tables]
    if not np.any(means, axis=(0, 1)).all():
        raise CheckFailure(
            f"{call}: on a network with one dropped unit every pass keeps or drops the unit, so "
            f"the mean of {samples} passes is dropped + (kept - dropped) K / {samples} for a "
            f"whole number K of passes that keep it; this mean is not"
            f"{_count_hint(mean, others, samples, scaling)}"
        )
    expected = np.empty_like(var)  # per example, the variance where its mean first matches
    for n in range(len(mean)):
        table = next(i for i, match in enumerate(means) if match[:, n].any())
        expected[n] = tables[table][1][means[table][:, n].argmax(), n]
    error = float(np.max(np.abs(var - expected)))
    raise CheckFailure(
        f"{call}: the mean is that of {samples} passes, but the variance of their probabilities "
        f"is off by up to {error:.3g}{_variance_hint(var, expected, samples)}"
    )


@ASSIGNMENT.register("mc_dropout_predict", "mc_dropout_moments")
def mc_predict_sampling(
    mc_dropout_predict,
    mc_dropout_moments,
    *,
    n_examples=6,
    samples=300,
    p=0.3,
    scaling="inverted",
    seed=40,
) -> None:
    """mc_dropout_predict: mean and variance of `samples` passes, fresh masks drawn from rng."""
    params = one_unit_network()
    x = np.random.default_rng(seed).uniform(0.5, 1.5, (n_examples, 2))
    mean, var, call = _call_predict(
        mc_dropout_predict, params, x, p, np.random.default_rng(seed + 1), samples, scaling
    )
    # K_n, the passes that keep example n's unit, is Binomial(samples, 1 - p) (one draw for all
    # n when the batch shares each pass's mask). Bernstein at FALSE_FAIL / (2 N) per example,
    # a union bound over the N examples; the other FALSE_FAIL / 2 is the fresh-draw test below.
    keep = 1.0 - p
    tolerance = binomial_tolerance(samples, keep, FALSE_FAIL / (2 * n_examples))
    fewest = max(0, math.ceil(samples * keep - tolerance))
    most = min(samples, math.floor(samples * keep + tolerance))
    counts = np.arange(fewest, most + 1)
    dropped, kept, kept_other = (
        softmax(_member_logits(params, x, p, np.full((1, 1), unit), how)[0])
        for unit, how in ((0, scaling), (1, scaling), (1, _other_scaling(scaling)))
    )
    right = _two_valued_moments(dropped, kept, counts, samples)
    tables = [right]
    if not _is_entry(mean, var, tables):  # judged against the student's own moments as well
        own = _own_moments(mc_dropout_moments, params, x, p, samples, counts, scaling)
        tables += [] if own is None else [own]
    # The mean of the passes is dropped + (kept - dropped) K / T: in range if and only if K is;
    # or, if the student's moments are wrong, what they give for K = fewest and K = most.
    if not any(_within(mean, [table_mean[0], table_mean[-1]]) for table_mean, _ in tables):
        fraction = np.round((mean[:, 0] - dropped[:, 0]) / (kept[:, 0] - dropped[:, 0]), 4) + 0.0
        hint = ""
        if samples > 1 and np.all(np.isin(fraction, (0.0, 1.0))):
            hint = (
                ": each example's mean is the probabilities of one subnetwork, so every pass "
                "used the same mask; draw a fresh mask for every pass (masks of shape "
                "(samples, N, U), or (samples, U) shared by the batch)"
            )
        elif np.all(np.abs(fraction - p) < tolerance / samples):
            hint = ": that is p; a unit is kept with probability 1 - p"
        raise CheckFailure(
            f"{call}: on a network with one dropped unit, the mean says the unit was kept in a "
            f"fraction {np.min(fraction):.4f} to {np.max(fraction):.4f} of the passes (over the "
            f"{n_examples} examples), but it must be {keep:.4f} +- {tolerance / samples:.4f} (a "
            f"correct solution misses by that much with probability < {FALSE_FAIL:.0e}){hint}"
        )
    # With K_n in range, a correct solution's mean and variance ARE the right entries for K_n (or
    # its own moments' entries), up to rounding: exact, no further false fails. Neighbouring
    # counts, samples - 1 passes and the other scaling move the mean by more than 1e-4, far
    # beyond float32 rounding.
    others = {
        "scaling": _two_valued_moments(dropped, kept_other, counts, samples),
        "short": _two_valued_moments(dropped, kept, counts, samples - 1) if samples > 1 else None,
    }
    _require_moments_of_passes(
        mean, var, tables, others, samples=samples, scaling=scaling, call=call
    )
    # 30 dropped inputs at p = 0.5 and generic weights: two calls of 2 passes agree only if they
    # drew the same pair of masks, probability <= 2 (sum_m P(m)^2)^2 = 2 (2**-30)^2 < 1e-17.
    wide, inputs = _case((30, 3), 0, 2, "float64", seed + 2)
    first, _, _ = _call_predict(
        mc_dropout_predict, wide, inputs, 0.5, np.random.default_rng(seed + 3), 2, scaling
    )
    again, _, _ = _call_predict(
        mc_dropout_predict, wide, inputs, 0.5, np.random.default_rng(seed + 3), 2, scaling
    )
    require(
        np.array_equal(first, again, equal_nan=True),
        "mc_dropout_predict gave different results for two generators with the same seed: draw "
        "every mask from the rng argument (not np.random.* or a generator of your own)",
    )
    rng = np.random.default_rng(seed + 4)
    first, _, _ = _call_predict(mc_dropout_predict, wide, inputs, 0.5, rng, 2, scaling)
    second, _, _ = _call_predict(mc_dropout_predict, wide, inputs, 0.5, rng, 2, scaling)
    require(
        not np.array_equal(first, second),
        "two calls of mc_dropout_predict with one rng gave the same prediction: draw new masks "
        "from rng on every call, do not reseed it",
    )


ASSIGNMENT.seal()
