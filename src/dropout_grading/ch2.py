"""Checks for the graded exercise of chapter 2, ``ch2_inverted_scaling/inverted_scaling.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``keep_mask(shape, p, rng)``: a 0/1 (or bool) array, 1 with probability ``1 - p``;
* ``dropout_forward(x, p, *, train, rng=None, mask=None, scaling="inverted") -> (out, cache)``;
* ``dropout_backward(dout, cache) -> dx`` (``cache`` is whatever their forward returned);
* ``train_output_moments(forward, p_values, n_units, scaling, rng) -> (means, variances)``: the
  mean and variance of one training pass of ``forward`` on ``np.ones(n_units)`` for each p.

How the checks stay fair: where the caller can inject the mask (``mask=``) the output is checked
exactly (up to float32 rounding); where the student draws the randomness, only properties of the
draw are checked, each with a Bernstein bound (``bounds.binomial_tolerance``) at a total false-fail
probability below ``FALSE_FAIL`` = 1e-9 per check, written beside each test. No check compares
random draws with the reference's draws, so loops or vectorised code, ``rng.random() >= p``,
``rng.binomial`` or ``rng.uniform``, bool or float masks, float32 or float64 all pass. Seeds are
fixed, so grades are deterministic. Backward checks compare the gradient with the student's own
forward output (``dx == dout * out / x``, as the forward is linear in ``x`` for a fixed mask), so a
mistake in the forward pass does not cost the backward cells too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from dropout_course import dropout as _reference_dropout  # noqa: F401  (captured by seal)
from dropout_course import masks as _reference_masks  # noqa: F401  (captured by seal)
from dropout_course._validate import SCALINGS
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance

from .framework import Assignment, BoundFunction, CheckFailure
from .properties import (
    adjacent_agreement,
    as_array,
    close,
    name_factor,
    nonzero_inputs,
    require,
    require_count,
    scale_factors,
    unpack_pair,
)

ASSIGNMENT = Assignment(
    "ch2_inverted_scaling",
    notebook="inverted_scaling",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
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


_FACTOR_HINTS = {
    "1/(1-p)": "that is the inverted training factor",
    "1": "the kept units are not rescaled",
    "1/p": "did you divide by p instead of by 1 - p? p is the probability of DROPPING a unit",
    "p": "did you multiply by p instead of dividing by 1 - p?",
    "1-p": "did you multiply by 1 - p (the classic evaluation factor) instead of dividing by it?",
}


def _require_scaled(
    out: np.ndarray,
    x: np.ndarray,
    keep: np.ndarray,
    factor: float,
    *,
    p: float,
    what: str,
    rule: str,
    zero_hint: str,
) -> None:
    """Check ``out == x * keep * factor`` and name the mistake when it is not.

    ``x`` has no zeros; ``rule`` is the expected formula as text, ``zero_hint`` explains units
    that come out 0 although they are kept.
    """
    if np.all(close(out, x * keep * factor)):
        return
    dropped_alive = ~keep & ~close(out, np.zeros_like(out))
    if dropped_alive.any():
        if keep.any() and np.all(close(out[keep], np.zeros(int(keep.sum())))):
            raise CheckFailure(
                f"{what}: units the mask keeps come out 0 and units it drops pass through: keep "
                "and drop are swapped (mask entries 1/True mark the units to KEEP)"
            )
        raise CheckFailure(f"{what}: units the mask drops (mask == 0) must come out as 0")
    ratios = out[keep] / x[keep]
    zeros = np.isclose(ratios, 0.0)
    if zeros.any():
        raise CheckFailure(
            f"{what}: {zeros.mean():.0%} of the units that must be kept come out as 0: {zero_hint}"
        )
    low, high = float(np.min(ratios)), float(np.max(ratios))
    if high - low > 1e-4 * max(abs(high), 1.0):
        raise CheckFailure(
            f"{what}: kept units are multiplied by factors from {low:.4g} to {high:.4g}; "
            f"they must all become {rule}"
        )
    name = name_factor(low, scale_factors(p))
    hint = f": {_FACTOR_HINTS[name]}" if name in _FACTOR_HINTS else ""
    raise CheckFailure(
        f"{what}: kept units come out multiplied by {low:.4g}, but must become {rule} "
        f"(x times {factor:.4g} for p = {p:g}){hint}"
    )


def _call_forward(
    dropout_forward: BoundFunction, x: np.ndarray, p: float, **kwargs: Any
) -> tuple[np.ndarray, Any]:
    """Call the student's forward on a copy of ``x``; check x is untouched and out's shape."""
    x_given = x.copy()
    result = dropout_forward(x_given, p, **kwargs)
    call = f"dropout_forward(x, p={p:g}, {', '.join(f'{k}=...' for k in kwargs)})"
    out, cache = unpack_pair(result, what=call, names=("out", "cache"))
    require(
        np.array_equal(x_given, x),
        f"{call} changed its input x in place (e.g. `x *= mask`): compute a new array, the "
        "caller still needs x",
    )
    return as_array(out, what=f"out of {call}", shape=x.shape), cache


def _keep_mask_array(keep_mask: BoundFunction, shape: tuple[int, ...], p: float, rng) -> np.ndarray:
    """The student's mask as a bool array, after checking its shape and that it holds only 0/1."""
    call = f"keep_mask({shape}, p={p:g}, rng)"
    mask = as_array(keep_mask(shape, p, rng), what=f"the result of {call}", shape=shape)
    require(
        bool(np.all((mask == 0) | (mask == 1))),
        f"{call} returned values other than 0 and 1: a keep mask only marks units (1/True keep, "
        "0/False drop); the 1/(1-p) scaling belongs in dropout_forward",
    )
    return mask == 1


