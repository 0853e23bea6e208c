"""Managing campaigns: create (idempotent per key), update while editable, the lifecycle,
the clock-driven starts and ends, and stats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from furima.marketing.v1 import campaign_service_pb2, events_pb2
from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from libs.events import Outbox
from libs.pb import timestamp
from libs.periodic import Periodic
from libs.storage import Database
from services.marketing.domain.campaigns import (
    EDITABLE,
    CampaignDefinition,
    CampaignStatus,
    ScheduleTrigger,
    Transition,
    next_status,
    validate_definition,
)
from services.marketing.domain.events import Catalogue
from services.marketing.domain.experiment_runs import ExperimentDraft
from services.marketing.domain.experiments import Variant
from services.marketing.store import campaigns as store
from services.marketing.store.campaigns import StoredCampaign

SegmentExists = Callable[[Connection, str], bool]


class ExperimentCreator(Protocol):
    """The experiment service's in-transaction creation (same id and definition: a no-op)."""

    def create_on(self, conn: Connection, draft: ExperimentDraft, now: datetime, *, campaign_id: str = "") -> object:
        """Create (or find the same) experiment inside the caller's transaction."""
        ...


_STATUS = {
    CampaignStatus.DRAFT: campaign_service_pb2.CAMPAIGN_STATUS_DRAFT,
    CampaignStatus.SCHEDULED: campaign_service_pb2.CAMPAIGN_STATUS_SCHEDULED,
    CampaignStatus.RUNNING: campaign_service_pb2.CAMPAIGN_STATUS_RUNNING,
    CampaignStatus.PAUSED: campaign_service_pb2.CAMPAIGN_STATUS_PAUSED,
    CampaignStatus.ENDED: campaign_service_pb2.CAMPAIGN_STATUS_ENDED,
}


@dataclass(frozen=True)
class CampaignStats:
    """A campaign's counters (per variant; "" is the campaign as a whole when it is not an
    experiment) with its budget.
    """

    campaign: StoredCampaign
    counters: dict[str, dict[str, int]]


def campaign_id_for(caller: str, key: str) -> str:
    """The campaign id a creation key names (so a replay finds its campaign)."""
    return "cmp_" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()[:26]


