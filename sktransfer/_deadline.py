"""A wall-clock deadline for the fits run inside a time budget.

``with deadline(at):`` makes the work started in the block (in this thread
or task) check the clock: every training batch, every inference batch and
every step of the exact probe's solver. Past ``at`` (a ``time.time()``
value, so that it means the same in worker processes on this host) it
raises ``BudgetExhausted`` (the default: the search that set it discards
the fit). With ``finish=True`` a network fit ends instead as a finished fit
that keeps what it learned so far, and the rest runs to its end. Torch-free.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass


class BudgetExhausted(Exception):
    """A fit reached the deadline of the time budget it runs in."""


@dataclass(frozen=True)
class Deadline:
    at: float  # time.time() when the fit must end
    finish: bool = False  # end as a finished fit instead of raising

    def remaining(self) -> float:
        return self.at - time.time()

    def passed(self) -> bool:
        return time.time() >= self.at


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "sktransfer_deadline", default=None)


@contextlib.contextmanager
def deadline(at: float | None, *, finish: bool = False):
    """Fits in the block end at ``at`` (``time.time()``); None: no deadline."""
    token = _CURRENT.set(None if at is None else Deadline(float(at), finish))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline the fits started now run under, or None."""
    return _CURRENT.get()


def check_deadline(what: str) -> None:
    """Raise ``BudgetExhausted`` when a deadline that does not ``finish``
    has passed: the work in progress (``what``) is abandoned. Cheap enough
    to call per batch or per solver step."""
    limit = _CURRENT.get()
    if limit is not None and not limit.finish and limit.passed():
        raise BudgetExhausted(f"the time budget ran out during {what}")
