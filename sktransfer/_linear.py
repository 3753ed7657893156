"""Parameter transfer for linear models: ``TransferLogisticRegression`` and
``TransferRidge`` fit a target while penalising the distance of their
coefficients to a source model's (a Gaussian prior centred on the source
weights, Chelba & Acero 2004); the ``...CV`` variants choose the strength of
that pull by cross-validation, from "target data only" to "source kept", and
say when the source does not help. Torch-free."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.utils import check_array
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._compat import Interval, StrOptions, _check_sample_weight, _check_y, _fit_context
from ._exceptions import NegativeTransferWarning
from ._linear_solvers import LogisticProblem, RidgeProblem, few_blas_threads
from ._linear_source import (
    check_n_features,
    class_rows,
    output_rows,
    read_source,
)

# the relative span of the default penalty path (times the data's scale), whose
# ends are practically "target data only" and "the source coefficients kept";
# np.inf (exactly the source coefficients) is added to it
_PATH_SPAN = (1e-4, 1e4)
_MAX_FOLDS = 5
# penalties past the best with a worse held-out score before a logistic path stops
_PATIENCE = 2
# L-BFGS iterations per fit on a cross-validated logistic path: warm-started,
# enough to rank penalties almost a decade apart (the exact probe's search
# found 20 enough on real probes); the final fit runs to max_iter
_PATH_MAX_ITER = 30


class _BaseTransferLinear(BaseEstimator):
    """What the four linear transfer estimators share: reading the source,
    the input checks (through the source's preprocessing) and cloning that
    keeps the fitted source. Not for direct use."""

    _accept_sparse = False

    def __sklearn_clone__(self):
        # the source is fitted data, not a sub-estimator to refit: pass it on
        params = self.get_params(deep=False)
        source = params.pop("source")
        params = {name: clone(value, safe=False) for name, value in params.items()}
        return type(self)(source=source, **params)

    def _fit_inputs(self, X, y, sample_weight):
        """The source read once, the inputs the linear model reads (after the
        source's preprocessing) and the validated ``y`` and weights."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        source = read_source(self.source)
        X = self._model_inputs(X, source, reset=True)
        y = _check_y(y, multi_output=self._multi_output, y_numeric=not self._is_classifier(),
                     estimator=self)
        if len(y) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {len(y)}.")
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        if not sample_weight.sum() > 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs weight > 0.")
        if source is not None:
            check_n_features(source, X.shape[1])
        self._source_steps = None if source is None else source.preprocessing
        return source, X, y, sample_weight

    def _model_inputs(self, X, source, *, reset):
        """``X`` as the linear model reads it: through the source Pipeline's
        fitted preprocessing when there is one (its own checks apply), else
        validated here."""
        if reset:
            steps = None if source is None else source.preprocessing
        else:
            steps = self._source_steps
        if steps is None:
            return validate_data(self, X, reset=reset, accept_sparse=self._sparse_formats(),
                                 dtype=[np.float64, np.float32],
                                 ensure_min_samples=self._min_samples if reset else 1)
        if reset:
            for name in ("n_features_in_", "feature_names_in_"):
                if hasattr(steps, name):
                    setattr(self, name, getattr(steps, name))
        return check_array(steps.transform(X), accept_sparse=self._sparse_formats(),
                           dtype=[np.float64, np.float32])

    def _sparse_formats(self):
        return "csr" if self._accept_sparse else False

    def _linear_outputs(self, X):
        check_is_fitted(self)
        X = self._model_inputs(X, None, reset=False)
        coef = np.atleast_2d(self.coef_)
        return safe_sparse_dot(X, coef.T, dense_output=True) + np.atleast_1d(self.intercept_)

    _min_samples = 1
    _multi_output = False

    def _is_classifier(self):
        return isinstance(self, ClassifierMixin)


def _data_scale(X, sample_weight) -> float:
    """Mean over features of the weighted sum of squared deviations: the
    size of the data term a penalty is compared with."""
    s = sample_weight
    mean = np.asarray(safe_sparse_dot(s, X)).ravel() / s.sum()
    squares = X.multiply(X) if sparse.issparse(X) else X * X
    total = float(np.asarray(safe_sparse_dot(s, squares)).sum() - s.sum() * mean @ mean)
    scale = total / X.shape[1]
    return scale if scale > 0 else 1.0


def _penalty_path(alphas, X, sample_weight) -> np.ndarray:
    """The penalties to try, strongest first (``inf``, the source kept, leads
    an automatic path)."""
    if isinstance(alphas, Integral):
        relative = np.logspace(np.log10(_PATH_SPAN[1]), np.log10(_PATH_SPAN[0]), alphas)
        return np.concatenate([[np.inf], relative * _data_scale(X, sample_weight)])
    path = np.asarray(alphas, dtype=float).ravel()
    if path.size == 0 or np.any(np.isnan(path)) or np.any(path < 0):
        raise ValueError(f"alphas must be an int or non-negative penalties; got {alphas!r}.")
    return np.sort(path)[::-1]


def _choose(scores: np.ndarray) -> int:
    """The best mean score; on a tie the stronger penalty (earlier on the
    path). Penalties a path skipped (NaN) are not chosen."""
    mean = np.where(np.isnan(scores).any(0), -np.inf, scores.mean(0))
    best = mean.max()
    slack = 1e-12 * abs(best) if np.isfinite(best) else 0.0
    return int(np.flatnonzero(mean >= best - slack)[0])


def _cv_attributes(estimator, path, source_scores, target_scores, source, evidence=None):
    """Choose between the paths with and without the source, set the CV
    attributes, and warn when the source does not help. Returns which path
    (True: with the source) and the index of the chosen penalty on it.
    ``evidence``: ``(with the source, without it)``, the log evidence along
    each path, which then makes both choices (see ``_evidence_choice``)."""
    if evidence is not None:
        return _evidence_choice(estimator, path, source_scores, target_scores, source,
                                evidence)
    target_best = _choose(target_scores)
    target_score = target_scores.mean(0)[target_best]
    estimator.alphas_ = path
    results = {"alphas": path, "mean_test_score_target_only": target_scores.mean(0),
               "std_test_score_target_only": target_scores.std(0)}
    if source is None:
        estimator.scores_ = target_scores
        results.update(mean_test_score=target_scores.mean(0), std_test_score=target_scores.std(0))
        estimator.cv_results_ = results
        estimator.alpha_, estimator.best_score_ = float(path[target_best]), float(target_score)
        estimator.transfer_gain_, estimator.source_used_ = 0.0, False
        return False, target_best
    best = _choose(source_scores)
    source_score = source_scores.mean(0)[best]
    estimator.scores_ = source_scores
    results.update(mean_test_score=source_scores.mean(0), std_test_score=source_scores.std(0))
    estimator.cv_results_ = results
    estimator.transfer_gain_ = float(source_score - target_score)
    # the target-only model is kept only when it is better by more than the
    # noise of the comparison: one standard error of the paired differences
    # of the held-out scores (per fold, or per sample for leave-one-out); on
    # a few samples a chance win of the target-only path would otherwise
    # throw away a useful source
    differences = target_scores[:, target_best] - source_scores[:, best]
    noise = differences.std(ddof=1) / np.sqrt(len(differences)) if len(differences) > 1 \
        else 0.0
    estimator.source_used_ = not differences.mean() > noise
    if estimator.transfer_gain_ < 0:
        kept = ("keeps the target-only model (alpha_ penalises the distance to zero)"
                if not estimator.source_used_ else
                "keeps the model fitted toward the source, as the difference is within "
                f"one standard error ({noise:.2g}) of the held-out scores")
        warnings.warn(
            f"negative transfer: the cross-validated score with {source.description} "
            f"({source_score:.4g}) is below the target-only one ({target_score:.4g}); "
            f"{type(estimator).__name__} {kept}. Check that the source predicts the same "
            "thing from the same features.", NegativeTransferWarning, stacklevel=3)
    if not estimator.source_used_:
        estimator.alpha_, estimator.best_score_ = float(path[target_best]), float(target_score)
        return False, target_best
    estimator.alpha_, estimator.best_score_ = float(path[best]), float(source_score)
    return True, best


def _evidence_choice(estimator, path, source_scores, target_scores, source, evidence):
    """The penalty of largest log evidence on each path, and the source kept
    when its path's best evidence is at least the target-only path's (the
    Bayes factor of the two priors); the held-out scores are reported at
    the chosen penalties."""
    source_evidence, target_evidence = evidence
    target_best = int(np.argmax(target_evidence))
    scores = target_scores if source is None else source_scores
    estimator.alphas_, estimator.scores_ = path, scores
    estimator.cv_results_ = {
        "alphas": path, "mean_test_score": scores.mean(0), "std_test_score": scores.std(0),
        "mean_test_score_target_only": target_scores.mean(0),
        "std_test_score_target_only": target_scores.std(0),
        "log_evidence": target_evidence if source is None else source_evidence,
        "log_evidence_target_only": target_evidence}
    target_score = float(target_scores.mean(0)[target_best])
    if source is None:
        estimator.alpha_, estimator.best_score_ = float(path[target_best]), target_score
        estimator.transfer_gain_, estimator.source_used_ = 0.0, False
        return False, target_best
    best = int(np.argmax(source_evidence))
    source_score = float(source_scores.mean(0)[best])
    estimator.transfer_gain_ = source_score - target_score
    estimator.source_used_ = bool(source_evidence[best] >= target_evidence[target_best])
    if not estimator.source_used_:
        warnings.warn(
            f"negative transfer: the target data are more likely without "
            f"{source.description} (log evidence {target_evidence[target_best]:.4g} against "
            f"{source_evidence[best]:.4g}); {type(estimator).__name__} keeps the "
            "target-only model (alpha_ penalises the distance to zero). Check that the "
            "source predicts the same thing from the same features.",
            NegativeTransferWarning, stacklevel=3)
        estimator.alpha_, estimator.best_score_ = float(path[target_best]), target_score
        return False, target_best
    estimator.alpha_, estimator.best_score_ = float(path[best]), source_score
    return True, best


# -- logistic regression -------------------------------------------------------------


class _LogisticBase(ClassifierMixin, _BaseTransferLinear):
    """The classifier side: targets, the source's rows, predictions."""

    _accept_sparse = True

    def _problem(self, source, X, y, sample_weight):
        check_classification_targets(y)
        classes, targets = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, but "
                             f"the data contains only one class: {classes[0]!r}.")
        k = 1 if len(classes) == 2 else len(classes)
        w0 = np.zeros((k, X.shape[1])) if source is None else class_rows(source, classes)[0]
        self.classes_ = classes
        return LogisticProblem(X, targets, sample_weight, w0)

    def _minimise(self, problem, alpha, start):
        return problem.minimise(alpha, start, tol=self.tol, max_iter=self.max_iter)

    def _set_solution(self, problem, solution, n_iter, converged):
        (coef, intercept) = solution
        self.coef_, self.intercept_ = coef, intercept
        self.source_coef_ = problem.w0
        self.n_iter_ = np.array([n_iter])
        if not converged:
            warnings.warn(
                f"{type(self).__name__}'s L-BFGS solver stopped at max_iter={self.max_iter} "
                "iterations before converging; raise max_iter, or raise alpha (a stronger "
                "pull to the source is an easier problem).", ConvergenceWarning, stacklevel=3)

    def decision_function(self, X):
        """Logits: the second class's log-odds for two classes, else one
        column per class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples, as given to ``fit`` (before any source preprocessing).

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The linear model's outputs.
        """
        scores = self._linear_outputs(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities (logistic for two classes, softmax otherwise).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples, as given to ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        scores = self._linear_outputs(X)
        if scores.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1 - positive, positive])
        scores = scores - scores.max(1, keepdims=True)
        proba = np.exp(scores)
        return proba / proba.sum(1, keepdims=True)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples, as given to ``fit``.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples, as given to ``fit``.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        scores = self._linear_outputs(X)
        index = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)
        return self.classes_[index]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class TransferLogisticRegression(_LogisticBase):
    """Logistic regression pulled toward a source model's coefficients.

    Minimises the weighted multinomial log-likelihood (binary for two
    classes) plus ``alpha / 2 * ||W - W_source||^2`` by L-BFGS; the
    intercept is not penalised. With ``source=None`` this is scikit-learn's
    ``LogisticRegression(C=1 / alpha)``. Small ``alpha`` fits the target data
    alone; ``alpha=np.inf`` keeps the source coefficients and fits the
    intercept only.

    Parameters
    ----------
    source : estimator, Pipeline, tuple or None, default=None
        The source model: a fitted scikit-learn linear classifier
        (``coef_``, ``intercept_``, ``classes_``); a fitted ``Pipeline``
        ending in one, whose preprocessing steps are applied, as fitted on
        the source, to every ``X`` this estimator sees (so this estimator is
        effectively that preprocessing followed by a new linear model, and
        its coefficients mean what the source's mean); a tuple ``(coef,
        intercept)`` or ``(coef, intercept, classes)`` of arrays; or a
        fitted :class:`PretrainedClassifier` with a linear head (the exact
        probe, ``freeze_depth="all"``), whose head reads the backbone's
        features: put ``TransferFeatures(backbone=that_estimator)`` before
        this estimator in a Pipeline. Classes are matched by label (a target
        class the source lacks starts from zero; rows given without labels
        follow the sorted target classes). None: no source (plain
        L2-penalised logistic regression).
    alpha : float, default=1.0
        Strength of the pull toward the source coefficients, in the units
        of the summed log-loss (``1 / C`` of ``LogisticRegression``);
        ``np.inf`` keeps them exactly.
    tol : float, default=1e-4
        L-BFGS stops when the largest gradient entry of the mean objective
        is below ``tol``.
    max_iter : int, default=100
        L-BFGS iteration budget; ``ConvergenceWarning`` when it is reached.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients (one row, the second class's log-odds, for two classes).
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts, not penalised.
    source_coef_ : ndarray of the shape of ``coef_``
        The source coefficients matched to ``classes_`` (zeros without a source).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_iter_ : ndarray of shape (1,)
        L-BFGS iterations of the fit.
    n_features_in_ : int
        Number of features of ``X`` (before any source preprocessing).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names of ``X``, when it has them.

    See Also
    --------
    TransferLogisticRegressionCV : Chooses ``alpha`` by cross-validation.
    TransferRidge : The same transfer for regression.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer import TransferLogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> source = LogisticRegression(max_iter=500).fit(X[::2], y[::2])
    >>> model = TransferLogisticRegression(source=source, alpha=10.0).fit(X[1::10], y[1::10])
    >>> model.coef_.shape
    (3, 4)
    >>> kept = TransferLogisticRegression(source=source, alpha=np.inf).fit(X[1::10], y[1::10])
    >>> bool(np.allclose(kept.coef_, source.coef_))
    True
    """

    _parameter_constraints: dict = {
        "source": "no_validation",
        "alpha": [Interval(Real, 0, np.inf, closed="both")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, source=None, *, alpha=1.0, tol=1e-4, max_iter=100):
        self.source = source
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the coefficients on ``X``, ``y``, pulled toward the source's.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Target samples (raw: a source Pipeline's preprocessing is applied).
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the log-likelihood (a weight of 2 is
            the sample repeated).

        Returns
        -------
        self : TransferLogisticRegression
            The fitted estimator.
        """
        source, X, y, sample_weight = self._fit_inputs(X, y, sample_weight)
        problem = self._problem(source, X, y, sample_weight)
        with few_blas_threads(X):
            start = (problem.w0, problem.start_intercept(problem.w0))
            solution, n_iter, converged = self._minimise(problem, float(self.alpha), start)
        self._set_solution(problem, solution, n_iter, converged)
        return self


class TransferLogisticRegressionCV(_LogisticBase):
    """:class:`TransferLogisticRegression` with ``alpha`` chosen by
    cross-validation, and a warning when the source does not help.

    The penalty path runs from ``np.inf`` (the source coefficients kept,
    only the intercept fitted) down to a penalty small enough that the
    target data decide alone, each fit warm-started from the previous one.
    The same path is also cross-validated without the source (plain
    logistic regression, the penalty pulling toward zero): the target-only
    model. If that scores better, the source does not help: a
    :class:`NegativeTransferWarning` is issued rather than a worse model in
    silence, and the target-only model is kept when it is better by more
    than one standard error of the paired differences of the folds' scores
    (a chance win on a few samples does not discard a useful source). The path stops once two
    penalties in a row score below the best so far (the weakest penalties,
    the slowest to fit, are then skipped).

    Parameters
    ----------
    source : estimator, Pipeline, tuple or None, default=None
        As for :class:`TransferLogisticRegression`.
    alphas : int or array-like, default=10
        An int: that many penalties log-spaced from 1e4 down to 1e-4 times
        the data's scale (the mean over features of the weighted sum of
        squared deviations from the mean), plus ``np.inf``. An array: those
        penalties (``np.inf`` allowed).
    cv : int, cross-validation generator, iterable or None, default=None
        None: stratified 5-fold (fewer folds when a class has fewer
        samples; plain K-fold when one has a single sample).
    scoring : {"neg_log_loss", "accuracy"} or None, default=None
        Held-out score to maximise; None is "neg_log_loss" (smoother than
        accuracy on few samples).
    tol : float, default=1e-4
        As for :class:`TransferLogisticRegression`.
    max_iter : int, default=100
        As for :class:`TransferLogisticRegression`, per fit on the path.

    Attributes
    ----------
    alpha_ : float
        The penalty chosen (of the target-only path when ``source_used_``
        is False).
    alphas_ : ndarray of shape (n_alphas,)
        The penalty path, strongest first.
    scores_ : ndarray of shape (n_folds, n_alphas)
        Held-out scores along the path with the source (without one when
        ``source`` is None); NaN where the path stopped early.
    cv_results_ : dict of ndarray
        ``alphas``, ``mean_test_score``, ``std_test_score`` (with the
        source) and ``mean_test_score_target_only``,
        ``std_test_score_target_only`` (without it), one entry per penalty.
    best_score_ : float
        Mean held-out score of the model kept.
    transfer_gain_ : float
        Best mean held-out score with the source minus the best without it
        (0.0 without a source); negative means negative transfer.
    source_used_ : bool
        Whether the model kept was fitted toward the source (False when the
        target-only model scored better by more than the noise).
    coef_, intercept_, source_coef_, classes_, n_iter_, n_features_in_, feature_names_in_
        As for :class:`TransferLogisticRegression`, for the model kept.

    See Also
    --------
    TransferLogisticRegression : A fixed ``alpha``.
    TransferRidgeCV : The same for regression.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer import TransferLogisticRegressionCV
    >>> X, y = load_iris(return_X_y=True)
    >>> source = LogisticRegression(max_iter=500).fit(X[::2], y[::2])
    >>> model = TransferLogisticRegressionCV(source=source).fit(X[1::5], y[1::5])
    >>> model.source_used_, model.transfer_gain_ >= 0
    (True, True)
    """

    _parameter_constraints: dict = {
        "source": "no_validation",
        "alphas": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "scoring": [None, StrOptions({"neg_log_loss", "accuracy"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
    }
    _min_samples = 2

    def __init__(self, source=None, *, alphas=10, cv=None, scoring=None, tol=1e-4,
                 max_iter=100):
        self.source = source
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.tol = tol
        self.max_iter = max_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Choose ``alpha`` by cross-validation, then fit on all of ``X``, ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Target samples (raw: a source Pipeline's preprocessing is applied).
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the log-likelihood and in the held-out scores.

        Returns
        -------
        self : TransferLogisticRegressionCV
            The fitted estimator.
        """
        source, X, y, sample_weight = self._fit_inputs(X, y, sample_weight)
        problem = self._problem(source, X, y, sample_weight)
        path = _penalty_path(self.alphas, X, sample_weight)
        folds = self._folds(X, y)
        plain = LogisticProblem(X, problem.targets, sample_weight, np.zeros_like(problem.w0))
        with few_blas_threads(X):
            target_scores, target_starts = self._path_scores(plain, path, folds)
            source_scores, source_starts = (None, None) if source is None else \
                self._path_scores(problem, path, folds)
        use_source, best = _cv_attributes(self, path, source_scores, target_scores, source)
        final, starts = (problem, source_starts) if use_source else (plain, target_starts)
        with few_blas_threads(X):
            solution, n_iter, converged = self._minimise(final, path[best], starts[best])
        self._set_solution(final, solution, n_iter, converged)
        self.source_coef_ = problem.w0
        return self

    def _folds(self, X, y):
        if self.cv is not None:
            return list(check_cv(self.cv, y, classifier=True).split(X, y))
        smallest = np.unique(y, return_counts=True)[1].min()
        if smallest >= 2:
            splitter = StratifiedKFold(min(_MAX_FOLDS, smallest))
        else:
            splitter = KFold(min(_MAX_FOLDS, len(y)))
        return list(splitter.split(X, y))

    def _path_scores(self, problem, path, folds):
        """Held-out scores (n_folds, n_alphas) along the warm-started path,
        and for each penalty the folds' mean solution (a start for the final
        fit). The held-out score is close to unimodal in the penalty, so the
        path stops once ``_PATIENCE`` penalties in a row score below the best
        so far: the weakest penalties, the slowest to solve, are skipped
        (their scores are NaN) when they would not be chosen."""
        scores = np.full((len(folds), len(path)), np.nan)
        parts = [LogisticProblem(problem.X[train], problem.targets[train],
                                 problem.sample_weight[train], problem.w0)
                 for train, _ in folds]
        current = [(part.w0, part.start_intercept(part.w0)) for part in parts]
        starts, worse = [], 0
        for i, alpha in enumerate(path):
            for f, ((_, test), part) in enumerate(zip(folds, parts)):
                current[f], _, _ = part.minimise(alpha, current[f], tol=self.tol,
                                                 max_iter=min(self.max_iter, _PATH_MAX_ITER))
                scores[f, i] = self._score(problem, current[f], test)
            starts.append(tuple(np.mean(side, axis=0) for side in zip(*current)))
            mean = scores[:, :i + 1].mean(0)
            worse = worse + 1 if mean[i] < mean.max() else 0
            if worse == _PATIENCE:
                break
        return scores, starts

    def _score(self, problem, solution, rows):
        if self.scoring == "accuracy":
            return problem.accuracy(*solution, rows)
        return -problem.log_loss(*solution, rows)


