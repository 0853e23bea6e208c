"""Campaigns: what they are, how they move through their lifecycle, and what one firing
does for one user — the order of the checks, the caps, the budget, the message.

Pure rules: the service layer reads the counters and the facts, calls `decide`, and
writes what it says in the transaction of the triggering event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from libs.errors import FailedPrecondition, InvalidArgument, Violations
from services.marketing.domain.events import Catalogue
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.segments import parse_property_filter

DEFAULT_TIMEZONE = "Asia/Tokyo"
MAX_NAME = 120
MAX_TITLE = 120
MAX_BODY = 2000
_SLUG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
RESTRICTED_STANDINGS = frozenset({"RESTRICTED", "SUSPENDED"})


class CampaignStatus(StrEnum):
    """Where a campaign stands."""

    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


class Channel(StrEnum):
    """Where a message goes."""

    PUSH = "PUSH"
    EMAIL = "EMAIL"
    IN_APP = "IN_APP"


class SkipReason(StrEnum):
    """Why a firing gave a user nothing (or only part)."""

    NOT_IN_SEGMENT = "NOT_IN_SEGMENT"
    FILTER_MISMATCH = "FILTER_MISMATCH"
    NOT_FIRST = "NOT_FIRST"
    GLOBAL_HOLDOUT = "GLOBAL_HOLDOUT"
    USER_RESTRICTED = "USER_RESTRICTED"
    CONTROL_VARIANT = "CONTROL_VARIANT"
    PER_USER_CAP = "PER_USER_CAP"
    FREQUENCY_CAP = "FREQUENCY_CAP"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    DELIVERY_FAILED = "DELIVERY_FAILED"


@dataclass(frozen=True)
class EventTrigger:
    """Fire when the user has an event of this type (passing the filter; the first only)."""

    event_type: str
    property_filter: str = ""
    first_only: bool = False


@dataclass(frozen=True)
class ScheduleTrigger:
    """Evaluate the whole segment at ``run_at``, then every ``repeat_every``."""

    run_at: datetime
    repeat_every: timedelta | None = None


@dataclass(frozen=True)
class PointsIncentive:
    """Points through Payments GrantPoints."""

    amount: int
    currency: str
    expiry_days: int


@dataclass(frozen=True)
class CouponIncentive:
    """A coupon code, counted against the budget at face value."""

    code: str
    face_value: int
    currency: str
    expiry_days: int


Incentive = PointsIncentive | CouponIncentive


@dataclass(frozen=True)
class Communication:
    """A message template for one channel."""

    channel: Channel
    title: str
    body: str
    link: str = ""


@dataclass(frozen=True)
class CampaignVariant:
    """One arm of a campaign experiment (``holdout``: receives nothing)."""

    name: str
    weight: int
    incentive: Incentive | None = None
    communication: Communication | None = None
    holdout: bool = False


@dataclass(frozen=True)
class CampaignExperiment:
    """A campaign run as an experiment."""

    variants: tuple[CampaignVariant, ...]
    control: str
    conversion_event_type: str
    conversion_window: timedelta


@dataclass(frozen=True)
class CampaignDefinition:
    """What a marketer defines (everything but the lifecycle and the counters)."""

    name: str
    segment_id: str
    trigger: EventTrigger | ScheduleTrigger | None
    incentive: Incentive | None = None
    communication: Communication | None = None
    budget: int = 0
    budget_currency: str = "JPY"
    per_user_cap: int = 1
    frequency_caps: Mapping[Channel, int] = field(default_factory=dict)
    experiment: CampaignExperiment | None = None
    description: str = ""
    end_at: datetime | None = None


# -- validation ------------------------------------------------------------------------------


def validate_definition(definition: CampaignDefinition, catalogue: Catalogue, *, prefix: str = "campaign") -> None:
    """Refuse a malformed campaign with every problem at once, by its path in the request."""
    problems = Violations()
    p = prefix
    if not 1 <= len(definition.name) <= MAX_NAME:
        problems.add(f"{p}.name", f"1-{MAX_NAME} characters")
    if not _SLUG.match(definition.segment_id):
        problems.add(f"{p}.segment_id", "is required: a segment id")
    _check_trigger(problems, definition.trigger, catalogue, f"{p}.trigger")
    if definition.incentive is None and definition.communication is None:
        problems.add(f"{p}.incentive", "a campaign needs an incentive, a communication, or both")
    if definition.incentive is not None:
        _check_incentive(problems, definition.incentive, f"{p}.incentive")
        currency = _currency(definition.incentive)
        if definition.budget <= 0:
            problems.add(f"{p}.budget.amount", "is required and positive when there is an incentive")
        elif definition.budget_currency != currency:
            problems.add(f"{p}.budget.currency", f"must be the incentive's currency {currency}")
    if definition.communication is not None:
        _check_communication(problems, definition.communication, catalogue, f"{p}.communication")
    if not 1 <= definition.per_user_cap <= 100:
        problems.add(f"{p}.per_user_cap", "1-100")
    for channel, cap in definition.frequency_caps.items():
        if not 1 <= cap <= 100:
            problems.add(f"{p}.frequency_caps", f"max_per_day for {channel.value} is 1-100")
    if definition.experiment is not None:
        _check_experiment(problems, definition.experiment, catalogue, f"{p}.experiment")
    problems.raise_if_any("the campaign has invalid fields")


def _check_trigger(
    problems: Violations, trigger: EventTrigger | ScheduleTrigger | None, catalogue: Catalogue, path: str
) -> None:
    if trigger is None:
        problems.add(path, "is required: an event or a schedule")
    elif isinstance(trigger, EventTrigger):
        spec = catalogue.event_type(trigger.event_type)
        if spec is None:
            problems.add(f"{path}.event.event_type", f"unknown event type {trigger.event_type!r}")
        elif trigger.property_filter:
            try:
                parse_property_filter(trigger.property_filter, spec, field=f"{path}.event.property_filter")
            except InvalidArgument as exc:
                for violation in exc.violations:
                    problems.add(violation.field, violation.description)
    elif trigger.repeat_every is not None and trigger.repeat_every < timedelta(hours=1):
        problems.add(f"{path}.schedule.repeat_every", "at least 1 hour (or unset: once)")


def _currency(incentive: Incentive) -> str:
    return incentive.currency


def _check_incentive(problems: Violations, incentive: Incentive, path: str) -> None:
    if isinstance(incentive, PointsIncentive):
        if incentive.amount <= 0:
            problems.add(f"{path}.points.amount.amount", "must be greater than zero")
        if not 1 <= incentive.expiry_days <= 730:
            problems.add(f"{path}.points.expiry_days", "1-730")
    else:
        if not 1 <= len(incentive.code) <= 64:
            problems.add(f"{path}.coupon.code", "1-64 characters")
        if incentive.face_value <= 0:
            problems.add(f"{path}.coupon.face_value.amount", "must be greater than zero")
        if not 1 <= incentive.expiry_days <= 730:
            problems.add(f"{path}.coupon.expiry_days", "1-730")


def _check_communication(problems: Violations, message: Communication, catalogue: Catalogue, path: str) -> None:
    if not 1 <= len(message.title) <= MAX_TITLE:
        problems.add(f"{path}.title", f"1-{MAX_TITLE} characters")
    if not 1 <= len(message.body) <= MAX_BODY:
        problems.add(f"{path}.body", f"1-{MAX_BODY} characters")
    for part, text in (("title", message.title), ("body", message.body)):
        for name in _PLACEHOLDER.findall(text):
            if not _known_placeholder(name, catalogue):
                problems.add(f"{path}.{part}", f"unknown placeholder {{{{{name}}}}}")


def _known_placeholder(name: str, catalogue: Catalogue) -> bool:
    if name in ("incentive.amount", "incentive.coupon_code", "incentive.expires_on"):
        return True
    return name.startswith("user.") and name.removeprefix("user.") in catalogue.attributes


def _check_experiment(problems: Violations, experiment: CampaignExperiment, catalogue: Catalogue, path: str) -> None:
    names = [v.name for v in experiment.variants]
    if not 2 <= len(names) <= 20:
        problems.add(f"{path}.variants", "2 to 20 variants")
    for i, variant in enumerate(experiment.variants):
        if not _SLUG.match(variant.name) or variant.name in names[:i]:
            problems.add(f"{path}.variants[{i}].name", "a unique name of 1-64 letters, digits, '_', '.', '-'")
        if variant.weight <= 0:
            problems.add(f"{path}.variants[{i}].weight", "must be positive")
        if variant.incentive is not None:
            _check_incentive(problems, variant.incentive, f"{path}.variants[{i}].incentive")
        if variant.communication is not None:
            _check_communication(problems, variant.communication, catalogue, f"{path}.variants[{i}].communication")
    if experiment.control not in names:
        problems.add(f"{path}.control", "must name one of the variants")
    if catalogue.event_type(experiment.conversion_event_type) is None:
        problems.add(f"{path}.conversion_event_type", f"unknown event type {experiment.conversion_event_type!r}")
    if not timedelta(hours=1) <= experiment.conversion_window <= timedelta(days=90):
        problems.add(f"{path}.conversion_window", "1 hour to 90 days")


# -- lifecycle -------------------------------------------------------------------------------


class Transition(StrEnum):
    """A lifecycle operation."""

    SCHEDULE = "schedule"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


# From which statuses each operation goes where. Repeating an operation on a campaign
# already where it leads returns it unchanged (the caller answers without writing).
LIFECYCLE: Mapping[Transition, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    Transition.SCHEDULE: (frozenset({CampaignStatus.DRAFT}), CampaignStatus.SCHEDULED),
    Transition.START: (frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}), CampaignStatus.RUNNING),
    Transition.PAUSE: (frozenset({CampaignStatus.RUNNING}), CampaignStatus.PAUSED),
    Transition.RESUME: (frozenset({CampaignStatus.PAUSED}), CampaignStatus.RUNNING),
    Transition.END: (
        frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED}),
        CampaignStatus.ENDED,
    ),
}
EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED})


def next_status(current: CampaignStatus, transition: Transition) -> CampaignStatus | None:
    """The status ``transition`` leads to, or None when the campaign is already there
    (nothing to do). FAILED_PRECONDITION ``ILLEGAL_TRANSITION`` otherwise.
    """
    allowed, target = LIFECYCLE[transition]
    if current is target:
        return None
    if current not in allowed:
        raise FailedPrecondition(
            f"cannot {transition.value} a campaign that is {current.value}",
            reason="ILLEGAL_TRANSITION",
            metadata={"status": current.value, "operation": transition.value},
        )
    return target


# -- one firing for one user -------------------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    """What the service knows when a trigger fires for a user."""

    in_segment: bool
    filter_passes: bool
    is_first: bool
    in_global_holdout: bool
    variant: CampaignVariant | None
    received_so_far: int
    messages_today: int
    budget_left: int


@dataclass(frozen=True)
class Outcome:
    """What one firing gives the user: an incentive (with its cost), a message, and why
    anything was left out.
    """

    incentive: Incentive | None = None
    cost: int = 0
    message: Communication | None = None
    skipped: tuple[SkipReason, ...] = ()

    @property
    def reached(self) -> bool:
        """Whether the user receives anything."""
        return self.incentive is not None or self.message is not None


def cost_of(incentive: Incentive | None) -> int:
    """What an incentive takes from the budget."""
    if incentive is None:
        return 0
    return incentive.amount if isinstance(incentive, PointsIncentive) else incentive.face_value


def is_restricted(facts: UserFacts) -> bool:
    """Whether TnS restricts or suspends the user (their standing attribute)."""
    return facts.attributes.get("standing") in RESTRICTED_STANDINGS


def decide(definition: CampaignDefinition, situation: Situation, restricted: bool) -> Outcome:
    """What a firing does, checking in this order: segment, property filter, first only,
    global holdout, restriction, holdout variant, per-user cap, then the message's
    frequency cap and the incentive's budget (a capped message still lets the incentive
    through, and an exhausted budget still lets the message through).
    """
    s = situation
    trigger = definition.trigger
    gates = (
        (not s.in_segment, SkipReason.NOT_IN_SEGMENT),
        (not s.filter_passes, SkipReason.FILTER_MISMATCH),
        (isinstance(trigger, EventTrigger) and trigger.first_only and not s.is_first, SkipReason.NOT_FIRST),
        (s.in_global_holdout, SkipReason.GLOBAL_HOLDOUT),
        (restricted, SkipReason.USER_RESTRICTED),
        (s.variant is not None and s.variant.holdout, SkipReason.CONTROL_VARIANT),
        (s.received_so_far >= definition.per_user_cap, SkipReason.PER_USER_CAP),
    )
    for failed, reason in gates:
        if failed:
            return Outcome(skipped=(reason,))
    incentive, message = definition.incentive, definition.communication
    if s.variant is not None:
        incentive = s.variant.incentive or incentive
        message = s.variant.communication or message
    skipped: list[SkipReason] = []
    if message is not None and s.messages_today >= definition.frequency_caps.get(message.channel, 1_000_000):
        message, skipped = None, [*skipped, SkipReason.FREQUENCY_CAP]
    cost = cost_of(incentive)
    if incentive is not None and cost > s.budget_left:
        incentive, cost, skipped = None, 0, [*skipped, SkipReason.BUDGET_EXHAUSTED]
    return Outcome(incentive, cost, message, tuple(skipped))


def grant_key(campaign_id: str, user_id: str, trigger_event_id: str) -> str:
    """The Payments idempotency key of a grant: one per campaign, user and trigger event."""
    return f"campaign:{campaign_id}:{user_id}:{trigger_event_id}"


# -- the user's day and the message -------------------------------------------------------------


def user_zone(facts: UserFacts) -> ZoneInfo:
    """The user's time zone (their attribute; Asia/Tokyo when unknown or invalid)."""
    name = facts.attributes.get("timezone")
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(DEFAULT_TIMEZONE)


def local_day(now: datetime, facts: UserFacts) -> date:
    """The user's calendar day at ``now`` (frequency caps count per local day)."""
    return now.astimezone(user_zone(facts)).date()


def render(message: Communication, incentive: Incentive | None, facts: UserFacts, now: datetime) -> tuple[str, str]:
    """The title and body with placeholders filled in for this user (unknown values
    render empty; unknown names were refused at creation).
    """
    values: dict[str, str] = {}
    if incentive is not None:
        values["incentive.amount"] = str(cost_of(incentive))
        values["incentive.expires_on"] = (local_day(now, facts) + timedelta(days=incentive.expiry_days)).isoformat()
        if isinstance(incentive, CouponIncentive):
            values["incentive.coupon_code"] = incentive.code
    for name, value in facts.attributes.items():
        values[f"user.{name}"] = value.isoformat() if isinstance(value, datetime) else str(value)

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)

    return fill(message.title), fill(message.body)


def variant_names(experiment: CampaignExperiment | None) -> Sequence[str]:
    """The variant names of a campaign experiment, in order."""
    return [] if experiment is None else [v.name for v in experiment.variants]
