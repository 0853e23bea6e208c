"""CashService behind the shared middleware: access rules, ownership, errors, conversions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from furima.payments.v1 import cash_service_pb2 as pb
from furima.payments.v1 import cash_service_pb2_grpc as cash_grpc
from furima.payments.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from furima.types.v1 import money_pb2

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import SystemClock
from libs.rpc import ServerConfig, make_channel
from libs.storage import Database, upgrade
from libs.testing import Forger
from services.payments.api.cash import CASH_SERVICE
from services.payments.api.ledger import LEDGER_SERVICE
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, PaymentsContainer, assemble
from services.payments.main import build_server
from services.payments.service.bank_gateway import SimulatedBank
from services.payments.tests.cash_support import ACCOUNT, CLOSED, fund_sales
from services.payments.tests.test_grpc import bearer, status_of


@dataclass
class Cash:
    """Stubs of a running server, and its container to set up balances."""

    cash: cash_grpc.CashServiceStub
    ledger: ledger_service_pb2_grpc.LedgerServiceStub
    payments: PaymentsContainer


@pytest.fixture
def key() -> Forger:
    """Provide the key tokens are signed with."""
    return Forger(kid="k1")


@pytest.fixture
async def served(tmp_path: Path, key: Forger) -> AsyncIterator[Cash]:
    """Provide a payments server with CashService over SQLite and a simulated bank."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/grpc.db")
    await upgrade(database, MIGRATIONS)
    bank = await SimulatedBank.open(f"sqlite+aiosqlite:///{tmp_path}/bank.db", seed=3)
    container = assemble(PaymentsConfig(database_url=database.url), database, SystemClock(), bank=bank)
    flows = container.cash
    verifier = TokenVerifier("furima-id", "furima.payments", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = build_server(container, ServerConfig(port=0), verifier)
    await server.start()
    async with make_channel(server.address, services=[CASH_SERVICE, LEDGER_SERVICE]) as channel:
        yield Cash(cash_grpc.CashServiceStub(channel), ledger_service_pb2_grpc.LedgerServiceStub(channel), container)
    await server.stop(0)
    await flows.stop()
    await bank.close()
    await database.dispose()


def top_up(**changes: object) -> pb.TopUpRequest:
    """A well-formed TopUpRequest, with changes."""
    fields: dict[str, object] = {
        "idempotency_key": "top-1",
        "user_id": "usr_a",
        "amount": money_pb2.Money(amount=5000, currency="JPY"),
        "bank_account": ACCOUNT,
    }
    return pb.TopUpRequest(**{**fields, **changes})  # type: ignore[arg-type]


async def test_top_up_then_read_it_back(served: Cash, key: Forger) -> None:
    """A service tops up a user; the user reads the completed flow; the bank reconciles and the ledger verifies."""
    done = (await served.cash.TopUp(top_up(), metadata=bearer(key, "payments.write"))).bank_transfer
    assert (done.kind, done.status, done.amount.amount, done.amount.currency, done.attempts) == (
        pb.BANK_TRANSFER_KIND_TOP_UP,
        pb.BANK_TRANSFER_STATUS_COMPLETED,
        5000,
        "JPY",
        1,
    )
    assert done.bank_reference
    assert not done.HasField("fee")
    read = await served.cash.GetBankTransfer(
        pb.GetBankTransferRequest(bank_transfer_id=done.bank_transfer_id),
        metadata=bearer(key, "payments.read", "usr_a"),
    )
    assert read.bank_transfer == done
    reconciled = await served.cash.ReconcileBank(
        pb.ReconcileBankRequest(), metadata=bearer(key, "payments.ledger.admin")
    )
    assert (reconciled.consistent, reconciled.matched, reconciled.in_flight, list(reconciled.mismatches)) == (
        True,
        1,
        0,
        [],
    )
    verified = await served.ledger.VerifyLedger(
        ledger_service_pb2.VerifyLedgerRequest(), metadata=bearer(key, "payments.ledger.admin")
    )
    assert verified.consistent


async def test_withdrawal_and_rejection_over_grpc(served: Cash, key: Forger) -> None:
    """A user withdraws their own sales (fee shown); a closed account comes back REVERTED with the reason."""
    await fund_sales(served.payments, "usr_a", 10_000)
    own = bearer(key, "payments.write", "usr_a")
    request = pb.WithdrawRequest(
        idempotency_key="w-1",
        user_id="usr_a",
        amount=money_pb2.Money(amount=3000, currency="JPY"),
        bank_account=ACCOUNT,
    )
    paid = (await served.cash.Withdraw(request, metadata=own)).bank_transfer
    assert (paid.status, paid.fee.amount) == (pb.BANK_TRANSFER_STATUS_COMPLETED, 200)
    request.idempotency_key, request.bank_account = "w-2", CLOSED
    rejected = (await served.cash.Withdraw(request, metadata=own)).bank_transfer
    assert (rejected.status, rejected.failure_reason) == (pb.BANK_TRANSFER_STATUS_REVERTED, "ACCOUNT_CLOSED")


async def test_without_token_is_unauthenticated(served: Cash) -> None:
    """No bearer token → UNAUTHENTICATED."""
    code, _ = await status_of(served.cash.TopUp(top_up()))
    assert code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("method", "scope"), [("TopUp", "payments.read"), ("ReconcileBank", "payments.write")])
