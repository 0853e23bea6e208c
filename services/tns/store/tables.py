"""The TnS service's tables (SQLAlchemy Core). Every timestamp is a `UtcDateTime`.

JSON columns hold small documents the database never queries into (reasons, scores).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, text

from libs.events import consumer_tables, outbox_table
from libs.storage import UtcDateTime, big_id

metadata = MetaData()

# The latest version of every moderated piece of content, with its status.
contents = Table(
    "contents",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("content_id", String(100), primary_key=True),
    Column("author_id", String(40), nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("category", String(64), nullable=False),
    Column("price_amount", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_policy", String(64), nullable=False),  # why hidden/removed ("" when visible)
    Column("latest_decision_id", String(40), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Index("ix_contents_decided_at", "decided_at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("content_id", String(100), nullable=False),
    Column("author_id", String(40), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list
    Column("shadow_reasons", Text, nullable=False),  # JSON list
    Column("scores", Text, nullable=False),  # JSON {policy: score}
    Column("ruleset_version", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("case_id", String(40), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=False),
    # Velocity: an author's submissions of one kind in a window.
    Index("ix_decisions_author_kind_at", "author_id", "kind", "decided_at"),
)

standings = Table(
    "standings",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("level", String(16), nullable=False),
    Column("restricted_until", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("label", String(40), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("source", String(120), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
)

# Strikes, standing changes and content actions; reverted, never deleted.
actions = Table(
    "actions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("points", Float, nullable=False),
    Column("content_kind", String(16), nullable=False),
    Column("content_id", String(100), nullable=False),
    Column("source", String(80), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("until", UtcDateTime(), nullable=True),
    Column("reverted_at", UtcDateTime(), nullable=True),
    # Suspensions and reinstatements are carried out by the ID service: set once it has.
    Column("applied_at", UtcDateTime(), nullable=True),
    Index("ix_actions_user_created", "user_id", "created_at"),
    Index("ix_actions_content", "content_kind", "content_id"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("content_kind", String(16), nullable=False),
    Column("content_id", String(100), nullable=False),
    Column("subject_user_id", String(40), nullable=False),
    Column("opened_by", String(120), nullable=False),
    Column("note", Text, nullable=False),
    Column("decision_id", String(40), nullable=False),
    Column("claimed_by", String(120), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("resolution", String(16), nullable=True),
    Column("resolution_note", Text, nullable=False),
    Column("resolved_by", String(120), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Index("ix_cases_queue", "status", "policy", "priority", "created_at"),
    # One open case of each kind per piece of content: more reports raise its priority.
    Index(
        "ux_cases_open_per_content",
        "kind",
        "content_kind",
        "content_id",
        unique=True,
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
)

# Append-only: the migration installs triggers that refuse UPDATE and DELETE.
audit = Table(
    "audit",
    metadata,
    Column("seq", big_id(), primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(160), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("ruleset_version", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("before_json", Text, nullable=False),
    Column("after_json", Text, nullable=False),
    Column("note", Text, nullable=False),
    Index("ix_audit_subject_seq", "subject", "seq"),
)

risk_assessments = Table(
    "risk_assessments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("transaction_id", String(100), nullable=False, unique=True),
    Column("buyer_id", String(40), nullable=False),
    Column("seller_id", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_method", String(16), nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("ip_address", String(64), nullable=False),
    Column("score", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list
    Column("assessed_at", UtcDateTime(), nullable=False),
    Index("ix_risk_buyer_at", "buyer_id", "assessed_at"),
    Index("ix_risk_device_at", "device_id", "assessed_at"),
)

# What TnS knows of users from the ID service's event stream.
known_users = Table(
    "known_users",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("signed_up_at", UtcDateTime(), nullable=True),
    Column("region", String(2), nullable=False),
    Column("suspended", Boolean, nullable=False),
)

rescans = Table(
    "rescans",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ruleset_version", String(64), nullable=False),
    Column("since", UtcDateTime(), nullable=False),
    Column("scanned", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("changes", Text, nullable=False),  # JSON list, first 200
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=False),
)

outbox = outbox_table(metadata)
event_cursors, processed_events = consumer_tables(metadata)