@ASSIGNMENT.register("keep_mask")
def keep_mask_values(keep_mask, *, shape=(100, 40), p=0.3, seed=0) -> None:
    """keep_mask returns a 0/1 mask of the requested shape; p = 0 keeps all, p = 1 drops all."""
    _keep_mask_array(keep_mask, shape, p, np.random.default_rng(seed))
    # p = 0: `rng.random() >= 0` always holds; `rng.random() > 0` fails with probability 2**-53
    # per unit, n * 2**-53 < 1e-9 for the sizes used here.
    require(
        bool(np.all(_keep_mask_array(keep_mask, shape, 0.0, np.random.default_rng(seed)))),
        f"keep_mask({shape}, p=0, rng) must keep every unit (p is the probability of dropping); "
        "if it kept none, keep and drop are swapped",
    )
    require(
        not np.any(_keep_mask_array(keep_mask, shape, 1.0, np.random.default_rng(seed))),
        f"keep_mask({shape}, p=1, rng) must drop every unit",
    )


@ASSIGNMENT.register("keep_mask")
def keep_mask_rate(keep_mask, *, shape=(40, 100), p_values=(0.2, 0.7), seed=1) -> None:
    """keep_mask keeps each unit with probability 1 - p, reproducibly from rng."""
    delta = FALSE_FAIL / len(p_values)  # one Bernstein bound per p (union bound)
    n = int(np.prod(shape))
    for i, p in enumerate(p_values):
        keep = _keep_mask_array(keep_mask, shape, p, np.random.default_rng(seed + i))
        require_count(
            int(keep.sum()),
            n,
            1.0 - p,
            delta=delta,
            what=f"fraction of units keep_mask keeps at p = {p:g}",
            hints={p: "that is p: keep and drop are swapped (keep with probability 1 - p)"},
        )
    p = p_values[0]
    first = _keep_mask_array(keep_mask, shape, p, np.random.default_rng(seed))
    again = _keep_mask_array(keep_mask, shape, p, np.random.default_rng(seed))
    require(
        np.array_equal(first, again),
        "keep_mask gave two different masks for two generators with the same seed: draw every "
        "random number from the rng argument (not np.random.* or a new default_rng())",
    )
    rng = np.random.default_rng(seed)
    # Two independent masks agree on all n units with probability (q^2 + (1-q)^2)^n < 1e-100.
    require(
        not np.array_equal(
            _keep_mask_array(keep_mask, shape, p, rng), _keep_mask_array(keep_mask, shape, p, rng)
        ),
        "two calls of keep_mask with the same rng returned the same mask: draw from rng, do "
        "not reseed it",
    )


_SHARED_HINTS = {
    0: "the mask is shared by the examples of the batch (axis 0): draw one number per unit, "
    "e.g. rng.random(shape), not rng.random(shape[1:])",
}


