"""CreditService over gRPC behind the shared middleware: access rules, ownership, errors, replays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from furima.payments.v1 import credit_service_pb2 as pb
from furima.payments.v1 import credit_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import SystemClock
from libs.rpc import ServerConfig, error_details, make_channel
from libs.storage import Database, upgrade
from libs.testing import Forger, claims
from services.payments.api.credit import CREDIT_SERVICE
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, PaymentsContainer, assemble
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.main import build_server

ADMIN = "payments.credit.admin"
JPY = "JPY"


@dataclass
class Rig:
    """A stub of a served CreditService and the container behind it."""

    stub: pb_grpc.CreditServiceStub
    container: PaymentsContainer
    key: Forger

    def as_(self, scope: str, subject: str = "svc-checkout") -> list[tuple[str, str]]:
        """Call metadata with a token for the payments audience."""
        client = subject if not subject.startswith("usr_") else "app-furima"
        token = self.key.sign(claims(scope=scope, audience=["furima.payments"], subject=subject, client_id=client))
        return [("authorization", f"Bearer {token}")]

    async def purchase(self, user_id: str, amount: int) -> None:
        """Buy on credit (PaymentService's movement, posted directly)."""
        credit = user_account(user_id, AccountKind.CREDIT, JPY)
        holds = platform_account(AccountKind.HOLDS, JPY, shard=0)
        await self.container.ledger.transfer(
            TransferDraft("payment_capture", (Leg(credit, -amount), Leg(holds, amount)))
        )

    async def top_up(self, user_id: str, amount: int) -> None:
        """Put cash in a wallet."""
        bank = platform_account(AccountKind.BANK_CLEARING, JPY)
        cash = user_account(user_id, AccountKind.CASH, JPY)
        await self.container.ledger.transfer(TransferDraft("bank_top_up", (Leg(bank, -amount), Leg(cash, amount))))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Provide a payments server with CreditService on a free port over SQLite."""
    key = Forger(kid="k1")
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/credit.db")
    await upgrade(database, MIGRATIONS)
    c = assemble(PaymentsConfig(database_url=database.url), database, SystemClock())
    verifier = TokenVerifier("furima-id", "furima.payments", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = build_server(c, ServerConfig(port=0), verifier)
    await server.start()
    async with make_channel(server.address, services=[CREDIT_SERVICE]) as channel:
        yield Rig(pb_grpc.CreditServiceStub(channel), c, key)
    await server.stop(0)
    await database.dispose()


def jpy(amount: int) -> money_pb2.Money:
    """A yen amount."""
    return money_pb2.Money(amount=amount, currency=JPY)


def this_month() -> str:
    """The current month in Tokyo (the server runs on the wall clock)."""
    from services.payments.domain.credit import TOKYO

    return datetime.now(UTC).astimezone(TOKYO).strftime("%Y-%m")


async def status_of(call: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    """The status code and rich details of a failing call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value)


async def test_limit_purchase_statement_and_repayment(rig: Rig) -> None:
    """An admin sets ¥5,000; the user reads their line and statement; a service repays from cash; a replay matches."""
    set_ = await rig.stub.SetCreditLimit(
        pb.SetCreditLimitRequest(user_id="usr_a", limit=jpy(5000)), metadata=rig.as_(ADMIN)
    )
    assert (set_.credit_line.limit.amount, set_.credit_line.available.amount) == (5000, 5000)
    await rig.purchase("usr_a", 3000)
    await rig.top_up("usr_a", 10_000)
    mine = rig.as_("payments.read", "usr_a")
    line = (await rig.stub.GetCreditLine(pb.GetCreditLineRequest(user_id="usr_a"), metadata=mine)).credit_line
    assert (line.limit.amount, line.used.amount, line.available.amount, line.used.currency) == (5000, 3000, 2000, JPY)
    request = pb.RepayCreditRequest(
        idempotency_key="r-1", user_id="usr_a", amount=jpy(1000), source=pb.REPAYMENT_SOURCE_BALANCE
    )
    repaid = await rig.stub.RepayCredit(request, metadata=rig.as_("payments.write"))
    assert (repaid.credit_line.used.amount, repaid.bank_transfer_id) == (2000, "")
    assert repaid.transfer_id.startswith("trf_")
    assert await rig.stub.RepayCredit(request, metadata=rig.as_("payments.write")) == repaid
    statement = (
        await rig.stub.GetCreditStatement(
            pb.GetCreditStatementRequest(user_id="usr_a", month=this_month()), metadata=mine
        )
    ).statement
    assert [(x.kind, x.amount.amount) for x in statement.lines] == [
        (pb.STATEMENT_LINE_KIND_PURCHASE, 3000),
        (pb.STATEMENT_LINE_KIND_REPAYMENT, 1000),
    ]
    assert (statement.opening_owed.amount, statement.closing_owed.amount) == (0, 2000)
    assert statement.due_date.endswith("-27")


