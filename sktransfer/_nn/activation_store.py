"""Where cached activations live: an in-memory store with a byte budget,
shared by every estimator of the process, and optional on-disk chunks that
worker processes (``GridSearchCV(n_jobs>1)``) share.

Entries are keyed twice. The *model key* fingerprints everything that
determines the activations except the input: the architecture and the
parameters and buffers of the frozen part, where it is cut, the input
preprocessing, the numeric precision and the device type. Within a model key,
each *sample key* fingerprints one input image. Keys are per sample so that
the folds of a cross-validation, which share most of their samples, compute
each image's activations once.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict

import numpy as np
import torch

DEFAULT_BUDGET = 2 * 1024**3  # bytes


def _budget_from_env() -> int:
    value = os.environ.get("SKTRANSFER_CACHE_BYTES")
    if value is None:
        return DEFAULT_BUDGET
    try:
        budget = int(float(value))
    except ValueError:
        raise ValueError(
            f"SKTRANSFER_CACHE_BYTES={value!r} is not a number of bytes; set it to an "
            "integer such as 2000000000, or 0 to turn the in-memory cache off."
        ) from None
    return max(budget, 0)


# -- fingerprints ---------------------------------------------------------------


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def state_fingerprint(modules) -> str:
    """Fingerprint of the parameters, buffers and structure of ``modules``."""
    h = hashlib.blake2b(digest_size=16)
    for module in modules:
        h.update(repr(module).encode())
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(str(tensor.dtype).encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor_bytes(tensor))
    return h.hexdigest()


def model_key(**parts) -> str:
    """Key of everything but the input (JSON-able ``parts``)."""
    return _digest(json.dumps(parts, sort_keys=True, default=str).encode())


def sample_keys(images) -> list[str]:
    """One key per image of validated ``images`` (``CheckedImages``), or
    per text of ``CheckedTexts`` (by its UTF-8 bytes).

    Arrays are keyed by each image's bytes, dtype, shape and value scale;
    files by path, size and modification time; PIL images by their pixels.
    """
    if images.kind == "text":
        return [_digest(b"text", text.encode("utf-8")) for text in images.data]
    if images.kind == "array":
        data = images.data
        head = f"{data.dtype.str}|{data.shape[1:]}|{images.scale!r}".encode()
        return [_digest(head, np.ascontiguousarray(item).tobytes()) for item in data]
    return [_file_key(item) for item in images.data]


def _file_key(item) -> str:
    if isinstance(item, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(item))
        stat = os.stat(path)
        return _digest(b"file", path.encode(), str(stat.st_size).encode(),
                       str(stat.st_mtime_ns).encode())
    return _digest(b"pil", item.mode.encode(), str(item.size).encode(), item.tobytes())


# -- the in-memory store ------------------------------------------------------------


class MemoryStore:
    """Rows of activations per model key, least recently used evicted first,
    holding at most ``budget`` bytes."""

    def __init__(self, budget: int | None = None):
        self.budget = _budget_from_env() if budget is None else int(budget)
        self._entries: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def get(self, key: str, keys: list[str], count: bool = True) -> dict[int, torch.Tensor]:
        """Rows found for ``keys``, by position (``count``: add to the
        hit / miss statistics)."""
        with self._lock:
            entry = self._entries.get(key, {})
            if entry:
                self._entries.move_to_end(key)
            found = {i: entry[k] for i, k in enumerate(keys) if k in entry}
            if count:
                self.hits += len(found)
                self.misses += len(keys) - len(found)
            return found

    def holds(self, key: str) -> bool:
        """Whether any rows are stored under model key ``key``."""
        return bool(self._entries.get(key))

    def put(self, key: str, keys: list[str], rows: torch.Tensor) -> None:
        """Store ``rows`` (one per key) unless that would exceed the budget."""
        with self._lock:
            entry = self._entries.get(key, {})
            new = [(k, row) for k, row in zip(keys, rows) if k not in entry]
            size = sum(row.nbytes for _, row in new)
            self._evict_for(size, keep=key)
            if not new or self._nbytes + size > self.budget:
                return
            entry = self._entries.setdefault(key, entry)
            self._entries.move_to_end(key)
            for k, row in new:
                entry[k] = row.clone()  # a view would keep the whole batch alive
            self._nbytes += size

    def _evict_for(self, size: int, keep: str) -> None:
        while self._nbytes + size > self.budget and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                self._entries.move_to_end(keep)
                continue
            evicted = self._entries.pop(oldest)
            self._nbytes -= sum(row.nbytes for row in evicted.values())

    def set_budget(self, nbytes: int) -> None:
        """Hold at most ``nbytes`` from now on, evicting the least recently
        used entries (all of them if one alone is larger)."""
        with self._lock:
            self.budget = int(nbytes)
            self._evict_for(0, keep="")
            if self._nbytes > self.budget:
                self._entries.clear()
                self._nbytes = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        return {"entries": len(self._entries),
                "rows": sum(len(e) for e in self._entries.values()),
                "nbytes": self._nbytes, "budget": self.budget,
                "hits": self.hits, "misses": self.misses}


STORE = MemoryStore()


# -- on disk ---------------------------------------------------------------------------


_NUMPY_SAFE = {torch.float32, torch.float16, torch.float64}


def _disk_dir(cache_dir, key: str) -> str:
    return os.path.join(os.fspath(cache_dir), "sktransfer-activations", key)


def disk_get(cache_dir, key: str, keys: list[str], dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """Rows for ``keys`` found in the chunks under ``cache_dir``, by position.

    Chunks are numpy files read without pickle, memory-mapped so only the
    rows needed are read.
    """
    directory = _disk_dir(cache_dir, key)
    if not os.path.isdir(directory):
        return {}
    wanted = {k: i for i, k in enumerate(keys)}
    found: dict[int, torch.Tensor] = {}
    for chunk in sorted(os.listdir(directory)):
        path = os.path.join(directory, chunk)
        try:
            chunk_keys = np.load(os.path.join(path, "keys.npy"), allow_pickle=False)
            values = np.load(os.path.join(path, "values.npy"), mmap_mode="r",
                             allow_pickle=False)
        except (OSError, ValueError):
            continue  # a chunk being written by another process, or damaged
        for row, k in enumerate(chunk_keys.tolist()):
            position = wanted.get(k)
            if position is not None and position not in found:
                found[position] = torch.from_numpy(np.array(values[row])).to(dtype)
        if len(found) == len(keys):
            break
    return found


def disk_put(cache_dir, key: str, keys: list[str], rows: torch.Tensor) -> None:
    """Write ``rows`` as a new chunk; atomic, so readers never see half a chunk."""
    if not keys:
        return
    directory = _disk_dir(cache_dir, key)
    os.makedirs(directory, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = os.path.join(directory, f".tmp-{name}")
    os.makedirs(tmp)
    values = rows.detach().cpu()
    if values.dtype not in _NUMPY_SAFE:  # bfloat16: stored as float32, exactly
        values = values.float()
    np.save(os.path.join(tmp, "keys.npy"), np.asarray(keys, dtype="U32"))
    np.save(os.path.join(tmp, "values.npy"), values.numpy())
    os.replace(tmp, os.path.join(directory, name))


def lookup(key: str, keys: list[str], *, cache_dir, dtype: torch.dtype,
           compute) -> tuple[torch.Tensor, dict]:
    """Activations for every sample key: from memory, then disk, then
    ``compute(positions) -> rows`` for the rest; new rows are stored.

    Returns the stacked rows and counts of where they came from.
    """
    rows = STORE.get(key, keys)
    from_memory = len(rows)
    if cache_dir is not None and len(rows) < len(keys):
        missing = [i for i in range(len(keys)) if i not in rows]
        on_disk = disk_get(cache_dir, key, [keys[i] for i in missing], dtype)
        found = {missing[j]: row for j, row in on_disk.items()}
        rows.update(found)
        if found:
            STORE.put(key, [keys[i] for i in found], torch.stack(list(found.values())))
    from_disk = len(rows) - from_memory
    missing = [i for i in range(len(keys)) if i not in rows]
    if missing:
        computed = compute(missing)
        new_keys = [keys[i] for i in missing]
        STORE.put(key, new_keys, computed)
        if cache_dir is not None:
            disk_put(cache_dir, key, new_keys, computed)
        rows.update(zip(missing, computed))
    stacked = torch.stack([rows[i] for i in range(len(keys))])
    return stacked, {"from_memory": from_memory, "from_disk": from_disk,
                     "computed": len(missing)}


# -- public controls ---------------------------------------------------------------------


def cache_info() -> dict:
    """State of the in-memory activation cache of this process.

    Returns
    -------
    info : dict
        ``entries`` (models cached), ``rows`` (images cached), ``nbytes``
        (bytes held), ``budget`` (bytes allowed), ``hits`` and ``misses``
        (image lookups since the last :func:`clear_cache`).
    """
    return STORE.info()


def clear_cache() -> None:
    """Drop every activation cached in memory by this process (files written
    under a ``cache_dir`` stay; delete that directory to remove them)."""
    STORE.clear()


def set_cache_budget(nbytes: int) -> None:
    """Set how many bytes of activations the in-memory cache may hold.

    The default is 2 GiB, or the environment variable
    ``SKTRANSFER_CACHE_BYTES``. 0 turns in-memory caching off; a fit whose
    activations would not fit within the budget trains without the cache.

    Parameters
    ----------
    nbytes : int
        Budget in bytes.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int (bytes); got {nbytes!r}.")
    STORE.set_budget(int(nbytes))
