"""Segments and their materialized membership.

``segments`` holds each definition twice: ``definition`` is the canonical expression
(what evaluation parses; one spelling per meaning, so two forms of the same conditions
compare equal), and ``form`` + ``source`` keep what the caller wrote (an expression, or
the structured conditions as JSON, see `segment_forms`) to give it back unchanged.
``segment_members`` is one row per (segment, member).

Everything runs on a synchronous connection inside the caller's transaction; the hot
statements are built once with bound parameters (SQLAlchemy then reuses their compiled
form). On PostgreSQL, `lock_definitions` / `lock_definitions_shared` order definition
changes against membership changes (see `services.marketing.service.segment_membership`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from libs.storage import UtcDateTime
from services.marketing.domain.facts import UserFacts, from_json
from services.marketing.store.facts import user_facts
from services.marketing.store.tables import metadata

segments = Table(
    "segments",
    metadata,
    Column("segment_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    # The canonical expression (domain.segments.render of the compiled tree).
    Column("definition", Text, nullable=False),
    # "expression" or "conditions": the form the caller used, kept verbatim in ``source``.
    Column("form", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_by", String(128), nullable=False),
    # When every user was last evaluated (creation, update, or a sweep).
    Column("members_computed_at", UtcDateTime(), nullable=False),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", String(64), ForeignKey("segments.segment_id"), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("since", UtcDateTime(), nullable=False),
    Index("ix_segment_members_user_id", "user_id"),
)

EXPRESSION = "expression"
CONDITIONS = "conditions"


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """One row of ``segments``."""

    segment_id: str
    name: str
    description: str
    definition: str
    form: str
    source: str
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    members_computed_at: datetime


_s, _m, _f = segments.c, segment_members.c, user_facts.c
_ADVISORY_KEY = 0x7365676D656E74  # "segment"
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(:k)")
_GET = select(segments).where(_s.segment_id == bindparam("segment_id"))
_PAGE = select(segments).where(_s.segment_id > bindparam("after")).order_by(_s.segment_id).limit(bindparam("limit"))
_DEFINITIONS = select(_s.segment_id, _s.version, _s.definition)
_INSERT = insert(segments)
_UPDATE = (
    update(segments)
    .where(_s.segment_id == bindparam("w_segment_id"), _s.version == bindparam("w_version"))
    .values(
        name=bindparam("v_name"),
        description=bindparam("v_description"),
        definition=bindparam("v_definition"),
        form=bindparam("v_form"),
        source=bindparam("v_source"),
        version=bindparam("v_version"),
        updated_at=bindparam("v_updated_at"),
        updated_by=bindparam("v_updated_by"),
    )
)
_COMPUTED = (
    update(segments)
    .where(_s.segment_id == bindparam("w_segment_id"), _s.members_computed_at < bindparam("v_at"))
    .values(members_computed_at=bindparam("v_at"))
)
_MEMBERS = select(_m.user_id).where(_m.segment_id == bindparam("segment_id"))
_MEMBER_PAGE = (
    select(_m.user_id)
    .where(_m.segment_id == bindparam("segment_id"), _m.user_id > bindparam("after"))
    .order_by(_m.user_id)
    .limit(bindparam("limit"))
)
_MEMBER_COUNT = select(func.count()).select_from(segment_members).where(_m.segment_id == bindparam("segment_id"))
_ADD_MEMBER = insert(segment_members)
_USERS_SEGMENTS = select(_m.user_id, _m.segment_id).where(_m.user_id.in_(bindparam("user_ids", expanding=True)))
_REMOVE_MEMBER = delete(segment_members).where(
    _m.segment_id == bindparam("w_segment_id"), _m.user_id == bindparam("w_user_id")
)
_FACTS_PAGE = (
    select(_f.user_id, _f.facts).where(_f.user_id > bindparam("after")).order_by(_f.user_id).limit(bindparam("limit"))
)
_USER_COUNT = select(func.count()).select_from(user_facts)
_FACTS_SAMPLE = select(_f.facts).order_by(func.random()).limit(bindparam("limit"))


def lock_definitions(conn: Connection) -> None:
    """Take the segment definitions' lock exclusively until the transaction ends
    (PostgreSQL; SQLite write transactions are serialized already): for changes of
    definitions and sweeps of membership.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"k": _ADVISORY_KEY})


def lock_definitions_shared(conn: Connection) -> None:
    """Take the segment definitions' lock in shared mode until the transaction ends
    (PostgreSQL): membership changes of one user, which may run side by side.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_SHARED, {"k": _ADVISORY_KEY})


def _segment(row: Row[Any]) -> StoredSegment:
    return StoredSegment(
        row.segment_id,
        row.name,
        row.description,
        row.definition,
        row.form,
        row.source,
        int(row.version),
        row.created_at,
        row.updated_at,
        row.created_by,
        row.updated_by,
        row.members_computed_at,
    )


def get(conn: Connection, segment_id: str) -> StoredSegment | None:
    """The segment ``segment_id``, or None."""
    row = conn.execute(_GET, {"segment_id": segment_id}).first()
    return None if row is None else _segment(row)


def page(conn: Connection, after: str, limit: int) -> list[StoredSegment]:
    """Up to ``limit`` segments with ids after ``after``, in id order."""
    return [_segment(row) for row in conn.execute(_PAGE, {"after": after, "limit": limit})]


def definitions(conn: Connection) -> dict[str, tuple[int, str]]:
    """Every segment's version and canonical definition, by id."""
    return {row.segment_id: (int(row.version), row.definition) for row in conn.execute(_DEFINITIONS)}


