"""The deadline of the RPC being served, so outgoing calls never outlive it."""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_deadline: ContextVar[float | None] = ContextVar("furima_deadline", default=None)


def set_deadline(time_remaining: float | None) -> Token[float | None]:
    """Record the current call's deadline (``time_remaining`` seconds from now)."""
    return _deadline.set(None if time_remaining is None else time.monotonic() + time_remaining)


def reset_deadline(token: Token[float | None]) -> None:
    """Undo `set_deadline`."""
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (None when it has none)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def outgoing_timeout(requested: float | None) -> float | None:
    """The timeout for an outgoing call: the smaller of what was asked and what is left."""
    left = remaining()
    if left is None:
        return requested
    left = max(left, 0.001)
    return left if requested is None else min(requested, left)
