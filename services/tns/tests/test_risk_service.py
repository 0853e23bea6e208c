"""Transaction risk on a real database (SQLite, and PostgreSQL when configured), the ID
feed that tells it about users, and the RiskService servicer behind the shared middleware.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from furima.tns.v1 import risk_service_pb2 as pb
from furima.tns.v1 import risk_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, insert, select

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.errors import InvalidArgument
from libs.ids import new_ulid
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.storage import Database, upgrade
from libs.testing import Forger, claims
from services.tns.api.risk import RISK_SERVICE, RiskServicer, register_risk
from services.tns.domain.risk import Decision, PaymentMethod, RiskAssessment, TransactionRequest
from services.tns.service.identity_feed import CONSUMER_NAME, identity_consumer
from services.tns.service.risk import RiskAssessor
from services.tns.store import known_users as known_repo
from services.tns.store.tables import known_users, labels, risk_assessments, standings

MIGRATIONS = Path("services/tns/store/migrations")
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REQUEST = TransactionRequest(
    "pay_1", "usr_buyer", "usr_seller", 5_000, "JPY", PaymentMethod.CARD, "dev_1", "203.0.113.7"
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Provide a migrated TnS database."""
    database = Database(database_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    """Provide a clock that tests move by hand."""
    return FrozenClock(START)


@pytest.fixture
async def assessor(db: Database, clock: FrozenClock) -> RiskAssessor:
    """Provide the use case, with established buyers and sellers known from the ID feed."""
    async with db.transaction() as tx:
        for user_id in ("usr_buyer", "usr_seller", *(f"usr_b{n}" for n in range(5))):
            await known_repo.record_sign_up(tx.conn, user_id, "JP", START - timedelta(days=365))
    return RiskAssessor(db, clock)


def request(**changes: object) -> TransactionRequest:
    """A small card payment between two established users, with changes."""
    return dataclasses.replace(REQUEST, transaction_id=new_ulid("pay_"), **changes)  # type: ignore[arg-type]


def codes(assessment: RiskAssessment) -> list[str]:
    """The reason codes of an assessment."""
    return [r.code.value for r in assessment.outcome.reasons]


async def count_rows(db: Database, transaction_id: str) -> int:
    """How many assessments are stored for a transaction id."""
    async with db.read() as conn:
        n = await conn.scalar(
            select(func.count())
            .select_from(risk_assessments)
            .where(risk_assessments.c.transaction_id == transaction_id)
        )
    return int(n or 0)


async def test_repeat_returns_the_first_assessment(assessor: RiskAssessor, db: Database, clock: FrozenClock) -> None:
    """The same transaction id again (even from another device, later) returns the stored assessment."""
    first = await assessor.assess(REQUEST)
    clock.advance(600)
    again = await assessor.assess(dataclasses.replace(REQUEST, device_id="dev_2", ip_address=""))
    assert again == first
    assert (first.outcome.decision, first.assessed_at) == (Decision.APPROVE, START)
    assert await count_rows(db, REQUEST.transaction_id) == 1


@pytest.mark.parametrize(
    "change", [{"amount": 5_001}, {"buyer_id": "usr_b1"}, {"seller_id": ""}, {"payment_method": PaymentMethod.BANK}]
)
async def test_reusing_a_transaction_id_for_another_movement_is_refused(
    assessor: RiskAssessor, change: dict[str, object]
) -> None:
    """A transaction id assessed before, sent with another buyer/seller/amount/method → TRANSACTION_ID_REUSED."""
    await assessor.assess(REQUEST)
    with pytest.raises(InvalidArgument) as caught:
        await assessor.assess(dataclasses.replace(REQUEST, **change))  # type: ignore[arg-type]
    assert caught.value.reason == "TRANSACTION_ID_REUSED"
    assert [v.field for v in caught.value.violations] == ["transaction_id"]


async def test_concurrent_duplicates_store_one_assessment(assessor: RiskAssessor, db: Database) -> None:
    """Eight concurrent assessments of one transaction id store one row and all return it."""
    results = await asyncio.gather(*(assessor.assess(REQUEST) for _ in range(8)))
    assert len({r.assessment_id for r in results}) == 1
    assert await count_rows(db, REQUEST.transaction_id) == 1


async def test_invalid_request_is_refused_before_touching_the_database(assessor: RiskAssessor, db: Database) -> None:
    """A malformed request raises INVALID_ARGUMENT with the contract's field paths and stores nothing."""
    bad = dataclasses.replace(REQUEST, amount=-1, currency="yen", payment_method=None)
    with pytest.raises(InvalidArgument) as caught:
        await assessor.assess(bad)
    assert {v.field for v in caught.value.violations} == {"amount.amount", "amount.currency", "payment_method"}
    assert await count_rows(db, REQUEST.transaction_id) == 0


async def test_sixth_payment_in_an_hour_is_buyer_velocity(assessor: RiskAssessor, clock: FrozenClock) -> None:
    """After five assessments within the hour the next earns BUYER_VELOCITY; an hour later it does not."""
    for _ in range(5):
        assert codes(await assessor.assess(request())) == []
        clock.advance(60)
    assert codes(await assessor.assess(request())) == ["BUYER_VELOCITY"]
    clock.advance(3600)
    assert codes(await assessor.assess(request())) == []


async def test_amount_over_a_day_is_buyer_velocity(assessor: RiskAssessor, clock: FrozenClock) -> None:
    """¥300,000 within 24 hours, in the same currency, earns BUYER_VELOCITY; other currencies do not add up."""
    await assessor.assess(request(amount=90_000))
    await assessor.assess(request(amount=200_000, currency="USD"))
    clock.advance(3600 * 12)
    await assessor.assess(request(amount=90_000))
    velocity = await assessor.assess(request(amount=120_000))
    assert "BUYER_VELOCITY" in codes(velocity)
    assert "300000 JPY" in velocity.outcome.reasons[0].detail


async def test_four_buyers_on_one_device_is_shared_device(assessor: RiskAssessor) -> None:
    """A device used by several buyers is SHARED_DEVICE from the third; repeats of one buyer do not count."""
    seen = [codes(await assessor.assess(request(buyer_id="usr_b0", device_id="dev_x"))) for _ in range(3)]
    seen += [codes(await assessor.assess(request(buyer_id=f"usr_b{n}", device_id="dev_x"))) for n in (1, 2, 3)]
    assert seen == [[], [], [], [], ["SHARED_DEVICE"], ["SHARED_DEVICE"]]
    last = await assessor.assess(request(buyer_id="usr_b4", device_id="dev_x"))
    assert last.outcome.reasons[0].detail == "5 buyers used this device in the last 30 days"


async def test_new_account_paying_a_high_amount_goes_to_review(assessor: RiskAssessor, db: Database) -> None:
    """A buyer two days old (or unknown to TnS) paying ¥50,000 is NEW_ACCOUNT_HIGH_AMOUNT and REVIEW."""
    async with db.transaction() as tx:
        await known_repo.record_sign_up(tx.conn, "usr_new", "JP", START - timedelta(days=2))
    fresh = await assessor.assess(request(buyer_id="usr_new", amount=50_000))
    unknown = await assessor.assess(request(buyer_id="usr_ghost", amount=50_000))
    established = await assessor.assess(request(amount=50_000))
    assert (codes(fresh), fresh.outcome.decision) == (["NEW_ACCOUNT_HIGH_AMOUNT"], Decision.REVIEW)
    assert "2.0 days old" in fresh.outcome.reasons[0].detail
    assert codes(unknown) == ["NEW_ACCOUNT_HIGH_AMOUNT"]
    assert established.outcome.decision is Decision.APPROVE


async def test_restricted_party_reviews_until_the_restriction_runs_out(assessor: RiskAssessor, db: Database) -> None:
    """A seller restricted until tomorrow is RESTRICTED_PARTY (REVIEW); one whose restriction ended is not."""
    async with db.transaction() as tx:
        for user_id, until in (("usr_b1", START + timedelta(days=1)), ("usr_b2", START - timedelta(days=1))):
            await tx.conn.execute(
                insert(standings).values(user_id=user_id, level="restricted", restricted_until=until, updated_at=START)
            )
    restricted = await assessor.assess(request(seller_id="usr_b1"))
    lapsed = await assessor.assess(request(seller_id="usr_b2"))
    assert (codes(restricted), restricted.outcome.decision) == (["RESTRICTED_PARTY"], Decision.REVIEW)
    assert restricted.outcome.reasons[0].detail == "the seller is restricted"
    assert (codes(lapsed), lapsed.outcome.decision) == ([], Decision.APPROVE)


async def test_suspended_standing_declines(assessor: RiskAssessor, db: Database) -> None:
    """A buyer TnS enforcement has suspended is SUSPENDED_PARTY: DECLINE at 100."""
    async with db.transaction() as tx:
        await tx.conn.execute(insert(standings).values(user_id="usr_buyer", level="suspended", updated_at=START))
    result = await assessor.assess(request())
    assert (codes(result), result.outcome.score, result.outcome.decision) == (
        ["SUSPENDED_PARTY"],
        100,
        Decision.DECLINE,
    )


async def test_only_labels_in_force_count(assessor: RiskAssessor, db: Database) -> None:
    """A watchlist label counts (WATCHLIST) until it expires."""
    async with db.transaction() as tx:
        for user_id, expires in (("usr_b1", START + timedelta(hours=1)), ("usr_b2", START - timedelta(hours=1))):
            await tx.conn.execute(
                insert(labels).values(
                    user_id=user_id, label="watchlist", reason="t", source="test", created_at=START, expires_at=expires
                )
            )
    assert codes(await assessor.assess(request(seller_id="usr_b1"))) == ["WATCHLIST"]
    assert codes(await assessor.assess(request(seller_id="usr_b2"))) == []


async def test_self_dealing_declines(assessor: RiskAssessor) -> None:
    """A buyer paying themselves is declined."""
    result = await assessor.assess(request(seller_id="usr_buyer"))
    assert (codes(result), result.outcome.decision) == (["SELF_DEALING"], Decision.DECLINE)


# --- the ID feed ---------------------------------------------------------------------------


class ListEventSource:
    """An in-memory producer: a fixed list of events, served after a cursor."""

    def __init__(self, events: Sequence[events_pb2.Event]) -> None:
        self.events = list(events)

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        """The events after ``after`` of the requested types (``follow`` is ignored)."""
        for event in self.events:
            if event.sequence > after and (not types or event.type in types):
                yield event


def id_event(sequence: int, payload: Message, at: datetime = START) -> events_pb2.Event:
    """A furima.events.v1.Event from the ID service carrying ``payload``."""
    packed = any_pb2.Any()
    packed.Pack(payload)
    occurred = Timestamp()
    occurred.FromDatetime(at)
    user_id = str(getattr(payload, "user_id", ""))
    return events_pb2.Event(
        id=new_ulid("evt_"),
        sequence=sequence,
        type=payload.DESCRIPTOR.full_name,
        aggregate_id=user_id,
        occurred_at=occurred,
        payload=packed,
        source="furima.id",
    )


async def test_identity_feed_applies_each_event_once(db: Database, clock: FrozenClock) -> None:
    """UserSignedUp and UserSuspended land in known_users once each; redelivery changes nothing."""
    signed_up = Timestamp()
    signed_up.FromDatetime(START - timedelta(days=3))
    events = [
        id_event(1, id_events.UserSignedUp(user_id="usr_new", region="jp", signed_up_at=signed_up)),
        id_event(2, id_events.ConsentRevoked(user_id="usr_new", client_id="c")),
        id_event(3, id_events.UserSuspended(user_id="usr_new", reason="fraud")),
    ]
    consumer = identity_consumer(db, ListEventSource(events))
    assert consumer.name == CONSUMER_NAME
    assert await consumer.drain() == 2  # the consent event is not asked for
    assert await consumer.drain() == 0
    assert not await consumer.apply(events[0])  # at-least-once delivery: a redelivered event is skipped
    assert await consumer.position() == 3
    async with db.read() as conn:
        rows = (await conn.execute(select(known_users).where(known_users.c.user_id == "usr_new"))).all()
    assert [(r.signed_up_at, r.region, r.suspended) for r in rows] == [(START - timedelta(days=3), "JP", True)]

    result = await RiskAssessor(db, clock).assess(request(buyer_id="usr_new", amount=50_000))
    assert codes(result) == ["SUSPENDED_PARTY", "NEW_ACCOUNT_HIGH_AMOUNT"]
    assert "3.0 days old" in result.outcome.reasons[1].detail


async def test_reinstatement_and_suspension_before_sign_up_are_applied(db: Database) -> None:
    """A suspension for a user not yet known creates the row; UserReinstated clears it."""
    feed = ListEventSource([id_event(7, id_events.UserSuspended(user_id="usr_x", reason="r"))])
    consumer = identity_consumer(db, feed)
    await consumer.drain()
    feed.events.append(id_event(8, id_events.UserReinstated(user_id="usr_x")))
    assert await consumer.drain() == 1
    async with db.read() as conn:
        row = (await conn.execute(select(known_users).where(known_users.c.user_id == "usr_x"))).one()
    assert (row.signed_up_at, row.region, row.suspended) == (None, "", False)


async def test_malformed_identity_event_is_skipped_not_retried(db: Database) -> None:
    """A payload that does not decode is skipped (logged) so the events after it still apply."""
    broken = id_event(1, id_events.UserSignedUp(user_id="usr_a"))
    broken.payload.value = b"\xff\xff\xff"
    feed = ListEventSource([broken, id_event(2, id_events.UserSuspended(user_id="usr_b", reason="r"))])
    assert await identity_consumer(db, feed).drain() == 2
    async with db.read() as conn:
        rows = (await conn.execute(select(known_users.c.user_id, known_users.c.suspended))).all()
    assert [tuple(r) for r in rows] == [("usr_b", True)]


async def test_a_batch_is_assessed_in_order_and_counts_its_own_velocity(assessor: RiskAssessor, db: Database) -> None:
    """Seven payments of one buyer in one batch: the sixth and seventh are BUYER_VELOCITY (the
    batch's earlier ones count), a repeat of the batch returns the same assessments.
    """
    batch = [request() for _ in range(7)]
    first = await assessor.assess_many(batch)
    assert [a.request.transaction_id for a in first] == [r.transaction_id for r in batch]
    assert [codes(a) for a in first] == [[]] * 5 + [["BUYER_VELOCITY"]] * 2
    assert await assessor.assess_many(batch) == first
    assert await assessor.assess(batch[3]) == first[3]


async def test_a_batch_is_all_or_nothing(assessor: RiskAssessor, db: Database) -> None:
    """A malformed transaction, a reused id or an id twice refuses the whole batch, naming
    transactions[i], and nothing of it is stored.
    """
    await assessor.assess(REQUEST)
    fresh = request()
    cases = [
        ([fresh, dataclasses.replace(REQUEST, amount=-1)], {"transactions[1].amount.amount"}),
        ([fresh, dataclasses.replace(REQUEST, amount=1)], {"transactions[1].transaction_id"}),
        ([fresh, fresh], {"transactions[1].transaction_id"}),
        ([], {"transactions"}),
        ([request() for _ in range(101)], {"transactions"}),
    ]
    for batch, fields in cases:
        with pytest.raises(InvalidArgument) as caught:
            await assessor.assess_many(batch)
        assert {v.field for v in caught.value.violations} == fields
    assert await count_rows(db, fresh.transaction_id) == 0


# --- the servicer behind the shared middleware --------------------------------------------


@pytest.fixture
def key() -> Forger:
    """Provide the key tokens are signed with."""
    return Forger(kid="k1")


@pytest.fixture
async def stub(tmp_path: Path, key: Forger) -> AsyncIterator[pb_grpc.RiskServiceAsyncStub]:
    """Provide a stub of a RiskService served on a free port over SQLite."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/grpc.db")
    await upgrade(database, MIGRATIONS)
    verifier = TokenVerifier("furima-id", "furima.tns", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = GrpcServer(service_name="furima.tns", config=ServerConfig(port=0), verifier=verifier)
    server.add(register_risk, RiskServicer(RiskAssessor(database, FrozenClock(START))), RISK_SERVICE)
    await server.start()
    async with make_channel(server.address, services=[RISK_SERVICE]) as channel:
        yield pb_grpc.RiskServiceStub(channel)
    await server.stop(0)
    await database.dispose()


def bearer(key: Forger, scope: str) -> list[tuple[str, str]]:
    """Call metadata with a token for the TnS audience."""
    return [
        ("authorization", f"Bearer {key.sign(claims(scope=scope, audience=['furima.tns'], subject='svc-payments'))}")
    ]


def wire_request(**changes: object) -> pb.AssessTransactionRequest:
    """A well-formed AssessTransactionRequest, with changes."""
    fields: dict[str, object] = {
        "transaction_id": "pay_grpc",
        "buyer_id": "usr_buyer",
        "seller_id": "usr_seller",
        "amount": money_pb2.Money(amount=120_000, currency="JPY"),
        "payment_method": pb.PAYMENT_METHOD_CARD,
        "device_id": "dev_1",
        "ip_address": "203.0.113.7",
    }
    return pb.AssessTransactionRequest(**{**fields, **changes})  # type: ignore[arg-type]


async def test_grpc_assessment_maps_decision_and_reasons(stub: pb_grpc.RiskServiceAsyncStub, key: Forger) -> None:
    """With tns.risk the call returns the assessment; a repeat returns the same one."""
    first = (await stub.AssessTransaction(wire_request(), metadata=bearer(key, "tns.risk"))).assessment
    again = (await stub.AssessTransaction(wire_request(), metadata=bearer(key, "tns.risk"))).assessment
    assert again == first
    assert (first.transaction_id, first.decision, first.score) == ("pay_grpc", pb.RISK_DECISION_REVIEW, 55)
    assert [(r.code, r.points) for r in first.reasons] == [("NEW_ACCOUNT_HIGH_AMOUNT", 40), ("HIGH_AMOUNT", 15)]
    assert first.assessed_at.ToDatetime(tzinfo=UTC) == START


async def test_grpc_without_token_is_unauthenticated(stub: pb_grpc.RiskServiceAsyncStub) -> None:
    """No bearer token → UNAUTHENTICATED."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AssessTransaction(wire_request())
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_without_scope_is_permission_denied(stub: pb_grpc.RiskServiceAsyncStub, key: Forger) -> None:
    """A valid token without tns.risk → PERMISSION_DENIED, reason SCOPE_MISSING."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AssessTransaction(wire_request(), metadata=bearer(key, "tns.standing.read"))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_details(caught.value)["reason"] == "SCOPE_MISSING"


async def test_grpc_bad_input_lists_field_violations(stub: pb_grpc.RiskServiceAsyncStub, key: Forger) -> None:
    """A request without amount or method → INVALID_ARGUMENT with BadRequest naming each field path."""
    bad = pb.AssessTransactionRequest(transaction_id="pay_bad", buyer_id="usr_buyer", payment_method=99)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AssessTransaction(bad, metadata=bearer(key, "tns.risk"))
    details = error_details(caught.value)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"] == {
        "amount.amount": "must be greater than zero",
        "amount.currency": "must be an ISO 4217 code of three upper-case letters such as JPY",
        "payment_method": "must be one of BALANCE, POINTS, CREDIT, CARD, BANK",
    }


async def test_grpc_reused_transaction_id_is_invalid_argument(stub: pb_grpc.RiskServiceAsyncStub, key: Forger) -> None:
    """The same transaction id for another amount → INVALID_ARGUMENT, reason TRANSACTION_ID_REUSED."""
    await stub.AssessTransaction(wire_request(), metadata=bearer(key, "tns.risk"))
    other = wire_request(amount=money_pb2.Money(amount=1, currency="JPY"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AssessTransaction(other, metadata=bearer(key, "tns.risk"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)["reason"] == "TRANSACTION_ID_REUSED"


async def test_grpc_batch_answers_in_order(stub: pb_grpc.RiskServiceAsyncStub, key: Forger) -> None:
    """AssessTransactions returns one assessment per transaction, in order, each as AssessTransaction would."""
    batch = pb.AssessTransactionsRequest(
        transactions=[
            wire_request(transaction_id=f"pay_b{i}", amount=money_pb2.Money(amount=500, currency="JPY"))
            for i in range(3)
        ]
    )
    reply = await stub.AssessTransactions(batch, metadata=bearer(key, "tns.risk"))
    assert [a.transaction_id for a in reply.assessments] == ["pay_b0", "pay_b1", "pay_b2"]
    single = await stub.AssessTransaction(batch.transactions[1], metadata=bearer(key, "tns.risk"))
    assert single.assessment == reply.assessments[1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AssessTransactions(batch, metadata=bearer(key, "tns.standing.read"))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    bad = pb.AssessTransactionsRequest(
        transactions=[wire_request(transaction_id="pay_b9"), pb.AssessTransactionRequest()]
    )
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.AssessTransactions(bad, metadata=bearer(key, "tns.risk"))
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "transactions[1].buyer_id" in error_details(invalid.value)["violations"]  # type: ignore[operator]
