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

The test cells are a table, one row per cell, built on the property kit
(:mod:`dropout_grading.properties`: ``Expected`` values whose ``matches`` name the classic
mistakes, ``unpack`` and ``as_array`` for what comes back, ``require_reproducible`` for the draws).
The kit's subjects take arrays (a ``Formula`` is ``f(*arrays, p)``); these functions take a network
first and a ``scaling``, so the subjects here are a ``Net`` (what a function is called on, and the
exact subnetworks' logits) and an ``Ensemble`` (its exact average over the 2**U subnetworks).
Inputs are passed as copies; the notebook does not forbid changing them in place (unlike chapters
2, 4 and 6), so that is not checked.

How the checks stay fair: enumeration and the ensembles are deterministic, so they are checked
exactly (up to float32 rounding), in whatever order the masks come; MC moments are checked exactly
with masks the check injects. Only ``mc_dropout_predict`` draws randomness: it is checked on a
network with ONE dropped unit, where the mean of T passes is a known affine function of the number
K of passes that kept it, and K ~ Binomial(T, 1 - p) gets a Bernstein bound
(``bounds.binomial_tolerance``) at a false-fail probability below ``FALSE_FAIL`` = 1e-9. Each pass
gives one of two probability vectors, so for a plausible K the mean AND the variance of exactly T
passes are known exactly: one pass too few, a ``scaling`` not passed on, or a standard deviation in
place of the variance match no K. Sharing a pass's mask across the batch is MC dropout too, and
passes.

One mistake costs its own cells: the ensembles are also accepted when they are exact for the
student's OWN ``enumerate_masks`` output (so a wrong probability formula costs the enumeration
cell only), and ``mc_dropout_predict`` is also accepted when its mean and variance are what the
student's own ``mc_dropout_moments`` gives for a plausible number of kept passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

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

from .framework import Assignment, CheckFailure, Row
from .properties import (
    Expected,
    Functions,
    Returns,
    as_array,
    close,
    matches,
    near,
    require,
    require_reproducible,
    row,
    unpack,
)

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

MOMENTS = {"mean": "mean", "var": "variance"}
"""The pair the MC functions return, and how messages name each."""


# Networks, the student's calls, and the exact averages the checks compare with --------------------


class Net(NamedTuple):
    """A network, its (N, D) inputs, the drop rate and the scaling: what a function is called on."""

    params: TinyMLP
    x: np.ndarray
    p: float
    scaling: str

    def scaled_units(self, train: bool, scaling: str | None = None) -> tuple[TinyMLP, np.ndarray]:
        """The network in float64 and its dropped units (N, U) times the training (``train``) or
        evaluation factor of ``scaling`` (default: the network's)."""
        params = self.params.map_arrays(lambda a: np.asarray(a, dtype=np.float64))
        scale = output_scales(self.p, scaling or self.scaling)[0 if train else 1]
        return params, dropped_units(params, self.x.astype(np.float64)) * scale

    def logits(self, masks: Any, scaling: str | None = None) -> np.ndarray:
        """Logits (M, N, K), in float64, of the subnetworks ``masks`` (M, U) or (M, N, U)."""
        params, kept = self.scaled_units(True, scaling)
        keep = np.asarray(masks) != 0
        per_example = keep if keep.ndim == 3 else keep[:, None, :]
        return logits_from_units(params, np.where(per_example, kept, 0.0))

    def weight_scaled(self) -> np.ndarray:
        """Probabilities (N, K) of the single evaluation pass (weight scaling), in float64."""
        return softmax(logits_from_units(*self.scaled_units(False)))

    def call(self, fns: Functions, function: str, *masks: Any, **kwargs: Any) -> tuple[Any, str]:
        """``function(params, x, p, *masks, **kwargs, scaling=...)`` of the student as a kit
        ``Returns`` (arrays passed as copies; not required to come back untouched, which the
        notebook does not ask), and the call as text."""
        subject = Returns(function, ("params", "x", "p", "masks"), pure=False)
        return subject.call(
            fns, self.params, self.x, self.p, *masks, **kwargs, scaling=self.scaling
        )

    def moments(self, result: Any, what: str) -> dict[str, np.ndarray]:
        """The returned pair (mean, var) by name, each (N, K)."""
        shape = (len(self.x), self.params.weights[-1].shape[1])
        pair = unpack(result, what=what, names=tuple(MOMENTS))
        return {
            name: as_array(value, what=f"the {MOMENTS[name]} from {what}", shape=shape)
            for name, value in zip(MOMENTS, pair, strict=True)
        }


