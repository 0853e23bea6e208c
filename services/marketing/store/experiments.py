"""Experiments, and what each user went through in them: the sticky assignment, the first
exposure, the counted conversion — one row each per (experiment, user).

Every "once per user" rule is a primary key and an insert-if-absent (ON CONFLICT DO
NOTHING), so concurrent calls for one user agree without locks: on PostgreSQL the second
insert waits for the first to commit and then does nothing; on SQLite writers are
serialized. Statements are built once with bound parameters (see
services/payments/store/accounts.py). Functions run on a synchronous connection
(`Database.write_sync`, or ``run_sync`` on a read connection).

No foreign keys to ``experiments``: PostgreSQL would take a key-share lock on the
experiment's row for every assignment and exposure, one hot row for all of its traffic.
Rows are only written after the experiment was read, and experiments are never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from libs.storage import UtcDateTime
from services.marketing.domain.experiment_runs import (
    ExperimentDefinition,
    ExperimentStatus,
    Participation,
    StoredExperiment,
)
from services.marketing.domain.experiments import Experiment, Variant
from services.marketing.domain.stats import VariantCounts
from services.marketing.store.tables import metadata

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("salt", String(64), nullable=False),
    # [{"name": ..., "weight": ...}, ...] in bucket order.
    Column("variants", Text, nullable=False),
    Column("control", String(64), nullable=False),
    # "" when conversions come only through RecordConversion.
    Column("conversion_event_type", String(64), nullable=False),
    Column("conversion_window_us", BigInteger, nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("version", BigInteger, nullable=False),
    # Tracked events find the experiments they convert for.
    Index("ix_experiments_conversion_event_type", "conversion_event_type"),
)

# The first assignment stored wins, whatever the weights say later (sticky).
experiment_assignments = Table(
    "experiment_assignments",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "user_id"),
)

# One row per exposed user: the first logged exposure (later ones change nothing).
experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("first_exposed_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "user_id"),
    # Results count exposed users per variant from the index alone.
    Index("ix_experiment_exposures_variant", "experiment_id", "variant"),
)

# One row per converted exposed user: the conversion that counted.
experiment_conversions = Table(
    "experiment_conversions",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("converted_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "user_id"),
)

_e = experiments.c
_a = experiment_assignments.c
_x = experiment_exposures.c
_c = experiment_conversions.c


def _insert_if_absent(table: Table, *keys: str) -> dict[str, Any]:
    """Per dialect: insert a row unless its key exists; a returned row says it did."""
    key = [table.c[name] for name in keys]
    return {
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(index_elements=key).returning(key[0]),
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(index_elements=key).returning(key[0]),
    }


_CREATE = _insert_if_absent(experiments, "experiment_id")
_ASSIGN = _insert_if_absent(experiment_assignments, "experiment_id", "user_id")
_EXPOSE = _insert_if_absent(experiment_exposures, "experiment_id", "user_id")
_CONVERT = _insert_if_absent(experiment_conversions, "experiment_id", "user_id")

_EXPERIMENT = select(experiments).where(_e.experiment_id == bindparam("experiment_id"))
_PAGE = (
    select(experiments)
    .where(_e.experiment_id > bindparam("after"))
    .order_by(_e.experiment_id)
    .limit(bindparam("limit", type_=BigInteger))
)
_CONVERTING = select(experiments).where(_e.conversion_event_type == bindparam("event_type"))
_END = (
    update(experiments)
    .where(_e.experiment_id == bindparam("w_experiment_id"), _e.status == ExperimentStatus.RUNNING.value)
    .values(status=ExperimentStatus.ENDED.value, ended_at=bindparam("v_ended_at"), version=_e.version + 1)
)
_ASSIGNMENT = select(_a.variant, _a.assigned_at).where(
    _a.experiment_id == bindparam("experiment_id"), _a.user_id == bindparam("user_id")
)

PARTICIPATION = (
    select(
        experiments,
        _a.variant.label("assigned_variant"),
        _a.assigned_at,
        _x.first_exposed_at,
        _c.converted_at,
    )
    .select_from(
        experiments.outerjoin(
            experiment_assignments,
            and_(_a.experiment_id == _e.experiment_id, _a.user_id == bindparam("user_id")),
        )
        .outerjoin(
            experiment_exposures,
            and_(_x.experiment_id == _e.experiment_id, _x.user_id == bindparam("user_id")),
        )
        .outerjoin(
            experiment_conversions,
            and_(_c.experiment_id == _e.experiment_id, _c.user_id == bindparam("user_id")),
        )
    )
    .where(_e.experiment_id == bindparam("experiment_id"))
)
"""One experiment and one user's rows in it, in one statement (parameters ``experiment_id``
and ``user_id``; read it with `participation_of`). Public so the hot path of AssignVariant
can run it through `Database.fetch_one`.
"""

# One statement, one snapshot: a conversion is only ever counted with its exposure.
_COUNTS = (
    select(_x.variant, func.count(_x.user_id).label("exposures"), func.count(_c.user_id).label("conversions"))
    .select_from(
        experiment_exposures.outerjoin(
            experiment_conversions, and_(_c.experiment_id == _x.experiment_id, _c.user_id == _x.user_id)
        )
    )
    .where(_x.experiment_id == bindparam("experiment_id"))
    .group_by(_x.variant)
)


def _stored(row: Row[Any]) -> StoredExperiment:
    m = row._mapping
    variants = tuple(Variant(v["name"], v["weight"]) for v in orjson.loads(m["variants"]))
    definition = ExperimentDefinition(
        Experiment(m["experiment_id"], m["salt"], variants, m["control"]),
        m["description"],
        m["conversion_event_type"],
        timedelta(microseconds=m["conversion_window_us"]),
        m["campaign_id"],
    )
    return StoredExperiment(
        definition, ExperimentStatus(m["status"]), m["created_at"], m["ended_at"], int(m["version"])
    )


def create(conn: Connection, definition: ExperimentDefinition, now: datetime) -> bool:
    """Store a new RUNNING experiment unless its id exists; whether it was stored."""
    experiment = definition.experiment
    row = {
        "experiment_id": experiment.experiment_id,
        "description": definition.description,
        "salt": experiment.salt,
        "variants": orjson.dumps([{"name": v.name, "weight": v.weight} for v in experiment.variants]).decode(),
        "control": experiment.control,
        "conversion_event_type": definition.conversion_event_type,
        "conversion_window_us": definition.conversion_window // timedelta(microseconds=1),
        "campaign_id": definition.campaign_id,
        "status": ExperimentStatus.RUNNING.value,
        "created_at": now,
        "ended_at": None,
        "version": 1,
    }
    return conn.execute(_CREATE[conn.dialect.name], row).first() is not None


def get(conn: Connection, experiment_id: str) -> StoredExperiment | None:
    """The experiment stored under ``experiment_id``, if any."""
    row = conn.execute(_EXPERIMENT, {"experiment_id": experiment_id}).first()
    return None if row is None else _stored(row)


def page(conn: Connection, after: str, limit: int) -> list[StoredExperiment]:
    """Up to ``limit`` experiments with ids after ``after``, in id order."""
    return [_stored(row) for row in conn.execute(_PAGE, {"after": after, "limit": limit})]


def converting_on(conn: Connection, event_type: str) -> list[StoredExperiment]:
    """The experiments whose conversion event is ``event_type`` (any status: a conversion
    may come after the experiment ended, within its window).
    """
    return [_stored(row) for row in conn.execute(_CONVERTING, {"event_type": event_type})]


def end(conn: Connection, experiment_id: str, now: datetime) -> bool:
    """RUNNING → ENDED; whether this call ended it (False when already ended or missing)."""
    return bool(conn.execute(_END, {"w_experiment_id": experiment_id, "v_ended_at": now}).rowcount)


def participation_of(row: Row[Any]) -> tuple[StoredExperiment, Participation]:
    """The experiment and the user's rows from a `PARTICIPATION` row."""
    m = row._mapping
    seen = Participation(m["assigned_variant"], m["assigned_at"], m["first_exposed_at"], m["converted_at"])
    return _stored(row), seen


