"""Statements a transaction runs last: the ones that take contended locks, and the rows
that are only appended.

A row lock or an advisory lock is held until the transaction ends. A statement that
locks a row every transaction wants (a hot balance) or a lock every writer takes (the
outbox's order) should therefore run as late as possible: then the lock is held for that
statement and the commit, not for every round trip after it. On PostgreSQL, with the
event loop busy, each round trip can wait milliseconds for its turn, and a lock held
across four of them serializes the whole service.

``with late_steps(conn):`` opens a unit (an idempotent call's effect); inside it,
``run_late(conn, step)`` defers ``step`` to the end of the unit, after everything else,
and ``run_late(conn, step, last=True)`` after the other late steps. Outside a unit a
step runs at once. A unit that raises runs none of its steps.

Units nest (a group of calls in one transaction, each call in a savepoint of its own).
``gather_late(conn, key, item, flush)`` is for rows that are only appended and never
read back in the transaction (events, idempotency records): the items of one key are
written by one ``flush(conn, items)`` at the end of the outermost unit, so a group of
calls pays one statement per key instead of one per call. They take no contended lock,
so they are written before the late steps (or among the last ones, with ``last=True``).
An inner unit that ends without an error hands its gathered items to the unit around
it; one that raises drops them, as its savepoint drops its rows. A statement that must
see a key's items (a balance read, after balance moves were gathered) calls
``settle_late(conn, key)`` first, which writes the items so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

Step = Callable[[Connection], None]
Flush = Callable[[Connection, Sequence[Any]], None]

_KEY = "furima_late_steps"


@dataclass
class _Unit:
    outer: _Unit | None = None
    late: list[Step] = field(default_factory=list)
    # The last steps and, at the place of its first item, each gathered key of the last.
    last: list[Step | str] = field(default_factory=list)
    # The gathered keys written before the late steps, in the order they came.
    first: list[str] = field(default_factory=list)
    # key -> (the items so far, their flush, whether it runs with the last steps)
    gathered: dict[str, tuple[list[Any], Flush, bool]] = field(default_factory=dict)

    def gather(self, key: str, items: Sequence[Any], flush: Flush, last: bool) -> None:
        if key not in self.gathered:
            self.gathered[key] = ([], flush, last)
            (self.last if last else self.first).append(key)
        self.gathered[key][0].extend(items)

    def run(self, conn: Connection, *, gathered: bool) -> None:
        for entry in (*(self.first if gathered else ()), *self.late, *self.last):
            if not isinstance(entry, str):
                entry(conn)
            elif gathered:
                items, flush, _ = self.gathered[entry]
                if items:  # none when `settle_late` wrote them already
                    flush(conn, items)


@contextmanager
def late_steps(conn: Connection) -> Iterator[None]:
    """Run the steps deferred inside the block when it ends without an error: the late
    ones in the order they came, then the last ones. Gathered items are handed to the
    enclosing unit when there is one; in the outermost unit they are written first (they
    take no contended lock), or in their place among the last steps with ``last=True``.
    An error raised by a step propagates (the caller's transaction or savepoint must roll
    back, as for any statement).
    """
    outer: _Unit | None = conn.info.get(_KEY)
    unit = _Unit(outer)
    conn.info[_KEY] = unit
    try:
        yield
    finally:
        # The connection's info outlives the transaction (the pool keeps it): never leave
        # a finished unit behind, and let steps run in the enclosing scope.
        if outer is None:
            conn.info.pop(_KEY, None)
        else:
            conn.info[_KEY] = outer
    unit.run(conn, gathered=outer is None)
    if outer is not None:
        # Only once this unit's own steps went through: a refused one drops its items.
        for key, (items, flush, last) in unit.gathered.items():
            outer.gather(key, items, flush, last)


def run_late(conn: Connection, step: Step, *, last: bool = False) -> None:
    """Defer ``step`` to the end of the innermost `late_steps` unit, or run it now when
    there is none.
    """
    unit: _Unit | None = conn.info.get(_KEY)
    if unit is None:
        step(conn)
        return
    (unit.last if last else unit.late).append(step)


def gather_late(conn: Connection, key: str, item: Any, flush: Flush, *, last: bool = False) -> None:
    """Append ``item`` to the rows of ``key`` that ``flush(conn, items)`` writes at the end
    of the outermost `late_steps` unit (before its late steps, or among the last ones
    with ``last``), or write it now when there is no unit. One ``key`` must always come
    with the same ``flush``.
    """
    unit: _Unit | None = conn.info.get(_KEY)
    if unit is None:
        flush(conn, [item])
        return
    unit.gather(key, [item], flush, last)


def settle_late(conn: Connection, key: str) -> None:
    """Write the items of ``key`` gathered so far, now: a statement about to read what
    they write (a balance) must see them. The enclosing units' items go first (earlier
    calls of a group), then this unit's.

    Items of an enclosing unit may only be written where no savepoint can roll them back
    on its own (that savepoint would lose them): a group that gives each call a savepoint
    opens no unit around the calls. Settling them inside a savepoint is refused.
    """
    chain: list[_Unit] = []
    unit: _Unit | None = conn.info.get(_KEY)
    while unit is not None:
        chain.append(unit)
        unit = unit.outer
    for n, unit in enumerate(reversed(chain)):
        found = unit.gathered.get(key)
        if found is None or not found[0]:
            continue
        items, flush, _ = found
        if n < len(chain) - 1 and conn.in_nested_transaction():
            raise RuntimeError(f"settling {key!r} items of an enclosing unit inside a savepoint could lose them")
        flush(conn, list(items))
        items.clear()
