"""Shared helpers of the payment tests: money in, a scripted risk service, balances."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection

from libs.clock import FrozenClock
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.payments import CreateRequest, Payment, RiskOutcome
from services.payments.domain.points import GrantRequest
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.risk import RiskQuery, RiskUnreachable
from services.payments.store import accounts as accounts_repo

BANK = platform_account(AccountKind.BANK_CLEARING, "JPY")


@dataclass
class ScriptedRisk:
    """A risk service whose decision per buyer is set by the test (APPROVE by default);
    ``down`` makes it unreachable. Records every query.
    """

    decisions: dict[str, str] = field(default_factory=dict)
    down: bool = False
    queries: list[RiskQuery] = field(default_factory=list)

    async def assess(self, query: RiskQuery) -> RiskOutcome:
        """The scripted decision."""
        self.queries.append(query)
        if self.down:
            raise RiskUnreachable("scripted outage")
        decision = self.decisions.get(query.buyer_id, "APPROVE")
        return RiskOutcome(decision, f"ra_{query.payment_id}", 80 if decision != "APPROVE" else 5, ("SCRIPTED",))


async def top_up(c: PaymentsContainer, user: str, amount: int) -> None:
    """Put cash in a user's wallet (as a completed bank top-up would)."""
    cash = user_account(user, AccountKind.CASH, "JPY")
    await c.ledger.transfer(TransferDraft("test_top_up", (Leg(BANK, -amount), Leg(cash, amount))))


async def grant(c: PaymentsContainer, clock: FrozenClock, user: str, amount: int, key: str, days: int = 30) -> None:
    """Grant points to a user from a test campaign."""
    request = GrantRequest(key, user, amount, "JPY", "test", clock.now() + timedelta(days=days))
    await c.points.grant("svc-marketing", request)


async def open_credit(c: PaymentsContainer, user: str, limit: int) -> None:
    """Open a user's credit line with ``limit`` (the account's floor)."""
    credit = user_account(user, AccountKind.CREDIT, "JPY", credit_limit=limit)

    def run(conn: Connection) -> None:
        accounts_repo.ensure(conn, [credit], c.clock.now())

    await c.db.write_sync(run)


async def balances(c: PaymentsContainer, user: str) -> dict[AccountKind, int]:
    """A user's balance per bucket (zero buckets left out)."""
    wallet = await c.wallet.balance(user)
    return {b.kind: b.balance for b in wallet.balances if b.balance}


def order(key: str, amount: int, **changes: object) -> CreateRequest:
    """A CreatePayment of usr_buyer to usr_seller."""
    fields: dict[str, object] = {
        "idempotency_key": key,
        "order_id": f"ord_{key}",
        "buyer_id": "usr_buyer",
        "seller_id": "usr_seller",
        "amount": amount,
        "currency": "JPY",
    }
    fields.update(changes)
    return CreateRequest(**fields)  # type: ignore[arg-type]


def funding(payment: Payment) -> dict[str, tuple[int, int]]:
    """Per source: (paid, returned)."""
    return {line.source.value: (line.amount, line.returned) for line in payment.funding}
