"""Risk assessments and the features a new one is scored on."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Row, distinct, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.domain.enforcement import Standing, StandingLevel
from services.tns.domain.risk import (
    AMOUNT_WINDOW,
    DEVICE_WINDOW,
    VELOCITY_WINDOW,
    Assessment,
    Decision,
    Party,
    PaymentMethod,
    Reason,
    ReasonCode,
    RiskAssessment,
    RiskInputs,
    TransactionRequest,
)
from services.tns.store.tables import known_users, labels, risk_assessments, standings

_ra = risk_assessments


async def load_inputs(conn: AsyncConnection, request: TransactionRequest, now: datetime) -> RiskInputs:
    """Gather every feature of ``request`` as of ``now``, in two round trips: one
    statement of scalar subqueries, one for the parties' labels.
    """
    buyer, seller = request.buyer_id, request.seller_id
    row = (await conn.execute(select(*_feature_columns(request, now)))).one()
    user_labels = await _active_labels(conn, [buyer, seller] if seller else [buyer], now)
    signed_up_at: datetime | None = row.buyer_signed_up_at
    age = None if signed_up_at is None else (now - signed_up_at).total_seconds() / 86_400
    seller_party = (
        _party(seller, row.seller_level, row.seller_until, row.seller_suspended, user_labels[seller], now)
        if seller
        else None
    )
    return RiskInputs(
        request=request,
        buyer=_party(buyer, row.buyer_level, row.buyer_until, row.buyer_suspended, user_labels[buyer], now),
        seller=seller_party,
        buyer_account_age_days=age,
        buyer_recent_assessments=int(row.recent_count),
        # SUM of a BIGINT is NUMERIC on PostgreSQL: a Decimal.
        buyer_recent_amount=int(row.recent_amount),
        device_buyers=int(row.other_device_buyers) + 1,
    )


def _feature_columns(request: TransactionRequest, now: datetime) -> list[Any]:
    """The scalar subqueries of one feature row (a SELECT without FROM)."""
    buyer, seller = request.buyer_id, request.seller_id
    columns: list[Any] = [
        _user_value(known_users.c.signed_up_at, known_users.c.user_id, buyer, "buyer_signed_up_at"),
        _user_value(known_users.c.suspended, known_users.c.user_id, buyer, "buyer_suspended"),
        _user_value(known_users.c.suspended, known_users.c.user_id, seller, "seller_suspended"),
        _user_value(standings.c.level, standings.c.user_id, buyer, "buyer_level"),
        _user_value(standings.c.restricted_until, standings.c.user_id, buyer, "buyer_until"),
        _user_value(standings.c.level, standings.c.user_id, seller, "seller_level"),
        _user_value(standings.c.restricted_until, standings.c.user_id, seller, "seller_until"),
        select(func.count())
        .select_from(_ra)
        .where(_ra.c.buyer_id == buyer, _ra.c.assessed_at >= now - VELOCITY_WINDOW)
        .scalar_subquery()
        .label("recent_count"),
        select(func.coalesce(func.sum(_ra.c.amount), 0))
        .where(_ra.c.buyer_id == buyer, _ra.c.currency == request.currency, _ra.c.assessed_at >= now - AMOUNT_WINDOW)
        .scalar_subquery()
        .label("recent_amount"),
    ]
    if request.device_id:
        columns.append(
            select(func.count(distinct(_ra.c.buyer_id)))
            .where(
                _ra.c.device_id == request.device_id, _ra.c.buyer_id != buyer, _ra.c.assessed_at >= now - DEVICE_WINDOW
            )
            .scalar_subquery()
            .label("other_device_buyers")
        )
    else:
        # No fingerprint: nothing to share (and no scan of every fingerprint-less row).
        columns.append(literal(0).label("other_device_buyers"))
    return columns


def _user_value(column: Any, key: Any, user_id: str, name: str) -> Any:
    return select(column).where(key == user_id).scalar_subquery().label(name)


async def _active_labels(conn: AsyncConnection, user_ids: list[str], now: datetime) -> defaultdict[str, set[str]]:
    """Labels in force now, per user."""
    rows = await conn.execute(
        select(labels.c.user_id, labels.c.label).where(
            labels.c.user_id.in_(user_ids), or_(labels.c.expires_at.is_(None), labels.c.expires_at > now)
        )
    )
    out: defaultdict[str, set[str]] = defaultdict(set)
    for user_id, label in rows:
        out[user_id].add(label)
    return out


def _party(
    user_id: str,
    level: str | None,
    restricted_until: datetime | None,
    suspended: bool | None,
    user_labels: set[str],
    now: datetime,
) -> Party:
    # Enforcement owns what a standing means now (a restriction runs out by itself).
    standing = Standing(user_id, StandingLevel(level), restricted_until) if level else Standing(user_id)
    return Party(user_id, standing.effective_level(now), bool(suspended), frozenset(user_labels))


async def add(conn: AsyncConnection, assessment: RiskAssessment) -> bool:
    """Insert an assessment; False when its transaction_id already has one."""
    req, outcome = assessment.request, assessment.outcome
    assert req.payment_method is not None  # validated before scoring
    try:
        # A savepoint keeps the transaction usable after losing a race on transaction_id.
        async with conn.begin_nested():
            await conn.execute(
                insert(_ra).values(
                    id=assessment.assessment_id,
                    transaction_id=req.transaction_id,
                    buyer_id=req.buyer_id,
                    seller_id=req.seller_id,
                    amount=req.amount,
                    currency=req.currency,
                    payment_method=req.payment_method.value,
                    device_id=req.device_id,
                    ip_address=req.ip_address,
                    score=outcome.score,
                    decision=outcome.decision.value,
                    reasons=json.dumps(
                        [{"code": r.code.value, "detail": r.detail, "points": r.points} for r in outcome.reasons]
                    ),
                    assessed_at=assessment.assessed_at,
                )
            )
    except IntegrityError:
        return False
    return True


async def by_transaction(conn: AsyncConnection, transaction_id: str) -> RiskAssessment | None:
    """Return the assessment of ``transaction_id``, if it was assessed."""
    row = (await conn.execute(select(_ra).where(_ra.c.transaction_id == transaction_id))).first()
    return _assessment(row) if row else None


def _assessment(row: Row[Any]) -> RiskAssessment:
    m = row._mapping
    request = TransactionRequest(
        transaction_id=m["transaction_id"],
        buyer_id=m["buyer_id"],
        seller_id=m["seller_id"],
        amount=m["amount"],
        currency=m["currency"],
        payment_method=PaymentMethod(m["payment_method"]),
        device_id=m["device_id"],
        ip_address=m["ip_address"],
    )
    reasons = tuple(Reason(ReasonCode(r["code"]), r["detail"], r["points"]) for r in json.loads(m["reasons"]))
    outcome = Assessment(m["score"], Decision(m["decision"]), reasons)
    return RiskAssessment(m["id"], request, outcome, m["assessed_at"])
