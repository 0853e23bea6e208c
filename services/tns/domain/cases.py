"""Review cases: queues by policy and priority, leases, resolutions and appeals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.tns.domain.content import ContentKind


class CaseKind(StrEnum):
    """Why a case exists."""

    REVIEW = "review"  # a decision asked for a human
    REPORT = "report"  # a user reported content
    APPEAL = "appeal"  # the author appealed an enforcement


class CaseStatus(StrEnum):
    """Open until an agent resolves it."""

    OPEN = "open"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """What the agent decided."""

    CONFIRM = "confirm"  # the decision or report stands; an appeal is rejected
    OVERTURN = "overturn"  # it was wrong: actions are reverted; an appeal is granted


# Queue order: the harm a missed case does, then waiting users first (appeals).
_POLICY_PRIORITY = {
    "prohibited_item": 90,
    "counterfeit": 70,
    "offplatform_payment": 60,
    "offensive": 50,
    "offplatform_contact": 40,
    "expired_food": 30,
}
_KIND_BONUS = {CaseKind.REVIEW: 0, CaseKind.REPORT: 0, CaseKind.APPEAL: 20}
REPORT_BUMP = 5
"""Each further report of content already in the queue raises its case this much."""
MAX_PRIORITY = 200


def priority(kind: CaseKind, policy: str) -> int:
    """The starting priority of a case (higher is served first)."""
    return _POLICY_PRIORITY.get(policy, 20) + _KIND_BONUS[kind]


@dataclass(frozen=True)
class Case:
    """A unit of work for a customer-service agent."""

    case_id: str
    kind: CaseKind
    status: CaseStatus
    policy: str
    priority: int
    content_kind: ContentKind
    content_id: str
    subject_user_id: str
    opened_by: str
    note: str
    decision_id: str
    created_at: datetime
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None
    resolution: Resolution | None = None
    resolution_note: str = ""
    resolved_by: str | None = None
    resolved_at: datetime | None = None

    def leased_to_other(self, agent: str, now: datetime) -> bool:
        """Whether another agent holds a live lease on the case."""
        return (
            self.claimed_by is not None
            and self.claimed_by != agent
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )

    def held_by(self, agent: str, now: datetime) -> bool:
        """Whether ``agent`` holds a live lease on the case."""
        return self.claimed_by == agent and self.lease_expires_at is not None and self.lease_expires_at > now
