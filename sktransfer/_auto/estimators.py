"""``AutoTransferClassifier`` and ``AutoTransferRegressor``: choose and fit
the best transfer recipe (or a baseline without transfer) under a
wall-clock budget."""

from __future__ import annotations

import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import check_scoring
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .._base import atomic_fit
from .._compat import Interval, StrOptions, _fit_context
from .._exceptions import BudgetWarning, NegativeTransferWarning
from .._options import IMAGES, TABULAR
from .leaderboard import Leaderboard
from .networks import available_networks, kept_pairs, rank_pairs
from .search import ONE_SHOT_SHARE, Budget, Search, SearchData, make_folds
from .space import (
    INPUT_KINDS,
    Candidate,
    Settings,
    baseline_candidates,
    check_task,
    cut_probe_candidate,
    given_candidates,
    infer_input_kind,
    network_candidates,
    scratch_candidate,
    sized,
    source_of,
    tabular_scratch,
)

MIN_SAMPLES = 4  # fewer cannot be split into training and validation samples


def _has_best(method: str):
    def check(self):
        check_is_fitted(self)
        return hasattr(self.best_estimator_, method)
    return check


class BaseAutoTransfer(BaseEstimator):
    """Shared by the automatic classifier and regressor. Not for direct use."""

    _parameter_constraints: dict = {
        "time_budget": [Interval(Real, 0, None, closed="neither")],
        "candidates": [None, list, dict],
        "sources": [None, list],
        "backbones": [StrOptions({"available"}), list],
        "baselines": ["boolean"],
        "input_kind": [StrOptions({"auto", *INPUT_KINDS})],
        "image_size": [None, Interval(Integral, 8, None, closed="left")],
        "cv": [None, "cv_object"],
        "scoring": [None, str, callable],
        "n_ranked": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
        "cache_dir": [None, str, os.PathLike],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _task = ""

    def __init__(self, time_budget=600.0, *, candidates=None, sources=None,
                 backbones="available", baselines=True, input_kind="auto", image_size=None,
                 cv=None, scoring=None, n_ranked=3, n_jobs=None, cache_dir=None,
                 device="auto", random_state=None, verbose=0):
        self.time_budget = time_budget
        self.candidates = candidates
        self.sources = sources
        self.backbones = backbones
        self.baselines = baselines
        self.input_kind = input_kind
        self.image_size = image_size
        self.cv = cv
        self.scoring = scoring
        self.n_ranked = n_ranked
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fit ------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Search the candidates within ``time_budget`` seconds and refit the
        best on all of ``X, y``.

        Parameters
        ----------
        X : images, texts or a table
            As :class:`PretrainedClassifier` takes them: an image array or
            image files, a sequence of strings, or a 2-D numeric table.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with atomic_fit(self):
            return self._search(X, y)

    def _search(self, X, y):
        budget = Budget(self.time_budget, self.verbose)
        kind = infer_input_kind(X) if self.input_kind == "auto" else self.input_kind
        X, y = self._validate_inputs(X, y, kind)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        settings = Settings(self._task, kind, self.image_size, self.cache_dir, self.device, seed,
                            self.verbose, n_samples=len(y))
        data = SearchData(X, y, make_folds(y, self.cv, self._classification, seed),
                          self._scorer())
        budget.note(f"{kind}: {len(y)} samples, {len(data.folds)} validation fold(s), "
                    f"budget {budget.seconds:.0f} s")
        search = Search(data, budget, self.n_jobs)
        one_shot, by_epochs = self._enter_candidates(search, X, y, settings, budget)
        search.one_shot(one_shot, ONE_SHOT_SHARE if by_epochs else 1.0)
        search.halving(by_epochs)
        entry, model = search.refit(X, y)
        if entry is None:
            raise ValueError(self._nothing_fitted(search, budget))
        self._set_fitted(search, entry, model, budget, kind)
        return self

    def _validate_inputs(self, X, y, kind):
        if kind == TABULAR:
            X = validate_data(self, X)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        y = self._validate_targets(y)
        if len(y) < MIN_SAMPLES:
            raise ValueError(f"{type(self).__name__} needs at least {MIN_SAMPLES} samples to "
                             f"validate its candidates; got n_samples = {len(y)}.")
        return X, y

    def _scorer(self):
        return check_scoring(_ScoreProxy(self._classification), scoring=self.scoring)

    def _enter_candidates(self, search: Search, X, y, settings: Settings, budget: Budget):
        """Register every candidate with the search; return its entries:
        (fitted once, trained by epochs), each in the order they run."""
        if self.candidates is not None:
            chosen = [(c, math.nan) for c in given_candidates(self.candidates)]
            for candidate, _ in chosen:
                check_task(candidate.estimator, settings, candidate.name)
        else:
            chosen = self._generated(search, X, y, settings, budget)
        if self.baselines:
            chosen = [(c, math.nan) for c in baseline_candidates(settings)] + chosen
        if not chosen:
            raise ValueError(
                f"{type(self).__name__} has no candidate for {settings.input_kind} data: no "
                "pretrained network of that kind is available and baselines=False. Pass "
                "sources= (a fitted estimator or weights file), candidates=, or "
                "baselines=True.")
        entries = [search.add(candidate, logme) for candidate, logme in chosen]
        by_epochs = [e for e in entries if e.candidate.epochs]
        # the default recipes first (in the networks' ranking order), then the
        # networks from scratch: they are trained to their whole budget while
        # time is plentiful
        by_epochs.sort(key=lambda e: (not e.candidate.default, not e.candidate.full_budget))
        return [e for e in entries if not e.candidate.epochs], by_epochs

    def _generated(self, search: Search, X, y, settings: Settings, budget: Budget):
        """The automatic candidates, as (candidate, LogME) pairs: every
        available network's recipes (networks and cuts ranked by LogME
        first; the pairs ranked out are recorded), the sources' recipes, and
        a network from scratch."""
        sources = [sized(source_of(value, i), settings)
                   for i, value in enumerate(self.sources or [])]
        wrong = [s.label for s in sources if s.input_kind != settings.input_kind]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} take(s) other input than X "
                             f"({settings.input_kind}); pass sources fitted on "
                             f"{settings.input_kind}.")
        if settings.input_kind == TABULAR:
            chosen = [c for s in sources for c in
                      network_candidates(s.backbone, s.label, settings,
                                         n_stages=s.n_stages, weights=s.weights)]
            if self.baselines:
                chosen.append(tabular_scratch(settings))
            return [(c, math.nan) for c in chosen]
        networks = sources + available_networks(settings.input_kind, self.backbones, settings)
        if not networks:
            return []
        pairs = rank_pairs(networks, X, y, settings, budget, self._classification)
        kept = kept_pairs(pairs, self.n_ranked)
        chosen = []
        for pair in pairs:
            if pair not in kept:
                fate = "not ranked for budget" if math.isnan(pair.logme) else "ranked out"
                search.add(_ranked_out(pair), pair.logme, fate=fate)
                continue
            network = pair.network
            if pair.stage is None:
                made = network_candidates(network.backbone, network.label, settings,
                                          n_stages=pair.n_stages, weights=network.weights)
            else:
                made = [cut_probe_candidate(network.backbone, network.label, pair.stage,
                                            settings, weights=network.weights)]
            chosen += [(candidate, pair.logme) for candidate in made]
        if self.baselines and settings.input_kind == IMAGES:
            best = kept[0].network
            chosen.append((scratch_candidate(best.backbone, best.label, settings), math.nan))
        return chosen

    def _nothing_fitted(self, search: Search, budget: Budget) -> str:
        failures = [f"{e.candidate.name}: {e.fate}" for e in search.entries if e.fate]
        detail = "; ".join(failures[:5]) or "no candidate could be evaluated"
        return (f"{type(self).__name__} fitted no candidate within time_budget="
                f"{self.time_budget} s ({detail}). Raise time_budget, or give cheaper "
                "candidates.")

    def _set_fitted(self, search: Search, entry, model, budget: Budget, kind: str):
        self.best_estimator_ = model
        self.best_score_ = entry.score
        self.best_params_ = {"candidate": entry.candidate.name,
                             "recipe": entry.candidate.recipe, **entry.candidate.params}
        if entry.candidate.epochs:
            self.best_params_["max_epochs"] = entry.last.refit_epochs
        self.leaderboard_ = Leaderboard([e.row() for e in search.entries])
        self.transfer_gain_ = search.best_of(True) - search.best_of(False)
        self.elapsed_ = budget.elapsed()
        self.input_kind_ = kind
        if self._classification:
            self.classes_ = model.classes_
        budget.note(f"chose {entry.candidate.name} (validation score {entry.score:.4f}); "
                    f"fit took {self.elapsed_:.1f} s of {budget.seconds:.0f} s")
        self.search_log_ = list(budget.log)
        if search.refit_cut:
            warnings.warn(f"time_budget={self.time_budget} s: {search.refit_cut}; the model "
                          "may be undertrained. Raise time_budget.", BudgetWarning,
                          stacklevel=3)
        untrained = _untrained_networks(search)
        if untrained:
            warnings.warn(f"time_budget={self.time_budget} s: {untrained}",
                          BudgetWarning, stacklevel=3)
        if self.transfer_gain_ < 0:
            warnings.warn(
                f"negative transfer: the best transfer candidate scored "
                f"{-self.transfer_gain_:.4f} below the best baseline without transfer on "
                "the validation folds; the baseline may serve this data better (see "
                "leaderboard_).", NegativeTransferWarning, stacklevel=3)

    # -- behave as the chosen model -------------------------------------------------

    def _checked(self, X):
        check_is_fitted(self)
        if self.input_kind_ == TABULAR and hasattr(self, "n_features_in_"):
            X = validate_data(self, X, reset=False)
        return X

    def predict(self, X):
        """Predict with the chosen model.

        Parameters
        ----------
        X : images, texts or a table
            As for ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The chosen model's predictions.
        """
        X = self._checked(X)
        return self.best_estimator_.predict(X)

    @available_if(_has_best("transform"))
    def transform(self, X):
        """Transform with the chosen model (when it is a transformer, e.g.
        a pipeline ending in one).

        Parameters
        ----------
        X : images, texts or a table
            As for ``fit``.

        Returns
        -------
        X_new : ndarray
            The chosen model's output.
        """
        X = self._checked(X)
        return self.best_estimator_.transform(X)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "best_estimator_")


