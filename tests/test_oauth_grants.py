"""The OAuth grants of the ID service, end to end over gRPC, and their effect on a second service."""

from __future__ import annotations

import grpc
import jwt
from furima.id.v1 import oauth_service_pb2

from tests.helpers import (
    ACCESS_TOKEN_TYPE,
    ALICE,
    ECHO_APP,
    ECHO_PARTNER,
    ECHO_SERVICE_CLIENT,
    OK,
    PARTNER,
    PARTNER_REDIRECT,
    TOKEN_EXCHANGE,
    CodeGrant,
    authorize,
    bearer,
    echo_caller,
    oauth,
    partner_tokens,
    pkce_pair,
    redeem,
    refresh,
    register_echo_clients,
    rpc_error,
    sign_in,
)
from tests.stack import EchoService, Stack

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


# --- client credentials -------------------------------------------------------------


async def test_client_credentials_narrows_scope(stack: Stack) -> None:
    """client_credentials grants exactly the requested subset of the client's scopes."""
    response = await oauth(stack).Token(
        oauth_service_pb2.TokenRequest(
            grant_type="client_credentials",
            client_id="svc-tns",
            client_secret=stack.secrets["svc-tns"],
            scope="id.users.read events.read",
        )
    )
    claims = _claims(response.tokens.access_token)
    assert response.tokens.token_type == "Bearer"
    assert set(response.tokens.scope.split()) == {"id.users.read", "events.read"}
    assert set(str(claims["scope"]).split()) == {"id.users.read", "events.read"}
    assert (claims["sub"], claims["client_id"]) == ("svc-tns", "svc-tns")


async def test_client_credentials_refuses_scope_the_client_lacks(stack: Stack) -> None:
    """Asking for a scope outside the client's allowed scopes is PERMISSION_DENIED / INVALID_SCOPE."""
    error = await rpc_error(
        oauth(stack).Token(
            oauth_service_pb2.TokenRequest(
                grant_type="client_credentials",
                client_id="svc-payments",
                client_secret=stack.secrets["svc-payments"],
                scope="payments.read id.keys.admin",
            )
        )
    )
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_SCOPE")


async def test_client_credentials_refuses_wrong_secret(stack: Stack) -> None:
    """A wrong client secret is UNAUTHENTICATED / INVALID_CLIENT."""
    error = await rpc_error(
        oauth(stack).Token(
            oauth_service_pb2.TokenRequest(
                grant_type="client_credentials", client_id="svc-tns", client_secret="not-the-secret"
            )
        )
    )
    assert (error["code"], error["reason"]) == (UNAUTHENTICATED, "INVALID_CLIENT")


# --- authorization code + PKCE ------------------------------------------------------


async def test_authorization_code_with_pkce_issues_partner_tokens(stack: Stack) -> None:
    """A user's consent via a first-party app yields a code the partner redeems for access + refresh tokens."""
    alice = await sign_in(stack, ALICE)
    assert "id.authorize" in alice.tokens.scope.split()
    grant = await authorize(stack, alice.tokens.access_token)
    assert set(grant.scope.split()) == {"profile", "payments.balance.read"}

    response = await redeem(stack, grant)

    assert response.tokens.access_token
    assert response.tokens.refresh_token
    claims = _claims(response.tokens.access_token)
    assert (claims["sub"], claims["client_id"]) == (alice.user.id, PARTNER)
    assert set(str(claims["scope"]).split()) == {"profile", "payments.balance.read"}


async def test_pkce_wrong_verifier_is_refused(stack: Stack) -> None:
    """A code redeemed with a verifier that does not match its challenge is INVALID_GRANT."""
    alice = await sign_in(stack, ALICE)
    grant = await authorize(stack, alice.tokens.access_token)
    wrong = CodeGrant(grant.code, pkce_pair()[0], grant.scope)
    error = await rpc_error(redeem(stack, wrong))
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")


async def test_pkce_missing_verifier_is_refused(stack: Stack) -> None:
    """A code issued with a challenge cannot be redeemed without a verifier, even by a confidential client."""
    alice = await sign_in(stack, ALICE)
    grant = await authorize(stack, alice.tokens.access_token)
    error = await rpc_error(redeem(stack, CodeGrant(grant.code, "", grant.scope)))
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")


