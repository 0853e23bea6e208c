"""Enforcement: strikes climb the ladder, reverts walk it back, content is taken down
and restored. Every step is an action on record, an audit entry and an event, written
in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from libs.errors import NotFound, Violations
from libs.ids import new_ulid
from libs.storage import Transaction
from services.tns.domain import audit as who
from services.tns.domain.content import Content
from services.tns.domain.enforcement import (
    ActionKind,
    EnforcementPolicy,
    Label,
    Standing,
    StandingChange,
    after_revert,
    after_strike,
)
from services.tns.domain.moderation import ContentStatus
from services.tns.service._events import (
    action_reverted,
    action_taken,
    content_status_changed,
    label_changed,
    standing_changed,
)
from services.tns.service._runtime import Runtime, audit
from services.tns.store import contents as content_repo
from services.tns.store import enforcement as repo
from services.tns.store.enforcement import Action

LABEL_PATTERN_LIMIT = 40


class Enforcer:
    """Applies and reverts enforcement actions."""

    def __init__(self, rt: Runtime, policy: EnforcementPolicy, wake_dispatcher: Callable[[], None]) -> None:
        self._rt = rt
        self.policy = policy
        self._wake_dispatcher = wake_dispatcher

    # -- content ---------------------------------------------------------------------

    async def take_down(
        self, tx: Transaction, content: Content, policy: str, source: str, actor: str, reason: str
    ) -> None:
        """Remove content (an action the author can appeal) unless it is already removed."""
        active = await repo.active_for_content(tx.conn, content.kind, content.content_id)
        if any(a.kind is ActionKind.REMOVE_CONTENT for a in active):
            return
        now = self._rt.clock.now()
        await self._record(tx, self._action(content, ActionKind.REMOVE_CONTENT, policy, source, reason, now))
        await content_repo.set_status(tx.conn, content.kind, content.content_id, ContentStatus.REMOVED, policy)
        await self._rt.outbox.append(
            tx,
            content.content_id,
            content_status_changed(
                content.kind, content.content_id, content.author_id, ContentStatus.REMOVED, policy, source
            ),
        )
        await audit(
            tx,
            self._rt,
            actor,
            "content.removed",
            who.content_subject(content.kind, content.content_id),
            after={"status": ContentStatus.REMOVED.value, "policy": policy, "source": source},
            note=reason,
        )

    async def strike(
        self, tx: Transaction, content: Content, policy: str, source: str, actor: str, reason: str
    ) -> StandingChange | None:
        """Give the author a strike for ``content`` (at most one per content) and climb the
        ladder if the new total reaches a higher rung.
        """
        points = self.policy.points_for(policy)
        if points <= 0:
            return None
        active = await repo.active_for_content(tx.conn, content.kind, content.content_id)
        if any(a.kind is ActionKind.STRIKE for a in active):
            return None
        now = self._rt.clock.now()
        action = self._action(content, ActionKind.STRIKE, policy, source, reason, now, points=points)
        await self._record(tx, action)
        standing = await repo.get_standing(tx.conn, content.author_id, self.policy.window, now)
        await audit(
            tx,
            self._rt,
            actor,
            "user.strike",
            who.user_subject(content.author_id),
            before={"strike_points": standing.strike_points - points},
            after={"strike_points": standing.strike_points, "policy": policy, "source": source},
            note=reason,
        )
        change = after_strike(standing, standing.strike_points, self.policy, now)
        if change is not None:
            await self._move(tx, standing, change, source, actor, reason, now)
        return change

    async def restore(
        self, tx: Transaction, content: Content, source: str, actor: str, note: str
    ) -> StandingChange | None:
        """Revert every action taken because of ``content``, show it again, and walk the
        author down the ladder if the remaining strikes say so.
        """
        now = self._rt.clock.now()
        active = await repo.active_for_content(tx.conn, content.kind, content.content_id)
        await self._revert(tx, active, now)
        stored = await content_repo.get(tx.conn, content.kind, content.content_id)
        if stored is not None and stored.status is not ContentStatus.VISIBLE:
            await content_repo.set_status(tx.conn, content.kind, content.content_id, ContentStatus.VISIBLE)
            await self._rt.outbox.append(
                tx,
                content.content_id,
                content_status_changed(
                    content.kind, content.content_id, content.author_id, ContentStatus.VISIBLE, "", source
                ),
            )
        await audit(
            tx,
            self._rt,
            actor,
            "actions.reverted",
            who.content_subject(content.kind, content.content_id),
            before={
                "status": stored.status.value if stored else None,
                "actions": [f"{a.kind.value}:{a.action_id}" for a in active],
            },
            after={"status": ContentStatus.VISIBLE.value},
            note=note,
        )
        standing = await repo.get_standing(tx.conn, content.author_id, self.policy.window, now)
        change = after_revert(standing, standing.strike_points, self.policy, now)
        if change is not None:
            await self._move(tx, standing, change, source, actor, note, now)
        return change

    async def _move(
        self,
        tx: Transaction,
        standing: Standing,
        change: StandingChange,
        source: str,
        actor: str,
        reason: str,
        now: datetime,
    ) -> None:
        user_id = standing.user_id
        await repo.put_standing(tx.conn, user_id, change.level, change.restricted_until, now)
        if change.record is not None:
            await self._record(
                tx,
                Action(
                    action_id=new_ulid("act_"),
                    user_id=user_id,
                    kind=change.record,
                    policy="",
                    points=0.0,
                    content_kind=None,
                    content_id="",
                    source=source,
                    reason=reason,
                    created_at=now,
                    until=change.restricted_until,
                ),
            )
        if change.lift:
            lifted = await repo.active_of_kind(tx.conn, user_id, change.lift)
            await self._revert(tx, lifted, now)
            if ActionKind.SUSPEND in change.lift:
                await self._record(
                    tx,
                    Action(new_ulid("act_"), user_id, ActionKind.REINSTATE, "", 0.0, None, "", source, reason, now),
                )
        if change.record is ActionKind.SUSPEND or ActionKind.SUSPEND in change.lift:
            tx.after_commit(self._wake_dispatcher)
        await self._rt.outbox.append(
            tx, user_id, standing_changed(user_id, change.previous, change.level, change.restricted_until, reason, now)
        )
        await audit(
            tx,
            self._rt,
            actor,
            "user.standing_changed",
            who.user_subject(user_id),
            before={"level": change.previous.value},
            after={
                "level": change.level.value,
                "restricted_until": change.restricted_until.isoformat() if change.restricted_until else None,
                "strike_points": standing.strike_points,
            },
            note=reason,
        )

    async def _record(self, tx: Transaction, action: Action) -> None:
        await repo.add_action(tx.conn, action)
        await self._rt.outbox.append(tx, action.user_id, action_taken(action))

    async def _revert(self, tx: Transaction, actions: list[Action], now: datetime) -> None:
        await repo.revert(tx.conn, [a.action_id for a in actions], now)
        for action in actions:
            reverted = dataclasses.replace(action, reverted_at=now)
            await self._rt.outbox.append(tx, action.user_id, action_reverted(reverted))

    def _action(
        self,
        content: Content,
        kind: ActionKind,
        policy: str,
        source: str,
        reason: str,
        now: datetime,
        *,
        points: float = 0.0,
    ) -> Action:
        return Action(
            action_id=new_ulid("act_"),
            user_id=content.author_id,
            kind=kind,
            policy=policy,
            points=points,
            content_kind=content.kind,
            content_id=content.content_id,
            source=source,
            reason=reason,
            created_at=now,
        )

    # -- reading and labels ----------------------------------------------------------

    async def standing(self, user_id: str) -> Standing:
        """The user's standing now."""
        async with self._rt.db.read() as conn:
            return await repo.get_standing(conn, user_id, self.policy.window, self._rt.clock.now())

    async def actions(self, user_id: str, before: str | None, limit: int) -> list[Action]:
        """The user's actions, newest first."""
        async with self._rt.db.read() as conn:
            return await repo.page_actions(conn, user_id, before, limit)

    async def add_label(self, user_id: str, label: str, reason: str, expires_at: datetime | None, actor: str) -> Label:
        """Put a label on a user (replacing its reason and expiry if present)."""
        now = self._rt.clock.now()
        problems = Violations()
        problems.require(user_id, "user_id")
        if (
            not label
            or len(label) > LABEL_PATTERN_LIMIT
            or not all(c.islower() or c.isdigit() or c == "_" for c in label)
        ):
            problems.add("label", "must be 1-40 lower-case letters, digits or underscores")
        if expires_at is not None and expires_at <= now:
            problems.add("expires_at", "must be in the future")
        if len(reason) > 1000:
            problems.add("reason", "must be at most 1000 characters")
        problems.raise_if_any()
        value = Label(label, reason, actor, now, expires_at)
        async with self._rt.db.transaction() as tx:
            await repo.put_label(tx.conn, user_id, value)
            await self._rt.outbox.append(tx, user_id, label_changed(user_id, label, True, actor))
            await audit(
                tx, self._rt, actor, "user.label_added", who.user_subject(user_id), after={"label": label}, note=reason
            )
        return value

    async def remove_label(self, user_id: str, label: str, actor: str) -> None:
        """Take a label off a user; NotFound when they do not have it."""
        problems = Violations()
        problems.require(user_id, "user_id")
        problems.require(label, "label")
        problems.raise_if_any()
        async with self._rt.db.transaction() as tx:
            if not await repo.delete_label(tx.conn, user_id, label):
                raise NotFound(f"user {user_id!r} has no label {label!r}", reason="LABEL_NOT_FOUND")
            await self._rt.outbox.append(tx, user_id, label_changed(user_id, label, False, actor))
            await audit(tx, self._rt, actor, "user.label_removed", who.user_subject(user_id), before={"label": label})
