"""PaymentService servicer: the payment lifecycle over gRPC."""

from __future__ import annotations

from typing import Any

import grpc
from furima.payments.v1 import payment_service_pb2 as pb
from furima.payments.v1 import payment_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied, Violations
from libs.pb import after_id, next_page, page_size, timestamp
from services.payments.api._convert import enum_filter, money
from services.payments.domain.accounts import check_user_id
from services.payments.domain.payments import CreateRequest, Payment, PaymentStatus, RefundRecord, Remainder, Source
from services.payments.service.payments import Payments

Context = grpc.aio.ServicerContext[Any, Any]

PAYMENT_SERVICE = pb.DESCRIPTOR.services_by_name["PaymentService"]
register_payments = pb_grpc.add_PaymentServiceServicer_to_server

_REMAINDER: dict[int, Remainder] = {
    pb.REMAINDER_METHOD_UNSPECIFIED: Remainder.NONE,
    pb.REMAINDER_METHOD_CREDIT: Remainder.CREDIT,
    pb.REMAINDER_METHOD_CARD: Remainder.CARD,
}
_STATUS = {
    PaymentStatus.AUTHORIZED: pb.PAYMENT_STATUS_AUTHORIZED,
    PaymentStatus.IN_REVIEW: pb.PAYMENT_STATUS_IN_REVIEW,
    PaymentStatus.CAPTURED: pb.PAYMENT_STATUS_CAPTURED,
    PaymentStatus.COMPLETED: pb.PAYMENT_STATUS_COMPLETED,
    PaymentStatus.REFUNDED: pb.PAYMENT_STATUS_REFUNDED,
    PaymentStatus.CANCELED: pb.PAYMENT_STATUS_CANCELED,
    PaymentStatus.DECLINED: pb.PAYMENT_STATUS_DECLINED,
    PaymentStatus.EXPIRED: pb.PAYMENT_STATUS_EXPIRED,
}
_STATUS_OF = {value: status for status, value in _STATUS.items()}
# Role → (as buyer, as seller).
_ROLE: dict[int, tuple[bool, bool]] = {
    pb.PAYMENT_ROLE_UNSPECIFIED: (True, True),
    pb.PAYMENT_ROLE_BUYER: (True, False),
    pb.PAYMENT_ROLE_SELLER: (False, True),
}
_SOURCE = {
    Source.POINTS: pb.FUNDING_SOURCE_POINTS,
    Source.CASH: pb.FUNDING_SOURCE_CASH,
    Source.CREDIT: pb.FUNDING_SOURCE_CREDIT,
    Source.CARD: pb.FUNDING_SOURCE_CARD,
}


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    """Payments for marketplace orders (called by the order services)."""

    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    async def CreatePayment(self, request: pb.CreatePaymentRequest, context: Context) -> pb.CreatePaymentResponse:
        """Fund, assess and hold (or capture) a payment."""
        payment = await self._payments.create(_caller(), create_request(request))
        return pb.CreatePaymentResponse(payment=payment_pb(payment))

    async def CapturePayment(self, request: pb.CapturePaymentRequest, context: Context) -> pb.CapturePaymentResponse:
        """Capture all or part of the hold."""
        amount, currency = _optional_amount(request)
        payment = await self._payments.capture(_caller(), request.idempotency_key, request.payment_id, amount, currency)
        return pb.CapturePaymentResponse(payment=payment_pb(payment))

    async def CancelPayment(self, request: pb.CancelPaymentRequest, context: Context) -> pb.CancelPaymentResponse:
        """Release the hold."""
        payment = await self._payments.cancel(_caller(), request.idempotency_key, request.payment_id, request.reason)
        return pb.CancelPaymentResponse(payment=payment_pb(payment))

    async def CompletePayment(self, request: pb.CompletePaymentRequest, context: Context) -> pb.CompletePaymentResponse:
        """Release escrow to the seller."""
        payment = await self._payments.complete(_caller(), request.idempotency_key, request.payment_id)
        return pb.CompletePaymentResponse(payment=payment_pb(payment))

    async def RefundPayment(self, request: pb.RefundPaymentRequest, context: Context) -> pb.RefundPaymentResponse:
        """Refund to the original sources."""
        amount, currency = _optional_amount(request)
        payment, refund = await self._payments.refund(
            _caller(), request.idempotency_key, request.payment_id, amount, currency, request.reason
        )
        return pb.RefundPaymentResponse(payment=payment_pb(payment), refund=refund_pb(refund, payment.currency))

    async def ReviewPayment(self, request: pb.ReviewPaymentRequest, context: Context) -> pb.ReviewPaymentResponse:
        """A risk reviewer's decision."""
        payment = await self._payments.review(
            _caller(), request.idempotency_key, request.payment_id, request.approve, request.note
        )
        return pb.ReviewPaymentResponse(payment=payment_pb(payment))

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Context) -> pb.GetPaymentResponse:
        """One payment; a user sees only payments they are a party to."""
        payment = await self._payments.get(request.payment_id)
        caller = current_principal()
        if caller.is_user and caller.subject not in (payment.buyer_id, payment.seller_id):
            raise PermissionDenied("a user may read only their own payments", reason="NOT_PAYMENT_PARTY")
        return pb.GetPaymentResponse(payment=payment_pb(payment))

    async def ListPayments(self, request: pb.ListPaymentsRequest, context: Context) -> pb.ListPaymentsResponse:
        """One page of a user's payments, newest first."""
        problems = Violations()
        check_user_id(problems, request.user_id)
        sides = _ROLE.get(request.role)
        if sides is None:
            problems.add("role", "unknown role")
        statuses = enum_filter(problems, "statuses", request.statuses, _STATUS_OF)
        problems.raise_if_any()
        size = page_size(request.page_size)
        before = after_id(request.page_token)
        assert sides is not None
        caller = current_principal()
        if caller.is_user and caller.subject != request.user_id:
            raise PermissionDenied("a user may list only their own payments", reason="NOT_PAYMENT_PARTY")
        found = await self._payments.of_party(
            request.user_id,
            as_buyer=sides[0],
            as_seller=sides[1],
            statuses=statuses,
            before=before,
            limit=size + 1,
        )
        page, token = next_page(found, size, lambda p: p.payment_id)
        return pb.ListPaymentsResponse(payments=[payment_pb(p) for p in page], next_page_token=token)


