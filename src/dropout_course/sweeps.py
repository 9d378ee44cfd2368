"""Seeded hyperparameter sweeps over ``train_mlp``, with an optional on-disk cache.

``run_sweep(dataset, base, {"p_hidden": [0.0, 0.5]}, n_train=[100, 300], seeds=[0, 1])`` trains
one network per point of the Cartesian product of the grid, the training-set sizes and the seeds,
and returns a ``SweepResult`` whose runs are addressed by grid point::

    result.run(p_hidden=0.5, n_train=300, seed=0).history.val_acc   # one run's curve
    result.values("final_val_acc", n_train=300)                     # (2 rates, 2 seeds) array

Each run trains on ``training_subset(dataset, n_train, seed=seed)`` with ``config.seed = seed``,
so a seed fixes the subset, the initialisation, the minibatch order and the dropout noise: two
grid points with the same seed and size see the same examples, and differ only in the grid fields.

With ``cache_dir`` each run's history and weights are stored as ``<key>.npz``; the key hashes
the data the run trains and validates on, the config, and the library (its version and the source
of the trainer and of the modules it imports). A rerun of a notebook loads instead of training; a
change to the data, the config or that code retrains. With ``workers=2`` the runs train in two
processes at once (each with one BLAS thread), close to twice as fast on two cores once the
processes are up (they start once, in seconds, and serve every later sweep); the results are the
same as in one process.

``hold_out_test`` sets a test set aside before any tuning, so a rate chosen on validation accuracy
can be reported on examples that played no part in choosing it; ``selection_bias`` measures how
much a score flatters a configuration chosen on the same examples; ``best_rate`` chooses a rate
from a table of runs by validation accuracy alone.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from ._validate import check_count, check_in_interval, check_positive, check_rank, check_seed
from .data import Dataset, training_subset
from .training import History, MLPParams, TrainConfig, TrainResult, train_mlp

HISTORY_FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc")
RESERVED_AXES = ("n_train", "seed")
"""Axes every sweep has, after the grid's own: training-set size, then seed (always last)."""

_SWEPT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed")


def history_metric(history: History, metric: str) -> float:
    """One number from a history: ``"{final|best}_{train|val}_{acc|loss}"``.

    "final" is the last epoch's value; "best" is the highest accuracy or the lowest loss over
    the epochs (what early stopping on that curve would keep).
    """
    which, _, field = metric.partition("_")
    if which not in ("final", "best") or field not in HISTORY_FIELDS:
        raise ValueError(
            "metric must look like '{final|best}_{train|val}_{acc|loss}', e.g. 'final_val_acc', "
            f"but got metric={metric!r}"
        )
    curve = getattr(history, field)
    if which == "final":
        return float(curve[-1])
    return float(curve.max() if field.endswith("acc") else curve.min())


