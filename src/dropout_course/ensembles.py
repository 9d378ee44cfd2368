"""Dropout as an ensemble, in numpy: a tiny MLP whose mask can be set, and its 2**n subnetworks.

A ``TinyMLP`` is a ReLU network with dropout on the input units of ONE affine layer, its
``dropped_layer``: layer 0 drops the network's inputs, layer 1 the first hidden layer, and so on.
Each of the 2**U keep masks of those U units picks a subnetwork, with probability
``(1 - p)**kept * p**dropped``. Ways to combine the subnetworks' softmax outputs:

* ``ensemble_arithmetic_mean``: the exact mixture, a sum over all 2**U masks;
* ``ensemble_nwgm``: the normalised weighted geometric mean (Baldi & Sadowski, 2014);
* ``weight_scaling_predict``: one pass with dropout off (eval mode), what ``nn.Dropout`` does;
* ``mc_dropout_predict``: Monte Carlo dropout (Gal & Ghahramani, 2016): the mean and variance of
  the probabilities over T random passes.

When the dropped units feed the softmax layer directly (``dropped_layer`` is the last layer) the
logits are affine in the mask, and the NWGM equals weight scaling exactly: the geometric mean of
softmaxes is the softmax of the mean logits. Below a ReLU layer it is only an approximation.

Chapter 3, book/03_ensembles.md. The exact averages visit the 2**U subnetworks one at a time, so
they hold one forward pass in memory whatever U; MC dropout is given (or draws) all its masks at
once, and evaluates all its passes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_mask,
    check_probability,
    check_rank,
    check_scaling,
)
from .dropout import output_scales
from .masks import keep_mask

MAX_ENUMERATED_UNITS = 20
"""Largest number of units whose 2**n masks ``enumerate_masks`` builds (2**20 masks)."""


@dataclass(frozen=True, eq=False)
class TinyMLP:
    """A ReLU MLP with dropout on the inputs of layer ``dropped_layer``.

    Layer l computes ``h @ weights[l] + biases[l]``; a ReLU follows every layer but the last,
    whose outputs are the logits. Works for numpy arrays and (in ``dropout_course.torch``) for
    torch tensors alike.

    Attributes:
        weights: one (D_in, D_out) floating array per layer; D_out of the last is K classes.
        biases: one (D_out,) floating array per layer.
        dropped_layer: index of the layer whose input units are dropped, in [0, layers - 1].
    """

    weights: tuple[Any, ...]
    biases: tuple[Any, ...]
    dropped_layer: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(self.weights))
        object.__setattr__(self, "biases", tuple(self.biases))
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(
                "weights and biases must hold one entry per layer (at least one), "
                f"but got {len(self.weights)} weights and {len(self.biases)} biases"
            )
        for layer, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            check_floating(W, f"weights[{layer}]")
            check_floating(b, f"biases[{layer}]")
            check_rank(W, f"weights[{layer}]", (2,), "D_in inputs, D_out outputs")
            if tuple(b.shape) != (W.shape[1],):
                raise ValueError(
                    f"biases[{layer}] must have shape {(W.shape[1],)} (one per output of "
                    f"weights[{layer}] of shape {tuple(W.shape)}), but got {tuple(b.shape)}"
                )
            if layer and W.shape[0] != self.weights[layer - 1].shape[1]:
                raise ValueError(
                    f"weights[{layer}] of shape {tuple(W.shape)} does not take the outputs of "
                    f"weights[{layer - 1}] of shape {tuple(self.weights[layer - 1].shape)}"
                )
        if self.weights[-1].shape[1] == 0:
            raise ValueError("the last layer must have at least one output (class)")
        check_count(self.dropped_layer, "dropped_layer", 0, len(self.weights) - 1)

    @property
    def n_units(self) -> int:
        """U, the number of dropped units (the inputs of ``weights[dropped_layer]``)."""
        return int(self.weights[self.dropped_layer].shape[0])

    def map_arrays(self, convert: Callable[[Any], Any]) -> TinyMLP:
        """The same network with ``convert`` applied to every array (e.g. to make torch tensors)."""
        return TinyMLP(
            tuple(map(convert, self.weights)), tuple(map(convert, self.biases)), self.dropped_layer
        )


def init_tiny_mlp(sizes: Sequence[int], rng: np.random.Generator, *, dropped_layer: int) -> TinyMLP:
    """Float64 ``TinyMLP`` with layer widths ``sizes`` (inputs, hidden..., classes).

    Weights are He-normal, ``N(0, 2 / D_in)``; biases are zero. ``dropped_layer`` indexes the
    layers, so it also indexes ``sizes``: 0 drops the inputs, 1 the first hidden layer.
    """
    shapes = layer_shapes(sizes)
    weights = tuple(
        np.sqrt(2.0 / d_in) * rng.standard_normal((d_in, d_out)) for d_in, d_out in shapes
    )
    return TinyMLP(weights, tuple(np.zeros(d_out) for _, d_out in shapes), dropped_layer)


# --- argument checks, shared with the torch twins -----------------------------------------------


def layer_shapes(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(D_in, D_out) of each layer for layer widths ``sizes``, after checking them."""
    widths = [check_count(size, f"sizes[{i}]", 1) for i, size in enumerate(sizes)]
    if len(widths) < 2:
        raise ValueError(f"sizes must hold at least an input and an output width, got {sizes!r}")
    return list(pairwise(widths))


