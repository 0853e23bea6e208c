"""Transfers and their entries: written once, read for history, reversal and verification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Prepared
from services.payments.domain.accounts import Account, AccountKind
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.store.tables import accounts, entries, transfers


@dataclass(frozen=True)
class HistoryLine:
    """One entry of a wallet's history, with its transfer."""

    entry_id: int
    transfer_id: str
    kind: str
    account_kind: AccountKind
    amount: int
    currency: str
    occurred_at: datetime
    description: str


_INSERT_TRANSFER = Prepared(insert(transfers), column_keys=("id", "kind", "description", "reverses", "created_at"))
_INSERT_ENTRIES = Prepared(
    insert(entries), column_keys=("transfer_id", "account_id", "amount", "currency", "created_at")
)


def insert_transfer(conn: Connection, transfer_id: str, draft: TransferDraft, now: datetime) -> None:
    """Write the transfer row and one entry per leg."""
    _INSERT_TRANSFER.run(
        conn,
        {
            "id": transfer_id,
            "kind": draft.kind,
            "description": draft.description,
            "reverses": draft.reverses,
            "created_at": now,
        },
    )
    _INSERT_ENTRIES.run_many(
        conn,
        [
            {
                "transfer_id": transfer_id,
                "account_id": leg.account.account_id,
                "amount": leg.amount,
                "currency": leg.currency,
                "created_at": now,
            }
            for leg in draft.legs
        ],
    )


# Transfers gathered by `Ledger.post` to be written at the end of their unit (on
# PostgreSQL): their statement opens accounts, so balance moves settle them first.
PENDING_TRANSFERS = "ledger.pending_transfers"


def open_and_insert_transfer(conn: Connection, transfer_id: str, draft: TransferDraft, now: datetime) -> None:
    """PostgreSQL: one transfer (see `open_and_insert_transfers`)."""
    open_and_insert_transfers(conn, [(transfer_id, draft, now)])


def open_and_insert_transfers(conn: Connection, posted: Sequence[tuple[str, TransferDraft, datetime]]) -> None:
    """PostgreSQL, in one round trip for any number of transfers (id, draft, time): open
    the legs' accounts that do not exist yet, write the transfer rows and their entries,
    in order (data-modifying CTEs; the entries' references are checked at the end of the
    statement, when the accounts and the transfers are there).

    An account that exists is left out before the insert (NOT EXISTS, on the statement's
    snapshot): ON CONFLICT alone would wait for any transaction updating its balance,
    queueing every transfer of a hot account behind the one that holds it.
    """
    legs = [(transfer_id, now, leg) for transfer_id, draft, now in posted for leg in draft.legs]
    _OPEN_AND_INSERT.run(
        conn,
        {
            "transfer_ids": [transfer_id for transfer_id, _, _ in posted],
            "transfer_kinds": [draft.kind for _, draft, _ in posted],
            "descriptions": [draft.description for _, draft, _ in posted],
            "reverses": [draft.reverses for _, draft, _ in posted],
            "times": [now for _, _, now in posted],
            "leg_transfers": [transfer_id for transfer_id, _, _ in legs],
            "leg_times": [now for _, now, _ in legs],
            "ids": [leg.account.account_id for _, _, leg in legs],
            "owners": [leg.account.owner for _, _, leg in legs],
            "kinds": [leg.account.kind.value for _, _, leg in legs],
            "currencies": [leg.currency for _, _, leg in legs],
            "floors": [leg.account.floor for _, _, leg in legs],
            "amounts": [leg.amount for _, _, leg in legs],
        },
    )


