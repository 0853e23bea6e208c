"""Re-scans: when the rules change, re-evaluate recent content with the new rules.

SHADOW records what would change and touches nothing. APPLY records a new decision for
each changed item and sets its status (opening a review case for a new REVIEW), but
gives no strikes: nobody broke a rule that did not exist when they posted. Velocity is
not replayed (a re-scan sees no bursts), and removed content stays removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime

import structlog

from libs.errors import InvalidArgument, NotFound
from libs.ids import new_ulid
from services.tns.domain import audit as who
from services.tns.domain.cases import Case, CaseKind, CaseStatus, priority
from services.tns.domain.content import AuthorContext, Verdict
from services.tns.domain.moderation import ContentStatus, Reason, status_after
from services.tns.domain.rules import RuleHit
from services.tns.service._events import content_status_changed
from services.tns.service._runtime import Runtime, audit
from services.tns.service.rulebook import Engine, RuleBook
from services.tns.store import cases as case_repo
from services.tns.store import contents as content_repo
from services.tns.store import decisions as decision_repo
from services.tns.store import rescans as repo
from services.tns.store.contents import StoredContent

log = structlog.get_logger("furima.tns.rescan")

SHADOW = "shadow"
APPLY = "apply"
PAGE = 200
MAX_CHANGES = 200


class Rescanner:
    """Starts re-scan jobs in the background and reports on them."""

    def __init__(self, rt: Runtime, book: RuleBook) -> None:
        self._rt = rt
        self._book = book
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, mode: str, since: datetime, actor: str) -> repo.Rescan:
        """Record a job and run it in the background; returns it as started."""
        if mode not in (SHADOW, APPLY):
            raise InvalidArgument("unknown re-scan mode", reason="INVALID_MODE")
        engine = self._book.current
        now = self._rt.clock.now()
        if since > now:
            raise InvalidArgument("since must not be in the future", reason="INVALID_SINCE")
        job = repo.Rescan(new_ulid("rsc_"), mode, "running", engine.rules.version, since, 0, 0, (), now, None, "")
        async with self._rt.db.transaction() as tx:
            await repo.add(tx.conn, job)
            await audit(
                tx,
                self._rt,
                actor,
                "rules.rescan_started",
                f"rescan:{job.rescan_id}",
                after={"mode": mode, "since": since.isoformat()},
                ruleset_version=engine.rules.version,
                model_version=engine.model.version,
            )
        task = asyncio.create_task(self._run(job, engine), name=f"tns-rescan-{job.rescan_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def get(self, rescan_id: str) -> repo.Rescan:
        """A job's progress or outcome."""
        async with self._rt.db.read() as conn:
            job = await repo.get(conn, rescan_id)
        if job is None:
            raise NotFound(f"no re-scan {rescan_id!r}", reason="RESCAN_NOT_FOUND")
        return job

    async def wait(self) -> None:
        """Wait for every running job (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel running jobs (they are recorded as failed when they notice)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, job: repo.Rescan, engine: Engine) -> None:
        scanned = changed = 0
        changes: list[dict[str, str]] = []
        after = ("", "")
        try:
            while True:
                async with self._rt.db.read() as conn:
                    page = await content_repo.decided_since(conn, job.since, after, PAGE)
                if not page:
                    break
                after = (page[-1].content.kind.value, page[-1].content.content_id)
                for stored in page:
                    scanned += 1
                    change = await self._rescan_one(job, engine, stored)
                    if change is not None:
                        changed += 1
                        if len(changes) < MAX_CHANGES:
                            changes.append(change)
            status, error = "done", ""
        except asyncio.CancelledError:
            status, error = "failed", "stopped before it finished"
        except Exception as exc:
            log.exception("re-scan failed", rescan_id=job.rescan_id)
            status, error = "failed", str(exc)
        async with self._rt.db.transaction() as tx:
            await repo.finish(
                tx.conn,
                job.rescan_id,
                status=status,
                scanned=scanned,
                changed=changed,
                changes=changes,
                at=self._rt.clock.now(),
                error=error,
            )

    async def _rescan_one(self, job: repo.Rescan, engine: Engine, stored: StoredContent) -> dict[str, str] | None:
        content = stored.content
        async with self._rt.db.read() as conn:
            row = await decision_repo.get(conn, stored.latest_decision_id)
        before = Verdict[row._mapping["verdict"]] if row is not None else Verdict.ALLOW
        scores = engine.model.scores(content.text)
        evaluation = engine.rules.evaluate(content, AuthorContext(), scores, engine.model.thresholds)
        if evaluation.verdict is before:
            return None
        change = {
            "content_kind": content.kind.value,
            "content_id": content.content_id,
            "before_verdict": before.name,
            "after_verdict": evaluation.verdict.name,
        }
        if job.mode == APPLY and stored.status is not ContentStatus.REMOVED:
            await self._apply(job, engine, stored, evaluation.verdict, evaluation.hits, scores)
        return change

    async def _apply(
        self,
        job: repo.Rescan,
        engine: Engine,
        stored: StoredContent,
        verdict: Verdict,
        hits: Sequence[RuleHit],
        scores: dict[str, float],
    ) -> None:
        content = stored.content
        now = self._rt.clock.now()
        reasons = tuple(Reason(h.policy, h.rule_id, h.verdict, tuple(h.evidence)) for h in hits)
        # Without strikes a re-scan never removes: what it would block is hidden for review.
        status = ContentStatus.HIDDEN if verdict is Verdict.BLOCK else status_after(verdict)
        decision_id = new_ulid("dec_")
        case_id = None
        policy = reasons[0].policy if reasons else ""
        async with self._rt.db.transaction() as tx:
            if verdict >= Verdict.REVIEW:
                case = Case(
                    new_ulid("case_"),
                    CaseKind.REVIEW,
                    CaseStatus.OPEN,
                    policy,
                    priority(CaseKind.REVIEW, policy),
                    content.kind,
                    content.content_id,
                    content.author_id,
                    who.SYSTEM,
                    f"re-scan {job.rescan_id}",
                    decision_id,
                    now,
                )
                opened, _ = await case_repo.open_or_bump(tx.conn, case, 0)
                case_id = opened.case_id
            await decision_repo.add_many(
                tx.conn,
                [
                    decision_repo.decision_row(
                        decision_id=decision_id,
                        kind=content.kind,
                        content_id=content.content_id,
                        author_id=content.author_id,
                        verdict=verdict,
                        reasons=reasons,
                        shadow_reasons=(),
                        scores=scores,
                        thresholds=engine.model.thresholds,
                        ruleset_version=engine.rules.version,
                        model_version=engine.model.version,
                        case_id=case_id,
                        decided_at=stored.decided_at,  # keep the author's velocity history intact
                    )
                ],
            )
            await content_repo.set_status(tx.conn, content.kind, content.content_id, status, policy)
            await content_repo.set_latest_decision(tx.conn, content.kind, content.content_id, decision_id)
            if status is not stored.status:
                await self._rt.outbox.append(
                    tx,
                    content.content_id,
                    content_status_changed(
                        content.kind, content.content_id, content.author_id, status, policy, f"rescan:{job.rescan_id}"
                    ),
                )
            await audit(
                tx,
                self._rt,
                who.SYSTEM,
                "content.rescanned",
                who.content_subject(content.kind, content.content_id),
                before={"status": stored.status.value},
                after={"status": status.value, "verdict": verdict.name, "rules": [r.rule_id for r in reasons]},
                note=f"re-scan {job.rescan_id}",
                ruleset_version=engine.rules.version,
                model_version=engine.model.version,
            )
