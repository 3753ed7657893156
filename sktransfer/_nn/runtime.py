"""Where and how tensors are computed: the device, the numeric precision,
moving batches, and the one way a fit forks and seeds torch's random state."""

from __future__ import annotations

import contextlib

import torch

from .workers import (
    auto_cuda_device,
    rotated_visible_devices,
    worker_index,
    worker_threads,
)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available (in a worker process of a parallel
    search, that worker's round-robin share of the visible GPUs, see
    ``workers``); anything else must be usable here."""
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        index = worker_index()
        rotated = index is not None and rotated_visible_devices()
        return auto_cuda_device(torch.cuda.device_count(), index, rotated)
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use "
            "device='auto' or 'cpu'."
        )
    return device


def cap_worker_threads() -> None:
    """In a Dask worker, at most its share of the cores for torch (loky
    workers get theirs from joblib's environment)."""
    limit = worker_threads()
    if limit is not None and torch.get_num_threads() > limit:
        torch.set_num_threads(limit)


def is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def resolve_precision(precision: str, device: str) -> str:
    """"auto": bf16 autocast on CUDA devices that support it, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if is_cuda(device) and torch.cuda.is_bf16_supported():
        return "bf16"
    return "32"


def autocast(precision: str, device: str):
    """The autocast context of ``precision`` ("32": none)."""
    if precision not in _AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST_DTYPES[precision])


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Autocast outputs (fp16/bf16) as float32; float32/float64 unchanged."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


def to_device(x, device: str, channels_last: bool = False):
    """A batch on ``device`` (non-blocking from pinned memory), image batches
    in the channels_last memory format when asked."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@contextlib.contextmanager
def fork_rng(device: str = "cpu"):
    """Run a block without consuming the caller's random numbers (CPU and,
    on CUDA, the device's generator)."""
    devices = [torch.device(device).index or 0] if is_cuda(device) else []
    with torch.random.fork_rng(devices=devices):
        yield


@contextlib.contextmanager
def seeded(seed: int, device: str):
    """Seed torch for one fit without disturbing the caller's global RNG."""
    with fork_rng(device):
        torch.manual_seed(seed)
        yield
