"""Suspension decided by TnS takes effect everywhere within seconds, and is audited."""

from __future__ import annotations

import grpc
from furima.id.v1 import audit_service_pb2, audit_service_pb2_grpc, user_service_pb2

from tests.helpers import (
    ALICE,
    ECHO_APP,
    OK,
    bearer,
    echo_caller,
    eventually,
    get_user_status,
    register_echo_clients,
    rpc_error,
    sign_in,
    users,
)
from tests.stack import EchoService, Stack

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def _suspend(stack: Stack, target: str) -> None:
    token = await stack.client_token("svc-tns", scope="id.users.admin")
    await users(stack).SuspendUser(
        user_service_pb2.SuspendUserRequest(user_id=target, reason="fraud review"), metadata=bearer(token)
    )


async def _reinstate(stack: Stack, target: str) -> None:
    token = await stack.client_token("svc-tns", scope="id.users.admin")
    await users(stack).ReinstateUser(
        user_service_pb2.ReinstateUserRequest(user_id=target, reason="cleared"), metadata=bearer(token)
    )


async def test_suspension_and_reinstatement_take_effect_within_seconds(stack: Stack, echo: EchoService) -> None:
    """Suspension refuses alice's live token on echo and ID within seconds and blocks sign-in; reinstating undoes it."""
    await register_echo_clients(stack)
    alice = await sign_in(stack, ALICE, client_id=ECHO_APP)
    token = alice.tokens.access_token
    async with echo_caller(echo) as caller:
        assert (await caller.echo(token)).subject == alice.user.id
        assert await get_user_status(stack, token, alice.user.id) == OK

        await _suspend(stack, alice.user.id)

        assert await caller.becomes(token, UNAUTHENTICATED) == UNAUTHENTICATED
        on_id = await eventually(lambda: get_user_status(stack, token, alice.user.id), UNAUTHENTICATED)
        assert on_id == UNAUTHENTICATED
        error = await rpc_error(sign_in(stack, ALICE, client_id=ECHO_APP))
        assert (error["code"], error["reason"]) == (grpc.StatusCode.FAILED_PRECONDITION, "USER_SUSPENDED")

        await _reinstate(stack, alice.user.id)

        assert await caller.becomes(token, OK) == OK
        assert await eventually(lambda: get_user_status(stack, token, alice.user.id), OK) == OK
    assert (await sign_in(stack, ALICE)).user.id == alice.user.id


async def test_suspension_is_in_the_audit_trail(stack: Stack) -> None:
    """ListAuditEvents (id.audit.read) shows user.suspended and user.reinstated for alice."""
    alice = await sign_in(stack, ALICE)
    await _suspend(stack, alice.user.id)
    await _reinstate(stack, alice.user.id)

    dev = await stack.client_token()
    listed = await audit_service_pb2_grpc.AuditServiceStub(stack.channel).ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(subject=alice.user.id, page_size=100), metadata=bearer(dev)
    )

    by_type = {e.type: e for e in listed.events}
    assert {"user.suspended", "user.reinstated"} <= set(by_type)
    assert by_type["user.suspended"].actor == "svc-tns"
    assert by_type["user.suspended"].subject == alice.user.id