# Arrays, not a VALUES row per leg: one statement for any number of transfers and legs,
# prepared once (SQLAlchemy compiles a multi-row VALUES insert again on every call).
_OPEN_AND_INSERT = Prepared(
    text(
        """
    WITH legs AS (
        SELECT * FROM unnest(
            CAST(:leg_transfers AS varchar[]), CAST(:leg_times AS timestamptz[]),
            CAST(:ids AS varchar[]), CAST(:owners AS varchar[]), CAST(:kinds AS varchar[]),
            CAST(:currencies AS varchar[]), CAST(:floors AS bigint[]), CAST(:amounts AS bigint[])
        ) WITH ORDINALITY AS leg(transfer_id, created_at, account_id, owner, kind, currency, floor, amount, n)
    ), opened AS (
        INSERT INTO accounts (id, owner, kind, currency, floor, balance, created_at)
        SELECT DISTINCT ON (account_id) account_id, owner, kind, currency, floor, 0, created_at FROM legs
        WHERE NOT EXISTS (SELECT FROM accounts AS a WHERE a.id = legs.account_id)
        ORDER BY account_id
        ON CONFLICT (id) DO NOTHING
    ), transfer AS (
        INSERT INTO transfers (id, kind, description, reverses, created_at)
        SELECT * FROM unnest(
            CAST(:transfer_ids AS varchar[]), CAST(:transfer_kinds AS varchar[]), CAST(:descriptions AS text[]),
            CAST(:reverses AS varchar[]), CAST(:times AS timestamptz[])
        )
    )
    INSERT INTO entries (transfer_id, account_id, amount, currency, created_at)
    SELECT transfer_id, account_id, amount, currency, created_at FROM legs ORDER BY n
    """
    )
)


async def legs_of(conn: AsyncConnection, transfer_id: str) -> list[Leg]:
    """The legs of a posted transfer (empty when there is no such transfer)."""
    a, e = accounts.c, entries.c
    query = (
        select(a.id, a.owner, a.kind, a.currency, a.floor, e.amount)
        .join_from(entries, accounts, e.account_id == a.id)
        .where(e.transfer_id == transfer_id)
        .order_by(e.id)
    )
    rows = (await conn.execute(query)).all()
    return [Leg(Account(r.id, r.owner, AccountKind(r.kind), r.currency, r.floor), int(r.amount)) for r in rows]


async def is_reversed(conn: AsyncConnection, transfer_id: str) -> bool:
    """Whether a reversal of ``transfer_id`` has been posted."""
    return await conn.scalar(select(transfers.c.id).where(transfers.c.reverses == transfer_id)) is not None


async def history(conn: AsyncConnection, owner: str, before: int | None, limit: int) -> list[HistoryLine]:
    """The entries of ``owner``'s accounts, newest first, with entry id below ``before``."""
    a, e, t = accounts.c, entries.c, transfers.c
    query = (
        select(e.id, e.transfer_id, t.kind, a.kind.label("account_kind"), e.amount, e.currency, e.created_at)
        .add_columns(t.description)
        .join_from(entries, accounts, e.account_id == a.id)
        .join(transfers, t.id == e.transfer_id)
        .where(a.owner == owner)
        .order_by(e.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(e.id < before)
    rows = (await conn.execute(query)).all()
    return [
        HistoryLine(
            int(r.id),
            r.transfer_id,
            r.kind,
            AccountKind(r.account_kind),
            int(r.amount),
            r.currency,
            r.created_at,
            r.description,
        )
        for r in rows
    ]


async def computed_balances(conn: AsyncConnection) -> Sequence[tuple[str, str, int, int, int]]:
    """Every account as (id, currency, stored balance, sum of entries, number of entries)."""
    a, e = accounts.c, entries.c
    sums = (
        select(e.account_id, func.coalesce(func.sum(e.amount), 0).label("total"), func.count().label("n"))
        .group_by(e.account_id)
        .subquery()
    )
    query = (
        select(a.id, a.currency, a.balance, func.coalesce(sums.c.total, 0), func.coalesce(sums.c.n, 0))
        .outerjoin(sums, sums.c.account_id == a.id)
        .order_by(a.id)
    )
    return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in (await conn.execute(query)).all()]


async def currency_sums(conn: AsyncConnection) -> list[tuple[str, int]]:
    """The sum of all entries per currency."""
    e = entries.c
    query = select(e.currency, func.sum(e.amount)).group_by(e.currency).order_by(e.currency)
    return [(r[0], int(r[1])) for r in (await conn.execute(query)).all()]


async def unbalanced_transfers(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """Transfers whose entries do not sum to zero in some currency: (id, currency, sum)."""
    e = entries.c
    total = func.sum(e.amount)
    query = (
        select(e.transfer_id, e.currency, total)
        .group_by(e.transfer_id, e.currency)
        .having(total != 0)
        .order_by(e.transfer_id)
    )
    return [(r[0], r[1], int(r[2])) for r in (await conn.execute(query)).all()]
