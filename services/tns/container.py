"""The TnS service's object graph, built once per process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog

from libs.clock import Clock, SystemClock
from libs.events import Outbox
from libs.storage import Database, upgrade
from services.tns.config import TnsConfig
from services.tns.domain.classifier import load_classifier
from services.tns.domain.enforcement import EnforcementPolicy
from services.tns.service._runtime import Runtime
from services.tns.service.audit import AuditTrail
from services.tns.service.cases import CaseDesk
from services.tns.service.enforcement import Enforcer
from services.tns.service.identity_actions import IdentityActionDispatcher, UserAdmin
from services.tns.service.moderation import Moderator
from services.tns.service.rescan import SHADOW, Rescanner
from services.tns.service.risk import RiskAssessor
from services.tns.service.rulebook import Engine, RuleBook
from services.tns.store.tables import outbox as outbox_table

MIGRATIONS = Path(__file__).resolve().parent / "store" / "migrations"
log = structlog.get_logger("furima.tns")


def _report_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("automatic re-scan did not start", error=str(task.exception()))


@dataclass(frozen=True)
class TnsContainer:
    """Everything the servicers and background jobs need."""

    config: TnsConfig
    db: Database
    outbox: Outbox
    clock: Clock
    book: RuleBook
    enforcer: Enforcer
    moderator: Moderator
    desk: CaseDesk
    trail: AuditTrail
    rescanner: Rescanner
    risk: RiskAssessor
    dispatcher: IdentityActionDispatcher


def assemble(config: TnsConfig, db: Database, admin: UserAdmin, clock: Clock | None = None) -> TnsContainer:
    """Wire the use cases on an existing database (reads the rule file and the model)."""
    clock = clock or SystemClock()
    outbox = Outbox(outbox_table, clock=clock)
    rt = Runtime(db=db, outbox=outbox, clock=clock)
    book = RuleBook(config.rules_path, load_classifier(config.model_path), clock)
    dispatcher = IdentityActionDispatcher(rt, admin)
    enforcer = Enforcer(rt, EnforcementPolicy(), dispatcher.wake)
    rescanner = Rescanner(rt, book)

    starting: set[asyncio.Task[object]] = set()

    def rescan_recent(old: Engine, new: Engine) -> None:
        # A rule change is checked against recent content at once, in shadow: what would
        # change is on record before anyone applies it.
        since = clock.now() - config.rescan_window
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(rescanner.start(SHADOW, since, "system"))
        starting.add(task)
        task.add_done_callback(_report_failure)
        task.add_done_callback(starting.discard)

    book.on_change(rescan_recent)
    return TnsContainer(
        config=config,
        db=db,
        outbox=outbox,
        clock=clock,
        book=book,
        enforcer=enforcer,
        moderator=Moderator(rt, book, enforcer, batch_wait=config.decision_batch_wait),
        desk=CaseDesk(rt, enforcer, lease=config.case_lease),
        trail=AuditTrail(rt),
        rescanner=rescanner,
        risk=RiskAssessor(db, clock),
        dispatcher=dispatcher,
    )


async def build_container(config: TnsConfig, admin: UserAdmin, *, clock: Clock | None = None) -> TnsContainer:
    """Open the database, apply migrations and wire everything."""
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    return assemble(config, db, admin, clock)
