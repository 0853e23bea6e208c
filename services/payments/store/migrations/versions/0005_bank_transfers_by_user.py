"""A user's bank transfers listed newest first from the index alone (ids are ULIDs).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace the user index with a (user, id) one."""
    op.create_index("ix_bank_transfers_user_id_id", "bank_transfers", ["user_id", "id"], unique=False)
    op.drop_index("ix_bank_transfers_user_id", table_name="bank_transfers")


def downgrade() -> None:
    """Back to the user index."""
    op.create_index("ix_bank_transfers_user_id", "bank_transfers", ["user_id"], unique=False)
    op.drop_index("ix_bank_transfers_user_id_id", table_name="bank_transfers")
