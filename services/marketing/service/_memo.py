"""Reads done once per transaction instead of once per event.

A batch of events is recorded in one transaction and every event asks the same
questions (which campaigns run on this type, which segments exist, which experiments
convert on this type); within one transaction the answers cannot change except through
that transaction itself, so they are computed once and kept until the transaction ends.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

V = TypeVar("V")


class TransactionMemo(Generic[V]):
    """Values keyed by a hashable, remembered for the current transaction of a connection."""

    def __init__(self) -> None:
        self._transaction: weakref.ref[Any] | None = None
        self._values: dict[Hashable, V] = {}

    def get(self, conn: Connection, key: Hashable, compute: Callable[[], V]) -> V:
        """The value for ``key`` in ``conn``'s current transaction (computed on first use)."""
        current = conn.get_transaction()
        if current is None:
            return compute()  # no transaction to scope it to
        if self._transaction is None or self._transaction() is not current:
            self._transaction = weakref.ref(current)
            self._values = {}
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]
