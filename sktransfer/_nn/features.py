"""Pooled embeddings from a trunk, at its end or after a chosen stage."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import backbones as bb


class _Captured(Exception):
    """Raised by the hook to stop the forward pass once the cut is reached."""

    def __init__(self, output):
        super().__init__()
        self.output = output


def pool(output: torch.Tensor) -> torch.Tensor:
    """Global average over spatial positions (B, C, H, W) or tokens (B, T, D)."""
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        return output.mean(dim=1)
    return output.flatten(1)


def cut_module(trunk, stages: list, stage: int | None):
    """The module whose output is the embedding after ``stage`` stages
    (None: the trunk's own output)."""
    if stage is None:
        return None
    members = [bb.resolve_member(trunk, name) for name in stages[stage - 1]]
    modules = [m for m in members if isinstance(m, torch.nn.Module)]
    if not modules:
        raise ValueError(f"stage {stage} has no module whose output can be taken.")
    return modules[-1]


def embed_batch(trunk, X: torch.Tensor, cut) -> torch.Tensor:
    if cut is None:
        return pool(trunk(X))

    def hook(module, inputs, output):
        raise _Captured(output)

    handle = cut.register_forward_hook(hook)
    try:
        trunk(X)
    except _Captured as captured:
        return pool(captured.output)
    finally:
        handle.remove()
    raise RuntimeError("the forward pass never reached the chosen stage.")


def embed(trunk, dataset, *, stage_module, batch_size: int, device: str) -> np.ndarray:
    """Embeddings of ``dataset`` in batches, under ``torch.inference_mode``."""
    trunk.eval()
    pin = torch.device(device).type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, pin_memory=pin)
    outputs = []
    with torch.inference_mode():
        for X, _ in loader:
            X = X.to(device, non_blocking=True)
            outputs.append(embed_batch(trunk, X, stage_module).float().cpu())
    return torch.cat(outputs).numpy()
