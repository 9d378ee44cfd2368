"""Chapter 3 (ensembles): classic mistakes, each with the test cells it must lose, and correct
alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission). It uses only what the notebook's read-only cell imports (``np``, ``mlp_probs``),
the notebook's own functions, and the standard library, so it behaves the same in a unit test
and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def enumerate_masks_product(n_units, p):
    """Masks in itertools.product order (the reverse of the binary order), as 0/1 integers."""
    import itertools

    masks = np.array(list(itertools.product([1, 0], repeat=n_units)), dtype=int).reshape(
        -1, n_units
    )
    probs = np.array([np.prod([1 - p if kept else p for kept in row]) for row in masks])
    return masks, probs


def mean_loops(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821  (the notebook's own)
    total = np.zeros((len(x), params.weights[-1].shape[1]))
    for mask, weight in zip(masks, probs, strict=True):
        total += weight * mlp_probs(params, x, p, mask=mask, scaling=scaling)  # noqa: F821
    return total


def nwgm_loops(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821
    log_total = np.zeros((len(x), params.weights[-1].shape[1]))
    for mask, weight in zip(masks, probs, strict=True):
        log_total += weight * np.log(mlp_probs(params, x, p, mask=mask, scaling=scaling))  # noqa: F821
    unnormalised = np.exp(log_total)
    return unnormalised / unnormalised.sum(axis=1, keepdims=True)


def moments_loops(params, x, p, masks, *, scaling="inverted"):
    passes = [mlp_probs(params, x, p, mask=mask, scaling=scaling) for mask in masks]  # noqa: F821
    mean = sum(passes) / len(passes)
    return mean, sum((probs - mean) ** 2 for probs in passes) / len(passes)


def predict_shared_masks(params, x, p, *, rng, samples, scaling="inverted"):
    """One mask per pass, shared by the whole batch: MC dropout too."""
    masks = [rng.uniform(size=params.n_units) >= p for _ in range(samples)]
    return mc_dropout_moments(params, x, p, np.array(masks), scaling=scaling)  # noqa: F821


def _logits(params, units):
    """The layers above the dropped units, written out (no library call)."""
    hidden = units
    last = len(params.weights) - 1
    for layer in range(params.dropped_layer, last + 1):
        hidden = hidden @ params.weights[layer] + params.biases[layer]
        if layer < last:
            hidden = np.maximum(hidden, 0)
    return hidden


def _dropped(params, x):
    hidden = x
    for layer in range(params.dropped_layer):
        hidden = np.maximum(hidden @ params.weights[layer] + params.biases[layer], 0)
    return hidden


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _member_log_probs(params, x, p, masks, scaling):
    """Log-probabilities (M, N, K) of the subnetworks with masks (M, U) or (M, N, U)."""
    scale = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    units = _dropped(params, x)
    masks = masks if masks.ndim == 3 else masks[:, None, :]
    scaled = units * masks.astype(units.dtype) * units.dtype.type(scale)
    return _log_softmax(_logits(params, scaled))


def enumerate_masks_float32(n_units, p):
    """Binary order reversed (row i keeps unit j when bit n-1-j of i is set), float32."""
    bits = (np.arange(2**n_units)[:, None] >> np.arange(n_units)[::-1]) & 1
    masks = bits.astype(np.float32)
    probs = np.where(masks == 1, 1 - p, p).prod(axis=1)
    return masks, probs.astype(np.float32)


def mean_vectorised(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821
    member_probs = np.exp(_member_log_probs(params, x, p, masks, scaling))
    return np.tensordot(probs, member_probs, axes=1)


def nwgm_vectorised(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821
    log_geometric = np.tensordot(probs, _member_log_probs(params, x, p, masks, scaling), axes=1)
    return np.exp(_log_softmax(log_geometric))


def moments_vectorised(params, x, p, masks, *, scaling="inverted"):
    member_probs = np.exp(_member_log_probs(params, x, p, np.asarray(masks), scaling))
    mean = member_probs.mean(axis=0)
    return mean, (member_probs**2).mean(axis=0) - mean**2


def predict_binomial(params, x, p, *, rng, samples, scaling="inverted"):
    masks = rng.binomial(1, 1 - p, size=(samples, len(x), params.n_units)).astype(np.float32)
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)  # noqa: F821


# Classic mistakes -------------------------------------------------------------------------------


def enumerate_masks_keep_is_p(n_units, p):
    masks = ((np.arange(2**n_units)[:, None] >> np.arange(n_units)) & 1) == 1
    kept = masks.sum(axis=1)
    return masks, p**kept * (1 - p) ** (n_units - kept)  # p is the DROP probability


def enumerate_masks_misses_last(n_units, p):
    masks = ((np.arange(2**n_units - 1)[:, None] >> np.arange(n_units)) & 1) == 1  # off by one
    kept = masks.sum(axis=1)
    return masks, (1 - p) ** kept * p ** (n_units - kept)


def enumerate_masks_uint8(n_units, p):
    """np.unpackbits on uint8: fine up to 8 units, then the integers wrap and masks repeat."""
    integers = np.arange(2**n_units).astype(np.uint8)[:, None]
    masks = np.unpackbits(integers, axis=1)[:, ::-1][:, :n_units]
    masks = np.pad(masks, ((0, 0), (0, n_units - masks.shape[1])))
    kept = masks.sum(axis=1)
    return masks, (1 - p) ** kept * p ** (n_units - kept)


def mean_uniform_weights(params, x, p, *, scaling="inverted"):
    masks, _ = enumerate_masks(params.n_units, p)  # noqa: F821
    return np.mean([mlp_probs(params, x, p, mask=m, scaling=scaling) for m in masks], axis=0)  # noqa: F821


def nwgm_uniform_weights(params, x, p, *, scaling="inverted"):
    masks, _ = enumerate_masks(params.n_units, p)  # noqa: F821
    log_mean = np.mean(
        [np.log(mlp_probs(params, x, p, mask=m, scaling=scaling)) for m in masks],  # noqa: F821
        axis=0,
    )
    return np.exp(log_mean) / np.exp(log_mean).sum(axis=1, keepdims=True)


def nwgm_unnormalised(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821
    log_mean = sum(
        w * np.log(mlp_probs(params, x, p, mask=m, scaling=scaling))  # noqa: F821
        for m, w in zip(masks, probs, strict=True)
    )
    return np.exp(log_mean)  # the N of NWGM is missing


def mean_ignores_scaling(params, x, p, *, scaling="inverted"):
    masks, probs = enumerate_masks(params.n_units, p)  # noqa: F821
    return sum(w * mlp_probs(params, x, p, mask=m) for m, w in zip(masks, probs, strict=True))  # noqa: F821


def moments_average_logits(params, x, p, masks, *, scaling="inverted"):
    log_probs = _member_log_probs(params, x, p, np.asarray(masks), scaling)
    mean_logits = log_probs.mean(axis=0)  # log-probabilities are logits up to a shift per pass
    mean = np.exp(_log_softmax(mean_logits))
    return mean, np.exp(log_probs).var(axis=0)


def moments_ddof1(params, x, p, masks, *, scaling="inverted"):
    passes = np.stack([mlp_probs(params, x, p, mask=m, scaling=scaling) for m in masks])  # noqa: F821
    return passes.mean(axis=0), passes.var(axis=0, ddof=1)


def moments_logit_variance(params, x, p, masks, *, scaling="inverted"):
    scale = 1.0 if scaling == "classic" else 1.0 / (1.0 - p)
    units = _dropped(params, x)
    masks = np.asarray(masks)
    masks = masks if masks.ndim == 3 else masks[:, None, :]
    logits = _logits(params, units * masks * scale)
    return np.exp(_log_softmax(logits)).mean(axis=0), logits.var(axis=0)


def predict_one_mask(params, x, p, *, rng, samples, scaling="inverted"):
    mask = rng.random((len(x), params.n_units)) >= p  # drawn once ...
    masks = np.broadcast_to(mask, (samples, *mask.shape))  # ... and reused by every pass
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)  # noqa: F821


def predict_reseeds(params, x, p, *, rng, samples, scaling="inverted"):
    fixed = np.random.default_rng(0)  # ignores the rng argument
    masks = fixed.random((samples, len(x), params.n_units)) >= p
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)  # noqa: F821


def moments_std(params, x, p, masks, *, scaling="inverted"):
    passes = np.stack([mlp_probs(params, x, p, mask=m, scaling=scaling) for m in masks])  # noqa: F821
    return passes.mean(axis=0), passes.std(axis=0)  # the spread, not the documented variance


def predict_one_pass_short(params, x, p, *, rng, samples, scaling="inverted"):
    masks = rng.random((samples - 1, len(x), params.n_units)) >= p  # off by one
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)  # noqa: F821


def predict_drops_scaling(params, x, p, *, rng, samples, scaling="inverted"):
    masks = rng.random((samples, len(x), params.n_units)) >= p
    return mc_dropout_moments(params, x, p, masks)  # noqa: F821  (scaling not passed on)


def predict_returns_std(params, x, p, *, rng, samples, scaling="inverted"):
    masks = rng.random((samples, len(x), params.n_units)) >= p
    passes = np.stack([mlp_probs(params, x, p, mask=m, scaling=scaling) for m in masks])  # noqa: F821
    return passes.mean(axis=0), passes.std(axis=0)


def mean_via_library(params, x, p, *, scaling="inverted"):
    from dropout_course.ensembles import ensemble_arithmetic_mean as library_mean

    return library_mean(params, x, p, scaling=scaling)


def nwgm_via_private_helper(params, x, p, *, scaling="inverted"):
    from dropout_course import ensembles

    log_mean = ensembles._ensemble_sum(params, x, p, scaling, ensembles.log_softmax)
    return ensembles.softmax(log_mean)


ENUMERATION_CELLS = frozenset({"enumerate_masks_all", "enumerate_masks_probs"})
NWGM_CELLS = frozenset({"nwgm_normalised", "nwgm_exact"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "enumerate_masks": enumerate_masks_product,
            "ensemble_arithmetic_mean": mean_loops,
            "ensemble_nwgm": nwgm_loops,
            "mc_dropout_moments": moments_loops,
            "mc_dropout_predict": predict_shared_masks,
        },
    ),
    Variant(
        "alternative_vectorised_float32",
        {
            "enumerate_masks": enumerate_masks_float32,
            "ensemble_arithmetic_mean": mean_vectorised,
            "ensemble_nwgm": nwgm_vectorised,
            "mc_dropout_moments": moments_vectorised,
            "mc_dropout_predict": predict_binomial,
        },
        helpers=(_logits, _dropped, _log_softmax, _member_log_probs),
    ),
    Variant(
        "wrong_probs_keep_is_p",
        {"enumerate_masks": enumerate_masks_keep_is_p},
        frozenset({"enumerate_masks_probs"}),
        hint="keep probability",
    ),
    Variant(
        "wrong_enumeration_misses_a_mask",
        {"enumerate_masks": enumerate_masks_misses_last},
        frozenset({"enumerate_masks_all", "arithmetic_mean_exact", "nwgm_exact"}),
        hint="missing",
    ),
    Variant(
        "wrong_enumeration_repeats_masks",
        {"enumerate_masks": enumerate_masks_uint8},
        frozenset({"enumerate_masks_all"}),
        hint="repeat",
    ),
    Variant(
        "wrong_uniform_weights",
        {"ensemble_arithmetic_mean": mean_uniform_weights, "ensemble_nwgm": nwgm_uniform_weights},
        frozenset({"arithmetic_mean_exact", "nwgm_exact"}),
        hint="equal weights",
    ),
    Variant(
        "wrong_nwgm_unnormalised",
        {"ensemble_nwgm": nwgm_unnormalised},
        NWGM_CELLS,
        hint="N of NWGM",
    ),
    Variant(
        "wrong_mean_ignores_scaling",
        {"ensemble_arithmetic_mean": mean_ignores_scaling},
        frozenset({"arithmetic_mean_exact"}),
    ),
    Variant(
        "wrong_mc_averages_logits",
        {"mc_dropout_moments": moments_average_logits},
        frozenset({"mc_mean"}),
        helpers=(_logits, _dropped, _log_softmax, _member_log_probs),
        hint="averaged logits",
    ),
    Variant(
        "wrong_mc_variance_ddof1",
        {"mc_dropout_moments": moments_ddof1},
        frozenset({"mc_variance"}),
        hint="T - 1",
    ),
    Variant(
        "wrong_mc_variance_of_logits",
        {"mc_dropout_moments": moments_logit_variance},
        frozenset({"mc_variance"}),
        helpers=(_logits, _dropped, _log_softmax),
        hint="variance of the logits",
    ),
    Variant(
        "wrong_mc_one_mask_for_all_passes",
        {"mc_dropout_predict": predict_one_mask},
        frozenset({"mc_predict_sampling"}),
        hint="same mask",
    ),
    Variant(
        "wrong_mc_reseeds",
        {"mc_dropout_predict": predict_reseeds},
        frozenset({"mc_predict_sampling"}),
        hint="do not reseed",
    ),
    Variant(
        "wrong_mc_moments_std",
        {"mc_dropout_moments": moments_std},
        frozenset({"mc_variance"}),
        hint="standard deviation",
    ),
    Variant(
        "wrong_mc_predict_one_pass_short",
        {"mc_dropout_predict": predict_one_pass_short},
        frozenset({"mc_predict_sampling"}),
        hint="run exactly samples",
    ),
    Variant(
        "wrong_mc_predict_drops_scaling",
        {"mc_dropout_predict": predict_drops_scaling},
        frozenset({"mc_predict_sampling"}),
        hint="pass `scaling` on",
    ),
    Variant(
        "wrong_mc_predict_returns_std",
        {"mc_dropout_predict": predict_returns_std},
        frozenset({"mc_predict_sampling"}),
        hint="standard deviation",
    ),
    Variant(
        "wrong_mean_calls_library",
        {"ensemble_arithmetic_mean": mean_via_library},
        frozenset({"arithmetic_mean_exact"}),
        hint="reference implementation",
    ),
    Variant(
        "wrong_nwgm_via_private_helper",
        {"ensemble_nwgm": nwgm_via_private_helper},
        NWGM_CELLS,
        hint="reference implementation",
    ),
]

# A submission that monkeypatches numpy so the in-kernel checks pass an unnormalised NWGM:
# autograde gives full marks, the audit (which never runs student code in its own process) takes
# away the cells in ``loses``.
CHEATS = [
    Variant(
        "cheat_numpy_all_true",
        {"ensemble_nwgm": nwgm_unnormalised},
        NWGM_CELLS,
        append={"ensemble_nwgm": "np.all = lambda *args, **kwargs: True"},
    ),
]
