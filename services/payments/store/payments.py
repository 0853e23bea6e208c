"""Payments, their funding lines, the points lots they spent, and their refunds.

Writes run on a synchronous connection inside the caller's transaction (see
`Database.write_sync`); every status change is a guarded UPDATE on the expected status.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Column, Connection, Row, String, Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql.base import PGDialect

from libs.storage import Prepared, settle_late
from services.payments.domain.payments import (
    FundingLine,
    Payment,
    PaymentStatus,
    RefundRecord,
    Remainder,
    RiskOutcome,
    Source,
)
from services.payments.store.tables import payment_funding, payment_points, payments, points_lots, refunds

_p, _f, _r, _pp = payments.c, payment_funding.c, refunds.c, payment_points.c
_INSERT_PAYMENT = Prepared(insert(payments), column_keys=[c.key for c in payments.c])
_INSERT_FUNDING = Prepared(insert(payment_funding), column_keys=("payment_id", "source", "amount", "refunded"))
_INSERT_POINTS = insert(payment_points)
_INSERT_REFUND = insert(refunds)
# A payment and its funding lines in one read: a row per line (its refunds, when it has
# any, in a second). Locking takes the payment's row only (not the outer join's side).
_GET_ANY = (
    select(payments, _f.source.label("line_source"), _f.amount.label("line_amount"), _f.refunded.label("line_back"))
    .select_from(payments.outerjoin(payment_funding, _f.payment_id == _p.id))
    .where(_p.id == bindparam("id"))
)
_GET = Prepared(_GET_ANY)
_GET_LOCKED = Prepared(_GET_ANY.with_for_update(of=payments))
# Several payments locked in id order (PostgreSQL: one array parameter).
_GET_MANY_LOCKED = Prepared(
    select(payments, _f.source.label("line_source"), _f.amount.label("line_amount"), _f.refunded.label("line_back"))
    .select_from(payments.outerjoin(payment_funding, _f.payment_id == _p.id))
    .where(_p.id == func.any(bindparam("ids", type_=ARRAY(String))))
    .order_by(_p.id)
    .with_for_update(of=payments)
)
_REFUNDS = select(refunds).where(_r.payment_id == bindparam("id")).order_by(_r.created_at, _r.id)
_ADD_RETURNED = (
    update(payment_funding)
    .where(_f.payment_id == bindparam("id"), _f.source == bindparam("src"))
    .values(refunded=_f.refunded + bindparam("back"))
)
# transition's statements, by the columns they set besides the status.
_TRANSITIONS: dict[tuple[str, ...], Prepared] = {}


# New payments gathered to be written at the end of their unit (on PostgreSQL).
NEW_PAYMENTS = "payments.new"


def _from_arrays(table: Table, prefix: str) -> str:
    """PostgreSQL: an INSERT of ``table``'s rows given as one array parameter per column
    (``prefix`` + the column's name), for any number of rows in one statement.
    """
    names = [c.name for c in table.c]
    arrays = ", ".join(f"CAST(:{prefix}{c.name} AS {_array_of(c)})" for c in table.c)
    # Names from the table's definition only, never from a caller.
    return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"  # noqa: S608


def _array_of(column: Column[Any]) -> str:
    """PostgreSQL's array type of ``column``'s values."""
    return f"{column.type.compile(dialect=_POSTGRES)}[]"


_POSTGRES = PGDialect()  # type: ignore[no-untyped-call]  # (SQLAlchemy leaves it untyped)
_PAYMENT_COLUMNS = tuple(c.name for c in payments.c)
_FUNDING_COLUMNS = tuple(c.name for c in payment_funding.c)
_INSERT_WITH_FUNDING = Prepared(
    text(f"WITH new_payments AS ({_from_arrays(payments, 'p_')}) {_from_arrays(payment_funding, 'f_')}")
)


def insert_payment(conn: Connection, payment: Payment, spent: Iterable[tuple[str, int]] = ()) -> None:
    """Record a new payment with its funding lines and the points lots it spent from."""
    insert_payments(conn, [(payment, tuple(spent))])


def insert_payments(conn: Connection, new: Sequence[tuple[Payment, Sequence[tuple[str, int]]]]) -> None:
    """Record new payments (each with the points lots it spent from): one statement per
    table for all of them (on PostgreSQL one for the payments and their funding lines).
    """
    rows = [_payment_row(payment) for payment, _ in new]
    lines = [
        {"payment_id": payment.payment_id, "source": f.source.value, "amount": f.amount, "refunded": f.returned}
        for payment, _ in new
        for f in payment.funding
    ]
    if conn.dialect.name == "postgresql":
        # One round trip for both tables (funding lines are checked against their payments
        # at the end of the statement).
        params = {f"p_{c}": [row[c] for row in rows] for c in _PAYMENT_COLUMNS}
        params.update({f"f_{c}": [line[c] for line in lines] for c in _FUNDING_COLUMNS})
        _INSERT_WITH_FUNDING.run(conn, params)
    else:
        _INSERT_PAYMENT.run_many(conn, rows)
        if lines:
            _INSERT_FUNDING.run_many(conn, lines)
    points = [
        {"payment_id": payment.payment_id, "lot_id": lot, "points": n, "returned": 0}
        for payment, spent in new
        for lot, n in spent
    ]
    if points:
        conn.execute(_INSERT_POINTS, points)


def _payment_row(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.payment_id,
        "order_id": payment.order_id,
        "buyer_id": payment.buyer_id,
        "seller_id": payment.seller_id,
        "currency": payment.currency,
        "amount": payment.amount,
        "status": payment.status.value,
        "remainder_method": payment.remainder.value,
        "captured": payment.captured,
        "refunded": payment.refunded,
        "fee": payment.fee,
        "shard": payment.shard,
        "risk_decision": payment.risk.decision,
        "risk_assessment_id": payment.risk.assessment_id,
        "risk_score": payment.risk.score,
        "risk_reasons": ",".join(payment.risk.reason_codes),
        "card_reference": payment.card_reference,
        "description": payment.description,
        "hold_expires_at": payment.hold_expires_at,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }


def points_to_return(conn: Connection, payment_id: str) -> list[tuple[str, int]]:
    """(lot id, points not yet returned) of a payment, latest expiry first: the lots that
    stay valid longest get their points back first.
    """
    pp, lots = payment_points.c, points_lots.c
    query = (
        select(pp.lot_id, (pp.points - pp.returned).label("left"))
        .join_from(payment_points, points_lots, lots.id == pp.lot_id)
        .where(pp.payment_id == payment_id, pp.points > pp.returned)
        .order_by(lots.expires_at.desc(), pp.lot_id)
    )
    return [(r.lot_id, int(r.left)) for r in conn.execute(query)]


def mark_points_returned(conn: Connection, payment_id: str, lot_id: str, points: int) -> None:
    """Count ``points`` of a lot as returned."""
    pp = payment_points.c
    conn.execute(
        update(payment_points)
        .where(pp.payment_id == payment_id, pp.lot_id == lot_id)
        .values(returned=pp.returned + points)
    )


def add_returned(conn: Connection, payment_id: str, returned: Mapping[Source, int]) -> None:
    """Count money as gone back to each source."""
    for source, amount in returned.items():
        conn.execute(_ADD_RETURNED, {"id": payment_id, "src": source.value, "back": amount})


def transition(
    conn: Connection, payment_id: str, expected: PaymentStatus, target: PaymentStatus, **values: object
) -> bool:
    """Move a payment from ``expected`` to ``target`` with other column values; False when
    it is no longer in ``expected`` (someone else moved it first).
    """
    columns = tuple(sorted(values))
    statement = _TRANSITIONS.get(columns)
    if statement is None:
        # Built once per set of columns, values bound: a statement built per call costs
        # SQLAlchemy its construction and cache key every time (a hot path).
        statement = Prepared(
            update(payments)
            .where(_p.id == bindparam("payment_id"), _p.status == bindparam("expected"))
            .values(status=bindparam("target"), **{c: bindparam(f"v_{c}") for c in columns})
        )
        _TRANSITIONS[columns] = statement
    params: dict[str, object] = {"payment_id": payment_id, "expected": expected.value, "target": target.value}
    params.update({f"v_{c}": v for c, v in values.items()})
    return bool(statement.run(conn, params))


# Status changes gathered to be written at the end of their unit (PostgreSQL, on rows the
# transaction has locked): `get` writes them first.
PENDING_TRANSITIONS = "payments.transitions"
_TRANSITIONS_MANY: dict[tuple[str, ...], Prepared] = {}


def transition_many(conn: Connection, columns: Sequence[str], changes: Sequence[tuple[Any, ...]]) -> int:
    """PostgreSQL, in one statement: several `transition` s (distinct payments) setting the
    same ``columns``, each (payment id, expected status, target status, *values in
    ``columns`` order). Returns how many payments were still in their expected status (and
    moved); fewer than asked means the caller's transaction must roll back.
    """
    key = tuple(columns)
    statement = _TRANSITIONS_MANY.get(key)
    if statement is None:
        names = ("id", "expected", "target", *key)
        arrays = ["CAST(:ids AS varchar[])", "CAST(:expected AS varchar[])", "CAST(:targets AS varchar[])"]
        arrays += [f"CAST(:v_{c} AS {_array_of(payments.c[c])})" for c in key]
        sets = ", ".join(["status = u.target", *(f"{c} = u.{c}" for c in key)])
        # Column names that are the table's own (``payments.c[c]`` refuses any other).
        sql = f"UPDATE payments AS p SET {sets} FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"  # noqa: S608
        statement = _TRANSITIONS_MANY[key] = Prepared(text(sql + " WHERE p.id = u.id AND p.status = u.expected"))
    params: dict[str, Any] = {
        "ids": [c[0] for c in changes],
        "expected": [c[1].value for c in changes],
        "targets": [c[2].value for c in changes],
    }
    params.update({f"v_{column}": [c[3 + n] for c in changes] for n, column in enumerate(key)})
    return statement.run(conn, params)


def insert_refund(conn: Connection, payment_id: str, refund: RefundRecord, currency: str, transfer_id: str) -> None:
    """Record a refund."""
    conn.execute(
        _INSERT_REFUND,
        {
            "id": refund.refund_id,
            "payment_id": payment_id,
            "amount": refund.amount,
            "currency": currency,
            "reason": refund.reason,
            "transfer_id": transfer_id,
            "created_at": refund.created_at,
        },
    )


def get(conn: Connection, payment_id: str, *, for_update: bool = False) -> Payment | None:
    """A payment with its funding lines and refunds; ``for_update`` locks its row
    (PostgreSQL, where the unit's gathered status changes are written first).
    """
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        settle_late(conn, PENDING_TRANSITIONS)  # an earlier call of the group moved it
    rows = (_GET_LOCKED if for_update and postgres else _GET).rows(conn, {"id": payment_id})
    return _assembled(conn, rows) if rows else None


def lock_many(conn: Connection, payment_ids: Sequence[str]) -> dict[str, Payment]:
    """PostgreSQL: the payments found among ``payment_ids``, their rows locked in id order
    by one statement (a group's calls on existing payments read them ahead).
    """
    rows: dict[str, list[Row[Any]]] = {}
    for row in _GET_MANY_LOCKED.rows(conn, {"ids": list(payment_ids)}):
        rows.setdefault(row.id, []).append(row)
    return {payment_id: _assembled(conn, found) for payment_id, found in rows.items()}


def _assembled(conn: Connection, rows: Sequence[Row[Any]]) -> Payment:
    """A payment from its rows (one per funding line), with its refunds read when it has any."""
    row = rows[0]
    payment_id = row.id
    funding = _in_source_order(
        FundingLine(Source(x.line_source), int(x.line_amount), int(x.line_back))
        for x in rows
        if x.line_source is not None
    )
    made: tuple[RefundRecord, ...] = ()
    if row.refunded:
        refund_rows = conn.execute(_REFUNDS, {"id": payment_id})
        made = tuple(RefundRecord(x.id, int(x.amount), x.reason, x.created_at) for x in refund_rows)
    return _payment(row, funding, made)


def of_party(
    conn: Connection,
    user_id: str,
    *,
    as_buyer: bool,
    as_seller: bool,
    statuses: Collection[PaymentStatus],
    before: str | None,
    limit: int,
) -> list[Payment]:
    """Up to ``limit`` payments ``user_id`` bought or sold (as asked), newest first (ids are
    ULIDs), with ids below ``before`` when given, of ``statuses`` when any. Each side is
    read from its (party, id) index; the two are merged here.
    """
    rows: dict[str, Row[Any]] = {}
    for side, wanted in ((_p.buyer_id, as_buyer), (_p.seller_id, as_seller)):
        if not wanted:
            continue
        query = select(payments).where(side == user_id)
        if statuses:
            query = query.where(_p.status.in_(sorted(s.value for s in statuses)))
        if before is not None:
            query = query.where(_p.id < before)
        rows.update((row.id, row) for row in conn.execute(query.order_by(_p.id.desc()).limit(limit)).all())
    page = sorted(rows, reverse=True)[:limit]
    if not page:
        return []
    funding: dict[str, list[FundingLine]] = {}
    for x in conn.execute(select(payment_funding).where(_f.payment_id.in_(page))).all():
        funding.setdefault(x.payment_id, []).append(FundingLine(Source(x.source), int(x.amount), int(x.refunded)))
    made: dict[str, list[RefundRecord]] = {}
    for x in conn.execute(select(refunds).where(_r.payment_id.in_(page)).order_by(_r.created_at, _r.id)).all():
        made.setdefault(x.payment_id, []).append(RefundRecord(x.id, int(x.amount), x.reason, x.created_at))
    return [
        _payment(rows[payment_id], _in_source_order(funding.get(payment_id, [])), tuple(made.get(payment_id, [])))
        for payment_id in page
    ]


def _in_source_order(lines: Iterable[FundingLine]) -> tuple[FundingLine, ...]:
    order = list(Source)
    return tuple(sorted(lines, key=lambda line: order.index(line.source)))


def expired_holds(conn: Connection, now: datetime, limit: int) -> list[str]:
    """Payments whose uncaptured hold has passed its expiry."""
    p = payments.c
    query = (
        select(p.id)
        .where(p.status.in_([PaymentStatus.AUTHORIZED.value, PaymentStatus.IN_REVIEW.value]))
        .where(p.hold_expires_at <= now)
        .order_by(p.hold_expires_at)
        .limit(limit)
    )
    return [r.id for r in conn.execute(query)]


def _payment(row: Any, funding: tuple[FundingLine, ...], made: tuple[RefundRecord, ...]) -> Payment:
    reasons = tuple(code for code in row.risk_reasons.split(",") if code)
    return Payment(
        payment_id=row.id,
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        seller_id=row.seller_id,
        amount=int(row.amount),
        currency=row.currency,
        status=PaymentStatus(row.status),
        remainder=Remainder(row.remainder_method),
        captured=int(row.captured),
        refunded=int(row.refunded),
        fee=int(row.fee),
        shard=int(row.shard),
        risk=RiskOutcome(row.risk_decision, row.risk_assessment_id, int(row.risk_score), reasons),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        hold_expires_at=row.hold_expires_at,
        card_reference=row.card_reference,
        funding=funding,
        refunds=made,
    )
