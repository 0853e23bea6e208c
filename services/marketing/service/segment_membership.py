"""The materialized membership of segments, kept equal to what evaluation says.

Three things change who is in a segment, and each rewrites ``segment_members`` (and
writes a `UserEnteredSegment` / `UserLeftSegment` to the outbox per change) in its own
transaction:

- a definition is created or changed: `recompute` evaluates every user for the segment
  and every segment that refers to it, directly or not;
- an event changed a user's facts: `SegmentMaintainer.on_event` evaluates that user for
  every segment, inside the event's transaction (so it also catches up with time);
- time passed: windows slide and ages grow without any event, so `sweep_batch`, run
  periodically page by page (`Segments.refresh`), re-evaluates every user for the
  time-sensitive segments (those with a window or an age, or referring to one).

Ordering on PostgreSQL (READ COMMITTED): definition changes and sweeps take the
definitions lock exclusively, event transactions take it shared before they read the
definitions. A definition change thus waits for the events in flight and evaluates their
committed facts, while an event that committed its facts later waits for the change and
then sees the new definition; no user is left evaluated against stale facts or a stale
definition. SQLite serializes write transactions, which gives the same order.

The population is the users with facts (users marketing has had an event of); a user it
has never heard of is in no segment.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from furima.marketing.v1 import events_pb2
from sqlalchemy import Connection

from libs.events import Outbox
from libs.pb import timestamp
from services.marketing.domain.events import Catalogue, UserEvent
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.segments import Dependencies, dependencies, evaluate, parse_expression
from services.marketing.domain.segments_ast import Node
from services.marketing.service._memo import TransactionMemo
from services.marketing.service.batch import Batch
from services.marketing.store import segments as store
from services.marketing.store.facts import all_facts


class Definitions:
    """Compiles stored definitions (canonical expressions), each text once per process."""

    def __init__(self, catalogue: Catalogue, *, cached: int = 4096) -> None:
        self.catalogue = catalogue
        self.compile = functools.lru_cache(maxsize=cached)(self._compile)
        self._snapshots: TransactionMemo[SegmentSet] = TransactionMemo()

    def _compile(self, canonical: str) -> Node:
        """The tree of a stored definition (it was valid when saved)."""
        return parse_expression(canonical, self.catalogue)

    def snapshot(self, conn: Connection) -> SegmentSet:
        """Every stored segment's version and compiled definition, read once per
        transaction (a batch of events shares it). A transaction that changes a definition
        does not see the change here: it derives the new set (`SegmentSet.with_definition`).
        """
        return self._snapshots.get(conn, None, lambda: self._read(conn))

    def _read(self, conn: Connection) -> SegmentSet:
        rows = store.definitions(conn)
        return SegmentSet(
            {segment_id: version for segment_id, (version, _) in rows.items()},
            {segment_id: self.compile(definition) for segment_id, (_, definition) in rows.items()},
        )


@dataclass(frozen=True)
class SegmentSet:
    """The segments' definitions at one moment: what evaluation resolves ``in_segment`` with."""

    versions: dict[str, int]
    nodes: dict[str, Node]
    _dependencies: dict[str, Dependencies] = field(default_factory=dict, compare=False, repr=False)

    def resolve(self, segment_id: str) -> Node | None:
        """The definition of ``segment_id`` (a `domain.segments.Resolver`)."""
        return self.nodes.get(segment_id)

    def with_definition(self, segment_id: str, version: int, node: Node) -> SegmentSet:
        """A copy with one segment added or redefined."""
        return SegmentSet({**self.versions, segment_id: version}, {**self.nodes, segment_id: node})

    def direct(self, segment_id: str) -> Dependencies:
        """What the segment's own definition reads."""
        found = self._dependencies.get(segment_id)
        if found is None:
            found = self._dependencies[segment_id] = dependencies(self.nodes[segment_id])
        return found

    def closure(self, node: Node) -> Dependencies:
        """What ``node`` reads, through the segments it refers to as well."""
        own = dependencies(node)
        event_types, attributes, time_sensitive = set(own.event_types), set(own.attributes), own.time_sensitive
        seen: set[str] = set()
        pending = list(own.segments)
        while pending:
            segment_id = pending.pop()
            if segment_id in seen or segment_id not in self.nodes:
                continue
            seen.add(segment_id)
            reads = self.direct(segment_id)
            event_types |= reads.event_types
            attributes |= reads.attributes
            time_sensitive = time_sensitive or reads.time_sensitive
            pending.extend(reads.segments)
        return Dependencies(frozenset(event_types), frozenset(attributes), own.segments, time_sensitive)

    def time_sensitive(self) -> set[str]:
        """The segments whose membership can change with time alone."""
        return {segment_id for segment_id, node in self.nodes.items() if self.closure(node).time_sensitive}

    def dependents(self, segment_id: str) -> set[str]:
        """``segment_id`` and every segment referring to it, directly or not."""
        found = {segment_id}
        changed = True
        while changed:
            changed = False
            for other in self.nodes:
                if other not in found and self.direct(other).segments & found:
                    found.add(other)
                    changed = True
        return found

    def memberships(self, facts: UserFacts, now: datetime, segment_ids: Iterable[str]) -> set[str]:
        """Which of ``segment_ids`` the user is a member of at ``now``."""
        return {s for s in segment_ids if evaluate(self.nodes[s], facts, now, self.resolve)}


