"""The campaign engine: for each new event, every running campaign it triggers decides
what the user gets, in the event's own transaction.

What the engine writes — the budget reservation, the reward queued for Payments, the
delivery, the receipt and the counters — commits with the event or not at all; the
grant itself goes out later from the reward queue (`GrantDispatcher`), so a Payments
outage delays grants but never loses or doubles one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from furima.marketing.v1 import campaign_service_pb2, events_pb2
from furima.types.v1 import money_pb2
from opentelemetry import propagate
from sqlalchemy import Connection

from libs.events import Outbox
from libs.ids import new_ulid
from libs.pb import timestamp
from services.marketing.domain.campaigns import (
    CampaignVariant,
    Channel,
    CouponIncentive,
    EventTrigger,
    Outcome,
    Situation,
    SkipReason,
    decide,
    is_restricted,
    local_day,
    render,
)
from services.marketing.domain.events import Catalogue, UserEvent
from services.marketing.domain.experiment_runs import Assignment, GlobalHoldout
from services.marketing.domain.experiments import Experiment, Variant, assign
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.segments import matches_properties, parse_property_filter
from services.marketing.domain.segments_ast import Node
from services.marketing.service._memo import TransactionMemo
from services.marketing.service.batch import Batch
from services.marketing.store import campaigns as store
from services.marketing.store.campaigns import Reward, StoredCampaign

_CHANNELS = {
    Channel.PUSH: campaign_service_pb2.CHANNEL_PUSH,
    Channel.EMAIL: campaign_service_pb2.CHANNEL_EMAIL,
    Channel.IN_APP: campaign_service_pb2.CHANNEL_IN_APP,
}


class MembershipCheck(Protocol):
    """Which segments a user is in now (real time, from their facts)."""

    def memberships(self, conn: Connection, facts: UserFacts, now: datetime) -> set[str]:
        """The segments ``facts.user_id`` is a member of as of ``now``."""
        ...


class VariantAssigner(Protocol):
    """The experiment service's in-transaction assignment (sticky, stored, exposure logged)."""

    def assign_on(
        self,
        conn: Connection,
        experiment_id: str,
        user_id: str,
        now: datetime,
        *,
        log_exposure: bool = True,
        batch: Batch | None = None,
    ) -> Assignment:
        """The user's variant in the experiment; logs their first exposure when asked
        (within ``batch``: the batch users' rows read once, the event staged).
        """
        ...


class NotificationSink(Protocol):
    """Where campaign messages go (push, e-mail, in-app)."""

    def deliver(self, channel: str, user_id: str, title: str, body: str, link: str) -> str | None:
        """Hand a message over; None when accepted, else why it was refused."""
        ...


@dataclass
class RecordingSink:
    """The in-process notification sink: accepts every message and keeps the latest
    ``keep`` of them (the development stack's and the tests' sink; every delivery is in
    the ``deliveries`` table besides; a real sink is an adapter to a push/e-mail
    provider with the same method).
    """

    sent: list[tuple[str, str, str, str, str]]
    keep: int = 10_000

    def deliver(self, channel: str, user_id: str, title: str, body: str, link: str) -> str | None:
        """Accept and remember the message (the oldest are let go past ``keep``)."""
        self.sent.append((channel, user_id, title, body, link))
        if len(self.sent) > 2 * self.keep:
            del self.sent[: -self.keep]
        return None


