"""Statements a transaction runs last, once for many calls.

A row lock or an advisory lock is held until the transaction ends. A statement that
locks a row every transaction wants (a hot balance) or a lock every writer takes (the
outbox's order) should therefore run as late as possible: then the lock is held for that
statement and the commit, not for every round trip after it. On PostgreSQL, with the
event loop busy, each round trip can wait milliseconds for its turn, and a lock held
across four of them serializes the whole service. And rows that are only appended
(events, idempotency records) need not be written one statement per call.

``with late_steps(conn):`` opens a unit (an idempotent call's effect, or a group of calls
in one transaction). Inside it, ``gather_late(conn, key, item, flush)`` adds ``item`` to
the rows of ``key``, which one ``flush(conn, items)`` writes at the end of the outermost
unit. Keys are written in ranks: the plain ones first (they take no contended lock),
then those gathered with ``last=True``, by ``rank`` (the outbox's events after the
balance moves), each rank in the order its keys came. Outside a unit an item is written
at once.

Units nest: each call of a group opens its own inside the group's. An inner unit that
ends without an error hands its items to the unit around it; one that raises drops
them, as its savepoint (or the group's fallback) drops its rows. A statement that must
see a key's rows (a balance read, after balance moves were gathered) calls
``settle_late(conn, key)`` first, which writes the items so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

Flush = Callable[[Connection, Sequence[Any]], None]

_KEY = "furima_late_steps"


@dataclass
class _Gathered:
    flush: Flush
    order: int
    """0 for plain keys, 1 + rank for last ones: keys are written by it (stable)."""
    items: list[Any] = field(default_factory=list)


@dataclass
class _Unit:
    outer: _Unit | None = None
    # In the order the keys came (dicts keep it); written sorted by their order.
    gathered: dict[str, _Gathered] = field(default_factory=dict)

    def gather(self, key: str, items: Sequence[Any], flush: Flush, order: int) -> None:
        found = self.gathered.get(key)
        if found is None:
            found = self.gathered[key] = _Gathered(flush, order)
        found.items.extend(items)

    def write(self, conn: Connection) -> None:
        for found in sorted(self.gathered.values(), key=lambda g: g.order):
            if found.items:  # none when `settle_late` wrote them already
                found.flush(conn, found.items)


@contextmanager
def late_steps(conn: Connection) -> Iterator[None]:
    """Write the items gathered inside the block when it ends without an error (hand
    them to the enclosing unit when there is one). An error raised by a flush propagates
    (the caller's transaction or savepoint must roll back, as for any statement).
    """
    outer: _Unit | None = conn.info.get(_KEY)
    unit = _Unit(outer)
    conn.info[_KEY] = unit
    try:
        yield
    finally:
        # The connection's info outlives the transaction (the pool keeps it): never leave
        # a finished unit behind.
        if outer is None:
            conn.info.pop(_KEY, None)
        else:
            conn.info[_KEY] = outer
    if outer is None:
        unit.write(conn)
        return
    for key, found in unit.gathered.items():
        outer.gather(key, found.items, found.flush, found.order)


def gather_late(conn: Connection, key: str, item: Any, flush: Flush, *, last: bool = False, rank: int = 0) -> None:
    """Add ``item`` to the rows of ``key`` that ``flush(conn, items)`` writes at the end of
    the outermost `late_steps` unit (with the plain keys, or with ``last`` after them, a
    higher ``rank`` after a lower one whatever came first), or write it now when there
    is no unit. One ``key`` must always come with the same ``flush``, ``last`` and ``rank``.
    """
    unit: _Unit | None = conn.info.get(_KEY)
    if unit is None:
        flush(conn, [item])
        return
    unit.gather(key, [item], flush, 1 + rank if last else 0)


def settle_late(conn: Connection, key: str) -> None:
    """Write the items of ``key`` gathered so far, now: a statement about to read what
    they write (a balance) must see them. The enclosing units' items go first (earlier
    calls of a group), then this unit's.

    Items of an enclosing unit may only be written where no savepoint can roll them back
    on its own (that savepoint would lose them): a call in a savepoint of its own settles
    its own items before its unit ends. Settling them inside a savepoint is refused.
    """
    chain: list[_Unit] = []
    unit: _Unit | None = conn.info.get(_KEY)
    while unit is not None:
        chain.append(unit)
        unit = unit.outer
    for n, unit in enumerate(reversed(chain)):
        found = unit.gathered.get(key)
        if found is None or not found.items:
            continue
        if n < len(chain) - 1 and conn.in_nested_transaction():
            raise RuntimeError(f"settling {key!r} items of an enclosing unit inside a savepoint could lose them")
        found.flush(conn, list(found.items))
        found.items.clear()
