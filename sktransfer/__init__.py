"""sktransfer: transfer learning as scikit-learn estimators."""

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

__version__ = "0.1.0"

__all__ = [
    "PretrainedClassifier",
    "TrainingDivergedError",
    "TransferFeatures",
    "TransferRegressor",
    "WeightsNotFoundError",
    "cache_info",
    "clear_cache",
    "list_backbones",
    "set_cache_budget",
    "__version__",
]
