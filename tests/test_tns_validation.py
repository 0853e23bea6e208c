"""TnS refuses malformed requests with INVALID_ARGUMENT naming each bad field, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
from furima.tns.v1 import case_service_pb2, enforcement_service_pb2, moderation_service_pb2

from tests.helpers import ALICE, bearer, rpc_error, sign_in
from tests.stack import Stack
from tests.tns_helpers import LISTING, Tns, service_token


async def _fields(call: Awaitable[Any]) -> set[str]:
    error = await rpc_error(call)
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT
    return set(error["violations"])  # type: ignore[call-overload]


async def test_bad_requests_name_their_fields(stack: Stack, tns_api: Tns) -> None:
    """Resolve without resolution or note, a bad label, an unknown report policy, a forged page token."""
    agent = await stack.client_token("cs-console")
    alice = (await sign_in(stack, ALICE)).tokens.access_token
    cases, enforcement = tns_api.cases, tns_api.enforcement

    resolve = case_service_pb2.ResolveCaseRequest(case_id="case_x")
    assert await _fields(cases.ResolveCase(resolve, metadata=bearer(agent))) == {"resolution"}
    resolve.resolution = case_service_pb2.RESOLUTION_CONFIRM
    assert await _fields(cases.ResolveCase(resolve, metadata=bearer(agent))) == {"note"}

    label = enforcement_service_pb2.AddUserLabelRequest(user_id="usr_x", label="Not OK!", reason="r")
    assert await _fields(enforcement.AddUserLabel(label, metadata=bearer(agent))) == {"label"}

    report = moderation_service_pb2.ReportContentRequest(kind=LISTING, content_id="lst_x", policy="spam")
    assert await _fields(tns_api.moderation.ReportContent(report, metadata=bearer(alice))) == {"policy"}
    unspecified = moderation_service_pb2.ReportContentRequest(content_id="lst_x", policy="offensive")
    assert await _fields(tns_api.moderation.ReportContent(unspecified, metadata=bearer(alice))) == {"kind"}

    page = case_service_pb2.ListCasesRequest(page_token="not-ours")
    assert await _fields(cases.ListCases(page, metadata=bearer(agent))) == {"page_token"}
    appeal = case_service_pb2.FileAppealRequest(kind=LISTING, content_id="lst_x", statement=" ")
    assert await _fields(cases.FileAppeal(appeal, metadata=bearer(alice))) == {"statement"}

    standing = enforcement_service_pb2.GetUserStandingRequest()
    reader = await service_token(stack, "tns.standing.read")
    assert await _fields(enforcement.GetUserStanding(standing, metadata=bearer(reader))) == {"user_id"}
    listed = await cases.ListCases(case_service_pb2.ListCasesRequest(), metadata=bearer(agent))
    assert list(listed.cases) == []
