"""Chapter 6 (beyond dense layers): classic mistakes, each with the test cells it must lose, and
correct alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy (``np`` is imported in the notebook's read-only cell), so it
behaves the same in a unit test and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def channel_mask_loops(shape, p, rng):
    mask = np.zeros((shape[0], shape[1]) + (1,) * (len(shape) - 2))
    for example in range(shape[0]):
        for channel in range(shape[1]):
            if rng.uniform() >= p:
                mask[(example, channel) + (0,) * (len(shape) - 2)] = 1.0
    return mask


def locked_mask_loops(shape, p, rng):
    mask = np.zeros((shape[0], 1, shape[2]), dtype=bool)
    for sequence in range(shape[0]):
        for feature in range(shape[2]):
            mask[sequence, 0, feature] = rng.random() < 1.0 - p
    return mask


def gaussian_noise_loops(shape, p, rng):
    noise = np.empty(shape)
    for index in np.ndindex(*shape):
        noise[index] = rng.normal(1.0, (p / (1.0 - p)) ** 0.5)
    return noise


def gaussian_forward_loops(x, p, *, train, rng=None, noise=None):
    if not train:
        return np.array([value for value in x.ravel()]).reshape(x.shape), {}
    if noise is None:
        noise = gaussian_noise(x.shape, p, rng)  # noqa: F821  (the notebook's own gaussian_noise)
    out = np.empty(x.shape)
    for index in np.ndindex(*x.shape):
        out[index] = x[index] * noise[index]
    return out, {"noise": noise}


def channel_mask_binomial_float32(shape, p, rng):
    draws = rng.binomial(1, 1.0 - p, size=shape[:2]).astype(np.float32)
    return draws.reshape(draws.shape + (1,) * (len(shape) - 2))


def locked_mask_binomial_keepdims(shape, p, rng):
    n_sequences, _, n_features = shape
    return rng.binomial(1, 1.0 - p, size=(n_sequences, n_features))[:, np.newaxis, :]


def gaussian_noise_float32(shape, p, rng):
    std = np.float32(np.sqrt(p / (1.0 - p)))
    return np.float32(1.0) + std * rng.standard_normal(shape, dtype=np.float32)


def gaussian_forward_float32(x, p, *, train, rng=None, noise=None):
    if not train:
        return x.astype(np.float32), None
    if noise is None:
        noise = rng.normal(loc=1.0, scale=np.sqrt(p / (1.0 - p)), size=x.shape)
    return (x * noise).astype(np.float32), None


# Classic mistakes: masks ------------------------------------------------------------------------


def channel_mask_per_element(shape, p, rng):
    return rng.random(shape) >= p  # one draw per position: plain dropout


def channel_mask_batch_shared(shape, p, rng):
    return rng.random((1, shape[1]) + (1,) * (len(shape) - 2)) >= p  # one draw per channel


def channel_mask_flipped(shape, p, rng):
    return rng.random(tuple(shape[:2]) + (1,) * (len(shape) - 2)) < p  # keeps with probability p


def locked_mask_per_step(shape, p, rng):
    return rng.random(shape) >= p  # a new mask at every time step


def locked_mask_batch_shared(shape, p, rng):
    return rng.random((1, 1, shape[2])) >= p  # every sequence drops the same features


def locked_mask_time_major(shape, p, rng):
    return rng.random((1, shape[1], shape[2])) >= p  # the (T, N, D) recipe applied to (N, T, D)


def locked_mask_flipped(shape, p, rng):
    return rng.random((shape[0], 1, shape[2])) < p


# Classic mistakes: Gaussian dropout -------------------------------------------------------------


def gaussian_noise_std_p(shape, p, rng):
    return 1.0 + p * rng.standard_normal(shape)


def gaussian_noise_std_odds(shape, p, rng):
    return 1.0 + p / (1.0 - p) * rng.standard_normal(shape)  # the variance used as the std


def gaussian_noise_std_mask(shape, p, rng):
    return 1.0 + np.sqrt(p * (1.0 - p)) * rng.standard_normal(shape)  # std of m, not m / (1 - p)


def gaussian_noise_mean_zero(shape, p, rng):
    return np.sqrt(p / (1.0 - p)) * rng.standard_normal(shape)


def gaussian_forward_additive(x, p, *, train, rng=None, noise=None):
    if not train:
        return x.copy(), None
    if noise is None:
        noise = gaussian_noise(x.shape, p, rng)  # noqa: F821  (here: mean-0 noise)
    return x + noise, None


def gaussian_noise_bernoulli(shape, p, rng):
    return (rng.random(shape) >= p) / (1.0 - p)  # same mean and variance, but a coin


def gaussian_noise_batch_shared(shape, p, rng):
    return np.broadcast_to(1.0 + np.sqrt(p / (1.0 - p)) * rng.standard_normal(shape[1:]), shape)


def gaussian_forward_rescaled(x, p, *, train, rng=None, noise=None):
    if not train:
        return x.copy(), None
    if noise is None:
        noise = gaussian_noise(x.shape, p, rng)  # noqa: F821
    return x * noise / (1.0 - p), None  # the Bernoulli 1 / (1 - p) on top of mean-1 noise


def gaussian_forward_noise_at_eval(x, p, *, train, rng=None, noise=None):
    if noise is None and rng is not None:
        noise = gaussian_noise(x.shape, p, rng)  # noqa: F821  (drawn even when train=False)
    if noise is None:
        return x.copy(), None
    return x * noise, None


def gaussian_forward_given_noise_at_eval(x, p, *, train, rng=None, noise=None):
    if not train:
        return (x.copy() if noise is None else x * noise), None  # given noise applied at eval
    if noise is None:
        noise = gaussian_noise(x.shape, p, rng)  # noqa: F821
    return x * noise, None


def gaussian_forward_ignores_noise(x, p, *, train, rng=None, noise=None):
    if not train:
        return x.copy(), None
    drawn = gaussian_noise(x.shape, p, np.random.default_rng(0) if rng is None else rng)  # noqa: F821
    return x * drawn, None


def channel_mask_via_library(shape, p, rng):
    from dropout_course.masks import channel_mask as library_channel_mask

    return library_channel_mask(shape, p, rng)


def draw_noise_with_library(shape, p, rng):
    from dropout_course import variants

    return variants.gaussian_noise(shape, p, rng)


def gaussian_noise_via_helper(shape, p, rng):
    return draw_noise_with_library(shape, p, rng)


CHANNEL_CELLS = frozenset(
    {"channel_mask_shape", "channel_mask_shared", "channel_mask_rate", "channel_mask_independent"}
)
NOISE_CELLS = frozenset(
    {"gaussian_noise_mean", "gaussian_noise_variance", "gaussian_noise_independent"}
)

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "channel_mask": channel_mask_loops,
            "locked_mask": locked_mask_loops,
            "gaussian_noise": gaussian_noise_loops,
            "gaussian_dropout_forward": gaussian_forward_loops,
        },
    ),
    Variant(
        "alternative_binomial_float32",
        {
            "channel_mask": channel_mask_binomial_float32,
            "locked_mask": locked_mask_binomial_keepdims,
            "gaussian_noise": gaussian_noise_float32,
            "gaussian_dropout_forward": gaussian_forward_float32,
        },
    ),
    Variant(
        "wrong_channel_per_element",
        {"channel_mask": channel_mask_per_element},
        frozenset({"channel_mask_shape", "channel_mask_shared"}),
        hint="separate entry per spatial position",
    ),
    Variant(
        "wrong_channel_batch_shared",
        {"channel_mask": channel_mask_batch_shared},
        frozenset({"channel_mask_shape", "channel_mask_independent"}),
        hint="the examples share their draws",
    ),
    Variant(
        "wrong_channel_keep_drop_flipped",
        {"channel_mask": channel_mask_flipped},
        frozenset({"channel_mask_shape", "channel_mask_rate"}),
        hint="swapped",
    ),
    Variant(
        "wrong_locked_per_step",
        {"locked_mask": locked_mask_per_step},
        frozenset({"locked_mask_shape", "locked_mask_shared"}),
        hint="separate entry per time step",
    ),
    Variant(
        "wrong_locked_batch_shared",
        {"locked_mask": locked_mask_batch_shared},
        frozenset({"locked_mask_shape", "locked_mask_independent"}),
        hint="the sequences share their draws",
    ),
    Variant(
        "wrong_locked_time_major",
        {"locked_mask": locked_mask_time_major},
        frozenset({"locked_mask_shape", "locked_mask_shared", "locked_mask_independent"}),
        hint="one entry for all sequences",
    ),
    Variant(
        "wrong_locked_keep_drop_flipped",
        {"locked_mask": locked_mask_flipped},
        frozenset({"locked_mask_shape", "locked_mask_rate"}),
        hint="swapped",
    ),
    Variant(
        "wrong_noise_std_p",
        {"gaussian_noise": gaussian_noise_std_p},
        frozenset({"gaussian_noise_variance", "gaussian_forward_random"}),
        hint="std = p is the classic slip",
    ),
    Variant(
        "wrong_noise_std_is_variance",
        {"gaussian_noise": gaussian_noise_std_odds},
        frozenset({"gaussian_noise_variance", "gaussian_forward_random"}),
        hint="take its square root",
    ),
    Variant(
        "wrong_noise_std_of_mask",
        {"gaussian_noise": gaussian_noise_std_mask},
        frozenset({"gaussian_noise_variance", "gaussian_forward_random"}),
        hint="std of the 0/1 mask",
    ),
    Variant(
        "wrong_noise_mean_zero",
        {"gaussian_noise": gaussian_noise_mean_zero},
        frozenset({"gaussian_noise_mean", "gaussian_forward_random"}),
        hint="additive noise",
    ),
    Variant(
        "wrong_additive_noise",
        {
            "gaussian_noise": gaussian_noise_mean_zero,
            "gaussian_dropout_forward": gaussian_forward_additive,
        },
        frozenset({"gaussian_noise_mean", "gaussian_forward_train", "gaussian_forward_random"}),
        hint="out is x plus noise",
    ),
    Variant(
        "wrong_noise_bernoulli",
        {"gaussian_noise": gaussian_noise_bernoulli},
        frozenset({"gaussian_noise_variance", "gaussian_forward_random"}),
        hint="Bernoulli mask",
    ),
    Variant(
        "wrong_noise_batch_shared",
        {"gaussian_noise": gaussian_noise_batch_shared},
        frozenset({"gaussian_noise_independent", "gaussian_forward_random"}),
        hint="share their draws",
    ),
    Variant(
        "wrong_forward_rescaled",
        {"gaussian_dropout_forward": gaussian_forward_rescaled},
        frozenset({"gaussian_forward_train", "gaussian_forward_random"}),
        hint="no 1/(1-p) scaling",
    ),
    Variant(
        "wrong_forward_noise_at_eval",
        {"gaussian_dropout_forward": gaussian_forward_noise_at_eval},
        frozenset({"gaussian_forward_eval"}),
        hint="must be x unchanged",
    ),
    Variant(
        "wrong_forward_given_noise_at_eval",
        {"gaussian_dropout_forward": gaussian_forward_given_noise_at_eval},
        frozenset({"gaussian_forward_eval"}),
        hint="whatever rng or noise is given",
    ),
    Variant(
        "wrong_forward_ignores_noise",
        {"gaussian_dropout_forward": gaussian_forward_ignores_noise},
        frozenset({"gaussian_forward_train"}),
        hint="use the noise you are given",
    ),
    Variant(
        "wrong_channel_mask_calls_library",
        {"channel_mask": channel_mask_via_library},
        CHANNEL_CELLS,
        hint="reference implementation",
    ),
    # The import happens at run time, so the dynamic guard catches it: in every call that draws
    # noise, including the forward pass's own draws (given noise and evaluation do not draw).
    Variant(
        "wrong_noise_via_library_helper",
        {"gaussian_noise": gaussian_noise_via_helper},
        NOISE_CELLS | {"gaussian_forward_random"},
        helpers=(draw_noise_with_library,),
        hint="reference implementation",
    ),
]
