"""The classification head a source model brings, for transferability scores
(LEEP, NCE) that need the source model's own label probabilities.

The head is returned as plain numpy arrays: it is applied to the trunk's
pooled output (the same embeddings ``TransferFeatures`` computes), so no
second network is built or run.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax
from torch import nn

from .._text import is_text_backbone
from . import backbones as bb
from .runtime import fork_rng
from .weights import (
    fetch_torchvision_file,
    is_weights_path,
    read_state_dict,
    torchvision_weights,
)


@dataclass(frozen=True)
class LinearHead:
    """A source model's final ``nn.Linear``: ``logits = inputs @ weight.T + bias``."""

    weight: np.ndarray
    bias: np.ndarray

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Softmax of the head's logits for the pooled trunk outputs ``inputs``."""
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"the source head takes {self.weight.shape[1]} features but the trunk "
                f"gave {inputs.shape[1]}."
            )
        return softmax(inputs @ self.weight.T + self.bias, axis=1)


def _from_linear(layer: nn.Linear) -> LinearHead:
    weight = layer.weight.detach().cpu().double().numpy()
    bias = (layer.bias.detach().cpu().double().numpy() if layer.bias is not None
            else np.zeros(weight.shape[0]))
    return LinearHead(weight, bias)


def _file_reason(weights) -> str:
    return (f"weights come from the file {str(weights)!r}, whose source head sktransfer "
            "does not read; pass the model as an nn.Module or the fitted estimator")


def _named_head(name: str, weights) -> tuple[LinearHead | None, str | None]:
    adapter = bb.get_adapter(name)
    if weights is None:
        # Random init: the head of a freshly built network, drawn without
        # consuming the caller's random stream.
        with fork_rng():
            model = adapter.build(name)
        return _from_linear(model.get_submodule(adapter.head_path)), None
    if is_weights_path(weights):
        return None, _file_reason(weights)
    return _pretrained_head(name, str(weights))


@functools.lru_cache(maxsize=4)
def _pretrained_head(name: str, weights: str) -> tuple[LinearHead | None, str | None]:
    """The head of torchvision weights: read once per process (the files are
    named by their content hash and never change)."""
    adapter = bb.get_adapter(name)
    tv_weights = torchvision_weights(name, weights)
    state = read_state_dict(fetch_torchvision_file(name, tv_weights))
    key = adapter.head_path
    if f"{key}.weight" not in state:
        return None, f"the {name}.{tv_weights.name} weights hold no {key!r} head"
    bias = state.get(f"{key}.bias")
    layer_weight = state[f"{key}.weight"].double().numpy()
    layer_bias = (bias.double().numpy() if bias is not None
                  else np.zeros(layer_weight.shape[0]))
    for array in (layer_weight, layer_bias):  # shared by every caller
        array.setflags(write=False)
    return LinearHead(layer_weight, layer_bias), None


def _module_head(module: nn.Module, weights) -> tuple[LinearHead | None, str | None]:
    adapter = bb.adapter_for_module(module)
    kind = type(module).__name__
    if adapter is None:
        return None, f"{kind} is not a torchvision classification model, so it has no known head"
    head = module.get_submodule(adapter.head_path)
    if not isinstance(head, nn.Linear):
        return None, (f"{kind}.{adapter.head_path} is a {type(head).__name__}, not the "
                      "source's classification Linear")
    if weights is None:  # the trunk is re-initialised, so is the head
        head = copy.deepcopy(head)
        head.reset_parameters()
    elif weights != "DEFAULT":
        return None, _file_reason(weights)
    return _from_linear(head), None


def source_head(backbone, weights) -> tuple[LinearHead | None, str | None]:
    """The classification head of the source model ``backbone`` with ``weights``.

    ``backbone`` is a registry name or an ``nn.Module`` (as the ``backbone``
    parameter of ``TransferFeatures``). Returns ``(head, None)``, or
    ``(None, reason)`` when the source's labels are unknown.
    """
    if isinstance(backbone, str) and is_text_backbone(backbone):
        return None, (f"text encoder {backbone!r} is a sentence encoder with no source "
                      "classification head")
    if isinstance(backbone, str):
        return _named_head(backbone, weights)
    if isinstance(backbone, nn.Module):
        return _module_head(backbone, weights)
    return None, f"a {type(backbone).__name__} backbone has no known classification head"
