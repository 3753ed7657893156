"""The one place where private scikit-learn and joblib names are reached.

If a scikit-learn or joblib release moves one of these, only this module
changes. The helpers used by the estimators are imported here; the private
functions :func:`sktransfer.search_progress` patches are looked up by the
functions below, which import their modules only when called, so that
``import sktransfer`` does not import them.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _check_sample_weight, _check_y, _num_samples

__all__ = [
    "HasMethods", "Interval", "StrOptions", "_check_sample_weight", "_check_y", "_fit_context",
    "_num_samples", "_safe_indexing",
    "PrivateAPIError", "check_progress_patch_points", "fit_and_score",
    "fit_and_score_patch_points", "installed_versions", "progress_patch_points",
    "register_outcome_patch_point",
]


class PrivateAPIError(RuntimeError):
    """A private scikit-learn or joblib function sktransfer relies on is
    missing or has changed in the installed release."""


# -- the private functions search_progress patches ---------------------------------------

def fit_and_score_patch_points():
    """Where scikit-learn's searches and cross-validation look up ``_fit_and_score``.

    Returns
    -------
    points : tuple of (module, str)
        ``(sklearn.model_selection._search, "_fit_and_score")``, the module
        global ``BaseSearchCV`` calls, then
        ``(sklearn.model_selection._validation, "_fit_and_score")``, the
        module that defines the function and whose global
        ``cross_validate`` calls.
    """
    from sklearn.model_selection import _search, _validation

    return (_search, "_fit_and_score"), (_validation, "_fit_and_score")


def fit_and_score():
    """scikit-learn's ``_fit_and_score`` as its defining module holds it now.

    Returns
    -------
    function : callable
        ``sklearn.model_selection._validation._fit_and_score``: the original,
        or a replacement while one is patched in.
    """
    owner, name = fit_and_score_patch_points()[-1]
    return getattr(owner, name)


def register_outcome_patch_point():
    """Where joblib records a finished batch in the process that dispatched it.

    Returns
    -------
    point : (type, str)
        ``(joblib.parallel.BatchCompletionCallBack, "_register_outcome")``;
        the method is called as ``_register_outcome(self, outcome)`` with
        ``outcome["result"]`` the batch's list of results (or an exception).
    """
    from joblib.parallel import BatchCompletionCallBack

    return BatchCompletionCallBack, "_register_outcome"


def progress_patch_points():
    """Every attribute :func:`sktransfer.search_progress` replaces.

    Returns
    -------
    points : tuple of (object, str)
        ``(owner, attribute name)`` pairs: those of
        :func:`fit_and_score_patch_points`, then
        :func:`register_outcome_patch_point`.
    """
    return (*fit_and_score_patch_points(), register_outcome_patch_point())


def check_progress_patch_points():
    """Check that every private function ``search_progress`` patches is usable.

    Raises
    ------
    PrivateAPIError
        If a module or class that holds one cannot be imported, if one is
        missing or not callable, or if ``sklearn.model_selection._search`` no
        longer calls the ``_fit_and_score`` of
        ``sklearn.model_selection._validation``. The message names the
        function and the installed scikit-learn and joblib versions.
    """
    try:
        points = progress_patch_points()
    except ImportError as error:
        raise PrivateAPIError(
            f"{error}: a private scikit-learn / joblib name sktransfer patches is gone "
            f"({installed_versions()}).") from error
    for owner, name in points:
        if not callable(getattr(owner, name, None)):
            raise PrivateAPIError(
                f"{_qualified_name(owner, name)} is missing or not callable "
                f"({installed_versions()}).")
    (search, name), (validation, _) = fit_and_score_patch_points()
    if getattr(search, name) is not getattr(validation, name):
        raise PrivateAPIError(
            f"{_qualified_name(search, name)} is no longer "
            f"{_qualified_name(validation, name)} ({installed_versions()}).")


def installed_versions():
    """The installed scikit-learn and joblib versions, for error messages.

    Returns
    -------
    versions : str
        E.g. ``"scikit-learn 1.6.1, joblib 1.4.2"``.
    """
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for distribution in ("scikit-learn", "joblib"):
        try:
            found.append(f"{distribution} {version(distribution)}")
        except PackageNotFoundError:
            found.append(f"{distribution} (version unknown)")
    return ", ".join(found)


def _qualified_name(owner, name):
    """``module.attribute`` or ``module.Class.attribute``."""
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}.{name}"
    return f"{owner.__name__}.{name}"