async def test_wrong_scope_is_permission_denied(served: Cash, key: Forger, method: str, scope: str) -> None:
    """A valid token without the method's scope → PERMISSION_DENIED, reason SCOPE_MISSING."""
    calls = {
        "TopUp": lambda md: served.cash.TopUp(top_up(), metadata=md),
        "ReconcileBank": lambda md: served.cash.ReconcileBank(pb.ReconcileBankRequest(), metadata=md),
    }
    code, details = await status_of(calls[method](bearer(key, scope)))
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")


async def test_users_act_only_for_themselves(served: Cash, key: Forger) -> None:
    """Another user's flow cannot be read, nor a top-up made in another user's name (NOT_WALLET_OWNER)."""
    done = (await served.cash.TopUp(top_up(), metadata=bearer(key, "payments.write"))).bank_transfer
    code, details = await status_of(
        served.cash.GetBankTransfer(
            pb.GetBankTransferRequest(bank_transfer_id=done.bank_transfer_id),
            metadata=bearer(key, "payments.read", "usr_b"),
        )
    )
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_WALLET_OWNER")
    code, details = await status_of(
        served.cash.TopUp(top_up(idempotency_key="top-2"), metadata=bearer(key, "payments.write", "usr_b"))
    )
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_WALLET_OWNER")


async def test_bad_input_lists_field_violations(served: Cash, key: Forger) -> None:
    """Missing key, zero amount, bad currency and account → INVALID_ARGUMENT naming each field."""
    bad = pb.TopUpRequest(user_id="usr_a", amount=money_pb2.Money(currency="yen"), bank_account="123")
    code, details = await status_of(served.cash.TopUp(bad, metadata=bearer(key, "payments.write")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details["violations"]) == {  # type: ignore[call-overload]
        "idempotency_key",
        "amount.amount",
        "amount.currency",
        "bank_account",
    }
    code, details = await status_of(
        served.cash.GetBankTransfer(pb.GetBankTransferRequest(), metadata=bearer(key, "payments.read"))
    )
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["bank_transfer_id"])  # type: ignore[call-overload]


