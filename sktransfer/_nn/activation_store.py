"""Where cached activations live: an in-memory store with a byte budget,
shared by every estimator of the process, and optional on-disk chunks that
worker processes (``GridSearchCV(n_jobs>1)``) share, each checked against a
digest when read, within a byte budget per ``cache_dir`` (least recently
used chunks deleted first).

Entries are keyed twice. The *model key* fingerprints everything that
determines the activations except the input: the architecture and the
parameters and buffers of the frozen part, where it is cut, the input
preprocessing, the numeric precision and the device type. Within a model key,
each *sample key* fingerprints one input image. Keys are per sample so that
the folds of a cross-validation, which share most of their samples, compute
each image's activations once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import threading
import time
import uuid
import warnings
from collections import OrderedDict

import numpy as np
import torch

from .digests import file_content_digest

DEFAULT_BUDGET = 2 * 1024**3  # bytes


def _bytes_from_env(name: str, default: int, off: str) -> int:
    """A byte budget from environment variable ``name`` (``default`` when
    unset; negative values mean 0, which turns ``off`` off)."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        budget = int(float(value))
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a number of bytes; set it to an integer such as "
            f"2000000000, or 0 to turn {off} off."
        ) from None
    return max(budget, 0)


def _budget_from_env() -> int:
    return _bytes_from_env("SKTRANSFER_CACHE_BYTES", DEFAULT_BUDGET, "the in-memory cache")


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
    files by the bytes they hold (not their path or modification time, which
    a rewrite can leave unchanged); PIL images by their pixels.
    """
    if images.storage == "text":
        return [_digest(b"text", text.encode("utf-8")) for text in images.data]
    if images.storage == "array":
        data = images.data
        head = f"{data.dtype.str}|{data.shape[1:]}|{images.scale!r}".encode()
        return [_digest(head, np.ascontiguousarray(item).tobytes()) for item in data]
    return [_file_key(item) for item in images.data]


def _file_key(item) -> str:
    if isinstance(item, (str, os.PathLike)):
        # the digest's tag keeps file keys apart from _digest's length-prefixed keys
        return file_content_digest(os.fspath(item))
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
#
# <cache_dir>/sktransfer-activations/<model key>/<chunk>/ holds keys.npy,
# values.npy and digest.txt. A chunk appears whole (written under a hidden
# name, then renamed) and disappears whole (renamed to a hidden name, then
# deleted), so a reader that finds a chunk's directory finds all its files,
# and one whose directory is gone was evicted by another process: a miss.

DISK_DIRNAME = "sktransfer-activations"
# Solutions of exact linear probes by key (``sktransfer._nn.probe``): small,
# kept in memory and as files under ``<cache_dir>/sktransfer-probes``, and
# cleared with the activations.
PROBE_SOLUTIONS: OrderedDict = OrderedDict()
PROBE_DIRNAME = "sktransfer-probes"
# Trained fits by key (``sktransfer._nn.trained_fits``), in memory and under
# ``<cache_dir>/sktransfer-fits``, cleared with the activations.
TRAINED_FITS: OrderedDict = OrderedDict()
FIT_DIRNAME = "sktransfer-fits"
DEFAULT_DISK_BUDGET = 10 * 1024**3  # bytes under each cache_dir
_DIGEST_FILE = "digest.txt"
_STALE_TMP_SECONDS = 3600  # a chunk still being written after this was left by a crash

_NUMPY_SAFE = {torch.float32, torch.float16, torch.float64}

_disk_budget_override: int | None = None  # set by set_cache_budget(disk_nbytes=...)
_unusable_dirs: set[str] = set()  # cache_dirs warned about; not written to again
_reported_chunks: set[str] = set()  # damaged chunks warned about; skipped from then on
_disk_lock = threading.Lock()


class _DamagedChunk(Exception):
    """A chunk whose rows cannot be trusted; the message says why."""


class _VanishedChunk(Exception):
    """A chunk removed (by another process) while it was being read."""


def cache_path(cache_dir, *parts: str) -> str:
    """The path of ``parts`` under the user's ``cache_dir``, through which
    every file kept there is named: a leading ``~`` is the user's home
    directory, as in ``joblib.Memory`` (environment variables are not
    expanded, as there)."""
    return os.path.join(os.path.expanduser(os.fspath(cache_dir)), *parts)


def _root(cache_dir) -> str:
    return cache_path(cache_dir, DISK_DIRNAME)


def _disk_dir(cache_dir, key: str) -> str:
    return os.path.join(_root(cache_dir), key)


def _disk_budget() -> int:
    if _disk_budget_override is not None:
        return _disk_budget_override
    return _bytes_from_env("SKTRANSFER_DISK_CACHE_BYTES", DEFAULT_DISK_BUDGET,
                           "writing activations to cache_dir")


def _chunk_digest(keys_npy: bytes, values_npy: bytes) -> str:
    # over the .npy files' bytes, whose headers hold each array's dtype and shape
    return _digest(b"chunk-v1", keys_npy, values_npy)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:  # truncated, or not a .npy file
        raise _DamagedChunk(f"{name} cannot be read: {error}") from None


def _read_file(chunk: str, name: str) -> bytes:
    try:
        with open(os.path.join(chunk, name), "rb") as file:
            return file.read()
    except OSError as error:
        if not os.path.isdir(chunk):
            raise _VanishedChunk from None
        if isinstance(error, FileNotFoundError):
            hint = " (written by an older sktransfer?)" if name == _DIGEST_FILE else ""
            raise _DamagedChunk(f"{name} is missing{hint}") from None
        raise _DamagedChunk(f"{name} cannot be read ({error.strerror or error})") from None


def _chunk_keys(chunk: str) -> tuple[list[str], bytes]:
    """The sample keys of a chunk, and the bytes they were read from."""
    data = _read_file(chunk, "keys.npy")
    keys = _load_npy(data, "keys.npy")
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise _DamagedChunk("keys.npy does not hold a list of keys")
    return keys.tolist(), data


def _chunk_values(chunk: str, keys_npy: bytes, n_rows: int) -> np.ndarray:
    """The rows of a chunk, checked against its digest (read whole to hash it)."""
    values_npy = _read_file(chunk, "values.npy")
    digest = _read_file(chunk, _DIGEST_FILE).decode("ascii", "replace").strip()
    if digest != _chunk_digest(keys_npy, values_npy):
        raise _DamagedChunk("its digest does not match its contents")
    values = _load_npy(values_npy, "values.npy")
    if values.ndim == 0 or len(values) != n_rows:
        raise _DamagedChunk(f"values.npy holds {values.shape} for {n_rows} keys")
    return values


def _rows_from_chunk(chunk: str, wanted: dict, dtype: torch.dtype) -> dict:
    """Rows of ``chunk`` for the positions ``wanted`` (sample key -> positions)
    asks for; only a chunk that holds some of them is read whole and checked."""
    chunk_keys, keys_npy = _chunk_keys(chunk)
    rows = [(row, wanted[k]) for row, k in enumerate(chunk_keys) if k in wanted]
    if not rows:
        return {}
    values = _chunk_values(chunk, keys_npy, len(chunk_keys))
    found = {}
    for row, positions in rows:
        tensor = torch.from_numpy(np.array(values[row])).to(dtype)  # a copy: not the chunk
        found.update(dict.fromkeys(positions, tensor))
    return found


def disk_get(cache_dir, key: str, keys: list[str], dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """Rows for ``keys`` found in the chunks under ``cache_dir``, by position.

    Chunks are numpy files read without pickle. A chunk is read whole and
    checked against its digest before any of its rows is used; one that
    fails (or cannot be read) is discarded and reported once, so its rows
    are recomputed. Reading a chunk counts as a use, for eviction.
    """
    directory = _disk_dir(cache_dir, key)
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return {}  # nothing written yet (or cache_dir is a file: disk_put says so)
    except OSError as error:
        _warn_unusable(cache_dir, error)
        return {}
    wanted: dict[str, list[int]] = {}
    for position, k in enumerate(keys):
        wanted.setdefault(k, []).append(position)
    found: dict[int, torch.Tensor] = {}
    for name in names:
        chunk = os.path.join(directory, name)
        if name.startswith(".") or chunk in _reported_chunks:  # being written or removed
            continue
        try:
            rows = _rows_from_chunk(chunk, wanted, dtype)
        except _VanishedChunk:
            continue
        except _DamagedChunk as error:
            _discard_damaged(chunk, str(error))
            continue
        if rows:
            _touch(chunk)
            found.update(rows)
            for k in {keys[i] for i in rows}:
                del wanted[k]
        if not wanted:
            break
    return found


def _touch(chunk: str) -> None:
    try:
        os.utime(chunk)
    except OSError:
        pass  # a read-only cache_dir, or evicted meanwhile: only the eviction order suffers


def _remove_chunk(chunk: str) -> None:
    """Remove a chunk, first renaming it so that no reader sees part of it."""
    doomed = os.path.join(os.path.dirname(chunk), f".trash-{uuid.uuid4().hex}")
    try:
        os.rename(chunk, doomed)
    except OSError:
        return  # removed by another process, or a read-only cache_dir
    shutil.rmtree(doomed, ignore_errors=True)


def _discard_damaged(chunk: str, why: str) -> None:
    with _disk_lock:
        if chunk in _reported_chunks:
            return
        _reported_chunks.add(chunk)
    _remove_chunk(chunk)
    warnings.warn(
        f"The cached activations in {chunk!r} failed their integrity check ({why}); the "
        "chunk is discarded and its rows are computed again. A disk error, or something "
        "other than sktransfer writing under cache_dir, can cause this.",
        UserWarning, stacklevel=2)


def _warn_unusable(cache_dir, error: OSError) -> None:
    """Warn once per directory and process, and write nothing there from now on."""
    directory = os.path.abspath(cache_path(cache_dir))
    with _disk_lock:
        if directory in _unusable_dirs:
            return
        _unusable_dirs.add(directory)
    warnings.warn(
        f"cache_dir {directory!r} cannot be used ({type(error).__name__}: "
        f"{error.strerror or error}); activations computed from now on stay in the "
        "in-memory cache of this process only (what is already under cache_dir is still "
        "read). Pass a cache_dir this process can write to, or cache_dir=None.",
        UserWarning, stacklevel=2)


def disk_put(cache_dir, key: str, keys: list[str], rows: torch.Tensor) -> None:
    """Write ``rows`` as a new chunk, then evict the least recently used
    chunks beyond the disk budget.

    Atomic, so readers never see half a chunk. A ``cache_dir`` that cannot
    be written is reported once and not written to again by this process.
    """
    if not keys or os.path.abspath(cache_path(cache_dir)) in _unusable_dirs:
        return
    budget = _disk_budget()
    files = _chunk_files(keys, rows)
    if sum(len(data) for _, data in files) > budget:
        return  # it would be the first evicted
    # clear_cache(cache_dir) in another process can delete the directories
    # this creates while it writes: a missing one is that, not a cache_dir
    # that cannot be used, and so is a directory seen then gone, once
    for attempt in range(2):
        try:
            _write_chunk(_disk_dir(cache_dir, key), files)
            break
        except FileNotFoundError:
            return
        except FileExistsError as error:
            if attempt:  # a file where a directory should be
                _warn_unusable(cache_dir, error)
                return
        except OSError as error:
            _warn_unusable(cache_dir, error)
            return
    _evict(cache_dir, budget)


def _chunk_files(keys: list[str], rows: torch.Tensor) -> list[tuple[str, bytes]]:
    """The files of a chunk: names and contents."""
    values = rows.detach().cpu()
    if values.dtype not in _NUMPY_SAFE:  # bfloat16: stored as float32, exactly
        values = values.float()
    keys_npy = _npy_bytes(np.asarray(keys, dtype="U32"))
    values_npy = _npy_bytes(values.numpy())
    digest = _chunk_digest(keys_npy, values_npy)
    return [("keys.npy", keys_npy), ("values.npy", values_npy),
            (_DIGEST_FILE, f"{digest}\n".encode())]


def _write_chunk(directory: str, files: list[tuple[str, bytes]]) -> None:
    name = uuid.uuid4().hex
    tmp = os.path.join(directory, f".tmp-{name}")
    os.makedirs(directory, exist_ok=True)
    os.mkdir(tmp)
    try:
        for filename, data in files:
            with open(os.path.join(tmp, filename), "wb") as file:
                file.write(data)
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _scandir(path: str) -> list:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError:
        return []


def _dir_nbytes(path: str) -> int:
    total = 0
    for entry in _scandir(path):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            pass  # removed meanwhile
    return total


def _chunks_under(cache_dir) -> tuple[list[tuple[float, int, str]], list[str]]:
    """``(last use, bytes, path)`` of every chunk under ``cache_dir``, and
    the leftovers of interrupted writes and removals, which can go."""
    chunks, leftovers = [], []
    now = time.time()
    for model in _scandir(_root(cache_dir)):
        if not model.is_dir(follow_symlinks=False):
            continue
        for entry in _scandir(model.path):
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue  # removed meanwhile
            if entry.name.startswith(".trash-") or (
                    entry.name.startswith(".tmp-") and now - mtime > _STALE_TMP_SECONDS):
                leftovers.append(entry.path)
            elif not entry.name.startswith("."):
                chunks.append((mtime, _dir_nbytes(entry.path), entry.path))
    return chunks, leftovers


def _evict(cache_dir, budget: int) -> None:
    """Remove the least recently used chunks until those under ``cache_dir``
    take at most ``budget`` bytes (several processes may do this at once:
    each removal is a rename that only one of them wins)."""
    chunks, leftovers = _chunks_under(cache_dir)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    total = sum(size for _, size, _ in chunks)
    for _, size, path in sorted(chunks):
        if total <= budget:
            break
        _remove_chunk(path)
        total -= size


def disk_usage(cache_dir) -> dict:
    """Bytes and number of the chunks under ``cache_dir``."""
    chunks, _ = _chunks_under(cache_dir)
    return {"disk_nbytes": sum(size for _, size, _ in chunks), "disk_chunks": len(chunks)}


def _delete_disk_cache(cache_dir) -> None:
    """Delete ``<cache_dir>/sktransfer-activations`` and nothing else."""
    root = _root(cache_dir)
    if os.path.islink(root):  # the user's link: empty what it points to, keep the link
        for entry in _scandir(root):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        return
    if not os.path.isdir(root):
        return
    # renamed first, so that readers in other processes see every chunk whole or not at all
    doomed = cache_path(cache_dir, f".{DISK_DIRNAME}-deleting-{uuid.uuid4().hex}")
    try:
        os.rename(root, doomed)
    except FileNotFoundError:
        return  # deleted meanwhile by another process
    # a writer that was past the old name may still finish a chunk in there
    shutil.rmtree(doomed, ignore_errors=True)
    if os.path.lexists(doomed):
        shutil.rmtree(doomed)  # what is left cannot be deleted: say why


def _read_back(cache_dir, key, keys, missing, rows: dict, dtype) -> None:
    """Add to ``rows`` (and to memory) the ``missing`` positions found on disk."""
    on_disk = disk_get(cache_dir, key, [keys[i] for i in missing], dtype)
    found = {missing[j]: row for j, row in on_disk.items()}
    rows.update(found)
    if found:
        STORE.put(key, [keys[i] for i in found], torch.stack(list(found.values())))


# -- one process computes a model's missing activations at a time -----------------------
#
# Workers of a distributed search (other processes, other hosts sharing
# cache_dir) that miss the same activations at once would all compute them.
# A lease file per model key lets one compute while the others wait, then read
# what it wrote: each activation is computed once in total. The lease names
# its holder (host, process id, when taken); the holder refreshes its mtime
# and removes it however the computation ends (an exception, Ctrl-C). A lease
# whose holder was a process of this host that no longer runs (killed: a loky
# worker ended by Ctrl-C, SIGKILL) is broken at once; any lease not refreshed
# for _LEASE_STALE_SECONDS (its holder, on another host, died) is broken then.
# Two waiters may both break one lease: at worst two processes compute the
# same activations, whose chunks are written whole. A wait longer than
# _LEASE_REPORT_SECONDS is reported once, naming the file and its holder. A
# cache_dir where the lease cannot be created (read-only) is used without one.

_LEASE_NAME = ".computing"
_LEASE_REFRESH_SECONDS = 10.0
_LEASE_STALE_SECONDS = 60.0
_LEASE_POLL_SECONDS = 0.1
_LEASE_REPORT_SECONDS = 5.0
_HOST = platform.node()


def _take_lease(path: str, line: str) -> bool | None:
    """True: taken, with ``line`` written in it; False: held by another;
    None: cannot be created here."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:  # cache_dir is a file, read-only, ...
        return None
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError:
        return None
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(line)
    except BaseException as error:  # no lease left without its holder's name
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(error, OSError):  # a full disk: computed without a lease
            return None
        raise
    return True


