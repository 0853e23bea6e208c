"""The marketing service's object graph, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.clock import Clock, SystemClock
from libs.events import Outbox
from libs.storage import Database, upgrade
from services.marketing.config import MarketingConfig
from services.marketing.domain.events import DEFAULT_CATALOGUE, Catalogue
from services.marketing.domain.experiment_runs import GlobalHoldout
from services.marketing.service.campaign_engine import CampaignEngine, NotificationSink, RecordingSink
from services.marketing.service.campaigns import Campaigns
from services.marketing.service.events import EventIntake
from services.marketing.service.experiments import ConversionListener, Experiments
from services.marketing.service.grants import GrantDispatcher, PointsGranter
from services.marketing.service.schedules import ScheduledRuns
from services.marketing.service.segment_membership import segment_exists
from services.marketing.service.segments import Segments
from services.marketing.store.tables import outbox as outbox_table

MIGRATIONS = Path(__file__).resolve().parent / "store" / "migrations"


@dataclass(frozen=True)
class MarketingContainer:
    """Everything the servicers and the background work need."""

    config: MarketingConfig
    db: Database
    clock: Clock
    outbox: Outbox
    catalogue: Catalogue
    intake: EventIntake
    segments: Segments
    experiments: Experiments
    campaigns: Campaigns
    engine: CampaignEngine
    schedules: ScheduledRuns
    sink: NotificationSink
    grants: GrantDispatcher | None


def assemble(
    config: MarketingConfig,
    db: Database,
    clock: Clock | None = None,
    *,
    granter: PointsGranter | None = None,
    sink: NotificationSink | None = None,
) -> MarketingContainer:
    """Wire the use cases on a migrated database. Without ``granter`` rewards stay queued
    (no Payments configured); without ``sink`` messages go to the in-process recorder.
    """
    clock = clock or SystemClock()
    outbox = Outbox(outbox_table, clock=clock)
    catalogue = DEFAULT_CATALOGUE
    segments = Segments(db, clock, catalogue, outbox)
    holdout = GlobalHoldout(config.holdout_salt, config.holdout_bps)
    experiments = Experiments(db, clock, outbox, holdout=holdout)
    sink = sink or RecordingSink([])
    engine = CampaignEngine(catalogue, segments.membership, sink, outbox, holdout, experiments)
    # Segments first: its lock order (outbox after its own lock) must come before the
    # other listeners' outbox writes.
    intake = EventIntake(db, clock, catalogue, outbox, [segments.maintainer, engine, ConversionListener(experiments)])
    campaigns = Campaigns(db, clock, catalogue, outbox, segment_exists, experiments)
    return MarketingContainer(
        config=config,
        db=db,
        clock=clock,
        outbox=outbox,
        catalogue=catalogue,
        intake=intake,
        segments=segments,
        experiments=experiments,
        campaigns=campaigns,
        engine=engine,
        schedules=ScheduledRuns(db, clock, outbox, engine, campaigns),
        sink=sink,
        grants=GrantDispatcher(db, clock, outbox, granter) if granter is not None else None,
    )


async def build_container(
    config: MarketingConfig, *, clock: Clock | None = None, granter: PointsGranter | None = None
) -> MarketingContainer:
    """Open the database, apply migrations and wire everything."""
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    return assemble(config, db, clock, granter=granter)