def participation(conn: Connection, experiment_id: str, user_id: str) -> tuple[StoredExperiment, Participation] | None:
    """The experiment and what ``user_id`` went through in it; None for no experiment."""
    row = conn.execute(PARTICIPATION, {"experiment_id": experiment_id, "user_id": user_id}).first()
    return None if row is None else participation_of(row)


_USERS_ASSIGNED = select(_a.user_id, _a.variant, _a.assigned_at).where(
    _a.experiment_id == bindparam("experiment_id"), _a.user_id.in_(bindparam("user_ids", expanding=True))
)
_USERS_EXPOSED = select(_x.user_id, _x.first_exposed_at).where(
    _x.experiment_id == bindparam("experiment_id"), _x.user_id.in_(bindparam("user_ids", expanding=True))
)
_USERS_CONVERTED = select(_c.user_id, _c.converted_at).where(
    _c.experiment_id == bindparam("experiment_id"), _c.user_id.in_(bindparam("user_ids", expanding=True))
)


def participations(
    conn: Connection, experiment_id: str, user_ids: Sequence[str]
) -> tuple[StoredExperiment, dict[str, Participation]] | None:
    """`participation` for several users at once (a batch of events): the experiment and
    every one of ``user_ids``'s rows in it; None for no experiment.
    """
    stored = get(conn, experiment_id)
    if stored is None:
        return None
    params = {"experiment_id": experiment_id, "user_ids": list(user_ids)}
    assigned = {user_id: (variant, at) for user_id, variant, at in conn.execute(_USERS_ASSIGNED, params).all()}
    exposed = dict(conn.execute(_USERS_EXPOSED, params).all())
    converted = dict(conn.execute(_USERS_CONVERTED, params).all())
    seen = {
        user_id: Participation(*assigned.get(user_id, (None, None)), exposed.get(user_id), converted.get(user_id))
        for user_id in user_ids
    }
    return stored, seen


