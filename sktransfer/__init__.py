"""sktransfer: transfer learning as scikit-learn estimators."""

from . import selection
from ._classifier import PretrainedClassifier
from ._features import TransferFeatures
from ._nn import (
    TrainingDivergedError,
    WeightsNotFoundError,
    cache_info,
    clear_cache,
    list_backbones,
    set_cache_budget,
)
from ._regressor import TransferRegressor
from .selection import make_transferability_scorer, rank_backbones

__version__ = "0.1.0"

__all__ = [
    "PretrainedClassifier",
    "TrainingDivergedError",
    "TransferFeatures",
    "TransferRegressor",
    "WeightsNotFoundError",
    "__version__",
    "cache_info",
    "clear_cache",
    "list_backbones",
    "make_transferability_scorer",
    "rank_backbones",
    "selection",
    "set_cache_budget",
]
