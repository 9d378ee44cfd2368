"""Chapter 7 (modern architectures, in torch): classic mistakes, each with the test cells it must
lose, and correct alternatives that must keep full marks.

Each function (or class) stands in for the notebook name in its ``Variant`` (its ``def`` or
``class`` is renamed on submission); it uses only ``math``, ``torch`` and ``nn``, which the
notebook's read-only cell imports, so it behaves the same in a unit test and in a submitted
notebook.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wrong import Variant

# Drop-path --------------------------------------------------------------------------------------


def per_example_shape(branch):
    return (branch.shape[0],) + (1,) * (branch.dim() - 1)


def drop_path_bernoulli(branch, p, *, train=True, generator=None, mask=None):
    if not train:
        return branch
    if mask is None:
        keep = torch.full(per_example_shape(branch), 1.0 - p, device=branch.device)
        mask = torch.bernoulli(keep, generator=generator)
    return torch.where(mask.bool(), branch / (1 - p), torch.zeros_like(branch))


def drop_path_per_batch(branch, p, *, train=True, generator=None, mask=None):
    if not train or p == 0:
        return branch.clone()
    if mask is None:
        mask = torch.rand((1,) * branch.dim(), generator=generator, device=generator.device) >= p
    return branch * mask / (1 - p)


def drop_path_per_element(branch, p, *, train=True, generator=None, mask=None):
    if not train or p == 0:
        return branch.clone()
    if mask is None:
        mask = torch.rand(branch.shape, generator=generator, device=generator.device) >= p
    return branch * mask / (1 - p)


def drop_path_not_rescaled(branch, p, *, train=True, generator=None, mask=None):
    if not train:
        return branch.clone()
    if mask is None:
        draws = torch.rand(per_example_shape(branch), generator=generator, device=branch.device)
        mask = draws >= p
    return branch * mask


def drop_path_times_p(branch, p, *, train=True, generator=None, mask=None):
    if not train:
        return branch.clone()
    if mask is None:
        draws = torch.rand(per_example_shape(branch), generator=generator, device=branch.device)
        mask = draws >= p
    return branch * mask * p if p > 0 else branch.clone()


def drop_path_in_eval(branch, p, *, train=True, generator=None, mask=None):
    if p == 0:
        return branch.clone()
    if mask is None:
        draws = torch.rand(per_example_shape(branch), generator=generator, device=branch.device)
        mask = draws >= p
    return branch * mask / (1 - p)


def drop_path_in_place(branch, p, *, train=True, generator=None, mask=None):
    if not train or p == 0:
        return branch
    if mask is None:
        draws = torch.rand(per_example_shape(branch), generator=generator, device=branch.device)
        mask = draws >= p
    return branch.mul_(mask).div_(1 - p)


def drop_path_global_rng(branch, p, *, train=True, generator=None, mask=None):
    if not train or p == 0:
        return branch.clone()
    if mask is None:
        mask = torch.rand(per_example_shape(branch), device=branch.device) >= p
    return branch * mask / (1 - p)


# DropBlock --------------------------------------------------------------------------------------


def gamma_without_valid_region(p, block_size, height, width):
    return p / block_size**2


def dropblock_mask_max_pool(shape, p, block_size, generator):
    """Seeds placed at the centre of their block (the paper's picture), expanded by max-pooling."""
    n, c, height, width = shape
    b = block_size
    gamma = dropblock_gamma(p, b, height, width)  # noqa: F821  (the notebook's own)
    seeds = torch.zeros(shape, device=generator.device)
    rows, cols = height - b + 1, width - b + 1
    draws = torch.rand((n, c, rows, cols), generator=generator, device=generator.device)
    seeds[:, :, b // 2 : b // 2 + rows, b // 2 : b // 2 + cols] = (draws < gamma).float()
    padded = nn.functional.pad(seeds, ((b - 1) // 2, b // 2, (b - 1) // 2, b // 2))
    blocks = nn.functional.max_pool2d(padded, kernel_size=b, stride=1)
    return (1.0 - blocks).to(torch.float64)


def dropblock_mask_whole_map(shape, p, block_size, generator):
    """Seeds anywhere on the map; squares running off the edge are clipped."""
    height, width = shape[2:]
    b = block_size
    gamma = dropblock_gamma(p, b, height, width)  # noqa: F821
    seeds = torch.rand(shape, generator=generator, device=generator.device) < gamma
    dropped = torch.zeros(shape, dtype=torch.bool, device=generator.device)
    for di in range(b):
        for dj in range(b):
            dropped[:, :, di:, dj:] |= seeds[:, :, : height - di, : width - dj]
    return ~dropped


def dropblock_mask_drop_flags(shape, p, block_size, generator):
    n, c, height, width = shape
    b = block_size
    gamma = dropblock_gamma(p, b, height, width)  # noqa: F821
    rows, cols = height - b + 1, width - b + 1
    seeds = torch.rand((n, c, rows, cols), generator=generator, device=generator.device) < gamma
    dropped = torch.zeros(shape, dtype=torch.bool, device=generator.device)
    for di in range(b):
        for dj in range(b):
            dropped[:, :, di : di + rows, dj : dj + cols] |= seeds
    return dropped


def dropblock_mask_shared_channels(shape, p, block_size, generator):
    n, _, height, width = shape
    b = block_size
    gamma = dropblock_gamma(p, b, height, width)  # noqa: F821
    rows, cols = height - b + 1, width - b + 1
    seeds = torch.rand((n, 1, rows, cols), generator=generator, device=generator.device) < gamma
    dropped = torch.zeros(shape, dtype=torch.bool, device=generator.device)
    for di in range(b):
        for dj in range(b):
            dropped[:, :, di : di + rows, dj : dj + cols] |= seeds
    return ~dropped


# Attention --------------------------------------------------------------------------------------


class AttentionBase(nn.Module):
    """Projections; ``attend`` is what each variant writes."""

    def __init__(self, d_model, p, generator):
        super().__init__()
        self.p, self.generator = p, generator
        for name in ("wq", "wk", "wv", "wo"):
            setattr(self, name, nn.Linear(d_model, d_model, device=generator.device))


class AttentionOwnSoftmax(nn.Module):
    """Correct: the softmax written out, einsum, a float mask, the layer moved after it is built."""

    def __init__(self, d_model, p, generator):
        super().__init__()
        self.p, self.generator = p, generator
        self.wq, self.wk = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.wv, self.wo = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.to(generator.device)

    def forward(self, x, mask=None):
        scores = torch.einsum("ntd,nsd->nts", self.wq(x), self.wk(x)) / math.sqrt(x.shape[-1])
        exps = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
        probs = exps / exps.sum(dim=-1, keepdim=True)
        if self.training:
            if mask is None:
                draws = torch.rand(probs.shape, generator=self.generator, device=x.device)
                mask = (draws >= self.p).float()
            probs = probs * mask.float() * (1.0 / (1.0 - self.p))
        return self.wo(torch.einsum("nts,nsd->ntd", probs, self.wv(x)))


class AttentionLogitDropout(AttentionBase):
    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        if self.training:
            if mask is None:
                mask = torch.rand(scores.shape, generator=self.generator, device=x.device) >= self.p
            scores = scores * mask / (1 - self.p)
        return self.wo(torch.softmax(scores, dim=-1) @ self.wv(x))


class AttentionOutputDropout(AttentionBase):
    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        out = self.wo(torch.softmax(scores, dim=-1) @ self.wv(x))
        if self.training:
            out = out * (torch.rand(out.shape, generator=self.generator, device=x.device) >= self.p)
            out = out / (1 - self.p)
        return out


class AttentionIgnoresEval(AttentionBase):
    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        probs = torch.softmax(scores, dim=-1)
        if mask is None:
            mask = torch.rand(probs.shape, generator=self.generator, device=x.device) >= self.p
        return self.wo(probs * mask / (1 - self.p) @ self.wv(x))


class AttentionClassicScaling(AttentionBase):
    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        probs = torch.softmax(scores, dim=-1)
        if self.training:
            if mask is None:
                mask = torch.rand(probs.shape, generator=self.generator, device=x.device) >= self.p
            probs = probs * mask
        else:
            probs = probs * (1 - self.p)
        return self.wo(probs @ self.wv(x))


class AttentionNotRescaled(AttentionBase):
    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        probs = torch.softmax(scores, dim=-1)
        if self.training:
            if mask is None:
                mask = torch.rand(probs.shape, generator=self.generator, device=x.device) >= self.p
            probs = probs * mask
        return self.wo(probs @ self.wv(x))


class AttentionSharedMask(AttentionBase):
    """One (T, T) mask for every sequence of the batch."""

    def forward(self, x, mask=None):
        scores = self.wq(x) @ self.wk(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        probs = torch.softmax(scores, dim=-1)
        if self.training:
            if mask is None:
                shape = probs.shape[1:]
                mask = torch.rand(shape, generator=self.generator, device=x.device) >= self.p
            probs = probs * mask / (1 - self.p)
        return self.wo(probs @ self.wv(x))


PER_EXAMPLE = (per_example_shape,)  # the helper the drop-path variants call

VARIANTS = [
    # Correct alternatives: bernoulli draws and torch.where; centred seeds expanded by
    # max-pooling, returned as float64 0/1; the softmax by hand with einsum and a float mask.
    Variant("alternative_bernoulli_drop_path", {"drop_path": drop_path_bernoulli},
            helpers=PER_EXAMPLE),
    Variant("alternative_max_pool_dropblock", {"dropblock_mask": dropblock_mask_max_pool}),
    Variant("alternative_own_softmax", {"AttentionWithDropout": AttentionOwnSoftmax}),
    # Drop-path mistakes.
    Variant("wrong_drop_path_per_batch", {"drop_path": drop_path_per_batch},
            frozenset({"drop_path_per_example", "drop_path_rate"}), hint="stochastic depth"),
    Variant("wrong_drop_path_per_element", {"drop_path": drop_path_per_element},
            frozenset({"drop_path_per_example"}), hint="whole branch"),
    Variant("wrong_drop_path_not_rescaled", {"drop_path": drop_path_not_rescaled},
            frozenset({"drop_path_train", "drop_path_rate"}), helpers=PER_EXAMPLE,
            hint="not rescaled"),
    Variant("wrong_drop_path_times_p", {"drop_path": drop_path_times_p},
            frozenset({"drop_path_train", "drop_path_rate"}), helpers=PER_EXAMPLE,
            hint="did you multiply by p instead of dividing by 1 - p?"),
    Variant("wrong_drop_path_in_eval", {"drop_path": drop_path_in_eval},
            frozenset({"drop_path_eval"}), helpers=PER_EXAMPLE, hint="it drops in evaluation"),
    Variant("wrong_drop_path_in_place", {"drop_path": drop_path_in_place},
            frozenset({"drop_path_train", "drop_path_per_example", "drop_path_rate"}),
            helpers=PER_EXAMPLE, hint="in place"),
    Variant("wrong_drop_path_global_rng", {"drop_path": drop_path_global_rng},
            frozenset({"drop_path_rate"}), helpers=PER_EXAMPLE,
            hint="two generators with the same seed"),
    # DropBlock mistakes.
    Variant("wrong_gamma_without_valid_region", {"dropblock_gamma": gamma_without_valid_region},
            frozenset({"dropblock_gamma_value", "dropblock_mask_rate"}),
            hint="without the valid-region correction"),
    Variant("wrong_dropblock_whole_map", {"dropblock_mask": dropblock_mask_whole_map},
            frozenset({"dropblock_mask_blocks", "dropblock_mask_rate"}), hint="inside the map"),
    Variant("wrong_dropblock_drop_flags", {"dropblock_mask": dropblock_mask_drop_flags},
            frozenset({"dropblock_mask_blocks", "dropblock_mask_rate"}),
            hint="you return drop flags"),
    Variant("wrong_dropblock_shared_channels", {"dropblock_mask": dropblock_mask_shared_channels},
            frozenset({"dropblock_mask_rate"}), hint="channels share their seeds"),
    # Attention mistakes.
    Variant("wrong_attention_logit_dropout", {"AttentionWithDropout": AttentionLogitDropout},
            frozenset({"attention_train", "attention_draws"}), helpers=(AttentionBase,),
            hint="before the softmax"),
    Variant("wrong_attention_output_dropout", {"AttentionWithDropout": AttentionOutputDropout},
            frozenset({"attention_train"}), helpers=(AttentionBase,)),
    Variant("wrong_attention_ignores_eval", {"AttentionWithDropout": AttentionIgnoresEval},
            frozenset({"attention_eval"}), helpers=(AttentionBase,), hint="drops in eval()"),
    Variant("wrong_attention_classic_scaling", {"AttentionWithDropout": AttentionClassicScaling},
            frozenset({"attention_train", "attention_eval", "attention_draws"}),
            helpers=(AttentionBase,), hint="at evaluation, the probabilities come out multiplied"),
    Variant("wrong_attention_not_rescaled", {"AttentionWithDropout": AttentionNotRescaled},
            frozenset({"attention_train", "attention_draws"}), helpers=(AttentionBase,),
            hint="what is kept is not rescaled"),
    Variant("wrong_attention_shared_mask", {"AttentionWithDropout": AttentionSharedMask},
            frozenset({"attention_draws"}), helpers=(AttentionBase,), hint="sequences share"),
]  # fmt: skip
