"""Unsupervised scorers for domain adaptation: rate a fitted classifier on
a labeled source domain and an unlabeled target domain without any target
label, so that ``GridSearchCV`` or ``cross_val_score`` over an adaptation
fit chooses by the target rather than by source accuracy.

Each scorer is ``scorer(estimator, X, y)`` with scikit-learn's
semi-supervised convention: in each scored fold, the samples labeled -1 are
the target domain and the others the (held-out) source domain. Higher is
better, as scikit-learn expects.

- :class:`PredictionEntropyScorer`: minus the mean entropy of the target's
  predicted probabilities (Morerio et al., 2018); needs no source sample.
- :class:`ImportanceWeightedScorer`: importance-weighted validation
  (Sugiyama et al., 2007): the source samples' accuracy, each weighted by
  how target-like its input is (a domain classifier's density ratio).
- :class:`DeepEmbeddedValidation`: deep embedded validation (You et al.,
  ICML 2019): the importance-weighted source loss with density ratios
  estimated on the network's own features, and a control variate that
  lowers its variance.

The scorers only call the estimator's ``predict_proba`` (and, for the
network's features, a method of sktransfer's classifiers), so this module
imports neither torch nor the estimators.
"""

from __future__ import annotations

from numbers import Number

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._compat import _safe_indexing

__all__ = ["DeepEmbeddedValidation", "ImportanceWeightedScorer", "PredictionEntropyScorer"]

# density ratios are clipped to this many times their mean: a few source
# samples that look very target-like would otherwise decide the score alone
_MAX_WEIGHT = 20.0


def _target_mask(y) -> np.ndarray:
    """Which samples are the target domain: those labeled -1 (a number)."""
    y = np.asarray(y)
    if y.dtype.kind in "iuf":
        return y == -1
    return np.fromiter((isinstance(v, Number) and not isinstance(v, bool) and v == -1
                        for v in y.ravel()), dtype=bool, count=y.size)


def _entropy(proba: np.ndarray) -> np.ndarray:
    return -(proba * np.log(np.clip(proba, 1e-12, None))).sum(axis=1)


def _class_positions(estimator, labels) -> np.ndarray:
    """Each label's column in ``predict_proba`` (-1 for a class the
    estimator never saw)."""
    classes = np.asarray(estimator.classes_)
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    return np.array([lookup.get(label, -1) for label in np.asarray(labels).tolist()])


def _numeric_inputs(X):
    """``X`` as a 2-D float array when it is numeric (a table or image
    arrays), else None (image files, texts)."""
    try:
        array = np.asarray(X)
    except (ValueError, TypeError):
        return None
    if array.dtype.kind not in "iufb" or array.ndim < 2:
        return None
    return array.reshape(len(array), -1).astype(np.float64)


def _network_features(estimator, X) -> np.ndarray:
    method = getattr(estimator, "_adaptation_features", None)
    if method is None:
        raise TypeError(
            f"this scorer reads the network's features, which a {type(estimator).__name__} "
            "does not give; use it with a fitted PretrainedClassifier (not a Pipeline)."
        )
    return method(X)


def importance_weights(Z, is_target, random_state=0) -> np.ndarray:
    """Density ratios ``p_target(z) / p_source(z)`` of the source rows of
    ``Z``, from a logistic domain classifier on standardised (and, when
    wide, PCA-reduced) ``Z``, its probabilities predicted out of fold;
    scaled to mean 1 and clipped at ``_MAX_WEIGHT`` times that.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        The source and target samples' representation.
    is_target : ndarray of shape (n_samples,) of bool
        Which rows are the target domain.
    random_state : int, default=0
        Seed of the folds.

    Returns
    -------
    weights : ndarray of shape (n_source,)
        One weight per source row, in order.
    """
    Z = np.asarray(Z, dtype=np.float64)
    is_target = np.asarray(is_target, dtype=bool)
    n_source, n_target = int((~is_target).sum()), int(is_target.sum())
    steps = [StandardScaler()]
    n_components = min(50, Z.shape[1], len(Z) - 1)
    if Z.shape[1] > n_components:
        steps.append(PCA(n_components, random_state=random_state))
    steps.append(LogisticRegression(C=0.1, max_iter=1000))
    folds = min(5, n_source, n_target)
    if folds < 2:
        return np.ones(n_source)
    cv = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    proba = cross_val_predict(make_pipeline(*steps), Z, is_target.astype(int), cv=cv,
                              method="predict_proba")[:, 1]
    p = np.clip(proba[~is_target], 1e-6, 1 - 1e-6)
    weights = p / (1 - p) * (n_source / n_target)
    weights = weights / weights.mean()
    weights = np.minimum(weights, _MAX_WEIGHT)
    return weights / weights.mean()


