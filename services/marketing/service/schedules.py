"""Scheduled (batch) campaign runs: at ``run_at``, then every ``repeat_every``, the
campaign fires once for every member of its segment.

A run goes through the segment's stored members in pages, one transaction per page,
keeping its progress (the last user fired) on the campaign row in the same transaction:
a run interrupted by a crash resumes after the last committed page, so nobody is fired
twice by one run (and the reward's unique key — campaign, user, run — would refuse it).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import Connection

from libs.clock import Clock
from libs.events import Outbox
from libs.storage import Database
from services.marketing.domain.campaigns import CampaignStatus, ScheduleTrigger, Transition
from services.marketing.service.batch import Batch
from services.marketing.service.campaign_engine import CampaignEngine
from services.marketing.service.campaigns import Campaigns
from services.marketing.store import campaigns as store
from services.marketing.store import facts as facts_store
from services.marketing.store import segments as segments_store

PAGE = 200


def run_id(run_at: datetime) -> str:
    """The trigger id of a scheduled run (what rewards and deliveries name as their cause)."""
    return f"schedule:{run_at.isoformat()}"


class ScheduledRuns:
    """Runs the due batch campaigns."""

    def __init__(
        self, db: Database, clock: Clock, outbox: Outbox, engine: CampaignEngine, campaigns: Campaigns
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._engine = engine
        self._campaigns = campaigns

    async def run_due(self) -> int:
        """Advance every due run to its end; returns how many users were fired."""
        async with self._db.read() as conn:
            due = await conn.run_sync(store.due_runs, self._clock.now())
        fired = 0
        for campaign in due:
            step = partial(self._page, campaign_id=campaign.campaign_id)
            while (page := await self._db.write_sync(step)) > 0:
                fired += page
        if fired:
            self._outbox.notify()
        return fired

    def _page(self, conn: Connection, campaign_id: str) -> int:
        """Fire the next page of members; 0 when the run is over (or not due any more)."""
        now = self._clock.now()
        campaign = store.get_campaign(conn, campaign_id)
        if campaign is None or campaign.status is not CampaignStatus.RUNNING or campaign.next_run_at is None:
            return 0
        run_at = campaign.next_run_at
        if run_at > now:
            return 0
        trigger = campaign.definition.trigger
        assert isinstance(trigger, ScheduleTrigger)
        members = segments_store.member_page(conn, campaign.definition.segment_id, campaign.run_cursor, PAGE)
        # One batch per page: the engine reads the page's receipts once, keeps the budget
        # reserved so far in memory and writes the page's rows together.
        batch = Batch(conn, now, (facts_store.load(conn, user)[0] for user in members), self._outbox)
        for user in members:
            self._engine.fire_scheduled(batch, campaign, run_id(run_at), batch.facts[user])
        batch.flush()
        if len(members) == PAGE:
            store.set_run(conn, campaign_id, run_at, members[-1])
            return len(members)
        # The run is over: schedule the next one, or end a one-off campaign.
        if trigger.repeat_every:
            following = run_at + trigger.repeat_every
            while following <= now:  # runs missed while down are not caught up one by one
                following += trigger.repeat_every
            store.set_run(conn, campaign_id, following, "")
        else:
            store.set_run(conn, campaign_id, None, "")
            ended = store.get_campaign(conn, campaign_id)
            assert ended is not None
            self._campaigns.move_on(conn, ended, Transition.END, "system", "SCHEDULE_DONE", None, None)
        return len(members)
