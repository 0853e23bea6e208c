"""Payments: the state machine, how a payment is funded, and where money goes back.

Pure rules, no I/O. Amounts are integer minor units of one currency per payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from libs.errors import FailedPrecondition, Violations
from services.payments.domain.accounts import check_user_id, is_currency

MAX_KEY_LENGTH = 128
MAX_TEXT = 200


class PaymentStatus(StrEnum):
    """Where a payment stands (the proto's PaymentStatus without the prefix)."""

    AUTHORIZED = "AUTHORIZED"
    IN_REVIEW = "IN_REVIEW"
    CAPTURED = "CAPTURED"
    COMPLETED = "COMPLETED"
    REFUNDED = "REFUNDED"
    CANCELED = "CANCELED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"


class Source(StrEnum):
    """Where the money of a payment came from, in the order they are used."""

    POINTS = "POINTS"
    CASH = "CASH"
    CREDIT = "CREDIT"
    CARD = "CARD"


class Remainder(StrEnum):
    """What pays the part that points and cash do not cover."""

    NONE = "none"
    CREDIT = "credit"
    CARD = "card"


FUNDING_ORDER = (Source.POINTS, Source.CASH, Source.CREDIT, Source.CARD)
# Money goes back the other way: external and borrowed money first, points last (they
# are the platform's own incentive and may be close to expiry).
RETURN_ORDER = tuple(reversed(FUNDING_ORDER))


class Operation(StrEnum):
    """What can be done to an existing payment."""

    CAPTURE = "capture"
    CANCEL = "cancel"
    REVIEW = "review"
    EXPIRE = "expire"
    COMPLETE = "complete"
    REFUND = "refund"


# The state machine: the statuses each operation starts from. Anything else is refused.
# Outcomes: capture → CAPTURED; cancel → CANCELED; review → AUTHORIZED or DECLINED;
# expire → EXPIRED; complete → COMPLETED; refund → the same status, or REFUNDED once
# everything captured went back.
ALLOWED_FROM: Mapping[Operation, frozenset[PaymentStatus]] = {
    Operation.CAPTURE: frozenset({PaymentStatus.AUTHORIZED}),
    Operation.CANCEL: frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.IN_REVIEW}),
    Operation.REVIEW: frozenset({PaymentStatus.IN_REVIEW}),
    Operation.EXPIRE: frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.IN_REVIEW}),
    Operation.COMPLETE: frozenset({PaymentStatus.CAPTURED}),
    Operation.REFUND: frozenset({PaymentStatus.CAPTURED, PaymentStatus.COMPLETED}),
}
FINAL = frozenset({PaymentStatus.REFUNDED, PaymentStatus.CANCELED, PaymentStatus.DECLINED, PaymentStatus.EXPIRED})
"""Statuses nothing leaves."""


class IllegalTransition(FailedPrecondition):
    """The payment is not in a status that allows the operation."""

    default_reason = "ILLEGAL_TRANSITION"


def require_status(current: PaymentStatus, operation: Operation) -> None:
    """Refuse ``operation`` on a payment that is ``current`` unless the machine allows it."""
    if current not in ALLOWED_FROM[operation]:
        raise IllegalTransition(
            f"cannot {operation.value} a payment that is {current.value}",
            metadata={"status": current.value, "operation": operation.value},
        )


@dataclass(frozen=True)
class RiskOutcome:
    """What TnS decided about a payment (UNASSESSED when it could not be asked)."""

    decision: str
    assessment_id: str = ""
    score: int = 0
    reason_codes: tuple[str, ...] = ()


UNASSESSED = RiskOutcome("UNASSESSED")


@dataclass(frozen=True)
class CreateRequest:
    """A request to pay for an order."""

    idempotency_key: str
    order_id: str
    buyer_id: str
    seller_id: str
    amount: int
    currency: str
    remainder: Remainder = Remainder.NONE
    card_token: str = ""
    skip_points: bool = False
    device_id: str = ""
    ip_address: str = ""
    description: str = ""
    capture: bool = False


def _check_key(problems: Violations, key: str) -> None:
    problems.require(key, "idempotency_key")
    if len(key) > MAX_KEY_LENGTH:
        problems.add("idempotency_key", f"at most {MAX_KEY_LENGTH} characters")


def validate_create(request: CreateRequest) -> None:
    """Refuse a malformed CreatePayment, naming the contract's field paths."""
    problems = Violations()
    _check_key(problems, request.idempotency_key)
    if not request.order_id or len(request.order_id) > 64:
        problems.add("order_id", "is required (at most 64 characters)")
    check_user_id(problems, request.buyer_id, "buyer_id")
    if check_user_id(problems, request.seller_id, "seller_id") and request.seller_id == request.buyer_id:
        problems.add("seller_id", "must differ from buyer_id")
    if request.amount <= 0:
        problems.add("amount.amount", "must be greater than zero")
    if not is_currency(request.currency):
        problems.add("amount.currency", "must be an ISO 4217 code of three upper-case letters such as JPY")
    if request.remainder is Remainder.CARD and not request.card_token:
        problems.add("card_token", "is required with REMAINDER_METHOD_CARD")
    if request.remainder is not Remainder.CARD and request.card_token:
        problems.add("card_token", "is only for REMAINDER_METHOD_CARD")
    for name, value in (("device_id", request.device_id), ("ip_address", request.ip_address)):
        if len(value) > 128:
            problems.add(name, "at most 128 characters")
    if len(request.description) > MAX_TEXT:
        problems.add("description", f"at most {MAX_TEXT} characters")
    problems.raise_if_any("the payment has invalid fields")