class Campaigns:
    """Campaign management on the marketing database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalogue: Catalogue,
        outbox: Outbox,
        segment_exists: SegmentExists,
        experiments: ExperimentCreator | None = None,
    ) -> None:
        self._experiments = experiments
        self._db = db
        self._clock = clock
        self._catalogue = catalogue
        self._outbox = outbox
        self._segment_exists = segment_exists
        self._clock_rounds = Periodic("marketing-campaign-clock", self.run_clock)

    async def create(self, caller: str, key: str, definition: CampaignDefinition) -> StoredCampaign:
        """A new DRAFT campaign; the same key and request again returns it, another request
        under the key is INVALID_ARGUMENT (IDEMPOTENCY_KEY_REUSED).
        """
        if not key or len(key) > 128:
            raise InvalidArgument("bad key", [FieldViolation("idempotency_key", "is required: 1-128 characters")])
        validate_definition(definition, self._catalogue)
        campaign_id = campaign_id_for(caller, key)
        digest = hashlib.sha256(store.encode_definition(definition).encode()).hexdigest()

        def run(conn: Connection) -> StoredCampaign:
            found = store.get_campaign(conn, campaign_id)
            if found is not None:
                if found.request_hash != digest:
                    raise InvalidArgument(
                        "the idempotency key was already used for a different campaign",
                        [FieldViolation("idempotency_key", "was already used for a different request")],
                        reason="IDEMPOTENCY_KEY_REUSED",
                    )
                return found
            self._require_segment(conn, definition.segment_id)
            now = self._clock.now()
            campaign = StoredCampaign(
                campaign_id, CampaignStatus.DRAFT, definition, 0, 1, None, definition.end_at, "", now, now,
                caller, digest, None, "",
            )  # fmt: skip
            store.insert_campaign(conn, campaign)
            return campaign

        return await self._db.write_sync(run)

    async def update(self, campaign_id: str, definition: CampaignDefinition, expected_version: int) -> StoredCampaign:
        """Replace the definition of a DRAFT or SCHEDULED campaign at ``expected_version``."""
        validate_definition(definition, self._catalogue)

        def run(conn: Connection) -> StoredCampaign:
            found = self._found(conn, campaign_id)
            if found.status not in EDITABLE:
                raise FailedPrecondition(
                    f"a {found.status.value} campaign cannot be changed", reason="CAMPAIGN_NOT_EDITABLE"
                )
            self._require_segment(conn, definition.segment_id)
            now = self._clock.now()
            values = {
                "definition": store.encode_definition(definition),
                "trigger_event_type": getattr(definition.trigger, "event_type", ""),
                "budget": definition.budget,
                "currency": definition.budget_currency,
                "end_at": definition.end_at,
                "updated_at": now,
            }
            if not store.update_campaign(conn, campaign_id, expected_version, **values):
                raise Aborted("the campaign changed meanwhile", reason="VERSION_MISMATCH")
            return self._found(conn, campaign_id)

        return await self._db.write_sync(run)

    async def transition(
        self,
        campaign_id: str,
        transition: Transition,
        changed_by: str,
        reason: str = "",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> StoredCampaign:
        """Move a campaign through its lifecycle (a repeat returns it unchanged)."""

        def run(conn: Connection) -> StoredCampaign:
            return self.move_on(conn, self._found(conn, campaign_id), transition, changed_by, reason, start_at, end_at)

        moved = await self._db.write_sync(run)
        self._outbox.notify()
        return moved

    def move_on(
        self,
        conn: Connection,
        campaign: StoredCampaign,
        transition: Transition,
        changed_by: str,
        reason: str,
        start_at: datetime | None,
        end_at: datetime | None,
    ) -> StoredCampaign:
        """`transition` inside the caller's transaction."""
        target = next_status(campaign.status, transition)
        if target is None:
            return campaign
        now = self._clock.now()
        values: dict[str, object] = {"status": target.value, "updated_at": now}
        if transition is Transition.SCHEDULE:
            if start_at is None or start_at <= now:
                raise InvalidArgument("bad start", [FieldViolation("start_at", "is required and in the future")])
            if end_at is not None and end_at <= start_at:
                raise InvalidArgument("bad end", [FieldViolation("end_at", "must be after start_at")])
            values.update(start_at=start_at, end_at=end_at or campaign.end_at)
        if target is CampaignStatus.RUNNING:
            if transition is Transition.START:
                values["start_at"] = now
            self._open_experiment(conn, campaign, now)
            trigger = campaign.definition.trigger
            if isinstance(trigger, ScheduleTrigger) and campaign.next_run_at is None:
                # The first run is at run_at (at once when that is past).
                values["next_run_at"] = max(trigger.run_at, now)
        if transition is Transition.END:
            values["end_reason"] = reason or "ENDED_BY_USER"
        if not store.update_campaign(conn, campaign.campaign_id, campaign.version, **values):
            raise Aborted("the campaign changed meanwhile", reason="VERSION_MISMATCH")
        self._outbox.append_sync(
            conn,
            campaign.campaign_id,
            events_pb2.CampaignStatusChanged(
                campaign_id=campaign.campaign_id,
                previous_status=_STATUS[campaign.status],
                status=_STATUS[target],
                reason=reason,
                changed_by=changed_by,
                changed_at=timestamp(now),
            ),
        )
        return self._found(conn, campaign.campaign_id)

    def _open_experiment(self, conn: Connection, campaign: StoredCampaign, now: datetime) -> None:
        # A campaign run as an experiment gets one in ExperimentService under its own id,
        # when it first runs (a repeat finds the same definition and changes nothing).
        x = campaign.definition.experiment
        if x is None or self._experiments is None:
            return
        draft = ExperimentDraft(
            experiment_id=campaign.campaign_id,
            variants=tuple(Variant(v.name, v.weight) for v in x.variants),
            control=x.control,
            salt=campaign.campaign_id,
            description=f"campaign {campaign.definition.name}",
            conversion_event_type=x.conversion_event_type,
            conversion_window=x.conversion_window,
        )
        self._experiments.create_on(conn, draft, now, campaign_id=campaign.campaign_id)

    async def run_clock(self) -> int:
        """Start the scheduled campaigns whose time has come and end those past end_at;
        returns how many moved.
        """

        def run(conn: Connection) -> int:
            moved = 0
            for campaign in store.due_transitions(conn, self._clock.now()):
                scheduled = campaign.status is CampaignStatus.SCHEDULED
                transition = Transition.START if scheduled else Transition.END
                reason = "" if scheduled else "END_AT_REACHED"
                self.move_on(conn, campaign, transition, "system", reason, None, None)
                moved += 1
            return moved

        moved = await self._db.write_sync(run)
        if moved:
            self._outbox.notify()
        return moved

    async def get(self, campaign_id: str) -> StoredCampaign:
        """One campaign; NOT_FOUND otherwise."""
        async with self._db.read() as conn:
            return await conn.run_sync(self._found, campaign_id)

    async def list(self, statuses: Sequence[CampaignStatus], after: str, limit: int) -> list[StoredCampaign]:
        """A page of campaigns in id order."""
        async with self._db.read() as conn:
            return await conn.run_sync(store.list_campaigns, statuses, after, limit)

    async def stats(self, campaign_id: str) -> CampaignStats:
        """The counters and budget of a campaign."""

        def run(conn: Connection) -> CampaignStats:
            return CampaignStats(self._found(conn, campaign_id), store.counters(conn, campaign_id))

        async with self._db.read() as conn:
            return await conn.run_sync(run)

    def _found(self, conn: Connection, campaign_id: str) -> StoredCampaign:
        found = store.get_campaign(conn, campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id!r}", reason="CAMPAIGN_NOT_FOUND")
        return found

    def _require_segment(self, conn: Connection, segment_id: str) -> None:
        if not self._segment_exists(conn, segment_id):
            raise InvalidArgument(
                "unknown segment", [FieldViolation("campaign.segment_id", f"no segment {segment_id!r}")]
            )

    def start(self, interval: float) -> None:
        """Run the campaign clock every ``interval`` seconds until `stop`."""
        self._clock_rounds.start(interval)

    async def stop(self) -> None:
        """Stop the clock."""
        await self._clock_rounds.stop()
