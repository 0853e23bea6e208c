"""Mapping between domain objects and ``furima.id.v1`` messages, plus request helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from furima.id.v1 import (
    audit_service_pb2,
    client_service_pb2,
    consent_service_pb2,
    key_service_pb2,
    token_pb2,
    user_service_pb2,
)

from libs.pb import ts
from services.id.domain.audit import AuditEvent
from services.id.domain.clients import Client, ClientKind
from services.id.domain.consent import Consent
from services.id.domain.keys import KeyStatus, SigningKey
from services.id.domain.users import User, UserStatus
from services.id.service.issuing import TokenSet

Context = grpc.aio.ServicerContext[Any, Any]

_USER_STATUS = {
    UserStatus.ACTIVE: user_service_pb2.USER_STATUS_ACTIVE,
    UserStatus.SUSPENDED: user_service_pb2.USER_STATUS_SUSPENDED,
}
_KEY_STATUS = {
    KeyStatus.ACTIVE: key_service_pb2.KEY_STATUS_ACTIVE,
    KeyStatus.RETIRING: key_service_pb2.KEY_STATUS_RETIRING,
    KeyStatus.RETIRED: key_service_pb2.KEY_STATUS_RETIRED,
}
CLIENT_KIND_TO_PB = {
    ClientKind.FIRST_PARTY: client_service_pb2.CLIENT_KIND_FIRST_PARTY,
    ClientKind.THIRD_PARTY: client_service_pb2.CLIENT_KIND_THIRD_PARTY,
    ClientKind.SERVICE: client_service_pb2.CLIENT_KIND_SERVICE,
}
CLIENT_KIND_FROM_PB = {v: k for k, v in CLIENT_KIND_TO_PB.items()}


def source_of(context: Context) -> str:
    """Return the caller's address without port ("ipv4:1.2.3.4:5678" → "1.2.3.4"), for throttling."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]").replace("%5B", "").replace("%5D", "")
    return peer


def user_pb(user: User) -> user_service_pb2.User:
    """Return a User message (never the password hash)."""
    return user_service_pb2.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        status=_USER_STATUS[user.status],
        region=user.region,
        created_at=ts(user.created_at),
        suspended_at=ts(user.suspended_at),
        suspension_reason=user.suspension_reason,
    )


def token_set_pb(tokens: TokenSet) -> token_pb2.TokenSet:
    """Return a TokenSet message."""
    return token_pb2.TokenSet(
        access_token=tokens.access_token,
        token_type=tokens.token_type,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        scope=tokens.scope,
        issued_token_type=tokens.issued_token_type,
    )


def client_pb(client: Client) -> client_service_pb2.Client:
    """Return a Client message (never the secret hash)."""
    return client_service_pb2.Client(
        client_id=client.client_id,
        name=client.name,
        kind=CLIENT_KIND_TO_PB[client.kind],
        confidential=client.confidential,
        allowed_scopes=sorted(client.allowed_scopes),
        redirect_uris=list(client.redirect_uris),
        grant_types=sorted(g.value for g in client.grant_types),
        created_at=ts(client.created_at),
    )


def consent_pb(consent: Consent) -> consent_service_pb2.Consent:
    """Return a Consent message."""
    return consent_service_pb2.Consent(
        user_id=consent.user_id,
        client_id=consent.client_id,
        scopes=sorted(consent.scopes),
        granted_at=ts(consent.granted_at),
        updated_at=ts(consent.updated_at),
    )


def key_pb(key: SigningKey, now: datetime) -> key_service_pb2.SigningKey:
    """Return a SigningKey message (public metadata only)."""
    return key_service_pb2.SigningKey(
        kid=key.kid,
        alg="ES256",
        status=_KEY_STATUS[key.status(now)],
        created_at=ts(key.created_at),
        retired_at=ts(key.retired_at),
    )


def audit_pb(event: AuditEvent) -> audit_service_pb2.AuditEvent:
    """Return an AuditEvent message."""
    return audit_service_pb2.AuditEvent(
        id=event.id,
        type=event.type,
        subject=event.subject,
        client_id=event.client_id,
        actor=event.actor,
        source=event.source,
        details=dict(event.details),
        occurred_at=ts(event.occurred_at),
    )
