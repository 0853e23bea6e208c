"""The experiments use case over a real database (SQLite, and PostgreSQL when configured):
idempotent creation, paging, ending; sticky assignment with exposures logged once per user,
the holdout and ended experiments; conversions counted once and only for exposed users;
results that are exactly the domain's over the stored counts, and the SRM flag.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from furima.marketing.v1.events_pb2 import VariantExposed
from sqlalchemy import Connection, Table, delete, func, select, update

from libs.clock import FrozenClock
from libs.errors import AlreadyExists, InvalidArgument, NotFound
from libs.events import Outbox
from libs.storage import Database
from services.marketing.domain.events import UserEvent
from services.marketing.domain.experiment_runs import (
    ConversionOutcome,
    ExperimentDraft,
    ExperimentStatus,
    GlobalHoldout,
)
from services.marketing.domain.experiments import Variant, assign, results
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.stats import VariantCounts, compare
from services.marketing.service.batch import Batch
from services.marketing.service.experiments import ConversionListener, Experiments
from services.marketing.store import experiments as store
from services.marketing.store.tables import outbox as outbox_table

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def draft(experiment_id: str = "exp_button", **changes: object) -> ExperimentDraft:
    """A valid 1:1 draft converting on ``payment_completed`` within 7 days, with changes."""
    fields: dict[str, object] = {
        "experiment_id": experiment_id,
        "variants": (Variant("control", 1), Variant("treatment", 1)),
        "control": "control",
        "description": "checkout button colour",
        "conversion_event_type": "payment_completed",
        "conversion_window": timedelta(days=7),
    }
    fields.update(changes)
    return ExperimentDraft(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FrozenClock:
    """Provide a clock that moves only when told."""
    return FrozenClock(T0)


@pytest.fixture
def outbox(clock: FrozenClock) -> Outbox:
    """Provide marketing's outbox."""
    return Outbox(outbox_table, clock=clock)


@pytest.fixture
def experiments(db: Database, clock: FrozenClock, outbox: Outbox) -> Experiments:
    """Provide the use case without a holdout."""
    return Experiments(db, clock, outbox)


async def rows(db: Database, table: Table, experiment_id: str = "exp_button") -> int:
    """How many rows ``table`` (an experiments table) holds for the experiment."""
    query = select(func.count()).select_from(table).where(table.c.experiment_id == experiment_id)
    async with db.read() as conn:
        return int(await conn.scalar(query) or 0)


async def exposed_events(db: Database, outbox: Outbox) -> list[VariantExposed]:
    """The VariantExposed events in the outbox, oldest first."""
    return [VariantExposed.FromString(e.payload) for e in await outbox.read(db, 0)]


# -- experiments -------------------------------------------------------------------------


async def test_create_then_get(experiments: Experiments) -> None:
    """A created experiment is RUNNING, defaults its salt to its id, and reads back equal."""
    created = await experiments.create(draft())
    assert created.status is ExperimentStatus.RUNNING
    assert created.experiment.salt == "exp_button"
    assert created.created_at == T0
    assert created.ended_at is None
    assert created.definition.conversion_window == timedelta(days=7)
    assert await experiments.get("exp_button") == created


async def test_create_again_is_a_safe_retry(experiments: Experiments, clock: FrozenClock) -> None:
    """The same id and definition returns the first creation; another definition is refused."""
    first = await experiments.create(draft())
    clock.advance(60)
    assert await experiments.create(draft()) == first
    for changed in (
        draft(variants=(Variant("control", 1), Variant("treatment", 2))),
        draft(description="another"),
        draft(salt="s2"),
        draft(conversion_window=timedelta(days=8)),
    ):
        with pytest.raises(AlreadyExists) as error:
            await experiments.create(changed)
        assert error.value.reason == "EXPERIMENT_EXISTS"


async def test_concurrent_creations_agree(experiments: Experiments) -> None:
    """Ten simultaneous creations of one id all return the one stored experiment."""
    created = await asyncio.gather(*(experiments.create(draft()) for _ in range(10)))
    assert len(set(created)) == 1


async def test_create_refuses_a_malformed_definition(experiments: Experiments, db: Database) -> None:
    """Every problem is reported at once and nothing is stored."""
    with pytest.raises(InvalidArgument) as error:
        await experiments.create(draft(control="nope", conversion_event_type="nope", conversion_window=None))
    assert {v.field for v in error.value.violations} == {
        "experiment.control",
        "experiment.conversion_event_type",
        "experiment.conversion_window",
    }
    assert await rows(db, store.experiments) == 0


