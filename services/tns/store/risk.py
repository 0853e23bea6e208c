"""Risk assessments and the features a new one is scored on."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, distinct, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from libs.storage import Prepared
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


def load_inputs(conn: Connection, request: TransactionRequest, now: datetime) -> RiskInputs:
    """Gather every feature of ``request`` as of ``now``, in two round trips: one
    statement of scalar subqueries, one for the parties' labels.
    """
    buyer, seller = request.buyer_id, request.seller_id
    params = {
        "buyer": buyer,
        "seller": seller,
        "currency": request.currency,
        "device": request.device_id,
        "velocity_since": now - VELOCITY_WINDOW,
        "amount_since": now - AMOUNT_WINDOW,
        "device_since": now - DEVICE_WINDOW,
    }
    row = (_FEATURES_WITH_DEVICE if request.device_id else _FEATURES).rows(conn, params)[0]
    user_labels = _active_labels(conn, buyer, seller, now)
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


def _user_value(column: Any, key: Any, who: str, name: str) -> Any:
    return select(column).where(key == bindparam(who)).scalar_subquery().label(name)


def _feature_columns(with_device: bool) -> list[Any]:
    """The scalar subqueries of one feature row (a SELECT without FROM), values bound at
    execution so the statement is built and compiled once.
    """
    columns: list[Any] = [
        _user_value(known_users.c.signed_up_at, known_users.c.user_id, "buyer", "buyer_signed_up_at"),
        _user_value(known_users.c.suspended, known_users.c.user_id, "buyer", "buyer_suspended"),
        _user_value(known_users.c.suspended, known_users.c.user_id, "seller", "seller_suspended"),
        _user_value(standings.c.level, standings.c.user_id, "buyer", "buyer_level"),
        _user_value(standings.c.restricted_until, standings.c.user_id, "buyer", "buyer_until"),
        _user_value(standings.c.level, standings.c.user_id, "seller", "seller_level"),
        _user_value(standings.c.restricted_until, standings.c.user_id, "seller", "seller_until"),
        select(func.count())
        .select_from(_ra)
        .where(_ra.c.buyer_id == bindparam("buyer"), _ra.c.assessed_at >= bindparam("velocity_since"))
        .scalar_subquery()
        .label("recent_count"),
        select(func.coalesce(func.sum(_ra.c.amount), 0))
        .where(_ra.c.buyer_id == bindparam("buyer"), _ra.c.currency == bindparam("currency"))
        .where(_ra.c.assessed_at >= bindparam("amount_since"))
        .scalar_subquery()
        .label("recent_amount"),
    ]
    if with_device:
        columns.append(
            select(func.count(distinct(_ra.c.buyer_id)))
            .where(_ra.c.device_id == bindparam("device"), _ra.c.buyer_id != bindparam("buyer"))
            .where(_ra.c.assessed_at >= bindparam("device_since"))
            .scalar_subquery()
            .label("other_device_buyers")
        )
    else:
        # No fingerprint: nothing to share (and no scan of every fingerprint-less row).
        columns.append(literal(0).label("other_device_buyers"))
    return columns


# Every assessment runs these: `Prepared` (compiled once, on the DBAPI cursor).
_FEATURES = Prepared(select(*_feature_columns(with_device=False)))
_FEATURES_WITH_DEVICE = Prepared(select(*_feature_columns(with_device=True)))
_IN_FORCE = or_(labels.c.expires_at.is_(None), labels.c.expires_at > bindparam("now"))
# The buyer's labels, or the buyer's and the seller's (plain equalities: no expanding IN).
_LABELS = Prepared(select(labels.c.user_id, labels.c.label).where(labels.c.user_id == bindparam("buyer"), _IN_FORCE))
_LABELS_OF_BOTH = Prepared(
    select(labels.c.user_id, labels.c.label).where(
        or_(labels.c.user_id == bindparam("buyer"), labels.c.user_id == bindparam("seller")), _IN_FORCE
    )
)
# A duplicate transaction_id (a concurrent assessment of the same transaction won on
# PostgreSQL) inserts nothing and returns no row: no savepoint, no error to recover from.
_INSERT = {
    name: Prepared(
        dialect.insert(_ra).on_conflict_do_nothing(index_elements=["transaction_id"]).returning(_ra.c.id),
        column_keys=[c.key for c in _ra.c],
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
BY_TRANSACTION = Prepared(select(_ra).where(_ra.c.transaction_id == bindparam("transaction_id")))


def _active_labels(conn: Connection, buyer: str, seller: str, now: datetime) -> defaultdict[str, set[str]]:
    """Labels in force now, per user (the seller's too when there is one)."""
    out: defaultdict[str, set[str]] = defaultdict(set)
    query = _LABELS_OF_BOTH if seller else _LABELS
    for user_id, label in query.rows(conn, {"buyer": buyer, "seller": seller, "now": now}):
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


def add(conn: Connection, assessment: RiskAssessment) -> bool:
    """Insert an assessment; False when its transaction_id already has one."""
    req, outcome = assessment.request, assessment.outcome
    assert req.payment_method is not None  # validated before scoring
    row = {
        "id": assessment.assessment_id,
        "transaction_id": req.transaction_id,
        "buyer_id": req.buyer_id,
        "seller_id": req.seller_id,
        "amount": req.amount,
        "currency": req.currency,
        "payment_method": req.payment_method.value,
        "device_id": req.device_id,
        "ip_address": req.ip_address,
        "score": outcome.score,
        "decision": outcome.decision.value,
        "reasons": json.dumps(
            [{"code": r.code.value, "detail": r.detail, "points": r.points} for r in outcome.reasons]
        ),
        "assessed_at": assessment.assessed_at,
    }
    return _INSERT[conn.dialect.name].first(conn, row) is not None


def by_transaction(conn: Connection, transaction_id: str) -> RiskAssessment | None:
    """Return the assessment of ``transaction_id``, if it was assessed."""
    row = BY_TRANSACTION.first(conn, {"transaction_id": transaction_id})
    return assessment_of(row) if row else None


def assessment_of(row: Any) -> RiskAssessment:
    """The assessment of a ``risk_assessments`` row (a SQLAlchemy or a `Prepared` row)."""
    request = TransactionRequest(
        transaction_id=row.transaction_id,
        buyer_id=row.buyer_id,
        seller_id=row.seller_id,
        amount=row.amount,
        currency=row.currency,
        payment_method=PaymentMethod(row.payment_method),
        device_id=row.device_id,
        ip_address=row.ip_address,
    )
    reasons = tuple(Reason(ReasonCode(r["code"]), r["detail"], r["points"]) for r in json.loads(row.reasons))
    outcome = Assessment(row.score, Decision(row.decision), reasons)
    return RiskAssessment(row.id, request, outcome, row.assessed_at)
