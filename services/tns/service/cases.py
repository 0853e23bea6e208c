"""The review desk: reports and appeals open cases, agents claim and resolve them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Violations
from libs.ids import new_ulid
from services.tns.domain import audit as who
from services.tns.domain.cases import REPORT_BUMP, Case, CaseKind, CaseStatus, Resolution, priority
from services.tns.domain.content import POLICIES, Content, ContentKind
from services.tns.domain.enforcement import ActionKind
from services.tns.domain.moderation import ContentStatus
from services.tns.service._runtime import Runtime, audit
from services.tns.service.enforcement import Enforcer
from services.tns.store import cases as repo
from services.tns.store import contents as content_repo
from services.tns.store import enforcement as action_repo

MAX_NOTE = 2000
CLAIM_CANDIDATES = 20


def _case_view(case: Case) -> dict[str, object]:
    return {"status": case.status.value, "claimed_by": case.claimed_by, "priority": case.priority}


class CaseDesk:
    """Use cases of review cases and appeals."""

    def __init__(self, rt: Runtime, enforcer: Enforcer, *, lease: timedelta = timedelta(minutes=5)) -> None:
        self._rt = rt
        self._enforcer = enforcer
        self.lease = lease

    # -- opening -----------------------------------------------------------------------

    async def report(self, reporter: str, kind: ContentKind, content_id: str, policy: str, note: str) -> Case:
        """A user reports content: a REPORT case opens, or the open one moves up the queue."""
        problems = Violations()
        problems.require(content_id, "content_id")
        if policy not in POLICIES:
            problems.add("policy", f"must be one of {', '.join(POLICIES)}")
        if len(note) > 1000:
            problems.add("note", "must be at most 1000 characters")
        problems.raise_if_any()
        async with self._rt.db.transaction() as tx:
            stored = await content_repo.get(tx.conn, kind, content_id)
            if stored is None:
                raise NotFound(f"no {kind.value} {content_id!r} is known", reason="CONTENT_NOT_FOUND")
            case = self._new_case(CaseKind.REPORT, policy, stored.content, who.user(reporter), note, stored)
            opened, new = await repo.open_or_bump(tx.conn, case, REPORT_BUMP)
            await audit(
                tx,
                self._rt,
                who.user(reporter),
                "content.reported",
                who.content_subject(kind, content_id),
                after={"case_id": opened.case_id, "policy": policy, "new_case": new, "priority": opened.priority},
                note=note,
            )
        return opened

    async def appeal(self, user_id: str, kind: ContentKind, content_id: str, statement: str) -> Case:
        """The author appeals an enforcement on their own content."""
        problems = Violations()
        problems.require(content_id, "content_id")
        problems.require(statement.strip(), "statement")
        if len(statement) > MAX_NOTE:
            problems.add("statement", f"must be at most {MAX_NOTE} characters")
        problems.raise_if_any()
        async with self._rt.db.transaction() as tx:
            stored = await content_repo.get(tx.conn, kind, content_id)
            if stored is None:
                raise NotFound(f"no {kind.value} {content_id!r} is known", reason="CONTENT_NOT_FOUND")
            if stored.content.author_id != user_id:
                raise PermissionDenied("only the author can appeal an enforcement on content", reason="NOT_AUTHOR")
            active = await action_repo.active_for_content(tx.conn, kind, content_id)
            if not any(a.kind in (ActionKind.REMOVE_CONTENT, ActionKind.STRIKE) for a in active):
                raise FailedPrecondition("no enforcement on this content to appeal", reason="NOTHING_TO_APPEAL")
            if await repo.open_for_content(tx.conn, CaseKind.APPEAL, kind, content_id) is not None:
                raise AlreadyExists("an appeal of this content is already open", reason="APPEAL_OPEN")
            policy = stored.status_policy or next((a.policy for a in active if a.policy), "")
            case = self._new_case(CaseKind.APPEAL, policy, stored.content, who.user(user_id), statement, stored)
            opened, _ = await repo.open_or_bump(tx.conn, case, 0)
            await audit(
                tx,
                self._rt,
                who.user(user_id),
                "appeal.filed",
                who.content_subject(kind, content_id),
                after={"case_id": opened.case_id, "policy": policy},
                note=statement,
            )
        return opened

    def _new_case(
        self,
        kind: CaseKind,
        policy: str,
        content: Content,
        opened_by: str,
        note: str,
        stored: content_repo.StoredContent,
    ) -> Case:
        return Case(
            case_id=new_ulid("case_"),
            kind=kind,
            status=CaseStatus.OPEN,
            policy=policy,
            priority=priority(kind, policy),
            content_kind=content.kind,
            content_id=content.content_id,
            subject_user_id=content.author_id,
            opened_by=opened_by,
            note=note,
            decision_id=stored.latest_decision_id,
            created_at=self._rt.clock.now(),
        )

    # -- the queue ---------------------------------------------------------------------

    async def get(self, case_id: str) -> Case:
        """One case; NotFound when there is none."""
        async with self._rt.db.read() as conn:
            case = await repo.get(conn, case_id)
        if case is None:
            raise NotFound(f"no case {case_id!r}", reason="CASE_NOT_FOUND")
        return case

    async def list(
        self, status: CaseStatus, policies: Sequence[str], after: tuple[int, str] | None, limit: int
    ) -> list[Case]:
        """Cases by priority, highest first."""
        async with self._rt.db.read() as conn:
            return await repo.page(conn, status, policies, after, limit)

    async def claim(self, agent: str, case_id: str, policies: Sequence[str]) -> Case:
        """Lease a case to ``agent``: the one named, or the best unclaimed one in the queues."""
        now = self._rt.clock.now()
        until = now + self.lease
        if case_id:
            async with self._rt.db.transaction() as tx:
                if not await repo.try_claim(tx.conn, case_id, agent, now, until):
                    raise await self._claim_refusal(tx.conn, case_id, agent)
                case = await repo.get(tx.conn, case_id)
                await audit(tx, self._rt, who.agent(agent), "case.claimed", who.case_subject(case_id))
            assert case is not None
            return case
        async with self._rt.db.read() as conn:
            candidates = await repo.claimable(conn, policies, now, CLAIM_CANDIDATES)
        for candidate in candidates:
            async with self._rt.db.transaction() as tx:
                if await repo.try_claim(tx.conn, candidate, agent, now, until, extend=False):
                    case = await repo.get(tx.conn, candidate)
                    await audit(tx, self._rt, who.agent(agent), "case.claimed", who.case_subject(candidate))
                    assert case is not None
                    return case
        raise NotFound("no open case to claim in these queues", reason="QUEUE_EMPTY")

    async def _claim_refusal(self, conn: AsyncConnection, case_id: str, agent: str) -> Exception:
        case = await repo.get(conn, case_id)
        if case is None:
            return NotFound(f"no case {case_id!r}", reason="CASE_NOT_FOUND")
        if case.status is CaseStatus.RESOLVED:
            return FailedPrecondition("the case is resolved", reason="CASE_RESOLVED")
        lease = case.lease_expires_at.isoformat() if case.lease_expires_at else ""
        return FailedPrecondition(
            "another agent holds the case", reason="CASE_LEASED", metadata={"lease_expires_at": lease}
        )

    # -- resolving ---------------------------------------------------------------------

    async def resolve(self, agent: str, case_id: str, resolution: Resolution, note: str) -> Case:
        """Confirm or overturn, under the agent's live lease, with every effect in one transaction."""
        problems = Violations()
        problems.require(case_id, "case_id")
        problems.require(note.strip(), "note")
        if len(note) > MAX_NOTE:
            problems.add("note", f"must be at most {MAX_NOTE} characters")
        problems.raise_if_any()
        now = self._rt.clock.now()
        async with self._rt.db.transaction() as tx:
            before = await repo.get(tx.conn, case_id)
            if before is None:
                raise NotFound(f"no case {case_id!r}", reason="CASE_NOT_FOUND")
            if not await repo.resolve(tx.conn, case_id, agent, resolution, note, now):
                if before.status is CaseStatus.RESOLVED:
                    raise FailedPrecondition("the case is resolved", reason="CASE_RESOLVED")
                raise FailedPrecondition("claim the case first: you hold no live lease on it", reason="LEASE_NOT_HELD")
            stored = await content_repo.get(tx.conn, before.content_kind, before.content_id)
            if stored is None:
                raise RuntimeError(f"case {case_id} names content TnS does not have")
            actor = who.agent(agent)
            source = f"case:{case_id}"
            if before.kind is CaseKind.APPEAL:
                if resolution is Resolution.OVERTURN:
                    await self._enforcer.restore(tx, stored.content, source, actor, note)
            elif resolution is Resolution.CONFIRM:
                await self._enforcer.take_down(tx, stored.content, before.policy, source, actor, note)
                await self._enforcer.strike(tx, stored.content, before.policy, source, actor, note)
            elif stored.status is ContentStatus.HIDDEN:
                # The automated decision hid it and a human disagrees: show it.
                await self._enforcer.restore(tx, stored.content, source, actor, note)
            after = await repo.get(tx.conn, case_id)
            assert after is not None
            await audit(
                tx,
                self._rt,
                actor,
                "case.resolved",
                who.case_subject(case_id),
                before=_case_view(before),
                after={**_case_view(after), "resolution": resolution.value, "kind": before.kind.value},
                note=note,
            )
        return after
