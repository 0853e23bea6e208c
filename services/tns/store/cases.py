"""Review cases: the queue, leases and resolutions, guarded in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, Row, Select, and_, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.domain.cases import MAX_PRIORITY, Case, CaseKind, CaseStatus, Resolution
from services.tns.domain.content import ContentKind
from services.tns.store.tables import cases


def _case(row: Row[tuple[object, ...]]) -> Case:
    m = row._mapping
    return Case(
        case_id=m["id"],
        kind=CaseKind(m["kind"]),
        status=CaseStatus(m["status"]),
        policy=m["policy"],
        priority=m["priority"],
        content_kind=ContentKind(m["content_kind"]),
        content_id=m["content_id"],
        subject_user_id=m["subject_user_id"],
        opened_by=m["opened_by"],
        note=m["note"],
        decision_id=m["decision_id"],
        created_at=m["created_at"],
        claimed_by=m["claimed_by"],
        lease_expires_at=m["lease_expires_at"],
        resolution=Resolution(m["resolution"]) if m["resolution"] else None,
        resolution_note=m["resolution_note"],
        resolved_by=m["resolved_by"],
        resolved_at=m["resolved_at"],
    )


async def open_or_bump(conn: AsyncConnection, case: Case, bump: int) -> tuple[Case, bool]:
    """Open ``case``, or — when one of its kind is already open for the content — raise
    that one's priority by ``bump``. Returns the open case and whether it is new.
    """
    existing = await open_for_content(conn, case.kind, case.content_kind, case.content_id)
    if existing is None:
        try:
            async with conn.begin_nested():
                await conn.execute(
                    insert(cases).values(
                        id=case.case_id,
                        kind=case.kind.value,
                        status=CaseStatus.OPEN.value,
                        policy=case.policy,
                        priority=case.priority,
                        content_kind=case.content_kind.value,
                        content_id=case.content_id,
                        subject_user_id=case.subject_user_id,
                        opened_by=case.opened_by,
                        note=case.note,
                        decision_id=case.decision_id,
                        resolution_note="",
                        created_at=case.created_at,
                    )
                )
            return case, True
        except IntegrityError:
            pass  # opened concurrently (the partial unique index): bump that one
    existing = await open_for_content(conn, case.kind, case.content_kind, case.content_id)
    if existing is None:  # resolved between our insert and this read
        raise RuntimeError("open case vanished while bumping it")
    if bump:
        await conn.execute(
            update(cases)
            .where(cases.c.id == existing.case_id)
            .values(priority=min(MAX_PRIORITY, existing.priority + bump))
        )
        existing = await get(conn, existing.case_id) or existing
    return existing, False


def _row_values(case: Case) -> dict[str, object]:
    return {
        "id": case.case_id,
        "kind": case.kind.value,
        "status": CaseStatus.OPEN.value,
        "policy": case.policy,
        "priority": case.priority,
        "content_kind": case.content_kind.value,
        "content_id": case.content_id,
        "subject_user_id": case.subject_user_id,
        "opened_by": case.opened_by,
        "note": case.note,
        "decision_id": case.decision_id,
        "resolution_note": "",
        "created_at": case.created_at,
    }


def _open_ids_query(kind: CaseKind, keys: list[tuple[str, str]]) -> Select[Any]:
    return select(cases.c.content_kind, cases.c.content_id, cases.c.id).where(
        cases.c.kind == kind.value,
        cases.c.status == CaseStatus.OPEN.value,
        tuple_(cases.c.content_kind, cases.c.content_id).in_(keys),
    )


def _missing(new: Sequence[Case], found: dict[tuple[str, str], str]) -> list[dict[str, object]]:
    missing: dict[tuple[str, str], Case] = {}
    for case in new:
        key = (case.content_kind.value, case.content_id)
        if key not in found:
            missing.setdefault(key, case)
    return [_row_values(c) for c in missing.values()]


def _insert_missing(dialect: str) -> Executable:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_(cases).on_conflict_do_nothing(
        index_elements=["kind", "content_kind", "content_id"], index_where=text("status = 'open'")
    )


async def open_many(conn: AsyncConnection, new: Sequence[Case]) -> dict[tuple[str, str], str]:
    """Make sure each content of ``new`` has an open case of its kind (all of one kind);
    returns ``{(content kind, content id): open case id}``. Three statements whatever the
    number: look up, insert what is missing (skipping any opened concurrently), look up.
    """
    if not new:
        return {}
    query = _open_ids_query(new[0].kind, sorted({(c.content_kind.value, c.content_id) for c in new}))
    found = {(r.content_kind, r.content_id): r.id for r in await conn.execute(query)}
    if rows := _missing(new, found):
        await conn.execute(_insert_missing(conn.dialect.name), rows)
        found = {(r.content_kind, r.content_id): r.id for r in await conn.execute(query)}
    return found


def open_many_sync(conn: Connection, new: Sequence[Case]) -> dict[tuple[str, str], str]:
    """`open_many` on a synchronous connection (`Database.write_sync`)."""
    if not new:
        return {}
    query = _open_ids_query(new[0].kind, sorted({(c.content_kind.value, c.content_id) for c in new}))
    found = {(r.content_kind, r.content_id): r.id for r in conn.execute(query)}
    if rows := _missing(new, found):
        conn.execute(_insert_missing(conn.dialect.name), rows)
        found = {(r.content_kind, r.content_id): r.id for r in conn.execute(query)}
    return found


async def open_for_content(
    conn: AsyncConnection, kind: CaseKind, content_kind: ContentKind, content_id: str
) -> Case | None:
    """The open case of ``kind`` about a piece of content."""
    row = (
        await conn.execute(
            select(cases).where(
                cases.c.kind == kind.value,
                cases.c.content_kind == content_kind.value,
                cases.c.content_id == content_id,
                cases.c.status == CaseStatus.OPEN.value,
            )
        )
    ).first()
    return _case(row) if row else None


async def get(conn: AsyncConnection, case_id: str) -> Case | None:
    """The case with ``case_id``."""
    row = (await conn.execute(select(cases).where(cases.c.id == case_id))).first()
    return _case(row) if row else None


async def page(
    conn: AsyncConnection, status: CaseStatus, policies: Sequence[str], after: tuple[int, str] | None, limit: int
) -> list[Case]:
    """Cases by priority (highest first), then id; ``after`` is the last (priority, id) seen."""
    query = select(cases).where(cases.c.status == status.value)
    if policies:
        query = query.where(cases.c.policy.in_(list(policies)))
    if after is not None:
        prio, case_id = after
        query = query.where(or_(cases.c.priority < prio, and_(cases.c.priority == prio, cases.c.id > case_id)))
    rows = await conn.execute(query.order_by(cases.c.priority.desc(), cases.c.id).limit(limit))
    return [_case(r) for r in rows]


async def try_claim(
    conn: AsyncConnection, case_id: str, agent: str, now: datetime, until: datetime, *, extend: bool = True
) -> bool:
    """Take the lease unless someone holds a live one (with ``extend``, the holder may
    renew it); True on success.

    One guarded UPDATE: of two agents racing for the same case exactly one matches.
    """
    free = [cases.c.claimed_by.is_(None), cases.c.lease_expires_at <= now]
    if extend:
        free.append(cases.c.claimed_by == agent)
    result = await conn.execute(
        update(cases)
        .where(cases.c.id == case_id, cases.c.status == CaseStatus.OPEN.value, or_(*free))
        .values(claimed_by=agent, lease_expires_at=until)
    )
    return bool(result.rowcount)


async def claimable(conn: AsyncConnection, policies: Sequence[str], now: datetime, limit: int) -> list[str]:
    """Ids of open cases nobody holds, best first."""
    query = select(cases.c.id).where(
        cases.c.status == CaseStatus.OPEN.value,
        or_(cases.c.claimed_by.is_(None), cases.c.lease_expires_at <= now),
    )
    if policies:
        query = query.where(cases.c.policy.in_(list(policies)))
    rows = await conn.execute(query.order_by(cases.c.priority.desc(), cases.c.created_at, cases.c.id).limit(limit))
    return [r[0] for r in rows]


async def resolve(
    conn: AsyncConnection, case_id: str, agent: str, resolution: Resolution, note: str, now: datetime
) -> bool:
    """Resolve the case if ``agent`` holds its live lease; True on success."""
    result = await conn.execute(
        update(cases)
        .where(
            cases.c.id == case_id,
            cases.c.status == CaseStatus.OPEN.value,
            cases.c.claimed_by == agent,
            cases.c.lease_expires_at > now,
        )
        .values(
            status=CaseStatus.RESOLVED.value,
            resolution=resolution.value,
            resolution_note=note,
            resolved_by=agent,
            resolved_at=now,
        )
    )
    return bool(result.rowcount)
