"""Payment use cases: authorize (after the risk check), capture, cancel, review, complete,
refund, expire. Each is one transaction holding the ledger transfer, the payment's new
state, its event and (for client calls) the idempotency record.

The money moves through the platform's books like this:

- authorize: buyer's sources (points, cash, credit, card clearing) → holds
- capture: holds → escrow, and what is not captured → back to the sources
- cancel / decline after review / expire: holds → back to the sources
- complete: escrow → seller's sales proceeds + fee revenue
- refund: escrow (before completion) or seller's proceeds + fee revenue (after) → sources

Hot platform books (holds, escrow, fee revenue) are split into shards chosen by payment
id, so concurrent payments do not queue on one row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, func, select

from libs.clock import Clock
from libs.errors import FailedPrecondition, NotFound
from libs.events import Outbox
from libs.ids import new_ulid
from libs.storage import Database, Prepared, gather_late, retry_conflicts
from services.payments.domain.accounts import (
    Account,
    AccountKind,
    platform_account,
    shard_of,
    user_account,
)
from services.payments.domain.idempotency import request_hash
from services.payments.domain.payments import (
    Available,
    CreateRequest,
    FundingLine,
    NotEnoughFunds,
    Operation,
    Payment,
    PaymentStatus,
    RefundRecord,
    Remainder,
    RiskOutcome,
    Source,
    allocate_return,
    fee_for,
    fee_share,
    plan_funding,
    refund_limit,
    require_status,
    validate_amount,
    validate_create,
    validate_reference,
)
from services.payments.domain.points import plan_spend
from services.payments.domain.transfers import PAYMENT_REFUND, Leg, TransferDraft
from services.payments.service._events import payment_event
from services.payments.service.card import CardProvider
from services.payments.service.idempotency import FOUND_COLUMNS, IdempotentCalls, read_earlier
from services.payments.service.ledger import Ledger
from services.payments.service.risk import RiskAssessor, RiskQuery, assess_or_fail_closed
from services.payments.store import accounts as accounts_repo
from services.payments.store import payments as payments_repo
from services.payments.store import points as points_repo
from services.payments.store.tables import accounts, points_lots

AUTHORIZATION = "payment_authorization"
CAPTURE = "payment_capture"
RELEASE = "payment_release"
COMPLETION = "payment_completion"

_a, _l = accounts.c, points_lots.c
# What a buyer can pay with, in one statement: unexpired points, cash, credit left; and
# the idempotency key's earlier answer, if any (one read before a new payment).
_AVAILABLE = Prepared(
    select(
        *FOUND_COLUMNS,
        select(func.sum(_l.remaining))
        .where(_l.user_id == bindparam("owner"), _l.currency == bindparam("currency"), _l.remaining > 0)
        .where(_l.expires_at > bindparam("now"))
        .scalar_subquery()
        .label("points"),
        select(func.sum(_a.balance))
        .where(_a.owner == bindparam("owner"), _a.currency == bindparam("currency"), _a.kind == AccountKind.CASH.value)
        .scalar_subquery()
        .label("cash"),
        select(func.sum(_a.balance - _a.floor))
        .where(
            _a.owner == bindparam("owner"), _a.currency == bindparam("currency"), _a.kind == AccountKind.CREDIT.value
        )
        .scalar_subquery()
        .label("credit"),
    )
)

# Statuses whose funds are held until captured, and so expire.
ALLOWS_EXPIRY = frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.IN_REVIEW})
# (authorization, captured, released, refunded): what to tell the card provider after commit.
CardMove = tuple[str, int, int, int]


@dataclass(frozen=True)
class PaymentSettings:
    """The knobs of the payment flows (from PaymentsConfig)."""

    fee_bps: int = 1000
    hold: timedelta = timedelta(days=7)
    risk_fail_open_max: int = 10_000


@dataclass(frozen=True)
class _Prepared:
    payment_id: str
    plan: dict[Source, int]
    risk: RiskOutcome
    card_reference: str | None


def encode_payment(payment: Payment) -> str:
    """The stored response of a payment call (replayed verbatim)."""
    return orjson.dumps(payment).decode()


def decode_payment(stored: str) -> Payment:
    """A payment back from `encode_payment`."""
    raw: dict[str, Any] = orjson.loads(stored)
    when = datetime.fromisoformat
    return Payment(
        **{
            **raw,
            "status": PaymentStatus(raw["status"]),
            "remainder": Remainder(raw["remainder"]),
            "risk": RiskOutcome(**{**raw["risk"], "reason_codes": tuple(raw["risk"]["reason_codes"])}),
            "created_at": when(raw["created_at"]),
            "updated_at": when(raw["updated_at"]),
            "hold_expires_at": when(raw["hold_expires_at"]) if raw["hold_expires_at"] else None,
            "funding": tuple(FundingLine(Source(f["source"]), f["amount"], f["returned"]) for f in raw["funding"]),
            "refunds": tuple(
                RefundRecord(r["refund_id"], r["amount"], r["reason"], when(r["created_at"])) for r in raw["refunds"]
            ),
        }
    )


def _source_account(payment: Payment, source: Source) -> Account:
    if source is Source.CARD:
        return platform_account(AccountKind.CARD_CLEARING, payment.currency)
    kind = {Source.POINTS: AccountKind.POINTS, Source.CASH: AccountKind.CASH, Source.CREDIT: AccountKind.CREDIT}
    return user_account(payment.buyer_id, kind[source], payment.currency)


def _book(kind: AccountKind, payment: Payment) -> Account:
    return platform_account(kind, payment.currency, shard=payment.shard)


def _legs(*pairs: tuple[Account, int]) -> tuple[Leg, ...]:
    """Legs without zero amounts, one per account (amounts on the same account add up)."""
    total: dict[str, int] = {}
    by_id: dict[str, Account] = {}
    for account, amount in pairs:
        total[account.account_id] = total.get(account.account_id, 0) + amount
        by_id[account.account_id] = account
    return tuple(Leg(by_id[i], amount) for i, amount in total.items() if amount)


class Payments:
    """The payment flows of one payments process."""

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        calls: IdempotentCalls,
        outbox: Outbox,
        clock: Clock,
        risk: RiskAssessor,
        cards: CardProvider,
        settings: PaymentSettings,
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._calls = calls
        self._outbox = outbox
        self._clock = clock
        self._risk = risk
        self._cards = cards
        self._settings = settings

    # -- create ----------------------------------------------------------------------

    async def create(self, caller: str, request: CreateRequest) -> Payment:
        """Fund, assess and hold a payment; once per (caller, idempotency key)."""
        validate_create(request)
        fingerprint = request_hash({k: v for k, v in vars(request).items() if k != "idempotency_key"})
        scope = f"{caller}:CreatePayment"
        params = {
            "owner": request.buyer_id,
            "currency": request.currency,
            "now": self._clock.now(),
            "scope": scope,
            "key": request.idempotency_key,
        }
        row = await self._db.fetch_one(_AVAILABLE, params)
        assert row is not None  # aggregates always give one row
        found = (row.found_request_hash, row.found_response)
        async with self._calls.claim(scope, request.idempotency_key, fingerprint, found=found) as claim:
            if claim.stored is not None:
                return decode_payment(claim.stored)
            available = Available(points=int(row.points or 0), cash=int(row.cash or 0), credit=int(row.credit or 0))
            made: list[Payment] = []
            prepared = await self._prepare(request, available)
            try:
                stored, fresh = await claim.commit(
                    lambda conn: encode_payment(_kept(made, self._authorize(conn, request, prepared)))
                )
            except BaseException:
                await self._release_card(prepared)
                raise
            if not fresh:
                await self._release_card(prepared)
            else:
                self._outbox.notify()  # committed: wake the event streams
            payment = made[0] if fresh else decode_payment(stored)
            if fresh and prepared.card_reference and payment.status is PaymentStatus.CAPTURED:
                await self._cards.settle(prepared.card_reference, prepared.plan[Source.CARD], 0, 0)
            return payment

    async def _prepare(self, request: CreateRequest, available: Available) -> _Prepared:
        # Outside the transaction: the plan from a fresh read (the transaction's guarded
        # updates refuse it if the money went meanwhile), the risk call, the card.
        payment_id = new_ulid("pay_")
        plan = plan_funding(request.amount, available, request.remainder, request.skip_points)
        method = next(s for s in reversed(list(Source)) if s in plan)
        query = RiskQuery(
            payment_id,
            request.buyer_id,
            request.seller_id,
            request.amount,
            request.currency,
            method,
            request.device_id,
            request.ip_address,
        )
        risk = await assess_or_fail_closed(self._risk, query, self._settings.risk_fail_open_max)
        card = None
        if risk.decision != "DECLINE" and plan.get(Source.CARD):
            card = await self._cards.authorize(request.card_token, plan[Source.CARD], request.currency, payment_id)
        return _Prepared(payment_id, plan, risk, card)

    async def _release_card(self, prepared: _Prepared) -> None:
        if prepared.card_reference is not None:
            await self._cards.settle(prepared.card_reference, 0, prepared.plan[Source.CARD], 0)

    def _authorize(self, conn: Connection, request: CreateRequest, prepared: _Prepared) -> Payment:
        now = self._clock.now()
        decision = prepared.risk.decision
        declined = decision == "DECLINE"
        status = (
            PaymentStatus.DECLINED
            if declined
            else PaymentStatus.IN_REVIEW
            if decision == "REVIEW"
            else PaymentStatus.CAPTURED
            if request.capture
            else PaymentStatus.AUTHORIZED
        )
        plan = {} if declined else prepared.plan
        payment = Payment(
            payment_id=prepared.payment_id,
            order_id=request.order_id,
            buyer_id=request.buyer_id,
            seller_id=request.seller_id,
            amount=request.amount,
            currency=request.currency,
            status=status,
            remainder=request.remainder,
            captured=request.amount if status is PaymentStatus.CAPTURED else 0,
            refunded=0,
            fee=0,
            shard=shard_of(prepared.payment_id),
            risk=prepared.risk,
            description=request.description,
            created_at=now,
            updated_at=now,
            hold_expires_at=now + self._settings.hold if status in ALLOWS_EXPIRY else None,
            card_reference=prepared.card_reference,
            funding=tuple(FundingLine(s, plan[s]) for s in Source if s in plan),
        )
        spent: list[tuple[str, int]] = []
        if plan:
            if Source.POINTS in plan:
                spent = self._spend_points(conn, payment, plan[Source.POINTS], now)
            target = AccountKind.ESCROW if status is PaymentStatus.CAPTURED else AccountKind.HOLDS
            legs = _legs(
                *((_source_account(payment, s), -n) for s, n in plan.items()),
                (_book(target, payment), request.amount),
            )
            kind = CAPTURE if status is PaymentStatus.CAPTURED else AUTHORIZATION
            draft = TransferDraft(kind, legs, f"payment {payment.payment_id} for {request.order_id}")
            self._ledger.post(conn, draft, late=True)
        if conn.dialect.name == "postgresql":
            # Round trips are what a group costs here: its calls' new payments are written
            # together at its end (nothing in the group can name a payment id it has not
            # been told yet).
            gather_late(conn, payments_repo.NEW_PAYMENTS, (payment, spent), payments_repo.insert_payments)
        else:
            payments_repo.insert_payment(conn, payment, spent)
        moved = payment.captured if status is PaymentStatus.CAPTURED else (0 if declined else payment.amount)
        self._emit(conn, payment, status.value, moved)
        return payment

    def _spend_points(self, conn: Connection, payment: Payment, points: int, now: datetime) -> list[tuple[str, int]]:
        lots = points_repo.spendable(conn, payment.buyer_id, payment.currency, now)
        try:
            spent = plan_spend(lots, points, now)
        except ValueError as exc:
            raise NotEnoughFunds("the points were spent meanwhile", metadata={"source": "POINTS"}) from exc
        for lot_id, n in spent:
            if not points_repo.spend(conn, lot_id, n):
                raise NotEnoughFunds("the points were spent meanwhile", metadata={"source": "POINTS"})
        return spent

    # -- operations on an existing payment ---------------------------------------------

    async def capture(
        self, caller: str, key: str, payment_id: str, amount: int | None, currency: str | None
    ) -> Payment:
        """Capture all or part of an AUTHORIZED payment into escrow; the rest goes back."""
        validate_reference(key, payment_id)

        def effect(conn: Connection, moves: list[CardMove]) -> Payment:
            payment = self._locked(conn, payment_id, Operation.CAPTURE)
            validate_amount(amount, currency, payment.currency)
            take = payment.amount if amount is None else amount
            if take > payment.amount:
                raise FailedPrecondition(
                    f"{take} is more than the {payment.amount} authorized",
                    reason="CAPTURE_EXCEEDS_AUTHORIZED",
                )
            back = allocate_return(payment.amount - take, payment.unreturned())
            legs = [(_book(AccountKind.HOLDS, payment), -payment.amount), (_book(AccountKind.ESCROW, payment), take)]
            if payment.card_reference:
                card = payment.unreturned().get(Source.CARD, 0)
                moves.append((payment.card_reference, card - back.get(Source.CARD, 0), back.get(Source.CARD, 0), 0))
            return self._move(
                conn, payment, CAPTURE, legs, back, PaymentStatus.CAPTURED, take, captured=take, hold_expires_at=None
            )

        return await self._run(caller, "CapturePayment", key, {"payment_id": payment_id, "amount": amount}, effect)

    async def cancel(self, caller: str, key: str, payment_id: str, reason: str) -> Payment:
        """Release the hold of an AUTHORIZED or IN_REVIEW payment."""
        validate_reference(key, payment_id, reason)
        return await self._run(
            caller,
            "CancelPayment",
            key,
            {"payment_id": payment_id, "reason": reason},
            lambda conn, moves: self._release(conn, payment_id, Operation.CANCEL, PaymentStatus.CANCELED, moves),
        )

    async def review(self, caller: str, key: str, payment_id: str, approve: bool, note: str) -> Payment:
        """A reviewer's decision: approve → AUTHORIZED; reject → DECLINED, hold released."""
        validate_reference(key, payment_id, note, "note")

        def effect(conn: Connection, moves: list[CardMove]) -> Payment:
            if not approve:
                return self._release(conn, payment_id, Operation.REVIEW, PaymentStatus.DECLINED, moves)
            payment = self._locked(conn, payment_id, Operation.REVIEW)
            return self._move(conn, payment, "", [], {}, PaymentStatus.AUTHORIZED, 0)

        fields = {"payment_id": payment_id, "approve": approve, "note": note}
        return await self._run(caller, "ReviewPayment", key, fields, effect)

    async def complete(self, caller: str, key: str, payment_id: str) -> Payment:
        """Release escrow to the seller's sales proceeds minus the platform fee."""
        validate_reference(key, payment_id)

        def effect(conn: Connection, moves: list[CardMove]) -> Payment:
            payment = self._locked(conn, payment_id, Operation.COMPLETE)
            net = payment.captured - payment.refunded
            fee = fee_for(net, self._settings.fee_bps)
            seller = user_account(payment.seller_id, AccountKind.SALES, payment.currency)
            legs = [
                (_book(AccountKind.ESCROW, payment), -net),
                (seller, net - fee),
                (_book(AccountKind.FEE_REVENUE, payment), fee),
            ]
            return self._move(conn, payment, COMPLETION, legs, {}, PaymentStatus.COMPLETED, net, fee=fee)

        return await self._run(caller, "CompletePayment", key, {"payment_id": payment_id}, effect)

    async def refund(
        self, caller: str, key: str, payment_id: str, amount: int | None, currency: str | None, reason: str
    ) -> tuple[Payment, RefundRecord]:
        """Refund all or part of what was captured to the original sources."""
        validate_reference(key, payment_id, reason)

        def effect(conn: Connection, moves: list[CardMove]) -> Payment:
            payment = self._locked(conn, payment_id, Operation.REFUND)
            validate_amount(amount, currency, payment.currency)
            take = refund_limit(payment, amount)
            back = allocate_return(take, payment.unreturned())
            fee_back = 0
            if payment.status is PaymentStatus.COMPLETED:
                fee_back = fee_share(take, payment.captured - payment.refunded, payment.fee)
                seller = user_account(payment.seller_id, AccountKind.SALES, payment.currency)
                legs = [(seller, -(take - fee_back)), (_book(AccountKind.FEE_REVENUE, payment), -fee_back)]
            else:
                legs = [(_book(AccountKind.ESCROW, payment), -take)]
            if payment.card_reference and back.get(Source.CARD):
                moves.append((payment.card_reference, 0, 0, back[Source.CARD]))
            refunded = payment.refunded + take
            status = PaymentStatus.REFUNDED if refunded == payment.captured else payment.status
            record = RefundRecord(new_ulid("rfd_"), take, reason, self._clock.now())
            return self._move(
                conn,
                payment,
                PAYMENT_REFUND,
                legs,
                back,
                status,
                take,
                refund=record,
                refunded=refunded,
                fee=payment.fee - fee_back,
            )

        fields = {"payment_id": payment_id, "amount": amount, "reason": reason}
        payment = await self._run(caller, "RefundPayment", key, fields, effect)
        return payment, payment.refunds[-1]

    async def expire_holds(self, limit: int = 200) -> int:
        """Release the holds that were not captured in time; returns how many expired."""
        async with self._db.read() as aconn:
            due = await aconn.run_sync(payments_repo.expired_holds, self._clock.now(), limit)
        expired = [await self._expire(payment_id) for payment_id in due]
        return sum(expired)

    async def _expire(self, payment_id: str) -> bool:
        moves: list[CardMove] = []

        def effect(conn: Connection) -> Payment:
            return self._release(conn, payment_id, Operation.EXPIRE, PaymentStatus.EXPIRED, moves)

        try:
            await retry_conflicts(lambda: self._db.write_sync(effect))
        except FailedPrecondition:
            return False  # captured or canceled meanwhile
        self._outbox.notify()
        await self._settle(moves)
        return True

    async def get(self, payment_id: str) -> Payment:
        """One payment; NOT_FOUND when there is none."""
        async with self._db.read() as conn:
            payment = await conn.run_sync(payments_repo.get, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id!r}", reason="PAYMENT_NOT_FOUND")
        return payment

    async def of_party(
        self,
        user_id: str,
        *,
        as_buyer: bool,
        as_seller: bool,
        statuses: frozenset[PaymentStatus],
        before: str | None,
        limit: int,
    ) -> list[Payment]:
        """Up to ``limit`` of the user's payments (as buyer, seller or both), newest first,
        with ids below ``before`` when given, in ``statuses`` when any are given.
        """
        async with self._db.read() as conn:
            return await conn.run_sync(
                lambda c: payments_repo.of_party(
                    c,
                    user_id,
                    as_buyer=as_buyer,
                    as_seller=as_seller,
                    statuses=statuses,
                    before=before,
                    limit=limit,
                )
            )

    # -- the shared mechanics ----------------------------------------------------------

    async def _run(
        self,
        caller: str,
        method: str,
        key: str,
        fields: Mapping[str, object],
        effect: Callable[[Connection, list[CardMove]], Payment],
    ) -> Payment:
        moves: list[CardMove] = []
        made: list[Payment] = []
        stored, fresh = await self._calls.run_once(
            f"{caller}:{method}",
            key,
            request_hash(fields),
            lambda conn: encode_payment(_kept(made, effect(conn, _fresh(moves)))),
            # The effect locks this payment first: a group reads its payments ahead.
            read_ahead=(payments_repo.lock_many, str(fields["payment_id"])),
        )
        if fresh:
            self._outbox.notify()
            await self._settle(moves)
            return made[0]
        return decode_payment(stored)

    async def _settle(self, moves: list[CardMove]) -> None:
        # After the commit: the ledger is the truth, the provider is told what happened.
        for authorization, captured, released, refunded in moves:
            await self._cards.settle(authorization, captured, released, refunded)

    def _locked(self, conn: Connection, payment_id: str, operation: Operation) -> Payment:
        ahead = read_earlier(conn, payments_repo.lock_many, payment_id)
        payment = ahead if isinstance(ahead, Payment) else payments_repo.get(conn, payment_id, for_update=True)
        if payment is None:
            raise NotFound(f"no payment {payment_id!r}", reason="PAYMENT_NOT_FOUND")
        require_status(payment.status, operation)
        return payment

    def _release(
        self, conn: Connection, payment_id: str, operation: Operation, status: PaymentStatus, moves: list[CardMove]
    ) -> Payment:
        payment = self._locked(conn, payment_id, operation)
        back = payment.unreturned()
        if payment.card_reference and back.get(Source.CARD):
            moves.append((payment.card_reference, 0, back[Source.CARD], 0))
        legs = [(_book(AccountKind.HOLDS, payment), -sum(back.values()))]
        return self._move(conn, payment, RELEASE, legs, back, status, sum(back.values()), hold_expires_at=None)

    def _move(
        self,
        conn: Connection,
        payment: Payment,
        kind: str,
        legs: list[tuple[Account, int]],
        back: dict[Source, int],
        status: PaymentStatus,
        moved: int,
        *,
        refund: RefundRecord | None = None,
        **changes: Any,
    ) -> Payment:
        """Post the transfer (legs plus money back to the sources), return points to their
        lots, move the payment to ``status`` (guarded), record the refund and the event.
        """
        now = self._clock.now()
        returns = self._returns(conn, payment, back, [account for account, _ in legs])
        all_legs = _legs(*legs, *returns)
        transfer_id = ""
        if all_legs:
            # A refund's row names its transfer: that one is written at once.
            draft = TransferDraft(kind, all_legs, f"{kind} of {payment.payment_id}")
            transfer_id = self._ledger.post(conn, draft, late=refund is None).transfer_id
        if back:
            payments_repo.add_returned(conn, payment.payment_id, back)
        if conn.dialect.name == "postgresql" and not conn.in_nested_transaction():
            # The row is locked (`_locked`): its status change goes with the unit's others,
            # in one statement at its end (a later read of it in the unit writes them first).
            change = (payment.payment_id, payment.status, status, {"updated_at": now, **changes})
            gather_late(conn, payments_repo.PENDING_TRANSITIONS, change, _transition_all)
        elif not payments_repo.transition(conn, payment.payment_id, payment.status, status, updated_at=now, **changes):
            raise _changed_meanwhile()
        if refund is not None:
            payments_repo.insert_refund(conn, payment.payment_id, refund, payment.currency, transfer_id)
        funding = tuple(replace(f, returned=f.returned + back.get(f.source, 0)) for f in payment.funding)
        updated = replace(
            payment,
            status=status,
            updated_at=now,
            funding=funding,
            refunds=(*payment.refunds, refund) if refund else payment.refunds,
            **changes,
        )
        transition = "REFUNDED" if refund is not None else status.value
        self._emit(conn, updated, transition, moved, refund.refund_id if refund else "")
        return updated

    def _returns(
        self, conn: Connection, payment: Payment, back: dict[Source, int], others: list[Account]
    ) -> list[tuple[Account, int]]:
        """The legs that give money back to the sources. Points go back to the lots they
        came from; credit is given back at most up to what is owed (the rest to cash).
        """
        legs: list[tuple[Account, int]] = []
        for source, amount in back.items():
            if source is Source.POINTS:
                self._return_points(conn, payment, amount)
            if source is Source.CREDIT:
                credit = _source_account(payment, Source.CREDIT)
                # What is owed decides the split, so it must not change before the post: lock
                # every account the transfer touches, in the ledger's one lock order.
                touched = [a.account_id for a in others] + [_source_account(payment, s).account_id for s in back]
                touched.append(_source_account(payment, Source.CASH).account_id)
                owed = -accounts_repo.balances_of(conn, touched, lock=True).get(credit.account_id, 0)
                to_credit = min(amount, max(owed, 0))
                legs.append((credit, to_credit))
                legs.append((_source_account(payment, Source.CASH), amount - to_credit))
                continue
            legs.append((_source_account(payment, source), amount))
        return legs

    def _return_points(self, conn: Connection, payment: Payment, points: int) -> None:
        left = points
        for lot_id, unreturned in payments_repo.points_to_return(conn, payment.payment_id):
            if not left:
                break
            n = min(left, unreturned)
            points_repo.give_back(conn, lot_id, n)
            payments_repo.mark_points_returned(conn, payment.payment_id, lot_id, n)
            left -= n

    def _emit(self, conn: Connection, payment: Payment, transition: str, moved: int, refund_id: str = "") -> None:
        self._outbox.append_sync(conn, payment.buyer_id, payment_event(payment, transition, moved, refund_id))


