"""DistilledClassifier: knowledge distillation of a fitted classifier (the
teacher) into a cheaper one (the student), on labeled and unlabeled samples.

The teacher's probabilities are computed once per fit, on ``X`` as the
teacher takes it, and softened at the temperature; the student, an
sktransfer network, trains on every sample toward them (Hinton et al.,
2015), mixed with the hard labels where ``y`` has some. This module is
torch-free: the loss is ``sktransfer._nn.losses.distillation_loss``.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._base import atomic_fit
from ._classifier import _minus_one
from ._compat import (
    HasMethods,
    Interval,
    _check_sample_weight,
    _check_y,
    _fit_context,
    _num_samples,
    _safe_indexing,
)
from ._options import UNLABELED_TARGET
from ._recipe import DistillationGroup


class DistilledClassifier(ClassifierMixin, BaseEstimator):
    """Classifier distilled from a teacher's soft predictions.

    The student learns the teacher's class probabilities softened at
    ``temperature`` (knowledge distillation, Hinton et al., 2015) on every
    sample of ``X``, labeled or not, mixed with the cross-entropy on the
    labels of ``y`` where there are some: each sample's loss is
    ``alpha * T**2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, y)``,
    the second term only for labeled samples (``-1`` in ``y`` marks an
    unlabeled one, as in scikit-learn's semi-supervised estimators). The
    ``T**2`` keeps the soft term's gradients at the same scale whatever the
    temperature. The teacher's probabilities are computed once per fit, on
    ``X`` as the teacher takes it. The teacher is never changed.

    Parameters
    ----------
    teacher : classifier with ``predict_proba``
        The model to distil: a fitted :class:`PretrainedClassifier`, a
        ``Pipeline`` or any fitted scikit-learn classifier. ``clone`` passes
        a fitted teacher on as it is (it is the source of the distillation,
        not a sub-estimator to refit), so every fold of a cross-validation
        distils the same teacher. An unfitted teacher is fitted first, a
        clone of it on the labeled samples of ``X``, and kept in ``teacher_``.
    student : PretrainedClassifier or Pipeline
        The cheaper model that learns: a :class:`PretrainedClassifier` (a
        smaller backbone, a smaller ``image_size``, an ``MLP``), or a
        ``Pipeline`` that ends with one (e.g. ``TransferFeatures`` of a
        cheaper backbone then a ``PretrainedClassifier(MLP(...))``); its
        steps before the last are fitted on ``X`` alone. A clone is fitted
        (``student_``), with the settings it holds (``random_state`` makes
        the fit repeatable); it must leave ``unlabeled``,
        ``domain_adaptation`` and ``early_stopping`` off and
        ``head_init="random"``, since every sample trains toward the
        teacher's targets.
    temperature : float, default=4.0
        The softmax temperature ``T`` of the teacher's and the student's
        probabilities in the soft term; higher shares more of the teacher's
        ranking of the wrong classes.
    alpha : float in [0, 1], default=0.9
        Weight of the soft (teacher) term; ``1 - alpha`` weighs the hard
        labels' cross-entropy. With ``alpha=1`` the labels of ``y`` are not
        used by the student.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The teacher's class labels; the student predicts the same.
    student_ : PretrainedClassifier or Pipeline
        The fitted student: a standalone classifier, the one to deploy.
    teacher_ : classifier
        The teacher the student learned from (the ``teacher`` given when it
        was fitted, else the clone fitted on the labeled samples).
    n_features_in_ : int
        Number of features seen during fit (the student's; tables only).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit (the student's), when ``X``
        was a DataFrame with string column names.

    See Also
    --------
    PretrainedClassifier : The student (and often the teacher).
    TransferFeatures : Frozen features of a cheaper backbone, for a Pipeline student.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sktransfer import MLP, DistilledClassifier, PretrainedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> teacher = PretrainedClassifier(MLP(hidden_layer_sizes=(128, 64)), lr=1e-2,
    ...                                max_epochs=10, random_state=0).fit(X[:500], y[:500])
    >>> y_few = np.full(1500, -1)   # 100 labels, 1,400 unlabeled samples
    >>> y_few[:100] = y[:100]
    >>> student = PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), lr=3e-2, max_epochs=5,
    ...                                batch_size=64, random_state=0)
    >>> clf = DistilledClassifier(teacher, student, temperature=4.0).fit(X[:1500], y_few)
    >>> clf.classes_
    array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> bool(clf.score(X[1500:], y[1500:]) > 0.8)
    True
    """

    _parameter_constraints: dict = {
        "teacher": [HasMethods(["fit", "predict_proba"])],
        "student": [HasMethods(["fit", "predict_proba"])],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, teacher, student, *, temperature=4.0, alpha=0.9):
        self.teacher = teacher
        self.student = student
        self.temperature = temperature
        self.alpha = alpha

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the student to the teacher's soft predictions on ``X``.

        Parameters
        ----------
        X : array-like
            Samples in the form the teacher and the student take them
            (images, a table or texts).
        y : array-like of shape (n_samples,) or None, default=None
            Class labels, -1 for an unlabeled sample; None: every sample is
            unlabeled (a fitted teacher is then needed). Labels must be
            among the teacher's classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the student's loss (and in an
            unfitted teacher's fit); None weighs all equally.

        Returns
        -------
        self : DistilledClassifier
            The fitted classifier.
        """
        with atomic_fit(self, extra=()):
            _final_student(self.student)
            n = _num_samples(X)
            y_in = y
            y, labeled = self._validate_y(y, n)
            teacher = self._fitted_teacher(X, y, labeled, sample_weight, y_given=y_in)
            classes = _teacher_classes(teacher, y[labeled])
            soft = soft_targets(_teacher_proba(teacher, X, classes, n), self.temperature)
            hard = np.full(n, UNLABELED_TARGET, dtype=np.float64)
            position = {label: i for i, label in enumerate(classes.tolist())}
            hard[labeled] = [position[label] for label in y[labeled].tolist()]
            weights = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64,
                                           ensure_non_negative=True)
            if not weights.sum() > 0:
                raise ValueError("sample_weight sums to zero; at least one needs weight > 0.")
            self.student_ = self._fit_student(X, np.column_stack([hard, soft]),
                                              weights / weights.mean(), classes)
            self.teacher_ = teacher
            self.classes_ = classes
        return self

    def _validate_y(self, y, n: int):
        """``y`` as a 1-D array (-1 for every sample when None) and the mask
        of its labeled samples."""
        if y is None:
            return np.full(n, UNLABELED_TARGET), np.zeros(n, dtype=bool)
        y = _check_y(y, estimator=self)
        if len(y) != n:
            raise ValueError(
                f"X has {n} samples but y has {len(y)}; give one label per sample "
                "(-1 for an unlabeled one)."
            )
        labeled = ~_minus_one(y)
        if labeled.any():
            check_classification_targets(y[labeled])
        return y, labeled

    def _fitted_teacher(self, X, y, labeled, sample_weight, y_given):
        """The teacher as it is when fitted, else a clone fitted on the
        labeled samples."""
        if _is_fitted(self.teacher):
            return self.teacher
        if y_given is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None, "
                f"and the teacher {type(self.teacher).__name__} is not fitted; pass labels "
                "in y to fit it on, or a fitted teacher."
            )
        if not labeled.any():
            raise ValueError(
                f"The teacher {type(self.teacher).__name__} is not fitted and y has no "
                "labeled sample to fit it on; pass a fitted teacher, or labels in y (-1 "
                "marks the unlabeled samples)."
            )
        rows = np.flatnonzero(labeled)
        params = {}
        if sample_weight is not None:
            params["sample_weight"] = np.asarray(sample_weight)[rows]
        return clone(self.teacher).fit(_rows(X, rows), y[rows], **params)

    def _fit_student(self, X, targets, weights, classes):
        """A clone of the student fitted toward ``targets`` (the hard
        labels' indices, then the soft targets); a Pipeline's steps before
        the last are fitted on ``X`` and transform it for the last."""
        student = clone(self.student)
        final, inputs = student, X
        if isinstance(student, Pipeline):
            final = student.steps[-1][1]
            if len(student) > 1:
                inputs = student[:-1].fit_transform(X)
        final._fit_distilled(inputs, targets, weights, classes,
                             DistillationGroup(float(self.temperature), float(self.alpha)))
        return student

    def predict(self, X):
        """Predicted class labels of ``X`` (the student's).

        Parameters
        ----------
        X : array-like
            Samples in the form the student takes them.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The class of highest probability, from ``classes_``.
        """
        check_is_fitted(self)
        return self.student_.predict(X)

    def predict_proba(self, X):
        """Class probabilities of ``X`` (the student's).

        Parameters
        ----------
        X : array-like
            Samples in the form the student takes them.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return self.student_.predict_proba(X)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on the labeled samples of ``X`` (-1 in ``y``: left out).

        Parameters
        ----------
        X : array-like
            Samples in the form the student takes them.
        y : array-like of shape (n_samples,)
            True labels; -1 marks an unlabeled sample, which is left out.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy of ``predict(X)`` against ``y`` on the labeled samples.
        """
        y = np.asarray(y)
        keep = np.flatnonzero(~_minus_one(y))
        if len(keep) == 0:
            raise ValueError(
                f"Every one of the {len(y)} samples given to score is unlabeled (-1); a "
                "score needs labeled samples."
            )
        if len(keep) < len(y):
            X, y = _rows(X, keep), y[keep]
            sample_weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
        return super().score(X, y, sample_weight)

    @property
    def n_features_in_(self):
        """Number of features seen during fit (the student's)."""
        return self.student_.n_features_in_

    @property
    def feature_names_in_(self):
        """Names of the features seen during fit (the student's)."""
        return self.student_.feature_names_in_

    def __sklearn_clone__(self):
        # a fitted teacher is the source of the distillation: passed on as it is
        params = self.get_params(deep=False)
        teacher = params.pop("teacher")
        if not _is_fitted(teacher):
            teacher = clone(teacher)
        return type(self)(teacher, **{name: clone(value, safe=False)
                                      for name, value in params.items()})

    def __sklearn_is_fitted__(self):
        return hasattr(self, "student_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        student = get_tags(self.student)
        tags.input_tags = student.input_tags
        tags.non_deterministic = student.non_deterministic
        return tags


def soft_targets(proba: np.ndarray, temperature: float) -> np.ndarray:
    """The teacher's probabilities at ``temperature``: ``softmax(log(p) / T)``,
    computed as ``p ** (1 / T)`` normalised (``log p`` is the teacher's
    logits up to a constant per sample; a zero probability stays zero).

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        The teacher's ``predict_proba``.
    temperature : float
        ``T``; above 1 softens, below 1 sharpens.

    Returns
    -------
    soft : ndarray of shape (n_samples, n_classes)
        Rows summing to 1.
    """
    scaled = np.power(np.clip(np.asarray(proba, dtype=np.float64), 0.0, None),
                      1.0 / temperature)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _rows(X, positions):
    """The samples of ``X`` at ``positions`` (a sparse matrix through CSR,
    an array-like that cannot be indexed as an array)."""
    if issparse(X):
        X = X.tocsr()
    elif not hasattr(X, "__getitem__"):
        X = np.asarray(X)
    return _safe_indexing(X, positions)


def _is_fitted(estimator) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _final_student(student):
    """The estimator that learns the soft targets: the student, or a
    Pipeline's last step; a ``PretrainedClassifier`` either way."""
    final = student.steps[-1][1] if isinstance(student, Pipeline) else student
    if not hasattr(final, "_fit_distilled"):
        raise TypeError(
            f"student must be a PretrainedClassifier, or a Pipeline that ends with one "
            f"(it trains toward soft targets); got {type(final).__name__}. E.g. "
            "PretrainedClassifier(MLP(hidden_layer_sizes=(16,))) for a table, or "
            "PretrainedClassifier(ImageBackbone('mobilenet_v2', image_size=32)) for images."
        )
    return final


def _teacher_classes(teacher, labels) -> np.ndarray:
    """The teacher's ``classes_``, checked against the labels of ``y``."""
    classes = getattr(teacher, "classes_", None)
    if classes is None or isinstance(classes, list):
        raise ValueError(
            f"The teacher {type(teacher).__name__} has "
            f"{'no classes_' if classes is None else 'one classes_ array per task'}; a "
            "teacher must be a fitted single-task classifier with classes_ and predict_proba."
        )
    classes = np.asarray(classes)
    if _minus_one(classes).any():
        raise ValueError(
            "The teacher's classes include -1, which marks unlabeled samples in "
            "DistilledClassifier's y; encode the classes otherwise (e.g. as strings)."
        )
    try:
        unknown = np.setdiff1d(np.unique(labels), classes)
    except TypeError:  # labels and classes of incomparable types (strings and numbers)
        unknown = np.unique(labels.astype(str))
    if len(unknown):
        raise ValueError(
            f"y has labels {unknown.tolist()[:5]} that are not among the teacher's classes "
            f"{classes.tolist()[:10]}; the student predicts the teacher's classes. Relabel "
            "y, mark those samples -1 (unlabeled), or fit the teacher on these classes."
        )
    return classes


def _teacher_proba(teacher, X, classes, n: int) -> np.ndarray:
    """The teacher's ``predict_proba(X)``, checked."""
    proba = np.asarray(teacher.predict_proba(X), dtype=np.float64)
    if proba.shape != (n, len(classes)):
        raise ValueError(
            f"The teacher's predict_proba returned shape {proba.shape}; expected "
            f"({n}, {len(classes)}), one column per class of its classes_."
        )
    sums = proba.sum(axis=1)
    if not (np.isfinite(proba).all() and (proba >= 0).all() and np.allclose(sums, 1.0,
                                                                            atol=1e-4)):
        raise ValueError(
            "The teacher's predict_proba returned rows that are not probabilities "
            "(non-negative, finite, summing to 1)."
        )
    return proba
