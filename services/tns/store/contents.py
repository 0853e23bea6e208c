"""Moderated content: the latest text of each piece and its status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.domain.content import Content, ContentKind
from services.tns.domain.moderation import ContentStatus, Decision
from services.tns.store._sql import upsert, upsert_statement
from services.tns.store.tables import contents


@dataclass(frozen=True)
class StoredContent:
    """A piece of content as TnS last saw it."""

    content: Content
    status: ContentStatus
    status_policy: str
    latest_decision_id: str
    decided_at: datetime


def _row(row: Row[tuple[object, ...]]) -> StoredContent:
    m = row._mapping
    return StoredContent(
        content=Content(
            kind=ContentKind(m["kind"]),
            content_id=m["content_id"],
            author_id=m["author_id"],
            title=m["title"],
            body=m["body"],
            category=m["category"],
            price=m["price_amount"],
            currency=m["currency"],
        ),
        status=ContentStatus(m["status"]),
        status_policy=m["status_policy"],
        latest_decision_id=m["latest_decision_id"],
        decided_at=m["decided_at"],
    )


_UPDATED = (
    "author_id",
    "title",
    "body",
    "category",
    "price_amount",
    "currency",
    "status",
    "status_policy",
    "latest_decision_id",
    "decided_at",
)


def _decided_rows(decisions: Sequence[Decision]) -> list[dict[str, object]]:
    return [
        {
            "kind": d.content.kind.value,
            "content_id": d.content.content_id,
            "author_id": d.content.author_id,
            "title": d.content.title,
            "body": d.content.body,
            "category": d.content.category,
            "price_amount": d.content.price,
            "currency": d.content.currency,
            "status": d.status.value,
            "status_policy": d.policy if d.status is not ContentStatus.VISIBLE else "",
            "latest_decision_id": d.decision_id,
            "decided_at": d.decided_at,
        }
        for d in decisions
    ]


async def save_decided(conn: AsyncConnection, decisions: Sequence[Decision]) -> None:
    """Store the content of each decision with the status the decision gives it."""
    await upsert(conn, contents, _decided_rows(decisions), ("kind", "content_id"), _UPDATED)


def save_decided_sync(conn: Connection, decisions: Sequence[Decision]) -> None:
    """`save_decided` on a synchronous connection (`Database.write_sync`)."""
    if decisions:
        statement = upsert_statement(conn.dialect.name, contents, ("kind", "content_id"), _UPDATED)
        conn.execute(statement, _decided_rows(decisions))


async def get(conn: AsyncConnection, kind: ContentKind, content_id: str) -> StoredContent | None:
    """The content, or None when TnS never saw it."""
    row = (
        await conn.execute(select(contents).where(contents.c.kind == kind.value, contents.c.content_id == content_id))
    ).first()
    return _row(row) if row else None


async def set_status(
    conn: AsyncConnection, kind: ContentKind, content_id: str, status: ContentStatus, policy: str = ""
) -> None:
    """Change the status of a piece of content."""
    await conn.execute(
        update(contents)
        .where(contents.c.kind == kind.value, contents.c.content_id == content_id)
        .values(status=status.value, status_policy=policy if status is not ContentStatus.VISIBLE else "")
    )


async def set_latest_decision(conn: AsyncConnection, kind: ContentKind, content_id: str, decision_id: str) -> None:
    """Point the content at a newer decision about the same text (a re-scan)."""
    await conn.execute(
        update(contents)
        .where(contents.c.kind == kind.value, contents.c.content_id == content_id)
        .values(latest_decision_id=decision_id)
    )


async def decided_since(
    conn: AsyncConnection, since: datetime, after: tuple[str, str], limit: int
) -> list[StoredContent]:
    """Content last decided at or after ``since``, in key order after ``after``."""
    rows = await conn.execute(
        select(contents)
        .where(contents.c.decided_at >= since, tuple_(contents.c.kind, contents.c.content_id) > tuple_(*after))
        .order_by(contents.c.kind, contents.c.content_id)
        .limit(limit)
    )
    return [_row(r) for r in rows]