def assign(conn: Connection, experiment_id: str, user_id: str, variant: str, now: datetime) -> tuple[str, datetime]:
    """Store ``variant`` as the user's assignment unless one exists; the stored assignment
    (the first one wins) and when it was made.
    """
    params = {"experiment_id": experiment_id, "user_id": user_id}
    if conn.execute(_ASSIGN[conn.dialect.name], {**params, "variant": variant, "assigned_at": now}).first():
        return variant, now
    stored = conn.execute(_ASSIGNMENT, params).one()
    return str(stored.variant), stored.assigned_at


def expose(conn: Connection, experiment_id: str, user_id: str, variant: str, now: datetime) -> bool:
    """Log the user's exposure unless one is logged; whether this was the first."""
    row = {"experiment_id": experiment_id, "user_id": user_id, "variant": variant, "first_exposed_at": now}
    return conn.execute(_EXPOSE[conn.dialect.name], row).first() is not None


def convert(
    conn: Connection, experiment_id: str, user_id: str, variant: str, occurred_at: datetime, now: datetime
) -> bool:
    """Count the user's conversion unless one is counted; whether this one was."""
    row = {
        "experiment_id": experiment_id,
        "user_id": user_id,
        "variant": variant,
        "converted_at": occurred_at,
        "recorded_at": now,
    }
    return conn.execute(_CONVERT[conn.dialect.name], row).first() is not None


def counts(conn: Connection, experiment_id: str) -> Mapping[str, VariantCounts]:
    """Exposed users, and how many of them converted, per variant (variants without
    exposures are left out).
    """
    rows = conn.execute(_COUNTS, {"experiment_id": experiment_id})
    return {str(r.variant): VariantCounts(int(r.exposures), int(r.conversions)) for r in rows}
