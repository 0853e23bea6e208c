"""How any service talks to the ID platform: its own token, the JWKS, token exchange,
and the deny-list feed. Built only on the ID service's public contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc

from libs.auth import DenyList, DenyListFeeder, JwksCache, TokenVerifier, jwk_to_public_key
from libs.events import GrpcEventSource
from libs.rpc import RefreshingTokenSource, make_channel

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 — a grant type URN, not a secret
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 — a token type URN


def client_credentials(
    channel: grpc.aio.Channel, client_id: str, client_secret: str, *, scope: str = "", audience: Sequence[str] = ()
) -> RefreshingTokenSource:
    """The calling service's own token, fetched with the client-credentials grant and
    refreshed before it expires.
    """
    stub = oauth_service_pb2_grpc.OAuthServiceStub(channel)

    async def fetch() -> tuple[str, float]:
        response = await stub.Token(
            oauth_service_pb2.TokenRequest(
                grant_type="client_credentials",
                client_id=client_id,
                client_secret=client_secret,
                scope=scope,
                audience=list(audience),
            ),
            timeout=10,
        )
        return response.tokens.access_token, float(response.tokens.expires_in)

    return RefreshingTokenSource(fetch)


async def exchange_token(
    channel: grpc.aio.Channel,
    client_id: str,
    client_secret: str,
    subject_token: str,
    *,
    scope: str = "",
    audience: Sequence[str] = (),
) -> str:
    """RFC 8693: a token for acting on behalf of the user ``subject_token`` belongs to."""
    stub = oauth_service_pb2_grpc.OAuthServiceStub(channel)
    response = await stub.Token(
        oauth_service_pb2.TokenRequest(
            grant_type=TOKEN_EXCHANGE,
            client_id=client_id,
            client_secret=client_secret,
            subject_token=subject_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            scope=scope,
            audience=list(audience),
        ),
        timeout=10,
    )
    return response.tokens.access_token


def jwks_cache(channel: grpc.aio.Channel, *, min_refresh_interval: float = 5.0) -> JwksCache:
    """Public keys from the ID service's ``GetJwks``, cached."""
    stub = oauth_service_pb2_grpc.OAuthServiceStub(channel)

    async def fetch() -> Iterable[tuple[str, ec.EllipticCurvePublicKey]]:
        response = await stub.GetJwks(oauth_service_pb2.GetJwksRequest(), timeout=5)
        return [(k.kid, jwk_to_public_key(k.kty, k.crv, k.x, k.y)) for k in response.keys]

    return JwksCache(fetch, min_refresh_interval=min_refresh_interval)


class RemoteIdentity:
    """Everything a non-ID service needs to authenticate its callers and itself."""

    def __init__(
        self,
        id_target: str,
        *,
        issuer: str,
        audience: str,
        client_id: str,
        client_secret: str,
        max_token_ttl: float = 3600.0,
        jwks_min_refresh_interval: float = 5.0,
    ) -> None:
        self.anonymous = make_channel(id_target, services=oauth_service_pb2.DESCRIPTOR.services_by_name.values())
        self.tokens = client_credentials(self.anonymous, client_id, client_secret)
        self.channel = make_channel(id_target, tokens=self.tokens)
        self.keys = jwks_cache(self.anonymous, min_refresh_interval=jwks_min_refresh_interval)
        self.denylist = DenyList(max_token_ttl=max_token_ttl)
        self.feeder = DenyListFeeder(self.denylist, GrpcEventSource(self.channel))
        self.verifier = TokenVerifier(issuer, audience, self.keys, self.denylist)

    async def start(self) -> None:
        """Fetch the keys and catch up with the deny-list before serving."""
        await self.keys.refresh()
        await self.feeder.start()

    async def close(self) -> None:
        """Stop the feed and close the channels."""
        await self.feeder.stop()
        await self.channel.close(None)
        await self.anonymous.close(None)
