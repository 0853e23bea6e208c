"""The pay-later credit line: limits, reads, monthly statements and repayments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import orjson
from furima.payments.v1 import events_pb2
from furima.types.v1 import money_pb2
from sqlalchemy import Connection

from libs.clock import Clock
from libs.events import Outbox
from libs.pb import timestamp
from libs.storage import Database, retry_conflicts
from services.payments.domain.accounts import AccountKind, user_account
from services.payments.domain.credit import (
    BALANCE_REPAYMENT,
    CreditLine,
    CreditStatement,
    LimitBelowUsed,
    Repayment,
    RepaymentRequest,
    RepaymentSource,
    build_statement,
    parse_month,
    repayment_amount,
    validate_limit,
    validate_line_query,
    validate_repayment,
)
from services.payments.domain.idempotency import request_hash
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.ledger import Ledger
from services.payments.store import accounts as accounts_repo
from services.payments.store import credit as credit_repo


class BankRepayments(Protocol):
    """Opens the bank transfer saga of a repayment from a bank account (the cash flows)."""

    def open_credit_repayment(
        self, conn: Connection, user_id: str, amount: int, currency: str, bank_account: str
    ) -> str:
        """Record a PENDING saga in the caller's transaction (the line is credited when the
        bank confirms); returns its bank transfer id.
        """
        ...


class CreditLines:
    """Credit lines on the ledger: the limit is the credit account's floor (minus the limit)."""

    def __init__(
        self, db: Database, ledger: Ledger, calls: IdempotentCalls, outbox: Outbox, clock: Clock, cash: BankRepayments
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._calls = calls
        self._outbox = outbox
        self._clock = clock
        self._cash = cash

    async def set_limit(self, user_id: str, currency: str, limit: int) -> CreditLine:
        """Set the limit and move the account's floor to minus it, in one transaction.

        FAILED_PRECONDITION ``LIMIT_BELOW_USED`` when the user owes more than ``limit``.
        Setting the same limit again changes nothing but ``updated_at``.
        """
        validate_limit(user_id, limit, currency)
        account = user_account(user_id, AccountKind.CREDIT, currency, credit_limit=limit)

        def effect(conn: Connection) -> CreditLine:
            now = self._clock.now()
            accounts_repo.ensure(conn, [account], now)
            balance = credit_repo.move_floor(conn, account.account_id, -limit)
            if balance is None:
                used = -credit_repo.balance_of(conn, account.account_id)
                raise LimitBelowUsed(
                    f"the user already owes {used}, more than the new limit {limit}",
                    metadata={"used": str(used), "limit": str(limit)},
                )
            credit_repo.put_limit(conn, user_id, currency, limit, now)
            return CreditLine(user_id, currency, limit, balance, now)

        # Aborted over a conflict (a deadlock PostgreSQL broke), the whole transaction re-runs.
        return await retry_conflicts(lambda: self._db.write_sync(effect))

    async def line(self, user_id: str, currency: str) -> CreditLine:
        """The user's line in ``currency`` (limit zero when none was ever set)."""
        validate_line_query(user_id, currency)
        account_id = user_account(user_id, AccountKind.CREDIT, currency).account_id
        async with self._db.read() as conn:
            limit, updated_at = await credit_repo.read_limit(conn, user_id, currency)
            balance = await credit_repo.read_balance(conn, account_id)
        return CreditLine(user_id, currency, limit, balance, updated_at)

    async def statement(self, user_id: str, month: str, currency: str) -> CreditStatement:
        """The statement of a calendar month in Tokyo time, computed from the ledger's entries."""
        validate_line_query(user_id, currency)
        period = parse_month(month)
        account_id = user_account(user_id, AccountKind.CREDIT, currency).account_id
        async with self._db.read() as conn:
            opening = await credit_repo.balance_before(conn, account_id, period.start)
            found = await credit_repo.entries_between(conn, account_id, period.start, period.end)
        return build_statement(user_id, currency, period, opening, found)

    async def repay(self, caller: str, request: RepaymentRequest) -> Repayment:
        """Repay once per (caller, idempotency key); a replay returns the first answer.

        BALANCE moves the money from the user's cash at once (``credit_repayment`` and a
        CreditRepaid event); BANK opens a bank transfer saga that repays the line when the
        bank confirms. FAILED_PRECONDITION ``NOTHING_OWED``, ``REPAYMENT_EXCEEDS_OWED``,
        ``INSUFFICIENT_FUNDS`` (cash) or ``WALLET_FROZEN``; INVALID_ARGUMENT when malformed.
        """
        validate_repayment(request)

        def effect(conn: Connection) -> str:
            return encode_repayment(self._repay(conn, request))

        stored = await self._calls.run_sync(
            f"{caller}:RepayCredit", request.idempotency_key, _fingerprint(request), effect
        )
        self._outbox.notify()
        return decode_repayment(stored)

    def _repay(self, conn: Connection, request: RepaymentRequest) -> Repayment:
        cash = user_account(request.user_id, AccountKind.CASH, request.currency)
        credit = user_account(request.user_id, AccountKind.CREDIT, request.currency)
        # Lock both rows in the ledger's order (account id) so what is owed cannot change
        # between reading it and posting: a repayment never takes the balance above zero.
        balance = credit_repo.lock_balances(conn, [cash.account_id, credit.account_id]).get(credit.account_id, 0)
        amount = repayment_amount(request.amount, -balance)
        limit, updated_at = credit_repo.limit_of(conn, request.user_id, request.currency)
        now = self._clock.now()
        if request.source is RepaymentSource.BANK:
            saga = self._cash.open_credit_repayment(
                conn, request.user_id, amount, request.currency, request.bank_account
            )
            line = CreditLine(request.user_id, request.currency, limit, balance, updated_at)
            return Repayment(line, amount, "", saga, now)
        draft = TransferDraft(
            BALANCE_REPAYMENT, (Leg(cash, -amount), Leg(credit, amount)), "credit line repaid from the balance"
        )
        posted = self._ledger.post(conn, draft)
        self._outbox.append_sync(
            conn, request.user_id, _credit_repaid(request, amount, posted.transfer_id, posted.posted_at)
        )
        line = CreditLine(request.user_id, request.currency, limit, balance + amount, updated_at)
        return Repayment(line, amount, posted.transfer_id, "", posted.posted_at)


def _fingerprint(request: RepaymentRequest) -> str:
    return request_hash(
        {
            "user_id": request.user_id,
            "amount": request.amount,
            "currency": request.currency,
            "source": request.source.value if request.source else None,
            "bank_account": request.bank_account,
        }
    )


def _credit_repaid(request: RepaymentRequest, amount: int, transfer_id: str, at: datetime) -> events_pb2.CreditRepaid:
    return events_pb2.CreditRepaid(
        user_id=request.user_id,
        amount=money_pb2.Money(amount=amount, currency=request.currency),
        transfer_id=transfer_id,
        occurred_at=timestamp(at),
    )


def encode_repayment(repayment: Repayment) -> str:
    """The stored response of a repayment (replayed verbatim)."""
    return orjson.dumps(repayment).decode()


def decode_repayment(stored: str) -> Repayment:
    """A repayment back from `encode_repayment`."""
    raw: dict[str, Any] = orjson.loads(stored)
    line: dict[str, Any] = raw.pop("line")
    if line["updated_at"] is not None:
        line["updated_at"] = datetime.fromisoformat(line["updated_at"])
    raw["repaid_at"] = datetime.fromisoformat(raw["repaid_at"])
    return Repayment(line=CreditLine(**line), **raw)
