"""Consent use cases: a user lists and withdraws their grants."""

from __future__ import annotations

from libs.errors import NotFound, PermissionDenied
from services.id.domain import audit
from services.id.domain import consent as rules
from services.id.domain.consent import Consent
from services.id.service._events import consent_revoked
from services.id.service._runtime import Caller, Runtime, record
from services.id.service.sessions import revoke_family
from services.id.store import consents as consent_repo
from services.id.store import tokens as token_repo


def _require_user(caller: Caller) -> str:
    if not caller.is_user:
        raise PermissionDenied("consents belong to a signed-in user", reason="USER_REQUIRED")
    return caller.subject


class ConsentService:
    """The signed-in user's consents."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def list_consents(self, caller: Caller, *, page_size: int, page_token: str = "") -> tuple[list[Consent], str]:
        """Return the caller's active consents, by client id; returns ``(page, next_page_token)``."""
        user_id = _require_user(caller)
        async with self._rt.db.read() as conn:
            items = await consent_repo.active_for_user(conn, user_id, page_token, page_size + 1)
        more = len(items) > page_size
        items = items[:page_size]
        return items, (items[-1].client_id if more else "")

    async def revoke_consent(self, caller: Caller, client_id: str) -> None:
        """Withdraw the caller's consent to ``client_id`` and end the client's sessions for them.

        Idempotent: an already withdrawn consent changes nothing.
        """
        user_id = _require_user(caller)
        async with self._rt.db.transaction() as tx:
            consent = await consent_repo.get(tx.conn, user_id, client_id)
            if consent is None:
                raise NotFound(f"no consent to client {client_id!r}", reason="CONSENT_NOT_FOUND")
            if not consent.is_active:
                return
            now = self._rt.clock.now()
            await consent_repo.save(tx.conn, rules.revoke(consent, now), exists=True)
            for family in await token_repo.active_families(tx.conn, user_id, client_id):
                await revoke_family(self._rt, tx, family, reason="consent_revoked", actor=user_id)
            await self._rt.outbox.append(tx, user_id, consent_revoked(user_id, client_id, now))
            await record(tx, audit.event(audit.CONSENT_REVOKED, user_id, now, client_id=client_id, actor=user_id))
