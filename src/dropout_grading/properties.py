"""The property kit: what a dropout-like function must do, each property written once.

An assignment's checks module describes the student's functions as *subjects* and declares its
test cells as a table: each row is one property of a subject, its visible defaults, and the
sentence printed on a pass (``row``). Subjects:

* ``Draw``: ``f(shape, p, rng)`` returns a keep mask (bool or 0/1) or multiplicative noise, one
  draw per index of its drawn axes, shared along the others (a channel mask is drawn per (example,
  channel) and shared over the positions). Properties: ``values`` (shape, 0/1 entries, p = 0
  keeps everything and p = 1 nothing), ``shared`` (constant along the shared axes), ``random``.
* ``Layer`` (subclassed with the formulas): a forward pass ``f(*inputs, p, *, train, rng=None,
  <mask or noise>=None, **options) -> (out, cache)``. Properties: ``injected`` (the exact output
  with the randomness injected, as a bool and as a float mask), ``evaluation`` (the exact output
  at ``train=False``, also when an ``rng`` and a mask or noise are given: they must be ignored),
  ``random`` (the draws read back from passes that draw from ``rng``).
* ``Backprop``: the backward pass ``g(dout, cache)`` of a Layer. Property: ``gradient`` (each
  gradient equals the Jacobian of the student's OWN forward pass, computed with
  ``dropout_course.gradcheck.numerical_gradient`` with the same randomness, on inputs holding
  exact zeros like a ReLU layer's output, so a forward mistake costs no backward cell and
  ``dout * out / x`` fails).

Every call is *pure*: array inputs are passed as copies and must come back untouched, the result
must have the documented structure and shape. ``random(tests=...)`` runs, on the draws:

* ``"rate"``: kept with probability 1 - p (Bernstein, ``bounds.binomial_tolerance``);
* ``"mean"``, ``"variance"``: noise with mean 1 (Gaussian tail) and variance p / (1 - p)
  (Laurent-Massart chi-square interval), counting noise wrongly shared along an axis once;
* ``"independent"``: disjoint neighbours along each axis agree as often as independent draws do
  (masks: Bernstein on the agreeing pairs; noise: a chi-square ratio);
* ``"scale"``: (a Layer) what a pass keeps comes out with the right scale;
* ``"extremes"``: p = 0 keeps everything (noise: all 1), p = 1 keeps nothing (masks);
* ``"reproducible"``: equal for two generators with one seed, new for two calls with one rng.

The statistical tests of one check share ``FALSE_FAIL`` evenly over tests and rates (a union
bound), so a correct implementation fails a check with probability below 1e-9. Messages say what
was measured, what was expected, and the likely mistake: an ``Explain`` maps an output to the hint
of the mistake that produces it (``matches``, ``scaled`` with ``factor_named``, ``mask_explains``).
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
"""Maps a wrong output to the hint of the mistake that produces it (None: not that mistake)."""


def row(summary: str, prop: Callable[..., None], **defaults: Any) -> Row:
    """A table row: ``prop``, a subject's property (``KEEP.random``), with its visible defaults."""
    return Row(summary, prop, prop.__self__.functions, defaults)  # type: ignore[attr-defined]


# Reading and comparing ----------------------------------------------------------------------------


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
        got = f"a {type(result).__name__}"
        if isinstance(result, (tuple, list)):
            got += f" of length {len(result)}"
        raise StudentError(f"{what} must return ({', '.join(names)}), but returned {got}")
    return tuple(result)


unpack_pair = unpack  # the name chapters 1, 3 and 5 import


