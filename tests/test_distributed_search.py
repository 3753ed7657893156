"""Parallel searches through joblib: GridSearchCV,
RandomizedSearchCV and cross_validate of the estimators on loky, on a Dask
cluster (``distributed.LocalCluster``, two single-threaded worker processes)
and on a local Ray instance (two CPUs) score exactly as the serial run with
the same ``random_state``; and a frozen-backbone grid on Dask workers shares
its activations through ``cache_dir``.

The Dask cluster starts once for the module, keeping its scratch and spill
files under the test's temporary directory; Ray starts once per session
(``ray_instance`` in conftest.py), in a short temporary directory under /tmp.
"""

import contextlib
import os

import joblib
import numpy as np
import pytest
import torch
from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate

import sktransfer
from sktransfer import MLP, PretrainedClassifier, TransferRegressor

from .conftest import fast_params

# the fits end at their epoch budget on purpose (tiny and fast)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GRID = {"lr": [1e-3, 1e-2], "backbone__hidden_layer_sizes": [(16,), (32,)]}
CV = 3


@pytest.fixture(scope="module")
def tabular():
    """240 of scikit-learn's 8x8 digits as 64 features in [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16.0, y[:240]


def mlp(estimator_class=PretrainedClassifier):
    return estimator_class(MLP(hidden_layer_sizes=(16,)), max_epochs=10, batch_size=32,
                           device="cpu", random_state=0)


def grid_search(X, y, **search_params):
    return GridSearchCV(mlp(), GRID, cv=CV, refit=False, **search_params).fit(X, y)


def randomized_search(X, y):
    distributions = {"lr": loguniform(1e-4, 1e-1),
                     "backbone__hidden_layer_sizes": [(16,), (32,)]}
    return RandomizedSearchCV(mlp(), distributions, n_iter=3, cv=CV, refit=False,
                              random_state=0).fit(X, y)


def cross_validated_regressor(X, y):
    return cross_validate(mlp(TransferRegressor), X, y.astype(float), cv=CV, scoring="r2",
                          return_estimator=True)


def assert_same_search(search, serial):
    """The same candidates, the same scores to the last bit, the same winner."""
    assert search.cv_results_["params"] == serial.cv_results_["params"]
    for key in ["mean_test_score", *(f"split{i}_test_score" for i in range(CV))]:
        np.testing.assert_array_equal(search.cv_results_[key], serial.cv_results_[key])
    assert search.best_params_ == serial.best_params_


def worker_pids() -> set:
    """The processes the active joblib backend runs tasks in."""
    return set(joblib.Parallel()(joblib.delayed(os.getpid)() for _ in range(8)))


@contextlib.contextmanager
def one_torch_thread():
    """Serial fits on one torch thread, as in each worker below: with two
    threads on two cores that other jobs share, these tiny fits run 10-50x
    slower (the threads wait for each other). Scores do not depend on it
    (benchmarks/scale_out.py compares serial fits on every core with the
    workers' one thread each)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def serial(tabular):
    """The serial runs every backend is compared with."""
    X, y = tabular
    with one_torch_thread():
        return {"grid": grid_search(X, y), "randomized": randomized_search(X, y),
                "cross_validate": cross_validated_regressor(X, y)}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A 2-worker LocalCluster (one thread each, separate processes) whose
    scratch and spill directories lie under a temporary directory."""
    pytest.importorskip("distributed")
    import dask
    import distributed

    local = tmp_path_factory.mktemp("dask")
    with dask.config.set({"temporary-directory": str(local)}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, local_directory=str(local),
            # no dashboard; the scheduler's remaining HTTP routes (health,
            # metrics) on a free local port rather than 8787, which may be taken
            dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


@pytest.mark.slow
def test_loky_grid_search_scores_as_the_serial_one(tabular, serial):
    search = grid_search(*tabular, n_jobs=2)
    assert_same_search(search, serial["grid"])


@pytest.mark.slow
def test_dask_grid_search_scores_as_the_serial_one(tabular, serial, dask_cluster):
    with joblib.parallel_backend("dask"):
        assert os.getpid() not in worker_pids()
        search = grid_search(*tabular)
    assert_same_search(search, serial["grid"])


@pytest.mark.slow
def test_ray_grid_search_scores_as_the_serial_one(tabular, serial, ray_instance):
    with joblib.parallel_backend("ray"):
        assert os.getpid() not in worker_pids()
        search = grid_search(*tabular)
    assert_same_search(search, serial["grid"])


@pytest.mark.slow
def test_dask_randomized_search_draws_and_scores_as_the_serial_one(tabular, serial,
                                                                  dask_cluster):
    with joblib.parallel_backend("dask"):
        search = randomized_search(*tabular)
    assert_same_search(search, serial["randomized"])


@pytest.mark.slow
def test_dask_cross_validate_fits_the_same_networks(tabular, serial, dask_cluster):
    X, y = tabular
    with joblib.parallel_backend("dask"):
        results = cross_validated_regressor(X, y)
    expected = serial["cross_validate"]
    np.testing.assert_array_equal(results["test_score"], expected["test_score"])
    for fitted, reference in zip(results["estimator"], expected["estimator"]):
        np.testing.assert_array_equal(fitted.predict(X), reference.predict(X))


def disk_rows(cache_dir) -> list[str]:
    """The sample key of every row stored under ``cache_dir``, once per
    time it was computed (each chunk holds the rows one lookup computed)."""
    return [key for chunk in cache_dir.rglob("keys.npy") for key in np.load(chunk).tolist()]


@pytest.mark.slow
def test_frozen_grid_on_dask_workers_shares_activations_through_cache_dir(
        digits_small, dask_cluster, tmp_path):
    """Each image's frozen activations are computed once in total by the
    workers (one computes what the other is computing waits for it, under
    the cache's lease), all of them end up under cache_dir, and the scores
    are those of the serial search."""
    X, y, _, _ = digits_small
    dask_cluster.run(sktransfer.clear_cache)  # the workers' memory of earlier tests
    sktransfer.clear_cache()
    grid = {"probe_alpha": [0.1, 1.0, 10.0]}  # the exact linear probe's penalty

    def search(cache_dir):
        estimator = PretrainedClassifier(**fast_params(cache_dir=str(cache_dir)))
        return GridSearchCV(estimator, grid, cv=CV, refit=False).fit(X, y)

    with joblib.parallel_backend("dask"):
        on_dask = search(tmp_path / "dask")
    assert sktransfer.cache_info()["misses"] == 0  # no fit ran in this process
    computed = disk_rows(tmp_path / "dask")
    assert len(set(computed)) == len(X)  # every image, each under its own key
    # 120 computed in all where the 9 fits read 9 x 80 (their training folds)
    assert len(computed) == len(X)
    with one_torch_thread():
        serial = search(tmp_path / "serial")
    sktransfer.clear_cache()
    assert_same_search(on_dask, serial)
