"""Every TnS method refuses callers without a valid token or without its scope."""

from __future__ import annotations

import grpc
import pytest
from furima.tns.v1 import (
    case_service_pb2,
    enforcement_service_pb2,
    moderation_service_pb2,
    risk_service_pb2,
    rule_service_pb2,
)

from tests.helpers import bearer, status_of
from tests.stack import Stack
from tests.test_security_matrix import BAD_TOKENS, Target
from tests.tns_helpers import Tns, listing

TNS_TARGET = Target("furima.tns", "tns.moderate")
FILES = (moderation_service_pb2, enforcement_service_pb2, case_service_pb2, risk_service_pb2, rule_service_pb2)
METHODS = [
    f"/{service.full_name}/{method.name}"
    for module in FILES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _raw(tns: Tns, path: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return tns.channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_unauthenticated_on_tns(stack: Stack, tns_api: Tns, kind: str) -> None:
    """ModerateContent refuses every malformed, forged, expired or misaddressed token as UNAUTHENTICATED."""
    token = await BAD_TOKENS[kind](stack, TNS_TARGET)
    request = moderation_service_pb2.ModerateContentRequest(content=listing("usr_x", "本"))
    call = tns_api.moderation.ModerateContent(request, metadata=bearer(token) if token else [], timeout=5)
    assert await status_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_every_tns_method_needs_a_token_and_its_scope(stack: Stack, tns_api: Tns) -> None:
    """Each of TnS's RPCs: no token → UNAUTHENTICATED; a valid token without its scopes → PERMISSION_DENIED."""
    unrelated = await stack.client_token(scope="events.read")
    results = {}
    for path in METHODS:
        anonymous = await status_of(_raw(tns_api, path)(b"", timeout=5))
        unscoped = await status_of(_raw(tns_api, path)(b"", metadata=bearer(unrelated), timeout=5))
        results[path] = (anonymous, unscoped)
    expected = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert {path: codes for path, codes in results.items() if codes != expected} == {}
    assert len(results) >= 18
