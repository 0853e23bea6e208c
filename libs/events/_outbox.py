"""The transactional outbox.

An event is inserted in the same transaction as the change it describes, so it exists
if and only if the change committed. Its ``sequence`` is the consumers' cursor. On
PostgreSQL a transaction-scoped advisory lock serializes appends, so sequences become
visible in commit order and a reader never skips a late-committing lower sequence. Every
writer takes that lock, so it must be held briefly: the insert takes it in the same
statement, and inside a `libs.storage.late_steps` unit the insert runs after every other
gathered statement, just before the commit, once for all the unit's events (a group of
calls takes it once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Insert,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
)

from libs.clock import Clock, SystemClock
from libs.ids import new_ulid
from libs.storage import Database, Prepared, Transaction, UtcDateTime, big_id, gather_late

_ADVISORY_LOCK_KEY = 0x6F7574626F78  # "outbox"
_COLUMNS = ("event_id", "type", "aggregate_id", "payload", "occurred_at")


def outbox_table(metadata: MetaData) -> Table:
    """Declare the ``outbox`` table in a service's metadata."""
    return Table(
        "outbox",
        metadata,
        Column("sequence", big_id(), primary_key=True, autoincrement=True),
        Column("event_id", String(40), nullable=False, unique=True),
        Column("type", String(200), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("occurred_at", UtcDateTime(), nullable=False),
        Index("ix_outbox_type_sequence", "type", "sequence"),
    )


@dataclass(frozen=True)
class StoredEvent:
    """An event as it sits in the outbox."""

    sequence: int
    event_id: str
    type: str
    aggregate_id: str
    payload: bytes
    occurred_at: datetime


# The rank of events among a unit's last gathered statements (see `gather_late`).
OUTBOX_RANK = 100


class Outbox:
    """Appends events inside a transaction and reads them back in order."""

    def __init__(self, table: Table, *, clock: Clock | None = None) -> None:
        self.table = table
        self._clock = clock or SystemClock()
        self._waiters: set[asyncio.Event] = set()
        # One statement object, values as parameters: SQLAlchemy then reuses its cache key
        # and compiled form instead of rebuilding them per event (a hot path).
        self._insert = insert(table)
        self._locked_insert = _locked_insert(table)
        # The synchronous path (group commits) runs them straight on the DBAPI cursor.
        self._prepared = {
            "sqlite": Prepared(self._insert, column_keys=_COLUMNS),
            "postgresql": Prepared(self._locked_insert),
        }
        self._gather_key = f"outbox:{table.name}"

    def _statement(self, dialect: str) -> Insert:
        return self._locked_insert if dialect == "postgresql" else self._insert

    async def append(self, tx: Transaction, aggregate_id: str, payload: Message) -> str:
        """Write ``payload`` as an event of type ``payload.DESCRIPTOR.full_name``; returns its id."""
        row = self.row(aggregate_id, payload)
        await tx.conn.execute(self._statement(tx.dialect), row)
        tx.after_commit(self.notify)
        return str(row["event_id"])

    def append_sync(self, conn: Connection, aggregate_id: str, payload: Message) -> str:
        """`append` on a synchronous connection (`Database.write_sync`). In a `late_steps`
        unit the row is gathered and written last, with the other events of the unit and
        of the units inside it (a group of calls appends its events in one statement); the
        caller calls `notify` once the transaction has committed.
        """
        row = self.row(aggregate_id, payload)
        # After every other gathered statement: its lock is the one every writer takes.
        gather_late(conn, self._gather_key, row, self.append_rows_sync, last=True, rank=OUTBOX_RANK)
        return str(row["event_id"])

    def append_rows_sync(self, conn: Connection, rows: Sequence[dict[str, object]]) -> None:
        """Append several events made with `row`, in order (a batch's events); the caller
        calls `notify` once the transaction has committed.
        """
        self._prepared[conn.dialect.name].run_many(conn, rows)

    def row(self, aggregate_id: str, payload: Message) -> dict[str, object]:
        """The outbox row of an event, for `append_rows_sync`."""
        return {
            "event_id": new_ulid("evt_"),
            "type": payload.DESCRIPTOR.full_name,
            "aggregate_id": aggregate_id,
            "payload": payload.SerializeToString(),
            "occurred_at": self._clock.now(),
        }

    async def read(
        self, db: Database, after: int, types: list[str] | None = None, limit: int = 500
    ) -> list[StoredEvent]:
        """Events with ``sequence > after``, oldest first."""
        t = self.table
        query = select(t).where(t.c.sequence > after).order_by(t.c.sequence).limit(limit)
        if types:
            query = query.where(t.c.type.in_(types))
        async with db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [StoredEvent(r.sequence, r.event_id, r.type, r.aggregate_id, r.payload, r.occurred_at) for r in rows]

    def notify(self) -> None:
        """Wake every stream waiting for new events (called after a commit)."""
        for waiter in self._waiters:
            waiter.set()

    async def wait(self, at_most: float) -> None:
        """Wait until `notify` is called or ``at_most`` seconds pass (other processes only poll)."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with the wake-up, leaving a stream that never stops.
        try:
            async with asyncio.timeout(at_most):
                await waiter.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


def _locked_insert(table: Table) -> Insert:
    """``INSERT INTO outbox ... SELECT <the row> FROM (SELECT pg_advisory_xact_lock(k))``:
    the lock is taken, in the same round trip, before the row draws its sequence.
    """
    lock = select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY).label("locked")).subquery("outbox_lock")
    row = select(*(bindparam(name, type_=table.c[name].type) for name in _COLUMNS)).select_from(lock)
    return insert(table).from_select(list(_COLUMNS), row)
