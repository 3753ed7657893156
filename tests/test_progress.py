"""search_progress: a tqdm bar of a search's finished fits and best score, drawn
in this process whichever joblib backend runs the fits.

The bar is written to a StringIO and read back: its last state is the text
after the last carriage return.
"""

import contextlib
import inspect
import io
import re
import warnings

import joblib
import numpy as np
import pytest
from joblib.parallel import BatchCompletionCallBack
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    _search,
    _validation,
    cross_val_score,
)
from sklearn.tree import DecisionTreeClassifier

import sktransfer
from sktransfer import MLP, _progress
from sktransfer._compat import (
    PrivateAPIError,
    check_progress_patch_points,
    fit_and_score,
    fit_and_score_patch_points,
    installed_versions,
    progress_patch_points,
    register_outcome_patch_point,
)

GRID = {"max_depth": [1, 2, 3]}  # 3 candidates x 3 folds = 9 fits


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _search_cv(n_jobs=None, **kwargs):
    return GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, n_jobs=n_jobs,
                        **kwargs)


def _last_state(file):
    """``(n, total or None, summary or None)`` of the bar's last line, e.g.
    ``fits: 100%|##########| 9/9 [00:00<00:00, 15.1fit/s, best 0.973 (mean over
    folds)]`` or, with no total, ``fits: 4fit [00:00, 38.9fit/s, mean 0.973]``."""
    line = file.getvalue().split("\r")[-1].strip()
    count = re.search(r"\| (\d+)/(\d+) \[", line) or re.search(r": (\d+)fit \[", line)
    summary = re.search(r"(?:fit/s|s/fit), (.*)\]$", line)  # the rate, then the summary
    assert count, line
    total = int(count[2]) if count.re.groups == 2 else None
    return int(count[1]), total, summary and summary[1]


def _fit_with_bar(search, X, y, backend=None, **tqdm_kwargs):
    file = io.StringIO()
    with sktransfer.search_progress(file=file, mininterval=0, **tqdm_kwargs) as bar:
        with joblib.parallel_backend(backend) if backend else contextlib.nullcontext():
            search.fit(X, y)
    return file, bar


def _assert_search_bar(file, bar, search):
    n_fits = len(search.cv_results_["params"]) * search.n_splits_
    assert _last_state(file) == (n_fits, n_fits,
                                 f"best {search.best_score_:.3f} (mean over folds)")
    assert (bar.n, bar.total) == (n_fits, n_fits)


@pytest.mark.parametrize("n_jobs, backend", [
    pytest.param(None, None, id="serial"),
    pytest.param(2, None, id="loky"),
    pytest.param(2, "threading", id="threading"),
])
def test_bar_counts_fits_and_shows_the_best_mean_score(iris, n_jobs, backend):
    search = _search_cv(n_jobs)
    file, bar = _fit_with_bar(search, *iris, backend=backend)
    _assert_search_bar(file, bar, search)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pretrained_classifier_search():
    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16, y[:120]
    estimator = sktransfer.PretrainedClassifier(
        backbone=MLP(hidden_layer_sizes=(16,)), max_epochs=3, random_state=0, device="cpu")
    search = GridSearchCV(estimator, {"lr": [1e-2, 1e-1]}, cv=2)
    file, bar = _fit_with_bar(search, X, y)
    _assert_search_bar(file, bar, search)


@pytest.mark.slow
def test_dask_workers(iris, tmp_path):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       local_directory=str(tmp_path), dashboard_address=None)
    with cluster, distributed.Client(cluster):
        search = _search_cv(n_jobs=2)
        file, bar = _fit_with_bar(search, *iris, backend="dask")
    _assert_search_bar(file, bar, search)


@pytest.mark.slow
def test_ray_workers(iris, ray_instance):
    search = _search_cv(n_jobs=2)
    file, bar = _fit_with_bar(search, *iris, backend="ray")
    _assert_search_bar(file, bar, search)


def test_cross_val_score_shows_fits_and_mean_score(iris):
    file = io.StringIO()
    with sktransfer.search_progress(file=file, mininterval=0):
        scores = cross_val_score(DecisionTreeClassifier(random_state=0), *iris, cv=4,
                                 n_jobs=2)
    assert _last_state(file) == (4, None, f"mean {scores.mean():.3f}")


