"""Fixtures: a real SQLite database in tmp_path, a frozen clock, cheap argon2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Set
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.clock import FrozenClock
from libs.storage import Database, upgrade
from services.id.config import IdConfig
from services.id.container import MIGRATIONS, IdContainer, assemble
from services.id.domain.clients import ClientKind
from services.id.domain.passwords import Argon2Params

FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class FakeCaller:
    """A stand-in for `libs.auth.Principal`."""

    subject: str
    client_id: str = "furima-app"
    scopes: Set[str] = field(default_factory=frozenset)

    @property
    def is_user(self) -> bool:
        """Whether the subject is a user."""
        return self.subject.startswith("usr_")

    def has_scope(self, scope: str) -> bool:
        """Whether the scope was granted."""
        return scope in self.scopes


@pytest.fixture
def clock() -> FrozenClock:
    """Provide a clock that tests move by hand."""
    return FrozenClock()


@pytest.fixture
async def container(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[IdContainer]:
    """Provide a migrated ID service with a signing key and the standard test clients."""
    config = IdConfig(database_url=f"sqlite+aiosqlite:///{tmp_path}/id.db", argon2=FAST_ARGON2)
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    c = assemble(config, db, clock)
    await c.keyring.ensure_active()
    reg = c.clients.register_client
    await reg(
        client_id="furima-app",
        name="app",
        kind=ClientKind.FIRST_PARTY,
        confidential=False,
        allowed_scopes=frozenset({"profile", "id.authorize", "id.consents", "payments.read"}),
        redirect_uris=["http://localhost/cb"],
        grant_types=["authorization_code", "refresh_token"],
        actor="t",
    )
    await reg(
        client_id="svc-payments",
        name="payments",
        kind=ClientKind.SERVICE,
        confidential=True,
        allowed_scopes=frozenset({"payments.read", "id.users.read", "profile"}),
        redirect_uris=[],
        grant_types=["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        actor="t",
        client_secret="svc-secret",
    )
    await reg(
        client_id="partner-demo",
        name="partner",
        kind=ClientKind.THIRD_PARTY,
        confidential=True,
        allowed_scopes=frozenset({"profile", "payments.read"}),
        redirect_uris=["https://partner.example/cb"],
        grant_types=["authorization_code", "refresh_token"],
        actor="t",
        client_secret="partner-secret",
    )
    yield c
    await db.dispose()
