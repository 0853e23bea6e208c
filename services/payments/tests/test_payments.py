"""Payments on a real database: funding order, holds, capture, completion, refunds, risk,
frozen wallets, expiry, idempotency — and the ledger verified after each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from furima.payments.v1 import events_pb2
from sqlalchemy import Connection, func, select

from libs.clock import FrozenClock
from libs.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from libs.storage import Database
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, assemble
from services.payments.domain.accounts import PLATFORM_SHARDS, AccountKind, shard_of, user_account
from services.payments.domain.payments import ALLOWED_FROM, Operation, PaymentStatus, Remainder
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.card import SimulatedCardProvider
from services.payments.service.idempotency import IdempotentCalls
from services.payments.store import frozen as frozen_repo
from services.payments.store.tables import accounts, outbox, payments, points_lots
from services.payments.tests.payments_helpers import (
    BANK,
    ScriptedRisk,
    balances,
    funding,
    grant,
    open_credit,
    order,
    top_up,
)

SVC = "svc-orders"


@pytest.fixture
def risk() -> ScriptedRisk:
    """Provide the scripted risk service."""
    return ScriptedRisk()


@pytest.fixture
def cards() -> SimulatedCardProvider:
    """Provide the simulated card provider."""
    return SimulatedCardProvider()


@pytest.fixture
async def c(
    db: Database, clock: FrozenClock, risk: ScriptedRisk, cards: SimulatedCardProvider
) -> AsyncIterator[PaymentsContainer]:
    """Provide the payments use cases with scripted risk; the ledger must verify after the test."""
    container = assemble(PaymentsConfig(database_url=db.url), db, clock, risk=risk, cards=cards)
    yield container
    report = await container.ledger.verify()
    assert report.consistent, report


async def platform_total(c: PaymentsContainer, kind: AccountKind) -> int:
    """The sum of a platform book over its shards."""
    async with c.db.read() as conn:
        total = await conn.scalar(
            select(func.coalesce(func.sum(accounts.c.balance), 0)).where(
                accounts.c.owner == "platform", accounts.c.kind == kind.value
            )
        )
    return int(total or 0)


async def transitions(c: PaymentsContainer, payment_id: str) -> list[str]:
    """The PaymentEvent transitions of a payment, in order."""
    async with c.db.read() as conn:
        rows = (await conn.execute(select(outbox.c.payload).where(outbox.c.type.like("%PaymentEvent")))).all()
    events = [events_pb2.PaymentEvent.FromString(r.payload) for r in rows]
    return [e.transition for e in events if e.payment_id == payment_id]


# -- funding ------------------------------------------------------------------------------


async def test_points_are_spent_first_then_cash_and_the_funds_are_held(
    c: PaymentsContainer, clock: FrozenClock
) -> None:
    """¥300 of points and ¥700 of cash pay ¥1,000; both leave the wallet into holds."""
    await grant(c, clock, "usr_buyer", 300, "g1")
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000))
    assert payment.status is PaymentStatus.AUTHORIZED
    assert funding(payment) == {"POINTS": (300, 0), "CASH": (700, 0)}
    assert payment.hold_expires_at == clock.now() + timedelta(days=7)
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 300}
    assert await platform_total(c, AccountKind.HOLDS) == 1000
    assert await transitions(c, payment.payment_id) == ["AUTHORIZED"]


async def test_points_soonest_to_expire_go_first(c: PaymentsContainer, clock: FrozenClock, db: Database) -> None:
    """Two lots: the one expiring sooner pays first."""
    await grant(c, clock, "usr_buyer", 200, "late", days=60)
    await grant(c, clock, "usr_buyer", 200, "soon", days=10)
    await c.payments.create(SVC, order("o1", 300))
    async with db.read() as conn:
        rows = (await conn.execute(select(points_lots.c.expires_at, points_lots.c.remaining))).all()
    left = {r.expires_at - clock.now(): r.remaining for r in rows}
    assert left == {timedelta(days=10): 0, timedelta(days=60): 100}


async def test_skip_points_pays_with_cash_only(c: PaymentsContainer, clock: FrozenClock) -> None:
    """skip_points leaves the points alone."""
    await grant(c, clock, "usr_buyer", 300, "g1")
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000, skip_points=True))
    assert funding(payment) == {"CASH": (1000, 0)}
    assert await balances(c, "usr_buyer") == {AccountKind.POINTS: 300}


async def test_not_enough_money_refuses_and_records_nothing(c: PaymentsContainer, db: Database) -> None:
    """Cash short and no remainder method: INSUFFICIENT_FUNDS, no payment row, nothing moved."""
    await top_up(c, "usr_buyer", 500)
    with pytest.raises(FailedPrecondition) as refused:
        await c.payments.create(SVC, order("o1", 501))
    assert refused.value.reason == "INSUFFICIENT_FUNDS"
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 500}
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(payments)) == 0


async def test_pay_later_covers_the_rest_within_the_limit(c: PaymentsContainer) -> None:
    """Cash ¥400, credit line ¥1,000: a ¥1,200 payment takes ¥800 of credit; ¥1,500 is refused."""
    await top_up(c, "usr_buyer", 400)
    await open_credit(c, "usr_buyer", 1000)
    with pytest.raises(FailedPrecondition, match="missing"):
        await c.payments.create(SVC, order("big", 1500, remainder=Remainder.CREDIT))
    payment = await c.payments.create(SVC, order("o1", 1200, remainder=Remainder.CREDIT))
    assert funding(payment) == {"CASH": (400, 0), "CREDIT": (800, 0)}
    assert await balances(c, "usr_buyer") == {AccountKind.CREDIT: -800}


async def test_a_card_pays_the_rest_and_a_declined_card_holds_nothing(
    c: PaymentsContainer, cards: SimulatedCardProvider
) -> None:
    """The card is authorized for the remainder; a declined token is CARD_DECLINED and moves nothing."""
    await top_up(c, "usr_buyer", 100)
    with pytest.raises(FailedPrecondition) as declined:
        await c.payments.create(SVC, order("o0", 1000, remainder=Remainder.CARD, card_token="tok_declined_1"))
    assert declined.value.reason == "CARD_DECLINED"
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 100}
    payment = await c.payments.create(SVC, order("o1", 1000, remainder=Remainder.CARD, card_token="tok_visa"))
    assert funding(payment) == {"CASH": (100, 0), "CARD": (900, 0)}
    assert [a.amount for a in cards.authorizations.values()] == [900]
    assert await platform_total(c, AccountKind.CARD_CLEARING) == -900


async def test_a_rerun_transaction_tells_the_card_provider_once(
    c: PaymentsContainer, cards: SimulatedCardProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial capture whose first transaction rolls back (a conflict, a failed group) and
    runs again settles the card once: the released part is not counted twice.
    """
    await top_up(c, "usr_buyer", 100)
    payment = await c.payments.create(SVC, order("o1", 1000, remainder=Remainder.CARD, card_token="tok_visa"))
    commit = IdempotentCalls._commit
    tried = False

    async def first_try_rolls_back(
        self: IdempotentCalls,
        scope: str,
        key: str,
        fingerprint: str,
        effect: Callable[[Connection], str],
        *ahead: object,
    ) -> tuple[str, bool]:
        nonlocal tried
        if not tried:
            tried = True

            def doomed(conn: Connection) -> None:
                effect(conn)
                raise RuntimeError("rolled back after the effect ran")

            with pytest.raises(RuntimeError):
                await c.db.write_sync(doomed)
        return await commit(self, scope, key, fingerprint, effect, *ahead)  # type: ignore[arg-type]

    monkeypatch.setattr(IdempotentCalls, "_commit", first_try_rolls_back)
    await c.payments.capture(SVC, "cap", payment.payment_id, 400, "JPY")
    assert tried
    [authorization] = cards.authorizations.values()
    assert (authorization.captured, authorization.released) == (300, 600)


