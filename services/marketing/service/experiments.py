"""ExperimentService's use cases: create, read and end experiments; assign variants
(sticky, exposure logged once per user, the global holdout first); count conversions;
compute results over the stored counts.

Each write is one transaction on a synchronous connection (`Database.write_sync`). The
``*_on`` methods run inside a transaction the caller already holds, so a campaign firing or
a tracked event can assign or convert in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from furima.marketing.v1.events_pb2 import VariantExposed
from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound
from libs.events import Outbox
from libs.pb import timestamp
from libs.storage import Database
from services.marketing.domain.events import DEFAULT_CATALOGUE, Catalogue, UserEvent
from services.marketing.domain.experiment_runs import (
    Assignment,
    ConversionOutcome,
    ExperimentDefinition,
    ExperimentDraft,
    GlobalHoldout,
    Participation,
    StoredExperiment,
    check_conversion_time,
    check_participant,
    conversion_outcome,
    define,
    settled_assignment,
)
from services.marketing.domain.experiments import ExperimentResults, results, sticky_variant, validate_confidence
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.stats import DEFAULT_CONFIDENCE
from services.marketing.service._memo import TransactionMemo
from services.marketing.service.batch import Batch
from services.marketing.store import experiments as store

_Participations = tuple[StoredExperiment, dict[str, Participation]] | None
"""An experiment and the batch users' rows in it (None: no such experiment)."""


@dataclass(frozen=True)
class ResultsReport:
    """An experiment's results and when they were computed."""

    results: ExperimentResults
    computed_at: datetime