def _read_lease(path: str) -> str | None:
    """The lease's text; None once released ("" when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def _lease_holder(text: str) -> tuple[str, int, float] | None:
    """``(host, pid, since)`` a lease names; None while its holder is still
    writing it (the line ends with a newline) or for a file not in this form."""
    fields = text.split()
    if not text.endswith("\n") or len(fields) < 3:
        return None
    try:
        return fields[0], int(fields[1]), float(fields[2])
    except ValueError:
        return None


def _holder_gone(holder) -> bool:
    """Whether ``holder`` was a process of this host that no longer runs
    (another host's cannot be asked: its lease goes when stale)."""
    if holder is None or holder[0] != _HOST or holder[1] <= 0 or os.name == "nt":
        return False  # on Windows os.kill(pid, 0) would end the process
    try:
        os.kill(holder[1], 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: another user's process, running
        return False
    return False


def _lease_age(path: str) -> float | None:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None  # released meanwhile


def _break_lease(path: str, text: str) -> None:
    if _read_lease(path) == text:  # not released and taken again meanwhile
        with contextlib.suppress(OSError):
            os.unlink(path)


def _report_wait(path: str, holder, age: float | None) -> None:
    if holder is None:
        who = "a process that has not written its name in it"
    else:
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder[2]))
        who = f"pid {holder[1]} on host {holder[0]!r} since {taken}"
    refreshed = "" if age is None else f", last refreshed {age:.0f} s ago"
    warnings.warn(
        f"sktransfer is waiting for another process to compute the same activations: "
        f"the lease file {path!r} is held by {who}{refreshed}. The wait ends when that "
        f"process is done, or once the file goes {_LEASE_STALE_SECONDS:.0f} s without a "
        "refresh. If that process no longer runs, delete the file.",
        UserWarning, stacklevel=3)  # the line of the caller that waits


