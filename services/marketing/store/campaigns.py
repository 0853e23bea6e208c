"""Campaigns, their budget counter, the rewards waiting to be granted, deliveries, and the
counters behind per-user caps, frequency caps and stats.

Writes run on a synchronous connection inside the caller's transaction; the budget is
reserved with one guarded UPDATE, so it is never overspent under any concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from libs.storage import UtcDateTime
from services.marketing.domain.campaigns import (
    CampaignDefinition,
    CampaignExperiment,
    CampaignStatus,
    CampaignVariant,
    Channel,
    Communication,
    CouponIncentive,
    EventTrigger,
    Incentive,
    PointsIncentive,
    ScheduleTrigger,
)
from services.marketing.store.tables import metadata

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(12), nullable=False),
    Column("definition", Text, nullable=False),
    # The trigger's event type (empty for a schedule): the listener's index.
    Column("trigger_event_type", String(64), nullable=False),
    Column("budget", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("start_at", UtcDateTime(), nullable=True),
    Column("end_at", UtcDateTime(), nullable=True),
    Column("end_reason", String(32), nullable=False),
    # Scheduled campaigns: when the next batch run is due, and how far the current run
    # got (the last user id fired; "" between runs), so an interrupted run resumes.
    Column("next_run_at", UtcDateTime(), nullable=True),
    Column("run_cursor", String(64), nullable=False),
    # Who created it and the hash of their request: the id is derived from their
    # idempotency key, so a replay finds the row and compares the hash.
    Column("created_by", String(80), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_campaigns_status_trigger_event_type", "status", "trigger_event_type"),
)

# An incentive decided for a user, granted through Payments by the dispatcher (PENDING →
# GRANTED, or FAILED with its budget given back). One per campaign, user and trigger.
campaign_rewards = Table(
    "campaign_rewards",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", String(40), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("trigger_event_id", String(80), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("coupon_code", String(64), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("status", String(8), nullable=False),
    Column("grant_id", String(40), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    # The W3C trace context of the event that earned it: the grant continues that trace.
    Column("traceparent", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("campaign_id", "user_id", "trigger_event_id", name="uq_campaign_rewards_trigger"),
    Index("ix_campaign_rewards_status_next_attempt_at", "status", "next_attempt_at"),
)

# How many times each user received each campaign (per-user caps).
campaign_receipts = Table(
    "campaign_receipts",
    metadata,
    Column("campaign_id", String(40), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("received", Integer, nullable=False),
    # A batch of events reads every receipt of its users in one query.
    Index("ix_campaign_receipts_user_id", "user_id"),
)

# Every message handed to the notification sink, by the user's local date.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", String(40), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("trigger_event_id", String(80), nullable=False),
    Column("local_date", String(10), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("failure_reason", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Covers the frequency caps' count (users' deliveries on their local dates) without
    # reading the table.
    Index("ix_deliveries_user_local_date_channel", "user_id", "local_date", "channel", "delivered"),
    Index("ix_deliveries_campaign_id", "campaign_id"),
)

# Stats counters per campaign and variant ("" = not an experiment): firings, users
# reached, incentives, granted amount, and one row per skip reason ("skip:REASON").
campaign_counters = Table(
    "campaign_counters",
    metadata,
    Column("campaign_id", String(40), primary_key=True),
    Column("variant", String(64), primary_key=True),
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

_c, _r, _rc, _d, _k = campaigns.c, campaign_rewards.c, campaign_receipts.c, deliveries.c, campaign_counters.c
_INSERT_CAMPAIGN = insert(campaigns)
_GET = select(campaigns).where(_c.id == bindparam("id"))
_RUNNING_FOR = select(campaigns).where(
    _c.status == CampaignStatus.RUNNING.value, _c.trigger_event_type == bindparam("event_type")
)
_RESERVE = (
    update(campaigns)
    .where(_c.id == bindparam("w_id"), _c.spent + bindparam("cost") <= _c.budget)
    .values(spent=_c.spent + bindparam("cost"))
)
_RELEASE = update(campaigns).where(_c.id == bindparam("w_id")).values(spent=_c.spent - bindparam("cost"))
INSERT_REWARD = insert(campaign_rewards)
"""Queue rewards (rows from `reward_row`); the unique trigger key fails a replayed trigger."""
INSERT_DELIVERY = insert(deliveries)
"""Record messages handed to the sink."""
_RECEIPTS_OF = select(_rc.campaign_id, _rc.user_id, _rc.received).where(
    _rc.user_id.in_(bindparam("user_ids", expanding=True))
)
_MESSAGES_OF = (
    select(_d.user_id, _d.channel, _d.local_date, func.count().label("sent"))
    .where(
        _d.user_id.in_(bindparam("user_ids", expanding=True)),
        _d.local_date.in_(bindparam("dates", expanding=True)),
        _d.delivered == 1,
    )
    .group_by(_d.user_id, _d.channel, _d.local_date)
)
_DUE_REWARDS = (
    select(campaign_rewards)
    .where(_r.status == "PENDING", _r.next_attempt_at <= bindparam("now"))
    .order_by(_r.next_attempt_at)
    .limit(bindparam("limit"))
)
_FINISH_REWARD = (
    update(campaign_rewards)
    .where(_r.id == bindparam("w_id"), _r.status == "PENDING")
    .values(
        status=bindparam("v_status"),
        grant_id=bindparam("v_grant_id"),
        last_error=bindparam("v_error"),
        updated_at=bindparam("v_now"),
    )
)
_RETRY_REWARD = (
    update(campaign_rewards)
    .where(_r.id == bindparam("w_id"), _r.status == "PENDING")
    .values(
        attempts=_r.attempts + 1,
        last_error=bindparam("v_error"),
        next_attempt_at=bindparam("v_next"),
        updated_at=bindparam("v_now"),
    )
)


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, table: Table, keys: Sequence[str], column: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE adding to ``column`` (built once per dialect and table)."""
    cached = _UPSERTS.get((conn.dialect.name, table.name))
    if cached is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table)
        cached = statement.on_conflict_do_update(
            index_elements=list(keys), set_={column: table.c[column] + statement.excluded[column]}
        )
        _UPSERTS[(conn.dialect.name, table.name)] = cached
    return cached


