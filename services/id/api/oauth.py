"""OAuthService servicer."""

from __future__ import annotations

from furima.id.v1 import oauth_service_pb2 as pb
from furima.id.v1 import oauth_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import InvalidArgument, Violations
from libs.pb import ts
from services.id.api._convert import Context, source_of, token_set_pb
from services.id.domain.scopes import format_scopes
from services.id.service.grants import Grants, TokenRequest
from services.id.service.oauth import OAuthService


def _require(pairs: list[tuple[object, str]], reason: str = "INVALID_REQUEST") -> None:
    v = Violations()
    for value, path in pairs:
        v.require(value, path)
    if v.items:
        # OAuth clients switch on the error code, so the reason is invalid_request.
        raise InvalidArgument("the request has invalid fields", v.items, reason=reason)


class OAuthServicer(pb_grpc.OAuthServiceServicer):
    """OAuth 2.0 authorization server over gRPC."""

    def __init__(self, grants: Grants, oauth: OAuthService) -> None:
        self._grants = grants
        self._oauth = oauth

    async def Token(self, request: pb.TokenRequest, context: Context) -> pb.TokenResponse:
        """Serve the token endpoint."""
        _require([(request.grant_type, "grant_type"), (request.client_id, "client_id")])
        tokens = await self._grants.token(
            TokenRequest(
                grant_type=request.grant_type,
                client_id=request.client_id,
                client_secret=request.client_secret,
                scope=request.scope,
                audience=tuple(request.audience),
                code=request.code,
                redirect_uri=request.redirect_uri,
                code_verifier=request.code_verifier,
                refresh_token=request.refresh_token,
                subject_token=request.subject_token,
                subject_token_type=request.subject_token_type,
                requested_token_type=request.requested_token_type,
            ),
            source=source_of(context),
        )
        return pb.TokenResponse(tokens=token_set_pb(tokens))

    async def Authorize(self, request: pb.AuthorizeRequest, context: Context) -> pb.AuthorizeResponse:
        """Record a signed-in user's consent and return a code."""
        _require([(request.client_id, "client_id"), (request.redirect_uri, "redirect_uri"), (request.scope, "scope")])
        grant = await self._oauth.authorize(
            current_principal(),
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            state=request.state,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
        )
        return pb.AuthorizeResponse(
            code=grant.code,
            state=grant.state,
            redirect_uri=grant.redirect_uri,
            expires_in=grant.expires_in,
            scope=grant.scope,
        )

    async def Revoke(self, request: pb.RevokeRequest, context: Context) -> pb.RevokeResponse:
        """RFC 7009 revocation."""
        _require([(request.token, "token"), (request.client_id, "client_id")])
        await self._oauth.revoke(
            token=request.token,
            client_id=request.client_id,
            client_secret=request.client_secret,
            token_type_hint=request.token_type_hint,
        )
        return pb.RevokeResponse()

    async def Introspect(self, request: pb.IntrospectRequest, context: Context) -> pb.IntrospectResponse:
        """RFC 7662 introspection; an inactive token is ``active: false``, never an error."""
        result = await self._oauth.introspect(request.token)
        t = result.token
        if t is None:
            return pb.IntrospectResponse(active=False)
        act_sub = str(t.actor.get("sub", "")) if t.actor else ""
        return pb.IntrospectResponse(
            active=True,
            scope=format_scopes(t.scopes),
            client_id=t.client_id,
            sub=t.subject,
            aud=list(t.audience),
            iss=t.issuer,
            jti=t.jti,
            exp=ts(t.expires_at),
            iat=ts(t.issued_at),
            token_type=result.token_type,
            act_sub=act_sub,
        )

    async def GetJwks(self, request: pb.GetJwksRequest, context: Context) -> pb.GetJwksResponse:
        """Return the published signing keys."""
        return pb.GetJwksResponse(keys=[pb.Jwk(**jwk) for jwk in await self._oauth.jwks()])
