"""Standings, labels and enforcement actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.domain.content import ContentKind
from services.tns.domain.enforcement import ActionKind, Label, Standing, StandingLevel
from services.tns.store._sql import upsert
from services.tns.store.tables import actions, labels, standings


@dataclass(frozen=True)
class Action:
    """One recorded enforcement action."""

    action_id: str
    user_id: str
    kind: ActionKind
    policy: str
    points: float
    content_kind: ContentKind | None
    content_id: str
    source: str
    reason: str
    created_at: datetime
    until: datetime | None = None
    reverted_at: datetime | None = None
    applied_at: datetime | None = None


def _action(row: Row[tuple[object, ...]]) -> Action:
    m = row._mapping
    return Action(
        action_id=m["id"],
        user_id=m["user_id"],
        kind=ActionKind(m["kind"]),
        policy=m["policy"],
        points=float(m["points"]),
        content_kind=ContentKind(m["content_kind"]) if m["content_kind"] else None,
        content_id=m["content_id"],
        source=m["source"],
        reason=m["reason"],
        created_at=m["created_at"],
        until=m["until"],
        reverted_at=m["reverted_at"],
        applied_at=m["applied_at"],
    )


async def add_action(conn: AsyncConnection, action: Action) -> None:
    """Record an action."""
    await conn.execute(
        insert(actions).values(
            id=action.action_id,
            user_id=action.user_id,
            kind=action.kind.value,
            policy=action.policy,
            points=action.points,
            content_kind=action.content_kind.value if action.content_kind else "",
            content_id=action.content_id,
            source=action.source,
            reason=action.reason,
            created_at=action.created_at,
            until=action.until,
            reverted_at=action.reverted_at,
            applied_at=action.applied_at,
        )
    )


async def strike_points(conn: AsyncConnection, user_id: str, window: timedelta, now: datetime) -> float:
    """The user's unreverted strike points inside the window."""
    value = await conn.scalar(
        select(func.coalesce(func.sum(actions.c.points), 0.0)).where(
            actions.c.user_id == user_id,
            actions.c.kind == ActionKind.STRIKE.value,
            actions.c.reverted_at.is_(None),
            actions.c.created_at >= now - window,
        )
    )
    return float(value or 0.0)


async def active_for_content(conn: AsyncConnection, kind: ContentKind, content_id: str) -> list[Action]:
    """Unreverted actions taken because of a piece of content."""
    rows = await conn.execute(
        select(actions).where(
            actions.c.content_kind == kind.value, actions.c.content_id == content_id, actions.c.reverted_at.is_(None)
        )
    )
    return [_action(r) for r in rows]


async def active_of_kind(conn: AsyncConnection, user_id: str, kinds: Sequence[ActionKind]) -> list[Action]:
    """The user's unreverted actions of some kinds."""
    rows = await conn.execute(
        select(actions).where(
            actions.c.user_id == user_id,
            actions.c.kind.in_([k.value for k in kinds]),
            actions.c.reverted_at.is_(None),
        )
    )
    return [_action(r) for r in rows]


async def revert(conn: AsyncConnection, action_ids: Sequence[str], at: datetime) -> None:
    """Mark actions reverted (they stay on record)."""
    if action_ids:
        await conn.execute(
            update(actions)
            .where(actions.c.id.in_(list(action_ids)), actions.c.reverted_at.is_(None))
            .values(reverted_at=at)
        )


async def page_actions(conn: AsyncConnection, user_id: str, before: str | None, limit: int) -> list[Action]:
    """The user's actions, newest first (ids are ULIDs, so they sort by time)."""
    query = select(actions).where(actions.c.user_id == user_id)
    if before:
        query = query.where(actions.c.id < before)
    rows = await conn.execute(query.order_by(actions.c.id.desc()).limit(limit))
    return [_action(r) for r in rows]


async def unapplied_identity_actions(conn: AsyncConnection, limit: int = 100) -> list[Action]:
    """Suspensions and reinstatements the ID service has not carried out yet, oldest first."""
    rows = await conn.execute(
        select(actions)
        .where(
            actions.c.kind.in_([ActionKind.SUSPEND.value, ActionKind.REINSTATE.value]), actions.c.applied_at.is_(None)
        )
        .order_by(actions.c.id)
        .limit(limit)
    )
    return [_action(r) for r in rows]


async def mark_applied(conn: AsyncConnection, action_id: str, at: datetime) -> None:
    """Record that the ID service carried out an action."""
    await conn.execute(update(actions).where(actions.c.id == action_id).values(applied_at=at))


async def get_standing(conn: AsyncConnection, user_id: str, window: timedelta, now: datetime) -> Standing:
    """The user's standing, strikes and active labels (a user TnS never acted on is in good standing)."""
    row = (await conn.execute(select(standings).where(standings.c.user_id == user_id))).first()
    label_rows = await conn.execute(select(labels).where(labels.c.user_id == user_id).order_by(labels.c.label))
    active = tuple(
        label
        for label in (Label(r.label, r.reason, r.source, r.created_at, r.expires_at) for r in label_rows)
        if label.active(now)
    )
    return Standing(
        user_id=user_id,
        level=StandingLevel(row.level) if row else StandingLevel.GOOD,
        restricted_until=row.restricted_until if row else None,
        strike_points=await strike_points(conn, user_id, window, now),
        labels=active,
    )


async def put_standing(
    conn: AsyncConnection, user_id: str, level: StandingLevel, restricted_until: datetime | None, at: datetime
) -> None:
    """Set the user's level on the ladder."""
    await upsert(
        conn,
        standings,
        [{"user_id": user_id, "level": level.value, "restricted_until": restricted_until, "updated_at": at}],
        ("user_id",),
        ("level", "restricted_until", "updated_at"),
    )


async def put_label(conn: AsyncConnection, user_id: str, label: Label) -> None:
    """Add a label, or replace its reason, source and expiry."""
    await upsert(
        conn,
        labels,
        [
            {
                "user_id": user_id,
                "label": label.label,
                "reason": label.reason,
                "source": label.source,
                "created_at": label.created_at,
                "expires_at": label.expires_at,
            }
        ],
        ("user_id", "label"),
        ("reason", "source", "created_at", "expires_at"),
    )


async def delete_label(conn: AsyncConnection, user_id: str, label: str) -> bool:
    """Remove a label; False when the user did not have it."""
    result = await conn.execute(delete(labels).where(labels.c.user_id == user_id, labels.c.label == label))
    return bool(result.rowcount)
