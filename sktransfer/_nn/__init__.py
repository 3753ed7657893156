"""Everything that touches torch and skorch internals for training.

The estimator modules call the functions exported here and otherwise read
like scikit-learn code.
"""

from .backbones import list_backbones
from .data import ImageDataset
from .model import Preprocessing, SourceTrunk, TransferModule, build_network
from .tabular import ACTIVATIONS, TabularDataset, tabular_dtype
from .training import (
    LOSSES,
    OPTIMIZERS,
    TrainingDivergedError,
    build_classifier_net,
    build_regressor_net,
    cuda_available,
    history_records,
    predict_outputs,
    resolve_device,
    seeded,
    train,
)
from .weights import WeightsNotFoundError, save_weights_file

__all__ = [
    "ACTIVATIONS", "ImageDataset", "LOSSES", "OPTIMIZERS", "Preprocessing", "SourceTrunk",
    "TabularDataset", "TrainingDivergedError", "TransferModule", "WeightsNotFoundError",
    "build_classifier_net", "build_network", "cuda_available", "build_regressor_net", "history_records",
    "list_backbones", "predict_outputs", "resolve_device", "save_weights_file", "seeded",
    "tabular_dtype", "train",
]