_Transition = tuple[str, PaymentStatus, PaymentStatus, dict[str, Any]]


def _transition_all(conn: Connection, changes: Sequence[_Transition]) -> None:
    """Payments' gathered status changes, one statement per set of columns they set;
    FAILED_PRECONDITION when one was no longer in its expected status.
    """
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for payment_id, expected, target, values in changes:
        columns = tuple(sorted(values))
        by_columns.setdefault(columns, []).append((payment_id, expected, target, *(values[c] for c in columns)))
    for columns, rows in by_columns.items():
        if payments_repo.transition_many(conn, columns, rows) != len(rows):
            raise _changed_meanwhile()


def _changed_meanwhile() -> FailedPrecondition:
    return FailedPrecondition("the payment changed meanwhile; retry", reason="CONCURRENT_UPDATE")


def _kept(made: list[Payment], payment: Payment) -> Payment:
    """``payment``, kept in ``made`` as what the call answers when its effect commits: the
    stored response is its encoding, so it need not be decoded again (an effect that runs
    again, after a rollback, replaces the one of its first try).
    """
    made[:] = [payment]
    return payment


def _fresh(moves: list[CardMove]) -> list[CardMove]:
    """``moves`` emptied for an attempt of an effect: a transaction that rolled back and is
    run again (a conflict, a failed group) must not leave the card moves of its first try.
    """
    moves.clear()
    return moves
