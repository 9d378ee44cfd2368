"""Checks for the graded exercise of chapter 4, ``ch4_dropconnect/dropconnect.ipynb``.

The student writes, in numpy and with the reference's signatures:

* ``dropconnect_forward(x, W, b, p, *, train, rng=None, mask=None) -> (out, cache)``: one keep
  mask of W's shape per example (an (N, D, M) mask), inverted scaling, ``x @ W + b`` at evaluation;
* ``dropconnect_backward(dout, cache) -> (dx, dW, db)``;
* ``dropconnect_moments(x, W, b, p) -> (mean, var)``: the exact moments of each training-time
  pre-activation, ``x @ W + b`` and ``p / (1 - p) * (x**2) @ (W**2)``;
* ``moment_matching_predict(x, W, b, p, activation, *, rng, samples)``: the average of
  ``activation`` over ``samples`` Gaussian draws N(mean, var) per pre-activation.

The forward and backward passes are rows of the property kit (:mod:`dropout_grading.properties`).
Where the student draws the masks, they are read back from the output: with inputs
``x[n, d] = 2**d``, ``W = 1`` and ``b = 0``, output ``out[n, m] * (1 - p)`` is the integer whose
binary digits are the mask column ``K[n, :, m]``. A gradient that is right passes whatever the
forward pass does; otherwise it must be the gradient of the student's own forward pass. The
moments are checked by value against their formulas. The moment-matching check uses the step
activation ``1[u > 0]``, whose average over ``samples`` draws is a Binomial count with mean
``Phi(mean / sqrt(var))``, and accepts the student's own moments as well as the exact ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dropout_course.bounds import FALSE_FAIL, binomial_tolerance

from .framework import Assignment, CheckFailure, Row
from .properties import (
    FACTOR_HINTS,
    Backprop,
    Expected,
    Explain,
    Formula,
    Functions,
    Inputs,
    Layer,
    activations,
    as_array,
    call_pure,
    close,
    factor_named,
    matches,
    name_factor,
    require,
    require_reproducible,
    row,
    scale_factors,
    scaled,
)

ASSIGNMENT = Assignment(
    "ch4_dropconnect",
    notebook="dropconnect",
    # The library's masks module stays allowed: the lesson is the (N, D, M) shape of the mask.
    forbidden_modules=(
        "dropout_course.dropconnect",
        "dropout_course.dropout",
        "dropout_course.fast",
        "dropout_course.torch",
        "dropout_grading",
        "torch",
    ),
)
check = ASSIGNMENT.check


def step(u: np.ndarray) -> np.ndarray:
    """The activation ``1[u > 0]`` (float64) that checks hand to ``moment_matching_predict``.

    Module-level and self-contained: the grader lets exactly this code run inside student code.
    """
    return np.greater(u, 0).astype(np.float64)


def _masked(x: np.ndarray, W: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``x[n] @ (W * keep[n])`` for each example n: (N, M), no scaling."""
    return np.einsum("nd,ndm->nm", x, W * keep)