async def test_refusals_map_to_status_codes(served: Cash, key: Forger) -> None:
    """Short of sales → INSUFFICIENT_FUNDS; no flow → NOT_FOUND; reused key → INVALID_ARGUMENT."""
    write = bearer(key, "payments.write")
    withdraw = pb.WithdrawRequest(
        idempotency_key="w-1",
        user_id="usr_a",
        amount=money_pb2.Money(amount=3000, currency="JPY"),
        bank_account=ACCOUNT,
    )
    code, details = await status_of(served.cash.Withdraw(withdraw, metadata=write))
    assert (code, details["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    code, _ = await status_of(
        served.cash.GetBankTransfer(
            pb.GetBankTransferRequest(bank_transfer_id="btr_x"), metadata=bearer(key, "payments.read")
        )
    )
    assert code is grpc.StatusCode.NOT_FOUND
    await served.cash.TopUp(top_up(), metadata=write)
    code, details = await status_of(
        served.cash.TopUp(top_up(amount=money_pb2.Money(amount=1, currency="JPY")), metadata=write)
    )
    assert (code, details["reason"]) == (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED")


async def test_list_bank_transfers_pages_filters_and_owners(served: Cash, key: Forger) -> None:
    """usr_a's three top-ups and two withdrawals (one rejected), newest first in pages of 2;
    by kind and status; another user's token is NOT_WALLET_OWNER; bad filters name their field.
    """
    write = bearer(key, "payments.write")
    await fund_sales(served.payments, "usr_a", 20_000)
    made = []
    for i in range(3):
        made.append((await served.cash.TopUp(top_up(idempotency_key=f"t{i}"), metadata=write)).bank_transfer)
    for i, account in enumerate((ACCOUNT, CLOSED)):
        request = pb.WithdrawRequest(
            idempotency_key=f"w{i}",
            user_id="usr_a",
            amount=money_pb2.Money(amount=1000, currency="JPY"),
            bank_account=account,
        )
        made.append((await served.cash.Withdraw(request, metadata=write)).bank_transfer)
    await served.cash.TopUp(top_up(idempotency_key="other", user_id="usr_b"), metadata=write)

    own = bearer(key, "payments.read", "usr_a")
    listed, token = [], ""
    while True:
        request = pb.ListBankTransfersRequest(user_id="usr_a", page_size=2, page_token=token)
        reply = await served.cash.ListBankTransfers(request, metadata=own)
        assert len(reply.bank_transfers) <= 2
        listed += list(reply.bank_transfers)
        token = reply.next_page_token
        if not token:
            break
    assert [f.bank_transfer_id for f in listed] == sorted((f.bank_transfer_id for f in made), reverse=True)
    assert {f.bank_transfer_id: f for f in listed} == {f.bank_transfer_id: f for f in made}

    async def ids(**fields: object) -> list[str]:
        request = pb.ListBankTransfersRequest(user_id="usr_a", **fields)  # type: ignore[arg-type]
        return [f.bank_transfer_id for f in (await served.cash.ListBankTransfers(request, metadata=own)).bank_transfers]

    withdrawals = await ids(kinds=[pb.BANK_TRANSFER_KIND_WITHDRAWAL])
    assert sorted(withdrawals) == sorted(f.bank_transfer_id for f in made[3:])
    reverted = await ids(statuses=[pb.BANK_TRANSFER_STATUS_REVERTED])
    assert reverted == [made[4].bank_transfer_id]
    assert await ids(kinds=[pb.BANK_TRANSFER_KIND_CREDIT_REPAYMENT]) == []

    foreign = served.cash.ListBankTransfers(pb.ListBankTransfersRequest(user_id="usr_b"), metadata=own)
    code, details = await status_of(foreign)
    assert (code, details.get("reason")) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_WALLET_OWNER")
    anonymous = served.cash.ListBankTransfers(pb.ListBankTransfersRequest(user_id="usr_a"))
    assert (await status_of(anonymous))[0] is grpc.StatusCode.UNAUTHENTICATED
    bad = pb.ListBankTransfersRequest(
        user_id="bob", kinds=[0], statuses=[pb.BANK_TRANSFER_STATUS_PENDING, 9], page_token="WzFd"
    )
    code, details = await status_of(served.cash.ListBankTransfers(bad, metadata=own))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details["violations"]) == {"user_id", "kinds[0]", "statuses[1]"}  # type: ignore[arg-type]
    token_only = pb.ListBankTransfersRequest(user_id="usr_a", page_token="WzFd")  # [1]: not an id
    code, details = await status_of(served.cash.ListBankTransfers(token_only, metadata=own))
    assert (code, set(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, {"page_token"})  # type: ignore[arg-type]
