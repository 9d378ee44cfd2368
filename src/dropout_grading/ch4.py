"""Checks for the graded exercise of chapter 4, ``ch4_dropconnect/dropconnect.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``dropconnect_forward(x, W, b, p, *, train, rng=None, mask=None) -> (out, cache)``: one keep
  mask of W's shape per example (an (N, D, M) mask), inverted scaling, ``x @ W + b`` at evaluation;
* ``dropconnect_backward(dout, cache) -> (dx, dW, db)``;
* ``dropconnect_moments(x, W, b, p) -> (mean, var)``: the exact moments of each training-time
  pre-activation, ``x @ W + b`` and ``p / (1 - p) * (x**2) @ (W**2)``;
* ``moment_matching_predict(x, W, b, p, activation, *, rng, samples)``: the average of
  ``activation`` over ``samples`` Gaussian draws N(mean, var) per pre-activation.

How the checks stay fair: with an injected mask the forward pass is checked exactly (up to
float32 rounding). Where the student draws the masks, the check reads them back from the output:
with inputs ``x[n, d] = 2**d``, ``W = 1`` and ``b = 0``, output ``out[n, m] * (1 - p)`` is the
integer whose binary digits are the mask column ``K[n, :, m]``; only properties of those masks
are checked (rate, independence along each axis), with Bernstein bounds at a false-fail
probability below ``FALSE_FAIL`` = 1e-9 per check, written beside each test. Backward checks
compare each gradient with the central-difference gradient of the student's OWN forward pass with
the same mask (exact here, since the loss ``sum(dout * out)`` is linear in each of x, W and b), so
a mistake in the forward pass does not cost the backward cells too. The moment-matching check uses
the step activation ``1[u > 0]``, whose average over ``samples`` draws is a Binomial count with
mean ``Phi(mean / sqrt(var))``, and accepts the student's own moments as well as the exact ones.
No check compares random draws with the reference's: loops or vectorised code, bool or float
masks, ``rng.random`` or ``rng.binomial``, float32 or float64 all pass. Seeds are fixed, so grades
are deterministic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dropout_course import dropconnect as _reference_dropconnect  # noqa: F401  (captured by seal)
from dropout_course import dropout as _reference_dropout  # noqa: F401  (captured by seal)
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance

from .framework import Assignment, BoundFunction, CheckFailure
from .properties import (
    adjacent_agreement,
    as_array,
    close,
    name_factor,
    require,
    require_count,
    scale_factors,
    unpack_pair,
)

ASSIGNMENT = Assignment(
    "ch4_dropconnect",
    notebook="dropconnect",
    # The library's masks module stays allowed: the lesson is the (N, D, M) shape of the mask.
    forbidden_modules=(
        "dropout_course.dropconnect",
        "dropout_course.dropout",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check

Layer = tuple[np.ndarray, np.ndarray, np.ndarray]


def step(u: np.ndarray) -> np.ndarray:
    """The activation ``1[u > 0]`` (float64) that checks hand to ``moment_matching_predict``.

    Module-level and self-contained: the grader lets exactly this code run inside student code.
    """
    return np.greater(u, 0).astype(np.float64)


# Inputs and calls ---------------------------------------------------------------------------------


def _signed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with random signs and |value| in [0.5, 1.5]: no zeros, no +-1 everywhere."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.5, shape)


def _layer(rng: np.random.Generator, shape: tuple[int, int, int], dtype: str) -> Layer:
    """x (N, D), W (D, M), b (M,) of ``dtype`` with no zero entries, for ``shape = (N, D, M)``."""
    n, d, m = shape
    return tuple(_signed(rng, s).astype(dtype) for s in ((n, d), (d, m), (m,)))  # type: ignore


def _keep(rng: np.random.Generator, shape: tuple[int, int, int], p: float) -> np.ndarray:
    """A bool keep mask (N, D, M), each weight of each example kept with probability 1 - p."""
    return rng.random(shape) >= p


def _call_forward(
    forward: BoundFunction, layer: Layer, p: float, **kwargs: Any
) -> tuple[np.ndarray, Any]:
    """The student's ``(out, cache)`` on copies of the layer; x, W and b must stay untouched."""
    given = tuple(a.copy() for a in layer)
    call = f"dropconnect_forward(x, W, b, p={p:g}, {', '.join(f'{k}=...' for k in kwargs)})"
    out, cache = unpack_pair(forward(*given, p, **kwargs), what=call, names=("out", "cache"))
    for name, before, after in zip(("x", "W", "b"), layer, given, strict=True):
        require(
            np.array_equal(before, after),
            f"{call} changed its input {name} in place: compute new arrays, the caller still "
            f"needs {name}",
        )
    n, m = layer[0].shape[0], layer[1].shape[1]
    return as_array(out, what=f"out of {call}", shape=(n, m)), cache


