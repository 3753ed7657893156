"""A tqdm progress bar for hyperparameter searches and cross-validation.

scikit-learn's searches and ``cross_validate`` report no progress beyond
``verbose`` prints in each worker, so :func:`search_progress` listens at two
private points while its ``with`` block is open:

- the module global ``_fit_and_score`` of ``sklearn.model_selection._search``
  and ``._validation`` is replaced by :func:`_fit_and_score_with_progress`, a
  module-level function (pickled by reference, so it runs in loky, Dask and
  Ray workers too) that tags each fit's result with the candidate and split
  it belongs to;
- ``joblib.parallel.BatchCompletionCallBack._register_outcome``, which runs in
  this process whenever a batch of tasks comes back from a worker, counts the
  tagged results it carries.

A fit run in this process (a serial search, the threading backend) is counted
by the wrapper itself and marked, so the batch that brings it back does not
count it again. Both originals are put back when the block ends.

The private names are looked up in :mod:`sktransfer._compat`.
"""

import os
import threading
import warnings

import numpy as np

from ._compat import (
    PrivateAPIError,
    check_progress_patch_points,
    fit_and_score,
    fit_and_score_patch_points,
    register_outcome_patch_point,
)

__all__ = ["search_progress"]

_LOCK = threading.Lock()  # guards _ACTIVE and _SAVED across threads
_ACTIVE = None  # the _Tracker of the open context, or None
_SAVED = {}  # (owner, attribute name) -> the original (kept: late callers still need it)
_LOCAL = threading.local()  # .depth: wrapped fits on this thread's stack
_WARNED = False


def search_progress(**tqdm_kwargs):
    """Show a search's finished fits and best score so far as a tqdm bar.

    Within the ``with`` block, every ``GridSearchCV``, ``RandomizedSearchCV``
    (or other ``BaseSearchCV``), ``cross_validate`` or ``cross_val_score``
    shows one bar: fits finished out of ``n_candidates * n_splits`` and the
    best mean test score over the candidates whose folds have all finished,
    e.g. ``fits:  29%|██▉       | 7/24 [00:03<00:08, 2.1fit/s, best 0.913
    (mean over folds)]``. With several metrics it is the ``refit`` metric's
    (when ``refit`` is a string; else the first metric's), named: ``best f1
    0.913 (mean over folds)``. ``cross_validate`` shows the fits done and the
    mean test score so far (``mean 0.913``); its total is not known.

    It works with a serial search and with joblib's loky, threading, Dask
    (``joblib.parallel_backend("dask")``) and Ray (``register_ray()``)
    backends: the bar is drawn in this process as the workers' results come
    back. :func:`tqdm.auto.tqdm` draws a widget in a notebook, text elsewhere.

    Parameters
    ----------
    **tqdm_kwargs : dict
        Passed to :func:`tqdm.auto.tqdm`, e.g. ``file``, ``disable``,
        ``mininterval``, ``leave``; ``desc`` (default ``"fits"``) and ``unit``
        (default ``"fit"``) replace the defaults.

    Returns
    -------
    progress : context manager
        ``with search_progress() as bar:`` gives the bar (closed when the
        block ends). Inside another ``search_progress`` block it gives the
        outer block's bar and changes nothing. It gives None when this
        scikit-learn or joblib lacks the private functions the bar listens
        to: a ``RuntimeWarning`` says so once, naming the function and the
        installed versions, and searches run as without the block.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : Exhaustive search over a grid.

    Notes
    -----
    A fit counts when it finishes, failed or not; a candidate with a failed
    fold (``fit_error``) never becomes the best. For searches that evaluate
    candidates in rounds (successive halving, Bayesian searches) the total
    grows by each round's fits and "best" is over every round. Only the
    fits of the outermost search are counted: a search inside a fit (e.g.
    ``cross_val_score(GridSearchCV(...))``) is not, except when the inner
    search itself runs threads in this process (the threading backend),
    whose fits are counted too. Workers must be able to import
    ``sktransfer``.

    Examples
    --------
    >>> import io
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> import sktransfer
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=3)
    >>> with sktransfer.search_progress(file=io.StringIO()) as bar:
    ...     _ = search.fit(X, y)
    >>> bar.n, bar.total, bar.postfix
    (6, 6, 'best 0.973 (mean over folds)')
    >>> print(f"{search.best_score_:.3f}")
    0.973
    """
    return _Progress(tqdm_kwargs)