class _ScoreProxy:
    """Lets ``check_scoring`` resolve a scorer name before any model exists."""

    def __init__(self, classification: bool):
        self._estimator_type = "classifier" if classification else "regressor"

    def fit(self, X, y):  # pragma: no cover - never called
        return self

    def score(self, X, y):  # pragma: no cover - scorers call the real model's
        raise NotImplementedError


def _ranked_out(pair) -> Candidate:
    where = "" if pair.stage is None else f" (stage {pair.stage})"
    return Candidate(f"{pair.network.label}{where}", None, "ranked out",
                     backbone=pair.network.label,
                     cut="" if pair.stage is None else f"stage {pair.stage}")


def _untrained_networks(search: Search) -> str:
    """What to tell the user when candidates trained by epochs were left
    out for budget and none of them finished a trial ("" otherwise)."""
    networks = [e for e in search.entries if e.candidate.epochs]
    left_out = [e for e in networks if e.fate in ("skipped for budget", "stopped for budget")]
    if not left_out or any(e.last is not None for e in networks):
        return ""
    names = ", ".join(e.candidate.name for e in left_out[:3])
    more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
    spent = max(sum(t.seconds for t in e.trials) for e in left_out)
    how_long = (f"the longest ran {spent:.0f} s before it was stopped" if spent > 0
                else "none had time to start")
    return (f"no network trained by epochs ({names}{more}) finished a trial on the "
            f"validation folds ({how_long}), so the choice was among the probes and "
            "baselines only. Raise time_budget to compare them; see leaderboard_.")


