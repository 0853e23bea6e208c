"""Per-user facts (`domain.facts.UserFacts`), one JSON document per user, and the event
log that feeds them (deduplicated by event id).

Writes run on a synchronous connection inside the caller's transaction
(`Database.write_sync`), so an event, the facts it changes and whatever the change
triggers commit together.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime

import orjson
from sqlalchemy import BigInteger, Column, Connection, Index, String, Table, Text, bindparam, insert, select, update

from libs.storage import UtcDateTime
from services.marketing.domain.events import UserEvent
from services.marketing.domain.facts import UserFacts, from_json, to_document
from services.marketing.store.tables import metadata

# Every event marketing has taken in (tracked or from another service's stream), once.
events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("properties", Text, nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    # "api" (TrackEvent) or the service whose stream it came from ("id", "payments", "tns").
    Column("source", String(16), nullable=False),
    Index("ix_events_user_id_occurred_at", "user_id", "occurred_at"),
)

# The facts of one user; ``version`` grows with every change (optimistic readers).
user_facts = Table(
    "user_facts",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("facts", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

_e, _f = events.c, user_facts.c
_INSERT_EVENT = insert(events)
_EVENT = select(events).where(_e.event_id == bindparam("event_id"))
_FACTS = select(_f.facts, _f.version).where(_f.user_id == bindparam("user_id"))
_FACTS_LOCKED = _FACTS.with_for_update()
_EVENTS_IN = select(events).where(_e.event_id.in_(bindparam("event_ids", expanding=True)))
_FACTS_IN = (
    select(_f.user_id, _f.facts, _f.version)
    .where(_f.user_id.in_(bindparam("user_ids", expanding=True)))
    .order_by(_f.user_id)
)
_FACTS_IN_LOCKED = _FACTS_IN.with_for_update()
_INSERT_FACTS = insert(user_facts)
_FACTS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
_UPDATE_FACTS = (
    update(user_facts)
    .where(_f.user_id == bindparam("w_user_id"), _f.version == bindparam("w_version"))
    .values(facts=bindparam("v_facts"), version=bindparam("v_version"), updated_at=bindparam("v_updated_at"))
)


def stored_event(conn: Connection, event_id: str) -> UserEvent | None:
    """The event recorded under ``event_id``, if any."""
    row = conn.execute(_EVENT, {"event_id": event_id}).first()
    if row is None:
        return None
    return UserEvent(row.event_id, row.user_id, row.type, row.occurred_at, orjson.loads(row.properties))


def stored_events(conn: Connection, event_ids: Collection[str]) -> dict[str, UserEvent]:
    """The events recorded under any of ``event_ids``, by id (one query)."""
    if not event_ids:
        return {}
    rows = conn.execute(_EVENTS_IN, {"event_ids": sorted(event_ids)})
    return {
        row.event_id: UserEvent(row.event_id, row.user_id, row.type, row.occurred_at, orjson.loads(row.properties))
        for row in rows
    }


def record_events(conn: Connection, batch: Sequence[UserEvent], source: str, received_at: datetime) -> None:
    """Record new events in one statement (a duplicate id fails the transaction)."""
    if not batch:
        return
    conn.execute(
        _INSERT_EVENT,
        [
            {
                "event_id": event.event_id,
                "user_id": event.user_id,
                "type": event.type,
                "properties": orjson.dumps(dict(event.properties), option=orjson.OPT_SORT_KEYS).decode(),
                "occurred_at": event.occurred_at,
                "received_at": received_at,
                "source": source,
            }
            for event in batch
        ],
    )


def load(conn: Connection, user_id: str, *, lock: bool = False) -> tuple[UserFacts, int]:
    """A user's facts and their version (empty facts and version 0 for a new user);
    ``lock`` takes the row lock on PostgreSQL for a read-modify-write.
    """
    statement = _FACTS_LOCKED if lock and conn.dialect.name == "postgresql" else _FACTS
    row = conn.execute(statement, {"user_id": user_id}).first()
    if row is None:
        return UserFacts(user_id), 0
    return from_json(orjson.loads(row.facts)), int(row.version)


def dumps(facts: UserFacts) -> str:
    """The stored text of ``facts``: `to_json`'s document, encoded by orjson in one pass."""
    return orjson.dumps(to_document(facts), option=_FACTS_OPTIONS).decode()


def load_many(conn: Connection, user_ids: Collection[str], now: datetime) -> dict[str, tuple[UserFacts, int]]:
    """Several users' facts and versions, locked for the transaction, in user id order:
    an existing row is read with its row lock (PostgreSQL), a new user gets an empty row
    inserted at version 1 (which holds the key just the same). One query and at most one
    insert, whatever the number of users.
    """
    ordered = sorted(user_ids)
    statement = _FACTS_IN_LOCKED if conn.dialect.name == "postgresql" else _FACTS_IN
    found = {
        user_id: (from_json(orjson.loads(facts)), int(version))
        for user_id, facts, version in conn.execute(statement, {"user_ids": ordered}).all()
    }
    new = [UserFacts(user_id) for user_id in ordered if user_id not in found]
    if new:
        conn.execute(
            _INSERT_FACTS,
            [{"user_id": f.user_id, "facts": dumps(f), "version": 1, "updated_at": now} for f in new],
        )
        found.update((f.user_id, (f, 1)) for f in new)
    return found


def save_many(conn: Connection, changed: Sequence[tuple[UserFacts, int]], now: datetime) -> None:
    """Store facts read at their versions, in one statement per kind: a user read at
    version 0 (no row yet) is inserted, the others updated if still at their version.
    Where the driver counts the rows of a batch, a count short of the batch means another
    writer changed some first (`StaleFacts`); on PostgreSQL, whose driver does not, the
    row locks of `load_many` make that impossible.
    """
    new = [
        {"user_id": facts.user_id, "facts": dumps(facts), "version": 1, "updated_at": now}
        for facts, version in changed
        if version == 0
    ]
    if new:
        conn.execute(_INSERT_FACTS, new)
    params = [
        {
            "w_user_id": facts.user_id,
            "w_version": version,
            "v_facts": dumps(facts),
            "v_version": version + 1,
            "v_updated_at": now,
        }
        for facts, version in changed
        if version
    ]
    if not params:
        return
    result = conn.execute(_UPDATE_FACTS, params)
    if conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(params):
        raise StaleFacts(", ".join(sorted(f.user_id for f, _ in changed)))


def all_facts(conn: Connection, batch: int = 500) -> Iterator[UserFacts]:
    """Every user's facts, in user id order, read in pages (a batch recomputation)."""
    after = ""
    while True:
        rows: Sequence[tuple[str, str]] = [
            (r.user_id, r.facts)
            for r in conn.execute(
                select(_f.user_id, _f.facts).where(_f.user_id > after).order_by(_f.user_id).limit(batch)
            )
        ]
        if not rows:
            return
        for _, document in rows:
            yield from_json(orjson.loads(document))
        after = rows[-1][0]


class StaleFacts(Exception):
    """Another transaction changed the user's facts since they were read; retry."""