def _caller() -> str:
    # Idempotency keys are scoped to the calling client.
    return current_principal().client_id


def _optional_amount(request: pb.CapturePaymentRequest | pb.RefundPaymentRequest) -> tuple[int | None, str | None]:
    if not request.HasField("amount"):
        return None, None
    return request.amount.amount, request.amount.currency


def create_request(request: pb.CreatePaymentRequest) -> CreateRequest:
    """The domain request."""
    return CreateRequest(
        idempotency_key=request.idempotency_key,
        order_id=request.order_id,
        buyer_id=request.buyer_id,
        seller_id=request.seller_id,
        amount=request.amount.amount,
        currency=request.amount.currency,
        remainder=_remainder(request.remainder_method),
        card_token=request.card_token,
        skip_points=request.skip_points,
        device_id=request.device_id,
        ip_address=request.ip_address,
        description=request.description,
        capture=request.capture,
    )


def _remainder(value: int) -> Remainder:
    if value not in _REMAINDER:
        raise InvalidArgument(
            "unknown remainder method", [FieldViolation("remainder_method", f"unknown value {value}")]
        )
    return _REMAINDER[value]


def refund_pb(refund: RefundRecord, currency: str) -> pb.Refund:
    """The Refund message."""
    return pb.Refund(
        refund_id=refund.refund_id,
        amount=money(refund.amount, currency),
        reason=refund.reason,
        created_at=timestamp(refund.created_at),
    )


def payment_pb(payment: Payment) -> pb.Payment:
    """The Payment message."""
    c = payment.currency
    message = pb.Payment(
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        buyer_id=payment.buyer_id,
        seller_id=payment.seller_id,
        amount=money(payment.amount, c),
        status=_STATUS[payment.status],
        funding=[
            pb.Funding(source=_SOURCE[f.source], amount=money(f.amount, c), refunded=money(f.returned, c))
            for f in payment.funding
        ],
        captured=money(payment.captured, c),
        refunded=money(payment.refunded, c),
        fee=money(payment.fee, c),
        risk=pb.RiskOutcome(
            decision=payment.risk.decision,
            assessment_id=payment.risk.assessment_id,
            score=payment.risk.score,
            reason_codes=list(payment.risk.reason_codes),
        ),
        refunds=[refund_pb(r, c) for r in payment.refunds],
        description=payment.description,
        created_at=timestamp(payment.created_at),
        updated_at=timestamp(payment.updated_at),
    )
    if payment.hold_expires_at is not None:
        message.hold_expires_at.CopyFrom(timestamp(payment.hold_expires_at))
    return message
