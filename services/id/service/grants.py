"""The token endpoint's grants (RFC 6749, RFC 7636, RFC 8693)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from libs.errors import DomainError, InvalidArgument, PermissionDenied
from services.id.domain import audit, pkce
from services.id.domain.clients import Client, GrantType, authenticate, require_grant
from services.id.domain.scopes import format_scopes, narrow, parse_scopes, resolve_audience
from services.id.domain.tokens import ACCESS_TOKEN_TYPE, RefreshVerdict, exchange_actor, hash_token, judge_refresh
from services.id.service._runtime import Runtime
from services.id.service.checking import AccessTokenChecker
from services.id.service.issuing import TokenIssuer, TokenSet
from services.id.service.sessions import revoke_family
from services.id.store import clients as client_repo
from services.id.store import consents as consent_repo
from services.id.store import tokens as token_repo
from services.id.store import users as user_repo


@dataclass(frozen=True)
class TokenRequest:
    """A token endpoint request (the fields of ``furima.id.v1.TokenRequest``)."""

    grant_type: str
    client_id: str
    client_secret: str = ""
    scope: str = ""
    audience: tuple[str, ...] = field(default_factory=tuple)
    code: str = ""
    redirect_uri: str = ""
    code_verifier: str = ""
    refresh_token: str = ""
    subject_token: str = ""
    subject_token_type: str = ""
    requested_token_type: str = ""


def _invalid_grant(message: str) -> PermissionDenied:
    return PermissionDenied(message, reason="INVALID_GRANT")


def _invalid_scope() -> PermissionDenied:
    return PermissionDenied("the requested scope exceeds what the grant allows", reason="INVALID_SCOPE")


def _audience(requested: tuple[str, ...], allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    aud = resolve_audience(requested) if allowed is None else resolve_audience(requested, allowed)
    if aud is None:
        raise InvalidArgument("unknown audience requested", reason="INVALID_TARGET")
    return aud


_CLIENT_CACHE_TTL = 5.0
_CLIENT_CACHE_SIZE = 10_000


class Grants:
    """Runs one grant of the token endpoint."""

    def __init__(self, rt: Runtime, issuer: TokenIssuer, checker: AccessTokenChecker) -> None:
        self._rt = rt
        self._issuer = issuer
        self._checker = checker
        self._clients: dict[str, tuple[float, Client]] = {}

    async def token(self, req: TokenRequest, source: str = "") -> TokenSet:
        """Dispatch on ``grant_type`` after authenticating the client."""
        try:
            grant = GrantType(req.grant_type)
        except ValueError:
            raise InvalidArgument(
                f"unsupported grant_type {req.grant_type!r}", reason="UNSUPPORTED_GRANT_TYPE"
            ) from None
        client = authenticate(await self._client(req.client_id), req.client_secret)
        require_grant(client, grant)
        if grant is GrantType.CLIENT_CREDENTIALS:
            return await self._client_credentials(client, req, source)
        if grant is GrantType.AUTHORIZATION_CODE:
            return await self._authorization_code(client, req, source)
        if grant is GrantType.REFRESH_TOKEN:
            return await self._refresh(client, req, source)
        return await self._exchange(client, req, source)

    async def _client(self, client_id: str) -> Client | None:
        """The registered client, from a short-lived cache: the token endpoint is the
        hottest path of the service and clients change rarely (never, once registered,
        in this version).
        """
        now = time.monotonic()
        cached = self._clients.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._rt.db.read() as conn:
            client = await client_repo.get(conn, client_id)
        if client is not None:
            if len(self._clients) > _CLIENT_CACHE_SIZE:
                self._clients.clear()
            self._clients[client_id] = (now + _CLIENT_CACHE_TTL, client)
        return client

    async def _client_credentials(self, client: Client, req: TokenRequest, source: str) -> TokenSet:
        if not client.confidential:
            raise PermissionDenied("client_credentials needs a confidential client", reason="UNAUTHORIZED_CLIENT")
        scopes = narrow(parse_scopes(req.scope), client.allowed_scopes)
        if scopes is None:
            raise _invalid_scope()
        audience = _audience(req.audience)
        token, ttl = await self._issuer.access_token(
            None,
            subject=client.client_id,
            client_id=client.client_id,
            scopes=scopes,
            audience=audience,
            grant=req.grant_type,
            source=source,
        )
        return TokenSet(token, ttl, format_scopes(scopes))

    async def _authorization_code(self, client: Client, req: TokenRequest, source: str) -> TokenSet:
        if not req.code:
            raise InvalidArgument("code is required", reason="INVALID_REQUEST")
        audience = _audience(req.audience)
        failure: DomainError | None = None
        result: TokenSet | None = None
        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            code = await token_repo.get_code(tx.conn, hash_token(req.code))
            if code is None or code.client_id != client.client_id:
                raise _invalid_grant("the authorization code is invalid")
            if code.used_at is not None:
                # A replayed code means it leaked: end the session it was redeemed for.
                family = await token_repo.get_family(tx.conn, code.family_id) if code.family_id else None
                if family is not None:
                    await revoke_family(self._rt, tx, family, reason="code_replayed", actor=client.client_id)
                failure = _invalid_grant("the authorization code was already used")
            elif now >= code.expires_at:
                raise _invalid_grant("the authorization code has expired")
            elif req.redirect_uri != code.redirect_uri:
                raise _invalid_grant("redirect_uri does not match the authorization request")
            elif code.code_challenge and not pkce.verify(req.code_verifier, code.code_challenge):
                raise _invalid_grant("the PKCE code_verifier does not match")
            elif not code.code_challenge and not client.confidential:
                raise _invalid_grant("a public client must use PKCE")
            else:
                user = await user_repo.get(tx.conn, code.user_id)
                consent = await consent_repo.get(tx.conn, code.user_id, client.client_id)
                if user is None or user.is_suspended:
                    raise _invalid_grant("the user may not be issued tokens")
                if consent is None or not consent.is_active or not code.scopes <= consent.scopes:
                    raise _invalid_grant("the user's consent was withdrawn")
                family_id, refresh = await self._issuer.start_session(
                    tx, user_id=user.id, client_id=client.client_id, scopes=code.scopes, audience=audience
                )
                if not await token_repo.mark_code_used(tx.conn, code.code_hash, now, family_id):
                    raise _invalid_grant("the authorization code was already used")
                access, ttl = await self._issuer.access_token(
                    tx,
                    subject=user.id,
                    client_id=client.client_id,
                    scopes=code.scopes,
                    audience=audience,
                    session_id=family_id,
                    grant=req.grant_type,
                    source=source,
                )
                result = TokenSet(access, ttl, format_scopes(code.scopes), refresh_token=refresh)
        if failure is not None or result is None:
            raise failure or _invalid_grant("the authorization code is invalid")
        return result

    async def _refresh(self, client: Client, req: TokenRequest, source: str) -> TokenSet:
        if not req.refresh_token:
            raise InvalidArgument("refresh_token is required", reason="INVALID_REQUEST")
        failure: DomainError | None = None
        result: TokenSet | None = None
        async with self._rt.db.transaction() as tx:
            old = await token_repo.get_refresh(tx.conn, hash_token(req.refresh_token))
            family = await token_repo.get_family(tx.conn, old.family_id) if old else None
            if old is None or family is None or old.client_id != client.client_id:
                raise _invalid_grant("the refresh token is invalid")
            verdict = judge_refresh(old, family, self._rt.clock.now())
            if verdict is RefreshVerdict.VALID:
                scopes = narrow(parse_scopes(req.scope), old.scopes)
                if scopes is None:
                    raise _invalid_scope()
                audience = _audience(req.audience, old.audience)
                user = await user_repo.get(tx.conn, old.user_id)
                if user is None or user.is_suspended:
                    raise _invalid_grant("the user may not be issued tokens")
                new = await self._issuer.rotate(tx, old)
                if new is None:
                    verdict = RefreshVerdict.REUSED  # lost a race with another use of the same token
                else:
                    access, ttl = await self._issuer.access_token(
                        tx,
                        subject=old.user_id,
                        client_id=client.client_id,
                        scopes=scopes,
                        audience=audience,
                        session_id=family.id,
                        grant=req.grant_type,
                        source=source,
                    )
                    result = TokenSet(access, ttl, format_scopes(scopes), refresh_token=new)
            if verdict is RefreshVerdict.REUSED:
                await revoke_family(
                    self._rt,
                    tx,
                    family,
                    reason="refresh_token_reused",
                    actor=client.client_id,
                    audit_type=audit.TOKEN_REFRESH_REUSED,
                )
                failure = _invalid_grant("the refresh token was already used; the session is revoked")
            elif verdict is not RefreshVerdict.VALID:
                failure = _invalid_grant(f"the refresh token is {verdict.value}")
        # Raised after the commit: the family's revocation must stick even though we refuse.
        if failure is not None or result is None:
            raise failure or _invalid_grant("the refresh token is invalid")
        return result

    async def _exchange(self, client: Client, req: TokenRequest, source: str) -> TokenSet:
        if not client.confidential:
            raise PermissionDenied("token exchange needs a confidential client", reason="UNAUTHORIZED_CLIENT")
        if req.subject_token_type != ACCESS_TOKEN_TYPE or not req.subject_token:
            raise InvalidArgument("subject_token must be an access token", reason="INVALID_REQUEST")
        if req.requested_token_type not in ("", ACCESS_TOKEN_TYPE):
            raise InvalidArgument("only access tokens can be requested", reason="INVALID_REQUEST")
        subject = await self._checker.check(req.subject_token)
        if subject is None:
            raise _invalid_grant("the subject token is not active")
        if not subject.is_user:
            # Exchanging another service's own token would let one service impersonate another.
            raise _invalid_grant("only a user's token can be exchanged")
        allowed = subject.scopes & client.allowed_scopes
        requested = parse_scopes(req.scope)
        scopes = requested & allowed if requested else allowed
        if not scopes:
            raise _invalid_scope()
        audience = _audience(req.audience, subject.audience)
        async with self._rt.db.transaction() as tx:
            token, ttl = await self._issuer.access_token(
                tx,
                subject=subject.subject,
                client_id=client.client_id,
                scopes=scopes,
                audience=audience,
                session_id=subject.session_id,
                actor=exchange_actor(client.client_id, subject.actor),
                grant=req.grant_type,
                source=source,
            )
        return TokenSet(token, ttl, format_scopes(scopes), issued_token_type=ACCESS_TOKEN_TYPE)
