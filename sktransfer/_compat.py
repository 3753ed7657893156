"""The one place where private scikit-learn helpers are imported.

If a scikit-learn release moves one of these, only this module changes.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _check_sample_weight, _check_y

__all__ = [
    "HasMethods", "Interval", "StrOptions", "_check_sample_weight", "_check_y", "_fit_context",
    "_safe_indexing",
]