def epochs_to_reach(curves: np.ndarray, target: float, *, below: bool = False) -> np.ndarray:
    """Epochs of training (1-based) until each curve first reaches ``target``; NaN if never.

    Args:
        curves: (..., E) metric per epoch, e.g. ``result.curves("val_acc", ...)``.
        target: the level to reach.
        below: False: reach means ``curve >= target`` (accuracies); True: ``curve <= target``
            (losses).

    Returns:
        A float array of shape ``curves.shape[:-1]``.
    """
    curves = np.asarray(curves, dtype=float)
    if curves.ndim == 0 or curves.shape[-1] == 0:
        raise ValueError(f"curves must have shape (..., E) with E >= 1, but got {curves.shape}")
    reached = curves <= target if below else curves >= target
    first = np.argmax(reached, axis=-1) + 1.0
    return np.where(reached.any(axis=-1), first, np.nan)


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> int:
    """Fewest epochs giving at least ``steps`` SGD steps on ``n_train`` examples (>= 1)."""
    steps = check_count(steps, "steps", 1)
    n_train = check_count(n_train, "n_train", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    return math.ceil(steps / math.ceil(n_train / batch_size))


def hold_out_test(
    dataset: Dataset, n_test: int, *, seed: int
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Move ``n_test`` random validation examples into a test set that tuning never sees.

    Args:
        dataset: the dataset to split; its training set is kept as it is.
        n_test: examples to move, in [1, N_val - 1].
        seed: integer in [0, 2**63 - 1] choosing them.

    Returns:
        ``(dataset, x_test, y_test)``: the dataset with the remaining validation examples, and
        the (n_test, D) test features and (n_test,) labels.
    """
    n_test = check_count(n_test, "n_test", 1, len(dataset.y_val) - 1)
    order = np.random.default_rng(check_seed(seed)).permutation(len(dataset.y_val))
    test, val = order[:n_test], order[n_test:]
    remaining = dataclasses.replace(dataset, x_val=dataset.x_val[val], y_val=dataset.y_val[val])
    return remaining, dataset.x_val[test], dataset.y_val[test]


def selection_bias(
    correct: np.ndarray, *, n_splits: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """What choosing a configuration on the examples you report on does to the reported score.

    For each of ``n_splits`` random halvings of the examples into A and B, the configuration
    with the highest accuracy on A is chosen (ties: the first); its accuracy on A is what a
    report would say if A were used both to choose and to report, and its accuracy on B is what
    it scores on examples that played no part in the choice.

    Args:
        correct: (C, N) bool, whether configuration c classifies example i correctly.
        n_splits: number of random halvings (>= 1).
        rng: numpy Generator drawing the halvings.

    Returns:
        ``(on_a, on_b)``: two (n_splits,) arrays of accuracies of the chosen configuration.
    """
    correct = np.asarray(correct)
    check_rank(correct, "correct", (2,), "C configurations, N examples")
    n_examples = check_count(correct.shape[1], "the number of examples", 2)
    n_splits = check_count(n_splits, "n_splits", 1)
    on_a, on_b = np.empty(n_splits), np.empty(n_splits)
    for split in range(n_splits):
        order = rng.permutation(n_examples)
        half_a, half_b = order[: n_examples // 2], order[n_examples // 2 :]
        scores_a = correct[:, half_a].mean(axis=1)
        chosen = int(np.argmax(scores_a))
        on_a[split], on_b[split] = scores_a[chosen], correct[chosen, half_b].mean()
    return on_a, on_b


def width_for_kept_units(kept_units: float, p: float) -> int:
    """Hidden width n with about ``kept_units`` units surviving dropout at rate p: round(k/(1-p)).

    Holding ``(1 - p) * n`` fixed compares rates at an equal expected number of kept units
    (Srivastava et al., 2014, figure 9b, write it ``pn`` with p the *keep* probability).
    """
    kept_units = check_positive(kept_units, "kept_units")
    p = check_in_interval(p, "p", 0, 1, include_high=False)
    return max(1, round(kept_units / (1.0 - p)))


@dataclass(frozen=True, eq=False)
class Run:
    """One training run of a sweep: config, training-set size, per-epoch history, final weights."""

    config: TrainConfig
    n_train: int
    history: History
    params: MLPParams

    def metric(self, name: str) -> float:
        """``history_metric(self.history, name)``, e.g. ``run.metric("best_val_acc")``."""
        return history_metric(self.history, name)


@dataclass(frozen=True, eq=False)
class SweepResult:
    """Runs of a sweep, one per combination of axis values.

    Attributes:
        axes: axis name -> values, in product order: the grid's fields, then "n_train", "seed".
        runs: tuple of one value per axis (in ``axes`` order) -> ``Run``.
    """

    axes: dict[str, tuple[Any, ...]]
    runs: dict[tuple[Any, ...], Run]

    def _index(self, name: str, value: Any) -> int:
        if name not in self.axes:
            raise ValueError(f"{name!r} is not an axis of this sweep: {list(self.axes)}")
        values = self.axes[name]
        for position, candidate in enumerate(values):
            if candidate == value:
                return position
        raise ValueError(f"{name}={value!r} is not on the grid; its values are {list(values)}")

    def select(self, **fixed: Any) -> np.ndarray:
        """Runs with the ``fixed`` axes set, as an object array over the other axes (in order)."""
        for name, value in fixed.items():
            self._index(name, value)
        free = [name for name in self.axes if name not in fixed]
        selected = np.empty([len(self.axes[name]) for name in free], dtype=object)
        for position in np.ndindex(selected.shape):
            point = {**fixed, **{n: self.axes[n][i] for n, i in zip(free, position, strict=True)}}
            selected[position] = self.runs[tuple(point[name] for name in self.axes)]
        return selected

    def run(self, **point: Any) -> Run:
        """The run at one grid point; every axis must be given, e.g. ``run(seed=0, ...)``."""
        missing = [name for name in self.axes if name not in point]
        if missing:
            raise ValueError(f"run needs a value for every axis; missing {missing}")
        return self.select(**point)[()]

    def values(self, metric: str, **fixed: Any) -> np.ndarray:
        """``history_metric`` of every selected run: a float array over the axes not fixed."""
        runs = self.select(**fixed)
        return np.vectorize(lambda run: run.metric(metric), otypes=[float])(runs)

    def curves(self, field: str, **fixed: Any) -> np.ndarray:
        """Per-epoch ``field`` ("val_acc", ...) of the selected runs: (free axes..., E) array.

        The selected runs must all have trained for the same number of epochs.
        """
        if field not in HISTORY_FIELDS:
            raise ValueError(f"field must be one of {HISTORY_FIELDS}, but got field={field!r}")
        runs = self.select(**fixed)
        lengths = {len(run.history.val_acc) for run in runs.flat}
        if len(lengths) != 1:
            raise ValueError(f"the selected runs trained for different epochs: {sorted(lengths)}")
        stacked = np.array([getattr(run.history, field) for run in runs.flat])
        return stacked.reshape(*runs.shape, lengths.pop())


def training_sources() -> list[Path]:
    """Source files a run's result depends on: ``training.py`` and the modules it imports.

    The imports are found by parsing ``from .module import ...`` statements, recursively.
    """
    package = Path(__file__).parent
    found: set[Path] = set()
    pending = [package / "training.py"]
    while pending:
        source = pending.pop()
        if source in found:
            continue
        found.add(source)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                module = package / f"{node.module.replace('.', '/')}.py"
                if module.exists():
                    pending.append(module)
    return sorted(found)


@functools.cache
def library_fingerprint() -> str:
    """Hash of the package version and of ``training_sources()``: part of each cache key.

    Editing a module a run does not depend on (plots, widgets, grading) keeps the cache valid.
    """
    digest = hashlib.sha256(__version__.encode())
    for source in training_sources():
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def dataset_fingerprint(dataset: Dataset) -> str:
    """Hash of a dataset's arrays (dtype, shape, bytes) and class names."""
    digest = hashlib.sha256(repr(dataset.class_names).encode())
    for name in ("x_train", "y_train", "x_val", "y_val"):
        array = np.ascontiguousarray(getattr(dataset, name))
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(dataset: Dataset, config: TrainConfig) -> str:
    """The cache file stem of training ``config`` on ``dataset`` with this library."""
    identity = {
        "data": dataset_fingerprint(dataset),
        "config": dataclasses.asdict(config),
        "library": library_fingerprint(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:40]


def _load_result(path: Path, config: TrainConfig) -> TrainResult | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as stored:
        history = History(*(stored[name] for name in HISTORY_FIELDS))
        layers = range(int(stored["n_layers"]))
        weights = tuple(stored[f"weight_{layer}"] for layer in layers)
        biases = tuple(stored[f"bias_{layer}"] for layer in layers)
    return TrainResult(MLPParams(weights, biases, config.activation), history, config)


def _save_result(path: Path, result: TrainResult, n_train: int) -> None:
    """Write atomically (temporary file, then rename), so a reader never sees half a file."""
    meta = json.dumps({"config": dataclasses.asdict(result.config), "n_train": n_train})
    arrays = {name: getattr(result.history, name) for name in HISTORY_FIELDS}
    for layer, (W, b) in enumerate(zip(result.params.weights, result.params.biases, strict=True)):
        arrays |= {f"weight_{layer}": W, f"bias_{layer}": b}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.savez(handle, meta=np.array(meta), n_layers=len(result.params.weights), **arrays)
    os.replace(handle.name, path)


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, tuple[Any, ...]]:
    checked = {}
    for name, values in grid.items():
        if name not in _SWEPT_FIELDS:
            hint = " (pass seeds=... for seeds)" if name == "seed" else ""
            raise ValueError(
                f"grid keys must be TrainConfig fields {_SWEPT_FIELDS}, but got {name!r}{hint}"
            )
        values = tuple(values)
        if not values:
            raise ValueError(f"grid[{name!r}] must hold at least one value, but got none")
        checked[name] = values
    return checked


def run_sweep(
    dataset: Dataset,
    base: TrainConfig,
    grid: Mapping[str, Sequence[Any]],
    *,
    n_train: Sequence[int | None] = (None,),
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    adjust: Callable[[TrainConfig], TrainConfig] | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
) -> SweepResult:
    """Train ``train_mlp`` at every point of ``grid x n_train x seeds``; each run exactly once.

    Args:
        dataset: the full dataset; each run trains on a class-balanced subset of it.
        base: the config every run starts from (its ``seed`` is replaced by each of ``seeds``).
        grid: TrainConfig field -> values, e.g. ``{"p_hidden": [0.0, 0.5], "hidden": [(64,)]}``.
        n_train: training-set sizes (None: the whole training set).
        seeds: integer seeds; each fixes subset, initialisation, minibatch order and dropout.
        steps: if given, a budget of SGD steps instead of epochs: each run trains for
            ``epochs_for_steps(steps, n_train, batch_size)`` epochs, so small training sets are
            not under-trained next to large ones (``epochs`` in ``base`` or ``grid`` is ignored).
        adjust: applied to each config once its grid values are set, to tie one field to
            another, e.g. ``lambda c: replace(c, hidden=(width_for_kept_units(32, c.p_hidden),))``
            keeps ``(1 - p) * n`` at 32 along a ``p_hidden`` axis.
        cache_dir: a directory (created if needed) caching each run's history and weights.
        workers: processes that train at once (>= 1); each limits BLAS to one thread. The
            results do not depend on it.
        progress: show a tqdm progress bar over the runs.

    Returns:
        A ``SweepResult`` with axes ``(*grid, "n_train", "seed")``; None sizes read as the full
        training-set size.
    """
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, but got {type(base).__name__}")
    full = len(dataset.y_train)
    sizes = tuple(full if n is None else check_count(n, "n_train", 1, full) for n in n_train)
    axes = {**_check_grid(grid), "n_train": sizes, "seed": tuple(seeds)}
    for name in RESERVED_AXES:
        if not axes[name]:
            raise ValueError(f"{name} must hold at least one value, but got none")
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    # build (and so check) every config before any training starts
    configs = []
    for point in points:
        config = dataclasses.replace(
            base, **{k: v for k, v in point.items() if k not in RESERVED_AXES}, seed=point["seed"]
        )
        if adjust is not None:
            config = adjust(config)
            if not isinstance(config, TrainConfig):
                raise TypeError(f"adjust must return a TrainConfig, not {type(config).__name__}")
        if steps is not None:
            epochs = epochs_for_steps(steps, point["n_train"], config.batch_size)
            config = dataclasses.replace(config, epochs=epochs)
        configs.append(config)
    workers = check_count(workers, "workers", 1)
    directory = None if cache_dir is None else Path(cache_dir)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    subsets: dict[tuple[int, int], Dataset] = {}
    jobs = []  # (subset, config, cache path), one per point
    for point, config in zip(points, configs, strict=True):
        size, seed = point["n_train"], point["seed"]
        if (size, seed) not in subsets:
            subsets[size, seed] = (
                dataset if size == full else training_subset(dataset, size, seed=seed)
            )
        subset = subsets[size, seed]
        path = None if directory is None else directory / f"{cache_key(subset, config)}.npz"
        jobs.append((subset, config, path))
    runs = {}
    results = tqdm(
        map_in_workers(_train_or_load, jobs, workers),
        total=len(jobs),
        desc="runs",
        disable=not progress,
    )
    for point, config, result in zip(points, configs, results, strict=True):
        runs[tuple(point.values())] = Run(config, point["n_train"], result.history, result.params)
    return SweepResult(axes, runs)


def _train_or_load(job: tuple[Dataset, TrainConfig, Path | None]) -> TrainResult:
    """One run: loaded from its cache file if there is one, else trained (and then stored)."""
    subset, config, path = job
    result = None if path is None else _load_result(path, config)
    if result is None:
        result = train_mlp(subset, config)
        if path is not None:
            _save_result(path, result, len(subset.y_train))
    return result


def _init_worker() -> None:
    """A worker uses one thread (BLAS, OpenMP, torch) and ignores Ctrl-C: its owner stops it."""
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when a job first imports it
    threadpool_limits(limits=1, user_api="blas")
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@functools.cache
def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes, started once per Python process and reused by every sweep.

    They start with "spawn" (a fresh interpreter: safe from a Jupyter kernel, which runs threads;
    starting takes seconds, hence the reuse) and each limits BLAS to one thread.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)


def map_in_workers(
    function: Callable[[Any], Any], jobs: Sequence[Any], workers: int = 1
) -> Iterator:
    """``function(job)`` for every job, in order: in this process, or in ``workers`` processes.

    The processes are the pool ``run_sweep`` uses (started once, one thread each). ``function``
    must be importable by name (defined in a module, not in a notebook) and its jobs picklable.
    """
    check_count(workers, "workers", 1)
    if workers == 1:
        return map(function, jobs)
    return _worker_pool(workers).map(function, jobs)


def mean_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation over the last axis (the seeds); spread 0 for 1 seed."""
    values = np.asarray(values, dtype=float)
    spread = values.std(axis=-1, ddof=1) if values.shape[-1] > 1 else np.zeros(values.shape[:-1])
    return values.mean(axis=-1), spread


def _per_seed(values: np.ndarray) -> np.ndarray:
    """``values`` as a float (seeds,) array; raise for any other rank."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must hold one number per seed, shape (seeds,): {values.shape}")
    return values


