"""Chapter 9's training jobs with learned rates: what they record, determinism, the entropy term."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
import torch

from dropout_course.data import synthetic_classification
from dropout_course.torch.learned_rates import RateJob, train_rate_job

DATA = synthetic_classification(80, seed=0, n_features=6, spread=2.0)  # 60 training examples


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: several torch threads only wait for each other (and for other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _job(method: str, **options) -> RateJob:
    return RateJob(DATA, method, 0, hidden=16, steps=45, batch_size=20, init_p=0.2, **options)


@functools.cache
def _run(method: str, entropy: bool = True):
    """One training run per setting, shared by the tests (each takes a fraction of a second)."""
    return train_rate_job(_job(method, entropy=entropy))


@pytest.mark.parametrize("method", ["concrete", "gaussian"])
def test_learned_rates_are_recorded_per_layer_and_epoch(method):
    run, epochs = _run(method), _job(method).config().epochs
    assert epochs == 15 and run.steps_per_epoch == 3
    assert run.rates.shape == (epochs + 1, 2)  # input layer, hidden layer
    np.testing.assert_allclose(run.rates[0], [0.2, 0.2], rtol=1e-6)
    assert np.all((run.rates > 0) & (run.rates < 1)) and not np.allclose(run.rates[-1], 0.2)
    assert 0 <= run.train_acc <= 1 and 0 <= run.val_acc <= 1 and run.val_loss > 0


def test_fixed_rate_records_no_rates_and_runs_are_deterministic():
    run = train_rate_job(_job("fixed", p_hidden=0.3))
    assert run.rates.shape == (16, 0)
    again = train_rate_job(_job("fixed", p_hidden=0.3))
    assert (run.val_acc, run.val_loss) == (again.val_acc, again.val_loss)
    np.testing.assert_array_equal(_run("concrete").rates, train_rate_job(_job("concrete")).rates)


def test_without_the_entropy_term_the_rates_fall_further():
    with_entropy, without = _run("concrete"), _run("concrete", entropy=False)
    np.testing.assert_array_equal(with_entropy.rates[0], without.rates[0])
    # the hidden layer (K = 16 dropped units) feels the entropy term most; both layers fall
    assert without.rates[-1, 1] < 0.8 * with_entropy.rates[-1, 1]
    assert np.all(without.rates[-1] < without.rates[0])


def test_jobs_pickle_for_worker_processes():
    job = _job("gaussian")
    restored = pickle.loads(pickle.dumps(job))
    assert (restored.method, restored.seed, restored.init_p) == (job.method, job.seed, job.init_p)
    np.testing.assert_array_equal(restored.data.x_train, job.data.x_train)


def test_bad_job_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        _job("bernoulli")
    with pytest.raises(ValueError, match="p_hidden is for method='fixed'"):
        _job("concrete", p_hidden=0.5)
    with pytest.raises(ValueError, match=r"p_hidden must be in \[0, 1\)"):
        _job("fixed", p_hidden=1.0)
    with pytest.raises(ValueError, match=r"init_p must be in \(0, 1\)"):
        RateJob(DATA, "concrete", 0, init_p=0.0)
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        _job("concrete", length_scale=0.0)
