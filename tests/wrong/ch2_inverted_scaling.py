"""Chapter 2 (inverted scaling): classic mistakes, each with the test cells it must lose, and
correct alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy (``np`` is imported in the notebook's read-only cell), so it
behaves the same in a unit test and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def keep_mask_loops(shape, p, rng):
    mask = np.zeros(shape, dtype=bool)
    for index in np.ndindex(*shape):
        mask[index] = rng.random() >= p
    return mask


def forward_loops(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return np.array([value * factor for value in x.ravel()]).reshape(x.shape), (None, factor)
    if mask is None:
        mask = keep_mask(x.shape, p, rng)  # noqa: F821  (the notebook's own keep_mask)
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    out = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        if mask[index]:
            out[index] = x[index] * factor
    return out, (mask, factor)


def backward_loops(dout, cache):
    mask, factor = cache
    dx = np.zeros(dout.shape)
    for index in np.ndindex(*dout.shape):
        if mask is None or mask[index]:
            dx[index] = dout[index] * factor
    return dx


def moments_loops(forward, p_values, n_units, scaling, rng):
    means, variances = [], []
    for p in p_values:
        out, _ = forward(np.ones(n_units), p, train=True, rng=rng, scaling=scaling)
        total = sum(float(v) for v in out)
        mean = total / n_units
        means.append(mean)
        variances.append(sum((float(v) - mean) ** 2 for v in out) / n_units)
    return means, variances


def keep_mask_binomial_float32(shape, p, rng):
    return rng.binomial(1, 1.0 - p, size=shape).astype(np.float32)


def forward_float32_dict_cache(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    x = x.astype(np.float32)
    if not train:
        factor = np.float32(1.0 - p) if scaling == "classic" else np.float32(1.0)
        return x * factor, {"mask": None, "factor": factor}
    if mask is None:
        mask = rng.binomial(1, 1.0 - p, size=x.shape)
    factor = np.float32(1.0) if scaling == "classic" else np.float32(1.0 / (1.0 - p))
    mask = mask.astype(np.float32)
    return x * mask * factor, {"mask": mask, "factor": factor}


def backward_float32_dict_cache(dout, cache):
    dout = dout.astype(np.float32)
    if cache["mask"] is None:
        return dout * cache["factor"]
    return dout * cache["mask"] * cache["factor"]


def moments_ddof1(forward, p_values, n_units, scaling, rng):
    outputs = [
        forward(np.ones(n_units), p, train=True, rng=rng, scaling=scaling)[0] for p in p_values
    ]
    return np.array([o.mean() for o in outputs]), np.array([o.var(ddof=1) for o in outputs])


class SavedMask:
    """A cache as an object: the backward pass reads its attributes."""

    def __init__(self, keep, factor):
        self.keep, self.factor = keep, factor


def keep_mask_uniform(shape, p, rng):
    return rng.uniform(size=shape) >= p


def forward_object_cache(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return x * factor, SavedMask(np.ones(x.shape, dtype=bool), factor)
    keep = (rng.uniform(size=x.shape) >= p) if mask is None else mask.astype(bool)
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return np.where(keep, x * factor, 0.0), SavedMask(keep, factor)


def backward_object_cache(dout, cache):
    return np.where(cache.keep, dout * cache.factor, 0.0)


# Classic mistakes -------------------------------------------------------------------------------


def keep_mask_flipped(shape, p, rng):
    return rng.random(shape) < p  # keeps with probability p


def forward_not_rescaled(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return x * factor, (None, factor)
    if mask is None:
        mask = rng.random(x.shape) >= p
    return x * mask, (mask, 1.0)  # inverted training forgets 1 / (1 - p)


def forward_rescaled_by_p(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return x * factor, (None, factor)
    if mask is None:
        mask = rng.random(x.shape) >= p
    factor = 1.0 if scaling == "classic" else 1.0 / p  # p is the DROP probability
    return x * mask * factor, (mask, factor)


def forward_scaled_at_eval(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        return x * (1.0 - p), (None, 1.0 - p)  # inverted evaluation must return x
    if mask is None:
        mask = rng.random(x.shape) >= p
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * mask * factor, (mask, factor)


def forward_drops_at_eval(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if mask is None and rng is not None:
        mask = rng.random(x.shape) >= p  # drawn even when train=False
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        keep = np.ones(x.shape) if mask is None else mask
        return x * keep * factor, (keep, factor)
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * mask * factor, (mask, factor)


def forward_mask_at_eval(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        keep = np.ones(x.shape) if mask is None else mask  # a given mask applied at evaluation
        return x * keep * factor, (keep, factor)
    if mask is None:
        mask = rng.random(x.shape) >= p
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * mask * factor, (mask, factor)


def forward_keeps_output(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    """Stores its output and input, for a backward pass that divides one by the other."""
    if not train:
        out = x * (1.0 - p if scaling == "classic" else 1.0)
    else:
        kept = rng.random(x.shape) >= p if mask is None else mask
        out = x * kept * (1.0 if scaling == "classic" else 1.0 / (1.0 - p))
    return out, (out, x)


def backward_divides_by_x(dout, cache):
    out, x = cache
    return dout * out / x  # d out / d x = out / x, but 0 / 0 where x == 0 (an inactive ReLU unit)


def forward_batch_shared_mask(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return x * factor, (None, factor)
    if mask is None:
        mask = rng.random(x.shape[1:]) >= p  # one mask broadcast over the whole batch
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * mask * factor, (mask, factor)


def forward_classic_eval_unscaled(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    if not train:
        return x.copy(), (None, 1.0)  # classic evaluation must multiply by 1 - p
    if mask is None:
        mask = rng.random(x.shape) >= p
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * mask * factor, (mask, factor)


def forward_keeps_rng(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    """Stores the generator instead of the mask, for a backward pass that redraws."""
    if not train:
        factor = 1.0 - p if scaling == "classic" else 1.0
        return x * factor, (None, factor, p, rng)
    drawn = rng.random(x.shape) >= p if mask is None else mask
    factor = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    return x * drawn * factor, (True, factor, p, rng)


def backward_fresh_mask(dout, cache):
    trained, factor, p, rng = cache
    if trained is None:
        return dout * factor
    return dout * (rng.random(dout.shape) >= p) * factor  # a new mask, not the forward one


def backward_forgets_scale(dout, cache):
    mask, _ = cache
    if mask is None:
        return dout.copy()
    return dout * mask  # misses the forward pass's factor


def moments_standard_deviation(forward, p_values, n_units, scaling, rng):
    outputs = [
        forward(np.ones(n_units), p, train=True, rng=rng, scaling=scaling)[0] for p in p_values
    ]
    return np.array([o.mean() for o in outputs]), np.array([o.std() for o in outputs])


def moments_without_scaling(forward, p_values, n_units, scaling, rng):
    outputs = [forward(np.ones(n_units), p, train=True, rng=rng)[0] for p in p_values]  # default
    return np.array([o.mean() for o in outputs]), np.array([o.var() for o in outputs])


def moments_from_formula(forward, p_values, n_units, scaling, rng):
    """Ignores ``forward``: right for a correct forward, wrong for any other."""
    p = np.asarray(p_values, dtype=float)
    if scaling == "classic":
        return 1.0 - p, p * (1.0 - p)
    return np.ones_like(p), p / (1.0 - p)


def forward_via_library(x, p, *, train, rng=None, mask=None, scaling="inverted"):
    from dropout_course.dropout import dropout_forward as library_forward

    return library_forward(x, p, train=train, rng=rng, mask=mask, scaling=scaling)


def draw_with_library(shape, p, rng):
    from dropout_course import masks

    return masks.keep_mask(shape, p, rng)


def keep_mask_via_helper(shape, p, rng):
    return draw_with_library(shape, p, rng)


KEEP_MASK_CELLS = frozenset({"keep_mask_values", "keep_mask_rate", "keep_mask_independent"})
FORWARD_CELLS = frozenset(
    {"forward_inverted_train", "forward_inverted_eval", "forward_random", "forward_classic"}
)
BACKWARD_CELLS = frozenset({"backward_with_mask", "backward_same_mask"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "keep_mask": keep_mask_loops,
            "dropout_forward": forward_loops,
            "dropout_backward": backward_loops,
            "train_output_moments": moments_loops,
        },
    ),
    Variant(
        "alternative_binomial_float32",
        {
            "keep_mask": keep_mask_binomial_float32,
            "dropout_forward": forward_float32_dict_cache,
            "dropout_backward": backward_float32_dict_cache,
            "train_output_moments": moments_ddof1,
        },
    ),
    Variant(
        "alternative_uniform_object_cache",
        {
            "keep_mask": keep_mask_uniform,
            "dropout_forward": forward_object_cache,
            "dropout_backward": backward_object_cache,
        },
        helpers=(SavedMask,),
    ),
    Variant(
        "wrong_keep_drop_flipped",
        {"keep_mask": keep_mask_flipped},
        frozenset({"keep_mask_values", "keep_mask_rate", "forward_random", "forward_classic"}),
        hint="swapped",
    ),
    Variant(
        "wrong_not_rescaled",
        {"dropout_forward": forward_not_rescaled},
        frozenset({"forward_inverted_train", "forward_random"}),
        hint="not rescaled",
    ),
    Variant(
        "wrong_rescaled_by_p",
        {"dropout_forward": forward_rescaled_by_p},
        frozenset({"forward_inverted_train", "forward_random"}),
        hint="divide by p instead of by 1 - p",
    ),
    Variant(
        "wrong_scaled_at_eval",
        {"dropout_forward": forward_scaled_at_eval},
        frozenset({"forward_inverted_eval"}),
        hint="scales during training only",
    ),
    Variant(
        "wrong_drops_at_eval",
        {"dropout_forward": forward_drops_at_eval},
        frozenset({"forward_inverted_eval"}),
        hint="nothing is dropped at evaluation",
    ),
    Variant(
        "wrong_mask_applied_at_eval",
        {"dropout_forward": forward_mask_at_eval},
        frozenset({"forward_inverted_eval"}),
        hint="ignore a given mask",
    ),
    Variant(
        "wrong_backward_divides_by_x",
        {"dropout_forward": forward_keeps_output, "dropout_backward": backward_divides_by_x},
        BACKWARD_CELLS,
        hint="do not divide by x",
    ),
    Variant(
        "wrong_batch_shared_mask",
        {"dropout_forward": forward_batch_shared_mask},
        frozenset({"forward_random", "forward_classic"}),
        hint="shared by the examples",
    ),
    Variant(
        "wrong_classic_eval_unscaled",
        {"dropout_forward": forward_classic_eval_unscaled},
        frozenset({"forward_classic"}),
        hint="classic dropout scales at evaluation",
    ),
    Variant(
        "wrong_fresh_mask_in_backward",
        {"dropout_forward": forward_keeps_rng, "dropout_backward": backward_fresh_mask},
        BACKWARD_CELLS,
        hint="do not draw a new one",
    ),
    Variant(
        "wrong_backward_forgets_scale",
        {"dropout_backward": backward_forgets_scale},
        BACKWARD_CELLS,
        hint="masked but not scaled",
    ),
    Variant(
        "wrong_moments_standard_deviation",
        {"train_output_moments": moments_standard_deviation},
        frozenset({"experiment_moments"}),
        hint="standard deviation",
    ),
    Variant(
        "wrong_moments_without_scaling",
        {"train_output_moments": moments_without_scaling},
        frozenset({"experiment_moments"}),
        hint="pass `scaling` on to forward",
    ),
    Variant(
        "wrong_moments_from_formula",
        {"train_output_moments": moments_from_formula},
        frozenset({"experiment_moments"}),
        hint="measure the `forward` argument",
    ),
    Variant(
        "wrong_forward_calls_library",
        {"dropout_forward": forward_via_library},
        FORWARD_CELLS | BACKWARD_CELLS,
        hint="reference implementation",
    ),
    Variant(
        "wrong_keep_mask_via_library_helper",
        {"keep_mask": keep_mask_via_helper},
        KEEP_MASK_CELLS,
        helpers=(draw_with_library,),
        hint="reference implementation",
    ),
]

# A submission that monkeypatches numpy so the in-kernel checks pass a wrong forward pass: autograde
# gives full marks, the audit (which never runs student code in its own process) takes away the
# cells in ``loses``.
CHEATS = [
    Variant(
        "cheat_numpy_all_true",
        {"dropout_forward": forward_not_rescaled},
        frozenset({"forward_inverted_train", "forward_random"}),
        append={"dropout_forward": "np.all = lambda *args, **kwargs: True"},
    ),
]