class _Firings:
    """The engine's state over one batch: the batch users' receipts and messages read
    once, then kept current in memory as firings stage rows; the budget each campaign
    reserved; the counters. Written by `write` at the batch's flush.
    """

    def __init__(self, batch: Batch) -> None:
        self.received = store.receipts_of(batch.conn, batch.users)
        self.new_receipts: dict[tuple[str, str], int] = {}
        self.messages: dict[tuple[str, str, str], int] = {}
        self.messages_read: set[tuple[str, str]] = set()
        self.reserved: dict[str, int] = {}
        self.held_out: dict[str, bool] = {}
        self.counters = store.Counters()
        batch.before_rows(self.write)

    def messages_on(self, batch: Batch, user: str, channel: Channel, local: str) -> int:
        """Messages on ``channel`` the user had on the local date, this batch's included."""
        if (user, local) not in self.messages_read:
            # Read once per user and date: every batch user's today at once (the usual case).
            wanted = {(u, local_day(batch.now, f).isoformat()) for u, f in batch.facts.items()} | {(user, local)}
            wanted -= self.messages_read
            users, dates = sorted({u for u, _ in wanted}), sorted({d for _, d in wanted})
            for key, sent in store.messages_of(batch.conn, users, dates).items():
                if (key[0], key[2]) in wanted:
                    # Until read, the count held only this batch's own (staged) messages.
                    self.messages[key] = self.messages.get(key, 0) + sent
            self.messages_read |= wanted
        return self.messages.get((user, channel.value, local), 0)

    def budget_left(self, campaign: StoredCampaign) -> int:
        """What the campaign can still spend: its budget less what was spent when the
        transaction read it and what this batch reserved since.
        """
        return campaign.definition.budget - campaign.spent - self.reserved.get(campaign.campaign_id, 0)

    def write(self, conn: Connection) -> None:
        """The budget reservations (guarded), the receipts and the counters."""
        if not store.reserve_budgets(conn, self.reserved):
            # Another transaction spent it after this one read the campaign (PostgreSQL):
            # decide the whole batch again against the new figure.
            raise store.BudgetRace(sorted(self.reserved))
        store.add_receipts(conn, self.new_receipts)
        self.counters.flush(conn)