def _require_independent(
    keep: np.ndarray, q: float, *, axes: Sequence[int], delta: float, what: str
) -> None:
    """Disjoint neighbours along each axis agree as often as independent draws do."""
    agree_rate = q**2 + (1 - q) ** 2
    for axis in axes:
        agree, pairs = adjacent_agreement(keep, axis)
        hint = _SHARED_HINTS.get(axis, f"units along axis {axis} share their draws")
        require_count(
            agree,
            pairs,
            agree_rate,
            delta=delta,
            what=f"{what}: fraction of neighbours along axis {axis} that are both kept or both "
            "dropped",
            hints={1.0: hint},
        )


@ASSIGNMENT.register("keep_mask")
def keep_mask_independent(keep_mask, *, shape=(200, 40), p=0.5, seed=2) -> None:
    """keep_mask draws every unit independently (no mask shared across the batch or features)."""
    keep = _keep_mask_array(keep_mask, shape, p, np.random.default_rng(seed))
    axes = [axis for axis, size in enumerate(shape) if size >= 2]
    # One Bernstein bound per axis on Binomial(pairs, q^2 + (1 - q)^2) (union bound).
    _require_independent(keep, 1 - p, axes=axes, delta=FALSE_FAIL / len(axes), what="keep_mask")


@ASSIGNMENT.register("dropout_forward")
def forward_inverted_train(
    dropout_forward, *, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=3
) -> None:
    """Inverted training pass with a given mask: out = x * mask / (1 - p), x left untouched."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, dtype)
        keep = rng.random(shape) >= p
        for mask in (keep, keep.astype(dtype)):
            out, _ = _call_forward(dropout_forward, x, p, train=True, mask=mask)
            _require_scaled(
                out,
                x.astype(np.float64),
                keep,
                1.0 / (1.0 - p),
                p=p,
                what=f"dropout_forward(train=True, mask={mask.dtype} mask, p={p:g})",
                rule="x * mask / (1 - p)",
                zero_hint="use the mask you are given (mask=...) instead of drawing one",
            )


@ASSIGNMENT.register("dropout_forward")
def forward_inverted_eval(
    dropout_forward, *, shape=(40, 30), p_values=(0.2, 0.6), dtype="float64", seed=4
) -> None:
    """Inverted evaluation pass: out = x, with no mask and no scaling (even when rng is given)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, dtype)
        for kwargs in ({}, {"rng": np.random.default_rng(seed)}):
            out, _ = _call_forward(dropout_forward, x, p, train=False, **kwargs)
            _require_scaled(
                out,
                x.astype(np.float64),
                np.ones(shape, dtype=bool),
                1.0,
                p=p,
                what=f"dropout_forward(train=False, p={p:g}{', rng=rng' if kwargs else ''})",
                rule="x unchanged (inverted dropout scales during training only)",
                zero_hint="nothing is dropped at evaluation (train=False)",
            )


def _require_random_pass(
    out: np.ndarray,
    x: np.ndarray,
    p: float,
    factor: float,
    *,
    rule: str,
    what: str,
    delta: float = FALSE_FAIL,
) -> None:
    """Each unit of a random training pass is 0 or x * factor, dropped at rate p, independently.

    The dropped count and the agreement of neighbours along axis 0 (examples must not share the
    mask) each get a Bernstein bound at ``delta / 2``.
    """
    ratios = out / x
    keep = ~np.isclose(ratios, 0.0)
    _require_scaled(
        out, x, keep, factor, p=p, what=what, rule=rule, zero_hint="(none: 0 means dropped)"
    )
    flat = keep.reshape(keep.shape[0], -1)
    require_count(
        int(np.count_nonzero(~flat)),
        flat.size,
        p,
        delta=delta / 2,
        what=f"{what}: fraction of units dropped",
        hints={1 - p: "that is 1 - p: keep and drop are swapped (drop with probability p)"},
    )
    _require_independent(flat, 1 - p, axes=[0], delta=delta / 2, what=what)