# -- campaigns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign row."""

    campaign_id: str
    status: CampaignStatus
    definition: CampaignDefinition
    spent: int
    version: int
    start_at: datetime | None
    end_at: datetime | None
    end_reason: str
    created_at: datetime
    updated_at: datetime
    created_by: str = ""
    request_hash: str = ""
    next_run_at: datetime | None = None
    run_cursor: str = ""


def insert_campaign(conn: Connection, campaign: StoredCampaign) -> None:
    """Record a new campaign."""
    d = campaign.definition
    conn.execute(
        _INSERT_CAMPAIGN,
        {
            "id": campaign.campaign_id,
            "status": campaign.status.value,
            "definition": encode_definition(d),
            "trigger_event_type": d.trigger.event_type if isinstance(d.trigger, EventTrigger) else "",
            "budget": d.budget,
            "spent": campaign.spent,
            "currency": d.budget_currency,
            "version": campaign.version,
            "start_at": campaign.start_at,
            "end_at": campaign.end_at,
            "end_reason": campaign.end_reason,
            "next_run_at": campaign.next_run_at,
            "run_cursor": campaign.run_cursor,
            "created_by": campaign.created_by,
            "request_hash": campaign.request_hash,
            "created_at": campaign.created_at,
            "updated_at": campaign.updated_at,
        },
    )


def get_campaign(conn: Connection, campaign_id: str) -> StoredCampaign | None:
    """One campaign."""
    row = conn.execute(_GET, {"id": campaign_id}).first()
    return None if row is None else _campaign(row)


def running_for(conn: Connection, event_type: str) -> list[StoredCampaign]:
    """The running campaigns triggered by events of ``event_type``."""
    return [_campaign(r) for r in conn.execute(_RUNNING_FOR, {"event_type": event_type})]


def list_campaigns(
    conn: Connection, statuses: Sequence[CampaignStatus], after: str, limit: int
) -> list[StoredCampaign]:
    """Campaigns in id order after ``after``, optionally of some statuses."""
    query = select(campaigns).where(_c.id > after).order_by(_c.id).limit(limit)
    if statuses:
        query = query.where(_c.status.in_([s.value for s in statuses]))
    return [_campaign(r) for r in conn.execute(query)]


