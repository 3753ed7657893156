"""Data-parallel fits: a script that calls ``fit`` runs unchanged under
``torchrun --nproc_per_node=N`` (or ``accelerate launch``), each process
training on its share of every batch with PyTorch's
``DistributedDataParallel``.

What a fit does when it finds itself in such a launch (``WORLD_SIZE`` > 1 in
the environment of a process that the launcher started, or a process group
already initialised by the user):

- it joins the process group (gloo on CPUs, NCCL on GPUs) unless one exists,
  and takes the GPU of its ``LOCAL_RANK``;
- every process draws the same seed (rank 0's), so they build the same
  network and the same shuffled batches; ``batch_size`` stays the *global*
  batch, split between the processes, so a fit means the same training in
  one process or in N (the gradients DDP averages are those of the whole
  batch);
- the decisions that end training (convergence, early stopping, the
  learning-rate range test) are taken on values every process agrees on:
  losses averaged over the processes, validation scores broadcast from rank 0;
- at the end rank 0's parameters, buffers and history are broadcast, so the
  fitted estimator is the same on every rank; save it from one rank
  (``sktransfer.is_main_process()``).

``SKTRANSFER_DDP=0`` in the environment turns all of this off.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os

import torch
import torch.distributed as dist


def _launched() -> bool:
    """Whether a launcher (torchrun, accelerate) started this process as one
    of several: its variables are set and this is not a child process of a
    fit (a DataLoader or loky worker inherits the environment, not the role)."""
    if os.environ.get("SKTRANSFER_DDP", "1") == "0":
        return False
    if multiprocessing.parent_process() is not None:
        return False
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return False
    return world > 1 and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def active() -> bool:
    """Whether fits in this process train data-parallel."""
    if os.environ.get("SKTRANSFER_DDP", "1") == "0":
        return False
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return _launched()


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if _launched() else 0


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if _launched() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Whether this process is the one that should save, log or report.

    True in an ordinary process; under ``torchrun`` / ``accelerate launch``,
    only on rank 0 (each rank holds the same fitted estimator).

    Returns
    -------
    main : bool
        False only on the ranks other than 0 of a data-parallel launch.

    Examples
    --------
    >>> import sktransfer
    >>> sktransfer.is_main_process()
    True
    """
    return rank() == 0


def local_device(device: str) -> str:
    """Under a launch, a CUDA device means this process's own GPU
    (``cuda:LOCAL_RANK``); CPU devices are shared."""
    if not active() or torch.device(device).type != "cuda":
        return device
    return f"cuda:{local_rank() % max(1, torch.cuda.device_count())}"


def join(device: str) -> None:
    """Join the launch's process group (once per process): NCCL when this
    process trains on a GPU, gloo otherwise."""
    if not active() or dist.is_initialized():
        return
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _carrier() -> torch.device:
    """Where collectives move tensors: NCCL only moves CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shared_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every rank (``seed`` itself outside a launch)."""
    return int(agree(seed))  # seeds are below 2**31: exact as a float64


def check_same_data(n_samples: int, x_digest: int, y_checksum: float) -> None:
    """Every rank must pass the same data: sktransfer splits it. Raise a
    ValueError on every rank when they differ in their number of samples, in
    ``x_digest`` (of X's rows, in order) or in ``y_checksum``."""
    if not active():
        return
    # every collective on every rank, whatever the first gives
    first_n, first_x, first_y = agree(n_samples), agree(x_digest), agree(y_checksum)
    differs = mean(torch.tensor([
        float(n_samples != first_n), float(x_digest != first_x),
        float(not math.isclose(y_checksum, first_y, rel_tol=1e-9, abs_tol=0.0))],
        dtype=torch.float64))
    n_differs, x_differs, y_differs = (differs > 0).tolist()  # on any rank
    if n_differs:
        raise ValueError(
            "under torchrun every process must call fit with the same X and y "
            f"(this is rank {rank()}: {n_samples} samples, rank 0 has {int(first_n)}); "
            "sktransfer splits each batch between the processes itself, so do not shard "
            "the data by rank."
        )
    if x_differs or y_differs:
        names = " and ".join(name for name, different in (("X", x_differs), ("y", y_differs))
                             if different)
        verb = "differ" if x_differs and y_differs else "differs"
        raise ValueError(
            f"under torchrun every process must call fit with the same X and y: {names} "
            f"{verb} between the ranks (this is rank {rank()}; each rank has {n_samples} "
            "samples, but some differ in content or order from rank 0's). Pass every rank "
            f"the same {names}, in the same order (load, and shuffle if at all, with the "
            "same seed on every rank); sktransfer splits each batch between the processes "
            "itself."
        )


def mean(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks (itself outside a launch)."""
    if not active():
        return value
    carried = value.detach().to(_carrier(), torch.float64).reshape(-1)
    dist.all_reduce(carried)
    return (carried / world_size()).to(value.device, value.dtype).reshape(value.shape)


def agree(value: float) -> float:
    """Rank 0's ``value`` on every rank (a score every rank must act on alike)."""
    if not active():
        return value
    carried = torch.tensor([float(value)], dtype=torch.float64, device=_carrier())
    dist.broadcast(carried, src=0)
    return float(carried.item())


def agree_object(obj):
    """Rank 0's picklable ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_from_main(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if not active():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            carried = tensor.detach().to(_carrier())
            dist.broadcast(carried, src=0)
            if carried.data_ptr() != tensor.data_ptr():
                tensor.copy_(carried.to(tensor.device))


def shard(batch: list, index: int, size: int) -> list:
    """This rank's part of a global batch: every ``size``-th position."""
    return batch[index::size]


def wrap(module: torch.nn.Module, device: str) -> torch.nn.parallel.DistributedDataParallel:
    """``module`` in DDP over its trainable parameters (rank 0's copy of
    them is broadcast to every rank here)."""
    ids = [torch.device(device).index] if torch.device(device).type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def trainable_signature(module: torch.nn.Module) -> tuple:
    """Which parameters train: DDP's set is fixed when it wraps a module,
    so a change (gradual unfreezing) means wrapping it again."""
    return tuple(p.requires_grad for p in module.parameters())