class _Progress:
    """The ``with`` block: the outermost one in a process patches and draws."""

    def __init__(self, tqdm_kwargs):
        self._tqdm_kwargs = tqdm_kwargs
        self._entered = []  # per __enter__: the _Tracker it started, or None

    def __enter__(self):
        self._entered.append(_start(self._tqdm_kwargs))
        tracker = self._entered[-1] or _ACTIVE
        return None if tracker is None else tracker.bar

    def __exit__(self, *exc_info):
        tracker = self._entered.pop()
        if tracker is not None:
            _stop(tracker)
        return False


def _start(tqdm_kwargs):
    """Patch and open a bar; None inside another block or without the hooks."""
    global _ACTIVE
    with _LOCK:
        if _ACTIVE is not None:
            return None
        try:
            hooks = _hooks()
        except PrivateAPIError as error:
            _warn_missing_hooks(error)
            return None
        _ACTIVE = _Tracker(_make_bar(tqdm_kwargs))
        _patch(hooks)
        return _ACTIVE


def _stop(tracker):
    global _ACTIVE
    with _LOCK:
        _unpatch()
        _ACTIVE = None
    tracker.close()


def _make_bar(tqdm_kwargs):
    from tqdm.auto import tqdm

    return tqdm(**{"desc": "fits", "unit": "fit", "total": None, **tqdm_kwargs})


# -- the private functions listened to -------------------------------------------------

def _hooks():
    """``[(owner, name, replacement), ...]``; raises ``PrivateAPIError`` when
    a private function is missing or changed."""
    check_progress_patch_points()
    return [*((owner, name, _fit_and_score_with_progress)
              for owner, name in fit_and_score_patch_points()),
            (*register_outcome_patch_point(), _register_outcome_and_count)]


def _patch(hooks):
    for owner, name, replacement in hooks:
        current = getattr(owner, name)
        if current is not replacement:  # never save the wrapper as the original
            _SAVED[owner, name] = current
        setattr(owner, name, replacement)


def _unpatch():
    for (owner, name), original in _SAVED.items():
        setattr(owner, name, original)


def _warn_missing_hooks(error):
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            "search_progress cannot show progress with this scikit-learn / joblib: "
            f"{error} Searches run without a progress bar; to get it back, upgrade "
            "sktransfer or install an earlier scikit-learn / joblib release.",
            RuntimeWarning, stacklevel=4)  # 4: the user's ``with`` line


def _original_fit_and_score():
    """scikit-learn's ``_fit_and_score``: the module global in a worker process,
    where nothing is patched; the saved original where the patch is active."""
    function = fit_and_score()
    if function is _fit_and_score_with_progress:
        function = _SAVED[fit_and_score_patch_points()[-1]]
    return function


def _fit_and_score_with_progress(*args, **kwargs):
    """``_fit_and_score``, its result tagged with where it belongs; counted
    here when it ran in the process that draws the bar."""
    depth = getattr(_LOCAL, "depth", 0)
    _LOCAL.depth = depth + 1
    try:
        result = _original_fit_and_score()(*args, **kwargs)
    finally:
        _LOCAL.depth = depth
    if depth or not isinstance(result, dict):
        return result  # a search inside a fit: not one of the outer search's fits
    result = _TaggedResult(result, kwargs)
    _count([result])
    return result


