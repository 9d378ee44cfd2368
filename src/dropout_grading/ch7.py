"""Checks for chapter 7's graded exercise, ``ch7_modern_architectures/modern_architectures.ipynb``.

The course's first assignment in torch. The student writes, on tensors:

* ``drop_path(branch, p, *, train=True, generator=None, mask=None)``: a residual branch (N, ...)
  times a keep mask (N, 1, ..., 1), one draw per example, over 1 - p in training; ``branch`` at
  evaluation (a given generator or mask is ignored);
* ``dropblock_gamma(p, block_size, height, width)``: the seed rate, with the valid-region
  correction;
* ``dropblock_mask(shape, p, block_size, generator)``: a keep mask (True = kept) of ``shape``
  (N, C, H, W): Bernoulli(gamma) seeds where a whole block fits, each expanded to a square;
* ``AttentionWithDropout(d_model, p, generator)``: an ``nn.Module`` with ``nn.Linear``
  projections ``wq``, ``wk``, ``wv``, ``wo`` whose ``forward(x, mask=None)`` drops attention
  probabilities (after the softmax) in ``train()`` mode only.

Each test cell is a row of a table, as in the other chapters, built on the kit's statistics and
hints (:mod:`dropout_grading.properties`). Exact where the randomness can be injected (``mask=``)
or there is none (gamma, evaluation), against the torch twins in ``dropout_course.torch`` with the
same weights; statistical only on the student's own draws, read back from what a call returns.
The layer is exercised through ``run_layer``, a trusted driver run as one guarded call
(``BoundFunction.drive``), so the audit can run it in its worker.

Devices: every check runs on the CPU, then again on CUDA when ``torch.cuda.is_available()``
(inputs, generators and weights on that device; a result must come back on it). The statistical
bounds are split over the devices, so a correct solution fails with probability < 1e-9 either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dropout_course import dropblock as reference_dropblock
from dropout_course.torch import attention as reference_attention

from .framework import Assignment, CheckFailure, Row, StudentError
from .properties import (
    FALSE_FAIL,
    Explain,
    Functions,
    factor_named,
    matches,
    near,
    require,
    require_close,
    require_count,
    require_independent,
    require_rate,
    require_reproducible,
    scaled,
)
from .sandbox import TensorValue, tensor_value

ASSIGNMENT = Assignment(
    "ch7_modern_architectures",
    notebook="modern_architectures",
    forbidden_modules=(
        "dropout_course.masks",
        "dropout_course.dropout",
        "dropout_course.fast",
        "dropout_course.residual",
        "dropout_course.dropblock",
        "dropout_course.attention",
        "dropout_course.torch",
        "dropout_grading",
    ),
)
check = ASSIGNMENT.check

GENERATOR_ADVICE = (
    "the generator argument (torch.rand(..., generator=generator, device=generator.device), not "
    "torch.rand without it, torch.manual_seed or nn.functional.dropout)"
)


# Devices, inputs and reading results ------------------------------------------------------------


def devices() -> tuple[str, ...]:
    """Where every check runs: the CPU, and CUDA when this machine has it."""
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def new_generator(device: str, seed: int) -> torch.Generator:
    """A torch Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def require_generator_reproducible(
    read: Callable[[torch.Generator], np.ndarray], seed: int, what: str, device: str
) -> None:
    """``read`` gives the same result from two generators on ``device`` seeded alike, and
    different results from different seeds: every draw comes from the generator argument."""
    require_reproducible(
        read,
        seed,
        what=what,
        new_rng=lambda s: new_generator(device, s),
        source=GENERATOR_ADVICE,
        name="generator",
    )


def require_inverted_factor(alive: np.ndarray, p: float, what: str, kept: str, when: str) -> None:
    """The surviving factors ``alive`` (out / x where kept) all equal 1/(1-p): inverted scaling."""
    if alive.size:
        factor = factor_named(p, f"{kept} come out")(float(np.median(alive)))
        require(
            near(alive, np.full_like(alive, 1 / (1 - p))),
            f"{what}: {factor}; they must be multiplied by 1/(1-p){when} (inverted scaling)",
        )


