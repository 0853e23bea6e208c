"""The ID service's object graph, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.clock import Clock, SystemClock
from libs.events import Outbox
from libs.storage import Database, upgrade
from services.id.config import IdConfig
from services.id.domain.passwords import PasswordHasher
from services.id.service._runtime import Runtime
from services.id.service.audit import AuditService
from services.id.service.audit_log import AuditLog
from services.id.service.checking import AccessTokenChecker
from services.id.service.clients import ClientService
from services.id.service.consents import ConsentService
from services.id.service.grants import Grants
from services.id.service.issuing import TokenIssuer
from services.id.service.keyring import KeyRing
from services.id.service.oauth import OAuthService
from services.id.service.users import UserService
from services.id.store.tables import outbox as outbox_table

MIGRATIONS = Path(__file__).resolve().parent / "store" / "migrations"


@dataclass(frozen=True)
class IdContainer:
    """Everything the servicers need."""

    config: IdConfig
    db: Database
    outbox: Outbox
    clock: Clock
    keyring: KeyRing
    checker: AccessTokenChecker
    users: UserService
    grants: Grants
    oauth: OAuthService
    clients: ClientService
    consents: ConsentService
    audit: AuditService


def assemble(config: IdConfig, db: Database, clock: Clock | None = None) -> IdContainer:
    """Wire the use cases on an existing database (no I/O)."""
    clock = clock or SystemClock()
    outbox = Outbox(outbox_table, clock=clock)
    rt = Runtime(config=config, db=db, outbox=outbox, clock=clock)
    keyring = KeyRing(rt)
    checker = AccessTokenChecker(rt, keyring)
    issuer = TokenIssuer(rt, keyring, AuditLog(db))
    return IdContainer(
        config=config,
        db=db,
        outbox=outbox,
        clock=clock,
        keyring=keyring,
        checker=checker,
        users=UserService(rt, PasswordHasher(config.argon2), issuer),
        grants=Grants(rt, issuer, checker),
        oauth=OAuthService(rt, checker, keyring),
        clients=ClientService(rt),
        consents=ConsentService(rt),
        audit=AuditService(rt),
    )


async def build_container(config: IdConfig, *, clock: Clock | None = None) -> IdContainer:
    """Open the database, apply migrations, and make sure a signing key exists."""
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    container = assemble(config, db, clock)
    await container.keyring.ensure_active()
    return container
