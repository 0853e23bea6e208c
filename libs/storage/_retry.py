"""Retrying a whole transaction that PostgreSQL aborted to resolve a conflict."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# serialization_failure, deadlock_detected: the transaction was rolled back as a whole and
# may simply run again.
_CONFLICTS = frozenset({"40001", "40P01"})


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL aborting a transaction over a conflict with another."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICTS


async def retry_conflicts(run: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """``run()`` (one whole transaction), again after a short random pause when the
    database aborted it over a conflict; other errors, and the last conflict, propagate.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except DBAPIError as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 — jitter, not security
    raise AssertionError("unreachable")
