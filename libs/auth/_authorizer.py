"""Decides whether a call may proceed: token first, then the method's declared rule."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from furima.auth.v1 import options_pb2

from libs.auth._principal import Principal
from libs.auth._verifier import TokenVerifier
from libs.errors import PermissionDenied, Unauthenticated

Metadata = Sequence[tuple[str, str | bytes]]
Decision = Callable[[Metadata | None], "Principal | Undecided | None"]
"""A synchronous authorization of one call by its metadata (see `Authorizer.cached_authorize`)."""


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


class Undecided(enum.Enum):
    """What `Authorizer.cached_authorize` answers when only `Authorizer.authorize` can decide."""

    UNDECIDED = "undecided"


UNDECIDED = Undecided.UNDECIDED


class Authorizer:
    """Applies a method's `AccessRule` to the token a call carries."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self._last_bearer: tuple[str, str] = ("", "")
        """The last plain ``Bearer`` header `cached_authorize` read and the token in it
        (a client sends the same header on every call: its token is not parsed again)."""

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

    def cached_authorize(self, rule: options_pb2.AccessRule) -> Decision:
        """`authorize` for ``rule``, without awaiting, for the common call: an anonymous call
        to a public method, or a plain ``Bearer`` token verified before (cached, unexpired,
        not denied) with a scope the rule accepts. It returns what `authorize` would.

        Anything else (no token where one is needed, a token not cached, any refusal, a
        verifier other than `TokenVerifier`'s own) is `UNDECIDED`: the function raises
        nothing and changes nothing, so `authorize` then runs exactly as it would have.
        The rule is read once: rules come from descriptors, which never change.
        """
        public = rule.public
        scopes = frozenset(rule.scopes)

        def decide(metadata: Metadata | None) -> Principal | Undecided | None:
            verifier = self.verifier
            if verifier.__class__ is not TokenVerifier or "verify" in verifier.__dict__:
                return UNDECIDED  # a stand-in or a patched verify: let it decide
            token = None
            for key, value in metadata or ():
                if key == "authorization":
                    # The first header counts, as in bearer_token; it judges every other form.
                    if value.__class__ is not str:
                        return UNDECIDED
                    last_header, token = self._last_bearer
                    if value != last_header or not token:
                        scheme, _, token = value.partition(" ")
                        token = token.strip()
                        if scheme != "Bearer" or not token:
                            return UNDECIDED
                        self._last_bearer = (value, token)
                    break
            if token is None:
                return None if public else UNDECIDED
            principal = verifier.cached(token)
            if principal is None or (not public and principal.scopes.isdisjoint(scopes)):
                return UNDECIDED
            return principal

        return decide

    def ensure_still_valid(self, principal: Principal) -> None:
        """Raise `Unauthenticated` if the principal's token was revoked since it was verified
        (long-lived streams re-check before each message).
        """
        denylist = self.verifier.denylist
        why = denylist.reason_denied(principal) if denylist is not None else None
        if why is not None:
            raise Unauthenticated(f"the access token is no longer valid: {why}", reason="TOKEN_REVOKED")
