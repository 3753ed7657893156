"""Which GPU and how many CPU threads a fit uses inside a worker process of
a parallel search (``GridSearchCV(n_jobs=...)`` on loky, a Dask worker, a
Ray task), so that workers neither pile onto ``cuda:0`` nor each start one
torch thread per core.

- Ray gives each task the GPUs it asked for (``num_gpus``) by setting
  ``CUDA_VISIBLE_DEVICES``: the task sees only those, so ``cuda`` is its own
  GPU and nothing here needs to know about Ray.
- dask-cuda (``LocalCUDACluster``, ``dask cuda worker``) shows worker i
  every GPU with its own first (``CUDA_VISIBLE_DEVICES=i,i+1,...,0,...``):
  a list not in ascending order is such a rotation, and its first device,
  plain ``cuda``, is the worker's own.
- Other workers see every GPU. ``device="auto"`` then takes GPU
  ``worker index % visible GPUs``, a stable round-robin: the same worker
  keeps its GPU from fit to fit, and N workers on N GPUs use all of them.
- Threads: joblib's loky workers get ``OMP_NUM_THREADS = cores // n_jobs``
  from joblib, which torch follows when it starts in the worker; a Dask
  worker runs ``nthreads`` tasks at once, so each fit takes
  ``cores // nthreads`` torch threads there.
"""

from __future__ import annotations

import multiprocessing
import os
import re

_NUMBERED = re.compile(r"(?:LokyProcess|ForkPoolWorker|SpawnPoolWorker|Process)-(\d+)$")


def _dask_worker():
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:  # not inside a Dask task
        return None


def worker_index() -> int | None:
    """This process's index among the workers of a parallel search (0, 1,
    ...), or None in the main process. Dask: the worker's name when it is a
    number (``LocalCluster`` numbers its workers), else its position by
    address; loky / multiprocessing: the number in the process's name."""
    worker = _dask_worker()
    if worker is not None:
        name = getattr(worker, "name", None)
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            return int(name)
        return _stable_number(str(getattr(worker, "address", name)))
    match = _NUMBERED.search(multiprocessing.current_process().name)
    if match:
        return int(match.group(1)) - 1
    if multiprocessing.parent_process() is None:
        return None
    return _stable_number(str(os.getpid()))


def _stable_number(text: str) -> int:
    # not hash(): it is salted per process
    return sum(ord(char) * 31 ** i for i, char in enumerate(text[-16:])) & 0x7FFFFFFF


def rotated_visible_devices(value: str | None = None) -> bool:
    """Whether ``CUDA_VISIBLE_DEVICES`` (or ``value``) lists GPU indices out
    of ascending order: a cluster manager (dask-cuda) put this worker's own
    GPU first."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES") if value is None else value
    entries = [entry.strip() for entry in (value or "").split(",") if entry.strip()]
    if not all(entry.isdigit() for entry in entries):
        return False  # GPU UUIDs: no order to read
    numbers = [int(entry) for entry in entries]
    return numbers != sorted(numbers)


def auto_cuda_device(n_visible: int, index: int | None, rotated: bool = False) -> str:
    """The CUDA device ``device="auto"`` means for worker ``index`` when
    ``n_visible`` GPUs are visible: its round-robin share, or plain "cuda"
    in the main process, with one GPU, or when the visible list is rotated
    to put the worker's own GPU first."""
    if index is None or n_visible <= 1 or rotated:
        return "cuda"
    return f"cuda:{index % n_visible}"


def worker_threads(cores: int | None = None) -> int | None:
    """The torch threads a fit may use in this worker, or None (no cap: the
    main process, or a worker whose thread budget is already in the
    environment, as joblib's loky workers have)."""
    worker = _dask_worker()
    if worker is None:
        return None
    cores = cores or os.cpu_count() or 1
    state = getattr(worker, "state", worker)
    nthreads = getattr(state, "nthreads", None) or getattr(worker, "nthreads", 1) or 1
    return max(1, cores // int(nthreads))