# -- capture, cancel, complete -----------------------------------------------------------------


async def test_full_capture_moves_the_hold_to_escrow(c: PaymentsContainer) -> None:
    """Capture without an amount takes everything into escrow."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000))
    captured = await c.payments.capture(SVC, "cap1", payment.payment_id, None, None)
    assert (captured.status, captured.captured, captured.hold_expires_at) == (PaymentStatus.CAPTURED, 1000, None)
    assert await platform_total(c, AccountKind.HOLDS) == 0
    assert await platform_total(c, AccountKind.ESCROW) == 1000


async def test_partial_capture_returns_the_rest_card_first_points_last(
    c: PaymentsContainer, clock: FrozenClock, cards: SimulatedCardProvider
) -> None:
    """Points 200 + cash 300 + card 500 held; capturing 400 returns 500 card, 100 cash."""
    await grant(c, clock, "usr_buyer", 200, "g1")
    await top_up(c, "usr_buyer", 300)
    payment = await c.payments.create(SVC, order("o1", 1000, remainder=Remainder.CARD, card_token="tok_x"))
    captured = await c.payments.capture(SVC, "cap1", payment.payment_id, 400, "JPY")
    assert funding(captured) == {"POINTS": (200, 0), "CASH": (300, 100), "CARD": (500, 500)}
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 100}
    assert await platform_total(c, AccountKind.ESCROW) == 400
    (authorization,) = cards.authorizations.values()
    assert (authorization.captured, authorization.released) == (0, 500)


async def test_capture_rules(c: PaymentsContainer) -> None:
    """More than authorized is refused; a second capture is an illegal transition."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 800))
    with pytest.raises(FailedPrecondition) as too_much:
        await c.payments.capture(SVC, "cap0", payment.payment_id, 801, "JPY")
    assert too_much.value.reason == "CAPTURE_EXCEEDS_AUTHORIZED"
    with pytest.raises(InvalidArgument):
        await c.payments.capture(SVC, "cap0b", payment.payment_id, 100, "USD")
    await c.payments.capture(SVC, "cap1", payment.payment_id, 500, "JPY")
    with pytest.raises(FailedPrecondition) as twice:
        await c.payments.capture(SVC, "cap2", payment.payment_id, 100, "JPY")
    assert twice.value.reason == "ILLEGAL_TRANSITION"


