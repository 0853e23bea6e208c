"""Points: grants from a campaign budget, held in lots that expire; spent first, soonest expiry first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.errors import Violations
from services.payments.domain.accounts import check_user_id, is_currency

MAX_KEY_LENGTH = 128
MAX_CAMPAIGN_LENGTH = 48


@dataclass(frozen=True)
class GrantRequest:
    """A campaign's request to grant points to a user."""

    idempotency_key: str
    user_id: str
    amount: int
    currency: str
    campaign_id: str
    expires_at: datetime | None
    description: str = ""


@dataclass(frozen=True)
class PointsGrant:
    """A grant that happened: its transfer, and the lot it created (``grant_id`` is the lot id)."""

    grant_id: str
    transfer_id: str
    user_id: str
    amount: int
    currency: str
    campaign_id: str
    expires_at: datetime
    granted_at: datetime


@dataclass(frozen=True)
class PointsLot:
    """Points granted together; ``remaining`` shrinks as they are spent."""

    lot_id: str
    user_id: str
    granted: int
    remaining: int
    currency: str
    campaign_id: str
    expires_at: datetime


def validate_grant(request: GrantRequest, now: datetime | None) -> None:
    """Refuse a malformed grant, naming the contract's field paths; with ``now``, also an
    expiry that has passed (left out when a replay may still be answered).
    """
    problems = Violations()
    problems.require(request.idempotency_key, "idempotency_key")
    if len(request.idempotency_key) > MAX_KEY_LENGTH:
        problems.add("idempotency_key", f"at most {MAX_KEY_LENGTH} characters")
    check_user_id(problems, request.user_id)
    if request.amount <= 0:
        problems.add("amount.amount", "must be greater than zero")
    if not is_currency(request.currency):
        problems.add("amount.currency", "must be an ISO 4217 code of three upper-case letters such as JPY")
    if not request.campaign_id or "/" in request.campaign_id or len(request.campaign_id) > MAX_CAMPAIGN_LENGTH:
        problems.add("campaign_id", f"is required: up to {MAX_CAMPAIGN_LENGTH} characters, no '/'")
    if request.expires_at is None:
        problems.add("expires_at", "is required")
    elif now is not None and request.expires_at <= now:
        problems.add("expires_at", "must be in the future")
    if len(request.description) > 200:
        problems.add("description", "at most 200 characters")
    problems.raise_if_any("the grant has invalid fields")


def spendable(lots: Iterable[PointsLot], now: datetime) -> list[PointsLot]:
    """Unexpired lots with points left, in the order they are spent: soonest expiry first."""
    return sorted((lot for lot in lots if lot.remaining > 0 and lot.expires_at > now), key=lambda x: x.expires_at)


def plan_spend(lots: Sequence[PointsLot], amount: int, now: datetime) -> list[tuple[str, int]]:
    """Which lots pay ``amount`` points and how much each: (lot id, points), soonest expiry
    first. Raises ValueError when the unexpired points do not cover it.
    """
    if amount < 0:
        raise ValueError("amount is not negative")
    plan: list[tuple[str, int]] = []
    left = amount
    for lot in spendable(lots, now):
        if left == 0:
            break
        take = min(left, lot.remaining)
        plan.append((lot.lot_id, take))
        left -= take
    if left:
        raise ValueError(f"{amount - left} points available, {amount} needed")
    return plan


def split_payment(points_available: int, amount: int) -> tuple[int, int]:
    """How a payment of ``amount`` divides into (points, other money): points first."""
    if amount < 0 or points_available < 0:
        raise ValueError("amounts are not negative")
    from_points = min(points_available, amount)
    return from_points, amount - from_points
