"""A campaign run as an experiment, through the wired container: starting it opens its
experiment in ExperimentService, firings assign and expose users there, conversions come
from the intake, and the results per variant add up.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from libs.clock import FrozenClock
from libs.storage import Database
from services.marketing.config import MarketingConfig
from services.marketing.container import assemble
from services.marketing.domain.campaigns import (
    CampaignExperiment,
    CampaignVariant,
    PointsIncentive,
    Transition,
)
from services.marketing.domain.events import UserEvent
from services.marketing.domain.segment_records import SegmentDraft
from services.marketing.tests.test_campaign_engine import FIRST_LISTING

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
EXPERIMENT = CampaignExperiment(
    (
        CampaignVariant("control", 1, holdout=True),
        CampaignVariant("small", 1, PointsIncentive(100, "JPY", 30)),
        CampaignVariant("big", 1, PointsIncentive(500, "JPY", 30)),
    ),
    control="control",
    conversion_event_type="payment_captured",
    conversion_window=timedelta(days=7),
)


async def test_a_campaign_experiment_assigns_exposes_and_converts(db: Database) -> None:
    """90 first listings: every user is assigned and exposed once in the campaign's
    experiment; the control arm gets nothing; purchases within the window convert.
    """
    clock = FrozenClock(NOW)
    c = assemble(MarketingConfig(database_url=db.url), db, clock)
    await c.segments.create(SegmentDraft("everyone", "Everyone", "", "true"), "marketer")
    definition = dataclasses.replace(FIRST_LISTING, budget=1_000_000, experiment=EXPERIMENT)
    campaign = await c.campaigns.create("marketer", "exp", definition)
    await c.campaigns.transition(campaign.campaign_id, Transition.START, "marketer")
    stored = await c.experiments.get(campaign.campaign_id)
    assert [v.name for v in stored.definition.experiment.variants] == ["control", "small", "big"]

    users = [f"usr_{i:03d}" for i in range(90)]
    for user in users:
        await c.intake.track_one(UserEvent(f"list-{user}", user, "item_listed", clock.now(), {"price": 1000}))
    buyers = users[::3]
    clock.advance(3600)
    for user in buyers:
        event = UserEvent(f"buy-{user}", user, "payment_captured", clock.now(), {"payment_id": "p", "amount": 900})
        await c.intake.track_one(event, source="payments")  # as the Payments feed records it

    report = await c.experiments.results(campaign.campaign_id)
    by_name = {v.name: v for v in report.results.variants}
    assert sum(v.exposures for v in by_name.values()) == 90
    assert sum(v.conversions for v in by_name.values()) == len(buyers)
    assert all(v.exposures > 10 for v in by_name.values())
    stats = await c.campaigns.stats(campaign.campaign_id)
    assert stats.counters["control"]["skip:CONTROL_VARIANT"] == by_name["control"].exposures
    assert stats.counters["small"]["granted"] == 100 * by_name["small"].exposures
    assert stats.counters["big"]["granted"] == 500 * by_name["big"].exposures
