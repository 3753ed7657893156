"""sktransfer: transfer learning as scikit-learn estimators.

``import sktransfer`` is cheap: torch, torchvision and skorch load on first
use (a fit, a transform, a ranking, or one of the cache / registry functions
below, which are imported when first looked up).
"""

import importlib

from . import inspection, selection
from ._auto import AutoTransferClassifier, AutoTransferRegressor, Leaderboard
from ._backbone import MLP, ImageBackbone, TextEncoder
from ._classifier import PretrainedClassifier
from ._distillation import DistilledClassifier
from ._exceptions import (
    BudgetWarning,
    NegativeTransferWarning,
    OnnxExportError,
    SourceLabelsUnavailableError,
    TrainingDivergedError,
    WeightsNotFoundError,
)
from ._features import TransferFeatures
from ._methods import (
    CDAN,
    DANN,
    DP,
    L2SP,
    MCC,
    MMD,
    AutoAdaptation,
    Coral,
    FixMatch,
    PseudoLabel,
)
from ._progress import search_progress
from ._regressor import TransferRegressor
from .selection import make_transferability_scorer, rank_backbones

__version__ = "0.1.0"

# public functions that live with torch code: name -> module, loaded on first access
_LAZY = {
    "cache_info": "._nn.activation_store",
    "clear_cache": "._nn.activation_store",
    "is_main_process": "._nn.distributed",
    "set_cache_budget": "._nn.activation_store",
    "list_backbones": "._nn.backbones",
    # parameter transfer for linear models: torch-free, but scipy's optimiser
    # and the linear algebra are imported only when first asked for
    "TransferLogisticRegression": "._linear",
    "TransferLogisticRegressionCV": "._linear",
    "TransferRidge": "._linear",
    "TransferRidgeCV": "._linear",
    # ONNX export (needs torch, onnx and skl2onnx) and inference without torch
    # (onnxruntime only), the 'onnx' extra
    "to_onnx": "._onnx",
    "OnnxModel": "._onnx_runtime",
    "quantize_onnx": "._onnx_quantize",
    "compare_quantized": "._onnx_quantize",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AutoAdaptation",
    "AutoTransferClassifier",
    "AutoTransferRegressor",
    "BudgetWarning",
    "CDAN",
    "DANN",
    "DP",
    "DistilledClassifier",
    "L2SP",
    "Leaderboard",
    "MCC",
    "MLP",
    "MMD",
    "NegativeTransferWarning",
    "OnnxExportError",
    "OnnxModel",
    "Coral",
    "FixMatch",
    "ImageBackbone",
    "PretrainedClassifier",
    "PseudoLabel",
    "SourceLabelsUnavailableError",
    "TextEncoder",
    "TrainingDivergedError",
    "TransferFeatures",
    "TransferLogisticRegression",
    "TransferLogisticRegressionCV",
    "TransferRegressor",
    "TransferRidge",
    "TransferRidgeCV",
    "WeightsNotFoundError",
    "__version__",
    "cache_info",
    "clear_cache",
    "compare_quantized",
    "inspection",
    "is_main_process",
    "list_backbones",
    "make_transferability_scorer",
    "quantize_onnx",
    "rank_backbones",
    "search_progress",
    "selection",
    "set_cache_budget",
    "to_onnx",
]