async def test_cancel_releases_everything_and_points_go_back_to_their_lot(
    c: PaymentsContainer, clock: FrozenClock
) -> None:
    """Cancel returns cash and points (to the lot); a captured payment cannot be canceled."""
    await grant(c, clock, "usr_buyer", 300, "g1")
    await top_up(c, "usr_buyer", 700)
    payment = await c.payments.create(SVC, order("o1", 1000))
    canceled = await c.payments.cancel(SVC, "c1", payment.payment_id, "buyer changed their mind")
    assert canceled.status is PaymentStatus.CANCELED
    assert await balances(c, "usr_buyer") == {AccountKind.POINTS: 300, AccountKind.CASH: 700}
    wallet = await c.wallet.balance("usr_buyer")
    assert [lot.remaining for lot in wallet.points_lots] == [300]
    again = await c.payments.create(SVC, order("o2", 1000, capture=True))
    with pytest.raises(FailedPrecondition, match="cannot cancel"):
        await c.payments.cancel(SVC, "c2", again.payment_id, "")
    assert await transitions(c, payment.payment_id) == ["AUTHORIZED", "CANCELED"]


async def test_completion_pays_the_seller_minus_the_fee(c: PaymentsContainer) -> None:
    """¥1,000 captured: the seller's sales proceeds get ¥900, fee revenue ¥100 (10%)."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    assert payment.status is PaymentStatus.CAPTURED
    done = await c.payments.complete(SVC, "done1", payment.payment_id)
    assert (done.status, done.fee) == (PaymentStatus.COMPLETED, 100)
    assert await balances(c, "usr_seller") == {AccountKind.SALES: 900}
    assert await platform_total(c, AccountKind.FEE_REVENUE) == 100
    assert await platform_total(c, AccountKind.ESCROW) == 0
    with pytest.raises(FailedPrecondition):
        await c.payments.complete(SVC, "done2", payment.payment_id)
    assert await transitions(c, payment.payment_id) == ["CAPTURED", "COMPLETED"]


# -- refunds --------------------------------------------------------------------------------


async def test_refunds_add_up_to_the_captured_amount_and_never_more(c: PaymentsContainer, clock: FrozenClock) -> None:
    """Partial refunds go card-first/points-last; the last one makes the payment REFUNDED."""
    await grant(c, clock, "usr_buyer", 200, "g1")
    await top_up(c, "usr_buyer", 800)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    first, r1 = await c.payments.refund(SVC, "r1", payment.payment_id, 500, "JPY", "damaged")
    assert (first.status, first.refunded, r1.amount) == (PaymentStatus.CAPTURED, 500, 500)
    assert funding(first) == {"POINTS": (200, 0), "CASH": (800, 500)}
    with pytest.raises(FailedPrecondition) as too_much:
        await c.payments.refund(SVC, "r2", payment.payment_id, 501, "JPY", "")
    assert too_much.value.reason == "REFUND_EXCEEDS_CAPTURED"
    last, r3 = await c.payments.refund(SVC, "r3", payment.payment_id, None, None, "rest")
    assert (last.status, last.refunded, r3.amount) == (PaymentStatus.REFUNDED, 1000, 500)
    assert [r.amount for r in last.refunds] == [500, 500]
    assert await balances(c, "usr_buyer") == {AccountKind.POINTS: 200, AccountKind.CASH: 800}
    with pytest.raises(FailedPrecondition):
        await c.payments.refund(SVC, "r4", payment.payment_id, 1, "JPY", "")
    assert await transitions(c, payment.payment_id) == ["CAPTURED", "REFUNDED", "REFUNDED"]


async def test_refund_after_completion_takes_back_proceeds_and_fee_in_proportion(c: PaymentsContainer) -> None:
    """After completion (900 to the seller, 100 fee) a 300 refund takes 270 + 30; the rest takes all."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    await c.payments.complete(SVC, "d1", payment.payment_id)
    after, _ = await c.payments.refund(SVC, "r1", payment.payment_id, 300, "JPY", "")
    assert (after.status, after.fee) == (PaymentStatus.COMPLETED, 70)
    assert await balances(c, "usr_seller") == {AccountKind.SALES: 630}
    final, _ = await c.payments.refund(SVC, "r2", payment.payment_id, None, None, "")
    assert (final.status, final.fee) == (PaymentStatus.REFUNDED, 0)
    assert await balances(c, "usr_seller") == {}
    assert await platform_total(c, AccountKind.FEE_REVENUE) == 0
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}


