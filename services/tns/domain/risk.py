"""Transaction risk: what is known about a money movement, and the score and decision
it earns. Pure: the features are gathered by the store, the policy is configuration.

The score is the sum of the points of every reason found, capped at 100; the decision
follows from the score's thresholds, except that a suspended party or self-dealing
declines whatever the score.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.errors import Violations
from services.tns.domain.enforcement import StandingLevel

# The windows the features are counted in (the store queries them, the names say them).
VELOCITY_WINDOW = timedelta(hours=1)
AMOUNT_WINDOW = timedelta(hours=24)
DEVICE_WINDOW = timedelta(days=30)

# Column widths of risk_assessments: longer values would fail the insert on PostgreSQL.
TRANSACTION_ID_MAX = 100
USER_ID_MAX = 40
DEVICE_ID_MAX = 128
IP_ADDRESS_MAX = 64

WATCHLIST = "watchlist"
TRUSTED = "trusted"

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Decision(StrEnum):
    """What the payment should do with the transaction."""

    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    DECLINE = "DECLINE"


class PaymentMethod(StrEnum):
    """How the buyer pays."""

    BALANCE = "BALANCE"
    POINTS = "POINTS"
    CREDIT = "CREDIT"
    CARD = "CARD"
    BANK = "BANK"


class ReasonCode(StrEnum):
    """The stable reason codes of the contract (``RiskReason.code``)."""

    NEW_ACCOUNT_HIGH_AMOUNT = "NEW_ACCOUNT_HIGH_AMOUNT"
    BUYER_VELOCITY = "BUYER_VELOCITY"
    SHARED_DEVICE = "SHARED_DEVICE"
    RESTRICTED_PARTY = "RESTRICTED_PARTY"
    SUSPENDED_PARTY = "SUSPENDED_PARTY"
    SELF_DEALING = "SELF_DEALING"
    HIGH_AMOUNT = "HIGH_AMOUNT"
    WATCHLIST = "WATCHLIST"


# Reasons that decline whatever the score adds up to.
HARD_DECLINES = frozenset({ReasonCode.SUSPENDED_PARTY, ReasonCode.SELF_DEALING})


@dataclass(frozen=True, slots=True)
class TransactionRequest:
    """A money movement to assess, as the caller describes it."""

    transaction_id: str
    buyer_id: str
    seller_id: str
    """Empty for a movement without a counterparty (a top-up, a withdrawal)."""
    amount: int
    """Minor units of ``currency`` (JPY: yen)."""
    currency: str
    payment_method: PaymentMethod | None
    """None when the caller left it unspecified (or sent a value this service does not know)."""
    device_id: str = ""
    ip_address: str = ""

    def same_movement(self, other: TransactionRequest) -> bool:
        """Whether ``other`` describes the same movement (device and network may differ on a retry)."""
        return (self.buyer_id, self.seller_id, self.amount, self.currency, self.payment_method) == (
            other.buyer_id,
            other.seller_id,
            other.amount,
            other.currency,
            other.payment_method,
        )


@dataclass(frozen=True, slots=True)
class Party:
    """What TnS knows of one side of the movement."""

    user_id: str
    level: StandingLevel = StandingLevel.GOOD
    """The effective standing now (a restriction that has run out is no longer one)."""
    suspended: bool = False
    """Suspended by the ID service (from its event stream)."""
    labels: frozenset[str] = frozenset()
    """Labels in force now (``"watchlist"``, ``"trusted"``...)."""

    @property
    def is_suspended(self) -> bool:
        """Suspended by the ID service or by TnS enforcement."""
        return self.suspended or self.level is StandingLevel.SUSPENDED


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """A request and the features gathered for it."""

    request: TransactionRequest
    buyer: Party
    seller: Party | None = None
    """None for a movement without a counterparty."""
    buyer_account_age_days: float | None = None
    """Days since the buyer signed up; None when TnS has not heard of the sign-up."""
    buyer_recent_assessments: int = 0
    """The buyer's earlier assessments within `VELOCITY_WINDOW` (this one excluded)."""
    buyer_recent_amount: int = 0
    """The buyer's earlier assessed amounts in this currency within `AMOUNT_WINDOW`."""
    device_buyers: int = 1
    """Distinct buyers seen on this device within `DEVICE_WINDOW`, this buyer included."""

    @property
    def self_dealing(self) -> bool:
        """The buyer pays themselves."""
        return bool(self.request.seller_id) and self.request.seller_id == self.request.buyer_id


@dataclass(frozen=True)
class RiskPolicy:
    """Weights and thresholds. Amounts are minor units of the transaction's currency."""

    review_at: int = 40
    """A score at or above this is REVIEW."""
    decline_at: int = 70
    """A score at or above this is DECLINE."""
    high_amount: int = 100_000
    """HIGH_AMOUNT from this amount on (¥100,000)."""
    high_amount_points: int = 15
    new_account_days: float = 7.0
    """A buyer younger than this (or whose sign-up TnS has not seen) is new."""
    new_account_amount: int = 30_000
    """NEW_ACCOUNT_HIGH_AMOUNT for a new buyer from this amount on."""
    new_account_points: int = 40
    velocity_count: int = 5
    """BUYER_VELOCITY once the buyer already had this many assessments in the last hour."""
    velocity_count_points: int = 25
    velocity_amount: int = 300_000
    """BUYER_VELOCITY once the last 24 hours, this amount included, reach this total."""
    velocity_amount_points: int = 20
    shared_device_buyers: int = 3
    """SHARED_DEVICE once this many distinct buyers used the device in 30 days."""
    shared_device_points: int = 30
    restricted_points: int = 40
    watchlist_points: int = 30
    hard_decline_points: int = 100
    trusted_exempt: frozenset[ReasonCode] = frozenset({ReasonCode.BUYER_VELOCITY, ReasonCode.HIGH_AMOUNT})
    """Reasons a buyer labelled "trusted" (a known high-volume buyer) does not earn."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the score is what it is: one contribution."""

    code: ReasonCode
    detail: str
    points: int