async def test_list_pages_by_id(experiments: Experiments) -> None:
    """Experiments come back in id order, a page at a time."""
    for experiment_id in ("exp_c", "exp_a", "exp_e", "exp_b", "exp_d"):
        await experiments.create(draft(experiment_id))
    first = await experiments.list_experiments("", 2)
    assert [e.experiment_id for e in first] == ["exp_a", "exp_b"]
    rest = await experiments.list_experiments("exp_b", 10)
    assert [e.experiment_id for e in rest] == ["exp_c", "exp_d", "exp_e"]


async def test_end_is_final_and_idempotent(experiments: Experiments, clock: FrozenClock) -> None:
    """Ending sets ENDED and the time once; ending again changes nothing."""
    await experiments.create(draft())
    clock.advance(3600)
    ended = await experiments.end("exp_button")
    assert ended.status is ExperimentStatus.ENDED
    assert ended.ended_at == T0 + HOUR
    assert ended.version == 2
    clock.advance(3600)
    assert await experiments.end("exp_button") == ended


async def test_unknown_experiments_are_not_found(experiments: Experiments) -> None:
    """Reading, ending, assigning, converting and results name the missing experiment."""
    calls = [
        experiments.get("nope"),
        experiments.end("nope"),
        experiments.assign_variant("nope", "usr_1"),
        experiments.record_conversion("nope", "usr_1", T0),
        experiments.results("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as error:
            await call
        assert error.value.reason == "EXPERIMENT_NOT_FOUND"


# -- assignment --------------------------------------------------------------------------


async def test_assignment_follows_the_hash_and_logs_one_exposure(
    experiments: Experiments, db: Database, outbox: Outbox, clock: FrozenClock
) -> None:
    """The first call assigns by the hash and logs the exposure with one event; repeats
    answer the same without logging again.
    """
    created = await experiments.create(draft())
    user = "usr_01J8Z3Q4R5S6T7V8W9X0Y1Z2A3"
    first = await experiments.assign_variant("exp_button", user)
    assert first.variant == assign(created.experiment, user)
    assert first.is_control == (first.variant == "control")
    assert (first.first_exposure, first.holdout, first.assigned_at) == (True, False, T0)
    clock.advance(60)
    again = await experiments.assign_variant("exp_button", user)
    assert (again.variant, again.first_exposure, again.assigned_at) == (first.variant, False, T0)
    assert await rows(db, store.experiment_exposures) == 1
    events = await exposed_events(db, outbox)
    assert [(e.experiment_id, e.user_id, e.variant) for e in events] == [("exp_button", user, first.variant)]
    assert events[0].exposed_at.ToDatetime(tzinfo=UTC) == T0


async def test_skip_exposure_assigns_without_exposing(
    experiments: Experiments, db: Database, outbox: Outbox, clock: FrozenClock
) -> None:
    """A look-up stores the assignment only; the later exposure is the first one."""
    await experiments.create(draft())
    looked_up = await experiments.assign_variant("exp_button", "usr_1", log_exposure=False)
    assert not looked_up.first_exposure
    assert await rows(db, store.experiment_assignments) == 1
    assert await rows(db, store.experiment_exposures) == 0
    assert await exposed_events(db, outbox) == []
    clock.advance(60)
    shown = await experiments.assign_variant("exp_button", "usr_1")
    assert (shown.variant, shown.first_exposure, shown.assigned_at) == (looked_up.variant, True, T0)


async def test_stored_assignments_survive_a_weight_change(experiments: Experiments, db: Database) -> None:
    """After the weights change, assigned users keep their arm; new users follow the new weights."""
    created = await experiments.create(draft())
    before = {f"usr_{i}": (await experiments.assign_variant("exp_button", f"usr_{i}")).variant for i in range(60)}
    assert set(before.values()) == {"control", "treatment"}
    weights = orjson.dumps([{"name": "control", "weight": 1}, {"name": "treatment", "weight": 9999}]).decode()
    async with db.transaction() as tx:
        await tx.conn.execute(update(store.experiments).values(variants=weights))
    for user, variant in before.items():
        assert (await experiments.assign_variant("exp_button", user)).variant == variant
    changed = (await experiments.get("exp_button")).experiment
    newcomers = [f"usr_new_{i}" for i in range(60)]
    assigned = [(await experiments.assign_variant("exp_button", user)).variant for user in newcomers]
    assert assigned == [assign(changed, user) for user in newcomers]
    assert assigned != [assign(created.experiment, user) for user in newcomers]


async def test_holdout_users_get_the_control_and_nothing_is_stored(
    db: Database, clock: FrozenClock, outbox: Outbox
) -> None:
    """The global holdout answers the control with ``holdout`` set and stores nothing."""
    holdout = GlobalHoldout("global-2026", 500)
    experiments = Experiments(db, clock, outbox, holdout=holdout)
    await experiments.create(draft(variants=(Variant("control", 1), Variant("treatment", 9999))))
    held = await experiments.assign_variant("exp_button", "usr_boundary_465")
    assert (held.variant, held.is_control, held.holdout, held.first_exposure, held.assigned_at) == (
        "control",
        True,
        True,
        False,
        None,
    )
    assert await rows(db, store.experiment_assignments) == 0
    free = await experiments.assign_variant("exp_button", "usr_boundary_33008")
    assert not free.holdout
    assert free.first_exposure
    assert await rows(db, store.experiment_exposures) == 1
    assert len(await exposed_events(db, outbox)) == 1
    outcome = await experiments.record_conversion("exp_button", "usr_boundary_465", T0)
    assert outcome is ConversionOutcome.NOT_EXPOSED


async def test_ended_experiments_answer_without_logging(experiments: Experiments, db: Database, outbox: Outbox) -> None:
    """After the end: the stored variant or the control, no new assignment, no exposure."""
    await experiments.create(draft(variants=(Variant("control", 1), Variant("treatment", 9999))))
    looked_up = await experiments.assign_variant("exp_button", "usr_1", log_exposure=False)
    assert looked_up.variant == "treatment"
    await experiments.end("exp_button")
    kept = await experiments.assign_variant("exp_button", "usr_1")
    assert (kept.variant, kept.first_exposure, kept.assigned_at) == ("treatment", False, T0)
    newcomer = await experiments.assign_variant("exp_button", "usr_2")
    assert (newcomer.variant, newcomer.is_control, newcomer.assigned_at) == ("control", True, None)
    assert await rows(db, store.experiment_assignments) == 1
    assert await rows(db, store.experiment_exposures) == 0
    assert await exposed_events(db, outbox) == []


async def test_concurrent_first_calls_assign_and_expose_once(
    experiments: Experiments, db: Database, outbox: Outbox
) -> None:
    """Fifty simultaneous AssignVariant calls for one user: one assignment, one exposure,
    one event, one caller told it was the first exposure, everyone the same variant.
    """
    await experiments.create(draft())
    answers = await asyncio.gather(*(experiments.assign_variant("exp_button", "usr_1") for _ in range(50)))
    assert len({a.variant for a in answers}) == 1
    assert len({a.assigned_at for a in answers}) == 1
    assert sum(a.first_exposure for a in answers) == 1
    assert await rows(db, store.experiment_assignments) == 1
    assert await rows(db, store.experiment_exposures) == 1
    assert len(await exposed_events(db, outbox)) == 1


async def test_user_ids_are_checked(experiments: Experiments) -> None:
    """A missing or over-long user id is INVALID_ARGUMENT on ``user_id``."""
    await experiments.create(draft())
    for user in ("", "u" * 65):
        with pytest.raises(InvalidArgument) as error:
            await experiments.assign_variant("exp_button", user)
        assert [v.field for v in error.value.violations] == ["user_id"]


# -- conversions -------------------------------------------------------------------------


async def test_conversions_count_once_and_only_after_exposure(
    experiments: Experiments, db: Database, clock: FrozenClock
) -> None:
    """Not exposed, before the exposure, outside the window: not counted; the first
    eligible conversion counts, its replay says so again, later ones do not count.
    """
    await experiments.create(draft(conversion_window=timedelta(days=1)))
    assert await experiments.record_conversion("exp_button", "usr_1", T0) is ConversionOutcome.NOT_EXPOSED
    await experiments.assign_variant("exp_button", "usr_1", log_exposure=False)
    assert await experiments.record_conversion("exp_button", "usr_1", T0) is ConversionOutcome.NOT_EXPOSED
    clock.advance(3600)
    await experiments.assign_variant("exp_button", "usr_1")  # first exposure at T0 + 1h
    before = T0 + timedelta(minutes=30)
    assert await experiments.record_conversion("exp_button", "usr_1", before) is ConversionOutcome.NOT_EXPOSED
    clock.advance(2 * 86400)
    late = T0 + HOUR + timedelta(days=1, seconds=1)
    assert await experiments.record_conversion("exp_button", "usr_1", late) is ConversionOutcome.OUTSIDE_WINDOW
    at = T0 + 2 * HOUR
    assert await experiments.record_conversion("exp_button", "usr_1", at) is ConversionOutcome.COUNTED
    assert await experiments.record_conversion("exp_button", "usr_1", at) is ConversionOutcome.COUNTED
    other = T0 + 3 * HOUR
    assert await experiments.record_conversion("exp_button", "usr_1", other) is ConversionOutcome.ALREADY_CONVERTED
    assert await rows(db, store.experiment_conversions) == 1


async def test_concurrent_conversions_count_once(experiments: Experiments, db: Database, clock: FrozenClock) -> None:
    """Twenty different simultaneous conversions of one user: exactly one counts."""
    await experiments.create(draft())
    await experiments.assign_variant("exp_button", "usr_1")
    clock.advance(3600)
    times = [T0 + timedelta(minutes=i + 1) for i in range(20)]
    outcomes = await asyncio.gather(*(experiments.record_conversion("exp_button", "usr_1", t) for t in times))
    assert Counter(outcomes) == {ConversionOutcome.COUNTED: 1, ConversionOutcome.ALREADY_CONVERTED: 19}
    assert await rows(db, store.experiment_conversions) == 1


async def test_conversions_still_count_after_the_end(experiments: Experiments, clock: FrozenClock) -> None:
    """Conversions trail exposures: an exposed user converting after the end counts."""
    await experiments.create(draft())
    await experiments.assign_variant("exp_button", "usr_1")
    await experiments.end("exp_button")
    clock.advance(3600)
    assert await experiments.record_conversion("exp_button", "usr_1", T0 + HOUR) is ConversionOutcome.COUNTED


async def test_conversion_time_is_checked(experiments: Experiments, clock: FrozenClock) -> None:
    """No time, or a time in the future, is INVALID_ARGUMENT on ``occurred_at``."""
    await experiments.create(draft())
    for when in (None, T0 + timedelta(minutes=10)):
        with pytest.raises(InvalidArgument) as error:
            await experiments.record_conversion("exp_button", "usr_1", when)
        assert [v.field for v in error.value.violations] == ["occurred_at"]


async def test_tracked_events_of_the_conversion_type_convert(
    experiments: Experiments, db: Database, clock: FrozenClock, outbox: Outbox
) -> None:
    """The listener counts an event of the experiment's conversion type for an exposed
    user, in the event's transaction; other types and unexposed users count nothing.
    """
    await experiments.create(draft())
    await experiments.create(draft("exp_rpc_only", conversion_event_type=""))
    await experiments.assign_variant("exp_button", "usr_1")
    await experiments.assign_variant("exp_rpc_only", "usr_1")
    listener = ConversionListener(experiments)
    clock.advance(60)

    def convert(conn: Connection, event: UserEvent) -> None:
        facts = UserFacts(event.user_id)
        batch = Batch(conn, clock.now(), [facts], outbox)
        listener.on_event(batch, event, facts)
        batch.flush()

    for event in (
        UserEvent("evt_1", "usr_1", "app_opened", T0 + timedelta(seconds=30)),
        UserEvent("evt_2", "usr_2", "payment_completed", T0 + timedelta(seconds=30)),
        UserEvent("evt_3", "usr_1", "payment_completed", T0 + timedelta(seconds=30)),
    ):
        await db.write_sync(lambda conn, e=event: convert(conn, e))
    assert await rows(db, store.experiment_conversions) == 1
    assert await rows(db, store.experiment_conversions, "exp_rpc_only") == 0
    report = await experiments.results("exp_button")
    assert sum(v.conversions for v in report.results.variants) == 1


async def test_a_campaign_creates_its_experiment_in_its_own_transaction(experiments: Experiments, db: Database) -> None:
    """``create_on`` stores the campaign id and commits with the caller's transaction."""
    stored = await db.write_sync(
        lambda conn: experiments.create_on(conn, draft("cmp_spring"), T0, campaign_id="spring")
    )
    assert stored.definition.campaign_id == "spring"
    assert (await experiments.get("cmp_spring")).definition.campaign_id == "spring"

    def create_then_fail(conn: Connection) -> None:
        experiments.create_on(conn, draft("cmp_autumn"), T0, campaign_id="autumn")
        raise RuntimeError("the campaign's transaction fails")

    with pytest.raises(RuntimeError):
        await db.write_sync(create_then_fail)
    with pytest.raises(NotFound):
        await experiments.get("cmp_autumn")


# -- results -----------------------------------------------------------------------------

USERS = [f"usr_{i:04d}" for i in range(1000)]
RATES = {"control": 20, "treatment": 26}
"""Conversions per 100 users: user i of a variant converts when i % 100 is below its rate."""


async def seed(
    experiments: Experiments, db: Database, clock: FrozenClock, users: int = len(USERS)
) -> dict[str, VariantCounts]:
    """Expose the first ``users`` of `USERS` and convert some per `RATES`, through the use
    case, in one transaction; returns the counts worked out independently with the domain's
    `assign`.
    """
    created = await experiments.create(draft())
    now = clock.now()

    def run(conn: Connection) -> None:
        for i, user in enumerate(USERS[:users]):
            variant = experiments.assign_on(conn, "exp_button", user, now).variant
            if i % 100 < RATES[variant]:
                experiments.record_conversion_on(conn, "exp_button", user, now + HOUR, now)

    await db.write_sync(run)
    exposed: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    for i, user in enumerate(USERS[:users]):
        variant = assign(created.experiment, user)
        exposed[variant] += 1
        converted[variant] += i % 100 < RATES[variant]
    return {name: VariantCounts(exposed[name], converted[name]) for name in exposed}


async def test_results_are_the_domains_over_the_stored_counts(
    experiments: Experiments, db: Database, clock: FrozenClock
) -> None:
    """1000 users: counts per variant as expected, numbers exactly `results`/`compare`."""
    expected = await seed(experiments, db, clock)
    clock.advance(60)
    report = await experiments.results("exp_button")
    assert report.computed_at == T0 + timedelta(seconds=60)
    got = {v.name: VariantCounts(v.exposures, v.conversions) for v in report.results.variants}
    assert got == expected
    experiment = (await experiments.get("exp_button")).experiment
    assert report.results == results(experiment, expected)
    treatment = report.results.variants[1]
    assert treatment.comparison == compare(expected["control"], expected["treatment"])
    assert report.results.confidence == 0.95
    assert not report.results.sample_ratio.mismatch


async def test_results_at_another_confidence(experiments: Experiments, db: Database, clock: FrozenClock) -> None:
    """A higher confidence widens the intervals; a level outside (0.5, 1) is refused."""
    expected = await seed(experiments, db, clock, 200)
    report = await experiments.results("exp_button", 0.99)
    assert report.results.variants[1].comparison == compare(expected["control"], expected["treatment"], 0.99)
    for bad in (0.5, 1.0, -1.0, float("nan")):
        with pytest.raises(InvalidArgument) as error:
            await experiments.results("exp_button", bad)
        assert [v.field for v in error.value.violations] == ["confidence"]


async def test_lost_exposures_are_flagged_as_sample_ratio_mismatch(
    experiments: Experiments, db: Database, clock: FrozenClock
) -> None:
    """Losing half the treatment's exposures breaks the 50/50 split: SRM flagged (at 1000
    users losing a fifth gives p ≈ 0.007, not below the 0.001 threshold).
    """
    expected = await seed(experiments, db, clock)
    experiment = (await experiments.get("exp_button")).experiment
    treated = [u for u in USERS if assign(experiment, u) == "treatment"]
    dropped = treated[::2]
    async with db.transaction() as tx:
        await tx.conn.execute(
            delete(store.experiment_exposures).where(store.experiment_exposures.c.user_id.in_(dropped))
        )
    report = await experiments.results("exp_button")
    assert report.results.variants[1].exposures == expected["treatment"].exposures - len(dropped)
    assert report.results.sample_ratio.mismatch
    assert report.results.sample_ratio.p_value < 0.001


async def test_results_without_exposures(experiments: Experiments) -> None:
    """A new experiment has zero counts everywhere and nothing to flag."""
    await experiments.create(draft())
    report = await experiments.results("exp_button")
    assert [(v.exposures, v.conversions, v.rate) for v in report.results.variants] == [(0, 0, None), (0, 0, None)]
    assert not report.results.sample_ratio.mismatch
