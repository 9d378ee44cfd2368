"""Chapter 4 (DropConnect): classic mistakes, each with the test cells it must lose, and correct
alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy (``np`` is imported in the notebook's read-only cell) and the
notebook's other functions, so it behaves the same in a unit test and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives -----------------------------------------------------------------------------


def forward_loops(x, W, b, p, *, train, rng=None, mask=None):
    """One example at a time, each drawing its own (D, M) mask."""
    n_examples = x.shape[0]
    if not train:
        return np.array([x[n] @ W + b for n in range(n_examples)]), {
            "masks": None,
            "x": x,
            "W": W,
            "scale": 1.0,
        }
    masks = []
    out = np.zeros((n_examples, W.shape[1]))
    for n in range(n_examples):
        kept = rng.random(W.shape) >= p if mask is None else mask[n]
        masks.append(kept)
        for d in range(W.shape[0]):
            for m in range(W.shape[1]):
                if kept[d, m]:
                    out[n, m] += x[n, d] * W[d, m] / (1.0 - p)
    return out + b, {"masks": masks, "x": x, "W": W, "scale": 1.0 / (1.0 - p)}


def backward_loops(dout, cache):
    x, W, masks, scale = cache["x"], cache["W"], cache["masks"], cache["scale"]
    dx, dW = np.zeros(x.shape), np.zeros(W.shape)
    for n in range(x.shape[0]):
        weights = W * scale if masks is None else W * masks[n] * scale
        dx[n] = weights @ dout[n]
        contribution = np.outer(x[n], dout[n]) * scale
        dW += contribution if masks is None else contribution * masks[n]
    return dx, dW, sum(dout[n] for n in range(dout.shape[0]))


def moments_loops(x, W, b, p):
    mean, var = np.zeros((x.shape[0], W.shape[1])), np.zeros((x.shape[0], W.shape[1]))
    for n in range(x.shape[0]):
        for m in range(W.shape[1]):
            terms = x[n] * W[:, m]
            mean[n, m] = terms.sum() + b[m]
            # Var[t K / (1 - p)] = t^2 (1 - p) p / (1 - p)^2 for K ~ Bernoulli(1 - p)
            var[n, m] = sum(t * t * (1 - p) * p / (1 - p) ** 2 for t in terms)
    return mean, var


def moment_matching_loops(x, W, b, p, activation, *, rng, samples):
    mean, var = dropconnect_moments(x, W, b, p)  # noqa: F821  (the notebook's own)
    total = np.zeros(mean.shape)
    for _ in range(samples):
        total += activation(rng.normal(mean, np.sqrt(var)))
    return total / samples


class DropConnectCache:
    """A cache as an object: the backward pass reads its attributes."""

    def __init__(self, x, W, keep, scale):
        self.x, self.W, self.keep, self.scale = x, W, keep, scale


def forward_float32_binomial(x, W, b, p, *, train, rng=None, mask=None):
    x, W, b = x.astype(np.float32), W.astype(np.float32), b.astype(np.float32)
    if not train:
        return x @ W + b, DropConnectCache(x, W, np.ones((1, *W.shape), np.float32), 1.0)
    if mask is None:
        mask = rng.binomial(1, 1.0 - p, size=(x.shape[0], *W.shape))
    keep = mask.astype(np.float32)
    scale = np.float32(1.0 / (1.0 - p))
    out = np.matmul(x[:, None, :], W * keep)[:, 0, :] * scale + b
    return out, DropConnectCache(x, W, keep, scale)


def backward_float32(dout, cache):
    dout = dout.astype(np.float32)
    weights = cache.W * cache.keep * cache.scale  # (N or 1, D, M)
    dx = np.matmul(weights, dout[:, :, None])[:, :, 0]
    dW = (cache.x[:, :, None] * dout[:, None, :] * cache.keep).sum(axis=0) * cache.scale
    return dx, dW, dout.sum(axis=0)


def moments_float32(x, W, b, p):
    x, W = x.astype(np.float32), W.astype(np.float32)
    return x @ W + b, np.float32(p / (1.0 - p)) * (np.square(x) @ np.square(W))


def moment_matching_normal(x, W, b, p, activation, *, rng, samples):
    mean, var = dropconnect_moments(x, W, b, p)  # noqa: F821  (the notebook's own)
    draws = rng.normal(mean, np.sqrt(var), size=(samples, *mean.shape))
    return np.mean(activation(draws), axis=0)


def forward_library_mask(x, W, b, p, *, train, rng=None, mask=None):
    """Draws its mask with the library's keep_mask (allowed) and keeps it as float."""
    from dropout_course.masks import keep_mask

    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = keep_mask((x.shape[0], *W.shape), p, rng)
    mask = mask.astype(x.dtype)
    scale = 1.0 / (1.0 - p)
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


