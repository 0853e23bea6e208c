"""The escalation ladder end to end: strikes warn, restrict and suspend (through the ID
service, so the user's tokens stop working), and a granted appeal walks it back.
"""

from __future__ import annotations

import grpc
from furima.tns.v1 import case_service_pb2, content_pb2, enforcement_service_pb2, events_pb2

from tests.helpers import BOB, bearer, eventually, rpc_error, sign_in, status_of
from tests.stack import Stack
from tests.tns_helpers import LISTING, Tns, listing, moderate, service_token, standing, tns_events

DRUGS = "大麻リキッド 販売します", "高純度の大麻です。すぐ発送します。"
LEVEL = enforcement_service_pb2
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def test_ladder_suspends_through_id_and_a_granted_appeal_reinstates(stack: Stack, tns_api: Tns) -> None:
    """3 prohibited listings → warned, restricted, suspended at ID (token refused); the
    granted appeal of the first reverts its strike, reinstates at ID (token works again).
    """
    moderator = await service_token(stack, "tns.moderate")
    reader = await service_token(stack, "tns.standing.read")
    bob = await sign_in(stack, BOB)
    bob_token = bob.tokens.access_token
    first = listing(bob.user.id, *DRUGS)

    assert (await moderate(tns_api, moderator, first)).verdict == content_pb2.VERDICT_BLOCK
    after_one = await standing(tns_api, reader, bob.user.id)
    assert (after_one.level, after_one.strike_points, after_one.can_list) == (LEVEL.STANDING_LEVEL_WARNED, 3.0, True)

    await moderate(tns_api, moderator, listing(bob.user.id, *DRUGS))
    restricted = await standing(tns_api, reader, bob.user.id)
    assert restricted.level == LEVEL.STANDING_LEVEL_RESTRICTED
    assert (restricted.can_list, restricted.can_message, restricted.can_pay) == (False, False, True)
    assert restricted.HasField("restricted_until")

    # While restricted even a clean listing is refused, without a further strike.
    clean = await moderate(tns_api, moderator, listing(bob.user.id, "子供服 まとめ売り", "サイズ110です"))
    assert clean.verdict == content_pb2.VERDICT_BLOCK
    assert [r.rule_id for r in clean.reasons] == ["standing.restricted"]
    assert (await standing(tns_api, reader, bob.user.id)).strike_points == 6.0

    appeal = await tns_api.cases.FileAppeal(
        case_service_pb2.FileAppealRequest(kind=LISTING, content_id=first.content_id, statement="It was a CBD oil."),
        metadata=bearer(bob_token),
    )
    assert appeal.case.kind == case_service_pb2.CASE_KIND_APPEAL

    await moderate(tns_api, moderator, listing(bob.user.id, *DRUGS))
    assert (await standing(tns_api, reader, bob.user.id)).level == LEVEL.STANDING_LEVEL_SUSPENDED

    async def bob_reads_own_standing() -> grpc.StatusCode:
        return await status_of(standing(tns_api, bob_token, bob.user.id))

    assert await eventually(bob_reads_own_standing, UNAUTHENTICATED) == UNAUTHENTICATED

    agent = await stack.client_token("cs-console")
    await tns_api.cases.ClaimCase(
        case_service_pb2.ClaimCaseRequest(case_id=appeal.case.case_id), metadata=bearer(agent)
    )
    resolved = await tns_api.cases.ResolveCase(
        case_service_pb2.ResolveCaseRequest(
            case_id=appeal.case.case_id, resolution=case_service_pb2.RESOLUTION_OVERTURN, note="CBD is legal"
        ),
        metadata=bearer(agent),
    )
    assert resolved.case.status == case_service_pb2.CASE_STATUS_RESOLVED

    back = await standing(tns_api, reader, bob.user.id)
    assert (back.level, back.strike_points) == (LEVEL.STANDING_LEVEL_RESTRICTED, 6.0)
    assert await eventually(bob_reads_own_standing, OK) == OK

    actions = await tns_api.enforcement.ListActions(
        enforcement_service_pb2.ListActionsRequest(user_id=bob.user.id), metadata=bearer(agent)
    )
    kinds = [(a.kind, a.HasField("reverted_at")) for a in actions.actions]
    assert (LEVEL.ACTION_KIND_SUSPEND, True) in kinds
    assert (LEVEL.ACTION_KIND_REINSTATE, False) in kinds
    reverted = [a for a in actions.actions if a.content_id == first.content_id]
    assert {a.kind for a in reverted} == {LEVEL.ACTION_KIND_STRIKE, LEVEL.ACTION_KIND_REMOVE_CONTENT}
    assert all(a.HasField("reverted_at") for a in reverted)

    events = await tns_events(tns_api, await service_token(stack, "events.read"), "furima.tns.v1.UserStandingChanged")
    levels = []
    for event in events:
        change = events_pb2.UserStandingChanged()
        event.payload.Unpack(change)
        levels.append(change.level)
    assert levels == [
        LEVEL.STANDING_LEVEL_WARNED,
        LEVEL.STANDING_LEVEL_RESTRICTED,
        LEVEL.STANDING_LEVEL_SUSPENDED,
        LEVEL.STANDING_LEVEL_RESTRICTED,
    ]

    audit = await tns_api.cases.ListAuditEntries(
        case_service_pb2.ListAuditEntriesRequest(subject=f"case:{appeal.case.case_id}"), metadata=bearer(agent)
    )
    assert next((e.action, e.actor) for e in audit.entries) == ("case.resolved", "agent:cs-console")


async def test_users_appeal_and_read_standing_only_for_themselves(stack: Stack, tns_api: Tns) -> None:
    """Alice cannot appeal bob's content or read his standing; a service cannot appeal."""
    moderator = await service_token(stack, "tns.moderate")
    bob = await sign_in(stack, BOB)
    alice = await sign_in(stack)
    blocked = listing(bob.user.id, *DRUGS)
    await moderate(tns_api, moderator, blocked)
    request = case_service_pb2.FileAppealRequest(kind=LISTING, content_id=blocked.content_id, statement="mine?")

    not_author = await rpc_error(tns_api.cases.FileAppeal(request, metadata=bearer(alice.tokens.access_token)))
    assert (not_author["code"], not_author["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AUTHOR")
    as_service = await rpc_error(
        tns_api.cases.FileAppeal(request, metadata=bearer(await service_token(stack, "tns.appeal")))
    )
    assert as_service["code"] == grpc.StatusCode.PERMISSION_DENIED
    other = await rpc_error(standing(tns_api, alice.tokens.access_token, bob.user.id))
    assert (other["code"], other["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_OWNER")
    own = await standing(tns_api, alice.tokens.access_token, alice.user.id)
    assert own.level == LEVEL.STANDING_LEVEL_GOOD
