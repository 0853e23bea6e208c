"""Moderation on the publishing path: rules and model, the author's standing and
velocity, then the decision's effects.

Every decision is written through a group commit: concurrent decisions share one
transaction, and each caller returns once its decision and all its effects (a review
case for REVIEW; take-down, strike and ladder for BLOCK) are committed together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Connection

from libs.errors import NotFound
from libs.ids import new_ulid
from libs.storage import GroupCommit, Transaction
from services.tns.domain import audit as who
from services.tns.domain.cases import Case, CaseKind, CaseStatus, priority
from services.tns.domain.content import AuthorContext, Content, ContentKind, Verdict
from services.tns.domain.enforcement import Capability, Standing, StandingLevel
from services.tns.domain.moderation import (
    STANDING_POLICY,
    STANDING_RULE,
    ContentStatus,
    Decision,
    Reason,
    status_after,
    validate_content,
)
from services.tns.service._events import content_status_changed
from services.tns.service._runtime import Runtime
from services.tns.service.enforcement import Enforcer
from services.tns.service.rulebook import Engine, RuleBook
from services.tns.store import audit as audit_repo
from services.tns.store import cases as case_repo
from services.tns.store import contents as content_repo
from services.tns.store import decisions as repo
from services.tns.store.contents import StoredContent

SECONDS_PER_DAY = 86_400.0


@dataclass
class _Recorded:
    """A decision waiting to be written, with what it replaces (the writer sets its case)."""

    decision: Decision
    previous: ContentStatus | None
    requested_by: str


class Moderator:
    """``ModerateContent`` and ``GetContent``."""

    def __init__(self, rt: Runtime, book: RuleBook, enforcer: Enforcer, *, batch_wait: float = 0.0) -> None:
        self._rt = rt
        self._book = book
        self._enforcer = enforcer
        self._group: GroupCommit[_Recorded] = GroupCommit(
            rt.db, commit=self._commit, linger=batch_wait, name="tns-decisions"
        )

    async def moderate(self, content: Content, requested_by: str) -> Decision:
        """Decide on ``content`` and apply the decision's effects."""
        validate_content(content)
        engine = self._book.current
        now = self._rt.clock.now()
        facts = await repo.author_facts(
            self._rt.db,
            content.author_id,
            content.kind,
            content.content_id,
            engine.rules.velocity_limits,
            self._enforcer.policy.window,
            now,
        )
        standing = Standing(content.author_id, facts.level, facts.restricted_until, facts.strike_points)
        level = standing.effective_level(now)
        author = AuthorContext(
            account_age_days=(now - facts.signed_up_at).total_seconds() / SECONDS_PER_DAY
            if facts.signed_up_at
            else None,
            restricted=level in (StandingLevel.RESTRICTED, StandingLevel.SUSPENDED),
            labels=facts.labels,
            strike_points=facts.strike_points,
            recent=facts.recent,
        )
        decision = self._decide(engine, content, author, standing)
        if facts.content_status is ContentStatus.REMOVED:
            # An edit does not bring back what was taken down; an appeal or an agent does.
            decision = dataclasses.replace(decision, status=ContentStatus.REMOVED)
        recorded = _Recorded(decision, facts.content_status, requested_by)
        await self._group.write(recorded)
        return recorded.decision

    def _decide(self, engine: Engine, content: Content, author: AuthorContext, standing: Standing) -> Decision:
        now = self._rt.clock.now()
        scores = engine.model.scores(content.text)
        thresholds = engine.model.thresholds
        evaluation = engine.rules.evaluate(content, author, scores, thresholds)
        reasons = [Reason(h.policy, h.rule_id, h.verdict, tuple(h.evidence)) for h in evaluation.hits]
        capability = Capability.LIST if content.kind is ContentKind.LISTING else Capability.MESSAGE
        for refusal in standing.refusals(now):
            if refusal.capability is capability:
                reasons.append(Reason(STANDING_POLICY, STANDING_RULE, Verdict.BLOCK, (refusal.detail,)))
        reasons.sort(key=lambda r: r.verdict, reverse=True)
        verdict = max((r.verdict for r in reasons), default=Verdict.ALLOW)
        return Decision(
            decision_id=new_ulid("dec_"),
            content=content,
            verdict=verdict,
            reasons=tuple(reasons),
            shadow_reasons=tuple(
                Reason(h.policy, h.rule_id, h.verdict, tuple(h.evidence), shadow=True) for h in evaluation.shadow_hits
            ),
            scores=scores,
            thresholds=thresholds,
            ruleset_version=engine.rules.version,
            model_version=engine.model.version,
            decided_at=now,
            status=status_after(verdict),
        )

    # -- writing a batch of decisions ------------------------------------------------
    #
    # A batch without enforcement (the common case) only inserts and upserts rows: it is
    # written on a synchronous connection in one hop (`Database.write_sync`). A batch with
    # a policy BLOCK needs the enforcer (reads, the ladder, the ID dispatcher) and takes
    # the ordinary async transaction.

    async def _commit(self, items: Sequence[_Recorded]) -> None:
        if any(_enforced(item.decision) for item in items):
            async with self._rt.db.transaction() as tx:
                await self._write_many(tx, items)
            return
        if await self._rt.db.write_sync(lambda conn: self._write_many_sync(conn, items)):
            self._rt.outbox.notify()

    def _write_many_sync(self, conn: Connection, items: Sequence[_Recorded]) -> bool:
        reviews = [item for item in items if item.decision.verdict is Verdict.REVIEW]
        _attach_cases(reviews, case_repo.open_many_sync(conn, _review_cases(reviews)))
        repo.add_many_sync(conn, _decision_rows(items))
        content_repo.save_decided_sync(conn, [item.decision for item in items])
        audit_repo.add_many_sync(conn, [_audit_entry(item) for item in items])
        changes = _status_changes(items)
        for aggregate_id, event in changes:
            self._rt.outbox.append_sync(conn, aggregate_id, event)
        return bool(changes)

    async def _write_many(self, tx: Transaction, items: Sequence[_Recorded]) -> None:
        reviews = [item for item in items if item.decision.verdict is Verdict.REVIEW]
        _attach_cases(reviews, await case_repo.open_many(tx.conn, _review_cases(reviews)))
        await repo.add_many(tx.conn, _decision_rows(items))
        await content_repo.save_decided(tx.conn, [item.decision for item in items])
        await audit_repo.add_many(tx.conn, [_audit_entry(item) for item in items])
        for aggregate_id, event in _status_changes(items):
            await self._rt.outbox.append(tx, aggregate_id, event)
        for item in items:
            if _enforced(item.decision):
                await self._enforce(tx, item.decision)

    async def _enforce(self, tx: Transaction, decision: Decision) -> None:
        policy_blocks = _policy_blocks(decision)
        content = decision.content
        source = f"decision:{decision.decision_id}"
        policy = max(policy_blocks, key=lambda r: self._enforcer.policy.points_for(r.policy)).policy
        reason = "automated: " + ", ".join(r.rule_id for r in policy_blocks)
        # The take-down records the action and announces the new status.
        await self._enforcer.take_down(tx, content, policy, source, who.SYSTEM, reason)
        await self._enforcer.strike(tx, content, policy, source, who.SYSTEM, reason)

    async def content(self, kind: ContentKind, content_id: str) -> tuple[StoredContent, Decision]:
        """The content's status and its latest decision."""
        async with self._rt.db.read() as conn:
            stored = await content_repo.get(conn, kind, content_id)
            row = await repo.get(conn, stored.latest_decision_id) if stored else None
        if stored is None or row is None:
            raise NotFound(f"no {kind.value} {content_id!r} is known", reason="CONTENT_NOT_FOUND")
        m = row._mapping
        scores, thresholds = repo.parse_scores(m["scores"])
        decision = Decision(
            decision_id=m["id"],
            content=stored.content,
            verdict=Verdict[m["verdict"]],
            reasons=repo.parse_reasons(m["reasons"]),
            shadow_reasons=repo.parse_reasons(m["shadow_reasons"], shadow=True),
            scores=scores,
            thresholds=thresholds,
            ruleset_version=m["ruleset_version"],
            model_version=m["model_version"],
            decided_at=m["decided_at"],
            status=stored.status,
            case_id=m["case_id"],
        )
        return stored, decision