def signed_uniform(rng: np.random.Generator, shape: Sequence[int], device: str) -> torch.Tensor:
    """float32 tensor on ``device``: random signs, |x| in [0.5, 1.5] (no zeros: out / x reads a
    pass's factors back)."""
    values = np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.5, shape)
    return torch.tensor(values, dtype=torch.float32, device=device)


def read_tensor(value: Any, *, what: str, device: str, shape: Sequence[int] | None = None):
    """A student's tensor (a ``TensorValue`` in the audit) as a float64 array and its dtype,
    after checking it is a tensor on ``device`` with ``shape``."""
    if isinstance(value, torch.Tensor):
        value = tensor_value(value)
    if not isinstance(value, TensorValue):
        raise StudentError(f"{what} must be a torch tensor, but it is {type(value).__name__}")
    require(
        value.device == torch.device(device).type,
        f"{what} is on {value.device}, but the inputs are on {device}: create new tensors on the "
        "input's device (device=x.device or device=generator.device)",
    )
    if shape is not None and value.array.shape != tuple(shape):
        raise CheckFailure(
            f"{what} has shape {value.array.shape}, but it must have shape {tuple(shape)}"
        )
    return value.array.astype(np.float64), value.dtype


def read_keep(value: Any, *, what: str, device: str, shape: Sequence[int]) -> np.ndarray:
    """A student's mask as a bool array (True = kept), after checking it holds only 0 and 1."""
    mask, _ = read_tensor(value, what=what, device=device, shape=shape)
    require(
        bool(np.all((mask == 0) | (mask == 1))),
        f"{what} holds values other than 0 and 1: a mask only marks what is kept (True) and "
        "dropped (False)",
    )
    return mask == 1


def same_input(tensor: torch.Tensor, copy: torch.Tensor, what: str, name: str) -> None:
    """``tensor`` came back as ``copy`` holds it: the student's call left it untouched."""
    require(
        torch.equal(tensor, copy),
        f"{what} changed its input {name} in place (e.g. `{name} *= ...` or `{name}.mul_()`): "
        f"compute a new tensor, the caller still needs {name}",
    )


def union_share(*counts: int) -> float:
    """``FALSE_FAIL`` split evenly over the statistical tests of a check (union bound)."""
    return FALSE_FAIL / math.prod(max(1, count) for count in counts)


# Drop-path ----------------------------------------------------------------------------------------

DROP_PATH = ("drop_path",)


def call_drop_path(fns: Functions, branch: torch.Tensor, p: float, **kwargs: Any):
    """The student's ``drop_path`` on a copy of ``branch``: its result read, the call as text."""
    given = branch.clone()
    options = ", ".join(f"{k}={v}" if isinstance(v, bool) else k for k, v in kwargs.items())
    what = f"drop_path(branch {tuple(branch.shape)}, p={p:g}, {options})"
    out = fns["drop_path"](given, p, **kwargs)
    same_input(given, branch, what, "branch")
    return read_tensor(out, what=f"the result of {what}", device=branch.device.type,
                       shape=branch.shape)[0], what  # fmt: skip


def drop_path_train(fns: Functions, *, shape, p_values, seed: int) -> None:
    """Exact: with a given keep mask (bool, then float), ``branch * mask / (1 - p)``; p = 0 with a
    generator and no mask gives ``branch``."""
    rng = np.random.default_rng(seed)
    for device in devices():
        branch = signed_uniform(rng, shape, device)
        x = branch.detach().double().cpu().numpy()
        for i, p in enumerate(p_values):
            keep = rng.random((shape[0],) + (1,) * (len(shape) - 1)) >= p
            keep[0], keep[-1] = True, False  # one kept and one dropped example, whatever the rate
            mask = torch.tensor(keep, device=device)
            mask = mask if i % 2 == 0 else mask.float()
            gen = new_generator(device, seed)
            out, what = call_drop_path(fns, branch, p, train=True, generator=gen, mask=mask)
            kept = x * keep
            explains: list[Explain] = [
                matches(x, "nothing is dropped: multiply by the mask you are given (mask=...)"),
                matches(x * ~keep / (1 - p), "keep and drop are swapped (True marks a KEPT "
                        "example)"),
                scaled(kept, factor_named(p, "the kept examples come out")),
                lambda out: "use the mask you are given (mask=...) instead of drawing a new one",
            ]  # fmt: skip
            require_close(out, kept / (1 - p), what=what, rule="branch * mask / (1 - p)",
                          explains=explains)  # fmt: skip
        out, what = call_drop_path(fns, branch, 0.0, train=True, generator=new_generator(device, 0))
        require_close(out, x, what=what, rule="branch unchanged at p = 0 (nothing dropped)")


