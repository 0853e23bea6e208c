"""Strikes, the escalation ladder and what a user may do.

Strikes are weighted by policy and counted within a window. Their sum places the user
on a ladder — good → warned → restricted (time-bound) → suspended — and the ladder only
moves up on a new strike and down when strikes are reverted (an appeal granted, a case
overturned). A restriction ends by itself; a suspension does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType


class StandingLevel(StrEnum):
    """The rungs of the ladder, lowest first."""

    GOOD = "good"
    WARNED = "warned"
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"

    @property
    def rank(self) -> int:
        """Position on the ladder (0 = good)."""
        return _RANK[self]


_RANK = {StandingLevel.GOOD: 0, StandingLevel.WARNED: 1, StandingLevel.RESTRICTED: 2, StandingLevel.SUSPENDED: 3}


class ActionKind(StrEnum):
    """What TnS does to a user or their content."""

    STRIKE = "strike"
    WARN = "warn"
    RESTRICT = "restrict"
    SUSPEND = "suspend"
    HIDE_CONTENT = "hide_content"
    REMOVE_CONTENT = "remove_content"
    REINSTATE = "reinstate"


class Capability(StrEnum):
    """What a standing may forbid."""

    LIST = "list"
    MESSAGE = "message"
    PAY = "pay"


_DEFAULT_POINTS = MappingProxyType(
    {
        "prohibited_item": 3.0,
        "counterfeit": 3.0,
        "offensive": 2.0,
        "offplatform_payment": 2.0,
        "offplatform_contact": 1.0,
        "expired_food": 1.0,
    }
)


@dataclass(frozen=True)
class EnforcementPolicy:
    """How strikes weigh and where the ladder's rungs are."""

    strike_points: Mapping[str, float] = field(default_factory=lambda: _DEFAULT_POINTS)
    """Points of one strike per policy; a policy not listed gives no strike."""
    window: timedelta = timedelta(days=90)
    """Strikes older than this no longer count."""
    warn_at: float = 1.0
    restrict_at: float = 4.0
    suspend_at: float = 8.0
    restriction: timedelta = timedelta(days=7)
    """How long a restriction lasts."""

    def points_for(self, policy: str) -> float:
        """The weight of one strike for ``policy`` (0 when the policy gives none)."""
        return self.strike_points.get(policy, 0.0)

    def level_for(self, points: float) -> StandingLevel:
        """The rung ``points`` of strikes lead to."""
        if points >= self.suspend_at:
            return StandingLevel.SUSPENDED
        if points >= self.restrict_at:
            return StandingLevel.RESTRICTED
        if points >= self.warn_at:
            return StandingLevel.WARNED
        return StandingLevel.GOOD


@dataclass(frozen=True, slots=True)
class Label:
    """A label on a user, with why, who set it and until when."""

    label: str
    reason: str
    source: str
    created_at: datetime
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Whether the label still applies."""
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Refusal:
    """One thing the user may not do, and why."""

    capability: Capability
    reason: str
    detail: str
    until: datetime | None = None


@dataclass(frozen=True)
class Standing:
    """A user's place on the ladder."""

    user_id: str
    level: StandingLevel = StandingLevel.GOOD
    restricted_until: datetime | None = None
    strike_points: float = 0.0
    labels: tuple[Label, ...] = ()

    def effective_level(self, now: datetime) -> StandingLevel:
        """The level now: a restriction that has run out counts as a warning."""
        if self.level is StandingLevel.RESTRICTED and (self.restricted_until is None or self.restricted_until <= now):
            return StandingLevel.WARNED
        return self.level

    def refusals(self, now: datetime) -> tuple[Refusal, ...]:
        """Everything the user may not do now."""
        level = self.effective_level(now)
        if level is StandingLevel.SUSPENDED:
            detail = "the account is suspended"
            return tuple(Refusal(c, "SUSPENDED", detail) for c in Capability)
        if level is StandingLevel.RESTRICTED:
            detail = "the account is restricted after repeated policy violations"
            until = self.restricted_until
            return (
                Refusal(Capability.LIST, "RESTRICTED", detail, until),
                Refusal(Capability.MESSAGE, "RESTRICTED", detail, until),
            )
        return ()

    def may(self, capability: Capability, now: datetime) -> bool:
        """Whether the user may do ``capability`` now."""
        return all(r.capability is not capability for r in self.refusals(now))


@dataclass(frozen=True)
class StandingChange:
    """A move on the ladder, and the actions that record it."""

    previous: StandingLevel
    level: StandingLevel
    restricted_until: datetime | None
    record: ActionKind | None
    """The action to record for the move up (None when moving down)."""
    lift: tuple[ActionKind, ...]
    """Kinds of still-active actions that moving down reverts (restriction, suspension)."""


def after_strike(standing: Standing, points: float, policy: EnforcementPolicy, now: datetime) -> StandingChange | None:
    """Where a new strike that brings the user to ``points`` puts them (None: nowhere new).

    The ladder compares with the effective level, so a user whose restriction ran out
    and who offends again is restricted again.
    """
    current = standing.effective_level(now)
    target = policy.level_for(points)
    if target.rank <= current.rank:
        return None
    if target is StandingLevel.RESTRICTED:
        until: datetime | None = now + policy.restriction
    else:
        # A suspension keeps a running restriction on record: if the suspension is
        # lifted on appeal, the restriction resumes where it was.
        until = standing.restricted_until if target is StandingLevel.SUSPENDED else None
    record = {
        StandingLevel.WARNED: ActionKind.WARN,
        StandingLevel.RESTRICTED: ActionKind.RESTRICT,
        StandingLevel.SUSPENDED: ActionKind.SUSPEND,
    }[target]
    return StandingChange(current, target, until, record, ())


def after_revert(standing: Standing, points: float, policy: EnforcementPolicy, now: datetime) -> StandingChange | None:
    """Where reverting strikes (down to ``points``) puts the user (None: they stay)."""
    current = standing.effective_level(now)
    target = policy.level_for(points)
    if target.rank >= current.rank:
        return None
    lift: list[ActionKind] = []
    if current is StandingLevel.SUSPENDED:
        lift.append(ActionKind.SUSPEND)
    if current.rank >= StandingLevel.RESTRICTED.rank and target.rank < StandingLevel.RESTRICTED.rank:
        lift.append(ActionKind.RESTRICT)
    # Moving down from a suspension into the restricted band keeps the old restriction
    # window if it is still running, and otherwise leaves the user warned.
    until = standing.restricted_until if target is StandingLevel.RESTRICTED else None
    if target is StandingLevel.RESTRICTED and (until is None or until <= now):
        target = StandingLevel.WARNED
        until = None
    return StandingChange(current, target, until, None, tuple(lift))
