"""The payments servicers behind the shared middleware: access rules, ownership, errors, replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from furima.payments.v1 import ledger_service_pb2, points_service_pb2, wallet_service_pb2
from furima.payments.v1 import ledger_service_pb2_grpc as ledger_grpc
from furima.payments.v1 import points_service_pb2_grpc as points_grpc
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc
from furima.types.v1 import money_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import SystemClock
from libs.rpc import ServerConfig, error_details, make_channel
from libs.storage import Database, upgrade
from libs.testing import Forger, claims
from services.payments.api.ledger import LEDGER_SERVICE
from services.payments.api.points import POINTS_SERVICE
from services.payments.api.wallet import WALLET_SERVICE
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, assemble
from services.payments.main import build_server

# One expiry for the whole module: a replay must send the very same request.
EXPIRES = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


class Stubs:
    """Stubs of the three payments services on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.points = points_grpc.PointsServiceStub(channel)
        self.wallet = wallet_grpc.WalletServiceStub(channel)
        self.ledger = ledger_grpc.LedgerServiceStub(channel)


@pytest.fixture
def key() -> Forger:
    """Provide the key tokens are signed with."""
    return Forger(kid="k1")


@pytest.fixture
async def stubs(tmp_path: Path, key: Forger) -> AsyncIterator[Stubs]:
    """Provide stubs of a payments server on a free port over SQLite."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/grpc.db")
    await upgrade(database, MIGRATIONS)
    container = assemble(PaymentsConfig(database_url=database.url), database, SystemClock())
    verifier = TokenVerifier("furima-id", "furima.payments", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = build_server(container, ServerConfig(port=0), verifier)
    await server.start()
    async with make_channel(server.address, services=[POINTS_SERVICE, WALLET_SERVICE, LEDGER_SERVICE]) as channel:
        yield Stubs(channel)
    await server.stop(0)
    await database.dispose()


def bearer(key: Forger, scope: str, subject: str = "svc-marketing") -> list[tuple[str, str]]:
    """Call metadata with a token for the payments audience."""
    token = key.sign(claims(scope=scope, audience=["furima.payments"], subject=subject, client_id=subject))
    return [("authorization", f"Bearer {token}")]


def grant_request(**changes: object) -> points_service_pb2.GrantPointsRequest:
    """A well-formed GrantPointsRequest, with changes."""
    expires = Timestamp()
    expires.FromDatetime(EXPIRES)
    fields: dict[str, object] = {
        "idempotency_key": "grant-1",
        "user_id": "usr_a",
        "amount": money_pb2.Money(amount=300, currency="JPY"),
        "campaign_id": "spring",
        "expires_at": expires,
    }
    return points_service_pb2.GrantPointsRequest(**{**fields, **changes})  # type: ignore[arg-type]


async def status_of(call: object) -> tuple[grpc.StatusCode, dict[str, object]]:
    """The status code and rich details of a failing call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), error_details(caught.value)


async def test_grant_replay_and_balance_over_grpc(stubs: Stubs, key: Forger) -> None:
    """GrantPoints twice with one key returns one grant; the user then reads 300 points with one lot."""
    first = await stubs.points.GrantPoints(grant_request(), metadata=bearer(key, "payments.write"))
    again = await stubs.points.GrantPoints(grant_request(), metadata=bearer(key, "payments.write"))
    assert again == first
    mine = await stubs.wallet.GetBalance(
        wallet_service_pb2.GetBalanceRequest(user_id="usr_a"), metadata=bearer(key, "payments.balance.read", "usr_a")
    )
    assert [(b.bucket, b.balance.amount) for b in mine.balances] == [(wallet_service_pb2.BUCKET_POINTS, 300)]
    assert [lot.lot_id for lot in mine.points_lots] == [first.grant.grant_id]
    history = await stubs.wallet.ListTransactions(
        wallet_service_pb2.ListTransactionsRequest(user_id="usr_a", page_size=1), metadata=bearer(key, "payments.read")
    )
    assert ([t.kind for t in history.transactions], history.next_page_token) == (["points_grant"], "")
    verified = await stubs.ledger.VerifyLedger(
        ledger_service_pb2.VerifyLedgerRequest(), metadata=bearer(key, "payments.ledger.admin")
    )
    assert verified.consistent
    assert [(m.currency, m.amount) for m in verified.currency_sums] == [("JPY", 0)]


