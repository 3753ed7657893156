"""The one batched-inference loop: every predict, embedding and cached
activation goes through ``run_batches``, so they share the device transfer,
precision, memory format and eval-mode handling."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .._deadline import check_deadline
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
    outputs, worker_error = [], None
    with torch.inference_mode(), autocast(batching.precision, batching.device):
        try:
            for X, _ in loader:
                check_deadline("a pass of the network over the data")
                X = to_device(X, batching.device, batching.channels_last)
                outputs.append(fn(X).contiguous().cpu())
        except Exception as exc:
            worker_error = unwrap_worker_error(exc)
            if worker_error is exc:
                raise
    if worker_error is not None:
        raise worker_error  # outside the handler: not chained to torch's wrapper
    return torch.cat(outputs)


# torch._utils.ExceptionWrapper.reraise: "Caught ValueError in DataLoader
# worker process 1.\nOriginal Traceback (most recent call last): ..."
_WORKER_HEADER = re.compile(r"Caught (?P<type>\w+) in [^\n]*\.\nOriginal ")
_TRACEBACK_START = "Traceback (most recent call last):\n"


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """The error a DataLoader worker (or pin-memory thread) raised, as the
    user would have seen it without workers: its own type and message.

    torch re-raises such errors in the main process with a message made of
    a header and the worker's whole traceback; the original message is the
    end of that traceback. Returns ``exc`` itself when it is not such an
    error, or when its message cannot be recovered. Run with ``n_jobs=1``
    to see the worker-side traceback in the main process.

    When a new error is returned, ``exc``'s traceback is dropped: torch's
    wrapper is in a reference cycle with it that holds the DataLoader
    iterator, whose worker processes would otherwise live until the next
    garbage collection (which then waits up to 5 s for each). Raise the
    result after the ``except`` block, not inside it, so that it does not
    chain to ``exc`` (see ``run_batches``).
    """
    original = _original_error(exc)
    if original is not exc:
        exc.__traceback__ = None
    return original


def _original_error(exc: BaseException) -> BaseException:
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    header = _WORKER_HEADER.match(text)
    message = None if header is None else _exception_message(text[header.end():])
    if message is None:
        return exc
    if type(exc).__name__ != header["type"]:
        # torch raised RuntimeError: the original type needs other arguments
        return RuntimeError(f"{header['type']}: {message}")
    try:
        return type(exc)(message)
    except TypeError:  # a constructor that takes other arguments
        return exc


def _exception_message(traceback_text: str) -> str | None:
    """The message of the last exception in a formatted traceback: the text
    after "TypeName: " on the first unindented line after its last frame."""
    start = traceback_text.rfind(_TRACEBACK_START)
    if start < 0:
        return None
    lines = traceback_text[start + len(_TRACEBACK_START):].splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith(" "):
            first = line.partition(": ")[2]
            return "\n".join([first, *lines[index + 1:]]).rstrip("\n")
    return None
