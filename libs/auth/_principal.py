"""The caller of the current RPC, available to handlers through one typed accessor."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime

from libs.errors import Unauthenticated

USER_PREFIX = "usr_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified access token.

    ``subject`` is a user id for user tokens (``usr_...``) and the client id for a
    service's own token. ``actor`` is set when a service acts for a user with an
    exchanged token (RFC 8693 ``act.sub``).
    """

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    token_id: str
    issued_at: datetime
    expires_at: datetime
    actor: str | None = None
    session_id: str | None = None

    @property
    def is_user(self) -> bool:
        """Whether the token speaks for an end user (rather than a service itself)."""
        return self.subject.startswith(USER_PREFIX)

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants ``scope``."""
        return scope in self.scopes


_current: ContextVar[Principal | None] = ContextVar("furima_principal", default=None)


def current_principal() -> Principal:
    """The verified caller of the RPC being handled; `Unauthenticated` when there is none."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("this call carries no verified access token")
    return principal


def optional_principal() -> Principal | None:
    """The verified caller, or None for an anonymous call to a public method."""
    return _current.get()


def set_principal(principal: Principal | None) -> Token[Principal | None]:
    """Bind the caller for the rest of this task (used by the server middleware)."""
    return _current.set(principal)


def reset_principal(token: Token[Principal | None]) -> None:
    """Undo `set_principal`."""
    _current.reset(token)