def network(
    *,
    sizes: tuple[int, ...],
    dropped_layer: int,
    n_examples: int,
    p: float,
    scaling: str,
    dtype: str,
    seed: int,
) -> Net:
    """A He-initialised network with small random biases (so the empty subnetwork is not flat)
    and an (N, D) batch of standard normal inputs, both in ``dtype``."""
    rng = np.random.default_rng(seed)
    params = init_tiny_mlp(sizes, rng, dropped_layer=dropped_layer)
    biases = tuple(0.3 * rng.standard_normal(b.shape) for b in params.biases)
    params = TinyMLP(params.weights, biases, dropped_layer).map_arrays(lambda a: a.astype(dtype))
    return Net(params, rng.standard_normal((n_examples, sizes[0])).astype(dtype), p, scaling)


OTHER_SCALING = {"inverted": "classic", "classic": "inverted"}


def _enumeration(n_units: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """All 2**n masks (bool, row i keeps unit j when bit j of i is set) and their probabilities."""
    masks = ((np.arange(2**n_units)[:, None] >> np.arange(n_units)) & 1).astype(bool)
    return masks, _mask_probs(masks, 1.0 - p)


def _mask_probs(masks: np.ndarray, keep: float) -> np.ndarray:
    """``keep**kept * (1 - keep)**dropped`` of each mask (row)."""
    kept = masks.sum(axis=1)
    return keep**kept * (1.0 - keep) ** (masks.shape[1] - kept)


def _averages(logits: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted averages (N, K) of the members whose logits are ``logits`` (M, N, K):
    the mixture, the NWGM and the weighted geometric mean before renormalisation."""
    geometric = np.exp(np.tensordot(weights, log_softmax(logits), axes=1))
    return {
        "mean": np.tensordot(weights, softmax(logits), axes=1),
        "nwgm": geometric / geometric.sum(axis=-1, keepdims=True),
        "geometric": geometric,
    }


def _exact(net: Net) -> dict[str, np.ndarray]:
    """The exact averages (N, K) over all 2**U subnetworks (see ``_averages``)."""
    masks, weights = _enumeration(net.params.n_units, net.p)
    return _averages(net.logits(masks), weights)


def _candidates(net: Net) -> dict[str, dict[str, np.ndarray]]:
    """The exact averages ("right") and what classic mistakes compute instead."""
    masks, weights = _enumeration(net.params.n_units, net.p)
    logits = net.logits(masks)
    return {
        "right": _exact(net),
        "uniform": _averages(logits, np.full(len(masks), 1.0 / len(masks))),
        "keep_p": _averages(logits, _mask_probs(masks, net.p)),
        "other_scaling": _averages(net.logits(masks, OTHER_SCALING[net.scaling]), weights),
        "weight_scaling": {"pass": net.weight_scaled()},
    }


# Part 1: enumeration ------------------------------------------------------------------------------

ENUMERATE = Returns("enumerate_masks", ("n_units", "p"))


def _enumerate(fns: Functions, n_units: int, p: float) -> tuple[np.ndarray, Any, str]:
    """The student's masks as a bool (M, n) array, the probs as returned, and the call as text."""
    result, what = ENUMERATE.call(fns, n_units, p)
    masks, probs = unpack(result, what=what, names=("masks", "probs"))
    masks = as_array(masks, what=f"masks from {what}")
    require(
        masks.ndim == 2 and masks.shape[1] == n_units,
        f"masks from {what} has shape {masks.shape}, but it must have shape (2**{n_units}, "
        f"{n_units}) = {(2**n_units, n_units)}: one row per mask, one column per unit",
    )
    require(
        bool(np.all((masks == 0) | (masks == 1))),
        f"masks from {what} must hold only 0 and 1 (or False and True): 1 keeps a unit",
    )
    return masks == 1, probs, what


def enumeration_complete(fns: Functions, *, n_units_values: Any, p: float) -> None:
    """enumerate_masks returns every keep mask of n units exactly once (in any order)."""
    for n_units in n_units_values:
        masks, _, what = _enumerate(fns, n_units, p)
        distinct = len(np.unique(masks, axis=0))
        if len(masks) == distinct == 2**n_units:
            continue
        problems = []
        if distinct < 2**n_units:
            problems.append(
                f"{2**n_units - distinct} of the 2**{n_units} = {2**n_units} masks are missing"
                + ("" if masks.all(axis=1).any() else " (the one that keeps every unit among "
                   "them: it is number 2**n - 1)")
            )  # fmt: skip
        if len(masks) > distinct:
            problems.append(
                f"{len(masks) - distinct} rows repeat a mask already listed (an integer type too "
                "small for 2**n wraps around)"
            )
        raise CheckFailure(
            f"{what}: {' and '.join(problems)}; every keep mask of {n_units} unit"
            f"{'s' if n_units != 1 else ''} must appear exactly once"
        )


def enumeration_probs(fns: Functions, *, n_units: int, p_values: Any) -> None:
    """Each mask's probability is (1 - p)**kept * p**dropped (p is the DROP probability)."""
    for p in p_values:
        masks, probs, what = _enumerate(fns, n_units, p)
        explains = [
            matches(_mask_probs(masks, p), "p is used as the keep probability: a unit is kept "
                    "with probability 1 - p and dropped with probability p"),
            matches(np.full(len(masks), 0.5**n_units), "every mask gets 1 / 2**n, but the masks "
                    "are equally likely only at p = 0.5"),
            matches((1.0 - p) ** masks.sum(axis=1), "the factor p**dropped of the dropped units "
                    "is missing"),
        ]  # fmt: skip
        rule = "(1 - p)**kept * p**dropped of each row's mask"
        Expected(_mask_probs(masks, 1.0 - p), rule, explains).require(
            as_array(probs, what=f"probs from {what}", shape=(len(masks),)),
            what=f"probs from {what}",
        )


# Parts 2 and 3: the exact ensembles ---------------------------------------------------------------

EQUAL_WEIGHTS = (
    "the subnetworks are averaged with equal weights: weight each {} P(m) = (1 - p)**kept * "
    "p**dropped (equal weights are right only at p = 0.5)"
)
KEEP_IS_P = "the weights use p as the keep probability: p is the probability of DROPPING a unit"
SCALING = "the kept units are scaled wrongly: pass `scaling` on to mlp_probs"


@dataclass(frozen=True, eq=False)
class Ensemble:
    """``function(params, x, p, *, scaling)``: the ``average`` of the 2**U subnetworks, exact.
    ``hints``: (candidate, average, hint) for the mistakes a wrong result may equal."""

    function: str
    average: str
    rule: str
    hints: tuple[tuple[str, str, str], ...]

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function, "enumerate_masks")

    def predict(self, fns: Functions, net: Net) -> tuple[np.ndarray, str]:
        """The student's (N, K) prediction, and "the result of <the call>"."""
        out, what = net.call(fns, self.function)
        what = f"the result of {what}"
        return as_array(out, what=what, shape=(len(net.x), net.params.weights[-1].shape[1])), what

    def exact(self, fns: Functions, **case: Any) -> None:
        """Equal to the exact average over all 2**U subnetworks, or over the student's own
        enumeration (so a wrong probability formula costs the enumeration cells only)."""
        net = network(**case)
        out, what = self.predict(fns, net)
        right = _exact(net)[self.average]
        if near(out, right):
            return
        own, own_hint = self._own(fns, net)
        if own is not None and near(out, own):
            return
        candidates = _candidates(net)
        explains = [matches(candidates[c][a], hint) for c, a, hint in self.hints]
        rule = f"the exact {self.rule} over the 2**{net.params.n_units} subnetworks"
        explains.append(lambda _: own_hint or None)
        Expected(right, rule, explains).require(out, what=what)

    def _own(self, fns: Functions, net: Net) -> tuple[np.ndarray | None, str]:
        """The average over the student's own enumeration, if it lists every mask once with
        positive weights summing to 1, and else None with a hint on why it was not used."""
        n_units = net.params.n_units
        try:
            masks, probs, what = _enumerate(fns, n_units, net.p)
            weights = as_array(probs, what=f"probs from {what}", shape=(len(masks),))
        except CheckFailure:
            return None, ""
        if not len(masks) == len(np.unique(masks, axis=0)) == 2**n_units:
            return None, (
                f"your {what} does not list each of the 2**{n_units} masks exactly once (see its "
                "test cell)"
            )
        if not (bool(np.all(weights > 0)) and abs(float(weights.sum()) - 1.0) < 1e-6):
            return None, (
                f"the probabilities from your {what} are not all positive with sum 1 (see its "
                "test cell)"
            )
        return _averages(net.logits(masks), weights)[self.average], ""

    def normalised(self, fns: Functions, **case: Any) -> None:
        """Every row is a distribution over the K classes."""
        net = network(**case)
        out, what = self.predict(fns, net)
        hint = (
            "that is the sum of the weighted geometric mean before renormalising; divide each "
            "row by its sum (the N of NWGM)"
        )

        def unnormalised(sums: np.ndarray) -> str | None:  # computed on failure only
            return hint if near(sums, _exact(net)["geometric"].sum(axis=1)) else None

        rule = "1: each row is a probability distribution over the K classes"
        Expected(np.ones(len(out)), rule, [unnormalised]).require(
            out.sum(axis=1), what=f"the row sums of {what}"
        )
        require(bool(np.all(out >= 0)), f"{what} has negative entries: probabilities are >= 0")


MEAN = Ensemble("ensemble_arithmetic_mean", "mean", "mixture sum_m P(m) softmax_m", hints=(
    ("uniform", "mean", EQUAL_WEIGHTS.format("by its probability")),
    ("keep_p", "mean", KEEP_IS_P),
    ("right", "nwgm", "that is the NWGM; the arithmetic mean averages the probabilities "
     "themselves"),
    ("weight_scaling", "pass", "that is the single weight-scaled pass (mask=None); average the "
     "probabilities of all 2**U subnetworks instead"),
    ("other_scaling", "mean", SCALING),
))  # fmt: skip
NWGM = Ensemble("ensemble_nwgm", "nwgm", "NWGM", hints=(
    ("right", "geometric", "the weighted geometric mean is not renormalised: divide each row by "
     "its sum over the K classes (the N of NWGM)"),
    ("uniform", "nwgm", EQUAL_WEIGHTS.format("log-probability by")),
    ("keep_p", "nwgm", KEEP_IS_P),
    ("right", "mean", "that is the arithmetic mean; the NWGM averages log-probabilities (a "
     "geometric mean), then renormalises"),
    ("weight_scaling", "pass", "that is the weight-scaled pass, which equals the NWGM only when "
     "the dropped units feed the softmax; here a ReLU layer lies above them, so average over the "
     "subnetworks"),
    ("other_scaling", "nwgm", SCALING),
))  # fmt: skip


# Part 4: Monte Carlo moments with given masks -----------------------------------------------------


def _mc_mean(logits: np.ndarray) -> Expected:
    """The mean of the passes' probabilities, and the mistakes that miss it."""
    average = "apply the softmax to each pass, then average the probabilities"
    explains = [
        matches(softmax(logits.mean(axis=0)), "that is the softmax of the averaged logits (the "
                f"NWGM of the passes): {average}"),
        matches(logits.mean(axis=0), f"those are averaged logits: {average}"),
        matches(softmax(logits[0]), "that is the first pass alone: average over all T passes"),
    ]  # fmt: skip
    return Expected(softmax(logits).mean(axis=0), "the average of the passes' probabilities",
                    explains)  # fmt: skip


def _mc_variance(logits: np.ndarray) -> Expected:
    """The variance of the passes' probabilities (divided by T), and the mistakes that miss it."""
    probs = softmax(logits)
    explains = [
        matches(probs.var(axis=0, ddof=1), "that divides by T - 1; this function divides by T "
                "(np.var's default, ddof=0)"),
        matches(probs.std(axis=0), "that is the standard deviation: return its square, the "
                "variance"),
        matches(logits.var(axis=0), "that is the variance of the logits: take the variance of "
                "the probabilities"),
        matches(logits.var(axis=0, ddof=1), "that is the variance of the logits (divided by "
                "T - 1): take the variance of the probabilities, divided by T"),
    ]  # fmt: skip
    rule = "the variance of the passes' probabilities, divided by T"
    return Expected(probs.var(axis=0), rule, explains)


MC_FORMULAS = {"mean": _mc_mean, "var": _mc_variance}


def mc_moments(fns: Functions, *, output: str, passes: int, **case: Any) -> None:
    """``output`` of mc_dropout_moments equals its formula, with injected masks: one bool mask
    per pass, shared by the batch (T, U), then one float 0/1 mask per pass and example (T, N, U)."""
    net = network(**case)
    rng = np.random.default_rng(case["seed"] + 2)
    for shape in ((passes, net.params.n_units), (passes, len(net.x), net.params.n_units)):
        masks = rng.random(shape) >= net.p
        given = masks if len(shape) == 2 else masks.astype(case["dtype"])
        result, what = net.call(fns, "mc_dropout_moments", given)
        what += f" with masks of shape {shape} ({given.dtype})"
        MC_FORMULAS[output](net.logits(masks)).require(
            net.moments(result, what)[output], what=f"the {MOMENTS[output]} from {what}"
        )


# Part 5: Monte Carlo dropout with the student's own draws -----------------------------------------

Moments = tuple[np.ndarray, np.ndarray]
"""(mean, var) of the passes, each (C, N, K): one row per count C of passes that keep the unit."""


def one_unit_network() -> TinyMLP:
    """Two inputs, ONE dropped hidden unit, two classes. On inputs in [0.5, 1.5] the unit is
    positive, and keeping or dropping it moves the class probabilities by more than 0.3."""
    weights = (np.array([[1.0], [0.5]]), np.array([[1.5, -1.5]]))
    return TinyMLP(weights, (np.array([0.2]), np.array([0.3, -0.3])), dropped_layer=1)


def _passes(net: Net, counts: np.ndarray, passes: int, scaling: str | None = None) -> Moments:
    """Mean and variance (divided by T) over ``passes`` passes of which ``counts[c]`` keep the one
    unit: each pass's probabilities (N, K) are those with the unit dropped or kept."""
    dropped, kept = softmax(net.logits([[0], [1]], scaling))
    fraction = (np.asarray(counts, dtype=np.float64) / passes)[:, None, None]
    return dropped + (kept - dropped) * fraction, (kept - dropped) ** 2 * fraction * (1 - fraction)


def _own_moments(fns: Functions, net: Net, samples: int, counts: np.ndarray) -> Moments | None:
    """The student's own ``mc_dropout_moments`` when the one unit is kept in ``counts[c]`` of the
    ``samples`` passes, every count in one call (the batch repeated once per count, masks of shape
    (T, C N, 1)); None if the student's function fails."""
    tiled = net._replace(x=np.tile(net.x, (len(counts), 1)))
    masks = np.arange(samples)[:, None] < np.repeat(counts, len(net.x))[None, :]
    try:
        moments = tiled.moments(*tiled.call(fns, "mc_dropout_moments", masks[:, :, None]))
    except CheckFailure:
        return None
    mean, var = (moments[name].reshape(len(counts), len(net.x), -1) for name in MOMENTS)
    return mean, var


def _rows_equal(value: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Bool (C, N): example n's row of ``value`` (N, K) equals row (c, n) of ``table`` (C, N, K)."""
    return close(value[None], table).all(axis=-1)


def _within(mean: np.ndarray, end: np.ndarray, other_end: np.ndarray) -> bool:
    """Every entry of ``mean`` lies between ``end`` and ``other_end`` (up to 1e-6)."""
    low, high = np.minimum(end, other_end), np.maximum(end, other_end)
    return bool(np.all((mean >= low - 1e-6) & (mean <= high + 1e-6)))


def _found(mean: np.ndarray, var: np.ndarray, tables: list[Moments]) -> bool:
    """For every example n, (mean[n], var[n]) is row (c, n) of one of ``tables``, for some c."""
    found = [_rows_equal(mean, means) & _rows_equal(var, variances) for means, variances in tables]
    return bool(np.any(found, axis=(0, 1)).all())


def mc_predict(
    fns: Functions, *, n_examples: int, samples: int, p: float, scaling: str, seed: int
) -> None:
    """mc_dropout_predict: mean and variance of `samples` passes, fresh masks drawn from rng."""
    x = np.random.default_rng(seed).uniform(0.5, 1.5, (n_examples, 2))
    net = Net(one_unit_network(), x, p, scaling)
    result, what = net.call(
        fns, "mc_dropout_predict", rng=np.random.default_rng(seed + 1), samples=samples
    )
    mean, var = net.moments(result, what).values()
    # K_n, the passes that keep example n's unit, is Binomial(samples, 1 - p) (one draw for all
    # n when the batch shares each pass's mask). Bernstein at FALSE_FAIL / (2 N) per example,
    # a union bound over the N examples; the other FALSE_FAIL / 2 is the fresh-draw test below.
    tolerance = binomial_tolerance(samples, 1.0 - p, FALSE_FAIL / (2 * n_examples))
    counts = np.arange(
        max(0, math.ceil(samples * (1 - p) - tolerance)),
        min(samples, math.floor(samples * (1 - p) + tolerance)) + 1,
    )
    # With K_n in range, a correct solution's mean and variance ARE the right entries for K_n (or
    # its own moments' entries), up to rounding: exact, no further false fails. Neighbouring
    # counts, samples - 1 passes and the other scaling move the mean by more than 1e-4, far
    # beyond float32 rounding.
    tables = [_passes(net, counts, samples)]
    if not _found(mean, var, tables):  # judged against the student's own moments as well
        own = _own_moments(fns, net, samples, counts)
        tables += [] if own is None else [own]
        if not _found(mean, var, tables):
            _fail_passes(net, mean, var, tables, counts, samples, tolerance, what)
    # 30 dropped inputs at p = 0.5 and generic weights: two calls of 2 passes agree only if they
    # drew the same pair of masks, probability <= 2 (sum_m P(m)^2)^2 = 2 (2**-30)^2 < 1e-17.
    wide = network(
        sizes=(30, 3),
        dropped_layer=0,
        n_examples=2,
        p=0.5,
        scaling=scaling,
        dtype="float64",
        seed=seed + 2,
    )

    def predict(rng: np.random.Generator) -> np.ndarray:
        return wide.moments(*wide.call(fns, "mc_dropout_predict", rng=rng, samples=2))["mean"]

    what = f"mc_dropout_predict(params, x, p=0.5, rng=rng, samples=2, scaling={scaling!r})"
    require_reproducible(predict, seed + 3, what=what)


def _fail_passes(
    net: Net,
    mean: np.ndarray,
    var: np.ndarray,
    tables: list[Moments],
    counts: np.ndarray,
    samples: int,
    tolerance: float,
    what: str,
) -> None:
    """Raise: (mean, var) are not, for every example, those of ``samples`` passes that keep the
    one unit a whole number K of times, K in ``counts`` (an entry of one of ``tables``, the right
    moments and the student's own); say whether K, the mean or the variance is wrong."""
    # The mean of the passes is dropped + (kept - dropped) K / T: in range if and only if K is;
    # or, if the student's moments are wrong, what they give for K = fewest and K = most.
    if not any(_within(mean, means[0], means[-1]) for means, _ in tables):
        dropped, kept = softmax(net.logits([[0], [1]]))[:, :, 0]
        fraction = np.round((mean[:, 0] - dropped) / (kept - dropped), 4) + 0.0
        hint = ""
        if samples > 1 and np.all(np.isin(fraction, (0.0, 1.0))):
            hint = (
                ": each example's mean is the probabilities of one subnetwork, so every pass "
                "used the same mask; draw a fresh mask for every pass (masks of shape "
                "(samples, N, U), or (samples, U) shared by the batch)"
            )
        elif np.all(np.abs(fraction - net.p) < tolerance / samples):
            hint = ": that is p; a unit is kept with probability 1 - p"
        raise CheckFailure(
            f"{what}: on a network with one dropped unit, the mean says the unit was kept in a "
            f"fraction {np.min(fraction):.4f} to {np.max(fraction):.4f} of the passes (over the "
            f"{len(mean)} examples), but it must be {1 - net.p:.4f} +- {tolerance / samples:.4f} "
            f"(a correct solution misses by that much with probability < {FALSE_FAIL:.0e}){hint}"
        )
    means = [_rows_equal(mean, table_mean) for table_mean, _ in tables]
    if not np.any(means, axis=(0, 1)).all():
        others = {
            "the kept unit is scaled as the other scaling scales it: pass `scaling` on (to "
            f"mc_dropout_moments or mlp_probs; this call has scaling={net.scaling!r})": (
                _passes(net, counts, samples, OTHER_SCALING[net.scaling])),
            f"that is the average of {samples - 1} passes: run exactly samples = {samples}": (
                _passes(net, counts, samples - 1) if samples > 1 else None),
        }  # fmt: skip
        hint = next(
            (
                f": {h}"
                for h, m in others.items()
                if m is not None and _rows_equal(mean, m[0]).any(0).all()
            ),
            "",
        )
        raise CheckFailure(
            f"{what}: on a network with one dropped unit every pass keeps or drops the unit, so "
            f"the mean of {samples} passes is dropped + (kept - dropped) K / {samples} for a "
            f"whole number K of passes that keep it; this mean is not{hint}"
        )
    expected = np.empty_like(var)  # per example, the variance where its mean first matches
    for n in range(len(mean)):
        table = next(i for i, match in enumerate(means) if match[:, n].any())
        expected[n] = tables[table][1][means[table][:, n].argmax(), n]
    explains = [
        matches(np.sqrt(expected), "that is the standard deviation: return its square, the "
                "variance (as mc_dropout_moments does)"),
        matches(expected * samples / (samples - 1), "that divides by samples - 1; divide by "
                "samples (np.var's default, ddof=0)"),
    ]  # fmt: skip
    rule = f"the variance of the probabilities of the {samples} passes whose mean it returns"
    Expected(expected, rule, explains).require(var, what=f"the variance from {what}")


ENSEMBLE = {"sizes": (4, 6, 5, 3), "dropped_layer": 1, "n_examples": 8, "p": 0.3,
            "scaling": "inverted", "dtype": "float64"}  # fmt: skip
MC = {"sizes": (5, 7, 3), "dropped_layer": 1, "n_examples": 6, "passes": 9, "p": 0.4,
      "scaling": "inverted", "dtype": "float64"}  # fmt: skip

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "enumerate_masks_all": Row(
        "enumerate_masks returns every keep mask of n units exactly once (in any order)",
        enumeration_complete, ENUMERATE.functions, {"n_units_values": (1, 3, 6), "p": 0.3}),
    "enumerate_masks_probs": Row(
        "Each mask's probability is (1 - p)**kept * p**dropped (p is the DROP probability)",
        enumeration_probs, ENUMERATE.functions, {"n_units": 5, "p_values": (0.2, 0.7)}),
    "arithmetic_mean_exact": row(
        "ensemble_arithmetic_mean is sum_m P(m) softmax_m over all 2**U subnetworks",
        MEAN.exact, **ENSEMBLE, seed=20),
    "nwgm_normalised": Row(
        "ensemble_nwgm returns, for each example, a distribution over the K classes",
        NWGM.normalised, ("ensemble_nwgm",), {**ENSEMBLE, "seed": 22}),
    "nwgm_exact": row(
        "ensemble_nwgm is prod_m softmax_m**P(m), renormalised over the classes (exact)",
        NWGM.exact, **ENSEMBLE, seed=24),
    "mc_mean": Row(
        "mc_dropout_moments: mean is the average of the passes' probabilities (not of logits)",
        mc_moments, ("mc_dropout_moments",), {**MC, "output": "mean", "seed": 30}),
    "mc_variance": Row(
        "mc_dropout_moments: var is the variance of the passes' probabilities, divided by T",
        mc_moments, ("mc_dropout_moments",), {**MC, "output": "var", "seed": 32}),
    "mc_predict_sampling": Row(
        "mc_dropout_predict: mean and variance of `samples` passes, fresh masks drawn from rng",
        mc_predict, ("mc_dropout_predict", "mc_dropout_moments"),
        {"n_examples": 6, "samples": 300, "p": 0.3, "scaling": "inverted", "seed": 40}),
})
# fmt: on
ASSIGNMENT.seal()
