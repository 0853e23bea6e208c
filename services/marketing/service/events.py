"""The event intake: every user event marketing takes in, tracked by a client
(TrackEvent) or mapped from another service's stream (`service.feeds`), goes through
`EventIntake`.

One batch is validated as a whole against the catalogue first (any problem refuses it
all), then recorded in one write transaction: each new event is logged under its
event id, folded into its user's facts, and handed to every `EventListener` with the
transaction's `Batch`, so whatever the listeners write commits with the event or not at
all. The work is set-based (`service.batch`): a few statements per batch, not per
event. Concurrent calls share transactions (group commit); a shared transaction that
fails is redone call by call, so each call gets its own answer. An
event id seen before is a duplicate when the event is the same (nothing changes) and
``EVENT_ID_REUSED`` when it is not (the whole batch is refused).

Time. An event may claim to have happened at most `MAX_FUTURE_SKEW` (5 minutes) in
the future (clock skew). A tracked event may be at most `MAX_EVENT_AGE` (400 days)
old: the event log promises to keep event ids that long, so a retry of any event it
accepts is recognised. Stream events carry no age limit: they are the owning service's
history (a user who signed up years ago), and their consumer records each source event
id once besides.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy import Connection, String
from sqlalchemy.exc import DBAPIError, IntegrityError

from libs.clock import Clock
from libs.errors import FieldViolation, InvalidArgument
from libs.events import Outbox
from libs.storage import Database, Grouped, Transaction, is_conflict
from services.marketing.domain.events import (
    MAX_EVENT_ID_LENGTH,
    Catalogue,
    UserEvent,
    check_event,
)
from services.marketing.domain.facts import apply
from services.marketing.service.batch import Batch
from services.marketing.service.listeners import EventListener
from services.marketing.store import facts as facts_repo
from services.marketing.store.campaigns import BudgetRace

log = structlog.get_logger("furima.marketing.intake")

T = TypeVar("T")

API_SOURCE = "api"
"""The ``source`` of events sent with TrackEvent / TrackEvents."""
MAX_BATCH = 500
"""The most events one TrackEvents call may carry."""
MAX_EVENT_AGE = timedelta(days=400)
"""How old a tracked event may be: as long as the event log keeps event ids."""
GROUP_EVENTS = 2 * MAX_BATCH
"""The most events of concurrent calls recorded in one transaction (a call is never split)."""
ATTEMPTS = 8
"""Tries of one batch's transaction when a concurrent writer of the same user got there first."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _column_length(name: str) -> int:
    column_type = facts_repo.events.c[name].type
    assert isinstance(column_type, String)
    assert column_type.length is not None
    return column_type.length


# What the event log can store: the contract allows 128-character event ids, the column
# decides (a longer value would fail the insert on PostgreSQL, after validation).
EVENT_ID_LENGTH = min(MAX_EVENT_ID_LENGTH, _column_length("event_id"))
USER_ID_LENGTH = _column_length("user_id")


@dataclass(frozen=True, slots=True)
class _Request:
    """One TrackEvent/TrackEvents call's validated events, waiting for a transaction."""

    events: Sequence[UserEvent]
    source: str
    paths: list[str]


@dataclass(frozen=True, slots=True)
class TrackResult:
    """What became of one event of a batch."""

    event_id: str
    duplicate: bool
    """True when the event id had been recorded already (with the same event): nothing changed."""