def _refresh(path: str, done: threading.Event) -> None:
    while not done.wait(_LEASE_REFRESH_SECONDS):
        try:
            os.utime(path)
        except OSError:
            return


class compute_lease:
    """``with compute_lease(cache_dir, key):`` holds the model's lease while
    computing, after waiting for another process's. No-op without
    ``cache_dir``."""

    def __init__(self, cache_dir, key: str):
        self.path = None if cache_dir is None else os.path.join(_disk_dir(cache_dir, key),
                                                                 _LEASE_NAME)
        self.held = False
        self._line = f"{_HOST} {os.getpid()} {time.time():.0f} {uuid.uuid4().hex}\n"
        self._done = threading.Event()

    def __enter__(self):
        waiting_since, reported = None, False
        while self.path is not None:
            taken = _take_lease(self.path, self._line)
            if taken is None:
                return self
            if taken:
                self.held = True
                threading.Thread(target=_refresh, args=(self.path, self._done),
                                 daemon=True).start()
                return self
            text = _read_lease(self.path)
            if text is None:
                continue  # released meanwhile
            holder, age = _lease_holder(text), _lease_age(self.path)
            if _holder_gone(holder) or (age is not None and age > _LEASE_STALE_SECONDS):
                _break_lease(self.path, text)
                continue
            if waiting_since is None:
                waiting_since = time.monotonic()
            if not reported and time.monotonic() - waiting_since >= _LEASE_REPORT_SECONDS:
                _report_wait(self.path, holder, age)
                reported = True
            time.sleep(_LEASE_POLL_SECONDS)
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self.held and _read_lease(self.path) == self._line:  # not broken and retaken
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        return False