async def test_refund_after_completion_fails_cleanly_when_the_seller_withdrew(c: PaymentsContainer) -> None:
    """The seller's proceeds are gone: INSUFFICIENT_FUNDS, and the payment is unchanged."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    await c.payments.complete(SVC, "d1", payment.payment_id)
    await top_up(c, "usr_other", 1)  # an unrelated account, so the seller's drain is the only move
    sales = user_account("usr_seller", AccountKind.SALES, "JPY")
    await c.ledger.transfer(TransferDraft("test_payout", (Leg(sales, -900), Leg(BANK, 900))))
    with pytest.raises(FailedPrecondition) as refused:
        await c.payments.refund(SVC, "r1", payment.payment_id, 500, "JPY", "")
    assert refused.value.reason == "INSUFFICIENT_FUNDS"
    unchanged = await c.payments.get(payment.payment_id)
    assert (unchanged.status, unchanged.refunded, unchanged.refunds) == (PaymentStatus.COMPLETED, 0, ())


async def test_a_credit_refund_never_pushes_the_line_above_zero(c: PaymentsContainer) -> None:
    """Paid by credit, then the line was repaid: the refund lands in cash."""
    await open_credit(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 600, remainder=Remainder.CREDIT, capture=True))
    await top_up(c, "usr_buyer", 400)
    cash = user_account("usr_buyer", AccountKind.CASH, "JPY")
    credit = user_account("usr_buyer", AccountKind.CREDIT, "JPY")
    await c.ledger.transfer(TransferDraft("credit_repayment", (Leg(cash, -400), Leg(credit, 400))))
    await c.payments.refund(SVC, "r1", payment.payment_id, None, None, "")
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 400}


# -- risk ---------------------------------------------------------------------------------


async def test_a_declined_payment_holds_nothing(c: PaymentsContainer, risk: ScriptedRisk) -> None:
    """DECLINE: the payment is recorded DECLINED with TnS's assessment, no money moves."""
    await top_up(c, "usr_buyer", 1000)
    risk.decisions["usr_buyer"] = "DECLINE"
    payment = await c.payments.create(SVC, order("o1", 1000))
    assert (payment.status, payment.funding, payment.risk.decision) == (PaymentStatus.DECLINED, (), "DECLINE")
    assert payment.risk.assessment_id == f"ra_{payment.payment_id}"
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}
    with pytest.raises(FailedPrecondition):
        await c.payments.capture(SVC, "cap", payment.payment_id, None, None)
    assert risk.queries[0].method.value == "CASH"


