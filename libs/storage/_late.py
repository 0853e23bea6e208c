"""Statements a transaction runs last: the ones that take contended locks.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

Step = Callable[[Connection], None]

_KEY = "furima_late_steps"


@contextmanager
def late_steps(conn: Connection) -> Iterator[None]:
    """Run the steps deferred inside the block when it ends without an error: the late
    ones in the order they came, then the last ones. An error raised by a step propagates
    (the caller's transaction or savepoint must roll back, as for any statement).
    """
    outer = conn.info.get(_KEY)
    late: list[Step] = []
    last: list[Step] = []
    conn.info[_KEY] = (late, last)
    try:
        yield
    finally:
        # The connection's info outlives the transaction (the pool keeps it): never leave
        # a finished unit's lists behind, and let steps run in the enclosing scope.
        if outer is None:
            conn.info.pop(_KEY, None)
        else:
            conn.info[_KEY] = outer
    for step in (*late, *last):
        step(conn)


def run_late(conn: Connection, step: Step, *, last: bool = False) -> None:
    """Defer ``step`` to the end of the enclosing `late_steps` unit, or run it now when
    there is none.
    """
    unit: tuple[list[Step], list[Step]] | None = conn.info.get(_KEY)
    if unit is None:
        step(conn)
        return
    unit[1 if last else 0].append(step)
