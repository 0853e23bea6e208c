"""What every use case needs: the database, the outbox, the clock and the configuration."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Protocol

from libs.clock import Clock
from libs.events import Outbox
from libs.storage import Database, Transaction
from services.id.config import IdConfig
from services.id.domain.audit import AuditEvent
from services.id.store import audit as audit_repo


class Caller(Protocol):
    """The authenticated caller, as far as the use cases care (`libs.auth.Principal` fits)."""

    @property
    def subject(self) -> str:
        """A user id ("usr_...") or a client id."""
        ...

    @property
    def client_id(self) -> str:
        """The client the token was issued to."""
        ...

    @property
    def scopes(self) -> Set[str]:
        """The token's scopes."""
        ...

    @property
    def is_user(self) -> bool:
        """Whether the subject is a user."""
        ...

    def has_scope(self, scope: str) -> bool:
        """Whether the token carries ``scope``."""
        ...


@dataclass(frozen=True)
class Runtime:
    """Shared dependencies of the use cases."""

    config: IdConfig
    db: Database
    outbox: Outbox
    clock: Clock


async def record(tx: Transaction, event: AuditEvent) -> None:
    """Write an audit event in the caller's transaction (so it exists iff the change does)."""
    await audit_repo.add(tx.conn, event)