@dataclass(frozen=True, slots=True)
class Assessment:
    """The outcome of scoring: 0 to 100, the decision and its reasons."""

    score: int
    decision: Decision
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """An assessment as recorded: the request, its outcome, and when it was made."""

    assessment_id: str
    request: TransactionRequest
    outcome: Assessment
    assessed_at: datetime


def validate_request(violations: Violations, request: TransactionRequest) -> None:
    """Record every problem of an assessment request, with the contract's field paths."""
    v = violations
    _require_short(v, request.transaction_id, "transaction_id", TRANSACTION_ID_MAX)
    _require_short(v, request.buyer_id, "buyer_id", USER_ID_MAX)
    if len(request.seller_id) > USER_ID_MAX:
        v.add("seller_id", f"must be at most {USER_ID_MAX} characters")
    if request.amount <= 0:
        v.add("amount.amount", "must be greater than zero")
    if not _CURRENCY.match(request.currency):
        v.add("amount.currency", "must be an ISO 4217 code of three upper-case letters such as JPY")
    if request.payment_method is None:
        v.add("payment_method", "must be one of " + ", ".join(m.value for m in PaymentMethod))
    if len(request.device_id) > DEVICE_ID_MAX:
        v.add("device_id", f"must be at most {DEVICE_ID_MAX} characters")
    if request.ip_address and not _is_ip(request.ip_address):
        v.add("ip_address", "must be an IPv4 or IPv6 address")


def _require_short(v: Violations, value: str, path: str, limit: int) -> None:
    if not value:
        v.add(path, "is required")
    elif len(value) > limit:
        v.add(path, f"must be at most {limit} characters")


def _is_ip(value: str) -> bool:
    if len(value) > IP_ADDRESS_MAX:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def assess(inputs: RiskInputs, policy: RiskPolicy) -> Assessment:
    """Score a transaction and decide what to do with it."""
    found = [r for r in _reasons(inputs, policy) if r.points > 0]
    if TRUSTED in inputs.buyer.labels:
        found = [r for r in found if r.code not in policy.trusted_exempt]
    score = min(100, sum(r.points for r in found))
    if any(r.code in HARD_DECLINES for r in found) or score >= policy.decline_at:
        decision = Decision.DECLINE
    elif score >= policy.review_at:
        decision = Decision.REVIEW
    else:
        decision = Decision.APPROVE
    return Assessment(score, decision, tuple(found))


def _reasons(inputs: RiskInputs, policy: RiskPolicy) -> list[Reason]:
    """Every rule's contribution, in the contract's order of severity (hard rules first)."""
    req, p = inputs.request, policy
    parties = [("buyer", inputs.buyer)] + ([("seller", inputs.seller)] if inputs.seller else [])
    reasons: list[Reason] = []
    if inputs.self_dealing:
        reasons.append(Reason(ReasonCode.SELF_DEALING, "the buyer is also the seller", p.hard_decline_points))
    if suspended := [role for role, party in parties if party.is_suspended]:
        reasons.append(Reason(ReasonCode.SUSPENDED_PARTY, _roles(suspended, "suspended"), p.hard_decline_points))
    if restricted := [role for role, party in parties if party.level is StandingLevel.RESTRICTED]:
        reasons.append(Reason(ReasonCode.RESTRICTED_PARTY, _roles(restricted, "restricted"), p.restricted_points))
    if watched := [role for role, party in parties if WATCHLIST in party.labels]:
        reasons.append(Reason(ReasonCode.WATCHLIST, _roles(watched, "on the watchlist"), p.watchlist_points))
    age = inputs.buyer_account_age_days
    if (age is None or age < p.new_account_days) and req.amount >= p.new_account_amount:
        how_old = "of unknown age" if age is None else f"{age:.1f} days old"
        detail = f"the buyer's account is {how_old} and the amount is {req.amount} {req.currency}"
        reasons.append(Reason(ReasonCode.NEW_ACCOUNT_HIGH_AMOUNT, detail, p.new_account_points))
    if velocity := _velocity(inputs, p):
        reasons.append(velocity)
    if req.device_id and inputs.device_buyers >= p.shared_device_buyers:
        detail = f"{inputs.device_buyers} buyers used this device in the last {DEVICE_WINDOW.days} days"
        reasons.append(Reason(ReasonCode.SHARED_DEVICE, detail, p.shared_device_points))
    if req.amount >= p.high_amount:
        detail = f"{req.amount} {req.currency} is at or above {p.high_amount}"
        reasons.append(Reason(ReasonCode.HIGH_AMOUNT, detail, p.high_amount_points))
    return reasons


def _velocity(inputs: RiskInputs, p: RiskPolicy) -> Reason | None:
    """One BUYER_VELOCITY reason for how often and how much the buyer moved lately."""
    details, points = [], 0
    if inputs.buyer_recent_assessments >= p.velocity_count:
        details.append(f"{inputs.buyer_recent_assessments} earlier transactions in the last hour")
        points += p.velocity_count_points
    total = inputs.buyer_recent_amount + inputs.request.amount
    if total >= p.velocity_amount:
        details.append(f"{total} {inputs.request.currency} in the last 24 hours")
        points += p.velocity_amount_points
    return Reason(ReasonCode.BUYER_VELOCITY, "; ".join(details), points) if details else None


def _roles(roles: list[str], what: str) -> str:
    return f"the {' and the '.join(roles)} {'are' if len(roles) > 1 else 'is'} {what}"
