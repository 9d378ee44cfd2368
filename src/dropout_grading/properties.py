"""The property kit: what a dropout-like function must do, each property written once.

A checks module describes the student's functions as *subjects* and declares its test cells as a
table: one ``row`` per cell, a property of a subject with its visible defaults and the sentence
printed on a pass. Subjects and their properties:

* ``Draw``, ``f(shape, p, rng)`` -> a keep mask (0/1) or multiplicative noise, one draw per index
  of its drawn axes, shared along the others (a channel mask: per (example, channel), shared over
  the positions). ``values``: shape and 0/1 entries, p = 0 keeps all, p = 1 none. ``shared``: the
  draw is constant along the shared axes. ``random``: see below.
* ``Layer`` (subclassed with the formulas), ``f(*inputs, p, *, train, rng=None, <mask or
  noise>=None, **options)`` -> ``(out, cache)``. ``injected``: the exact training output with the
  randomness injected (a mask as bool and as float). ``evaluation``: the exact output at
  ``train=False``, also when an ``rng`` and a mask (noise) are given, which it must ignore.
  ``random``: on the draws read back from passes that draw from ``rng``.
* ``Formula``, ``f(*inputs, p)`` -> named arrays. ``value``: an output (a returned statistic)
  equals its formula, exactly or within a statistical tolerance.
* ``Returns``, a function without ``p`` (a correlation, a sparsity, max-norm, a choice of rate)
  checked on ``Case``s. ``value``: each case returns its ``Expected``. ``untouched``: the call
  leaves its inputs as they were.
* ``Backprop``, the backward pass ``g(dout, cache)`` of a Layer. ``gradient``: equal to the
  Jacobian of the student's OWN forward pass (``dropout_course.gradcheck.numerical_gradient``
  with the same randomness), so a forward mistake costs no backward cell; the inputs hold exact
  zeros, as a ReLU layer's output does, so ``dout * out / x`` fails.

``random(tests=...)``: ``"rate"`` (kept with probability 1 - p, Bernstein), ``"mean"`` and
``"variance"`` (noise N(1, p / (1 - p)): Gaussian tail, Laurent-Massart chi-square),
``"independent"`` (disjoint neighbours along each axis: Bernstein on agreeing pairs for masks, a
chi-square ratio for noise), ``"scale"`` (a Layer's kept values have the right factor),
``"extremes"`` (p = 0 keeps all or gives noise 1, p = 1 keeps none) and ``"reproducible"`` (equal
for two generators with one seed, new for two calls with one rng). The statistical tests of a
check split ``FALSE_FAIL`` evenly over tests and rates (union bound): a correct implementation
fails with probability < 1e-9. Every call is pure: inputs are copies that must come back
untouched, results must have the documented structure and shape. A failure says what was
measured, what was expected, and the likely mistake: an ``Explain`` maps a wrong output to the
hint of the mistake that produces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from dropout_course._validate import broadcasts_within_rank
from dropout_course.bounds import (
    FALSE_FAIL,
    binomial_tolerance,
    chi_square_interval,
    normal_mean_tolerance,
)
from dropout_course.gradcheck import numerical_gradient

from .framework import BoundFunction, CheckFailure, Row, StudentError

RTOL = 1e-5
"""Relative tolerance of exact comparisons: float32 arithmetic (eps 1.2e-7) passes with room."""

Functions = Mapping[str, BoundFunction]
Inputs = tuple[np.ndarray, ...]
Explain = Callable[[np.ndarray], "str | None"]


def row(summary: str, prop: Callable[..., None], **defaults: Any) -> Row:
    """A table row: ``prop``, a subject's property (``KEEP.random``), with its visible defaults."""
    return Row(summary, prop, prop.__self__.functions, defaults)  # type: ignore[attr-defined]


# Reading, comparing, explaining -------------------------------------------------------------------


