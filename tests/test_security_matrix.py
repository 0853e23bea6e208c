"""Bad tokens are refused by ID and by a second service; scopes and record ownership are enforced."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from furima.id.v1 import oauth_service_pb2, user_service_pb2
from furima.testing.v1 import echo_service_pb2

from libs.auth import jwk_to_public_key
from libs.testing import Forger, claims
from tests.helpers import (
    ALICE,
    BOB,
    OK,
    bearer,
    echo_caller,
    get_user_status,
    oauth,
    partner_tokens,
    sign_in,
    status_of,
    user_id,
    users,
)
from tests.stack import EchoService, Stack

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


@dataclass(frozen=True)
class Target:
    """A service to attack: its audience and the scope its method needs."""

    audience: str
    scope: str


ID_TARGET = Target("furima.id", "id.users.read")
ECHO_TARGET = Target("furima.testing", "testing.echo")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _jwk(stack: Stack) -> oauth_service_pb2.Jwk:
    jwks = await oauth(stack).GetJwks(oauth_service_pb2.GetJwksRequest())
    return jwks.keys[0]


def _good_claims(stack: Stack, target: Target, **overrides: Any) -> dict[str, Any]:
    issuer = stack.id.container.config.issuer
    values: dict[str, Any] = {"issuer": issuer, "audience": [target.audience], "scope": target.scope}
    values.update(overrides)
    return claims(**values)


async def _none(stack: Stack, target: Target) -> str | None:
    return None


async def _garbage(stack: Stack, target: Target) -> str | None:
    return "this-is-not-a-jwt"


async def _expired(stack: Stack, target: Target) -> str | None:
    # Signed by the real key ring: only the lifetime is wrong.
    return await stack.id.container.keyring.sign(_good_claims(stack, target, ttl=-600))


async def _wrong_issuer(stack: Stack, target: Target) -> str | None:
    return await stack.id.container.keyring.sign(_good_claims(stack, target, issuer="https://evil.example"))


async def _wrong_audience(stack: Stack, target: Target) -> str | None:
    return await stack.client_token(scope=target.scope, audience=("furima.payments",))


async def _other_key_real_kid(stack: Stack, target: Target) -> str | None:
    kid = (await _jwk(stack)).kid
    return Forger().sign(_good_claims(stack, target), kid=kid)


async def _alg_none(stack: Stack, target: Target) -> str | None:
    kid = (await _jwk(stack)).kid
    return jwt.encode(_good_claims(stack, target), None, algorithm="none", headers={"kid": kid})


async def _hs256_with_public_key(stack: Stack, target: Target) -> str | None:
    # The classic algorithm-confusion attack: HMAC keyed with the verifier's public key.
    # PyJWT refuses to build it, so it is assembled by hand.
    jwk = await _jwk(stack)
    pem = jwk_to_public_key(jwk.kty, jwk.crv, jwk.x, jwk.y).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": jwk.kid}).encode())
    payload = _b64(json.dumps(_good_claims(stack, target)).encode())
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


BAD_TOKENS: dict[str, Callable[[Stack, Target], Awaitable[str | None]]] = {
    "no-token": _none,
    "garbage": _garbage,
    "expired": _expired,
    "wrong-audience": _wrong_audience,
    "wrong-issuer": _wrong_issuer,
    "other-key-real-kid": _other_key_real_kid,
    "alg-none": _alg_none,
    "hs256-public-key": _hs256_with_public_key,
}


def _metadata(token: str | None) -> list[tuple[str, str]]:
    return bearer(token) if token is not None else []


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_unauthenticated_on_id(stack: Stack, kind: str) -> None:
    """UserService.GetUser refuses every malformed, forged, expired or misaddressed token as UNAUTHENTICATED."""
    alice = await user_id(stack, ALICE)
    token = await BAD_TOKENS[kind](stack, ID_TARGET)
    call = users(stack).GetUser(user_service_pb2.GetUserRequest(user_id=alice), metadata=_metadata(token))
    assert await status_of(call) == UNAUTHENTICATED


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_unauthenticated_on_echo(stack: Stack, echo: EchoService, kind: str) -> None:
    """The echo service refuses every malformed, forged, expired or misaddressed token as UNAUTHENTICATED."""
    token = await BAD_TOKENS[kind](stack, ECHO_TARGET)
    async with echo_caller(echo) as caller:
        call = caller.stub.Echo(echo_service_pb2.EchoRequest(message="x"), metadata=_metadata(token), timeout=5)
        assert await status_of(call) == UNAUTHENTICATED


async def test_control_tokens_built_like_the_attacks_are_accepted(stack: Stack, echo: EchoService) -> None:
    """The well-formed counterparts of the attack tokens are accepted, so the refusals above are meaningful."""
    alice = await user_id(stack, ALICE)
    good_id = await stack.id.container.keyring.sign(_good_claims(stack, ID_TARGET))
    good_echo = await stack.id.container.keyring.sign(_good_claims(stack, ECHO_TARGET))
    assert await get_user_status(stack, good_id, alice) == OK
    async with echo_caller(echo) as caller:
        assert await caller.status(good_echo) == OK


async def test_valid_token_without_scope_is_permission_denied(stack: Stack, echo: EchoService) -> None:
    """A valid token lacking the method's scopes is PERMISSION_DENIED on ID and on echo."""
    alice = await user_id(stack, ALICE)
    token = await stack.client_token(scope="events.read")
    assert await get_user_status(stack, token, alice) == PERMISSION_DENIED
    async with echo_caller(echo) as caller:
        assert await caller.status(token) == PERMISSION_DENIED


async def test_user_reads_only_their_own_record(stack: Stack) -> None:
    """With "profile", alice can read herself but not bob."""
    alice = await sign_in(stack, ALICE)
    bob = await user_id(stack, BOB)
    token = alice.tokens.access_token
    assert await get_user_status(stack, token, alice.user.id) == OK
    assert await get_user_status(stack, token, bob) == PERMISSION_DENIED


async def test_service_token_with_users_read_reads_anyone(stack: Stack) -> None:
    """A service token with id.users.read reads both alice and bob."""
    alice = await user_id(stack, ALICE)
    bob = await user_id(stack, BOB)
    token = await stack.client_token("svc-payments", scope="id.users.read")
    assert await get_user_status(stack, token, alice) == OK
    assert await get_user_status(stack, token, bob) == OK


async def test_partner_token_reads_only_the_consenting_user(stack: Stack) -> None:
    """partner-demo's token for alice (profile + payments.balance.read) reads alice, not bob."""
    alice = await sign_in(stack, ALICE)
    bob = await user_id(stack, BOB)
    partner = await partner_tokens(stack, alice.tokens.access_token)
    token = partner.tokens.access_token
    assert await get_user_status(stack, token, alice.user.id) == OK
    assert await get_user_status(stack, token, bob) == PERMISSION_DENIED
