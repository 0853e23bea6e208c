"""Invalid requests are refused with field violations; duplicates and password guessing are refused."""

from __future__ import annotations

import grpc
from furima.id.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    client_service_pb2,
    oauth_service_pb2,
    user_service_pb2,
)

from services.id.bootstrap import DEMO_PASSWORD
from tests.helpers import (
    ALICE,
    PARTNER_REDIRECT,
    bearer,
    oauth,
    pkce_pair,
    register_client,
    rpc_error,
    sign_in,
    users,
)
from tests.stack import Stack

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


async def test_sign_up_reports_every_bad_field(stack: Stack) -> None:
    """SignUp with a bad e-mail and a short password names both fields in the violations."""
    error = await rpc_error(users(stack).SignUp(user_service_pb2.SignUpRequest(email="not-an-email", password="short")))
    assert error["code"] == INVALID_ARGUMENT
    violations = error["violations"]
    assert isinstance(violations, dict)
    assert {"email", "password"} <= set(violations)


async def test_authorize_requires_client_id(stack: Stack) -> None:
    """Authorize with an empty client_id is INVALID_ARGUMENT with a client_id violation."""
    alice = await sign_in(stack, ALICE)
    _, challenge = pkce_pair()
    error = await rpc_error(
        oauth(stack).Authorize(
            oauth_service_pb2.AuthorizeRequest(
                client_id="",
                redirect_uri=PARTNER_REDIRECT,
                scope="profile",
                code_challenge=challenge,
                code_challenge_method="S256",
            ),
            metadata=bearer(alice.tokens.access_token),
        )
    )
    assert error["code"] == INVALID_ARGUMENT
    assert "client_id" in error["violations"]  # type: ignore[operator]


async def test_register_client_requires_name_and_kind(stack: Stack) -> None:
    """RegisterClient without a name and a kind is INVALID_ARGUMENT naming both fields."""
    error = await rpc_error(
        register_client(stack, allowed_scopes=["profile"], grant_types=["client_credentials"], confidential=True)
    )
    assert error["code"] == INVALID_ARGUMENT
    violations = error["violations"]
    assert isinstance(violations, dict)
    assert {"name", "kind"} <= set(violations)


async def test_register_client_with_valid_fields_succeeds(stack: Stack) -> None:
    """A complete RegisterClient request succeeds, so the refusal above is about the missing fields."""
    response = await register_client(
        stack,
        name="Valid",
        kind=client_service_pb2.CLIENT_KIND_SERVICE,
        allowed_scopes=["profile"],
        grant_types=["client_credentials"],
        confidential=True,
    )
    assert response.client.client_id
    assert response.client_secret


async def test_list_audit_events_refuses_negative_page_size(stack: Stack) -> None:
    """ListAuditEvents with a negative page_size is INVALID_ARGUMENT with a page_size violation."""
    dev = await stack.client_token()
    error = await rpc_error(
        audit_service_pb2_grpc.AuditServiceStub(stack.channel).ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(page_size=-1), metadata=bearer(dev)
        )
    )
    assert error["code"] == INVALID_ARGUMENT
    assert "page_size" in error["violations"]  # type: ignore[operator]


async def test_sign_up_twice_is_already_exists(stack: Stack) -> None:
    """Signing up twice with the same e-mail (case aside) is ALREADY_EXISTS."""
    request = user_service_pb2.SignUpRequest(email="carol@example.com", password="a-long-enough-password")
    await users(stack).SignUp(request)
    error = await rpc_error(
        users(stack).SignUp(user_service_pb2.SignUpRequest(email="Carol@Example.com", password="another-password-1"))
    )
    assert (error["code"], error["reason"]) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")


async def test_failed_sign_ins_are_throttled(still_stack: Stack) -> None:
    """After a few wrong passwords, even the right password is RESOURCE_EXHAUSTED with retry_after > 0."""
    stub = users(still_stack)
    wrong = user_service_pb2.SignInRequest(email=ALICE, password="wrong-password-123")
    outcomes = []
    for _ in range(3):
        error = await rpc_error(stub.SignIn(wrong))
        outcomes.append((error["code"], error["reason"]))
    assert outcomes == [(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")] * 3

    error = await rpc_error(stub.SignIn(user_service_pb2.SignInRequest(email=ALICE, password=DEMO_PASSWORD)))

    assert (error["code"], error["reason"]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGNIN_THROTTLED")
    retry_after = error["retry_after"]
    assert isinstance(retry_after, float)
    assert retry_after > 0