_SHARED_PARAMETERS = """
    time_budget : float, default=600.0
        Wall-clock seconds for the whole ``fit``, the refit of the chosen
        model included. Fits of candidates stop between batches when the
        time left is only what the refit needs; work that cannot stop
        midway (a feature pass, a probe, a baseline) starts only when its
        estimated time fits. With a budget too small for training, the
        result is the best of the probes and baselines that fitted, and a
        ``BudgetWarning`` says so.
    candidates : list or dict of estimators, default=None
        Models to choose from instead of the automatic candidates (a dict
        names them). Networks with ``max_epochs="auto"`` that train by
        gradient steps go through successive halving; the others are
        fitted once. The baselines are added unless ``baselines=False``.
    sources : list, default=None
        Networks to transfer from besides the registered ones: fitted
        :class:`PretrainedClassifier` / :class:`TransferRegressor`
        estimators, or files written by their ``save_weights``. Tabular
        data has no registered network: its transfer candidates come from
        here.
    backbones : "available" or list, default="available"
        The registered networks tried for images or texts: "available"
        takes those whose pretrained weights are on this machine (nothing
        is downloaded); a list names them (registry names,
        :class:`ImageBackbone` / :class:`TextEncoder` objects, or
        ``(backbone, weights)`` tuples), downloading weights that are not
        here.
    baselines : bool, default=True
        Also fit models that involve no transfer, so that negative transfer
        shows: a network trained from scratch (images, tables), TF-IDF with
        a linear model (texts), gradient boosting and a standardised linear
        model (tables).
    input_kind : {"auto", "images", "text", "tabular"}, default="auto"
        What ``X`` holds; "auto" infers it (2-D numbers: a table; 3-D or
        4-D numbers, image files or PIL images: images; strings: texts).
    image_size : int or None, default=None
        Side images are resized to for every image candidate; None uses
        each network's own input size (224 for ImageNet networks, slow on
        a CPU: small images such as digits do well at 32 to 64).
    cv : int, cross-validation generator, iterable or None, default=None
        Validation splits, as scikit-learn's ``cv``; None: 3 folds
        (stratified for a classifier) up to 2,000 samples, one 20 %
        held-out split above.
    scoring : str, callable or None, default=None
        Validation score (higher is better); None uses the estimators'
        ``score``.
    n_ranked : int, default=3
        How many (network, cut point) pairs, ranked by LogME on the
        target's features, are trained; the best network's output is
        always among them.
    n_jobs : int or None, default=None
        Validation folds fitted in parallel through joblib (any joblib
        backend, e.g. Ray or Dask, applies).
    cache_dir : str, path or None, default=None
        On-disk activation cache shared by every candidate (see
        :class:`PretrainedClassifier`); None keeps it in memory.
    device : str, default="auto"
        Device of every network candidate.
    random_state : int, RandomState instance or None, default=None
        Seeds the folds and every candidate. On a CPU, two fits with the
        same seed make the same choice when the budget does not bind (a
        budget that binds makes the outcome depend on the machine's speed).
    verbose : int, default=0
        1 prints each decision as it is taken; 2 also shows a progress bar
        for each epoch of the networks' fits.
"""