def drop_path_eval(fns: Functions, *, shape, p_values, seed: int) -> None:
    """Exact: ``train=False`` returns ``branch``, whatever generator or mask is given."""
    rng = np.random.default_rng(seed)
    for device in devices():
        branch = signed_uniform(rng, shape, device)
        x = branch.detach().double().cpu().numpy()
        for p in p_values:
            keep = rng.random((shape[0],) + (1,) * (len(shape) - 1)) >= p
            keep[0], keep[-1] = True, False
            gen, mask = new_generator(device, seed), torch.tensor(keep, device=device)
            out, what = call_drop_path(fns, branch, p, train=False, generator=gen, mask=mask)
            explains = [
                matches(x * keep / (1 - p), "it drops in evaluation: with train=False return the "
                        "branch as it is, ignoring mask and generator"),
                scaled(x, factor_named(p, "the branch comes out")),
            ]  # fmt: skip
            rule = "branch unchanged at evaluation (inverted scaling; mask and generator ignored)"
            require_close(out, x, what=what, rule=rule, explains=explains)


def drop_path_factors(fns: Functions, shape, p: float, gen: torch.Generator, device: str):
    """The factors ``out / branch`` of a training pass drawing from ``gen``, and the call."""
    branch = signed_uniform(np.random.default_rng(0), shape, device)
    out, what = call_drop_path(fns, branch, p, train=True, generator=gen)
    return out / branch.detach().double().cpu().numpy(), what


def drop_path_per_example(fns: Functions, *, shape, p: float, seed: int) -> None:
    """An example's branch is kept or dropped whole (exact), examples independently (Bernstein
    on neighbouring pairs, ``require_independent``: false fail < 1e-9 over the devices)."""
    for device in devices():
        factors, what = drop_path_factors(fns, shape, p, new_generator(device, seed), device)
        flat = factors.reshape(shape[0], -1)
        varying = ~np.all(np.isclose(flat, flat[:, :1]), axis=1)
        require(
            not varying.any(),
            f"{what}: {varying.mean():.0%} of the examples have some entries kept and others "
            "dropped, but drop-path keeps or drops an example's whole branch: draw a mask of "
            "shape (N, 1, ..., 1), one draw per example (elementwise dropout is not drop-path)",
        )
        require_independent(
            ~np.isclose(flat[:, 0], 0.0), p, delta=union_share(len(devices())), what=what,
            names=lambda axis: "examples",
            hints=lambda axis: "every example is kept or dropped together: one draw for the "
            "whole mini-batch is stochastic depth; drop-path draws one number per example",
        )  # fmt: skip


def drop_path_rate(fns: Functions, *, shape, p_values, seed: int) -> None:
    """Kept examples come out times 1 / (1 - p) (exact), an example is kept with probability
    1 - p (Bernstein, false fail < 1e-9 over rates and devices), the draws come from the
    generator (``require_reproducible``: >= 2000 draws, < 1e-80)."""
    delta = union_share(len(p_values), len(devices()))
    for device in devices():
        for i, p in enumerate(p_values):
            gen = new_generator(device, seed + i)
            factors, what = drop_path_factors(fns, shape, p, gen, device)
            first = factors.reshape(shape[0], -1)[:, 0]
            alive = first[~np.isclose(first, 0.0)]
            require_inverted_factor(alive, p, what, "kept examples", "")
            require_rate(~np.isclose(first, 0.0), p, delta=delta, what=what)

        def read(gen: torch.Generator, device: str = device) -> np.ndarray:
            return drop_path_factors(fns, shape, p_values[0], gen, device)[0]

        require_generator_reproducible(read, seed, "drop_path", device)