def test_several_metrics_show_the_refit_metric(iris):
    search = _search_cv(scoring={"accuracy": "accuracy", "f1": "f1_macro"}, refit="f1")
    file, _ = _fit_with_bar(search, *iris)
    assert _last_state(file)[2] == f"best f1 {search.best_score_:.3f} (mean over folds)"


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_failed_fits_count_but_never_become_best(iris):
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [-1, 1]},
                          cv=3)
    with pytest.warns(FitFailedWarning):
        file, bar = _fit_with_bar(search, *iris)
    assert np.isnan(search.cv_results_["mean_test_score"][0])
    _assert_search_bar(file, bar, search)


def test_rounds_of_a_halving_search_add_up(iris):
    search = HalvingGridSearchCV(DecisionTreeClassifier(random_state=0),
                                 {"max_depth": [1, 2, 3, 4]}, cv=2, factor=2,
                                 min_resources=30, random_state=0)
    file, bar = _fit_with_bar(search, *iris)
    n_fits = sum(search.n_candidates_) * search.n_splits_
    assert search.n_iterations_ > 1
    assert (bar.n, bar.total) == (n_fits, n_fits)
    best = np.nanmax(search.cv_results_["mean_test_score"])
    assert _last_state(file) == (n_fits, n_fits, f"best {best:.3f} (mean over folds)")


def test_only_the_outer_fits_count(iris):
    inner = _search_cv()
    file = io.StringIO()
    with sktransfer.search_progress(file=file, mininterval=0):
        cross_val_score(inner, *iris, cv=2)
    assert _last_state(file)[:2] == (2, None)


def test_tqdm_options_pass_through(iris):
    file, bar = _fit_with_bar(_search_cv(), *iris, desc="depth search")
    assert file.getvalue().split("\r")[-1].startswith("depth search:")
    file, bar = _fit_with_bar(_search_cv(), *iris, disable=True)
    assert file.getvalue() == ""


def _originals():
    return (_search._fit_and_score, _validation._fit_and_score,
            BatchCompletionCallBack._register_outcome)


def test_originals_are_restored_and_a_later_search_shows_nothing(iris):
    before = _originals()
    file, bar = _fit_with_bar(_search_cv(), *iris)
    assert _originals() == before
    shown = file.getvalue()
    _search_cv(n_jobs=2).fit(*iris)
    assert file.getvalue() == shown and bar.n == 9


def test_originals_are_restored_after_an_error(iris):
    before = _originals()
    with pytest.raises(ValueError, match="boom"):
        with sktransfer.search_progress(file=io.StringIO()):
            assert _search._fit_and_score is not before[0]
            raise ValueError("boom")
    assert _originals() == before


def test_an_inner_block_changes_nothing(iris):
    before = _originals()
    file = io.StringIO()
    with sktransfer.search_progress(file=file, mininterval=0) as outer:
        with sktransfer.search_progress(file=io.StringIO()) as inner:
            _search_cv().fit(*iris)
        assert inner is outer and _search._fit_and_score is not before[0]
        _search_cv().fit(*iris)
    assert _originals() == before
    assert _last_state(file)[:2] == (18, 18)


def test_missing_hooks_warn_once_and_the_search_runs(iris, monkeypatch):
    monkeypatch.setattr(_progress, "_WARNED", False)
    monkeypatch.delattr(BatchCompletionCallBack, "_register_outcome")
    file = io.StringIO()
    with pytest.warns(RuntimeWarning, match="cannot show progress"):
        with sktransfer.search_progress(file=file) as bar:
            search = _search_cv().fit(*iris)
    assert bar is None and file.getvalue() == "" and hasattr(search, "best_score_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sktransfer.search_progress(file=file) as bar:
            pass
    assert bar is None


# -- the private functions search_progress patches ----------------------------------------
# These fail first, naming the function, when a scikit-learn or joblib release changes
# what the wrappers in sktransfer._progress rely on.

PATCH_POINTS = [
    "sklearn.model_selection._search._fit_and_score",
    "sklearn.model_selection._validation._fit_and_score",
    "joblib.parallel.BatchCompletionCallBack._register_outcome",
]
FIT_AND_SCORE_KEYWORDS = ("candidate_progress", "split_progress", "caller")  # _TaggedResult
FIT_AND_SCORE_RESULT_KEYS = {"test_scores", "fit_error"}  # _TaggedResult.test_score


def _dotted(owner, name):
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}.{name}"
    return f"{owner.__name__}.{name}"