def call_pure(
    function: BoundFunction, inputs: Mapping[str, np.ndarray], *args: Any, what: str, **kwargs: Any
) -> Any:
    """``function(*inputs, *args, **kwargs)`` on copies of the ``inputs`` arrays, which must come
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


def proportional(actual: np.ndarray, basis: np.ndarray) -> float | None:
    """The factor c with ``actual == c * basis`` (up to float32 rounding), or None."""
    norm = float(np.sum(basis * basis))
    if norm == 0.0 or not np.all(np.isfinite(actual)):
        return None
    factor = float(np.sum(actual * basis)) / norm
    return factor if np.all(close(actual, factor * basis)) else None


def worst(actual: np.ndarray, expected: np.ndarray) -> str:
    """The largest difference and where, for messages."""
    gap = np.where(np.isfinite(actual), np.abs(actual - expected), np.inf)
    index = np.unravel_index(np.argmax(gap), actual.shape)
    return (
        f"largest difference at index {tuple(int(i) for i in index)}: got "
        f"{actual[index]:.6g}, expected {expected[index]:.6g}"
    )


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
    """``actual == expected`` up to float32 rounding (or within ``tolerance``); otherwise the first
    of ``explains`` that recognises the output names the mistake."""
    if tolerance is None:
        right = close(actual, expected)
    else:
        right = np.abs(actual - expected) < tolerance  # NaN fails too
    if np.all(right):
        return
    for explain in explains:
        if (hint := explain(actual)) is not None:
            raise CheckFailure(f"{what} must be {rule}: {hint}")
    raise CheckFailure(f"{what} must be {rule}; {worst(actual, expected)}")


# Explaining a wrong output ------------------------------------------------------------------------


def matches(alternative: np.ndarray, hint: str, *, tolerance: Any = None) -> Explain:
    """Recognises the output ``alternative`` (what a classic mistake computes), up to float32
    rounding or within ``tolerance``."""

    def explain(out: np.ndarray) -> str | None:
        if tolerance is None:
            return hint if np.all(close(out, alternative)) else None
        return hint if np.all(np.abs(out - alternative) < tolerance) else None

    return explain


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
    """A hint for ``scaled``: "<what> multiplied by c", with the mistake c stands for if known."""

    def hint(factor: float) -> str:
        name = name_factor(factor, scale_factors(p))
        known = f" ({name}: {FACTOR_HINTS[name]})" if name in FACTOR_HINTS else ""
        return f"{what} multiplied by {factor:.4g}{known}"

    return hint


def mask_explains(x: np.ndarray, keep: np.ndarray, *, zero_hint: str) -> list[Explain]:
    """Mistakes of an elementwise masked output ``x * keep * factor`` (entries where x == 0 say
    nothing): keep and drop swapped, dropped units alive, kept units lost (``zero_hint`` says why).
    """
    live = x != 0
    kept, dropped = keep & live, ~keep & live

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
        if not zeros.any():
            return None
        return (
            f"{zeros.sum() / kept.sum():.0%} of the units that must be kept come out 0: {zero_hint}"
        )

    return [swapped, lost]


# Inputs -------------------------------------------------------------------------------------------


def activations(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float64", *, zeros: float = 0.25
) -> np.ndarray:
    """Random signs and |x| in [0.5, 1.5], with exact zeros at a fraction ``zeros`` of the entries
    (the first one always): a ReLU layer's output has them, and a backward pass that divides by x
    fails there."""
    values = np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.5, shape)
    if zeros:
        hole = rng.random(shape) < zeros
        hole.flat[0] = True
        values[hole] = 0.0
    return values.astype(dtype)


def positive_inputs(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Inputs in [0.5, 1.5] with no zeros, from which ``out / x`` reads a pass's draws back."""
    return np.resize(np.linspace(0.5, 1.5, 11), shape).astype(dtype)


# Statistics of draws ------------------------------------------------------------------------------


def require_count(
    count: int, n: int, q: float, *, delta: float, what: str, hints: Mapping[float, str]
) -> None:
    """Check ``count`` is a plausible Binomial(n, q) draw (Bernstein: false fail < ``delta``).

    ``hints`` maps other rates to the mistake that would produce them; the nearest one whose own
    tolerance contains the observed count is named in the message.
    """
    tolerance = binomial_tolerance(n, q, delta)
    if abs(count - n * q) < tolerance:
        return
    observed = count / n
    message = (
        f"{what}: observed {observed:.4f} over {n} draws, expected {q:.4f} "
        f"(+- {tolerance / n:.4f}; a correct solution misses by that much with probability "
        f"< {delta:.0e})"
    )
    for rate, hint in hints.items():
        if abs(count - n * rate) < binomial_tolerance(n, rate, delta):
            message += f": {hint}"
            break
    raise CheckFailure(message)


