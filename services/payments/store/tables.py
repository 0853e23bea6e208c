"""The payments schema (SQLAlchemy Core). Amounts are integer minor units; timestamps `UtcDateTime`.

``entries`` and ``transfers`` are append-only (the migration installs triggers that
refuse UPDATE and DELETE); ``accounts.balance`` is the running sum of an account's
entries, kept in the same transaction and checked by VerifyLedger.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

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

# A marketplace payment and where it stands; every change is a guarded transition.
payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("seller_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("remainder_method", String(8), nullable=False),
    Column("captured", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    # Which shard of the platform's hot accounts (holds, escrow, fees) it uses.
    Column("shard", Integer, nullable=False),
    Column("risk_decision", String(12), nullable=False),
    Column("risk_assessment_id", String(40), nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("risk_reasons", Text, nullable=False),
    Column("card_reference", String(64), nullable=True),
    Column("description", Text, nullable=False),
    Column("hold_expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # A party's payments newest first (ids are ULIDs): ListPayments.
    Index("ix_payments_buyer_id_id", "buyer_id", "id"),
    Index("ix_payments_seller_id_id", "seller_id", "id"),
    Index("ix_payments_status_hold_expires_at", "status", "hold_expires_at"),
)

# What each source (points, cash, credit, card) paid for a payment, and what went back.
payment_funding = Table(
    "payment_funding",
    metadata,
    Column("payment_id", String(40), ForeignKey("payments.id"), primary_key=True),
    Column("source", String(8), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
)

# The points lots a payment spent, so refunds and releases return points to their lots.
payment_points = Table(
    "payment_points",
    metadata,
    Column("payment_id", String(40), ForeignKey("payments.id"), primary_key=True),
    Column("lot_id", String(40), ForeignKey("points_lots.id"), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("returned", BigInteger, nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Pay-later limits; the credit account's floor is minus the limit.
credit_lines = Table(
    "credit_lines",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("credit_limit", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Top-ups, withdrawals and bank repayments: sagas whose state survives restarts.
bank_transfers = Table(
    "bank_transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(12), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("bank_account", String(40), nullable=False),
    Column("bank_reference", String(64), nullable=True),
    Column("failure_reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    # The transfer that holds a withdrawal's funds, and the one that completes the flow.
    Column("hold_transfer_id", String(40), nullable=True),
    Column("ledger_transfer_id", String(40), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_bank_transfers_status_next_attempt_at", "status", "next_attempt_at"),
    # A user's flows newest first (ids are ULIDs): ListBankTransfers.
    Index("ix_bank_transfers_user_id_id", "user_id", "id"),
)

outbox = outbox_table(metadata)
event_cursors, processed_events = consumer_tables(metadata)
