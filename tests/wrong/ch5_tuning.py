"""Chapter 5 (tuning): classic mistakes, each with the test cells it must lose, and correct
alternatives that must keep full marks.

Each function stands in for the notebook function named in its ``Variant`` (its ``def`` is renamed
on submission); it uses only numpy (``np`` is imported in the notebook's read-only cell), so it
behaves the same in a unit test and in a submitted notebook.
"""

from __future__ import annotations

import numpy as np

from wrong import Variant

# Correct alternatives ---------------------------------------------------------------------------


def max_norm_loops(W, c):
    out = [[float(value) for value in row] for row in W]
    for j in range(W.shape[1]):
        norm = sum(float(W[i, j]) ** 2 for i in range(W.shape[0])) ** 0.5
        if norm > c:
            for i in range(W.shape[0]):
                out[i][j] = float(W[i, j]) * c / norm
    return np.array(out)


def width_half_up(kept_units, p):
    return max(1, int(kept_units / (1 - p) + 0.5))


def best_rate_loops(table):
    runs = {}
    for rate, score in zip(table["p"].tolist(), table["val_acc"].tolist(), strict=True):
        runs.setdefault(rate, []).append(score)
    best, best_mean = None, None
    for rate in sorted(runs):
        mean = sum(runs[rate]) / len(runs[rate])
        if best_mean is None or mean > best_mean:
            best, best_mean = rate, mean
    return best


def max_norm_float32_where(W, c):
    W = W.astype(np.float32)
    norms = np.sqrt(np.sum(W * W, axis=0, keepdims=True))
    return np.where(norms > c, W * (np.float32(c) / np.maximum(norms, np.float32(1e-30))), W)


def width_numpy_round(kept_units, p):
    return np.maximum(1, np.round(np.float32(kept_units) / np.float32(1 - p)))  # a float32 1.0


def best_rate_sort_keys(table):
    rates = np.unique(table["p"])
    means = np.array([np.mean(table["val_acc"][table["p"] == rate]) for rate in rates])
    order = np.lexsort((rates, -means))  # best mean first, then the smallest rate
    return rates[order[0]]


def max_norm_minimum_factor(W, c):
    return W * np.minimum(1.0, c / np.linalg.norm(W, axis=0))  # c / 0 = inf: factor 1


def best_rate_running_mean(table):
    means, counts = {}, {}
    for rate, score in zip(table["p"], table["val_acc"], strict=True):
        counts[rate] = counts.get(rate, 0) + 1
        means[rate] = means.get(rate, 0.0) + (score - means.get(rate, 0.0)) / counts[rate]
    top = max(means.values())
    return min(rate for rate, mean in means.items() if np.isclose(mean, top))


# Classic mistakes -------------------------------------------------------------------------------


def max_norm_clips_weights(W, c):
    return np.clip(W, -c, c)  # bounds each weight, not each unit's incoming vector


def max_norm_rows(W, c):
    norms = np.linalg.norm(W, axis=1, keepdims=True)  # outgoing weights of each input
    return W * np.minimum(1.0, c / norms)


def max_norm_scales_up(W, c):
    norms = np.linalg.norm(W, axis=0)
    factors = np.divide(c, norms, out=np.ones_like(norms), where=norms > 0)
    return W * factors  # short columns are stretched to norm c too


def max_norm_nan_on_zero(W, c):
    norms = np.linalg.norm(W, axis=0)
    return W * (np.minimum(norms, c) / norms)  # 0 / 0 for a zero column


def max_norm_in_place(W, c):
    norms = np.linalg.norm(W, axis=0)
    W *= np.minimum(1.0, c / np.maximum(norms, 1e-30))
    return W


def max_norm_via_library(W, c):
    from dropout_course.variants import max_norm as library_max_norm

    return library_max_norm(W, c)


def width_paper_convention(kept_units, p):
    return max(1, round(kept_units / p))  # the paper's p is the KEEP probability