def _policy_blocks(decision: Decision) -> tuple[Reason, ...]:
    # A block for a content policy is an enforcement (appealable, a strike); a block only
    # because the author may not post right now is not.
    return tuple(r for r in decision.strongest(Verdict.BLOCK) if r.policy != STANDING_POLICY)


def _enforced(decision: Decision) -> bool:
    return decision.status is ContentStatus.REMOVED and bool(_policy_blocks(decision))


def _review_cases(reviews: Sequence[_Recorded]) -> list[Case]:
    return [
        Case(
            case_id=new_ulid("case_"),
            kind=CaseKind.REVIEW,
            status=CaseStatus.OPEN,
            policy=d.policy,
            priority=priority(CaseKind.REVIEW, d.policy),
            content_kind=d.content.kind,
            content_id=d.content.content_id,
            subject_user_id=d.content.author_id,
            opened_by=who.SYSTEM,
            note=", ".join(r.rule_id for r in d.reasons),
            decision_id=d.decision_id,
            created_at=d.decided_at,
        )
        for d in (item.decision for item in reviews)
    ]


def _attach_cases(reviews: Sequence[_Recorded], opened: dict[tuple[str, str], str]) -> None:
    for item in reviews:
        key = (item.decision.content.kind.value, item.decision.content.content_id)
        item.decision = dataclasses.replace(item.decision, case_id=opened[key])