def as_array(value: Any, *, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float64 array, after checking it is numeric (and has ``shape``, if given)."""
    try:
        array = np.asarray(value)
    except Exception as error:  # an object numpy cannot read
        raise StudentError(f"{what} is not an array ({type(value).__name__}: {error})") from None
    if array.dtype.kind not in "biuf":
        raise StudentError(f"{what} must hold numbers, but has dtype {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise CheckFailure(f"{what} has shape {array.shape}, but it must have shape {tuple(shape)}")
    return array.astype(np.float64)


def unpack(result: Any, *, what: str, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Split a returned tuple such as ``(out, cache)``, or say what came back instead."""
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = type(result).__name__
        got += f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        raise StudentError(f"{what} must return ({', '.join(names)}), but returned a {got}")
    return tuple(result)


def call_pure(
    function: BoundFunction, inputs: Mapping[str, np.ndarray], *args: Any, what: str, **kwargs: Any
) -> Any:
    """``function(*inputs, *args, **kwargs)`` on copies of the arrays ``inputs``, which must come
    back untouched (the caller still needs them)."""
    given = {name: array.copy() for name, array in inputs.items()}
    result = function(*given.values(), *args, **kwargs)
    for name, array in inputs.items():
        require(
            np.array_equal(given[name], array),
            f"{what} changed its input {name} in place (e.g. `{name} *= ...`): compute a new "
            f"array, the caller still needs {name}",
        )
    return result


def close(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Elementwise "equal up to float32 rounding" (``RTOL``, and an absolute floor for zeros)."""
    floor = RTOL * max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    return np.abs(actual - expected) <= RTOL * np.abs(expected) + floor


def near(actual: np.ndarray, expected: np.ndarray, tolerance: Any = None) -> bool:
    """True if all of ``actual`` is ``close`` to ``expected``, or within ``tolerance`` (NaN: no)."""
    if tolerance is None:
        return bool(np.all(close(actual, expected)))
    return bool(np.all(np.abs(actual - expected) < tolerance))


def proportional(actual: np.ndarray, basis: np.ndarray) -> float | None:
    """The factor c with ``actual == c * basis`` (up to float32 rounding), or None."""
    norm = float(np.sum(basis * basis))
    if norm == 0.0 or not np.all(np.isfinite(actual)):
        return None
    factor = float(np.sum(actual * basis)) / norm
    return factor if near(actual, factor * basis) else None


def require(condition: bool, message: str) -> None:
    """Raise ``CheckFailure(message)`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)


def require_close(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    what: str,
    rule: str,
    explains: Sequence[Explain] = (),
    tolerance: Any = None,
) -> None:
    """``actual == expected`` (``near``); else the first of ``explains`` that recognises the
    output names the mistake, or the message shows the largest difference."""
    if near(actual, expected, tolerance):
        return
    for explain in explains:
        if (hint := explain(actual)) is not None:
            raise CheckFailure(f"{what} must be {rule}: {hint}")
    gap = np.where(np.isfinite(actual), np.abs(actual - expected), np.inf)
    index = np.unravel_index(np.argmax(gap), actual.shape)
    raise CheckFailure(
        f"{what} must be {rule}; largest difference at index {tuple(int(i) for i in index)}: "
        f"got {actual[index]:.6g}, expected {expected[index]:.6g}"
    )


def matches(alternative: np.ndarray, hint: str, *, tolerance: Any = None) -> Explain:
    """Recognises the output ``alternative`` (what a classic mistake computes)."""
    return lambda out: hint if near(out, alternative, tolerance) else None


def scaled(basis: np.ndarray, hint: str | Callable[[float], str], *, offset: Any = 0.0) -> Explain:
    """Recognises an output ``offset + c * basis`` for any c; the hint: ``hint`` or ``hint(c)``."""

    def explain(out: np.ndarray) -> str | None:
        factor = proportional(out - offset, basis)
        if factor is None:
            return None
        return hint(factor) if callable(hint) else hint

    return explain


def scale_factors(p: float) -> dict[str, float]:
    """Factors a kept value (unit or weight) may come out multiplied by at drop rate ``p``, right
    or wrong, keyed by the name a message uses ("1/(1-p)" is the inverted training factor)."""
    keep = 1.0 - p
    return {
        "1/(1-p)": 1.0 / keep if keep > 0 else np.inf,
        "1": 1.0,
        "1/p": 1.0 / p if p > 0 else np.inf,
        "p": p,
        "1-p": keep,
    }


FACTOR_HINTS = {
    "1/(1-p)": "that is the inverted training factor",
    "1": "what is kept is not rescaled",
    "1/p": "did you divide by p instead of by 1 - p? p is the probability of DROPPING",
    "p": "did you multiply by p instead of dividing by 1 - p?",
    "1-p": "did you multiply by 1 - p (the classic evaluation factor) instead of dividing by it?",
}


def name_factor(factor: float, candidates: Mapping[str, float]) -> str | None:
    """The name of the candidate factor ``factor`` equals (within 1e-3 relative), if any."""
    for name, value in candidates.items():
        if abs(factor - value) <= 1e-3 * max(abs(value), 1e-12):
            return name
    return None


def factor_named(p: float, what: str) -> Callable[[float], str]:
    """A hint for ``scaled``: "<what> multiplied by c", and the mistake c stands for if known."""

    def hint(factor: float) -> str:
        name = name_factor(factor, scale_factors(p))
        known = f" ({name}: {FACTOR_HINTS[name]})" if name in FACTOR_HINTS else ""
        return f"{what} multiplied by {factor:.4g}{known}"

    return hint


def mask_explains(x: np.ndarray, keep: np.ndarray, *, zero_hint: str) -> list[Explain]:
    """Mistakes of an elementwise output ``x * keep * factor`` (entries with x == 0 say nothing):
    keep and drop swapped, dropped units alive, kept units lost (``zero_hint`` says why)."""
    kept, dropped = keep & (x != 0), ~keep & (x != 0)

    def swapped(out: np.ndarray) -> str | None:
        alive = ~np.isclose(out, 0.0)
        if not np.any(alive & dropped):
            return None
        if kept.any() and not np.any(alive & kept):
            return (
                "units the mask keeps come out 0 and units it drops pass through: keep and drop "
                "are swapped (mask entries 1/True mark the units to KEEP)"
            )
        return "units the mask drops (mask == 0) must come out as 0"

    def lost(out: np.ndarray) -> str | None:
        zeros = np.isclose(out, 0.0) & kept
        share = f"{zeros.sum() / max(kept.sum(), 1):.0%}"
        return (
            f"{share} of the units that must be kept come out 0: {zero_hint}"
            if zeros.any()
            else None
        )

    return [swapped, lost]


def activations(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float64", *, zeros: float = 0.25
) -> np.ndarray:
    """Random signs and |x| in [0.5, 1.5], exact zeros at a fraction ``zeros`` of the entries (the
    first one always), as in a ReLU layer's output: a backward pass dividing by x fails there."""
    values = np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.5, shape)
    if zeros:
        hole = rng.random(shape) < zeros
        hole.flat[0] = True
        values[hole] = 0.0
    return values.astype(dtype)


# Statistics of draws ------------------------------------------------------------------------------


def require_count(
    count: int, n: int, q: float, *, delta: float, what: str, hints: Mapping[float, str]
) -> None:
    """Check ``count`` is a plausible Binomial(n, q) draw (Bernstein: false fail < ``delta``).

    ``hints`` maps other rates to the mistake that would produce them; the first one whose own
    tolerance contains the observed count is named in the message.
    """
    tolerance = binomial_tolerance(n, q, delta)
    if abs(count - n * q) < tolerance:
        return
    message = (
        f"{what}: observed {count / n:.4f} over {n} draws, expected {q:.4f} "
        f"(+- {tolerance / n:.4f}; a correct solution misses by that much with probability "
        f"< {delta:.0e})"
    )
    for rate, hint in hints.items():
        if abs(count - n * rate) < binomial_tolerance(n, rate, delta):
            message += f": {hint}"
            break
    raise CheckFailure(message)


def require_rate(kept: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """The draws the mask holds keep with probability 1 - p: Bernstein at ``delta``."""
    hints = {p: "that is p: keep and drop are swapped (keep with probability 1 - p)"}
    count = int(np.count_nonzero(kept))
    require_count(
        count, kept.size, 1.0 - p, delta=delta, what=f"{what}: fraction kept", hints=hints
    )


def _distinct(values: np.ndarray, *, what: str) -> np.ndarray:
    """``values`` reduced to its first slice along every axis whose slices are all equal.

    Independent continuous draws are never equal along a whole axis, so this changes nothing for a
    correct implementation; noise wrongly shared along an axis is counted once, so mean and
    variance measure the draws it holds and only the independence test fails.
    """
    for axis in range(values.ndim):
        first = values.take([0], axis=axis)
        if values.shape[axis] > 1 and near(values, first):
            values = first
    require(values.size >= 2, f"{what}: every factor is the same; draw one factor per unit")
    return values


def gaussian_dropout_std(p: float) -> float:
    """sqrt(p / (1 - p)): the standard deviation of the inverted Bernoulli factor m / (1 - p)."""
    return math.sqrt(p / (1 - p))


def require_mean_one(values: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """The mean of iid N(1, p / (1 - p)) draws is 1 (Gaussian tail bound at ``delta``).

    The tolerance uses the larger of the expected and the measured standard deviation: that only
    widens it for a correct implementation and keeps the test meaningful when the spread is wrong
    (which costs the variance test, not this one).
    """
    values = _distinct(values, what=what)
    std = max(gaussian_dropout_std(p), float(values.std()))
    tolerance, mean = normal_mean_tolerance(values.size, std, delta), float(values.mean())
    if abs(mean - 1.0) < tolerance:  # NaN fails too
        return
    hint = "Gaussian dropout multiplies x by noise centred at 1, e.g. 1 + std * standard normal"
    if abs(mean) < tolerance:
        hint = (
            "noise centred at 0 is additive noise; Gaussian dropout MULTIPLIES x by noise "
            "centred at 1 (1 + std * standard normal), so that x is unchanged on average"
        )
    elif p > 0 and abs(mean - 1 / (1 - p)) < tolerance:
        hint = "do not divide by 1 - p: the Gaussian factor already has mean 1"
    raise CheckFailure(
        f"{what}: mean {mean:.4f} over {values.size} draws, expected 1 (+- {tolerance:.4f}; a "
        f"correct solution misses by that much with probability < {delta:.0e}): {hint}"
    )


def require_variance(values: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """Continuous draws (no exact zeros) with variance p / (1 - p) (chi-square bound, ``delta``):
    for n iid N(mu, s^2) draws, (n - 1) * sample variance / s^2 ~ chi-square(n - 1)."""
    values = _distinct(values, what=what)
    # A Gaussian draw is exactly 0 with probability < 2**-100 (float32 or float64).
    zeros = int(np.count_nonzero(values == 0))
    require(
        zeros == 0,
        f"{what}: {zeros} of {values.size} factors are exactly 0: that is a Bernoulli mask; "
        "Gaussian dropout multiplies by a continuous normal factor",
    )
    low, high = chi_square_interval(values.size - 1, delta)
    variance, want = float(values.var(ddof=1)), p / (1 - p)
    if low * want <= variance <= high * want:
        return
    message = (
        f"{what}: variance {variance:.4f} over {values.size} draws (std {math.sqrt(variance):.4f}),"
        f" expected p / (1 - p) = {want:.4f} (std {math.sqrt(want):.4f}; a correct solution misses"
        f" [{low * want:.4f}, {high * want:.4f}] with probability < {delta:.0e})"
    )
    wrong_stds = {  # the noise's std under classic mistakes, and what each one means
        "p": (p, "std = p is the classic slip: the Bernoulli factor m / (1 - p) has variance "
              "p / (1 - p), so the std is sqrt(p / (1 - p))"),
        "p / (1 - p)": (p / (1 - p), "p / (1 - p) is the variance: take its square root for the "
                        "standard deviation"),
        "sqrt(p (1 - p))": (math.sqrt(p * (1 - p)), "sqrt(p (1 - p)) is the std of the 0/1 mask "
                            "m itself; the factor m / (1 - p) has variance p / (1 - p)"),
    }  # fmt: skip
    for name, (std, meaning) in wrong_stds.items():
        if std > 0 and low * std**2 <= variance <= high * std**2:
            message += f": the noise has std {name}; {meaning}"
            break
    raise CheckFailure(message)


def adjacent_agreement(keep: np.ndarray, axis: int) -> tuple[int, int]:
    """(agreeing pairs, pairs) over disjoint neighbours (0,1), (2,3), ... along ``axis``: for
    independent units kept with probability q, Binomial(pairs, q^2 + (1 - q)^2)."""
    moved = np.moveaxis(keep, axis, 0)
    even, odd = moved[0 : moved.shape[0] - 1 : 2], moved[1 : moved.shape[0] : 2]
    return int(np.count_nonzero(even == odd)), int(even.size)


def require_independent(
    draws: np.ndarray, p: float, *, delta: float, what: str, names: Callable, hints: Callable
) -> None:
    """Disjoint neighbours along each axis are independent draws (``delta`` split over the axes).

    Masks (bool), axes of size >= 2: the agreeing pairs are Binomial(pairs, q^2 + (1 - q)^2)
    (Bernstein). Noise, axes of size >= 4: for neighbours a, b of iid N(mu, s^2) draws, a - b and
    a + b are independent N(., 2 s^2), so the mean square of a - b (m pairs) over the sample
    variance of a + b is (chi2(m) / m) / (chi2(m - 1) / (m - 1)), whatever mu and s; with each
    chi-square in its interval at half the axis's share, the ratio leaves its bounds with
    probability < that share. ``names(axis)`` and ``hints(axis)`` word the message.
    """
    mask = draws.dtype == bool
    axes = [axis for axis, size in enumerate(draws.shape) if size >= (2 if mask else 4)]
    for axis in axes:
        share, q = delta / len(axes), 1.0 - p
        what_axis = (
            f"{what}: fraction of neighbouring {names(axis)} (axis {axis}) that are both kept"
        )
        if mask:
            agree, pairs = adjacent_agreement(draws, axis)
            agreement = q**2 + (1 - q) ** 2
            hint = {1.0: hints(axis)}
            require_count(
                agree,
                pairs,
                agreement,
                delta=share,
                what=f"{what_axis} or both dropped",
                hints=hint,
            )
            continue
        moved = np.moveaxis(draws, axis, 0)
        a, b = moved[0 : moved.shape[0] - 1 : 2].ravel(), moved[1 : moved.shape[0] : 2].ravel()
        (low_m, high_m), (low_d, high_d) = [
            chi_square_interval(k, share / 2) for k in (a.size, a.size - 1)
        ]
        low, high = low_m / high_d, high_m / low_d
        ratio = float(np.mean((a - b) ** 2) / np.var(a + b, ddof=1))
        if low <= ratio <= high:  # NaN fails too
            continue
        hint = hints(axis) if ratio < low else f"neighbours along axis {axis} move oppositely"
        raise CheckFailure(
            f"{what}: Var(a - b) / Var(a + b) for neighbours a, b along axis {axis} is {ratio:.3f},"
            f" expected 1 for independent noise (a correct solution leaves [{low:.3f}, "
            f"{high:.3f}] with probability < {share:.0e}): {hint}"
        )


def require_reproducible(
    read: Callable[[Any], np.ndarray],
    seed: int,
    *,
    what: str,
    part: Callable[[np.ndarray], np.ndarray] = lambda draws: draws,
    new_rng: Callable[[int], Any] = np.random.default_rng,
    source: str = "the rng argument (not np.random.* or a new default_rng())",
    name: str = "rng",
) -> None:
    """``read(rng)`` depends on rng alone: equal for two generators with one seed, new for two
    calls with one rng (compared on ``part`` of it).

    ``new_rng(seed)`` makes the generators (a torch Generator for torch code); ``source`` and
    ``name`` word the messages. Two independent draws as the checks make them are equal with
    probability < 1e-80: masks hold at least 2000 draws with q(1 - q) >= 0.0475,
    (1 - 2 q (1 - q))**2000 < 1e-80; continuous noise, 0. A caller with fewer draws states its
    own bound.
    """
    require(
        np.array_equal(read(new_rng(seed)), read(new_rng(seed))),
        f"{what} gave different results for two generators with the same seed: take every "
        f"random number from {source}",
    )
    rng = new_rng(seed)
    require(
        not np.array_equal(part(read(rng)), part(read(rng))),
        f"two calls of {what} with the same {name} gave the same result: draw from {name}, do "
        "not reseed it",
    )


# Subjects -----------------------------------------------------------------------------------------


class Randomness:
    """Base of the subjects whose output holds random draws: the ``random`` property.

    Subclasses give ``read`` (the draws behind one call with a given rng, and the call as text),
    may widen ``spread`` (one draw per drawn entry, for the independence test), and word messages
    with ``unit`` (what one draw belongs to), ``axis_names`` (plural name of an axis's entries) and
    ``shared_hints`` (the mistake behind draws shared along an axis).
    """

    unit: str
    axis_names: Mapping[int, str]
    shared_hints: Mapping[int, str]

    def read(self, fns: Functions, shape: tuple[int, ...], p: float, rng, **options):
        raise NotImplementedError

    def spread(self, draws: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return draws

    def name(self, axis: int) -> str:
        return self.axis_names.get(axis, "entries")

    def hint(self, axis: int) -> str:
        return self.shared_hints.get(axis) or (
            f"the {self.name(axis)} share their draws: draw one number per {self.unit} (e.g. "
            "rng.random(shape) or rng.standard_normal(shape), shape with every drawn axis)"
        )

    def random(
        self,
        fns: Functions,
        *,
        shape: Sequence[int],
        seed: int,
        tests: Sequence[str],
        p: float | None = None,
        p_values: Sequence[float] = (),
        **options: Any,
    ) -> None:
        """The ``tests`` on draws at ``p`` or at each of ``p_values`` (seeded ``seed + i``)."""
        shape, rates = tuple(shape), (p,) if p is not None else tuple(p_values)
        laws = {"rate": require_rate, "mean": require_mean_one, "variance": require_variance}
        statistical = [test for test in tests if test in laws or test == "independent"]
        delta = FALSE_FAIL / max(1, len(statistical) * len(rates))  # union bound
        options["scale"] = "scale" in tests

        def read(rate: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
            return self.read(fns, shape, rate, rng, **options)

        for i, rate in enumerate(rates):
            draws, what = read(rate, np.random.default_rng(seed + i))
            for test in statistical:
                if test == "independent":
                    spread = self.spread(draws, shape)
                    require_independent(
                        spread, rate, delta=delta, what=what, names=self.name, hints=self.hint
                    )
                else:
                    laws[test](draws, rate, delta=delta, what=what)
        if "extremes" in tests:
            # A mask `rng.random() >= p` is exact at p = 0 and 1 (`> p` fails at p = 0 with
            # probability 2**-53 per draw, n * 2**-53 < 1e-9 here); noise at p = 0 is 1 + 0 * z.
            none, what = read(0.0, np.random.default_rng(seed))
            if none.dtype != bool:
                require(
                    near(none, np.ones_like(none)),
                    f"{what} must be 1 everywhere (no noise at p = 0), but its values range from "
                    f"{none.min():.4g} to {none.max():.4g}",
                )
            else:
                require(
                    bool(np.all(none)),
                    f"{what} must keep everything (p is the probability of dropping); if it kept "
                    "nothing, keep and drop are swapped",
                )
                every, what = read(1.0, np.random.default_rng(seed))
                require(not np.any(every), f"{what} must drop everything")
        if "reproducible" in tests:
            what = read(rates[0], np.random.default_rng(seed))[1]
            require_reproducible(lambda rng: read(rates[0], rng)[0], seed, what=what)


@dataclass(frozen=True, eq=False)
class Draw(Randomness):
    """``function(shape, p, rng)``: a keep mask or (``noise``) multiplicative noise for
    activations of ``shape``, one draw per index of the ``drawn`` axes (None: every axis), shared
    by the ``shared_over`` positions of the others (size 1 in the mask)."""

    function: str
    drawn: tuple[int, ...] | None = None
    unit: str = "unit"
    shared_over: str = ""
    axis_names: Mapping[int, str] = field(default_factory=dict)
    shared_hints: Mapping[int, str] = field(default_factory=dict)
    noise: bool = False

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function,)

    def shared_axes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(a for a in range(len(shape)) if self.drawn is not None and a not in self.drawn)

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(1 if a in self.shared_axes(shape) else n for a, n in enumerate(shape))

    def call(self, fns: Functions, shape: tuple[int, ...], p: float, rng) -> tuple[np.ndarray, str]:
        """The student's result (a bool mask of the activations' rank, or float noise of
        ``shape``) and the call as text."""
        what = f"{self.function}({shape}, p={p:g}, rng)"
        value = fns[self.function](shape, p, rng)
        if self.noise:
            noise = as_array(value, what=f"the result of {what}", shape=shape)
            require(bool(np.all(np.isfinite(noise))), f"{what} returned values that are not finite")
            return noise, what
        mask = as_array(value, what=f"the result of {what}")
        require(
            bool(np.all((mask == 0) | (mask == 1))),
            f"{what} returned values other than 0 and 1: a mask only marks what is kept (1/True) "
            "and dropped (0/False); the 1/(1-p) scaling belongs to the forward pass",
        )
        shared = self.shared_axes(shape)
        if mask.ndim < len(shape) and mask.shape == tuple(np.delete(shape, shared)):
            mask = np.expand_dims(mask, shared)  # the draws without their size-1 axes
        require(
            broadcasts_within_rank(mask.shape, shape),
            f"{what} has shape {mask.shape}, which does not broadcast against activations of "
            f"shape {shape}: return shape {self.mask_shape(shape)}, one draw per {self.unit}",
        )
        return mask == 1, what

    def _first(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The index of the first position along each shared axis."""
        shared = self.shared_axes(shape)
        return tuple(slice(0, 1) if a in shared else slice(None) for a in range(len(shape)))

    def read(self, fns: Functions, shape: tuple[int, ...], p: float, rng, **_: Any):
        """The draws the result holds: its first entry along each shared axis."""
        drawn, what = self.call(fns, shape, p, rng)
        return drawn[self._first(shape)], what

    def spread(self, draws: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """One draw per drawn entry: a mask that holds fewer (shared by the batch) repeats them."""
        return np.broadcast_to(draws, self.mask_shape(shape))

    def values(self, fns: Functions, *, shape: Sequence[int], p: float, seed: int) -> None:
        """The result has the mask's shape, holds 0/1 (noise: finite), and the extremes hold."""
        shape = tuple(shape)
        drawn, what = self.call(fns, shape, p, np.random.default_rng(seed))
        want, shared = self.mask_shape(shape), self.shared_axes(shape)
        if drawn.shape != want:
            got = drawn.shape
            mistakes = [
                f"it has one entry for all {self.name(a)} (axis {a}): each of them needs its own "
                "draw"
                for a in range(len(shape))
                if a not in shared and got[a] == 1 and shape[a] > 1
            ]
            separate = ", ".join(str(a) for a in shared if got[a] == shape[a] > 1)
            if separate:
                mistakes.append(
                    f"it has a separate entry per {self.shared_over} (axis {separate}): draw once "
                    f"per {self.unit} and let that draw broadcast over every {self.shared_over}"
                )
            raise CheckFailure(
                f"{what} has shape {got}, but for activations of shape {shape} it must have shape "
                f"{want}: {'; '.join(mistakes) or f'one draw per {self.unit}'}"
            )
        self.random(fns, shape=shape, seed=seed, p=p, tests=("extremes",))

    def shared(self, fns: Functions, *, shape: Sequence[int], p: float, seed: int) -> None:
        """Exact: every draw holds at every position of the shared axes."""
        shape = tuple(shape)
        drawn, what = self.call(fns, shape, p, np.random.default_rng(seed))
        full = np.broadcast_to(drawn, shape)
        varying = np.any(full != full[self._first(shape)], axis=self.shared_axes(shape))
        require(
            not varying.any(),
            f"{what}: {varying.mean():.0%} of the {self.unit} pairs are kept at some "
            f"{self.shared_over}s and dropped at others, but one draw must hold for every "
            f"{self.shared_over}: draw an array of shape {self.mask_shape(shape)}, not one "
            "number per element",
        )


class Expected(NamedTuple):
    """What a function must return: the value, the rule as text, known mistakes, and the
    tolerance (None: up to float32 rounding) of a statistic."""

    value: np.ndarray
    rule: str
    explains: Sequence[Explain] = ()
    tolerance: Any = None

    def require(self, actual: np.ndarray, *, what: str) -> None:
        """``actual`` is the value (``require_close``)."""
        require_close(
            actual, self.value, what=what, rule=self.rule, explains=self.explains,
            tolerance=self.tolerance,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Formula:
    """``function(*inputs, p)`` returning the arrays ``outputs`` (a tuple, or one array), each
    given by a formula: ``formulas[name](inputs, p)`` is its ``Expected`` (from float64 inputs).
    ``make_inputs(rng, shape, dtype)`` makes the inputs; ``out_shape(inputs)``, if given, is every
    output's shape."""

    function: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    make_inputs: Callable[[np.random.Generator, tuple[int, ...], str], Inputs]
    formulas: Mapping[str, Callable[[Inputs, float], Expected]]
    out_shape: Callable[[Inputs], tuple[int, ...]] | None = None

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function,)

    def call(self, fns: Functions, inputs: Inputs, p: float) -> tuple[dict[str, np.ndarray], str]:
        """The outputs of a pure call by name, as float64 arrays, and the call as text."""
        what = f"{self.function}({', '.join(self.inputs)}, p={p:g})"
        result = call_pure(
            fns[self.function], dict(zip(self.inputs, inputs, strict=True)), p, what=what
        )
        values = (
            (result,) if len(self.outputs) == 1 else unpack(result, what=what, names=self.outputs)
        )
        shape = None if self.out_shape is None else self.out_shape(inputs)
        named = zip(self.outputs, values, strict=True)
        return {n: as_array(v, what=f"{n} of {what}", shape=shape) for n, v in named}, what

    def value(self, fns: Functions, *, output: str, shape, p_values, seed, dtype="float64"):
        """Output ``output`` equals its formula at each rate."""
        rng = np.random.default_rng(seed)
        for p in p_values:
            inputs = self.make_inputs(rng, tuple(shape), dtype)
            arrays, what = self.call(fns, inputs, p)
            self.formulas[output](_float64(inputs), p).require(
                arrays[output], what=f"{output} of {what}"
            )


def _float64(inputs: Inputs) -> Inputs:
    return tuple(array.astype(np.float64) for array in inputs)


@dataclass(frozen=True, eq=False)
class Layer(Randomness):
    """``function(*inputs, p, *, train, rng=None, <inject>=None, **options) -> (out, cache)``.

    A subclass gives ``train_output`` and ``eval_output`` (``Expected``, from float64 inputs) and
    ``draws`` (the draws behind a training pass on ``random_inputs``); it may change how inputs
    are made (``make_inputs``: activations with exact zeros), the randomness a check injects
    (``randomness``: a keep mask of x's shape) and ``out_shape``.
    """

    function: str
    inputs: tuple[str, ...] = ("x",)
    inject: str = "mask"
    unit: str = "unit"
    axis_names: Mapping[int, str] = field(default_factory=dict)
    shared_hints: Mapping[int, str] = field(default_factory=dict)

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function,)

    def make_inputs(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> Inputs:
        return (activations(rng, shape, dtype),)

    def randomness(self, rng: np.random.Generator, inputs: Inputs, p: float) -> np.ndarray:
        return rng.random(inputs[0].shape) >= p

    def out_shape(self, inputs: Inputs) -> tuple[int, ...]:
        return inputs[0].shape

    def train_output(self, inputs: Inputs, r: np.ndarray, p: float, **options: Any) -> Expected:
        raise NotImplementedError

    def eval_output(self, inputs: Inputs, p: float, **options: Any) -> Expected:
        raise NotImplementedError

    def random_inputs(self, shape: tuple[int, ...], dtype: str) -> Inputs:
        """Inputs in [0.5, 1.5], no zeros: ``out / x`` reads a pass's draws back."""
        return (np.resize(np.linspace(0.5, 1.5, 11), shape).astype(dtype),)

    def draws(self, out: np.ndarray, inputs: Inputs, p: float, what: str, scale: bool, **options):
        """The draws behind ``out`` (CheckFailure if none can be); with ``scale``, after checking
        the factor of what is kept."""
        raise NotImplementedError

    def call(self, forward: BoundFunction, inputs: Inputs, p: float, **kwargs: Any):
        """``(out, cache, the call as text)`` of a pure call of the student's forward pass."""
        shown = [
            f"{k}=<{v.dtype} {k}>" if isinstance(v, np.ndarray) else
            f"{k}=rng" if isinstance(v, np.random.Generator) else f"{k}={v!r}"
            for k, v in kwargs.items()
        ]  # fmt: skip
        what = f"{self.function}({', '.join([*self.inputs, f'p={p:g}', *shown])})"
        named = dict(zip(self.inputs, inputs, strict=True))
        out, cache = unpack(
            call_pure(forward, named, p, what=what, **kwargs), what=what, names=("out", "cache")
        )
        return as_array(out, what=f"out of {what}", shape=self.out_shape(inputs)), cache, what

    def read(self, fns: Functions, shape, p, rng, *, dtype="float64", scale=False, **options):
        inputs = self.random_inputs(shape, dtype)
        out, _, what = self.call(fns[self.function], inputs, p, train=True, rng=rng, **options)
        return self.draws(out, inputs, p, what, scale=scale, **options), what

    def injected(self, fns: Functions, *, shape, p_values, seed, dtype="float64", **options):
        """Training with the randomness injected (a mask as bool and as ``dtype``): exact output."""
        self._exact(fns, shape, p_values, seed, dtype, True, options)

    def evaluation(
        self, fns: Functions, *, shape, p_values, seed, dtype="float64", given=True, **options
    ):
        """Evaluation: exact output; with ``given``, also when an rng and the randomness are
        passed, which evaluation ignores."""
        self._exact(fns, shape, p_values, seed, dtype, False, options, given)

    def _exact(self, fns, shape, p_values, seed, dtype, train, options, given=False) -> None:
        rng = np.random.default_rng(seed)
        for p in p_values:
            inputs = self.make_inputs(rng, tuple(shape), dtype)
            r = self.randomness(rng, inputs, p)
            if train:
                want = self.train_output(_float64(inputs), r, p, **options)
                values = [r, r.astype(dtype)] if r.dtype == bool else [r]
                cases = [{"train": True, self.inject: value} for value in values]
            else:
                want = self.eval_output(_float64(inputs), p, **options)
                ignored = [{}, {"rng": np.random.default_rng(seed)}, {self.inject: r}]
                cases = [{"train": False, **extra} for extra in ignored[: 3 if given else 1]]
            for kwargs in cases:
                out, _, what = self.call(fns[self.function], inputs, p, **kwargs, **options)
                want.require(out, what=f"out of {what}")


@dataclass(frozen=True, eq=False)
class Backprop:
    """``function(dout, cache)``, the backward pass of ``layer``: the gradients ``gradients`` (a
    tuple, or one array), each with its rule in ``formulas``. A subclass may give
    ``true_gradient`` (a right gradient passes whatever the forward pass does) and ``explain``
    (hints for a wrong one, from the gradient of the student's forward pass)."""

    layer: Layer
    function: str
    gradients: tuple[str, ...] = ("x",)
    formulas: Mapping[str, str] = field(default_factory=dict)

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.layer.function, self.function)

    def true_gradient(self, wrt: str, inputs: Inputs, dout, r, p: float) -> np.ndarray | None:
        return None

    def explain(self, wrt: str, expected: np.ndarray, inputs: Inputs, dout, r) -> list[Explain]:
        return []

    def gradient(
        self,
        fns: Functions,
        *,
        shape: Sequence[int],
        seed: int,
        wrt: str = "x",
        p_values: Sequence[float] = (),
        p: float | None = None,
        dtype: str = "float64",
        up_to_factor: bool = False,
        **options: Any,
    ) -> None:
        """d<wrt> is the Jacobian (times dout) of the student's own forward pass, which is linear
        in each input for fixed randomness: central differences with step 1 are exact up to
        rounding, in float32 too. With ``p_values``: a given mask per rate, then evaluation. With
        ``p``: a pass drawing from an rng seeded afresh for every call (so the forward pass must
        be reproducible), compared up to a factor if ``up_to_factor``."""
        rng = np.random.default_rng(seed)
        cases = [(q, True) for q in p_values] + [(p_values[0], False)] if p is None else [(p, None)]
        for rate, train in cases:
            inputs = self.layer.make_inputs(rng, tuple(shape), dtype)
            r = self.layer.randomness(rng, inputs, rate) if train else None
            dout = activations(rng, self.layer.out_shape(inputs), zeros=0.0)
            given = {self.layer.inject: r} if train else {}
            reseed = seed + 1 if train is None else None
            wrong = self._compare(
                fns,
                wrt,
                inputs,
                rate,
                r,
                dout,
                reseed,
                train=train is not False,
                **given,
                **options,
            )
            if wrong is None or (up_to_factor and proportional(*wrong[:2]) is not None):
                continue
            actual, own, call = wrong
            explains = [_not_finite(inputs[self.layer.inputs.index(wrt)], wrt)]
            explains += self.explain(wrt, own, _float64(inputs), dout, r)
            explains += [] if up_to_factor else [scaled(own, _times_own_gradient)]
            explains += [] if reseed is None else [lambda _: _FRESH_DRAW]
            rule = (
                f"the gradient of your forward pass ({self.formulas.get(wrt, 'd out / d ' + wrt)})"
            )
            rule += ", at least up to a factor" if up_to_factor else ""
            require_close(actual, own, what=f"d{wrt} of {call}", rule=rule, explains=explains)

    def _compare(self, fns, wrt, inputs, p, r, dout, reseed, **kwargs):
        """None if d<wrt> after a forward pass with ``kwargs`` (and an rng seeded ``reseed``
        afresh for each call, unless None) is right; else (d<wrt>, the gradient of the student's
        forward pass, the backward call as text)."""
        layer, position = self.layer, self.layer.inputs.index(wrt)

        def forward(z: np.ndarray) -> tuple[np.ndarray, Any, str]:
            changed = (*inputs[:position], z, *inputs[position + 1 :])
            drawn = {} if reseed is None else {"rng": np.random.default_rng(reseed)}
            return layer.call(fns[layer.function], changed, p, **kwargs, **drawn)

        out, cache, what = forward(inputs[position])
        require(
            reseed is None or np.array_equal(out, forward(inputs[position])[0]),
            f"{what} differs between two generators with the same seed: draw from the rng "
            "argument (this check needs it to reproduce your forward pass)",
        )
        call = f"{self.function}(dout, cache) after {what}"
        names = tuple(f"d{name}" for name in self.gradients)
        result = fns[self.function](dout.copy(), cache)
        grads = (result,) if len(names) == 1 else unpack(result, what=call, names=names)
        grad = grads[self.gradients.index(wrt)]
        actual = as_array(grad, what=f"d{wrt} of {call}", shape=inputs[position].shape)
        truth = (
            None if reseed is not None else self.true_gradient(wrt, _float64(inputs), dout, r, p)
        )
        if truth is not None and near(actual, truth):
            return None  # right, whatever the forward pass does
        own = numerical_gradient(lambda z: forward(z)[0], inputs[position].copy(), dout, h=1.0)
        return None if near(actual, own) else (actual, own, call)


_FRESH_DRAW = (
    "it is not the gradient for the randomness that pass drew: reuse what the forward pass "
    "stored in the cache, do not draw new ones in the backward pass"
)


def _times_own_gradient(factor: float) -> str:
    return (
        f"it is {factor:.4g} times the gradient of your forward pass: apply exactly the factor "
        "your forward pass applied"
    )


def _not_finite(values: np.ndarray, name: str) -> Explain:
    """Recognises a gradient with NaN or infinite entries (where ``name`` holds ``values``)."""

    def explain(grad: np.ndarray) -> str | None:
        bad = ~np.isfinite(grad)
        if not bad.any():
            return None
        at_zero = np.count_nonzero(bad & (values == 0)) if grad.shape == values.shape else "none"
        return (
            f"{np.count_nonzero(bad)} entries are NaN or infinite, {at_zero} of them where {name} "
            f"== 0 (an inactive ReLU unit gives {name} == 0): do not divide by {name}; use what "
            "the forward pass stored in the cache (the mask, the scale)"
        )

    return explain


# Values of functions, judged on cases (appended for chapters 1 and 5) -----------------------------


@dataclass(frozen=True)
class Case:
    """One call of a ``Returns`` subject: its arguments, what it must return, the input in words
    (``given``, appended to the call in messages) and a ``note`` added to the message when the
    student's code raises on it."""

    args: tuple[Any, ...]
    expected: Expected
    given: str = ""
    note: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def _copied(value: Any) -> Any:
    """A copy of an array, or of a dict of arrays (a table); any other value as it is."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    return value.copy() if isinstance(value, np.ndarray) else value


@dataclass(frozen=True, eq=False)
class Returns:
    """``function(*args, **kwargs)`` -> one number, or an array of ``shape(*args)``, judged by
    value: ``value`` calls it on each ``Case`` that ``cases(**parameters)`` builds (from a row's
    defaults, or a hidden test's keywords) and requires the case's ``Expected``.

    ``params`` names the positional arguments in messages (numbers are shown with their value).
    Arrays (and dicts of arrays) are passed as copies; with ``pure`` they must come back untouched,
    else ``in_place`` (formatted with the argument's ``name``) says what to do. ``pure=False``
    leaves that property to a cell of its own, ``untouched``, so a mistake there costs no other.
    """

    function: str
    params: tuple[str, ...]
    shape: Callable[..., tuple[int, ...]] = lambda *args: ()
    pure: bool = True
    in_place: str = "compute a new array (not `{name} *= ...`): the caller still needs {name}"

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function,)

    def call(
        self, fns: Functions, *args: Any, note: str = "", pure: bool | None = None, **kwargs: Any
    ) -> tuple[Any, str]:
        """What ``function`` returns for copies of ``args``, and the call as text."""
        shown = [
            f"{name}={value!r}" if isinstance(value, int | float) else name
            for name, value in zip(self.params, args, strict=False)
        ] + [
            f"{key}=rng" if isinstance(value, np.random.Generator) else f"{key}={value!r}"
            for key, value in kwargs.items()
        ]
        what = f"{self.function}({', '.join(shown)})"
        given = tuple(_copied(arg) for arg in args)
        try:
            result = fns[self.function](*given, **kwargs)
        except StudentError as error:
            if not note:
                raise
            raise StudentError(f"{error} ({note})") from None
        for name, before, after in zip(self.params, args, given, strict=False):
            require(
                not (self.pure if pure is None else pure)
                or not isinstance(before, np.ndarray)
                or np.array_equal(before, after),
                f"{what} changed {name} in place: {self.in_place.format(name=name)}",
            )
        return result, what

    def read(self, result: Any, args: tuple[Any, ...], what: str) -> np.ndarray:
        """``result`` as float64: one number (0-d, from any one-element array), or an array of
        ``shape(*args)``."""
        shape = self.shape(*args)
        value = as_array(result, what=f"the result of {what}", shape=shape or None)
        require(
            bool(shape) or value.size == 1,
            f"{what} must return one number, but returned shape {value.shape}",
        )
        return value if shape else value.reshape(())

    def result(
        self, fns: Functions, *args: Any, note: str = "", pure: bool | None = None, **kwargs: Any
    ) -> tuple[np.ndarray, str]:
        """``read`` of what ``call`` returns, and the call as text."""
        result, what = self.call(fns, *args, note=note, pure=pure, **kwargs)
        return self.read(result, args, what), what

    def value(self, fns: Functions, *, cases: Callable[..., Sequence[Case]], **parameters) -> None:
        """Each case's result is its ``Expected`` (a number's message says what came back)."""
        for case in cases(**parameters):
            out, what = self.result(fns, *case.args, note=case.note, **case.kwargs)
            what = f"{what} {case.given}".rstrip()
            said = f"{what} returned {float(out):.6g}, but it" if out.ndim == 0 else ""
            case.expected.require(out, what=said or f"the result of {what}")

    def untouched(
        self, fns: Functions, *, cases: Callable[..., Sequence[Case]], **parameters
    ) -> None:
        """The arrays passed come back untouched (what ``pure=False`` leaves to this cell)."""
        for case in cases(**parameters):
            self.call(fns, *case.args, pure=True, **case.kwargs)