def width_times_keep(kept_units, p):
    return max(1, round(kept_units * (1 - p)))


def width_truncates(kept_units, p):
    return max(1, int(kept_units / (1 - p)))


def width_no_floor(kept_units, p):
    return round(kept_units / (1 - p))


def _best_mean(table, column):
    rates = np.unique(table["p"])
    return float(rates[np.argmax([table[column][table["p"] == r].mean() for r in rates])])


def best_rate_by_train(table):
    return _best_mean(table, "train_acc")


def best_rate_by_test(table):
    return _best_mean(table, "test_acc")


def best_rate_best_run(table):
    rates = np.unique(table["p"])
    return float(rates[np.argmax([table["val_acc"][table["p"] == r].max() for r in rates])])


def best_rate_median(table):
    rates = np.unique(table["p"])
    return float(rates[np.argmax([np.median(table["val_acc"][table["p"] == r]) for r in rates])])


def best_rate_sum(table):
    rates = np.unique(table["p"])
    return float(rates[np.argmax([table["val_acc"][table["p"] == r].sum() for r in rates])])


def best_rate_dict(table):
    pairs = zip(table["p"].tolist(), table["val_acc"].tolist(), strict=True)
    scores = dict(pairs)  # keeps each rate's last run
    return min(scores, key=lambda rate: (-scores[rate], rate))


def best_rate_largest_tie(table):
    rates = np.unique(table["p"])[::-1]
    return float(rates[np.argmax([table["val_acc"][table["p"] == r].mean() for r in rates])])


def best_rate_first_in_table(table):
    best, best_mean = None, -1.0
    for rate in dict.fromkeys(table["p"].tolist()):  # in order of appearance
        mean = table["val_acc"][table["p"] == rate].mean()
        if mean > best_mean:
            best, best_mean = rate, mean
    return best


def best_rate_index(table):
    rates = np.unique(table["p"])
    return int(np.argmax([table["val_acc"][table["p"] == r].mean() for r in rates]))


def choose_with_library(table):
    from dropout_course import sweeps

    return sweeps.best_rate(table)


def best_rate_via_helper(table):
    return choose_with_library(table)


# The notebook's own use of IPython, in answer cells (not graded): autograde runs it in the kernel,
# the audit must run it too, and grade only what the functions do.
IPYTHON_SET_UP = """%matplotlib inline
from IPython import get_ipython

get_ipython().run_line_magic("config", "InlineBackend.figure_format = 'svg'")"""

MAX_NORM_CELLS = frozenset(
    {
        "max_norm_long_columns",
        "max_norm_short_columns",
        "max_norm_zero_columns",
        "max_norm_input_untouched",
    }
)
BEST_RATE_CELLS = frozenset({"best_rate_validation", "best_rate_mean", "best_rate_ties"})