_SHARED_ATTRIBUTES = """
    best_estimator_ : estimator
        The chosen model, refitted on all of ``X, y``: a plain
        :class:`PretrainedClassifier` / :class:`TransferRegressor` or a
        scikit-learn pipeline, usable on its own.
    best_params_ : dict
        What the chosen candidate is: ``candidate`` (its name), ``recipe``
        and the parameters that set it (``freeze_depth``, ``lr``,
        ``max_epochs`` ...).
    best_score_ : float
        Its mean validation score.
    leaderboard_ : Leaderboard
        One row per candidate: recipe, backbone, cut, rate, epochs reached,
        validation score, seconds and fate; ``to_frame()`` gives a
        DataFrame.
    transfer_gain_ : float
        Best validation score of a transfer candidate minus that of the
        best baseline without transfer (NaN when one side has none); a
        ``NegativeTransferWarning`` is issued when it is negative. A
        ``BudgetWarning`` is issued when no candidate trained by epochs
        finished a trial within the budget.
    search_log_ : list of str
        Every decision of the search, with the time it was taken.
    elapsed_ : float
        Seconds the fit took.
    input_kind_ : str
        "images", "text" or "tabular".
    n_features_in_ : int
        Number of columns of a table (tabular data only).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of a DataFrame (tabular data with string column names
        only).
"""


