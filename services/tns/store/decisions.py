"""Moderation decisions, and what the rules need to know about an author."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Connection,
    Executable,
    Row,
    String,
    and_,
    bindparam,
    column,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Database, UtcDateTime
from services.tns.domain.content import VELOCITY_COUNT_LIMIT, ContentKind, Verdict
from services.tns.domain.enforcement import ActionKind, StandingLevel
from services.tns.domain.moderation import ContentStatus, Reason
from services.tns.store.tables import actions, contents, decisions, known_users, labels, standings


def reasons_json(reasons: Iterable[Reason]) -> str:
    """Reasons as a JSON list."""
    return orjson.dumps(
        [
            {"policy": r.policy, "rule_id": r.rule_id, "verdict": r.verdict.name, "evidence": list(r.evidence)}
            for r in reasons
        ]
    ).decode()


def parse_scores(raw: str) -> tuple[dict[str, float], dict[str, float]]:
    """Scores and thresholds from the ``scores`` column."""
    data = orjson.loads(raw)
    return {p: float(v[0]) for p, v in data.items()}, {p: float(v[1]) for p, v in data.items()}


def parse_reasons(raw: str, *, shadow: bool = False) -> tuple[Reason, ...]:
    """The inverse of `reasons_json`."""
    return tuple(
        Reason(d["policy"], d["rule_id"], Verdict[d["verdict"]], tuple(d["evidence"]), shadow)
        for d in orjson.loads(raw)
    )


def decision_row(
    *,
    decision_id: str,
    kind: ContentKind,
    content_id: str,
    author_id: str,
    verdict: Verdict,
    reasons: Sequence[Reason],
    shadow_reasons: Sequence[Reason],
    scores: Mapping[str, float],
    thresholds: Mapping[str, float],
    ruleset_version: str,
    model_version: str,
    case_id: str | None,
    decided_at: datetime,
) -> dict[str, Any]:
    """The row of one decision."""
    return {
        "id": decision_id,
        "kind": kind.value,
        "content_id": content_id,
        "author_id": author_id,
        "verdict": verdict.name,
        "reasons": reasons_json(reasons),
        "shadow_reasons": reasons_json(shadow_reasons),
        # {policy: [score, threshold]}
        "scores": orjson.dumps({p: [s, thresholds.get(p, 1.0)] for p, s in scores.items()}).decode(),
        "ruleset_version": ruleset_version,
        "model_version": model_version,
        "case_id": case_id,
        "decided_at": decided_at,
    }


async def add_many(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert decision rows (see `decision_row`)."""
    if rows:
        await conn.execute(insert(decisions), list(rows))


_INSERT = insert(decisions)  # one statement object: its cache key is computed once