def check_params(params: Any) -> None:
    """Raise TypeError unless ``params`` is a TinyMLP."""
    if not isinstance(params, TinyMLP):
        raise TypeError(f"params must be a TinyMLP, but got {type(params).__name__}")


def check_inputs(params: TinyMLP, x: Any) -> None:
    """Raise unless ``params`` is a TinyMLP and ``x`` an (N, D) floating batch for it."""
    check_params(params)
    check_floating(x, "x")
    check_rank(x, "x", (2,), "N examples, D features")
    if x.shape[1] != params.weights[0].shape[0]:
        raise ValueError(
            f"x must have {params.weights[0].shape[0]} features (the rows of weights[0] of shape "
            f"{tuple(params.weights[0].shape)}), but got shape {tuple(x.shape)}"
        )


def check_enumerable(n_units: Any, name: str = "n_units") -> int:
    """Return ``n_units`` after checking 0 <= n_units <= MAX_ENUMERATED_UNITS."""
    n_units = check_count(n_units, name, 0)
    if n_units > MAX_ENUMERATED_UNITS:
        raise ValueError(
            f"{name} must be <= {MAX_ENUMERATED_UNITS} for exact enumeration "
            f"(2**{n_units} masks would not fit in memory), but got {name}={n_units}"
        )
    return n_units


def check_unit_mask(mask: Any, n_examples: int, n_units: int) -> None:
    """Raise unless ``mask`` is a 0/1 mask of shape (U,) (whole batch) or (N, U)."""
    rank = len(getattr(mask, "shape", ()))
    check_mask(mask, (n_units,) if rank == 1 else (n_examples, n_units), "mask")


def check_pass_masks(masks: Any, n_examples: int, n_units: int) -> None:
    """Raise unless ``masks`` is a 0/1 mask of shape (T, U) or (T, N, U) with T >= 1."""
    shape = tuple(getattr(masks, "shape", ()))
    passes = shape[0] if shape else 0
    check_mask(
        masks, (passes, n_units) if len(shape) == 2 else (passes, n_examples, n_units), "masks"
    )
    if passes == 0:
        raise ValueError(f"masks must hold at least one pass (T >= 1), but got shape {shape}")


# --- the network --------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the K classes) of logits (..., K), computed stably."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis (the K classes) of logits (..., K), computed stably."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _head(params: TinyMLP, units: np.ndarray) -> np.ndarray:
    """Logits (..., K) from (already masked) dropped units (..., U): the layers above them."""
    h, last = units, len(params.weights) - 1
    for layer in range(params.dropped_layer, last + 1):
        h = h @ params.weights[layer] + params.biases[layer]
        if layer < last:
            h = np.maximum(h, 0)
    return h


def dropped_units(params: TinyMLP, x: np.ndarray) -> np.ndarray:
    """Values (N, U) of the units dropout acts on (x itself when ``dropped_layer`` is 0)."""
    check_inputs(params, x)
    h, layers = x, params.dropped_layer
    for W, b in zip(params.weights[:layers], params.biases[:layers], strict=True):
        h = np.maximum(h @ W + b, 0)
    return h


def logits_from_units(params: TinyMLP, units: np.ndarray) -> np.ndarray:
    """Logits (..., K) of the layers above the dropped units, given their values (..., U).

    No dropout and no scaling happens here: pass units already masked (an ablation) or scaled.
    """
    check_params(params)
    check_floating(units, "units")
    if units.ndim == 0 or units.shape[-1] != params.n_units:
        raise ValueError(
            f"units must have {params.n_units} entries on the last axis (the rows of "
            f"weights[{params.dropped_layer}]), but got shape {tuple(units.shape)}"
        )
    return _head(params, units)