class AutoTransferClassifier(ClassifierMixin, BaseAutoTransfer):
    __doc__ = f"""Choose and fit the best transfer recipe for a classification task
    within a time budget.

    Given images, texts or a table and their labels, the search ranks the
    available pretrained networks and cut points by LogME on the target's
    features, fits the cheap candidates first (the exact linear probe,
    linear probes at inner cuts, baselines without transfer), then runs
    successive halving over the networks trained by gradient steps
    (fine-tuning at three rates, fine-tuning of the upper stages, LP-FT, a
    network from scratch) with epochs as the resource, every rung scored on
    held-out folds. The best candidate is refitted on all the data, and the
    estimator then behaves as that model.

    Read more in the user guide's "Automatic transfer" page (``docs/user_guide/auto.md``).

    Parameters
    ----------{_SHARED_PARAMETERS}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.{_SHARED_ATTRIBUTES}
    See Also
    --------
    AutoTransferRegressor : The same search for regression.
    PretrainedClassifier : One transfer recipe, set by hand.

    Notes
    -----
    Every label is a class: unlabeled samples (``-1`` with
    ``PretrainedClassifier(unlabeled=...)``) are not used by the search;
    drop them, or fit a :class:`PretrainedClassifier` that uses them. A
    candidate that fails is recorded in ``leaderboard_`` with its error
    and the search goes on.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import AutoTransferClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> auto = AutoTransferClassifier(time_budget=5, random_state=0).fit(X, y)
    >>> auto.best_params_["recipe"] in ("baseline", "from scratch")
    True
    >>> auto.predict(X[:3]).shape
    (3,)
    """

    _task = "classification"
    _classification = True

    def _validate_targets(self, y):
        check_classification_targets(y)
        if np.unique(y).size < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class.")
        return y

    @available_if(_has_best("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the chosen model.

        Parameters
        ----------
        X : images, texts or a table
            As for ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        X = self._checked(X)
        return self.best_estimator_.predict_proba(X)

    @available_if(_has_best("decision_function"))
    def decision_function(self, X):
        """Decision function of the chosen model.

        Parameters
        ----------
        X : images, texts or a table
            As for ``fit``.

        Returns
        -------
        scores : ndarray
            The chosen model's decision function.
        """
        X = self._checked(X)
        return self.best_estimator_.decision_function(X)


class AutoTransferRegressor(RegressorMixin, BaseAutoTransfer):
    __doc__ = f"""Choose and fit the best transfer recipe for a regression task within
    a time budget.

    The search of :class:`AutoTransferClassifier`, for continuous targets:
    the candidates are :class:`TransferRegressor` recipes, linear models on
    features at inner cuts, and baselines without transfer (a network from
    scratch; TF-IDF with ridge regression for texts; gradient boosting and
    ridge regression for tables), scored by R² unless ``scoring`` says
    otherwise.

    Read more in the user guide's "Automatic transfer" page (``docs/user_guide/auto.md``).

    Parameters
    ----------{_SHARED_PARAMETERS}
    Attributes
    ----------{_SHARED_ATTRIBUTES}
    See Also
    --------
    AutoTransferClassifier : The same search for classification.
    TransferRegressor : One transfer recipe, set by hand.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sktransfer import AutoTransferRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> auto = AutoTransferRegressor(time_budget=5, random_state=0).fit(X, y)
    >>> auto.leaderboard_.best == auto.best_params_["candidate"]
    True
    """

    _task = "regression"
    _classification = False

    def _validate_targets(self, y):
        y = np.asarray(y, dtype=np.float64)
        if not np.isfinite(y).all():
            raise ValueError(
                f"y contains NaN or infinite values; {type(self).__name__} does not use "
                "unlabeled samples: drop them, or fit TransferRegressor(unlabeled=...) "
                "on them.")
        return y
