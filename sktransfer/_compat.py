"""The one place where private scikit-learn helpers are imported.

If a scikit-learn release moves one of these, only this module changes.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = ["HasMethods", "Interval", "StrOptions", "_fit_context"]