class EventIntake:
    """Validates, deduplicates and records user events, keeping every user's facts current."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        catalogue: Catalogue,
        outbox: Outbox,
        listeners: Sequence[EventListener],
        *,
        max_age: timedelta = MAX_EVENT_AGE,
    ) -> None:
        self.clock = clock
        self.catalogue = catalogue
        self._db = db
        self._outbox = outbox
        self._listeners = tuple(listeners)
        self._max_age = max_age
        # Concurrent TrackEvent/TrackEvents calls share transactions (per source).
        self._groups: dict[str, Grouped[_Request, list[TrackResult]]] = {}

    async def track_one(self, event: UserEvent, source: str = API_SOURCE) -> TrackResult:
        """Record one event (TrackEvent): violations name ``event.<field>``."""
        return (await self._track([event], source, ["event"]))[0]

    async def track(self, events: Sequence[UserEvent], source: str = API_SOURCE) -> list[TrackResult]:
        """Record a batch of 1 to `MAX_BATCH` events, all or nothing, in order (TrackEvents):
        violations name ``events[i].<field>``. One result per event, in the same order.
        """
        if not events:
            raise InvalidArgument("a batch needs at least one event", [FieldViolation("events", "is required")])
        if len(events) > MAX_BATCH:
            raise InvalidArgument(
                f"a batch holds at most {MAX_BATCH} events",
                [FieldViolation("events", f"at most {MAX_BATCH} events, got {len(events)}")],
            )
        return await self._track(events, source, [f"events[{i}]" for i in range(len(events))])

    async def record_in(self, tx: Transaction, events: Sequence[UserEvent], source: str) -> list[TrackResult]:
        """Record ``events`` inside the caller's transaction (a stream consumer marking the
        source event processed in the same commit): `record_on` on its connection.
        """
        results = await tx.conn.run_sync(lambda conn: self.record_on(conn, events, source))
        tx.after_commit(self._outbox.notify)
        return results

    def record_on(self, conn: Connection, events: Sequence[UserEvent], source: str) -> list[TrackResult]:
        """Record ``events`` inside the caller's transaction on a synchronous connection.
        The writes sit in a savepoint: when this raises, nothing of ``events`` is written,
        so a caller may catch an `InvalidArgument` and carry on with its transaction. A
        lost race (`StaleFacts`, a database conflict) still means retrying the caller's
        whole transaction (`retry_races`). Call `announce` after the commit.
        """
        paths = [f"events[{i}]" for i in range(len(events))]
        now = self.clock.now()
        self._validate(events, source, paths, now)
        with conn.begin_nested():
            return self._record(conn, events, source, paths, now)

    def check(self, events: Sequence[UserEvent], source: str) -> None:
        """Raise `InvalidArgument` if `record_on` would refuse ``events`` as invalid (the
        event log's duplicates are only known when recording).
        """
        self._validate(events, source, [f"events[{i}]" for i in range(len(events))], self.clock.now())

    def announce(self) -> None:
        """Wake the outbox's readers after a commit that recorded events."""
        self._outbox.notify()

    async def _track(self, events: Sequence[UserEvent], source: str, paths: list[str]) -> list[TrackResult]:
        self._validate(events, source, paths, self.clock.now())
        group = self._groups.get(source)
        if group is None:
            # A group runs synchronously on the loop (write_sync): settle lets the calls it
            # held up join the next one.
            group = self._groups[source] = Grouped(
                partial(self._record_group, source), self._record_alone, max_size=GROUP_EVENTS, settle=8
            )
        results = await group.submit(_Request(events, source, paths), len(events))
        if any(not result.duplicate for result in results):
            self._outbox.notify()  # committed: listeners may have written outbox events
        return results

    async def _record_alone(self, request: _Request) -> list[TrackResult]:
        """One call's events in a transaction of their own."""
        return await retry_races(
            lambda: self._db.write_sync(
                lambda conn: self._record(conn, request.events, request.source, request.paths, self.clock.now())
            )
        )

    async def _record_group(self, source: str, requests: Sequence[_Request]) -> list[list[TrackResult]]:
        """Several calls' events as one batch in one transaction; each call's results."""
        events = [event for request in requests for event in request.events]
        paths = [path for request in requests for path in request.paths]
        results = await retry_races(
            lambda: self._db.write_sync(lambda conn: self._record(conn, events, source, paths, self.clock.now()))
        )
        out, start = [], 0
        for request in requests:
            out.append(results[start : start + len(request.events)])
            start += len(request.events)
        return out

    def _validate(self, events: Sequence[UserEvent], source: str, paths: list[str], now: datetime) -> None:
        """Raise every problem of the batch at once (nothing of it is recorded then)."""
        tracked = source == API_SOURCE
        problems: list[FieldViolation] = []
        for event, path in zip(events, paths, strict=True):
            problems.extend(check_event(event, self.catalogue, now, path=path, tracked=tracked))
            problems.extend(self._storage_problems(event, path, now, tracked=tracked))
        if problems:
            what = "the event is invalid" if len(events) == 1 else "the batch has invalid events; none was recorded"
            raise InvalidArgument(what, problems)

    def _storage_problems(self, event: UserEvent, path: str, now: datetime, *, tracked: bool) -> list[FieldViolation]:
        """What `check_event` leaves to the intake: what the log can store, and the age limit."""
        problems: list[FieldViolation] = []
        if EVENT_ID_LENGTH < len(event.event_id) <= MAX_EVENT_ID_LENGTH:
            problems.append(FieldViolation(f"{path}.event_id", f"at most {EVENT_ID_LENGTH} characters"))
        if len(event.user_id) > USER_ID_LENGTH:
            problems.append(FieldViolation(f"{path}.user_id", f"at most {USER_ID_LENGTH} characters"))
        if tracked and event.occurred_at.tzinfo is not None and event.occurred_at < now - self._max_age:
            problems.append(
                FieldViolation(
                    f"{path}.occurred_at",
                    f"is more than {self._max_age.days} days in the past (event ids are kept that long, "
                    "so a retry of an older event could not be recognised)",
                )
            )
        for name, value in sorted(event.properties.items()):
            if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
                problems.append(FieldViolation(f"{path}.properties[{name}]", "must fit in a signed 64-bit integer"))
        return problems

    def _record(
        self, conn: Connection, events: Sequence[UserEvent], source: str, paths: list[str], now: datetime
    ) -> list[TrackResult]:
        """One attempt of the batch's transaction, set-based (`service.batch`).

        Every row two batches may both want is taken in one global order, so concurrent
        batches queue rather than deadlock (PostgreSQL): first the facts of the batch's
        users by user id (locked reads, and empty rows inserted for new users), then the
        new events by event id, then what the listeners staged (`Batch.flush`), then the
        facts again (already locked). Duplicates are decided after the facts locks, so a
        batch that waited for another sees what that one recorded. Each new event is
        folded into its user's facts and announced to the listeners in the batch's order.
        """
        loaded = facts_repo.load_many(conn, {event.user_id for event in events}, now)
        fresh, results = self._new_events(conn, events, paths)
        if not fresh:
            return results
        facts_repo.record_events(conn, sorted(fresh, key=lambda e: e.event_id), source, now)
        touched = {event.user_id for event in fresh}
        batch = Batch(conn, now, (loaded[user_id][0] for user_id in sorted(touched)), self._outbox)
        for event in fresh:
            facts = batch.facts[event.user_id]
            apply(facts, event, self.catalogue)
            for listener in self._listeners:
                listener.on_event(batch, event, facts)
        batch.flush()
        facts_repo.save_many(conn, [loaded[user_id] for user_id in sorted(touched)], now)
        return results

    @staticmethod
    def _new_events(
        conn: Connection, events: Sequence[UserEvent], paths: list[str]
    ) -> tuple[list[UserEvent], list[TrackResult]]:
        """The batch's new events in order, and every event's result; `InvalidArgument`
        ``EVENT_ID_REUSED`` when an id was recorded (or sent earlier in the batch) with
        another event.
        """
        stored = facts_repo.stored_events(conn, {event.event_id for event in events})
        seen: dict[str, UserEvent] = {}
        fresh: list[UserEvent] = []
        results: list[TrackResult] = []
        reused: list[FieldViolation] = []
        for event, path in zip(events, paths, strict=True):
            earlier = seen.get(event.event_id) or stored.get(event.event_id)
            if earlier is None:
                seen[event.event_id] = event
                fresh.append(event)
                results.append(TrackResult(event.event_id, duplicate=False))
            elif same_event(earlier, event):
                results.append(TrackResult(event.event_id, duplicate=True))
            else:
                reused.append(FieldViolation(f"{path}.event_id", "was recorded already with another event"))
        if reused:
            raise InvalidArgument(
                "an event id was recorded already with another event; nothing of the request was recorded",
                reused,
                reason="EVENT_ID_REUSED",
            )
        return fresh, results


def same_event(a: UserEvent, b: UserEvent) -> bool:
    """Whether two events with one id are the same event: same user, type, instant and
    properties, each property of the same type (``True`` is not ``1``).
    """

    def typed(event: UserEvent) -> dict[str, tuple[type, object]]:
        return {name: (type(value), value) for name, value in event.properties.items()}

    return (
        a.event_id == b.event_id
        and a.user_id == b.user_id
        and a.type == b.type
        and a.occurred_at == b.occurred_at
        and typed(a) == typed(b)
    )


def _is_race(exc: BaseException) -> bool:
    """A transaction that lost a race with another writer and may simply run again: facts
    changed since read, a row inserted meanwhile (a new user's facts, the same new event
    id), or PostgreSQL aborting it over a conflict (serialization failure, deadlock).
    """
    return isinstance(exc, facts_repo.StaleFacts | BudgetRace | IntegrityError) or is_conflict(exc)


async def retry_races(run: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    """``run()`` (one whole transaction), again after a short random pause when it lost a
    race with a concurrent writer; other errors, and the last lost race, propagate.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except (facts_repo.StaleFacts, BudgetRace, DBAPIError) as exc:
            if attempt == attempts or not _is_race(exc):
                raise
            log.debug("intake_retry", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 — jitter, not security
    raise AssertionError("unreachable")
