"""The payments service's object graph, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from libs.clock import Clock, SystemClock
from libs.events import Outbox
from libs.storage import Database, upgrade
from services.payments.config import PaymentsConfig
from services.payments.service.bank_gateway import SimulatedBank
from services.payments.service.card import CardProvider, SimulatedCardProvider
from services.payments.service.cash import CashFlows
from services.payments.service.credit import CreditLines
from services.payments.service.expiry import PointsExpiry
from services.payments.service.housekeeping import Housekeeping
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.ledger import Ledger
from services.payments.service.payments import Payments, PaymentSettings
from services.payments.service.points import PointsGranter
from services.payments.service.reconciliation import Reconciler
from services.payments.service.risk import NoRisk, RiskAssessor
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
    payments: Payments
    cards: CardProvider
    bank: SimulatedBank
    cash: CashFlows
    reconciler: Reconciler
    credit: CreditLines
    housekeeping: Housekeeping


def assemble(
    config: PaymentsConfig,
    db: Database,
    clock: Clock | None = None,
    *,
    risk: RiskAssessor | None = None,
    cards: CardProvider | None = None,
    bank: SimulatedBank | None = None,
) -> PaymentsContainer:
    """Wire the use cases on an existing (migrated) database. Without ``risk`` payments
    are unassessed (the fail-open limit applies); without ``cards`` the simulated card
    provider; without ``bank`` a simulated bank on ``config.bank_database_url`` (its
    tables are made by `SimulatedBank.open`, as `build_container` does).
    """
    clock = clock or SystemClock()
    outbox = Outbox(outbox_table, clock=clock)
    ledger = Ledger(db, clock)
    calls = IdempotentCalls(db, clock, config.idempotency_retention, linger=config.batch_linger)
    expiry = PointsExpiry(db, ledger, outbox, clock)
    cards = cards or SimulatedCardProvider()
    settings = PaymentSettings(
        fee_bps=config.fee_bps,
        hold=timedelta(hours=config.hold_hours),
        risk_fail_open_max=config.risk_fail_open_max,
    )
    payments = Payments(db, ledger, calls, outbox, clock, risk or NoRisk(), cards, settings)
    bank = bank or SimulatedBank(
        Database(config.bank_database_url),
        clock=clock,
        latency_ms=config.bank_latency_ms,
        failure_rate=config.bank_failure_rate,
        timeout_rate=config.bank_timeout_rate,
    )
    cash = CashFlows(db, ledger, calls, outbox, clock, bank, config.payout_fee)
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
        payments=payments,
        cards=cards,
        bank=bank,
        cash=cash,
        reconciler=Reconciler(db, bank),
        credit=CreditLines(db, ledger, calls, outbox, clock, cash),
        housekeeping=Housekeeping(expiry, calls, payments),
    )


async def build_container(
    config: PaymentsConfig, *, clock: Clock | None = None, risk: RiskAssessor | None = None
) -> PaymentsContainer:
    """Open the database, apply migrations and wire everything."""
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    bank = await SimulatedBank.open(
        config.bank_database_url,
        clock=clock,
        latency_ms=config.bank_latency_ms,
        failure_rate=config.bank_failure_rate,
        timeout_rate=config.bank_timeout_rate,
    )
    return assemble(config, db, clock, risk=risk, bank=bank)
