"""How one epoch's training samples are cut into batches: into as few
batches as ``batch_size`` allows, of sizes that differ by at most one.

A plain cut into ``batch_size`` pieces leaves a short last batch (67
samples at 32: 32, 32 and 3), and a BatchNorm layer in training mode
normalises that batch by the statistics of its few samples and moves its
running statistics towards them; on a few dozen samples that alone keeps a
fine-tune from converging. An even cut (23, 22, 22) never makes a batch
larger than ``batch_size`` and keeps every sample in every epoch.
"""

from __future__ import annotations

import math


def smallest_batch(world_size: int = 1) -> int:
    """The fewest samples a training batch may have: two per process, so
    that BatchNorm layers in training mode never see a single sample."""
    return 2 * int(world_size)


def n_batches(n: int, batch_size: int, smallest: int = 2) -> int:
    """Batches per epoch for ``n`` samples: ``ceil(n / batch_size)``, or
    fewer where the even cut would leave a batch under ``smallest``."""
    count = max(1, math.ceil(n / batch_size))
    while count > 1 and n // count < smallest:
        count -= 1
    return count


def even_batches(order, count: int) -> list:
    """``order`` (a list or a 1-d tensor) cut into ``count`` consecutive
    batches whose sizes differ by at most one, the larger first."""
    size, extra = divmod(len(order), count)
    batches, start = [], 0
    for i in range(count):
        stop = start + size + (i < extra)
        batches.append(order[start:stop])
        start = stop
    return batches
