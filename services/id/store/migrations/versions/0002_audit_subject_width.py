"""Audit subjects hold sign-in e-mails (up to 254 characters): widen the column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen ``audit_events.subject`` to 320 characters."""
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("subject", existing_type=sa.String(100), type_=sa.String(320), existing_nullable=False)


def downgrade() -> None:
    """Narrow it back (fails if longer subjects exist)."""
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("subject", existing_type=sa.String(320), type_=sa.String(100), existing_nullable=False)