async def test_everything_owed_and_bank_repayment(rig: Rig) -> None:
    """No amount repays all that is owed; BANK returns the saga's id and leaves the line as it is."""
    await rig.stub.SetCreditLimit(pb.SetCreditLimitRequest(user_id="usr_a", limit=jpy(5000)), metadata=rig.as_(ADMIN))
    await rig.purchase("usr_a", 1800)
    bank = pb.RepayCreditRequest(
        idempotency_key="b-1", user_id="usr_a", source=pb.REPAYMENT_SOURCE_BANK, bank_account="0001-001-7654321"
    )
    started = await rig.stub.RepayCredit(bank, metadata=rig.as_("payments.write"))
    assert started.bank_transfer_id.startswith("btr_")
    assert (started.transfer_id, started.credit_line.used.amount) == ("", 1800)
    await rig.top_up("usr_a", 1800)
    everything = pb.RepayCreditRequest(idempotency_key="all", user_id="usr_a", source=pb.REPAYMENT_SOURCE_BALANCE)
    done = await rig.stub.RepayCredit(everything, metadata=rig.as_("payments.write"))
    assert (done.credit_line.used.amount, done.credit_line.available.amount) == (0, 5000)


async def test_without_token_is_unauthenticated(rig: Rig) -> None:
    """No bearer token → UNAUTHENTICATED."""
    code, _ = await status_of(rig.stub.GetCreditLine(pb.GetCreditLineRequest(user_id="usr_a")))
    assert code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("SetCreditLimit", "payments.write"),
        ("GetCreditLine", "payments.write"),
        ("GetCreditStatement", ADMIN),
        ("RepayCredit", "payments.read"),
    ],
)
async def test_wrong_scope_is_permission_denied(rig: Rig, method: str, scope: str) -> None:
    """A valid token without the method's scope → PERMISSION_DENIED, reason SCOPE_MISSING."""
    calls: dict[str, Callable[[list[tuple[str, str]]], Any]] = {
        "SetCreditLimit": lambda md: rig.stub.SetCreditLimit(
            pb.SetCreditLimitRequest(user_id="usr_a", limit=jpy(1)), metadata=md
        ),
        "GetCreditLine": lambda md: rig.stub.GetCreditLine(pb.GetCreditLineRequest(user_id="usr_a"), metadata=md),
        "GetCreditStatement": lambda md: rig.stub.GetCreditStatement(
            pb.GetCreditStatementRequest(user_id="usr_a", month="2026-03"), metadata=md
        ),
        "RepayCredit": lambda md: rig.stub.RepayCredit(
            pb.RepayCreditRequest(idempotency_key="k", user_id="usr_a", source=pb.REPAYMENT_SOURCE_BALANCE), metadata=md
        ),
    }
    code, details = await status_of(calls[method](rig.as_(scope)))
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")


async def test_user_cannot_reach_another_users_line(rig: Rig) -> None:
    """A user token naming another user → PERMISSION_DENIED (NOT_WALLET_OWNER) for line, statement and repayment."""
    other = rig.as_("payments.read payments.write", "usr_b")
    calls = [
        rig.stub.GetCreditLine(pb.GetCreditLineRequest(user_id="usr_a"), metadata=other),
        rig.stub.GetCreditStatement(pb.GetCreditStatementRequest(user_id="usr_a", month="2026-03"), metadata=other),
        rig.stub.RepayCredit(
            pb.RepayCreditRequest(idempotency_key="k", user_id="usr_a", source=pb.REPAYMENT_SOURCE_BALANCE),
            metadata=other,
        ),
    ]
    for call in calls:
        code, details = await status_of(call)
        assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_WALLET_OWNER")


async def test_bad_input_names_the_fields(rig: Rig) -> None:
    """Malformed requests → INVALID_ARGUMENT with one BadRequest violation per field."""
    bad_limit = pb.SetCreditLimitRequest(user_id="usr_a", limit=money_pb2.Money(amount=-5, currency="yen"))
    code, details = await status_of(rig.stub.SetCreditLimit(bad_limit, metadata=rig.as_(ADMIN)))
    assert (code, set(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, {"limit.amount", "limit.currency"})
    bad_month = pb.GetCreditStatementRequest(user_id="usr_a", month="2026-13")
    code, details = await status_of(rig.stub.GetCreditStatement(bad_month, metadata=rig.as_("payments.read")))
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["month"])
    bad_repay = pb.RepayCreditRequest(user_id="usr_a", amount=jpy(0))
    code, details = await status_of(rig.stub.RepayCredit(bad_repay, metadata=rig.as_("payments.write")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details["violations"]) == {"idempotency_key", "amount.amount", "source"}
    code, details = await status_of(
        rig.stub.GetCreditLine(pb.GetCreditLineRequest(), metadata=rig.as_("payments.read"))
    )
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["user_id"])


async def test_refusals_are_failed_precondition_with_reasons(rig: Rig) -> None:
    """Lowering below what is used, and repaying more than owed, are FAILED_PRECONDITION with stable reasons."""
    await rig.stub.SetCreditLimit(pb.SetCreditLimitRequest(user_id="usr_a", limit=jpy(5000)), metadata=rig.as_(ADMIN))
    await rig.purchase("usr_a", 3000)
    lower = pb.SetCreditLimitRequest(user_id="usr_a", limit=jpy(2000))
    code, details = await status_of(rig.stub.SetCreditLimit(lower, metadata=rig.as_(ADMIN)))
    assert (code, details["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_BELOW_USED")
    too_much = pb.RepayCreditRequest(
        idempotency_key="x", user_id="usr_a", amount=jpy(3001), source=pb.REPAYMENT_SOURCE_BALANCE
    )
    code, details = await status_of(rig.stub.RepayCredit(too_much, metadata=rig.as_("payments.write")))
    assert (code, details["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "REPAYMENT_EXCEEDS_OWED")
