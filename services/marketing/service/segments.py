"""Segments: create and change definitions (validated against the catalogue and the
other stored segments), preview them, and answer membership in real time and in batch.

Real time (`Segments.check_membership`) evaluates the user's current facts now; batch
(`list_members`, `count_members`) reads the materialized membership that
`segment_membership` keeps: recomputed for every user when a definition is written,
updated for one user by `SegmentMaintainer` on each of their events, and re-evaluated by
the periodic `refresh` sweep for segments that change with time alone. Between a sweep
and the next, a member of ``signup_age < 14d`` whose 14 days ran out with no event
still appears in batch; both answers agree whenever nothing but events and sweeps moved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import Aborted, AlreadyExists, FieldViolation, InvalidArgument, NotFound
from libs.events import Outbox
from libs.storage import Database, retry_conflicts
from services.marketing.domain.events import Catalogue
from services.marketing.domain.segment_records import (
    DEFAULT_PREVIEW_SAMPLE,
    MAX_PREVIEW_SAMPLE,
    Definition,
    MemberCount,
    MemberPage,
    Membership,
    Preview,
    RefreshReport,
    Segment,
    SegmentDraft,
    SegmentPage,
    compile_draft,
)
from services.marketing.domain.segments import check_references, evaluate, render
from services.marketing.domain.segments_conditions import ConditionGroup
from services.marketing.service.segment_membership import (
    Changes,
    Definitions,
    RealTimeMembership,
    SegmentMaintainer,
    SegmentSet,
    SweepStep,
    recompute,
    segment_exists,
    sweep_batch,
)
from services.marketing.store import facts as facts_store
from services.marketing.store import segments as store
from services.marketing.store.facts import all_facts
from services.marketing.store.segment_forms import dump_conditions, load_conditions

__all__ = [
    "MemberCount",
    "MemberPage",
    "Membership",
    "Preview",
    "RealTimeMembership",
    "RefreshReport",
    "Segment",
    "SegmentDraft",
    "SegmentMaintainer",
    "SegmentPage",
    "Segments",
    "segment_exists",
]

T = TypeVar("T")

PREVIEW_POPULATION = 10_000
"""Previews evaluate every user up to this many, else a uniform random sample this big."""


class Segments:
    """The segment service: definitions, previews, membership."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalogue: Catalogue,
        outbox: Outbox,
        *,
        preview_population: int = PREVIEW_POPULATION,
    ) -> None:
        self._db = db
        self._clock = clock
        self._catalogue = catalogue
        self._outbox = outbox
        self._definitions = Definitions(catalogue)
        self._preview_population = preview_population
        self.maintainer = SegmentMaintainer(self._definitions)
        """The `EventListener` the event intake must call (see `segment_membership`)."""
        self.membership = RealTimeMembership(self._definitions)
        """Real-time membership inside another transaction (campaign triggers)."""

    async def create(self, draft: SegmentDraft, actor: str) -> Segment:
        """Create a segment under the caller's id and compute its members.

        The same id again with the same definition, name and description returns the
        segment as it is (a safe retry); anything else under a taken id is ALREADY_EXISTS.
        INVALID_ARGUMENT with a violation per problem, references to unknown segments
        included.
        """
        node = compile_draft(draft, self._catalogue, id_required=True)
        canonical = render(node)
        form, source = _form(draft.definition)

        def write(conn: Connection) -> Segment:
            store.lock_definitions(conn)
            existing = store.get(conn, draft.segment_id)
            segments = self._definitions.snapshot(conn)
            if existing is not None:
                if (existing.definition, existing.name, existing.description) != (
                    canonical,
                    draft.display_name,
                    draft.description,
                ):
                    raise AlreadyExists(
                        f"segment {draft.segment_id!r} exists with another definition; UpdateSegment changes it",
                        reason="SEGMENT_EXISTS",
                        metadata={"segment_id": draft.segment_id, "version": str(existing.version)},
                    )
                return self._describe(existing, segments)
            check_references(node, segments.resolve, segment_id=draft.segment_id)
            now = self._clock.now()
            stored = store.StoredSegment(
                draft.segment_id,
                draft.display_name,
                draft.description,
                canonical,
                form,
                source,
                1,
                now,
                now,
                actor,
                actor,
                now,
            )
            store.insert_segment(conn, stored)
            segments = segments.with_definition(stored.segment_id, 1, node)
            recompute(conn, self._outbox, segments, {stored.segment_id}, now)
            return self._describe(stored, segments)

        return await self._write(write)

    async def update(self, draft: SegmentDraft, expected_version: int, actor: str) -> Segment:
        """Replace a segment's name, description and definition if it is at
        ``expected_version`` (ABORTED, reason VERSION_MISMATCH, otherwise); a changed
        definition recomputes its members and those of every segment referring to it.
        """
        problems = [] if expected_version > 0 else [FieldViolation("expected_version", "is required (>= 1)")]
        node = compile_draft(draft, self._catalogue, id_required=True, problems=problems)
        canonical = render(node)
        form, source = _form(draft.definition)

        def write(conn: Connection) -> Segment:
            store.lock_definitions(conn)
            existing = _existing(conn, draft.segment_id)
            if existing.version != expected_version:
                raise Aborted(
                    f"segment {draft.segment_id!r} is at version {existing.version}, not {expected_version}",
                    reason="VERSION_MISMATCH",
                    metadata={"segment_id": draft.segment_id, "current_version": str(existing.version)},
                )
            segments = self._definitions.snapshot(conn)
            check_references(node, segments.resolve, segment_id=draft.segment_id)
            now = self._clock.now()
            stored = replace(
                existing,
                name=draft.display_name,
                description=draft.description,
                definition=canonical,
                form=form,
                source=source,
                version=existing.version + 1,
                updated_at=now,
                updated_by=actor,
            )
            if not store.update_segment(conn, stored, expected_version):
                raise Aborted(f"segment {draft.segment_id!r} changed meanwhile", reason="VERSION_MISMATCH")
            segments = segments.with_definition(stored.segment_id, stored.version, node)
            if canonical != existing.definition:
                recompute(conn, self._outbox, segments, segments.dependents(stored.segment_id), now)
            return self._describe(stored, segments)

        return await self._write(write)

    async def get(self, segment_id: str) -> Segment:
        """The segment ``segment_id`` (NOT_FOUND, reason SEGMENT_NOT_FOUND)."""
        _require_id(segment_id)

        def read(conn: Connection) -> Segment:
            return self._describe(_existing(conn, segment_id), self._definitions.snapshot(conn))

        return await self._read(read)

    async def list_segments(self, limit: int, after: str = "") -> SegmentPage:
        """Up to ``limit`` segments after the id ``after``, in id order."""

        def read(conn: Connection) -> SegmentPage:
            rows = store.page(conn, after, limit + 1)
            segments = self._definitions.snapshot(conn)
            shown = tuple(self._describe(row, segments) for row in rows[:limit])
            return SegmentPage(shown, shown[-1].segment_id if len(rows) > limit else None)

        return await self._read(read)

    async def preview(self, draft: SegmentDraft, sample_size: int = 0) -> Preview:
        """Validate an unsaved definition and say whom it selects, saving nothing.

        Every user is evaluated when there are at most ``preview_population``; beyond,
        a uniform random sample of that many is, and the size is scaled up from it.
        ``sample_user_ids`` are the first ``sample_size`` (default 20, at most 100)
        matches: in user id order when exact, in the sample's random order otherwise.
        """
        problems = []
        if not 0 <= sample_size <= MAX_PREVIEW_SAMPLE:
            problems.append(FieldViolation("sample_size", f"must be 0 to {MAX_PREVIEW_SAMPLE}"))
        node = compile_draft(draft, self._catalogue, id_required=False, problems=problems)
        wanted = sample_size or DEFAULT_PREVIEW_SAMPLE

        def read(conn: Connection) -> Preview:
            segments = self._definitions.snapshot(conn)
            check_references(node, segments.resolve, segment_id=draft.segment_id or None)
            now = self._clock.now()
            total = store.user_count(conn)
            exact = total <= self._preview_population
            population = all_facts(conn) if exact else iter(store.sample_facts(conn, self._preview_population))
            evaluated = matched = 0
            sample: list[str] = []
            for facts in population:
                evaluated += 1
                if evaluate(node, facts, now, segments.resolve):
                    matched += 1
                    if len(sample) < wanted:
                        sample.append(facts.user_id)
            estimate = matched if exact or not evaluated else round(matched * total / evaluated)
            return Preview(render(node), evaluated, matched, estimate, exact, tuple(sample), now)

        return await self._read(read)

    async def check_membership(self, segment_id: str, user_id: str) -> Membership:
        """Whether the user is in the segment now, evaluated on their current facts (a
        user without facts, never seen by marketing, is in no segment).
        """
        problems = []
        if not segment_id:
            problems.append(FieldViolation("segment_id", "is required"))
        if not user_id:
            problems.append(FieldViolation("user_id", "is required"))
        if problems:
            raise InvalidArgument("segment_id and user_id are required", problems)

        def read(conn: Connection) -> Membership:
            stored = _existing(conn, segment_id)
            segments = self._definitions.snapshot(conn)
            facts, version = facts_store.load(conn, user_id)
            now = self._clock.now()
            member = version > 0 and evaluate(segments.nodes[segment_id], facts, now, segments.resolve)
            return Membership(member, stored.version, now)

        return await self._read(read)

    async def list_members(self, segment_id: str, limit: int, after: str = "") -> MemberPage:
        """Up to ``limit`` members after the user id ``after``, from the materialized membership."""
        _require_id(segment_id)

        def read(conn: Connection) -> MemberPage:
            stored = _existing(conn, segment_id)
            user_ids = store.member_page(conn, segment_id, after, limit + 1)
            shown = tuple(user_ids[:limit])
            more = shown[-1] if len(user_ids) > limit else None
            return MemberPage(shown, more, stored.version, stored.members_computed_at)

        return await self._read(read)

    async def count_members(self, segment_id: str) -> MemberCount:
        """How many members the materialized membership has."""
        _require_id(segment_id)

        def read(conn: Connection) -> MemberCount:
            stored = _existing(conn, segment_id)
            return MemberCount(store.member_count(conn, segment_id), stored.version, stored.members_computed_at)

        return await self._read(read)

    async def refresh(self, *, everything: bool = False, batch: int = 500) -> RefreshReport:
        """Re-evaluate every user for the time-sensitive segments (all segments with
        ``everything``), ``batch`` users per transaction, and record the sweep's start as
        their ``computed_at``. Run it periodically: it is what moves members out of
        ``signup_age < 14d`` when their 14 days are up and no event of theirs came.
        """
        started = self._clock.now()
        after, users, changes = "", 0, Changes()
        swept: set[str] = set()
        while True:

            def step(conn: Connection, after: str = after) -> SweepStep | None:
                at = self._clock.now()
                return sweep_batch(conn, self._definitions, self._outbox, after, batch, at, everything=everything)

            done = await self._write(step)
            if done is None:
                break
            swept |= done.segments
            users += done.users
            changes += done.changes
            after = done.last_user_id
            if done.users < batch:
                break
        if swept:
            await self._write(lambda conn: store.mark_computed(conn, swept, started))
        return RefreshReport(tuple(sorted(swept)), users, changes.entered, changes.left, started)

    def _describe(self, stored: store.StoredSegment, segments: SegmentSet) -> Segment:
        node = self._definitions.compile(stored.definition)
        reads = segments.closure(node)
        definition: Definition = stored.source if stored.form == store.EXPRESSION else load_conditions(stored.source)
        return Segment(
            stored.segment_id,
            stored.name,
            stored.description,
            definition,
            stored.definition,
            tuple(sorted(reads.segments)),
            tuple(sorted(reads.event_types)),
            reads.time_sensitive,
            stored.version,
            stored.created_at,
            stored.updated_at,
        )

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one write transaction (again if PostgreSQL aborted it over a
        conflict); the outbox streams are woken once it committed.
        """
        run: Callable[[], Awaitable[T]] = lambda: self._db.write_sync(fn)  # noqa: E731 — a thunk for the retry
        result = await retry_conflicts(run)
        self._outbox.notify()
        return result

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        async with self._db.read() as conn:
            return await conn.run_sync(fn)


def _form(definition: Definition | None) -> tuple[str, str]:
    """How the definition is kept as the caller wrote it."""
    if isinstance(definition, ConditionGroup):
        return store.CONDITIONS, dump_conditions(definition)
    return store.EXPRESSION, definition or ""


def _require_id(segment_id: str) -> None:
    if not segment_id:
        raise InvalidArgument("segment_id is required", [FieldViolation("segment_id", "is required")])


def _existing(conn: Connection, segment_id: str) -> store.StoredSegment:
    stored = store.get(conn, segment_id)
    if stored is None:
        raise NotFound(f"no segment {segment_id!r}", reason="SEGMENT_NOT_FOUND", metadata={"segment_id": segment_id})
    return stored
