"""Re-scan jobs and their findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.store.tables import rescans


@dataclass(frozen=True)
class Rescan:
    """One re-evaluation of recent content against the rules in force."""

    rescan_id: str
    mode: str
    status: str
    ruleset_version: str
    since: datetime
    scanned: int
    changed: int
    changes: tuple[dict[str, str], ...]
    started_at: datetime
    finished_at: datetime | None
    error: str


async def add(conn: AsyncConnection, rescan: Rescan) -> None:
    """Record a new job."""
    await conn.execute(
        insert(rescans).values(
            id=rescan.rescan_id,
            mode=rescan.mode,
            status=rescan.status,
            ruleset_version=rescan.ruleset_version,
            since=rescan.since,
            scanned=0,
            changed=0,
            changes="[]",
            started_at=rescan.started_at,
            error="",
        )
    )


async def finish(
    conn: AsyncConnection,
    rescan_id: str,
    *,
    status: str,
    scanned: int,
    changed: int,
    changes: Sequence[dict[str, str]],
    at: datetime,
    error: str = "",
) -> None:
    """Record a job's outcome."""
    await conn.execute(
        update(rescans)
        .where(rescans.c.id == rescan_id)
        .values(
            status=status,
            scanned=scanned,
            changed=changed,
            changes=orjson.dumps(list(changes)).decode(),
            finished_at=at,
            error=error,
        )
    )


async def get(conn: AsyncConnection, rescan_id: str) -> Rescan | None:
    """The job with ``rescan_id``."""
    row = (await conn.execute(select(rescans).where(rescans.c.id == rescan_id))).first()
    if row is None:
        return None
    m = row._mapping
    return Rescan(
        rescan_id=m["id"],
        mode=m["mode"],
        status=m["status"],
        ruleset_version=m["ruleset_version"],
        since=m["since"],
        scanned=m["scanned"],
        changed=m["changed"],
        changes=tuple(orjson.loads(m["changes"])),
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        error=m["error"],
    )