async def test_pkce_plain_method_is_refused(stack: Stack) -> None:
    """Authorize refuses code_challenge_method "plain" with a violation on that field."""
    alice = await sign_in(stack, ALICE)
    verifier, _ = pkce_pair()
    error = await rpc_error(
        oauth(stack).Authorize(
            oauth_service_pb2.AuthorizeRequest(
                client_id=PARTNER,
                redirect_uri=PARTNER_REDIRECT,
                scope="profile",
                code_challenge=verifier[:43],
                code_challenge_method="plain",
            ),
            metadata=bearer(alice.tokens.access_token),
        )
    )
    assert (error["code"], error["reason"]) == (INVALID_ARGUMENT, "INVALID_REQUEST")
    assert "code_challenge_method" in error["violations"]  # type: ignore[operator]


async def test_authorization_code_cannot_be_reused(stack: Stack) -> None:
    """A code works once; a second redemption is INVALID_GRANT and ends the session it opened."""
    alice = await sign_in(stack, ALICE)
    grant = await authorize(stack, alice.tokens.access_token)
    first = await redeem(stack, grant)

    error = await rpc_error(redeem(stack, grant))

    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")
    error = await rpc_error(refresh(stack, first.tokens.refresh_token))
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")


async def test_authorization_code_redirect_mismatch_is_refused(stack: Stack) -> None:
    """Redeeming with a redirect_uri other than the authorization request's is INVALID_GRANT."""
    alice = await sign_in(stack, ALICE)
    grant = await authorize(stack, alice.tokens.access_token)
    error = await rpc_error(redeem(stack, grant, redirect_uri="https://partner.example/other"))
    assert (error["code"], error["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")


# --- refresh rotation -----------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_family(stack: Stack, echo: EchoService) -> None:
    """Refresh rotates; replaying a spent refresh token revokes the family at Token and on echo within seconds."""
    await register_echo_clients(stack)
    alice = await sign_in(stack, ALICE)
    first = await partner_tokens(stack, alice.tokens.access_token, client_id=ECHO_PARTNER, scope="profile testing.echo")

    second = await refresh(stack, first.tokens.refresh_token, client_id=ECHO_PARTNER)
    assert second.tokens.refresh_token not in ("", first.tokens.refresh_token)
    assert second.tokens.access_token
    async with echo_caller(echo) as caller:
        assert await caller.status(second.tokens.access_token) == OK

        replay = await rpc_error(refresh(stack, first.tokens.refresh_token, client_id=ECHO_PARTNER))
        assert (replay["code"], replay["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")
        after = await rpc_error(refresh(stack, second.tokens.refresh_token, client_id=ECHO_PARTNER))
        assert (after["code"], after["reason"]) == (PERMISSION_DENIED, "INVALID_GRANT")

        assert await caller.becomes(second.tokens.access_token, UNAUTHENTICATED) == UNAUTHENTICATED
        assert await caller.status(first.tokens.access_token) == UNAUTHENTICATED


# --- token exchange -------------------------------------------------------------------


async def _exchange(stack: Stack, client_id: str, subject_token: str) -> oauth_service_pb2.TokenResponse:
    return await oauth(stack).Token(
        oauth_service_pb2.TokenRequest(
            grant_type=TOKEN_EXCHANGE,
            client_id=client_id,
            client_secret=stack.secrets[client_id],
            subject_token=subject_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
        )
    )


async def test_token_exchange_acts_for_the_user_within_their_scopes(stack: Stack) -> None:
    """svc-tns exchanging alice's token gets sub=alice, act.sub=svc-tns and only scopes alice's token had."""
    alice = await sign_in(stack, ALICE)
    response = await _exchange(stack, "svc-tns", alice.tokens.access_token)

    claims = _claims(response.tokens.access_token)
    assert response.tokens.issued_token_type == ACCESS_TOKEN_TYPE
    assert claims["sub"] == alice.user.id
    act = claims["act"]
    assert isinstance(act, dict)
    assert act["sub"] == "svc-tns"
    granted = set(str(claims["scope"]).split())
    assert granted
    assert granted <= set(alice.tokens.scope.split())
    assert "id.users.admin" not in granted  # svc-tns has it, alice does not


async def test_exchanged_token_works_on_echo_only_for_scopes_the_user_had(stack: Stack, echo: EchoService) -> None:
    """An exchanged token carries testing.echo only when the user's token did, whatever the service holds."""
    await register_echo_clients(stack)
    with_echo = await sign_in(stack, ALICE, client_id=ECHO_APP)
    without_echo = await sign_in(stack, ALICE, client_id="furima-app")

    allowed = await _exchange(stack, ECHO_SERVICE_CLIENT, with_echo.tokens.access_token)
    narrowed = await _exchange(stack, ECHO_SERVICE_CLIENT, without_echo.tokens.access_token)

    async with echo_caller(echo) as caller:
        reply = await caller.echo(allowed.tokens.access_token)
        assert reply.subject == with_echo.user.id
        assert await caller.status(narrowed.tokens.access_token) == PERMISSION_DENIED


# --- introspection and revocation -------------------------------------------------------


async def test_introspect_reports_an_active_token(stack: Stack) -> None:
    """Introspect (with id.tokens.introspect) reports active, sub, client_id and scope of a live token."""
    dev = await stack.client_token()
    alice = await sign_in(stack, ALICE)
    partner = await partner_tokens(stack, alice.tokens.access_token)

    result = await oauth(stack).Introspect(
        oauth_service_pb2.IntrospectRequest(token=partner.tokens.access_token), metadata=bearer(dev)
    )

    assert result.active
    assert (result.sub, result.client_id) == (alice.user.id, PARTNER)
    assert set(result.scope.split()) == {"profile", "payments.balance.read"}
    assert result.token_type == "access_token"


async def test_revoked_token_is_inactive_and_refused_on_echo(stack: Stack, echo: EchoService) -> None:
    """After RFC 7009 Revoke by the owning client, introspection says inactive and echo refuses the token."""
    await register_echo_clients(stack)
    dev = await stack.client_token()
    token = await stack.client_token(ECHO_SERVICE_CLIENT)
    async with echo_caller(echo) as caller:
        assert await caller.status(token) == OK

        await oauth(stack).Revoke(
            oauth_service_pb2.RevokeRequest(
                token=token,
                token_type_hint="access_token",
                client_id=ECHO_SERVICE_CLIENT,
                client_secret=stack.secrets[ECHO_SERVICE_CLIENT],
            )
        )

        result = await oauth(stack).Introspect(oauth_service_pb2.IntrospectRequest(token=token), metadata=bearer(dev))
        assert not result.active
        assert await caller.becomes(token, UNAUTHENTICATED) == UNAUTHENTICATED


async def test_revoke_unknown_token_succeeds_silently(stack: Stack) -> None:
    """Revoking a token that does not exist succeeds (RFC 7009 reveals nothing)."""
    response = await oauth(stack).Revoke(
        oauth_service_pb2.RevokeRequest(
            token="no-such-token", client_id="furima-dev", client_secret=stack.secrets["furima-dev"]
        )
    )
    assert response == oauth_service_pb2.RevokeResponse()


async def test_revoke_by_another_client_changes_nothing(stack: Stack) -> None:
    """A client cannot revoke another client's token: the call succeeds but the token stays active."""
    dev = await stack.client_token()
    token = await stack.client_token("svc-payments")

    await oauth(stack).Revoke(
        oauth_service_pb2.RevokeRequest(token=token, client_id="svc-tns", client_secret=stack.secrets["svc-tns"])
    )

    result = await oauth(stack).Introspect(oauth_service_pb2.IntrospectRequest(token=token), metadata=bearer(dev))
    assert result.active
    assert result.client_id == "svc-payments"


async def test_introspect_names_the_acting_service(stack: Stack) -> None:
    """Introspecting an exchanged token reports the user as sub and the exchanging service as act_sub."""
    dev = await stack.client_token()
    alice = await sign_in(stack, ALICE)
    exchanged = await _exchange(stack, "svc-tns", alice.tokens.access_token)

    result = await oauth(stack).Introspect(
        oauth_service_pb2.IntrospectRequest(token=exchanged.tokens.access_token), metadata=bearer(dev)
    )

    assert result.active
    assert (result.sub, result.act_sub, result.client_id) == (alice.user.id, "svc-tns", "svc-tns")