def _current(points):
    return {point: getattr(*point) for point in points}


def test_patch_points_exist_with_the_parameters_the_wrappers_use():
    points = progress_patch_points()
    assert [_dotted(*point) for point in points] == PATCH_POINTS
    for point in points:
        assert callable(getattr(*point)), f"{_dotted(*point)} is not callable"
    check_progress_patch_points()

    parameters = inspect.signature(fit_and_score()).parameters
    by_keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    lost = [name for name in FIT_AND_SCORE_KEYWORDS
            if name not in parameters or parameters[name].kind not in by_keyword]
    assert not lost, f"_fit_and_score no longer takes {lost} by keyword ({installed_versions()})"

    register_outcome = getattr(*register_outcome_patch_point())
    assert list(inspect.signature(register_outcome).parameters) == ["self", "outcome"]


def test_searches_call_the_patch_points_as_the_wrappers_expect(iris, monkeypatch):
    """By keyword the wrapper reads, a result dict with the keys it reads, and
    batches whose ``outcome["result"]`` lists those results."""
    fits, outcomes = [], []
    (search_module, fit_name), _ = fit_and_score_patch_points()
    original_fit = getattr(search_module, fit_name)
    callback_class, register_name = register_outcome_patch_point()
    original_register = getattr(callback_class, register_name)

    def record_fit(*args, **kwargs):
        result = original_fit(*args, **kwargs)
        fits.append((kwargs, result))
        return result

    def record_outcome(self, outcome):
        outcomes.append(outcome)
        return original_register(self, outcome)

    monkeypatch.setattr(search_module, fit_name, record_fit)
    monkeypatch.setattr(callback_class, register_name, record_outcome)
    search = _search_cv(n_jobs=2, scoring={"accuracy": "accuracy", "f1": "f1_macro"},
                        refit="f1")
    with joblib.parallel_backend("threading"):
        search.fit(*iris)

    assert len(fits) == 9
    for kwargs, result in fits:
        assert set(FIT_AND_SCORE_KEYWORDS) <= set(kwargs), sorted(kwargs)
        assert kwargs["caller"] is search
        assert kwargs["candidate_progress"][1] == 3 and kwargs["split_progress"][1] == 3
        assert isinstance(result, dict) and FIT_AND_SCORE_RESULT_KEYS <= set(result)
        assert set(result["test_scores"]) == {"accuracy", "f1"}
    batched = [result for outcome in outcomes for result in outcome["result"]]
    assert sorted(map(id, batched)) == sorted(id(result) for _, result in fits)


@pytest.mark.parametrize("index", range(len(PATCH_POINTS)), ids=PATCH_POINTS)
def test_a_missing_patch_point_is_named_and_nothing_is_patched(index, monkeypatch):
    points = progress_patch_points()
    owner, name = points[index]
    others = _current(point for point in points if point != (owner, name))
    monkeypatch.delattr(owner, name)
    message = re.escape(f"{PATCH_POINTS[index]} is missing or not callable "
                        f"({installed_versions()})")

    with pytest.raises(PrivateAPIError, match=message):
        check_progress_patch_points()

    monkeypatch.setattr(_progress, "_WARNED", False)
    with pytest.warns(RuntimeWarning, match=message):
        with sktransfer.search_progress(file=io.StringIO()) as bar:
            assert bar is None and _current(others) == others

    monkeypatch.setattr(_progress, "_WARNED", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # as under ``python -W error``
        with pytest.raises(RuntimeWarning, match=message):
            with sktransfer.search_progress(file=io.StringIO()):
                pass

    assert _current(others) == others and not hasattr(owner, name)
    assert _progress._ACTIVE is None and not _progress._LOCK.locked()


def test_a_search_module_with_its_own_fit_and_score_is_named(monkeypatch):
    (search_module, name), _ = fit_and_score_patch_points()
    monkeypatch.setattr(search_module, name, lambda *args, **kwargs: None)
    message = re.escape(f"{PATCH_POINTS[0]} is no longer {PATCH_POINTS[1]}")
    with pytest.raises(PrivateAPIError, match=message):
        check_progress_patch_points()


def test_a_class_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.delattr(joblib.parallel, "BatchCompletionCallBack")
    with pytest.raises(PrivateAPIError, match="cannot import name 'BatchCompletionCallBack'"):
        check_progress_patch_points()
