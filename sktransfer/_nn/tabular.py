"""The tabular backbone: a multi-layer perceptron whose stages are its
hidden layers, so that ``freeze_depth`` means the same as for images."""

from __future__ import annotations

import numpy as np
from torch import nn

# one layer per option of sktransfer._options.ACTIVATIONS (tests check they agree)
ACTIVATION_LAYERS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,
}


def build_mlp(n_features_in: int, hidden_layer_sizes: tuple, activation: str) -> nn.Sequential:
    """One ``Sequential(Linear, activation)`` block per hidden layer."""
    sizes = tuple(hidden_layer_sizes)
    if not sizes or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                            and s > 0 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a non-empty tuple of positive ints for "
            f"backbone='mlp', got {hidden_layer_sizes!r}."
        )
    blocks, width = [], n_features_in
    for size in sizes:
        blocks.append(nn.Sequential(nn.Linear(width, int(size)), ACTIVATION_LAYERS[activation]()))
        width = int(size)
    return nn.Sequential(*blocks)


def mlp_stages(mlp: nn.Sequential) -> list:
    return [[name] for name, _ in mlp.named_children()]
