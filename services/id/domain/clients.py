"""OAuth clients: kinds, secrets, grant types, redirect URIs."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from libs.errors import PermissionDenied, Unauthenticated, Violations
from services.id.domain import scopes as scope_rules


class ClientKind(enum.StrEnum):
    """Who the client is, which decides what it may do."""

    FIRST_PARTY = "FIRST_PARTY"
    THIRD_PARTY = "THIRD_PARTY"
    SERVICE = "SERVICE"


class GrantType(enum.StrEnum):
    """The grants of the token endpoint."""

    CLIENT_CREDENTIALS = "client_credentials"
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a protocol name, not a secret
    TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a protocol name, not a secret


# Grants that need a client secret: a public client cannot keep one.
CONFIDENTIAL_ONLY = frozenset({GrantType.CLIENT_CREDENTIALS, GrantType.TOKEN_EXCHANGE})

# Grants that make a token for the client itself or for anyone it names are for
# services; apps and partners only ever get what a user granted them.
SERVICE_ONLY_GRANTS = frozenset({GrantType.CLIENT_CREDENTIALS, GrantType.TOKEN_EXCHANGE})
USER_GRANTS = frozenset({GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN})
_CLIENT_ID = re.compile(r"^[a-z0-9-]{3,64}$")


@dataclass(frozen=True)
class Client:
    """A registered OAuth client."""

    client_id: str
    name: str
    kind: ClientKind
    confidential: bool
    secret_hash: str | None
    allowed_scopes: frozenset[str]
    redirect_uris: tuple[str, ...]
    grant_types: frozenset[GrantType]
    created_at: datetime

    def allows_grant(self, grant: GrantType) -> bool:
        """Whether the client may use ``grant``."""
        return grant in self.grant_types

    def allows_redirect(self, uri: str) -> bool:
        """Exact string match (RFC 9700): no prefix or wildcard matching."""
        return uri in self.redirect_uris


def hash_secret(secret: str) -> str:
    """SHA-256 of a client secret; enough because secrets are 256-bit random strings."""
    return hashlib.sha256(secret.encode()).hexdigest()


def authenticate(client: Client | None, secret: str) -> Client:
    """Return the client, if ``secret`` authenticates it (public clients present none)."""
    if client is None:
        raise Unauthenticated("client authentication failed", reason="INVALID_CLIENT")
    if client.confidential:
        expected = client.secret_hash or ""
        if not secret or not hmac.compare_digest(hash_secret(secret), expected):
            raise Unauthenticated("client authentication failed", reason="INVALID_CLIENT")
    elif secret:
        raise Unauthenticated("a public client has no secret", reason="INVALID_CLIENT")
    return client


def require_grant(client: Client, grant: GrantType) -> None:
    """Raise UNAUTHORIZED_CLIENT unless the client may use ``grant``."""
    if not client.allows_grant(grant):
        raise PermissionDenied(f"the client may not use the {grant.value} grant", reason="UNAUTHORIZED_CLIENT")


def is_valid_client_id(client_id: str) -> bool:
    """Lower-case letters, digits and "-", 3 to 64 characters."""
    return bool(_CLIENT_ID.match(client_id))


def _is_valid_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.fragment or not parts.netloc:
        return False
    # Plain http only for loopback (native apps and local development).
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1"})


def validate_registration(
    violations: Violations,
    *,
    client_id: str,
    name: str,
    kind: ClientKind | None,
    confidential: bool,
    allowed_scopes: frozenset[str],
    redirect_uris: list[str],
    grant_types: list[str],
) -> None:
    """Record every problem of a client registration in ``violations``."""
    if client_id and not is_valid_client_id(client_id):
        violations.add("client_id", "must be 3 to 64 lower-case letters, digits or '-'")
    violations.require(name.strip(), "name")
    if kind is None:
        violations.add("kind", "is required")
    unknown = scope_rules.unknown_scopes(allowed_scopes)
    if unknown:
        violations.add("allowed_scopes", f"unknown scopes: {' '.join(sorted(unknown))}")
    known_grants = {g.value for g in GrantType}
    if not grant_types:
        violations.add("grant_types", "is required")
    for i, grant in enumerate(grant_types):
        if grant not in known_grants:
            violations.add(f"grant_types[{i}]", "is not a supported grant type")
        elif GrantType(grant) in CONFIDENTIAL_ONLY and not confidential:
            violations.add(f"grant_types[{i}]", "needs a confidential client")
        elif kind is not None and kind is not ClientKind.SERVICE and GrantType(grant) in SERVICE_ONLY_GRANTS:
            violations.add(f"grant_types[{i}]", "is only for service clients")
        elif kind is ClientKind.SERVICE and GrantType(grant) in USER_GRANTS:
            violations.add(f"grant_types[{i}]", "service clients act for themselves or by token exchange")
    if kind is not None and kind is not ClientKind.SERVICE:
        permitted = scope_rules.FIRST_PARTY_SCOPES if kind is ClientKind.FIRST_PARTY else scope_rules.USER_SCOPES
        beyond = allowed_scopes - permitted - unknown
        if beyond:
            violations.add("allowed_scopes", f"not delegable to this kind of client: {' '.join(sorted(beyond))}")
    for i, uri in enumerate(redirect_uris):
        if not _is_valid_redirect(uri):
            violations.add(f"redirect_uris[{i}]", "must be an absolute https URI without fragment")
    if GrantType.AUTHORIZATION_CODE.value in grant_types and not redirect_uris:
        violations.add("redirect_uris", "the authorization_code grant needs at least one")