# -- ridge ---------------------------------------------------------------------------


class _RidgeBase(RegressorMixin, _BaseTransferLinear):
    """The regressor side: targets, the source's rows, predictions."""

    _multi_output = True

    def _problem(self, source, X, y, sample_weight):
        Y = y.reshape(len(y), -1).astype(float)
        if source is None:
            w0 = np.zeros((Y.shape[1], X.shape[1]))
        else:
            w0, _ = output_rows(source, Y.shape[1])
        return Y, w0

    def _set_solution(self, y, w0, coef, intercept):
        if y.ndim == 1:
            coef, intercept, w0 = coef[0], float(intercept[0]), w0[0]
        self.coef_, self.intercept_, self.source_coef_ = coef, intercept, w0

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as given to ``fit`` (before any source preprocessing).

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            As ``y`` was given to ``fit``.
        """
        outputs = self._linear_outputs(X)
        return outputs[:, 0] if np.ndim(self.coef_) == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class TransferRidge(_RidgeBase):
    """Ridge regression pulled toward a source model's coefficients.

    Minimises ``sum_i s_i ||y_i - W x_i - b||^2 + alpha * ||W - W_source||^2``
    in closed form (the intercept is not penalised; several targets at
    once). With ``source=None`` this is scikit-learn's ``Ridge(alpha)``;
    ``alpha=0`` is least squares (the solution closest to the source when
    there are several), ``alpha=np.inf`` keeps the source coefficients and
    fits the intercept only.

    Parameters
    ----------
    source : estimator, Pipeline, tuple or None, default=None
        The source model: a fitted scikit-learn linear regressor (``coef_``,
        ``intercept_``); a fitted ``Pipeline`` ending in one, whose
        preprocessing steps are applied, as fitted on the source, to every
        ``X`` this estimator sees (so this estimator is effectively that
        preprocessing followed by a new linear model); a tuple ``(coef,
        intercept)`` of arrays; or a fitted :class:`TransferRegressor` with a
        linear head (the exact probe, ``freeze_depth="all"``), whose head
        reads the backbone's features: put
        ``TransferFeatures(backbone=that_estimator)`` before this estimator in
        a Pipeline. None: no source (plain ridge).
    alpha : float, default=1.0
        Strength of the pull toward the source coefficients (``Ridge``'s
        units); ``np.inf`` keeps them exactly.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        Coefficients.
    intercept_ : float or ndarray of shape (n_targets,)
        Intercepts, not penalised.
    source_coef_ : ndarray of the shape of ``coef_``
        The source coefficients (zeros without a source).
    n_features_in_ : int
        Number of features of ``X`` (before any source preprocessing).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names of ``X``, when it has them.

    See Also
    --------
    TransferRidgeCV : Chooses ``alpha`` by cross-validation.
    TransferLogisticRegression : The same transfer for classification.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sktransfer import TransferRidge
    >>> X, y = load_diabetes(return_X_y=True)
    >>> source = Ridge(alpha=0.1).fit(X[:300], y[:300])
    >>> model = TransferRidge(source=source, alpha=1.0).fit(X[300:330], y[300:330])
    >>> model.coef_.shape
    (10,)
    >>> kept = TransferRidge(source=source, alpha=np.inf).fit(X[300:330], y[300:330])
    >>> bool(np.allclose(kept.coef_, source.coef_))
    True
    """

    _parameter_constraints: dict = {
        "source": "no_validation",
        "alpha": [Interval(Real, 0, np.inf, closed="both")],
    }

    def __init__(self, source=None, *, alpha=1.0):
        self.source = source
        self.alpha = alpha

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the coefficients on ``X``, ``y``, pulled toward the source's.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target samples (raw: a source Pipeline's preprocessing is applied).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's squared error.

        Returns
        -------
        self : TransferRidge
            The fitted estimator.
        """
        source, X, y, sample_weight = self._fit_inputs(X, y, sample_weight)
        Y, w0 = self._problem(source, X, y, sample_weight)
        coef, intercept = RidgeProblem.build(X, Y, sample_weight, w0).solve(float(self.alpha))
        self._set_solution(y, w0, coef, intercept)
        return self


