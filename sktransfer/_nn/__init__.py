"""Everything that touches torch and skorch internals for training.

The estimator modules call the functions exported here and otherwise read
like scikit-learn code.
"""

from .backbones import list_backbones
from .activation_store import cache_info, clear_cache, set_cache_budget
from .data import AUGMENTATIONS, ImageDataset, data_workers, subset
from .features import cached_embeddings, cut_module, embed, embedding_key
from .frozen_cut import CachedActivations, cache_activations, cached_rows, skipping
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
    predict_outputs_cached,
    resolve_device,
    seeded,
    train,
)
from .weights import WeightsNotFoundError, save_weights_file

__all__ = [
    "ACTIVATIONS", "AUGMENTATIONS", "BN_MODES", "CachedActivations", "ImageDataset", "LOSSES",
    "LR_SCHEDULES", "OPTIMIZERS", "PRECISIONS", "Preprocessing", "SourceTrunk",
    "TabularDataset", "TrainingDivergedError", "TrainingPlan", "TransferModule",
    "WeightsNotFoundError", "build_net", "build_network", "build_trunk", "cache_activations",
    "cache_info", "cached_embeddings", "cached_rows", "check_image_size", "clear_cache",
    "cuda_available", "cut_module", "data_workers", "embed", "embedding_key",
    "freeze_all_norms", "history_records", "list_backbones", "lr_range_test",
    "predict_outputs", "predict_outputs_cached", "resolve_device", "resolve_precision",
    "save_weights_file", "seeded", "set_cache_budget", "skipping", "subset", "tabular_dtype",
    "train", "unfreeze_plan",
]
