"""The payments schema (SQLAlchemy Core). Amounts are integer minor units; timestamps `UtcDateTime`.

``entries`` and ``transfers`` are append-only (the migration installs triggers that
refuse UPDATE and DELETE); ``accounts.balance`` is the running sum of an account's
entries, kept in the same transaction and checked by VerifyLedger.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table, Text

from libs.events import consumer_tables, outbox_table
from libs.storage import UtcDateTime, big_id

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    # The lowest balance allowed; NULL = unbounded (platform books).
    Column("floor", BigInteger, nullable=True),
    Column("balance", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_accounts_owner", "owner"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("description", Text, nullable=False),
    # A transfer is reversed at most once.
    Column("reverses", String(40), ForeignKey("transfers.id"), nullable=True, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("id", big_id(), primary_key=True, autoincrement=True),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False, index=True),
    Column("account_id", String(120), ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # A wallet's history, newest first.
    Index("ix_entries_account_id_id", "account_id", "id"),
)

points_lots = Table(
    "points_lots",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("account_id", String(120), ForeignKey("accounts.id"), nullable=False),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("granted", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_points_lots_user_id_expires_at", "user_id", "expires_at"),
)

# One row per (caller scope, client key), written in the transaction of the effect.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(160), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# Wallets frozen because TnS suspended their owner: no money goes out while frozen
# (incoming refunds and credits still land).
frozen_wallets = Table(
    "frozen_wallets",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("frozen_at", UtcDateTime(), nullable=False),
)

outbox = outbox_table(metadata)
event_cursors, processed_events = consumer_tables(metadata)
