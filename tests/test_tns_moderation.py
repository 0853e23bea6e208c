"""ModerateContent end to end: rules and the model decide, decisions are recorded, and
their effects (content status, review cases, strikes, events) follow.
"""

from __future__ import annotations

import grpc
from furima.tns.v1 import content_pb2, moderation_service_pb2

from tests.helpers import ALICE, BOB, bearer, rpc_error, user_id
from tests.stack import Stack
from tests.tns_helpers import Tns, listing, message, moderate, service_token

ALLOW, WARN, REVIEW, BLOCK = (
    content_pb2.VERDICT_ALLOW,
    content_pb2.VERDICT_WARN,
    content_pb2.VERDICT_REVIEW,
    content_pb2.VERDICT_BLOCK,
)


async def test_clean_listing_is_allowed_with_versions_and_scores(stack: Stack, tns_api: Tns) -> None:
    """A plain listing is ALLOWed, stays visible, and the decision names the rule-set and model versions."""
    token = await service_token(stack, "tns.moderate")
    author = await user_id(stack, ALICE)
    decision = await moderate(
        tns_api, token, listing(author, "無印良品 収納ボックス 2個セット", "引っ越しのため出品します。傷なし。")
    )
    assert decision.verdict == ALLOW
    assert decision.content_status == content_pb2.CONTENT_STATUS_VISIBLE
    assert list(decision.reasons) == []
    assert decision.ruleset_version
    assert decision.model_version.startswith("text-clf-")
    assert {s.policy for s in decision.model_scores} >= {"prohibited_item", "offplatform_payment"}


async def test_bank_transfer_message_is_blocked_and_removed(stack: Stack, tns_api: Tns) -> None:
    """A "transfer to my bank account 1234567" message is BLOCKed and removed, with masked evidence."""
    token = await service_token(stack, "tns.moderate")
    author = await user_id(stack, BOB)
    content = message(author, "手数料がかからないので、こちらの銀行口座に振り込んでください。普通 1234567")
    decision = await moderate(tns_api, token, content)
    assert decision.verdict == BLOCK
    assert decision.content_status == content_pb2.CONTENT_STATUS_REMOVED
    assert "offplatform_payment" in {r.policy for r in decision.reasons}
    assert all("1234567" not in e for r in decision.reasons for e in r.evidence)
    got = await tns_api.moderation.GetContent(
        moderation_service_pb2.GetContentRequest(kind=content.kind, content_id=content.content_id),
        metadata=bearer(token),
    )
    assert got.status == content_pb2.CONTENT_STATUS_REMOVED
    assert got.latest_decision.decision_id == decision.decision_id


async def test_invalid_content_lists_every_field(stack: Stack, tns_api: Tns) -> None:
    """A listing without title or price and a bad author id → INVALID_ARGUMENT naming each field."""
    token = await service_token(stack, "tns.moderate")
    bad = content_pb2.Content(kind=content_pb2.CONTENT_KIND_LISTING, content_id="x1", author_id="bob")
    error = await rpc_error(
        tns_api.moderation.ModerateContent(
            moderation_service_pb2.ModerateContentRequest(content=bad), metadata=bearer(token)
        )
    )
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error["violations"]) == {"content.author_id", "content.title", "content.price.amount"}  # type: ignore[call-overload]
