"""Builders of the payments outbox payloads (`furima.payments.v1.events_pb2`)."""

from __future__ import annotations

from datetime import datetime

from furima.payments.v1 import events_pb2
from furima.types.v1 import money_pb2

from libs.pb import timestamp
from services.payments.domain.payments import Payment
from services.payments.domain.points import PointsGrant, PointsLot


def points_granted(grant: PointsGrant) -> events_pb2.PointsGranted:
    """Points were granted."""
    return events_pb2.PointsGranted(
        grant_id=grant.grant_id,
        transfer_id=grant.transfer_id,
        user_id=grant.user_id,
        amount=money_pb2.Money(amount=grant.amount, currency=grant.currency),
        campaign_id=grant.campaign_id,
        expires_at=timestamp(grant.expires_at),
        granted_at=timestamp(grant.granted_at),
    )


def points_expired(lot: PointsLot, transfer_id: str, at: datetime) -> events_pb2.PointsExpired:
    """The rest of a lot expired."""
    return events_pb2.PointsExpired(
        lot_id=lot.lot_id,
        transfer_id=transfer_id,
        user_id=lot.user_id,
        amount=money_pb2.Money(amount=lot.remaining, currency=lot.currency),
        campaign_id=lot.campaign_id,
        expired_at=timestamp(at),
    )


def payment_event(payment: Payment, transition: str, moved: int, refund_id: str = "") -> events_pb2.PaymentEvent:
    """A payment's transition (AUTHORIZED, CAPTURED, COMPLETED, REFUNDED, ...)."""
    return events_pb2.PaymentEvent(
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        buyer_id=payment.buyer_id,
        seller_id=payment.seller_id,
        transition=transition,
        amount=money_pb2.Money(amount=payment.amount, currency=payment.currency),
        moved=money_pb2.Money(amount=moved, currency=payment.currency),
        fee=money_pb2.Money(amount=payment.fee, currency=payment.currency),
        funding={line.source.value: line.amount for line in payment.funding},
        refund_id=refund_id,
        occurred_at=timestamp(payment.updated_at),
    )
