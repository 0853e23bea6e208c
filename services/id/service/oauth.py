"""OAuth use cases besides the token endpoint: authorize, revoke, introspect, JWKS."""

from __future__ import annotations

from dataclasses import dataclass

from libs.errors import InvalidArgument, PermissionDenied, Violations
from services.id.domain import audit, pkce
from services.id.domain import consent as consent_rules
from services.id.domain.clients import ClientKind, GrantType, authenticate
from services.id.domain.scopes import format_scopes, parse_scopes
from services.id.domain.tokens import hash_token, new_opaque_token
from services.id.service._events import consent_granted, token_revoked
from services.id.service._runtime import Caller, Runtime, record
from services.id.service.checking import AccessTokenChecker, VerifiedAccess
from services.id.service.keyring import KeyRing
from services.id.service.sessions import revoke_family
from services.id.store import clients as client_repo
from services.id.store import consents as consent_repo
from services.id.store import tokens as token_repo
from services.id.store.tokens import StoredCode


@dataclass(frozen=True)
class AuthorizationGrant:
    """The answer to an authorization request."""

    code: str
    state: str
    redirect_uri: str
    expires_in: int
    scope: str


@dataclass(frozen=True)
class Introspection:
    """RFC 7662 answer: ``token`` is None when the token is not active."""

    token: VerifiedAccess | None
    token_type: str = "access_token"  # noqa: S105 - a protocol name, not a secret


class OAuthService:
    """Consent-backed authorization codes, revocation and introspection."""

    def __init__(self, rt: Runtime, checker: AccessTokenChecker, keyring: KeyRing) -> None:
        self._rt = rt
        self._checker = checker
        self._keyring = keyring

    async def authorize(
        self,
        caller: Caller,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        state: str = "",
        code_challenge: str = "",
        code_challenge_method: str = "",
    ) -> AuthorizationGrant:
        """Record the signed-in user's consent to the client's scopes; return a single-use code."""
        if not caller.is_user:
            raise PermissionDenied("only a signed-in user can authorize a client", reason="USER_REQUIRED")
        async with self._rt.db.read() as conn:
            app = await client_repo.get(conn, caller.client_id)
            client = await client_repo.get(conn, client_id)
        if app is None or app.kind is not ClientKind.FIRST_PARTY:
            # A partner holding a user's token must not grant itself (or others) more.
            raise PermissionDenied("consent is given only through furima's own apps", reason="FIRST_PARTY_REQUIRED")
        violations = Violations()
        if client is None:
            violations.add("client_id", "is not a registered client")
        elif not client.allows_redirect(redirect_uri):
            violations.add("redirect_uri", "is not registered for the client")
        if code_challenge or code_challenge_method:
            if code_challenge_method != pkce.METHOD_S256:
                violations.add("code_challenge_method", "must be S256")
            if not pkce.is_valid_challenge(code_challenge):
                violations.add("code_challenge", "is not an S256 challenge")
        elif client is not None and not client.confidential:
            violations.add("code_challenge", "is required for a public client (PKCE)")
        if violations.items:
            raise InvalidArgument("the authorization request is invalid", violations.items, reason="INVALID_REQUEST")
        assert client is not None
        if not client.allows_grant(GrantType.AUTHORIZATION_CODE) or client.kind is ClientKind.SERVICE:
            raise PermissionDenied("the client may not use authorization codes", reason="UNAUTHORIZED_CLIENT")
        scopes = parse_scopes(scope)
        if not scopes or not scopes <= client.allowed_scopes:
            raise PermissionDenied("the client may not request these scopes", reason="INVALID_SCOPE")

        code = new_opaque_token()
        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            existing = await consent_repo.get(tx.conn, caller.subject, client.client_id)
            consent = consent_rules.grant(existing, caller.subject, client.client_id, scopes, now)
            await consent_repo.save(tx.conn, consent, exists=existing is not None)
            await self._rt.outbox.append(tx, caller.subject, consent_granted(consent))
            await record(
                tx,
                audit.event(
                    audit.CONSENT_GRANTED,
                    caller.subject,
                    now,
                    client_id=client.client_id,
                    actor=caller.subject,
                    details={"scope": format_scopes(scopes)},
                ),
            )
            ttl = self._rt.config.auth_code_ttl
            await token_repo.add_code(
                tx.conn,
                StoredCode(
                    hash_token(code),
                    client.client_id,
                    caller.subject,
                    redirect_uri,
                    scopes,
                    code_challenge or None,
                    now,
                    now + ttl,
                    None,
                    None,
                ),
            )
        return AuthorizationGrant(code, state, redirect_uri, int(ttl.total_seconds()), format_scopes(scopes))

    async def revoke(self, *, token: str, client_id: str, client_secret: str = "", token_type_hint: str = "") -> None:
        """RFC 7009: the client revokes one of its tokens; unknown or foreign tokens are ignored."""
        async with self._rt.db.read() as conn:
            client = authenticate(await client_repo.get(conn, client_id), client_secret)
        if not token:
            raise InvalidArgument("token is required", [], reason="INVALID_REQUEST")
        # The hint only orders the attempts; both kinds are tried (RFC 7009 section 2.1).
        if token_type_hint == "access_token":  # noqa: S105 - a hint value, not a secret
            done = await self._revoke_access(token, client.client_id) or await self._revoke_refresh(
                token, client.client_id
            )
        else:
            done = await self._revoke_refresh(token, client.client_id) or await self._revoke_access(
                token, client.client_id
            )
        # Success either way: revocation must not reveal whether a token existed.
        del done

    async def _revoke_refresh(self, token: str, client_id: str) -> bool:
        async with self._rt.db.transaction() as tx:
            stored = await token_repo.get_refresh(tx.conn, hash_token(token))
            if stored is None:
                return False
            family = await token_repo.get_family(tx.conn, stored.family_id)
            if family is not None and stored.client_id == client_id:
                await revoke_family(self._rt, tx, family, reason="revoked_by_client", actor=client_id)
            return True

    async def _revoke_access(self, token: str, client_id: str) -> bool:
        verified = await self._checker.decode(token, verify_exp=False)
        if verified is None:
            return False
        if verified.client_id != client_id:
            return True
        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            if await token_repo.revoke_access(tx.conn, verified.jti, verified.subject, verified.expires_at, now):
                await self._rt.outbox.append(
                    tx, verified.subject, token_revoked(verified.jti, verified.subject, verified.expires_at)
                )
                await record(
                    tx,
                    audit.event(
                        audit.TOKEN_REVOKED,
                        verified.subject,
                        now,
                        client_id=client_id,
                        actor=client_id,
                        details={"jti": verified.jti},
                    ),
                )
        return True

    async def introspect(self, token: str) -> Introspection:
        """RFC 7662: whether ``token`` is active, and its claims when it is.

        Never fails on a bad token. Refresh tokens are opaque to resource servers and
        reported inactive.
        """
        return Introspection(await self._checker.check(token))

    async def jwks(self) -> list[dict[str, str]]:
        """Return the published signing keys (ACTIVE and RETIRING) as JWKs."""
        return await self._keyring.jwks()
