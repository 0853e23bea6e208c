"""The payments service's object graph, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.clock import Clock, SystemClock
from libs.events import Outbox
from libs.storage import Database, upgrade
from services.payments.config import PaymentsConfig
from services.payments.service.expiry import PointsExpiry
from services.payments.service.housekeeping import Housekeeping
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.ledger import Ledger
from services.payments.service.points import PointsGranter
from services.payments.service.wallet import Wallet
from services.payments.store.tables import outbox as outbox_table

MIGRATIONS = Path(__file__).resolve().parent / "store" / "migrations"


@dataclass(frozen=True)
class PaymentsContainer:
    """Everything the servicers need."""

    config: PaymentsConfig
    db: Database
    outbox: Outbox
    clock: Clock
    ledger: Ledger
    calls: IdempotentCalls
    points: PointsGranter
    wallet: Wallet
    expiry: PointsExpiry
    housekeeping: Housekeeping


def assemble(config: PaymentsConfig, db: Database, clock: Clock | None = None) -> PaymentsContainer:
    """Wire the use cases on an existing (migrated) database."""
    clock = clock or SystemClock()
    outbox = Outbox(outbox_table, clock=clock)
    ledger = Ledger(db, clock)
    calls = IdempotentCalls(db, clock, config.idempotency_retention)
    expiry = PointsExpiry(db, ledger, outbox, clock)
    return PaymentsContainer(
        config=config,
        db=db,
        outbox=outbox,
        clock=clock,
        ledger=ledger,
        calls=calls,
        points=PointsGranter(ledger, calls, outbox, clock),
        wallet=Wallet(db, clock),
        expiry=expiry,
        housekeeping=Housekeeping(expiry, calls),
    )


async def build_container(config: PaymentsConfig, *, clock: Clock | None = None) -> PaymentsContainer:
    """Open the database, apply migrations and wire everything."""
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    return assemble(config, db, clock)
