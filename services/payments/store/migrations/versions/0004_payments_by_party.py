"""Payments listed by party: a buyer's or a seller's payments newest first, from the index
alone (the id is a ULID, so id order is creation order).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace the one-column party indexes with (party, id) ones."""
    op.create_index("ix_payments_buyer_id_id", "payments", ["buyer_id", "id"], unique=False)
    op.create_index("ix_payments_seller_id_id", "payments", ["seller_id", "id"], unique=False)
    op.drop_index("ix_payments_buyer_id", table_name="payments")
    op.drop_index("ix_payments_seller_id", table_name="payments")


def downgrade() -> None:
    """Back to the one-column indexes."""
    op.create_index("ix_payments_buyer_id", "payments", ["buyer_id"], unique=False)
    op.create_index("ix_payments_seller_id", "payments", ["seller_id"], unique=False)
    op.drop_index("ix_payments_buyer_id_id", table_name="payments")
    op.drop_index("ix_payments_seller_id_id", table_name="payments")
