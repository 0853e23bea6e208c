"""Small helpers shared by the cross-service suites: calls, PKCE, extra clients, polling."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from furima.id.v1 import (
    client_service_pb2,
    client_service_pb2_grpc,
    oauth_service_pb2,
    oauth_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc

from libs.rpc import error_details, make_channel
from services.id.bootstrap import DEMO_PASSWORD
from tests.stack import EchoService, Stack

ALICE = "alice@example.com"
BOB = "bob@example.com"
PARTNER = "partner-demo"
PARTNER_REDIRECT = "https://partner.example/callback"
APP_REDIRECT = "http://localhost/callback"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
OK = grpc.StatusCode.OK

# Extra clients registered through ClientService, because no bootstrap client lets a
# *user* token carry "testing.echo": without them no user token could be accepted by echo.
ECHO_APP = "echo-app"
ECHO_PARTNER = "echo-partner"
ECHO_SERVICE_CLIENT = "svc-echo"


def bearer(token: str) -> list[tuple[str, str]]:
    """Call metadata carrying ``token``."""
    return [("authorization", f"Bearer {token}")]


async def rpc_error(call: Awaitable[Any]) -> dict[str, object]:
    """Await a call that must fail; returns its decoded error details (code, reason...)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return error_details(info.value)


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return OK


async def eventually(
    probe: Callable[[], Awaitable[grpc.StatusCode]], expected: grpc.StatusCode, *, within: float = 20.0
) -> grpc.StatusCode:
    """Poll ``probe`` every 50 ms until it returns ``expected`` or ``within`` seconds pass.

    Returns the last result, so the caller asserts on it and a timeout reads as a diff.
    The limit is generous: what is awaited travels through background feeds that retry
    after seconds (reconnect backoff up to 5 s, TnS re-calling the ID service after 2 s),
    and one such retry on a loaded machine must not fail the test; a result that holds
    returns at once.
    """
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result == expected or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.05)


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(verifier, S256 challenge)``."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def users(stack: Stack) -> user_service_pb2_grpc.UserServiceStub:
    """A UserService stub on the stack's channel."""
    return user_service_pb2_grpc.UserServiceStub(stack.channel)


def oauth(stack: Stack) -> oauth_service_pb2_grpc.OAuthServiceStub:
    """An OAuthService stub on the stack's channel."""
    return oauth_service_pb2_grpc.OAuthServiceStub(stack.channel)


async def sign_in(
    stack: Stack, email: str = ALICE, *, client_id: str = "furima-app", scope: str = ""
) -> user_service_pb2.SignInResponse:
    """Sign a demo user in through a first-party app."""
    return await users(stack).SignIn(
        user_service_pb2.SignInRequest(email=email, password=DEMO_PASSWORD, client_id=client_id, scope=scope)
    )


async def user_id(stack: Stack, email: str) -> str:
    """The id of a demo user (by signing them in)."""
    return (await sign_in(stack, email)).user.id


@dataclass(frozen=True)
class CodeGrant:
    """An authorization code and the PKCE verifier that redeems it."""

    code: str
    verifier: str
    scope: str


async def authorize(
    stack: Stack,
    user_token: str,
    *,
    client_id: str = PARTNER,
    scope: str = "profile payments.balance.read",
    redirect_uri: str = PARTNER_REDIRECT,
) -> CodeGrant:
    """The user (holding a first-party token with id.authorize) consents; returns the code."""
    verifier, challenge = pkce_pair()
    response = await oauth(stack).Authorize(
        oauth_service_pb2.AuthorizeRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state="xyz",
            code_challenge=challenge,
            code_challenge_method="S256",
        ),
        metadata=bearer(user_token),
    )
    assert response.state == "xyz"
    return CodeGrant(response.code, verifier, response.scope)


async def redeem(
    stack: Stack, grant: CodeGrant, *, client_id: str = PARTNER, redirect_uri: str = PARTNER_REDIRECT
) -> oauth_service_pb2.TokenResponse:
    """Exchange an authorization code (with its verifier) at the token endpoint."""
    return await oauth(stack).Token(
        oauth_service_pb2.TokenRequest(
            grant_type="authorization_code",
            client_id=client_id,
            client_secret=stack.secrets.get(client_id, ""),
            code=grant.code,
            redirect_uri=redirect_uri,
            code_verifier=grant.verifier,
        )
    )