def lookup(key: str, keys: list[str], *, cache_dir, dtype: torch.dtype,
           compute) -> tuple[torch.Tensor, dict]:
    """Activations for every sample key: from memory, then disk, then
    ``compute(positions) -> rows`` for the rest; new rows are stored.

    Returns the stacked rows and counts of where they came from.
    """
    rows = STORE.get(key, keys)
    from_memory = len(rows)
    if cache_dir is not None and len(rows) < len(keys):
        _read_back(cache_dir, key, keys, [i for i in range(len(keys)) if i not in rows],
                   rows, dtype)
    missing = [i for i in range(len(keys)) if i not in rows]
    computed = 0
    if missing:
        with compute_lease(cache_dir, key):
            if cache_dir is not None:  # what others wrote since (while this one waited)
                _read_back(cache_dir, key, keys, missing, rows, dtype)
                missing = [i for i in range(len(keys)) if i not in rows]
            if missing:
                new_rows = compute(missing)
                new_keys = [keys[i] for i in missing]
                STORE.put(key, new_keys, new_rows)
                if cache_dir is not None:
                    disk_put(cache_dir, key, new_keys, new_rows)
                rows.update(zip(missing, new_rows))
                computed = len(missing)
    from_disk = len(rows) - from_memory - computed
    stacked = torch.stack([rows[i] for i in range(len(keys))])
    return stacked, {"from_memory": from_memory, "from_disk": from_disk,
                     "computed": computed}


