"""Dropout as an ensemble, in torch: the twins of :mod:`dropout_course.ensembles`.

The same ``TinyMLP`` holds torch tensors here (``params.map_arrays(torch.from_numpy)`` converts a
numpy one); every function runs on the device of ``x``, where the parameters must live too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._validate import check_count, check_floating, check_probability, check_scaling
from ..dropout import output_scales
from ..ensembles import (
    TinyMLP,
    check_enumerable,
    check_inputs,
    check_params,
    check_pass_masks,
    check_unit_mask,
    layer_shapes,
)
from ..ensembles import enumerate_masks as _enumerate_masks_numpy
from .masks import check_generator, keep_mask


def init_tiny_mlp(
    sizes: Sequence[int],
    generator: torch.Generator,
    *,
    dropped_layer: int,
    dtype: torch.dtype = torch.float64,
) -> TinyMLP:
    """``TinyMLP`` on ``generator.device`` with layer widths ``sizes`` (inputs, hidden...,
    classes): He-normal weights ``N(0, 2 / D_in)``, zero biases."""
    shapes = layer_shapes(sizes)
    generator = check_generator(generator)
    device = generator.device
    weights = tuple(
        (2.0 / d_in) ** 0.5
        * torch.randn((d_in, d_out), generator=generator, device=device, dtype=dtype)
        for d_in, d_out in shapes
    )
    biases = tuple(torch.zeros(d_out, device=device, dtype=dtype) for _, d_out in shapes)
    return TinyMLP(weights, biases, dropped_layer)


def _head(params: TinyMLP, units: torch.Tensor) -> torch.Tensor:
    """Logits (..., K) from (already masked) dropped units (..., U): the layers above them."""
    h, last = units, len(params.weights) - 1
    for layer in range(params.dropped_layer, last + 1):
        h = h @ params.weights[layer] + params.biases[layer]
        if layer < last:
            h = torch.relu(h)
    return h


def dropped_units(params: TinyMLP, x: torch.Tensor) -> torch.Tensor:
    """Values (N, U) of the units dropout acts on (x itself when ``dropped_layer`` is 0)."""
    check_inputs(params, x)
    h, layers = x, params.dropped_layer
    for W, b in zip(params.weights[:layers], params.biases[:layers], strict=True):
        h = torch.relu(h @ W + b)
    return h


def logits_from_units(params: TinyMLP, units: torch.Tensor) -> torch.Tensor:
    """Logits (..., K) of the layers above the dropped units, given their values (..., U)."""
    check_params(params)
    check_floating(units, "units")
    if units.ndim == 0 or units.shape[-1] != params.n_units:
        raise ValueError(
            f"units must have {params.n_units} entries on the last axis (the rows of "
            f"weights[{params.dropped_layer}]), but got shape {tuple(units.shape)}"
        )
    return _head(params, units)


def _where_kept(mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` where ``mask`` (0/1, broadcasting) keeps, 0 elsewhere, on values' device."""
    return torch.where(mask.to(device=values.device, dtype=torch.bool), values, 0.0)


def mlp_probs(
    params: TinyMLP,
    x: torch.Tensor,
    p: float,
    *,
    mask: torch.Tensor | None = None,
    scaling: str = "inverted",
) -> torch.Tensor:
    """Softmax probabilities (N, K) of one subnetwork (mask (U,) or (N, U)), or of the eval
    network (weight scaling) when ``mask`` is None."""
    train_scale, eval_scale = output_scales(p, scaling)
    units = dropped_units(params, x)
    if mask is None:
        return torch.softmax(_head(params, units * eval_scale), dim=-1)
    check_unit_mask(mask, *units.shape)
    return torch.softmax(_head(params, _where_kept(mask, units * train_scale)), dim=-1)


def weight_scaling_predict(
    params: TinyMLP, x: torch.Tensor, p: float, *, scaling: str = "inverted"
) -> torch.Tensor:
    """Probabilities (N, K) of the single eval-mode pass: the weight-scaling rule."""
    return mlp_probs(params, x, p, scaling=scaling)


def enumerate_masks(
    n_units: int, p: float, *, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2**n keep masks (2**n, n) bool and their float64 probabilities (2**n,) on ``device``,
    in the order of the numpy twin."""
    masks, probs = _enumerate_masks_numpy(n_units, p)
    return torch.from_numpy(masks).to(device), torch.from_numpy(probs).to(device)


def _ensemble_sum(
    params: TinyMLP, x: torch.Tensor, p: float, scaling: str, transform: Callable
) -> torch.Tensor:
    """Exact ``sum_m P(m) transform(z_m)`` (N, K) over all 2**U masks m, one subnetwork at a
    time, in float64 (as numpy), returned in the dtype of the dropped units."""
    train_scale, _ = output_scales(p, scaling)
    kept_values = dropped_units(params, x) * train_scale  # what a kept unit passes on
    n_units = check_enumerable(params.n_units, "params.n_units")
    masks, probs = enumerate_masks(n_units, p, device=kept_values.device)
    total = sum(
        prob * transform(logits_from_units(params, _where_kept(mask, kept_values))).double()
        for mask, prob in zip(masks, probs, strict=True)
    )
    return total.to(kept_values.dtype)


def ensemble_arithmetic_mean(
    params: TinyMLP, x: torch.Tensor, p: float, *, scaling: str = "inverted"
) -> torch.Tensor:
    """Exact mixture (N, K): ``sum_m P(m) softmax_m`` over all 2**U subnetworks (U <= 20)."""
    return _ensemble_sum(params, x, p, scaling, lambda logits: torch.softmax(logits, dim=-1))


def ensemble_nwgm(
    params: TinyMLP, x: torch.Tensor, p: float, *, scaling: str = "inverted"
) -> torch.Tensor:
    """Normalised weighted geometric mean (N, K) over all 2**U subnetworks (U <= 20)."""
    log_mean = _ensemble_sum(
        params, x, p, scaling, lambda logits: torch.log_softmax(logits, dim=-1)
    )
    return torch.softmax(log_mean, dim=-1)


def mc_dropout_moments(
    params: TinyMLP, x: torch.Tensor, p: float, masks: torch.Tensor, *, scaling: str = "inverted"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (divided by T), each (N, K), of the probabilities over T passes with
    the keep masks ``masks`` of shape (T, U) or (T, N, U)."""
    train_scale, _ = output_scales(p, scaling)
    units = dropped_units(params, x)
    check_pass_masks(masks, *units.shape)
    per_example = masks if masks.ndim == 3 else masks[:, None, :]  # (T, N or 1, U)
    logits = logits_from_units(params, _where_kept(per_example, units * train_scale))
    passes = torch.softmax(logits, dim=-1)  # (T, N, K)
    return passes.mean(dim=0), passes.var(dim=0, correction=0)  # over the T passes


def mc_dropout_predict(
    params: TinyMLP,
    x: torch.Tensor,
    p: float,
    *,
    generator: torch.Generator,
    samples: int,
    scaling: str = "inverted",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MC dropout: ``mc_dropout_moments`` over ``samples`` passes, with a fresh mask per pass
    and per example drawn from ``generator`` (masks of shape (samples, N, U))."""
    samples = check_count(samples, "samples", 1)
    p, scaling = check_probability(p), check_scaling(scaling)
    check_inputs(params, x)
    masks = keep_mask((samples, len(x), params.n_units), p, generator)
    return mc_dropout_moments(params, x, p, masks, scaling=scaling)
