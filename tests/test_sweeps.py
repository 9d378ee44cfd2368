"""Sweeps: grid addressing, seeding, the on-disk cache, and the summaries the book uses."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from dropout_course import data
from dropout_course import sweeps as sw
from dropout_course.training import History, TrainConfig, train_mlp

BASE = TrainConfig(hidden=(8,), epochs=3, batch_size=16, lr=0.05)
GRID = {"p_hidden": [0.0, 0.5], "hidden": [(4,), (8,)]}


@pytest.fixture(scope="module")
def clusters():
    return data.synthetic_classification(120, seed=0, n_classes=3, n_features=4)


@pytest.fixture(scope="module")
def sweep(clusters):
    return sw.run_sweep(clusters, BASE, GRID, n_train=[30, None], seeds=[0, 1], progress=False)


def _history(*curves):
    return History(*(np.asarray(curve, dtype=float) for curve in curves))


# --- run_sweep and SweepResult ---------------------------------------------------------------


def test_axes_cover_the_grid_then_size_then_seed(sweep, clusters):
    full = len(clusters.y_train)
    assert sweep.axes == {
        "p_hidden": (0.0, 0.5),
        "hidden": ((4,), (8,)),
        "n_train": (30, full),
        "seed": (0, 1),
    }
    assert len(sweep.runs) == 2 * 2 * 2 * 2


def test_each_run_is_train_mlp_on_the_seeded_subset(sweep, clusters):
    run = sweep.run(p_hidden=0.5, hidden=(4,), n_train=30, seed=1)
    expected_config = dataclasses.replace(BASE, p_hidden=0.5, hidden=(4,), seed=1)
    assert run.config == expected_config and run.n_train == 30
    subset = data.training_subset(clusters, 30, seed=1)
    expected = train_mlp(subset, expected_config)
    for field in sw.HISTORY_FIELDS:
        np.testing.assert_array_equal(getattr(run.history, field), getattr(expected.history, field))
    for got, want in zip(run.params.weights, expected.params.weights, strict=True):
        np.testing.assert_array_equal(got, want)
    full_run = sweep.run(p_hidden=0.0, hidden=(8,), n_train=len(clusters.y_train), seed=0)
    full_history = train_mlp(clusters, dataclasses.replace(BASE, p_hidden=0.0, seed=0)).history
    np.testing.assert_array_equal(full_run.history.val_acc, full_history.val_acc)


def test_two_worker_processes_give_the_same_runs_and_fill_the_same_cache(sweep, clusters, tmp_path):
    parallel = sw.run_sweep(
        clusters,
        BASE,
        GRID,
        n_train=[30, None],
        seeds=[0, 1],
        workers=2,
        cache_dir=tmp_path,
        progress=False,
    )
    assert parallel.axes == sweep.axes
    for point, run in sweep.runs.items():
        for field in sw.HISTORY_FIELDS:
            np.testing.assert_array_equal(
                getattr(parallel.runs[point].history, field), getattr(run.history, field)
            )
        assert parallel.runs[point].config == run.config
    assert len(list(tmp_path.glob("*.npz"))) == len(sweep.runs)
    with pytest.raises(ValueError, match="workers must be >= 1, but got workers=0"):
        sw.run_sweep(clusters, BASE, GRID, workers=0, progress=False)


def test_seeds_differ_and_sizes_differ(sweep):
    point = {"p_hidden": 0.5, "hidden": (8,)}
    by_seed = sweep.curves("train_loss", n_train=30, **point)
    assert by_seed.shape == (2, BASE.epochs) and not np.array_equal(by_seed[0], by_seed[1])
    by_size = sweep.curves("train_loss", seed=0, **point)
    assert not np.array_equal(by_size[0], by_size[1])


def test_values_and_curves_are_shaped_over_the_free_axes_in_order(sweep):
    values = sweep.values("final_val_acc", n_train=30)
    assert values.shape == (2, 2, 2)  # p_hidden, hidden, seed
    assert values[1, 0, 1] == sweep.run(p_hidden=0.5, hidden=(4,), n_train=30, seed=1).metric(
        "final_val_acc"
    )
    curves = sweep.curves("val_acc", hidden=(8,), seed=0)
    assert curves.shape == (2, 2, BASE.epochs)  # p_hidden, n_train, epochs
    assert sweep.values("best_train_acc").shape == (2, 2, 2, 2)


def test_bad_points_and_grids_are_named(sweep, clusters):
    with pytest.raises(ValueError, match=r"p_hidden=0\.3 is not on the grid"):
        sweep.values("final_val_acc", p_hidden=0.3)
    with pytest.raises(ValueError, match=r"'lr' is not an axis"):
        sweep.select(lr=0.1)
    with pytest.raises(ValueError, match=r"missing \['seed'\]"):
        sweep.run(p_hidden=0.0, hidden=(4,), n_train=30)
    with pytest.raises(ValueError, match="field must be one of"):
        sweep.curves("val_error")
    with pytest.raises(ValueError, match=r"grid keys must be TrainConfig fields.*'width'"):
        sw.run_sweep(clusters, BASE, {"width": [4]}, progress=False)
    with pytest.raises(ValueError, match=r"pass seeds=\.\.\. for seeds"):
        sw.run_sweep(clusters, BASE, {"seed": [0, 1]}, progress=False)
    with pytest.raises(ValueError, match=r"grid\['lr'\] must hold at least one value"):
        sw.run_sweep(clusters, BASE, {"lr": []}, progress=False)
    with pytest.raises(ValueError, match="seed must hold at least one value"):
        sw.run_sweep(clusters, BASE, {}, seeds=[], progress=False)
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 90\]"):
        sw.run_sweep(clusters, BASE, {}, n_train=[1000], progress=False)
    with pytest.raises(TypeError, match="base must be a TrainConfig"):
        sw.run_sweep(clusters, {"epochs": 1}, {}, progress=False)


def test_every_config_is_checked_before_any_training(clusters, monkeypatch):
    monkeypatch.setattr(sw, "train_mlp", pytest.fail)
    with pytest.raises(ValueError, match=r"p_hidden must be in \[0, 1\)"):
        sw.run_sweep(clusters, BASE, {"p_hidden": [0.5, 1.0]}, progress=False)


def test_curves_refuse_runs_of_different_lengths(clusters):
    result = sw.run_sweep(clusters, BASE, {"epochs": [1, 2]}, progress=False)
    assert result.curves("val_acc", epochs=2).shape == (1, 1, 2)  # n_train, seed, epochs
    with pytest.raises(ValueError, match=r"different epochs: \[1, 2\]"):
        result.curves("val_acc")


def test_a_step_budget_sets_the_epochs_of_each_size(clusters):
    result = sw.run_sweep(clusters, BASE, {}, n_train=[16, 40, None], steps=5, progress=False)
    # batch_size 16: 1, 3 and 6 steps per epoch
    epochs = [result.run(n_train=n, seed=0).config.epochs for n in (16, 40, 90)]
    assert epochs == [5, 2, 1]
    assert [sw.epochs_for_steps(600, n, 64) for n in (250, 1000, 4000)] == [150, 38, 10]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sw.epochs_for_steps(0, 10, 2)


def test_adjust_ties_one_field_to_another(clusters):
    def keep_eight_units(config):
        return dataclasses.replace(config, hidden=(sw.width_for_kept_units(8, config.p_hidden),))

    result = sw.run_sweep(
        clusters, BASE, {"p_hidden": [0.0, 0.5, 0.75]}, adjust=keep_eight_units, progress=False
    )
    widths = [result.run(p_hidden=p, n_train=90, seed=0).config.hidden for p in (0.0, 0.5, 0.75)]
    assert widths == [(8,), (16,), (32,)]
    assert result.run(p_hidden=0.75, n_train=90, seed=0).params.weights[0].shape == (4, 32)
    with pytest.raises(TypeError, match="adjust must return a TrainConfig, not dict"):
        sw.run_sweep(clusters, BASE, {}, adjust=dataclasses.asdict, progress=False)


def test_progress_bar_only_when_asked(clusters, capsys):
    sw.run_sweep(clusters, BASE, {}, progress=False)
    assert capsys.readouterr().err == ""
    sw.run_sweep(clusters, BASE, {}, progress=True)
    assert "runs" in capsys.readouterr().err


# --- cache -----------------------------------------------------------------------------------


def test_cache_reloads_identical_histories_without_training(clusters, tmp_path, monkeypatch):
    first = sw.run_sweep(clusters, BASE, GRID, n_train=[30], cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 4 and not list(tmp_path.glob("*.tmp"))
    monkeypatch.setattr(sw, "train_mlp", pytest.fail)  # a cache hit must not train
    second = sw.run_sweep(clusters, BASE, GRID, n_train=[30], cache_dir=tmp_path, progress=False)
    for point, run in first.runs.items():
        loaded = second.runs[point]
        for field in sw.HISTORY_FIELDS:
            np.testing.assert_array_equal(
                getattr(loaded.history, field), getattr(run.history, field)
            )
        for got, want in zip(
            loaded.params.weights + loaded.params.biases,
            run.params.weights + run.params.biases,
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)
        assert loaded.params.activation == run.params.activation == "relu"


def test_cache_key_changes_with_config_data_and_library(clusters, monkeypatch):
    key = sw.cache_key(clusters, BASE)
    assert key == sw.cache_key(clusters, dataclasses.replace(BASE))
    assert key != sw.cache_key(clusters, dataclasses.replace(BASE, lr=0.06))
    assert key != sw.cache_key(clusters, dataclasses.replace(BASE, seed=1))
    assert key != sw.cache_key(data.training_subset(clusters, 30, seed=0), BASE)
    relabelled = dataclasses.replace(clusters, y_val=(clusters.y_val + 1) % 3)
    assert key != sw.cache_key(relabelled, BASE)
    monkeypatch.setattr(sw, "library_fingerprint", lambda: "another version")
    assert key != sw.cache_key(clusters, BASE)


def test_the_fingerprint_covers_the_trainer_and_what_it_imports_only():
    names = {path.name for path in sw.training_sources()}
    assert {"training.py", "dropout.py", "masks.py", "variants.py", "data.py"} <= names
    assert "_validate.py" in names
    assert not names & {"sweeps.py", "widgets.py", "plots.py", "__init__.py"}
    assert len(sw.library_fingerprint()) == 64


# --- summaries -------------------------------------------------------------------------------


def test_history_metric_final_and_best():
    history = _history([0.9, 0.5, 0.7], [0.2, 0.6, 0.5], [1.0, 0.8, 0.9], [0.3, 0.7, 0.6])
    assert sw.history_metric(history, "final_val_acc") == 0.6
    assert sw.history_metric(history, "best_val_acc") == 0.7
    assert sw.history_metric(history, "best_train_loss") == 0.5
    assert sw.history_metric(history, "final_train_loss") == 0.7
    assert sw.history_metric(history, "best_val_loss") == 0.8
    for bad in ("val_acc", "last_val_acc", "best_val_error"):
        with pytest.raises(ValueError, match="metric must look like"):
            sw.history_metric(history, bad)


def test_epochs_to_reach_counts_epochs_and_gives_nan_when_never():
    curves = np.array([[0.2, 0.6, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4], [0.9, 0.95, 0.97, 0.99]])
    np.testing.assert_array_equal(sw.epochs_to_reach(curves, 0.9), [3.0, np.nan, 1.0])
    losses = np.array([2.0, 1.0, 0.5, 0.7])
    assert sw.epochs_to_reach(losses, 0.5, below=True) == 3.0
    assert sw.epochs_to_reach(losses, 0.5) == 1.0
    for bad in (np.float64(0.3), np.zeros((2, 0))):
        with pytest.raises(ValueError, match=r"curves must have shape \(\.\.\., E\)"):
            sw.epochs_to_reach(bad, 0.5)


def test_width_for_kept_units():
    assert [sw.width_for_kept_units(32, p) for p in (0.0, 0.5, 0.75, 0.8)] == [32, 64, 128, 160]
    assert sw.width_for_kept_units(1, 0.1) == 1
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        sw.width_for_kept_units(32, 1.0)


def test_hold_out_test_moves_validation_examples_into_a_test_set(clusters):
    remaining, x_test, y_test = sw.hold_out_test(clusters, 10, seed=0)
    assert x_test.shape == (10, 4) and y_test.shape == (10,) and len(remaining.y_val) == 20
    np.testing.assert_array_equal(remaining.x_train, clusters.x_train)
    rows = [tuple(row) for row in np.concatenate([remaining.x_val, x_test])]
    assert sorted(rows) == sorted(tuple(row) for row in clusters.x_val)  # a partition of val
    again = sw.hold_out_test(clusters, 10, seed=0)
    np.testing.assert_array_equal(again[1], x_test)
    assert not np.array_equal(sw.hold_out_test(clusters, 10, seed=1)[1], x_test)
    with pytest.raises(ValueError, match=r"n_test must be in \[1, 29\]"):
        sw.hold_out_test(clusters, 30, seed=0)


def test_selection_bias_flatters_the_choice_only_when_choosing_among_equals():
    rng = np.random.default_rng(0)
    # 40 configurations that are all right on a random half of 400 examples: any winner on A
    # is lucky, and the luck does not carry over to B
    equals = rng.random((40, 400)) < 0.5
    on_a, on_b = sw.selection_bias(equals, n_splits=50, rng=rng)
    assert on_a.shape == on_b.shape == (50,)
    assert on_a.mean() > 0.55 and abs(on_b.mean() - 0.5) < 0.03
    # one configuration right everywhere: chosen every time, no flattery
    better = np.vstack([np.ones(400, dtype=bool), equals])
    on_a, on_b = sw.selection_bias(better, n_splits=5, rng=rng)
    np.testing.assert_array_equal(on_a, 1.0)
    np.testing.assert_array_equal(on_b, 1.0)
    # a single configuration: both halves' accuracies, which average to the whole
    single = equals[:1]
    on_a, on_b = sw.selection_bias(single, n_splits=3, rng=np.random.default_rng(1))
    np.testing.assert_allclose((on_a + on_b) / 2, single.mean())
    with pytest.raises(ValueError, match="correct must have rank 2"):
        sw.selection_bias(equals[0], n_splits=1, rng=rng)


def test_mean_and_spread_over_seeds():
    mean, spread = sw.mean_and_spread(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(spread, [np.sqrt(2.0), 0.0])
    mean, spread = sw.mean_and_spread(np.array([[0.5], [0.25]]))
    np.testing.assert_array_equal(spread, [0.0, 0.0])


def test_mean_sd_formats_one_value_per_seed_and_glues_plain_floats(monkeypatch):
    assert sw.mean_sd(np.array([1.0, 3.0])) == "2.000 ± 1.414"
    assert sw.mean_sd([0.01, 0.03], digits=1, sign="+", scale=100) == "+2.0 ± 1.4"
    with pytest.raises(ValueError, match=r"one number per seed, shape \(seeds,\): \(2, 2\)"):
        sw.mean_sd(np.ones((2, 2)))
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display: glued.update({name: value}))
    sw.glue_mean_sd("gap", np.array([0.1, 0.3]), scale=10)
    assert glued == pytest.approx({"gap": 2.0, "gap_sd": np.sqrt(2.0)})
    assert all(type(value) is float for value in glued.values())


def test_best_rate_averages_validation_over_runs_and_ignores_other_columns():
    table = {
        "p": np.array([0.5, 0.0, 0.5, 0.2, 0.0, 0.2]),
        "seed": np.array([0, 0, 1, 0, 1, 1]),
        "train_acc": np.array([0.7, 1.0, 0.7, 0.9, 1.0, 0.9]),  # would pick 0.0
        "val_acc": np.array([0.9, 0.6, 0.3, 0.7, 0.6, 0.7]),  # best run 0.5, best mean 0.2
        "test_acc": np.array([0.9, 0.9, 0.9, 0.1, 0.9, 0.1]),  # would pick 0.0 or 0.5
    }
    assert sw.best_rate(table) == 0.2
    assert sw.best_rate({"p": [0.3], "val_acc": [0.1]}) == 0.3


def test_best_rate_breaks_ties_towards_the_smallest_rate_whatever_the_row_order():
    tied = {
        "p": np.array([0.6, 0.1, 0.3, 0.6, 0.1]),
        "val_acc": np.array([0.5, 0.75, 0.5, 1.0, 0.75]),
    }
    assert sw.best_rate(tied) == 0.1
    assert sw.best_rate({"p": tied["p"][::-1], "val_acc": tied["val_acc"][::-1]}) == 0.1


def test_best_rate_rejects_ragged_or_empty_tables():
    with pytest.raises(ValueError, match="one value per run"):
        sw.best_rate({"p": [0.1, 0.2], "val_acc": [0.5]})
    with pytest.raises(ValueError, match="one value per run"):
        sw.best_rate({"p": [], "val_acc": []})
    with pytest.raises(ValueError, match="rank 1"):
        sw.best_rate({"p": [[0.1]], "val_acc": [[0.5]]})


def test_map_in_workers_gives_the_results_in_order_in_processes_and_checks_workers():
    assert list(sw.map_in_workers(math.sqrt, [1, 4, 9], 2)) == [1.0, 2.0, 3.0]
    assert list(sw.map_in_workers(math.sqrt, [16], 1)) == [4.0]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        sw.map_in_workers(math.sqrt, [1], 0)
