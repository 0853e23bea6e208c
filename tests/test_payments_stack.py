"""Payments in the real stack: ID issues the tokens, TnS assesses every payment, payments
moves the money — over gRPC, with the access rules of the protos.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from furima.payments.v1 import payment_service_pb2 as pay_pb
from furima.payments.v1 import payment_service_pb2_grpc as pay_grpc
from furima.payments.v1 import wallet_service_pb2 as wallet_pb
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc
from furima.types.v1 import money_pb2

from libs.rpc import error_details, make_channel
from libs.storage import is_postgres
from libs.testing import postgres_admin_url, temporary_postgres_database
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.main import PaymentsService
from services.tns.main import TnsService
from tests.helpers import ALICE, BOB, bearer, partner_tokens, sign_in
from tests.stack import Stack, running_payments

_keys = itertools.count(1)


@pytest.fixture
async def payments_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Payments' own empty database, on the same backend as the stack's."""
    if not is_postgres(database_url):
        yield f"sqlite+aiosqlite:///{tmp_path}/payments.db"
        return
    admin = postgres_admin_url()
    assert admin is not None
    async with temporary_postgres_database(admin) as url:
        yield url


@pytest.fixture
async def payments(stack: Stack, tns: TnsService, payments_database_url: str) -> AsyncIterator[PaymentsService]:
    """Payments assessing through the running TnS."""
    async with running_payments(stack, payments_database_url, tns_target=tns.address) as service:
        yield service


async def _fund(service: PaymentsService, user_id: str, amount: int) -> None:
    # Money in as a completed bank top-up leaves it (the bank saga is tested on its own).
    bank = platform_account(AccountKind.BANK_CLEARING, "JPY")
    cash = user_account(user_id, AccountKind.CASH, "JPY")
    await service.container.ledger.transfer(TransferDraft("top_up", (Leg(bank, -amount), Leg(cash, amount))))


def _create(buyer: str, seller: str, amount: int, **changes: object) -> pay_pb.CreatePaymentRequest:
    fields: dict[str, object] = {
        "idempotency_key": f"k{next(_keys)}",
        "order_id": "ord_1",
        "buyer_id": buyer,
        "seller_id": seller,
        "amount": money_pb2.Money(amount=amount, currency="JPY"),
        "device_id": "dev-1",
    }
    fields.update(changes)
    return pay_pb.CreatePaymentRequest(**fields)  # type: ignore[arg-type]


async def test_a_purchase_through_risk_escrow_and_completion(stack: Stack, payments: PaymentsService) -> None:
    """Alice pays Bob ¥3,000: TnS approves, capture, completion; Bob's proceeds are ¥2,700."""
    alice, bob = await sign_in(stack, ALICE), await sign_in(stack, BOB)
    await _fund(payments, alice.user.id, 10_000)
    service = await stack.client_token("svc-payments", scope="payments.write payments.read")
    async with make_channel(payments.address) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)
        created = (
            await stub.CreatePayment(_create(alice.user.id, bob.user.id, 3000), metadata=bearer(service))
        ).payment
        assert created.status == pay_pb.PAYMENT_STATUS_AUTHORIZED
        assert (created.risk.decision, created.risk.assessment_id.startswith("rsk_")) == ("APPROVE", True)
        capture = pay_pb.CapturePaymentRequest(idempotency_key="cap", payment_id=created.payment_id)
        await stub.CapturePayment(capture, metadata=bearer(service))
        complete = pay_pb.CompletePaymentRequest(idempotency_key="done", payment_id=created.payment_id)
        done = (await stub.CompletePayment(complete, metadata=bearer(service))).payment
        assert (done.status, done.fee.amount) == (pay_pb.PAYMENT_STATUS_COMPLETED, 300)

        # Each party reads the payment with their own token; the seller sees the proceeds.
        get = pay_pb.GetPaymentRequest(payment_id=created.payment_id)
        for user in (alice, bob):
            seen = await stub.GetPayment(get, metadata=bearer(user.tokens.access_token))
            assert seen.payment.status == pay_pb.PAYMENT_STATUS_COMPLETED
        wallet = wallet_grpc.WalletServiceStub(channel)
        mine = await wallet.GetBalance(
            wallet_pb.GetBalanceRequest(user_id=bob.user.id), metadata=bearer(bob.tokens.access_token)
        )
        assert [(b.bucket, b.balance.amount) for b in mine.balances] == [(wallet_pb.BUCKET_SALES, 2700)]


