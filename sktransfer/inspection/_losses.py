"""``top_losses`` and ``most_confused``: where a fitted estimator is most
wrong, as fastai's ``ClassificationInterpretation`` reports it."""

from __future__ import annotations

from collections import Counter
from numbers import Integral

import numpy as np
from sklearn.utils import Bunch

from ._attribution import _check_estimator


def _check_k(k) -> int:
    if not (isinstance(k, Integral) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"k must be a positive int, got {k!r}.")
    return int(k)


def _true_index(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    unknown = [label for label in y.tolist() if label not in lookup]
    if unknown:
        raise ValueError(
            f"y holds {unknown[0]!r}, which is not a class of the fitted classifier "
            f"(classes_ = {classes.tolist()}); pass labels it was fitted on.")
    return np.array([lookup[label] for label in y.tolist()], dtype=int)


def _labels_of(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be 1-D with one label per sample of X ({n}), got shape "
                         f"{y.shape}.")
    return y


def top_losses(fitted, X, y, k=9):
    """The ``k`` samples with the largest loss.

    For a classifier the loss is the cross-entropy ``-log p(true class)``;
    for a regressor the squared error (of the first target).

    Parameters
    ----------
    fitted : PretrainedClassifier or TransferRegressor
        A fitted estimator (single task).
    X : array-like
        Inputs, as passed to ``predict``.
    y : array-like of shape (n_samples,)
        The true labels (or values).
    k : int, default=9
        How many samples to return (all of them when fewer).

    Returns
    -------
    result : sklearn.utils.Bunch
        ``indices`` into ``X``, largest loss first; ``losses``;
        ``predicted`` and ``true`` labels (or values); for a classifier
        ``probabilities``, the probability given to the predicted class.

    See Also
    --------
    most_confused : The class pairs most often confused.
    TopLossesDisplay : The samples drawn with their labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import top_losses
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=5,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> worst = top_losses(clf, X, y, k=3)
    >>> len(worst.indices), bool(worst.losses[0] >= worst.losses[-1])
    (3, True)
    """
    _check_estimator(fitted)
    k = _check_k(k)
    if hasattr(fitted, "classes_"):
        proba = fitted.predict_proba(X)
        y = _labels_of(y, len(proba))
        true = _true_index(fitted.classes_, y)
        losses = -np.log(np.clip(proba[np.arange(len(y)), true], 1e-300, None))
        predicted = proba.argmax(1)
        order = np.argsort(-losses, kind="stable")[:k]
        return Bunch(indices=order, losses=losses[order],
                     predicted=fitted.classes_[predicted][order], true=y[order],
                     probabilities=proba[order, predicted[order]])
    predicted = np.asarray(fitted.predict(X), dtype=np.float64)
    predicted = predicted if predicted.ndim == 1 else predicted[:, 0]
    y = np.asarray(y, dtype=np.float64)
    y = _labels_of(y if y.ndim == 1 else y[:, 0], len(predicted))
    losses = (predicted - y) ** 2
    order = np.argsort(-losses, kind="stable")[:k]
    return Bunch(indices=order, losses=losses[order], predicted=predicted[order], true=y[order])


def most_confused(fitted, X, y, k=5, *, min_count=1):
    """The ``k`` (true, predicted) class pairs most often confused.

    Parameters
    ----------
    fitted : PretrainedClassifier
        A fitted classifier (single task).
    X : array-like
        Inputs, as passed to ``predict``.
    y : array-like of shape (n_samples,)
        The true labels.
    k : int, default=5
        How many pairs to return at most.
    min_count : int, default=1
        Pairs confused fewer times are left out.

    Returns
    -------
    pairs : list of tuple
        ``(true label, predicted label, count)``, the most frequent first
        (ties in the order of the classes).

    See Also
    --------
    top_losses : The single samples with the largest loss.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import most_confused
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=1,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> pairs = most_confused(clf, X, y, k=1)
    >>> [(true, predicted) for true, predicted, _ in pairs]
    [(1, 0)]
    """
    _check_estimator(fitted)
    if not hasattr(fitted, "classes_"):
        raise TypeError(
            f"most_confused needs a classifier; got a {type(fitted).__name__}. For a "
            "regressor, use top_losses.")
    k = _check_k(k)
    predicted = fitted.predict(X)
    y = _labels_of(y, len(predicted))
    true = _true_index(fitted.classes_, y)
    guessed = _true_index(fitted.classes_, predicted)
    counts = Counter((t, p) for t, p in zip(true.tolist(), guessed.tolist()) if t != p)
    pairs = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    classes = fitted.classes_.tolist()
    return [(classes[t], classes[p], n) for (t, p), n in pairs[:k] if n >= min_count]