@ASSIGNMENT.register("dropout_forward")
def forward_random(dropout_forward, *, shape=(100, 40), p=0.3, dtype="float64", seed=5) -> None:
    """Inverted training pass drawing its own mask from rng: right rate, scale, independence."""
    x = np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(dtype)
    x64 = x.astype(np.float64)
    what = f"dropout_forward(train=True, rng=rng, p={p:g})"
    out, _ = _call_forward(dropout_forward, x, p, train=True, rng=np.random.default_rng(seed + 1))
    _require_random_pass(out, x64, p, 1.0 / (1.0 - p), rule="0 or x / (1 - p)", what=what)
    again, _ = _call_forward(dropout_forward, x, p, train=True, rng=np.random.default_rng(seed + 1))
    require(
        np.array_equal(out, again),
        f"{what} differs between two generators with the same seed: draw the mask from the rng "
        "argument",
    )
    rng = np.random.default_rng(seed + 2)
    first, _ = _call_forward(dropout_forward, x, p, train=True, rng=rng)
    second, _ = _call_forward(dropout_forward, x, p, train=True, rng=rng)
    # Two independent passes agree on all n units with probability (1 - 2p(1-p))^n < 1e-100.
    require(
        not np.array_equal(first, second),
        f"two calls of {what} with one rng dropped the same units: draw a new mask each call",
    )


@ASSIGNMENT.register("dropout_forward")
def forward_classic(
    dropout_forward, *, shape=(40, 30), p_values=(0.2, 0.6), path="mask", seed=6
) -> None:
    """Classic scaling: train out = x * mask (no scaling), evaluation out = x * (1 - p).

    ``path="rng"`` checks a classic training pass that draws its own mask instead.
    """
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, "float64")
        if path == "rng":
            what = f"dropout_forward(train=True, rng=rng, scaling='classic', p={p:g})"
            out, _ = _call_forward(
                dropout_forward,
                x,
                p,
                train=True,
                rng=np.random.default_rng(seed),
                scaling="classic",
            )
            _require_random_pass(
                out,
                x,
                p,
                1.0,
                rule="0 or x (classic dropout scales at evaluation)",
                what=what,
                delta=FALSE_FAIL / len(p_values),  # union bound over the rates
            )
            continue
        keep = rng.random(shape) >= p
        out, _ = _call_forward(dropout_forward, x, p, train=True, mask=keep, scaling="classic")
        _require_scaled(
            out,
            x,
            keep,
            1.0,
            p=p,
            what=f"dropout_forward(train=True, mask=mask, scaling='classic', p={p:g})",
            rule="x * mask (classic dropout does not scale during training)",
            zero_hint="use the mask you are given (mask=...)",
        )
        out, _ = _call_forward(dropout_forward, x, p, train=False, scaling="classic")
        _require_scaled(
            out,
            x,
            np.ones(shape, dtype=bool),
            1.0 - p,
            p=p,
            what=f"dropout_forward(train=False, scaling='classic', p={p:g})",
            rule="x * (1 - p) (classic dropout scales at evaluation)",
            zero_hint="nothing is dropped at evaluation (train=False)",
        )


def _require_gradient(
    dropout_backward: BoundFunction, cache: Any, out: np.ndarray, x: np.ndarray, *, what: str
) -> None:
    """``dropout_backward(dout, cache) == dout * out / x``: the Jacobian of the student's forward.

    For a fixed mask the forward pass is ``out = x * m * s``, so d out / d x = m * s = out / x.
    """
    dout = nonzero_inputs(np.random.default_rng(99), x.shape, "float64")
    dx = as_array(
        dropout_backward(dout.copy(), cache),
        what=f"dx of dropout_backward after {what}",
        shape=x.shape,
    )
    expected = dout * out / x
    if np.all(close(dx, expected)):
        return
    passed = ~np.isclose(out, 0.0)
    flows = ~np.isclose(dx, 0.0)
    if np.any(flows != passed):
        raise CheckFailure(
            f"dropout_backward after {what}: the gradient flows through different units than the "
            f"forward pass kept ({np.mean(flows != passed):.0%} differ): reuse the mask stored in "
            "the cache, do not draw a new one"
        )
    forward_scale = float(np.median(out[passed] / x[passed]))
    backward_scale = float(np.median(dx[passed] / dout[passed]))
    hint = "dx must be dout * mask times the factor the forward pass applied"
    if np.isclose(backward_scale, 1.0):
        hint = "the gradient is masked but not scaled: " + hint
    raise CheckFailure(
        f"dropout_backward after {what}: kept units' gradient is multiplied by "
        f"{backward_scale:.4g}, but the forward pass multiplied them by {forward_scale:.4g}: {hint}"
    )