# DropBlock ----------------------------------------------------------------------------------------

GAMMA = ("dropblock_gamma",)
MAP_AXES = ("channels", "examples")  # of the transposed (C, N) corner units
MASK = ("dropblock_mask",)
BLOCKS_HINT = (
    "DropBlock drops whole block_size x block_size squares lying inside the map: draw seeds only "
    "where a whole block fits (rows 0..H-b, columns 0..W-b) and expand each seed to its square"
)


def read_number(value: Any, *, what: str) -> float:
    """A returned number (a Python or numpy number, or a one-element tensor) as a float."""
    if isinstance(value, torch.Tensor):
        value = tensor_value(value)
    if isinstance(value, TensorValue):
        value = value.array
    try:
        number = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise StudentError(f"{what} must be a number, but it is {type(value).__name__}") from None
    return number


def dropblock_gamma_value(fns: Functions, *, cases) -> None:
    """Exact: gamma = p / b**2 * H W / ((H - b + 1)(W - b + 1)) for each (p, b, H, W)."""
    for p, b, height, width in cases:
        what = f"dropblock_gamma(p={p:g}, block_size={b}, height={height}, width={width})"
        result = fns["dropblock_gamma"](p, b, height, width)
        gamma = read_number(result, what=f"the result of {what}")
        want = reference_dropblock.dropblock_gamma(p, b, height, width)
        valid = (height - b + 1) * (width - b + 1)
        hints = {
            p / b**2: "that is p / b**2, without the valid-region correction: seeds are drawn only"
            " on the (H - b + 1)(W - b + 1) positions where a block fits, so multiply by "
            "H W / ((H - b + 1)(W - b + 1))",
            p: "that is p: each seed drops a whole b x b block, so divide by block_size**2",
            p / b**2 * valid / (height * width): "the valid-region factor is upside down: it is "
            "H W / ((H - b + 1)(W - b + 1)) >= 1",
            p * height * width / valid: "divide by block_size**2: each seed drops b**2 units",
        }  # fmt: skip
        if near(np.array(gamma), np.array(want)):
            continue
        hint = next((h for value, h in hints.items() if near(np.array(gamma), np.array(value))), "")
        raise CheckFailure(
            f"{what} returned {gamma:.6g}, but gamma = p / b**2 * H W / ((H - b + 1)(W - b + 1)) "
            f"= {want:.6g}" + (f": {hint}" if hint else "")
        )


def call_dropblock_mask(fns: Functions, shape, p: float, b: int, gen: torch.Generator):
    """The student's keep mask (bool array) and the call as text."""
    what = f"dropblock_mask({tuple(shape)}, p={p:g}, block_size={b}, generator)"
    mask = fns["dropblock_mask"](tuple(shape), p, b, gen)
    return read_keep(mask, what=f"the result of {what}", device=gen.device.type, shape=shape), what


def outside_blocks(dropped: np.ndarray, b: int) -> np.ndarray:
    """Dropped units that lie in no fully dropped b x b square inside the map (N, C, H, W)."""
    windows = np.lib.stride_tricks.sliding_window_view(dropped, (b, b), axis=(2, 3))
    anchors = windows.all(axis=(-2, -1))  # squares inside the map that are dropped whole
    return dropped & ~reference_dropblock.expand_seeds(anchors, b)


def dropblock_mask_blocks(fns: Functions, *, shape, block_size: int, p_values, seed: int) -> None:
    """Exact: a bool (or 0/1) mask of ``shape`` on the generator's device, everything kept at
    p = 0, and the dropped units a union of b x b squares inside the map."""
    for device in devices():
        keep, what = call_dropblock_mask(fns, shape, 0.0, block_size, new_generator(device, seed))
        require(
            bool(np.all(keep)),
            f"{what} must keep everything (p is the drop rate; True marks a KEPT unit); if it "
            "keeps nothing, you return drop flags: return the keep mask, the complement of the "
            "blocks",
        )
        for i, p in enumerate(p_values):
            gen = new_generator(device, seed + 1 + i)
            keep, what = call_dropblock_mask(fns, shape, p, block_size, gen)
            stray = outside_blocks(~keep, block_size)
            require(
                not stray.any(),
                f"{what}: {stray.sum()} dropped units (of {(~keep).sum()}) lie in no dropped "
                f"{block_size} x {block_size} square inside the map: {BLOCKS_HINT}; True marks a "
                "KEPT unit",
            )