def _decision_rows(items: Sequence[_Recorded]) -> list[dict[str, Any]]:
    return [
        repo.decision_row(
            decision_id=d.decision_id,
            kind=d.content.kind,
            content_id=d.content.content_id,
            author_id=d.content.author_id,
            verdict=d.verdict,
            reasons=d.reasons,
            shadow_reasons=d.shadow_reasons,
            scores=d.scores,
            thresholds=d.thresholds,
            ruleset_version=d.ruleset_version,
            model_version=d.model_version,
            case_id=d.case_id,
            decided_at=d.decided_at,
        )
        for d in (item.decision for item in items)
    ]


def _status_changes(items: Sequence[_Recorded]) -> list[tuple[str, Message]]:
    """Events of content whose status the decision changed (enforced blocks announce
    their own through the take-down).
    """
    changes: list[tuple[str, Message]] = []
    for item in items:
        d = item.decision
        if _enforced(d) or d.status is (item.previous or ContentStatus.VISIBLE):
            continue
        event = content_status_changed(
            d.content.kind, d.content.content_id, d.content.author_id, d.status, d.policy, f"decision:{d.decision_id}"
        )
        changes.append((d.content.content_id, event))
    return changes


def _audit_entry(item: _Recorded) -> who.AuditEntry:
    d = item.decision
    return who.AuditEntry(
        entry_id=new_ulid("aud_"),
        at=d.decided_at,
        actor=who.SYSTEM,
        action="content.moderated",
        subject=who.content_subject(d.content.kind, d.content.content_id),
        ruleset_version=d.ruleset_version,
        model_version=d.model_version,
        before={"status": item.previous.value if item.previous else None},
        after={
            "decision_id": d.decision_id,
            "verdict": d.verdict.name,
            "status": d.status.value,
            "rules": [r.rule_id for r in d.reasons],
            "shadow_rules": [r.rule_id for r in d.shadow_reasons],
            "case_id": d.case_id,
        },
        note=f"requested by {item.requested_by}",
    )