def _register_outcome_and_count(self, outcome):
    """joblib's ``_register_outcome``, then the batch's fits are counted."""
    _SAVED[register_outcome_patch_point()](self, outcome)
    results = outcome.get("result")
    if isinstance(results, (list, tuple)):  # else an exception
        _count(results)


def _count(results):
    tracker = _ACTIVE
    if tracker is not None and tracker.pid == os.getpid():  # not a forked child
        tracker.add(results)


# -- what is counted ---------------------------------------------------------------------

class _TaggedResult(dict):
    """A result of ``_fit_and_score`` (still the dict scikit-learn reads) and
    where it belongs: ``candidate`` ``(index, n_candidates)`` and ``split``
    ``(index, n_splits)`` (None in ``cross_validate``), ``refit`` (the
    search's refit metric name, or None), ``counted`` once on the bar."""

    def __init__(self, result, fit_kwargs):
        super().__init__(result)
        self.candidate = _pair(fit_kwargs.get("candidate_progress"))
        self.split = _pair(fit_kwargs.get("split_progress"))
        refit = getattr(fit_kwargs.get("caller"), "refit", None)
        self.refit = refit if isinstance(refit, str) else None
        self.counted = False

    def test_score(self):
        """``(metric name, score)``: the name only among several metrics
        (``cross_val_score``'s one is ``"score"``); score None for a failed fit."""
        scores = self.get("test_scores")
        name = None
        if isinstance(scores, dict):
            key = self.refit if self.refit in scores else next(iter(scores), None)
            scores = scores.get(key)
            name = key if len(self["test_scores"]) > 1 else None  # named when several
        if self.get("fit_error") is not None or scores is None:
            return name, None
        return name, float(scores)


def _pair(value):
    return tuple(value) if value is not None and len(value) == 2 else None


class _Tracker:
    """Counts finished fits, keeps the best mean score and draws the bar."""

    def __init__(self, bar):
        self.bar = bar
        self.pid = os.getpid()
        self._lock = threading.Lock()  # results come from worker and callback threads
        self._done = 0
        self._total = None
        self._folds = {}  # candidate (index, n_candidates) -> fold scores (None: failed)
        self._best = None
        self._cv_scores = []  # fold scores of a cross_validate
        self._metric = None
        self._closed = False

    def add(self, results):
        with self._lock:
            if self._closed:
                return
            fresh = [r for r in results if isinstance(r, _TaggedResult) and not r.counted]
            for result in fresh:
                result.counted = True
                self._add_one(result)
            if fresh:
                self.bar.set_postfix_str(self._summary(), refresh=False)
                self.bar.update(len(fresh))

    def _add_one(self, result):
        self._extend_total(result)
        self._done += 1
        self._metric, score = result.test_score()
        if result.candidate is None or result.split is None:
            if score is not None:
                self._cv_scores.append(score)
            return
        folds = self._folds.setdefault(result.candidate, [])
        folds.append(score)
        if len(folds) == result.split[1]:  # the candidate's last fold
            del self._folds[result.candidate]  # a later round may reuse its index
            self._consider(folds)

    def _extend_total(self, result):
        """The first fit of a search (or of its next round, which starts only
        when every fit of the round before has come back) adds its fits."""
        if result.candidate is None or result.split is None:
            return
        if self._total is None or self._done >= self._total:
            self._total = (self._total or 0) + result.candidate[1] * result.split[1]
            self.bar.total = self._total

    def _consider(self, folds):
        if None in folds:
            return
        mean = float(np.mean(folds))
        if not np.isnan(mean) and (self._best is None or mean > self._best):
            self._best = mean

    def _summary(self):
        name = f"{self._metric} " if self._metric else ""
        if self._best is not None:
            return f"best {name}{self._best:.3f} (mean over folds)"
        if self._cv_scores:
            return f"mean {name}{np.mean(self._cv_scores):.3f}"
        return ""

    def close(self):
        with self._lock:
            self._closed = True
            self.bar.close()