def dropblock_mask_rate(fns: Functions, *, shape, block_size: int, p_values, seed: int) -> None:
    """The seeds: each corner of a map is covered by exactly one seed position, so it is dropped
    with probability gamma, independently over the (example, channel) maps (Bernstein, and
    Bernstein on neighbouring pairs); the mean dropped fraction per map is
    ``expected_drop_fraction`` (Hoeffding for n maps, values in [0, 1]: P(|mean - mu| >= t) <=
    2 exp(-2 n t**2)); reproducible from the generator (two masks drawn independently agree
    only if every top-left seed does: (1 - 2 gamma (1 - gamma))**maps < 1e-80 for >= 4000 maps
    and gamma >= 0.04). False fail < 1e-9: six tests per rate and device (union bound)."""
    height, width = shape[2:]
    b, maps = block_size, shape[0] * shape[1]
    delta = union_share(6, len(p_values), len(devices()))
    corners = {"top-left": (0, 0), "top-right": (0, -1), "bottom-left": (-1, 0),
               "bottom-right": (-1, -1)}  # fmt: skip
    for device in devices():
        for i, p in enumerate(p_values):
            keep, what = call_dropblock_mask(fns, shape, p, b, new_generator(device, seed + i))
            gamma = reference_dropblock.dropblock_gamma(p, b, height, width)
            hints = {
                p / b**2: "that is p / b**2: gamma misses the valid-region correction",
                1 - gamma: "keep and drop are swapped (True marks a KEPT unit)",
                1 - (1 - gamma) ** (b * b): "that is the rate of a unit covered by b**2 seed "
                "positions: seeds are drawn where a block does not fit inside the map",
            }  # fmt: skip
            require_independent(  # channels first: seeds shared by channels fail there
                keep[:, :, 0, 0].T, gamma, delta=delta, what=f"{what} (top-left units)",
                names=MAP_AXES.__getitem__,
                hints=lambda axis: f"the {MAP_AXES[axis]} share their seeds: draw seeds of shape "
                "(N, C, H - b + 1, W - b + 1)",
            )  # fmt: skip
            for corner, (row, col) in corners.items():
                dropped = ~keep[:, :, row, col]
                require_count(
                    int(dropped.sum()), maps, gamma, delta=delta, hints=hints,
                    what=f"{what}: fraction of the maps whose {corner} unit is dropped (one seed "
                    "position covers it: gamma)",
                )  # fmt: skip
            fraction = float(np.mean(~keep))
            want = reference_dropblock.expected_drop_fraction(p, b, height, width)
            tolerance = math.sqrt(math.log(2 / delta) / (2 * maps))  # Hoeffding over the maps
            require(
                abs(fraction - want) < tolerance,
                f"{what}: dropped fraction {fraction:.4f}, expected {want:.4f} (+- {tolerance:.4f}"
                f"; a correct solution misses by that much with probability < {delta:.0e}): "
                f"{BLOCKS_HINT}, seed rate gamma",
            )

        def read(gen: torch.Generator) -> np.ndarray:
            return call_dropblock_mask(fns, shape, p_values[0], b, gen)[0]

        require_generator_reproducible(read, seed, "dropblock_mask", device)


# Attention with dropout on the probabilities ------------------------------------------------------

LAYER = ("AttentionWithDropout",)


def run_layer(layer_class, d_model, p, generator, state, x, modes, mask=None):
    """The trusted driver of the student's layer (self-contained: it runs inside the guard).

    Builds ``layer_class(d_model, p, generator)``, loads ``state`` (the weights), then returns
    its outputs for ``x`` (and ``mask``, if given) after ``train()`` or ``eval()`` for each of
    ``modes`` ("train" or "eval") in turn, as a tuple.
    """
    layer = layer_class(d_model, p, generator)
    layer.load_state_dict(state)
    outputs = []
    with torch.no_grad():
        for mode in modes:
            layer.train(mode == "train")
            outputs.append(layer(x) if mask is None else layer(x, mask=mask))
    return tuple(outputs)


