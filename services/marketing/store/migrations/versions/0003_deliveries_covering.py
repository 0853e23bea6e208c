"""Deliveries indexed for the frequency caps' count: a batch of events counts its users'
messages on their local dates, and the index now answers it without reading the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace the (user, channel, date) index with a covering (user, date, channel, delivered) one."""
    op.create_index(
        "ix_deliveries_user_local_date_channel",
        "deliveries",
        ["user_id", "local_date", "channel", "delivered"],
        unique=False,
    )
    op.drop_index("ix_deliveries_user_channel_local_date", table_name="deliveries")


def downgrade() -> None:
    """Back to the (user, channel, date) index."""
    op.create_index(
        "ix_deliveries_user_channel_local_date", "deliveries", ["user_id", "channel", "local_date"], unique=False
    )
    op.drop_index("ix_deliveries_user_local_date_channel", table_name="deliveries")
