"""sktransfer: transfer learning as scikit-learn estimators."""

from ._classifier import PretrainedClassifier
from ._features import TransferFeatures
from ._nn import TrainingDivergedError, WeightsNotFoundError, list_backbones
from ._regressor import TransferRegressor

__version__ = "0.1.0"

__all__ = [
    "PretrainedClassifier",
    "TrainingDivergedError",
    "TransferFeatures",
    "TransferRegressor",
    "WeightsNotFoundError",
    "list_backbones",
    "__version__",
]