class TransferRidgeCV(_RidgeBase):
    """:class:`TransferRidge` with ``alpha`` chosen by cross-validation, and
    a warning when the source does not help.

    The penalty path runs from ``np.inf`` (the source coefficients kept)
    down to a penalty small enough that the target data decide alone. By
    default every penalty is scored by exact leave-one-out errors (one SVD
    for the whole path, as :class:`~sklearn.linear_model.RidgeCV`). The same
    path is also scored without the source (plain ridge): the target-only
    model. If that scores better, a :class:`NegativeTransferWarning` is
    issued, and the target-only model is kept when it is better by more than
    one standard error of the paired differences of the held-out scores
    (per sample for leave-one-out).

    Parameters
    ----------
    source : estimator, Pipeline, tuple or None, default=None
        As for :class:`TransferRidge`.
    alphas : int or array-like, default=10
        An int: that many penalties log-spaced from 1e4 down to 1e-4 times
        the data's scale (the mean over features of the weighted sum of
        squared deviations from the mean), plus ``np.inf``. An array: those
        penalties (``np.inf`` and 0 allowed).
    cv : int, cross-validation generator, iterable or None, default=None
        None: efficient leave-one-out. Otherwise scikit-learn's ``cv``
        (an int is K-fold).
    scoring : {"neg_mean_squared_error", "r2"} or None, default=None
        Held-out score to maximise; None is "neg_mean_squared_error".
        Leave-one-out "r2" is computed over all held-out predictions.
    criterion : {"cv", "evidence"}, default="cv"
        What chooses ``alpha`` and whether to keep the source. "cv": the
        held-out scores, as above. "evidence": the marginal likelihood of
        the target data (type-II maximum likelihood, as
        :class:`~sklearn.linear_model.BayesianRidge` does) under the
        Gaussian prior that the penalty is, centred on the source's
        coefficients, with the noise variance at its most likely value; the
        source is kept when its best evidence is at least that of the prior
        centred on zero (target only), else a
        :class:`NegativeTransferWarning` is issued. It needs no held-out
        samples, so on a handful of them it is steadier than leave-one-out
        (see the linear transfer benchmark). The held-out scores are still
        computed and reported.

    Attributes
    ----------
    alpha_ : float
        The penalty chosen (of the target-only path when ``source_used_``
        is False).
    alphas_ : ndarray of shape (n_alphas,)
        The penalty path, strongest first.
    scores_ : ndarray of shape (n_folds, n_alphas)
        Held-out scores along the path with the source (without it when
        ``source`` is None): one row per fold, or for leave-one-out one per
        sample (each sample's share: the mean of a column is the score).
    cv_results_ : dict of ndarray
        ``alphas``, ``mean_test_score``, ``std_test_score`` (with the
        source) and ``mean_test_score_target_only``,
        ``std_test_score_target_only`` (without it), one entry per penalty;
        with ``criterion="evidence"`` also ``log_evidence`` and
        ``log_evidence_target_only``.
    best_score_ : float
        Mean held-out score of the model kept.
    transfer_gain_ : float
        Best mean held-out score with the source minus the best without it
        (0.0 without a source); negative means negative transfer.
    source_used_ : bool
        Whether the model kept was fitted toward the source (False when the
        target-only model scored better by more than the noise).
    coef_, intercept_, source_coef_, n_features_in_, feature_names_in_
        As for :class:`TransferRidge`, for the model kept.

    See Also
    --------
    TransferRidge : A fixed ``alpha``.
    TransferLogisticRegressionCV : The same for classification.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sktransfer import TransferRidgeCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> source = Ridge(alpha=0.1).fit(X[:300], y[:300])
    >>> model = TransferRidgeCV(source=source).fit(X[300:330], y[300:330])
    >>> model.source_used_, model.transfer_gain_ >= 0
    (True, True)
    """

    _parameter_constraints: dict = {
        "source": "no_validation",
        "alphas": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "scoring": [None, StrOptions({"neg_mean_squared_error", "r2"})],
        "criterion": [StrOptions({"cv", "evidence"})],
    }
    _min_samples = 2

    def __init__(self, source=None, *, alphas=10, cv=None, scoring=None, criterion="cv"):
        self.source = source
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.criterion = criterion

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Choose ``alpha`` (by ``criterion``), then fit on all of ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target samples (raw: a source Pipeline's preprocessing is applied).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's squared error.

        Returns
        -------
        self : TransferRidgeCV
            The fitted estimator.
        """
        source, X, y, sample_weight = self._fit_inputs(X, y, sample_weight)
        Y, w0 = self._problem(source, X, y, sample_weight)
        path = _penalty_path(self.alphas, X, sample_weight)
        target_scores = self._path_scores(X, Y, sample_weight, np.zeros_like(w0), path)
        source_scores = None if source is None else \
            self._path_scores(X, Y, sample_weight, w0, path)
        evidence = None
        if self.criterion == "evidence":
            evidence = (None if source is None else
                        self._path_evidence(X, Y, sample_weight, w0, path),
                        self._path_evidence(X, Y, sample_weight, np.zeros_like(w0), path))
        use_source, best = _cv_attributes(self, path, source_scores, target_scores, source,
                                          evidence)
        final = w0 if use_source else np.zeros_like(w0)
        coef, intercept = RidgeProblem.build(X, Y, sample_weight, final).solve(path[best])
        self._set_solution(y, w0, coef, intercept)
        return self

    def _path_scores(self, X, Y, sample_weight, w0, path):
        """Held-out scores (n_folds, n_alphas); one row for leave-one-out."""
        if self.cv is None:
            problem = RidgeProblem.build(X, Y, sample_weight, w0)
            return np.column_stack([self._loo_scores(problem, alpha) for alpha in path])
        folds = check_cv(self.cv).split(X, Y)
        rows = []
        for train, test in folds:
            problem = RidgeProblem.build(X[train], Y[train], sample_weight[train], w0)
            rows.append([self._score(problem.solve(alpha), X[test], Y[test],
                                     sample_weight[test]) for alpha in path])
        return np.array(rows)

    @staticmethod
    def _path_evidence(X, Y, sample_weight, w0, path):
        """Log evidence of every penalty on the path (prior centred on ``w0``)."""
        problem = RidgeProblem.build(X, Y, sample_weight, w0)
        return np.array([problem.log_evidence(alpha) for alpha in path])

    def _loo_scores(self, problem, alpha):
        """Each sample's share of the leave-one-out score (their mean is the
        score)."""
        squares = (problem.loo_errors(alpha) ** 2).sum(1)
        if self.scoring == "r2":
            total = (problem.b**2).sum()  # the centred targets: the mean predictor's error
            return 1 - len(squares) * squares / total if total > 0 else np.zeros(len(squares))
        return -squares / problem.b.shape[1]

    def _score(self, solution, X, Y, sample_weight):
        coef, intercept = solution
        errors = Y - (X @ coef.T + intercept)
        s = sample_weight
        if self.scoring == "r2":
            mean = s @ Y / s.sum()
            total = float(s @ ((Y - mean) ** 2).sum(1))
            return 1 - float(s @ (errors**2).sum(1)) / total if total > 0 else 0.0
        return -float(s @ (errors**2).mean(1) / s.sum())