def mlp_probs(
    params: TinyMLP,
    x: np.ndarray,
    p: float,
    *,
    mask: np.ndarray | None = None,
    scaling: str = "inverted",
) -> np.ndarray:
    """Softmax probabilities (N, K) of one subnetwork, or of the eval network when mask is None.

    Args:
        params: the network; dropout acts on the inputs of ``weights[params.dropped_layer]``.
        x: (N, D) inputs, floating dtype.
        p: probability of dropping a unit, in [0, 1] (sets the scale factors).
        mask: keep mask (bool or 0/1) of shape (U,), one subnetwork for the whole batch, or
            (N, U), one per example. Kept units are scaled as in training (``1 / (1 - p)``
            when inverted). None: evaluation mode, i.e. weight scaling.
        scaling: "inverted" or "classic", as in ``dropout_forward``.
    """
    train_scale, eval_scale = output_scales(p, scaling)
    units = dropped_units(params, x)
    if mask is None:
        return softmax(_head(params, units * eval_scale))
    check_unit_mask(mask, *units.shape)
    return softmax(_head(params, np.where(mask, units * train_scale, 0)))


def weight_scaling_predict(
    params: TinyMLP, x: np.ndarray, p: float, *, scaling: str = "inverted"
) -> np.ndarray:
    """Probabilities (N, K) of the single eval-mode pass: the weight-scaling rule."""
    return mlp_probs(params, x, p, scaling=scaling)


def enumerate_masks(n_units: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """All 2**n keep masks and their probabilities.

    Returns:
        ``(masks, probs)``: masks (2**n, n) bool, row i keeping unit j when bit j of i is set;
        probs (2**n,) float64, ``(1 - p)**kept * p**(n - kept)``, summing to 1.
    """
    n_units, p = check_enumerable(n_units), check_probability(p)
    bits = np.arange(2**n_units)[:, None] >> np.arange(n_units)  # row i: i >> j in column j
    masks = (bits & 1) == 1  # bit j of i
    kept = masks.sum(axis=1)
    return masks, (1.0 - p) ** kept * p ** (n_units - kept)


def _ensemble_sum(
    params: TinyMLP, x: np.ndarray, p: float, scaling: str, transform: Callable
) -> np.ndarray:
    """Exact ``sum_m P(m) transform(z_m)`` (N, K) over all 2**U masks m, where ``z_m`` are the
    logits of subnetwork m; summed one subnetwork at a time, in float64, returned in the
    dtype of the dropped units."""
    train_scale, _ = output_scales(p, scaling)
    kept_values = dropped_units(params, x) * train_scale  # what a kept unit passes on
    masks, probs = enumerate_masks(check_enumerable(params.n_units, "params.n_units"), p)
    total = sum(
        prob * transform(logits_from_units(params, np.where(mask, kept_values, 0)))
        for mask, prob in zip(masks, probs, strict=True)
    )
    return total.astype(kept_values.dtype, copy=False)


def ensemble_arithmetic_mean(
    params: TinyMLP, x: np.ndarray, p: float, *, scaling: str = "inverted"
) -> np.ndarray:
    """Exact mixture (N, K): ``sum_m P(m) softmax_m`` over all 2**U subnetworks (U <= 20)."""
    return _ensemble_sum(params, x, p, scaling, softmax)


def ensemble_nwgm(
    params: TinyMLP, x: np.ndarray, p: float, *, scaling: str = "inverted"
) -> np.ndarray:
    """Normalised weighted geometric mean (N, K) over all 2**U subnetworks (U <= 20).

    ``exp(sum_m P(m) log softmax_m)``, renormalised over the K classes; computed in log space.
    """
    return softmax(_ensemble_sum(params, x, p, scaling, log_softmax))


def mc_dropout_moments(
    params: TinyMLP, x: np.ndarray, p: float, masks: np.ndarray, *, scaling: str = "inverted"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (each (N, K)) of the probabilities over T passes with given masks.

    Args:
        masks: keep masks (bool or 0/1) of shape (T, U) (one per pass) or (T, N, U) (one per
            pass and example), T >= 1.

    Returns:
        ``(mean, var)``: averages of the probabilities (not the logits) over the passes, and
        their variance over the passes (divided by T, so 0 when every pass agrees).
    """
    train_scale, _ = output_scales(p, scaling)
    units = dropped_units(params, x)
    check_pass_masks(masks, *units.shape)
    per_example = masks if masks.ndim == 3 else masks[:, None, :]  # (T, N or 1, U)
    passes = softmax(logits_from_units(params, np.where(per_example, units * train_scale, 0)))
    return passes.mean(axis=0), passes.var(axis=0)  # over the T passes


def mc_dropout_predict(
    params: TinyMLP,
    x: np.ndarray,
    p: float,
    *,
    rng: np.random.Generator,
    samples: int,
    scaling: str = "inverted",
) -> tuple[np.ndarray, np.ndarray]:
    """MC dropout: ``mc_dropout_moments`` over ``samples`` passes, with a fresh mask per pass
    and per example drawn from ``rng`` (masks of shape (samples, N, U))."""
    samples = check_count(samples, "samples", 1)
    p, scaling = check_probability(p), check_scaling(scaling)
    check_inputs(params, x)
    masks = keep_mask((samples, len(x), params.n_units), p, rng)
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)