class Experiments:
    """Experiments over the marketing database; VariantExposed events go to its outbox."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        outbox: Outbox,
        *,
        holdout: GlobalHoldout | None = None,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._holdout = holdout or GlobalHoldout()
        self._catalogue = catalogue

    # -- experiments -------------------------------------------------------------------

    async def create(self, draft: ExperimentDraft, *, campaign_id: str = "") -> StoredExperiment:
        """Create a RUNNING experiment under the caller's id. The same id and definition
        again returns the stored experiment (a safe retry); another definition is
        ALREADY_EXISTS. INVALID_ARGUMENT lists every malformed field.
        """
        definition = define(draft, self._catalogue, campaign_id=campaign_id)
        return await self._db.write_sync(lambda conn: self._create_on(conn, definition, self._clock.now()))

    def create_on(
        self, conn: Connection, draft: ExperimentDraft, now: datetime, *, campaign_id: str = ""
    ) -> StoredExperiment:
        """`create` inside the caller's transaction (a campaign creating its experiment)."""
        return self._create_on(conn, define(draft, self._catalogue, campaign_id=campaign_id), now)

    def _create_on(self, conn: Connection, definition: ExperimentDefinition, now: datetime) -> StoredExperiment:
        experiment_id = definition.experiment.experiment_id
        store.create(conn, definition, now)
        stored = store.get(conn, experiment_id)
        assert stored is not None  # just inserted, or inserted by a committed transaction
        if stored.definition != definition:
            raise AlreadyExists(
                f"experiment {experiment_id!r} exists with another definition",
                reason="EXPERIMENT_EXISTS",
                metadata={"experiment_id": experiment_id},
            )
        return stored

    async def get(self, experiment_id: str) -> StoredExperiment:
        """One experiment; NOT_FOUND when there is none."""
        _require_id(experiment_id)
        async with self._db.read() as conn:
            stored = await conn.run_sync(lambda c: store.get(c, experiment_id))
        return _found(stored, experiment_id)

    async def list_experiments(self, after: str, limit: int) -> list[StoredExperiment]:
        """Up to ``limit`` experiments with ids after ``after``, ordered by id."""
        async with self._db.read() as conn:
            return await conn.run_sync(lambda c: store.page(c, after, limit))

    async def end(self, experiment_id: str) -> StoredExperiment:
        """RUNNING → ENDED for good (no new assignments or exposures; results stay
        readable). Ending an ended experiment returns it unchanged.
        """
        _require_id(experiment_id)

        def run(conn: Connection) -> StoredExperiment | None:
            store.end(conn, experiment_id, self._clock.now())
            return store.get(conn, experiment_id)

        return _found(await self._db.write_sync(run), experiment_id)

    # -- assignment --------------------------------------------------------------------

    async def assign_variant(self, experiment_id: str, user_id: str, *, log_exposure: bool = True) -> Assignment:
        """The user's variant: the stored assignment, else the hash's, stored (sticky).
        ``log_exposure`` logs the user's exposure — counted once per user, with a
        VariantExposed event the first time. The global holdout gets the control and
        nothing is stored; an ENDED experiment answers the stored variant or the control.
        """
        check_participant(experiment_id, user_id)
        # Most calls are for users already assigned and exposed: one read answers them.
        row = await self._db.fetch_one(store.PARTICIPATION, {"experiment_id": experiment_id, "user_id": user_id})
        if row is None:
            raise _not_found(experiment_id)
        run, seen = store.participation_of(row)
        settled = self._settled(run, seen, user_id, log_exposure)
        if settled is not None:
            return settled
        assignment = await self._db.write_sync(
            lambda conn: self.assign_on(conn, experiment_id, user_id, self._clock.now(), log_exposure=log_exposure)
        )
        if assignment.first_exposure:
            self._outbox.notify()
        return assignment

    def assign_on(
        self,
        conn: Connection,
        experiment_id: str,
        user_id: str,
        now: datetime,
        *,
        log_exposure: bool = True,
        batch: Batch | None = None,
    ) -> Assignment:
        """`assign_variant` inside the caller's transaction. When the answer says
        ``first_exposure``, a VariantExposed event was appended: call `Outbox.notify`
        after the commit. Within a ``batch`` the batch users' rows are read once per
        experiment and the event is staged with the batch's.
        """
        check_participant(experiment_id, user_id)
        found = self._participation(conn, experiment_id, user_id, batch)
        if found is None:
            raise _not_found(experiment_id)
        run, seen = found
        settled = self._settled(run, seen, user_id, log_exposure)
        if settled is not None:
            return settled
        variant, assigned_at = seen.variant, seen.assigned_at
        if variant is None or assigned_at is None:
            # Two first calls at once: both hash, the first insert wins, both answer it.
            variant, assigned_at = store.assign(
                conn, experiment_id, user_id, sticky_variant(run.experiment, user_id, None), now
            )
            seen = replace(seen, variant=variant, assigned_at=assigned_at)
        first = False
        known: Participation | None = seen
        if log_exposure and seen.first_exposed_at is None:
            first = store.expose(conn, experiment_id, user_id, variant, now)
            if first:
                exposed = VariantExposed(
                    experiment_id=experiment_id, user_id=user_id, variant=variant, exposed_at=timestamp(now)
                )
                if batch is None:
                    self._outbox.append_sync(conn, user_id, exposed)
                else:
                    batch.emit(user_id, exposed)
            # Exposed now, or by another call a moment ago (then read the rows again).
            known = replace(seen, first_exposed_at=now) if first else None
        self._remember(batch, experiment_id, user_id, known)
        return Assignment(variant, variant == run.experiment.control, False, first, assigned_at)

    def _participation(
        self, conn: Connection, experiment_id: str, user_id: str, batch: Batch | None
    ) -> tuple[StoredExperiment, Participation] | None:
        """The experiment and the user's rows: from the batch's reads (every batch user's
        rows in one go per experiment) or, outside a batch, one read.
        """
        if batch is None or user_id not in batch.facts or len(batch.facts) == 1:
            return store.participation(conn, experiment_id, user_id)  # one read does
        known = batch.state(self, dict[str, _Participations])
        found = known.get(experiment_id)
        if found is None:
            found = known[experiment_id] = store.participations(conn, experiment_id, batch.users)
        if found is None:
            return None
        run, seen = found
        if user_id not in seen:  # forgotten after a lost race
            return store.participation(conn, experiment_id, user_id)
        return run, seen[user_id]

    def _remember(self, batch: Batch | None, experiment_id: str, user_id: str, seen: Participation | None) -> None:
        """Keep the batch's copy of a user's rows in step with what was just written
        (None: unknown now, read the rows again next time).
        """
        if batch is None:
            return
        found = batch.state(self, dict[str, _Participations]).get(experiment_id)
        if found is None:
            return
        if seen is None:
            found[1].pop(user_id, None)
        else:
            found[1][user_id] = seen

    def _settled(
        self, run: StoredExperiment, seen: Participation, user_id: str, log_exposure: bool
    ) -> Assignment | None:
        return settled_assignment(run, seen, held_out=self._holdout.contains(user_id), log_exposure=log_exposure)

    # -- conversions -------------------------------------------------------------------

    async def record_conversion(
        self, experiment_id: str, user_id: str, occurred_at: datetime | None
    ) -> ConversionOutcome:
        """Count the user's conversion if they were exposed at or before ``occurred_at``
        and it falls within the conversion window of that exposure; once per user. Works
        after the experiment ended (conversions trail exposures). The outcome says
        whether it counted and why not.
        """
        check_participant(experiment_id, user_id)
        check_conversion_time(occurred_at, self._clock.now())
        assert occurred_at is not None
        return await self._db.write_sync(
            lambda conn: self.record_conversion_on(conn, experiment_id, user_id, occurred_at, self._clock.now())
        )

    def record_conversion_on(
        self,
        conn: Connection,
        experiment_id: str,
        user_id: str,
        occurred_at: datetime,
        now: datetime,
        batch: Batch | None = None,
    ) -> ConversionOutcome:
        """`record_conversion` inside the caller's transaction (within ``batch``: see `assign_on`)."""
        found = self._participation(conn, experiment_id, user_id, batch)
        if found is None:
            raise _not_found(experiment_id)
        run, seen = found
        outcome = self._convert(conn, run, seen, user_id, occurred_at, now)
        if outcome is ConversionOutcome.COUNTED and seen.converted_at is None:
            self._remember(batch, experiment_id, user_id, None)
        return outcome

    def _convert(
        self,
        conn: Connection,
        run: StoredExperiment,
        seen: Participation,
        user_id: str,
        occurred_at: datetime,
        now: datetime,
    ) -> ConversionOutcome:
        outcome = conversion_outcome(run, seen, occurred_at)
        if outcome is not ConversionOutcome.COUNTED or seen.converted_at is not None:
            return outcome
        variant = seen.variant or run.experiment.control  # an exposed user always has one
        if store.convert(conn, run.experiment_id, user_id, variant, occurred_at, now):
            return outcome
        # Counted by a concurrent call a moment ago: decide again against it.
        found = store.participation(conn, run.experiment_id, user_id)
        assert found is not None
        return conversion_outcome(run, found[1], occurred_at)

    # -- results -----------------------------------------------------------------------

    async def results(self, experiment_id: str, confidence: float = 0.0) -> ResultsReport:
        """Results over the stored counts: exposed users per variant and how many of them
        converted; ``confidence`` 0 means the default 0.95.
        """
        _require_id(experiment_id)
        level = DEFAULT_CONFIDENCE if confidence == 0 else confidence
        validate_confidence(level)
        async with self._db.read() as conn:
            stored, counted = await conn.run_sync(
                lambda c: (store.get(c, experiment_id), store.counts(c, experiment_id))
            )
        run = _found(stored, experiment_id)
        return ResultsReport(results(run.experiment, counted, confidence=level), self._clock.now())