def reference_weights(d_model: int, device: str, seed: int) -> dict[str, torch.Tensor]:
    """Weights for the four projections, as ``load_state_dict`` takes them: drawn from ``seed``
    within ``nn.Linear``'s bounds +-1/sqrt(d_model), as ``SelfAttention`` draws its own."""
    generator, bound = new_generator(device, seed), 1.0 / math.sqrt(d_model)
    state = {}
    for name in ("wq", "wk", "wv", "wo"):
        for part, shape in (("weight", (d_model, d_model)), ("bias", (d_model,))):
            values = torch.empty(shape, device=device).uniform_(-bound, bound, generator=generator)
            state[f"{name}.{part}"] = values
    return state


def project(state: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """The projection ``name`` (wq, wk, wv or wo) of ``state`` applied to ``x``."""
    return nn.functional.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])


def attention_outputs(state, x: torch.Tensor, p: float, mask=None) -> np.ndarray:
    """The library's attention (``attention_forward``) with the weights ``state`` and the keep
    ``mask`` on the probabilities (None: no dropout), as a float64 array."""
    q, k, v = (project(state, name, x) for name in ("wq", "wk", "wv"))
    out, _ = reference_attention.attention_forward(q, k, v, p, train=mask is not None, mask=mask)
    return project(state, "wo", out).double().cpu().numpy()


def logits_dropped(state, x: torch.Tensor, p: float, mask: torch.Tensor) -> np.ndarray:
    """The output of the classic mistake: dropout on the scores, before the softmax."""
    q, k, v = (project(state, name, x) for name in ("wq", "wk", "wv"))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) * mask / (1 - p)
    return project(state, "wo", torch.softmax(scores, dim=-1) @ v).double().cpu().numpy()


def drive_layer(fns: Functions, d_model, p, gen, state, x, modes, mask=None):
    """The student's outputs for ``modes`` (arrays), and the call as text."""
    what = (
        f"AttentionWithDropout({d_model}, p={p:g}, generator) with loaded weights, "
        f"x {tuple(x.shape)}{', given mask' if mask is not None else ''}, modes {modes}"
    )
    outputs = fns["AttentionWithDropout"].drive(run_layer, d_model, p, gen, state, x, modes, mask)
    require(
        isinstance(outputs, tuple) and len(outputs) == len(modes),
        f"{what}: the layer did not return one output per call",
    )
    read = [
        read_tensor(out, what=f"the output of {what} ({mode})", device=x.device.type,
                    shape=x.shape)[0]
        for out, mode in zip(outputs, modes, strict=True)
    ]  # fmt: skip
    return read, what


def random_mask(rng: np.random.Generator, shape, p: float, device: str, as_float: bool):
    """A keep mask of the probabilities' shape (N, T, T) on ``device`` (bool, or float 0/1)."""
    mask = torch.tensor(rng.random(shape) >= p, device=device)
    return mask.float() if as_float else mask


def attention_train(fns: Functions, *, n: int, t: int, d_model: int, p_values, seed: int) -> None:
    """Exact: in ``train()`` mode with a given mask, the library's attention with that mask on
    the probabilities and the same weights (``reference_weights``)."""
    rng = np.random.default_rng(seed)
    for device in devices():
        for i, p in enumerate(p_values):
            state = reference_weights(d_model, device, seed + i)
            x = torch.tensor(rng.standard_normal((n, t, d_model)), dtype=torch.float32,
                             device=device)  # fmt: skip
            mask = random_mask(rng, (n, t, t), p, device, as_float=i % 2 == 1)
            gen = new_generator(device, seed)
            (out,), what = drive_layer(fns, d_model, p, gen, state, x, ("train",), mask)
            bool_mask = mask.bool()
            want = attention_outputs(state, x, p, bool_mask)
            bias = state["wo.bias"].double().cpu().numpy()
            explains = [
                matches(attention_outputs(state, x, p), "nothing is dropped in train() mode: "
                        "use the mask you are given on the attention probabilities"),
                scaled((want - bias) * (1 - p), factor_named(p, "the kept probabilities come "
                       "out"), offset=bias),
                matches(logits_dropped(state, x, p, bool_mask), "the scores are dropped before "
                        "the softmax; dropout goes on the probabilities, after the softmax"),
                matches(attention_outputs(state, x, p, ~bool_mask), "keep and drop are swapped "
                        "(True marks a KEPT probability)"),
                lambda out: "apply the given mask (mask=...) to the attention probabilities "
                "softmax(q k^T / sqrt(d)) after the softmax, divide by 1 - p, then multiply by v",
            ]  # fmt: skip
            rule = "wo(dropout(softmax(q k^T / sqrt(d_model)), mask) v) with the given mask"
            require_close(out, want, what=what, rule=rule, explains=explains)


