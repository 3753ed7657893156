"""Everything that touches torch and skorch internals for training.

The estimator modules call the functions exported here and otherwise read
like scikit-learn code.
"""

from .backbones import list_backbones
from .data import AUGMENTATIONS, ImageDataset, subset
from .features import cut_module, embed
from .lr_finder import lr_range_test
from .model import (
    Preprocessing,
    SourceTrunk,
    TransferModule,
    build_network,
    build_trunk,
    check_image_size,
)
from .net import PRECISIONS, resolve_precision
from .strategies import BN_MODES, LR_SCHEDULES, freeze_all_norms, unfreeze_plan
from .tabular import ACTIVATIONS, TabularDataset, tabular_dtype
from .training import (
    LOSSES,
    OPTIMIZERS,
    TrainingDivergedError,
    TrainingPlan,
    build_net,
    cuda_available,
    history_records,
    predict_outputs,
    resolve_device,
    seeded,
    train,
)
from .weights import WeightsNotFoundError, save_weights_file

__all__ = [
    "ACTIVATIONS", "AUGMENTATIONS", "BN_MODES", "ImageDataset", "LOSSES", "LR_SCHEDULES",
    "OPTIMIZERS", "PRECISIONS", "Preprocessing", "SourceTrunk", "TabularDataset",
    "TrainingDivergedError", "TrainingPlan", "TransferModule", "WeightsNotFoundError",
    "build_net", "build_network", "build_trunk", "check_image_size", "cut_module", "embed", "cuda_available", "freeze_all_norms", "history_records",
    "list_backbones", "lr_range_test", "predict_outputs", "resolve_device",
    "resolve_precision", "save_weights_file", "seeded", "subset", "tabular_dtype", "train",
    "unfreeze_plan",
]
