"""Helpers of the TnS suites: stubs, content, agents and users."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import grpc
from furima.events.v1 import events_pb2, events_pb2_grpc
from furima.id.v1 import client_service_pb2
from furima.tns.v1 import (
    case_service_pb2_grpc,
    content_pb2,
    enforcement_service_pb2,
    enforcement_service_pb2_grpc,
    moderation_service_pb2,
    moderation_service_pb2_grpc,
    risk_service_pb2_grpc,
    rule_service_pb2_grpc,
)
from furima.types.v1 import money_pb2

from tests.helpers import bearer, register_client
from tests.stack import Stack

LISTING = content_pb2.CONTENT_KIND_LISTING
MESSAGE = content_pb2.CONTENT_KIND_MESSAGE
SECOND_AGENT = "cs-agent-2"
_ids = itertools.count(1)


@dataclass
class Tns:
    """Stubs of a running TnS on one channel."""

    channel: grpc.aio.Channel

    @property
    def moderation(self) -> moderation_service_pb2_grpc.ModerationServiceStub:
        """ModerationService."""
        return moderation_service_pb2_grpc.ModerationServiceStub(self.channel)

    @property
    def enforcement(self) -> enforcement_service_pb2_grpc.EnforcementServiceStub:
        """EnforcementService."""
        return enforcement_service_pb2_grpc.EnforcementServiceStub(self.channel)

    @property
    def cases(self) -> case_service_pb2_grpc.CaseServiceStub:
        """CaseService."""
        return case_service_pb2_grpc.CaseServiceStub(self.channel)

    @property
    def risk(self) -> risk_service_pb2_grpc.RiskServiceStub:
        """RiskService."""
        return risk_service_pb2_grpc.RiskServiceStub(self.channel)

    @property
    def rules(self) -> rule_service_pb2_grpc.RuleServiceStub:
        """RuleService."""
        return rule_service_pb2_grpc.RuleServiceStub(self.channel)

    @property
    def events(self) -> events_pb2_grpc.EventStreamServiceStub:
        """TnS's own event stream."""
        return events_pb2_grpc.EventStreamServiceStub(self.channel)


def listing(
    author_id: str, title: str, body: str = "", *, price: int = 3000, category: str = "other"
) -> content_pb2.Content:
    """A listing with a fresh id."""
    return content_pb2.Content(
        kind=LISTING,
        content_id=f"lst_{next(_ids)}",
        author_id=author_id,
        title=title,
        body=body,
        category=category,
        price=money_pb2.Money(amount=price, currency="JPY"),
    )


def message(author_id: str, body: str) -> content_pb2.Content:
    """A transaction message with a fresh id."""
    return content_pb2.Content(kind=MESSAGE, content_id=f"msg_{next(_ids)}", author_id=author_id, body=body)


async def moderate(tns: Tns, token: str, content: content_pb2.Content) -> content_pb2.Decision:
    """ModerateContent; returns the decision."""
    response = await tns.moderation.ModerateContent(
        moderation_service_pb2.ModerateContentRequest(content=content), metadata=bearer(token)
    )
    return response.decision


async def standing(tns: Tns, token: str, user_id: str) -> enforcement_service_pb2.UserStanding:
    """GetUserStanding."""
    response = await tns.enforcement.GetUserStanding(
        enforcement_service_pb2.GetUserStandingRequest(user_id=user_id), metadata=bearer(token)
    )
    return response.standing


async def service_token(stack: Stack, scope: str) -> str:
    """A furima-dev token narrowed to ``scope``."""
    return await stack.client_token("furima-dev", scope=scope)


async def agent_tokens(stack: Stack) -> tuple[str, str]:
    """Tokens of two different review agents (the cs-console client and a second one)."""
    second = await register_client(
        stack,
        client_id=SECOND_AGENT,
        name="Second review agent",
        kind=client_service_pb2.CLIENT_KIND_SERVICE,
        confidential=True,
        allowed_scopes=["tns.review"],
        grant_types=["client_credentials"],
    )
    stack.secrets[SECOND_AGENT] = second.client_secret
    return await stack.client_token("cs-console"), await stack.client_token(SECOND_AGENT)


async def tns_events(tns: Tns, token: str, event_type: str) -> list[events_pb2.Event]:
    """Every event of one type on TnS's stream so far."""
    stream = tns.events.StreamEvents(events_pb2.StreamEventsRequest(types=[event_type]), metadata=bearer(token))
    return [item.event async for item in stream]
