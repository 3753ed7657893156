"""Where a fit runs: its device and seed, and under ``torchrun`` the process
group joined, rank 0's seed shared and the same data on every rank checked."""

from __future__ import annotations

import numpy as np

from . import distributed
from .digests import data_digest
from .batches import smallest_batch
from .runtime import resolve_device


def _targets_checksum(targets) -> float:
    values = np.nan_to_num(np.asarray(targets, dtype=np.float64).reshape(len(targets), -1))
    return float((values.sum(axis=1) * (1 + np.arange(len(values)) % 97)).sum())


def join_launch(recipe, data, targets) -> tuple[str, int]:
    """The fit's device and seed. Under ``torchrun`` (``distributed``): this
    process's GPU, the process group joined, rank 0's seed, and the same
    data (``data``, the validated X, and the encoded ``targets``) on every
    rank checked."""
    device = distributed.local_device(resolve_device(recipe.runtime.device))
    if not distributed.active():
        return device, recipe.runtime.seed
    distributed.join(device)
    world = distributed.world_size()
    batch_size = recipe.schedule.batch_size
    if batch_size < smallest_batch(world):
        raise ValueError(
            f"batch_size={batch_size} is too small for a data-parallel fit on {world} "
            f"processes: each batch is split between them and each needs at least two "
            f"samples; use batch_size >= {smallest_batch(world)}."
        )
    distributed.check_same_data(len(targets), data_digest(data), _targets_checksum(targets))
    return device, distributed.shared_seed(recipe.runtime.seed)
