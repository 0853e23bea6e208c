"""Scheduled (batch) campaigns: at run_at every member of the segment is fired once; a
repeating campaign runs again; a one-off one ends; an interrupted run resumes where it
stopped without firing anyone twice.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from libs.clock import FrozenClock
from libs.storage import Database
from services.marketing.config import MarketingConfig
from services.marketing.container import MarketingContainer, assemble
from services.marketing.domain.campaigns import CampaignStatus, ScheduleTrigger, Transition
from services.marketing.domain.events import UserEvent
from services.marketing.domain.segment_records import SegmentDraft
from services.marketing.service import schedules
from services.marketing.store.campaigns import campaign_rewards
from services.marketing.tests.test_campaign_engine import FIRST_LISTING

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


async def _setup(db: Database, users: int, repeat: timedelta | None) -> tuple[MarketingContainer, FrozenClock, str]:
    clock = FrozenClock(NOW)
    c = assemble(MarketingConfig(database_url=db.url), db, clock)
    for i in range(users):
        await c.intake.track_one(UserEvent(f"open-{i}", f"usr_{i:02d}", "app_opened", clock.now(), {}))
    await c.segments.create(SegmentDraft("openers", "Opened the app", "", "count(app_opened, 7d) >= 1"), "marketer")
    trigger = ScheduleTrigger(NOW + timedelta(hours=1), repeat)
    definition = dataclasses.replace(
        FIRST_LISTING, segment_id="openers", trigger=trigger, per_user_cap=5, budget=100_000, frequency_caps={}
    )
    campaign = await c.campaigns.create("marketer", "weekly", definition)
    await c.campaigns.transition(campaign.campaign_id, Transition.START, "marketer")
    return c, clock, campaign.campaign_id


async def _rewards(db: Database) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(campaign_rewards.c.user_id, campaign_rewards.c.trigger_event_id))).all()
    return sorted((r.user_id, r.trigger_event_id) for r in rows)


async def test_a_one_off_run_fires_every_member_once_then_ends(db: Database) -> None:
    """Nothing before run_at; at run_at each of the 5 members gets the points once; the campaign ends."""
    c, clock, campaign_id = await _setup(db, 5, None)
    assert await c.schedules.run_due() == 0
    clock.advance(3600)
    assert await c.schedules.run_due() == 5
    run = schedules.run_id(NOW + timedelta(hours=1))
    assert await _rewards(db) == [(f"usr_{i:02d}", run) for i in range(5)]
    ended = await c.campaigns.get(campaign_id)
    assert (ended.status, ended.end_reason) == (CampaignStatus.ENDED, "SCHEDULE_DONE")
    assert await c.schedules.run_due() == 0


async def test_a_repeating_run_comes_back(db: Database) -> None:
    """Every 24 hours: two runs, two rewards per member, the campaign keeps running."""
    c, clock, campaign_id = await _setup(db, 3, timedelta(hours=24))
    clock.advance(3600)
    assert await c.schedules.run_due() == 3
    clock.advance(12 * 3600)
    assert await c.schedules.run_due() == 0
    clock.advance(12 * 3600)
    assert await c.schedules.run_due() == 3
    assert len(await _rewards(db)) == 6
    assert (await c.campaigns.get(campaign_id)).status is CampaignStatus.RUNNING


async def test_an_interrupted_run_resumes_without_firing_twice(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 2: one page commits, the process "crashes"; the next round fires only the rest."""
    monkeypatch.setattr(schedules, "PAGE", 2)
    c, clock, campaign_id = await _setup(db, 5, None)
    clock.advance(3600)
    first_page = await c.db.write_sync(lambda conn: c.schedules._page(conn, campaign_id))
    assert first_page == 2
    assert await c.schedules.run_due() == 3
    assert [user for user, _ in await _rewards(db)] == [f"usr_{i:02d}" for i in range(5)]