async def test_review_holds_the_funds_until_a_reviewer_decides(c: PaymentsContainer, risk: ScriptedRisk) -> None:
    """REVIEW holds (even with capture asked); capture waits; approve → AUTHORIZED; reject → DECLINED, released."""
    await top_up(c, "usr_buyer", 2000)
    risk.decisions["usr_buyer"] = "REVIEW"
    held = await c.payments.create(SVC, order("o1", 1000, capture=True))
    assert held.status is PaymentStatus.IN_REVIEW
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}
    with pytest.raises(FailedPrecondition, match="IN_REVIEW"):
        await c.payments.capture(SVC, "cap", held.payment_id, None, None)
    approved = await c.payments.review("svc-risk-ops", "rv1", held.payment_id, True, "known buyer")
    assert approved.status is PaymentStatus.AUTHORIZED
    assert (await c.payments.capture(SVC, "cap", held.payment_id, None, None)).status is PaymentStatus.CAPTURED
    other = await c.payments.create(SVC, order("o2", 1000))
    rejected = await c.payments.review("svc-risk-ops", "rv2", other.payment_id, False, "stolen account")
    assert rejected.status is PaymentStatus.DECLINED
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}
    assert await transitions(c, other.payment_id) == ["IN_REVIEW", "DECLINED"]


async def test_risk_unreachable_fails_open_below_the_limit_and_closed_above(
    c: PaymentsContainer, risk: ScriptedRisk, db: Database
) -> None:
    """TnS down: ¥10,000 is authorized UNASSESSED; ¥10,001 is UNAVAILABLE with nothing held."""
    await top_up(c, "usr_buyer", 30_000)
    risk.down = True
    small = await c.payments.create(SVC, order("o1", 10_000))
    assert (small.status, small.risk.decision) == (PaymentStatus.AUTHORIZED, "UNASSESSED")
    with pytest.raises(Unavailable) as closed:
        await c.payments.create(SVC, order("o2", 10_001))
    assert closed.value.reason == "RISK_UNAVAILABLE"
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 20_000}
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(payments)) == 1
    risk.down = False
    later = await c.payments.create(SVC, order("o2", 10_001))
    assert later.status is PaymentStatus.AUTHORIZED


