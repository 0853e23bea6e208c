"""SegmentService behind the shared middleware on a real gRPC server: access rules (no
token, wrong scope, user tokens refused), both definition forms over the wire, error
codes with rich details, membership reads with page tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from furima.marketing.v1 import segment_service_pb2 as pb
from furima.marketing.v1 import segment_service_pb2_grpc as pb_grpc
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import Connection

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.events import Outbox
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.storage import Database
from libs.testing import Forger, claims
from services.marketing.api.segments import SEGMENT_SERVICE, SegmentServicer, register_segments
from services.marketing.domain.events import DEFAULT_CATALOGUE, UserEvent
from services.marketing.domain.facts import apply
from services.marketing.service.batch import Batch
from services.marketing.service.segments import Segments
from services.marketing.store import facts as facts_store
from services.marketing.store import segments as segments_store  # noqa: F401 — registers the segment tables
from services.marketing.store.tables import outbox as outbox_table

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
WEEK = Duration(seconds=7 * 86400)


@dataclass
class Served:
    """A stub of a running SegmentService and the service behind it."""

    stub: pb_grpc.SegmentServiceStub
    segments: Segments
    db: Database
    key: Forger

    def md(self, scope: str = "marketing.read marketing.write", subject: str = "svc-console") -> list[tuple[str, str]]:
        """Call metadata with a token for the marketing audience."""
        token = self.key.sign(claims(scope=scope, audience=["furima.marketing"], subject=subject, client_id=subject))
        return [("authorization", f"Bearer {token}")]

    async def track(self, user_id: str, kind: str, **props: str | int | bool) -> None:
        """Fold an event into the user's facts, with the membership listener, as the intake does."""
        event = UserEvent(f"{user_id}-{kind}-{props}", user_id, kind, NOW, props)

        def write(conn: Connection) -> None:
            facts, version = facts_store.load(conn, user_id, lock=True)
            apply(facts, event, DEFAULT_CATALOGUE)
            facts_store.save_many(conn, [(facts, version)], NOW)
            batch = Batch(conn, NOW, [facts], Outbox(outbox_table))
            self.segments.maintainer.on_event(batch, event, facts)
            batch.flush()

        await self.db.write_sync(write)


