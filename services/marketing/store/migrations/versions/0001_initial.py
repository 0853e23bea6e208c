"""The marketing schema: the event log and facts, segments, campaigns and their rewards,
deliveries and counters, experiments, the outbox and the consumer cursors.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from libs.storage import UtcDateTime, big_id

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "campaign_counters",
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "variant", "name"),
    )
    op.create_table(
        "campaign_receipts",
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "user_id"),
    )
    op.create_table(
        "campaign_rewards",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("trigger_event_id", sa.String(length=80), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("coupon_code", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("traceparent", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "user_id", "trigger_event_id", name="uq_campaign_rewards_trigger"),
    )
    op.create_index(
        "ix_campaign_rewards_status_next_attempt_at", "campaign_rewards", ["status", "next_attempt_at"], unique=False
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("trigger_event_type", sa.String(length=64), nullable=False),
        sa.Column("budget", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("start_at", UtcDateTime(), nullable=True),
        sa.Column("end_at", UtcDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=False),
        sa.Column("next_run_at", UtcDateTime(), nullable=True),
        sa.Column("run_cursor", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_campaigns_status_trigger_event_type", "campaigns", ["status", "trigger_event_type"], unique=False
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("trigger_event_id", sa.String(length=80), nullable=False),
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deliveries_campaign_id", "deliveries", ["campaign_id"], unique=False)
    op.create_index(
        "ix_deliveries_user_channel_local_date", "deliveries", ["user_id", "channel", "local_date"], unique=False
    )
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("position", big_id(), nullable=False),
        sa.PrimaryKeyConstraint("consumer"),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_events_user_id_occurred_at", "events", ["user_id", "occurred_at"], unique=False)
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "user_id"),
    )
    op.create_table(
        "experiment_conversions",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("converted_at", UtcDateTime(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "user_id"),
    )
    op.create_table(
        "experiment_exposures",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("first_exposed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "user_id"),
    )
    op.create_index(
        "ix_experiment_exposures_variant", "experiment_exposures", ["experiment_id", "variant"], unique=False
    )
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("variants", sa.Text(), nullable=False),
        sa.Column("control", sa.String(length=64), nullable=False),
        sa.Column("conversion_event_type", sa.String(length=64), nullable=False),
        sa.Column("conversion_window_us", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id"),
    )
    op.create_index("ix_experiments_conversion_event_type", "experiments", ["conversion_event_type"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("sequence", big_id(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("aggregate_id", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_type_sequence", "outbox", ["type", "sequence"], unique=False)
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "segments",
        sa.Column("segment_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("form", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("members_computed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
    )
    op.create_table(
        "user_facts",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.segment_id"],
        ),
        sa.PrimaryKeyConstraint("segment_id", "user_id"),
    )
    op.create_index("ix_segment_members_user_id", "segment_members", ["user_id"], unique=False)


def downgrade() -> None:
    """Drop every table."""
    op.drop_index("ix_segment_members_user_id", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("user_facts")
    op.drop_table("segments")
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_type_sequence", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_experiments_conversion_event_type", table_name="experiments")
    op.drop_table("experiments")
    op.drop_index("ix_experiment_exposures_variant", table_name="experiment_exposures")
    op.drop_table("experiment_exposures")
    op.drop_table("experiment_conversions")
    op.drop_table("experiment_assignments")
    op.drop_index("ix_events_user_id_occurred_at", table_name="events")
    op.drop_table("events")
    op.drop_table("event_cursors")
    op.drop_index("ix_deliveries_user_channel_local_date", table_name="deliveries")
    op.drop_index("ix_deliveries_campaign_id", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_campaigns_status_trigger_event_type", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index("ix_campaign_rewards_status_next_attempt_at", table_name="campaign_rewards")
    op.drop_table("campaign_rewards")
    op.drop_table("campaign_receipts")
    op.drop_table("campaign_counters")
