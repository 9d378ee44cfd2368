"""Plotting helpers: each draws exactly the data it is given, on the Axes it is given."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from dropout_course.plots import (
    plot_correlation_histogram,
    plot_history,
    plot_weight_images,
    tile_images,
)
from dropout_course.training import History


def _axes():
    return Figure().add_subplot()


def _history():
    return History(
        train_loss=np.array([2.0, 1.0, 0.5]),
        train_acc=np.array([0.3, 0.6, 0.9]),
        val_loss=np.array([2.1, 1.5, 1.8]),
        val_acc=np.array([0.25, 0.5, 0.55]),
    )


@pytest.mark.parametrize("metric", ["loss", "acc"])
def test_history_draws_the_chosen_metric_per_epoch_in_one_colour(metric):
    ax = _axes()
    assert plot_history(ax, _history(), metric=metric, label="p=0.5", color="C3") is ax
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"p=0.5: train", "p=0.5: validation"}
    history = _history()
    for split in ("train", "val"):
        line = lines["p=0.5: train" if split == "train" else "p=0.5: validation"]
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(line.get_ydata(), getattr(history, f"{split}_{metric}"))
    assert lines["p=0.5: train"].get_linestyle() == "--"
    assert lines["p=0.5: validation"].get_linestyle() == "-"
    assert lines["p=0.5: train"].get_color() == lines["p=0.5: validation"].get_color() == "C3"


def test_history_without_a_colour_gives_each_run_its_own_colour_shared_by_both_curves():
    ax = _axes()
    plot_history(ax, _history())
    plot_history(ax, _history())
    colours = [line.get_color() for line in ax.get_lines()]
    assert colours[0] == colours[1] and colours[2] == colours[3] and colours[0] != colours[2]
    assert [line.get_label() for line in ax.get_lines()[:2]] == ["validation", "train"]


def test_history_rejects_an_unknown_metric():
    with pytest.raises(ValueError, match="metric must be one of"):
        plot_history(_axes(), _history(), metric="error")


def test_tiles_sit_row_by_row_with_nan_padding_and_empty_cells():
    images = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    grid = tile_images(images, n_cols=2, pad=1)
    assert grid.shape == (2 * 3 - 1, 2 * 3 - 1)
    np.testing.assert_array_equal(grid[0:2, 0:2], images[0])
    np.testing.assert_array_equal(grid[0:2, 3:5], images[1])
    np.testing.assert_array_equal(grid[3:5, 0:2], images[2])
    assert np.isnan(grid[3:5, 3:5]).all()  # the fourth cell holds no image
    assert np.isnan(grid[2, :]).all() and np.isnan(grid[:, 2]).all()  # the padding
    assert tile_images(images, n_cols=3, pad=0).shape == (2, 6)


@pytest.mark.parametrize(
    ("images", "n_cols", "error"),
    [(np.zeros((2, 2)), 2, ValueError), (np.zeros((1, 2, 2)), 0, ValueError)],
)
def test_tiles_reject_bad_arguments(images, n_cols, error):
    with pytest.raises(error):
        tile_images(images, n_cols)


def test_weight_images_show_each_column_as_an_image_scaled_by_its_largest_weight():
    # unit 0: a single +2 at pixel (0, 1); unit 1: -1 and 0.5; unit 2: all zero (stays 0).
    weights = np.zeros((4, 3))
    weights[1, 0] = 2.0
    weights[0, 1], weights[3, 1] = -1.0, 0.5
    ax = _axes()
    assert plot_weight_images(ax, weights, (2, 2), n_cols=3) is ax
    grid = ax.images[0].get_array()
    np.testing.assert_array_equal(grid[0:2, 0:2], [[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(grid[0:2, 3:5], [[-1.0, 0.0], [0.0, 0.5]])
    np.testing.assert_array_equal(grid[0:2, 6:8], np.zeros((2, 2)))
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    assert not ax.axison


def test_weight_images_need_one_row_per_pixel():
    with pytest.raises(ValueError, match="must have 64 rows"):
        plot_weight_images(_axes(), np.zeros((63, 4)), (8, 8))


def test_correlation_histogram_counts_distinct_live_pairs_only():
    # units 0 and 1 correlate at -0.65; unit 2 is dead (NaN); the diagonal (1) is left out.
    corr = np.array([[1.0, -0.65, np.nan], [-0.65, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    ax = _axes()
    assert plot_correlation_histogram(ax, corr, bins=10) is ax
    (patch,) = ax.patches
    x, height = patch.get_path().vertices.T
    # density over 10 bins of width 0.1: both entries (|-0.65|, twice) fall in [0.6, 0.7)
    assert height.max() == pytest.approx(10.0)
    np.testing.assert_allclose(np.unique(x[np.isclose(height, 10.0)]), [0.6, 0.7])
    assert ax.get_xlim() == (0.0, 1.0)


def test_correlation_histogram_needs_a_square_matrix():
    with pytest.raises(ValueError, match="square"):
        plot_correlation_histogram(_axes(), np.zeros((3, 4)))