def attention_eval(fns: Functions, *, n: int, t: int, d_model: int, p_values, seed: int) -> None:
    """Exact: after ``eval()`` (also after a ``train()`` pass), no dropout and no scaling, a given
    mask ignored."""
    rng = np.random.default_rng(seed)
    for device in devices():
        for i, p in enumerate(p_values):
            state = reference_weights(d_model, device, seed + i)
            x = torch.tensor(rng.standard_normal((n, t, d_model)), dtype=torch.float32,
                             device=device)  # fmt: skip
            mask = random_mask(rng, (n, t, t), p, device, as_float=False)
            gen = new_generator(device, seed)
            modes = ("eval", "train", "eval")
            outputs, what = drive_layer(fns, d_model, p, gen, state, x, modes, mask)
            want = attention_outputs(state, x, p)
            bias = state["wo.bias"].double().cpu().numpy()
            explains = [
                matches(attention_outputs(state, x, p, mask), "it drops in eval() mode: drop only "
                        "while self.training is True"),
                scaled(want - bias, factor_named(p, "at evaluation, the probabilities come out"),
                       offset=bias),
            ]  # fmt: skip
            rule = "the attention output without dropout (eval() mode ignores the mask)"
            for index in (0, 2):
                require_close(outputs[index], want, what=f"{what}, output {index + 1}", rule=rule,
                              explains=explains)  # fmt: skip


def readable_state(d_model: int, device: str) -> dict[str, torch.Tensor]:
    """Weights that make a pass show its mask: q = k = 0 (uniform probabilities 1/T), v = x and
    wo the identity, so for one-hot positions x the output row i, column j is m_ij / ((1-p) T)."""
    zero = torch.zeros(d_model, d_model, device=device)
    eye, bias = torch.eye(d_model, device=device), torch.zeros(d_model, device=device)
    weights = {"wq": zero, "wk": zero, "wv": eye, "wo": eye}
    state = {}
    for name, weight in weights.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = weight.clone(), bias.clone()
    return state


ATTENTION_AXES = ("sequences", "queries", "keys")


def attention_masks(fns: Functions, d_model: int, p: float, gen, n: int, t: int, modes=("train",)):
    """The factors m / (1 - p) of the masks of passes in ``modes``, read back through
    ``readable_state`` (x: n copies of the one-hot positions), and the call as text."""
    device = gen.device.type
    x = torch.eye(d_model, device=device)[:t].expand(n, t, d_model).contiguous()
    outputs, what = drive_layer(fns, d_model, p, gen, readable_state(d_model, device), x, modes)
    return [out[:, :, :t] * t for out in outputs], what


