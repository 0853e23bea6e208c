"""Tokens: access-token claims (RFC 9068 shape) and refresh-token families."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.ids import new_secret, new_ulid
from services.id.domain.scopes import format_scopes

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a protocol name, not a secret
JWT_TYP = "at+jwt"
ALGORITHM = "ES256"


def hash_token(token: str) -> str:
    """SHA-256 of an opaque token: the database never holds a usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token() -> str:
    """Return a fresh 256-bit opaque token (refresh token, authorization code, client secret)."""
    return new_secret(32)


@dataclass(frozen=True)
class AccessClaims:
    """The claims of one access token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    client_id: str
    scopes: frozenset[str]
    issued_at: datetime
    expires_at: datetime
    jti: str
    session_id: str | None = None
    actor: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        """Return the JWT payload: times as integer seconds, ``aud`` always a list."""
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": list(self.audience),
            "exp": int(self.expires_at.timestamp()),
            "iat": int(self.issued_at.timestamp()),
            "nbf": int(self.issued_at.timestamp()),
            "jti": self.jti,
            "client_id": self.client_id,
            "scope": format_scopes(self.scopes),
        }
        if self.session_id:
            payload["sid"] = self.session_id
        if self.actor:
            payload["act"] = self.actor
        return payload


def access_claims(
    *,
    issuer: str,
    subject: str,
    audience: tuple[str, ...],
    client_id: str,
    scopes: frozenset[str],
    now: datetime,
    ttl: timedelta,
    session_id: str | None = None,
    actor: dict[str, Any] | None = None,
) -> AccessClaims:
    """Claims for a new access token; ``now`` is truncated to whole seconds like the JWT."""
    issued = now.replace(microsecond=0)
    return AccessClaims(
        issuer, subject, audience, client_id, scopes, issued, issued + ttl, new_ulid("at_"), session_id, actor
    )


def exchange_actor(acting_client: str, subject_actor: dict[str, Any] | None) -> dict[str, Any]:
    """Return the ``act`` claim of an exchanged token; an earlier actor nests (RFC 8693 4.1)."""
    actor: dict[str, Any] = {"sub": acting_client}
    if subject_actor:
        actor["act"] = subject_actor
    return actor


@dataclass(frozen=True)
class TokenFamily:
    """One sign-in session: the chain of refresh tokens rotated from one grant."""

    id: str
    user_id: str
    client_id: str
    created_at: datetime
    revoked_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class RefreshToken:
    """A stored refresh token (only its hash)."""

    token_hash: str
    family_id: str
    user_id: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class RefreshVerdict(enum.Enum):
    """What presenting a refresh token means."""

    VALID = "valid"
    REUSED = "reused"
    REVOKED = "revoked"
    EXPIRED = "expired"


def judge_refresh(token: RefreshToken, family: TokenFamily, now: datetime) -> RefreshVerdict:
    """Classify a presented refresh token.

    A spent one is reuse: either the client or an attacker holds a stolen copy, and we
    cannot tell which, so the family must die.
    """
    if family.revoked_at is not None or token.revoked_at is not None:
        return RefreshVerdict.REVOKED
    if token.used_at is not None:
        return RefreshVerdict.REUSED
    if now >= token.expires_at:
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.VALID


def new_family_id() -> str:
    """Return a new refresh-token family (session) id."""
    return new_ulid("fam_")
