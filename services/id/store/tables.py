"""The ID service's tables (SQLAlchemy Core). Every timestamp is a `UtcDateTime`."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

from libs.events import outbox_table
from libs.storage import UtcDateTime

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),  # normalised (lower-case)
    Column("password_hash", Text, nullable=False),
    Column("display_name", String(100), nullable=False, default=""),
    Column("region", String(2), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("suspended_at", UtcDateTime(), nullable=True),
    Column("suspension_reason", Text, nullable=False, default=""),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("confidential", Boolean, nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("allowed_scopes", Text, nullable=False),  # space-separated
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("grant_types", Text, nullable=False),  # space-separated
    Column("created_at", UtcDateTime(), nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id"), primary_key=True),
    Column("scopes", Text, nullable=False),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("code_challenge", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    # The session the code was redeemed for, so a replayed code can kill it.
    Column("family_id", String(40), nullable=True),
)

token_families = Table(
    "token_families",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("client_id", String(64), ForeignKey("clients.client_id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("reason", String(64), nullable=False, default=""),
    Index("ix_token_families_user_client", "user_id", "client_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(40), ForeignKey("token_families.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("client_id", String(64), ForeignKey("clients.client_id"), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audience", Text, nullable=False),  # space-separated
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    Column("rotated_to", String(64), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

revoked_access_tokens = Table(
    "revoked_access_tokens",
    metadata,
    Column("jti", String(40), primary_key=True),
    Column("subject", String(64), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),  # rows past it can be purged
    Column("revoked_at", UtcDateTime(), nullable=False),
)

# Production would keep private keys in a KMS/HSM and store only a key reference here;
# the embedded PEM keeps the development stack self-contained.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(40), primary_key=True),
    Column("private_key_pem", Text, nullable=False),
    Column("status", String(16), nullable=False),  # informative; the timestamps decide
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retiring_at", UtcDateTime(), nullable=True),
    Column("retired_at", UtcDateTime(), nullable=True),
)

signin_throttle = Table(
    "signin_throttle",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UtcDateTime(), nullable=True),
    Column("blocked_until", UtcDateTime(), nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("subject", String(320), nullable=False),  # a user or client id, or a sign-in e-mail
    Column("client_id", String(64), nullable=False, default=""),
    Column("actor", String(100), nullable=False),
    Column("source", String(100), nullable=False, default=""),
    Column("details", Text, nullable=False),  # JSON object of strings
    Column("occurred_at", UtcDateTime(), nullable=False),
    Index("ix_audit_events_subject", "subject", "id"),
    Index("ix_audit_events_type", "type", "id"),
)

outbox = outbox_table(metadata)