class ConversionListener:
    """Counts tracked events of an experiment's ``conversion_event_type`` as conversions
    (an `EventListener` for the event intake), in the event's own transaction.
    """

    def __init__(self, experiments: Experiments) -> None:
        self._experiments = experiments
        self._converting: TransactionMemo[list[StoredExperiment]] = TransactionMemo()

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        """Record the event as a conversion in every experiment converting on its type."""
        if not event.type:  # "" marks experiments converting only through the RPC
            return
        conn = batch.conn
        runs = self._converting.get(conn, event.type, lambda: store.converting_on(conn, event.type))
        for run in runs:
            self._experiments.record_conversion_on(
                conn, run.experiment_id, event.user_id, event.occurred_at, batch.now, batch
            )


def _require_id(experiment_id: str) -> None:
    if not experiment_id:
        raise InvalidArgument("experiment_id is required", [FieldViolation("experiment_id", "is required")])


def _not_found(experiment_id: str) -> NotFound:
    return NotFound(
        f"no experiment {experiment_id!r}", reason="EXPERIMENT_NOT_FOUND", metadata={"experiment_id": experiment_id}
    )


def _found(stored: StoredExperiment | None, experiment_id: str) -> StoredExperiment:
    if stored is None:
        raise _not_found(experiment_id)
    return stored