VARIANTS = [
    Variant(
        "alternative_loops",
        {
            "max_norm": max_norm_loops,
            "width_for_kept_units": width_half_up,
            "best_rate": best_rate_loops,
        },
    ),
    Variant(
        "alternative_float32_where",
        {
            "max_norm": max_norm_float32_where,
            "width_for_kept_units": width_numpy_round,
            "best_rate": best_rate_sort_keys,
        },
    ),
    Variant(
        "alternative_minimum_running_mean",
        {"max_norm": max_norm_minimum_factor, "best_rate": best_rate_running_mean},
    ),
    Variant(
        "alternative_uses_ipython",
        prepend={"max_norm": IPYTHON_SET_UP, "best_rate": "%%time"},
    ),
    Variant(
        "wrong_max_norm_clips_weights",
        {"max_norm": max_norm_clips_weights},
        frozenset({"max_norm_long_columns"}),
        hint="clipped each weight",
    ),
    Variant(
        "wrong_max_norm_rows",
        {"max_norm": max_norm_rows},
        frozenset({"max_norm_long_columns"}),
        hint="rescaled the rows",
    ),
    Variant(
        "wrong_max_norm_scales_up",
        {"max_norm": max_norm_scales_up},
        frozenset({"max_norm_short_columns"}),
        hint="also those that were shorter",
    ),
    Variant(
        "wrong_max_norm_nan_on_zero",
        {"max_norm": max_norm_nan_on_zero},
        frozenset({"max_norm_zero_columns"}),
        hint="0 / 0",
    ),
    Variant(
        "wrong_max_norm_in_place",
        {"max_norm": max_norm_in_place},
        frozenset({"max_norm_input_untouched"}),
        hint="changed W in place",
    ),
    Variant(
        "wrong_max_norm_calls_library",
        {"max_norm": max_norm_via_library},
        MAX_NORM_CELLS,
        hint="reference implementation",
    ),
    Variant(
        "wrong_width_paper_convention",
        {"width_for_kept_units": width_paper_convention},
        frozenset({"width_kept_units", "width_at_least_one"}),
        hint="probability of DROPPING",
    ),
    Variant(
        "wrong_width_times_keep",
        {"width_for_kept_units": width_times_keep},
        frozenset({"width_kept_units"}),
        hint="kept_units * (1 - p)",
    ),
    Variant(
        "wrong_width_truncates",
        {"width_for_kept_units": width_truncates},
        frozenset({"width_kept_units"}),
        hint="rounded down",
    ),
    Variant(
        "wrong_width_no_floor",
        {"width_for_kept_units": width_no_floor},
        frozenset({"width_at_least_one"}),
        hint="at least 1",
    ),
    Variant(
        "wrong_best_rate_by_train",
        {"best_rate": best_rate_by_train},
        frozenset({"best_rate_validation"}),
        helpers=(_best_mean,),
        hint="best TRAINING accuracy",
    ),
    Variant(
        "wrong_best_rate_by_test",
        {"best_rate": best_rate_by_test},
        frozenset({"best_rate_validation"}),
        helpers=(_best_mean,),
        hint="best TEST accuracy",
    ),
    Variant(
        "wrong_best_rate_best_run",
        {"best_rate": best_rate_best_run},
        frozenset({"best_rate_mean"}),
        hint="single best run",
    ),
    Variant(
        "wrong_best_rate_median",
        {"best_rate": best_rate_median},
        frozenset({"best_rate_mean"}),
        hint="MEDIAN",
    ),
    Variant(
        "wrong_best_rate_sum",
        {"best_rate": best_rate_sum},
        frozenset({"best_rate_mean"}),
        hint="SUM",
    ),
    Variant(
        "wrong_best_rate_dict_keeps_last_run",
        {"best_rate": best_rate_dict},
        frozenset({"best_rate_mean"}),
        hint="best LAST run",
    ),
    Variant(
        "wrong_best_rate_largest_tie",
        {"best_rate": best_rate_largest_tie},
        frozenset({"best_rate_ties"}),
        hint="return the SMALLEST",
    ),
    Variant(
        "wrong_best_rate_first_in_table",
        {"best_rate": best_rate_first_in_table},
        frozenset({"best_rate_ties"}),
        hint="comes first in the table",
    ),
    Variant(
        "wrong_best_rate_returns_index",
        {"best_rate": best_rate_index},
        BEST_RATE_CELLS,
        hint="not its position",
    ),
    Variant(
        "wrong_best_rate_via_library_helper",
        {"best_rate": best_rate_via_helper},
        BEST_RATE_CELLS,
        helpers=(choose_with_library,),
        hint="reference implementation",
    ),
]

# A submission that monkeypatches numpy so the in-kernel checks pass a max_norm that turns zero
# columns into NaN: autograde gives full marks, the audit (which runs no student code in its own
# process) takes away the cell in ``loses``.
CHEATS = [
    Variant(
        "cheat_numpy_all_true",
        {"max_norm": max_norm_nan_on_zero},
        frozenset({"max_norm_zero_columns"}),
        append={"max_norm": "np.all = lambda *args, **kwargs: True"},
    ),
]