@pytest.fixture
async def served(db: Database) -> AsyncIterator[Served]:
    """Provide a SegmentService on a free port over the test database."""
    key = Forger(kid="k1")
    clock = FrozenClock(NOW)
    segments = Segments(db, clock, DEFAULT_CATALOGUE, Outbox(outbox_table, clock=clock))
    verifier = TokenVerifier("furima-id", "furima.marketing", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = GrpcServer(service_name="furima.marketing", config=ServerConfig(port=0), verifier=verifier)
    server.add(register_segments, SegmentServicer(segments), SEGMENT_SERVICE)
    await server.start()
    async with make_channel(server.address, services=[SEGMENT_SERVICE]) as channel:
        yield Served(pb_grpc.SegmentServiceStub(channel), segments, db, key)
    await server.stop(0)


async def status_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, dict[str, object]]:
    """The status code and rich details of a failing call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value)


def create(segment_id: str, expression: str) -> pb.CreateSegmentRequest:
    """A CreateSegment request for an expression."""
    return pb.CreateSegmentRequest(
        segment=pb.Segment(segment_id=segment_id, display_name=segment_id, expression=expression)
    )


STRUCTURED = pb.ConditionGroup(
    operator=pb.GROUP_OPERATOR_ALL,
    conditions=[
        pb.Condition(
            attribute=pb.AttributeCondition(
                attribute="region",
                operator=pb.OPERATOR_IN,
                values=[pb.Literal(string_value="kanto"), pb.Literal(string_value="kansai")],
            )
        ),
        pb.Condition(
            count=pb.CountCondition(event_type="item_listed", window=WEEK, operator=pb.OPERATOR_GE, values=[1])
        ),
        pb.Condition(
            negate=True,
            group=pb.ConditionGroup(
                operator=pb.GROUP_OPERATOR_ANY,
                conditions=[
                    pb.Condition(
                        age=pb.AgeCondition(first_event_type="item_listed", operator=pb.OPERATOR_LE, age=WEEK)
                    ),
                    pb.Condition(
                        sum=pb.SumCondition(
                            event_type="payment_captured", property="amount", operator=pb.OPERATOR_GT, values=[10_000]
                        )
                    ),
                    pb.Condition(segment=pb.SegmentCondition(segment_id="listers")),
                ],
            ),
        ),
    ],
)


async def test_both_forms_round_trip_over_the_wire(served: Served) -> None:
    """A segment created with an expression or with conditions reads back in that form,
    with the canonical expression and what it reads; updates bump the version.
    """
    stub, md = served.stub, served.md()
    listers = (await stub.CreateSegment(create("listers", "count(item_listed)>=1"), metadata=md)).segment
    assert (listers.expression, listers.canonical_expression, listers.version) == (
        "count(item_listed)>=1",
        "count(item_listed) >= 1",
        1,
    )
    request = pb.CreateSegmentRequest(
        segment=pb.Segment(segment_id="mixed", display_name="Mixed", conditions=STRUCTURED)
    )
    mixed = (await stub.CreateSegment(request, metadata=md)).segment
    assert mixed.WhichOneof("definition") == "conditions"
    assert mixed.conditions == STRUCTURED
    assert mixed.canonical_expression == (
        'region in ["kanto", "kansai"] and count(item_listed, 7d) >= 1 and not (first(item_listed) within 7d '
        'or sum(payment_captured.amount) > 10000 or in_segment("listers"))'
    )
    assert list(mixed.referenced_segment_ids) == ["listers"]
    assert list(mixed.event_types) == ["item_listed", "payment_captured"]
    assert mixed.time_sensitive
    assert (await stub.CreateSegment(request, metadata=md)).segment == mixed
    got = await stub.GetSegment(pb.GetSegmentRequest(segment_id="mixed"), metadata=md)
    assert got.segment == mixed
    update = pb.UpdateSegmentRequest(
        segment=pb.Segment(segment_id="mixed", display_name="Now an expression", expression='region == "kanto"'),
        expected_version=1,
    )
    updated = (await stub.UpdateSegment(update, metadata=md)).segment
    assert (updated.expression, updated.version, updated.time_sensitive) == ('region == "kanto"', 2, False)
    listed = await stub.ListSegments(pb.ListSegmentsRequest(page_size=1), metadata=md)
    assert [s.segment_id for s in listed.segments] == ["listers"]
    rest = await stub.ListSegments(pb.ListSegmentsRequest(page_token=listed.next_page_token), metadata=md)
    assert ([s.segment_id for s in rest.segments], rest.next_page_token) == (["mixed"], "")


async def test_without_a_token_is_unauthenticated(served: Served) -> None:
    """No bearer token → UNAUTHENTICATED."""
    code, _ = await status_of(served.stub.GetSegment(pb.GetSegmentRequest(segment_id="x")))
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_scope_is_permission_denied(served: Served) -> None:
    """Reading scope cannot create; an unrelated scope cannot read."""
    code, details = await status_of(
        served.stub.CreateSegment(create("a-seg", "true"), metadata=served.md("marketing.read"))
    )
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    code, _ = await status_of(
        served.stub.CountSegmentMembers(
            pb.CountSegmentMembersRequest(segment_id="a"), metadata=served.md("payments.read")
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", ["CreateSegment", "GetSegment", "ListSegments", "CheckMembership", "PreviewSegment"])
async def test_user_tokens_are_refused_whatever_their_scopes(served: Served, method: str) -> None:
    """A token whose subject is a user → PERMISSION_DENIED USER_TOKEN_REFUSED."""
    await served.stub.CreateSegment(create("a-seg", "true"), metadata=served.md())
    user = served.md("marketing.read marketing.write", subject="usr_alice")
    calls = {
        "CreateSegment": lambda: served.stub.CreateSegment(create("b-seg", "true"), metadata=user),
        "GetSegment": lambda: served.stub.GetSegment(pb.GetSegmentRequest(segment_id="a-seg"), metadata=user),
        "ListSegments": lambda: served.stub.ListSegments(pb.ListSegmentsRequest(), metadata=user),
        "CheckMembership": lambda: served.stub.CheckMembership(
            pb.CheckMembershipRequest(segment_id="a-seg", user_id="usr_alice"), metadata=user
        ),
        "PreviewSegment": lambda: served.stub.PreviewSegment(
            pb.PreviewSegmentRequest(segment=pb.Segment(expression="true")), metadata=user
        ),
    }
    code, details = await status_of(calls[method]())
    assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REFUSED")


async def test_bad_definitions_are_invalid_argument_with_violations(served: Served) -> None:
    """Expression mistakes carry their column, structured ones their path, and a literal
    without a value is refused where it is.
    """
    code, details = await status_of(
        served.stub.CreateSegment(create("typo", 'regoin == "kanto"'), metadata=served.md())
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"] == {
        "segment.expression": "column 1: unknown attribute 'regoin'; did you mean 'region'?"
    }
    structured = pb.ConditionGroup(
        operator=pb.GROUP_OPERATOR_ALL,
        conditions=[
            pb.Condition(
                count=pb.CountCondition(event_type="item_listed", window=Duration(seconds=36 * 3600), values=[1])
            ),
            pb.Condition(
                attribute=pb.AttributeCondition(attribute="region", operator=pb.OPERATOR_EQ, values=[pb.Literal()])
            ),
        ],
    )
    request = pb.CreateSegmentRequest(segment=pb.Segment(segment_id="shapes", conditions=structured))
    code, details = await status_of(served.stub.CreateSegment(request, metadata=served.md()))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"] == {
        "segment.conditions.conditions[1].attribute.values[0]": (
            "set one of string_value, int_value, bool_value or duration_value"
        )
    }
    request.segment.conditions.conditions[1].attribute.values[0].string_value = "kanto"
    code, details = await status_of(served.stub.CreateSegment(request, metadata=served.md()))
    assert details["violations"] == {
        "segment.conditions.conditions[0].count.window": "a window is a whole number of days (24h is 1d), not 36h",
        "segment.conditions.conditions[0].count.operator": "is required",
    }
    code, details = await status_of(
        served.stub.ListSegments(pb.ListSegmentsRequest(page_size=-1), metadata=served.md())
    )
    assert (code, details["violations"]) == (grpc.StatusCode.INVALID_ARGUMENT, {"page_size": "must be >= 0"})


async def test_conflicts_map_to_their_codes(served: Served) -> None:
    """Another definition under a taken id is ALREADY_EXISTS, a stale version ABORTED
    VERSION_MISMATCH, an unknown segment NOT_FOUND.
    """
    stub, md = served.stub, served.md()
    await stub.CreateSegment(create("taken", "true"), metadata=md)
    code, details = await status_of(stub.CreateSegment(create("taken", "false"), metadata=md))
    assert (code, details["reason"]) == (grpc.StatusCode.ALREADY_EXISTS, "SEGMENT_EXISTS")
    stale = pb.UpdateSegmentRequest(segment=pb.Segment(segment_id="taken", expression="false"), expected_version=7)
    code, details = await status_of(stub.UpdateSegment(stale, metadata=md))
    assert (code, details["reason"]) == (grpc.StatusCode.ABORTED, "VERSION_MISMATCH")
    code, details = await status_of(stub.GetSegment(pb.GetSegmentRequest(segment_id="missing"), metadata=md))
    assert (code, details["reason"]) == (grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND")


async def test_membership_reads_over_the_wire(served: Served) -> None:
    """Preview, CheckMembership, paged ListSegmentMembers and CountSegmentMembers agree."""
    stub, md = served.stub, served.md()
    for user, region in [("usr_a", "kanto"), ("usr_b", "kansai"), ("usr_c", "kanto"), ("usr_d", "kanto")]:
        await served.track(user, "user_signed_up", region=region)
    preview = await stub.PreviewSegment(
        pb.PreviewSegmentRequest(segment=pb.Segment(expression='region == "kanto"'), sample_size=2), metadata=md
    )
    assert (preview.users_evaluated, preview.users_matched, preview.estimated_size, preview.exact) == (4, 3, 3, True)
    assert list(preview.sample_user_ids) == ["usr_a", "usr_c"]
    await stub.CreateSegment(create("kanto", 'region == "kanto"'), metadata=md)
    first = await stub.ListSegmentMembers(pb.ListSegmentMembersRequest(segment_id="kanto", page_size=2), metadata=md)
    assert (list(first.user_ids), first.segment_version) == (["usr_a", "usr_c"], 1)
    assert first.computed_at.ToDatetime(tzinfo=UTC) == NOW
    rest = await stub.ListSegmentMembers(
        pb.ListSegmentMembersRequest(segment_id="kanto", page_token=first.next_page_token), metadata=md
    )
    assert (list(rest.user_ids), rest.next_page_token) == (["usr_d"], "")
    count = await stub.CountSegmentMembers(pb.CountSegmentMembersRequest(segment_id="kanto"), metadata=md)
    assert (count.count, count.segment_version) == (3, 1)
    checks = [
        (await stub.CheckMembership(pb.CheckMembershipRequest(segment_id="kanto", user_id=u), metadata=md)).member
        for u in ["usr_a", "usr_b", "usr_c", "usr_d"]
    ]
    assert checks == [True, False, True, True]
    await stub.CreateSegment(create("other", "true"), metadata=md)
    code, details = await status_of(
        stub.ListSegmentMembers(
            pb.ListSegmentMembersRequest(segment_id="other", page_token=first.next_page_token), metadata=md
        )
    )
    assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
