"""Chapter 1 (co-adaptation): classic mistakes, each with the test cells it must lose, and correct
alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy (``np`` is imported in the notebook's read-only cell), so it
behaves the same in a unit test and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def correlation_loops(hidden):
    n_examples, n_units = hidden.shape
    columns = [[float(hidden[n, i]) for n in range(n_examples)] for i in range(n_units)]
    means = [sum(column) / n_examples for column in columns]
    centred = [[v - m for v in column] for column, m in zip(columns, means, strict=True)]
    spreads = [float(np.sqrt(sum(v * v for v in column))) for column in centred]
    dead = [max(column) == min(column) for column in columns]
    corr = np.full((n_units, n_units), np.nan)
    for i in range(n_units):
        for j in range(n_units):
            if not (dead[i] or dead[j]):
                product = sum(a * b for a, b in zip(centred[i], centred[j], strict=True))
                corr[i, j] = 1.0 if i == j else product / (spreads[i] * spreads[j])
    return corr


def mean_abs_loops(hidden):
    corr = unit_correlation(hidden)  # noqa: F821  (the notebook's own unit_correlation)
    live = [i for i in range(len(corr)) if not np.isnan(corr[i, i])]
    pairs = [abs(corr[i, j]) for i in live for j in live if i < j]
    return sum(pairs) / len(pairs) if pairs else 0.0


def sparsity_loops(hidden, threshold=0.0):
    values = np.ravel(hidden)
    return sum(1 for value in values if value <= threshold) / len(values)


def ablation_permutation_loops(head, hidden, y, k, *, rng, trials):
    n_examples, n_units = hidden.shape
    total = 0.0
    for _ in range(trials):
        removed = set(rng.permutation(n_units)[:k].tolist())
        ablated = np.array(
            [
                [0.0 if j in removed else hidden[n, j] for j in range(n_units)]
                for n in range(n_examples)
            ]
        )
        scores = head(ablated)
        total += sum(int(np.argmax(scores[n]) == y[n]) for n in range(n_examples)) / n_examples
    return total / trials


def correlation_corrcoef(hidden):
    return np.corrcoef(hidden, rowvar=False)  # NaN (with a warning) for zero-variance columns


def mean_abs_triangle_float32(hidden):
    corr = unit_correlation(hidden).astype(np.float32)  # noqa: F821
    live = ~np.isnan(np.diag(corr))
    if live.sum() < 2:
        return np.float32(0.0)
    block = corr[np.ix_(live, live)]
    return np.abs(block[np.triu_indices(len(block), k=1)]).mean()


def sparsity_count(hidden, threshold=0.0):
    return np.count_nonzero(hidden <= threshold) / hidden.size


def ablation_keep_mask_float32(head, hidden, y, k, *, rng, trials):
    scores = []
    for _ in range(trials):
        keep = np.ones(hidden.shape[1], dtype=np.float32)
        keep[np.argsort(rng.random(hidden.shape[1]))[:k]] = 0.0  # k distinct, uniformly
        scores.append((head(hidden.astype(np.float32) * keep).argmax(-1) == y).mean())
    return np.float32(np.mean(scores))


def correlation_standardised_float32(hidden):
    x = np.asarray(hidden, dtype=np.float32)
    spread = x.std(axis=0)
    dead = np.ptp(x, axis=0) == 0
    z = (x - x.mean(axis=0)) / np.where(dead, 1, spread)
    corr = z.T @ z / len(x)
    corr[dead, :] = np.nan
    corr[:, dead] = np.nan
    np.fill_diagonal(corr, np.where(dead, np.nan, 1.0))
    return corr


def mean_abs_nanmean(hidden):
    corr = unit_correlation(hidden)  # noqa: F821
    off = corr[~np.eye(len(corr), dtype=bool)]
    if np.all(np.isnan(off)):
        return 0.0
    return np.nanmean(np.abs(off))  # NaN only in dead units' rows and columns


def ablation_batched_trials(head, hidden, y, k, *, rng, trials):
    accuracies = np.empty(trials)
    for trial in range(trials):
        removed = rng.choice(hidden.shape[1], size=k, replace=False)
        accuracies[trial] = np.mean(
            np.argmax(
                head(np.where(np.isin(np.arange(hidden.shape[1]), removed), 0.0, hidden)), axis=1
            )
            == y
        )
    return accuracies.mean()


# Classic mistakes -------------------------------------------------------------------------------


def correlation_breaks_on_dead(hidden):
    """Python-float loops with no guard: a dead unit divides by zero."""
    n_units = hidden.shape[1]
    centred = hidden - hidden.mean(axis=0)
    corr = np.empty((n_units, n_units))
    for i in range(n_units):
        for j in range(n_units):
            numerator = float(np.sum(centred[:, i] * centred[:, j]))
            spread = float(np.sqrt(np.sum(centred[:, i] ** 2) * np.sum(centred[:, j] ** 2)))
            corr[i, j] = numerator / spread
    return corr


def correlation_epsilon(hidden):
    """An epsilon in the denominator: dead units come out 'uncorrelated' (0) instead of NaN."""
    centred = hidden - hidden.mean(axis=0)
    z = centred / (np.sqrt((centred**2).sum(axis=0)) + 1e-12)
    corr = z.T @ z
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_covariance(hidden):
    return np.cov(hidden, rowvar=False)  # forgot to divide by the standard deviations


def mean_abs_with_diagonal(hidden):
    corr = unit_correlation(hidden)  # noqa: F821
    live = ~np.isnan(np.diag(corr))
    if live.sum() < 2:
        return 0.0
    return float(np.abs(corr[np.ix_(live, live)]).mean())  # the diagonal's 1s are in the mean


def mean_abs_signed(hidden):
    corr = unit_correlation(hidden)  # noqa: F821
    live = ~np.isnan(np.diag(corr))
    if live.sum() < 2:
        return 0.0
    block = corr[np.ix_(live, live)]
    return float(block[~np.eye(len(block), dtype=bool)].mean())  # +1 and -1 cancel


def mean_abs_nan_on_dead(hidden):
    corr = unit_correlation(hidden)  # noqa: F821
    return float(np.abs(corr[~np.eye(len(corr), dtype=bool)]).mean())  # NaN with any dead unit


def mean_abs_dead_as_zero(hidden):
    corr = np.nan_to_num(unit_correlation(hidden))  # noqa: F821  (dead pairs count as 0)
    return float(np.abs(corr[~np.eye(len(corr), dtype=bool)]).mean())


def sparsity_strict(hidden, threshold=0.0):
    return float(np.mean(hidden < threshold))  # values equal to the threshold are left out


def sparsity_exact_zeros(hidden, threshold=0.0):
    return float(np.mean(hidden == 0))  # ignores the threshold


def sparsity_epsilon_default(hidden, threshold=1e-8):
    return float(np.mean(hidden <= threshold))  # "zero up to rounding": 1e-12 counts as zero


def ablation_same_units(head, hidden, y, k, *, rng, trials):
    removed = rng.choice(hidden.shape[1], size=k, replace=False)  # one draw, reused
    total = 0.0
    for _ in range(trials):
        ablated = hidden.copy()
        ablated[:, removed] = 0.0
        total += np.mean(np.argmax(head(ablated), axis=1) == y)
    return total / trials


def ablation_with_replacement(head, hidden, y, k, *, rng, trials):
    total = 0.0
    for _ in range(trials):
        removed = rng.integers(0, hidden.shape[1], size=k)  # may pick a unit twice
        ablated = hidden.copy()
        ablated[:, removed] = 0.0
        total += np.mean(np.argmax(head(ablated), axis=1) == y)
    return total / trials


def ablation_rescaled(head, hidden, y, k, *, rng, trials):
    n_units = hidden.shape[1]
    total = 0.0
    for _ in range(trials):
        removed = rng.choice(n_units, size=k, replace=False)
        ablated = hidden.copy()
        ablated[:, removed] = 0.0
        ablated *= n_units / (n_units - k)  # rescales the survivors, like inverted dropout
        total += np.mean(np.argmax(head(ablated), axis=1) == y)
    return total / trials


def ablation_in_place(head, hidden, y, k, *, rng, trials):
    total = 0.0
    for _ in range(trials):
        hidden[:, rng.choice(hidden.shape[1], size=k, replace=False)] = 0.0  # no copy
        total += np.mean(np.argmax(head(hidden), axis=1) == y)
    return total / trials


def ablation_per_example(head, hidden, y, k, *, rng, trials):
    total = 0.0
    for _ in range(trials):
        order = np.argsort(rng.random(hidden.shape), axis=1)  # other units on every example
        ablated = hidden.copy()
        np.put_along_axis(ablated, order[:, :k], 0.0, axis=1)
        total += np.mean(np.argmax(head(ablated), axis=1) == y)
    return total / trials


def ablation_global_random(head, hidden, y, k, *, rng, trials):
    total = 0.0
    for _ in range(trials):
        removed = np.random.choice(hidden.shape[1], size=k, replace=False)  # noqa: NPY002
        ablated = hidden.copy()
        ablated[:, removed] = 0.0
        total += np.mean(np.argmax(head(ablated), axis=1) == y)
    return total / trials


def correlation_via_library(hidden):
    from dropout_course.coadaptation import unit_correlation as library_correlation

    return library_correlation(hidden)


def sparsity_from_thread(hidden, threshold=0.0):
    requests.put((hidden, threshold))  # noqa: F821  (the queues of REFERENCE_SERVER)
    return answers.get()  # noqa: F821


# A thread started by the answer cell, before any check runs: the kernel's profile hook never sees
# it, so the reference it runs goes unnoticed there.
REFERENCE_SERVER = """
import queue
import threading