class DropConnect(Layer):
    """``dropconnect_forward``: train ``x[n] @ (W * K[n]) / (1 - p) + b``, evaluate
    ``x @ W + b``; the inputs (x, W, b) come from a shape (N, D, M), x with exact zeros."""

    def make_inputs(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> Inputs:
        n, d, m = shape
        return (
            activations(rng, (n, d), dtype),
            activations(rng, (d, m), dtype, zeros=0.0),
            activations(rng, (m,), dtype, zeros=0.0),
        )

    def randomness(self, rng: np.random.Generator, inputs: Inputs, p: float) -> np.ndarray:
        x, W, _ = inputs
        return rng.random((x.shape[0], *W.shape)) >= p

    def out_shape(self, inputs: Inputs) -> tuple[int, ...]:
        return (inputs[0].shape[0], inputs[1].shape[1])

    def train_output(self, inputs: Inputs, r: np.ndarray, p: float) -> Expected:
        x, W, b = inputs
        masked = _masked(x, W, r)
        first = _masked(x, W, np.broadcast_to(r[:1], r.shape)) / (1 - p) + b
        explains = [
            scaled(masked, factor_named(p, "x[n] @ (W * mask[n]) comes out"), offset=b),
            scaled(
                x @ W,
                "the output does not depend on the mask you are given: use mask (shape "
                "(N, D, M)); example n's weights are W * mask[n]",
                offset=b,
            ),
            scaled(
                masked + b,
                "the bias is scaled with the weights: DropConnect never drops the bias, so add b "
                "after scaling, out[n] = x[n] @ (W * mask[n]) / (1 - p) + b",
            ),
            matches(first, "every example used the mask of example 0: example n uses mask[n]"),
        ]
        rule = "x[n] @ (W * mask[n]) / (1 - p) + b for each example n"
        return Expected(masked / (1 - p) + b, rule, explains)

    def eval_output(self, inputs: Inputs, p: float) -> Expected:
        x, W, b = inputs
        rescaled = scaled(
            x @ W,
            lambda c: (
                f"x @ W comes out multiplied by {c:.4g}; with inverted scaling, training "
                "already divided the kept weights by 1 - p, so evaluation uses W unchanged: out = "
                "x @ W + b (multiplying by 1 - p is the classic rule)"
            ),
            offset=b,
        )
        rule = (
            "x @ W + b, with every weight kept: nothing is dropped at evaluation (train=False), "
            "whatever rng or mask is given"
        )
        return Expected(x @ W + b, rule, [rescaled])

    def random_inputs(self, shape: tuple[int, ...], dtype: str) -> Inputs:
        """x[n, d] = 2**d, W = 1, b = 0: out[n, m] / scale spells the mask column K[n, :, m]."""
        n, d, m = shape
        if d > 12:
            raise ValueError("D must be at most 12 for the masks to be read back exactly")
        x = np.tile(2.0 ** np.arange(d), (n, 1))
        return x.astype(dtype), np.ones((d, m), dtype=dtype), np.zeros(m, dtype=dtype)

    def draws(
        self, out: np.ndarray, inputs: Inputs, p: float, what: str, scale: bool
    ) -> np.ndarray:
        """The masks (N, D, M) behind a pass on ``random_inputs`` (and their factor if ``scale``).

        Tries each candidate factor; the right one turns every output into an integer in
        [0, 2**d) (rounding error below 0.01 even in float32 for d <= 12), a wrong one fails on
        some of the hundreds of outputs.
        """
        d = inputs[1].shape[0]
        for name, factor in scale_factors(p).items():
            if not 0 < factor < math.inf:
                continue
            counts = out / factor
            rounded = np.rint(counts)
            if not np.all((np.abs(counts - rounded) < 0.05) & (rounded >= 0) & (rounded < 2**d)):
                continue
            require(
                name == "1/(1-p)" or not scale,
                f"{what}: kept weights come out multiplied by {name}, not by 1/(1-p): "
                f"{FACTOR_HINTS[name]}",
            )
            bits = rounded.astype(np.int64)[:, None, :] >> np.arange(d)[None, :, None]
            return (bits & 1).astype(bool)
        raise CheckFailure(
            f"{what}: with x[n, d] = 2**d, W = 1 and b = 0 each output must be a sum of distinct "
            f"2**d (one per kept weight) divided by 1 - p, but got values such as "
            f"{np.round(out.ravel()[:4], 4).tolist()}: out[n] must be x[n] @ (W * K[n]) / (1 - p) "
            "+ b for a 0/1 keep mask K[n] of W's shape"
        )


class DropConnectBackprop(Backprop):
    """``dropconnect_backward``: (dx, dW, db), each example through its own mask."""

    def true_gradient(
        self, wrt: str, inputs: Inputs, dout: np.ndarray, r: np.ndarray | None, p: float
    ) -> np.ndarray:
        x, W, _ = inputs
        scale = 1.0 if r is None else 1.0 / (1.0 - p)
        kept = np.ones((1, *W.shape)) if r is None else r.astype(np.float64)
        if wrt == "x":
            return np.einsum("nm,ndm->nd", dout, W * kept) * scale
        if wrt == "W":
            return np.einsum("nd,nm,ndm->dm", x, dout, kept) * scale
        return dout.sum(axis=0)

    def explain(
        self, wrt: str, expected: np.ndarray, inputs: Inputs, dout: np.ndarray, r: Any
    ) -> list[Explain]:
        x, W, _ = inputs
        if wrt == "b":
            return [
                scaled(
                    expected,
                    lambda c: (
                        f"it is {c:.4g} times dout.sum(axis=0): the bias is never dropped "
                        "or scaled, and its gradient sums dout over the examples"
                    ),
                )
            ]
        if r is None:
            return []
        if wrt == "x":
            hint = "it uses every weight: use the mask the forward pass used (keep it in the cache)"
            return [scaled(dout @ W.T, hint)]
        outer = x.T @ dout
        summed = (
            "it multiplies the summed x.T @ dout by one (D, M) mask: each example has its own "
            "mask, so apply mask[n] to example n's outer product x[n]^T dout[n] BEFORE summing "
            "over n (e.g. np.einsum('nd,nm,ndm->dm', ...))"
        )
        return [
            scaled(
                outer, "it ignores the mask: a dropped weight gets no gradient from that example"
            ),
            *(
                scaled(outer * s, summed)
                for s in (r.mean(axis=0), r.sum(axis=0), r[0], r.any(axis=0))
            ),
        ]


DROPCONNECT = DropConnect(
    "dropconnect_forward",
    inputs=("x", "W", "b"),
    unit="weight of an example",
    axis_names={0: "examples", 1: "inputs", 2: "outputs"},
    shared_hints={
        0: "every example got the same weight mask: draw one (D, M) mask PER EXAMPLE, an "
        "(N, D, M) array, not one (D, M) mask for the whole batch",
        1: "the inputs of an output share their draw: draw one entry per weight (N, D, M)",
        2: "the outputs of an input share their draw: that is dropout on the inputs, not "
        "DropConnect; draw one entry per weight (N, D, M)",
    },
)
BACKWARD = DropConnectBackprop(
    DROPCONNECT,
    "dropconnect_backward",
    gradients=("x", "W", "b"),
    formulas={
        "x": "dx[n] = (W * mask[n]) @ dout[n] times the forward's factor",
        "W": "dW = sum over n of x[n][:, None] * dout[n][None, :] * mask[n], times the factor",
        "b": "db = dout.sum(axis=0)",
    },
)


# Moments and moment matching ----------------------------------------------------------------------

VARIANCE_FACTORS = {  # factors in front of (x**2) @ (W**2), wrong ones with their hints
    "p/(1-p)": (lambda p: p / (1 - p), "that is the right factor"),
    "p(1-p)": (lambda p: p * (1 - p), "p(1-p) is the variance of the 0/1 mask; the kept weight "
               "is scaled to W * K / (1 - p), whose variance is W**2 p(1-p) / (1-p)**2 = "
               "W**2 p / (1-p)"),
    "1": (lambda p: 1.0, "the Bernoulli factor is missing: it is p / (1 - p), which equals 1 only "
          "at p = 0.5"),
    "p": (lambda p: p, "the factor is p / (1 - p), from the variance of the scaled mask"),
    "(1-p)/p": (lambda p: (1 - p) / p, "the factor is upside down: it is p / (1 - p) (p is the "
                "DROP probability)"),
    "p/(1-p)^2": (lambda p: p / (1 - p) ** 2, "one 1/(1-p) too many: Var[K / (1 - p)] = "
                  "p(1-p) / (1-p)**2 = p / (1-p)"),
    "1-p": (lambda p: 1 - p, "the factor is p / (1 - p), from the variance of the scaled mask"),
}  # fmt: skip
MEAN_FACTORS = {
    "1-p": " (1 - p: that is the mean of the classic, unscaled training output)",
    "1/(1-p)": " (1/(1-p): the mean of K is 1 - p, which cancels the scale)",
}


def _mean(inputs: Inputs, p: float) -> Expected:
    """The mean pre-activation x @ W + b, and the mistakes that miss it."""
    x, W, b = inputs

    def rescaled(c: float) -> str:
        name = MEAN_FACTORS.get(name_factor(c, scale_factors(p)) or "", "")
        return (
            f"x @ W comes out multiplied by {c:.4g}{name}; a kept weight is W / (1 - p) with "
            "probability 1 - p, so its mean is W and the mean pre-activation is x @ W + b (the "
            "weight-scaled, evaluation output)"
        )

    explains = [
        scaled(x @ W, rescaled, offset=b),
        matches(x @ W, "add the bias b (it is never dropped)"),
    ]
    return Expected(x @ W + b, "x @ W + b", explains)


def _variance(inputs: Inputs, p: float) -> Expected:
    """The variance p / (1 - p) * (x**2) @ (W**2), and the mistakes that miss it."""
    x, W, _ = inputs
    squares, want = (x**2) @ (W**2), p / (1 - p) * (x**2) @ (W**2)

    def factor(c: float) -> str:
        name = name_factor(c, {n: f(p) for n, (f, _) in VARIANCE_FACTORS.items()})
        hint = f": {VARIANCE_FACTORS[name][1]}" if name else ""
        right = f"p / (1 - p) = {p / (1 - p):.4g}"
        return f"it is {c:.4g} * (x**2) @ (W**2), but the factor must be {right}{hint}"

    term = "each term x[d] W[d, m] K / (1 - p) has variance x[d]**2 W[d, m]**2 p / (1 - p)"
    sum_of_squares = (
        "the variance of a sum of independent terms is the SUM of their variances, p / (1 - p) * "
        "sum_d x[d]**2 W[d, m]**2, not the square of the sum"
    )
    explains = [
        scaled(squares, factor),
        scaled(x @ (W**2), f"x must be squared: {term}"),
        scaled((x**2) @ W, f"W must be squared: {term}"),
        scaled((x @ W) ** 2, sum_of_squares),
        matches(np.sqrt(want), "that is the standard deviation; return the variance"),
    ]
    return Expected(want, "p / (1 - p) * (x**2) @ (W**2)", explains)


MOMENTS = Formula(
    "dropconnect_moments",
    inputs=("x", "W", "b"),
    outputs=("mean", "var"),
    make_inputs=DROPCONNECT.make_inputs,
    formulas={"mean": _mean, "var": _variance},
    out_shape=DROPCONNECT.out_shape,
)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z), elementwise."""
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _centred_layer(rng: np.random.Generator, shape: Any, p: float, dtype: str) -> Inputs:
    """Positive inputs (as after a ReLU) and a bias that puts example 0's pre-activations at
    mean / std in [-1, 1], so P(u > 0) is far from 0 and 1 there (see ``moment_matching``)."""
    n, d, m = shape
    x = rng.uniform(0.2, 1.5, (n, d))
    W = activations(rng, (d, m), zeros=0.0)
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


def moment_matching(
    fns: Functions, *, shape: Any, p: float, samples: int, dtype: str, seed: int
) -> None:
    """moment_matching_predict averages activation(u) over samples of u ~ N(mean, var), from rng."""
    if shape[2] < 6 or samples < 3000:
        raise ValueError("the check's bounds need M >= 6 outputs and samples >= 3000")
    inputs = _centred_layer(np.random.default_rng(seed), shape, p, dtype)
    x, W, b = (a.astype(np.float64) for a in inputs)
    own_mean, own_var = MOMENTS.call(fns, inputs, p)[0].values()
    # A correct function may use the student's moments (if they define a Gaussian) or its own.
    candidates = {"the exact": _normal_cdf((x @ W + b) / np.sqrt(p / (1 - p) * (x**2) @ (W**2)))}
    if np.all(own_var > 0) and np.all(np.isfinite(own_mean)):
        candidates["your"] = _normal_cdf(own_mean / np.sqrt(own_var))
    what = f"moment_matching_predict(x, W, b, p={p:g}, step, rng=rng, samples={samples})"

    def run(rng: np.random.Generator) -> np.ndarray:
        result = call_pure(
            fns["moment_matching_predict"],
            dict(zip("xWb", inputs, strict=True)),
            p,
            step,
            what=what,
            rng=rng,
            samples=samples,
        )
        return as_array(result, what=f"the result of {what}", shape=(shape[0], shape[2]))

    result = run(np.random.default_rng(seed + 1))
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
    # Fresh draws: example 0's M entries have q in [0.16, 0.84], so two independent runs give
    # equal counts in one entry with probability at most the largest Binomial probability, about
    # (2 pi samples q (1 - q))**-0.5 <= 0.02 for samples >= 3000, and in all M >= 6 entries with
    # probability < 0.02**6 < 1e-10.
    require_reproducible(run, seed + 1, what=what, part=lambda result: result[0])


FORWARD = {"shape": (6, 5, 4), "p_values": (0.2, 0.6), "dtype": "float64"}
GRADIENT = {"shape": (5, 4, 3), "p_values": (0.2, 0.6), "dtype": "float64"}

# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "forward_train_mask": row(
        "Training pass with a given (N, D, M) mask: out[n] = x[n] @ (W * mask[n]) / (1 - p) + b",
        DROPCONNECT.injected, **FORWARD, seed=0),
    "forward_eval": row(
        "Evaluation pass: out = x @ W + b, no mask and no scaling (a given rng or mask is ignored)",
        DROPCONNECT.evaluation, **FORWARD, seed=1),
    "forward_random": row(
        "Training pass drawing its masks from rng: weights dropped at rate p, kept ones scaled",
        DROPCONNECT.random, tests=("scale", "rate", "reproducible"), shape=(60, 12, 10), p=0.3,
        dtype="float64", seed=2),
    "forward_per_example": row(
        "Each example gets its own mask, one independent draw per weight (no mask shared)",
        DROPCONNECT.random, tests=("independent",), shape=(60, 12, 10), p=0.5, dtype="float64",
        seed=3),
    "backward_dx": row(
        "dx is the gradient in x: each example through its own thinned weights (and at "
        "evaluation), also where x == 0",
        BACKWARD.gradient, wrt="x", **GRADIENT, seed=4),
    "backward_dW": row(
        "dW is the gradient in W: each example contributes through its own mask",
        BACKWARD.gradient, wrt="W", **GRADIENT, seed=5),
    "backward_db": row(
        "db is the gradient in b: dout summed over the examples, never masked or scaled",
        BACKWARD.gradient, wrt="b", **GRADIENT, seed=6),
    "backward_same_mask": row(  # up to a factor: the factor is graded in backward_dx
        "The backward pass reuses the masks the forward pass drew from rng (no fresh draw)",
        BACKWARD.gradient, up_to_factor=True, shape=(8, 5, 4), p=0.4, dtype="float64", seed=7),
    "moments_mean": row(
        "The mean of each training pre-activation is the evaluation output x @ W + b",
        MOMENTS.value, output="mean", shape=(5, 6, 4), p_values=(0.2, 0.7), dtype="float64",
        seed=8),
    "moments_variance": row(
        "The variance of each training pre-activation is p / (1 - p) * (x**2) @ (W**2)",
        MOMENTS.value, output="var", shape=(5, 6, 4), p_values=(0.2, 0.7), dtype="float64",
        seed=9),
    "moment_matching": Row(
        "moment_matching_predict averages activation(u) over samples of u ~ N(mean, var), from "
        "rng",
        moment_matching, ("moment_matching_predict", "dropconnect_moments"),
        {"shape": (3, 8, 6), "p": 0.3, "samples": 4000, "dtype": "float64", "seed": 10}),
})
# fmt: on
ASSIGNMENT.seal()
