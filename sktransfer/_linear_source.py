"""The ``source=`` of the linear transfer estimators, read into one value:
coefficients, intercepts, class labels and the preprocessing the source
applied before its linear model; and the source's rows matched to the
target's classes (by label) or outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

SOURCE_KINDS = ("a fitted scikit-learn linear model (coef_, intercept_), a fitted Pipeline "
                "ending in one, a tuple (coef, intercept) or (coef, intercept, classes) of "
                "arrays, a fitted sktransfer estimator with a linear head, or None")


@dataclass(frozen=True)
class LinearSource:
    """A source's linear model: ``coef`` (k, d), ``intercept`` (k,),
    ``classes`` (the labels of a classifier's rows, None when unknown or for
    a regressor), ``preprocessing`` (the fitted steps before the linear model
    of a Pipeline, or None) and ``description`` (for error messages)."""

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray | None
    preprocessing: object
    description: str

    @property
    def n_features(self) -> int:
        return self.coef.shape[1]


def read_source(source) -> LinearSource | None:
    """``source`` (see ``SOURCE_KINDS``) as a :class:`LinearSource`, or None."""
    if source is None:
        return None
    if isinstance(source, (tuple, list)):
        return _from_arrays(source)
    if hasattr(source, "steps"):
        return _from_pipeline(source)
    if hasattr(source, "_linear_head"):  # a fitted sktransfer estimator
        coef, intercept, classes = source._linear_head()
        return _checked(coef, intercept, classes, None, f"the fitted {type(source).__name__}")
    if hasattr(source, "fit") and hasattr(type(source), "__sklearn_tags__"):
        return _from_estimator(source)
    raise TypeError(f"source must be {SOURCE_KINDS}; got {type(source).__name__}.")


def _from_arrays(source) -> LinearSource:
    if len(source) not in (2, 3):
        raise ValueError(
            f"source as a tuple must be (coef, intercept) or (coef, intercept, classes); "
            f"got a tuple of {len(source)} items.")
    coef, intercept, *classes = source
    return _checked(coef, intercept, classes[0] if classes else None, None,
                    "the source coefficients")


def _from_estimator(estimator, preprocessing=None, description=None) -> LinearSource:
    name = type(estimator).__name__
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ValueError(f"source is an unfitted {name}; fit it on the source data first.") \
            from None
    if not hasattr(estimator, "coef_"):
        raise TypeError(f"source must be {SOURCE_KINDS}; the fitted {name} has no coef_ "
                        "(it is not a linear model).")
    intercept = getattr(estimator, "intercept_", 0.0)
    return _checked(estimator.coef_, intercept, getattr(estimator, "classes_", None),
                    preprocessing, description or f"the source {name}")


def _from_pipeline(pipeline) -> LinearSource:
    final = pipeline.steps[-1][1]
    preprocessing = pipeline[:-1] if len(pipeline.steps) > 1 else None
    if preprocessing is not None:
        try:
            check_is_fitted(pipeline)
        except NotFittedError:
            raise ValueError("source is an unfitted Pipeline; fit it on the source data "
                             "first.") from None
    return _from_estimator(final, preprocessing,
                           f"the source Pipeline's {type(final).__name__}")


def _checked(coef, intercept, classes, preprocessing, description) -> LinearSource:
    coef = np.asarray(coef, dtype=float)
    if coef.ndim == 1:
        coef = coef[None, :]
    if coef.ndim != 2 or coef.size == 0 or not np.all(np.isfinite(coef)):
        raise ValueError(f"{description}: coef must be a finite 1-d or 2-d array; got "
                         f"shape {np.shape(coef)}.")
    intercept = np.broadcast_to(np.asarray(intercept, dtype=float), (coef.shape[0],)).copy() \
        if np.ndim(intercept) == 0 else np.asarray(intercept, dtype=float).ravel()
    if intercept.shape != (coef.shape[0],):
        raise ValueError(f"{description}: intercept has {intercept.size} values for "
                         f"{coef.shape[0]} rows of coef.")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) < 2:
            raise ValueError(f"{description}: classes must be one label per class, at least "
                             f"2; got {classes!r}.")
        if coef.shape[0] not in (len(classes), 1) or (coef.shape[0] == 1 and len(classes) != 2):
            raise ValueError(f"{description}: {coef.shape[0]} rows of coef for "
                             f"{len(classes)} classes.")
    return LinearSource(coef, intercept, classes, preprocessing, description)


# -- matching the source to the target --------------------------------------------------


def class_rows(source: LinearSource, classes: np.ndarray):
    """The source's ``(coef, intercept)`` for the target ``classes``, in the
    logistic models' layout (one row for two classes: the second one's
    log-odds; else a row per class). Rows are matched by label; a target
    class the source lacks starts from zero. Without labels (raw arrays) the
    rows are taken in the order of ``classes``."""
    k = 1 if len(classes) == 2 else len(classes)
    if source.classes is None:
        if source.coef.shape[0] == len(classes) == 2:
            return _binary_from_rows(source.coef, source.intercept)
        if source.coef.shape[0] != k:
            raise ValueError(
                f"{source.description} has {source.coef.shape[0]} rows but the target has "
                f"{len(classes)} classes ({k} rows expected); pass (coef, intercept, classes) "
                "to match the rows by label.")
        return source.coef.copy(), source.intercept.copy()
    rows = _rows_by_label(source)
    shared = [c for c in classes.tolist() if c in rows]
    if not shared:
        raise ValueError(
            f"{source.description} knows the classes {source.classes.tolist()!r}, none of "
            f"which is a target class ({classes.tolist()!r}); classes are matched by label.")
    d = source.n_features
    coef = np.array([rows.get(c, (np.zeros(d), 0.0))[0] for c in classes.tolist()])
    intercept = np.array([rows.get(c, (np.zeros(d), 0.0))[1] for c in classes.tolist()])
    return _binary_from_rows(coef, intercept) if len(classes) == 2 else (coef, intercept)


def _rows_by_label(source: LinearSource) -> dict:
    """label -> (row, intercept); a binary source's single row becomes the
    two rows ``-w/2, w/2`` that give the same probabilities."""
    coef, intercept = source.coef, source.intercept
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept / 2
    return {label: (coef[i], intercept[i]) for i, label in enumerate(source.classes.tolist())}


def _binary_from_rows(coef, intercept):
    return coef[1:2] - coef[0:1], intercept[1:2] - intercept[0:1]


def output_rows(source: LinearSource, n_outputs: int):
    """The source's ``(coef (t, d), intercept (t,))`` for ``n_outputs`` targets."""
    if source.classes is not None:
        raise ValueError(f"{source.description} is a classifier; TransferRidge needs a "
                         "regression source.")
    if source.coef.shape[0] != n_outputs:
        raise ValueError(f"{source.description} has {source.coef.shape[0]} outputs but y has "
                         f"{n_outputs}; the source and the target must predict the same "
                         "outputs.")
    return source.coef.copy(), source.intercept.copy()


def check_n_features(source: LinearSource, n_features: int) -> None:
    """The data the linear model reads must have the source's features."""
    if n_features != source.n_features:
        where = " after the source Pipeline's preprocessing" if source.preprocessing else ""
        raise ValueError(
            f"X has {n_features} features{where}, but {source.description} has "
            f"{source.n_features} coefficients per row; transfer needs the same features "
            "as the source.")
