"""The one batched-inference loop: every predict, embedding and cached
activation goes through ``run_batches``, so they share the device transfer,
precision, memory format and eval-mode handling."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .runtime import autocast, is_cuda, to_device


@dataclass(frozen=True)
class Batching:
    """How a dataset is run through a network: batch size, device,
    precision ("32", "bf16", "16"), memory format and DataLoader workers."""

    batch_size: int
    device: str
    precision: str = "32"
    channels_last: bool = False
    num_workers: int = 0


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """``module`` in eval mode for the block, its previous mode restored."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def collate_for(dataset):
    """The ``collate_fn`` a DataLoader over ``dataset`` needs: the dataset's
    own (texts are tokenised per batch), or None for the default."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "collate_fn", None)


def run_batches(fn, dataset, batching: Batching) -> torch.Tensor:
    """``fn(X)`` over ``dataset`` in batches, under ``torch.inference_mode``
    and the precision's autocast; only the outputs are kept (on the CPU,
    contiguous), so memory does not grow with the inputs.

    ``fn`` is called with each batch of inputs already on the device; the
    caller puts the modules it runs in the mode it wants (``evaluating``).
    """
    loader = DataLoader(dataset, batch_size=batching.batch_size, shuffle=False,
                        num_workers=batching.num_workers, collate_fn=collate_for(dataset),
                        pin_memory=is_cuda(batching.device))
    outputs = []
    with torch.inference_mode(), autocast(batching.precision, batching.device):
        for X, _ in loader:
            X = to_device(X, batching.device, batching.channels_last)
            outputs.append(fn(X).contiguous().cpu())
    return torch.cat(outputs)