def due_transitions(conn: Connection, now: datetime) -> list[StoredCampaign]:
    """Scheduled campaigns whose start has come, and running or paused ones past their end."""
    starting = select(campaigns).where(_c.status == CampaignStatus.SCHEDULED.value, _c.start_at <= now)
    ending = select(campaigns).where(
        _c.status.in_([CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value]), _c.end_at <= now
    )
    return [_campaign(r) for r in conn.execute(starting)] + [_campaign(r) for r in conn.execute(ending)]


def due_runs(conn: Connection, now: datetime) -> list[StoredCampaign]:
    """Running scheduled campaigns whose next batch run is due."""
    query = select(campaigns).where(_c.status == CampaignStatus.RUNNING.value, _c.next_run_at <= now)
    return [_campaign(r) for r in conn.execute(query.order_by(_c.next_run_at))]


def set_run(conn: Connection, campaign_id: str, next_run_at: datetime | None, cursor: str) -> None:
    """Record a scheduled run's progress (the version is not bumped: no definition change)."""
    conn.execute(update(campaigns).where(_c.id == campaign_id).values(next_run_at=next_run_at, run_cursor=cursor))


def update_campaign(conn: Connection, campaign_id: str, expected_version: int, **values: object) -> bool:
    """Change a campaign if it is still at ``expected_version`` (bumping it); False otherwise."""
    result = conn.execute(
        update(campaigns)
        .where(_c.id == campaign_id, _c.version == expected_version)
        .values(version=_c.version + 1, **values)
    )
    return bool(result.rowcount)


def reserve_budget(conn: Connection, campaign_id: str, cost: int) -> bool:
    """Take ``cost`` from the campaign's budget if it has that much left (one guarded
    UPDATE: concurrent firings never overspend it); False when it has not.
    """
    return bool(conn.execute(_RESERVE, {"w_id": campaign_id, "cost": cost}).rowcount)


def reserve_budgets(conn: Connection, costs: dict[str, int]) -> bool:
    """`reserve_budget` for several campaigns, in campaign id order (the lock order):
    whether every one could take its cost. When not, some may have: the caller must roll
    the transaction back.
    """
    rows = [{"w_id": campaign_id, "cost": cost} for campaign_id, cost in sorted(costs.items()) if cost]
    if not rows:
        return True
    if conn.dialect.supports_sane_multi_rowcount:
        return bool(conn.execute(_RESERVE, rows).rowcount == len(rows))
    return all(bool(conn.execute(_RESERVE, row).rowcount) for row in rows)


def release_budget(conn: Connection, campaign_id: str, cost: int) -> None:
    """Give back a reservation whose grant failed for good."""
    conn.execute(_RELEASE, {"w_id": campaign_id, "cost": cost})


_DEFINITIONS: dict[str, CampaignDefinition] = {}


def _definition(text: str) -> CampaignDefinition:
    # Every firing reads its campaigns: decode each stored definition once per process.
    found = _DEFINITIONS.get(text)
    if found is None:
        if len(_DEFINITIONS) > 10_000:
            _DEFINITIONS.clear()
        found = _DEFINITIONS[text] = decode_definition(text)
    return found


def _campaign(row: Any) -> StoredCampaign:
    return StoredCampaign(
        campaign_id=row.id,
        status=CampaignStatus(row.status),
        definition=_definition(row.definition),
        spent=int(row.spent),
        version=int(row.version),
        start_at=row.start_at,
        end_at=row.end_at,
        end_reason=row.end_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
        request_hash=row.request_hash,
        next_run_at=row.next_run_at,
        run_cursor=row.run_cursor,
    )


# -- caps and counters -------------------------------------------------------------------------


def receipts_of(conn: Connection, user_ids: Sequence[str]) -> dict[tuple[str, str], int]:
    """How many times each of these users received each campaign: (campaign, user) → count."""
    if not user_ids:
        return {}
    # Tuple unpacking of fetched rows: attribute access per row costs twice as much.
    rows = conn.execute(_RECEIPTS_OF, {"user_ids": list(user_ids)}).all()
    return {(campaign_id, user_id): int(received) for campaign_id, user_id, received in rows}


def add_receipts(conn: Connection, counts: dict[tuple[str, str], int]) -> None:
    """Count more receipts: (campaign, user) → how many more, in key order."""
    rows = [
        {"campaign_id": campaign_id, "user_id": user_id, "received": n}
        for (campaign_id, user_id), n in sorted(counts.items())
        if n
    ]
    if rows:
        conn.execute(_upsert(conn, campaign_receipts, ("campaign_id", "user_id"), "received"), rows)


