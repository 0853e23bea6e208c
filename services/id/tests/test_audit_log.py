"""Group commit of standalone audit events."""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from libs.clock import FrozenClock
from services.id.container import IdContainer
from services.id.domain import audit
from services.id.service.audit_log import AuditLog
from services.id.store.tables import audit_events


async def _count(container: IdContainer) -> int:
    async with container.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_events)) or 0)


async def test_concurrent_records_are_all_committed_in_few_transactions(
    container: IdContainer, clock: FrozenClock
) -> None:
    """Fifty concurrent events all land, written in far fewer transactions than events."""
    log = AuditLog(container.db)
    transactions = 0
    real = container.db.transaction

    def counting():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return real()

    container.db.transaction = counting  # type: ignore[method-assign]
    before = await _count(container)
    events = [audit.event(audit.TOKEN_ISSUED, f"svc-{i}", clock.now()) for i in range(50)]
    await asyncio.gather(*(log.record(e) for e in events))
    assert await _count(container) == before + 50
    assert transactions < 10


async def test_a_failed_batch_fails_every_waiter_and_the_next_batch_still_works(
    container: IdContainer, clock: FrozenClock
) -> None:
    """A batch that cannot commit raises to each of its callers and writes none of them; later events land."""
    log = AuditLog(container.db)
    first = audit.event(audit.TOKEN_ISSUED, "svc-a", clock.now())
    await log.record(first)
    before = await _count(container)
    duplicate = dataclasses.replace(audit.event(audit.TOKEN_ISSUED, "svc-b", clock.now()), id=first.id)
    fresh = audit.event(audit.TOKEN_ISSUED, "svc-c", clock.now())
    results = await asyncio.gather(log.record(duplicate), log.record(fresh), return_exceptions=True)
    assert all(isinstance(r, IntegrityError) for r in results)
    assert await _count(container) == before
    await log.record(audit.event(audit.TOKEN_ISSUED, "svc-d", clock.now()))
    assert await _count(container) == before + 1


async def test_a_single_event_is_written_without_waiting_for_company(container: IdContainer) -> None:
    """A lone event is committed right away (no batching delay)."""
    log = AuditLog(container.db)
    before = await _count(container)
    await asyncio.wait_for(log.record(audit.event(audit.TOKEN_ISSUED, "svc", container.clock.now())), 5)
    assert await _count(container) == before + 1