@ASSIGNMENT.register("dropout_forward", "dropout_backward")
def backward_with_mask(
    dropout_forward,
    dropout_backward,
    *,
    shape=(40, 30),
    p_values=(0.2, 0.6),
    scaling="inverted",
    seed=7,
) -> None:
    """dropout_backward returns dout * mask * scale, in training and at evaluation (given mask)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        x = nonzero_inputs(rng, shape, "float64")
        keep = rng.random(shape) >= p
        for train in (True, False):
            kwargs = {"mask": keep} if train else {}
            out, cache = _call_forward(
                dropout_forward, x, p, train=train, scaling=scaling, **kwargs
            )
            what = f"dropout_forward(train={train}, p={p:g}, scaling={scaling!r})"
            _require_gradient(dropout_backward, cache, out, x, what=what)


@ASSIGNMENT.register("dropout_forward", "dropout_backward")
def backward_same_mask(
    dropout_forward, dropout_backward, *, shape=(100, 40), p=0.4, scaling="inverted", seed=8
) -> None:
    """dropout_backward reuses the forward pass's own random mask (drawn from rng)."""
    x = nonzero_inputs(np.random.default_rng(seed), shape, "float64")
    out, cache = _call_forward(
        dropout_forward, x, p, train=True, rng=np.random.default_rng(seed + 1), scaling=scaling
    )
    what = f"dropout_forward(train=True, rng=rng, p={p:g}, scaling={scaling!r})"
    _require_gradient(dropout_backward, cache, out, x, what=what)


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


_FORWARDS = {
    "trusted": trusted_forward,
    "doubled": functools.partial(trusted_forward, gain=2.0),
}


@ASSIGNMENT.register("train_output_moments")
def experiment_moments(
    train_output_moments,
    *,
    p_values=(0.0, 0.2, 0.5, 0.8),
    n_units=5_000,
    forward="trusted",
    seed=9,
) -> None:
    """train_output_moments measures the mean and variance of the forward pass it is given."""
    gain = 2.0 if forward == "doubled" else 1.0
    rng = np.random.default_rng(seed)
    # Per (scaling, p), the pass keeps K ~ Binomial(n, q) units of ones: the output mean is
    # g s K / n and the variance (ddof 0) g^2 s^2 k(1 - k) with k = K / n, s the train factor and
    # g the gain. |K - n q| < t (Bernstein, FALSE_FAIL / (2 len(p))) gives |mean error| < g s t / n
    # and |variance error| < g^2 s^2 (t / n + 1 / (4 (n - 1))) (the last term allows ddof = 1).
    delta = FALSE_FAIL / (2 * len(p_values))
    for scaling in SCALINGS:
        result = train_output_moments(_FORWARDS[forward], list(p_values), n_units, scaling, rng)
        call = f"train_output_moments(forward, {list(p_values)}, {n_units}, {scaling!r}, rng)"
        means, variances = unpack_pair(result, what=call, names=("means", "variances"))
        means = as_array(means, what=f"means from {call}", shape=(len(p_values),))
        variances = as_array(variances, what=f"variances from {call}", shape=(len(p_values),))
        for p, mean, variance in zip(p_values, means, variances, strict=True):
            q = 1.0 - p
            s = 1.0 if scaling == "classic" else 1.0 / q
            t = binomial_tolerance(n_units, q, delta) / n_units
            want_mean, want_var = gain * s * q, gain**2 * s**2 * q * (1 - q)
            mean_tol = gain * s * t + 1e-9
            var_tol = gain**2 * s**2 * (t + 1 / (4 * (n_units - 1))) + 1e-9
            where = f"{call} at p = {p:g}"
            if not abs(mean - want_mean) < mean_tol:  # NaN fails too
                hint = ""
                if gain != 1.0 and abs(mean - want_mean / gain) < mean_tol:
                    hint = ": measure the `forward` argument, not a formula or your own function"
                elif abs(mean - (1.0 if scaling == "classic" else q)) < mean_tol:
                    hint = ": pass `scaling` on to forward"
                raise CheckFailure(
                    f"{where}: mean {mean:.4f}, expected {want_mean:.4f} (+- {mean_tol:.4f}){hint}"
                )
            if not abs(variance - want_var) < var_tol:
                hint = ""
                if abs(variance**2 - want_var) < var_tol:
                    hint = ": that is the standard deviation; return the variance (its square)"
                raise CheckFailure(
                    f"{where}: variance {variance:.4f}, expected {want_var:.4f} "
                    f"(+- {var_tol:.4f}){hint}"
                )


ASSIGNMENT.seal()
