"""Issuing tokens: signed access tokens and rotating refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.storage import Transaction
from services.id.domain import audit
from services.id.domain.scopes import format_scopes
from services.id.domain.tokens import (
    RefreshToken,
    TokenFamily,
    access_claims,
    hash_token,
    new_family_id,
    new_opaque_token,
)
from services.id.service._runtime import Runtime, record
from services.id.service.audit_log import AuditLog
from services.id.service.keyring import KeyRing
from services.id.store import tokens as token_repo


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint returns."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str = ""
    issued_token_type: str = ""
    token_type: str = "Bearer"  # noqa: S105 - a protocol name, not a secret


class TokenIssuer:
    """Signs access tokens and keeps refresh-token families."""

    def __init__(self, rt: Runtime, keyring: KeyRing, audit_log: AuditLog) -> None:
        self._rt = rt
        self._keyring = keyring
        self._audit_log = audit_log

    async def access_token(
        self,
        tx: Transaction | None,
        *,
        subject: str,
        client_id: str,
        scopes: frozenset[str],
        audience: tuple[str, ...],
        session_id: str | None = None,
        actor: dict[str, Any] | None = None,
        grant: str,
        source: str = "",
    ) -> tuple[str, int]:
        """Return a signed access token and its lifetime in seconds; audited as ``token.issued``.

        Without ``tx`` (the token is the request's only effect) the audit event is group-committed.
        """
        now = self._rt.clock.now()
        ttl = self._rt.config.access_token_ttl
        claims = access_claims(
            issuer=self._rt.config.issuer,
            subject=subject,
            audience=audience,
            client_id=client_id,
            scopes=scopes,
            now=now,
            ttl=ttl,
            session_id=session_id,
            actor=actor,
        )
        token = await self._keyring.sign(claims.to_payload())
        details = {"jti": claims.jti, "grant": grant, "scope": format_scopes(scopes)}
        if actor:
            details["act"] = str(actor.get("sub", ""))
        issued = audit.event(
            audit.TOKEN_ISSUED,
            subject,
            now,
            client_id=client_id,
            actor=str(actor["sub"]) if actor else subject,
            source=source,
            details=details,
        )
        if tx is None:
            await self._audit_log.record(issued)
        else:
            await record(tx, issued)
        return token, int(ttl.total_seconds())

    async def start_session(
        self, tx: Transaction, *, user_id: str, client_id: str, scopes: frozenset[str], audience: tuple[str, ...]
    ) -> tuple[str, str]:
        """Return a new refresh-token family and its first refresh token: ``(family_id, token)``."""
        now = self._rt.clock.now()
        family = TokenFamily(new_family_id(), user_id, client_id, now)
        await token_repo.add_family(tx.conn, family)
        token = await self._add_refresh(tx, family.id, user_id, client_id, scopes, audience, now)
        return family.id, token

    async def rotate(self, tx: Transaction, old: RefreshToken) -> str | None:
        """Return the successor of ``old`` in its family, or None if ``old`` was spent concurrently."""
        now = self._rt.clock.now()
        token = new_opaque_token()
        if not await token_repo.mark_refresh_used(tx.conn, old.token_hash, now, hash_token(token)):
            return None
        await self._store_refresh(tx, token, old.family_id, old.user_id, old.client_id, old.scopes, old.audience, now)
        return token

    async def _add_refresh(
        self,
        tx: Transaction,
        family_id: str,
        user_id: str,
        client_id: str,
        scopes: frozenset[str],
        audience: tuple[str, ...],
        now: datetime,
    ) -> str:
        token = new_opaque_token()
        await self._store_refresh(tx, token, family_id, user_id, client_id, scopes, audience, now)
        return token

    async def _store_refresh(
        self,
        tx: Transaction,
        token: str,
        family_id: str,
        user_id: str,
        client_id: str,
        scopes: frozenset[str],
        audience: tuple[str, ...],
        now: datetime,
    ) -> None:
        await token_repo.add_refresh(
            tx.conn,
            RefreshToken(
                hash_token(token),
                family_id,
                user_id,
                client_id,
                scopes,
                audience,
                now,
                now + self._rt.config.refresh_token_ttl,
            ),
        )
