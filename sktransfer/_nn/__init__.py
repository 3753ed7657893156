"""Everything that touches torch and skorch internals for training.

The estimator modules call the functions exported here and otherwise read
like scikit-learn code.
"""

from .backbones import list_backbones
from .data import ImageDataset
from .model import Preprocessing, TransferModule, build_network
from .training import (
    OPTIMIZERS,
    TrainingDivergedError,
    build_classifier_net,
    history_records,
    predict_outputs,
    resolve_device,
    seeded,
    train,
)
from .weights import WeightsNotFoundError

__all__ = [
    "ImageDataset", "OPTIMIZERS", "Preprocessing", "TrainingDivergedError",
    "TransferModule", "WeightsNotFoundError", "build_classifier_net", "build_network",
    "history_records", "list_backbones", "predict_outputs", "resolve_device", "seeded",
    "train",
]
