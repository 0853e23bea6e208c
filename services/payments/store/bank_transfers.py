"""Bank transfer flows: recorded once, then moved only by guarded transitions.

Every state change is ``UPDATE ... WHERE id = :id AND status = :expected``: of two
runners (two processes) moving one flow, exactly one sees its row change; the other
stops and re-reads.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Database
from services.payments.domain.accounts import AccountKind, account_id
from services.payments.domain.bank import BankTransfer, BankTransferKind, BankTransferStatus, check_transition
from services.payments.domain.reconciliation import ClearingMovement, FlowRecord
from services.payments.store.accounts import settle_moves
from services.payments.store.tables import accounts, bank_transfers, entries, transfers

_b = bank_transfers.c


def _flow(row: Row[Any]) -> BankTransfer:
    return BankTransfer(
        bank_transfer_id=row.id,
        kind=BankTransferKind(row.kind),
        status=BankTransferStatus(row.status),
        user_id=row.user_id,
        amount=int(row.amount),
        currency=row.currency,
        fee=int(row.fee),
        bank_account=row.bank_account,
        bank_reference=row.bank_reference,
        failure_reason=row.failure_reason,
        attempts=int(row.attempts),
        hold_transfer_id=row.hold_transfer_id,
        ledger_transfer_id=row.ledger_transfer_id,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _by_id(bank_transfer_id: str) -> Select[Any]:
    return select(bank_transfers).where(_b.id == bank_transfer_id)


def insert_flow(conn: Connection, flow: BankTransfer) -> None:
    """Record a new flow."""
    conn.execute(
        insert(bank_transfers).values(
            id=flow.bank_transfer_id,
            kind=flow.kind.value,
            status=flow.status.value,
            user_id=flow.user_id,
            currency=flow.currency,
            amount=flow.amount,
            fee=flow.fee,
            bank_account=flow.bank_account,
            bank_reference=flow.bank_reference,
            failure_reason=flow.failure_reason,
            attempts=flow.attempts,
            hold_transfer_id=flow.hold_transfer_id,
            ledger_transfer_id=flow.ledger_transfer_id,
            next_attempt_at=flow.next_attempt_at,
            created_at=flow.created_at,
            updated_at=flow.updated_at,
        )
    )


def get_flow(conn: Connection, bank_transfer_id: str) -> BankTransfer | None:
    """A flow as it stands in the caller's transaction."""
    row = conn.execute(_by_id(bank_transfer_id)).first()
    return None if row is None else _flow(row)


def of_user(
    conn: Connection,
    user_id: str,
    *,
    kinds: Collection[BankTransferKind],
    statuses: Collection[BankTransferStatus],
    before: str | None,
    limit: int,
) -> list[BankTransfer]:
    """Up to ``limit`` of the user's flows, newest first (ids are ULIDs), with ids below
    ``before`` when given, of ``kinds`` and ``statuses`` when any are given.
    """
    query = select(bank_transfers).where(_b.user_id == user_id)
    if kinds:
        query = query.where(_b.kind.in_(sorted(k.value for k in kinds)))
    if statuses:
        query = query.where(_b.status.in_(sorted(s.value for s in statuses)))
    if before is not None:
        query = query.where(_b.id < before)
    return [_flow(row) for row in conn.execute(query.order_by(_b.id.desc()).limit(limit)).all()]


async def load(db: Database, bank_transfer_id: str) -> BankTransfer | None:
    """A flow as committed (its own snapshot)."""
    row = await db.fetch_one(_by_id(bank_transfer_id))
    return None if row is None else _flow(row)


def move(conn: Connection, flow: BankTransfer, to: BankTransfer) -> bool:
    """Persist ``to`` if the flow is still in ``flow``'s status (and attempt); True when this
    call made the change, False when another runner moved it first.
    """
    if to.status is not flow.status:
        check_transition(flow.status, to.status)
    result = conn.execute(
        update(bank_transfers)
        .where(_b.id == flow.bank_transfer_id, _b.status == flow.status.value, _b.attempts == flow.attempts)
        .values(
            status=to.status.value,
            bank_reference=to.bank_reference,
            failure_reason=to.failure_reason,
            attempts=to.attempts,
            next_attempt_at=to.next_attempt_at,
            updated_at=to.updated_at,
        )
    )
    return result.rowcount == 1


def attach_posting(conn: Connection, bank_transfer_id: str, transfer_id: str) -> None:
    """Record the ledger transfer that finished the flow (after its guarded transition,
    in the same transaction).
    """
    conn.execute(update(bank_transfers).where(_b.id == bank_transfer_id).values(ledger_transfer_id=transfer_id))


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[BankTransfer]:
    """Flows not final yet whose next attempt is due, the longest waiting first."""
    waiting = (BankTransferStatus.PENDING.value, BankTransferStatus.CONFIRMED.value)
    query = (
        select(bank_transfers)
        .where(_b.status.in_(waiting), _b.next_attempt_at <= now)
        .order_by(_b.next_attempt_at, _b.id)
        .limit(limit)
    )
    return [_flow(r) for r in (await conn.execute(query)).all()]


def credit_balance(conn: Connection, user_id: str, currency: str) -> int:
    """The user's credit balance (negative while used), locked until the transaction ends on
    PostgreSQL so the repayment split cannot be overtaken (SQLite has one writer anyway).
    """
    settle_moves(conn)
    query = select(accounts.c.balance).where(accounts.c.id == account_id(user_id, AccountKind.CREDIT, currency))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    value = conn.execute(query).scalar_one_or_none()
    return 0 if value is None else int(value)


async def flow_records(conn: AsyncConnection) -> list[FlowRecord]:
    """Every flow, as reconciliation needs it."""
    query = select(_b.id, _b.status, _b.bank_reference, _b.ledger_transfer_id).order_by(_b.id)
    return [
        FlowRecord(r.id, BankTransferStatus(r.status), r.bank_reference, r.ledger_transfer_id)
        for r in (await conn.execute(query)).all()
    ]


async def clearing_movements(conn: AsyncConnection) -> list[ClearingMovement]:
    """Each ledger transfer's bank-clearing entries summed, per currency."""
    a, e, t = accounts.c, entries.c, transfers.c
    total = func.sum(e.amount)
    query = (
        select(t.id, t.reverses, e.currency, total)
        .join_from(entries, accounts, e.account_id == a.id)
        .join(transfers, t.id == e.transfer_id)
        .where(a.kind == AccountKind.BANK_CLEARING.value)
        .group_by(t.id, t.reverses, e.currency)
        .order_by(t.id)
    )
    return [ClearingMovement(r[0], r[1], r[2], int(r[3])) for r in (await conn.execute(query)).all()]
