"""Frozen wallets, and the cursor of the TnS standing feed that freezes them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.storage import UtcDateTime, big_id

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the frozen-wallet list and the event-consumer tables."""
    op.create_table(
        "frozen_wallets",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frozen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("position", big_id(), nullable=False),
        sa.PrimaryKeyConstraint("consumer"),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def downgrade() -> None:
    """Drop them."""
    for table in ("processed_events", "event_cursors", "frozen_wallets"):
        op.drop_table(table)
