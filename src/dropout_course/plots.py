"""Plotting helpers shared by the book's chapters: each draws precomputed data on an Axes.

Every function takes the data and a matplotlib ``Axes``, draws, and returns that ``Axes``, so the
caller composes figures (and slider frames, see :mod:`dropout_course.widgets`) as it likes:

* ``plot_history``: training and validation curves of a ``History`` (numpy or torch trainer);
* ``plot_weight_images`` (built on ``tile_images``): each unit's incoming weights as an image,
  e.g. the first layer of a network on 8x8 digits;
* ``plot_correlation_histogram``: the distribution of |correlation| between distinct live units.

Nothing in the reference library imports this module.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from ._validate import check_count, check_rank
from .training import History

METRICS = {"loss": "cross-entropy (nats)", "acc": "accuracy"}


def plot_history(
    ax: Axes,
    history: History,
    *,
    metric: str = "loss",
    label: str | None = None,
    color: str | None = None,
) -> Axes:
    """Draw training (dashed) and validation (solid) curves of one run, in one colour.

    Args:
        ax: where to draw.
        history: per-epoch metrics, e.g. ``train_mlp(...).history``.
        metric: "loss" (cross-entropy) or "acc" (accuracy).
        label: run name; the legend entries become "<label>: train" and "<label>: validation".
        color: matplotlib colour of both curves (default: the Axes' next colour).

    Returns:
        ``ax``, with epochs 1..E on the x axis.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, but got metric={metric!r}")
    train, val = getattr(history, f"train_{metric}"), getattr(history, f"val_{metric}")
    epochs = np.arange(1, len(train) + 1)
    prefix = "" if label is None else f"{label}: "
    (line,) = ax.plot(epochs, val, color=color, label=f"{prefix}validation")
    ax.plot(epochs, train, color=line.get_color(), linestyle="--", label=f"{prefix}train")
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRICS[metric])
    return ax


def tile_images(images: np.ndarray, n_cols: int, pad: int = 1) -> np.ndarray:
    """Lay out (N, h, w) images row by row in a grid of ``n_cols`` columns, as one 2-D array.

    Tiles are separated by ``pad`` rows/columns of NaN (drawn blank by ``imshow``); cells of the
    last row that hold no image are NaN too.

    Returns:
        A float array of shape (rows * (h + pad) - pad, n_cols * (w + pad) - pad), with
        rows = ceil(N / n_cols); image i sits at grid cell (i // n_cols, i % n_cols).
    """
    check_rank(images, "images", (3,), "N images, height, width")
    n_cols = check_count(n_cols, "n_cols", 1)
    pad = check_count(pad, "pad", 0)
    n_images, height, width = images.shape
    n_rows = max(1, -(-n_images // n_cols))
    grid = np.full((n_rows * (height + pad) - pad, n_cols * (width + pad) - pad), np.nan)
    for index, image in enumerate(images):
        top, left = (index // n_cols) * (height + pad), (index % n_cols) * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def plot_weight_images(
    ax: Axes,
    weights: np.ndarray,
    image_shape: tuple[int, int],
    *,
    n_cols: int = 8,
    cmap: str = "RdBu_r",
) -> Axes:
    """Show each unit's incoming weights as an image, in a grid (one tile per unit).

    Each tile is divided by its own largest |weight| (an all-zero unit stays 0), so the colours
    run from -1 (blue with the default map) to +1 (red) and show the pattern a unit responds to,
    not its scale.

    Args:
        ax: where to draw (its axis lines and ticks are turned off).
        weights: (D, H) weights of a layer, unit j's incoming weights in column j (the layout
            of ``MLPParams.weights``), with D = image_shape[0] * image_shape[1].
        image_shape: (height, width) of one input image, e.g. (8, 8) for the digits.
        n_cols: tiles per row.
        cmap: a diverging matplotlib colour map.

    Returns:
        ``ax``, holding one image (``ax.images[0]``) whose array is the tiled grid.
    """
    check_rank(weights, "weights", (2,), "D inputs, H units")
    height, width = image_shape
    if weights.shape[0] != height * width:
        raise ValueError(
            f"weights must have {height * width} rows (one per pixel of a {height}x{width} "
            f"image), but got shape {weights.shape}"
        )
    largest = np.abs(weights).max(axis=0)
    scaled = weights / np.where(largest > 0, largest, 1.0)
    tiles = tile_images(scaled.T.reshape(-1, height, width), n_cols)
    ax.imshow(tiles, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    return ax


def plot_correlation_histogram(
    ax: Axes,
    corr: np.ndarray,
    *,
    bins: int = 40,
    label: str | None = None,
    color: str | None = None,
) -> Axes:
    """Histogram (as a density) of |corr[i, j]| over distinct units i != j that are not NaN.

    Args:
        ax: where to draw.
        corr: (H, H) correlation matrix, e.g. from ``coadaptation.unit_correlation``; NaN rows
            and columns (dead units) are left out, as ``mean_abs_correlation`` leaves them out.
        bins: number of equal bins on [0, 1].
        label: legend entry.
        color: matplotlib colour (default: the Axes' next colour).

    Returns:
        ``ax``, with |correlation| on the x axis (0 to 1).
    """
    check_rank(corr, "corr", (2,), "H units, H units")
    if corr.shape[0] != corr.shape[1]:
        raise ValueError(f"corr must be a square (H, H) matrix, but got shape {corr.shape}")
    bins = check_count(bins, "bins", 1)
    distinct = np.abs(corr[~np.eye(len(corr), dtype=bool)])
    values = distinct[~np.isnan(distinct)]
    ax.hist(
        values, bins=bins, range=(0.0, 1.0), density=True, histtype="step", label=label, color=color
    )
    ax.set_xlabel("|correlation| between two units")
    ax.set_ylabel("density")
    ax.set_xlim(0.0, 1.0)
    return ax
