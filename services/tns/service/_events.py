"""Builders of TnS's outbox payloads (`furima.tns.v1.events_pb2`)."""

from __future__ import annotations

from datetime import datetime

from furima.tns.v1 import content_pb2, enforcement_service_pb2, events_pb2

from libs.pb import timestamp, ts
from services.tns.domain.content import ContentKind
from services.tns.domain.enforcement import ActionKind, StandingLevel
from services.tns.domain.moderation import ContentStatus
from services.tns.store.enforcement import Action

KIND = {
    ContentKind.LISTING: content_pb2.CONTENT_KIND_LISTING,
    ContentKind.COMMENT: content_pb2.CONTENT_KIND_COMMENT,
    ContentKind.MESSAGE: content_pb2.CONTENT_KIND_MESSAGE,
}
STATUS = {
    ContentStatus.VISIBLE: content_pb2.CONTENT_STATUS_VISIBLE,
    ContentStatus.HIDDEN: content_pb2.CONTENT_STATUS_HIDDEN,
    ContentStatus.REMOVED: content_pb2.CONTENT_STATUS_REMOVED,
}
ACTION = {
    ActionKind.STRIKE: enforcement_service_pb2.ACTION_KIND_STRIKE,
    ActionKind.WARN: enforcement_service_pb2.ACTION_KIND_WARN,
    ActionKind.RESTRICT: enforcement_service_pb2.ACTION_KIND_RESTRICT,
    ActionKind.SUSPEND: enforcement_service_pb2.ACTION_KIND_SUSPEND,
    ActionKind.HIDE_CONTENT: enforcement_service_pb2.ACTION_KIND_HIDE_CONTENT,
    ActionKind.REMOVE_CONTENT: enforcement_service_pb2.ACTION_KIND_REMOVE_CONTENT,
    ActionKind.REINSTATE: enforcement_service_pb2.ACTION_KIND_REINSTATE,
}
LEVEL = {
    StandingLevel.GOOD: enforcement_service_pb2.STANDING_LEVEL_GOOD,
    StandingLevel.WARNED: enforcement_service_pb2.STANDING_LEVEL_WARNED,
    StandingLevel.RESTRICTED: enforcement_service_pb2.STANDING_LEVEL_RESTRICTED,
    StandingLevel.SUSPENDED: enforcement_service_pb2.STANDING_LEVEL_SUSPENDED,
}


def content_status_changed(
    kind: ContentKind, content_id: str, author_id: str, status: ContentStatus, policy: str, source: str
) -> events_pb2.ContentStatusChanged:
    """A piece of content was hidden, removed or restored."""
    return events_pb2.ContentStatusChanged(
        kind=KIND[kind], content_id=content_id, author_id=author_id, status=STATUS[status], policy=policy, source=source
    )


def standing_changed(
    user_id: str,
    previous: StandingLevel,
    level: StandingLevel,
    restricted_until: datetime | None,
    reason: str,
    at: datetime,
) -> events_pb2.UserStandingChanged:
    """The user moved on the ladder."""
    event = events_pb2.UserStandingChanged(
        user_id=user_id, previous_level=LEVEL[previous], level=LEVEL[level], reason=reason, changed_at=timestamp(at)
    )
    if restricted_until is not None:
        event.restricted_until.CopyFrom(timestamp(restricted_until))
    return event


def label_changed(user_id: str, label: str, present: bool, source: str) -> events_pb2.UserLabelChanged:
    """A label was put on or taken off a user."""
    return events_pb2.UserLabelChanged(user_id=user_id, label=label, present=present, source=source)


def action_pb(action: Action) -> enforcement_service_pb2.Action:
    """An Action message."""
    return enforcement_service_pb2.Action(
        action_id=action.action_id,
        user_id=action.user_id,
        kind=ACTION[action.kind],
        policy=action.policy,
        points=action.points,
        content_kind=KIND[action.content_kind] if action.content_kind else content_pb2.CONTENT_KIND_UNSPECIFIED,
        content_id=action.content_id,
        source=action.source,
        reason=action.reason,
        created_at=ts(action.created_at),
        until=ts(action.until),
        reverted_at=ts(action.reverted_at),
    )


def action_taken(action: Action) -> events_pb2.ActionTaken:
    """An action was recorded."""
    return events_pb2.ActionTaken(action=action_pb(action))


def action_reverted(action: Action) -> events_pb2.ActionReverted:
    """An action was reverted."""
    return events_pb2.ActionReverted(action=action_pb(action))
