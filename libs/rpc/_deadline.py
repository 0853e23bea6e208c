"""The deadline of the RPC being served, so outgoing calls never outlive it."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

# The servicer context of the call being served. Its deadline is read only when an
# outgoing call is made, so calls that make none pay nothing for propagation.
_serving: ContextVar[Any] = ContextVar("furima_serving", default=None)


def set_serving(context: Any) -> Token[Any]:
    """Record the servicer context of the call being handled in this task."""
    return _serving.set(context)


def reset_serving(token: Token[Any]) -> None:
    """Undo `set_serving`."""
    _serving.reset(token)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (None when it has none)."""
    context = _serving.get()
    if context is None:
        return None
    left = context.time_remaining()
    return None if left is None else float(left)


def outgoing_timeout(requested: float | None) -> float | None:
    """The timeout for an outgoing call: the smaller of what was asked and what is left."""
    left = remaining()
    if left is None:
        return requested
    left = max(left, 0.001)
    return left if requested is None else min(requested, left)