# -- public controls ---------------------------------------------------------------------


def cache_info(cache_dir=None) -> dict:
    """State of the activation cache: in memory in this process, and on disk.

    Parameters
    ----------
    cache_dir : str, path or None, default=None
        Also report what is stored under this directory (the ``cache_dir``
        given to the estimators). None: the in-memory cache only.

    Returns
    -------
    info : dict
        ``entries`` (models cached), ``rows`` (images cached), ``nbytes``
        (bytes held), ``budget`` (bytes allowed), ``hits`` and ``misses``
        (image lookups since the last :func:`clear_cache`) of the in-memory
        cache; ``disk_budget`` (bytes allowed under each ``cache_dir``);
        and, with ``cache_dir``, ``disk_nbytes`` and ``disk_chunks`` (bytes
        and files of activations stored there, by all processes).

    See Also
    --------
    clear_cache : Drop cached activations.
    set_cache_budget : Bound the memory and disk the cache may use.

    Examples
    --------
    >>> import sktransfer
    >>> sorted(sktransfer.cache_info())[:3]
    ['budget', 'disk_budget', 'entries']
    """
    info = STORE.info()
    info["disk_budget"] = _disk_budget()
    if cache_dir is not None:
        info.update(disk_usage(cache_dir))
    return info


def clear_cache(cache_dir=None) -> None:
    """Drop every activation, exact-probe solution and trained fit kept in
    memory by this process, and those written under ``cache_dir``.

    Parameters
    ----------
    cache_dir : str, path or None, default=None
        Also delete ``<cache_dir>/sktransfer-activations``,
        ``<cache_dir>/sktransfer-probes`` and ``<cache_dir>/sktransfer-fits``,
        where estimators given this ``cache_dir`` keep their activations,
        probe solutions and trained fits (nothing else in ``cache_dir`` is
        touched). Other processes using it at the
        time compute what they no longer find. None: files stay.

    See Also
    --------
    cache_info : What the cache holds.

    Examples
    --------
    >>> import sktransfer
    >>> sktransfer.clear_cache()
    >>> sktransfer.cache_info()["rows"]
    0
    """
    STORE.clear()
    PROBE_SOLUTIONS.clear()
    TRAINED_FITS.clear()
    if cache_dir is not None:
        _delete_disk_cache(cache_dir)
        for dirname in (PROBE_DIRNAME, FIT_DIRNAME):
            shutil.rmtree(cache_path(cache_dir, dirname), ignore_errors=True)


