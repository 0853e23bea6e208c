"""Campaign receipts by user: a batch of events reads every receipt of its users at once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index the receipts by user id."""
    op.create_index("ix_campaign_receipts_user_id", "campaign_receipts", ["user_id"], unique=False)


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_campaign_receipts_user_id", table_name="campaign_receipts")