def add_many_sync(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """`add_many` on a synchronous connection (`Database.write_sync`)."""
    if rows:
        conn.execute(_INSERT, list(rows))


async def get(conn: AsyncConnection, decision_id: str) -> Row[tuple[object, ...]] | None:
    """The decision row with ``decision_id``."""
    return (await conn.execute(select(decisions).where(decisions.c.id == decision_id))).first()


@dataclass(frozen=True)
class AuthorFacts:
    """An author's standing row, strikes and recent volume, read in one round trip."""

    level: StandingLevel
    restricted_until: datetime | None
    strike_points: float
    recent: dict[tuple[ContentKind, int], int]
    content_status: ContentStatus | None
    """The status of the content being moderated, if TnS has seen it before."""
    labels: frozenset[str]
    signed_up_at: datetime | None


def _facts_query(dialect: str, windows: tuple[tuple[tuple[ContentKind, int], int], ...]) -> Executable:
    """The one SELECT of `author_facts`, with bound parameters: built once per rule set."""
    author: BindParameter[str] = bindparam("author_id", type_=String())
    now = bindparam("now", type_=UtcDateTime())
    columns = [
        select(standings.c.level).where(standings.c.user_id == author).scalar_subquery().label("level"),
        select(standings.c.restricted_until)
        .where(standings.c.user_id == author)
        .scalar_subquery()
        .label("restricted_until"),
        select(func.coalesce(func.sum(actions.c.points), 0.0))
        .where(
            actions.c.user_id == author,
            actions.c.kind == ActionKind.STRIKE.value,
            actions.c.reverted_at.is_(None),
            actions.c.created_at >= bindparam("strikes_since", type_=UtcDateTime()),
        )
        .scalar_subquery()
        .label("strike_points"),
        select(contents.c.status)
        .where(contents.c.kind == bindparam("kind"), contents.c.content_id == bindparam("content_id"))
        .scalar_subquery()
        .label("content_status"),
    ]
    active_labels = select(labels.c.label).where(
        labels.c.user_id == author, or_(labels.c.expires_at.is_(None), labels.c.expires_at > now)
    )
    aggregate = func.string_agg if dialect == "postgresql" else func.group_concat
    columns.append(select(aggregate(active_labels.subquery().c.label, " ")).scalar_subquery().label("labels"))
    columns.append(
        select(known_users.c.signed_up_at)
        .where(known_users.c.user_id == author)
        .scalar_subquery()
        .label("signed_up_at")
    )
    for i, ((window_kind, _), limit) in enumerate(windows):
        # Counting stops where every rule has decided: a prolific author must not make
        # each of their submissions slower.
        recent = (
            select(literal(1))
            .select_from(decisions)
            .where(
                and_(
                    decisions.c.author_id == author,
                    decisions.c.kind == window_kind.value,
                    decisions.c.decided_at >= bindparam(f"since{i}", type_=UtcDateTime()),
                )
            )
            .limit(min(limit, VELOCITY_COUNT_LIMIT))
            .subquery()
        )
        columns.append(select(func.count()).select_from(recent).scalar_subquery().label(f"w{i}"))
    query = select(*columns)
    if dialect != "sqlite":
        return query
    # On SQLite run it as a text statement: executing the Select would have SQLAlchemy
    # walk its eight subqueries on every call to build a cache key; a text's key is its
    # string. The bound parameters and result columns keep their types. (PostgreSQL's
    # rendering casts parameters, which a text cannot parse; it keeps the Select.)
    compiled = query.compile(dialect=sqlite.dialect(paramstyle="named"))
    binds = [
        # The caller's parameters stay open; constants (kinds, limits) keep their values.
        bindparam(name, type_=bind.type) if bind.value is None else bindparam(name, bind.value, type_=bind.type)
        for bind, name in compiled.bind_names.items()
    ]
    columns_out = [column(c.name, c.type) for c in query.selected_columns]
    return text(str(compiled)).bindparams(*binds).columns(*columns_out)


_queries: dict[tuple[str, tuple[tuple[tuple[ContentKind, int], int], ...]], Executable] = {}


async def author_facts(
    db: Database,
    author_id: str,
    kind: ContentKind,
    content_id: str,
    windows: Mapping[tuple[ContentKind, int], int],
    strike_window: timedelta,
    now: datetime,
) -> AuthorFacts:
    """Everything moderation reads about an author: one small SELECT of scalar subqueries,
    run as a hot-path read (`Database.fetch_one`). ``windows`` maps each velocity window
    to the count at which the rules have decided (counts stop there).
    """
    ordered = tuple(sorted(windows.items()))
    key = (db.dialect, ordered)
    query = _queries.get(key)
    if query is None:
        query = _queries[key] = _facts_query(db.dialect, ordered)
    params: dict[str, object] = {
        "author_id": author_id,
        "now": now,
        "strikes_since": now - strike_window,
        "kind": kind.value,
        "content_id": content_id,
    }
    for i, ((_, seconds), _) in enumerate(ordered):
        params[f"since{i}"] = now - timedelta(seconds=seconds)
    found = await db.fetch_one(query, params)
    assert found is not None  # a SELECT without FROM always returns its one row
    row = found._mapping
    return AuthorFacts(
        level=StandingLevel(row["level"]) if row["level"] else StandingLevel.GOOD,
        restricted_until=row["restricted_until"],
        strike_points=float(row["strike_points"] or 0.0),
        # This submission counts too: it is not stored yet.
        recent={w: int(row[f"w{i}"]) + (1 if w[0] is kind else 0) for i, (w, _) in enumerate(ordered)},
        content_status=ContentStatus(row["content_status"]) if row["content_status"] else None,
        labels=frozenset((row["labels"] or "").split()),
        signed_up_at=row["signed_up_at"],
    )
