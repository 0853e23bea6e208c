"""Local verification of ES256 access tokens (RFC 9068 shape)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt

from libs.auth._denylist import DenyList
from libs.auth._keys import KeyResolver
from libs.auth._principal import Principal
from libs.clock import epoch_seconds
from libs.errors import Unauthenticated

ALGORITHM = "ES256"
_REQUIRED = ["exp", "iat", "iss", "sub", "aud", "jti"]
_CACHE_LIMIT = 10_000


class TokenVerifier:
    """Checks a bearer token's signature, lifetime, issuer and audience, then the deny-list.

    A verified token is cached until it expires, so a client that reuses its token pays
    for the signature check once; the deny-list is consulted on every call, so
    revocation and suspension still take effect immediately.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: KeyResolver,
        denylist: DenyList | None = None,
        leeway: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.denylist = denylist
        self.leeway = leeway
        self._cache: dict[str, tuple[Principal, float]] = {}
        """Verified tokens: the principal and its ``exp`` in epoch seconds."""

    async def verify(self, token: str, *, check_audience: bool = True) -> Principal:
        """The principal the token proves, or `Unauthenticated` saying why not."""
        cached = self._cache.get(token) if check_audience else None
        if cached is None:
            principal = await self._decode(token, check_audience)
            if check_audience:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[token] = (principal, principal.expires_at.timestamp())
        else:
            principal, expires_at = cached
            if expires_at + self.leeway < epoch_seconds():
                del self._cache[token]
                raise Unauthenticated("the access token has expired", reason="TOKEN_EXPIRED")
        if self.denylist is not None:
            why = self.denylist.reason_denied(principal)
            if why is not None:
                raise Unauthenticated(f"the access token is no longer valid: {why}", reason="TOKEN_REVOKED")
        return principal

    def cached(self, token: str) -> Principal | None:
        """The principal `verify` would return for a token it verified before, without
        awaiting anything: None unless the token is cached, unexpired and not denied
        (every other outcome is `verify`'s to decide). Changes nothing.
        """
        cached = self._cache.get(token)
        if cached is None:
            return None
        principal, expires_at = cached
        if expires_at + self.leeway < epoch_seconds():
            return None
        denylist = self.denylist
        if denylist is not None and denylist.reason_denied(principal) is not None:
            return None
        return principal

    async def _decode(self, token: str, check_audience: bool) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the access token is malformed", reason="TOKEN_MALFORMED") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"tokens must be signed with {ALGORITHM}", reason="TOKEN_ALGORITHM")
        kid = header.get("kid")
        key = await self.keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("the access token was signed by an unknown key", reason="TOKEN_UNKNOWN_KEY")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience if check_audience else None,
                leeway=self.leeway,
                options={"require": _REQUIRED, "verify_aud": check_audience},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the access token has expired", reason="TOKEN_EXPIRED") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("the access token is not meant for this service", reason="TOKEN_AUDIENCE") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("the access token has an unknown issuer", reason="TOKEN_ISSUER") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the access token is invalid: {exc}", reason="TOKEN_INVALID") from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a `Principal` from verified JWT claims."""
    aud = claims["aud"]
    act = claims.get("act")
    return Principal(
        subject=str(claims["sub"]),
        client_id=str(claims.get("client_id", "")),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        audience=tuple(aud) if isinstance(aud, list) else (str(aud),),
        token_id=str(claims["jti"]),
        issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        actor=str(act["sub"]) if isinstance(act, dict) and "sub" in act else None,
        session_id=str(claims["sid"]) if claims.get("sid") else None,
    )
