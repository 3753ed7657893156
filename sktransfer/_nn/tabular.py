"""The tabular backbone: a multi-layer perceptron whose stages are its
hidden layers, so that ``freeze_depth`` means the same as for images."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

ACTIVATIONS = {
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
        blocks.append(nn.Sequential(nn.Linear(width, int(size)), ACTIVATIONS[activation]()))
        width = int(size)
    return nn.Sequential(*blocks)


def tabular_dtype(X: np.ndarray) -> str:
    return "float64" if X.dtype == np.float64 else "float32"


def mlp_stages(mlp: nn.Sequential) -> list:
    return [[name] for name, _ in mlp.named_children()]


class TabularDataset(Dataset):
    """Rows of a float matrix, with optional ``(target, sample weight)``.

    ``dtype`` is "float64" or "float32"; like scikit-learn's MLP, float64 data
    is computed in float64.
    """

    def __init__(self, X: np.ndarray, targets=None, sample_weight=None, dtype="float32"):
        # A private copy: read-only or memory-mapped inputs stay untouched.
        self.X = torch.tensor(np.asarray(X), dtype=getattr(torch, dtype))
        self.targets = targets
        self.sample_weight = sample_weight

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        if self.targets is None:
            return self.X[index], 0
        return self.X[index], (self.targets[index], self.sample_weight[index])
