"""A scikit-learn scorer that rates feature transformers by a transferability score."""

from __future__ import annotations

from .scores import FEATURE_METRICS, LABEL_METRICS, h_score, logme

__all__ = ["make_transferability_scorer"]


class _TransferabilityScorer:
    """``scorer(estimator, X, y)``: a feature score of ``estimator.transform(X)``."""

    def __init__(self, metric):
        self.metric = metric

    def __call__(self, estimator, X, y):
        if not hasattr(estimator, "transform"):
            raise TypeError(
                f"the transferability scorer needs an estimator with transform (a fitted "
                f"TransferFeatures or a Pipeline of transformers); got "
                f"{type(estimator).__name__}."
            )
        features = estimator.transform(X)
        return logme(features, y) if self.metric == "logme" else h_score(features, y)

    def __repr__(self):
        return f"make_transferability_scorer(metric={self.metric!r})"


def make_transferability_scorer(metric="logme"):
    """A scorer that rates a feature transformer by a transferability score.

    The scorer computes ``estimator.transform(X)`` and returns the score of
    those features on ``y``, so ``GridSearchCV`` can choose a backbone, a cut
    (``stage``) or weights for :class:`~sktransfer.TransferFeatures` without training a
    model on top. Higher is better, as scikit-learn expects.

    Parameters
    ----------
    metric : {"logme", "h_score"}, default="logme"
        The feature score. LEEP and NCE score a source model's own labels,
        which a transformer does not give; use :func:`rank_backbones` for them.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float`` for fitted estimators with
        ``transform`` (a :class:`~sktransfer.TransferFeatures`, or a Pipeline of
        transformers).

    See Also
    --------
    rank_backbones : All four scores for a list of candidates.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sktransfer.selection import make_transferability_scorer
    >>> rng = np.random.RandomState(0)
    >>> y = rng.randint(0, 2, size=50)
    >>> X = np.c_[y + 0.1 * rng.randn(50), rng.randn(50, 4)]
    >>> scorer = make_transferability_scorer("logme")
    >>> score = scorer(PCA(n_components=2).fit(X), X, y)
    >>> bool(np.isfinite(score))
    True
    """
    if metric in LABEL_METRICS:
        raise ValueError(
            f"metric={metric!r} scores the source model's own label predictions, which "
            "a transformer's features do not give; use 'logme' or 'h_score' in a scorer, "
            f"or rank_backbones(..., metrics=({metric!r},)) to compare source models."
        )
    if metric not in FEATURE_METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; a transferability scorer takes one of "
            f"{', '.join(map(repr, FEATURE_METRICS))}."
        )
    return _TransferabilityScorer(metric)