class CampaignEngine:
    """An event listener that runs the campaigns an event triggers."""

    def __init__(
        self,
        catalogue: Catalogue,
        membership: MembershipCheck,
        sink: NotificationSink,
        outbox: Outbox,
        holdout: GlobalHoldout,
        experiments: VariantAssigner | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._experiments = experiments
        self._membership = membership
        self._sink = sink
        self._outbox = outbox
        self._holdout = holdout
        self._filters: dict[tuple[str, str], Node] = {}
        self._early: dict[tuple[str, int, bool, bool, bool, bool, bool], tuple[Outcome, dict[str, int]]] = {}
        # Campaigns cannot start or stop inside the transaction that records a batch of
        # events: read them once per transaction (the budget is reserved with a guarded
        # update at the flush).
        self._running: TransactionMemo[list[StoredCampaign]] = TransactionMemo()

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        """Fire every running campaign triggered by ``event`` for its user."""
        conn = batch.conn
        triggered = self._running.get(conn, event.type, lambda: store.running_for(conn, event.type))
        if not triggered:
            return
        # Once per event, whatever the number of campaigns: the user's segments.
        segments = self._segments(batch, facts)
        firings = batch.state(self, lambda: _Firings(batch))
        first = _count(facts, event.type) == 1
        for campaign in triggered:
            trigger = campaign.definition.trigger
            assert isinstance(trigger, EventTrigger)
            self._fire(batch, firings, campaign, event.event_id, facts, segments, self._passes(trigger, event), first)

    def fire(self, batch: Batch, campaign: StoredCampaign, event: UserEvent, facts: UserFacts) -> Outcome:
        """Decide and stage one firing of an event-triggered ``campaign`` for the event's user."""
        trigger = campaign.definition.trigger
        assert isinstance(trigger, EventTrigger)
        firings = batch.state(self, lambda: _Firings(batch))
        first = _count(facts, event.type) == 1
        segments = self._segments(batch, facts)
        return self._fire(
            batch, firings, campaign, event.event_id, facts, segments, self._passes(trigger, event), first
        )

    def fire_scheduled(self, batch: Batch, campaign: StoredCampaign, trigger_id: str, facts: UserFacts) -> Outcome:
        """Stage one user's firing of a scheduled run (``trigger_id`` names the run)."""
        firings = batch.state(self, lambda: _Firings(batch))
        return self._fire(batch, firings, campaign, trigger_id, facts, self._segments(batch, facts), True, True)

    def _segments(self, batch: Batch, facts: UserFacts) -> set[str]:
        found = batch.memberships.get(facts.user_id)
        if found is None:
            found = self._membership.memberships(batch.conn, facts, batch.now)
        return found

    def _fire(
        self,
        batch: Batch,
        firings: _Firings,
        campaign: StoredCampaign,
        trigger_id: str,
        facts: UserFacts,
        segments: set[str],
        filter_passes: bool,
        is_first: bool,
    ) -> Outcome:
        d, user, now = campaign.definition, facts.user_id, batch.now
        in_segment = d.segment_id in segments
        first_only = isinstance(d.trigger, EventTrigger) and d.trigger.first_only
        holdout = firings.held_out.get(user)
        if holdout is None:
            holdout = firings.held_out[user] = self._holdout.contains(user)
        restricted = is_restricted(facts)
        if not in_segment or not filter_passes or (first_only and not is_first) or holdout or restricted:
            # Stopped by a check that needs nothing more from the database; decide names
            # it. Most firings end here, so the outcome and its counters are kept per
            # campaign version and answers to the checks.
            key = (campaign.campaign_id, campaign.version, in_segment, filter_passes, is_first, holdout, restricted)
            known = self._early.get(key)
            if known is None:
                early = Situation(in_segment, filter_passes, is_first, holdout, None, 0, 0, 0)
                outcome = decide(d, early, restricted)
                assert not outcome.reached, "an early stop gives nothing"
                if len(self._early) > 10_000:
                    self._early.clear()
                known = self._early[key] = (outcome, _counts(outcome))
            firings.counters.add(campaign.campaign_id, "", known[1])
            return known[0]
        variant = self._variant(batch, campaign, user)
        received = firings.received.get((campaign.campaign_id, user), 0)
        channel = d.communication.channel if d.communication is not None else None
        situation = Situation(
            in_segment=True,
            filter_passes=True,
            is_first=is_first,
            in_global_holdout=False,
            variant=variant,
            received_so_far=received,
            messages_today=(
                firings.messages_on(batch, user, channel, local_day(now, facts).isoformat())
                if channel is not None and channel in d.frequency_caps
                else 0
            ),
            budget_left=firings.budget_left(campaign),
        )
        outcome = decide(d, situation, False)
        if variant is not None and self._experiments is not None and _eligible(outcome):
            # Exposed: the user would get the treatment of their arm (even a holdout arm).
            self._experiments.assign_on(batch.conn, campaign.campaign_id, user, now, log_exposure=True, batch=batch)
        if outcome.incentive is not None:
            firings.reserved[campaign.campaign_id] = firings.reserved.get(campaign.campaign_id, 0) + outcome.cost
        self._record(batch, firings, campaign, user, trigger_id, facts, variant, outcome, received)
        return outcome

    def _passes(self, trigger: EventTrigger, event: UserEvent) -> bool:
        if not trigger.property_filter:
            return True
        key = (trigger.event_type, trigger.property_filter)
        node = self._filters.get(key)
        if node is None:
            spec = self._catalogue.event_type(trigger.event_type)
            if spec is None:  # validated at creation; a catalogue change drops the campaign's events
                return False
            node = self._filters[key] = parse_property_filter(trigger.property_filter, spec)
        return matches_properties(node, event.properties)

    def _variant(self, batch: Batch, campaign: StoredCampaign, user_id: str) -> CampaignVariant | None:
        experiment = campaign.definition.experiment
        if experiment is None:
            return None
        if self._experiments is not None:
            # The campaign's experiment (created when it started) stores the assignment.
            name = self._experiments.assign_on(
                batch.conn, campaign.campaign_id, user_id, batch.now, log_exposure=False, batch=batch
            ).variant
            return next(v for v in experiment.variants if v.name == name)
        # Without the experiment service: the same documented hash (variants cannot change
        # once the campaign runs, so it is sticky too).
        pure = Experiment(
            campaign.campaign_id,
            campaign.campaign_id,
            tuple(Variant(v.name, v.weight) for v in experiment.variants),
            experiment.control,
        )
        name = assign(pure, user_id)
        return next(v for v in experiment.variants if v.name == name)

    def _record(
        self,
        batch: Batch,
        firings: _Firings,
        campaign: StoredCampaign,
        user: str,
        trigger_id: str,
        facts: UserFacts,
        variant: CampaignVariant | None,
        outcome: Outcome,
        received_before: int = 0,
    ) -> None:
        cid, arm, now = campaign.campaign_id, variant.name if variant else "", batch.now
        counts = _counts(outcome)
        if outcome.incentive is not None:
            self._reward(batch, campaign, user, trigger_id, arm, outcome)
            counts["incentives"] = 1
            counts["granted"] = outcome.cost
        if outcome.message is not None:
            channel = outcome.message.channel
            title, body = render(outcome.message, outcome.incentive, facts, now)
            refused = self._sink.deliver(channel.value, user, title, body, outcome.message.link)
            delivery_id = new_ulid("dlv_")
            local = local_day(now, facts).isoformat()
            batch.stage(
                store.INSERT_DELIVERY,
                {
                    "id": delivery_id,
                    "campaign_id": cid,
                    "user_id": user,
                    "channel": channel.value,
                    "variant": arm,
                    "trigger_event_id": trigger_id,
                    "local_date": local,
                    "title": title,
                    "body": body,
                    "link": outcome.message.link,
                    "delivered": 0 if refused else 1,
                    "failure_reason": refused or "",
                    "created_at": now,
                },
            )
            if not refused:
                sent = (user, channel.value, local)
                firings.messages[sent] = firings.messages.get(sent, 0) + 1
            batch.emit(user, _delivered(delivery_id, cid, user, outcome, arm, trigger_id, refused, local, now))
            counts[f"messages:{channel.value}:{'failed' if refused else 'delivered'}"] = 1
        if outcome.reached:
            if received_before == 0:
                counts["users_reached"] = 1
            receipt = (cid, user)
            firings.received[receipt] = firings.received.get(receipt, 0) + 1
            firings.new_receipts[receipt] = firings.new_receipts.get(receipt, 0) + 1
        firings.counters.add(cid, arm, counts)

    def _reward(
        self,
        batch: Batch,
        campaign: StoredCampaign,
        user: str,
        trigger_id: str,
        arm: str,
        outcome: Outcome,
    ) -> None:
        incentive = outcome.incentive
        assert incentive is not None
        now = batch.now
        coupon = isinstance(incentive, CouponIncentive)
        reward = Reward(
            reward_id=new_ulid("rwd_"),
            campaign_id=campaign.campaign_id,
            user_id=user,
            trigger_event_id=trigger_id,
            variant=arm,
            kind="coupon" if coupon else "points",
            amount=outcome.cost,
            currency=incentive.currency,
            coupon_code=incentive.code if isinstance(incentive, CouponIncentive) else "",
            # Fixed now, so every retry of the grant sends the very same request.
            expires_at=(now + timedelta(days=incentive.expiry_days)).replace(microsecond=0),
            # A coupon is issued here and now; points wait for Payments.
            status="GRANTED" if coupon else "PENDING",
            traceparent=_traceparent(),
        )
        batch.stage(store.INSERT_REWARD, store.reward_row(reward, now))
        if coupon:
            batch.emit(user, incentive_granted(reward, "", now))


_NOT_EXPOSED = frozenset(
    {
        SkipReason.NOT_IN_SEGMENT,
        SkipReason.FILTER_MISMATCH,
        SkipReason.NOT_FIRST,
        SkipReason.GLOBAL_HOLDOUT,
        SkipReason.USER_RESTRICTED,
    }
)


def _eligible(outcome: Outcome) -> bool:
    """Whether the firing reached the user's arm (the checks before the variant passed)."""
    return not _NOT_EXPOSED.intersection(outcome.skipped)


def _traceparent() -> str:
    """The current trace context as a W3C traceparent (empty outside a trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _counts(outcome: Outcome) -> dict[str, int]:
    """The stats counters a firing's outcome adds to, before what it gave: a firing (not
    for users outside the segment) and each reason something was left out.
    """
    counts = {"firings": 1} if SkipReason.NOT_IN_SEGMENT not in outcome.skipped else {}
    for reason in outcome.skipped:
        counts[f"skip:{reason.value}"] = 1
    return counts


def _count(facts: UserFacts, event_type: str) -> int:
    stats = facts.events.get(event_type)
    return 0 if stats is None else stats.count


def _delivered(
    delivery_id: str,
    campaign_id: str,
    user_id: str,
    outcome: Outcome,
    variant: str,
    trigger_id: str,
    refused: str | None,
    local: str,
    now: datetime,
) -> events_pb2.MessageDelivered:
    assert outcome.message is not None
    return events_pb2.MessageDelivered(
        delivery_id=delivery_id,
        campaign_id=campaign_id,
        user_id=user_id,
        channel=_CHANNELS[outcome.message.channel],
        variant=variant,
        trigger_event_id=trigger_id,
        delivered=refused is None,
        failure_reason=refused or "",
        local_date=local,
        occurred_at=timestamp(now),
    )


def incentive_granted(reward: Reward, grant_id: str, now: datetime) -> events_pb2.IncentiveGranted:
    """The IncentiveGranted event of a reward."""
    return events_pb2.IncentiveGranted(
        campaign_id=reward.campaign_id,
        user_id=reward.user_id,
        trigger_event_id=reward.trigger_event_id,
        variant=reward.variant,
        amount=money_pb2.Money(amount=reward.amount, currency=reward.currency),
        points_grant_id=grant_id,
        coupon_code=reward.coupon_code,
        expires_at=timestamp(reward.expires_at),
        granted_at=timestamp(now),
    )