# Classic mistakes: the forward pass ---------------------------------------------------------------


def forward_shared_mask(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = np.broadcast_to(rng.random(W.shape) >= p, (x.shape[0], *W.shape))  # one per batch
    scale = 1.0 / (1.0 - p)
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_input_dropout(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:  # one draw per input, shared by its outputs: dropout, not DropConnect
        mask = np.broadcast_to((rng.random(x.shape) >= p)[:, :, None], (*x.shape, W.shape[1]))
    scale = 1.0 / (1.0 - p)
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_not_rescaled(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = rng.random((x.shape[0], *W.shape)) >= p
    return np.einsum("nd,ndm->nm", x, W * mask) + b, (x, W, mask, 1.0)  # forgets 1 / (1 - p)


def forward_rescaled_by_p(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = rng.random((x.shape[0], *W.shape)) >= p
    scale = 1.0 / p  # p is the DROP probability
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_bias_scaled(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = rng.random((x.shape[0], *W.shape)) >= p
    scale = 1.0 / (1.0 - p)
    return (np.einsum("nd,ndm->nm", x, W * mask) + b) * scale, (x, W, mask, scale)


def forward_masks_at_eval(x, W, b, p, *, train, rng=None, mask=None):
    if mask is None and rng is not None:
        mask = rng.random((x.shape[0], *W.shape)) >= p  # drawn even when train=False
    if mask is None:
        return x @ W + b, (x, W, None, 1.0)
    scale = 1.0 / (1.0 - p)
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_mask_at_eval(x, W, b, p, *, train, rng=None, mask=None):
    if not train and mask is None:
        return x @ W + b, (x, W, None, 1.0)
    if mask is None:
        mask = rng.random((x.shape[0], *W.shape)) >= p
    scale = 1.0 / (1.0 - p) if train else 1.0  # a given mask applied at evaluation
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_scaled_at_eval(x, W, b, p, *, train, rng=None, mask=None):
    if not train:
        return x @ (W * (1.0 - p)) + b, (x, W, None, 1.0 - p)  # inverted evaluation uses W
    if mask is None:
        mask = rng.random((x.shape[0], *W.shape)) >= p
    scale = 1.0 / (1.0 - p)
    return np.einsum("nd,ndm->nm", x, W * mask) * scale + b, (x, W, mask, scale)


def forward_via_library(x, W, b, p, *, train, rng=None, mask=None):
    from dropout_course.dropconnect import dropconnect_forward as library_forward

    return library_forward(x, W, b, p, train=train, rng=rng, mask=mask)


# Classic mistakes: the backward pass --------------------------------------------------------------


def forward_keeps_rng(x, W, b, p, *, train, rng=None, mask=None):
    """Stores the generator when it draws, for a backward pass that redraws."""
    if not train:
        return x @ W + b, (x, W, None, 1.0, p, None)
    drawn = rng.random((x.shape[0], *W.shape)) >= p if mask is None else mask
    scale = 1.0 / (1.0 - p)
    cache = (x, W, mask, scale, p, rng if mask is None else None)
    return np.einsum("nd,ndm->nm", x, W * drawn) * scale + b, cache


def forward_keeps_terms(x, W, b, p, *, train, rng=None, mask=None):
    """Stores each example's terms x[n, d] W[d, m] K[n, d, m] / (1 - p) for its backward pass."""
    if not train:
        mask, scale = np.ones((1, *W.shape)), 1.0
    elif mask is None:
        mask, scale = rng.random((x.shape[0], *W.shape)) >= p, 1.0 / (1.0 - p)
    else:
        scale = 1.0 / (1.0 - p)
    terms = x[:, :, None] * W * mask * scale
    return terms.sum(axis=1) + b, (x, mask, scale, terms)


def backward_divides_by_x(dout, cache):
    x, mask, scale, terms = cache
    dx = np.einsum("nm,ndm->nd", dout, terms) / x  # d term / d x = term / x, 0 / 0 where x == 0
    dW = np.einsum("nd,nm,ndm->dm", x, dout, mask) * scale
    return dx, dW, dout.sum(axis=0)


def backward_fresh_mask(dout, cache):
    x, W, mask, scale, p, rng = cache
    if rng is not None:
        mask = rng.random((x.shape[0], *W.shape)) >= p  # a new mask, not the forward one
    if mask is None:
        return dout @ W.T * scale, x.T @ dout * scale, dout.sum(axis=0)
    dx = np.einsum("nm,ndm->nd", dout, W * mask) * scale
    return dx, np.einsum("nd,nm,ndm->dm", x, dout, mask) * scale, dout.sum(axis=0)


def _backward(dout, cache, *, dW_rule="per_example", db_scale=False, dx_masked=True):
    """The solution's backward pass with one part changed (helper of the wrong variants)."""
    x, W, mask, scale = cache
    db = dout.sum(axis=0) * (scale if db_scale else 1.0)
    if mask is None:
        return dout @ W.T * scale, x.T @ dout * scale, db
    weights = W * mask if dx_masked else np.broadcast_to(W, mask.shape)
    dx = np.einsum("nm,ndm->nd", dout, weights) * scale
    if dW_rule == "no_mask":
        dW = x.T @ dout * scale
    elif dW_rule == "mean_mask":
        dW = x.T @ dout * mask.mean(axis=0) * scale
    else:
        dW = np.einsum("nd,nm,ndm->dm", x, dout, mask) * scale
    return dx, dW, db


def backward_dW_without_mask(dout, cache):
    return _backward(dout, cache, dW_rule="no_mask")


def backward_dW_mean_mask(dout, cache):
    return _backward(dout, cache, dW_rule="mean_mask")


def backward_db_scaled(dout, cache):
    return _backward(dout, cache, db_scale=True)


def backward_dx_without_mask(dout, cache):
    return _backward(dout, cache, dx_masked=False)


def backward_forgets_scale(dout, cache):
    x, W, mask, _ = cache
    return _backward(dout, (x, W, mask, 1.0))


# Classic mistakes: moments and moment matching ----------------------------------------------------


def moments_x_not_squared(x, W, b, p):
    return x @ W + b, p / (1.0 - p) * x @ (W**2)


def moments_mask_variance(x, W, b, p):
    return x @ W + b, p * (1.0 - p) * (x**2) @ (W**2)  # the unscaled mask's variance


def moments_no_factor(x, W, b, p):
    return x @ W + b, (x**2) @ (W**2)  # right only at p = 0.5


def moments_classic_mean(x, W, b, p):
    return (1.0 - p) * (x @ W) + b, p / (1.0 - p) * (x**2) @ (W**2)


def moments_square_of_sum(x, W, b, p):
    return x @ W + b, p / (1.0 - p) * (x @ W) ** 2


def moment_matching_at_mean(x, W, b, p, activation, *, rng, samples):
    mean, _ = dropconnect_moments(x, W, b, p)  # noqa: F821  (the notebook's own)
    return activation(mean)  # weight scaling, not moment matching


def moment_matching_variance_as_std(x, W, b, p, activation, *, rng, samples):
    mean, var = dropconnect_moments(x, W, b, p)  # noqa: F821  (the notebook's own)
    draws = rng.standard_normal((samples, *mean.shape))
    return activation(mean + var * draws).mean(axis=0)


def moment_matching_own_generator(x, W, b, p, activation, *, rng, samples):
    mean, var = dropconnect_moments(x, W, b, p)  # noqa: F821  (the notebook's own)
    draws = np.random.default_rng().standard_normal((samples, *mean.shape))
    return activation(mean + np.sqrt(var) * draws).mean(axis=0)


FORWARD_CELLS = frozenset(
    {"forward_train_mask", "forward_eval", "forward_random", "forward_per_example"}
)
BACKWARD_CELLS = frozenset({"backward_dx", "backward_dW", "backward_db", "backward_same_mask"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "dropconnect_forward": forward_loops,
            "dropconnect_backward": backward_loops,
            "dropconnect_moments": moments_loops,
            "moment_matching_predict": moment_matching_loops,
        },
    ),
    Variant(
        "alternative_float32_binomial",
        {
            "dropconnect_forward": forward_float32_binomial,
            "dropconnect_backward": backward_float32,
            "dropconnect_moments": moments_float32,
            "moment_matching_predict": moment_matching_normal,
        },
        helpers=(DropConnectCache,),
    ),
    Variant("alternative_library_mask", {"dropconnect_forward": forward_library_mask}),
    Variant(
        "wrong_mask_shared_by_batch",
        {"dropconnect_forward": forward_shared_mask},
        frozenset({"forward_per_example"}),
        hint="PER EXAMPLE",
    ),
    Variant(
        "wrong_mask_per_input",
        {"dropconnect_forward": forward_input_dropout},
        frozenset({"forward_per_example"}),
        hint="dropout on the inputs",
    ),
    Variant(
        "wrong_not_rescaled",
        {"dropconnect_forward": forward_not_rescaled},
        frozenset({"forward_train_mask", "forward_random"}),
        hint="not rescaled",
    ),
    Variant(
        "wrong_rescaled_by_p",
        {"dropconnect_forward": forward_rescaled_by_p},
        frozenset({"forward_train_mask", "forward_random"}),
        hint="divide by p instead of by 1 - p",
    ),
    Variant(
        "wrong_bias_scaled",
        {"dropconnect_forward": forward_bias_scaled},
        frozenset({"forward_train_mask"}),
        hint="bias is scaled",
    ),
    Variant(
        "wrong_masks_at_eval",
        {"dropconnect_forward": forward_masks_at_eval},
        frozenset({"forward_eval"}),
        hint="nothing is dropped at evaluation",
    ),
    Variant(
        "wrong_mask_applied_at_eval",
        {"dropconnect_forward": forward_mask_at_eval},
        frozenset({"forward_eval"}),
        hint="whatever rng or mask is given",
    ),
    Variant(
        "wrong_scaled_at_eval",
        {"dropconnect_forward": forward_scaled_at_eval},
        frozenset({"forward_eval"}),
        hint="evaluation uses W unchanged",
    ),
    Variant(
        "wrong_fresh_mask_in_backward",
        {"dropconnect_forward": forward_keeps_rng, "dropconnect_backward": backward_fresh_mask},
        frozenset({"backward_same_mask"}),
        hint="do not draw new ones",
    ),
    Variant(
        "wrong_dx_divides_by_x",
        {"dropconnect_forward": forward_keeps_terms, "dropconnect_backward": backward_divides_by_x},
        frozenset({"backward_dx", "backward_same_mask"}),
        hint="do not divide by x",
    ),
    Variant(
        "wrong_dW_without_mask",
        {"dropconnect_backward": backward_dW_without_mask},
        frozenset({"backward_dW"}),
        helpers=(_backward,),
        hint="ignores the mask",
    ),
    Variant(
        "wrong_dW_mean_mask",
        {"dropconnect_backward": backward_dW_mean_mask},
        frozenset({"backward_dW"}),
        helpers=(_backward,),
        hint="BEFORE summing",
    ),
    Variant(
        "wrong_db_scaled",
        {"dropconnect_backward": backward_db_scaled},
        frozenset({"backward_db"}),
        helpers=(_backward,),
        hint="never dropped or scaled",
    ),
    Variant(
        "wrong_dx_without_mask",
        {"dropconnect_backward": backward_dx_without_mask},
        frozenset({"backward_dx", "backward_same_mask"}),
        helpers=(_backward,),
        hint="uses every weight",
    ),
    Variant(
        "wrong_backward_forgets_scale",
        {"dropconnect_backward": backward_forgets_scale},
        frozenset({"backward_dx", "backward_dW"}),
        helpers=(_backward,),
        hint="times the gradient of your forward pass",
    ),
    Variant(
        "wrong_variance_x_not_squared",
        {"dropconnect_moments": moments_x_not_squared},
        frozenset({"moments_variance"}),
        hint="x must be squared",
    ),
    Variant(
        "wrong_variance_mask_factor",
        {"dropconnect_moments": moments_mask_variance},
        frozenset({"moments_variance"}),
        hint="variance of the 0/1 mask",
    ),
    Variant(
        "wrong_variance_no_factor",
        {"dropconnect_moments": moments_no_factor},
        frozenset({"moments_variance"}),
        hint="only at p = 0.5",
    ),
    Variant(
        "wrong_variance_square_of_sum",
        {"dropconnect_moments": moments_square_of_sum},
        frozenset({"moments_variance"}),
        hint="not the square of the sum",
    ),
    Variant(
        "wrong_mean_classic",
        {"dropconnect_moments": moments_classic_mean},
        frozenset({"moments_mean"}),
        hint="weight-scaled",
    ),
    Variant(
        "wrong_moment_matching_at_mean",
        {"moment_matching_predict": moment_matching_at_mean},
        frozenset({"moment_matching"}),
        hint="weight-scaling rule",
    ),
    Variant(
        "wrong_moment_matching_variance_as_std",
        {"moment_matching_predict": moment_matching_variance_as_std},
        frozenset({"moment_matching"}),
        hint="must be sqrt(var)",
    ),
    Variant(
        "wrong_moment_matching_own_generator",
        {"moment_matching_predict": moment_matching_own_generator},
        frozenset({"moment_matching"}),
        hint="same seed",
    ),
    Variant(
        "wrong_forward_calls_library",
        {"dropconnect_forward": forward_via_library},
        FORWARD_CELLS | BACKWARD_CELLS,
        hint="reference implementation",
    ),
]