class _AdaptationScorer:
    """``scorer(estimator, X, y)``: samples labeled -1 are the target domain."""

    needs_source = True

    def __call__(self, estimator, X, y, sample_weight=None):
        target = _target_mask(y)
        if not target.any():
            raise ValueError(
                f"{self!r} rates a model on the target domain: the scored samples need "
                "some labeled -1 (the target). In a cross-validation, stratify on y so "
                "that each test fold holds target samples."
            )
        if self.needs_source and target.all():
            raise ValueError(
                f"{self!r} needs labeled source samples beside the -1 ones in the scored "
                "samples; every one is -1."
            )
        return float(self._score(estimator, X, np.asarray(y), target))

    def __repr__(self):
        return f"{type(self).__name__}()"


class PredictionEntropyScorer(_AdaptationScorer):
    """Minus the mean entropy (nats) of the predicted probabilities on the
    target samples (those labeled -1): a model that is confident on the
    target scores higher.

    It needs no source sample, but it rewards confidence, not correctness:
    a method that makes the network overconfident (a strong MCC or
    pseudo-labeling) scores well whatever its accuracy, and it cannot
    compare an adapted model with the source-only one fairly.

    See Also
    --------
    ImportanceWeightedScorer : Importance-weighted source accuracy.
    DeepEmbeddedValidation : Importance-weighted source loss on the network's features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.selection import PredictionEntropyScorer
    >>> X = np.array([[0.0], [1.0], [0.1], [0.9]])
    >>> clf = LogisticRegression().fit(X[:2], [0, 1])
    >>> PredictionEntropyScorer()(clf, X, np.array([0, 1, -1, -1])) < 0
    True
    """

    needs_source = False

    def _score(self, estimator, X, y, target):
        proba = estimator.predict_proba(_safe_indexing(X, np.flatnonzero(target)))
        return -_entropy(np.asarray(proba, dtype=np.float64)).mean()


class ImportanceWeightedScorer(_AdaptationScorer):
    """Importance-weighted validation (Sugiyama et al., JMLR 2007): the
    accuracy on the labeled (source) samples, each weighted by the density
    ratio ``p_target(x) / p_source(x)`` of its input, estimated by a
    logistic domain classifier between the scored source and target samples
    (on the inputs when they are numeric arrays, else on the network's
    features).

    It is unbiased for the target accuracy under covariate shift when the
    ratio is right, but when the domains barely overlap (images from two
    cameras) a few source samples carry all the weight.

    See Also
    --------
    DeepEmbeddedValidation : The same on the network's features, with a control variate.
    PredictionEntropyScorer : Confidence on the target.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.selection import ImportanceWeightedScorer
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.randn(20, 2), rng.randn(20, 2) + 0.5]
    >>> y = np.r_[(X[:20, 0] > 0).astype(int), [-1] * 20]
    >>> clf = LogisticRegression().fit(X[:20], y[:20])
    >>> 0 <= ImportanceWeightedScorer()(clf, X, y) <= 1
    True
    """

    def _score(self, estimator, X, y, target):
        Z = _numeric_inputs(X)
        if Z is None:
            Z = _network_features(estimator, X)
        weights = importance_weights(Z, target)
        source = np.flatnonzero(~target)
        predicted = estimator.predict(_safe_indexing(X, source))
        correct = np.asarray(predicted) == y[source]
        return float(np.sum(weights * correct) / np.sum(weights))


class DeepEmbeddedValidation(_AdaptationScorer):
    """Deep embedded validation (You et al., ICML 2019): the source
    samples' cross-entropy weighted by density ratios estimated on the
    network's features (those the adaptation aligns), with the control
    variate ``eta = -cov(w l, w) / var(w)`` that lowers its variance.
    Returned negated (higher is better).

    It needs a sktransfer classifier (it reads the network's features).

    See Also
    --------
    ImportanceWeightedScorer : Weights from the inputs, without control variate.
    PredictionEntropyScorer : Confidence on the target.

    Examples
    --------
    >>> from sktransfer.selection import DeepEmbeddedValidation
    >>> DeepEmbeddedValidation()
    DeepEmbeddedValidation()
    """

    def _score(self, estimator, X, y, target):
        features = _network_features(estimator, X)
        weights = importance_weights(features, target)
        source = np.flatnonzero(~target)
        proba = np.asarray(estimator.predict_proba(_safe_indexing(X, source)),
                           dtype=np.float64)
        columns = _class_positions(estimator, y[source])
        picked = np.where(columns >= 0, proba[np.arange(len(source)), np.maximum(columns, 0)],
                          0.0)
        losses = -np.log(np.clip(picked, 1e-12, None))
        weighted = weights * losses
        variance = np.var(weights, ddof=1) if len(weights) > 1 else 0.0
        eta = 0.0 if variance <= 0 else -np.cov(weighted, weights)[0, 1] / variance
        return -(weighted.mean() + eta * weights.mean() - eta)


SCORERS = {"dev": DeepEmbeddedValidation, "iwv": ImportanceWeightedScorer,
           "entropy": PredictionEntropyScorer}
