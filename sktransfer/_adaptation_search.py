"""``domain_adaptation=AutoAdaptation()`` ("auto"): the search that chooses
a method and strength without target labels. Each candidate is a clone of
the estimator fitted on most of the labeled samples and every unlabeled
one; an unsupervised scorer rates it on the held-out labeled samples and
the unlabeled ones. Torch-free: it fits and scores estimators through their
public methods."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._adaptation_scores import SCORERS
from ._compat import _safe_indexing


@dataclass(frozen=True)
class SearchResult:
    """The chosen ``domain_adaptation`` (an alignment object or None) and
    each candidate's score, in the order they were tried."""

    chosen: object
    scores: list


def _split(y, labeled, fraction: float, seed: int):
    """Training and held-out positions of the labeled samples, stratified
    when every class has two samples or more."""
    _, counts = np.unique(y[labeled], return_counts=True)
    n_valid = max(1, int(round(fraction * len(labeled))))
    stratify = y[labeled] if counts.min() >= 2 and len(counts) <= min(
        n_valid, len(labeled) - n_valid) else None
    if len(labeled) - n_valid < 1:
        raise ValueError(
            f"domain_adaptation='auto' holds out a share of the labeled samples to rate its "
            f"candidates and needs at least 2; got {len(labeled)}."
        )
    return train_test_split(labeled, test_size=n_valid, stratify=stratify,
                            random_state=seed)


def _candidate(estimator, adaptation):
    """A clone of ``estimator`` training with ``adaptation`` (None: the
    labeled samples alone, the unlabeled ones left out)."""
    model = clone(estimator)
    if adaptation is None:
        return model.set_params(domain_adaptation=None, unlabeled=estimator.unlabeled or "ignore")
    return model.set_params(domain_adaptation=adaptation)


def search(estimator, search_params, X, y, sample_weight, unlabeled, seed: int) -> SearchResult:
    """Fit and rate every candidate of ``search_params`` (an
    ``AutoAdaptation``) on ``X`` and ``y`` (validated; -1 marks the target
    samples given by the mask ``unlabeled``)."""
    labeled, target = np.flatnonzero(~unlabeled), np.flatnonzero(unlabeled)
    train, valid = _split(y, labeled, search_params.validation_fraction, seed)
    fit_rows, score_rows = np.concatenate([train, target]), np.concatenate([valid, target])
    X_fit, y_fit = _safe_indexing(X, fit_rows), y[fit_rows]
    X_score, y_score = _safe_indexing(X, score_rows), y[score_rows]
    weights = None if sample_weight is None else np.asarray(sample_weight)[fit_rows]
    scorer = SCORERS[search_params.scorer]()
    scores = []
    for adaptation in search_params.candidates():
        model = _candidate(estimator, adaptation)
        with warnings.catch_warnings():
            # each candidate's own budget warnings are the final fit's to give
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_fit, y_fit, sample_weight=weights)
        scores.append({"domain_adaptation": adaptation,
                       "score": scorer(model, X_score, y_score)})
    best = max(range(len(scores)), key=lambda i: scores[i]["score"])
    return SearchResult(scores[best]["domain_adaptation"], scores)
