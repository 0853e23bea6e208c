"""User consents (list, revoke, effect everywhere) and signing-key rotation seen by a second service."""

from __future__ import annotations

import grpc
import jwt
from furima.id.v1 import (
    consent_service_pb2,
    consent_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    oauth_service_pb2,
)

from tests.helpers import (
    ALICE,
    BOB,
    ECHO_PARTNER,
    OK,
    PARTNER,
    bearer,
    echo_caller,
    eventually,
    get_user_status,
    oauth,
    partner_tokens,
    refresh,
    register_echo_clients,
    rpc_error,
    sign_in,
)
from tests.stack import EchoService, Stack

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def _consents(stack: Stack) -> consent_service_pb2_grpc.ConsentServiceStub:
    return consent_service_pb2_grpc.ConsentServiceStub(stack.channel)


async def test_list_consents_shows_the_partner(stack: Stack) -> None:
    """After alice authorizes partner-demo, her first-party token lists that consent with its scopes."""
    alice = await sign_in(stack, ALICE)
    await partner_tokens(stack, alice.tokens.access_token)

    listed = await _consents(stack).ListConsents(
        consent_service_pb2.ListConsentsRequest(), metadata=bearer(alice.tokens.access_token)
    )

    by_client = {c.client_id: c for c in listed.consents}
    assert set(by_client) == {PARTNER}
    assert by_client[PARTNER].user_id == alice.user.id
    assert set(by_client[PARTNER].scopes) == {"profile", "payments.balance.read"}


async def test_bob_cannot_see_alices_consents(stack: Stack) -> None:
    """ListConsents is scoped to the caller: bob sees none of alice's consents."""
    alice = await sign_in(stack, ALICE)
    await partner_tokens(stack, alice.tokens.access_token)
    bob = await sign_in(stack, BOB)

    listed = await _consents(stack).ListConsents(
        consent_service_pb2.ListConsentsRequest(), metadata=bearer(bob.tokens.access_token)
    )

    assert [c for c in listed.consents if c.user_id == alice.user.id] == []
    assert list(listed.consents) == []


async def test_revoke_consent_stops_partner_tokens_everywhere(stack: Stack, echo: EchoService) -> None:
    """RevokeConsent: partner-demo's tokens for alice are refused on ID, on echo and at Token within seconds."""
    alice = await sign_in(stack, ALICE)
    partner = await partner_tokens(stack, alice.tokens.access_token)
    access = partner.tokens.access_token
    assert await get_user_status(stack, access, alice.user.id) == OK
    async with echo_caller(echo) as caller:
        # Valid but without testing.echo: refused for scope, i.e. the token itself was accepted.
        assert await caller.status(access) == PERMISSION_DENIED

        await _consents(stack).RevokeConsent(
            consent_service_pb2.RevokeConsentRequest(client_id=PARTNER), metadata=bearer(alice.tokens.access_token)
        )

        assert await caller.becomes(access, UNAUTHENTICATED) == UNAUTHENTICATED
    on_id = await eventually(lambda: get_user_status(stack, access, alice.user.id), UNAUTHENTICATED)
    assert on_id == UNAUTHENTICATED
    error = await rpc_error(refresh(stack, partner.tokens.refresh_token))
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")


async def test_revoke_consent_stops_a_token_that_worked_on_echo(stack: Stack, echo: EchoService) -> None:
    """A partner token accepted by echo is refused there within seconds of the user withdrawing consent."""
    await register_echo_clients(stack)
    alice = await sign_in(stack, ALICE)
    partner = await partner_tokens(stack, alice.tokens.access_token, client_id=ECHO_PARTNER, scope="testing.echo")
    async with echo_caller(echo) as caller:
        assert (await caller.echo(partner.tokens.access_token)).subject == alice.user.id

        await _consents(stack).RevokeConsent(
            consent_service_pb2.RevokeConsentRequest(client_id=ECHO_PARTNER), metadata=bearer(alice.tokens.access_token)
        )

        assert await caller.becomes(partner.tokens.access_token, UNAUTHENTICATED) == UNAUTHENTICATED


async def test_key_rotation_keeps_old_tokens_and_serves_new_kid(stack: Stack, echo: EchoService) -> None:
    """After rotation the JWKS has both kids; old and new-kid tokens both work on echo (refetch on unknown kid)."""
    dev = await stack.client_token()
    old_kid = jwt.get_unverified_header(dev)["kid"]
    async with echo_caller(echo) as caller:
        assert await caller.status(dev) == OK

        rotated = await key_service_pb2_grpc.KeyServiceStub(stack.channel).RotateSigningKey(
            key_service_pb2.RotateSigningKeyRequest(), metadata=bearer(dev)
        )
        new_kid = rotated.key.kid
        assert new_kid != old_kid
        assert rotated.key.status == key_service_pb2.KEY_STATUS_ACTIVE

        jwks = await oauth(stack).GetJwks(oauth_service_pb2.GetJwksRequest())
        assert {old_kid, new_kid} <= {k.kid for k in jwks.keys}

        assert await caller.status(dev) == OK
        fresh = await stack.client_token()
        assert jwt.get_unverified_header(fresh)["kid"] == new_kid
        reply = await caller.echo(fresh)
        assert reply.subject == "furima-dev"


async def test_consent_given_again_after_revocation_gives_working_tokens(stack: Stack, echo: EchoService) -> None:
    """Tokens from a consent given again right after a withdrawal work on echo: only earlier tokens are refused."""
    await register_echo_clients(stack)
    alice = await sign_in(stack, ALICE)
    before = await partner_tokens(stack, alice.tokens.access_token, client_id=ECHO_PARTNER, scope="testing.echo")
    await _consents(stack).RevokeConsent(
        consent_service_pb2.RevokeConsentRequest(client_id=ECHO_PARTNER), metadata=bearer(alice.tokens.access_token)
    )
    async with echo_caller(echo) as caller:
        assert await caller.becomes(before.tokens.access_token, UNAUTHENTICATED) == UNAUTHENTICATED

        after = await partner_tokens(stack, alice.tokens.access_token, client_id=ECHO_PARTNER, scope="testing.echo")

        assert await caller.status(after.tokens.access_token) == OK