def distinct_draws(values: np.ndarray, *, what: str) -> np.ndarray:
    """``values`` reduced to its first slice along every axis whose slices are all equal.

    Independent continuous draws are never equal (up to float32 rounding) along a whole axis, so
    this changes nothing for a correct implementation; noise wrongly shared along an axis is
    counted once, so mean and variance measure the draws it really holds and only the
    independence test fails.
    """
    for axis in range(values.ndim):
        first = values.take([0], axis=axis)
        if values.shape[axis] > 1 and np.all(close(values, first)):
            values = first
    require(values.size >= 2, f"{what}: every factor is the same; draw one factor per unit")
    return values


def gaussian_dropout_std(p: float) -> float:
    """sqrt(p / (1 - p)): the standard deviation of the inverted Bernoulli factor m / (1 - p)."""
    return math.sqrt(p / (1 - p))


def _wrong_stds(p: float) -> dict[str, tuple[float, str]]:
    """Standard deviations of the noise that classic mistakes give, with what each one means."""
    return {
        "p": (
            p,
            "std = p is the classic slip: the Bernoulli factor m / (1 - p) has variance "
            "p / (1 - p), so the std is sqrt(p / (1 - p))",
        ),
        "p / (1 - p)": (
            p / (1 - p),
            "p / (1 - p) is the variance: take its square root for the standard deviation",
        ),
        "sqrt(p (1 - p))": (
            math.sqrt(p * (1 - p)),
            "sqrt(p (1 - p)) is the std of the 0/1 mask m itself; the factor m / (1 - p) has "
            "variance p / (1 - p)",
        ),
    }


