"""Mapping between TnS domain objects and ``furima.tns.v1`` messages."""

from __future__ import annotations

from datetime import datetime

import orjson
from furima.tns.v1 import case_service_pb2, content_pb2, enforcement_service_pb2
from furima.types.v1 import money_pb2

from libs.errors import FieldViolation, InvalidArgument
from libs.pb import ts
from services.tns.domain.audit import AuditEntry
from services.tns.domain.cases import Case, CaseKind, CaseStatus, Resolution
from services.tns.domain.content import Content, ContentKind, Verdict
from services.tns.domain.enforcement import Capability, Label, Standing, StandingLevel
from services.tns.domain.moderation import Decision, Reason
from services.tns.service._events import KIND, LEVEL, STATUS

KIND_FROM_PB = {v: k for k, v in KIND.items()}
VERDICT = {
    Verdict.ALLOW: content_pb2.VERDICT_ALLOW,
    Verdict.WARN: content_pb2.VERDICT_WARN,
    Verdict.REVIEW: content_pb2.VERDICT_REVIEW,
    Verdict.BLOCK: content_pb2.VERDICT_BLOCK,
}
CAPABILITY = {
    Capability.LIST: enforcement_service_pb2.CAPABILITY_LIST,
    Capability.MESSAGE: enforcement_service_pb2.CAPABILITY_MESSAGE,
    Capability.PAY: enforcement_service_pb2.CAPABILITY_PAY,
}
CASE_KIND = {
    CaseKind.REVIEW: case_service_pb2.CASE_KIND_REVIEW,
    CaseKind.REPORT: case_service_pb2.CASE_KIND_REPORT,
    CaseKind.APPEAL: case_service_pb2.CASE_KIND_APPEAL,
}
CASE_STATUS = {
    CaseStatus.OPEN: case_service_pb2.CASE_STATUS_OPEN,
    CaseStatus.RESOLVED: case_service_pb2.CASE_STATUS_RESOLVED,
}
CASE_STATUS_FROM_PB = {v: k for k, v in CASE_STATUS.items()}
RESOLUTION = {
    Resolution.CONFIRM: case_service_pb2.RESOLUTION_CONFIRM,
    Resolution.OVERTURN: case_service_pb2.RESOLUTION_OVERTURN,
}
RESOLUTION_FROM_PB = {v: k for k, v in RESOLUTION.items()}


def content_kind(value: int, path: str) -> ContentKind:
    """The domain kind of a proto ``ContentKind``; INVALID_ARGUMENT naming ``path`` if unset."""
    kind: ContentKind | None = KIND_FROM_PB.get(value)  # type: ignore[call-overload]  # a plain int of the enum
    if kind is None:
        raise InvalidArgument(
            "the content kind is missing", [FieldViolation(path, "must be LISTING, COMMENT or MESSAGE")]
        )
    return kind


def content_from_pb(pb: content_pb2.Content) -> Content:
    """A domain `Content` of the request message (validated later by the domain)."""
    kind = content_kind(pb.kind, "content.kind")
    return Content(
        kind=kind,
        content_id=pb.content_id,
        author_id=pb.author_id,
        title=pb.title,
        body=pb.body,
        category=pb.category,
        price=pb.price.amount if pb.HasField("price") else None,
        currency=pb.price.currency if pb.HasField("price") else "JPY",
    )


def money_pb(amount: int | None, currency: str) -> money_pb2.Money | None:
    """A Money message, or None when there is no amount."""
    return None if amount is None else money_pb2.Money(amount=amount, currency=currency)


def _reason_pb(reason: Reason) -> content_pb2.Reason:
    return content_pb2.Reason(
        policy=reason.policy,
        rule_id=reason.rule_id,
        verdict=VERDICT[reason.verdict],
        evidence=list(reason.evidence),
        shadow=reason.shadow,
    )


def decision_pb(decision: Decision) -> content_pb2.Decision:
    """A Decision message."""
    return content_pb2.Decision(
        decision_id=decision.decision_id,
        kind=KIND[decision.content.kind],
        content_id=decision.content.content_id,
        author_id=decision.content.author_id,
        verdict=VERDICT[decision.verdict],
        reasons=[_reason_pb(r) for r in decision.reasons],
        shadow_reasons=[_reason_pb(r) for r in decision.shadow_reasons],
        model_scores=[
            content_pb2.ModelScore(policy=p, score=s, threshold=decision.thresholds.get(p, 1.0))
            for p, s in sorted(decision.scores.items())
        ],
        ruleset_version=decision.ruleset_version,
        model_version=decision.model_version,
        content_status=STATUS[decision.status],
        case_id=decision.case_id or "",
        decided_at=ts(decision.decided_at),
    )


def label_pb(label: Label) -> enforcement_service_pb2.UserLabel:
    """A UserLabel message."""
    return enforcement_service_pb2.UserLabel(
        label=label.label,
        reason=label.reason,
        source=label.source,
        created_at=ts(label.created_at),
        expires_at=ts(label.expires_at),
    )


def standing_pb(standing: Standing, now: datetime) -> enforcement_service_pb2.UserStanding:
    """A UserStanding message as of ``now``."""
    refusals = standing.refusals(now)
    refused = {r.capability for r in refusals}
    level = standing.effective_level(now)
    return enforcement_service_pb2.UserStanding(
        user_id=standing.user_id,
        level=LEVEL[level],
        can_list=Capability.LIST not in refused,
        can_message=Capability.MESSAGE not in refused,
        can_pay=Capability.PAY not in refused,
        refusals=[
            enforcement_service_pb2.Refusal(
                capability=CAPABILITY[r.capability], reason=r.reason, detail=r.detail, until=ts(r.until)
            )
            for r in refusals
        ],
        strike_points=standing.strike_points,
        restricted_until=ts(standing.restricted_until if level is StandingLevel.RESTRICTED else None),
        labels=[label_pb(label) for label in standing.labels],
    )


def case_pb(case: Case) -> case_service_pb2.Case:
    """A Case message."""
    return case_service_pb2.Case(
        case_id=case.case_id,
        kind=CASE_KIND[case.kind],
        status=CASE_STATUS[case.status],
        policy=case.policy,
        priority=case.priority,
        content_kind=KIND[case.content_kind],
        content_id=case.content_id,
        subject_user_id=case.subject_user_id,
        opened_by=case.opened_by,
        note=case.note,
        decision_id=case.decision_id,
        claimed_by=case.claimed_by or "",
        lease_expires_at=ts(case.lease_expires_at),
        resolution=RESOLUTION[case.resolution] if case.resolution else case_service_pb2.RESOLUTION_UNSPECIFIED,
        resolution_note=case.resolution_note,
        resolved_by=case.resolved_by or "",
        created_at=ts(case.created_at),
        resolved_at=ts(case.resolved_at),
    )


def audit_pb(entry: AuditEntry) -> case_service_pb2.AuditEntry:
    """An AuditEntry message."""
    return case_service_pb2.AuditEntry(
        entry_id=entry.entry_id,
        at=ts(entry.at),
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        ruleset_version=entry.ruleset_version,
        model_version=entry.model_version,
        before_json=orjson.dumps(entry.before, option=orjson.OPT_SORT_KEYS).decode(),
        after_json=orjson.dumps(entry.after, option=orjson.OPT_SORT_KEYS).decode(),
        note=entry.note,
    )