async def test_without_token_is_unauthenticated(stubs: Stubs) -> None:
    """No bearer token → UNAUTHENTICATED."""
    code, _ = await status_of(stubs.points.GrantPoints(grant_request()))
    assert code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "scope"),
    [("GrantPoints", "payments.read"), ("VerifyLedger", "payments.write"), ("GetBalance", "tns.risk")],
)
async def test_wrong_scope_is_permission_denied(stubs: Stubs, key: Forger, method: str, scope: str) -> None:
    """A valid token without the method's scope → PERMISSION_DENIED, reason SCOPE_MISSING."""
    calls = {
        "GrantPoints": lambda md: stubs.points.GrantPoints(grant_request(), metadata=md),
        "VerifyLedger": lambda md: stubs.ledger.VerifyLedger(ledger_service_pb2.VerifyLedgerRequest(), metadata=md),
        "GetBalance": lambda md: stubs.wallet.GetBalance(
            wallet_service_pb2.GetBalanceRequest(user_id="usr_a"), metadata=md
        ),
    }
    code, details = await status_of(calls[method](bearer(key, scope)))
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")


async def test_user_cannot_read_another_users_wallet(stubs: Stubs, key: Forger) -> None:
    """A user token naming another user's wallet → PERMISSION_DENIED (NOT_WALLET_OWNER), balance and history."""
    other = bearer(key, "payments.balance.read payments.read", "usr_b")
    code, details = await status_of(
        stubs.wallet.GetBalance(wallet_service_pb2.GetBalanceRequest(user_id="usr_a"), metadata=other)
    )
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_WALLET_OWNER")
    code, _ = await status_of(
        stubs.wallet.ListTransactions(wallet_service_pb2.ListTransactionsRequest(user_id="usr_a"), metadata=other)
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED


async def test_bad_grant_lists_field_violations(stubs: Stubs, key: Forger) -> None:
    """A grant without key, amount or expiry → INVALID_ARGUMENT with a BadRequest violation per field."""
    bad = points_service_pb2.GrantPointsRequest(
        user_id="usr_a", campaign_id="spring", amount=money_pb2.Money(currency="JPY")
    )
    code, details = await status_of(stubs.points.GrantPoints(bad, metadata=bearer(key, "payments.write")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details["violations"]) == {"idempotency_key", "amount.amount", "expires_at"}  # type: ignore[arg-type]


async def test_reused_key_over_grpc_is_invalid_argument(stubs: Stubs, key: Forger) -> None:
    """The same key for another amount → INVALID_ARGUMENT, reason IDEMPOTENCY_KEY_REUSED."""
    await stubs.points.GrantPoints(grant_request(), metadata=bearer(key, "payments.write"))
    other = grant_request(amount=money_pb2.Money(amount=301, currency="JPY"))
    code, details = await status_of(stubs.points.GrantPoints(other, metadata=bearer(key, "payments.write")))
    assert (code, details["reason"]) == (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED")


async def test_bad_wallet_request_names_fields(stubs: Stubs, key: Forger) -> None:
    """A missing user id or a forged page token → INVALID_ARGUMENT naming the field."""
    md = bearer(key, "payments.read")
    code, details = await status_of(stubs.wallet.GetBalance(wallet_service_pb2.GetBalanceRequest(), metadata=md))
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["user_id"])  # type: ignore[call-overload]
    forged = wallet_service_pb2.ListTransactionsRequest(user_id="usr_a", page_token="bm90LWEtbGlzdA")
    code, details = await status_of(stubs.wallet.ListTransactions(forged, metadata=md))
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])  # type: ignore[call-overload]