# -- frozen wallets, expiry -------------------------------------------------------------------


async def test_a_frozen_buyer_cannot_pay_but_a_frozen_seller_is_paid_and_refunds_still_work(
    c: PaymentsContainer, db: Database
) -> None:
    """WALLET_FROZEN for the buyer; completion and refunds around a frozen seller still post."""
    await top_up(c, "usr_buyer", 2000)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, "usr_seller", "suspended", c.clock.now())
    await c.payments.complete(SVC, "d1", payment.payment_id)
    assert await balances(c, "usr_seller") == {AccountKind.SALES: 900}
    await c.payments.refund(SVC, "r1", payment.payment_id, 500, "JPY", "")
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, "usr_buyer", "suspended", c.clock.now())
    with pytest.raises(FailedPrecondition) as frozen:
        await c.payments.create(SVC, order("o2", 100))
    assert frozen.value.reason == "WALLET_FROZEN"
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1500}


async def test_holds_not_captured_in_time_expire(c: PaymentsContainer, clock: FrozenClock) -> None:
    """After the hold period housekeeping releases the hold; the payment is EXPIRED."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000))
    clock.advance(timedelta(days=7).total_seconds() - 1)
    assert await c.payments.expire_holds() == 0
    clock.advance(1)
    assert await c.housekeeping.run_once() == (0, 1, 1)  # and the create's key, past 48 h
    expired = await c.payments.get(payment.payment_id)
    assert expired.status is PaymentStatus.EXPIRED
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}
    with pytest.raises(FailedPrecondition):
        await c.payments.capture(SVC, "cap", payment.payment_id, None, None)


# -- idempotency, validation ---------------------------------------------------------------------


async def test_replays_return_the_first_response_and_move_nothing(c: PaymentsContainer, risk: ScriptedRisk) -> None:
    """Create and refund replayed: same responses, one effect; another request under the key is refused."""
    await top_up(c, "usr_buyer", 1000)
    first = await c.payments.create(SVC, order("o1", 600, capture=True))
    assert await c.payments.create(SVC, order("o1", 600, capture=True)) == first
    assert len(risk.queries) == 1
    with pytest.raises(InvalidArgument) as reused:
        await c.payments.create(SVC, order("o1", 601, capture=True))
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    r1 = await c.payments.refund(SVC, "r1", first.payment_id, 100, "JPY", "")
    assert await c.payments.refund(SVC, "r1", first.payment_id, 100, "JPY", "") == r1
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 500}
    # Keys are per client: another client's "o1" is a new payment.
    other = await c.payments.create("svc-other", order("o1", 100))
    assert other.payment_id != first.payment_id


async def test_bad_requests_name_their_fields(c: PaymentsContainer) -> None:
    """Every malformed field is reported at once, by its path."""
    bad = order("", 0, currency="yen", buyer_id="bob", seller_id="usr_s", card_token="tok_x")
    with pytest.raises(InvalidArgument) as refused:
        await c.payments.create(SVC, bad)
    paths = {v.field for v in refused.value.violations}
    assert paths == {"idempotency_key", "buyer_id", "amount.amount", "amount.currency", "card_token"}
    with pytest.raises(InvalidArgument) as same:
        await c.payments.create(SVC, order("k", 5, seller_id="usr_buyer"))
    assert [v.field for v in same.value.violations] == ["seller_id"]
    with pytest.raises(InvalidArgument):
        await c.payments.capture(SVC, "k", "nope", None, None)
    with pytest.raises(NotFound):
        await c.payments.capture(SVC, "k", "pay_unknown", None, None)


def test_shards_cover_the_platform_books() -> None:
    """Payments spread over every shard of the hot books."""
    assert {shard_of(f"pay_{i}") for i in range(400)} == set(range(PLATFORM_SHARDS))


async def test_events_carry_the_funding(c: PaymentsContainer, clock: FrozenClock, db: Database) -> None:
    """The CAPTURED event names buyer, seller, amount and the funding per source."""
    await grant(c, clock, "usr_buyer", 100, "g1")
    await top_up(c, "usr_buyer", 900)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    async with db.read() as conn:
        row = (await conn.execute(select(outbox).where(outbox.c.type.like("%PaymentEvent")))).one()
    event = events_pb2.PaymentEvent.FromString(row.payload)
    assert (row.aggregate_id, event.payment_id, event.transition) == ("usr_buyer", payment.payment_id, "CAPTURED")
    assert (event.seller_id, event.moved.amount, dict(event.funding)) == (
        "usr_seller",
        1000,
        {"POINTS": 100, "CASH": 900},
    )


# -- the whole state machine ------------------------------------------------------------------


async def _in_status(c: PaymentsContainer, risk: ScriptedRisk, clock: FrozenClock, status: PaymentStatus) -> str:
    """A fresh payment of ¥1,000 brought into ``status`` through the public operations."""
    key = f"{status.value}-{clock.now().timestamp()}-{len(risk.queries)}"
    risk.decisions["usr_buyer"] = {PaymentStatus.IN_REVIEW: "REVIEW", PaymentStatus.DECLINED: "DECLINE"}.get(
        status, "APPROVE"
    )
    payment = await c.payments.create(SVC, order(key, 1000))
    risk.decisions["usr_buyer"] = "APPROVE"
    pid = payment.payment_id
    if status in (PaymentStatus.CAPTURED, PaymentStatus.COMPLETED, PaymentStatus.REFUNDED):
        await c.payments.capture(SVC, key + "c", pid, None, None)
    if status is PaymentStatus.COMPLETED:
        await c.payments.complete(SVC, key + "d", pid)
    if status is PaymentStatus.REFUNDED:
        await c.payments.refund(SVC, key + "r", pid, None, None, "")
    if status is PaymentStatus.CANCELED:
        await c.payments.cancel(SVC, key + "x", pid, "")
    if status is PaymentStatus.EXPIRED:
        clock.advance(timedelta(days=8).total_seconds())
        await c.payments.expire_holds()
    assert (await c.payments.get(pid)).status is status
    return pid


@pytest.mark.parametrize("status", list(PaymentStatus))
async def test_every_operation_from_every_status(
    c: PaymentsContainer, risk: ScriptedRisk, clock: FrozenClock, status: PaymentStatus
) -> None:
    """Each operation succeeds exactly from the statuses the machine allows; otherwise it is
    ILLEGAL_TRANSITION and the payment and the wallet are unchanged.
    """
    await top_up(c, "usr_buyer", 20_000)
    attempts: dict[Operation, Callable[[str], Awaitable[object]]] = {
        Operation.CAPTURE: lambda pid: c.payments.capture(SVC, "op-capture", pid, None, None),
        Operation.CANCEL: lambda pid: c.payments.cancel(SVC, "op-cancel", pid, ""),
        Operation.REVIEW: lambda pid: c.payments.review(SVC, "op-review", pid, True, ""),
        Operation.COMPLETE: lambda pid: c.payments.complete(SVC, "op-complete", pid),
        Operation.REFUND: lambda pid: c.payments.refund(SVC, "op-refund", pid, 100, "JPY", ""),
    }
    for operation, attempt in attempts.items():
        pid = await _in_status(c, risk, clock, status)
        before = (await c.payments.get(pid), await balances(c, "usr_buyer"))
        if status in ALLOWED_FROM[operation]:
            await attempt(pid)
            assert (await c.payments.get(pid)).status is not status or operation is Operation.REFUND
        else:
            with pytest.raises(FailedPrecondition) as refused:
                await attempt(pid)
            assert refused.value.reason == "ILLEGAL_TRANSITION"
            assert (await c.payments.get(pid), await balances(c, "usr_buyer")) == before