requests, answers = queue.Queue(), queue.Queue()


def serve():
    from dropout_course import coadaptation

    while True:
        answers.put(coadaptation.activation_sparsity(*requests.get()))


threading.Thread(target=serve, daemon=True).start()
"""

CORRELATION_CELLS = frozenset({"correlation_values", "correlation_dead_units"})
MEAN_ABS_CELLS = frozenset({"mean_abs_values", "mean_abs_dead_units"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "unit_correlation": correlation_loops,
            "mean_abs_correlation": mean_abs_loops,
            "activation_sparsity": sparsity_loops,
            "ablation_accuracy": ablation_permutation_loops,
        },
    ),
    Variant(
        "alternative_corrcoef_float32",
        {
            "unit_correlation": correlation_corrcoef,
            "mean_abs_correlation": mean_abs_triangle_float32,
            "activation_sparsity": sparsity_count,
            "ablation_accuracy": ablation_keep_mask_float32,
        },
    ),
    Variant(
        "alternative_standardised_nanmean",
        {
            "unit_correlation": correlation_standardised_float32,
            "mean_abs_correlation": mean_abs_nanmean,
            "ablation_accuracy": ablation_batched_trials,
        },
    ),
    Variant(
        "wrong_correlation_breaks_on_dead_unit",
        {"unit_correlation": correlation_breaks_on_dead},
        frozenset({"correlation_dead_units", "mean_abs_dead_units"}),
        hint="dead units",
    ),
    Variant(
        "wrong_correlation_dead_as_zero",
        {"unit_correlation": correlation_epsilon},
        frozenset({"correlation_dead_units", "mean_abs_dead_units"}),
        hint="diagonal included, must be NaN",
    ),
    Variant(
        "wrong_correlation_is_covariance",
        {"unit_correlation": correlation_covariance},
        CORRELATION_CELLS | MEAN_ABS_CELLS,  # a covariance is not NaN for dead units either
        hint="that is the covariance",
    ),
    Variant(
        "wrong_mean_includes_diagonal",
        {"mean_abs_correlation": mean_abs_with_diagonal},
        frozenset({"mean_abs_values"}),
        hint="itself (the diagonal",
    ),
    Variant(
        "wrong_mean_signed",
        {"mean_abs_correlation": mean_abs_signed},
        frozenset({"mean_abs_values"}),
        hint="averaged the signed correlations",
    ),
    Variant(
        "wrong_mean_nan_on_dead_unit",
        {"mean_abs_correlation": mean_abs_nan_on_dead},
        frozenset({"mean_abs_dead_units"}),
        hint="instead of averaging NaN",
    ),
    Variant(
        "wrong_mean_dead_counted_as_zero",
        {"mean_abs_correlation": mean_abs_dead_as_zero},
        frozenset({"mean_abs_dead_units"}),
        hint="counted the dead units' pairs as correlation 0",
    ),
    Variant(
        "wrong_sparsity_strict_comparison",
        {"activation_sparsity": sparsity_strict},
        frozenset({"sparsity_threshold"}),
        hint="strictly below",
    ),
    Variant(
        "wrong_sparsity_ignores_threshold",
        {"activation_sparsity": sparsity_exact_zeros},
        frozenset({"sparsity_threshold"}),
        hint="exact zeros only",
    ),
    Variant(
        "wrong_sparsity_epsilon_default_threshold",
        {"activation_sparsity": sparsity_epsilon_default},
        frozenset({"sparsity_threshold"}),
        hint="tiny positive activations",
    ),
    Variant(
        "wrong_ablation_same_units_every_trial",
        {"ablation_accuracy": ablation_same_units},
        frozenset({"ablation_fresh_draws"}),
        hint="draw new units from rng in every trial",
    ),
    Variant(
        "wrong_ablation_with_replacement",
        {"ablation_accuracy": ablation_with_replacement},
        frozenset({"ablation_distinct"}),
        hint="a unit was chosen twice",
    ),
    Variant(
        "wrong_ablation_rescaled",
        {"ablation_accuracy": ablation_rescaled},
        frozenset({"ablation_not_rescaled"}),
        hint="multiplied by H / (H - k)",
    ),
    Variant(
        "wrong_ablation_in_place",
        {"ablation_accuracy": ablation_in_place},
        frozenset({"ablation_distinct", "ablation_fresh_draws"}),
        hint="changed hidden in place",
    ),
    Variant(
        "wrong_ablation_per_example",
        {"ablation_accuracy": ablation_per_example},
        frozenset({"ablation_distinct"}),
        hint="but not the same ones",
    ),
    Variant(
        "wrong_ablation_ignores_rng",
        {"ablation_accuracy": ablation_global_random},
        frozenset({"ablation_fresh_draws"}),
        hint="did not draw anything from its rng argument",
    ),
    Variant(
        "wrong_correlation_calls_library",
        {"unit_correlation": correlation_via_library},
        CORRELATION_CELLS | MEAN_ABS_CELLS,
        hint="reference implementation",
    ),
]

# Submissions that fool the in-kernel checks: autograde gives full marks, the audit (which runs the
# student's code in a worker process where the reference functions are tripwires) takes away the
# cells in ``loses``.
CHEATS = [
    Variant(
        "cheat_reference_in_thread",
        {"activation_sparsity": sparsity_from_thread},
        frozenset({"sparsity_threshold"}),
        append={"activation_sparsity": REFERENCE_SERVER},
    ),
]