async def partner_tokens(
    stack: Stack, user_token: str, *, client_id: str = PARTNER, scope: str = "profile payments.balance.read"
) -> oauth_service_pb2.TokenResponse:
    """The whole authorization-code + PKCE flow for a partner: its tokens for the user."""
    grant = await authorize(stack, user_token, client_id=client_id, scope=scope)
    return await redeem(stack, grant, client_id=client_id)


async def refresh(stack: Stack, refresh_token: str, client_id: str = PARTNER) -> oauth_service_pb2.TokenResponse:
    """Use a refresh token at the token endpoint."""
    return await oauth(stack).Token(
        oauth_service_pb2.TokenRequest(
            grant_type="refresh_token",
            client_id=client_id,
            client_secret=stack.secrets.get(client_id, ""),
            refresh_token=refresh_token,
        )
    )


async def register_client(stack: Stack, **fields: Any) -> client_service_pb2.RegisterClientResponse:
    """Register a client through ClientService with a furima-dev token."""
    token = await stack.client_token()
    stub = client_service_pb2_grpc.ClientServiceStub(stack.channel)
    return await stub.RegisterClient(client_service_pb2.RegisterClientRequest(**fields), metadata=bearer(token))


async def register_echo_clients(stack: Stack) -> None:
    """Register a first-party app, a partner and a service that may use "testing.echo".

    Their secrets are added to ``stack.secrets`` so the helpers above work with them.
    """
    kinds = client_service_pb2
    await register_client(
        stack,
        client_id=ECHO_APP,
        name="Echo app",
        kind=kinds.CLIENT_KIND_FIRST_PARTY,
        confidential=False,
        allowed_scopes=["profile", "id.authorize", "id.consents", "testing.echo"],
        redirect_uris=[APP_REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
    )
    partner = await register_client(
        stack,
        client_id=ECHO_PARTNER,
        name="Echo partner",
        kind=kinds.CLIENT_KIND_THIRD_PARTY,
        confidential=True,
        allowed_scopes=["profile", "testing.echo"],
        redirect_uris=[PARTNER_REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
    )
    service = await register_client(
        stack,
        client_id=ECHO_SERVICE_CLIENT,
        name="Echo-calling service",
        kind=kinds.CLIENT_KIND_SERVICE,
        confidential=True,
        allowed_scopes=["testing.echo", "payments.read", "id.users.read"],
        grant_types=["client_credentials", TOKEN_EXCHANGE],
    )
    stack.secrets[ECHO_PARTNER] = partner.client_secret
    stack.secrets[ECHO_SERVICE_CLIENT] = service.client_secret


class EchoCaller:
    """Calls the echo service with a given token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = echo_service_pb2_grpc.EchoServiceStub(channel)

    async def echo(self, token: str, message: str = "ping") -> echo_service_pb2.EchoResponse:
        """Call Echo with ``token``."""
        return await self.stub.Echo(echo_service_pb2.EchoRequest(message=message), metadata=bearer(token), timeout=5)

    async def status(self, token: str) -> grpc.StatusCode:
        """The status of an Echo call with ``token``."""
        return await status_of(self.echo(token))

    async def becomes(self, token: str, expected: grpc.StatusCode, *, within: float = 20.0) -> grpc.StatusCode:
        """Poll Echo with ``token`` until it answers ``expected`` (or ``within`` passes)."""
        return await eventually(lambda: self.status(token), expected, within=within)


@asynccontextmanager
async def echo_caller(echo: EchoService) -> AsyncIterator[EchoCaller]:
    """An `EchoCaller` on a fresh channel to the echo service."""
    async with make_channel(echo.address) as channel:
        yield EchoCaller(channel)


async def get_user_status(stack: Stack, token: str, target: str) -> grpc.StatusCode:
    """The status of UserService.GetUser(``target``) with ``token``."""
    call = users(stack).GetUser(user_service_pb2.GetUserRequest(user_id=target), metadata=bearer(token), timeout=5)
    return await status_of(call)