def messages_of(
    conn: Connection, user_ids: Sequence[str], local_dates: Sequence[str]
) -> dict[tuple[str, str, str], int]:
    """`messages_on` for several users and dates at once: (user, channel, local date) →
    messages delivered (combinations with none are left out).
    """
    if not user_ids or not local_dates:
        return {}
    params = {"user_ids": list(user_ids), "dates": sorted(local_dates)}
    rows = conn.execute(_MESSAGES_OF, params).all()
    return {(user_id, channel, local_date): int(sent) for user_id, channel, local_date, sent in rows}


def bump(conn: Connection, campaign_id: str, variant: str, counts: dict[str, int]) -> None:
    """Add to the stats counters of a campaign (and variant)."""
    rows = [
        {"campaign_id": campaign_id, "variant": variant, "name": name, "value": value}
        for name, value in sorted(counts.items())
        if value
    ]
    if rows:
        conn.execute(_upsert(conn, campaign_counters, ("campaign_id", "variant", "name"), "value"), rows)


class Counters:
    """Counter deltas gathered over one event's firings, written in one statement."""

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, str, str], int] = {}

    def add(self, campaign_id: str, variant: str, counts: dict[str, int]) -> None:
        """Add deltas of one firing."""
        for name, value in counts.items():
            key = (campaign_id, variant, name)
            self._deltas[key] = self._deltas.get(key, 0) + value

    def flush(self, conn: Connection) -> None:
        """Write the deltas gathered so far."""
        rows = [
            {"campaign_id": c, "variant": v, "name": n, "value": value}
            for (c, v, n), value in sorted(self._deltas.items())
            if value
        ]
        if rows:
            conn.execute(_upsert(conn, campaign_counters, ("campaign_id", "variant", "name"), "value"), rows)
        self._deltas.clear()


def counters(conn: Connection, campaign_id: str) -> dict[str, dict[str, int]]:
    """The stats counters of a campaign: variant → name → value."""
    out: dict[str, dict[str, int]] = {}
    for row in conn.execute(select(campaign_counters).where(_k.campaign_id == campaign_id)):
        out.setdefault(row.variant, {})[row.name] = int(row.value)
    return out


# -- rewards and deliveries ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reward:
    """An incentive on its way to the user."""

    reward_id: str
    campaign_id: str
    user_id: str
    trigger_event_id: str
    variant: str
    kind: str
    amount: int
    currency: str
    coupon_code: str
    expires_at: datetime
    status: str = "PENDING"
    grant_id: str | None = None
    attempts: int = 0
    traceparent: str = ""


