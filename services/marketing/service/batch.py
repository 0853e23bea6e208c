"""One transaction's batch of events, shared by the intake and its listeners.

Recording events one statement at a time costs more in the database layer than the
work itself (SQLAlchemy spends ~0.1 ms on each statement; an event used to need ~18).
So a batch is set-based: before the events, each listener reads what the batch's
users will need in one statement per kind (`EventListener.prepare`); while the events
are applied, listeners decide in memory and stage their rows here; at the end the
staged rows are written with one ``executemany`` per statement, then the outbox rows,
all before the commit. Whatever a listener reads later in the same batch must come from
its own prepared state, updated as it stages: staged rows are not in the database yet.

Write order at the flush is fixed, so two PostgreSQL transactions take their row locks
in the same order: the listeners' flush callbacks in the order they were registered
(first listener first), then the staged inserts in the order their statements were
first used, then the outbox (its advisory lock last, held only until the commit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Connection, Executable

from libs.events import Outbox
from services.marketing.domain.facts import UserFacts

T = TypeVar("T")


class Batch:
    """The events of one transaction: their users' facts, what listeners prepared, and the
    rows waiting to be written.
    """

    def __init__(self, conn: Connection, now: datetime, facts: Iterable[UserFacts], outbox: Outbox) -> None:
        self.conn = conn
        self.now = now
        self.facts: dict[str, UserFacts] = {f.user_id: f for f in facts}
        self.memberships: dict[str, set[str]] = {}
        """The segments each user is in after their latest event of the batch so far, as
        the segment maintainer (the first listener) found them; others reuse the answer.
        """
        self._outbox = outbox
        self._state: dict[object, Any] = {}
        self._rows: dict[Executable, list[dict[str, Any]]] = {}
        self._events: list[dict[str, object]] = []
        self._before_rows: list[Callable[[Connection], None]] = []

    @property
    def users(self) -> list[str]:
        """The batch's user ids, in order (the order rows are locked in)."""
        return sorted(self.facts)

    def state(self, owner: object, create: Callable[[], T]) -> T:
        """``owner``'s state for this batch (created on first use)."""
        found = self._state.get(owner)
        if found is None:
            found = self._state[owner] = create()
        return found  # type: ignore[no-any-return]

    def stage(self, statement: Executable, row: dict[str, Any]) -> None:
        """Write ``row`` with ``statement`` at the flush (one executemany per statement)."""
        rows = self._rows.get(statement)
        if rows is None:
            rows = self._rows[statement] = []
        rows.append(row)

    def emit(self, aggregate_id: str, payload: Message) -> None:
        """Append an outbox event at the flush (in the order emitted)."""
        self._events.append(self._outbox.row(aggregate_id, payload))

    def before_rows(self, write: Callable[[Connection], None]) -> None:
        """Run ``write`` at the flush, before the staged rows (a listener's own set-based
        writes: net membership changes, budget reservations, counters).
        """
        self._before_rows.append(write)

    def flush(self) -> None:
        """Write everything staged, in the documented order; the batch can be used again."""
        for write in self._before_rows:
            write(self.conn)
        self._before_rows.clear()
        for statement, rows in self._rows.items():
            self.conn.execute(statement, rows)
        self._rows.clear()
        if self._events:
            self._outbox.append_rows_sync(self.conn, self._events)
            self._events = []
        self._state.clear()
        self.memberships.clear()