@dataclass(frozen=True, slots=True)
class Changes:
    """How many memberships began and ended."""

    entered: int = 0
    left: int = 0

    def __add__(self, other: Changes) -> Changes:
        return Changes(self.entered + other.entered, self.left + other.left)


def entered_event(
    segment_id: str, version: int, user_id: str, cause: str, at: datetime
) -> events_pb2.UserEnteredSegment:
    """The outbox payload of a user becoming a member."""
    return events_pb2.UserEnteredSegment(
        segment_id=segment_id, segment_version=version, user_id=user_id, cause_event_id=cause, occurred_at=timestamp(at)
    )


def left_event(segment_id: str, version: int, user_id: str, cause: str, at: datetime) -> events_pb2.UserLeftSegment:
    """The outbox payload of a user ceasing to be a member."""
    return events_pb2.UserLeftSegment(
        segment_id=segment_id, segment_version=version, user_id=user_id, cause_event_id=cause, occurred_at=timestamp(at)
    )


def change_user(
    conn: Connection,
    outbox: Outbox,
    segments: SegmentSet,
    user_id: str,
    was: set[str],
    now_in: set[str],
    at: datetime,
    cause: str = "",
) -> Changes:
    """Bring one user's membership rows from ``was`` to ``now_in``, with an event per change."""
    entered, left = sorted(now_in - was), sorted(was - now_in)
    for segment_id in entered:
        store.add_members(conn, segment_id, [user_id], at)
        outbox.append_sync(conn, user_id, entered_event(segment_id, segments.versions[segment_id], user_id, cause, at))
    for segment_id in left:
        store.remove_members(conn, segment_id, [user_id])
        outbox.append_sync(conn, user_id, left_event(segment_id, segments.versions[segment_id], user_id, cause, at))
    return Changes(len(entered), len(left))


def recompute(conn: Connection, outbox: Outbox, segments: SegmentSet, targets: set[str], at: datetime) -> Changes:
    """Evaluate every user for ``targets`` at ``at`` and rewrite their membership (the
    caller holds the definitions lock and has stored the definitions in ``segments``).
    """
    matched: dict[str, set[str]] = {segment_id: set() for segment_id in targets}
    for facts in all_facts(conn):
        for segment_id in segments.memberships(facts, at, targets):
            matched[segment_id].add(facts.user_id)
    changes = Changes()
    for segment_id in sorted(targets):
        version = segments.versions[segment_id]
        current = store.members(conn, segment_id)
        entered, left = matched[segment_id] - current, current - matched[segment_id]
        store.add_members(conn, segment_id, entered, at)
        store.remove_members(conn, segment_id, left)
        for user_id in sorted(entered):
            outbox.append_sync(conn, user_id, entered_event(segment_id, version, user_id, "", at))
        for user_id in sorted(left):
            outbox.append_sync(conn, user_id, left_event(segment_id, version, user_id, "", at))
        changes += Changes(len(entered), len(left))
    store.mark_computed(conn, targets, at)
    return changes


@dataclass(frozen=True, slots=True)
class SweepStep:
    """What one page of a sweep did."""

    segments: frozenset[str]
    users: int
    last_user_id: str
    changes: Changes