def attention_draws(fns, *, n: int, t: int, d_model: int, p_values, seed: int) -> None:
    """On the masks read back (``attention_masks``): kept probabilities times 1 / (1 - p)
    (exact), kept with probability 1 - p and independent over sequences, queries and keys
    (Bernstein; false fail < 1e-9 over two tests, rates and devices), drawn from the generator
    (``require_reproducible``: n t t >= 2000 draws, < 1e-80)."""
    require(d_model >= t, "the check needs d_model >= t (one-hot positions)")
    delta = union_share(2, len(p_values), len(devices()))
    for device in devices():
        for i, p in enumerate(p_values):
            (factors,), what = attention_masks(
                fns, d_model, p, new_generator(device, seed + i), n, t
            )
            alive = factors[~np.isclose(factors, 0.0)]
            if alive.size == factors.size and near(alive, np.ones_like(alive)):
                raise CheckFailure(
                    f"{what}: no attention probability was dropped in train() mode; with equal "
                    "scores, dropping scores before the softmax changes nothing: dropout goes on "
                    "the probabilities, after the softmax"
                )
            require_inverted_factor(alive, p, what, "kept probabilities", " in training")
            keep = ~np.isclose(factors, 0.0)
            require_rate(keep, p, delta=delta, what=what)
            require_independent(
                keep, p, delta=delta, what=what, names=ATTENTION_AXES.__getitem__,
                hints=lambda axis: f"the {ATTENTION_AXES[axis]} share their draws: draw one "
                "number per attention probability, a mask of shape (N, T, T)",
            )  # fmt: skip

        def read(gen: torch.Generator) -> np.ndarray:
            return attention_masks(fns, d_model, p_values[0], gen, n, t)[0][0]

        require_generator_reproducible(read, seed, "AttentionWithDropout in train()", device)


def cell(summary: str, prop, functions: tuple[str, ...], **defaults: Any) -> Row:
    """A row of the table: ``prop(fns, **parameters)`` on the student's ``functions``."""
    return Row(summary, prop, functions, defaults)


# A table: one row per test cell (its property and visible defaults), laid out as such.
# fmt: off
ASSIGNMENT.declare({
    "drop_path_train": cell(
        "Training pass with a given mask: out = branch * mask / (1 - p); p = 0 keeps the branch",
        drop_path_train, DROP_PATH, shape=(40, 6, 5), p_values=(0.3, 0.6), seed=0),
    "drop_path_eval": cell(
        "Evaluation pass: out = branch, whatever mask or generator is given",
        drop_path_eval, DROP_PATH, shape=(30, 8), p_values=(0.3, 0.7), seed=2),
    "drop_path_per_example": cell(
        "drop_path keeps or drops each example's whole branch, independently per example",
        drop_path_per_example, DROP_PATH, shape=(2000, 3, 4), p=0.5, seed=4),
    "drop_path_rate": cell(
        "drop_path keeps an example with probability 1 - p, times 1 / (1 - p), from the generator",
        drop_path_rate, DROP_PATH, shape=(2000, 4, 3), p_values=(0.2, 0.7), seed=6),
    "dropblock_gamma_value": cell(
        "dropblock_gamma = p / b**2 * H W / ((H - b + 1)(W - b + 1)), the valid-region correction",
        dropblock_gamma_value, GAMMA, cases=((0.3, 3, 8, 8), (0.1, 1, 5, 7), (0.5, 5, 9, 12))),
    "dropblock_mask_blocks": cell(
        "dropblock_mask returns a keep mask of shape (N, C, H, W): p = 0 keeps all, drops whole "
        "squares inside the map",
        dropblock_mask_blocks, MASK, shape=(20, 10, 12, 12), block_size=3, p_values=(0.1, 0.4),
        seed=10),
    "dropblock_mask_rate": cell(
        "dropblock_mask seeds at rate gamma where a block fits, independently per map, "
        "reproducibly",
        dropblock_mask_rate, MASK, shape=(50, 80, 6, 6), block_size=4, p_values=(0.3, 0.6),
        seed=12),
    "attention_train": cell(
        "train() with a given mask: the attention probabilities dropped after the softmax, "
        "over 1 - p",
        attention_train, LAYER, n=4, t=6, d_model=8, p_values=(0.3, 0.6), seed=20),
    "attention_eval": cell(
        "eval(): no dropout and no scaling, a given mask ignored, also after a train() pass",
        attention_eval, LAYER, n=4, t=6, d_model=8, p_values=(0.3,), seed=22),
    "attention_draws": cell(
        "train() draws its own mask from the generator: probabilities kept with probability "
        "1 - p, independently, times 1 / (1 - p)",
        attention_draws, LAYER, n=64, t=8, d_model=8, p_values=(0.2, 0.6), seed=24),
})
# fmt: on
ASSIGNMENT.seal()
