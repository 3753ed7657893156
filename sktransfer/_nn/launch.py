"""Where a fit runs: its device and seed, and under ``torchrun`` the process
group joined, rank 0's seed shared and the same data on every rank checked."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from . import distributed
from .net import smallest_batch
from .runtime import resolve_device


def _targets_checksum(targets) -> float:
    values = np.nan_to_num(np.asarray(targets, dtype=np.float64).reshape(len(targets), -1))
    return float((values.sum(axis=1) * (1 + np.arange(len(values)) % 97)).sum())


_BLOCK_BYTES = 1 << 24  # rows hashed at a time: a bounded copy of a strided array


def data_digest(data) -> int:
    """A digest of validated ``data`` (a table, ``CheckedImages`` or
    ``CheckedTexts``) that changes with the content and the position of any
    row: a 52-bit integer, exact as a float64, so ranks can compare it
    through a collective.

    Arrays count by their values (not their memory layout), texts by their
    UTF-8 bytes, PIL images by their pixels, and image files by their path and
    size, without reading them (copies of a data set on several machines
    keep their sizes, not always their modification times)."""
    h = hashlib.blake2b(digest_size=8)
    storage = getattr(data, "storage", None)
    if storage is None:
        _hash_rows(h, np.asarray(data), b"table")
    elif storage == "array":
        _hash_rows(h, data.data, f"images|{data.scale!r}".encode())
    elif storage == "text":
        for text in data.data:
            _hash_item(h, b"text", text.encode("utf-8", "surrogatepass"))
    else:
        for item in data.data:
            if isinstance(item, (str, os.PathLike)):
                path = os.fspath(item)
                _hash_item(h, b"file", os.fsencode(path), str(os.stat(path).st_size).encode())
            else:
                _hash_item(h, b"pil", item.mode.encode(), str(item.size).encode(),
                           item.tobytes())
    return int.from_bytes(h.digest(), "little") >> 12


def _hash_rows(h, array: np.ndarray, kind: bytes) -> None:
    _hash_item(h, kind, f"{array.dtype.str}|{array.shape}".encode())
    row_bytes = max(1, array[:1].nbytes)
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        h.update(np.ascontiguousarray(array[start:start + step]).data)


def _hash_item(h, *parts: bytes) -> None:
    # each part length-prefixed, so that no two sequences of items hash alike
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)


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