def _check_nbytes(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (bytes); got {value!r}.")
    return int(value)


def set_cache_budget(nbytes=None, *, disk_nbytes=None) -> None:
    """Set how many bytes of activations the cache may hold, in memory and
    under each ``cache_dir``.

    Parameters
    ----------
    nbytes : int or None, default=None
        Budget of the in-memory cache of this process, in bytes. The
        default is 2 GiB, or the environment variable
        ``SKTRANSFER_CACHE_BYTES``. 0 turns in-memory caching off; a fit
        whose activations would not fit within the budget trains without
        the cache. None: unchanged.
    disk_nbytes : int or None, default=None
        Budget of each ``cache_dir``, in bytes: after writing activations
        there, the least recently used (written or read) are deleted until
        those under that directory take at most this much. The default is
        10 GiB, or the environment variable ``SKTRANSFER_DISK_CACHE_BYTES``
        (which worker processes inherit; this setting is for this process
        only). 0 writes nothing (files already there are still read).
        None: unchanged.

    See Also
    --------
    cache_info : The budgets and what the cache holds.

    Examples
    --------
    >>> import sktransfer
    >>> info = sktransfer.cache_info()
    >>> sktransfer.set_cache_budget(info["budget"], disk_nbytes=info["disk_budget"])
    """
    global _disk_budget_override
    if nbytes is None and disk_nbytes is None:
        raise ValueError("set_cache_budget needs nbytes or disk_nbytes (bytes of the "
                         "in-memory cache, or of each cache_dir); got neither.")
    checked = {name: _check_nbytes(name, value) for name, value in
               [("nbytes", nbytes), ("disk_nbytes", disk_nbytes)] if value is not None}
    if "nbytes" in checked:
        STORE.set_budget(checked["nbytes"])
    if "disk_nbytes" in checked:
        _disk_budget_override = checked["disk_nbytes"]