def mean_sd(values: np.ndarray, digits: int = 3, sign: str = "", scale: float = 1.0) -> str:
    """``"mean ± sd"`` of ``scale * values`` over the seeds, one (seeds,) array, as the book prints.

    ``digits`` decimals for both; ``sign="+"`` prints the mean's sign (for a paired change).
    """
    mean, spread = mean_and_spread(_per_seed(values) * scale)
    return f"{mean:{sign}.{digits}f} ± {spread:.{digits}f}"


def glue_mean_sd(name: str, values: np.ndarray, scale: float = 1.0) -> None:
    """Glue the mean over the seeds of ``scale * values`` as ``name``, the sample sd as ``name_sd``.

    For the book's prose (myst-nb's ``{glue:text}``); both are plain Python floats.
    """
    from myst_nb import glue  # the book's tool; only chapters call this

    mean, spread = mean_and_spread(_per_seed(values) * scale)
    glue(name, float(mean), display=False)
    glue(f"{name}_sd", float(spread), display=False)


def best_rate(table: Mapping[str, Sequence[float] | np.ndarray]) -> float:
    """The dropout rate with the highest mean validation accuracy in a table of runs.

    Args:
        table: columns of equal length, one row per run: ``"p"`` (the run's dropout rate) and
            ``"val_acc"`` (its validation accuracy). Other columns (``"seed"``, ``"train_acc"``,
            ``"test_acc"``, ...) are ignored: the choice uses validation data only, so a test
            score measured afterwards stays an honest estimate.

    Returns:
        The rate whose runs (several seeds, say) have the highest mean ``"val_acc"``; among rates
        tied for it, the smallest (the least noise and the fastest training).
    """
    rates = np.asarray(table["p"], dtype=float)
    scores = np.asarray(table["val_acc"], dtype=float)
    check_rank(rates, 'table["p"]', (1,), "one rate per run")
    if scores.shape != rates.shape or not rates.size:
        raise ValueError(
            'table["p"] and table["val_acc"] must hold one value per run (at least one run), '
            f"but have shapes {rates.shape} and {scores.shape}"
        )
    candidates = np.unique(rates)  # sorted: argmax keeps the first, smallest, of tied rates
    means = np.array([scores[rates == rate].mean() for rate in candidates])
    return float(candidates[np.argmax(means)])
