"""The campaign rules: validation paths, the lifecycle, the order of the checks of one
firing, caps and budget, the user's local day, and message rendering.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from libs.errors import FailedPrecondition, InvalidArgument
from services.marketing.domain.campaigns import (
    CampaignDefinition,
    CampaignExperiment,
    CampaignStatus,
    CampaignVariant,
    Channel,
    Communication,
    CouponIncentive,
    EventTrigger,
    PointsIncentive,
    ScheduleTrigger,
    Situation,
    SkipReason,
    Transition,
    decide,
    grant_key,
    is_restricted,
    local_day,
    next_status,
    render,
    validate_definition,
)
from services.marketing.domain.events import DEFAULT_CATALOGUE
from services.marketing.domain.facts import UserFacts

NOW = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
POINTS = PointsIncentive(300, "JPY", 30)
PUSH = Communication(
    Channel.PUSH, "Thanks {{user.region}}", "You got {{incentive.amount}} points until {{incentive.expires_on}}"
)
FIRST_LISTING = CampaignDefinition(
    name="first listing",
    segment_id="new_sellers",
    trigger=EventTrigger("item_listed", 'category == "books"', first_only=True),
    incentive=POINTS,
    communication=PUSH,
    budget=1000,
    per_user_cap=2,
    frequency_caps={Channel.PUSH: 1},
)
CLEAR = Situation(
    in_segment=True,
    filter_passes=True,
    is_first=True,
    in_global_holdout=False,
    variant=None,
    received_so_far=0,
    messages_today=0,
    budget_left=1000,
)


def test_a_well_formed_campaign_passes() -> None:
    """The first-listing campaign validates."""
    validate_definition(FIRST_LISTING, DEFAULT_CATALOGUE)


def test_every_problem_is_named_by_its_path() -> None:
    """Bad fields come back together, each on its request path (filter columns included)."""
    bad = dataclasses.replace(
        FIRST_LISTING,
        name="",
        segment_id="no spaces allowed",
        trigger=EventTrigger("item_sold", ""),
        incentive=PointsIncentive(0, "JPY", 0),
        communication=Communication(Channel.PUSH, "", "hi {{user.shoe_size}}"),
        budget=0,
        per_user_cap=0,
        frequency_caps={Channel.EMAIL: 500},
    )
    with pytest.raises(InvalidArgument) as refused:
        validate_definition(bad, DEFAULT_CATALOGUE)
    paths = {v.field for v in refused.value.violations}
    assert paths == {
        "campaign.name",
        "campaign.segment_id",
        "campaign.trigger.event.event_type",
        "campaign.incentive.points.amount.amount",
        "campaign.incentive.points.expiry_days",
        "campaign.budget.amount",
        "campaign.communication.title",
        "campaign.communication.body",
        "campaign.per_user_cap",
        "campaign.frequency_caps",
    }
    body = next(v for v in refused.value.violations if v.field == "campaign.communication.body")
    assert "{{user.shoe_size}}" in body.description


def test_a_bad_property_filter_reports_its_column() -> None:
    """The trigger's filter is parsed with the event's properties; errors carry the column."""
    bad = dataclasses.replace(FIRST_LISTING, trigger=EventTrigger("item_listed", "price >= "))
    with pytest.raises(InvalidArgument) as refused:
        validate_definition(bad, DEFAULT_CATALOGUE)
    (violation,) = refused.value.violations
    assert violation.field == "campaign.trigger.event.property_filter"
    assert "column" in violation.description


def test_schedules_and_experiments_are_checked() -> None:
    """A schedule repeating more often than hourly, and a malformed experiment, are refused."""
    experiment = CampaignExperiment(
        (CampaignVariant("a", 1), CampaignVariant("a", 0)), "c", "no_such_event", timedelta(minutes=5)
    )
    bad = dataclasses.replace(FIRST_LISTING, trigger=ScheduleTrigger(NOW, timedelta(minutes=30)), experiment=experiment)
    with pytest.raises(InvalidArgument) as refused:
        validate_definition(bad, DEFAULT_CATALOGUE)
    assert {v.field for v in refused.value.violations} == {
        "campaign.trigger.schedule.repeat_every",
        "campaign.experiment.variants[1].name",
        "campaign.experiment.variants[1].weight",
        "campaign.experiment.control",
        "campaign.experiment.conversion_event_type",
        "campaign.experiment.conversion_window",
    }


def test_lifecycle_moves_and_refusals() -> None:
    """Draft → scheduled → running ⇄ paused → ended; repeats are no-ops; the rest is refused."""
    assert next_status(CampaignStatus.DRAFT, Transition.SCHEDULE) is CampaignStatus.SCHEDULED
    assert next_status(CampaignStatus.SCHEDULED, Transition.START) is CampaignStatus.RUNNING
    assert next_status(CampaignStatus.RUNNING, Transition.PAUSE) is CampaignStatus.PAUSED
    assert next_status(CampaignStatus.PAUSED, Transition.RESUME) is CampaignStatus.RUNNING
    assert next_status(CampaignStatus.PAUSED, Transition.END) is CampaignStatus.ENDED
    assert next_status(CampaignStatus.RUNNING, Transition.START) is None
    assert next_status(CampaignStatus.ENDED, Transition.END) is None
    for status, transition in [
        (CampaignStatus.ENDED, Transition.START),
        (CampaignStatus.DRAFT, Transition.PAUSE),
        (CampaignStatus.RUNNING, Transition.SCHEDULE),
        (CampaignStatus.ENDED, Transition.RESUME),
    ]:
        with pytest.raises(FailedPrecondition) as refused:
            next_status(status, transition)
        assert refused.value.reason == "ILLEGAL_TRANSITION"


def test_a_clear_firing_grants_and_messages() -> None:
    """Everything passes: the incentive at its cost and the message."""
    outcome = decide(FIRST_LISTING, CLEAR, restricted=False)
    assert (outcome.incentive, outcome.cost, outcome.message, outcome.skipped) == (POINTS, 300, PUSH, ())


@pytest.mark.parametrize(
    ("change", "restricted", "reason"),
    [
        ({"in_segment": False}, False, SkipReason.NOT_IN_SEGMENT),
        ({"filter_passes": False}, False, SkipReason.FILTER_MISMATCH),
        ({"is_first": False}, False, SkipReason.NOT_FIRST),
        ({"in_global_holdout": True}, False, SkipReason.GLOBAL_HOLDOUT),
        ({}, True, SkipReason.USER_RESTRICTED),
        ({"variant": CampaignVariant("control", 1, holdout=True)}, False, SkipReason.CONTROL_VARIANT),
        ({"received_so_far": 2}, False, SkipReason.PER_USER_CAP),
    ],
)
def test_each_gate_gives_nothing_with_its_reason(
    change: dict[str, object], restricted: bool, reason: SkipReason
) -> None:
    """A failed gate gives nothing at all, and says which gate."""
    outcome = decide(FIRST_LISTING, dataclasses.replace(CLEAR, **change), restricted=restricted)  # type: ignore[arg-type]
    assert (outcome.reached, outcome.skipped) == (False, (reason,))


def test_gates_are_checked_in_order() -> None:
    """Out of the segment and over the cap: the segment is what is reported."""
    outcome = decide(FIRST_LISTING, dataclasses.replace(CLEAR, in_segment=False, received_so_far=9), restricted=True)
    assert outcome.skipped == (SkipReason.NOT_IN_SEGMENT,)


def test_frequency_cap_and_budget_skip_only_their_part() -> None:
    """A capped message still grants; an exhausted budget still messages."""
    capped = decide(FIRST_LISTING, dataclasses.replace(CLEAR, messages_today=1), restricted=False)
    assert (capped.incentive, capped.message, capped.skipped) == (POINTS, None, (SkipReason.FREQUENCY_CAP,))
    broke = decide(FIRST_LISTING, dataclasses.replace(CLEAR, budget_left=299), restricted=False)
    assert (broke.incentive, broke.cost, broke.message, broke.skipped) == (
        None,
        0,
        PUSH,
        (SkipReason.BUDGET_EXHAUSTED,),
    )


def test_a_variant_replaces_the_incentive_and_keeps_the_message() -> None:
    """A variant with a bigger incentive and no message of its own."""
    big = PointsIncentive(500, "JPY", 30)
    outcome = decide(
        FIRST_LISTING, dataclasses.replace(CLEAR, variant=CampaignVariant("big", 1, big)), restricted=False
    )
    assert (outcome.incentive, outcome.cost, outcome.message) == (big, 500, PUSH)


def test_restriction_comes_from_the_standing_attribute() -> None:
    """RESTRICTED and SUSPENDED users are excluded; WARNED are not."""
    facts = UserFacts("usr_1")
    assert not is_restricted(facts)
    for level, expected in (("WARNED", False), ("RESTRICTED", True), ("SUSPENDED", True)):
        facts.attributes["standing"] = level
        assert is_restricted(facts) is expected


def test_the_local_day_follows_the_users_time_zone() -> None:
    """23:30 in Tokyo is still the 30th; in Los Angeles it is 06:30 the same day; the default is Tokyo."""
    tokyo, la, unknown = UserFacts("usr_t"), UserFacts("usr_l"), UserFacts("usr_u")
    tokyo.attributes["timezone"] = "Asia/Tokyo"
    la.attributes["timezone"] = "America/Los_Angeles"
    unknown.attributes["timezone"] = "Mars/Olympus"
    assert local_day(NOW, tokyo) == date(2026, 11, 30)
    assert local_day(NOW + timedelta(minutes=31), tokyo) == date(2026, 12, 1)
    assert local_day(NOW + timedelta(minutes=31), la) == date(2026, 11, 30)
    assert local_day(NOW + timedelta(minutes=31), unknown) == date(2026, 12, 1)


def test_rendering_fills_the_placeholders() -> None:
    """Amount, expiry in the user's local calendar, coupon code and user attributes."""
    facts = UserFacts("usr_1")
    facts.attributes["region"] = "kanto"
    title, body = render(PUSH, POINTS, facts, NOW)
    assert (title, body) == ("Thanks kanto", "You got 300 points until 2026-12-30")
    coupon = CouponIncentive("WELCOME10", 500, "JPY", 7)
    _, text = render(
        Communication(Channel.EMAIL, "t", "code {{incentive.coupon_code}} {{user.timezone}}"), coupon, facts, NOW
    )
    assert text == "code WELCOME10 "


def test_the_grant_key_names_campaign_user_and_event() -> None:
    """One grant per campaign, user and trigger event."""
    assert grant_key("cmp_1", "usr_1", "evt_9") == "campaign:cmp_1:usr_1:evt_9"