def reward_row(reward: Reward, now: datetime) -> dict[str, object]:
    """The row of a new reward (for `INSERT_REWARD`)."""
    return {
        "id": reward.reward_id,
        "campaign_id": reward.campaign_id,
        "user_id": reward.user_id,
        "trigger_event_id": reward.trigger_event_id,
        "variant": reward.variant,
        "kind": reward.kind,
        "amount": reward.amount,
        "currency": reward.currency,
        "coupon_code": reward.coupon_code,
        "expires_at": reward.expires_at,
        "status": reward.status,
        "grant_id": reward.grant_id,
        "attempts": reward.attempts,
        "last_error": "",
        "traceparent": reward.traceparent,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def due_rewards(conn: Connection, now: datetime, limit: int) -> list[Reward]:
    """PENDING rewards whose next attempt is due, oldest first."""
    return [
        Reward(
            r.id,
            r.campaign_id,
            r.user_id,
            r.trigger_event_id,
            r.variant,
            r.kind,
            int(r.amount),
            r.currency,
            r.coupon_code,
            r.expires_at,
            r.status,
            r.grant_id,
            int(r.attempts),
            r.traceparent,
        )
        for r in conn.execute(_DUE_REWARDS, {"now": now, "limit": limit})
    ]


def finish_reward(
    conn: Connection, reward_id: str, status: str, grant_id: str | None, error: str, now: datetime
) -> bool:
    """PENDING → GRANTED or FAILED (guarded: False when another dispatcher finished it)."""
    params = {"w_id": reward_id, "v_status": status, "v_grant_id": grant_id, "v_error": error, "v_now": now}
    return bool(conn.execute(_FINISH_REWARD, params).rowcount)


def retry_reward(conn: Connection, reward_id: str, error: str, next_at: datetime, now: datetime) -> None:
    """Count a failed attempt and when to try again."""
    conn.execute(_RETRY_REWARD, {"w_id": reward_id, "v_error": error, "v_next": next_at, "v_now": now})


class BudgetRace(Exception):
    """Campaigns whose budget another transaction spent after this one read it; retry."""

    def __init__(self, campaign_ids: Sequence[str]) -> None:
        super().__init__(", ".join(campaign_ids))
        self.campaign_ids = tuple(campaign_ids)


# -- the definition's stored form ------------------------------------------------------------


def encode_definition(d: CampaignDefinition) -> str:
    """The definition as JSON text."""
    return orjson.dumps(
        {
            "name": d.name,
            "description": d.description,
            "segment_id": d.segment_id,
            "trigger": _trigger_json(d.trigger),
            "incentive": _incentive_json(d.incentive),
            "communication": _communication_json(d.communication),
            "budget": d.budget,
            "budget_currency": d.budget_currency,
            "per_user_cap": d.per_user_cap,
            "frequency_caps": {c.value: n for c, n in d.frequency_caps.items()},
            "experiment": _experiment_json(d.experiment),
            "end_at": d.end_at.isoformat() if d.end_at else None,
        }
    ).decode()


def decode_definition(text: str) -> CampaignDefinition:
    """A definition back from `encode_definition`."""
    raw = orjson.loads(text)
    return CampaignDefinition(
        name=raw["name"],
        description=raw["description"],
        segment_id=raw["segment_id"],
        trigger=_trigger(raw["trigger"]),
        incentive=_incentive(raw["incentive"]),
        communication=_communication(raw["communication"]),
        budget=raw["budget"],
        budget_currency=raw["budget_currency"],
        per_user_cap=raw["per_user_cap"],
        frequency_caps={Channel(c): n for c, n in raw["frequency_caps"].items()},
        experiment=_experiment(raw["experiment"]),
        end_at=datetime.fromisoformat(raw["end_at"]) if raw["end_at"] else None,
    )


def _trigger_json(t: EventTrigger | ScheduleTrigger | None) -> dict[str, Any] | None:
    if t is None:
        return None
    if isinstance(t, EventTrigger):
        return {"event": [t.event_type, t.property_filter, t.first_only]}
    repeat = t.repeat_every.total_seconds() if t.repeat_every else None
    return {"schedule": [t.run_at.isoformat(), repeat]}


def _trigger(raw: dict[str, Any] | None) -> EventTrigger | ScheduleTrigger | None:
    if raw is None:
        return None
    if "event" in raw:
        return EventTrigger(*raw["event"])
    run_at, repeat = raw["schedule"]
    return ScheduleTrigger(datetime.fromisoformat(run_at), timedelta(seconds=repeat) if repeat else None)


def _incentive_json(i: Incentive | None) -> dict[str, Any] | None:
    if i is None:
        return None
    if isinstance(i, PointsIncentive):
        return {"points": [i.amount, i.currency, i.expiry_days]}
    return {"coupon": [i.code, i.face_value, i.currency, i.expiry_days]}


def _incentive(raw: dict[str, Any] | None) -> Incentive | None:
    if raw is None:
        return None
    return PointsIncentive(*raw["points"]) if "points" in raw else CouponIncentive(*raw["coupon"])


def _communication_json(c: Communication | None) -> list[str] | None:
    return None if c is None else [c.channel.value, c.title, c.body, c.link]


def _communication(raw: list[str] | None) -> Communication | None:
    return None if raw is None else Communication(Channel(raw[0]), raw[1], raw[2], raw[3])


def _experiment_json(e: CampaignExperiment | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "variants": [
            [v.name, v.weight, _incentive_json(v.incentive), _communication_json(v.communication), v.holdout]
            for v in e.variants
        ],
        "control": e.control,
        "conversion_event_type": e.conversion_event_type,
        "conversion_window": e.conversion_window.total_seconds(),
    }


def _experiment(raw: dict[str, Any] | None) -> CampaignExperiment | None:
    if raw is None:
        return None
    variants = tuple(
        CampaignVariant(name, weight, _incentive(incentive), _communication(message), holdout)
        for name, weight, incentive, message, holdout in raw["variants"]
    )
    return CampaignExperiment(
        variants, raw["control"], raw["conversion_event_type"], timedelta(seconds=raw["conversion_window"])
    )