def sweep_batch(
    conn: Connection,
    definitions: Definitions,
    outbox: Outbox,
    after: str,
    limit: int,
    at: datetime,
    *,
    everything: bool = False,
) -> SweepStep | None:
    """Re-evaluate the users after ``after`` (up to ``limit``) for the time-sensitive
    segments (every segment with ``everything``); None when there is nothing left to do.
    """
    store.lock_definitions(conn)
    segments = definitions.snapshot(conn)
    targets = set(segments.nodes) if everything else segments.time_sensitive()
    if not targets:
        return None
    page = store.facts_page(conn, after, limit)
    if not page:
        return None
    current = store.segments_of_users(conn, [facts.user_id for facts in page])
    changes = Changes()
    for facts in page:
        was = current.get(facts.user_id, set()) & targets
        now_in = segments.memberships(facts, at, targets)
        changes += change_user(conn, outbox, segments, facts.user_id, was, now_in, at)
    return SweepStep(frozenset(targets), len(page), page[-1].user_id, changes)


class _BatchMembership:
    """The maintainer's state over one batch: the definitions, and each batch user's
    segments as stored (read once) and as of their latest event. The net difference is
    written at the flush; every change in between is an outbox event.
    """

    def __init__(self, batch: Batch, definitions: Definitions) -> None:
        store.lock_definitions_shared(batch.conn)
        self.segments = definitions.snapshot(batch.conn)
        self.stored: dict[str, set[str]] = {}
        self.current: dict[str, set[str]] = {}
        if self.segments.nodes:
            found = store.segments_of_users(batch.conn, batch.users)
            for user_id in batch.users:
                self.stored[user_id] = found.get(user_id, set()) & self.segments.nodes.keys()
            self.current = {user_id: set(was) for user_id, was in self.stored.items()}
            batch.before_rows(lambda conn: self.write(conn, batch.now))

    def write(self, conn: Connection, at: datetime) -> None:
        """Bring every batch user's rows from what was stored to what they are now in."""
        entered: list[tuple[str, str]] = []
        left: list[tuple[str, str]] = []
        for user_id, now_in in self.current.items():
            was = self.stored[user_id]
            entered.extend((segment_id, user_id) for segment_id in now_in - was)
            left.extend((segment_id, user_id) for segment_id in was - now_in)
        store.remove_memberships(conn, left)
        store.add_memberships(conn, entered, at)


class SegmentMaintainer:
    """The `EventListener` that keeps the materialized membership current as events
    arrive: the event's user is re-evaluated for every segment at the batch's ``now``,
    each change goes to the outbox with the event as its cause, and the membership rows
    are brought to the users' final state once per batch, all in the events'
    transaction. The intake notifies the outbox after the commit. It is the first
    listener: what it finds is `Batch.memberships` for the others.
    """

    def __init__(self, definitions: Definitions) -> None:
        self._definitions = definitions

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        """Re-evaluate ``facts.user_id`` for every segment after ``event``."""
        state = batch.state(self, lambda: _BatchMembership(batch, self._definitions))
        segments = state.segments
        if not segments.nodes:
            return
        user_id, now = facts.user_id, batch.now
        now_in = segments.memberships(facts, now, segments.nodes)
        batch.memberships[user_id] = now_in
        was = state.current[user_id]
        for segment_id in sorted(now_in - was):
            batch.emit(user_id, entered_event(segment_id, segments.versions[segment_id], user_id, event.event_id, now))
        for segment_id in sorted(was - now_in):
            batch.emit(user_id, left_event(segment_id, segments.versions[segment_id], user_id, event.event_id, now))
        state.current[user_id] = now_in


class RealTimeMembership:
    """Membership evaluated now from facts the caller holds (a campaign trigger inside an
    event's transaction): the same answer as `Segments.check_membership`.
    """

    def __init__(self, definitions: Definitions) -> None:
        self._definitions = definitions

    def is_member(self, conn: Connection, segment_id: str, facts: UserFacts, now: datetime) -> bool:
        """Whether ``facts.user_id`` is in ``segment_id`` at ``now`` (False for no such segment)."""
        segments = self._definitions.snapshot(conn)
        node = segments.resolve(segment_id)
        return node is not None and evaluate(node, facts, now, segments.resolve)

    def memberships(self, conn: Connection, facts: UserFacts, now: datetime) -> set[str]:
        """Every segment ``facts.user_id`` is in at ``now`` (one read of the definitions)."""
        segments = self._definitions.snapshot(conn)
        return segments.memberships(facts, now, segments.nodes)


def segment_exists(conn: Connection, segment_id: str) -> bool:
    """Whether a segment ``segment_id`` is stored (what a campaign may target)."""
    return store.get(conn, segment_id) is not None
