"""Checking access tokens we issued: signature, lifetime, and revocation state in our DB."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.scopes import parse_scopes
from services.id.domain.tokens import ALGORITHM, JWT_TYP
from services.id.service._runtime import Runtime
from services.id.service.keyring import KeyRing
from services.id.store import consents as consent_repo
from services.id.store import tokens as token_repo
from services.id.store import users as user_repo

LEEWAY_SECONDS = 5.0


@dataclass(frozen=True)
class VerifiedAccess:
    """The claims of an access token whose signature and lifetime checked out."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    jti: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    session_id: str | None
    actor: dict[str, Any] | None

    @property
    def is_user(self) -> bool:
        """Whether the token speaks for a user."""
        return self.subject.startswith("usr_")


def _when(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


class AccessTokenChecker:
    """Verifies access tokens locally against the key ring and the revocation tables."""

    def __init__(self, rt: Runtime, keyring: KeyRing) -> None:
        self._rt = rt
        self._keyring = keyring

    async def decode(self, token: str, *, verify_exp: bool = True) -> VerifiedAccess | None:
        """Return the token's claims if we signed it and (unless told otherwise) it is valid.

        None for anything else: callers treat unknown tokens as inactive.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or header.get("typ") != JWT_TYP or not isinstance(kid, str):
            return None
        key = await self._keyring.public_key(kid)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._rt.config.issuer,
                leeway=LEEWAY_SECONDS,
                # Lifetime is checked below against the injected clock, not PyJWT's wall clock.
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iat", "sub", "jti", "iss", "client_id"],
                },
            )
        except jwt.PyJWTError:
            return None
        now = self._rt.clock.now().timestamp()
        try:
            expired = now >= float(claims["exp"]) + LEEWAY_SECONDS
            early = now + LEEWAY_SECONDS < float(claims.get("nbf", claims["iat"]))
        except (TypeError, ValueError):
            return None
        if (verify_exp and expired) or early:
            return None
        aud = claims.get("aud", [])
        act = claims.get("act")
        return VerifiedAccess(
            subject=str(claims["sub"]),
            client_id=str(claims["client_id"]),
            scopes=parse_scopes(str(claims.get("scope", ""))),
            audience=tuple(aud) if isinstance(aud, list) else (str(aud),),
            jti=str(claims["jti"]),
            issuer=str(claims["iss"]),
            issued_at=_when(claims["iat"]),
            expires_at=_when(claims["exp"]),
            session_id=str(claims["sid"]) if claims.get("sid") else None,
            actor=act if isinstance(act, dict) else None,
        )

    async def is_revoked(self, conn: AsyncConnection, token: VerifiedAccess) -> bool:
        """Whether something since issuance withdrew the token.

        That is its jti, its user's suspension, its session (family), or the user's consent
        to its client.
        """
        if await token_repo.is_access_revoked(conn, token.jti):
            return True
        if token.session_id:
            family = await token_repo.get_family(conn, token.session_id)
            if family is not None and family.revoked_at is not None:
                return True
        if token.is_user:
            user = await user_repo.get(conn, token.subject)
            if user is None or user.is_suspended:
                return True
            consent = await consent_repo.get(conn, token.subject, token.client_id)
            if (
                consent is not None
                and consent.revoked_at is not None
                # iat has whole seconds; same-second tokens are judged by their session (sid).
                and consent.revoked_at.replace(microsecond=0) > token.issued_at
            ):
                return True
        return False

    async def check(self, token: str) -> VerifiedAccess | None:
        """Return the token's claims if it is active right now, else None."""
        verified = await self.decode(token)
        if verified is None:
            return None
        async with self._rt.db.read() as conn:
            if await self.is_revoked(conn, verified):
                return None
        return verified
