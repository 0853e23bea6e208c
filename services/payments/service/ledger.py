"""The ledger use cases: post a transfer (all legs or none), reverse one, verify everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from libs.clock import Clock
from libs.errors import FailedPrecondition, NotFound
from libs.ids import new_ulid
from libs.storage import Database, Transaction, gather_late
from services.payments.domain.accounts import USER_KINDS
from services.payments.domain.transfers import (
    PLATFORM_INITIATED,
    InsufficientFunds,
    TransferDraft,
    reversal,
    validate_transfer,
)
from services.payments.domain.verification import LedgerReport, report
from services.payments.store import accounts as accounts_repo
from services.payments.store import frozen as frozen_repo
from services.payments.store import ledger as ledger_repo


@dataclass(frozen=True)
class PostedTransfer:
    """A transfer that is in the ledger."""

    transfer_id: str
    posted_at: datetime


class Ledger:
    """Double-entry bookkeeping on the payments database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._known = accounts_repo.KnownAccounts()

    def post(self, conn: Connection, draft: TransferDraft, *, late: bool = False) -> PostedTransfer:
        """Post ``draft`` on the caller's (synchronous) connection, inside its transaction,
        so the effect, the idempotency record and the event commit together. With
        ``late``, on PostgreSQL the transfer row and its entries are written with the
        unit's other transfers, in one statement at its end: then nothing in the unit may
        refer to the transfer row meanwhile (a refund or points lot row naming it).

        INVALID_ARGUMENT for a transfer that does not balance; INSUFFICIENT_FUNDS
        (FAILED_PRECONDITION) when a leg would cross its account's floor — the caller's
        transaction must then roll back, undoing the legs applied before it.
        """
        validate_transfer(draft)
        self._refuse_frozen(conn, draft, late=late)
        now = self._clock.now()
        transfer_id = new_ulid("trf_")
        if conn.dialect.name == "postgresql":
            # Round trips are what a transaction costs here: the accounts are opened with
            # the transfer and its entries in one statement, and the balances move at the
            # end of the `late_steps` unit (an idempotent call, or a group of them), all of
            # its transfers' moves summed per account in one statement, after the records
            # and before the events: the row locks (a hot seller's proceeds) are held for
            # the fewest round trips, and taken in account-id order. Floors hold for the
            # net move of the group (its calls are concurrent: any order is theirs). A read
            # of balances in the transaction applies the pending moves first.
            if late:
                posted = (transfer_id, draft, now)
                gather_late(conn, ledger_repo.PENDING_TRANSFERS, posted, ledger_repo.open_and_insert_transfers)
            else:
                ledger_repo.open_and_insert_transfer(conn, transfer_id, draft, now)
            moves = [(leg.account.account_id, leg.amount) for leg in draft.legs]
            gather_late(conn, accounts_repo.PENDING_MOVES, moves, _move_balances_at_once, last=True)
        else:
            # SQLite: statements cost microseconds and there is one writer; the accounts
            # this process knows are not opened again.
            accounts_repo.ensure(conn, self._known.missing(leg.account for leg in draft.legs), now)
            self._move_balances(conn, draft, now)
            ledger_repo.insert_transfer(conn, transfer_id, draft, now)
        return PostedTransfer(transfer_id, now)

    def _move_balances(self, conn: Connection, draft: TransferDraft, now: datetime) -> None:
        # One lock order for every transfer, so two transfers never deadlock on PostgreSQL.
        for leg in sorted(draft.legs, key=lambda leg: leg.account.account_id):
            moved = accounts_repo.add_to_balance(conn, leg.account.account_id, leg.amount)
            if moved is None and self._known.knows(leg.account.account_id):
                # Known from a transaction that rolled back (or another database): open it.
                accounts_repo.ensure(conn, [leg.account], now)
                moved = accounts_repo.add_to_balance(conn, leg.account.account_id, leg.amount)
            if moved is None:
                raise InsufficientFunds(
                    f"{leg.account.account_id} has not enough funds",
                    metadata={"account_id": leg.account.account_id},
                )
        self._known.remember(leg.account.account_id for leg in draft.legs)

    async def post_transfer(self, tx: Transaction, draft: TransferDraft) -> PostedTransfer:
        """`post` inside an async transaction."""
        return await tx.conn.run_sync(self.post, draft)

    def _refuse_frozen(self, conn: Connection, draft: TransferDraft, *, late: bool) -> None:
        # A suspended user's money stays put: no leg may take from their accounts.
        # Money coming in still lands, and the platform's own movements (reversals,
        # expiring points, released holds) still post.
        if draft.reverses is not None or draft.kind in PLATFORM_INITIATED:
            return
        payers = {leg.account.owner for leg in draft.legs if leg.amount < 0 and leg.account.kind in USER_KINDS}
        if not payers:
            return
        if late and conn.dialect.name == "postgresql":
            # Checked with the unit's other payers in one read at its end, before the
            # balance moves: a freeze committed meanwhile is seen all the same. In a group
            # a frozen payer fails the group, which then runs call by call (in the careful
            # groups after a refusal, each call settles its check in its own savepoint).
            gather_late(conn, frozen_repo.PENDING_CHECKS, payers, _refuse_frozen_payers)
            return
        _refuse_frozen_payers(conn, [payers])

    async def transfer(self, draft: TransferDraft) -> PostedTransfer:
        """Post ``draft`` in a transaction of its own."""
        async with self._db.transaction() as tx:
            return await self.post_transfer(tx, draft)

    async def reverse(self, transfer_id: str, description: str = "") -> PostedTransfer:
        """Post the transfer that undoes ``transfer_id`` (at most once; floors still apply).

        NOT_FOUND for an unknown transfer; FAILED_PRECONDITION ``ALREADY_REVERSED`` when a
        reversal exists already.
        """
        try:
            async with self._db.transaction() as tx:
                legs = await ledger_repo.legs_of(tx.conn, transfer_id)
                if not legs:
                    raise NotFound(f"no transfer {transfer_id!r}")
                if await ledger_repo.is_reversed(tx.conn, transfer_id):
                    raise FailedPrecondition(f"{transfer_id} is already reversed", reason="ALREADY_REVERSED")
                return await self.post_transfer(tx, reversal("reversal", transfer_id, legs, description))
        except IntegrityError as exc:
            # A concurrent reversal won the unique "reverses" column (PostgreSQL).
            raise FailedPrecondition(f"{transfer_id} is already reversed", reason="ALREADY_REVERSED") from exc

    async def verify(self) -> LedgerReport:
        """Recompute every balance from the entries, in one read snapshot."""
        async with self._db.read() as conn:
            rows = await ledger_repo.computed_balances(conn)
            sums = await ledger_repo.currency_sums(conn)
            unbalanced = await ledger_repo.unbalanced_transfers(conn)
        return report(rows, sums, unbalanced)


def _refuse_frozen_payers(conn: Connection, payers: Sequence[set[str]]) -> None:
    """FAILED_PRECONDITION (WALLET_FROZEN) when one of the payers' wallets is frozen."""
    frozen = frozen_repo.frozen_among(conn, set().union(*payers))
    if frozen:
        raise FailedPrecondition(
            "the wallet is frozen while its owner is suspended",
            reason="WALLET_FROZEN",
            metadata={"user_id": sorted(frozen)[0]},
        )


def _move_balances_at_once(conn: Connection, transfers: Sequence[list[tuple[str, int]]]) -> None:
    """PostgreSQL: the legs of several transfers, summed per account, in one statement;
    INSUFFICIENT_FUNDS when one account would cross its floor (the transaction, or the
    group of calls, rolls back).
    """
    total: dict[str, int] = {}
    for legs in transfers:
        for account_id, amount in legs:
            total[account_id] = total.get(account_id, 0) + amount
    moved = accounts_repo.add_to_balances(conn, list(total.items()))
    for account_id in sorted(total):
        if account_id not in moved:
            raise InsufficientFunds(f"{account_id} has not enough funds", metadata={"account_id": account_id})
