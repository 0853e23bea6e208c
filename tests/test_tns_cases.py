"""Review cases: reports open them, leases keep two agents apart, resolutions take
effect, and every step is in the append-only audit log.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from furima.tns.v1 import case_service_pb2, content_pb2, enforcement_service_pb2, moderation_service_pb2
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from libs.clock import FrozenClock
from libs.rpc import make_channel
from services.tns.main import TnsService
from tests.helpers import ALICE, BOB, bearer, rpc_error, sign_in, status_of, user_id
from tests.stack import Stack, running_tns
from tests.tns_helpers import LISTING, Tns, agent_tokens, listing, moderate, service_token, standing

CONFIRM = case_service_pb2.RESOLUTION_CONFIRM
OVERTURN = case_service_pb2.RESOLUTION_OVERTURN


async def _reported_listing(stack: Stack, tns: Tns, title: str = "ヴィトン 財布 美品") -> tuple[str, str]:
    """Bob lists something the rules allow; alice reports it as counterfeit. Returns (content id, case id)."""
    content = listing(await user_id(stack, BOB), title, "正規店で購入しました", price=20000, category="wallets")
    await moderate(tns, await service_token(stack, "tns.moderate"), content)
    alice = await sign_in(stack, ALICE)
    report = await tns.moderation.ReportContent(
        moderation_service_pb2.ReportContentRequest(
            kind=LISTING, content_id=content.content_id, policy="counterfeit", note="looks fake"
        ),
        metadata=bearer(alice.tokens.access_token),
    )
    return content.content_id, report.case_id


async def test_concurrent_claims_give_the_case_to_exactly_one_agent(stack: Stack, tns_api: Tns) -> None:
    """Two agents racing 10 times each for one case: one agent wins every time, the other gets CASE_LEASED."""
    _, case_id = await _reported_listing(stack, tns_api)
    first, second = await agent_tokens(stack)
    request = case_service_pb2.ClaimCaseRequest(case_id=case_id)
    calls = [tns_api.cases.ClaimCase(request, metadata=bearer(t)) for _ in range(10) for t in (first, second)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    winners = {r.case.claimed_by for r in results if not isinstance(r, BaseException)}
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 10
    assert {e.code() for e in losers} == {grpc.StatusCode.FAILED_PRECONDITION}


async def test_claim_next_hands_out_each_case_once(stack: Stack, tns_api: Tns) -> None:
    """Six open cases, two agents claiming the next one three times each concurrently: six distinct cases."""
    for i in range(6):
        await _reported_listing(stack, tns_api, f"ブランド バッグ {i}")
    first, second = await agent_tokens(stack)
    request = case_service_pb2.ClaimCaseRequest(policies=["counterfeit"])
    claims = await asyncio.gather(
        *(tns_api.cases.ClaimCase(request, metadata=bearer(t)) for _ in range(3) for t in (first, second))
    )
    assert len({c.case.case_id for c in claims}) == 6
    empty = await rpc_error(tns_api.cases.ClaimCase(request, metadata=bearer(first)))
    assert (empty["code"], empty["reason"]) == (grpc.StatusCode.NOT_FOUND, "QUEUE_EMPTY")


async def test_confirmed_report_removes_content_strikes_and_is_audited(stack: Stack, tns_api: Tns) -> None:
    """Resolving needs the live lease; CONFIRM removes the listing and strikes bob; the audit log says who did what."""
    content_id, case_id = await _reported_listing(stack, tns_api)
    first, second = await agent_tokens(stack)
    bob = await user_id(stack, BOB)
    resolve = case_service_pb2.ResolveCaseRequest(case_id=case_id, resolution=CONFIRM, note="replica confirmed")

    unclaimed = await rpc_error(tns_api.cases.ResolveCase(resolve, metadata=bearer(first)))
    assert (unclaimed["code"], unclaimed["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    await tns_api.cases.ClaimCase(case_service_pb2.ClaimCaseRequest(case_id=case_id), metadata=bearer(first))
    not_holder = await rpc_error(tns_api.cases.ResolveCase(resolve, metadata=bearer(second)))
    assert not_holder["reason"] == "LEASE_NOT_HELD"
    done = await tns_api.cases.ResolveCase(resolve, metadata=bearer(first))
    assert (done.case.resolution, done.case.resolved_by) == (CONFIRM, "cs-console")
    again = await rpc_error(tns_api.cases.ResolveCase(resolve, metadata=bearer(first)))
    assert again["reason"] == "CASE_RESOLVED"

    content = await tns_api.moderation.GetContent(
        moderation_service_pb2.GetContentRequest(kind=LISTING, content_id=content_id), metadata=bearer(first)
    )
    assert content.status == content_pb2.CONTENT_STATUS_REMOVED
    bob_standing = await standing(tns_api, first, bob)
    assert (bob_standing.level, bob_standing.strike_points) == (enforcement_service_pb2.STANDING_LEVEL_WARNED, 3.0)

    audit = await tns_api.cases.ListAuditEntries(
        case_service_pb2.ListAuditEntriesRequest(subject=f"content:listing:{content_id}"), metadata=bearer(first)
    )
    actions = [(e.action, e.actor) for e in audit.entries]
    assert ("content.removed", "agent:cs-console") in actions
    assert ("content.moderated", "system") in actions
    reported = next(e for e in audit.entries if e.action == "content.reported")
    assert reported.actor.startswith("user:usr_")
    removed = next(e for e in audit.entries if e.action == "content.removed")
    assert json.loads(removed.after_json)["status"] == "removed"
    moderated = next(e for e in audit.entries if e.action == "content.moderated")
    assert moderated.ruleset_version
    assert moderated.model_version


async def test_a_lease_runs_out_and_another_agent_can_take_the_case(
    stack: Stack, tns_database_url: str, tmp_path: Path
) -> None:
    """After the lease time passes (TnS's clock), the second agent claims and the first can no longer resolve."""
    clock = FrozenClock()
    async with (
        running_tns(stack, tns_database_url, case_lease=60, clock=clock) as service,
        make_channel(service.address) as channel,
    ):
        tns = Tns(channel)
        _, case_id = await _reported_listing(stack, tns)
        first, second = await agent_tokens(stack)
        claim = case_service_pb2.ClaimCaseRequest(case_id=case_id)
        await tns.cases.ClaimCase(claim, metadata=bearer(first))
        assert (
            await status_of(tns.cases.ClaimCase(claim, metadata=bearer(second))) == grpc.StatusCode.FAILED_PRECONDITION
        )
        clock.advance(61)
        taken = await tns.cases.ClaimCase(claim, metadata=bearer(second))
        assert taken.case.claimed_by == "cs-agent-2"
        late = await rpc_error(
            tns.cases.ResolveCase(
                case_service_pb2.ResolveCaseRequest(case_id=case_id, resolution=OVERTURN, note="fine"),
                metadata=bearer(first),
            )
        )
        assert late["reason"] == "LEASE_NOT_HELD"


@pytest.mark.parametrize("statement", ["UPDATE audit SET note = 'edited'", "DELETE FROM audit"])
async def test_the_audit_log_refuses_changes(tns: TnsService, statement: str) -> None:
    """The database itself refuses to update or delete an audit entry."""
    db = tns.container.db
    async with db.transaction() as tx:
        await tx.conn.execute(
            text(
                "INSERT INTO audit (id, at, actor, action, subject, ruleset_version, model_version,"
                " before_json, after_json, note) VALUES ('aud_x', CURRENT_TIMESTAMP, 'system', 'x', 's', '', '',"
                " '{}', '{}', '')"
            )
        )
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.transaction() as tx:
            await tx.conn.execute(text(statement))