def insert_segment(conn: Connection, segment: StoredSegment) -> None:
    """Store a new segment (its id must be free)."""
    conn.execute(
        _INSERT,
        {
            "segment_id": segment.segment_id,
            "name": segment.name,
            "description": segment.description,
            "definition": segment.definition,
            "form": segment.form,
            "source": segment.source,
            "version": segment.version,
            "created_at": segment.created_at,
            "updated_at": segment.updated_at,
            "created_by": segment.created_by,
            "updated_by": segment.updated_by,
            "members_computed_at": segment.members_computed_at,
        },
    )


def update_segment(conn: Connection, segment: StoredSegment, expected_version: int) -> bool:
    """Replace the segment's name, description, definition and version if it is still at
    ``expected_version``; whether it was.
    """
    params = {
        "w_segment_id": segment.segment_id,
        "w_version": expected_version,
        "v_name": segment.name,
        "v_description": segment.description,
        "v_definition": segment.definition,
        "v_form": segment.form,
        "v_source": segment.source,
        "v_version": segment.version,
        "v_updated_at": segment.updated_at,
        "v_updated_by": segment.updated_by,
    }
    return bool(conn.execute(_UPDATE, params).rowcount)


def mark_computed(conn: Connection, segment_ids: Iterable[str], at: datetime) -> None:
    """Record that every user was evaluated for these segments at ``at`` (never moves back)."""
    rows = [{"w_segment_id": segment_id, "v_at": at} for segment_id in sorted(segment_ids)]
    if rows:
        conn.execute(_COMPUTED, rows)


def segments_of_users(conn: Connection, user_ids: Sequence[str]) -> dict[str, set[str]]:
    """The segments each of these users is a member of (materialized; users in no segment are left out)."""
    out: dict[str, set[str]] = {}
    if not user_ids:
        return out
    for user_id, segment_id in conn.execute(_USERS_SEGMENTS, {"user_ids": list(user_ids)}).all():
        out.setdefault(user_id, set()).add(segment_id)
    return out


def members(conn: Connection, segment_id: str) -> set[str]:
    """Every member of a segment."""
    return {row.user_id for row in conn.execute(_MEMBERS, {"segment_id": segment_id})}


def member_page(conn: Connection, segment_id: str, after: str, limit: int) -> list[str]:
    """Up to ``limit`` members of a segment with user ids after ``after``, in order."""
    params = {"segment_id": segment_id, "after": after, "limit": limit}
    return [row.user_id for row in conn.execute(_MEMBER_PAGE, params)]


def member_count(conn: Connection, segment_id: str) -> int:
    """How many members a segment has."""
    return int(conn.execute(_MEMBER_COUNT, {"segment_id": segment_id}).scalar_one())


def add_members(conn: Connection, segment_id: str, user_ids: Iterable[str], since: datetime) -> None:
    """Make these users members (none of them may be one already)."""
    rows = [{"segment_id": segment_id, "user_id": user_id, "since": since} for user_id in sorted(user_ids)]
    if rows:
        conn.execute(_ADD_MEMBER, rows)


def remove_members(conn: Connection, segment_id: str, user_ids: Iterable[str]) -> None:
    """End these users' membership."""
    rows = [{"w_segment_id": segment_id, "w_user_id": user_id} for user_id in sorted(user_ids)]
    if rows:
        conn.execute(_REMOVE_MEMBER, rows)


def add_memberships(conn: Connection, pairs: Iterable[tuple[str, str]], since: datetime) -> None:
    """`add_members` for (segment, user) pairs of several segments, in one statement."""
    rows = [{"segment_id": segment_id, "user_id": user_id, "since": since} for segment_id, user_id in sorted(pairs)]
    if rows:
        conn.execute(_ADD_MEMBER, rows)


def remove_memberships(conn: Connection, pairs: Iterable[tuple[str, str]]) -> None:
    """`remove_members` for (segment, user) pairs of several segments, in one statement."""
    rows = [{"w_segment_id": segment_id, "w_user_id": user_id} for segment_id, user_id in sorted(pairs)]
    if rows:
        conn.execute(_REMOVE_MEMBER, rows)


# Reads of the facts store in the shapes membership needs (pages after a cursor, random
# samples); the facts themselves are `store.facts`'s to write.


def facts_page(conn: Connection, after: str, limit: int) -> list[UserFacts]:
    """Up to ``limit`` users' facts with user ids after ``after``, in user id order."""
    rows = conn.execute(_FACTS_PAGE, {"after": after, "limit": limit})
    return [from_json(orjson.loads(row.facts)) for row in rows]


def user_count(conn: Connection) -> int:
    """How many users have facts (the users marketing knows)."""
    return int(conn.execute(_USER_COUNT).scalar_one())


def sample_facts(conn: Connection, size: int) -> list[UserFacts]:
    """The facts of ``size`` users drawn uniformly at random (a full scan: for previews)."""
    return [from_json(orjson.loads(row.facts)) for row in conn.execute(_FACTS_SAMPLE, {"limit": size})]
