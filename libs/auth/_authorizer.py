"""Decides whether a call may proceed: token first, then the method's declared rule."""

from __future__ import annotations

from collections.abc import Sequence

from furima.auth.v1 import options_pb2

from libs.auth._principal import Principal
from libs.auth._verifier import TokenVerifier
from libs.errors import PermissionDenied, Unauthenticated

Metadata = Sequence[tuple[str, str | bytes]]


def bearer_token(metadata: Metadata | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if present."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization header must be 'Bearer <token>'", reason="TOKEN_MALFORMED")
            return token.strip()
    return None


class Authorizer:
    """Applies a method's `AccessRule` to the token a call carries."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def authorize(self, rule: options_pb2.AccessRule, metadata: Metadata | None) -> Principal | None:
        """The verified principal (None for an anonymous call to a public method).

        Raises `Unauthenticated` for a missing or invalid token and `PermissionDenied`
        when a valid token lacks every scope the rule accepts.
        """
        token = bearer_token(metadata)
        if rule.public:
            # A public method still learns who calls when a valid token is sent, but a
            # bad token is not an error there (the caller did not need one).
            if token is None:
                return None
            try:
                return await self.verifier.verify(token)
            except Unauthenticated:
                return None
        if token is None:
            raise Unauthenticated("this method needs an access token", reason="TOKEN_MISSING")
        principal = await self.verifier.verify(token)
        if principal.scopes.isdisjoint(rule.scopes):
            raise PermissionDenied(
                f"the token lacks a required scope (one of: {' '.join(rule.scopes)})",
                reason="SCOPE_MISSING",
                metadata={"required_scopes": " ".join(rule.scopes)},
            )
        return principal

    def ensure_still_valid(self, principal: Principal) -> None:
        """Raise `Unauthenticated` if the principal's token was revoked since it was verified
        (long-lived streams re-check before each message).
        """
        denylist = self.verifier.denylist
        why = denylist.reason_denied(principal) if denylist is not None else None
        if why is not None:
            raise Unauthenticated(f"the access token is no longer valid: {why}", reason="TOKEN_REVOKED")
