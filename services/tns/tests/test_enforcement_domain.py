"""The escalation ladder, standings and case leases as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import InvalidArgument
from services.tns.domain.cases import Case, CaseKind, CaseStatus, priority
from services.tns.domain.content import Content, ContentKind
from services.tns.domain.enforcement import (
    ActionKind,
    Capability,
    EnforcementPolicy,
    Standing,
    StandingLevel,
    after_revert,
    after_strike,
)
from services.tns.domain.moderation import validate_content

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = EnforcementPolicy()


def test_strike_weights_differ_by_policy() -> None:
    """A prohibited item weighs three times an off-platform contact; an unknown policy gives no strike."""
    assert POLICY.points_for("prohibited_item") == 3 * POLICY.points_for("offplatform_contact")
    assert POLICY.points_for("standing") == 0.0


@pytest.mark.parametrize(
    ("points", "level", "record"),
    [
        (0.5, None, None),
        (1.0, StandingLevel.WARNED, ActionKind.WARN),
        (4.0, StandingLevel.RESTRICTED, ActionKind.RESTRICT),
        (8.0, StandingLevel.SUSPENDED, ActionKind.SUSPEND),
    ],
)
def test_a_strike_climbs_to_the_rung_its_points_reach(
    points: float, level: StandingLevel | None, record: ActionKind | None
) -> None:
    """From good standing, the new total picks the rung and the action recorded for it."""
    change = after_strike(Standing("usr_a"), points, POLICY, NOW)
    if level is None:
        assert change is None
        return
    assert change is not None
    assert (change.previous, change.level, change.record) == (StandingLevel.GOOD, level, record)
    assert (change.restricted_until is not None) == (level is StandingLevel.RESTRICTED)


def test_restriction_is_time_bound_and_a_new_offence_restricts_again() -> None:
    """A restriction ends by itself (then it reads as warned); a strike after that restricts again."""
    change = after_strike(Standing("usr_a", StandingLevel.WARNED), 4.0, POLICY, NOW)
    assert change is not None
    assert change.restricted_until == NOW + timedelta(days=7)
    standing = Standing("usr_a", StandingLevel.RESTRICTED, change.restricted_until, 4.0)
    assert not standing.may(Capability.LIST, NOW)
    assert standing.may(Capability.PAY, NOW)
    later = NOW + timedelta(days=8)
    assert standing.effective_level(later) is StandingLevel.WARNED
    assert standing.may(Capability.LIST, later)
    again = after_strike(standing, 5.0, POLICY, later)
    assert again is not None
    assert (again.level, again.restricted_until) == (StandingLevel.RESTRICTED, later + timedelta(days=7))


def test_suspension_refuses_everything() -> None:
    """A suspended user may not list, message or pay."""
    standing = Standing("usr_a", StandingLevel.SUSPENDED, None, 9.0)
    assert {r.capability for r in standing.refusals(NOW)} == set(Capability)


def test_revert_walks_down_and_lifts_what_no_longer_holds() -> None:
    """Suspended with a running restriction, back to 6 points: restricted again, suspension lifted; to 0: good."""
    until = NOW + timedelta(days=3)
    suspended = Standing("usr_a", StandingLevel.SUSPENDED, until, 6.0)
    down = after_revert(suspended, 6.0, POLICY, NOW)
    assert down is not None
    assert (down.level, down.restricted_until, down.lift) == (StandingLevel.RESTRICTED, until, (ActionKind.SUSPEND,))
    clean = after_revert(Standing("usr_a", StandingLevel.RESTRICTED, until, 0.0), 0.0, POLICY, NOW)
    assert clean is not None
    assert (clean.level, clean.lift) == (StandingLevel.GOOD, (ActionKind.RESTRICT,))
    assert after_revert(Standing("usr_a", StandingLevel.WARNED), 2.0, POLICY, NOW) is None


def test_revert_below_suspension_with_an_expired_restriction_leaves_a_warning() -> None:
    """Out of suspension into the restricted band, with no restriction time left: warned, not restricted forever."""
    down = after_revert(Standing("usr_a", StandingLevel.SUSPENDED, None, 5.0), 5.0, POLICY, NOW)
    assert down is not None
    assert (down.level, down.restricted_until) == (StandingLevel.WARNED, None)


def test_cases_queue_by_harm_and_appeals_first() -> None:
    """Prohibited items outrank contact details; an appeal outranks the same policy's review."""
    assert priority(CaseKind.REVIEW, "prohibited_item") > priority(CaseKind.REVIEW, "offplatform_contact")
    assert priority(CaseKind.APPEAL, "counterfeit") > priority(CaseKind.REVIEW, "counterfeit")


def test_a_lease_belongs_to_its_agent_until_it_runs_out() -> None:
    """Held by A: not free for B until the lease time passes."""
    case = Case(
        "case_1", CaseKind.REVIEW, CaseStatus.OPEN, "offensive", 50, ContentKind.COMMENT, "c1", "usr_a", "system",
        "", "dec_1", NOW, claimed_by="agent-a", lease_expires_at=NOW + timedelta(minutes=5),
    )  # fmt: skip
    assert case.held_by("agent-a", NOW)
    assert case.leased_to_other("agent-b", NOW)
    assert not case.leased_to_other("agent-b", NOW + timedelta(minutes=6))


def test_content_validation_names_every_field() -> None:
    """A comment with a title and price and no body, by a non-user: one error listing each field."""
    bad = Content(ContentKind.COMMENT, "", "svc-x", title="t", body=" ", price=100)
    with pytest.raises(InvalidArgument) as info:
        validate_content(bad)
    assert {v.field for v in info.value.violations} == {
        "content.content_id",
        "content.author_id",
        "content.body",
        "content.title",
        "content.price",
    }


def test_suspension_keeps_a_running_restriction_for_after_an_appeal() -> None:
    """Suspending a restricted user keeps the restriction's end, which a later revert restores."""
    until = NOW + timedelta(days=5)
    up = after_strike(Standing("usr_a", StandingLevel.RESTRICTED, until, 6.0), 9.0, POLICY, NOW)
    assert up is not None
    assert (up.level, up.restricted_until) == (StandingLevel.SUSPENDED, until)