def _masked_product(x: np.ndarray, W: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``x[n] @ (W * keep[n])`` for each example n: (N, M), float64, no scaling."""
    return np.einsum("nd,ndm->nm", x.astype(np.float64), W * keep.astype(np.float64))


def _proportional(actual: np.ndarray, basis: np.ndarray) -> float | None:
    """The factor c with ``actual == c * basis`` (up to float32 rounding), or None."""
    norm = float(np.sum(basis * basis))
    if norm == 0.0 or not np.all(np.isfinite(actual)):
        return None
    factor = float(np.sum(actual * basis)) / norm
    return factor if np.all(close(actual, factor * basis)) else None


_FACTOR_HINTS = {
    "1/(1-p)": "that is the inverted training factor",
    "1": "the kept weights are not rescaled: divide by 1 - p",
    "1/p": "did you divide by p instead of by 1 - p? p is the probability of DROPPING a weight",
    "p": "did you multiply by p instead of dividing by 1 - p?",
    "1-p": "did you multiply by 1 - p (the classic evaluation factor) instead of dividing by it?",
}


def _name_scale(factor: float, p: float) -> str:
    """``factor`` as text, with the mistake it suggests when it is a known one."""
    name = name_factor(factor, scale_factors(p))
    hint = f" ({name}: {_FACTOR_HINTS[name]})" if name in _FACTOR_HINTS else ""
    return f"{factor:.4g}{hint}"


def _worst(actual: np.ndarray, expected: np.ndarray) -> str:
    """The largest difference and where, for messages."""
    index = np.unravel_index(np.argmax(np.abs(actual - expected)), actual.shape)
    return (
        f"largest difference at index {tuple(int(i) for i in index)}: got "
        f"{actual[index]:.6g}, expected {expected[index]:.6g}"
    )


# The forward pass ---------------------------------------------------------------------------------


def _explain_train(
    out: np.ndarray, layer: Layer, keep: np.ndarray, p: float, *, what: str
) -> CheckFailure:
    """Name the likely mistake of a training pass with a given mask."""
    x, W, b = (a.astype(np.float64) for a in layer)
    masked = _masked_product(x, W, keep)
    factor = _proportional(out - b, masked)
    if factor is not None:
        return CheckFailure(
            f"{what}: x[n] @ (W * mask[n]) comes out multiplied by {_name_scale(factor, p)}, but "
            f"it must be multiplied by 1/(1-p) = {1 / (1 - p):.4g}"
        )
    if _proportional(out - b, x @ W) is not None:
        return CheckFailure(
            f"{what}: the output does not depend on the mask you are given: use mask (shape "
            "(N, D, M)); example n's weights are W * mask[n]"
        )
    if _proportional(out, masked + b) is not None:
        return CheckFailure(
            f"{what}: the bias is scaled with the weights: DropConnect never drops the bias, so "
            "add b after scaling, out[n] = x[n] @ (W * mask[n]) / (1 - p) + b"
        )
    first = _masked_product(x, W, np.broadcast_to(keep[:1], keep.shape)) / (1 - p) + b
    if np.all(close(out, first)):
        return CheckFailure(
            f"{what}: every example used the mask of example 0: example n uses mask[n]"
        )
    expected = masked / (1 - p) + b
    return CheckFailure(
        f"{what}: out[n] must be x[n] @ (W * mask[n]) / (1 - p) + b for each example n; "
        f"{_worst(out, expected)}"
    )


@ASSIGNMENT.register("dropconnect_forward")
def forward_train_mask(
    dropconnect_forward, *, shape=(6, 5, 4), p_values=(0.2, 0.6), dtype="float64", seed=0
) -> None:
    """Training pass with a given (N, D, M) mask: out[n] = x[n] @ (W * mask[n]) / (1 - p) + b."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        layer = _layer(rng, shape, dtype)
        keep = _keep(rng, shape, p)
        x, W, b = (a.astype(np.float64) for a in layer)
        expected = _masked_product(x, W, keep) / (1 - p) + b
        for mask in (keep, keep.astype(dtype)):
            what = f"dropconnect_forward(train=True, mask={mask.dtype} mask, p={p:g})"
            out, _ = _call_forward(dropconnect_forward, layer, p, train=True, mask=mask)
            if not np.all(close(out, expected)):
                raise _explain_train(out, layer, keep, p, what=what)


@ASSIGNMENT.register("dropconnect_forward")
def forward_eval(
    dropconnect_forward, *, shape=(6, 5, 4), p_values=(0.2, 0.6), dtype="float64", seed=1
) -> None:
    """Evaluation pass: out = x @ W + b, no mask and no scaling (even when rng is given)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        layer = _layer(rng, shape, dtype)
        x, W, b = (a.astype(np.float64) for a in layer)
        expected = x @ W + b
        for kwargs in ({}, {"rng": np.random.default_rng(seed)}):
            what = f"dropconnect_forward(train=False, p={p:g}{', rng=rng' if kwargs else ''})"
            out, _ = _call_forward(dropconnect_forward, layer, p, train=False, **kwargs)
            if np.all(close(out, expected)):
                continue
            factor = _proportional(out - b, x @ W)
            if factor is not None:
                raise CheckFailure(
                    f"{what}: x @ W comes out multiplied by {factor:.4g}; with inverted scaling, "
                    "training already divided the kept weights by 1 - p, so evaluation uses W "
                    "unchanged: out = x @ W + b (multiplying by 1 - p is the classic rule)"
                )
            raise CheckFailure(
                f"{what}: must be x @ W + b, with every weight kept: nothing is dropped at "
                f"evaluation (train=False), whatever rng is; {_worst(out, expected)}"
            )


def _binary_layer(shape: tuple[int, int, int], dtype: str) -> Layer:
    """x[n, d] = 2**d, W = 1, b = 0: out[n, m] * scale**-1 spells the mask column K[n, :, m]."""
    n, d, m = shape
    x = np.tile(2.0 ** np.arange(d), (n, 1))
    return x.astype(dtype), np.ones((d, m), dtype=dtype), np.zeros(m, dtype=dtype)


def _decode_masks(out: np.ndarray, p: float, d: int, *, what: str) -> tuple[np.ndarray, str]:
    """The keep masks (N, D, M) behind a training pass on ``_binary_layer``, and the name of the
    factor that scaled the kept weights.

    Tries each candidate factor; the right one turns every output into an integer in
    [0, 2**d) (rounding error below 0.01 even in float32 for d <= 12), a wrong one fails on some
    of the hundreds of outputs.
    """
    for name, factor in scale_factors(p).items():
        if not 0 < factor < math.inf:
            continue
        counts = out / factor
        rounded = np.rint(counts)
        if np.all(np.abs(counts - rounded) < 0.05) and np.all((rounded >= 0) & (rounded < 2**d)):
            bits = rounded.astype(np.int64)[:, None, :] >> np.arange(d)[None, :, None]
            return (bits & 1).astype(bool), name
    raise CheckFailure(
        f"{what}: with x[n, d] = 2**d, W = 1 and b = 0 each output must be a sum of distinct "
        f"2**d (one per kept weight) divided by 1 - p, but got values such as "
        f"{np.round(out.ravel()[:4], 4).tolist()}: out[n] must be x[n] @ (W * K[n]) / (1 - p) + b "
        "for a 0/1 keep mask K[n] of W's shape"
    )


def _random_pass(forward: BoundFunction, shape, p: float, dtype: str, rng, *, what: str):
    """The masks (N, D, M) and factor name of one training pass that draws from ``rng``."""
    out, _ = _call_forward(forward, _binary_layer(shape, dtype), p, train=True, rng=rng)
    return (*_decode_masks(out, p, shape[1], what=what), out)


@ASSIGNMENT.register("dropconnect_forward")
def forward_random(dropconnect_forward, *, shape=(60, 12, 10), p=0.3, dtype="float64", seed=2):
    """Training pass drawing its masks from rng: weights dropped at rate p, kept ones scaled."""
    if shape[1] > 12:
        raise ValueError("D must be at most 12 for the masks to be read back exactly")
    what = f"dropconnect_forward(train=True, rng=rng, p={p:g})"
    keep, factor, out = _random_pass(
        dropconnect_forward, shape, p, dtype, np.random.default_rng(seed), what=what
    )
    if factor != "1/(1-p)":
        raise CheckFailure(
            f"{what}: kept weights come out multiplied by {factor}, not by 1/(1-p): "
            f"{_FACTOR_HINTS[factor]}"
        )
    # Dropped weights ~ Binomial(N D M, p): one Bernstein bound at FALSE_FAIL.
    require_count(
        int(np.count_nonzero(~keep)),
        keep.size,
        p,
        delta=FALSE_FAIL,
        what=f"{what}: fraction of weights dropped",
        hints={1 - p: "that is 1 - p: keep and drop are swapped (drop with probability p)"},
    )
    *_, again = _random_pass(
        dropconnect_forward, shape, p, dtype, np.random.default_rng(seed), what=what
    )
    require(
        np.array_equal(out, again),
        f"{what} differs between two generators with the same seed: draw the masks from the rng "
        "argument (not np.random.* or a new default_rng())",
    )
    rng = np.random.default_rng(seed + 1)
    first, second = (
        _random_pass(dropconnect_forward, shape, p, dtype, rng, what=what)[0] for _ in range(2)
    )
    # Two independent draws agree on all N D M weights with probability
    # (q^2 + (1 - q)^2)^(N D M) < 1e-100 for the sizes used here.
    require(
        not np.array_equal(first, second),
        f"two calls of {what} with one rng dropped the same weights: draw new masks each call",
    )


_SHARED_HINTS = {
    0: "every example got the same weight mask: draw one (D, M) mask PER EXAMPLE, an (N, D, M) "
    "array, not one (D, M) mask for the whole batch",
    1: "the inputs of an output share their draw: draw one entry per weight (N, D, M)",
    2: "the outputs of an input share their draw: that is dropout on the inputs, not DropConnect; "
    "draw one entry per weight (N, D, M)",
}


@ASSIGNMENT.register("dropconnect_forward")
def forward_per_example(
    dropconnect_forward, *, shape=(60, 12, 10), p=0.5, dtype="float64", seed=3
) -> None:
    """Each example gets its own mask, one independent draw per weight (no mask shared)."""
    what = f"dropconnect_forward(train=True, rng=rng, p={p:g})"
    keep, *_ = _random_pass(
        dropconnect_forward, shape, p, dtype, np.random.default_rng(seed), what=what
    )
    agree_rate = p**2 + (1 - p) ** 2
    axes = [axis for axis, size in enumerate(shape) if size >= 2]
    # Disjoint neighbours along each axis agree ~ Binomial(pairs, q^2 + (1 - q)^2) for
    # independent draws: one Bernstein bound per axis at FALSE_FAIL / len(axes) (union bound).
    for axis in axes:
        agree, pairs = adjacent_agreement(keep, axis)
        names = ("examples", "inputs", "outputs")
        require_count(
            agree,
            pairs,
            agree_rate,
            delta=FALSE_FAIL / len(axes),
            what=f"{what}: fraction of neighbouring {names[axis]} (axis {axis} of the (N, D, M) "
            "masks) whose weights are both kept or both dropped",
            hints={1.0: _SHARED_HINTS[axis]},
        )


# The backward pass --------------------------------------------------------------------------------

_GRADIENTS = ("x", "W", "b")


def _numerical_gradient(
    forward: BoundFunction,
    layer: Layer,
    p: float,
    dout: np.ndarray,
    wrt: str,
    call_kwargs: Callable[[], dict[str, Any]],
) -> np.ndarray:
    """Central differences (step 1) of ``sum(dout * out)`` in each entry of x, W or b.

    The loss is linear in each of x, W and b when the others and the mask are fixed, so the
    difference quotient is the exact derivative (up to rounding), whatever the step.
    ``call_kwargs()`` gives each call its mask or a freshly seeded rng.
    """
    position = _GRADIENTS.index(wrt)
    target = layer[position]
    grad = np.zeros(target.shape)
    for index in np.ndindex(target.shape):
        losses = []
        for step_size in (1, -1):
            shifted = target.copy()
            shifted[index] += step_size
            moved = tuple(shifted if i == position else a for i, a in enumerate(layer))
            out, _ = _call_forward(forward, moved, p, **call_kwargs())
            losses.append(float(np.sum(out * dout)))
        grad[index] = (losses[0] - losses[1]) / 2
    return grad


def _gradients(backward: BoundFunction, dout: np.ndarray, cache: Any, layer: Layer, *, what: str):
    """The student's (dx, dW, db) as float64 arrays of x's, W's and b's shapes."""
    call = f"dropconnect_backward(dout, cache) after {what}"
    result = backward(dout.copy(), cache)
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise CheckFailure(f"{call} must return a triple (dx, dW, db)")
    return tuple(
        as_array(g, what=f"d{name} of {call}", shape=a.shape)
        for g, name, a in zip(result, _GRADIENTS, layer, strict=True)
    )


def _explain_gradient(
    wrt: str,
    actual: np.ndarray,
    expected: np.ndarray,
    layer: Layer,
    dout: np.ndarray,
    keep: np.ndarray | None,
    *,
    what: str,
) -> CheckFailure:
    """Name the likely mistake in d<wrt> (``expected`` is the gradient of the student's forward)."""
    x, W, _ = (a.astype(np.float64) for a in layer)
    where = f"d{wrt} of dropconnect_backward after {what}"
    factor = _proportional(actual, expected)
    if factor is not None:
        if wrt == "b":
            return CheckFailure(
                f"{where} is {factor:.4g} times dout.sum(axis=0): the bias is never dropped or "
                "scaled, and its gradient sums dout over the examples: db = dout.sum(axis=0)"
            )
        return CheckFailure(
            f"{where} is {factor:.4g} times the gradient of your forward pass: apply exactly the "
            "factor your forward pass applied to the kept weights (1/(1-p) in training, 1 at "
            "evaluation)"
        )
    if wrt == "x" and keep is not None and _proportional(actual, dout @ W.T) is not None:
        return CheckFailure(
            f"{where} uses every weight: dx[n] = (W * mask[n]) @ dout[n] times the forward's "
            "factor, with the mask the forward pass used (keep it in the cache)"
        )
    if wrt == "W" and keep is not None:
        outer = x.T @ dout
        if _proportional(actual, outer) is not None:
            return CheckFailure(
                f"{where} ignores the mask: a dropped weight gets no gradient from that example; "
                "dW = sum over n of x[n][:, None] * dout[n][None, :] * mask[n], times the factor"
            )
        for summary in (keep.mean(axis=0), keep.sum(axis=0), keep[0], keep.any(axis=0)):
            if _proportional(actual, outer * summary) is not None:
                return CheckFailure(
                    f"{where} multiplies the summed x.T @ dout by one (D, M) mask: each example "
                    "has its own mask, so apply mask[n] to example n's outer product x[n]^T "
                    "dout[n] BEFORE summing over n (e.g. np.einsum('nd,nm,ndm->dm', ...))"
                )
    formula = {
        "x": "dx[n] = (W * mask[n]) @ dout[n] times the forward's factor",
        "W": "dW = sum over n of x[n][:, None] * dout[n][None, :] * mask[n], times the factor",
        "b": "db = dout.sum(axis=0)",
    }[wrt]
    return CheckFailure(
        f"{where} is not the gradient of your forward pass ({formula}); {_worst(actual, expected)}"
    )


def _true_gradient(
    wrt: str, layer: Layer, dout: np.ndarray, keep: np.ndarray | None, p: float
) -> np.ndarray:
    """d<wrt> of a correct layer: given masks ``keep`` in training, or evaluation (None)."""
    x, W, _ = (a.astype(np.float64) for a in layer)
    scale = 1.0 if keep is None else 1.0 / (1.0 - p)
    kept = np.ones((1, *W.shape)) if keep is None else keep.astype(np.float64)
    if wrt == "x":
        return np.einsum("nm,ndm->nd", dout, W * kept) * scale
    if wrt == "W":
        return np.einsum("nd,nm,ndm->dm", x, dout, kept) * scale
    return dout.sum(axis=0)


def _check_gradient(
    dropconnect_forward: BoundFunction,
    dropconnect_backward: BoundFunction,
    wrt: str,
    *,
    shape: tuple[int, int, int],
    p_values: tuple[float, ...],
    dtype: str,
    seed: int,
) -> None:
    """d<wrt> is right, or equals the numerical gradient of the student's own forward pass (so a
    forward mistake costs no backward cell), with given masks (one case per p) and at evaluation.
    """
    rng = np.random.default_rng(seed)
    cases: list[tuple[float, np.ndarray | None]] = [(p, _keep(rng, shape, p)) for p in p_values]
    cases.append((p_values[0], None))  # evaluation
    for p, keep in cases:
        layer = _layer(rng, shape, dtype)
        dout = _signed(rng, (shape[0], shape[2]))
        kwargs = {"train": False} if keep is None else {"train": True, "mask": keep}
        what = f"dropconnect_forward({', '.join(f'{k}=...' for k in kwargs)}, p={p:g})"
        _, cache = _call_forward(dropconnect_forward, layer, p, **kwargs)
        grads = dict(
            zip(
                _GRADIENTS,
                _gradients(dropconnect_backward, dout, cache, layer, what=what),
                strict=True,
            )
        )
        if np.all(close(grads[wrt], _true_gradient(wrt, layer, dout, keep, p))):
            continue  # right, whatever the forward pass does
        expected = _numerical_gradient(
            dropconnect_forward, layer, p, dout, wrt, functools.partial(dict, kwargs)
        )
        if not np.all(close(grads[wrt], expected)):
            raise _explain_gradient(wrt, grads[wrt], expected, layer, dout, keep, what=what)


@ASSIGNMENT.register("dropconnect_forward", "dropconnect_backward")
def backward_dx(
    dropconnect_forward,
    dropconnect_backward,
    *,
    shape=(5, 4, 3),
    p_values=(0.2, 0.6),
    dtype="float64",
    seed=4,
) -> None:
    """dx is the gradient in x: each example through its own thinned weights (and at evaluation)."""
    _check_gradient(
        dropconnect_forward,
        dropconnect_backward,
        "x",
        shape=shape,
        p_values=p_values,
        dtype=dtype,
        seed=seed,
    )


@ASSIGNMENT.register("dropconnect_forward", "dropconnect_backward")
def backward_dW(
    dropconnect_forward,
    dropconnect_backward,
    *,
    shape=(5, 4, 3),
    p_values=(0.2, 0.6),
    dtype="float64",
    seed=5,
) -> None:
    """dW is the gradient in W: each example contributes through its own mask."""
    _check_gradient(
        dropconnect_forward,
        dropconnect_backward,
        "W",
        shape=shape,
        p_values=p_values,
        dtype=dtype,
        seed=seed,
    )


@ASSIGNMENT.register("dropconnect_forward", "dropconnect_backward")
def backward_db(
    dropconnect_forward,
    dropconnect_backward,
    *,
    shape=(5, 4, 3),
    p_values=(0.2, 0.6),
    dtype="float64",
    seed=6,
) -> None:
    """db is the gradient in b: dout summed over the examples, never masked or scaled."""
    _check_gradient(
        dropconnect_forward,
        dropconnect_backward,
        "b",
        shape=shape,
        p_values=p_values,
        dtype=dtype,
        seed=seed,
    )


@ASSIGNMENT.register("dropconnect_forward", "dropconnect_backward")
def backward_same_mask(
    dropconnect_forward,
    dropconnect_backward,
    *,
    shape=(8, 5, 4),
    p=0.4,
    dtype="float64",
    seed=7,
) -> None:
    """The backward pass reuses the masks the forward pass drew from rng (no fresh draw)."""
    rng = np.random.default_rng(seed)
    layer = _layer(rng, shape, dtype)
    dout = _signed(rng, (shape[0], shape[2]))
    what = f"dropconnect_forward(train=True, rng=rng, p={p:g})"

    def seeded() -> dict[str, Any]:
        return {"train": True, "rng": np.random.default_rng(seed + 1)}

    out, cache = _call_forward(dropconnect_forward, layer, p, **seeded())
    require(
        np.array_equal(out, _call_forward(dropconnect_forward, layer, p, **seeded())[0]),
        f"{what} differs between two generators with the same seed: draw the masks from the rng "
        "argument (this check needs it to reproduce your forward pass)",
    )
    dx, *_ = _gradients(dropconnect_backward, dout, cache, layer, what=what)
    expected = _numerical_gradient(dropconnect_forward, layer, p, dout, "x", seeded)
    # The factor is graded in backward_dx; here dx only has to flow through the same weights.
    if _proportional(dx, expected) is None:
        raise CheckFailure(
            f"dropconnect_backward after {what}: dx is not the gradient of the forward pass for "
            "the masks that pass drew (not even up to a factor): reuse the masks stored in the "
            "cache, do not draw new ones in the backward pass"
        )


# Moments and moment matching ----------------------------------------------------------------------


def _call_moments(
    moments: BoundFunction, layer: Layer, p: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """The student's (mean, var) as float64 (N, M) arrays, and the call as text."""
    call = f"dropconnect_moments(x, W, b, p={p:g})"
    mean, var = unpack_pair(
        moments(*(a.copy() for a in layer), p), what=call, names=("mean", "var")
    )
    shape = (layer[0].shape[0], layer[1].shape[1])
    return (
        as_array(mean, what=f"mean of {call}", shape=shape),
        as_array(var, what=f"var of {call}", shape=shape),
        call,
    )


@ASSIGNMENT.register("dropconnect_moments")
def moments_mean(
    dropconnect_moments, *, shape=(5, 6, 4), p_values=(0.2, 0.7), dtype="float64", seed=8
) -> None:
    """The mean of each training pre-activation is the evaluation output x @ W + b."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        layer = _layer(rng, shape, dtype)
        x, W, b = (a.astype(np.float64) for a in layer)
        mean, _, call = _call_moments(dropconnect_moments, layer, p)
        expected = x @ W + b
        if np.all(close(mean, expected)):
            continue
        factor = _proportional(mean - b, x @ W)
        if factor is not None:
            hint = {
                "1-p": " (1 - p: that is the mean of the classic, unscaled training output)",
                "1/(1-p)": " (1/(1-p): the mean of K is 1 - p, which cancels the scale)",
            }.get(name_factor(factor, scale_factors(p)) or "", "")
            raise CheckFailure(
                f"mean of {call}: x @ W comes out multiplied by {factor:.4g}{hint}; a kept "
                "weight is W / (1 - p) with probability 1 - p, so its mean is W and the mean "
                "pre-activation is x @ W + b (the weight-scaled, evaluation output)"
            )
        if np.all(close(mean, x @ W)):
            raise CheckFailure(f"mean of {call}: add the bias b (it is never dropped)")
        raise CheckFailure(f"mean of {call} must be x @ W + b; {_worst(mean, expected)}")


def _variance_factors(p: float) -> dict[str, float]:
    """Factors in front of (x**2) @ (W**2), right or wrong, named for messages."""
    keep = 1.0 - p
    return {
        "p/(1-p)": p / keep,
        "p(1-p)": p * keep,
        "1": 1.0,
        "p": p,
        "(1-p)/p": keep / p,
        "p/(1-p)^2": p / keep**2,
        "1-p": keep,
    }


_VARIANCE_HINTS = {
    "p(1-p)": "p(1-p) is the variance of the 0/1 mask; the kept weight is scaled to "
    "W * K / (1 - p), whose variance is W**2 p(1-p) / (1-p)**2 = W**2 p / (1-p)",
    "1": "the Bernoulli factor is missing: it is p / (1 - p), which equals 1 only at p = 0.5",
    "p": "the factor is p / (1 - p), from the variance of the scaled mask K / (1 - p)",
    "(1-p)/p": "the factor is upside down: it is p / (1 - p) (p is the DROP probability)",
    "p/(1-p)^2": "one 1/(1-p) too many: Var[K / (1 - p)] = p(1-p) / (1-p)**2 = p / (1-p)",
    "1-p": "the factor is p / (1 - p), from the variance of the scaled mask K / (1 - p)",
}


@ASSIGNMENT.register("dropconnect_moments")
def moments_variance(
    dropconnect_moments, *, shape=(5, 6, 4), p_values=(0.2, 0.7), dtype="float64", seed=9
) -> None:
    """The variance of each training pre-activation is p / (1 - p) * (x**2) @ (W**2)."""
    rng = np.random.default_rng(seed)
    for p in p_values:
        layer = _layer(rng, shape, dtype)
        x, W, _ = (a.astype(np.float64) for a in layer)
        _, var, call = _call_moments(dropconnect_moments, layer, p)
        squares = (x**2) @ (W**2)
        expected = p / (1 - p) * squares
        if np.all(close(var, expected)):
            continue
        where = f"var of {call}"
        factor = _proportional(var, squares)
        if factor is not None:
            name = name_factor(factor, _variance_factors(p))
            hint = f": {_VARIANCE_HINTS[name]}" if name in _VARIANCE_HINTS else ""
            raise CheckFailure(
                f"{where} is {factor:.4g} * (x**2) @ (W**2), but the factor must be "
                f"p / (1 - p) = {p / (1 - p):.4g}{hint}"
            )
        mistakes = {
            "x must be squared: each term x[d] W[d, m] K / (1 - p) has variance "
            "x[d]**2 W[d, m]**2 p / (1 - p)": x @ (W**2),
            "W must be squared: each term x[d] W[d, m] K / (1 - p) has variance "
            "x[d]**2 W[d, m]**2 p / (1 - p)": (x**2) @ W,
            "the variance of a sum of independent terms is the SUM of their variances, "
            "p / (1 - p) * sum_d x[d]**2 W[d, m]**2, not the square of the sum": (x @ W) ** 2,
        }
        for hint, basis in mistakes.items():
            if _proportional(var, basis) is not None:
                raise CheckFailure(f"{where}: {hint}")
        if np.all(close(var**2, expected)):
            raise CheckFailure(f"{where}: that is the standard deviation; return the variance")
        raise CheckFailure(
            f"{where} must be p / (1 - p) * (x**2) @ (W**2); {_worst(var, expected)}"
        )


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z), elementwise."""
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _centred_layer(rng: np.random.Generator, shape, p: float, dtype: str) -> Layer:
    """Positive inputs (as after a ReLU) and a bias that puts example 0's pre-activations at
    mean / std in [-1, 1], so P(u > 0) is far from 0 and 1 there (see ``moment_matching``)."""
    n, d, m = shape
    x = rng.uniform(0.2, 1.5, (n, d))
    W = _signed(rng, (d, m))
    std = np.sqrt(p / (1 - p) * (x[0] ** 2) @ (W**2))
    b = np.linspace(-1.0, 1.0, m) * std - x[0] @ W
    return x.astype(dtype), W.astype(dtype), b.astype(dtype)


def _count_misfit(
    counts: np.ndarray, samples: int, q: np.ndarray, delta: float
) -> tuple[int, ...] | None:
    """The entry whose count is furthest outside its Bernstein tolerance, or None if all fit."""
    excess = np.full(q.shape, np.inf)
    for index in np.ndindex(q.shape):
        if np.isfinite(q[index]):
            tolerance = binomial_tolerance(samples, float(q[index]), delta)
            excess[index] = abs(counts[index] - samples * q[index]) / tolerance
    worst = np.unravel_index(np.argmax(excess), q.shape)
    return None if excess[worst] < 1 else tuple(int(i) for i in worst)


@ASSIGNMENT.register("moment_matching_predict", "dropconnect_moments")
def moment_matching(
    moment_matching_predict,
    dropconnect_moments,
    *,
    shape=(3, 8, 6),
    p=0.3,
    samples=4000,
    dtype="float64",
    seed=10,
) -> None:
    """moment_matching_predict averages activation(u) over samples of u ~ N(mean, var), from rng."""
    if shape[2] < 6 or samples < 3000:
        raise ValueError("the check's bounds need M >= 6 outputs and samples >= 3000")
    layer = _centred_layer(np.random.default_rng(seed), shape, p, dtype)
    x, W, b = (a.astype(np.float64) for a in layer)
    own_mean, own_var, _ = _call_moments(dropconnect_moments, layer, p)
    # A correct function may use the student's moments (if they define a Gaussian) or its own.
    candidates = {"the exact": _normal_cdf((x @ W + b) / np.sqrt(p / (1 - p) * (x**2) @ (W**2)))}
    if np.all(own_var > 0) and np.all(np.isfinite(own_mean)):
        candidates["your"] = _normal_cdf(own_mean / np.sqrt(own_var))
    what = f"moment_matching_predict(x, W, b, p={p:g}, step, rng=rng, samples={samples})"

    def run(rng: np.random.Generator) -> np.ndarray:
        result = moment_matching_predict(
            *(a.copy() for a in layer), p, step, rng=rng, samples=samples
        )
        return as_array(result, what=f"the result of {what}", shape=(shape[0], shape[2]))

    rng = np.random.default_rng(seed + 1)
    result, second = run(rng), run(rng)
    counts = np.rint(result * samples)
    # With activation 1[u > 0], each entry is (number of draws with u > 0) / samples, a
    # Binomial(samples, q) count with q = Phi(mean / std). One Bernstein bound per entry at
    # FALSE_FAIL / (N M) (union bound); for a correct function the moments it uses are one of the
    # two candidates, so it fails with probability < FALSE_FAIL.
    delta = FALSE_FAIL / counts.size
    misfits = {name: _count_misfit(counts, samples, q, delta) for name, q in candidates.items()}
    if all(index is not None for index in misfits.values()):
        source = "your" if "your" in candidates else "the exact"
        q, index = candidates[source], misfits[source]
        hint = (
            "draw u = mean + sqrt(var) * rng.standard_normal(...) `samples` times per entry, "
            "apply activation and average over the draws"
        )
        if np.all(np.isin(result, (0.0, 1.0))) and np.all(close(result, step(own_mean))):
            hint = "that is activation(mean), the weight-scaling rule: " + hint
        elif _count_misfit(counts, samples, _normal_cdf(own_mean / own_var), delta) is None:
            hint = "your Gaussian has standard deviation var; it must be sqrt(var)"
        raise CheckFailure(
            f"{what}: with the step activation 1[u > 0] the result estimates P(u > 0) = "
            f"Phi(mean / sqrt(var)); at entry {index} it is {result[index]:.4f}, but "
            f"Phi(mean / sqrt(var)) = {q[index]:.4f} for {source} moments (a correct function "
            f"misses by more than the sampling noise with probability < {FALSE_FAIL:.0e}): {hint}"
        )
    require(
        np.array_equal(result, run(np.random.default_rng(seed + 1))),
        f"{what} differs between two generators with the same seed: draw from the rng argument",
    )
    # Example 0's M entries have q in [0.16, 0.84], so two independent runs give equal counts in
    # one entry with probability at most the largest Binomial probability, about
    # (2 pi samples q (1 - q))**-0.5 <= 0.02 for samples >= 3000, and in all M >= 6 entries with
    # probability < 0.02**6 < 1e-10.
    require(
        not np.array_equal(result[0], second[0]),
        f"two calls of {what} with one rng gave the same result: draw new samples each call",
    )


ASSIGNMENT.seal()