async def test_a_new_account_buying_big_is_held_for_review(stack: Stack, payments: PaymentsService) -> None:
    """¥50,000 from a days-old account: TnS says REVIEW, the funds are held, capture waits."""
    alice, bob = await sign_in(stack, ALICE), await sign_in(stack, BOB)
    await _fund(payments, alice.user.id, 60_000)
    service = await stack.client_token("svc-payments", scope="payments.write")
    async with make_channel(payments.address) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)
        held = (await stub.CreatePayment(_create(alice.user.id, bob.user.id, 50_000), metadata=bearer(service))).payment
        assert held.status == pay_pb.PAYMENT_STATUS_IN_REVIEW
        assert "NEW_ACCOUNT_HIGH_AMOUNT" in held.risk.reason_codes
        capture = pay_pb.CapturePaymentRequest(idempotency_key="cap", payment_id=held.payment_id)
        with pytest.raises(grpc.aio.AioRpcError) as waiting:
            await stub.CapturePayment(capture, metadata=bearer(service))
        assert waiting.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(waiting.value)["reason"] == "ILLEGAL_TRANSITION"


async def test_payment_access_rules(stack: Stack, payments: PaymentsService) -> None:
    """Users cannot move money; a third user cannot read the payment; missing token → UNAUTHENTICATED;
    ReviewPayment needs payments.review.
    """
    alice, bob = await sign_in(stack, ALICE), await sign_in(stack, BOB)
    await _fund(payments, alice.user.id, 5_000)
    service = await stack.client_token("svc-payments", scope="payments.write")
    async with make_channel(payments.address) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stub.CreatePayment(_create(alice.user.id, bob.user.id, 100))
        assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as as_user:
            await stub.CreatePayment(
                _create(alice.user.id, bob.user.id, 100), metadata=bearer(alice.tokens.access_token)
            )
        assert as_user.value.code() is grpc.StatusCode.PERMISSION_DENIED
        reader = await stack.client_token("svc-payments", scope="payments.read")
        with pytest.raises(grpc.aio.AioRpcError) as read_only:
            await stub.CreatePayment(_create(alice.user.id, bob.user.id, 100), metadata=bearer(reader))
        assert read_only.value.code() is grpc.StatusCode.PERMISSION_DENIED
        created = (await stub.CreatePayment(_create(alice.user.id, bob.user.id, 100), metadata=bearer(service))).payment
        review = pay_pb.ReviewPaymentRequest(idempotency_key="rv", payment_id=created.payment_id, approve=True)
        with pytest.raises(grpc.aio.AioRpcError) as not_reviewer:
            await stub.ReviewPayment(review, metadata=bearer(service))
        assert not_reviewer.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_bad_input_and_foreign_reads_over_grpc(stack: Stack, payments: PaymentsService) -> None:
    """INVALID_ARGUMENT with field paths; a user outside the payment → PERMISSION_DENIED; a partner
    with payments.balance.read reads only the consenting user's balance and no payment.
    """
    alice, bob = await sign_in(stack, ALICE), await sign_in(stack, BOB)
    await _fund(payments, alice.user.id, 5_000)
    service = await stack.client_token("svc-payments", scope="payments.write")
    async with make_channel(payments.address) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.CreatePayment(
                _create(alice.user.id, "bob", 0, remainder_method=pay_pb.REMAINDER_METHOD_CARD),
                metadata=bearer(service),
            )
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        violations = error_details(bad.value)["violations"]
        assert isinstance(violations, dict)
        assert set(violations) == {"seller_id", "amount.amount", "card_token"}

        created = (
            await stub.CreatePayment(_create(alice.user.id, "usr_someone", 500), metadata=bearer(service))
        ).payment
        get = pay_pb.GetPaymentRequest(payment_id=created.payment_id)
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await stub.GetPayment(get, metadata=bearer(bob.tokens.access_token))
        assert foreign.value.code() is grpc.StatusCode.PERMISSION_DENIED

        partner = (await partner_tokens(stack, alice.tokens.access_token)).tokens.access_token
        wallet = wallet_grpc.WalletServiceStub(channel)
        own = await wallet.GetBalance(wallet_pb.GetBalanceRequest(user_id=alice.user.id), metadata=bearer(partner))
        assert [(b.bucket, b.balance.amount) for b in own.balances] == [(wallet_pb.BUCKET_CASH, 4_500)]
        for forbidden in (
            wallet.GetBalance(wallet_pb.GetBalanceRequest(user_id=bob.user.id), metadata=bearer(partner)),
            stub.GetPayment(get, metadata=bearer(partner)),
            wallet.ListTransactions(wallet_pb.ListTransactionsRequest(user_id=alice.user.id), metadata=bearer(partner)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await forbidden
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