def require_rate(kept: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """The draws keep with probability 1 - p: Bernstein on Binomial(n, 1 - p) at ``delta``."""
    require_count(
        int(np.count_nonzero(kept)),
        kept.size,  # the draws the mask holds (fewer if it shares them wrongly)
        1.0 - p,
        delta=delta,
        what=f"{what}: fraction kept",
        hints={p: "that is p: keep and drop are swapped (keep with probability 1 - p)"},
    )


def require_mean_one(values: np.ndarray, p: float, *, delta: float, what: str) -> None:
    """The mean of iid N(1, p / (1 - p)) draws is 1 (Gaussian tail bound at ``delta``).

    The tolerance uses the larger of the expected and the measured standard deviation, which
    only widens it for a correct implementation (false fail still < ``delta``) and keeps the mean
    test meaningful when the spread is wrong (that costs the variance test, not this one).
    """
    values = distinct_draws(values, what=what)
    std = max(gaussian_dropout_std(p), float(values.std()))
    tolerance = normal_mean_tolerance(values.size, std, delta)
    mean = float(values.mean())
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
    """Continuous draws (no exact zeros) with variance p / (1 - p) (chi-square bound, ``delta``).

    For n iid N(mu, s^2) draws, (n - 1) * sample variance / s^2 ~ chi-square(n - 1).
    """
    values = distinct_draws(values, what=what)
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
    for name, (std, meaning) in _wrong_stds(p).items():
        if std > 0 and low * std**2 <= variance <= high * std**2:
            message += f": the noise has std {name}; {meaning}"
            break
    raise CheckFailure(message)


def adjacent_agreement(keep: np.ndarray, axis: int) -> tuple[int, int]:
    """(agreeing pairs, pairs) over disjoint neighbours (0,1), (2,3), ... along ``axis``.

    Disjoint pairs are independent, so for independent units kept with probability q the count
    of agreeing pairs is Binomial(pairs, q^2 + (1 - q)^2); a mask shared along ``axis`` agrees on
    every pair.
    """
    moved = np.moveaxis(keep, axis, 0)
    even = moved[0 : moved.shape[0] - 1 : 2]
    odd = moved[1 : moved.shape[0] : 2]
    return int(np.count_nonzero(even == odd)), int(even.size)


def require_independent(
    draws: np.ndarray,
    p: float,
    *,
    delta: float,
    what: str,
    names: Callable[[int], str],
    hints: Callable[[int], str],
) -> None:
    """Disjoint neighbours along each axis are independent draws (``delta`` split over the axes).

    Masks (bool), along each axis of size >= 2: the agreeing pairs are Binomial(pairs, q^2 +
    (1 - q)^2) (Bernstein). Noise (float), along each axis of size >= 4: for neighbours a, b of
    iid N(mu, s^2) draws, a - b and a + b are independent N(., 2 s^2), so the mean square of
    a - b (m pairs) over the sample variance of a + b is (chi2(m) / m) / (chi2(m - 1) / (m - 1)),
    whatever mu and s; with each chi-square in its interval at delta / (2 axes), the ratio leaves
    its bounds with probability < delta. ``names(axis)`` and ``hints(axis)`` word the message.
    """
    mask = draws.dtype == bool
    axes = [axis for axis, size in enumerate(draws.shape) if size >= (2 if mask else 4)]
    for axis in axes:
        share = delta / len(axes)
        if mask:
            agree, pairs = adjacent_agreement(draws, axis)
            q = 1.0 - p
            require_count(
                agree,
                pairs,
                q**2 + (1 - q) ** 2,
                delta=share,
                what=f"{what}: fraction of neighbouring {names(axis)} (axis {axis}) that are "
                "both kept or both dropped",
                hints={1.0: hints(axis)},
            )
            continue
        moved = np.moveaxis(draws, axis, 0)
        a, b = moved[0 : moved.shape[0] - 1 : 2].ravel(), moved[1 : moved.shape[0] : 2].ravel()
        low_m, high_m = chi_square_interval(a.size, share / 2)
        low_d, high_d = chi_square_interval(a.size - 1, share / 2)
        low, high = low_m / high_d, high_m / low_d
        ratio = float(np.mean((a - b) ** 2) / np.var(a + b, ddof=1))
        if low <= ratio <= high:  # NaN fails too
            continue
        hint = hints(axis) if ratio < low else f"neighbours along axis {axis} move oppositely"
        raise CheckFailure(
            f"{what}: Var(a - b) / Var(a + b) for neighbours a, b along axis {axis} is "
            f"{ratio:.3f}, expected 1 for independent noise (a correct solution leaves "
            f"[{low:.3f}, {high:.3f}] with probability < {share:.0e}): {hint}"
        )


def require_reproducible(
    read: Callable[[np.random.Generator], np.ndarray],
    seed: int,
    *,
    what: str,
    part: Callable[[np.ndarray], np.ndarray] = lambda draws: draws,
) -> None:
    """``read(rng)`` depends on rng alone: equal for two generators with one seed, new for two
    calls with one rng (compared on ``part`` of it).

    Two independent draws as the checks make them are equal with probability < 1e-80: masks hold
    at least 2000 draws with q(1 - q) >= 0.0475, (1 - 2 q (1 - q))**2000 < 1e-80; continuous
    noise, 0. A caller with fewer draws states its own bound.
    """
    require(
        np.array_equal(read(np.random.default_rng(seed)), read(np.random.default_rng(seed))),
        f"{what} gave different results for two generators with the same seed: take every "
        "random number from the rng argument (not np.random.* or a new default_rng())",
    )
    rng = np.random.default_rng(seed)
    require(
        not np.array_equal(part(read(rng)), part(read(rng))),
        f"two calls of {what} with the same rng gave the same result: draw from rng, do not "
        "reseed it",
    )


# Subjects -----------------------------------------------------------------------------------------


def _describe(name: str, value: Any) -> str:
    """``name=value`` for a call in a message: arrays by dtype, a generator as rng."""
    if isinstance(value, np.ndarray):
        return f"{name}=<{value.dtype} {name}>"
    if isinstance(value, np.random.Generator):
        return f"{name}=rng"
    return f"{name}={value!r}"


class Randomness:
    """Base of the subjects whose output holds random draws: the ``random`` property.

    Subclasses give ``read`` (the draws behind one call with a given rng, and the call as text),
    may widen ``spread`` (the draws, one per drawn entry, for the independence test), and word
    messages with ``unit`` (what one draw belongs to), ``axis_names`` (plural name of an axis's
    entries) and ``shared_hints`` (the mistake behind draws shared along an axis).
    """

    unit: str
    axis_names: Mapping[int, str]
    shared_hints: Mapping[int, str]

    def read(
        self, fns: Functions, shape: tuple[int, ...], p: float, rng: np.random.Generator, **options
    ) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def spread(self, draws: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return draws

    def name(self, axis: int) -> str:
        return self.axis_names.get(axis, "entries")

    def hint(self, axis: int) -> str:
        if axis in self.shared_hints:
            return self.shared_hints[axis]
        return (
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
        """The ``tests`` (see the module docstring) on draws at ``p``, or at each of ``p_values``
        (the generator of the i-th rate is seeded ``seed + i``)."""
        shape, rates = tuple(shape), (p,) if p is not None else tuple(p_values)
        laws = [test for test in tests if test in ("rate", "mean", "variance", "independent")]
        delta = FALSE_FAIL / max(1, len(laws) * len(rates))  # union bound over tests and rates
        options["scale"] = "scale" in tests
        for i, rate in enumerate(rates):
            draws, what = self.read(fns, shape, rate, np.random.default_rng(seed + i), **options)
            for test in laws:
                if test == "rate":
                    require_rate(draws, rate, delta=delta, what=what)
                elif test == "mean":
                    require_mean_one(draws, rate, delta=delta, what=what)
                elif test == "variance":
                    require_variance(draws, rate, delta=delta, what=what)
                else:
                    require_independent(
                        self.spread(draws, shape),
                        rate,
                        delta=delta,
                        what=what,
                        names=self.name,
                        hints=self.hint,
                    )
        if "extremes" in tests:
            # A mask with `rng.random() >= p` is exact at p = 0 and 1; `> p` fails at p = 0 with
            # probability 2**-53 per draw, n * 2**-53 < 1e-9 for the sizes used here. Noise at
            # p = 0 is 1 + 0 * z = 1 exactly.
            self._require_extremes(fns, shape, seed, **options)
        if "reproducible" in tests:
            require_reproducible(
                lambda rng: self.read(fns, shape, rates[0], rng, **options)[0],
                seed,
                what=self.read(fns, shape, rates[0], np.random.default_rng(seed), **options)[1],
            )

    def _require_extremes(self, fns: Functions, shape: tuple[int, ...], seed: int, **options):
        none, what = self.read(fns, shape, 0.0, np.random.default_rng(seed), **options)
        if none.dtype != bool:
            require(
                bool(np.all(close(none, np.ones_like(none)))),
                f"{what} must be 1 everywhere (no noise at p = 0), but its values range from "
                f"{none.min():.4g} to {none.max():.4g}",
            )
            return
        require(
            bool(np.all(none)),
            f"{what} must keep everything (p is the probability of dropping); if it kept "
            "nothing, keep and drop are swapped",
        )
        every, what = self.read(fns, shape, 1.0, np.random.default_rng(seed), **options)
        require(not np.any(every), f"{what} must drop everything")


@dataclass(frozen=True, eq=False)
class Draw(Randomness):
    """A student function ``function(shape, p, rng)`` returning a keep mask or, with ``noise``,
    multiplicative noise for activations of ``shape``.

    Attributes:
        function: its name in the notebook, e.g. "channel_mask".
        drawn: the axes with one draw per index, e.g. (0, 1) for (example, channel); the others
            share one draw and have size 1 in the mask. None: every axis is drawn.
        unit: what one draw belongs to, e.g. "(example, channel)".
        shared_over: what shares a draw, e.g. "spatial position".
        axis_names: plural name of each drawn axis, e.g. {0: "examples", 1: "channels"}.
        shared_hints: the mistake behind draws that agree along an axis (default: "the <axis
            name> share their draws").
        noise: True for noise (floats, full shape), False for a mask (0/1).
    """

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
        return (
            () if self.drawn is None else tuple(a for a in range(len(shape)) if a not in self.drawn)
        )

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The activations' sizes on the drawn axes, 1 on the shared ones."""
        shared = self.shared_axes(shape)
        return tuple(1 if axis in shared else size for axis, size in enumerate(shape))

    def call(
        self, fns: Functions, shape: tuple[int, ...], p: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, str]:
        """The student's result (a bool mask, or float noise of ``shape``) and the call as text."""
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
        if not broadcasts_within_rank(mask.shape, shape):
            raise CheckFailure(
                f"{what} has shape {mask.shape}, which does not broadcast against activations of "
                f"shape {shape}: return shape {self.mask_shape(shape)}, one draw per {self.unit}"
            )
        return mask == 1, what

    def read(
        self, fns: Functions, shape: tuple[int, ...], p: float, rng: np.random.Generator, **_: Any
    ) -> tuple[np.ndarray, str]:
        """The draws the result holds: its first entry along each shared axis."""
        drawn, what = self.call(fns, shape, p, rng)
        shared = self.shared_axes(shape)
        return drawn[
            tuple(slice(0, 1) if a in shared else slice(None) for a in range(len(shape)))
        ], what

    def spread(self, draws: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """One draw per drawn entry: a mask that holds fewer (shared by the batch) repeats them."""
        return np.broadcast_to(draws, self.mask_shape(shape))

    def values(self, fns: Functions, *, shape: Sequence[int], p: float, seed: int) -> None:
        """The result has the mask's shape and only 0/1 (noise: finite), and the extremes hold."""
        shape = tuple(shape)
        drawn, what = self.call(fns, shape, p, np.random.default_rng(seed))
        want = self.mask_shape(shape)
        if drawn.shape != want:
            mistakes = self._shape_mistakes(drawn.shape, shape) or [f"one draw per {self.unit}"]
            raise CheckFailure(
                f"{what} has shape {drawn.shape}, but for activations of shape {shape} it must "
                f"have shape {want}: {'; '.join(mistakes)}"
            )
        self._require_extremes(fns, shape, seed)

    def _shape_mistakes(self, got: tuple[int, ...], shape: tuple[int, ...]) -> list[str]:
        shared = self.shared_axes(shape)
        if shared and got == tuple(np.delete(shape, shared)):
            return ["keep the size-1 axes (np.reshape or keepdims) so the mask broadcasts"]
        if len(got) != len(shape):
            return [f"the mask must have the activations' rank {len(shape)}"]
        mistakes = [
            f"it has one entry for all {self.name(axis)} (axis {axis}): each of them needs its "
            "own draw"
            for axis in range(len(shape))
            if axis not in shared and got[axis] == 1 and shape[axis] > 1
        ]
        separate = [str(a) for a in shared if got[a] == shape[a] > 1]
        if separate:
            mistakes.append(
                f"it has a separate entry per {self.shared_over} (axis {', '.join(separate)}): "
                f"draw once per {self.unit} and let that draw broadcast over every "
                f"{self.shared_over}"
            )
        return mistakes

    def shared(self, fns: Functions, *, shape: Sequence[int], p: float, seed: int) -> None:
        """Exact: every draw holds at every position of the shared axes."""
        shape = tuple(shape)
        drawn, what = self.call(fns, shape, p, np.random.default_rng(seed))
        full, axes = np.broadcast_to(drawn, shape), self.shared_axes(shape)
        first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(len(shape)))
        varying = np.any(full != full[first], axis=axes)
        require(
            not varying.any(),
            f"{what}: {varying.mean():.0%} of the {self.unit} pairs are kept at some "
            f"{self.shared_over}s and dropped at others, but one draw must hold for every "
            f"{self.shared_over}: draw an array of shape {self.mask_shape(shape)}, not one "
            "number per element",
        )


class Expected(NamedTuple):
    """What a forward pass must return: the value, the rule as text, and known mistakes."""

    value: np.ndarray
    rule: str
    explains: Sequence[Explain] = ()


@dataclass(frozen=True, eq=False)
class Layer(Randomness):
    """A forward pass ``function(*inputs, p, *, train, rng=None, <inject>=None, **options)`` that
    returns ``(out, cache)``; a subclass gives the formulas (``train_output``, ``eval_output``)
    and how draws are read back from a pass (``draws``). ``inject`` names the keyword that takes
    the randomness (a mask, noise); the other attributes word messages as in ``Draw``.
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
        """Inputs for exact checks: activations of ``shape``, with exact zeros."""
        return (activations(rng, shape, dtype),)

    def randomness(self, rng: np.random.Generator, inputs: Inputs, p: float) -> np.ndarray:
        """The randomness a check injects: here a bool keep mask of x's shape."""
        return rng.random(inputs[0].shape) >= p

    def out_shape(self, inputs: Inputs) -> tuple[int, ...]:
        return inputs[0].shape

    def train_output(self, inputs: Inputs, r: np.ndarray, p: float, **options: Any) -> Expected:
        raise NotImplementedError

    def eval_output(self, inputs: Inputs, p: float, **options: Any) -> Expected:
        raise NotImplementedError

    def random_inputs(self, shape: tuple[int, ...], dtype: str) -> Inputs:
        """Inputs of a pass whose draws ``draws`` reads back from the output."""
        return (positive_inputs(shape, dtype),)

    def draws(
        self, out: np.ndarray, inputs: Inputs, p: float, what: str, scale: bool, **options: Any
    ) -> np.ndarray:
        """The draws behind the training output ``out`` (CheckFailure if it cannot be one); with
        ``scale``, after checking that what is kept has the right scale."""
        raise NotImplementedError

    def call(
        self, forward: BoundFunction, inputs: Inputs, p: float, **kwargs: Any
    ) -> tuple[np.ndarray, Any, str]:
        """``(out, cache, call as text)`` of a pure call of the student's forward pass."""
        arguments = ", ".join(
            [*self.inputs, f"p={p:g}"] + [_describe(*kv) for kv in kwargs.items()]
        )
        what = f"{self.function}({arguments})"
        result = call_pure(
            forward, dict(zip(self.inputs, inputs, strict=True)), p, what=what, **kwargs
        )
        out, cache = unpack(result, what=what, names=("out", "cache"))
        return as_array(out, what=f"out of {what}", shape=self.out_shape(inputs)), cache, what

    def read(
        self,
        fns: Functions,
        shape: tuple[int, ...],
        p: float,
        rng: np.random.Generator,
        *,
        dtype: str = "float64",
        scale: bool = False,
        **options: Any,
    ) -> tuple[np.ndarray, str]:
        inputs = self.random_inputs(shape, dtype)
        out, _, what = self.call(fns[self.function], inputs, p, train=True, rng=rng, **options)
        return self.draws(out, inputs, p, what, scale=scale, **options), what

    def injected(
        self,
        fns: Functions,
        *,
        shape: Sequence[int],
        p_values: Sequence[float],
        seed: int,
        dtype: str = "float64",
        **options: Any,
    ) -> None:
        """Training with the randomness injected (a mask as bool and as ``dtype``): exact output."""
        rng = np.random.default_rng(seed)
        for p in p_values:
            inputs = self.make_inputs(rng, tuple(shape), dtype)
            r = self.randomness(rng, inputs, p)
            want = self.train_output(_float64(inputs), r, p, **options)
            for given in (r, r.astype(dtype)) if r.dtype == bool else (r,):
                kwargs = {"train": True, self.inject: given, **options}
                out, _, what = self.call(fns[self.function], inputs, p, **kwargs)
                require_close(
                    out, want.value, what=f"out of {what}", rule=want.rule, explains=want.explains
                )

    def evaluation(
        self,
        fns: Functions,
        *,
        shape: Sequence[int],
        p_values: Sequence[float],
        seed: int,
        dtype: str = "float64",
        given: bool = True,
        **options: Any,
    ) -> None:
        """Evaluation: exact output; with ``given``, also when an rng and the randomness (a mask,
        noise) are passed, which evaluation must ignore."""
        rng = np.random.default_rng(seed)
        for p in p_values:
            inputs = self.make_inputs(rng, tuple(shape), dtype)
            r = self.randomness(rng, inputs, p)
            want = self.eval_output(_float64(inputs), p, **options)
            extras = [{}, {"rng": np.random.default_rng(seed)}, {self.inject: r}] if given else [{}]
            for extra in extras:
                kwargs = {"train": False, **extra, **options}
                out, _, what = self.call(fns[self.function], inputs, p, **kwargs)
                require_close(
                    out, want.value, what=f"out of {what}", rule=want.rule, explains=want.explains
                )


def _float64(inputs: Inputs) -> Inputs:
    return tuple(array.astype(np.float64) for array in inputs)


@dataclass(frozen=True, eq=False)
class Backprop:
    """The backward pass ``function(dout, cache)`` of ``layer``, returning the gradients named in
    ``gradients`` (a tuple, or the array alone for one), in the order of ``layer.inputs``.

    Subclasses may give ``true_gradient`` (a right gradient passes whatever the forward pass does)
    and ``explain`` (the hints for wrong gradients); ``formulas`` states each gradient's rule.
    """

    layer: Layer
    function: str
    gradients: tuple[str, ...] = ("x",)
    formulas: Mapping[str, str] = field(default_factory=dict)

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.layer.function, self.function)

    def true_gradient(
        self, wrt: str, inputs: Inputs, dout: np.ndarray, r: np.ndarray | None, p: float, **options
    ) -> np.ndarray | None:
        """d<wrt> of a correct layer with injected ``r`` (None: evaluation), if known."""
        return None

    def explain(
        self, wrt: str, expected: np.ndarray, inputs: Inputs, dout: np.ndarray, r: np.ndarray | None
    ) -> list[Explain]:
        """Hints for a wrong d<wrt>; ``expected`` is the gradient of the student's forward pass."""
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
        rounding (float32 too). With ``p_values``: a given mask per rate, then evaluation; with
        ``p``: a pass drawing from a seeded rng (re-seeded for every call, so the forward pass
        must be reproducible), compared up to a factor if ``up_to_factor``.
        """
        rng = np.random.default_rng(seed)
        cases = [(q, True) for q in p_values] + [(p_values[0], False)] if p is None else [(p, None)]
        for rate, train in cases:
            inputs = self.layer.make_inputs(rng, tuple(shape), dtype)
            r = self.layer.randomness(rng, inputs, rate) if train else None
            dout = activations(rng, self.layer.out_shape(inputs), zeros=0.0)
            arguments = _forward_arguments(self.layer.inject, train, r, seed + 1, options)
            self._compare(fns, wrt, inputs, rate, r, dout, arguments, up_to_factor, options)

    def _compare(
        self,
        fns: Functions,
        wrt: str,
        inputs: Inputs,
        p: float,
        r: np.ndarray | None,
        dout: np.ndarray,
        arguments: Callable[[], dict[str, Any]],
        up_to_factor: bool,
        options: Mapping[str, Any],
    ) -> None:
        """One case of ``gradient``: forward, backward, then the numerical Jacobian if needed."""
        layer, forward = self.layer, fns[self.layer.function]
        position = layer.inputs.index(wrt)
        out, cache, what = layer.call(forward, inputs, p, **arguments())
        if "rng" in arguments():
            require(
                np.array_equal(out, layer.call(forward, inputs, p, **arguments())[0]),
                f"{what} differs between two generators with the same seed: draw from the rng "
                "argument (this check needs it to reproduce your forward pass)",
            )
        call = f"{self.function}(dout, cache) after {what}"
        result = fns[self.function](dout.copy(), cache)
        names = tuple(f"d{name}" for name in self.gradients)
        grads = (result,) if len(names) == 1 else unpack(result, what=call, names=names)
        grad = grads[self.gradients.index(wrt)]
        actual = as_array(grad, what=f"d{wrt} of {call}", shape=inputs[position].shape)
        if "rng" not in arguments():
            truth = self.true_gradient(wrt, _float64(inputs), dout, r, p, **options)
            if truth is not None and np.all(close(actual, truth)):
                return  # right, whatever the forward pass does

        def moved(z: np.ndarray) -> np.ndarray:
            changed = (*inputs[:position], z, *inputs[position + 1 :])
            return layer.call(forward, changed, p, **arguments())[0]

        expected = numerical_gradient(moved, inputs[position].copy(), dout, h=1.0)
        if up_to_factor and proportional(actual, expected) is not None:
            return
        explains = [
            _not_finite(inputs[position], wrt),
            *self.explain(wrt, expected, _float64(inputs), dout, r),
        ]
        rule = f"the gradient of your forward pass ({self.formulas.get(wrt, 'd out / d ' + wrt)})"
        if up_to_factor:
            rule += ", at least up to a factor"
        else:
            explains.append(scaled(expected, _times_own_gradient))
        if "rng" in arguments():
            explains.append(lambda _: _FRESH_DRAW)
        require_close(actual, expected, what=f"d{wrt} of {call}", rule=rule, explains=explains)


def _forward_arguments(
    inject: str, train: bool | None, r: np.ndarray | None, seed: int, options: Mapping[str, Any]
) -> Callable[[], dict[str, Any]]:
    """The keywords of each forward call of a gradient case: ``r`` injected in training, nothing
    at evaluation, and a generator seeded ``seed`` afresh for every call when ``train`` is None."""
    if train is None:
        return lambda: {"train": True, "rng": np.random.default_rng(seed), **options}
    fixed = {"train": train, **({inject: r} if train else {}), **options}
    return lambda: fixed


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
        where = ""
        if grad.shape == values.shape:
            where = f", {np.count_nonzero(bad & (values == 0))} of them where {name} == 0"
        return (
            f"{np.count_nonzero(bad)} entries are NaN or infinite{where} (an inactive ReLU unit "
            f"gives {name} == 0): do not divide by {name}; use what the forward pass stored in "
            "the cache (the mask, the scale)"
        )

    return explain