def validate_reference(idempotency_key: str, payment_id: str, text: str = "", text_field: str = "reason") -> None:
    """Refuse a malformed request that names an existing payment."""
    problems = Violations()
    _check_key(problems, idempotency_key)
    if not payment_id.startswith("pay_") or len(payment_id) > 40:
        problems.add("payment_id", "must be a payment id (pay_...)")
    if len(text) > MAX_TEXT:
        problems.add(text_field, f"at most {MAX_TEXT} characters")
    problems.raise_if_any()


def validate_amount(amount: int | None, currency: str | None, expected_currency: str) -> None:
    """An optional amount (capture, refund): positive, in the payment's currency."""
    if amount is None:
        return
    problems = Violations()
    if amount <= 0:
        problems.add("amount.amount", "must be greater than zero")
    if currency != expected_currency:
        problems.add("amount.currency", f"must be the payment's currency {expected_currency}")
    problems.raise_if_any()


class NotEnoughFunds(FailedPrecondition):
    """Points, cash and the remainder method together do not cover the payment."""

    default_reason = "INSUFFICIENT_FUNDS"


@dataclass(frozen=True)
class Available:
    """What the buyer can pay with right now."""

    points: int
    cash: int
    credit: int


def plan_funding(amount: int, available: Available, remainder: Remainder, skip_points: bool) -> dict[Source, int]:
    """How ``amount`` is funded: points (unless skipped), then cash, then the remainder
    method (credit within what is available, or the card for all the rest).

    NotEnoughFunds (FAILED_PRECONDITION, INSUFFICIENT_FUNDS) when they do not cover it.
    """
    plan: dict[Source, int] = {}
    left = amount
    for source, have in ((Source.POINTS, 0 if skip_points else available.points), (Source.CASH, available.cash)):
        take = min(left, max(have, 0))
        if take:
            plan[source] = take
            left -= take
    if left and remainder is Remainder.CREDIT:
        take = min(left, max(available.credit, 0))
        if take:
            plan[Source.CREDIT] = take
            left -= take
    if left and remainder is Remainder.CARD:
        plan[Source.CARD] = left
        left = 0
    if left:
        raise NotEnoughFunds(
            f"{amount - left} of {amount} is covered; {left} is missing",
            metadata={"missing": str(left)},
        )
    return plan


def allocate_return(amount: int, unreturned: Mapping[Source, int]) -> dict[Source, int]:
    """Which sources get ``amount`` back: RETURN_ORDER, each at most what it has not had back."""
    if amount < 0:
        raise ValueError("amount is not negative")
    back: dict[Source, int] = {}
    left = amount
    for source in RETURN_ORDER:
        take = min(left, unreturned.get(source, 0))
        if take:
            back[source] = take
            left -= take
    if left:
        raise ValueError(f"only {amount - left} of {amount} can be returned")
    return back


def fee_for(net: int, fee_bps: int) -> int:
    """The platform fee on ``net`` (rounded down to the minor unit)."""
    if not 0 <= fee_bps <= 10_000:
        raise ValueError("the fee is between 0 and 10000 basis points")
    return net * fee_bps // 10_000


def fee_share(refund: int, net_left: int, fee_left: int) -> int:
    """The part of the fee a refund after completion takes back: in proportion to what is
    left, and all of it when the refund takes all that is left (so nothing is stranded).
    """
    if not 0 < refund <= net_left:
        raise ValueError("a refund is positive and at most what is left")
    if refund == net_left:
        return fee_left
    return fee_left * refund // net_left


@dataclass(frozen=True)
class FundingLine:
    """What one source paid, and what of it went back (released or refunded)."""

    source: Source
    amount: int
    returned: int = 0

    @property
    def unreturned(self) -> int:
        """What it still has in the payment."""
        return self.amount - self.returned


@dataclass(frozen=True)
class RefundRecord:
    """One refund of a payment."""

    refund_id: str
    amount: int
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class Payment:
    """A payment as stored."""

    payment_id: str
    order_id: str
    buyer_id: str
    seller_id: str
    amount: int
    currency: str
    status: PaymentStatus
    remainder: Remainder
    captured: int
    refunded: int
    fee: int
    shard: int
    risk: RiskOutcome
    description: str
    created_at: datetime
    updated_at: datetime
    hold_expires_at: datetime | None
    card_reference: str | None = None
    funding: tuple[FundingLine, ...] = ()
    refunds: tuple[RefundRecord, ...] = field(default=())

    def unreturned(self) -> dict[Source, int]:
        """Per source, what it still has in the payment."""
        return {line.source: line.unreturned for line in self.funding if line.unreturned}

    @property
    def refundable(self) -> int:
        """What may still be refunded."""
        return self.captured - self.refunded


def refund_limit(payment: Payment, amount: int | None) -> int:
    """The amount a refund takes: all that is refundable when unset; never more than that
    (FAILED_PRECONDITION REFUND_EXCEEDS_CAPTURED).
    """
    wanted = payment.refundable if amount is None else amount
    if wanted <= 0 or wanted > payment.refundable:
        raise FailedPrecondition(
            f"{payment.refundable} of the captured {payment.captured} is left to refund; {wanted} was asked",
            reason="REFUND_EXCEEDS_CAPTURED",
            metadata={"refundable": str(payment.refundable)},
        )
    return wanted
